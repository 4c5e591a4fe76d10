"""Spatialization: pan law, distance gain, trajectory conditioning, rendering and mixing."""
import math

import numpy as np
import pytest

from foley.errors import AudioError, TrackError
from foley.spatial import (SpatialConfig, condition_track, distance_gain, is_stereo_bed, mix, mix_blocks,
                           normalise_blocks, pan_gains, render_source, smooth, spatialize, spread_ambience,
                           spread_blocks, upsample)
from foley.tracks import Track

SR = 48000
FPS = 25.0
RAW = SpatialConfig(smooth_frames=1)  # no smoothing: checks the filling alone


def make_track(x, mass=None, reliable=None, frame_size=None):
    x = np.asarray(x, float)
    mass = np.full_like(x, 0.04) if mass is None else np.asarray(mass, float)
    reliable = np.isfinite(x) if reliable is None else np.asarray(reliable, bool)
    return Track(fps=FPS, x=x, y=np.zeros_like(x), mass=mass, reliable=reliable, frame_size=frame_size)


def test_pan_law_preserves_energy_and_left_is_left():
    w = np.linspace(-1.5, 1.5, 301)
    gl, gr = pan_gains(w)
    np.testing.assert_allclose(gl ** 2 + gr ** 2, 1.0, atol=1e-12)
    assert pan_gains(np.array([-1.0]))[0][0] == pytest.approx(1.0)
    assert pan_gains(np.array([-1.0]))[1][0] == pytest.approx(0.0, abs=1e-12)
    assert pan_gains(np.array([1.0]))[1][0] == pytest.approx(1.0)
    gl0, gr0 = pan_gains(np.array([0.0]))
    assert gl0[0] == pytest.approx(math.sqrt(0.5)) and gr0[0] == pytest.approx(math.sqrt(0.5))
    assert np.all(np.diff(gr) >= 0) and np.all(np.diff(gl) <= 0)  # monotone: more right, louder right


def test_distance_gain_eq4():
    m = np.array([0.02, 0.01, 0.02, 0.02])
    w = np.array([0.0, 0.5, 2.0, -3.0])
    np.testing.assert_allclose(distance_gain(m, w, 0.02), [1.0, 0.5, 0.5, 0.2])


def test_render_source_left_source_is_louder_left():
    n = SR
    rng = np.random.default_rng(0)
    mono = rng.standard_normal(n)
    st = render_source(mono, make_track(np.full(25, -0.6)), SR)
    gl, gr = pan_gains(np.array([-0.6]))
    assert np.sum(st[0] ** 2) > 5 * np.sum(st[1] ** 2)
    np.testing.assert_allclose(st[0], gl[0] * mono, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.sum(st.astype(float) ** 2), np.sum(mono ** 2), rtol=1e-5)  # energy preserved


def test_missed_frames_are_linearly_interpolated():
    x = np.linspace(-0.5, 0.5, 40)
    holed = x.copy()
    holed[10:20] = np.nan
    ct = condition_track(make_track(holed), RAW)
    np.testing.assert_allclose(ct.x, x, atol=1e-12)
    ct_smooth = condition_track(make_track(holed))  # smoothing keeps a straight line straight inside
    np.testing.assert_allclose(ct_smooth.x[3:-3], x[3:-3], atol=1e-12)


def test_exit_is_extrapolated_off_frame_with_recent_velocity_and_last_mass():
    x = np.full(90, np.nan)
    x[:30] = np.linspace(0.0, 0.87, 30)  # 0.03 per frame, last reliable at 0.87
    mass = np.full(90, 0.04)
    mass[30:] = 0.0  # tracker reports nothing
    ct = condition_track(make_track(x, mass), RAW)
    np.testing.assert_allclose(ct.x[30:40], 0.87 + 0.03 * np.arange(1, 11), atol=1e-9)
    assert ct.x.max() == pytest.approx(SpatialConfig().max_offscreen)  # capped far away
    np.testing.assert_allclose(ct.mass[30:], 0.04)


def test_entry_is_extrapolated_backwards():
    x = np.full(40, np.nan)
    x[20:] = np.linspace(-0.9, 0.05, 20)  # enters from the left at 0.05 per frame
    ct = condition_track(make_track(x), RAW)
    np.testing.assert_allclose(ct.x[:20], -0.9 - 0.05 * np.arange(20, 0, -1), atol=1e-9)
    assert np.all(ct.x[:18] < -1.0)


def test_exit_and_return_on_same_side_stays_off_frame():
    x = np.full(80, np.nan)
    x[:20] = np.linspace(0.3, 0.95, 20)
    x[60:] = np.linspace(0.95, 0.3, 20)
    ct = condition_track(make_track(x), RAW)
    assert np.all(ct.x[20:60] > 1.0), "an object that left right and came back right was off-frame right"


def test_edge_mass_persistence():
    x = np.linspace(0.0, 1.0, 30)
    mass = np.full(30, 0.04)
    mass[-6:] = np.linspace(0.035, 0.01, 6)  # only part of it still visible at the edge
    ct = condition_track(make_track(x, mass), RAW)
    np.testing.assert_allclose(ct.mass[-6:], 0.04)


