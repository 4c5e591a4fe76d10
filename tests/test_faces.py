"""foley.tracking.faces: the cascade finds pasted photo faces, their tracks follow known paths with
identities kept, flickers go and misses are bridged, and the face whose mouth moves with the speech
scores highest (and not with the speech inverted or unrelated)."""
from __future__ import annotations

import math
from typing import Iterator

import cv2
import numpy as np
import pytest

skimage_data = pytest.importorskip("skimage.data")

from foley.errors import TrackError  # noqa: E402
from foley.tracking.faces import FaceTrack, rank_faces, speaking_score, speech_envelope, track_faces  # noqa: E402

W, H, FPS = 400, 300, 25.0  # wider than work_width=320: the detector's scaling is exercised
FACE = 90  # side of the pasted photo, pixels; the face box inside it is about 57 px


def sprite(flip: bool = False) -> np.ndarray:
    """(FACE, FACE, 3) the astronaut's face (skimage.data.astronaut), centred, optionally mirrored."""
    img = cv2.resize(skimage_data.astronaut()[40:190, 150:300], (FACE, FACE), interpolation=cv2.INTER_AREA)
    return img[:, ::-1].copy() if flip else img


def background() -> np.ndarray:
    """(H, W, 3) a blurred-noise backdrop with a ramp: texture, but no face."""
    rng = np.random.default_rng(3)
    noise = cv2.GaussianBlur(rng.random((H, W)).astype(np.float32), (0, 0), 6)
    grey = 255 * (0.6 * np.linspace(0.2, 0.7, W)[None, :] + 0.4 * (noise - noise.min()) / np.ptp(noise))
    return np.stack([0.8 * grey, 0.9 * grey, grey], axis=-1).astype(np.uint8)


def paste(frame: np.ndarray, face: np.ndarray, cx: float, cy: float) -> None:
    x0, y0 = int(round(cx - FACE / 2)), int(round(cy - FACE / 2))
    frame[y0:y0 + FACE, x0:x0 + FACE] = face


