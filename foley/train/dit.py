"""`foley train dit`: the StereoFoley DiT's task on the shared loop (foley.train.loop).

    foley train dit --stage base --out runs/dit-base                                 # on the dataset mix
    foley train dit --stage obj --init runs/dit-base/dit.pt --out runs/dit-obj      # fine-tune on objaware
    foley train dit --videos my_clips/ --out runs/dit-mine                           # a user's own videos

Data: a latent cache (foley.data.latents) built once with the frozen default codec: world clips generated
from (seed, split, index), or the user's videos. Each step: random clips, a random time t, the v-objective
(foley.diffusion); conditioning alternates the caption's and the mix's joint embeddings (p = 0.5), the
embedding alone is dropped with p = 0.1 and video + embedding together with p = 0.1 (for CFG). Validation
samples held-out clips (DDIM, CFG), decodes them and scores onsets against the true events and pan
against the true tracks, beside the v-loss.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from foley import checkpoint
from foley.data.latents import Cache, ensure_cache
from foley.train.validation import Scorer
from foley.diffusion import SAMPLERS, cfg as guided, v_loss
from foley.models.codec import codec_hash
from foley.models.dit import FORMAT, PRESETS, DiT, DiTConfig, checkpoint_path, save_dit
from foley.train.loop import (LoopConfig, NoAux, TrainError, add_loop_arguments, export_ema, loop_config, resume_configs,
                              train, with_steps)

Stage = Literal["base", "obj"]
MIX = {"base": "dataset", "obj": "objaware"}


@dataclass(frozen=True)
class DitTaskConfig:
    """What decides a DiT run besides the loop; saved in every run checkpoint."""

    preset: str = "tiny"
    stage: Stage = "base"
    clips: int = 1500  # world train clips in the cache
    val_clips: int = 48
    videos: str = ""  # a folder or CSV of the user's videos instead of the world
    p_text: float = 0.5
    p_drop_cond: float = 0.1
    p_drop_all: float = 0.1
    val_samples: int = 8
    val_steps: int = 25
    val_cfg: float = 3.0
    init: str = ""  # warm start (obj from base): a dit.pt, or base | obj for the shipped ones
    clap: str = ""  # joint embedding checkpoint (default: the shipped one)
    cache_dir: str = "runs/dit"
    seed: int = 0
    workers: int = 0  # processes that build a world cache (0: one per core); the cache is the same either way
    detail: int = 1  # frames at frame_size x detail, the finer picture through a second CNN (foley.models.video)
    pan_weight: float = 1.0  # weight of the latent's pan channels in the v-loss against 1 (normalised to mean 1)
    cache_size: int = 0  # frames cached at this size (0: the model's), area-averaged to the model's on loading
    sounding_weight: float = 0.0  # > 0: a head on the frame features learns where the sounding object is (world only)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise TrainError(f"unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        if self.stage not in MIX:
            raise TrainError(f"stage must be base or obj, got {self.stage!r}")
        if self.clips < 2 or self.val_clips < 1 or not 0 <= self.p_text <= 1:
            raise TrainError("clips must be >= 2, val-clips >= 1, p-text in [0, 1]")
        if self.detail < 1 or self.detail & (self.detail - 1) or not self.pan_weight > 0:
            raise TrainError(f"detail must be a power of two and pan-weight > 0, got {self.detail}, {self.pan_weight}")
        if self.sounding_weight < 0 or (self.sounding_weight and self.videos):
            raise TrainError("sounding-weight must be >= 0, and needs the world's ground truth (not --videos)")

    @property
    def mix(self) -> str:
        return MIX[self.stage]


@torch.no_grad()
def embeddings(cache: Cache, clap) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """(text, audio) joint embeddings (P, D) of a cache's captions and mixes."""
    text = torch.cat([clap.embed_text(cache.captions[a:a + 64]) for a in range(0, len(cache), 64)])
    audio = torch.cat([clap.joint(clap.audio(cache.mel[a:a + 64].float()))
                       for a in range(0, len(cache), 64)])
    return text, audio


@dataclass
class DitBatch:
    x0: torch.Tensor  # (B, C, T)
    frames: torch.Tensor  # (B, T, 3, S, S) uint8
    cond: torch.Tensor  # (B, D)
    drop: torch.Tensor  # (B,) bool
    cond_drop: torch.Tensor  # (B,) bool
    t: torch.Tensor  # (B,)
    generator: torch.Generator
    sounding: torch.Tensor | None = None  # (B, K) the sounding object's bin class per frame, -1 where none dominates


