"""`foley train codec`: the stereo codec's task on the shared loop (foley.train.loop).

    foley train codec --preset tiny --out runs/codec                          # CPU or one GPU
    torchrun --nproc_per_node 8 -m foley.train.codec --preset soundreactor     # DDP
    foley train codec --out runs/codec --resume                               # after a crash / SIGKILL
    foley train codec --init foley/checkpoints/v1/codec_tiny.pt ...           # warm start from matching weights

Data: clips of the Procedural Foley world (objaware and dataset mixes) plus procedural voices, tones and
bells (foley.world.tonal), generated in memory from (seed, split, index); the batch of step s is a pure
function of (seed, s, rank). Losses: `Codec.loss` (+ hinge GAN on spectrograms with --adv, owned here).
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foley import checkpoint
from foley.metrics.codec import Figures, baseline_mono_pan, figures, plot_validation, validate
from foley.models.codec import FORMAT, PRESETS, Codec, CodecConfig, LossWeights, save_codec
from foley.models.codec_loss import SpectrogramDiscriminator, hinge_d, hinge_g
from foley.spatial import pan_of_energies
from foley.train.loop import Aux, LoopConfig, TrainError, add_loop_arguments, ddp, loop_config, resume_configs, train, with_steps

VAL_FIELDS = tuple(f"val_{k}" for k in Figures.__dataclass_fields__)


@dataclass(frozen=True)
class CodecTaskConfig:
    """What decides a codec run besides the loop; saved in every run checkpoint."""

    preset: str = "tiny"
    frames: int = 16  # latent frames per crop (0.64 s at 25 fps)
    weights: LossWeights = LossWeights()
    adv: bool = False
    adv_weight: float = 0.1
    adv_start: int = 1000
    pool: int = 192  # world clips held in memory (x2 mixes)
    tonal_pool: int = 128  # procedural voices, tones and bells added to the pool
    val_clips: int = 8
    clip_seconds: float = 2.0
    init: str = ""  # warm start: load the matching weights of this codec checkpoint
    seed: int = 0

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise TrainError(f"unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        if self.frames < 2 or self.pool < 1 or self.tonal_pool < 0 or self.val_clips < 1:
            raise TrainError("frames must be >= 2, pool and val-clips >= 1, tonal-pool >= 0")

    @staticmethod
    def from_dict(d: dict) -> "CodecTaskConfig":
        return CodecTaskConfig(**{**d, "weights": LossWeights(**d.get("weights", {}))})


# ---------------------------------------------------------------------- data

@dataclass
class Clips:
    """Clips in memory: stereo audio (P, 2, N) and, for validation, their ground-truth tracks."""

    audio: torch.Tensor
    tracks: list[list]


def world_clips(n: int, split: str, seed: int, fps: int, seconds: float, mixes=("objaware", "dataset")) -> Clips:
    """n clips of the Procedural Foley world (96x96 pictures: only their tracks are used), each mix a row."""
    from foley.world import PRESETS as WORLD, render, sample_scene, synthesize

    wcfg = replace(WORLD["tiny"], fps=fps, seconds=seconds)
    audio, tracks = [], []
    for i in range(n):
        scene = sample_scene(wcfg, seed, split, i)
        rendered = render(scene)
        sound = synthesize(scene, rendered)
        for m in mixes:
            audio.append(torch.from_numpy(sound.mixes[m]))
            tracks.append(rendered.tracks)
    return Clips(torch.stack(audio), tracks)


def tonal_clips(n: int, seed: int, seconds: float, sr: int) -> torch.Tensor:
    """(n, 2, N) procedural tonal clips (voices, tones, bells), float32."""
    from foley.world.tonal import clip

    return torch.from_numpy(np.stack([clip(seed, i, seconds, sr) for i in range(n)])).float()


def calibration_audio(val: torch.Tensor, n: int, seed: int, seconds: float, sr: int) -> torch.Tensor:
    """World validation clips plus as many held-out tonal clips: every latent channel varies in them."""
    return torch.cat([val, tonal_clips(n, seed + 1_000_003, seconds, sr)[:, :, : val.shape[-1]]])


def batch_at(pool: torch.Tensor, step: int, rank: int, n: int, length: int, seed: int) -> torch.Tensor:
    """(n, 2, length) crops for `step` on `rank`: random clip, offset, gain (-12..+6 dB), L/R swap."""
    rng = np.random.default_rng([seed, step, rank])
    idx = rng.integers(len(pool), size=n)
    off = rng.integers(pool.shape[-1] - length + 1, size=n)
    x = torch.stack([pool[i, :, o:o + length] for i, o in zip(idx, off)])  # (n, 2, length)
    gain = torch.from_numpy(10 ** (rng.uniform(-12, 6, size=(n, 1, 1)) / 20)).float()
    swap = torch.from_numpy(rng.random(n) < 0.5)
    x = torch.where(swap[:, None, None], x.flip(1), x)
    return (x * gain).clamp(-1, 1)


def batch_pan_error(y: torch.Tensor, x: torch.Tensor, hop: int) -> torch.Tensor:
    """Mean per-frame |pan(y) - pan(x)| of a batch (the metric of foley.metrics.audio_position), loud frames only."""
    def pan(a):
        e = a.float().unfold(-1, hop, hop).pow(2).sum(-1)  # (B, 2, T)
        return pan_of_energies(e[:, 0], e[:, 1]), e.sum(1)
    (py, _), (px, ex) = pan(y), pan(x)
    loud = ex > ex.amax(-1, keepdim=True) * 1e-6
    return (py - px).abs()[loud].mean()


# ---------------------------------------------------------------------- the task

class CodecTask:
    """The codec on the shared loop (foley.train.loop.Task)."""

    name, fmt = "codec", FORMAT
    csv_fields = ("total", "stft", "power", "band", "kl", "adv_g", "adv_d", "pan_err") + VAL_FIELDS

    def __init__(self, tc: CodecTaskConfig, codec_cfg: CodecConfig | None = None) -> None:
        self.tc, self.cfg = tc, codec_cfg or PRESETS[tc.preset]
        self.pool: torch.Tensor | None = None
        self.val: Clips | None = None

    def config(self) -> CodecTaskConfig:
        return self.tc

    def model_config(self) -> CodecConfig:
        return self.cfg

    def build(self, device: torch.device) -> Codec:
        codec = Codec(self.cfg).to(device)
        if self.tc.init:
            warm_start(codec, self.tc.init)
        return codec

    def prepare(self, device: torch.device, rank: int) -> None:
        tc, cfg = self.tc, self.cfg
        pool = world_clips(tc.pool, "train", tc.seed, cfg.fps, tc.clip_seconds).audio
        if tc.tonal_pool:
            pool = torch.cat([pool, tonal_clips(tc.tonal_pool, tc.seed, tc.clip_seconds, cfg.sr)])
        self.pool, self.device = pool, device
        self.val = self.val or self.validation_clips()
        self.calib = calibration_audio(self.val.audio, tc.val_clips, tc.seed, tc.clip_seconds, cfg.sr)

    def validation_clips(self) -> Clips:
        tc = self.tc
        return world_clips(tc.val_clips, "val", tc.seed, self.cfg.fps, tc.clip_seconds, mixes=("objaware",))

    def baseline_rows(self) -> list[dict]:
        """Log rows at step -1 (mono + pan at the same rate) and -2 (the original itself)."""
        cfg, val = self.cfg, self.val
        base = Figures.mean([figures(torch.from_numpy(baseline_mono_pan(x.double().numpy(), cfg.sr, cfg.fps,
                            cfg.floats_per_second)).float(), x, cfg.sr, cfg.fps, t) for x, t in zip(val.audio, val.tracks)])
        orig = Figures.mean([figures(x, x, cfg.sr, cfg.fps, t) for x, t in zip(val.audio, val.tracks)])
        return [{"step": -1, **{f"val_{k}": v for k, v in asdict(base).items()}},
                {"step": -2, **{f"val_{k}": v for k, v in asdict(orig).items()}}]

    def batch(self, step: int, rank: int, n: int, device: torch.device) -> torch.Tensor:
        return batch_at(self.pool, step, rank, n, self.tc.frames * self.cfg.hop, self.tc.seed).to(device)

    def loss(self, model: torch.nn.Module, raw: Codec, x: torch.Tensor, step: int) -> tuple[dict, Any]:
        out = model(x)  # through the DDP wrapper, so gradients are reduced
        parts = raw.loss(x, out, self.tc.weights)
        if self._adv_on(step):
            parts["adv_g"] = hinge_g(self._aux["disc"].module(out.audio))
            parts["total"] = parts["total"] + self.tc.adv_weight * parts["adv_g"]
        parts["pan_err"] = batch_pan_error(out.audio.detach(), x, raw.cfg.hop)
        return parts, out

    def _adv_on(self, step: int) -> bool:
        return self.tc.adv and step >= self.tc.adv_start

    def aux(self, device: torch.device, world: int, local: int) -> dict[str, Aux]:
        if not self.tc.adv:
            return {}
        disc = ddp(SpectrogramDiscriminator().to(device), device, world, local)
        self._aux = {"disc": Aux(disc, torch.optim.AdamW(disc.parameters(), lr=1e-3, betas=(0.5, 0.9)))}
        return self._aux

    def aux_step(self, aux: dict[str, Aux], x: torch.Tensor, out: Any, step: int) -> dict:
        if not self._adv_on(step):
            return {}
        d = aux["disc"]
        loss_d = hinge_d(d.module(x), d.module(out.audio.detach()))
        d.opt.zero_grad(set_to_none=True)
        loss_d.backward()
        d.opt.step()
        return {"adv_d": loss_d}

    def before_save(self, ema: Codec) -> None:
        ema.calibrate(self.calib.to(self.device))  # the latent scale lives in the codec

    def validate(self, ema: Codec, step: int, out: Path) -> dict:
        from tqdm import tqdm

        self.before_save(ema)
        fig = validate(ema, self.val.audio, self.val.tracks, self.device)
        plot_validation(out / "figures" / f"val_{step:06d}.png", ema, self.val.audio[0], self.val.tracks[0], step)
        tqdm.write(f"step {step}: {fig}")
        return {f"val_{k}": v for k, v in asdict(fig).items()}

    def export(self, ema: Codec, path: Path, **meta: Any) -> None:
        save_codec(path, ema, **meta)


def learned_weights(ckpt: dict) -> dict[str, torch.Tensor]:
    """A codec checkpoint's weights (EMA preferred) without the latent scale, which is measured, not learned."""
    return {k: v for k, v in (ckpt.get("ema") or ckpt["model"]).items() if not k.startswith("latent_")}


