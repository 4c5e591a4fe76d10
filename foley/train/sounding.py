"""`foley train sounding`: the sounding-object detector's task on the shared loop (foley.train.loop).

    foley train sounding --out runs/sounding          # CPU; --resume after a stop

Data: clips of the Procedural Foley world made from (seed, split, index), their frames at the detector's size
(made at a whole multiple of it and box-averaged, as the latent caches are) and, per frame, the x of the object
whose sound dominates by 10 dB (`foley.data.latents.sounding_x`, from the exact stems), computed once and cached in
the run folder (`pool-*.pt`). The batch of step s is a pure function of (seed, s, rank): random clips, a random
window of `crop` frames, mirrored left-right half the time (the frames and x together).
"""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foley.files import atomic_output
from foley.metrics import position_bin
from foley.models.sounding import FORMAT, SoundingBatch, SoundingConfig, SoundingDetector, save_sounding
from foley.train.loop import (LoopConfig, NoAux, TrainError, add_loop_arguments, export_ema, loop_config, resume_configs,
                              train, with_steps)


@dataclass(frozen=True)
class SoundingTaskConfig:
    """What decides a detector run besides the loop; saved in every run checkpoint."""

    clips: int = 3000  # train clips in the pool
    val_clips: int = 100
    seconds: float = 4.0
    crop: int = 48  # frames per training window
    warp: float = 0.0  # half the windows get a camera move: zoom in by up to 1 + warp, drifting, linear in time
    workers: int = 2  # processes making the pool
    seed: int = 0

    def __post_init__(self) -> None:
        if self.clips < 2 or self.val_clips < 2 or self.crop < 8 or self.seconds < 1:
            raise TrainError("clips and val-clips must be >= 2, crop >= 8 frames, seconds >= 1")


# ---------------------------------------------------------------------- data

@dataclass
class Pool:
    """Clips in memory: frames (P, T, 3, S, S) uint8; per frame the dominant object's x (P, T) (NaN: none), the
    largest object's x (P, T) (a baseline) and the number of objects per clip (P,)."""

    frames: torch.Tensor
    x: torch.Tensor
    largest_x: torch.Tensor
    objects: torch.Tensor


