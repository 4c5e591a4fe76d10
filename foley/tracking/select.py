"""Audio-guided choice of the sounding object: correlate each track's motion changes with audio onsets.

The score of a track is the Pearson correlation, over its reliable frames, between its motion
energy (how abruptly its centroid and size change, `motion_energy`) and the soundtrack's onset
envelope (spectral flux, `onset_envelope`, Bello et al. 2005), both lightly smoothed so that a
frame of misalignment costs little. It lies in [-1, 1]: near 0 the track's motion says nothing
about the sound, higher means its impacts and sudden moves coincide with the sound's onsets. A
track with too few reliable frames (or no motion, or silence) scores 0.
"""
from __future__ import annotations

import math

import numpy as np

from foley.errors import TrackError
from foley.tracks import Track

_SMOOTH = np.array([1.0, 2.0, 1.0]) / 4.0  # tolerance of about one video frame
MIN_FRAMES = 8  # fewer valid frames than this: score 0


def onset_envelope(audio: np.ndarray, sr: int, fps: float, n_frames: int) -> np.ndarray:
    """(n_frames,) spectral flux of the mono downmix, its peak within half a frame of k/fps, max 1."""
    mono = _mono(audio, sr)
    n_fft = 1 << max(8, int(round(math.log2(sr * 0.02))))  # ~20 ms window
    hop = n_fft // 4
    flux = _spectral_flux(mono, n_fft, hop)  # (T,)
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


def _spectral_flux(mono: np.ndarray, n_fft: int, hop: int, chunk: int = 256) -> np.ndarray:
    """(T,) summed positive increase of log magnitude between successive Hann windows (Bello et al. 2005).

    Computed `chunk` windows at a time, so that long soundtracks need little memory.
    """
    pad = np.concatenate([np.zeros(n_fft // 2, np.float32), mono, np.zeros(n_fft, np.float32)])
    n_win = 1 + (len(pad) - n_fft) // hop
    window = np.hanning(n_fft).astype(np.float32)
    out, last = [], None
    for start in range(0, n_win, chunk):
        idx = np.arange(n_fft)[None, :] + hop * np.arange(start, min(start + chunk, n_win))[:, None]  # (t, n_fft)
        logmag = np.log1p(100.0 * np.abs(np.fft.rfft(pad[idx] * window, axis=1)))  # (t, F)
        if last is not None:
            logmag = np.concatenate([last, logmag])
        out.append(np.maximum(np.diff(logmag, axis=0), 0.0).sum(axis=1))
        last = logmag[-1:]
    return np.concatenate(out)


def _mono(audio: np.ndarray, sr: int) -> np.ndarray:
    """(N,) float32 mono downmix of (C, N) or (N,) audio; TrackError if unusable."""
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] == 0:
        raise TrackError(f"audio must be (channels, samples) with samples > 0, got shape {np.shape(audio)}")
    if a.shape[0] > a.shape[1]:
        raise TrackError(f"audio shape {a.shape} looks like (samples, channels): pass (channels, samples)")
    if not sr > 0:
        raise TrackError(f"sample rate must be positive, got {sr}")
    mono = a.mean(axis=0)
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


def rank_by_audio(tracks: list[Track], audio: np.ndarray, sr: int) -> list[Track]:
    """Tracks sorted best first by `audio_score` against the audio, each with `.score` set.

    Args:
        tracks: tracks of one video (same fps and length).
        audio: (C, N) or (N,) float samples of the video's soundtrack.
        sr: sample rate of `audio`.

    Returns:
        The same tracks, best first; `.score` is the correlation described in this module's docstring.
    """
    if not tracks:
        raise TrackError("no tracks to rank")
    n, fps = len(tracks[0]), tracks[0].fps
    if any(len(t) != n or t.fps != fps for t in tracks):
        raise TrackError("tracks to rank must share one frame rate and length (they come from one video)")
    env = onset_envelope(audio, sr, fps, n)
    scored = [t.with_(score=audio_score(t, env)) for t in tracks]
    return sorted(scored, key=lambda t: t.score, reverse=True)
