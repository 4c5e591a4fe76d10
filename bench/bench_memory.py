"""Peak memory of the streaming verbs against the input's length (issue 13, defect 13; docs/benchmarks.md).

    python bench/bench_memory.py [--short 30] [--long 600] [--work DIR]

Generates, in a temporary folder (or --work, kept), a stereo WAV for `foley codec roundtrip`, and for
`foley spatialize` a 160x90 25 fps video (foley.demo's ball in a panning shot, written with
foley.io.write_video) and a mono WAV, each --short and --long seconds long, written a piece at a time.
Each command runs once per length, as `python -m foley ...` in a fresh process that reports its own peak
resident memory (VmHWM; Linux). The table gives both peaks, their ratio (flat in length: about 1) and the
wall times. The long case is slow (about 1 min per verb on 2 loaded cores).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SR, FPS, W, H = 48000, 25, 160, 90
_CHILD = """import atexit, runpy, sys
def peak():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            print('VmHWM', int(line.split()[1]) / 1024, file=sys.stderr)
atexit.register(peak)
sys.argv = ['foley', *sys.argv[1:]]
runpy.run_module('foley', run_name='__main__')
"""


def _tone_blocks(seconds: float, channels: int, seed: int) -> Iterator[np.ndarray]:
    """(channels, k) float32 blocks of 1 s: a tone gliding in pitch over noise, panned right on the second channel."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SR))
    for start in range(0, n, SR):
        t = np.arange(start, min(n, start + SR)) / SR
        mono = 0.2 * np.sin(2 * np.pi * (220 + 40 * np.sin(0.3 * t)) * t) + 0.03 * rng.standard_normal(len(t))
        block = np.stack([mono, 0.5 * mono])[:channels] if channels == 2 else mono[None]
        yield block.astype(np.float32)


def make_inputs(work: Path, seconds: float) -> dict[str, Path]:
    from foley import io
    from foley.demo import DemoScene

    paths = {"stereo": work / f"stereo_{seconds:g}s.wav", "mono": work / f"mono_{seconds:g}s.wav",
             "video": work / f"video_{seconds:g}s.mp4"}
    if not paths["stereo"].exists():
        io.write_audio(paths["stereo"], _tone_blocks(seconds, 2, 0), SR)
    if not paths["mono"].exists():
        io.write_audio(paths["mono"], _tone_blocks(seconds, 1, 1), SR)
    if not paths["video"].exists():
        scene = DemoScene(width=W, height=H, seconds=seconds, fps=FPS)  # a ball in a panning shot, streamed
        io.write_video(paths["video"], scene.frames(), scene.fps)
    return paths


def peak_mib(argv: list[str]) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of `python -m foley ARGV` in a fresh process (its own VmHWM).

    Not getrusage(RUSAGE_CHILDREN): Linux carries ru_maxrss across exec, so a child reports at least
    its parent's peak.
    """
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", _CHILD, *argv], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    wall = time.perf_counter() - t0
    if res.returncode != 0 or "VmHWM" not in res.stderr:
        raise SystemExit(f"foley {' '.join(argv)} failed:\n{res.stderr[-3000:]}")
    return float(res.stderr.split("VmHWM")[-1].split()[0]), wall


def main() -> None:
    from foley.models.codec import OFFLINE_CHECKPOINT

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", type=float, default=30.0, help="seconds of the short inputs (default 30)")
    p.add_argument("--long", type=float, default=600.0, help="seconds of the long inputs (default 600)")
    p.add_argument("--work", help="folder for the inputs and outputs, kept (default: a temporary one, removed)")
    a = p.parse_args()
    if not Path("/proc/self/status").exists():
        raise SystemExit("bench_memory needs Linux (/proc/self/status VmHWM)")
    with tempfile.TemporaryDirectory(prefix="foley-bench-memory-") as tmp:
        work = Path(a.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for verb in ("codec roundtrip", "codec roundtrip (offline codec)", "spatialize"):
            got = {}
            for seconds in (a.short, a.long):
                f = make_inputs(work, seconds)
                if verb.startswith("codec roundtrip"):
                    argv = ["codec", "roundtrip", str(f["stereo"]), str(work / f"roundtrip_{seconds:g}s.wav")]
                    if "offline" in verb:
                        argv += ["--checkpoint", str(OFFLINE_CHECKPOINT)]
                else:
                    argv = ["spatialize", str(f["video"]), "--audio", str(f["mono"]), "-o",
                            str(work / f"spatialized_{seconds:g}s.mp4")]
                got[seconds] = peak_mib(argv)
            (m_s, t_s), (m_l, t_l) = got[a.short], got[a.long]
            rows.append((f"foley {verb}", f"{m_s:.0f} MiB", f"{m_l:.0f} MiB", f"{m_l / m_s:.2f}",
                         f"{t_s:.1f} s / {t_l:.1f} s"))
    head = ("command", f"peak RSS {a.short:g} s", f"peak RSS {a.long:g} s", "long/short", "wall short / long")
    widths = [max(len(r[i]) for r in [head, *rows]) + 2 for i in range(len(head))]
    for r in [head, *rows]:
        print("".join(f"{c:<{w}}" for c, w in zip(r, widths)).rstrip())
    print(f"(fresh `python -m foley` processes, VmHWM; {os.cpu_count()} CPUs; inputs: stereo WAV for the codec, "
          f"{W}x{H} {FPS} fps H.264 + mono WAV for spatialize)")


if __name__ == "__main__":
    main()
