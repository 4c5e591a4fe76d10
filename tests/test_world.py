"""The procedural world: exact tracks, locked events, stereo of the mixes, determinism, shards, reader."""
from __future__ import annotations

import argparse
import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from foley.tracks import centroid_and_mass
from foley.world import CLASSES, HELD_OUT, MOTIONS, PRESETS, render, sample_scene, synthesize
from foley.world.checks import dominant_bas, onsets
from foley.world.record import decode, make_clip
from foley.world.scene import WorldError, object_scene
from foley.world.shards import iter_shard, make_world

SR = 48000
TINY = PRESETS["tiny"]
SMALL = replace(PRESETS["default"], seconds=2.0, width=128, height=96)


def _clip(scene):
    r = render(scene, with_masks=True)
    return r, synthesize(scene, r)


@pytest.mark.parametrize("index", range(4))
def test_track_is_centroid_and_mass_of_drawn_mask(index):
    scene = sample_scene(SMALL, 3, "train", index)
    r = render(scene, with_masks=True)
    w, h = SMALL.width, SMALL.height
    for t, masks in zip(r.tracks, r.masks):
        assert t.reliable.all()
        for k, m in enumerate(masks):
            x, y, mass = centroid_and_mass(m)
            if mass > 0:  # +-1 px in x and y, mass to a pixel
                assert abs(x - t.x[k]) * w / 2 <= 1.0 and abs(y - t.y[k]) * h / 2 <= 1.0
                assert abs(mass - t.mass[k]) * w * h <= 1.0
            else:  # off-frame: the centre lies beyond the edge and the mass is the whole shape's
                assert abs(t.x[k]) > 1.0 and t.mass[k] > 0
        # the object's pixels were painted over the background
        k = int(np.argmax(masks.sum(axis=(1, 2))))
        assert masks[k].sum() > 0


def test_every_class_renders_and_sounds():
    for name in CLASSES:
        scene = object_scene(SMALL, 1, name, "static_off")
        r, a = _clip(scene)
        assert r.masks[0].any(axis=(1, 2)).all(), name
        assert np.sqrt(np.mean(a.stems[0] ** 2)) > 1e-3, name
        assert len(scene.captions) == 2 and scene.captions[0].split()[-1] in ("left", "right")


def test_sound_onsets_coincide_with_event_times():
    frame = 1 / SMALL.fps
    for name, cls in CLASSES.items():
        if not cls.impulsive:
            continue
        for i, motion in enumerate(("crossing", "approaching")):
            _, a = _clip(object_scene(SMALL, 2, name, motion, i))
            ev, on = a.events[0], onsets(a.stems[0], SR)
            assert ev.size >= 1, name
            assert all(np.min(np.abs(on - e)) <= frame for e in ev), (name, ev, on)
            assert all(np.min(np.abs(ev - o)) <= frame for o in on), (name, ev, on)


def test_ball_touches_the_floor_at_its_impacts():
    scene = object_scene(replace(SMALL, seconds=4.0), 4, "ball", "static_off")
    r, a = _clip(scene)
    y = r.tracks[0].y  # +1 = bottom: local maxima are floor contacts
    lows = [k for k in range(1, len(y) - 1) if y[k] >= y[k - 1] and y[k] > y[k + 1]]
    fps = SMALL.fps
    assert len(lows) >= 3
    for k in lows:
        assert np.min(np.abs(a.events[0] * fps - k)) <= 1.0


def test_objaware_places_objects_and_dataset_does_not():
    res = {"objaware": [], "dataset": [], "mono": []}
    for i, name in enumerate(CLASSES):
        for j, motion in enumerate(("static_off", "crossing", "enter_leave")):
            r, a = _clip(object_scene(SMALL, 7, name, motion, 3 * i + j))
            for m in res:
                res[m] += dominant_bas(a.mixes[m], a.stems, a.ambience, r.tracks, SR)
    bas = {m: float(np.nanmean(v)) for m, v in res.items()}
    assert bas["objaware"] >= 0.95, bas
    assert bas["dataset"] <= 0.65 and bas["objaware"] - bas["dataset"] >= 0.3, bas
    assert abs(bas["dataset"] - bas["mono"]) <= 0.35, bas


def test_mixes_have_the_right_stereo():
    scene = object_scene(SMALL, 5, "car", "static_off")
    _, a = _clip(scene)
    mono = a.mixes["mono"]
    assert np.array_equal(mono[0], mono[1])
    left = scene.objects[0].path.x0 < 0
    e = np.sum(a.mixes["objaware"].astype(np.float64) ** 2, axis=1)
    assert (e[0] > 2 * e[1]) if left else (e[1] > 2 * e[0])


