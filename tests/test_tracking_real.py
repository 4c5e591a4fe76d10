"""The motion tracker on what real footage is full of (photo scenes with exact truth, foley.world.photo):
objects that stop, plain objects that move slowly, crossings, big rigid objects, shot cuts, repeated frames."""
from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from foley.tracking import track_motion
from foley.tracking.appearance import Look, colour_hist
from foley.tracking.background import valid_after_warp
from foley.tracking.cuts import CutDetector
from foley.tracks import Track
from foley.world import photo


def run(name: str) -> tuple[list[Track], list[Track], photo.PhotoScene]:
    scene = photo.SCENES[name]
    return track_motion(photo.frames(scene), scene.fps, max_objects=4), photo.truth(scene), scene


def on(track: Track, truth: Track, tol: float = 0.1) -> np.ndarray:
    """(K,) bool: the track is reliable and within tol (x and y) of a visible truth."""
    ok = track.reliable & truth.reliable
    return ok & (np.abs(track.x - truth.x) < tol) & (np.abs(track.y - truth.y) < tol)


def best(tracks: list[Track], truth: Track) -> Track:
    return max(tracks, key=lambda t: on(t, truth).sum())


@pytest.fixture(scope="module")
def stop():
    return run("stop")


def test_an_object_that_stops_is_kept_where_it_stands_at_its_size(stop):
    tracks, (cat,), scene = stop
    t = best(tracks, cat)
    assert on(t, cat).sum() >= 0.9 * cat.reliable.sum()
    still = np.arange(len(cat)) >= len(cat) - int(2.0 * scene.fps)  # the last 2 s: standing still
    assert np.ptp(cat.x[still]) < 1e-9  # (the scene's truth does stand still)
    assert on(t, cat, 0.05)[still].mean() >= 0.95
    assert 0.6 < np.median(t.mass[still] / cat.mass[still]) < 1.4  # mass stays the object's size
    assert len(tracks) == 1  # and the background model's trail of it is no second object


def test_a_plain_square_moving_slowly_is_found():
    tracks, (square,), _ = run("plain_slow")  # 120x120 uniform red at 4 px/frame on a 1280x720 photo
    t = best(tracks, square)
    assert on(t, square).sum() >= 0.85 * square.reliable.sum()
    assert np.nanmedian(np.abs(t.x - square.x)[t.reliable]) < 0.09  # (it lags a little: the background
    # model sees the front of a slow plain object sooner than its back)
    assert 0.6 < np.median(t.mass[t.reliable] / square.mass[t.reliable]) < 1.6


def test_two_objects_that_pass_close_keep_their_identities():
    tracks, truths, _ = run("crossing")
    for truth in truths:
        t = best(tracks, truth)
        others = [u for u in truths if u is not truth]
        apart = np.min([np.abs(truth.x - u.x) for u in others], axis=0) > 0.1  # (while they overlap, either)
        both = t.reliable & truth.reliable & apart
        mine = np.abs(t.x - truth.x)[both]
        theirs = np.min([np.abs(t.x - u.x)[both] for u in others], axis=0)
        assert not np.any((theirs < 0.05) & (mine > 0.1))  # the track never sits on the other object...
        assert on(t, truth).sum() >= 0.75 * truth.reliable.sum()  # ...and on it, but while they overlap (2 s of 7)
    assert best(tracks, truths[0]) is not best(tracks, truths[1])


def test_a_big_rigid_object_is_one_track():
    tracks, (suit,), _ = run("rigid")  # 230x220 textured, sliding slowly: motion sees it in parts
    near = [t for t in tracks if (t.reliable & (np.abs(t.x - suit.x) < 0.3)).mean() > 0.5]
    assert len(near) == 1
    assert np.nanmean(np.abs(near[0].x - suit.x)[near[0].reliable]) < 0.1


def test_tracks_end_at_a_shot_cut_and_repeated_frames_are_held():
    a, b = photo.SCENES["crossing"], photo.SCENES["pan"]
    cut = 90
    doubled = lambda frames: itertools.chain.from_iterable((f, f) for f in frames)  # a 12.5 fps source at 25
    frames = itertools.chain(itertools.islice(doubled(photo.frames(a)), cut), doubled(photo.frames(b)))
    tracks = track_motion(frames, a.fps, max_objects=4)
    assert tracks and all(t.reliable[cut - 1] is np.False_ or not t.reliable[cut] for t in tracks)
    for t in tracks:  # no run of reliable frames spans the cut
        r = t.reliable.astype(int)
        assert not (r[cut - 1] and r[cut])
    held = [t for t in tracks if t.reliable[cut + 10:cut + 60].mean() > 0.8]
    assert held  # the repeated frames (every other one) do not blind it: found in the second shot...
    k = np.arange(cut + 10, cut + 60, 2)
    np.testing.assert_array_equal(held[0].x[k], held[0].x[k + 1])  # ...and each repeat holds its frame's place


def test_a_cut_is_a_jump_not_a_pan():
    rng = np.random.default_rng(0)
    world = rng.integers(0, 256, (120, 900, 3), np.uint8)
    world = cv2.GaussianBlur(world, (15, 15), 0)
    other = cv2.applyColorMap(world[..., 0], cv2.COLORMAP_JET)
    det = CutDetector()
    pans = [det.is_cut(np.ascontiguousarray(world[:, 8 * k:8 * k + 320])) for k in range(40)]  # a fast pan
    assert not any(pans)
    assert det.is_cut(np.ascontiguousarray(other[:, :320]))


def test_a_look_finds_its_object_and_not_the_background():
    rng = np.random.default_rng(1)
    scene = cv2.GaussianBlur(rng.integers(0, 256, (120, 200, 3), np.uint8), (5, 5), 0)
    patch = np.zeros((30, 30, 3), np.uint8)
    patch[..., 0] = 200
    patch[::6, :, 1] = 255  # a striped red object
    frame = scene.copy()
    frame[40:70, 50:80] = patch
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    mask = np.zeros(grey.shape, bool)
    mask[40:70, 50:80] = True
    look = Look.take(frame, grey, mask, (50, 40, 30, 30), (64.5, 54.5), 0.04)
    moved = scene.copy()
    moved[45:75, 57:87] = patch  # 7 px right, 5 down
    found = look.find(moved, cv2.cvtColor(moved, cv2.COLOR_RGB2GRAY), np.array([64.5, 54.5]), reach=12)
    assert found is not None and np.allclose(found[0], [71.5, 59.5])
    gone = look.find(scene, cv2.cvtColor(scene, cv2.COLOR_RGB2GRAY), np.array([64.5, 54.5]), reach=12)
    assert gone is None  # where it was, only background: no match
    assert colour_hist(patch).argmax() == colour_hist(frame, mask).argmax()


def test_validity_after_a_warp_is_drawn_as_warping_would():
    w, h = 160, 90
    for m in (np.float32([[1, 0, 5.0], [0, 1, -3.0]]), np.float32([[1, 0, -7.0], [0, 1, 2.0]])):
        for inverse in (False, True):
            flags = cv2.INTER_LINEAR | (cv2.WARP_INVERSE_MAP if inverse else 0)
            ref = cv2.erode(cv2.warpAffine(np.full((h, w), 255, np.uint8), m, (w, h), flags=flags), None) > 0
            np.testing.assert_array_equal(valid_after_warp(m, w, h, inverse), ref)
