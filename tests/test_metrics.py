"""Stereo metrics: audio position, Stereo-Score, BAS and pan error."""
import math

import numpy as np
import pytest

from foley.demo import DemoScene
from foley.metrics import audio_position, evaluate, position_bin, stereo_score
from foley.spatial import pan_gains, render_source
from foley.tracks import Track

SR = 48000


def test_stereo_score_reference_values():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 200_000))
    assert stereo_score(np.stack([a, a])) == 0.0
    assert stereo_score(np.stack([a, np.zeros_like(a)])) == pytest.approx(1.0)
    assert stereo_score(np.stack([a, b])) == pytest.approx(1 / math.sqrt(2), abs=0.01)
    gl, gr = pan_gains(np.array([0.4]))
    assert stereo_score(np.stack([gl[0] * a, gr[0] * a])) == pytest.approx(abs(gl[0] - gr[0]) / (gl[0] + gr[0]))


def test_audio_position_inverts_the_pan_law():
    rng = np.random.default_rng(1)
    mono = rng.standard_normal(SR)
    for w in (-0.7, 0.0, 0.3):
        gl, gr = pan_gains(np.array([w]))
        pos = audio_position(np.stack([gl[0] * mono, gr[0] * mono]), SR, 25.0)
        np.testing.assert_allclose(pos.pan, w, atol=1e-9)
        np.testing.assert_allclose(pos.com, math.sin(math.pi * w / 2), atol=1e-9)


def test_a_quiet_tail_after_a_loud_minute_keeps_its_position():
    """float32 audio, a loud minute, then a quiet panned tail (-40 dB, above the silence floor): its frames
    keep their pan (a float32 running sum of energies would stop growing and give them -1 or 0)."""
    rng = np.random.default_rng(3)
    loud = rng.standard_normal(60 * SR).astype(np.float32)
    tail = 0.01 * rng.standard_normal(SR).astype(np.float32)
    gl, gr = pan_gains(np.array([0.45]))
    x = np.concatenate([np.stack([loud, loud]), np.stack([gl[0] * tail, gr[0] * tail])], axis=1).astype(np.float32)
    pos = audio_position(x, SR, 25.0)
    assert not pos.silent[-25:].any()
    np.testing.assert_allclose(pos.pan[-25:], 0.45, atol=0.01)


def test_silent_frames_are_flagged():
    x = np.zeros((2, SR))
    x[:, : SR // 2] = np.random.default_rng(2).standard_normal((2, SR // 2))
    pos = audio_position(x, SR, 25.0)
    assert not pos.silent[:12].any() and pos.silent[13:].all()


def test_bins():
    np.testing.assert_array_equal(position_bin(np.array([-2, -0.06, -0.05, 0, 0.05, 0.06, 1.3])),
                                  [-1, -1, 0, 0, 0, 1, 1])


def test_known_track_rendered_scores_high_bas_and_mirrored_scores_low():
    scene = DemoScene(width=160, height=90, seconds=6.0)
    track = scene.track()
    st = render_source(scene.sound(SR), track, SR)
    rep = evaluate(st, SR, track)
    assert rep.frames_in > 50 and rep.frames_off > 30
    assert rep.bas_in >= 0.95 and rep.bas_off >= 0.95
    assert rep.mae_in < 0.05
    mirrored = evaluate(st[::-1], SR, track)
    assert mirrored.bas < 0.2
    dual = evaluate(np.stack([st.sum(0), st.sum(0)]), SR, track)
    assert dual.stereo_score == 0.0 and dual.bas < 0.2  # dual-mono sits in the centre bin


def test_unknown_frames_are_filled_before_scoring():
    x = np.concatenate([np.linspace(0.2, 0.95, 25), np.full(25, np.nan)])
    t = Track(fps=25.0, x=x, y=np.zeros(50), mass=np.full(50, 0.03), reliable=np.isfinite(x))
    full = Track(fps=25.0, x=np.concatenate([x[:25], 0.95 + 0.031 * np.arange(1, 26)]), y=np.zeros(50),
                 mass=np.full(50, 0.03), reliable=np.ones(50, bool))
    st = render_source(np.random.default_rng(3).standard_normal(2 * SR), full, SR)
    rep = evaluate(st, SR, t)
    assert rep.frames_off >= 20 and rep.bas_off == 1.0
