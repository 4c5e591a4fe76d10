"""foley.pipeline: the streamed file job writes what the array API computes."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from foley import io
from foley.demo import DemoScene
from foley.pipeline import SR, TrackSpec, spatialize_video
from foley.spatial import SpatialConfig, fit_length, spatialize
from foley.tracks import save_tracks

LSB = 2.0 ** -23  # of 24-bit PCM


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 3 s silent demo video, its true track as a file, and a loud sound 0.5 s too short (clips unscaled)."""
    d = tmp_path_factory.mktemp("clip")
    scene = DemoScene(width=160, height=90, seconds=3.0)
    io.write_video(d / "silent.mp4", scene.frames(), scene.fps)
    save_tracks(d / "truth.json", [scene.track()])
    sf.write(d / "loud.wav", 3.0 * scene.sound(SR)[: int(2.5 * SR)], SR, subtype="FLOAT")
    return d


@pytest.mark.parametrize("ambience", [None, "mono", "dual", "stereo"])
def test_streamed_spatialize_video_equals_the_array_api(clip, tmp_path, caplog, ambience):
    rng = np.random.default_rng(0)
    amb_path, amb = None, None
    if ambience is not None:
        amb = 0.3 * rng.standard_normal((1 if ambience == "mono" else 2, 4 * SR))  # longer than the video
        amb[1:] = amb[:1] if ambience == "dual" else amb[1:]
        amb_path = tmp_path / "amb.flac"
        io.write_audio(amb_path, amb, SR)
    out = tmp_path / "out.wav"
    with caplog.at_level(logging.WARNING, logger="foley"):
        track, gain = spatialize_video(clip / "silent.mp4", out, TrackSpec.parse(str(clip / "truth.json")),
                                       audio_path=clip / "loud.wav", ambience_path=amb_path, ambience_gain=0.5)
    assert "padding the audio" in caplog.text

    mono = fit_length(io.read_audio(clip / "loud.wav", sr=SR, channels=1)[0], 3 * SR)
    bed = None if amb_path is None else io.read_audio(amb_path, sr=SR)
    expected = spatialize([mono], [track], SR, ambience=bed, ambience_gain=0.5)  # (2, N)
    written = io.read_audio(out, sr=SR)
    assert written.shape == expected.shape == (2, 3 * SR)
    np.testing.assert_allclose(written, expected, rtol=0, atol=4 * LSB)  # 24-bit rounding (+ FFT rounding of the bed)
    ceiling = SpatialConfig().ceiling
    assert gain < 1 and np.max(np.abs(written)) == pytest.approx(ceiling, abs=2 * LSB)  # one gain, to -1 dBFS
