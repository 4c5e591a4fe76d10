"""Benchmark of the procedural world: clips/s with 1 and 2 workers, bytes per clip, time split per stage.

    python bench/bench_world.py [--n 48] [--seconds 4] [--size 224] [--fps 25]

Clips/s written is wall clock, end to end (`make_world`: render, synthesise, encode, tar) into a temporary
folder, including process start-up; the split is CPU time in one process, which does not depend on
what else the machine runs. Reading is `WorldDataset` (objaware mix, native fps/size/rate) through a
DataLoader with as many workers.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from foley.world import PRESETS, render, sample_scene, synthesize
from foley.world.record import encode
from foley.world.shards import make_world


def split(cfg, n: int) -> dict[str, float]:
    """Mean CPU seconds per clip in each stage, over n clips (CPU time: robust to other load)."""
    t = np.zeros(3)
    for i in range(n):
        scene = sample_scene(cfg, 123, "train", i)
        t0 = time.process_time()
        r = render(scene)
        t1 = time.process_time()
        a = synthesize(scene, r)
        t2 = time.process_time()
        encode(scene, r, a)
        t[:] += [t1 - t0, t2 - t1, time.process_time() - t2]
    return dict(zip(("render (frames, masks, tracks)", "audio (stems, ambience, 3 mixes)",
                     "encode (JPEG, FLAC, JSON, Stereo-Score)"), t / n))


def throughput(cfg, n: int, workers: int) -> tuple[float, float, float]:
    """(clips per second written, bytes per clip, clips per second read back) with `workers` processes."""
    from torch.utils.data import DataLoader

    from foley.world.dataset import WorldDataset

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        make_world(d, n, "train", 0, cfg, workers=workers, progress=False)
        dt = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in Path(d, "train").glob("*.tar"))
        t0 = time.perf_counter()
        for _ in DataLoader(WorldDataset(d, "train"), batch_size=None, num_workers=workers if workers > 1 else 0):
            pass
        read = n / (time.perf_counter() - t0)
    return n / dt, size / n, read


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=48, help="clips per worker count (default 48)")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--fps", type=int, default=25)
    a = ap.parse_args()
    cfg = replace(PRESETS["default"], seconds=a.seconds, width=a.size, height=a.size, fps=a.fps, clips_per_shard=8)
    print(f"clips: {a.seconds:g} s, {a.size}x{a.size}, {a.fps} fps, 48 kHz; {os.cpu_count()} CPU cores")
    parts = split(cfg, 16)
    total = sum(parts.values())
    print("\nCPU time per clip, one process:")
    for k, v in parts.items():
        print(f"  {k:<42} {1000 * v:7.1f} ms")
    print(f"  {'total':<42} {1000 * total:7.1f} ms  (= {2 / total:.1f} clips/s on 2 free cores)")
    print(f"load average now: {os.getloadavg()[0]:.2f} (other processes share these cores)")
    print("\n| workers | clips/s written | bytes/clip | hours for 20,000 clips | clips/s read (WorldDataset) |")
    print("|---|---|---|---|---|")
    for w in (1, 2):
        rate, size, read = throughput(cfg, a.n * w, w)
        print(f"| {w} | {rate:.2f} | {size / 1e6:.2f} MB | {20000 / rate / 3600:.2f} | {read:.1f} |")


if __name__ == "__main__":
    main()
