"""Stereo codec: streaming == batch, causality through gradients, structural stereo, latents, checkpoints."""
import math

import numpy as np
import pytest
import torch

from foley.metrics import audio_position
from foley.models.codec import MIN_LATENT_STD, Codec, CodecConfig, CodecError, PRESETS, load_codec, save_codec
from foley.spatial import pan_gains

torch.set_num_threads(1)
CFG = CodecConfig(width=64, enc_blocks=2, dec_blocks=2)  # tiny sizes, same signal path as the presets
HOP = CFG.hop


def _codec(cfg: CodecConfig = CFG, seed: int = 0) -> Codec:
    torch.manual_seed(seed)
    return Codec(cfg).eval()


def _noise(frames: int, seed: int = 0, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, 2, frames * HOP, generator=g)


def _panned(w: float, frames: int = 12, seed: int = 1) -> torch.Tensor:
    mono = np.random.default_rng(seed).standard_normal(frames * HOP) * 0.1
    gl, gr = pan_gains(np.array(w))
    return torch.tensor(np.stack([gl * mono, gr * mono]), dtype=torch.float32)[None]  # (1, 2, N)


@pytest.mark.parametrize("chunk", [1, 3])
def test_streaming_equals_batch(chunk):
    codec, x = _codec(), _noise(9)
    with torch.no_grad():
        z, y = codec.encode(x), codec.decode(codec.encode(x))
        with codec.streaming():
            zs = torch.cat([codec.encode(x[..., i * HOP:(i + chunk) * HOP]) for i in range(0, 9, chunk)], -1)
        with codec.streaming():
            ys = torch.cat([codec.decode(z[..., i:i + chunk]) for i in range(0, 9, chunk)], -1)
    assert y.abs().max() > 0.01  # a real signal, not silence
    torch.testing.assert_close(zs, z, atol=1e-5, rtol=0)
    torch.testing.assert_close(ys, y, atol=1e-5, rtol=0)


def test_streaming_state_can_be_read_reset_and_set():
    codec, x = _codec(), _noise(4)
    with torch.no_grad(), codec.streaming():
        codec.decode(codec.encode(x[..., :2 * HOP]))
        state = codec.get_streaming_state()
        a = codec.decode(codec.encode(x[..., 2 * HOP:]))
        codec.reset_streaming()
        assert codec.get_streaming_state() == {}
        codec.set_streaming_state(state)
        b = codec.decode(codec.encode(x[..., 2 * HOP:]))
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def _grad_of_past_output(codec: Codec, t0: int) -> torch.Tensor:
    x = _noise(8, batch=1).requires_grad_(True)
    y = codec.decode(codec.encode(x))
    y[..., : t0 * HOP].pow(2).sum().backward()
    return x.grad[..., t0 * HOP:]


def test_causal_output_never_depends_on_future_input():
    for t0 in (1, 4, 7):
        assert torch.all(_grad_of_past_output(_codec(), t0) == 0)
    codec, x = _codec(), _noise(8, batch=1).requires_grad_(True)
    codec.encode(x)[..., :4].sum().backward()
    assert torch.all(x.grad[..., 4 * HOP:] == 0) and x.grad[..., : 4 * HOP].abs().sum() > 0


def test_non_causal_variant_looks_ahead_and_refuses_streaming():
    codec = _codec(CodecConfig(width=64, enc_blocks=2, dec_blocks=2, causal=False))
    assert _grad_of_past_output(codec, 4).abs().sum() > 0  # the test above can fail
    with pytest.raises(CodecError, match="non-causal"), codec.streaming():
        codec.encode(_noise(1))


@pytest.mark.parametrize("w", [-0.7, -0.2, 0.0, 0.5, 0.9])
def test_stereo_image_survives_an_untrained_codec(w):
    """Pan is structural: even random weights return a source where it was (the calibration run's failure)."""
    codec, x = _codec(), _panned(w)
    with torch.no_grad():
        y = codec.decode(codec.encode(x))[0].numpy()
    pos = audio_position(y, CFG.sr, CFG.fps)
    assert np.all(np.abs(pos.pan[~pos.silent] - w) < 0.02)


