"""Audio-guided choice of the sounding object: correlate each track's motion changes with audio onsets.

The score of a track is the Pearson correlation, over its reliable frames, between its motion
energy (how abruptly its centroid and size change, `motion_energy`) and the soundtrack's onset
envelope (spectral flux, `onset_envelope`, Bello et al. 2005), both lightly smoothed so that a
frame of misalignment costs little. It lies in [-1, 1]: near 0 the track's motion says nothing
about the sound, higher means its impacts and sudden moves coincide with the sound's onsets. A
track with too few reliable frames (or no motion, or silence) scores 0.
"""
from __future__ import annotations

import itertools
import math
from typing import Iterable, Iterator

import numpy as np

from foley.errors import TrackError
from foley.tracks import Track

_SMOOTH = np.array([1.0, 2.0, 1.0]) / 4.0  # tolerance of about one video frame
MIN_FRAMES = 8  # fewer valid frames than this: score 0


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


def motion_energy(track: Track) -> np.ndarray:
    """(K,) |acceleration| + (|speed| + |Δ size|) / 4 per frame, NaN unless frames k-1..k+1 are reliable.

    Positions are in half frame widths, size is sqrt(mass); all per frame. Acceleration dominates
    (impacts are kinks in the path); size weighs little, and not as a relative change, because
    objects entering or leaving the frame change their visible mass without making a sound.
    """
    ok = track.reliable
    aspect = track.frame_size[1] / track.frame_size[0] if track.frame_size else 1.0
    p = np.stack([track.x, track.y * aspect], axis=1)  # (K, 2), in half frame widths
    p[~ok] = np.nan
    m = np.where(ok, track.mass, np.nan)
    energy = np.full(len(track), np.nan)
    if len(track) < 3:
        return energy
    acc = np.linalg.norm(p[2:] - 2 * p[1:-1] + p[:-2], axis=1)  # (K-2,)
    speed = np.linalg.norm(p[2:] - p[:-2], axis=1) / 2
    size = np.sqrt(m)  # linear size, as a fraction of the frame side
    grow = np.abs(size[2:] - size[:-2]) / 2
    energy[1:-1] = acc + speed / 4 + grow / 4
    return energy


def audio_score(track: Track, envelope: np.ndarray) -> float:
    """Pearson correlation of the smoothed motion energy and onset envelope over valid frames (0 if too few)."""
    e = motion_energy(track)
    valid = np.isfinite(e)
    e_s = np.convolve(np.where(valid, e, 0.0), _SMOOTH, mode="same")
    w = np.convolve(valid.astype(float), _SMOOTH, mode="same")
    e_s = np.where(valid, e_s / np.maximum(w, 1e-9), np.nan)  # smoothing over valid neighbours only
    o_s = np.convolve(envelope, _SMOOTH, mode="same")
    if valid.sum() < MIN_FRAMES:
        return 0.0
    a, b = e_s[valid], o_s[valid]
    if a.std() < 1e-12 or b.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def rank_by_audio(tracks: list[Track], audio: np.ndarray | Iterator[np.ndarray], sr: int) -> list[Track]:
    """Tracks sorted best first by `audio_score` against the audio, each with `.score` set.

    Args:
        tracks: tracks of one video (same fps and length).
        audio: (C, N) or (N,) float samples of the video's soundtrack, or an iterator of (C, k) blocks.
        sr: sample rate of `audio`.

    Returns:
        The same tracks, best first; `.score` is the correlation described in this module's docstring.
    """
    n, fps = _shared_timing(tracks)
    return rank_by_envelope(tracks, onset_envelope(audio, sr, fps, n))


def rank_by_envelope(tracks: list[Track], envelope: np.ndarray) -> list[Track]:
    """`rank_by_audio` given the soundtrack's `onset_envelope` at the tracks' frames, (len(track),)."""
    n, _ = _shared_timing(tracks)
    if np.shape(envelope) != (n,):
        raise TrackError(f"the onset envelope has shape {np.shape(envelope)} but the tracks have {n} frames")
    scored = [t.with_(score=audio_score(t, envelope)) for t in tracks]
    return sorted(scored, key=lambda t: t.score, reverse=True)


def _shared_timing(tracks: list[Track]) -> tuple[int, float]:
    """(frames, fps) shared by all tracks; TrackError if there are none or they differ."""
    if not tracks:
        raise TrackError("no tracks to rank")
    n, fps = len(tracks[0]), tracks[0].fps
    if any(len(t) != n or t.fps != fps for t in tracks):
        raise TrackError("tracks to rank must share one frame rate and length (they come from one video)")
    return n, fps
