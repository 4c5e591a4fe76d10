"""Photo scenes (foley.world.photo): the truth is what is drawn, the bells ring at the contacts, clips round-trip."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("skimage")

from foley import io  # noqa: E402
from foley.tracks import centroid_and_mass  # noqa: E402
from foley.world.photo import (  # noqa: E402
    SCENES, Cut, PhotoScene, Sprite, contact_frames, frames, sounding, soundtrack, truth, visible_masks, write_clip,
)
from foley.world.scene import WorldError  # noqa: E402

SR = 48000


def _short(scene: PhotoScene, seconds: float) -> PhotoScene:
    return replace(scene, seconds=seconds)


def _drawn_masks(scene: PhotoScene) -> list[np.ndarray]:
    """(H, W) bool per frame: pixels that differ from the same scene drawn without its sprites."""
    empty = replace(scene, sprites=())
    return [np.any(a != b, axis=-1) for a, b in zip(frames(scene), frames(empty))]


@pytest.mark.parametrize("name", ["stop", "occlusion", "pan"])
def test_truth_is_the_centroid_of_the_drawn_pixels(name):
    scene = SCENES[name]
    (tr,) = truth(scene)
    drawn = _drawn_masks(scene)
    checked = 0
    for k in range(0, scene.n_frames, 7):
        x, y, mass = centroid_and_mass(drawn[k])
        if mass == 0:
            assert not tr.reliable[k], f"frame {k}: nothing drawn but the truth says visible"
            continue
        # a photo pixel may happen to equal the background's: allow a handful of them
        assert abs(mass - tr.mass[k]) * scene.width * scene.height <= 3, f"frame {k}"
        assert tr.x[k] == pytest.approx(x, abs=2e-3) and tr.y[k] == pytest.approx(y, abs=2e-3), f"frame {k}"
        checked += 1
    assert checked > 15


def test_truth_of_two_overlapping_sprites_counts_only_visible_pixels():
    scene = SCENES["crossing"]
    k = int(3.5 * scene.fps)  # they cross here: the cup covers part of the face
    face, cup = visible_masks(scene, k)
    assert not (face & cup).any()
    tracks = truth(scene)
    assert tracks[0].mass[k] < tracks[0].mass[0] * 0.9
    assert tracks[0].x[k] == pytest.approx(centroid_and_mass(face)[0])


def test_off_frame_and_hidden_sprites_are_unreliable():
    stop, = truth(SCENES["stop"])
    assert not stop.reliable[0] and stop.x[0] < -1 and stop.mass[0] == 0
    assert stop.reliable[20]
    occ, = truth(SCENES["occlusion"])
    hidden = np.flatnonzero(~occ.reliable)
    assert hidden.size >= 5
    assert np.all(np.abs(occ.x[hidden] - ((290 + 65) / 320 - 1)) < 0.1)  # behind the strip, not off-frame
    cup = truth(SCENES["mostly_hidden"])[1]
    assert 0.4 < cup.reliable.mean() < 0.8
    assert np.all(cup.x[~cup.reliable] > 1)


def test_a_stopped_sprite_has_a_constant_truth():
    scene = SCENES["stop"]
    (tr,) = truth(scene)
    still = np.arange(int(4.6 * scene.fps), scene.n_frames)
    assert still.size >= 50
    for a in (tr.x, tr.y, tr.mass):
        assert np.ptp(a[still]) == 0
    assert tr.reliable[still].all()
    assert np.ptp(tr.x[:int(4.4 * scene.fps)]) > 1.0  # it did move before


def test_plain_square_moves_exactly_4_px_per_frame():
    scene = _short(SCENES["plain_slow"], 1.0)
    (tr,) = truth(scene)
    dx_px = np.diff(tr.x) * scene.width / 2
    assert np.allclose(dx_px, 4.0, atol=1e-9)
    assert tr.mass[0] == pytest.approx(120 * 120 / (1280 * 720))


def _onset_frames(mono: np.ndarray, fps: float) -> np.ndarray:
    """Frames whose energy jumps 6 dB above the frame before."""
    hop = SR / fps
    n = int(mono.size / hop)
    e = np.array([np.sum(mono[int(k * hop):int((k + 1) * hop)].astype(np.float64) ** 2) for k in range(n)])
    return np.flatnonzero(e[1:] > 4 * e[:-1] + 1e-9) + 1


@pytest.mark.parametrize("name", ["choice", "pan", "crossing"])
def test_bell_onsets_land_on_contact_frames(name):
    scene = SCENES[name]
    who = sounding(scene)
    contacts = contact_frames(scene, who)
    assert contacts.size >= 5
    onsets = _onset_frames(soundtrack(scene, SR), scene.fps)
    assert len(onsets) == len(contacts)
    assert np.all(np.abs(onsets - contacts) <= 1)
    tr = truth(scene)[[s.name for s in scene.sprites].index(who)]
    floor = tr.y[contacts]  # the sprite is at the bottom of its bounce there (its largest y)
    after = np.minimum(contacts + 3, len(tr) - 1)
    assert np.all(floor >= tr.y[contacts - 3] - 1e-9) and np.all(floor >= tr.y[after] - 1e-9)


def test_silent_and_sounding():
    assert sounding(SCENES["choice"]) == "cup"
    assert sounding(SCENES["choice3"]) == "cup"
    assert np.all(soundtrack(replace(SCENES["choice"], sprites=SCENES["choice"].sprites[:1]), SR) == 0)
    a = soundtrack(SCENES["stop"], SR)
    assert a.dtype == np.float32 and a.shape == (7 * SR,) and np.max(np.abs(a)) == pytest.approx(0.5)


def test_crossing_paths_really_cross():
    face, cup = truth(SCENES["crossing"])
    both = face.reliable & cup.reliable
    side = np.sign(cup.x - face.x)[both]
    assert side[0] < 0 and side[-1] > 0
    assert np.min(np.hypot(cup.x - face.x, cup.y - face.y)[both]) < 0.15


def test_bad_descriptions_raise_world_errors():
    with pytest.raises(WorldError, match="unknown photo"):
        Cut("mona_lisa")
    with pytest.raises(WorldError, match="needs a bounce"):
        Sprite("b", Cut(None), ((0.0, 1, 1),), sound="bell")
    with pytest.raises(WorldError, match="unique"):
        PhotoScene(sprites=(Sprite("a", Cut(None), ((0.0, 1, 1),)),) * 2)


def test_path_may_be_a_function_of_time():
    s = Sprite("f", Cut(None, size=(10, 10)), lambda t: (100 + 50 * t, 80.0))
    scene = PhotoScene(width=320, height=180, seconds=0.4, sprites=(s,))
    (tr,) = truth(scene)
    assert np.allclose(np.diff(tr.x) * 160, 2.0)  # 50 px/s at 25 fps


def test_clip_round_trips(tmp_path):
    scene = _short(SCENES["choice"], 2.0)
    path = tmp_path / "choice.mp4"
    write_clip(scene, path)
    info = io.probe(path)
    assert (info.width, info.height) == (scene.width, scene.height)
    got = list(io.iter_frames(path))
    assert len(got) == scene.n_frames
    want = next(frames(scene))
    assert np.mean(np.abs(got[0].astype(int) - want)) < 6  # H.264 at crf 20
    audio = io.read_audio(path, sr=SR)
    assert audio.shape == (2, 2 * SR)
    mono = soundtrack(scene, SR)
    assert np.allclose(audio[0], audio[1])
    assert math.isclose(np.sqrt(np.mean(audio[0] ** 2)), np.sqrt(np.mean(mono ** 2)), rel_tol=0.15)
