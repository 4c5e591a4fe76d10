"""`foley train reactor`: SoundReactor on the shared loop (foley.train.loop): diffusion pre-training, then ECT.

    foley train reactor --out runs/reactor                                              # diffusion pre-training
    foley train reactor --stage ect --init runs/reactor/reactor.pt --out runs/reactor-ect   # consistency tuning
    foley train reactor --videos my_clips/ --out runs/reactor-mine                        # a user's own videos

Data: the latent cache the DiT uses (foley.data.latents; world clips of the objaware mix through the frozen
causal codec, or the user's videos). Each step: random clips, a random window of `crop` frames (so a
sequence may start mid-scene, as a sliding window does), teacher forcing: the transformer sees the true
latents x_1..x_{k-1} and frames 1..k, and the head learns x_k under `repeat` noise draws. Video is dropped
(the null token) with p = 0.1 for CFG. ECT (`--stage ect`) starts from a pre-trained checkpoint with head
dropout 0.2 and shrinks the consistency gap in `ect_stages` equal parts of the run. Validation generates
held-out clips frame by frame (exactly as a stream does), decodes them and scores onsets against the true
events and pan against the true tracks, beside the loss.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from foley import checkpoint
from foley.data.latents import Cache, ensure_cache
from foley.models.codec import codec_hash
from foley.models.head import ect_stage
from foley.models.reactor import FORMAT, PRESETS, Objective, ReactorConfig, ReactorNet, save_reactor
from foley.train.loop import LoopConfig, NoAux, TrainError, add_loop_arguments, loop_config, resume_configs, train, with_steps
from foley.train.validation import Scorer

Stage = Literal["pretrain", "ect"]


@dataclass(frozen=True)
class ReactorTaskConfig:
    """What decides a reactor run besides the loop; saved in every run checkpoint."""

    preset: str = "tiny"
    stage: Stage = "pretrain"
    mix: str = "objaware"
    clips: int = 1500
    val_clips: int = 48
    videos: str = ""
    crop: int = 64  # frames per training sequence (2 tokens each: the attention window)
    p_drop: float = 0.1
    repeat: int = 4  # noise draws per latent frame
    ect_steps: int = 0  # the ECT schedule's length (the run's steps)
    ect_stages: int = 4
    ect_dropout: float = 0.2
    val_samples: int = 8
    val_cfg: float = 2.0
    init: str = ""
    dinov2: str = ""  # local DINOv2 weights: video tokens from its frozen grid features (frames at 224 px)
    dino_preset: str = "vits14"
    cache_dir: str = "runs/dit"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise TrainError(f"unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        if self.stage not in ("pretrain", "ect"):
            raise TrainError(f"stage must be pretrain or ect, got {self.stage!r}")
        if self.stage == "ect" and not self.init:
            raise TrainError("--stage ect tunes a pre-trained model: pass --init runs/<pretrain>/reactor.pt")
        if self.mix not in ("objaware", "dataset"):
            raise TrainError(f"mix must be objaware or dataset, got {self.mix!r}")
        if self.clips < 2 or self.val_clips < 1 or self.crop < 2 or self.repeat < 1 or self.ect_stages < 1:
            raise TrainError("clips >= 2, val-clips >= 1, crop >= 2, repeat >= 1, ect-stages >= 1")

    @property
    def val_mode(self) -> tuple[str, int]:
        """(sampler mode, NFE) used in validation: 16 Euler steps before ECT, 4 consistency steps after."""
        return ("consistency", 4) if self.stage == "ect" else ("diffusion", 16)


@dataclass
class ReactorBatch:
    frames: torch.Tensor  # (B, T, 3, S, S) uint8
    prev: torch.Tensor  # (B, 3, S, S) the frame before the window (the first itself at a clip's start)
    latents: torch.Tensor  # (B, C, T)
    drop: torch.Tensor  # (B,) bool
    generator: torch.Generator


class ReactorTask(NoAux):
    """SoundReactor on the shared loop."""

    name, fmt = "reactor", FORMAT
    csv_fields = ("total", "val_loss", "val_onset_f1", "val_pan_agree", "val_onset_f1_ref", "val_pan_agree_ref")

    def __init__(self, tc: ReactorTaskConfig, cfg: ReactorConfig | None = None) -> None:
        from foley.models.codec import load_codec

        self.tc = tc
        self.codec = load_codec().eval()
        if not self.codec.cfg.causal:
            raise TrainError("the reactor streams: it needs a causal codec")
        self.init_ckpt = checkpoint.load(tc.init, (FORMAT,), "reactor", "pass a reactor.pt") if tc.init else None
        if cfg is None and self.init_ckpt is not None:
            d = dict(self.init_ckpt["config"])
            d.pop("latent_channels")
            cfg = ReactorConfig(**d)
        cfg = cfg or PRESETS[tc.preset]
        self.dino = None
        if tc.dinov2 and self.init_ckpt is None:
            from foley.models.ext_dinov2 import PRESETS as DINO, load_dinov2

            if tc.dino_preset not in DINO:
                raise TrainError(f"unknown DINOv2 preset {tc.dino_preset!r}; choose one of {sorted(DINO)}")
            self.dino = load_dinov2(tc.dinov2, tc.dino_preset)
            if self.dino.cfg != DINO[tc.dino_preset]:
                raise TrainError(f"{tc.dinov2} is not a {tc.dino_preset} DINOv2 (its sizes: {self.dino.cfg}); "
                                 f"pass --dino-preset")
            cfg = replace(cfg, video_backbone="dinov2", dino_preset=tc.dino_preset,
                          frame_size=cfg.frame_size if cfg.frame_size % 14 == 0 else 224)
        self.cfg = replace(cfg, head_dropout=tc.ect_dropout) if tc.stage == "ect" else cfg
        self.train_cache: Cache | None = None
        self.val_cache: Cache | None = None

    def config(self) -> ReactorTaskConfig:
        return self.tc

    def model_config(self) -> ReactorConfig:
        return self.cfg

    def _caches(self) -> None:
        if self.train_cache is None:
            tc = self.tc
            size = self.cfg.frame_size
            self.train_cache = ensure_cache(self.codec, "train", tc.clips, tc.cache_dir, tc.videos, tc.seed, size)
            self.val_cache = ensure_cache(self.codec, "val", tc.val_clips, tc.cache_dir, tc.videos, tc.seed, size)

    def build(self, device: torch.device) -> ReactorNet:
        model = ReactorNet(self.cfg, self.codec.cfg.channels)
        if self.init_ckpt is not None:
            model.load_state_dict({k: v.float() if v.is_floating_point() else v
                                   for k, v in self.init_ckpt["model"].items()})
            print(f"warm start from {self.tc.init}")
        else:
            if self.dino is not None:
                model.video.backbone.load_state_dict(self.dino.state_dict())
            self._caches()
            model.set_stats(self.train_cache.latents[self.tc.mix])  # normalisation: in the model before the EMA copy
        return model.to(device)

    def prepare(self, device: torch.device, rank: int) -> None:
        self.device = device
        self._caches()
        self.scorer = Scorer(self.codec, self.val_cache)

    def batch(self, step: int, rank: int, n: int, device: torch.device) -> ReactorBatch:
        c = self.train_cache
        rng = np.random.default_rng([self.tc.seed, step, rank, 13])
        idx = rng.choice(len(c), size=n, replace=len(c) < n)
        t = c.frames.shape[1]
        crop = min(self.tc.crop, t)
        starts = rng.integers(0, t - crop + 1, size=n)
        frames = torch.stack([c.frames[i, s:s + crop] for i, s in zip(idx, starts)])
        prev = torch.stack([c.frames[i, max(s - 1, 0)] for i, s in zip(idx, starts)])
        lat = torch.stack([c.latents[self.tc.mix][i, :, s:s + crop] for i, s in zip(idx, starts)]).float()
        gen = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
        drop = torch.from_numpy(rng.random(n) < self.tc.p_drop)
        return ReactorBatch(frames.to(device), prev.to(device), lat.to(device), drop.to(device), gen)

    def loss(self, model: Any, raw: ReactorNet, b: ReactorBatch, step: int) -> tuple[dict, None]:
        model.train()
        stage = ect_stage(step, self.tc.ect_steps, self.tc.ect_stages) if self.tc.stage == "ect" else None
        total = model(b.frames, b.latents, b.drop, b.prev, objective=Objective(b.generator, stage, self.tc.repeat))
        return {"total": total}, None

    @torch.no_grad()
    def validate(self, ema: ReactorNet, step: int, out: Path) -> dict:
        c = self.val_cache
        n = min(self.tc.val_samples, len(c))
        dev = next(ema.parameters()).device
        frames, lat = c.frames[:n].to(dev), c.latents[self.tc.mix][:n].float().to(dev)
        loss = ema(frames, lat, objective=Objective(torch.Generator().manual_seed(self.tc.seed)))
        mode, nfe = self.tc.val_mode
        z = ema.generate(frames, nfe, mode, self.tc.val_cfg, seed=self.tc.seed).cpu()
        return {"val_loss": float(loss), **self.scorer(z, lat)}

    def export(self, ema: ReactorNet, path: Path, **meta: Any) -> None:
        save_reactor(path, ema, codec_hash(self.codec), stage=self.tc.stage, **meta)


def ship(run_export: str | Path, path: str | Path) -> None:
    """A run's reactor.pt as a shippable file: float16 weights (dropout off), its codec hash and metadata."""
    from foley.models.reactor import load_reactor

    model, ckpt = load_reactor(run_export)
    model.cfg = replace(model.cfg, head_dropout=0.0)
    meta = {k: ckpt[k] for k in ("stage", "step", "train_config") if k in ckpt}
    save_reactor(path, model, ckpt["codec_hash"], half=True, **meta)


