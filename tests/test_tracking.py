"""foley.tracking: the motion tracker recovers the demo ball (and a second object, and nothing when
nothing moves), CSRT follows a box, and the audio picks the object that makes the sound."""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import pytest

from foley.demo import DemoScene
from foley.errors import TrackError
from foley.tracking import onset_envelope, rank_by_audio, track_box, track_motion
from foley.tracks import Track

SCENE = DemoScene(width=320, height=180)  # 8 s at 25 fps, slow camera pan
SQUARE = 24  # side of the second object, pixels
SR = 48000


class NoBall(DemoScene):
    """The demo's panning textured background with nothing moving in it."""

    def mask(self, k: int) -> np.ndarray:
        return np.zeros((self.height, self.width), bool)


def square_centre(k: int) -> tuple[float, float]:
    """Normalised centre of the second object: swings left and right along the top of the frame."""
    return 0.6 * math.sin(2 * math.pi * 1.3 * k / SCENE.n_frames), -0.65


def frames_with_square(scene: DemoScene) -> Iterator[np.ndarray]:
    """The scene's frames with a blocky black-and-white textured square pasted on its own path."""
    rng = np.random.default_rng(7)
    tex = np.kron(rng.integers(0, 2, (SQUARE // 4, SQUARE // 4)), np.ones((4, 4))) * 200 + 30  # (S, S)
    tex = np.repeat(tex[..., None], 3, axis=2).astype(np.uint8)  # (S, S, 3)
    for k, frame in enumerate(scene.frames()):
        x, y = square_centre(k)
        c0 = int(round((x + 1) * scene.width / 2)) - SQUARE // 2
        r0 = int(round((y + 1) * scene.height / 2)) - SQUARE // 2
        frame = frame.copy()
        frame[r0:r0 + SQUARE, c0:c0 + SQUARE] = tex
        yield frame


def ball_visibility(scene: DemoScene, truth: Track) -> tuple[np.ndarray, np.ndarray]:
    """(K,) bool masks: ball fully inside the frame, ball fully outside it."""
    r = 2 * scene.radius / scene.width  # radius in normalised x units
    return np.abs(truth.x) < 1 - r, np.abs(truth.x) > 1 + r


@pytest.fixture(scope="module")
def truth() -> Track:
    return SCENE.track()


@pytest.fixture(scope="module")
def ball_tracks() -> list[Track]:
    return track_motion(SCENE.frames(), SCENE.fps)


def test_motion_recovers_ball_trajectory_and_mass(ball_tracks, truth):
    ball = ball_tracks[0]
    assert len(ball) == SCENE.n_frames and ball.label == "object0" and ball.frame_size == (320, 180)
    inside, _ = ball_visibility(SCENE, truth)
    seen = inside & ball.reliable
    assert seen.sum() >= 0.9 * inside.sum()
    assert np.mean(np.abs(ball.x - truth.x)[seen]) < 0.05
    assert np.mean(np.abs(ball.y - truth.y)[seen]) < 0.05
    ratio = ball.mass[seen] / truth.mass[seen]
    assert 0.8 < np.median(ratio) < 1.2
    assert np.mean(np.abs(ratio - 1)) < 0.2


def test_motion_sees_exit_and_reentry(ball_tracks, truth):
    ball = ball_tracks[0]
    inside, outside = ball_visibility(SCENE, truth)
    assert np.mean(~ball.reliable[outside]) >= 0.9
    gap = np.nonzero(outside)[0]
    gap = gap[gap > np.argmax(inside)]  # the exit on the right, after the first crossing
    before, after = np.arange(SCENE.n_frames) < gap[0], np.arange(SCENE.n_frames) > gap[-1]
    assert ball.reliable[inside & before].mean() >= 0.9
    assert ball.reliable[inside & after].mean() >= 0.9  # the same track picks the ball up again
    assert all(t.reliable.mean() < 0.05 for t in ball_tracks[1:])


def test_motion_finds_an_untextured_object_as_bright_as_the_background():
    # a flat red disc of the background's mean grey level: no texture, barely any luminance edge;
    # at 640x360 so the downscaling path runs too
    scene = DemoScene(width=640, height=360, seconds=4)
    background = NoBall(width=640, height=360, seconds=4)  # same seed: the same background

    def frames() -> Iterator[np.ndarray]:
        for k, frame in enumerate(background.frames()):
            frame = frame.copy()
            frame[scene.mask(k)] = (230, 60, 40)
            yield frame

    truth = scene.track()
    disc = track_motion(frames(), scene.fps)[0]
    inside, outside = ball_visibility(scene, truth)
    seen = inside & disc.reliable
    assert seen.sum() >= 0.9 * inside.sum()
    assert np.mean(np.abs(disc.x - truth.x)[seen]) < 0.05
    assert 0.8 < np.median(disc.mass[seen] / truth.mass[seen]) < 1.2
    partial = ~inside & ~outside & disc.reliable  # entering or leaving: the frame edge cuts its outline
    assert partial.sum() >= 0.7 * (~inside & ~outside).sum()
    assert np.mean(np.abs(disc.x - truth.x)[partial]) < 0.05


def test_motion_compensates_a_fast_pan():
    scene = DemoScene(width=320, height=180, pan_px_per_s=240)  # ~10 px per frame
    truth = scene.track()
    ball = track_motion(scene.frames(), scene.fps)[0]
    inside, _ = ball_visibility(scene, truth)
    seen = inside & ball.reliable
    assert seen.sum() >= 0.9 * inside.sum()
    assert np.mean(np.abs(ball.x - truth.x)[seen]) < 0.05
    assert 0.8 < np.median(ball.mass[seen] / truth.mass[seen]) < 1.2


def test_motion_finds_nothing_on_a_panning_background():
    scene = NoBall(width=320, height=180, seconds=5, pan_px_per_s=240)
    calls = []
    tracks = track_motion(scene.frames(), scene.fps, progress=calls.append)
    assert sum(calls) == scene.n_frames
    assert all(t.reliable.mean() < 0.05 for t in tracks)


def test_motion_separates_two_objects(truth):
    tracks = track_motion(frames_with_square(SCENE), SCENE.fps, max_objects=3)
    assert len(tracks) >= 2
    square_x = np.array([square_centre(k)[0] for k in range(SCENE.n_frames)])
    inside, _ = ball_visibility(SCENE, truth)

    def error(t: Track, x: np.ndarray, where: np.ndarray) -> float:
        ok = t.reliable & where
        return float(np.mean(np.abs(t.x - x)[ok])) if ok.sum() >= 40 else math.inf

    everywhere = np.ones(SCENE.n_frames, bool)
    ball = [t for t in tracks if error(t, truth.x, inside) < 0.05]
    square = [t for t in tracks if error(t, square_x, everywhere) < 0.05]
    assert len(ball) >= 1 and len(square) >= 1 and ball[0] is not square[0]
    assert square[0].reliable.mean() > 0.5


def test_box_follows_ball(truth):
    k0 = 30
    x, y = SCENE.centre(k0)
    cx, cy, r = (x + 1) * SCENE.width / 2, (y + 1) * SCENE.height / 2, SCENE.radius
    track = track_box(SCENE.frames(), SCENE.fps, (cx - r, cy - r, 2 * r, 2 * r), start_frame=k0)
    assert len(track) == SCENE.n_frames and not track.reliable[:k0].any()
    inside, outside = ball_visibility(SCENE, truth)
    first_exit = k0 + np.argmax(~inside[k0:])
    span = np.arange(k0, first_exit)
    assert track.reliable[span].mean() >= 0.9
    assert np.nanmean(np.abs(track.x - truth.x)[span]) < 0.05
    assert np.nanmean(np.abs(track.y - truth.y)[span]) < 0.05
    assert not track.reliable[outside].any()


def test_onset_envelope_peaks_at_impacts():
    env = onset_envelope(SCENE.sound(SR)[None], SR, SCENE.fps, SCENE.n_frames)
    assert env.shape == (SCENE.n_frames,)
    impacts = np.round(SCENE.impact_times() * SCENE.fps).astype(int)
    impacts = impacts[impacts < SCENE.n_frames - 1]
    near = np.maximum.reduce([env[impacts - 1], env[impacts], env[impacts + 1]])
    assert np.all(near > 0.2) and np.median(env) < 0.05


def test_onset_envelope_streamed_equals_whole():
    sound = SCENE.sound(SR)[None]
    whole = onset_envelope(sound, SR, SCENE.fps, SCENE.n_frames)
    sizes = [1, 777, 50_000, 0, 4096, 123_457]
    cuts = np.cumsum(sizes * 10)
    blocks = iter(np.split(np.concatenate([sound, sound]), cuts[cuts < sound.shape[1]], axis=1))  # (2, k)
    np.testing.assert_array_equal(onset_envelope(blocks, SR, SCENE.fps, SCENE.n_frames), whole)
    with pytest.raises(TrackError):
        onset_envelope(iter([np.zeros((1, 0))]), SR, SCENE.fps, SCENE.n_frames)


def test_rank_by_audio_prefers_the_sounding_object(ball_tracks):
    k = np.arange(SCENE.n_frames)
    swing = np.full(len(k), 0.01)
    # a distractor that also bounces, on another rhythm (1.1 Hz instead of the ball's 1.6 Hz)
    bouncer = Track(fps=SCENE.fps, x=0.5 * np.sin(2 * np.pi * 0.5 * k / SCENE.fps),
                    y=0.6 - 0.8 * np.abs(np.sin(np.pi * 1.1 * k / SCENE.fps)), mass=swing,
                    reliable=np.ones(len(k), bool), label="bouncer", frame_size=(320, 180))
    glider = bouncer.with_(x=np.array([square_centre(i)[0] for i in k]), y=np.full(len(k), -0.65),
                           label="glider")
    ranked = rank_by_audio([bouncer, glider, ball_tracks[0].with_(label="ball")], SCENE.sound(SR)[None], SR)
    assert [t.label for t in ranked][0] == "ball"
    # score = prior x lift of F over chance: the ball is seen in about half the frames, so about 0.5
    assert ranked[0].score > 0.4 and all(t.score < ranked[0].score - 0.3 for t in ranked[1:])


def test_bad_inputs_raise_track_error():
    frames = [np.zeros((36, 64, 3), np.uint8)] * 4
    with pytest.raises(TrackError):
        track_motion(iter([]), 25.0)
    with pytest.raises(TrackError):
        track_motion(iter(frames), 0.0)
    with pytest.raises(TrackError):
        track_motion(iter([np.zeros((36, 64), np.uint8)] * 4), 25.0)
    with pytest.raises(TrackError):
        track_motion(iter(frames), 25.0, max_objects=0)
    with pytest.raises(TrackError):
        track_box(iter(frames), 25.0, (60, 10, 20, 20))  # sticks out on the right
    with pytest.raises(TrackError):
        track_box(iter(frames), 25.0, (10, 10, 0, 20))
    with pytest.raises(TrackError):
        track_box(iter(frames), 25.0, (10, 10, 20, 20), start_frame=4)
    track = track_box(iter(frames), 25.0, (10, 10, 20, 20))
    with pytest.raises(TrackError):
        rank_by_audio([], np.zeros((1, 4800)), SR)
    with pytest.raises(TrackError):
        rank_by_audio([track], np.full((2, 4800), np.nan), SR)
    with pytest.raises(TrackError):
        rank_by_audio([track, track.with_(x=track.x[:3], y=track.y[:3], mass=track.mass[:3],
                                          reliable=track.reliable[:3])], np.zeros((1, 4800)), SR)


def test_a_track_that_darts_about_before_the_object_appears_starts_with_the_object():
    """Before a ball comes into view the follower may latch onto rain streaks that jump across the frame, then
    onto the ball: the darting start is dropped, the steady rest kept; a steady track keeps every frame."""
    from foley.tracking.follow import Blob, Follower

    f = Follower(320, 180, 25.0)
    dart = [-0.3, -0.27, -0.06, -0.05, 0.31, 0.63, 0.96]  # frames 1-7: rain streaks
    steady = list(np.linspace(0.6, 0.2, 40))  # frames 9-48: the ball, drifting left
    for k in range(49):
        x = dart[k - 1] if 1 <= k <= 7 else (steady[k - 9] if k >= 9 else None)
        f.update(k, [] if x is None else [Blob(x=float(x), y=0.0, mass=0.01)])
    tracks = f.finish(50, 3)
    assert len(tracks) == 1
    x = tracks[0].x
    assert np.isnan(x[:9]).all() and np.allclose(x[9:49], steady, atol=1e-6)
    # the same steady run from frame 1, no darting: nothing is dropped
    g = Follower(320, 180, 25.0)
    for k in range(1, 41):
        g.update(k, [Blob(x=float(steady[k - 1]), y=0.0, mass=0.01)])
    assert np.isfinite(g.finish(50, 3)[0].x[1:41]).all()
