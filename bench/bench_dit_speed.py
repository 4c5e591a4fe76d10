"""Generation speed of a DiT checkpoint: seconds per 8 s clip at 100, 25 and 8 steps (DiT issue §5), on the CPU or
a GPU, with peak memory. docs/benchmarks.md holds the figures.

    python bench/bench_dit_speed.py CLIP.mp4                       # shipped obj, this CPU
    python bench/bench_dit_speed.py CLIP.mp4 --save-frames F.npy   # decode once here, for a machine without PyAV
    python bench/bench_dit_speed.py F.npy --device cuda            # on a GPU, from the saved frames

An 8 s clip is the 4 s clip generated twice (two windows, as `foley generate` makes a longer video). From a .npy
the frames were decoded beforehand, so video decoding is not in the time (on this CPU it is ~0.1 s of 8 s).
On a GPU one untimed 8-step clip goes first: CUDA's start and kernel choice are not generation.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from foley.generate import MIRROR, WINDOW, Generator, Settings  # noqa: E402
from report import report  # noqa: E402

STEPS = (100, 25, 8)


class FramesGenerator(Generator):
    """A Generator whose `video` may also be a .npy of (n, 3, S, S) uint8 frames at the codec's rate."""

    def frames(self, video, duration=None, size=None) -> Iterator[torch.Tensor]:  # noqa: ANN001
        if Path(video).suffix != ".npy":
            yield from super().frames(video, duration, size)
            return
        from foley.models.video import resize_frames

        arr = np.load(video)
        n = len(arr) if duration is None else int(round(duration * self.codec.cfg.fps))
        fr = torch.from_numpy(arr[:n])
        if size is not None and fr.shape[-1] != size:
            fr = resize_frames(fr[None], size)[0]
        yield from fr


def speed(gen: Generator, clip: Path, steps: tuple[int, ...] = STEPS, mirror: float = MIRROR) -> list[tuple[int, float]]:
    """Seconds to generate 8 s of audio at each step count (the 4 s clip twice over: two windows)."""
    window_s = WINDOW / gen.codec.cfg.fps
    if gen.device.type != "cpu":
        gen(clip, settings=Settings(steps=8, cfg_strength=6.0, mirror=mirror), duration=window_s)
    out = []
    for s in steps:
        t0 = time.time()
        for _ in range(2):
            gen(clip, settings=Settings(steps=s, cfg_strength=6.0, mirror=mirror), duration=window_s)
        out.append((s, time.time() - t0))
    return out


def peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"peak GPU memory {torch.cuda.max_memory_allocated() / 2 ** 20:.0f} MiB"
    return f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("clip", help="a video, or a .npy of its frames (--save-frames)")
    p.add_argument("--model", default="obj", help="base | obj (shipped) or a DiT checkpoint")
    p.add_argument("--device", default="cpu")
    p.add_argument("--mirror", type=float, default=MIRROR)
    p.add_argument("--save-frames", metavar="NPY", help="only write the clip's frames here, as this bench reads them")
    p.add_argument("--markdown", help="also write the table here")
    a = p.parse_args(argv)
    gen = FramesGenerator(a.model, a.device)
    if a.save_frames:
        np.save(a.save_frames, torch.stack(list(gen.frames(a.clip))).numpy())
        return
    where = torch.cuda.get_device_name(gen.device) if gen.device.type == "cuda" else "this CPU"
    lines = [f"| steps | seconds per 8 s clip ({where}) |", "|---|---|"]
    lines += [f"| {s} | {t:.2f} |" for s, t in speed(gen, Path(a.clip), mirror=a.mirror)]
    lines += ["", f"{a.model}, DDIM, CFG 6, mirror guidance {a.mirror:g}; {peak_memory(gen.device)}"]
    report(lines, a.markdown)


if __name__ == "__main__":
    main()
