"""`foley train codec`: one explicit training loop for the stereo codec (MISSION part 4).

    python -m foley.codec_train --preset tiny --out runs/codec             # CPU or one GPU
    torchrun --nproc_per_node 8 -m foley.codec_train --preset soundreactor  # DDP
    python -m foley.codec_train --out runs/codec --resume                  # after a crash / SIGKILL

Data: clips of the Procedural Foley world (objaware and dataset mixes), generated in memory from
(seed, split, index); the batch of step s is a pure function of (seed, s, rank), so a resumed run sees
the same data in the same order. Losses: MR-STFT on L, R, mid, side + log power on the synthesis grid
+ KL (+ hinge GAN with --adv). EMA weights; AMP (bf16) on CUDA. `out/last.pt` holds everything to
resume and loads as a codec; `out/log.csv` the curves; `out/figures/` validation plots.
"""
from __future__ import annotations

import argparse
import copy
import csv
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from foley.errors import FoleyError
from foley.models.codec import FORMAT, PRESETS, Codec, CodecConfig, save_codec
from foley.models.codec_dsp import band_matrix
from foley.models.codec_eval import Figures, baseline_mono_pan, figures, plot_validation, validate
from foley.models.codec_loss import (SpectrogramDiscriminator, band_energy_loss, hinge_d, hinge_g, kl, log_power_loss,
                                    stereo_mrstft)