def test_smooth_is_a_weighted_moving_average():
    v = np.zeros(11)
    v[5] = 9.0
    s = smooth(v, 5)
    np.testing.assert_allclose(s[3:8], [1, 2, 3, 2, 1])
    assert s.sum() == pytest.approx(9.0)


def test_upsampled_gains_have_no_zipper():
    x = -1 + 0.04 * np.arange(50)  # 0.04 per frame
    w = upsample(x, FPS, SR, int(2 * SR))
    step = np.max(np.abs(np.diff(w)))
    assert step <= 0.04 / (SR / FPS) * 1.001  # never a jump at a frame boundary
    gl, _ = pan_gains(w)
    assert np.max(np.abs(np.diff(gl))) < 1e-4


def test_spread_ambience_is_decorrelated_and_keeps_level():
    rng = np.random.default_rng(1)
    amb = rng.standard_normal(SR)
    st = spread_ambience(amb, SR)
    corr = np.corrcoef(st[0], st[1])[0, 1]
    assert abs(corr) < 0.3
    for ch in st:
        assert np.std(ch) == pytest.approx(np.std(amb), rel=0.15)
    dual = spread_ambience(np.stack([amb, amb]), SR)  # dual-mono counts as mono
    assert abs(np.corrcoef(dual[0], dual[1])[0, 1]) < 0.3


def test_mix_never_clips_and_keeps_the_image():
    rng = np.random.default_rng(2)
    src = np.stack([3.0 * rng.standard_normal(SR), 1.0 * rng.standard_normal(SR)])
    out = mix([src])
    assert np.max(np.abs(out)) <= SpatialConfig().ceiling + 1e-6
    np.testing.assert_allclose(np.std(out[0]) / np.std(out[1]), np.std(src[0]) / np.std(src[1]), rtol=1e-5)
    quiet = mix([0.02 * src])
    np.testing.assert_allclose(quiet, 0.02 * src, atol=1e-6)  # no gain change when under the ceiling


def test_bad_input():
    with pytest.raises(AudioError):
        render_source(np.array([0.0, np.nan, 1.0]), make_track(np.zeros(3)), SR)
    with pytest.raises(TrackError):
        condition_track(make_track(np.full(10, np.nan)))
    with pytest.raises(AudioError):
        render_source(np.zeros((2, 100)), make_track(np.zeros(3)), SR)


def test_chunked_rendering_equals_whole(monkeypatch):
    import foley.spatial as sp

    rng = np.random.default_rng(4)
    mono = rng.standard_normal(3 * SR).astype(np.float32)
    track = make_track(np.linspace(-1.4, 1.3, 75))
    whole = render_source(mono, track, SR)
    monkeypatch.setattr(sp, "RENDER_CHUNK", 1000)
    np.testing.assert_allclose(render_source(mono, track, SR), whole, atol=1e-6)


def _blocks(audio, sizes=(5000, 1, 30_000, 700, 0, 64_000)):
    """An iterator of (C, k) (or (k,)) blocks of irregular sizes covering `audio`'s last axis."""
    a, i = 0, 0
    while a < audio.shape[-1]:
        k = sizes[i % len(sizes)]
        yield audio[..., a:a + k]
        a, i = a + k, i + 1


def test_spread_blocks_equal_the_whole_bed():
    rng = np.random.default_rng(5)
    amb = 0.25 * rng.standard_normal(3 * SR).astype(np.float32)  # peaks near full scale
    whole = spread_ambience(amb, SR)
    for blocks in (_blocks(amb), _blocks(np.stack([amb, amb]))):  # mono, and dual-mono downmixed
        streamed = np.concatenate(list(spread_blocks(blocks, SR)), axis=1)
        assert streamed.shape == whole.shape == (2, 3 * SR)
        np.testing.assert_allclose(streamed, whole, atol=1e-6)
    assert not is_stereo_bed(_blocks(np.stack([amb, amb + 1e-7])))
    assert is_stereo_bed(_blocks(np.stack([amb, np.roll(amb, 1)])))


@pytest.mark.parametrize("loud", [True, False])
def test_streamed_mix_equals_spatialize(loud):
    rng = np.random.default_rng(6)
    n = 3 * SR
    mono = (3.0 if loud else 0.05) * rng.standard_normal(n - 1000).astype(np.float32)  # shorter: padded
    amb = 0.1 * rng.standard_normal((2, n + 5000)).astype(np.float32)  # real stereo, longer: trimmed
    track = make_track(np.linspace(-1.4, 1.3, 75), frame_size=(320, 180))
    cfg = SpatialConfig()
    whole = spatialize([np.pad(mono, (0, 1000))], [track], SR, ambience=amb, ambience_gain=0.3, cfg=cfg)

    def render():
        return mix_blocks([_blocks(mono[None])], [track], n, SR, _blocks(amb), 0.3, cfg, block=10_000)

    gain, blocks = normalise_blocks(render, cfg)
    streamed = np.concatenate(list(blocks), axis=1)
    assert streamed.shape == whole.shape and streamed.dtype == np.float32
    np.testing.assert_array_equal(streamed, whole)
    assert (gain < 1) == loud and np.max(np.abs(streamed)) <= cfg.ceiling + 1e-6
