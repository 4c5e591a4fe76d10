"""Video files: probe, stream frames at a constant rate, encode frames (with an optional AAC track)."""
from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Iterator

import av
import cv2
import numpy as np

from foley import blocks
from foley.errors import MediaError
from foley.files import atomic_output
from foley.io._base import (
    remembered_per_file,
    AAC_RATE, AudioLike, PathLike, _check_complete, _check_rate, _check_reached, _container_format, _declared_end,
    _decode_errors, _first, _media_errors, _nominal_step, _open_input, _open_output,
)
from foley.io.aac import _aac_input, _aac_packets, _add_aac
from foley.io.audio import _set_channels

_PTS_SCAN = 600  # packets probe reads to judge whether the frame rate is variable


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` learns about a video file without decoding it."""

    path: str
    duration: float  # seconds, of the video stream
    fps: float  # average frame rate
    width: int
    height: int
    n_frames: int  # from the container, or round(duration * fps) when it does not say
    has_audio: bool
    audio_rate: int | None
    audio_channels: int | None
    variable_frame_rate: bool  # best effort: frame steps differ by more than timestamp rounding


@remembered_per_file
def probe(path: PathLike) -> VideoInfo:
    """Read a video's stream parameters; demuxes a few hundred packets, decodes nothing. Remembered for a
    file that has not changed (same inode, size and modification time): a job probes its input often.

    Raises:
        MediaError: missing file, not media, no video stream, no frames, or fewer frames than the headers
            state (a truncated file; checked by reading the last packets).
    """
    with _open_input(path) as container:
        stream = _first(container.streams.video, path, "video", "pass a video file (.mp4, .mov, .mkv, ...)")
        pts = _packet_pts(container, stream, _PTS_SCAN)
        no_frames = f"{path}: the video stream has no timestamped frames; re-export or remux the video"
        if not pts:
            raise MediaError(no_frames)
        duration = _duration(container, stream, float(pts[0] * stream.time_base))
        if duration is None:  # nothing in the headers: measure from every packet
            container.seek(0)
            pts = _packet_pts(container, stream, None)
            duration = float((pts[-1] - pts[0] + (np.median(np.diff(pts)) if len(pts) > 1 else 1)) * stream.time_base)
        fps = float(stream.average_rate or stream.guessed_rate or 0) or len(pts) / duration
        n_frames = stream.frames or round(duration * fps)
        if duration <= 0 or n_frames <= 0:
            raise MediaError(no_frames)
        audio = container.streams.audio[0] if container.streams.audio else None
        for s in (stream, audio) if audio else (stream,):  # a truncated file: its streams stop short
            _check_complete(container, s, path)
        return VideoInfo(
            path=str(path), duration=duration, fps=fps, width=stream.codec_context.width,
            height=stream.codec_context.height, n_frames=n_frames, has_audio=audio is not None,
            audio_rate=audio.sample_rate if audio else None, audio_channels=audio.channels if audio else None,
            variable_frame_rate=_is_variable(pts),
        )


def _packet_pts(container: av.container.InputContainer, stream: av.VideoStream, limit: int | None) -> list[int]:
    """Sorted presentation timestamps of the next `limit` video packets (all when None)."""
    pts = []
    for packet in container.demux(stream):
        if packet.pts is not None:
            pts.append(packet.pts)
        if limit is not None and len(pts) >= limit:
            break
    return sorted(pts)


def _duration(container: av.container.InputContainer, stream: av.VideoStream, start: float) -> float | None:
    """Video duration in seconds from the headers (stream, Matroska end tag, container); `start`: first frame."""
    if stream.duration:  # FFmpeg counts it from 0 when it knows no start time
        return float(stream.duration * stream.time_base) - (start if stream.start_time is None else 0.0)
    tag = stream.metadata.get("DURATION")  # Matroska: the stream's end time, "HH:MM:SS.nnnnnnnnn"
    if tag:
        with contextlib.suppress(ValueError):
            h, m, s = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(s) - start
    return container.duration / av.time_base if container.duration else None


def _is_variable(pts: list[int]) -> bool:
    """True when frame steps differ by more than timestamp rounding (one tick, or 2%)."""
    if len(pts) < 3:
        return False
    steps = np.diff(pts)
    return bool(steps.max() - steps.min() > max(1, 0.02 * np.median(steps)))


def count_frames(info: VideoInfo, fps: float | None) -> int:
    """How many frames `iter_frames` yields at `fps` (None = the source's average rate)."""
    rate = info.fps if fps is None else fps
    _check_rate(rate, "fps")
    return max(1, round(info.duration * rate))


def iter_frames(path: PathLike, fps: float | None = None, size: tuple[int, int] | None = None,
                ahead: int = 0) -> Iterator[np.ndarray]:
    """Stream RGB uint8 (H, W, 3) frames at a constant rate, chosen by presentation timestamp.

    Output frame i shows the source frame on screen at t_i = i / fps (the latest with pts <= t_i,
    relative to the stream start), so variable-rate input comes out at a constant rate.

    Args:
        path: a video file; probed now, so a bad path raises here rather than at the first frame.
        fps: output rate; None keeps the source's average rate. Yields count_frames(info, fps) frames.
        size: (width, height) to resize to with cv2.INTER_AREA, or None.
        ahead: decode up to this many frames ahead in a thread (0: none), so that decoding overlaps the
            caller's work on the frames (both release the GIL: a second core is used).
    """
    info = probe(path)
    rate = info.fps if fps is None else fps
    n_out = count_frames(info, rate)
    if size is not None and (len(size) != 2 or min(size) <= 0):
        raise MediaError(f"size must be (width, height) with positive values, got {size!r}")
    frames = _frames(path, rate, n_out, size)
    return blocks.ahead(frames, ahead) if ahead > 0 else frames


def _frames(path: PathLike, fps: float, n_out: int, size: tuple[int, int] | None) -> Iterator[np.ndarray]:
    """Decode with threads, sample-and-hold to the constant rate, convert each output frame."""
    with _open_input(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        tol = min(0.5 * float(stream.time_base), 0.25 / fps)  # absorbs timestamp rounding (Matroska: 1 ms)
        for frame in _hold(_timed(container, stream, path), fps, n_out, tol):
            yield _to_rgb(frame, size)


def _timed(container: av.container.InputContainer, stream: av.VideoStream,
           path: PathLike) -> Iterator[tuple[float, av.VideoFrame]]:
    """Decoded frames with their time in seconds from the stream start.

    MediaError when decoding fails midway or the frames end well before the headers say (damaged files).
    """
    start, t = stream.start_time, 0.0
    end, reached, step = _declared_end(container, stream), None, _nominal_step(stream)
    with _decode_errors(path, "video", lambda: t):
        for frame in container.decode(stream):
            if frame.pts is None:  # no timestamp (raw streams): assume the nominal step
                t += 1 / float(stream.average_rate or 25)
            else:
                start = frame.pts if start is None else start
                t = float((frame.pts - start) * stream.time_base)
                length = float((frame.duration or 0) * stream.time_base)
                reached, step = max(reached or 0.0, float(frame.pts * stream.time_base) + length), max(step, length)
            yield t, frame
    _check_reached(path, "video", reached, end, float((start or 0) * stream.time_base), step)


def _hold(timed: Iterable[tuple[float, av.VideoFrame]], fps: float, n_out: int, tol: float) -> Iterator[av.VideoFrame]:
    """Output i is the latest frame with t <= i / fps + tol (the first frame before any exists)."""
    i, held = 0, None
    for t, frame in timed:
        while i < n_out and t > i / fps + tol:
            yield frame if held is None else held
            i += 1
        if i >= n_out:
            return
        held = frame
    if held is not None:  # the stream ended early: hold the last frame
        yield from itertools.repeat(held, n_out - i)


def _to_rgb(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    """RGB uint8 (H, W, 3), resized by area averaging when `size` = (width, height) is given.

    The scaler converts and shrinks in one pass (no full-size RGB copy): half the time at a quarter width.
    """
    if size is None or (frame.width, frame.height) == tuple(size):
        return frame.to_ndarray(format="rgb24")  # (H, W, 3)
    if size[0] <= frame.width and size[1] <= frame.height:
        return frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA").to_ndarray()
    return cv2.resize(frame.to_ndarray(format="rgb24"), tuple(size), interpolation=cv2.INTER_CUBIC)


def write_video(
    path: PathLike, frames: Iterable[np.ndarray], fps: float,
    audio: AudioLike | None = None, sr: int = 48000, crf: int = 20,
) -> None:
    """Encode RGB uint8 (H, W, 3) frames to H.264 (yuv420p), with an optional stereo AAC track, atomically.

    Frames are streamed; odd sizes are padded to even by repeating the last row/column. Audio, (C, N)
    or an iterator of (C, k) blocks (streamed), C in 1..2, is padded or trimmed to the video's
    duration. Containers: .mp4, .mov, .mkv.
    """
    fmt = _container_format(path)
    _check_rate(fps, "fps")
    rate = Fraction(float(fps)).limit_denominator(1001)
    if audio is not None:
        _, blocks = _aac_input(audio, sr, f"audio for {path}")
        audio = (_set_channels(block, 2) for block in blocks)
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise MediaError(f"{path}: no frames to write")
    first = _check_frame(first, 0, None)
    height, width = _even(first).shape[:2]
    with atomic_output(path) as tmp, _media_errors(f"cannot write {path}"), _open_output(tmp, fmt) as out:
        video = out.add_stream("libx264", rate=rate, options={"crf": str(crf)})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        aac = None if audio is None else _add_aac(out, 2)
        n = 0
        for n, rgb in enumerate(itertools.chain([first], it), start=1):
            frame = av.VideoFrame.from_ndarray(_even(_check_frame(rgb, n - 1, first.shape)), format="rgb24")
            frame.pts = n - 1
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if aac is not None:  # last, as its length is known only now: the muxer buffers <= 10 s of video for it
            for packet in _aac_packets(aac, audio, 2, fmt, 0, round(n / rate * AAC_RATE)):
                out.mux(packet)


def _check_frame(rgb: np.ndarray, i: int, shape: tuple[int, ...] | None) -> np.ndarray:
    """Frame i as an array; MediaError unless it is RGB uint8 (H, W, 3) of the first frame's shape."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or (shape is not None and rgb.shape != shape):
        raise MediaError(f"frame {i}: expected RGB uint8 {shape or '(H, W, 3)'}, got {rgb.dtype} {rgb.shape}")
    return rgb


def _even(rgb: np.ndarray) -> np.ndarray:
    """Pad (H, W, 3) to even H and W by repeating the last row/column (yuv420p needs even sizes)."""
    h, w = rgb.shape[:2]
    return np.ascontiguousarray(np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge"))
