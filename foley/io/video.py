"""Video and audio read, write and mux: the only module of foley that touches FFmpeg (PyAV) or soundfile."""
from __future__ import annotations

import contextlib
import itertools
import math
import numbers
import os
import struct
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import cv2
import numpy as np
import soundfile as sf

from foley.errors import AudioError, MediaError
from foley.files import atomic_output

AAC_RATE = 48000
AAC_FRAME = 1024  # samples per AAC frame, and the native encoder's priming (initial padding)
_CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
_MUX_OPTIONS = {"mp4": {"movflags": "+faststart"}, "mov": {"movflags": "+faststart"}}  # index first
_AUDIO_FILES = {".wav": "WAV", ".flac": "FLAC"}
_LAYOUTS = {1: "mono", 2: "stereo"}
_PTS_SCAN = 600  # packets probe reads to judge whether the frame rate is variable

PathLike = str | os.PathLike


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


@contextlib.contextmanager
def _media_errors(what: str) -> Iterator[None]:
    """Re-raise PyAV, soundfile and OS errors as MediaError prefixed with `what`."""
    try:
        yield
    except (av.error.FFmpegError, sf.SoundFileError, OSError) as e:
        raise MediaError(f"{what}: {e}") from e


@contextlib.contextmanager
def _open_input(path: PathLike) -> Iterator[av.container.InputContainer]:
    """Open a media file for reading; MediaError if it is missing or not media."""
    if not Path(path).is_file():
        raise MediaError(f"{path}: no such file; check the path")
    with _media_errors(f"cannot read {path} (is it a video or audio file?)"):
        with av.open(str(path)) as container:
            yield container


def _first(streams: tuple[av.stream.Stream, ...], path: PathLike, kind: str, remedy: str) -> av.stream.Stream:
    """The first stream of a kind, or MediaError saying what to pass instead."""
    if not streams:
        raise MediaError(f"{path} has no {kind} stream: {remedy}")
    return streams[0]


def _container_format(path: PathLike) -> str:
    """FFmpeg muxer name for an output video path, from its extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in _CONTAINERS:
        raise MediaError(f"{path}: cannot write {suffix or 'no extension'!r} video; use .mp4, .mov or .mkv")
    return _CONTAINERS[suffix]


def _check_rate(rate: float, what: str) -> None:
    """MediaError unless `rate` is a positive finite number."""
    if not (isinstance(rate, numbers.Real) and math.isfinite(rate) and rate > 0):
        raise MediaError(f"{what} must be a positive number, got {rate!r}")


def _check_audio(audio: np.ndarray, what: str) -> np.ndarray:
    """Validate (C, N) finite, non-empty samples; return them as float32."""
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[0] > 64:
        raise AudioError(f"{what}: expected shape (channels, samples), got {audio.shape}")
    if audio.shape[1] == 0:
        raise AudioError(f"{what}: no audio samples (length 0)")
    if not np.isfinite(audio).all():
        raise AudioError(f"{what}: samples contain NaN or inf; fix the audio before using it")
    return audio.astype(np.float32, copy=False)


def probe(path: PathLike) -> VideoInfo:
    """Read a video's stream parameters; demuxes a few hundred packets, decodes nothing.

    Raises:
        MediaError: missing file, not media, no video stream, or no frames.
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


