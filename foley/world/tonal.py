"""Procedural tonal audio for training the codec beyond the world: voices, tones, glides, bells, bursts.

Every clip is a pure function of (seed, index). Voices are glottal pulse trains with a gliding,
vibrato-modulated f0 through three moving formants and breath noise, in syllables with consonant
bursts; tones hold 1 to 12 harmonics with a slow glide; bells sum inharmonic decaying partials;
1 to 3 of these are mixed and panned (equal-power, StereoFoley eq. 3) over a little coloured noise.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

from foley.spatial import pan_gains

_FORMANTS = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480], [570, 840, 2410],
                      [390, 1990, 2550], [440, 1020, 2240], [660, 1720, 2410]], dtype=float)


def _resonate(x: np.ndarray, fc: np.ndarray, bw: float, sr: int, block: int = 240) -> np.ndarray:
    """Two-pole resonator with a centre frequency that moves per block of samples."""
    out, zi = np.zeros_like(x), np.zeros(2)
    r = math.exp(-math.pi * bw / sr)
    for i in range(0, len(x), block):
        a = [1.0, -2 * r * math.cos(2 * math.pi * fc[i] / sr), r * r]
        out[i:i + block], zi = lfilter([1 - r], a, x[i:i + block], zi=zi)
    return out


def voice(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) a babbling voice: syllables of moving vowels with pitch glides, vibrato, breath and plosive bursts."""
    t = np.arange(n) / sr
    base = rng.uniform(85, 300)
    knots = np.linspace(0, t[-1], max(2, int(t[-1] * 4)))
    f0 = base * 2 ** (np.interp(t, knots, rng.normal(0, 0.25, knots.size)) + 0.02 * np.sin(2 * np.pi * 5.5 * t))
    pulses = np.diff(np.floor(np.cumsum(f0) / sr), prepend=0.0)
    src = lfilter([1.0], [1.0, -0.97], pulses) + rng.normal(0, 0.02, n)
    syl = rng.uniform(0.12, 0.3)
    starts = np.arange(0, t[-1], syl)
    voiced = np.zeros(n)
    for s in starts:
        a, b = int(s * sr), int(min(n, (s + syl * rng.uniform(0.6, 0.95)) * sr))
        voiced[a:b] = np.sin(np.linspace(0, math.pi, b - a)) ** 0.5
    idx = rng.integers(len(_FORMANTS), size=starts.size + 1)
    out = np.zeros(n)
    for j, bw in enumerate((70, 100, 130)):
        fc = np.interp(t, np.append(starts, t[-1]), _FORMANTS[idx, j] * rng.uniform(0.85, 1.2))
        out += _resonate(src, fc, bw, sr) / (j + 1)
    out *= voiced
    for s in starts[rng.random(starts.size) < 0.5]:  # consonants: short noise bursts before some syllables
        a = int(s * sr)
        m = min(n - a, int(rng.uniform(0.02, 0.08) * sr))
        hp = lfilter([1, -0.9], [1], rng.normal(0, 1, m))
        out[a:a + m] += hp * np.exp(-np.arange(m) / (0.3 * m)) * 0.3 * np.abs(out).max()
    return out


def tone(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) 1 to 12 harmonics of a slowly gliding fundamental, with a soft attack and release."""
    t = np.arange(n) / sr
    f = rng.uniform(60, 1500) * 2 ** (rng.uniform(-1, 1) * t / max(t[-1], 1e-9) * rng.choice([0, 0.3, 1]))
    phase = 2 * np.pi * np.cumsum(f) / sr
    nh = rng.integers(1, 13)
    amps = rng.uniform(0.2, 1, nh) / np.arange(1, nh + 1) ** rng.uniform(0, 1.5)
    alive = (np.arange(1, nh + 1)[:, None] * f[None] < 0.45 * sr)
    x = (amps[:, None] * alive * np.sin(np.arange(1, nh + 1)[:, None] * phase[None])).sum(0)
    env = np.minimum(1, np.minimum(t / 0.02, (t[-1] - t) / 0.05 + 1e-9))
    return x * env


def bell(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) struck inharmonic partials (random ratios), one to four strikes."""
    t = np.arange(n) / sr
    f = rng.uniform(200, 3000)
    ratios = np.sort(np.concatenate([[1.0], rng.uniform(0.5, 6.0, rng.integers(2, 8))]))
    out = np.zeros(n)
    for on in np.sort(rng.uniform(0, t[-1] * 0.8, rng.integers(1, 5))):
        tt = np.clip(t - on, 0, None)
        for r in ratios:
            if f * r < 0.45 * sr:
                out += (t >= on) * rng.uniform(0.2, 1) * np.exp(-tt / rng.uniform(0.2, 2.0) * r ** 0.5) \
                    * np.sin(2 * np.pi * f * r * tt + rng.uniform(0, 2 * np.pi))
    return out


def clip(seed: int, index: int, seconds: float, sr: int = 48000) -> np.ndarray:
    """(2, n) one training clip: 1-3 panned tonal sources over quiet coloured noise, peak 0.1..0.9."""
    rng = np.random.default_rng([seed, index, 7])
    n = int(seconds * sr)
    out = np.zeros((2, n))
    for _ in range(rng.integers(1, 4)):
        kind = rng.choice(3, p=[0.5, 0.25, 0.25])
        x = (voice, tone, bell)[kind](n, sr, rng)
        x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.2, 1)
        gl, gr = pan_gains(np.array([rng.uniform(-1, 1)]))
        out += np.stack([gl[0] * x, gr[0] * x])
    noise = lfilter([1.0], [1.0, -rng.uniform(0, 0.99)], rng.normal(0, 1, (2, n)), axis=-1)
    out += noise / (np.abs(noise).max() + 1e-9) * 10 ** rng.uniform(-4, -1.5)
    return out / (np.abs(out).max() + 1e-9) * rng.uniform(0.1, 0.9)
