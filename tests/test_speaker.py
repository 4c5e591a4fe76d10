"""Talking faces in the pipeline: is the sound speech (SpeechMeter), and who speaks in each shot (speaker_track)."""
import math

import numpy as np
import pytest

from foley.errors import TrackError
from foley.tracking.faces import FaceTrack
from foley.tracking.speaker import LABEL, shots, speaker_track
from foley.tracking.speech import SpeechMeter
from foley.tracks import Track

SR, FPS, N = 48000, 25.0, 200


def syllables(rate_hz: float = 4.0, seconds: float = N / FPS, seed: int = 0) -> np.ndarray:
    """(N,) speech-like sound: 300-3000 Hz harmonic bursts switching on and off at a syllable rate."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 + 20 * np.sin(2 * math.pi * 0.5 * t)
    voice = sum(np.sin(2 * math.pi * np.cumsum(h * f0) / SR) / h for h in range(3, 20))
    gate = (np.sin(2 * math.pi * rate_hz * t + rng.uniform(0, 6)) > 0).astype(float)
    return (0.3 * voice * gate).astype(np.float32)


def meter_of(sound: np.ndarray, block: int = 4096) -> SpeechMeter:
    m = SpeechMeter(SR, FPS, N)
    for a in range(0, len(sound), block):
        m.feed(sound[a:a + block][None])
    return m


def test_speech_is_told_from_a_hum_and_a_siren():
    t = np.arange(int(N / FPS * SR)) / SR
    hum = 0.3 * np.sin(2 * math.pi * 110 * t) + 0.2 * np.sin(2 * math.pi * 220 * t)
    siren = 0.3 * np.sin(2 * math.pi * np.cumsum(900 + 300 * np.sin(2 * math.pi * 0.5 * t)) / SR)
    siren *= 1 + 0.5 * np.sin(2 * math.pi * 0.5 * t)  # swelling slowly
    assert meter_of(syllables()).speech_like()[0]
    assert meter_of(syllables(3.0, seed=2)).speech_like()[0]
    assert not meter_of(hum).speech_like()[0]  # outside the band
    assert not meter_of(siren).speech_like()[0]  # in the band, but not at the syllable rate
    assert not meter_of(np.zeros_like(t)).speech_like()[0]


def test_the_meter_is_the_same_however_the_sound_is_cut():
    s = syllables()
    a, b = meter_of(s, 4096).band, meter_of(s, 777).band
    assert a.shape == (N,) and a.max() == pytest.approx(1.0)
    np.testing.assert_allclose(a, b, atol=1e-9)
    gate_on = np.abs(np.convolve(s, np.ones(SR // 50), "same")) > 0  # where the voice is on
    frames_on = np.array([gate_on[int(k * SR / FPS):int((k + 1) * SR / FPS)].mean() for k in range(N)])
    assert np.corrcoef(a, frames_on)[0, 1] > 0.8  # the envelope follows the syllables


def test_a_meter_needs_sane_rates():
    with pytest.raises(TrackError):
        SpeechMeter(6000, FPS, N)  # too low a rate for the band
    with pytest.raises(TrackError):
        SpeechMeter(SR, 0.0, N)


def face(label: str, x: float, mouth: np.ndarray, present: slice) -> FaceTrack:
    rel = np.zeros(N, bool)
    rel[present] = True
    xs = np.where(rel, x, np.nan)
    track = Track(fps=FPS, x=xs, y=np.where(rel, 0.0, np.nan), mass=np.where(rel, 0.05, 0.0), reliable=rel,
                  label=label, frame_size=(320, 180))
    return FaceTrack(track=track, mouth=np.where(rel, mouth, np.nan), boxes=np.full((N, 4), np.nan))


def test_the_speaker_track_follows_whoever_talks_in_each_shot():
    rng = np.random.default_rng(1)
    env = (np.sin(2 * math.pi * 4 * np.arange(N) / FPS) > 0).astype(float)  # speech on and off
    talking = env + 0.1 * rng.standard_normal(N)
    still = 0.1 * rng.standard_normal(N)
    cut = 100
    left = face("face0", -0.5, np.r_[talking[:cut], still[cut:]], slice(0, N))  # talks in shot 1
    right = face("face1", 0.6, np.r_[still[:cut], talking[cut:]], slice(0, N))  # talks in shot 2
    track, verdicts = speaker_track([left, right], env, [cut], N, FPS)
    assert track.label == LABEL and [v.label for v in verdicts] == ["face0", "face1"]
    assert np.allclose(track.x[:cut], -0.5) and np.allclose(track.x[cut:], 0.6)
    # nobody's mouth follows the speech: no speaker, not a guess
    none, verdicts = speaker_track([face("face0", -0.5, still, slice(0, N))], env, [], N, FPS)
    assert none is None and verdicts[0].label is None
    # two faces talking alike: no clear speaker in that shot
    twin = face("face1", 0.6, talking + 0.05 * rng.standard_normal(N), slice(0, N))
    both, verdicts = speaker_track([face("face0", -0.5, talking, slice(0, N)), twin], env, [], N, FPS)
    assert both is None and verdicts[0].label is None


def test_shots_split_at_cuts():
    assert shots([99, 155, 0, 155, 400], 270) == [(0, 99), (99, 155), (155, 270)]
    assert shots([], 10) == [(0, 10)]