def open_mouth(face: np.ndarray, opening: float) -> np.ndarray:
    """The face with a dark open mouth between its lips, `opening` in [0, 1] of its full height."""
    face = face.copy()
    if opening > 0:
        axes = (int(FACE * 0.09), max(1, int(round(FACE * 0.05 * opening))))
        cv2.ellipse(face, (FACE * 74 // 150, FACE * 101 // 150), axes, 0, 0, 360, (90, 40, 45), -1)
    return face


def normalised(cx: np.ndarray, cy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return 2 * cx / W - 1, 2 * cy / H - 1


# two faces side by side that move apart: A (left) goes left and down, B (mirrored) goes right
N_APART = 40
T = np.linspace(0, 1, N_APART)
PATH_A = (150 - 90 * T, 140 + 30 * T)
PATH_B = (250 + 70 * T, np.full(N_APART, 150.0))


def frames_apart() -> Iterator[np.ndarray]:
    bg, a, b = background(), sprite(), sprite(flip=True)
    for k in range(N_APART):
        frame = bg.copy()
        paste(frame, a, PATH_A[0][k], PATH_A[1][k])
        paste(frame, b, PATH_B[0][k], PATH_B[1][k])
        yield frame


def on_off(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n,) bool speech-like activity: alternating runs of 4 to 19 frames, starting silent."""
    on, k, state = np.zeros(n, bool), 0, False
    while k < n:
        run = int(rng.integers(4, 20))
        on[k:k + run], k, state = state, k + run, not state
    return on


N_TALK = 75
TALK_ON = on_off(np.random.default_rng(7), N_TALK)  # three phrases, the first after 0.8 s


def frames_talking() -> Iterator[np.ndarray]:
    """Face A (left) opens and closes its mouth 4.5 times a second while TALK_ON, B's mouth rests; both sway."""
    opening = np.where(TALK_ON, 0.5 + 0.5 * np.sin(2 * np.pi * 4.5 * np.arange(N_TALK) / FPS), 0.0)
    bg, a, b = background(), sprite(), sprite(flip=True)
    for k in range(N_TALK):
        dx = 20 * math.sin(2 * math.pi * k / 50)
        frame = bg.copy()
        paste(frame, open_mouth(a, opening[k]), 120 + dx, 150)
        paste(frame, b, 290 - dx, 140 + dx / 2)
        yield frame


@pytest.fixture(scope="module")
def apart() -> list[FaceTrack]:
    return track_faces(frames_apart(), FPS)


@pytest.fixture(scope="module")
def talking() -> list[FaceTrack]:
    return track_faces(frames_talking(), FPS, detect_every=2)


def test_faces_follow_their_paths_with_identities_kept(apart):
    assert [f.label for f in apart] == ["face0", "face1"]
    for face, path in zip(apart, (PATH_A, PATH_B)):
        t = face.track
        assert len(t) == N_APART and t.frame_size == (W, H) and t.reliable.all()  # detected on every frame
        x, y = normalised(*path)
        assert np.max(np.abs(t.x - x)) < 0.03 and np.max(np.abs(t.y - y)) < 0.04
        box_side = FACE * 95 / 150  # the detector's box on the full photo is 95 px of its 150
        assert 0.7 < np.median(t.mass) / (box_side ** 2 / (W * H)) < 1.4
        assert np.isfinite(face.mouth[1:]).all() and np.nanmax(face.mouth) < 0.1  # no one talks


def test_no_face_in_a_faceless_video():
    ticks = []
    assert track_faces((background() for _ in range(6)), FPS, progress=ticks.append) == []
    assert ticks == [1] * 6


def test_flicker_is_dropped_and_a_short_miss_bridged():
    bg, a, b = background(), sprite(), sprite(flip=True)
    hidden, flash = {10, 11, 12}, {5, 6}  # A missing 3 frames (0.12 s); B on screen for 2 frames
    frames = []
    for k in range(24):
        frame = bg.copy()
        if k not in hidden:
            paste(frame, a, 120 + 4 * k, 150)
        if k in flash:
            paste(frame, b, 300, 150)
        frames.append(frame)
    faces = track_faces(iter(frames), FPS)
    assert len(faces) == 1 and faces[0].track.reliable.all()
    x, _ = normalised(120 + 4 * np.arange(24.0), np.full(24, 150.0))
    assert np.max(np.abs(faces[0].track.x - x)) < 0.03  # the bridge is interpolated on the path
    assert np.isnan(faces[0].mouth[sorted(hidden)]).all()  # no mouth measure without a detection


def test_talking_face_scores_highest(talking):
    assert len(talking) == 2 and all(f.track.reliable.sum() >= N_TALK - 2 for f in talking)
    speaker, silent = talking  # left first
    envelope = np.where(TALK_ON, 1.0, 0.05) + 0.05 * np.random.default_rng(4).random(N_TALK)
    ranked = rank_faces(talking, envelope)
    assert ranked[0].label == speaker.label and ranked[0].track.score > 0.7
    assert ranked[1].track.score < ranked[0].track.score - 0.4  # the sway alone correlates a little
    # inverted speech: the moving mouth is anti-correlated and no longer ranks first
    assert speaking_score(speaker, 1.0 - envelope) < -0.3
    assert rank_faces(talking, 1.0 - envelope)[0].label == silent.label
    # unrelated speech (the envelope shifted in time by 0.4 to 2.4 s): no more than chance
    unrelated = [speaking_score(speaker, np.roll(envelope, shift)) for shift in range(10, 61, 5)]
    assert abs(np.mean(unrelated)) < 0.25 and max(unrelated) < ranked[0].track.score - 0.4


def test_speaking_score_over_a_window(talking):
    speaker, _ = talking
    envelope = TALK_ON.astype(float)
    silence = np.zeros(N_TALK, bool)
    silence[:7] = True  # TALK_ON starts silent: too few frames
    assert speaking_score(speaker, envelope, where=silence) == 0.0
    assert speaking_score(speaker, envelope, where=np.ones(N_TALK, bool)) == speaking_score(speaker, envelope)


def test_speech_envelope_hears_the_speech_band():
    sr, n = 16000, 40
    t = np.arange(int(n / FPS * sr)) / sr
    frame = np.floor(t * FPS).astype(int)
    voice = np.where((frame >= 10) & (frame < 20), np.sin(2 * np.pi * 1000 * t), 0.0)
    hum = np.sin(2 * np.pi * 50 * t)  # as loud, all along, below the band
    hiss = np.where((frame >= 25) & (frame < 31), np.sin(2 * np.pi * 7000 * t), 0.0)  # above it
    env = speech_envelope(np.stack([voice + hum, hiss + hum]), sr, FPS, n)  # (C, N)
    assert env.shape == (n,) and env.max() == pytest.approx(1.0)
    assert env[11:19].min() > 0.9 and np.delete(env, np.arange(9, 21)).max() < 0.1
    assert np.all(speech_envelope(np.zeros(sr), sr, FPS, n) == 0.0)
    assert speech_envelope(voice, sr, FPS, n + 10)[n:].max() == 0.0  # past the audio's end


def test_errors_are_track_errors(apart):
    frame = background()
    with pytest.raises(TrackError, match="fps"):
        track_faces([frame], 0.0)
    with pytest.raises(TrackError, match="RGB uint8"):
        track_faces([frame.astype(np.float32)], FPS)
    with pytest.raises(TrackError, match="all frames must match"):
        track_faces([frame, frame[:100]], FPS)
    with pytest.raises(TrackError, match="no frames"):
        track_faces([], FPS)
    with pytest.raises(TrackError, match="envelope"):
        speaking_score(apart[0], np.zeros(N_APART + 1))
    with pytest.raises(TrackError, match="samples, channels"):
        speech_envelope(np.zeros((16000, 2)), 16000, FPS, 10)
