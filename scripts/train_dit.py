"""Train the shipped DiT pair (base on the dataset mix, then obj fine-tuned on the objaware mix) within a time budget,
and write the float16 checkpoints that ship (`foley/checkpoints/dit_base.pt`, `dit_obj.pt`).

How the shipped checkpoints were made (docs/benchmarks.md), on lent H200s: first from scratch, then further
from the shipped base (the same clips, as the cache is seeded):

    python scripts/train_dit.py --out runs/dit-gpu --ship OUTDIR --clips 3000 --minutes-base 3 --minutes-obj 1.25
    python scripts/train_dit.py --out runs/dit-gpu --ship OUTDIR --clips 3000 --init-base base --lr-base 3e-4 \
        --minutes-base 2.75 --minutes-obj 2.25

The detail branch (frames at 64 px through a second CNN that starts at zero), grown onto the shipped obj and
fine-tuned on the objaware mix alone (1.4 minutes of it were tried, at 84 ms per step of 128 on an H200; the
3000-clip cache at 64 px is 3.9 GB; docs/benchmarks.md):

    python scripts/train_dit.py --ship OUTDIR --clips 3000 --init-obj obj --detail 2 --pan-weight 4 \
        --minutes-obj 5

Base and obj trained further side by side on one H200 (2026-11-27: 57 ms per step each, where one alone took 41;
our small model leaves the GPU waiting on kernel launches), once the cache is built:

    python scripts/train_dit.py --stages base --init-base base --lr-base 3e-4 --minutes-base 4.75 --clips 3500 \
        --ship OUTDIR &
    python scripts/train_dit.py --stages obj --init-obj obj --lr-obj 2e-4 --minutes-obj 4.75 --clips 3500 --ship OUTDIR

On such a machine: `PYTHONPATH=$PWD python3 ...` with the image's own torch. Training and
bench/bench_dit_speed.py need neither PyAV nor soundfile (frames saved as .npy). The 3000-clip cache takes
about 2 minutes with 16 processes; plan the minutes so the whole call ends inside its limit (a stage cut short
resumes from its last.pt when the same command runs again on the same machine).

Each stage first runs a short probe to measure its seconds per step on this machine, then trains for as many
steps as its minutes allow (the cosine schedule is planned for that count, so the run ends at the schedule's end).
The world cache is built once, by one process per core. Runs are ordinary `foley train dit` runs: resumable, with
log.csv and figures. On this 2-core CPU the same command works with smaller figures (e.g. --clips 64 --batch 8).
"""
from __future__ import annotations

import argparse
import csv
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import torch

from foley.models.dit import FORMAT, checkpoint_path
from foley.train.dit import DitTask, DitTaskConfig, run_dit, ship
from foley.train.loop import LoopConfig, resume_configs, train


def timed_steps(task: DitTask, lc: LoopConfig, out: Path, device: str, probe: int) -> float:
    """Seconds per training step here: the time between the log rows of steps 10 and 10 + probe of a short run in
    its own folder (steps 1-10 warm up; the validations at the first and last step fall outside the interval)."""
    shutil.rmtree(out, ignore_errors=True)
    train(task, replace(lc, steps=10 + probe, log_every=10, val_every=10 ** 9, save_every=10 ** 9), out, device=device)
    with open(out / "log.csv", newline="") as f:
        seconds = {int(r["step"]): float(r["seconds"]) for r in csv.DictReader(f) if r.get("seconds")}
    shutil.rmtree(out)
    return (seconds[10 + probe] - seconds[10]) / probe


