"""Motion events of a track and onsets of a soundtrack, both in video frames.

A sound starts when something happens: a floor contact, a strike, a sharp reversal, a start or a
stop. So the audio-guided choice (`foley.tracking.select`) matches these *events* with audio
onsets instead of correlating how much things move with how loud they are.

Motion events come from a track's reliable frames only, positions in half frame widths (y scaled
by the aspect ratio), smoothed by [1, 2, 1] / 4 over reliable neighbours so that a tracker's
centroid jitter of a pixel or two does not make events:

- impact / reversal: a peak of |acceleration| (second difference) that is large against the
  track's own speed around it (`sharpness`), stands out of its neighbourhood (a kink, not the
  steady curvature of a smooth swing) and clears the track's jitter floor; "reversal" when a
  velocity component changes sign across it.
- start / stop: speed crossing `moving` times the track's typical top speed after (before) at
  least `hold` frames of rest, abruptly (a smooth swing slowing down at its ends is no event).
- peak: a speed maximum at least twice the speed a few frames either side (a swing, a whoosh).

Audio onsets are peaks of the spectral-flux envelope (`select.onset_envelope`) above an adaptive
threshold (local median plus a margin, and a multiple of it), at least `spacing` frames apart
(Bello et al. 2005, §III-B).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from foley.tracks import Track

KINDS = ("impact", "reversal", "start", "stop", "peak", "onset")


@dataclass(frozen=True)
class Events:
    """Events of one track (or onsets of one sound), sorted by frame."""

    frames: np.ndarray  # (E,) int, increasing
    strength: np.ndarray  # (E,) float > 0, comparable within one kind
    kinds: tuple[str, ...] = field(default=())  # (E,) one of KINDS

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class EventConfig:
    """Thresholds of motion event detection; lengths in half frame widths, times in frames."""

    sharpness: float = 0.3  # impact: |acceleration| >= this x local top speed
    kink: float = 3.0  # impact: |acceleration| >= this x its median within +-window frames
    jitter: float = 4.0  # impact: |acceleration| >= this x the track's median |acceleration|
    min_change: float = 0.004  # impact: |acceleration| >= this (about a pixel at 480 px wide)
    window: int = 4  # frames either side for local speed and local acceleration
    moving: float = 0.25  # start/stop: speed threshold as a fraction of the 90th percentile speed
    hold: int = 8  # start/stop: frames at rest on the still side
    abrupt: float = 0.5  # start/stop: mean speed change from 3 frames before to 3 after, x the 90th percentile
    peak_ratio: float = 2.0  # peak: speed >= this x the lowest speed 3 frames either side
    merge: int = 1  # events this close (frames) keep only the strongest


@dataclass(frozen=True)
class OnsetConfig:
    """Peak picking of an onset envelope (max 1), in frames."""

    spacing: int = 3  # minimum distance between onsets
    window: int = 12  # frames either side for the local median
    margin: float = 0.05  # onset >= local median + margin ...
    ratio: float = 1.5  # ... and >= ratio x local median (steady noise has no onsets)


def positions(track: Track) -> np.ndarray:
    """(K, 2) centroid in half frame widths (y scaled by height / width), NaN where not reliable."""
    aspect = track.frame_size[1] / track.frame_size[0] if track.frame_size else 1.0
    p = np.stack([track.x, track.y * aspect], axis=1)  # (K, 2)
    p[~track.reliable] = np.nan
    return p


def smooth_path(p: np.ndarray) -> np.ndarray:
    """(K, 2) [1, 2, 1] / 4 average over reliable neighbours; NaN stays NaN."""
    ok = np.isfinite(p[:, 0])
    w = ok.astype(float)
    v = np.where(ok[:, None], p, 0.0)
    num = 2 * v
    den = 2 * w
    num[1:] += v[:-1]
    num[:-1] += v[1:]
    den[1:] += w[:-1]
    den[:-1] += w[1:]
    out = num / np.maximum(den, 1e-12)[:, None]
    out[~ok] = np.nan
    return out


def kinematics(track: Track) -> tuple[np.ndarray, np.ndarray]:
    """(K, 2) velocity and (K,) |acceleration| per frame of the smoothed path; NaN unless k-1..k+1 are reliable."""
    ps = smooth_path(positions(track))
    vel = np.full_like(ps, np.nan)
    acc = np.full(len(ps), np.nan)
    if len(ps) >= 3:
        vel[1:-1] = (ps[2:] - ps[:-2]) / 2
        acc[1:-1] = np.linalg.norm(ps[2:] - 2 * ps[1:-1] + ps[:-2], axis=1)
    return vel, acc


def motion_events(track: Track, cfg: EventConfig = EventConfig()) -> Events:
    """Impacts, reversals, starts, stops and speed peaks of a track, from its reliable frames."""
    vel, acc = kinematics(track)
    speed = np.linalg.norm(vel, axis=1)  # (K,)
    if min(np.isfinite(speed).sum(), np.isfinite(acc).sum()) < 2 * cfg.window + 1:
        return Events(np.zeros(0, int), np.zeros(0), ())
    floor = max(cfg.min_change, cfg.jitter * float(np.nanmedian(acc)))  # below: jitter
    found = [_impacts(vel, acc, speed, floor, cfg), _starts_stops(speed, floor, cfg), _speed_peaks(speed, floor, cfg)]
    frames = np.concatenate([f for f, _, _ in found]).astype(int)
    strength = np.concatenate([s for _, s, _ in found])
    kinds = sum((list(k) for _, _, k in found), [])
    return _merge(frames, strength, kinds, cfg.merge)


def _local(a: np.ndarray, half: int, fn) -> np.ndarray:
    """(K,) fn (nanmax / nanmedian / nanmin) of a over k-half..k+half, NaN where all are NaN."""
    pad = np.concatenate([np.full(half, np.nan), a, np.full(half, np.nan)])
    win = np.lib.stride_tricks.sliding_window_view(pad, 2 * half + 1)  # (K, 2 half + 1)
    out = np.full(len(a), np.nan)
    some = np.isfinite(win).any(axis=1)
    out[some] = fn(win[some], axis=1)
    return out


def _impacts(vel: np.ndarray, acc: np.ndarray, speed: np.ndarray, floor: float, cfg: EventConfig):
    """Sharp velocity changes: local maxima of |acceleration| above `floor`, sharp and standing out."""
    top = np.maximum(_local(speed, cfg.window, np.nanmax), cfg.min_change)  # (K,)
    around = _local(acc, cfg.window, np.nanmedian)
    peak = acc >= np.nan_to_num(_local(acc, 1, np.nanmax), nan=np.inf)
    ratio = acc / top
    ok = peak & (acc >= floor) & (acc >= cfg.kink * around) & (ratio >= cfg.sharpness)
    k = np.flatnonzero(ok)
    before = vel[np.maximum(k - 1, 0)]
    after = vel[np.minimum(k + 1, len(vel) - 1)]
    flips = (np.sign(before) * np.sign(after) < 0).any(axis=1)
    return k, ratio[k], ["reversal" if f else "impact" for f in flips]


def _starts_stops(speed: np.ndarray, floor: float, cfg: EventConfig):
    """Speed crossing the `moving` threshold (at least `floor` / 2) after (before) `hold` frames of rest, abruptly."""
    top = float(np.nanpercentile(speed, 90))
    if top < floor / 2:
        return np.zeros(0, int), np.zeros(0), []
    moving = np.where(np.isfinite(speed), speed > max(cfg.moving * top, floor / 2), np.nan)  # speed jitter ~ half
    s = np.nan_to_num(speed, nan=0.0)
    frames, kinds = [], []
    for k in range(cfg.hold, len(speed) - cfg.hold):
        change = s[k + 1:k + 4].mean() - s[k - 3:k].mean()  # 3 frames after - 3 before
        abrupt = abs(change) >= cfg.abrupt * top  # not the slow turn at the end of a swing
        if abrupt and change > 0 and np.all(moving[k - cfg.hold:k] == 0) and np.all(moving[k:k + 3] == 1):
            frames.append(k), kinds.append("start")
        if abrupt and change < 0 and np.all(moving[k:k + cfg.hold] == 0) and np.all(moving[k - 3:k] == 1):
            frames.append(k), kinds.append("stop")
    strength = [float(np.nanmax(speed[max(k - 3, 0):k + 4]) / top) for k in frames]
    return np.array(frames, int), np.array(strength, float), kinds


def _speed_peaks(speed: np.ndarray, floor: float, cfg: EventConfig):
    """Speed maxima above `floor`, standing `peak_ratio` times above the slowest frame 3 frames either side."""
    top = float(np.nanpercentile(speed, 90))
    if top < floor:
        return np.zeros(0, int), np.zeros(0), []
    k = np.arange(3, len(speed) - 3)
    s = speed[k]
    left = np.min(np.stack([speed[k - d] for d in (1, 2, 3)]), axis=0)
    right = np.min(np.stack([speed[k + d] for d in (1, 2, 3)]), axis=0)
    is_max = (s >= speed[k - 1]) & (s > speed[k + 1])
    ok = is_max & (s > max(cfg.moving * top, floor)) & (s >= cfg.peak_ratio * np.maximum(left, right))
    ok &= np.isfinite(left) & np.isfinite(right)
    k = k[ok]
    return k, speed[k] / top, ["peak"] * len(k)


def _merge(frames: np.ndarray, strength: np.ndarray, kinds: list[str], gap: int) -> Events:
    """Keep the strongest of events within `gap` frames of a stronger one; sorted by frame."""
    keep: list[int] = []
    for i in np.argsort(-strength, kind="stable"):
        if all(abs(frames[i] - frames[j]) > gap for j in keep):
            keep.append(int(i))
    keep.sort(key=lambda i: frames[i])
    idx = np.array(keep, int)
    return Events(frames[idx], strength[idx], tuple(kinds[i] for i in keep))


def audio_onsets(envelope: np.ndarray, cfg: OnsetConfig = OnsetConfig()) -> Events:
    """Onset frames of an onset envelope (K,): peaks above an adaptive threshold, `spacing` frames apart."""
    env = np.nan_to_num(np.asarray(envelope, float), nan=0.0)
    if env.size == 0 or env.max() <= 0:
        return Events(np.zeros(0, int), np.zeros(0), ())
    median = _local(env, cfg.window, np.nanmedian)
    threshold = np.maximum(median + cfg.margin, cfg.ratio * median)  # (K,)
    left = np.concatenate([[-np.inf], env[:-1]])
    right = np.concatenate([env[1:], [-np.inf]])
    candidates = np.flatnonzero((env >= left) & (env > right) & (env >= threshold))
    keep: list[int] = []
    for i in candidates[np.argsort(-env[candidates], kind="stable")]:
        if all(abs(i - j) >= cfg.spacing for j in keep):
            keep.append(int(i))
    frames = np.array(sorted(keep), int)
    return Events(frames, env[frames], ("onset",) * len(frames))
