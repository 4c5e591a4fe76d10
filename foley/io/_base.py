"""What every part of foley.io shares: paths, constants, opening media, argument and sample checks."""
from __future__ import annotations

import contextlib
import functools
import math
import numbers
import os
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import av
import numpy as np
import soundfile as sf

from foley import interrupts
from foley.errors import AudioError, MediaError
from foley.io import framing

AAC_RATE = 48000
AAC_FRAME = 1024  # samples per AAC frame, and the native encoder's priming (initial padding)
_CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
_MUX_OPTIONS = {"mp4": {"movflags": "+faststart"}, "mov": {"movflags": "+faststart"}}  # index first
_AUDIO_FILES = {".wav": "WAV", ".flac": "FLAC"}
_LAYOUTS = {1: "mono", 2: "stereo"}
_MAX_CHANNELS = 64

PathLike = str | os.PathLike
T = TypeVar("T")
AudioLike = np.ndarray | Iterator[np.ndarray]  # (C, N) samples, or an iterator of (C, k) blocks (streamed)


def remembered_per_file(read: Callable[[PathLike], T]) -> Callable[[PathLike], T]:
    """`read(path)` remembered while the file is unchanged (same inode, size and modification time): a job
    probes its input several times. A failure is not remembered, so it is said again."""
    @functools.lru_cache(maxsize=32)
    def cached(path: str, inode: int, size: int, mtime_ns: int) -> T:
        return read(path)

    @functools.wraps(read)
    def remembered(path: PathLike) -> T:
        try:
            st = os.stat(path)
        except OSError:
            return read(path)  # (its error, said by the opener)
        return cached(os.fspath(path), st.st_ino, st.st_size, st.st_mtime_ns)

    return remembered


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
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        if framing.mp4_cut_before_index(path):
            raise MediaError(f"{path} is truncated: the file stops before its index (the MP4 'moov' box, written "
                             "last), so none of it can be read; re-download or re-export it") from None
        raise MediaError(f"cannot read {path} (is it a video or audio file?): {e}") from e
    except OSError as e:
        raise MediaError(f"cannot read {path} (is it a video or audio file?): {e}") from e
    with container:
        yield container


_INDEXED = {"mov", "mp4", "matroska", "webm", "flac"}  # demuxers whose headers state each stream's exact length
_FRAMED = {"wav": framing.wav_declared_seconds, "mp3": framing.mp3_declared_seconds}  # lengths read by foley.io.framing


def _declared_end(container: av.container.InputContainer, stream: av.stream.Stream) -> float | None:
    """Where the headers say the stream ends, in seconds on its timestamps; None where they cannot be trusted
    (formats that estimate it, e.g. MP3 from the bit rate, or that read it from the file's end, e.g. Ogg)."""
    names = set(container.format.name.split(","))
    if stream.type == "audio" and stream.time_base and names & _FRAMED.keys():  # a length FFmpeg reads past
        declared = _FRAMED[next(iter(names & _FRAMED.keys()))](container.name)
        return None if declared is None else float((stream.start_time or 0) * stream.time_base) + declared
    if not _INDEXED & names or not stream.time_base:
        return None
    if stream.duration:
        return float(((stream.start_time or 0) + stream.duration) * stream.time_base)
    tag = stream.metadata.get("DURATION")  # Matroska: the stream's end time, "HH:MM:SS.nnnnnnnnn"
    if tag:
        with contextlib.suppress(ValueError):
            h, m, sec = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
    return None


def _check_reached(path: PathLike, kind: str, reached: float | None, end: float | None, start: float,
                   step: float) -> None:
    """MediaError when a stream's data stops before the end its headers state (a truncated file).

    reached, end, start: seconds on the stream's timestamps (where the data stops, where the headers say
    it ends, where it starts); step: the longest frame or packet, in seconds (the tolerance grows with it).
    """
    if end is None or (reached is not None and reached >= end - _slack(step)):
        return
    at = 0.0 if reached is None else max(0.0, reached - start)
    raise MediaError(f"{path} is truncated or damaged: its {kind} stops at {at:.2f} s of the {end - start:.2f} s "
                     "its header states; re-download or re-export it")


def _slack(step: float) -> float:
    """How far short of the stated end a whole stream may stop: timestamp rounding, a last frame of unknown
    length, encoder priming counted in the header (AAC: up to 2112 samples, 48 ms at 44.1 kHz)."""
    return max(0.1, 2 * step)


def _nominal_step(stream: av.stream.Stream) -> float:
    """A video stream's nominal frame duration in seconds (0 for audio or when unknown)."""
    rate = getattr(stream, "average_rate", None) if stream.type == "video" else None
    return 1 / float(rate) if rate else 0.0


def _packets_end(packets: Iterator[av.Packet]) -> tuple[float | None, float, bool]:
    """(end of the last packet in s, longest packet in s, whether a packet was corrupt or the demuxer failed);
    stops at the first corrupt packet."""
    reached, step = None, 0.0
    try:
        for p in packets:
            if p.size == 0 or p.pts is None:
                continue
            if p.is_corrupt:
                return reached, step, True
            length = float((p.duration or 0) * p.time_base)
            end = float(p.pts * p.time_base) + length
            reached, step = end if reached is None else max(reached, end), max(step, length)
    except (av.error.FFmpegError, EOFError):
        return reached, step, True
    return reached, step, False


