"""Track dataclass, its files, and tracks from masks (StereoFoley eq. 2)."""
import json

import cv2
import numpy as np
import pytest

from foley.errors import TrackError
from foley.tracks import Track, centroid_and_mass, load_masks, load_tracks, save_tracks, track_from_masks


def test_centroid_and_mass_eq2():
    m = np.zeros((10, 20), bool)
    m[2:4, 0:5] = True  # columns 0..4 -> centres 0.5..4.5 -> mean 2.5 px
    x, y, mass = centroid_and_mass(m)
    assert x == pytest.approx(2 * 2.5 / 20 - 1)
    assert y == pytest.approx(2 * 3.0 / 10 - 1)
    assert mass == pytest.approx(10 / 200)
    assert centroid_and_mass(np.ones((4, 4), bool))[:2] == (0.0, 0.0)
    assert np.isnan(centroid_and_mass(np.zeros((4, 4), bool))[0])


def test_json_round_trip_keeps_unknowns(tmp_path):
    x = np.array([0.1, np.nan, 1.4])
    t = Track(fps=30.0, x=x, y=np.array([0.0, np.nan, 0.2]), mass=np.array([0.01, 0.0, 0.02]),
              reliable=np.array([True, False, True]), label="car", score=0.5, frame_size=(64, 48))
    save_tracks(tmp_path / "t.json", [t])
    doc = json.loads((tmp_path / "t.json").read_text())
    assert doc["schema"] == "foley.tracks/1" and doc["tracks"][0]["x"][1] is None
    (back,) = load_tracks(tmp_path / "t.json")
    np.testing.assert_array_equal(back.x, x)
    assert back.label == "car" and back.score == 0.5 and back.fps == 30.0 and back.frame_size == (64, 48)
    np.testing.assert_array_equal(back.reliable, [True, False, True])


def test_csv_import(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("# fps=25\nobject,frame,x,y,mass\na,0,-0.5,0,0.1\na,2,0.5,0,0.1\nb,0,0.9,0.1,0.2\nb,1,0.8,0.1,0.2\n")
    a, b = load_tracks(p)
    assert a.label == "a" and len(a) == 3 and not a.reliable[1] and a.x[2] == 0.5
    assert b.label == "b" and len(b) == 2 and b.reliable.all()


def test_masks_folder_and_npz(tmp_path):
    masks = np.zeros((3, 12, 16), np.uint8)
    masks[0, :, :4] = 255  # left quarter
    masks[2, :, 12:] = 255  # right quarter; frame 1 empty = not detected
    folder = tmp_path / "m"
    folder.mkdir()
    for k, m in enumerate(masks):
        cv2.imwrite(str(folder / f"{k:04d}.png"), m)
    (t,) = load_masks(folder, fps=25.0)
    np.testing.assert_allclose(t.x[[0, 2]], [-0.75, 0.75])
    assert not t.reliable[1] and t.mass[0] == pytest.approx(0.25)
    np.savez(tmp_path / "m.npz", masks=np.stack([masks > 0, masks[::-1] > 0]))
    t1, t2 = load_masks(tmp_path / "m.npz", fps=25.0)
    np.testing.assert_allclose(t2.x[[0, 2]], [0.75, -0.75])


def test_bad_track_input(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TrackError, match="not valid JSON"):
        load_tracks(bad)
    bad.write_text(json.dumps({"fps": 25, "tracks": [{"x": [0.1, 0.2], "mass": [0.1]}]}))
    with pytest.raises(TrackError, match="equal length"):
        load_tracks(bad)
    bad.write_text(json.dumps({"tracks": []}))
    with pytest.raises(TrackError, match="needs 'fps'"):
        load_tracks(bad)
    with pytest.raises(TrackError, match="not found"):
        load_tracks(tmp_path / "missing.json")
    with pytest.raises(TrackError, match="video is 20x12"):
        track_from_masks([np.zeros((12, 16), bool)], 25.0, frame_size=(20, 12))
    with pytest.raises(TrackError, match="all masks must match"):
        track_from_masks([np.zeros((12, 16), bool), np.zeros((10, 16), bool)], 25.0)