def run_reactor(lc: LoopConfig, tc: ReactorTaskConfig, out: str | Path, resume: bool = False,
                device: str | None = None) -> Path:
    """Train (or resume) a reactor into `out`; returns out/reactor.pt."""
    cfg = None
    if resume and (Path(out) / "last.pt").exists():
        lc_d, tc_d, cfg_d = resume_configs(out, FORMAT)
        lc, cfg = with_steps(lc_d, lc.steps), ReactorConfig(**cfg_d)
        tc = replace(ReactorTaskConfig(**tc_d), ect_steps=lc.steps)
    tc = replace(tc, ect_steps=lc.steps)
    task = ReactorTask(replace(tc, init="") if cfg is not None and tc.stage != "ect" else tc, cfg)
    return train(task, lc, out, resume=resume, device=device)


# ---------------------------------------------------------------------- command line

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stage", default="pretrain", choices=("pretrain", "ect"),
                   help="pretrain: diffusion head; ect: consistency tuning from --init")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--out", default="runs/reactor", help="run folder: last.pt, reactor.pt, log.csv")
    p.add_argument("--init", default="", help="start from a reactor checkpoint (required for --stage ect)")
    p.add_argument("--mix", default="objaware", choices=("objaware", "dataset"))
    p.add_argument("--videos", default="", help="train on a folder or CSV of your own videos with audio")
    p.add_argument("--dinov2", default="", help="local DINOv2 weights (e.g. dinov2_vits14_pretrain.pth): video tokens "
                   "from its frozen grid features at 224 px instead of the built-in CNN")
    p.add_argument("--dino-preset", default="vits14", help="which DINOv2 the --dinov2 weights are (vits14, vitb14, ...)")
    p.add_argument("--clips", type=int, default=ReactorTaskConfig.clips, help="world train clips in the cache")
    p.add_argument("--val-clips", type=int, default=ReactorTaskConfig.val_clips)
    p.add_argument("--crop", type=int, default=ReactorTaskConfig.crop, help="frames per training sequence")
    p.add_argument("--cache-dir", default=ReactorTaskConfig.cache_dir, help="where latent caches are kept")
    add_loop_arguments(p, steps=3000, batch=16, lr=None, val_every=500, lr_help="default 3e-4 (pretrain), 1e-4 (ect)")


def run_from_args(a: argparse.Namespace) -> Path:
    lr = a.lr if a.lr is not None else (1e-4 if a.stage == "ect" else 3e-4)
    lc = loop_config(a, lr=lr, warmup=200 if a.stage == "pretrain" else 20, weight_decay=0.01, ema=0.999)
    tc = ReactorTaskConfig(preset=a.preset, stage=a.stage, mix=a.mix, clips=a.clips, val_clips=a.val_clips,
                           videos=a.videos, crop=a.crop, init=a.init, dinov2=a.dinov2, dino_preset=a.dino_preset,
                           cache_dir=a.cache_dir, seed=a.seed)
    return run_reactor(lc, tc, a.out, a.resume, a.device)


def main(argv: list[str] | None = None) -> None:
    from foley.train import script_main

    script_main("python -m foley.train.reactor", __doc__, add_arguments, run_from_args, argv)


if __name__ == "__main__":
    main()
