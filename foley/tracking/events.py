"""Motion events of a track, in video frames (the soundtrack's onsets are `foley.tracking.onsets`).

A sound starts when something happens: a floor contact, a strike, a sharp reversal, a start or a
stop. So the audio-guided choice (`foley.tracking.select`) matches these *events* with audio
onsets instead of correlating how much things move with how loud they are.

Motion events come from a track's reliable frames only, positions in half frame widths (y scaled
by the aspect ratio). A real tracker's centroid jitters, drops frames, glitches when blobs touch
and catches up in one-frame jumps, so the path is read through local *hinge* fits: around every
frame k, least squares over the valid frames k-half..k+half of

    p(k + t) = a + b t + c t^2 + d |t - s|        (each axis; s = 0 or +-0.5: a contact between frames)

where c absorbs the steady curvature of an arc or a swing and d is half the jump of velocity at
the kink (b - d just before, b + d just after, for s = 0). The jitter is the MAD of the path's
third differences (zero on a parabola); frames that no window explains (glitches) are dropped, as
are frames whose mass leaps off its neighbours' (a blob cut short or merged). Missing frames are
simply absent from the fits (a gap is bridged by the frames around it, never filled in), and a
frame needs `min_side` valid frames on each side: no event is found inside a gap or at its edge.

- impact / reversal: a local maximum of the kink's z-score |d| / std(d) over `kink_z`, with a
  velocity change 2 |d| of at least `min_change`, in a window the hinge explains, sharper than the
  curvature (`kink_rel`), and borne out by the median frame-to-frame steps either side (`agree`:
  a tracker's one-frame jump bends a hinge, not the median steps). Wide fits (+-`wide` frames:
  longer arms see a kink through more jitter) add the kinks where the velocity reverses. "reversal" when the
  velocity in the kink's axis changes sign, both sides clearing the jitter.
- start / stop: speed crossing `moving` times the track's typical top speed after (before) at
  least `hold` frames of rest, abruptly (a smooth swing slowing down at its ends is no event).
- peak: a speed maximum at least twice the speed a few frames either side (a swing, a whoosh),
  away from kinks (whose fits bias the speed around them).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

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

    half: int = 3  # frames either side of the local hinge fit
    wide: int = 6  # frames either side of the wide hinge fit (reversals only)
    min_side: int = 2  # reliable frames needed on each side of a frame (and the frame itself)
    kink_z: float = 4.0  # impact: |d| >= this x its standard deviation under the jitter ...
    kink_rel: float = 1.0  # ... and >= this x |c| x half (the slope the curvature c adds across the window) ...
    agree: float = 0.5  # ... and the median steps after minus before change by >= this x 2 |d|, the same way
    min_change: float = 0.004  # impact: velocity change 2 |d| >= this (about a pixel at 480 px wide)
    side_z: float = 2.0  # reversal: each one-sided velocity >= this x its standard deviation
    outlier_z: float = 4.0  # a frame whose centre residual is over this x the jitter is dropped
    fit_z: float = 2.5  # a window whose RMS residual is over this x the jitter is not a hinge ...
    fit_rel: float = 0.05  # ... unless it is within this x the kink's reach |d| x half (a smooth non-parabolic arc)
    min_jitter: float = 0.0015  # floor of the jitter estimate (a quarter pixel at 640 px wide)
    mass_glitch: float = 1.5  # a frame whose mass is off the median of +-half frames by this factor is dropped,
    mass_context: int = 12  # ... or off the median of +-this many frames
    moving: float = 0.25  # start/stop: speed threshold as a fraction of the 90th percentile speed
    hold: int = 8  # start/stop: frames at rest on the still side
    abrupt: float = 0.5  # start/stop: mean speed change from 3 frames before to 3 after, x the 90th percentile
    peak_ratio: float = 2.0  # peak: speed >= this x the lowest speed 3 frames either side
    merge: int = 1  # events this close (frames) keep only the strongest


SHIFTS = (0.0, -0.5, 0.5)  # where a frame's kink may lie, in frames from it


@dataclass(frozen=True)
class Hinge:
    """Local hinge fits of a (K, 2) path, one per frame (`hinge_fit`); coef NaN where none was fitted."""

    coef: np.ndarray  # (K, 4, 2) a, b, c, d per axis
    var: np.ndarray  # (K, 3) variance factors (x jitter^2) of d, before, after
    jitter: np.ndarray  # (2,) per-axis jitter (standard deviation of a centroid)
    usable: np.ndarray  # (K,) bool: reliable, enough frames each side, a window the hinge explains
    half: int  # frames either side of each fit
    shift: np.ndarray  # (K,) where the kink lies, in frames from k: -0.5, 0 or 0.5

    @property
    def before(self) -> np.ndarray:
        """(K, 2) velocity just before the kink, b + 2 c shift - d."""
        return self.coef[:, 1] + 2 * self.coef[:, 2] * self.shift[:, None] - self.coef[:, 3]

    @property
    def after(self) -> np.ndarray:
        """(K, 2) velocity just after the kink, b + 2 c shift + d."""
        return self.coef[:, 1] + 2 * self.coef[:, 2] * self.shift[:, None] + self.coef[:, 3]


def positions(track: Track) -> np.ndarray:
    """(K, 2) centroid in half frame widths (y scaled by height / width), NaN where not reliable."""
    aspect = track.frame_size[1] / track.frame_size[0] if track.frame_size else 1.0
    p = np.stack([track.x, track.y * aspect], axis=1)  # (K, 2)
    p[~track.reliable] = np.nan
    return p


def steady_positions(track: Track, cfg: EventConfig = EventConfig()) -> np.ndarray:
    """(K, 2) `positions`, also NaN where the mass is off the median of its +-half or +-mass_context
    neighbours by more than `mass_glitch`: a blob cut short, merged with another or half out of the
    frame (its centroid jumps, the object does not)."""
    p = positions(track)
    mass = np.where(track.reliable & (track.mass > 0), track.mass, np.nan)
    for half in (cfg.half, cfg.mass_context):
        ratio = mass / local_stat(mass, half, np.nanmedian)
        p[~(np.abs(np.log(ratio)) <= np.log(cfg.mass_glitch))] = np.nan
    return p


def smooth_speed(p: np.ndarray) -> np.ndarray:
    """(K,) speed of a (K, 2) path (NaN = missing) smoothed by [1, 2, 1] / 4: central difference, NaN unless
    k-1..k+1 are valid (sharp enough to time a start or a stop to the frame)."""
    ok = np.isfinite(p[:, 0])
    v = np.where(ok[:, None], p, 0.0)
    w = ok.astype(float)
    num, den = 2 * v, 2 * w
    num[1:] += v[:-1]
    num[:-1] += v[1:]
    den[1:] += w[:-1]
    den[:-1] += w[1:]
    ps = np.where(ok[:, None], num / np.maximum(den, 1e-12)[:, None], np.nan)
    speed = np.full(len(p), np.nan)
    speed[1:-1] = np.linalg.norm(ps[2:] - ps[:-2], axis=1) / 2
    return speed


def hinge_fit(p: np.ndarray, cfg: EventConfig = EventConfig()) -> Hinge:
    """Hinge fits of a (K, 2) path (NaN = missing), robust to the tracker's glitches.

    The kink may lie at the frame or half a frame either side (a contact falls between frames): each
    frame keeps the placement its window fits best. The jitter comes from the path's third
    differences; frames that no window containing them explains within `outlier_z` jitters are
    dropped; the final fit is of the rest. `usable` marks the windows whose RMS residual is within
    `fit_z` jitters (or within `fit_rel` of the kink's reach, for a large arc not quite a parabola).
    """
    valid = np.isfinite(p[:, 0])
    jitter = _jitter(p, cfg)
    first = [_fit(p, valid, cfg, s)[0] for s in SHIFTS]
    best = np.min([_best_residual(p, c, cfg, s) for c, s in zip(first, SHIFTS)], axis=0)  # (K, 2)
    kept = valid & ~np.any(best > cfg.outlier_z * jitter, axis=1)
    fits = [_fit(p, kept, cfg, s) for s in SHIFTS]
    rms = np.stack([np.max(_window_rms(p, kept, c, cfg, s) / jitter, axis=1) for (c, _, _), s in zip(fits, SHIFTS)])
    rms[~np.stack([f for _, _, f in fits])] = np.inf
    pick = np.argmin(rms, axis=0)  # (K,) the best placement of each frame's kink
    rows = np.arange(len(p))
    coef = np.stack([c for c, _, _ in fits])[pick, rows]  # (K, 4, 2)
    inv = np.stack([i for _, i, _ in fits])[pick, rows]  # (K, 4, 4)
    fitted = np.stack([f for _, _, f in fits])[pick, rows]
    reach = np.linalg.norm(np.nan_to_num(coef[:, 3]), axis=1) * cfg.half  # (K,) what the kink moves the ends
    usable = fitted & (rms[pick, rows] <= np.maximum(cfg.fit_z, cfg.fit_rel * reach / jitter.max()))
    var = np.stack([inv[:, 3, 3], inv[:, 1, 1] + inv[:, 3, 3] - 2 * inv[:, 1, 3],
                    inv[:, 1, 1] + inv[:, 3, 3] + 2 * inv[:, 1, 3]], axis=1)  # (K, 3), ignoring the 2 c s term
    return Hinge(coef, var, jitter, usable, cfg.half, np.asarray(SHIFTS)[pick])


def _design(half: int, shift: float = 0.0) -> np.ndarray:
    """(T, 4) rows [1, t, t^2, |t - shift|] for t = -half..half."""
    t = np.arange(-half, half + 1, dtype=float)
    return np.stack([np.ones_like(t), t, t * t, np.abs(t - shift)], axis=1)


def _windows(a: np.ndarray, half: int, fill) -> np.ndarray:
    """(K, T, ...) a[k - half .. k + half] per frame, `fill` beyond the ends."""
    pad = np.full((half,) + a.shape[1:], fill, dtype=a.dtype)
    padded = np.concatenate([pad, a, pad])
    return np.moveaxis(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=0), -1, 1)


def _fit(p: np.ndarray, valid: np.ndarray, cfg: EventConfig,
         shift: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least squares of the hinge at every frame: (K, 4, 2) coefficients, (K, 4, 4) (X'WX)^-1, (K,) fitted."""
    h = cfg.half
    x = _design(h, shift)  # (T, 4)
    m = _windows(valid, h, False).astype(float)  # (K, T)
    y = _windows(np.where(valid[:, None], p, 0.0), h, 0.0)  # (K, T, 2)
    fitted = valid & (m[:, :h].sum(1) >= cfg.min_side) & (m[:, h + 1:].sum(1) >= cfg.min_side)
    coef = np.full((len(p), 4, 2), np.nan)
    inv = np.full((len(p), 4, 4), np.nan)
    if fitted.any():
        a = np.einsum("kt,ti,tj->kij", m[fitted], x, x)  # (F, 4, 4)
        b = np.einsum("kt,ti,ktc->kic", m[fitted], x, y[fitted])  # (F, 4, 2)
        inv[fitted] = np.linalg.pinv(a)
        coef[fitted] = inv[fitted] @ b
    return coef, inv, fitted


def _jitter(p: np.ndarray, cfg: EventConfig) -> np.ndarray:
    """(2,) per-axis jitter of a (K, 2) path, at least min_jitter: 1.4826 x the MAD of its third differences
    over runs of valid frames / sqrt(20) (a parabola's vanish; a kink or a glitch spoils only a few)."""
    d3 = p[3:] - 3 * p[2:-1] + 3 * p[1:-2] - p[:-3]  # (K-3, 2), NaN unless 4 valid frames in a row
    d3 = d3[np.isfinite(d3[:, 0])]
    if len(d3) < 2 * cfg.half + 1:
        return np.full(2, cfg.min_jitter)
    mad = np.median(np.abs(d3 - np.median(d3, axis=0)), axis=0)
    return np.maximum(1.4826 * mad / np.sqrt(20.0), cfg.min_jitter)


def _best_residual(p: np.ndarray, coef: np.ndarray, cfg: EventConfig, shift: float = 0.0) -> np.ndarray:
    """(K, 2) per frame, the smallest |residual| under any fitted window containing it (inf if none)."""
    h = cfg.half
    pred = np.einsum("ti,kic->ktc", _design(h, shift), coef)  # (K, T, 2): window centred at j, offset t
    best = np.full(p.shape, np.inf)
    for i in range(2 * h + 1):
        s = i - h  # frame j + s
        lo, hi = max(0, -s), min(len(p), len(p) - s)  # centres j with frame j + s inside
        r = np.abs(p[lo + s:hi + s] - pred[lo:hi, i])
        best[lo + s:hi + s] = np.fmin(best[lo + s:hi + s], np.where(np.isfinite(r), r, np.inf))
    return best


def _window_rms(p: np.ndarray, valid: np.ndarray, coef: np.ndarray, cfg: EventConfig,
                shift: float = 0.0) -> np.ndarray:
    """(K, 2) RMS residual of each frame's hinge over its window's valid frames (per degree of freedom)."""
    h = cfg.half
    m = _windows(valid, h, False)  # (K, T)
    y = _windows(np.where(valid[:, None], p, 0.0), h, 0.0)  # (K, T, 2)
    r = np.where(m[..., None], y - np.einsum("ti,kic->ktc", _design(h, shift), np.nan_to_num(coef)), 0.0)
    dof = np.maximum(m.sum(1) - 4, 1)[:, None]
    return np.sqrt((r ** 2).sum(1) / dof)


def motion_events(track: Track, cfg: EventConfig = EventConfig()) -> Events:
    """Impacts, reversals, starts, stops and speed peaks of a track, from its reliable frames."""
    p = steady_positions(track, cfg)
    fit = hinge_fit(p, cfg)
    if fit.usable.sum() < 2 * cfg.half + 1:
        return Events(np.zeros(0, int), np.zeros(0), ())
    floor = max(cfg.min_change, cfg.side_z * float(fit.jitter.max()))  # speeds below: jitter
    wide = hinge_fit(p, replace(cfg, half=cfg.wide, fit_rel=0.0))  # a wide arm is not sub-frame sensitive
    impacts = _impacts(p, fit, wide, cfg)
    speed = np.where(fit.usable, np.linalg.norm(fit.coef[:, 1], axis=1), np.nan)  # (K,) centre velocity b
    for k in impacts[0]:
        speed[max(k - cfg.half - 1, 0):k + cfg.half + 2] = np.nan  # a kink's fits bias the speed around it
    found = [impacts, _starts_stops(smooth_speed(p), floor, cfg), _speed_peaks(speed, floor, cfg)]
    frames = np.concatenate([f for f, _, _ in found]).astype(int)
    strength = np.concatenate([s for _, s, _ in found])
    kinds = sum((list(k) for _, _, k in found), [])
    return _merge(frames, strength, kinds, cfg.merge)


def local_stat(a: np.ndarray, half: int, fn) -> np.ndarray:
    """(K,) fn (nanmax / nanmedian / nanmin) of a over k-half..k+half, NaN where all are NaN."""
    pad = np.concatenate([np.full(half, np.nan), a, np.full(half, np.nan)])
    win = np.lib.stride_tricks.sliding_window_view(pad, 2 * half + 1)  # (K, 2 half + 1)
    out = np.full(len(a), np.nan)
    some = np.isfinite(win).any(axis=1)
    out[some] = fn(win[some], axis=1)
    return out


def _impacts(p: np.ndarray, fine: Hinge, wide: Hinge, cfg: EventConfig):
    """Kinks: local maxima of the hinge's z-score over kink_z with a velocity change >= min_change, from the
    fine fits, or from the wide ones where the velocity reverses (their longer arms see a kink under more
    jitter; a reversal is what a tracker's steps and drifts do not make)."""
    z, flips, sharp = _kinks(fine, p, cfg)
    zw, flips_w, sharp_w = _kinks(wide, p, cfg)
    fine_z, wide_z = np.where(sharp, z, np.nan), np.where(flips_w & sharp_w, zw, np.nan)
    score = np.fmax(fine_z, wide_z)  # (K,)
    peak = score >= np.nan_to_num(local_stat(score, cfg.half, np.nanmax), nan=np.inf)
    k = np.flatnonzero(peak & (score >= cfg.kink_z))
    reverses = np.where(np.nan_to_num(fine_z, nan=-np.inf) >= np.nan_to_num(wide_z, nan=-np.inf), flips, True)
    return k, score[k] / cfg.kink_z, ["reversal" if f else "impact" for f in reverses[k]]


def _kinks(fit: Hinge, p: np.ndarray, cfg: EventConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: (K,) z-score |d| / std(d), largest over the axes (NaN where unusable or the change is
    under min_change); (K,) whether the velocity in the kink's axis changes sign, both sides clearing
    the jitter, in the hinge and in the median steps; (K,) whether the kink is sharp in its axis: it
    outweighs the curvature (|d| >= kink_rel x |c| x half) and the median steps agree."""
    d = fit.coef[:, 3]  # (K, 2)
    z = np.abs(d) / (np.sqrt(fit.var[:, :1]) * fit.jitter)  # (K, 2)
    big = 2 * np.linalg.norm(np.nan_to_num(d), axis=1) >= cfg.min_change
    sharp = np.abs(d) >= cfg.kink_rel * np.abs(fit.coef[:, 2]) * fit.half  # (K, 2) a kink, not a turn's curvature
    z = np.where(fit.usable & big, np.fmax(z[:, 0], z[:, 1]), np.nan)  # (K,)
    before, after = fit.before, fit.after  # (K, 2)
    clear_b = np.abs(before) >= cfg.side_z * np.sqrt(fit.var[:, 1:2]) * fit.jitter
    clear_a = np.abs(after) >= cfg.side_z * np.sqrt(fit.var[:, 2:3]) * fit.jitter
    flips = (np.sign(before) * np.sign(after) < 0) & clear_b & clear_a  # (K, 2)
    axis = np.argmax(np.nan_to_num(np.abs(d) / np.sqrt(fit.var[:, :1])), axis=1)  # (K,) the kink's axis
    rows = np.arange(len(z))
    agree, reverse = _steps_agree(p, fit, cfg)
    flips &= reverse
    return z, flips[rows, axis] & np.isfinite(z), (sharp & agree)[rows, axis]


def _steps_agree(p: np.ndarray, fit: Hinge, cfg: EventConfig) -> tuple[np.ndarray, np.ndarray]:
    """(K, 2) whether the median frame-to-frame step over `half` steps after the kink minus that before
    changes as the hinge says (same sign as d, at least `agree` x 2 |d|), and (K, 2) whether those
    medians have opposite signs, each at least a jitter. A one-frame jump of a tracker (its centroid
    catching up, a glitch) makes a hinge of a few frames bend, but not the median steps."""
    h = fit.half
    steps = np.concatenate([p[1:] - p[:-1], np.full((1, 2), np.nan)])  # (K, 2): step j is p[j + 1] - p[j]
    pad = np.full((h, 2), np.nan)
    win = np.lib.stride_tricks.sliding_window_view(np.concatenate([pad, steps, pad]), h, axis=0)  # (K + h + 1, 2, h)
    enough = np.isfinite(win).sum(axis=2) >= min(2, h)
    med = np.full(win.shape[:2], np.nan)
    med[enough] = np.nanmedian(win[enough], axis=1)  # med[i]: steps i - h .. i - 1
    k = np.arange(len(p))
    last = k - 1 - (fit.shift < 0)  # the last step wholly before the kink
    first = k + (fit.shift > 0)  # the first step wholly after it
    before = med[np.clip(last + 1, 0, len(med) - 1)]  # steps last - h + 1 .. last
    after = med[np.clip(first + h, 0, len(med) - 1)]  # steps first .. first + h - 1
    change = after - before  # (K, 2)
    d = fit.coef[:, 3]
    agree = (np.sign(change) == np.sign(d)) & (np.abs(change) >= cfg.agree * 2 * np.abs(d))
    reverse = (np.sign(before) * np.sign(after) < 0) & (np.minimum(np.abs(before), np.abs(after)) >= fit.jitter)
    return agree, reverse


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
