"""Benchmark of issue "object-aware stereo": tracking, rendering, end to end, peak memory.

    python bench/bench_spatial.py [--work DIR] [--long 60]

Makes 1280x720 25 fps demo videos (10 s and --long s) once in --work, then measures on this machine:
motion tracking frames/s (decode included), rendering speed (x real time, 48 kHz stereo), the wall time
of `foley spatialize` end to end, and its peak memory (max RSS of a fresh process) for both lengths.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


SR = 48000


def make_inputs(work: Path, seconds: float) -> tuple[Path, Path]:
    from foley import io
    from foley.demo import DemoScene

    video, audio = work / f"demo720_{seconds:g}s.mp4", work / f"demo720_{seconds:g}s.wav"
    if not video.exists():
        scene = DemoScene(width=1280, height=720, seconds=seconds)
        io.write_video(video, scene.frames(), scene.fps)
        io.write_audio(audio, scene.sound(SR)[None], SR)
    return video, audio


def child(video: str, audio: str, out: str) -> None:
    """Run one end-to-end spatialization in this process; print wall time and peak RSS as JSON."""
    from foley.pipeline import TrackSpec, spatialize_video

    t0 = time.perf_counter()
    spatialize_video(video, out, TrackSpec("motion"), audio_path=audio)
    wall = time.perf_counter() - t0
    print(json.dumps({"wall_s": wall, "peak_mib": peak_rss_mib()}))


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB: VmHWM where /proc has it (Linux).

    ru_maxrss is not used there: Linux carries it across exec, so a child started by this
    benchmark's parent would report the parent's peak whenever that is higher.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2 ** 20 if sys.platform == "darwin" else 1024)


def end_to_end(video: Path, audio: Path, work: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", str(video), str(audio), str(work / "out.mp4")]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def tracking_fps(video: Path) -> tuple[float, int]:
    from foley.pipeline import TrackSpec, find_tracks

    t0 = time.perf_counter()
    tracks = find_tracks(video, TrackSpec("motion"))
    return len(tracks[0]) / (time.perf_counter() - t0), len(tracks[0])


def render_speed(seconds: float = 10.0) -> float:
    from foley.demo import DemoScene
    from foley.spatial import render_source

    scene = DemoScene(width=320, height=180, seconds=seconds)
    mono, track = scene.sound(SR), scene.track()
    render_source(mono, track, SR)  # warm-up
    t0 = time.perf_counter()
    reps = 5
    for _ in range(reps):
        render_source(mono, track, SR)
    return seconds * reps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/foley-bench")
    p.add_argument("--long", type=float, default=60.0)
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return child(*a.child)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    v10, w10 = make_inputs(work, 10.0)
    vl, wl = make_inputs(work, a.long)
    fps, n = tracking_fps(v10)
    rows = [("motion tracking, 1280x720 (decode incl.)", f"{fps:.1f} frames/s", ">= 25 frames/s"),
            ("rendering, 48 kHz stereo", f"{render_speed():.0f} x real time", ">= 200 x")]
    for label, (v, w) in (("10 s", (v10, w10)), (f"{a.long:g} s", (vl, wl))):
        r = end_to_end(v, w, work)
        rows.append((f"end to end, {label} 720p", f"{r['wall_s']:.1f} s wall", ""))
        rows.append((f"peak memory, {label} 720p", f"{r['peak_mib']:.0f} MiB", "flat in length"))
    width = max(len(r[0]) for r in rows) + 2
    print(f"{'figure':<{width}}{'value':<22}target")
    for name, value, target in rows:
        print(f"{name:<{width}}{value:<22}{target}")


if __name__ == "__main__":
    main()
