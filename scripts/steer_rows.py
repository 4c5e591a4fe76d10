"""Steer rows of generated clips already under a bench folder with the sounding detector, into new rows.

    python scripts/steer_rows.py --detector runs/sounding/a/sounding.pt --rows obj --seeds 0,1,2 --out runs/bench_dit5
    python bench/bench_dit.py --n 100 --models obj-steer-all=x --seeds 0,1,2 --steer 0 --out runs/bench_dit5 --dominant

Each clip's frames are read from its video (runs/bench_eval/clips) at the detector's size, the detector names per
frame where the object heard is, and `foley.steer.steer` moves the clip's audio there (what `foley generate` does to
each window it decodes). The steered row NAME-steer-<by>[<weight>] sits beside the row it came from.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from foley import io  # noqa: E402
from foley.metrics.stereo import frame_energies  # noqa: E402
from foley.models.sounding import load_sounding  # noqa: E402
from foley.steer import steer  # noqa: E402

SR, FPS = 48000, 25


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detector", default=None, help="sounding detector checkpoint (default: the shipped one)")
    p.add_argument("--clips", default="runs/bench_eval/clips")
    p.add_argument("--out", default="runs/bench_dit5")
    p.add_argument("--rows", default="obj")
    p.add_argument("--seeds", default="0")
    p.add_argument("--mirror-tag", default="-mirror3")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--weight", type=float, default=1.0, help="share of the way to the detector's x")
    p.add_argument("--by", default="all", choices=("all", "heard", "knee", "loud"),
                   help="weight per frame: the same everywhere, times the chance an object dominates, times "
                        "min(1, that chance / --knee), or by the frame's loudness over the clip's quiet frames "
                        "(0 at its 20th percentile, 1 at --knee dB above)")
    p.add_argument("--knee", type=float, default=0.1)
    a = p.parse_args()
    torch.set_num_threads(1)
    det = load_sounding(a.detector)
    clips, out = Path(a.clips), Path(a.out)
    keys = sorted(f.stem for f in clips.glob("*.json"))[: a.n]
    suffix = f"-steer-{a.by}" + (f"{a.knee:g}" if a.by in ("knee", "loud") else "") + ("" if a.weight == 1 else f"{a.weight:g}")
    for done, key in enumerate(keys):
        fr = np.stack(list(io.iter_frames(clips / f"{key}.mp4", fps=FPS, size=(det.cfg.size, det.cfg.size))))
        loc = det.locate(torch.from_numpy(fr).permute(0, 3, 1, 2)[None])
        x, heard = loc.x[0].numpy(), loc.heard[0].numpy()
        weight = a.weight * {"all": np.ones_like(heard), "heard": heard, "knee": np.minimum(1, heard / a.knee),
                              "loud": np.ones_like(heard)}[a.by]
        for row in a.rows.split(","):
            for seed in (int(s) for s in a.seeds.split(",")):
                src = out / f"{row}{a.mirror_tag}{'' if seed == 0 else f'-seed{seed}'}"
                dst = out / f"{row}{suffix}{a.mirror_tag}{'' if seed == 0 else f'-seed{seed}'}"
                dst.mkdir(parents=True, exist_ok=True)
                y = io.read_audio(src / f"{key}.flac", SR)
                if a.by == "loud":
                    db = 10 * np.log10(frame_energies(y, SR, FPS, len(x)).sum(0) + 1e-12)
                    weight = a.weight * np.clip((db - np.percentile(db, 20)) / a.knee, 0, 1)
                k = min(len(x), y.shape[1] * FPS // SR)
                io.write_audio(dst / f"{key}.flac", steer(y, x[:k], weight[:k], SR, FPS), SR)
        print(f"{done + 1}/{len(keys)} {key}", end="\r", flush=True)
    print()


if __name__ == "__main__":
    main()