def iter_frames(path: PathLike, fps: float | None = None, size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Stream RGB uint8 (H, W, 3) frames at a constant rate, chosen by presentation timestamp.

    Output frame i shows the source frame on screen at t_i = i / fps (the latest with pts <= t_i,
    relative to the stream start), so variable-rate input comes out at a constant rate.

    Args:
        path: a video file; probed now, so a bad path raises here rather than at the first frame.
        fps: output rate; None keeps the source's average rate. Yields count_frames(info, fps) frames.
        size: (width, height) to resize to with cv2.INTER_AREA, or None.
    """
    info = probe(path)
    rate = info.fps if fps is None else fps
    n_out = count_frames(info, rate)
    if size is not None and (len(size) != 2 or min(size) <= 0):
        raise MediaError(f"size must be (width, height) with positive values, got {size!r}")
    return _frames(path, rate, n_out, size)


def _frames(path: PathLike, fps: float, n_out: int, size: tuple[int, int] | None) -> Iterator[np.ndarray]:
    """Decode with threads, sample-and-hold to the constant rate, convert each output frame."""
    with _open_input(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        tol = min(0.5 * float(stream.time_base), 0.25 / fps)  # absorbs timestamp rounding (Matroska: 1 ms)
        for frame in _hold(_timed(container, stream), fps, n_out, tol):
            yield _to_rgb(frame, size)


def _timed(container: av.container.InputContainer, stream: av.VideoStream) -> Iterator[tuple[float, av.VideoFrame]]:
    """Decoded frames with their time in seconds from the stream start."""
    start, t = stream.start_time, 0.0
    for frame in container.decode(stream):
        if frame.pts is None:  # no timestamp (raw streams): assume the nominal step
            t += 1 / float(stream.average_rate or 25)
        else:
            start = frame.pts if start is None else start
            t = float((frame.pts - start) * stream.time_base)
        yield t, frame


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
    """RGB uint8 (H, W, 3), resized with INTER_AREA when `size` = (width, height) is given."""
    rgb = frame.to_ndarray(format="rgb24")  # (H, W, 3)
    if size is not None and (rgb.shape[1], rgb.shape[0]) != tuple(size):
        rgb = cv2.resize(rgb, tuple(size), interpolation=cv2.INTER_AREA)
    return rgb


def read_audio(path: PathLike, sr: int = 48000, channels: int | None = None) -> np.ndarray:
    """Decode the first audio stream of any media file (WAV/FLAC/MP3/OGG/video) to float32 (C, N) at `sr`.

    Args:
        channels: None keeps the file's; 1 downmixes (mean); 2 duplicates mono or downmixes surround.
    Raises:
        MediaError: missing/unreadable file or no audio stream. AudioError: NaN/inf or no samples.
    """
    _check_rate(sr, "sample rate")
    if channels not in (None, 1, 2):
        raise AudioError(f"channels must be None, 1 or 2, got {channels!r}")
    with _open_input(path) as container:
        stream = _first(container.streams.audio, path, "audio", "pass --audio FILE")
        layout = "stereo" if channels == 2 and stream.channels > 2 else None  # surround: FFmpeg's downmix
        audio = _resample(container.decode(stream), av.AudioResampler(format="fltp", layout=layout, rate=sr))
    return _check_audio(_set_channels(audio, channels), str(path))


def _resample(frames: Iterable[av.AudioFrame], resampler: av.AudioResampler) -> np.ndarray:
    """Run frames through a planar-float resampler, flush it, and join to (C, N) float32."""
    chunks = [out.to_ndarray() for frame in frames for out in resampler.resample(frame)]
    chunks += [out.to_ndarray() for out in resampler.resample(None)]
    return np.concatenate(chunks, axis=1) if chunks else np.zeros((1, 0), np.float32)


def _resample_array(audio: np.ndarray, sr: int, rate: int) -> np.ndarray:
    """Resample (C, N) float32, C in 1..2, from `sr` to `rate` with libswresample."""
    if sr == rate:
        return audio
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio), format="fltp", layout=_LAYOUTS[len(audio)])
    frame.sample_rate = sr
    return _resample([frame], av.AudioResampler(format="fltp", layout=None, rate=rate))


def _set_channels(audio: np.ndarray, channels: int | None) -> np.ndarray:
    """(C, N) -> (channels, N): mean to downmix to mono, repeat to upmix mono."""
    if channels is None or len(audio) == channels:
        return audio
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    return np.repeat(audio[:1], 2, axis=0)  # mono -> stereo; >2 channels were downmixed by the resampler


def write_audio(path: PathLike, audio: np.ndarray, sr: int) -> None:
    """Write (C, N) float audio as 24-bit PCM WAV or FLAC, atomically; clips to [-1, 1] only as a guard."""
    suffix = Path(path).suffix.lower()
    if suffix not in _AUDIO_FILES:
        raise MediaError(f"{path}: cannot write {suffix or 'no extension'!r} audio; use .wav or .flac")
    _check_rate(sr, "sample rate")
    audio = _check_audio(audio, f"audio for {path}")
    with atomic_output(path) as tmp, _media_errors(f"cannot write {path}"):
        sf.write(tmp, np.clip(audio, -1.0, 1.0).T, int(sr), subtype="PCM_24", format=_AUDIO_FILES[suffix])


def audio_duration(path: PathLike) -> float:
    """Duration in seconds of the first audio stream, by decoding it and counting samples."""
    with _open_input(path) as container:
        stream = _first(container.streams.audio, path, "audio", "pass --audio FILE")
        return sum(frame.samples for frame in container.decode(stream)) / stream.sample_rate


def write_video(
    path: PathLike, frames: Iterable[np.ndarray], fps: float,
    audio: np.ndarray | None = None, sr: int = 48000, crf: int = 20,
) -> None:
    """Encode RGB uint8 (H, W, 3) frames to H.264 (yuv420p), with an optional stereo AAC track, atomically.

    Frames are streamed; odd sizes are padded to even by repeating the last row/column. Audio is
    padded or trimmed to the video's duration. Containers: .mp4, .mov, .mkv.
    """
    fmt = _container_format(path)
    _check_rate(fps, "fps")
    rate = Fraction(float(fps)).limit_denominator(1001)
    if audio is not None:
        audio = _set_channels(_aac_input(audio, sr, f"audio for {path}"), 2)
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
            out.mux(_aac_packets(aac, audio, fmt, 0, round(n / rate * AAC_RATE)))


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


def _open_output(tmp: Path, fmt: str) -> av.container.OutputContainer:
    """Open `tmp` for muxing as `fmt`."""
    return av.open(str(tmp), "w", format=fmt, container_options=_MUX_OPTIONS.get(fmt, {}))


def mux_audio(video_path: PathLike, audio: np.ndarray, sr: int, out_path: PathLike) -> None:
    """Copy a video with its video stream remuxed (not re-encoded) and `audio` as its only audio track.

    Args:
        video_path: the source video; its other streams are dropped.
        audio: (C, N) float, C in 1..2, at rate `sr`; padded or trimmed here to the video's duration and
            encoded as 48 kHz AAC that decodes to exactly that duration.
        out_path: .mp4, .mov or .mkv; written atomically.
    """
    fmt = _container_format(out_path)
    info = probe(video_path)
    audio = _aac_input(audio, sr, f"audio for {out_path}")
    n = round(info.duration * AAC_RATE)  # the audio is padded with zeros or trimmed to this
    with _open_input(video_path) as src, atomic_output(out_path) as tmp:
        video_in = src.streams.video[0]
        # A video starting late gets silence before it: audio starting at pts > 0 would keep its priming in MP4.
        silence = max(0, round(float((video_in.start_time or 0) * video_in.time_base) * AAC_RATE))
        with _media_errors(f"cannot write {out_path}"), _open_output(tmp, fmt) as out:
            video_out = _copy_stream(out, video_in, out_path)
            packets = _aac_packets(_add_aac(out, len(audio)), audio, fmt, silence, n)
            _mux_in_order(out, video_out, src.demux(video_in), packets)


def _aac_input(audio: np.ndarray, sr: int, what: str) -> np.ndarray:
    """Validate 1- or 2-channel audio and resample it to the AAC rate: (C, N) float32 at 48 kHz."""
    _check_rate(sr, "sample rate")
    audio = _check_audio(audio, what)
    if len(audio) not in _LAYOUTS:
        raise AudioError(f"{what}: expected 1 or 2 channels, got {len(audio)}; downmix first")
    with _media_errors(f"cannot resample {what}"):
        return _resample_array(audio, int(sr), AAC_RATE)


def _window(audio: np.ndarray, start: int, size: int, n: int) -> np.ndarray:
    """(C, size) float32: samples [start, start + size) of `audio` trimmed/zero-padded to n, zeros outside."""
    block = np.zeros((audio.shape[0], size), np.float32)
    a, b = max(start, 0), min(start + size, n, audio.shape[1])
    if b > a:
        block[:, a - start:b - start] = audio[:, a:b]
    return block


def _add_aac(out: av.container.OutputContainer, channels: int) -> av.AudioStream:
    """A 48 kHz AAC stream, 96 kbit/s per channel."""
    stream = out.add_stream("aac", rate=AAC_RATE, layout=_LAYOUTS[channels])
    stream.bit_rate = 96_000 * channels
    return stream


def _aac_packets(stream: av.AudioStream, audio: np.ndarray, fmt: str, silence: int, n: int) -> list[av.Packet]:
    """Encode `silence` zeros then (C, N) trimmed/padded to n, so that exactly silence + n samples decode from 0.

    The encoder primes with AAC_FRAME samples: its first packet starts at pts -1024, which the mov
    and Matroska muxers record (edit list / CodecDelay) and FFmpeg's demuxers skip. The end needs
    help: FFmpeg's mov demuxer ignores the edit list's end, so for MP4/MOV we prepend `lead` silent
    samples at negative time to make lead + total whole AAC frames; Matroska instead marks the last
    packet's padding as DiscardPadding (skip_samples side data). Encoded one second at a time, so
    memory stays flat in the clip's length.
    """
    total = silence + n
    lead = (-total) % AAC_FRAME if fmt in ("mp4", "mov") else 0
    packets: list[av.Packet] = []
    for start in range(0, lead + total, AAC_RATE):
        size = min(AAC_RATE, lead + total - start)
        block = _window(audio, start - lead - silence, size, n)  # (C, size)
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=_LAYOUTS[len(audio)])
        frame.sample_rate, frame.time_base, frame.pts = AAC_RATE, Fraction(1, AAC_RATE), start - lead
        packets += stream.encode(frame)
    packets += stream.encode(None)
    _discard_end(packets[-1], packets[-1].pts + AAC_FRAME - total)
    return packets


def _discard_end(packet: av.Packet, samples: int) -> None:
    """Mark the last `samples` decoded samples of `packet` as padding (AV_PKT_DATA_SKIP_SAMPLES)."""
    if samples <= 0 or not hasattr(av.packet, "PacketSideData"):  # PyAV < 15: .mkv decodes a bit long
        return
    side = av.packet.PacketSideData(av.packet.packet_sidedata_type_from_literal("skip_samples"), 10)
    memoryview(side)[:] = struct.pack("<IIBB", 0, samples, 0, 0)  # skip at start, skip at end, reasons
    packet.set_sidedata(side)


def _copy_stream(out: av.container.OutputContainer, template: av.VideoStream, path: PathLike) -> av.VideoStream:
    """An output stream taking `template`'s packets unchanged; MediaError if the container can't hold them."""
    try:
        return out.add_stream_from_template(template, opaque=True)  # opaque: remux needs no encoder
    except ValueError as e:
        raise MediaError(f"cannot copy {template.codec_context.name} video into {path}: {e}; try .mkv") from e


def _mux_in_order(
    out: av.container.OutputContainer, video_out: av.VideoStream,
    video_packets: Iterable[av.Packet], audio_packets: list[av.Packet],
) -> None:
    """Mux copied video packets and encoded audio packets interleaved by decode time."""
    audio, t = deque(audio_packets), 0
    for packet in video_packets:
        if packet.size == 0:  # the demuxer's final empty packet
            continue
        stamp = packet.dts if packet.dts is not None else packet.pts  # Matroska stores no dts
        t = t if stamp is None else stamp * packet.time_base
        while audio and audio[0].dts * audio[0].time_base <= t:
            out.mux(audio.popleft())
        packet.stream = video_out
        out.mux(packet)
    out.mux(list(audio))
