"""Checks of a clip against its ground truth: BAS where an object is heard, and sound onsets vs events.

BAS over all frames mixes two things: where the object is placed, and frames where the object is
silent (a ball between bounces) so the centred ambience decides the bin. `dominant_bas` scores only
the frames where one object's rendered sound is `margin_db` above everything else in the mix (the
other objects and the ambience): the frames where its placement can be heard.
"""
from __future__ import annotations

import math

import numpy as np

from foley.metrics import audio_position, frame_energies, position_bin
from foley.tracks import Track
from foley.world.audio import distance_scaled


def dominant_frames(stems: np.ndarray, ambience: np.ndarray, tracks: list[Track], sr: int,
                    margin_db: float = 10.0) -> np.ndarray:
    """(O, K) bool: object o's distance-scaled sound is `margin_db` above the rest in frame k."""
    k = len(tracks[0])
    scaled = [distance_scaled(s, t, sr) for s, t in zip(stems, tracks)]
    e = _energies(np.stack(scaled + [ambience]), sr, tracks[0].fps, k)  # (O + 1, K)
    rest = e.sum(axis=0, keepdims=True) - e[:-1]  # (O, K)
    return e[:-1] > rest * 10 ** (margin_db / 10)


MISSES = ("right", "another object", "centre", "elsewhere")


def _placements(stereo: np.ndarray, stems: np.ndarray, ambience: np.ndarray, tracks: list[Track], sr: int,
                margin_db: float, centre: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(O, K) frames each object dominates and the audio is heard, the audio's position bin (K,), and each
    object's position bin (O, K): what `dominant_bas` and `dominant_misses` both count from."""
    dom = dominant_frames(stems, ambience, tracks, sr, margin_db)  # (O, K)
    pos = audio_position(stereo, sr, tracks[0].fps, n_frames=len(tracks[0]))
    bins = np.stack([position_bin(t.x, centre) for t in tracks])  # (O, K)
    return dom & ~pos.silent, position_bin(pos.pan, centre), bins


def dominant_misses(stereo: np.ndarray, stems: np.ndarray, ambience: np.ndarray, tracks: list[Track], sr: int,
                    margin_db: float = 10.0, centre: float = 0.05) -> dict[str, int]:
    """Frames where an object dominates, counted by where the audio's position bin falls (`MISSES`): on the
    object's bin, on another object's bin in that frame (the wrong object was placed), centred, or elsewhere."""
    judged, heard, bins = _placements(stereo, stems, ambience, tracks, sr, margin_db, centre)
    out = dict.fromkeys(MISSES, 0)
    for o, sel in enumerate(judged):
        right = heard == bins[o]
        other = np.any(np.delete(bins, o, axis=0) == heard, axis=0) & ~right
        out["right"] += int((sel & right).sum())
        out["another object"] += int((sel & other).sum())
        out["centre"] += int((sel & ~right & ~other & (heard == 0)).sum())
        out["elsewhere"] += int((sel & ~right & ~other & (heard != 0)).sum())
    return out


def _energies(signals: np.ndarray, sr: int, fps: float, k: int) -> np.ndarray:
    """(C, K) energy of each row of (C, N) in each video frame (pairs through `frame_energies`)."""
    rows = list(signals)
    if len(rows) % 2:
        rows.append(np.zeros_like(rows[0]))
    e = np.concatenate([frame_energies(np.stack(rows[i:i + 2]), sr, fps, k) for i in range(0, len(rows), 2)])
    return e[: signals.shape[0]]


def dominant_bas(stereo: np.ndarray, stems: np.ndarray, ambience: np.ndarray, tracks: list[Track], sr: int,
                 margin_db: float = 10.0, centre: float = 0.05) -> list[float]:
    """Per object, BAS (StereoFoley §3.3) over the frames where it dominates the mix; NaN if it never does."""
    judged, heard, bins = _placements(stereo, stems, ambience, tracks, sr, margin_db, centre)
    return [float((b == heard)[sel].mean()) if sel.any() else math.nan for sel, b in zip(judged, bins)]


def onsets(signal: np.ndarray, sr: int, hop_s: float = 0.005, window: int = 4, rise_db: float = 9.0,
           floor_db: float = -35.0, refractory_s: float = 0.12) -> np.ndarray:
    """Onset times (s) of a mono signal: energy over `window` hops of 5 ms rises `rise_db` above the
    window just before, within `floor_db` of the loudest; at most one onset per `refractory_s`."""
    hop = int(round(hop_s * sr))
    n = signal.size // hop
    e = np.square(signal[: n * hop].astype(np.float64)).reshape(n, hop).sum(axis=1)  # (H,)
    db = 10 * np.log10(np.convolve(e, np.ones(window), mode="valid") + 1e-20)  # (H - window + 1,) window i..i+w-1
    rise = np.full(db.size, -np.inf)
    rise[window:] = db[window:] - db[:-window]
    hits = np.flatnonzero((rise >= rise_db) & (db >= db.max() + floor_db))
    out, last = [], -math.inf
    for i in hits:
        t = (i + window - 1) * hop_s  # the newest hop of the window
        if t - last >= refractory_s:
            out.append(t)
            last = t
    return np.array(out)
