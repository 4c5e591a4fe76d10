"""The soundtrack's side of the audio-visual choice: its onset envelope and its onsets, in video frames.

`onset_envelope`: the spectral flux of the mono downmix (the summed rise of log magnitude between
successive ~20 ms Hann windows; Bello et al. 2005), its peak within half a frame of each frame's instant,
max 1; streamed over audio blocks with memory flat in the length.

Audio onsets are peaks of the spectral-flux envelope (`onset_envelope`) above an adaptive
threshold (local median plus a margin, and a multiple of it; Bello et al. 2005, §III-B), at least
`spacing` frames apart, and at least `relative` times the loudest onset around them (the tail of
a ring cut short is no new strike).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from foley.errors import TrackError
from foley.tracking.events import Events, local_stat


@dataclass(frozen=True)
class OnsetConfig:
    """Peak picking of an onset envelope (max 1), in frames."""

    spacing: int = 3  # minimum distance between onsets
    window: int = 12  # frames either side for the local median
    margin: float = 0.05  # onset >= local median + margin ...
    ratio: float = 1.5  # ... and >= ratio x local median (steady noise has no onsets)
    relative: float = 0.3  # ... and >= this x the envelope's maximum within +-context frames
    context: int = 25


def onset_envelope(audio: np.ndarray | Iterator[np.ndarray], sr: int, fps: float, n_frames: int) -> np.ndarray:
    """(n_frames,) spectral flux of the mono downmix, its peak within half a frame of k/fps, max 1.

    `audio` is (C, N) or (N,) samples, or an iterator of (C, k) blocks: streamed, the same result
    with memory flat in length (the flux kept is ~190 floats per second).
    """
    blocks = _mono_blocks(audio, sr)
    n_fft = 1 << max(8, int(round(math.log2(sr * 0.02))))  # ~20 ms window
    hop = n_fft // 4
    flux = np.concatenate(list(_spectral_flux(blocks, n_fft, hop)))  # (T,)
    times = hop * np.arange(1, len(flux) + 1) / sr  # centre of the later window of each pair
    env = np.full(n_frames, -np.inf)
    k = np.floor(times * fps + 0.5).astype(int)  # nearest frame instant
    inside = (k >= 0) & (k < n_frames)
    np.maximum.at(env, k[inside], flux[inside])
    empty = ~np.isfinite(env)
    if empty.all():
        return np.zeros(n_frames)
    instants = np.arange(n_frames) / fps
    env[empty] = np.interp(instants[empty], times, flux, right=0.0)  # frames faster than the hop
    return env / max(float(env.max()), 1e-12)


def _spectral_flux(blocks: Iterable[np.ndarray], n_fft: int, hop: int, chunk: int = 256) -> Iterator[np.ndarray]:
    """(t,) summed positive increase of log magnitude between successive Hann windows (Bello et al. 2005).

    The signal, n_fft / 2 zeros + the (k,) blocks + n_fft zeros, is cut into windows every `hop`
    samples, transformed `chunk` windows at a time as soon as a chunk's samples are in: streamed,
    with the same chunks (so the same numbers) however the blocks are cut.
    """
    window = np.hanning(n_fft).astype(np.float32)
    span = (chunk - 1) * hop + n_fft  # samples under one chunk of windows
    buf, last = np.zeros(n_fft // 2, np.float32), None
    for block in itertools.chain(blocks, [np.zeros(n_fft, np.float32)]):
        buf = np.concatenate([buf, block])
        while len(buf) >= span:
            flux, last = _flux_chunk(buf, chunk, window, hop, last)
            buf = buf[chunk * hop:]
            yield flux
    if len(buf) >= n_fft:
        yield _flux_chunk(buf, 1 + (len(buf) - n_fft) // hop, window, hop, last)[0]


def _flux_chunk(buf: np.ndarray, count: int, window: np.ndarray, hop: int,
                last: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Flux of the first `count` windows of `buf`, following the log magnitude `last`; and the new last."""
    idx = np.arange(len(window))[None, :] + hop * np.arange(count)[:, None]  # (t, n_fft)
    logmag = np.log1p(100.0 * np.abs(np.fft.rfft(buf[idx] * window, axis=1)))  # (t, F)
    if last is not None:
        logmag = np.concatenate([last, logmag])
    return np.maximum(np.diff(logmag, axis=0), 0.0).sum(axis=1), logmag[-1:]


def _mono_blocks(audio: np.ndarray | Iterator[np.ndarray], sr: int) -> Iterator[np.ndarray]:
    """(k,) float32 mono blocks of an array or a block iterator; TrackError if unusable."""
    if not sr > 0:
        raise TrackError(f"sample rate must be positive, got {sr}")
    if not isinstance(audio, Iterator):
        return iter([_mono(audio)])
    return _streamed_mono(audio)


def _streamed_mono(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """The mono downmix of each (C, k) block, checked; TrackError at the end if there were no samples."""
    total = 0
    for block in blocks:
        a = np.asarray(block, dtype=np.float32)
        if a.ndim != 2:
            raise TrackError(f"audio blocks must be (channels, samples), got shape {a.shape}")
        total += a.shape[1]
        yield _finite(a.mean(axis=0))
    if total == 0:
        raise TrackError("audio has no samples")


def _mono(audio: np.ndarray) -> np.ndarray:
    """(N,) float32 mono downmix of (C, N) or (N,) audio; TrackError if unusable."""
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] == 0:
        raise TrackError(f"audio must be (channels, samples) with samples > 0, got shape {np.shape(audio)}")
    if a.shape[0] > a.shape[1]:
        raise TrackError(f"audio shape {a.shape} looks like (samples, channels): pass (channels, samples)")
    return _finite(a.mean(axis=0))


def _finite(mono: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(mono)):
        raise TrackError("audio holds NaN or infinite samples")
    return mono


def audio_onsets(envelope: np.ndarray, cfg: OnsetConfig = OnsetConfig()) -> Events:
    """Onset frames of an onset envelope (K,): peaks above an adaptive threshold, `spacing` frames apart."""
    env = np.nan_to_num(np.asarray(envelope, float), nan=0.0)
    if env.size == 0 or env.max() <= 0:
        return Events(np.zeros(0, int), np.zeros(0), ())
    median = local_stat(env, cfg.window, np.nanmedian)
    threshold = np.maximum(median + cfg.margin, cfg.ratio * median)  # (K,)
    threshold = np.maximum(threshold, cfg.relative * local_stat(env, cfg.context, np.nanmax))
    left = np.concatenate([[-np.inf], env[:-1]])
    right = np.concatenate([env[1:], [-np.inf]])
    candidates = np.flatnonzero((env >= left) & (env > right) & (env >= threshold))
    keep: list[int] = []
    for i in candidates[np.argsort(-env[candidates], kind="stable")]:
        if all(abs(i - j) >= cfg.spacing for j in keep):
            keep.append(int(i))
    frames = np.array(sorted(keep), int)
    return Events(frames, env[frames], ("onset",) * len(frames))