def test_coherence_separates_a_panned_source_from_decorrelated_noise():
    codec = _codec()
    coherent, diffuse = _panned(0.3), _noise(12, batch=1)
    cs, nb = CFG.spectral_channels, CFG.stereo_bands
    with torch.no_grad():
        c1 = (codec.encode(coherent)[0, cs + 2 * nb:] + 1) / 2
        c2 = (codec.encode(diffuse)[0, cs + 2 * nb:] + 1) / 2
    assert c1.min() > 0.99 and c2.mean() < 0.15


def test_decoded_level_follows_the_analysed_power():
    """The synthesis gain: random-phase overlap-add of the analysed power returns the input's level."""
    codec, x = _codec(), _panned(-0.4, frames=25)
    log_power, energy, pan, coh = codec.analysis(x)
    y = codec.synthesis(codec.synthesis.target(x), pan, coh)
    ratio_db = 10 * torch.log10(y.pow(2).mean() / x.pow(2).mean())
    assert abs(float(ratio_db)) < 0.5


def test_shapes_hop_and_floats_per_second():
    for name, cfg in PRESETS.items():
        assert cfg.hop == cfg.sr // cfg.fps and cfg.channels in range(32, 129), name  # <= 128 (codec v2 issue)
    assert PRESETS["tiny"].hop == 1920 and PRESETS["soundreactor"].hop == 1600
    codec = _codec()
    z = codec.encode(torch.zeros(1, 2, HOP * 3 + 5))  # padded up to whole frames
    assert z.shape == (1, CFG.channels, 4) and codec.decode(z).shape == (1, 2, 4 * HOP)
    assert CFG.floats_per_second == CFG.channels * 25
    with pytest.raises(CodecError, match="stereo"):
        codec.encode(torch.zeros(1, 1, HOP))
    with pytest.raises(CodecError, match="whole number"), codec.streaming():
        codec.encode(torch.zeros(1, 2, HOP + 1))
    with pytest.raises(CodecError):
        CodecConfig(fps=7)


def test_calibrate_normalises_latents_inside_the_codec():
    codec, x = _codec(), _noise(20, batch=4)
    codec.calibrate(x)
    z = codec.encode(x).transpose(1, 2).flatten(0, 1)
    torch.testing.assert_close(z.mean(0), torch.zeros(CFG.channels), atol=1e-3, rtol=0)
    varied = codec.latent_std > MIN_LATENT_STD  # the others keep their scale (floor): no blown-up constants
    assert varied.sum() > CFG.channels // 2 and torch.all((z.std(0)[varied] - 1).abs() < 1e-3)
    assert torch.all(z.std(0)[~varied] < 1 + 1e-3)