class DitTask(NoAux):
    """The DiT on the shared loop."""

    name, fmt = "dit", FORMAT
    csv_fields = ("total", "val_loss", "val_onset_f1", "val_pan_agree", "val_onset_f1_ref", "val_pan_agree_ref")
    sounding_fields = ("v", "sounding", "val_sounding_acc", "val_sounding_base")

    def __init__(self, tc: DitTaskConfig, cfg: DiTConfig | None = None) -> None:
        from foley.models.clap import load_clap
        from foley.models.codec import load_codec

        self.tc, self.cfg = tc, cfg or replace(PRESETS[tc.preset], detail=tc.detail, sounding=tc.sounding_weight > 0)
        if self.cfg.detail != tc.detail:
            raise TrainError(f"the DiT's detail is {self.cfg.detail} but the run asks for {tc.detail}")
        if self.cfg.sounding != (tc.sounding_weight > 0):
            raise TrainError("a run with --sounding-weight needs a DiT with a sounding head, and one without none")
        if self.cfg.sounding:
            self.csv_fields = self.csv_fields + self.sounding_fields
        self.codec = load_codec().eval()
        cs, nb = self.codec.cfg.spectral_channels, self.codec.cfg.stereo_bands
        self.weight = torch.ones(self.codec.cfg.channels)
        self.weight[cs + nb:cs + 2 * nb] = tc.pan_weight  # the pan channels (Codec.measure: energy, pan, coherence)
        self.clap = load_clap(tc.clap or None)
        self.train_cache: Cache | None = None
        self.val_cache: Cache | None = None
        self.device: torch.device | None = None  # where `prepare` put the training pool

    def config(self) -> DitTaskConfig:
        return self.tc

    def model_config(self) -> DiTConfig:
        return self.cfg

    def build(self, device: torch.device) -> DiT:
        if self.cfg.sounding and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            raise TrainError("--sounding-weight trains in one process (its frame features are shared outside DDP)")
        model = DiT(self.cfg, self.codec.cfg.channels).to(device)
        if self.tc.init:
            ckpt = checkpoint.load(checkpoint_path(self.tc.init), (FORMAT,), "DiT", "pass a dit.pt to fine-tune")
            try:
                missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
            except RuntimeError:  # a tensor of another size
                missing, unexpected = [], ["(tensors of other sizes)"]
            # detail added: its branch starts at zero; a sounding head is trained from scratch beside the DiT
            grown = [k for k in missing if not k.startswith(("video.fine", "sounding_head."))]
            unexpected = [k for k in unexpected if not k.startswith("sounding_head.")]  # training-only: may be left
            if grown or unexpected:
                raise TrainError(f"{self.tc.init} does not fit this DiT (missing {grown[:3]}, unexpected "
                                 f"{unexpected[:3]}); warm starts need the same preset, and --detail can grow a "
                                 f"model's branch but not drop it")
            new = [n for p, n in (("video.fine", "detail branch"), ("sounding_head.", "sounding head"))
                   if any(k.startswith(p) for k in missing)]
            print(f"warm start from {self.tc.init}" + (f" (new: {', '.join(new)})" if new else ""))
        return model

    def prepare(self, device: torch.device, rank: int) -> None:
        if self.device == device:
            return  # prepared already (a task object reused for several runs)
        self.device = device
        if self.train_cache is None:
            workers = self.tc.workers or os.cpu_count() or 1
            size = self.tc.cache_size or self.cfg.read_size
            if size < self.cfg.read_size or size % self.cfg.read_size:
                raise TrainError(f"cache-size {size} must be a multiple of the model's {self.cfg.read_size} pixels")
            self.train_cache, self.val_cache = (
                resized(ensure_cache(self.codec, split, n, self.tc.cache_dir, self.tc.videos, self.tc.seed, size=size,
                                     workers=workers), self.cfg.read_size)
                for split, n in (("train", self.tc.clips), ("val", self.tc.val_clips)))
        if self.cfg.sounding and not all(c.sounding_x and all(len(s) for s in c.sounding_x)
                                         for c in (self.train_cache, self.val_cache)):
            raise TrainError(f"the latent caches in {self.tc.cache_dir} have no sounding ground truth (made before it "
                             f"was recorded): delete them to rebuild")
        self.scorer = Scorer(self.codec, self.val_cache)
        self.text, self.audio = embeddings(self.train_cache, self.clap)
        self.val_text, _ = embeddings(self.val_cache, self.clap)
        # what every batch draws from, on the training device once (a GPU holds thousands of clips easily)
        self.weight = self.weight.to(device)
        self.pool = {"x0": self.train_cache.latents[self.tc.mix].to(device), "frames": self.train_cache.frames.to(device),
                     "text": self.text.to(device), "audio": self.audio.to(device)}
        if self.cfg.sounding:
            self.pool["sounding"] = sounding_classes(self.train_cache).to(device)

    def batch(self, step: int, rank: int, n: int, device: torch.device) -> DitBatch:
        rng = np.random.default_rng([self.tc.seed, step, rank, 11])
        idx = torch.from_numpy(rng.choice(len(self.train_cache), size=n, replace=len(self.train_cache) < n)).to(device)
        use_text = torch.from_numpy(rng.random(n) < self.tc.p_text)[:, None].to(device)
        p = self.pool
        cond = torch.where(use_text, p["text"][idx], p["audio"][idx])
        gen = torch.Generator(device=device).manual_seed(int(rng.integers(2 ** 62)))  # the noise, drawn where it is used
        return DitBatch(p["x0"][idx].float(), p["frames"][idx], cond,
                        torch.from_numpy(rng.random(n) < self.tc.p_drop_all).to(device),
                        torch.from_numpy(rng.random(n) < self.tc.p_drop_cond).to(device),
                        torch.from_numpy(rng.random(n)).float().to(device), gen,
                        p["sounding"][idx] if "sounding" in p else None)

    def loss(self, model: Any, raw: DiT, b: DitBatch, step: int) -> tuple[dict, None]:
        model.train()
        weight = self.weight if self.tc.pan_weight != 1 else None
        if not self.cfg.sounding:
            fn = lambda x, t: model(x, t, b.frames, b.cond, b.drop, b.cond_drop)  # noqa: E731
            return {"total": v_loss(fn, b.x0, b.t, b.generator, weight)}, None
        # the frame features once, for the DiT and the sounding head (single-process: the encoder runs outside DDP)
        video = raw.video(b.frames[:, :b.x0.shape[-1]])
        fn = lambda x, t: model(x, t, None, b.cond, b.drop, b.cond_drop, video=video)  # noqa: E731
        v = v_loss(fn, b.x0, b.t, b.generator, weight)
        s = sounding_loss(raw.sounding_head(video), b.sounding[:, :video.shape[1]])
        return {"total": v + self.tc.sounding_weight * s, "v": v.detach(), "sounding": s.detach()}, None

    @torch.no_grad()
    def validate(self, ema: DiT, step: int, out: Path) -> dict:
        c, dev = self.val_cache, self.device
        n = min(self.tc.val_samples, len(c))
        x0 = c.latents[self.tc.mix][:n].float().to(dev)
        frames, text = c.frames[:n].to(dev), self.val_text[:n].to(dev)
        gen = torch.Generator().manual_seed(self.tc.seed)
        t = torch.linspace(0.1, 0.9, n, device=dev)
        no = torch.zeros(n, dtype=torch.bool, device=dev)
        loss = v_loss(lambda x, tt: ema(x, tt, frames, text, no), x0, t, gen)
        video = ema.video(frames)  # the frames' features, once for every step (they depend on the frames alone)
        fn = guided(lambda x, tt, drop: ema(x, tt, None, torch.cat([text] * (len(x) // n)), drop,
                                            video=torch.cat([video] * (len(x) // n))), self.tc.val_cfg)
        z = SAMPLERS["ddim"](fn, torch.randn(x0.shape, generator=gen).to(dev), self.tc.val_steps)
        out = {"val_loss": float(loss), **self.scorer(z.float().cpu(), x0.cpu())}
        if self.cfg.sounding:  # the head on every val clip, against always naming the commonest bin
            target = sounding_classes(c).to(dev)
            pred = torch.cat([ema.sounding_head(ema.video(c.frames[a:a + 32].to(dev))).argmax(-1)
                              for a in range(0, len(c), 32)])
            t = min(pred.shape[1], target.shape[1])
            pred, target = pred[:, :t], target[:, :t]
            judged = target >= 0
            out.update(val_sounding_acc=float((pred == target)[judged].float().mean()),
                       val_sounding_base=float(torch.bincount(target[judged], minlength=3).max() / judged.sum()))
        return out

    def export(self, ema: DiT, path: Path, **meta: Any) -> None:
        save_dit(path, ema, codec_hash(self.codec), stage=self.tc.stage, **meta)


def sounding_classes(cache: Cache) -> torch.Tensor:
    """(P, K) the sounding object's position bin per frame as a class (0 left, 1 centre, 2 right; -1 none)."""
    from foley.models.video import sounding_targets

    return sounding_targets(torch.tensor(cache.sounding_x, dtype=torch.float32))


def sounding_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (B, T, 3) logits over the frames where one object dominates (target >= 0); 0 if none."""
    judged = target >= 0
    if not judged.any():
        return logits.sum() * 0.0
    return torch.nn.functional.cross_entropy(logits[judged].float(), target[judged])


def resized(cache: Cache, size: int) -> Cache:
    """The cache with its frames area-averaged to size x size (a cache of larger frames serves smaller models)."""
    from foley.models.video import resize_frames

    if cache.frames.shape[-1] == size:
        return cache
    frames = torch.cat([resize_frames(cache.frames[a:a + 64], size) for a in range(0, len(cache), 64)])
    return replace(cache, frames=frames)


def ship(run_export: str | Path, path: str | Path) -> None:
    """A run's dit.pt as a shippable file: the same weights in float16 (with its codec hash and metadata)."""
    from foley.models.dit import load_dit

    model, ckpt = load_dit(run_export)
    meta = {k: ckpt[k] for k in ("stage", "step", "train_config") if k in ckpt}
    save_dit(path, model, ckpt["codec_hash"], half=True, **meta)


def export_run(run_checkpoint: str | Path, path: str | Path, half: bool = True) -> DiT:
    """The EMA DiT of a run checkpoint (e.g. out/last.pt of a run cut short) as a shippable file (float16 by
    default), for the default codec, as the task trains on it; returns the model."""
    from foley.models.codec import load_codec

    codec = load_codec()
    stamp = codec_hash(codec)

    def save(out: str | Path, model: DiT, **meta: Any) -> None:
        save_dit(out, model, stamp, half=half, stage=meta["task_config"]["stage"], step=meta["step"],
                 train_config={"loop": meta["loop_config"], "task": meta["task_config"]})

    return export_ema(run_checkpoint, path, FORMAT, "DiT", lambda c: DiT(DiTConfig(**c), codec.cfg.channels),
                      save)


def run_dit(lc: LoopConfig, tc: DitTaskConfig, out: str | Path, resume: bool = False, device: str | None = None) -> Path:
    """Train (or resume) a DiT into `out`; returns out/dit.pt."""
    cfg = None
    if resume and (Path(out) / "last.pt").exists():
        lc_d, tc_d, cfg_d = resume_configs(out, FORMAT)
        lc, tc, cfg = with_steps(lc_d, lc.steps), replace(DitTaskConfig(**tc_d), init=""), DiTConfig(**cfg_d)
    return train(DitTask(tc, cfg), lc, out, resume=resume, device=device)


# ---------------------------------------------------------------------- command line

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stage", default="base", choices=("base", "obj"), help="base: dataset mix; obj: objaware mix")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--out", default="runs/dit-base", help="run folder: last.pt, dit.pt, log.csv")
    p.add_argument("--init", default="", help="warm start from a DiT checkpoint (obj from base), or base | obj: "
                                                "the shipped ones")
    p.add_argument("--videos", default="", help="train on a folder or CSV of your own videos with audio")
    p.add_argument("--clips", type=int, default=DitTaskConfig.clips, help="world train clips in the cache")
    p.add_argument("--val-clips", type=int, default=DitTaskConfig.val_clips, help="world val clips (validation)")
    p.add_argument("--clap", default="", help="joint embedding checkpoint (default: the shipped one)")
    p.add_argument("--cache-dir", default=DitTaskConfig.cache_dir, help="where latent caches are kept")
    p.add_argument("--workers", type=int, default=0, help="processes that build a world cache (0: one per core)")
    p.add_argument("--detail", type=int, default=1,
                   help="read frames at the preset's frame size x DETAIL (32 x DETAIL for tiny), the finer picture "
                        "through a second CNN (1: none)")
    p.add_argument("--pan-weight", type=float, default=1.0, help="weight of the latent's pan channels in the loss")
    p.add_argument("--sounding-weight", type=float, default=0.0,
                   help="> 0: a head on the frame features learns, from the world's ground truth, where the object "
                        "whose sound dominates each frame is, with this weight beside the v-loss")
    p.add_argument("--cache-size", type=int, default=0,
                   help="use a cache of frames at this size (area-averaged to the model's; 0: the model's own)")
    add_loop_arguments(p, steps=4000, batch=16, lr=3e-4, val_every=500)


def run_from_args(a: argparse.Namespace) -> Path:
    lc = loop_config(a, warmup=200, weight_decay=0.01, ema=0.999)
    tc = DitTaskConfig(preset=a.preset, stage=a.stage, clips=a.clips, val_clips=a.val_clips, videos=a.videos, init=a.init,
                       clap=a.clap, cache_dir=a.cache_dir, seed=a.seed, workers=a.workers, detail=a.detail,
                       pan_weight=a.pan_weight, cache_size=a.cache_size, sounding_weight=a.sounding_weight)
    return run_dit(lc, tc, a.out, a.resume, a.device)


def main(argv: list[str] | None = None) -> None:
    from foley.train import script_main

    script_main("python -m foley.train.dit", __doc__, add_arguments, run_from_args, argv)


if __name__ == "__main__":
    main()
