"""Stereo metrics: audio position per frame, Stereo-Score, BAS (StereoFoley §3.3), pan-trajectory error."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from foley.errors import AudioError
from foley.spatial import SpatialConfig, check_audio, condition_track, pan_of_energies
from foley.tracks import Track


@dataclass(frozen=True)
class AudioPosition:
    """Per-video-frame horizontal position of a stereo signal's energy."""

    com: np.ndarray  # (K,) energy centre of mass (E_R - E_L) / (E_R + E_L), in [-1, 1]
    pan: np.ndarray  # (K,) the same on the pan-law scale: w = (4/pi) atan2(rms_R, rms_L) - 1
    silent: np.ndarray  # (K,) bool, frame too quiet to have a position


def frame_energies(stereo: np.ndarray, sr: int, fps: float, n_frames: int | None = None) -> np.ndarray:
    """(2, K) energy of each channel in each video frame's window [k/fps, (k+1)/fps)."""
    stereo = check_audio(stereo, "stereo audio")
    if stereo.ndim != 2 or stereo.shape[0] != 2:
        raise AudioError(f"expected stereo audio of shape (2, N), got {stereo.shape}")
    n_frames = n_frames or int(math.floor(stereo.shape[1] * fps / sr))
    edges = np.round(np.arange(n_frames + 1) * sr / fps).astype(np.int64)  # (K+1,)
    edges = np.clip(edges, 0, stereo.shape[1])
    # in float64: a float32 running sum stops growing once it is large, and the quiet frames late in a loud
    # file (a decaying tail) then come out with zero energy in one channel and a pan of -1 or +1
    csum = np.concatenate([np.zeros((2, 1)), np.cumsum(np.square(stereo, dtype=np.float64), axis=1)], axis=1)  # (2, N+1)
    return csum[:, edges[1:]] - csum[:, edges[:-1]]  # (2, K)


def audio_position(stereo: np.ndarray, sr: int, fps: float, n_frames: int | None = None,
                   silence_db: float = -60.0) -> AudioPosition:
    """Energy centre of mass and its pan-law inverse per frame; frames `silence_db` under the loudest are silent.

    Under the equal-power law (eq. 3) the energy centre of mass is sin(pi w / 2); `pan` inverts the law,
    w = (4/pi) atan2(rms_R, rms_L) - 1, so it is on the same scale as a track's x.
    """
    return position_of_energies(frame_energies(stereo, sr, fps, n_frames), silence_db)


def position_of_energies(e: np.ndarray, silence_db: float = -60.0) -> AudioPosition:
    """`audio_position` from per-frame channel energies (2, K), as `frame_energies` gives them (streamed
    callers add them up block by block); no frames give empty arrays."""
    total = e.sum(axis=0)
    floor = max(float(total.max(initial=0.0)) * 10 ** (silence_db / 10), 1e-20)
    silent = total <= floor
    safe = np.where(silent, 1.0, total)
    com = np.where(silent, 0.0, (e[1] - e[0]) / safe)
    pan = pan_of_energies(e[0], e[1])
    return AudioPosition(com=com, pan=np.where(silent, 0.0, pan), silent=silent)


def stereo_score(stereo: np.ndarray) -> float:
    """Stereo-Score: mean absolute inter-channel difference normalised by level, in [0, 1].

        SS = sum_n |L[n] - R[n]| / sum_n (|L[n]| + |R[n]|)

    0 for dual-mono, 1 for a hard-panned source (one channel silent), 1/sqrt(2) for two uncorrelated
    equal-level Gaussian channels, |gL - gR| / (gL + gR) for any source panned with gains gL, gR.
    (The paper's wording, "average absolute inter-channel difference normalized by power", leaves the
    normaliser open; this choice is scale-invariant and bounded by the triangle inequality.)
    """
    stereo = check_audio(stereo, "stereo audio")
    if stereo.ndim != 2 or stereo.shape[0] != 2:
        raise AudioError(f"expected stereo audio of shape (2, N), got {stereo.shape}")
    level = float(np.sum(np.abs(stereo)))
    return float(np.sum(np.abs(stereo[0] - stereo[1])) / level) if level > 0 else 0.0


def position_bin(w: np.ndarray, centre: float = 0.05) -> np.ndarray:
    """-1 (left), 0 (centre, |w| <= centre), +1 (right)."""
    return np.where(np.abs(w) <= centre, 0, np.sign(w)).astype(np.int8)


@dataclass(frozen=True)
class StereoReport:
    """Stereo placement of an audio clip against an object's track."""

    stereo_score: float
    bas_in: float  # BAS over frames with the object on screen (|x| <= 1)
    bas_off: float  # BAS over off-frame frames (|x| > 1); NaN if none
    bas: float  # BAS over all scored frames
    mae_in: float  # mean |pan - clip(x)| in-frame
    mae_off: float
    mae: float
    frames_in: int
    frames_off: int
    frames_silent: int

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else math.nan


def evaluate(stereo: np.ndarray, sr: int, track: Track, centre: float = 0.05,
             cfg: SpatialConfig = SpatialConfig()) -> StereoReport:
    """Stereo-Score, BAS (in-frame, off-frame, combined; StereoFoley §3.3) and pan MAE against a track.

    Frames where the track has no reliable position are filled by `condition_track` (object permanence),
    reliable frames are taken as they are; silent audio frames are left out.
    """
    x = np.where(track.reliable, track.x, condition_track(track, cfg).x)  # (K,)
    pos = audio_position(stereo, sr, track.fps, n_frames=len(track))
    k = min(len(x), len(pos.pan))
    x, pan, scored = x[:k], pos.pan[:k], ~pos.silent[:k]
    match = position_bin(x, centre) == position_bin(pan, centre)
    err = np.abs(np.clip(x, -1, 1) - pan)
    inside = np.abs(x) <= 1.0
    sel_in, sel_off = scored & inside, scored & ~inside
    return StereoReport(
        stereo_score=stereo_score(stereo),
        bas_in=_mean(match[sel_in]), bas_off=_mean(match[sel_off]), bas=_mean(match[scored]),
        mae_in=_mean(err[sel_in]), mae_off=_mean(err[sel_off]), mae=_mean(err[scored]),
        frames_in=int(sel_in.sum()), frames_off=int(sel_off.sum()), frames_silent=int((~scored).sum()),
    )