def _clip(args: tuple[int, str, int, float, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(frames (T, 3, S, S) uint8, dominant x (T,), largest object's x (T,), objects) of one world clip."""
    from foley.data.latents import source_size, sounding_x
    from foley.models.video import resize_frames
    from foley.world import PRESETS as WORLD, render, sample_scene, synthesize

    torch.set_num_threads(1)
    seed, split, index, seconds, size = args
    side = source_size(size)
    cfg = replace(WORLD["tiny"], seconds=seconds, width=side, height=side)
    scene = sample_scene(cfg, seed, split, index)
    r = render(scene)
    sound = synthesize(scene, r)
    fr = resize_frames(torch.from_numpy(r.frames).permute(0, 3, 1, 2)[None], size)[0].numpy()
    mass = np.stack([np.nan_to_num(t.mass) for t in r.tracks])  # (O, T)
    xs = np.stack([t.x for t in r.tracks])
    largest = xs[mass.argmax(0), np.arange(mass.shape[1])]
    return fr, sounding_x(sound, r.tracks, cfg.sr).astype(np.float32), largest.astype(np.float32), len(r.tracks)


def make_pool(n: int, split: str, seed: int, seconds: float, size: int, workers: int = 1,
              progress: bool = True) -> Pool:
    """Clips 0..n-1 of (seed, split) at size x size."""
    from tqdm import tqdm

    from foley.interrupts import fork_pool
    from foley.world import PRESETS as WORLD

    t = WORLD["tiny"].seq.frames(seconds)
    frames = np.empty((n, t, 3, size, size), np.uint8)  # filled in place: small arrays among large freed ones
    x, largest, objects = np.empty((n, t), np.float32), np.empty((n, t), np.float32), np.empty(n, np.int64)
    jobs = [(seed, split, i, seconds, size) for i in range(n)]
    bar = tqdm(total=n, desc=f"sounding pool {split}", disable=not progress)
    if workers > 1:
        with fork_pool(workers) as ex:
            for i, row in enumerate(ex.imap(_clip, jobs, chunksize=8)):
                frames[i], x[i], largest[i], objects[i] = row
                bar.update(1)
    else:
        for i, job in enumerate(jobs):
            frames[i], x[i], largest[i], objects[i] = _clip(job)
            bar.update(1)
    bar.close()
    return Pool(*(torch.from_numpy(a) for a in (frames, x, largest, objects)))


def cached_pool(folder: Path, n: int, split: str, seed: int, seconds: float, size: int, workers: int) -> Pool:
    """make_pool, cached as folder/pool-<split>-<n>-<seed>-<seconds>-<size>.pt (written atomically)."""
    path = folder / f"pool-{split}-{n}-{seed}-{seconds:g}-{size}.pt"
    if path.is_file():
        try:
            return Pool(**torch.load(path, weights_only=True))
        except Exception:  # a damaged cache is remade
            pass
    pool = make_pool(n, split, seed, seconds, size, workers)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        torch.save(asdict(pool), tmp)
    return pool


def camera_move(frames: torch.Tensor, x: torch.Tensor, zoom: np.ndarray, shift: np.ndarray
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """A window (T, 3, S, S) uint8 and its x (T,) as a camera would see them zoomed in by zoom (2,) >= 1 and moved by
    shift (2, 2) (x, y in frame units), each going linearly from its first to its last value over the window: the
    picture is magnified about its centre and shifted, and x with it (x' = zoom * x + shift_x). |shift| <= zoom - 1
    keeps the picture inside the frame."""
    t = frames.shape[0]
    u = torch.linspace(0, 1, t, dtype=torch.float32)[:, None]
    z = torch.from_numpy(zoom).float()
    z = z[0] + (z[1] - z[0]) * u  # (T, 1)
    sh = torch.from_numpy(shift).float()
    sh = sh[0] + (sh[1] - sh[0]) * u  # (T, 2)
    theta = torch.zeros(t, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / z[:, 0]
    theta[:, :, 2] = -sh / z
    grid = torch.nn.functional.affine_grid(theta, list(frames.shape), align_corners=False)
    out = torch.nn.functional.grid_sample(frames.float(), grid, mode="bilinear", padding_mode="border",
                                          align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8), x * z[:, 0] + sh[:, 0]


def batch_at(pool: Pool, step: int, rank: int, n: int, crop: int, seed: int, warp: float = 0.0) -> SoundingBatch:
    """Batch of `step` on `rank`: n random clips, a random window of `crop` frames each, half mirrored, and with
    `warp` > 0 half given a camera move (`camera_move`)."""
    rng = np.random.default_rng([seed, step, rank, 11])
    idx = rng.choice(len(pool.frames), size=n, replace=n > len(pool.frames))
    t = pool.frames.shape[1]
    starts = rng.integers(0, max(1, t - crop + 1), size=n)
    flip = rng.random(n) < 0.5
    frames, xs = [], []
    moved = rng.random(n) < (0.5 if warp > 0 else 0.0)
    zoom = 1 + warp * rng.random((n, 2))
    shift = (zoom - 1)[..., None] * rng.uniform(-1, 1, (n, 2, 2))
    for i, s, f, m, zm, sh in zip(idx, starts, flip, moved, zoom, shift):
        fr, x = pool.frames[i, s:s + crop], pool.x[i, s:s + crop]
        fr, x = (fr.flip(-1), -x) if f else (fr, x)
        if m:
            fr, x = camera_move(fr, x, zm, sh)
        frames.append(fr)
        xs.append(x)
    return SoundingBatch(torch.stack(frames), torch.stack(xs))


# ---------------------------------------------------------------------- measures

def measure(model: SoundingDetector, pool: Pool, batch: int = 8) -> dict[str, float]:
    """Over the frames where one object dominates: the share whose position bin (BAS's left / centre / right) the
    detector names, on all clips and on clips with several objects; the largest object's share (a baseline); and
    how often the detector says "none" where an object does dominate, and "an object" where none does."""
    loc = [model.locate(pool.frames[i:i + batch]) for i in range(0, len(pool.frames), batch)]
    x = torch.cat([l.x for l in loc]).numpy()
    heard = torch.cat([l.heard for l in loc]).numpy()
    truth = pool.x.numpy()
    judged = ~np.isnan(truth)
    several = judged & (pool.objects.numpy() >= 2)[:, None]
    right = position_bin(x) == position_bin(np.nan_to_num(truth))
    base = position_bin(pool.largest_x.numpy()) == position_bin(np.nan_to_num(truth))
    share = lambda hit, sel: float(hit[sel].mean()) if sel.any() else math.nan  # noqa: E731
    return {"acc": share(right, judged), "acc_several": share(right, several),
            "largest": share(base, judged), "largest_several": share(base, several),
            "said_none": float((heard < 0.5)[judged].mean()), "said_heard_none": float((heard >= 0.5)[~judged].mean())}


# ---------------------------------------------------------------------- task

class SoundingTask(NoAux):
    """The sounding-object detector on the shared loop."""

    name, fmt = "sounding", FORMAT
    csv_fields = ("total", "ce", "offset", "val_acc", "val_acc_several", "val_largest", "val_largest_several",
                  "val_said_none", "val_said_heard_none")

    def __init__(self, tc: SoundingTaskConfig, cfg: SoundingConfig | None = None, pool: Pool | None = None,
                 val: Pool | None = None, folder: Path | None = None) -> None:
        self.tc, self.cfg, self.folder = tc, cfg or SoundingConfig(), folder or Path("runs/sounding")
        self.pool, self.val = pool, val

    def config(self) -> SoundingTaskConfig:
        return self.tc

    def model_config(self) -> SoundingConfig:
        return self.cfg

    def build(self, device: torch.device) -> SoundingDetector:
        return SoundingDetector(self.cfg).to(device)

    def prepare(self, device: torch.device, rank: int) -> None:
        tc = self.tc
        if self.pool is None:
            self.pool = cached_pool(self.folder, tc.clips, "train", tc.seed, tc.seconds, self.cfg.size, tc.workers)
        if self.val is None:
            self.val = cached_pool(self.folder, tc.val_clips, "val", tc.seed, tc.seconds, self.cfg.size, tc.workers)

    def batch(self, step: int, rank: int, n: int, device: torch.device) -> SoundingBatch:
        b = batch_at(self.pool, step, rank, n, self.tc.crop, self.tc.seed, self.tc.warp)
        return SoundingBatch(b.frames.to(device), b.x.to(device))

    def loss(self, model: Any, raw: SoundingDetector, batch: SoundingBatch, step: int) -> tuple[dict, None]:
        model.train()
        return raw.loss_of(*model(batch.frames), batch.x), None  # through the DDP wrapper: gradients are reduced

    def validate(self, ema: SoundingDetector, step: int, out: Path) -> dict:
        return {f"val_{k}": v for k, v in measure(ema, self.val).items()}

    def export(self, ema: SoundingDetector, path: Path, **meta: Any) -> None:
        save_sounding(path, ema, **meta)


def run_sounding(lc: LoopConfig, tc: SoundingTaskConfig, out: str | Path, resume: bool = False,
                 device: str | None = None, cfg: SoundingConfig | None = None) -> Path:
    """Train (or resume) the detector into `out`; returns out/sounding.pt. On resume every config comes from
    out/last.pt."""
    if resume and (Path(out) / "last.pt").exists():
        lc_d, tc_d, cfg_d = resume_configs(out, FORMAT)
        lc, tc, cfg = with_steps(lc_d, lc.steps), SoundingTaskConfig(**tc_d), SoundingConfig.from_dict(cfg_d)
    return train(SoundingTask(tc, cfg, folder=Path(out)), lc, out, resume=resume, device=device)


def export_run(run_checkpoint: str | Path, path: str | Path) -> SoundingDetector:
    """The EMA model of a run checkpoint (e.g. out/last.pt of a stopped run) as a small shippable file."""
    build = lambda c: SoundingDetector(SoundingConfig.from_dict(c))  # noqa: E731
    return export_ema(run_checkpoint, path, FORMAT, "sounding", build, save_sounding)


# ---------------------------------------------------------------------- command line

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/sounding", help="run folder: last.pt, sounding.pt, log.csv, pool caches")
    add_loop_arguments(p, steps=3000, batch=8, lr=1e-3, val_every=250)
    p.add_argument("--clips", type=int, default=SoundingTaskConfig.clips, help="train clips in the pool")
    p.add_argument("--val-clips", type=int, default=SoundingTaskConfig.val_clips)
    p.add_argument("--crop", type=int, default=SoundingTaskConfig.crop, help="frames per training window")
    p.add_argument("--warp", type=float, default=SoundingTaskConfig.warp,
                   help="camera moves on half the windows: zoom in by up to 1 + WARP, drifting (0: none)")
    p.add_argument("--size", type=int, default=SoundingConfig.size, help="frame side the detector reads")
    p.add_argument("--channels", default=",".join(map(str, SoundingConfig.channels)),
                   help="CNN widths, one stride-2 convolution each (the grid is size / 2**count)")
    p.add_argument("--hidden", type=int, default=SoundingConfig.hidden, help="width of the per-cell temporal convolutions")
    p.add_argument("--workers", type=int, default=SoundingTaskConfig.workers, help="processes making the pool")


def run_from_args(a: argparse.Namespace) -> Path:
    lc = loop_config(a, warmup=100, weight_decay=0.05)
    tc = SoundingTaskConfig(clips=a.clips, val_clips=a.val_clips, crop=a.crop, warp=a.warp, workers=a.workers,
                            seed=a.seed)
    try:
        channels = tuple(int(c) for c in a.channels.split(","))
    except ValueError:
        raise TrainError(f"--channels must be whole numbers separated by commas, got {a.channels!r}") from None
    if not channels or min(channels) < 8 or any(c % 8 for c in channels) or a.size % 2 ** len(channels) \
            or a.size < 2 ** len(channels):
        raise TrainError(f"--channels must be multiples of 8 and halve --size {a.size} evenly, got {a.channels!r}")
    if a.hidden < 1 or not (math.isfinite(a.warp) and a.warp >= 0):
        raise TrainError(f"--hidden must be >= 1 and --warp a number >= 0, got {a.hidden} and {a.warp}")
    return run_sounding(lc, tc, a.out, a.resume, a.device, SoundingConfig(a.size, channels, a.hidden))


def main(argv: list[str] | None = None) -> None:
    from foley.train import script_main

    script_main("python -m foley.train.sounding", __doc__, add_arguments, run_from_args, argv)


if __name__ == "__main__":
    main()
