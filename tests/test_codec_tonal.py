"""Codec v2's tonal path: sinusoids placed exactly, pitch and partials measured, tones rebuilt as tones, streaming."""
import math

import numpy as np
import pytest
import torch

from foley.metrics.listening import partial_ratio, pitch_error_cents
from foley.models.codec import Codec, CodecConfig
from foley.models.codec_dsp import Analysis, Synthesis, sine_window
from foley.models.codec_tonal import TonalAnalysis, TonalSynthesis, partial_edges_hz, place_sinusoids

torch.set_num_threads(1)
SR, HOP, SUB = 48000, 1920, 8
CFG = CodecConfig(width=64, enc_blocks=2, dec_blocks=2, tonal=True)


def _tone(f0: float = 220.0, harmonics: int = 7, seconds: float = 1.2) -> torch.Tensor:
    t = torch.arange(int(seconds * SR) // HOP * HOP, dtype=torch.float64) / SR
    return sum(torch.sin(2 * math.pi * f0 * k * t) / k for k in range(1, harmonics + 1)).float() * 0.3


def _stereo(m: torch.Tensor, left: float = 0.8, right: float = 0.5) -> torch.Tensor:
    return torch.stack([left * m, right * m])[None]  # (1, 2, N)


@pytest.mark.parametrize("freq,phase", [(220.0, 0.3), (37.0, 1.0), (1234.5, -2.0), (23000.0, 0.5), (23900.0, 0.5)])
def test_placed_sinusoid_equals_the_fft_of_a_windowed_cosine(freq, phase):
    n = 480
    m = torch.arange(n, dtype=torch.float64)
    ref = torch.fft.rfft(0.7 * torch.cos(2 * math.pi * freq * (m - n / 2) / SR + phase) * sine_window(n).double())
    got = place_sinusoids(torch.tensor([freq]), torch.tensor([0.7]), torch.tensor([phase]), n, SR).to(torch.complex128)
    assert float((got - ref).abs().pow(2).sum() / ref.abs().pow(2).sum()) < 2e-3  # kernel truncation only
    if 100 < freq < 20000:  # away from 0 and Nyquist, where the image adds to it: the n^2/8 the synthesis assumes
        assert abs(float(got.abs().pow(2).sum()) / (0.49 * n * n / 8) - 1) < 0.02


def test_analysis_finds_the_pitch_of_a_tone_and_no_harmonics_in_noise():
    ta = TonalAnalysis(HOP, SUB, SR)
    f0, harm, _, _ = ta(_stereo(_tone(220.0)))
    assert torch.all((f0[0, 3:] / 220.0 - 1).abs() < 0.005)  # after the window has filled
    assert harm[0, 3:, 1].min() > 0.9  # 200-500 Hz: the fundamental and 2nd harmonic
    noise = 0.1 * torch.randn(1, 2, 10 * HOP, generator=torch.Generator().manual_seed(0))
    f0, harm, _, share = ta(noise)
    assert harm[0, 2:].max() < 0.05 and share[0, 2:].mean() < 0.02
    assert torch.all(f0 == 200.0)  # aperiodic: f0 held (at the reference before any periodic subframe)
    f0, _, _, _ = ta(torch.cat([_stereo(_tone(300.0, seconds=0.4)), noise[..., : 4 * HOP]], -1))
    held = f0[0, -3:]
    assert torch.all(held == held[0, 0]) and abs(float(held[0, 0]) / 300.0 - 1) < 0.1  # held from the tone


def test_an_inharmonic_partial_is_measured_at_its_frequency():
    t = torch.arange(10 * HOP) / SR
    s = 0.3 * torch.sin(2 * math.pi * 1234 * t) + 0.2 * torch.sin(2 * math.pi * 3407 * t)
    _, _, pos, share = TonalAnalysis(HOP, SUB, SR)(_stereo(s))
    edges = partial_edges_hz()
    for hz in (1234, 3407):
        b = int(np.searchsorted(edges, hz)) - 1
        got = edges[b] + float(pos[0, 5, b]) * (edges[b + 1] - edges[b])
        assert abs(got - hz) < 3 and share[0, 5, b] > 0.8, (hz, got, share[0, 5])


def _oracle(x: torch.Tensor, tonal: bool) -> np.ndarray:
    """The fixed signal path with the true envelope and cues (no learned part): what the latent can carry."""
    an, syn = Analysis(HOP, SUB, 16, SR), Synthesis(HOP, SUB, 16, SR)
    _, _, pan, coh = an(x)
    lp = syn.target(x)
    extra = TonalSynthesis(HOP, SUB, SR)(lp, *TonalAnalysis(HOP, SUB, SR)(x)) if tonal else (None, None)
    return syn(lp, pan, coh, *extra)[0].double().numpy()


def test_the_tonal_path_rebuilds_a_tone_as_a_tone_where_noise_excitation_cannot():
    x = _stereo(_tone(220.0))
    ref = x[0].double().numpy()
    tonal, noise = partial_ratio(ref, _oracle(x, True)), partial_ratio(ref, _oracle(x, False))
    assert tonal > 15 and noise < 0 and tonal - noise > 20, (tonal, noise)
    assert pitch_error_cents(ref, _oracle(x, True)) < 10


def _codec(seed: int = 0) -> Codec:
    torch.manual_seed(seed)
    return Codec(CFG).eval()


def test_v2_has_at_most_128_channels_and_streaming_equals_batch():
    codec = _codec()
    assert CFG.channels == 120 and CFG.floats_per_second == 3000  # <= 128 channels (issue)
    x = _stereo(_tone(180.0, seconds=9 * HOP / SR)) + 0.01 * torch.randn(1, 2, 9 * HOP, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        z, y = codec.encode(x), codec.decode(codec.encode(x))
        with codec.streaming():
            zs = torch.cat([codec.encode(x[..., i * HOP:(i + 2) * HOP]) for i in range(0, 9, 2)], -1)
        with codec.streaming():
            ys = torch.cat([codec.decode(z[..., i:i + 1]) for i in range(9)], -1)
    assert y.abs().max() > 0.01
    torch.testing.assert_close(zs, z, atol=1e-4, rtol=0)
    torch.testing.assert_close(ys, y, atol=1e-4, rtol=0)


def test_v2_causal_output_never_depends_on_future_input():
    codec = _codec()
    x = _stereo(_tone(150.0, seconds=8 * HOP / SR)).requires_grad_(True)
    y = codec.decode(codec.encode(x))
    y[..., : 4 * HOP].pow(2).sum().backward()
    assert x.grad[..., : 4 * HOP].abs().sum() > 0
    assert x.grad[..., 4 * HOP:].abs().max() == 0


def test_decoding_degrades_gracefully_on_imperfect_latents():
    """Generators produce imperfect latents: noisy or averaged ones still decode to bounded, finite audio."""
    codec = _codec()
    x = _stereo(_tone(220.0))
    with torch.no_grad():
        z = codec.encode(x)
        codec.calibrate(x)
        z = codec.encode(x)
        for bad in (z + 0.1 * torch.randn_like(z), z + 3 * torch.randn_like(z), (z + z.flip(-1)) / 2):
            y = codec.decode(bad)
            assert torch.isfinite(y).all() and y.abs().max() < 20 * x.abs().max()


def _with_head(codec: Codec, bias: float) -> Codec:
    from foley.models.codec import with_harmonic_gain

    out = with_harmonic_gain(codec)
    assert out is not codec and not out.training
    with torch.no_grad():
        out.harmonic_gain[2].bias.fill_(bias)  # the zero-init weight: the same gain exp(bias) in every band
    return out


def test_the_harmonic_gain_head_starts_neutral_and_makes_a_noisy_tone_more_tonal():
    codec = _codec()
    g = torch.Generator().manual_seed(2)
    x = _stereo(_tone(220.0)) + 0.1 * torch.randn(1, 2, _tone(220.0).numel(), generator=g)
    with torch.no_grad():
        z = codec.encode(x)
        plain = codec.decode(z)
        assert torch.equal(_with_head(codec, 0.0).decode(z), plain)  # gain 1: the codec it came from
        assert torch.equal(_with_head(codec, 0.0).encode(x), z)  # decoder side only: the same latents
        up, down = _with_head(codec, 1.5).decode(z), _with_head(codec, -1.5).decode(z)
    ref = x[0].double().numpy()
    r = {k: partial_ratio(ref, y[0].double().numpy()) for k, y in (("plain", plain), ("up", up), ("down", down))}
    # harmonics against what lies between them: up where the fraction had room (little: the tone is mostly harmonic)
    assert r["up"] > r["plain"] > r["down"] + 5, r


def test_the_harmonic_gain_head_streams_as_it_decodes_whole():
    codec = _with_head(_codec(), 0.0)
    with torch.no_grad():
        torch.nn.init.normal_(codec.harmonic_gain[2].weight, std=0.3)  # gains that differ by frame and band
        x = _stereo(_tone(180.0, seconds=9 * HOP / SR))
        z = codec.encode(x)
        y = codec.decode(z)
        with codec.streaming():
            ys = torch.cat([codec.decode(z[..., i:i + 1]) for i in range(9)], -1)
    torch.testing.assert_close(ys, y, atol=1e-4, rtol=0)
