"""What every part of foley.io shares: paths, constants, opening media, argument and sample checks."""
from __future__ import annotations

import contextlib
import math
import numbers
import os
from pathlib import Path
from typing import Iterator

import av
import numpy as np
import soundfile as sf

from foley.errors import AudioError, MediaError

AAC_RATE = 48000
AAC_FRAME = 1024  # samples per AAC frame, and the native encoder's priming (initial padding)
_CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
_MUX_OPTIONS = {"mp4": {"movflags": "+faststart"}, "mov": {"movflags": "+faststart"}}  # index first
_AUDIO_FILES = {".wav": "WAV", ".flac": "FLAC"}
_LAYOUTS = {1: "mono", 2: "stereo"}
_MAX_CHANNELS = 64

PathLike = str | os.PathLike
AudioLike = np.ndarray | Iterator[np.ndarray]  # (C, N) samples, or an iterator of (C, k) blocks (streamed)


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
        block = _check_audio(block, what, len(first), empty=True)
        total += block.shape[1]
        yield block
    if total == 0:
        raise AudioError(f"{what}: no audio samples (length 0)")