def warm_start(codec: Codec, path: str) -> None:
    """Copy every weight of the codec checkpoint at `path` whose name and shape match (not the latent scale)."""
    try:
        ckpt = checkpoint.load(path, (FORMAT,), "codec", "pass a codec checkpoint to --init")
    except Exception as e:
        raise TrainError(f"--init {path}: {e}") from None
    own = codec.state_dict()
    take = {k: v for k, v in learned_weights(ckpt).items() if k in own and own[k].shape == v.shape}
    if not take:
        raise TrainError(f"--init {path}: no weight matches this codec's layers")
    codec.load_state_dict(take, strict=False)
    print(f"warm start from {path}: {len(take)} of {len(own)} tensors")


def run_codec(lc: LoopConfig, tc: CodecTaskConfig, out: str | Path, resume: bool = False, device: str | None = None,
              codec_cfg: CodecConfig | None = None) -> Path:
    """Train (or resume) a codec into `out`; returns out/codec.pt. On resume every config comes from out/last.pt."""
    if resume and (Path(out) / "last.pt").exists():
        lc_d, tc_d, cfg_d = resume_configs(out, FORMAT)
        lc, tc, codec_cfg = with_steps(lc_d, lc.steps), CodecTaskConfig.from_dict(tc_d), CodecConfig.from_dict(cfg_d)
    task = CodecTask(replace(tc, init="") if resume else tc, codec_cfg)
    cfg = task.cfg
    print(f"codec {tc.preset}: {cfg.channels} latent channels, {cfg.floats_per_second} floats/s")
    rows = None
    if not resume:
        task.val = task.validation_clips()  # made once: prepare() keeps it
        rows = task.baseline_rows()
    return train(task, lc, out, resume=resume, device=device, rows=rows)


