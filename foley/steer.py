"""Steer generated stereo towards the object that sounds: per-frame channel gains, nothing else changed.

A generator knows less well than a detector trained for it which of several objects is heard (docs/benchmarks.md:
the DiT's own sounding head reads 0.77 from its features, its audio lands on the right side in 0.62 of those
frames). `steer` moves each frame's energy balance towards the pan-law position of the x the detector names
(`foley.models.sounding`), by gains on the two channels that keep the frame's energy: each channel's content,
timing and timbre stay as generated, only where it sits moves. Frames where the detector names no object, or the
audio is silent, are left as they are.

    y = steer(y, detector.locate(frames).x[0].numpy(), np.ones(k), sr=48000, fps=25)   # all the way, every frame
"""
from __future__ import annotations

import math

import numpy as np

from foley.metrics.stereo import frame_energies
from foley.spatial import pan_of_energies

RAMP_S = 0.004  # gains change over 4 ms at frame edges: no clicks, and each frame's energy is its own gain's


def frame_gains(energies: np.ndarray, x: np.ndarray, weight: np.ndarray, max_gain_db: float = 12.0,
                silence_db: float = -60.0) -> np.ndarray:
    """(2, K) channel gains that move each frame's position (the pan-law inverse of its energies) a share `weight`
    (K,) of the way to x (K,) (NaN: leave the frame), keeping the frame's energy; no gain above `max_gain_db`."""
    e = np.asarray(energies, np.float64)
    total = e.sum(0)
    floor = max(float(total.max(initial=0.0)) * 10 ** (silence_db / 10), 1e-20)
    w = np.nan_to_num(np.clip(weight, 0.0, 1.0)) * np.isfinite(x) * (total > floor)
    now = pan_of_energies(e[0], e[1])
    want = now + w * (np.clip(np.nan_to_num(x), -1.0, 1.0) - now)
    theta = (want + 1.0) * math.pi / 4  # the equal-power law, eq. (3): energy shares cos^2, sin^2
    share = np.stack([np.cos(theta) ** 2, np.sin(theta) ** 2])
    gains = np.sqrt(share * total / np.maximum(e, 1e-30))
    gains = np.minimum(gains, 10 ** (max_gain_db / 20))
    return np.where(w > 0, gains, 1.0)


def steer(stereo: np.ndarray, x: np.ndarray, weight: np.ndarray, sr: int, fps: float,
          max_gain_db: float = 12.0) -> np.ndarray:
    """(2, N) stereo with each video frame k moved a share weight[k] of the way to position x[k] (NaN: as it is).

    Frame k is the window [k/fps, (k+1)/fps), as `foley.metrics.audio_position` measures it; the gains hold through
    each frame and ramp over `RAMP_S` at its edges."""
    k = len(x)
    gains = frame_gains(frame_energies(stereo, sr, fps, k), np.asarray(x, np.float64), np.asarray(weight), max_gain_db)
    edges = np.clip(np.round(np.arange(k + 1) * sr / fps).astype(np.int64), 0, stereo.shape[1])
    per_sample = np.ones((2, stereo.shape[1]))
    per_sample[:, : edges[-1]] = np.repeat(gains, np.diff(edges), axis=1)
    ramp = max(1, int(round(RAMP_S * sr)))
    if ramp > 1:  # a moving average: ramps centred on the frame edges
        kernel = np.ones(ramp) / ramp
        pad = np.pad(per_sample, ((0, 0), (ramp // 2, ramp - 1 - ramp // 2)), mode="edge")
        per_sample = np.stack([np.convolve(p, kernel, mode="valid") for p in pad])
    return (stereo * per_sample).astype(stereo.dtype)