def test_checkpoint_roundtrip_and_bad_files(tmp_path):
    codec, x = _codec(), _noise(3)
    codec.calibrate(x)
    save_codec(tmp_path / "c.pt", codec)
    loaded = load_codec(tmp_path / "c.pt")
    assert loaded.cfg == CFG
    torch.testing.assert_close(loaded.encode(x), codec.encode(x))
    with pytest.raises(CodecError, match="differs"):
        load_codec(tmp_path / "c.pt", expect=PRESETS["tiny"])
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CodecError, match="not a readable"):
        load_codec(tmp_path / "bad.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(CodecError, match="not a foley codec"):
        load_codec(tmp_path / "other.pt")
    with pytest.raises(CodecError, match="not found"):
        load_codec(tmp_path / "missing.pt")
    damaged = torch.load(tmp_path / "c.pt", weights_only=True)
    damaged["model"]["encoder.inp.weight"][0, 0] += 1.0  # one weight changed: the file no longer matches its hash
    torch.save(damaged, tmp_path / "damaged.pt")
    with pytest.raises(CodecError, match="hash"):
        load_codec(tmp_path / "damaged.pt")
    with torch.no_grad():
        assert math.isfinite(float(loaded.decode(loaded.encode(x)).abs().max()))


def test_band_energies_survive_an_untrained_codec_and_silence_stays_silent():
    """Each band's frame energy is a measured cue: random weights keep the spectrum's coarse shape."""
    codec = _codec()
    mono = np.convolve(np.random.default_rng(3).standard_normal(12 * HOP), np.ones(8) / 8, "same") * 0.1
    x = torch.tensor(np.stack([mono, 0.5 * mono]), dtype=torch.float32)[None]  # low-passed, panned
    with torch.no_grad():
        y = codec.decode(codec.encode(x))
        quiet = codec.decode(codec.encode(torch.zeros(1, 2, 4 * HOP)))
    _, ex, _, _ = codec.analysis(x)
    _, ey, _, _ = codec.analysis(y)
    loud = ex > ex.max() - math.log(1e4)  # bands within 40 dB of the loudest
    assert (ey - ex)[:, 2:][loud[:, 2:]].abs().mean() < math.log(10 ** 0.2)  # < 2 dB after the first frames
    assert quiet.abs().max() < 1e-3


def test_cap_loudness_lowers_only_impossible_frames_and_keeps_their_spectrum():
    from foley.models.codec import LOUDEST_RMS

    codec = load_codec()  # the shipped codec: its latent normalisation is the one generators sample in
    g = torch.Generator().manual_seed(0)
    t = torch.arange(12 * HOP) / 48000
    x = 0.3 * torch.randn(1, 2, 12 * HOP, generator=g) + 0.5 * torch.sin(2 * math.pi * 440 * t)  # RMS ~0.47
    with torch.no_grad():
        z = codec.encode(x.clamp(-1, 1))
        assert torch.equal(codec.cap_loudness(z), z)  # audio within full scale passes bit for bit
        cs, nb = codec.cfg.spectral_channels, codec.cfg.stereo_bands
        loud = z.clone()
        loud[:, cs:cs + nb, 4:8] += 4.0 / codec.latent_std[cs:cs + nb, None]  # e^4: frames at RMS ~3.5
        capped = codec.cap_loudness(loud)
        rms = lambda y: y.reshape(2, -1, HOP).pow(2).mean((0, 2)).sqrt()  # noqa: E731
        before, after = rms(codec.decode(loud)[0]), rms(codec.decode(capped)[0])
    assert before[4:8].min() > 3 * LOUDEST_RMS  # what guidance can ask for
    assert torch.all((after[4:8] > 0.8 * LOUDEST_RMS) & (after[4:8] < 1.25 * LOUDEST_RMS)), after  # held at the cap
    assert torch.equal(capped[..., :4], z[..., :4]) and torch.equal(capped[..., 8:], z[..., 8:])  # others untouched
    assert torch.equal(capped[:, :cs], loud[:, :cs]) and torch.equal(capped[:, cs + nb:], loud[:, cs + nb:])
    raw = lambda v: v[:, cs:cs + nb, 4:8] * codec.latent_std[cs:cs + nb, None]  # noqa: E731
    shape = lambda v: raw(v) - raw(v).mean(1, keepdim=True)  # noqa: E731
    assert torch.allclose(shape(capped), shape(loud), atol=1e-4)  # the bands move together: the spectrum is kept


def _hash_reference(i: int) -> float:
    """The excitation phase hash in plain Python integers (no fixed-width overflow to get wrong)."""
    x = i % 2 ** 32
    for _ in range(2):
        x = (((x >> 16) ^ x) * 0x45D9F3B) % 2 ** 32
    return ((x >> 16) ^ x) * 2 * math.pi / 2 ** 32


def test_hashed_phases_match_exact_integer_hash_and_are_uniform():
    from foley.models.codec_dsp import hashed_phase

    idx = np.array([0, 1, 2, 241, 2 ** 31 - 1, 2 ** 32 + 5, 10 ** 12 + 7], dtype=np.int64)
    got = hashed_phase(idx)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [_hash_reference(int(i)) for i in idx], rtol=1e-6, atol=1e-6)
    many = hashed_phase(np.arange(200_000, dtype=np.int64))
    assert many.min() >= 0 and many.max() < 2 * math.pi
    hist = np.histogram(many, bins=16, range=(0, 2 * math.pi))[0] / many.size
    assert np.abs(hist - 1 / 16).max() < 0.003  # flat: no bin off by more than ~5% of its share
    assert abs(np.corrcoef(many[:-1], many[1:])[0, 1]) < 0.01  # neighbouring bins' phases unrelated