class TrainError(FoleyError):
    """A training request or run folder is invalid."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run besides the codec config; saved (resolved) in every checkpoint."""

    preset: str = "tiny"
    steps: int = 4000
    batch: int = 16  # total over ranks
    frames: int = 16  # latent frames per crop (0.64 s at 25 fps)
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.01
    stft_weight: float = 1.0
    stft_items: int = 4  # batch items (per rank) that get the MR-STFT loss: it costs 10x the network
    power_weight: float = 1.0
    band_weight: float = 1.0
    kl_weight: float = 1e-3
    adv: bool = False
    adv_weight: float = 0.1
    adv_start: int = 1000
    ema: float = 0.999
    seed: int = 0
    pool: int = 192  # training clips held in memory (x2 mixes)
    val_clips: int = 8
    clip_seconds: float = 2.0
    log_every: int = 10
    val_every: int = 250
    save_every: int = 50
    amp: bool = True  # bf16 autocast on CUDA only
    threads: int = 1  # CPU threads per process

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise TrainError(f"unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        if self.steps < 1 or self.batch < 1 or self.frames < 2 or self.pool < 1:
            raise TrainError("steps, batch, pool must be >= 1 and frames >= 2")


# ---------------------------------------------------------------------- data

@dataclass
class Clips:
    """World clips in memory: stereo audio (P, 2, N) and, for validation, their ground-truth tracks."""

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


# ---------------------------------------------------------------------- loop pieces

def lr_at(step: int, tc: TrainConfig) -> float:
    """Linear warmup, then cosine to 10%."""
    if step < tc.warmup:
        return tc.lr * (step + 1) / tc.warmup
    p = (step - tc.warmup) / max(1, tc.steps - tc.warmup)
    return tc.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def losses(codec: torch.nn.Module, raw: Codec, x: torch.Tensor, tc: TrainConfig, disc=None, use_adv=False) -> dict:
    """All generator losses of one batch x (B, 2, N); 'total' is what is minimised."""
    out = codec(x)
    n, target = tc.stft_items, raw.synthesis.target(x)
    bands = band_matrix(raw.cfg.n_bins, 32, raw.cfg.sr).to(x.device)  # finer than the stereo bands
    parts = {"stft": stereo_mrstft(out.audio[:n], x[:n]), "power": log_power_loss(out.log_power, target),
             "band": band_energy_loss(out.log_power, target, bands), "kl": kl(out.mean.float(), out.logvar.float())}
    total = (tc.stft_weight * parts["stft"] + tc.power_weight * parts["power"] + tc.band_weight * parts["band"]
             + tc.kl_weight * parts["kl"])
    if use_adv:
        parts["adv_g"] = hinge_g(disc(out.audio))
        total = total + tc.adv_weight * parts["adv_g"]
    parts["total"] = total
    parts["pan_err"] = batch_pan_error(out.audio.detach(), x, raw.cfg.hop)
    return parts, out


def batch_pan_error(y: torch.Tensor, x: torch.Tensor, hop: int) -> torch.Tensor:
    """Mean per-frame |pan(y) - pan(x)| of a batch (the metric of foley.metrics.audio_position), loud frames only."""
    def pan(a):
        e = a.float().unfold(-1, hop, hop).pow(2).sum(-1)  # (B, 2, T)
        return (4 / math.pi) * torch.atan2(e[:, 1].sqrt(), e[:, 0].sqrt()) - 1, e.sum(1)
    (py, _), (px, ex) = pan(y), pan(x)
    loud = ex > ex.amax(-1, keepdim=True) * 1e-6
    return (py - px).abs()[loud].mean()


# ---------------------------------------------------------------------- the run

CSV_FIELDS = ("step", "seconds", "lr", "total", "stft", "power", "band", "kl", "adv_g", "adv_d", "pan_err", "val_mrstft",
              "val_mel", "val_si_sdr", "val_ild_db", "val_pan_err", "val_stereo_score", "val_bas")


@dataclass
class Run:
    """The mutable state of a run (what a checkpoint holds)."""

    raw: Codec
    model: torch.nn.Module  # raw, or raw wrapped in DDP
    ema: Codec
    opt: torch.optim.Optimizer
    disc: torch.nn.Module | None
    disc_opt: torch.optim.Optimizer | None
    step: int = 0


def _dist() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def build(cfg: CodecConfig, tc: TrainConfig, device: torch.device, world: int, local: int) -> Run:
    torch.manual_seed(tc.seed)
    raw = Codec(cfg).to(device)
    ema = copy.deepcopy(raw).eval().requires_grad_(False)
    model = raw
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(raw, device_ids=[local] if device.type == "cuda" else None)
    opt = torch.optim.AdamW(raw.parameters(), lr=tc.lr, betas=(0.9, 0.99), weight_decay=tc.weight_decay)
    disc = disc_opt = None
    if tc.adv:
        disc = SpectrogramDiscriminator().to(device)
        if world > 1:
            disc = torch.nn.parallel.DistributedDataParallel(disc, device_ids=[local] if device.type == "cuda" else None)
        disc_opt = torch.optim.AdamW(disc.parameters(), lr=tc.lr, betas=(0.5, 0.9))
    return Run(raw, model, ema, opt, disc, disc_opt)


def save(path: Path, run: Run, tc: TrainConfig, calib: torch.Tensor) -> None:
    """Everything to resume, atomically; the EMA codec is calibrated first (latent scale lives in it)."""
    from foley.files import atomic_output

    run.ema.calibrate(calib)
    state = {"format": FORMAT, "config": asdict(run.raw.cfg), "train_config": asdict(tc), "step": run.step,
             "model": run.raw.state_dict(), "ema": run.ema.state_dict(), "opt": run.opt.state_dict()}
    if run.disc is not None:
        state |= {"disc": _unwrap(run.disc).state_dict(), "disc_opt": run.disc_opt.state_dict()}
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def _unwrap(m: torch.nn.Module) -> torch.nn.Module:
    return m.module if hasattr(m, "module") else m


def load_run_config(path: Path) -> tuple[CodecConfig, TrainConfig, dict]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        return CodecConfig(**ckpt["config"]), TrainConfig(**ckpt["train_config"]), ckpt
    except FoleyError:
        raise
    except Exception as e:
        raise TrainError(f"{path}: cannot resume from it ({type(e).__name__}); delete it or use another --out") from None


def restore(run: Run, ckpt: dict) -> None:
    run.raw.load_state_dict(ckpt["model"])
    run.ema.load_state_dict(ckpt["ema"])
    run.opt.load_state_dict(ckpt["opt"])
    if run.disc is not None and "disc" in ckpt:
        _unwrap(run.disc).load_state_dict(ckpt["disc"])
        run.disc_opt.load_state_dict(ckpt["disc_opt"])
    run.step = int(ckpt["step"])


def _csv_rows(path: Path, upto: int) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if int(r["step"]) <= upto]


