"""SequenceConfig: sample rate, video frame rate and every length derived from them (after MMAudio's
sequence_config.py). One latent frame per video frame: hop = sr / fps samples (1920 at 25 fps, 1600 at 30).
The world, the pipeline, the codec and the trainers take their lengths from here, not from their own sums.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from foley.errors import FoleyError


@dataclass(frozen=True)
class SequenceConfig:
    """48 kHz stereo audio aligned to video at `fps`."""

    sr: int = 48000
    fps: int = 25

    def __post_init__(self) -> None:
        if self.sr <= 0 or self.fps <= 0 or self.sr % self.fps:
            raise FoleyError(f"the sample rate must be a positive multiple of the frame rate, got {self.sr} / {self.fps}")

    @property
    def hop(self) -> int:
        """Audio samples per video (and latent) frame."""
        return self.sr // self.fps

    def frames(self, seconds: float) -> int:
        """Video frames in `seconds` (rounded)."""
        return int(round(seconds * self.fps))

    def samples(self, seconds: float) -> int:
        """Audio samples in `seconds` (rounded)."""
        return int(round(seconds * self.sr))

    def frames_for(self, n_samples: int) -> int:
        """Latent frames covering n_samples (the last one padded)."""
        return math.ceil(n_samples / self.hop)


AUDIO = SequenceConfig()  # foley's audio format: 48 kHz, framed at 25 fps unless a video says otherwise