def test_synthesis_phases_are_a_pure_function_of_subframe_and_bin():
    synth = _codec().synthesis
    whole = synth.phases(0, 24, torch.device("cpu"))  # (2, 24, K)
    part = synth.phases(10, 5, torch.device("cpu"))
    assert whole.shape == (2, 24, CFG.n_bins)
    assert torch.equal(part, whole[:, 10:15])
    assert not torch.equal(whole[0], whole[1])  # excitation and sign streams differ


def test_the_latent_hash_follows_what_fixes_the_latents_not_the_decoder(tmp_path):
    from foley.models.codec import codec_hash, latent_hashes

    codec = _codec()
    h = codec_hash(codec)
    other_decoder = _codec()
    with torch.no_grad():
        for p in other_decoder.decoder.parameters():
            p.add_(0.01)
    assert codec_hash(other_decoder) == h  # a retrained decoder: the same latents, the same generators
    from dataclasses import replace

    from foley.checkpoint import state_hash
    from foley.models.codec import with_harmonic_gain

    plain = Codec(replace(CFG, tonal=True))
    headed = with_harmonic_gain(plain)
    assert headed.cfg.harmonic_gain and codec_hash(headed) == codec_hash(plain)  # the head is decoder side too
    assert headed.legacy_hashes == (state_hash(plain.state_dict()),)  # generators made for `plain` load with it
    for change in ("encoder", "latent_std"):
        c = _codec()
        with torch.no_grad():
            (next(c.encoder.parameters()) if change == "encoder" else c.latent_std).mul_(1.01)
        assert codec_hash(c) != h, change
    assert codec_hash(_codec(CodecConfig(width=64, enc_blocks=2, dec_blocks=2, causal=False))) != h
    other_decoder.legacy_hashes = ("f" * 64,)
    save_codec(tmp_path / "c.pt", other_decoder)
    back = load_codec(tmp_path / "c.pt")
    assert latent_hashes(back)[0] == h and latent_hashes(back)[-1] == "f" * 64  # kept in the file


def test_a_generator_made_for_an_earlier_codec_with_the_same_latents_still_loads(tmp_path):
    from foley.checkpoint import CheckpointError
    from foley.models.dit import DiT, DiTConfig, load_dit, save_dit

    codec = _codec()
    m = DiT(DiTConfig(width=32, depth=1, heads=2, cond_dim=16), codec.cfg.channels)
    save_dit(tmp_path / "d.pt", m, codec_hash="e" * 64)  # what generators recorded before (all the weights' hash)
    with pytest.raises(CheckpointError, match="another codec"):
        load_dit(tmp_path / "d.pt", codec)
    codec.legacy_hashes = ("e" * 64,)
    assert load_dit(tmp_path / "d.pt", codec)[0].channels == codec.cfg.channels
    from foley.checkpoint import state_hash

    codec.legacy_hashes = ()
    save_dit(tmp_path / "d.pt", m, codec_hash=state_hash(codec.state_dict()))  # made for this very codec, before
    assert load_dit(tmp_path / "d.pt", codec)[0].channels == codec.cfg.channels
