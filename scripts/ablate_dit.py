"""The DiT's video-conditioning ablation (DiT issue §3): the same tiny model trained the same number of steps on the
objaware mix with the video features added to the latent (the paper), concatenated to it, or cross-attended;
each run's float16 checkpoint goes to --ship, for `bench/bench_dit.py --base A --obj B` to score on the test split.

    python scripts/ablate_dit.py --out runs/dit-ablation --ship OUTDIR --clips 1500 --steps 1200
"""
from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import torch

from foley.models.dit import PRESETS
from foley.train.dit import DitTask, DitTaskConfig, ship
from foley.train.loop import LoopConfig, train

MODES = ("add", "concat", "cross")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/dit-ablation")
    p.add_argument("--ship", default="", help="write dit_<mode>.pt (float16) and dit_<mode>_log.csv here")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--clips", type=int, default=1500)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--cache-dir", default="runs/dit")
    a = p.parse_args(argv)
    lc = LoopConfig(steps=a.steps, batch=a.batch, lr=a.lr, warmup=min(200, a.steps // 10), weight_decay=0.01,
                    ema=0.999, val_every=a.steps, save_every=a.steps, threads=torch.get_num_threads())
    tc = DitTaskConfig(stage="obj", clips=a.clips, cache_dir=a.cache_dir)
    for mode in a.modes.split(","):
        out = Path(a.out) / mode
        run = train(DitTask(tc, replace(PRESETS[tc.preset], video_mode=mode)), lc, out, resume=True, device=a.device)
        if a.ship:
            dest = Path(a.ship)
            dest.mkdir(parents=True, exist_ok=True)
            ship(run, dest / f"dit_{mode}.pt")
            shutil.copy(out / "log.csv", dest / f"dit_{mode}_log.csv")
            print(f"shipped {dest / f'dit_{mode}.pt'}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
