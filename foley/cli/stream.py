"""`foley stream`: online video-to-audio, frame by frame (SoundReactor), from a video file, raw frames or a camera."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from foley import interrupts
from foley.errors import FoleyError, Terminated

AUDIO_EXT = (".wav", ".flac")
VIDEO_EXT = (".mp4", ".mov", ".mkv")


def latency_summary(ms: list[float], deadline_ms: float) -> dict:
    """p50/p95/p99 of per-frame latencies (ms) and how many frames missed the deadline."""
    a = np.asarray(ms, dtype=np.float64)
    if not len(a):
        return {"frames": 0, "p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan"), "misses": 0,
                "deadline_ms": deadline_ms}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"frames": int(len(a)), "p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3),
            "p99_ms": round(float(p99), 3), "max_ms": round(float(a.max()), 3), "misses": int((a > deadline_ms).sum()),
            "deadline_ms": deadline_ms}


def run_stream(reactor, frames, sink, realtime: bool, progress=None) -> tuple[list[float], BaseException | None]:  # noqa: ANN001
    """Push every frame, hand each audio frame to `sink`; returns (latencies in ms, the error or stop that ended the
    stream early, if any). What was produced before the error has reached `sink`."""
    period = 1.0 / reactor.fps
    lat: list[float] = []
    t0 = time.perf_counter()
    try:
        for k, frame in enumerate(frames):
            interrupts.check()  # a Ctrl-C or SIGTERM that a finalizer swallowed ends the stream here, as any other
            if realtime:  # pace to the frame clock: frame k is due at t0 + k / fps
                wait = t0 + k * period - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            start = time.perf_counter()
            audio = reactor.push(frame)
            lat.append(1000 * (time.perf_counter() - start))
            sink(audio)
            if progress is not None:
                progress(1)
    except (KeyboardInterrupt, Terminated) as e:  # SIGTERM too: keep what was made, then end as asked
        interrupts.clear()  # acted on: the muxing that keeps what was made must not stop for it again
        return lat, e
    except FoleyError as e:  # a source or reactor error: keep what was made too (a signal noted stays noted)
        return lat, e
    return lat, None


@contextlib.contextmanager
def _audio_file(out: Path) -> Iterator[Path]:
    """Where the streamed audio is written: the output itself (atomically) for .wav/.flac; for a video output a
    private temporary WAV beside it (never a name the user may own), removed after muxing."""
    from foley.files import atomic_output

    if out.suffix.lower() in AUDIO_EXT:
        with atomic_output(out) as tmp:
            yield tmp
        return
    fd, name = tempfile.mkstemp(prefix=f".{out.stem}.pid{os.getpid()}.", suffix=".part.wav", dir=out.parent)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _cmd_stream(a: argparse.Namespace) -> None:
    import soundfile as sf
    from tqdm import tqdm

    from foley import io
    from foley.stream import Reactor, open_source

    if a.max_seconds is not None and not a.max_seconds > 0 or not a.stall_timeout >= 0:
        raise FoleyError("--max-seconds must be > 0 and --stall-timeout >= 0")
    out = Path(a.output)
    ext = out.suffix.lower()
    is_file = not a.raw and not a.source.isdigit() and a.source != "-"
    if ext in VIDEO_EXT and not is_file:
        raise FoleyError(f"{out}: muxing into a video needs a video file SOURCE; write .wav or .flac from a camera or pipe")
    reactor = Reactor(a.model, nfe=a.nfe, cfg=a.cfg, seed=a.seed, ntk=a.ntk, threads=a.threads, int8=a.int8,
                      mirror=a.mirror,
                      device=a.device)
    frames = open_source(a.source, a.raw, reactor.fps, a.stall_timeout)
    total = io.count_frames(io.probe(a.source), reactor.fps) if is_file else None
    if a.max_seconds:
        frames = (f for k, f in zip(range(int(round(a.max_seconds * reactor.fps))), frames))
        total = min(total or 10 ** 9, int(round(a.max_seconds * reactor.fps)))
    with _audio_file(out) as tmp:
        with sf.SoundFile(tmp, "w", reactor.sr, 2, subtype="FLOAT" if ext != ".flac" else "PCM_24",
                          format="FLAC" if ext == ".flac" else "WAV") as f, \
                tqdm(total=total, desc="stream", unit="frame", disable=a.quiet) as bar:
            lat, stop = run_stream(reactor, frames, lambda y: f.write(np.clip(y.T, -1, 1)), a.realtime, bar.update)
        reactor.close()
        if ext in VIDEO_EXT:  # the audio so far, muxed beside the copied video (padded to its length)
            with sf.SoundFile(tmp) as r:
                io.mux_audio(a.source, (b.T for b in r.blocks(48000, dtype="float32", always_2d=True)), reactor.sr, out)
    summary = latency_summary(lat, 1000.0 / reactor.fps) | {"nfe": a.nfe, "mode": reactor.mode, "cfg": a.cfg,
                                                           "seconds": round(len(lat) / reactor.fps, 3)}
    print(f"wrote {out}: {summary['seconds']:.2f} s from {summary['frames']} frames; per-frame latency "
          f"p50 {summary['p50_ms']:.1f} ms, p95 {summary['p95_ms']:.1f} ms, p99 {summary['p99_ms']:.1f} ms; "
          f"{summary['misses']} missed the {summary['deadline_ms']:.0f} ms deadline (nfe {a.nfe}, {reactor.mode})")
    if a.json:
        from foley.files import atomic_output as atomic

        with atomic(a.json) as tmp:
            Path(tmp).write_text(json.dumps(summary, indent=2))
    if stop is not None:
        if isinstance(stop, FoleyError):
            raise FoleyError(f"{stop} (the {summary['seconds']:.2f} s made before it are kept in {out})")
        raise stop


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    s = subparsers.add_parser("stream", help="online video-to-audio, frame by frame (SoundReactor): file, pipe or camera")
    s.add_argument("source", help="a video file, '-' for raw RGB24 frames on stdin (with --raw), or a camera index (0)")
    s.add_argument("-o", "--output", required=True, help=".wav/.flac, or .mp4/.mov/.mkv (a file SOURCE's video copied)")
    s.add_argument("--raw", metavar="WxH@FPS", help="stdin carries packed RGB24 frames of this size and rate")
    s.add_argument("--nfe", type=int, default=4, help="head evaluations per frame, 1..4 (default 4)")
    s.add_argument("--cfg", type=float, default=3.0, help="classifier-free guidance on the video token (default 3)")
    s.add_argument("--mirror-guidance", dest="mirror", type=float, default=0.0,
                   help="push each frame's sound away from where the mirrored picture would put it (default 0: off)")
    s.add_argument("--realtime", action="store_true", help="pace to the frame clock (as a live source would)")
    s.add_argument("--json", metavar="FILE", help="write latency p50_ms, p95_ms, p99_ms, misses as JSON")
    s.add_argument("--seed", type=int, default=0, help="the same seed gives the same audio")
    s.add_argument("--model", help="a reactor checkpoint (default: the shipped one)")
    s.add_argument("--stall-timeout", type=float, default=10.0,
                   help="end a pipe that sends nothing for this many seconds, keeping what was made (0: wait forever)")
    s.add_argument("--ntk", type=float, default=1.0,
                   help="NTK-aware RoPE: attend to this many times the trained window (default 1: a sliding window)")
    s.add_argument("--max-seconds", type=float, help="stop after this many seconds of audio")
    s.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    s.add_argument("--int8", action="store_true", help="int8 linear layers: faster on a CPU, slightly different audio")
    s.add_argument("--device", default="cpu", help="cpu (default) or cuda: where the network and codec run")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_stream, reads=("source", "model"), writes=("output", "json"),
                   suffixes={"output": AUDIO_EXT + VIDEO_EXT, "json": (".json",)})
