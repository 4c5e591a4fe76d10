"""Listening metrics tell a tone from noise of the same spectrum, and a voice from a damaged one; Opus as reference."""
import numpy as np
import pytest

from foley.io.opus import opus_roundtrip
from foley.metrics import listening as L
from foley.world.tonal import voice

SR = 48000


def _tone(f0=220.0, seconds=2.0):
    t = np.arange(int(seconds * SR)) / SR
    m = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8)) * 0.2
    return np.stack([m, 0.5 * m])


def _same_spectrum_noise(x, seed=0):
    """Noise with x's magnitude spectrum (random phases): what a noise-excited codec makes of a tone."""
    spec = np.fft.rfft(x, axis=-1)
    phase = np.exp(2j * np.pi * np.random.default_rng(seed).random(spec.shape[-1]))
    return np.fft.irfft(np.abs(spec) * phase, n=x.shape[-1], axis=-1)


def test_partial_ratio_and_pitch_tell_a_tone_from_noise_of_its_spectrum():
    x = _tone()
    assert L.partial_ratio(x, x) > 40
    # a whole-clip random phase keeps the exact spectrum (and so the partials); a noise excitation shapes
    # noise by a smooth envelope: emulate it by smoothing the spectrum over 100 Hz
    spec = np.abs(np.fft.rfft(x, axis=-1))
    smooth = np.apply_along_axis(lambda s: np.convolve(s, np.ones(201) / 201, "same"), -1, spec)
    noise = np.fft.irfft(smooth * np.exp(2j * np.pi * np.random.default_rng(0).random(smooth.shape[-1])), n=x.shape[-1])
    assert L.partial_ratio(x, noise) < 0
    assert L.pitch_error_cents(x, x) == 0 and L.periodicity(x) > 0.9 and L.periodicity(noise) < L.periodicity(x) - 0.2


def test_opus_keeps_a_tone_and_the_clip_length():
    x = _tone()
    y = opus_roundtrip(x, 12)
    assert y.shape == x.shape and L.partial_ratio(x, y) > 8 and L.pitch_error_cents(x, y) < 10


def test_pesq_and_stoi_rank_a_voice_above_its_damaged_copies():
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    m = voice(3 * SR, SR, np.random.default_rng(0))
    x = np.stack([m, m]) / np.abs(m).max() * 0.5
    noisy = x + 0.05 * np.random.default_rng(1).standard_normal(x.shape)
    assert L.pesq_wb(x, x) > 4.4 and L.stoi(x, x) > 0.99
    assert L.pesq_wb(x, noisy) < 2.5 and L.pesq_wb(x, opus_roundtrip(x, 24)) > L.pesq_wb(x, noisy)
    assert L.stoi(x, _same_spectrum_noise(x)) < L.stoi(x, opus_roundtrip(x, 24))