def test_dual_mono_share_is_respected():
    cfg = replace(TINY, dual_mono_share=0.27)
    styles = [sample_scene(cfg, 0, "train", i).dataset_style for i in range(600)]
    share = styles.count("dual_mono") / len(styles)
    assert 0.2 <= share <= 0.34
    assert {s for s in styles} == {"dual_mono", "static", "random"}


def test_motions_behave():
    def track(motion):
        return render(object_scene(SMALL, 6, "car", motion)).tracks[0]

    assert abs(track("entering").x[0]) > 1 and abs(track("entering").x[-1]) < 1
    assert abs(track("leaving").x[0]) < 1 and abs(track("leaving").x[-1]) > 1
    el = track("enter_leave")
    assert abs(el.x[0]) > 1 and abs(el.x[-1]) > 1 and (np.abs(el.x) < 0.5).any()
    assert track("approaching").mass[-1] > 2 * track("approaching").mass[0]
    assert track("receding").mass[0] > 2 * track("receding").mass[-1]
    assert np.ptp(track("static_off").x) < 0.01 and abs(track("static_centre").x.mean()) < 0.05
    assert np.ptp(track("circling").mass) > 0


def test_sound_goes_on_off_frame():
    r, a = _clip(object_scene(SMALL, 8, "siren", "leaving"))
    off = np.flatnonzero(np.abs(r.tracks[0].x) > 1.0)
    assert off.size > 5
    seg = a.stems[0][int(off[0] / SMALL.fps * SR):]
    assert np.sqrt(np.mean(seg ** 2)) > 0.01


def test_held_out_pairs_only_in_test():
    pairs = lambda split: {(o.cls, o.path.kind) for i in range(400)  # noqa: E731
                           for o in sample_scene(TINY, 0, split, i).objects}
    assert not pairs("train") & HELD_OUT and not pairs("val") & HELD_OUT
    assert pairs("test") & HELD_OUT
    assert len(HELD_OUT) == len(CLASSES) and {m for _, m in HELD_OUT} <= set(MOTIONS)


def test_same_seed_same_bytes_other_seed_other_clip():
    a = make_clip(sample_scene(TINY, 11, "train", 5))
    b = make_clip(sample_scene(TINY, 11, "train", 5))
    c = make_clip(sample_scene(TINY, 12, "train", 5))
    assert a == b
    assert a["train-00000005.mjpeg"] != c["train-00000005.mjpeg"]
    rec = decode(a)
    assert rec.frames.shape == (TINY.n_frames, TINY.height, TINY.width, 3)
    assert rec.mixes["objaware"].shape == (2, TINY.n_samples)