def export_run(run_checkpoint: str | Path, path: str | Path, val_clips: int = 8, seed: int = 0) -> Codec:
    """The EMA codec of a run checkpoint (e.g. out/last.pt of a stopped run), recalibrated on the validation
    clips as the trainer does, as a small shippable file. The latent scale is measured afresh, so a run whose
    measured channels have since changed in number (the fixed DSP, not the weights) still exports."""
    ckpt = checkpoint.load(run_checkpoint, (FORMAT,), "codec run", "pass a run's last.pt")
    codec = Codec(CodecConfig.from_dict(ckpt["config"]))
    codec.load_state_dict(learned_weights(ckpt), strict=False)
    cfg = codec.cfg
    val = world_clips(val_clips, "val", seed, cfg.fps, 2.0, mixes=("objaware",)).audio
    codec.eval().calibrate(calibration_audio(val, val_clips, seed, 2.0, cfg.sr))
    meta = {k: ckpt[k] for k in ("step", "train_config", "loop_config", "task_config") if k in ckpt}
    save_codec(path, codec, **meta)
    return codec


# ---------------------------------------------------------------------- command line

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="codec size (default: tiny, v2 causal)")
    p.add_argument("--out", default="runs/codec", help="run folder: last.pt, codec.pt, log.csv, figures/")
    add_loop_arguments(p, LoopConfig.steps, LoopConfig.batch, LoopConfig.lr, LoopConfig.val_every, LoopConfig.threads,
                       LoopConfig.save_every)
    p.add_argument("--frames", type=int, default=CodecTaskConfig.frames, help="latent frames per training crop")
    p.add_argument("--pool", type=int, default=CodecTaskConfig.pool, help="world clips generated in memory")
    p.add_argument("--tonal-pool", type=int, default=CodecTaskConfig.tonal_pool, help="procedural tonal clips")
    p.add_argument("--val-clips", type=int, default=CodecTaskConfig.val_clips)
    p.add_argument("--adv", action="store_true", help="add the spectrogram GAN loss")
    p.add_argument("--power-tilt", type=float, default=LossWeights.power_tilt,
                   help="weigh the log-power loss toward low bins: 0 flat, 1 mel-like")
    p.add_argument("--init", default="", help="warm start from the matching weights of this codec checkpoint")


def configs_from_args(a: argparse.Namespace) -> tuple[LoopConfig, CodecTaskConfig]:
    lc = loop_config(a)
    tc = CodecTaskConfig(preset=a.preset, frames=a.frames, pool=a.pool, tonal_pool=a.tonal_pool, val_clips=a.val_clips,
                         adv=a.adv, init=a.init, seed=a.seed, weights=LossWeights(power_tilt=a.power_tilt))
    return lc, tc


def run_from_args(a: argparse.Namespace) -> Path:
    lc, tc = configs_from_args(a)
    return run_codec(lc, tc, a.out, a.resume, a.device)


def main(argv: list[str] | None = None) -> None:
    from foley.train import script_main

    script_main("python -m foley.train.codec", __doc__, add_arguments, run_from_args, argv)


if __name__ == "__main__":
    main()