def _check_unfinished(container: av.container.InputContainer, path: PathLike) -> None:
    """MediaError for an Ogg file cut short: it states no length, but a whole one ends with an end-of-stream page."""
    if "ogg" in container.format.name.split(",") and framing.ogg_unfinished(container.name):
        raise MediaError(f"{path} is truncated or damaged: its Ogg stream stops without its last page (at "
                         f"{(container.duration or 0) / 1e6:.2f} s); re-download or re-export it")


def _check_complete(container: av.container.InputContainer, stream: av.stream.Stream, path: PathLike) -> None:
    """A cheap check that the file holds the whole stream its headers state (a truncated download or copy
    keeps a front index): seek to that end and demux the last packets. Where the seek itself fails the
    check is left to decoding, which measures the stream as it goes. MediaError, saying where it stops."""
    _check_unfinished(container, path)
    end = _declared_end(container, stream)
    if end is None:
        return
    try:
        # the keyframe before the end; a second early, so that a format without an index (WAV) lands on data
        container.seek(int(max(0.0, end - 1.0) / stream.time_base), stream=stream, backward=True)
    except (av.error.FFmpegError, OSError):
        return
    reached, step, corrupt = _packets_end(container.demux(stream))
    if not corrupt and reached is not None and reached >= end - _slack(max(step, _nominal_step(stream))):
        return
    with av.open(str(path)) as again:  # damaged: find where, reading packets (not decoding) from the start
        reached, step, corrupt = _packets_end(again.demux(again.streams[stream.index]))
    start = float((stream.start_time or 0) * stream.time_base)
    if corrupt and not _FRAMED.keys() & set(container.format.name.split(",")):  # WAV, MP3: the cut is the damage
        raise MediaError(f"{path} is damaged: its {stream.type} holds an unreadable packet at "
                         f"{max(0.0, (reached or start) - start):.2f} s; re-download or re-export it")
    _check_reached(path, stream.type, reached, end, start, max(step, _nominal_step(stream)))


@contextlib.contextmanager
def _decode_errors(path: PathLike, kind: str, where: Callable[[], float]) -> Iterator[None]:
    """A decoder error in the middle of a stream: MediaError naming the file and the time where it broke."""
    try:
        yield
    except av.error.FFmpegError as e:
        raise MediaError(f"{path} is damaged: its {kind} stops decoding at {where():.2f} s "
                         f"({getattr(e, 'strerror', None) or e}); re-download or re-export it") from None


def _open_output(tmp: Path, fmt: str) -> av.container.OutputContainer:
    """Open `tmp` for muxing as `fmt`."""
    return av.open(str(tmp), "w", format=fmt, container_options=_MUX_OPTIONS.get(fmt, {}))


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


def _check_finite(audio: np.ndarray, what: str) -> None:
    """AudioError if any sample is NaN or inf."""
    if not np.isfinite(audio).all():
        raise AudioError(f"{what}: samples contain NaN or inf; fix the audio before using it")


def _check_audio(audio: np.ndarray, what: str, channels: int | None = None, empty: bool = False) -> np.ndarray:
    """Validate (C, N) finite samples (C = `channels` if given; N > 0 unless `empty`); return them as float32."""
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[0] > _MAX_CHANNELS or channels not in (None, audio.shape[0]):
        expected = "(channels, samples)" if channels is None else f"({channels}, samples) like the first block"
        raise AudioError(f"{what}: expected shape {expected}, got {audio.shape}")
    if audio.shape[1] == 0 and not empty:
        raise AudioError(f"{what}: no audio samples (length 0)")
    _check_finite(audio, what)
    return audio.astype(np.float32, copy=False)


def _audio_blocks(audio: AudioLike, what: str) -> tuple[int, Iterator[np.ndarray]]:
    """(C, iterator of float32 (C, k) blocks) of an array or a block iterator, each block checked as it comes.

    An array is checked now; an iterator's first block is read now (for C), the others when they are.
    AudioError: wrong shape, NaN/inf, or no samples at all.
    """
    if not isinstance(audio, Iterator):
        audio = _check_audio(audio, what)
        return len(audio), iter([audio])
    first = next(audio, None)
    if first is None:
        raise AudioError(f"{what}: no audio samples (length 0)")
    first = _check_audio(first, what, empty=True)
    return len(first), _checked(first, audio, what)


def _checked(first: np.ndarray, rest: Iterator[np.ndarray], what: str) -> Iterator[np.ndarray]:
    """`first`, then each further block checked on its way; AudioError at the end if there were no samples."""
    total = first.shape[1]
    yield first
    for block in rest:
        interrupts.check()  # a Ctrl-C or SIGTERM that a finalizer swallowed still stops the write here
        block = _check_audio(block, what, len(first), empty=True)
        total += block.shape[1]
        yield block
    if total == 0:
        raise AudioError(f"{what}: no audio samples (length 0)")
