"""What each sounding object sounds like: one vectorised 48 kHz synthesis function per class.

Every function has the signature ``(voice, events, n, sr, rng, drive) -> (n,) float64`` and starts
each sound event at exactly ``round(event_time * sr)``, the same times the animation is drawn from.
Per-instance variation (pitch, decay, brightness) comes in `voice`; loudness is applied by the caller.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Callable

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

from foley.spatial import upsample


@dataclass(frozen=True)
class Voice:
    """Per-instance sound parameters."""

    pitch: float = 1.0  # frequency multiplier
    decay: float = 1.0  # decay-time multiplier
    bright: float = 0.5  # timbre in [0, 1]: weight of upper partials / noise


@dataclass(frozen=True)
class Drive:
    """Signals from the motion that some sounds follow, made per sample only when a sound asks."""

    x: np.ndarray  # (K,) anchor x per video frame, track units
    fps: float
    sr: int
    n: int  # samples
    rate: float  # the instance's rate (fan: turns per second)
    gate: np.ndarray  # (N,) bool: running (fountain), else all True
    anim: np.ndarray  # (E',) the animation's event times, extending past the clip (cycle phase)

    def _per_sample(self, values: np.ndarray) -> np.ndarray:
        return upsample(values, self.fps, self.sr, self.n)

    @cached_property
    def _vx(self) -> np.ndarray:
        return np.gradient(self.x) * self.fps if len(self.x) > 1 else np.zeros_like(self.x)  # (K,) units / s

    @property
    def speed(self) -> np.ndarray:
        """(N,) horizontal speed, frame widths per second."""
        return self._per_sample(np.abs(self._vx) / 2)

    @property
    def doppler(self) -> np.ndarray:
        """(N,) pitch factor from the radial velocity towards a listener one unit in front (1 = none)."""
        radial = self.x * self._vx / np.sqrt(self.x ** 2 + 1.0)  # (K,) > 0 moving away
        return self._per_sample(1.0 / (1.0 + radial / 6.0))

    @property
    def rotation(self) -> np.ndarray:
        """(N,) rotation rate, turns per second."""
        return np.full(self.n, self.rate)

    @property
    def running(self) -> np.ndarray:
        """(N,) smoothed on/off gate in [0, 1] (~10 ms one-pole)."""
        return lfilter([0.002], [1.0, -0.998], self.gate.astype(np.float64))


def _attack(m: int, sr: int, ms: float = 1.5) -> np.ndarray:
    """(m,) linear rise over `ms` then 1: keeps onsets sharp without a click."""
    return np.minimum(1.0, np.arange(m) / max(1.0, ms * 1e-3 * sr))


def _place(n: int, events: np.ndarray, sr: int, make: Callable[[int], np.ndarray]) -> np.ndarray:
    """Sum per-event templates make(k) into (n,), template k starting at sample round(events[k] * sr)."""
    out = np.zeros(n)
    for k, te in enumerate(events):
        i = int(round(te * sr))
        if 0 <= i < n:
            tpl = make(k)
            m = min(n - i, tpl.size)
            out[i:i + m] += tpl[:m]
    return out


def _modes(freqs: np.ndarray, amps: np.ndarray, taus: np.ndarray, seconds: float, sr: int) -> np.ndarray:
    """Modal synthesis: a sum of exponentially decaying sines, (M,) each -> (m,)."""
    t = np.arange(int(seconds * sr)) / sr  # (m,)
    partials = amps[:, None] * np.sin(2 * math.pi * freqs[:, None] * t) * np.exp(-t / taus[:, None])  # (P, m)
    return partials.sum(axis=0) * _attack(t.size, sr)


@lru_cache(maxsize=256)
def band(lo: float, hi: float, sr: int, order: int = 2) -> np.ndarray:
    """Butterworth band-pass sections (designs are cached: a pure function of its arguments)."""
    return butter(order, [lo, min(hi, 0.45 * sr)], btype="band", fs=sr, output="sos")


def _band_noise(m: int, lo: float, hi: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """(m,) white noise band-passed to [lo, hi] Hz."""
    return sosfilt(band(round(lo, 1), round(hi, 1), sr), rng.standard_normal(m))


def _decay(m: int, tau: float, sr: int) -> np.ndarray:
    return np.exp(-np.arange(m) / (tau * sr)) * _attack(m, sr)


def ball(v: Voice, events: np.ndarray, n: int, sr: int, rng: np.random.Generator, d: Drive) -> np.ndarray:
    """A rubbery thud at each floor contact."""
    f0 = 180.0 * v.pitch
    body = _modes(np.array([f0, 2.3 * f0, 3.9 * f0]), np.array([1.0, 0.4 * v.bright, 0.2 * v.bright]),
                  np.array([0.06, 0.03, 0.02]) * v.decay, 0.3, sr)
    env = _decay(body.size, 0.006, sr) * 0.5

    def make(k: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal()) * (body + _band_noise(body.size, 800, 6000, sr, rng) * env)

    return _place(n, events, sr, make)


def hammer(v: Voice, events: np.ndarray, n: int, sr: int, rng: np.random.Generator, d: Drive) -> np.ndarray:
    """A metallic clang: inharmonic anvil modes at each strike."""
    f0 = 620.0 * v.pitch
    ratios = np.array([1.0, 2.76, 5.4, 8.93])

    amps = np.array([1.0, 0.7, 0.5 * v.bright + 0.1, 0.3 * v.bright])
    tone = _modes(f0 * ratios, amps, np.array([0.25, 0.15, 0.08, 0.05]) * v.decay, 0.6, sr)
    env = 0.6 * _decay(tone.size // 8, 0.004, sr)

    def make(k: int) -> np.ndarray:
        out = tone * (1.0 + 0.1 * rng.standard_normal())
        out[:env.size] += _band_noise(env.size, 2000, 12000, sr, rng) * env
        return out

    return _place(n, events, sr, make)


def bird(v: Voice, events: np.ndarray, n: int, sr: int, rng: np.random.Generator, d: Drive) -> np.ndarray:
    """A rising-falling chirp per wing beat."""
    def make(k: int) -> np.ndarray:
        dur = (0.06 + 0.03 * rng.random()) * (0.8 + 0.4 * v.decay)
        t = np.arange(int(dur * sr)) / sr
        f = 2600 * v.pitch * (1 + 0.5 * np.sin(math.pi * t / dur) * (0.5 + v.bright))  # (m,) Hz
        ph = 2 * math.pi * np.cumsum(f) / sr
        env = np.sin(math.pi * np.minimum(1.0, t / dur)) ** 0.5 * _attack(t.size, sr, 3.0)
        return env * (np.sin(ph) + 0.2 * v.bright * np.sin(2 * ph))

    return _place(n, events, sr, make)


def harmonic(f: np.ndarray, sr: int, amps: list[float]) -> np.ndarray:
    """(N,) sum of harmonics of a time-varying fundamental f (N,) Hz.

    The phase is accumulated in float64 cycles (exact over long clips); harmonics come from the
    Chebyshev recursion sin((h+1)x) = 2 cos(x) sin(hx) - sin((h-1)x) in float32.
    """
    cycles = np.cumsum(f) / sr  # (N,) float64
    x = ((cycles - cycles.astype(np.int64)) * (2 * math.pi)).astype(np.float32)  # phase in [0, 2 pi)
    s_prev, s_cur, c2 = np.zeros_like(x), np.sin(x), 2 * np.cos(x)
    out = np.zeros_like(x)
    for a in amps:
        out += np.float32(a) * s_cur
        s_prev, s_cur = s_cur, c2 * s_cur - s_prev
    return out.astype(np.float64)


def car(v: Voice, events: np.ndarray, n: int, sr: int, rng: np.random.Generator, d: Drive) -> np.ndarray:
    """An engine hum whose pitch follows the speed and drops as the car passes (Doppler)."""
    f = (45.0 + 60.0 * np.minimum(d.speed, 1.5)) * v.pitch * d.doppler  # (N,) Hz
    hum = harmonic(f, sr, [1.0, 0.6, 0.4 * v.bright + 0.1, 0.25 * v.bright, 0.15])
    rumble = _band_noise(n, 60, 900, sr, rng)
    return hum + 0.4 * rumble / (np.std(rumble) + 1e-9) * (0.3 + 0.7 * v.bright)


def drum(v: Voice, events: np.ndarray, n: int, sr: int, rng: np.random.Generator, d: Drive) -> np.ndarray:
    """A membrane hit: a pitch-dropping tone plus a snap."""
    def make(k: int) -> np.ndarray:
        m = int(0.4 * sr)
        t = np.arange(m) / sr
        f = 95 * v.pitch * (1 + 0.8 * np.exp(-t / 0.02))
        tone = np.sin(2 * math.pi * np.cumsum(f) / sr) * _decay(m, 0.12 * v.decay, sr)
        snap = _band_noise(m, 1500, 9000, sr, rng) * _decay(m, 0.02, sr)
        return tone + (0.3 + 0.7 * v.bright) * snap

    return _place(n, events, sr, make)


def bell(v: Voice, events: np.ndarray, n: int, sr: int, rng: np.random.Generator, d: Drive) -> np.ndarray:
    """A struck bell: hum, prime, tierce, quint and nominal partials."""
    f0 = 440.0 * v.pitch
    ratios = np.array([0.5, 1.0, 1.2, 1.5, 2.0, 2.74])
    amps = np.array([0.5, 1.0, 0.6, 0.4, 0.5 * v.bright + 0.1, 0.3 * v.bright])
    taus = np.array([0.5, 0.35, 0.25, 0.2, 0.15, 0.1]) * v.decay
    tpl = _modes(f0 * ratios, amps, taus, 1.2, sr)
    return _place(n, events, sr, lambda k: tpl * (1 + 0.08 * rng.standard_normal()))


def walker(v: Voice, events: np.ndarray, n: int, sr: int, rng: np.random.Generator, d: Drive) -> np.ndarray:
    """Footsteps: a heel thump and a scuff per step."""
    thump = _modes(np.array([80.0 * v.pitch, 160 * v.pitch]), np.array([1.0, 0.3]),
                   np.array([0.03, 0.02]) * v.decay, 0.15, sr)
    env = 0.8 * _decay(thump.size, 0.025 * v.decay, sr)

    def make(k: int) -> np.ndarray:
        return thump + _band_noise(thump.size, 400, 4000 + 4000 * v.bright, sr, rng) * env

    return _place(n, events, sr, make)


def fan(v: Voice, events: np.ndarray, n: int, sr: int, rng: np.random.Generator, d: Drive) -> np.ndarray:
    """A rotor: broadband whoosh modulated at the blade-pass rate (3 x rotation) plus its tone."""
    bpf = 3.0 * d.rotation  # (N,) Hz
    ph = 2 * math.pi * np.cumsum(bpf) / sr
    whoosh = _band_noise(n, 200 * v.pitch, 3000 * v.pitch, sr, rng)
    whoosh /= np.std(whoosh) + 1e-9
    tone = harmonic(bpf * 8 * v.pitch, sr, [1.0, 0.3 * v.bright])
    return whoosh * (0.6 + 0.4 * np.sin(ph)) * 0.5 + 0.3 * tone


def dog(v: Voice, events: np.ndarray, n: int, sr: int, rng: np.random.Generator, d: Drive) -> np.ndarray:
    """A bark: a harsh harmonic burst with a falling pitch, from each event."""
    def make(k: int) -> np.ndarray:
        dur = (0.16 + 0.06 * rng.random()) * v.decay
        m = int(dur * sr)
        t = np.arange(m) / sr
        f = 520 * v.pitch * (1.15 - 0.35 * t / dur)
        tone = harmonic(f, sr, [1.0, 0.8, 0.6 * v.bright + 0.2, 0.4 * v.bright, 0.3])
        env = np.exp(-t / (0.35 * dur)) * _attack(m, sr, 4.0)
        return env * (tone + 0.5 * _band_noise(m, 500, 5000, sr, rng))

    return _place(n, events, sr, make)


def fountain(v: Voice, events: np.ndarray, n: int, sr: int, rng: np.random.Generator, d: Drive) -> np.ndarray:
    """Splashing water: band-passed noise with a bubbling modulation, gated while the fountain runs."""
    water = _band_noise(n, 500 * v.pitch, 7000 * v.pitch, sr, rng)
    water /= np.std(water) + 1e-9
    bubble = 1 + 0.3 * lfilter([1.0], [1.0, -0.999], rng.standard_normal(n)) / 30
    return water * d.running * np.clip(bubble, 0.5, 1.5) * (0.5 + 0.5 * v.bright)


def metronome(v: Voice, events: np.ndarray, n: int, sr: int, rng: np.random.Generator, d: Drive) -> np.ndarray:
    """A woody tick as the arm passes the centre."""
    tpl = _modes(np.array([1800.0, 3100.0, 5200.0]) * v.pitch, np.array([1.0, 0.5, 0.3 * v.bright]),
                 np.array([0.02, 0.012, 0.008]) * v.decay, 0.1, sr)
    return _place(n, events, sr, lambda k: tpl)


def siren(v: Voice, events: np.ndarray, n: int, sr: int, rng: np.random.Generator, d: Drive) -> np.ndarray:
    """A two-tone siren: high while the light flashes (first half of each cycle), low in the second."""
    step = 32  # the pitch contour is computed every `step` samples and interpolated
    tc, ev = np.arange(n // step + 2) * step / sr, d.anim
    i = np.clip(np.searchsorted(ev, tc, side="right") - 1, 0, len(ev) - 2)
    cycle = (tc - ev[i]) / (ev[i + 1] - ev[i])  # in [0, 1), as the light's
    high = 0.5 + 0.5 * np.tanh((0.5 - np.abs(cycle - 0.25) * 2) * 12)  # smooth square, 1 during first half
    f = 600 * v.pitch * (1 + 0.33 * np.interp(np.arange(n) / step, np.arange(tc.size), high))
    return harmonic(f, sr, [1.0, 0.5, 0.35 * v.bright + 0.1, 0.2 * v.bright])


_VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480], [570, 840, 2410]])


def talker(v: Voice, events: np.ndarray, n: int, sr: int, rng: np.random.Generator, d: Drive) -> np.ndarray:
    """Formant vowels: a glottal pulse train through three resonators, one syllable per event."""
    def make(k: int) -> np.ndarray:
        m = int(0.16 * sr)
        t = np.arange(m) / sr
        f0 = 130 * v.pitch * (1 + 0.1 * np.sin(math.pi * t / 0.16))
        pulses = np.diff(np.floor(np.cumsum(f0) / sr), prepend=0.0)  # (m,) 1 at each glottal pulse
        src = lfilter([1.0], [1.0, -0.95], pulses)
        out = np.zeros(m)
        for fc, bw in zip(_VOWELS[rng.integers(len(_VOWELS))] * (0.9 + 0.2 * v.bright), (80, 100, 120)):
            r = math.exp(-math.pi * bw / sr)
            out += lfilter([1 - r], [1, -2 * r * math.cos(2 * math.pi * fc / sr), r * r], src)
        return out * np.sin(math.pi * np.minimum(1.0, t / 0.16)) ** 0.3 * _attack(m, sr, 8.0)

    return _place(n, events, sr, make)
