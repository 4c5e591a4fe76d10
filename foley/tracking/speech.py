"""Is the sound speech, and when: a streamed speech-band envelope per video frame, and a speech test.

Faces are candidates only when someone may be talking (`speech_like`), since finding them costs
more than the motion tracker. Speech puts most of its energy in the telephone band (300-3400 Hz)
and switches on and off at the syllable rate: its band envelope is modulated at 2-8 Hz (Houtgast &
Steeneken's modulation transfer: intelligibility lives there). A bell every second, a hum or an
engine fail one test or the other. The test only decides whether faces are worth looking for: a
sound taken for speech where no face talks costs time, never the choice.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
from scipy.signal import butter, sosfilt

from foley.errors import TrackError

BAND = (300.0, 3400.0)  # Hz
MIN_BAND_SHARE = 0.3  # speech-like: at least this share of the energy in the band (a film's dialogue over
# its score: 44%) ...
MIN_SYLLABIC = 0.3  # ... and at least this share of the envelope's variance at 2-8 Hz (that dialogue: 39%)
SYLLABIC = (2.0, 8.0)  # Hz


class SpeechMeter:
    """Feed (C, k) or (k,) blocks at `sr` (`feed`); `band` and `total` give the (n_frames,) RMS of the
    speech band and of the whole signal over each video frame [k / fps, (k + 1) / fps)."""

    def __init__(self, sr: int, fps: float, n_frames: int) -> None:
        if not (fps > 0 and math.isfinite(fps)) or n_frames < 1 or not sr > 2 * BAND[1] / 0.9:
            raise TrackError(f"need fps > 0, n_frames >= 1 and sr > {2 * BAND[1] / 0.9:.0f} Hz")
        self.sr, self.fps, self.n = sr, fps, n_frames
        self.sos = butter(4, list(BAND), btype="bandpass", fs=sr, output="sos")
        self.zi = np.zeros((self.sos.shape[0], 2))
        self.band_energy, self.total_energy = np.zeros(n_frames), np.zeros(n_frames)
        self.count = np.zeros(n_frames)
        self.at = 0  # samples fed

    def feed(self, block: np.ndarray) -> None:
        mono = np.asarray(block, np.float64)
        mono = mono.mean(axis=0) if mono.ndim == 2 else mono  # (k,)
        band, self.zi = sosfilt(self.sos, mono, zi=self.zi)
        frame = np.floor((self.at + np.arange(len(mono))) * self.fps / self.sr).astype(np.int64)
        inside = frame < self.n
        np.add.at(self.band_energy, frame[inside], band[inside] ** 2)
        np.add.at(self.total_energy, frame[inside], mono[inside] ** 2)
        np.add.at(self.count, frame[inside], 1.0)
        self.at += len(mono)

    def feed_all(self, blocks: Iterable[np.ndarray]) -> "SpeechMeter":
        for block in blocks:
            self.feed(block)
        return self

    @property
    def band(self) -> np.ndarray:
        """(n_frames,) RMS of the speech band per video frame, max 1 (all 0 for silence)."""
        rms = np.sqrt(self.band_energy / np.maximum(self.count, 1))
        return rms / float(rms.max()) if rms.max() > 1e-9 else np.zeros(self.n)

    def speech_like(self) -> tuple[bool, str]:
        """Whether the sound may be speech, and the figures that say so."""
        total = float(self.total_energy.sum())
        if total <= 1e-12:
            return False, "the sound is silent"
        share = float(self.band_energy.sum()) / total
        env = np.sqrt(self.band_energy / np.maximum(self.count, 1))
        env = env - env.mean()
        power = np.abs(np.fft.rfft(env)) ** 2  # (F,)
        freqs = np.fft.rfftfreq(len(env), 1.0 / self.fps)
        syllabic = float(power[(freqs >= SYLLABIC[0]) & (freqs <= SYLLABIC[1])].sum()) / max(float(power[1:].sum()), 1e-12)
        ok = share >= MIN_BAND_SHARE and syllabic >= MIN_SYLLABIC
        return ok, (f"{share:.0%} of its energy in {BAND[0]:.0f}-{BAND[1]:.0f} Hz, {syllabic:.0%} of its band "
                    f"envelope's variance at {SYLLABIC[0]:.0f}-{SYLLABIC[1]:.0f} Hz")
