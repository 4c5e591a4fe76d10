"""Sample-rate conversion of arrays: one polyphase resampler for every in-memory caller."""
from __future__ import annotations

import math

import numpy as np
from scipy.signal import resample_poly


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """(..., N) float at sr_in -> float32 at sr_out (polyphase, along the last axis)."""
    if sr_in == sr_out:
        return np.ascontiguousarray(audio, np.float32)
    g = math.gcd(int(sr_in), int(sr_out))
    return resample_poly(audio, int(sr_out) // g, int(sr_in) // g, axis=-1).astype(np.float32)