def train_step(run: Run, x: torch.Tensor, tc: TrainConfig, device: torch.device) -> dict:
    """One optimiser step (and one discriminator step with --adv); returns float losses."""
    for g in run.opt.param_groups:
        g["lr"] = lr_at(run.step, tc)
    use_adv = tc.adv and run.step >= tc.adv_start
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=tc.amp and device.type == "cuda"):
        parts, out = losses(run.model, run.raw, x, tc, run.disc, use_adv)
    run.opt.zero_grad(set_to_none=True)
    parts["total"].backward()
    torch.nn.utils.clip_grad_norm_(run.raw.parameters(), 1.0)
    run.opt.step()
    if use_adv:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=tc.amp and device.type == "cuda"):
            parts["adv_d"] = hinge_d(run.disc(x), run.disc(out.audio.detach()))
        run.disc_opt.zero_grad(set_to_none=True)
        parts["adv_d"].backward()
        run.disc_opt.step()
    decay = min(tc.ema, (1 + run.step) / (10 + run.step))
    with torch.no_grad():
        for pe, p in zip(run.ema.parameters(), run.raw.parameters()):
            pe.lerp_(p.detach(), 1 - decay)
    run.step += 1
    return {k: float(v.detach()) for k, v in parts.items()}


def train(tc: TrainConfig, out: str | Path, resume: bool = False, device: str | None = None,
          codec_cfg: CodecConfig | None = None) -> Path:
    """Train (or resume) a codec into folder `out`; returns the path of the final EMA codec `out/codec.pt`."""
    from tqdm import tqdm

    out = Path(out)
    rank, world, local = _dist()
    dev = torch.device(device or (f"cuda:{local}" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cpu":
        torch.set_num_threads(tc.threads)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    last = out / "last.pt"
    ckpt = None
    if resume and last.exists():
        cfg, saved, ckpt = load_run_config(last)
        tc = replace(saved, steps=tc.steps)
    elif last.exists():
        raise TrainError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    else:
        cfg = codec_cfg or PRESETS[tc.preset]
    if tc.batch % world:
        raise TrainError(f"batch {tc.batch} does not split over {world} processes")
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)
    run = build(cfg, tc, dev, world, local)
    if ckpt is not None:
        restore(run, ckpt)
    pool = world_clips(tc.pool, "train", tc.seed, cfg.fps, tc.clip_seconds).audio
    val = world_clips(tc.val_clips, "val", tc.seed, cfg.fps, tc.clip_seconds, mixes=("objaware",))
    calib = val.audio.to(dev)
    rows = _csv_rows(out / "log.csv", run.step)
    if rank == 0 and run.step == 0:
        base = Figures.mean([figures(torch.from_numpy(baseline_mono_pan(x.double().numpy(), cfg.sr, cfg.fps,
                            cfg.floats_per_second)).float(), x, cfg.sr, cfg.fps, t) for x, t in zip(val.audio, val.tracks)])
        rows.append({"step": -1, **{f"val_{k}": v for k, v in asdict(base).items()}})  # the mono+pan baseline
        orig = Figures.mean([figures(x, x, cfg.sr, cfg.fps, t) for x, t in zip(val.audio, val.tracks)])
        rows.append({"step": -2, **{f"val_{k}": v for k, v in asdict(orig).items()}})  # the original itself
        print(f"codec {tc.preset}: {run.raw.num_parameters() / 1e6:.2f} M parameters, {cfg.channels} latent channels, "
              f"{cfg.floats_per_second} floats/s\n  original:                   {orig}\n"
              f"  baseline (mono + pan, same rate): {base}")
    t0, length = time.time(), tc.frames * cfg.hop
    bar = tqdm(total=tc.steps, initial=run.step, disable=rank != 0, desc="train codec", dynamic_ncols=True)
    while run.step < tc.steps:
        torch.manual_seed(hash((tc.seed, run.step, rank)) % 2 ** 62)  # sampling noise: a function of the step
        x = batch_at(pool, run.step, rank, tc.batch // world, length, tc.seed).to(dev)
        parts = train_step(run, x, tc, dev)
        bar.update(1)
        row = None
        if run.step % tc.log_every == 0 or run.step in (1, tc.steps):
            row = {"step": run.step, "seconds": round(time.time() - t0, 2), "lr": lr_at(run.step - 1, tc), **parts}
            bar.set_postfix(loss=f"{parts['total']:.3f}", pan_err=f"{parts['pan_err']:.3f}")
        if rank == 0 and (run.step % tc.val_every == 0 or run.step == tc.steps or run.step == 1):
            run.ema.calibrate(calib)
            fig = validate(run.ema, val.audio, val.tracks, dev)
            row = (row or {"step": run.step}) | {f"val_{k}": v for k, v in asdict(fig).items()}
            plot_validation(out / "figures" / f"val_{run.step:06d}.png", run.ema, val.audio[0], val.tracks[0], run.step)
            tqdm.write(f"step {run.step}: {fig}")
        if rank == 0 and row is not None:
            rows.append(row)
        if rank == 0 and (run.step % tc.save_every == 0 or run.step == tc.steps):
            _write_csv(out / "log.csv", rows)
            save(last, run, tc, calib)
    bar.close()
    if rank == 0:
        save_codec(out / "codec.pt", run.ema, train_config=asdict(tc), step=run.step)
    if world > 1:
        dist.barrier()
    return out / "codec.pt"


def export(run_checkpoint: str | Path, path: str | Path) -> None:
    """The EMA codec of a run checkpoint (e.g. out/last.pt of a stopped run) as a small shippable file."""
    from foley.models.codec import load_codec

    ckpt = torch.load(run_checkpoint, map_location="cpu", weights_only=True)
    save_codec(path, load_codec(run_checkpoint), train_config=ckpt.get("train_config"), step=ckpt.get("step"))


def _write_csv(path: Path, rows: list[dict]) -> None:
    from foley.files import atomic_output

    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="codec size (default: tiny)")
    p.add_argument("--out", default="runs/codec", help="run folder: last.pt, codec.pt, log.csv, figures/")
    p.add_argument("--steps", type=int, default=TrainConfig.steps)
    p.add_argument("--batch", type=int, default=TrainConfig.batch)
    p.add_argument("--frames", type=int, default=TrainConfig.frames, help="latent frames per training crop")
    p.add_argument("--pool", type=int, default=TrainConfig.pool, help="training clips generated in memory")
    p.add_argument("--val-clips", type=int, default=TrainConfig.val_clips)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--threads", type=int, default=TrainConfig.threads, help="CPU threads per process")
    p.add_argument("--adv", action="store_true", help="add the spectrogram GAN loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from out/last.pt")
    p.add_argument("--save-every", type=int, default=TrainConfig.save_every)
    p.add_argument("--val-every", type=int, default=TrainConfig.val_every)


def config_from_args(a: argparse.Namespace) -> TrainConfig:
    return TrainConfig(preset=a.preset, steps=a.steps, batch=a.batch, frames=a.frames, pool=a.pool, lr=a.lr,
                       threads=a.threads, adv=a.adv, seed=a.seed, save_every=a.save_every, val_every=a.val_every,
                       val_clips=a.val_clips)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m foley.codec_train", description=__doc__.splitlines()[0])
    add_arguments(p)
    a = p.parse_args(argv)
    try:
        print(train(config_from_args(a), a.out, a.resume, a.device))
    except FoleyError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