def test_record_round_trip_with_masks():
    cfg = replace(TINY, masks=True)
    scene = sample_scene(cfg, 2, "val", 1)
    r = render(scene, with_masks=True)
    rec = decode(make_clip(scene))
    assert np.array_equal(rec.masks, np.stack(r.masks))
    assert np.abs(rec.frames.astype(int) - r.frames).mean() < 6  # JPEG
    for a, b in zip(rec.tracks, r.tracks):
        assert np.allclose(a.x, b.x, atol=1e-5) and np.allclose(a.mass, b.mass, atol=1e-6)
    assert rec.stems.shape == (len(scene.objects), cfg.n_samples) and rec.ambience.shape == (cfg.n_samples,)
    assert [o["caption"] for o in rec.meta["objects"]] == scene.captions[:-1]


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*/*.tar"))}


def test_shards_deterministic_resumable_and_rank_aware(tmp_path):
    make_world(tmp_path / "a", 10, "train", 3, TINY, workers=2, progress=False)
    for rank in (1, 0):  # two "machines" write disjoint shards of the same world
        make_world(tmp_path / "b", 10, "train", 3, TINY, workers=1, rank=rank, world_size=2, progress=False)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") and len(_digest(tmp_path / "a")) == 3
    victim = tmp_path / "b" / "train" / "train-000001.tar"
    victim.unlink()
    assert make_world(tmp_path / "b", 10, "train", 3, TINY, progress=False) == 4  # only the missing shard
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    keys = [k for p in sorted((tmp_path / "a" / "train").glob("*.tar")) for k, _ in iter_shard(p)]
    assert keys == [f"train-{i:08d}" for i in range(10)]
    with pytest.raises(WorldError):
        make_world(tmp_path / "a", 10, "train", 4, TINY, progress=False)  # another seed in the same folder
    with pytest.raises(WorldError):
        make_world(tmp_path / "a", 12, "train", 3, TINY, progress=False)  # another size of the same split


def test_reader_with_two_workers_yields_every_clip_once(tmp_path):
    torch = pytest.importorskip("torch")
    from foley.world.dataset import WorldDataset

    make_world(tmp_path, 9, "val", 0, replace(TINY, clips_per_shard=2), progress=False)
    ds = WorldDataset(tmp_path, "val", fps=10, size=(48, 32), sr=16000, mixes=("objaware", "dataset"))
    keys = [s["key"] for s in torch.utils.data.DataLoader(ds, num_workers=2, batch_size=None)]
    assert sorted(keys) == [f"val-{i:08d}" for i in range(9)]
    s = next(iter(ds))
    assert s["video"].shape == (20, 3, 32, 48) and s["video"].dtype == torch.uint8
    assert s["audio"]["objaware"].shape == (2, 32000) and s["tracks"].shape == (3, 20, 3)
    assert int(s["present"].sum()) == int((s["labels"] >= 0).sum()) >= 1


def test_cli_make_and_stats(tmp_path, capsys):
    from foley.cli.world import add_parsers

    p = argparse.ArgumentParser()
    add_parsers(p.add_subparsers(dest="verb"))
    for argv in (["world", "make", "--out", str(tmp_path), "--n", "3", "--preset", "tiny", "--quiet"],
                 ["world", "stats", str(tmp_path), "--bas-clips", "2"]):
        a = p.parse_args(argv)
        a.func(a)
    out = capsys.readouterr().out
    assert "wrote 3 train clips" in out and "Stereo-Score" in out and "objaware" in out


def test_fps30_and_bad_config():
    scene = sample_scene(replace(SMALL, fps=30), 0, "train", 0)
    assert render(scene).frames.shape[0] == 60
    with pytest.raises(WorldError):
        replace(SMALL, fps=24)


def test_preview_writes_a_playable_contact_sheet(tmp_path):
    from foley import io
    from foley.world.preview import preview

    out = tmp_path / "sheet.mp4"
    captions = preview(out, n=2, seed=1, cfg=TINY)
    info = io.probe(out)
    assert len(captions) == 2 and info.has_audio and info.n_frames == 2 * TINY.n_frames
    assert info.width == 2 * TINY.width  # two tiles side by side


@pytest.mark.parametrize("kw", [dict(n=0), dict(n=-2), dict(n=4, rank=3, world_size=2), dict(n=4, workers=0)])
def test_a_bad_make_request_leaves_the_folder_untouched(tmp_path, kw):
    """`world make --n 0` used to write world.json first and brick the folder for later runs."""
    from foley.world.scene import WorldError
    from foley.world.shards import make_world

    out = tmp_path / "w"
    with pytest.raises(WorldError):
        make_world(out, **{"rank": 0, "world_size": 1, **kw}, progress=False)
    assert not out.exists()


def test_dominant_misses_tell_the_wrong_object_from_a_centred_or_wrong_side_sound():
    from foley.spatial import pan_gains
    from foley.tracks import Track
    from foley.world.checks import MISSES, dominant_misses

    fps, k = 25, 50
    n = k * SR // fps
    rng = np.random.default_rng(0)
    tracks = [Track(fps, np.full(k, x), np.zeros(k), np.full(k, 0.05), np.ones(k, bool)) for x in (-0.6, 0.6)]
    half = np.arange(n) < n // 2  # object 0 sounds in the first half, object 1 in the second
    stems = np.stack([rng.standard_normal(n) * half, rng.standard_normal(n) * ~half]).astype(np.float32)
    amb = 0.001 * rng.standard_normal(n).astype(np.float32)

    def placed(xs):  # each stem panned to the given position
        out = np.zeros((2, n), np.float32)
        for s, x in zip(stems, xs):
            gl, gr = pan_gains(np.array([x]))
            out += np.stack([float(gl[0]) * s, float(gr[0]) * s])
        return out

    def shares(audio):
        m = dominant_misses(audio, stems, amb, tracks, SR)
        assert set(m) == set(MISSES) and sum(m.values()) >= 40  # most frames have one dominant object
        return {key: v / sum(m.values()) for key, v in m.items()}

    assert shares(placed((-0.6, 0.6)))["right"] >= 0.95
    assert shares(placed((0.6, -0.6)))["another object"] >= 0.95  # each sound at the other object
    assert shares(placed((0.0, 0.0)))["centre"] >= 0.95
    assert shares(placed((0.6, 0.6)))["right"] == pytest.approx(0.5, abs=0.05)  # object 0's frames go to object 1