def stage(lc: LoopConfig, tc: DitTaskConfig, out: Path, device: str, minutes: float, probe: int) -> Path:
    """One stage's run in `out`, as many steps as `minutes` allow (continued if `out` holds part of it)."""
    if (out / "last.pt").exists():  # a stage cut short: finish its planned steps
        planned = resume_configs(out, FORMAT)[0]["steps"]
        return run_dit(replace(lc, steps=planned), tc, out, resume=True, device=device)
    task = DitTask(tc)
    per_step = timed_steps(task, lc, out.with_name(out.name + "-probe"), device, probe)
    steps = max(probe, int(minutes * 60 / per_step))
    print(f"{tc.stage}: {per_step * 1000:.1f} ms per step of {lc.batch} -> {steps} steps in {minutes} min", flush=True)
    return train(task, replace(lc, steps=steps, warmup=min(lc.warmup, steps // 10)), out, device=device)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/dit-gpu", help="folder of the two runs (base/, obj/)")
    p.add_argument("--ship", default="", help="also write dit_base.pt and dit_obj.pt (float16) and the logs here")
    p.add_argument("--clips", type=int, default=3000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr-base", type=float, default=6e-4)
    p.add_argument("--lr-obj", type=float, default=2e-4)
    p.add_argument("--minutes-base", type=float, default=3.5)
    p.add_argument("--minutes-obj", type=float, default=1.5)
    p.add_argument("--val-every", type=int, default=1000)
    p.add_argument("--probe", type=int, default=40, help="steps of each timing probe")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--cache-dir", default="runs/dit")
    p.add_argument("--init-base", default="",
                   help="warm start base from this DiT checkpoint (e.g. 'base', the shipped one: train it further)")
    p.add_argument("--init-obj", default="",
                   help="skip base: fine-tune obj from this DiT checkpoint (e.g. 'obj', the shipped one)")
    p.add_argument("--stages", default="base,obj",
                   help="base,obj (default), base alone (e.g. with --init-base), or obj alone (with --init-obj)")
    p.add_argument("--detail", type=int, default=1, help="frames at the frame size x DETAIL through a second CNN (foley train dit)")
    p.add_argument("--pan-weight", type=float, default=1.0, help="weight of the pan channels in the v-loss")
    p.add_argument("--cache-size", type=int, default=0, help="frames cached at this size (0: the model's)")
    a = p.parse_args(argv)
    root = Path(a.out)
    lc = LoopConfig(steps=1, batch=a.batch, lr=a.lr_base, warmup=200, weight_decay=0.01, ema=0.999,
                    val_every=a.val_every, save_every=a.val_every, threads=torch.get_num_threads())
    init = str(checkpoint_path(a.init_base)) if a.init_base else ""
    tc = DitTaskConfig(stage="base", clips=a.clips, cache_dir=a.cache_dir, init=init, detail=a.detail,
                       pan_weight=a.pan_weight, cache_size=a.cache_size)
    dest = Path(a.ship) if a.ship else None

    def shipped(name: str, run: Path) -> Path:  # each stage ships as soon as it ends (a budget cut keeps base)
        if dest is not None:
            dest.mkdir(parents=True, exist_ok=True)
            ship(run, dest / f"dit_{name}.pt")
            shutil.copy(run.parent / "log.csv", dest / f"dit_{name}_log.csv")
            print(f"shipped {dest / f'dit_{name}.pt'}", flush=True)
        return run

    stages = a.stages.split(",")
    if stages not in (["base"], ["obj"], ["base", "obj"]) or (stages == ["obj"] and not a.init_obj) \
            or (stages == ["base"] and a.init_obj):
        p.error("--stages is base, obj or base,obj (obj alone needs --init-obj; --init-obj skips base, so not with "
                "base alone)")
    if a.init_obj:
        base = checkpoint_path(a.init_obj)
    else:
        base = shipped("base", stage(lc, tc, root / "base", a.device, a.minutes_base, a.probe))
    if "obj" in stages:
        shipped("obj", stage(replace(lc, lr=a.lr_obj), replace(tc, stage="obj", init=str(base)), root / "obj",
                             a.device, a.minutes_obj, a.probe))

if __name__ == "__main__":
    sys.exit(main())
