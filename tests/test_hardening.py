"""Hostile input over the verbs (issue 13): every case exits 1 with one line naming the culprit, no traceback,
no file left behind and the inputs unchanged; damaged media, unwritable outputs, zero values, world resume
and concurrent runs."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from foley import io
from foley.cli import build_parser, main
from foley.demo import DemoScene
from foley.errors import MediaError
from foley.tracks import save_tracks
from foley.world.scene import PRESETS, WorldConfig, WorldError
from foley.world.shards import MANIFEST, make_world

ROOT = Path(__file__).resolve().parents[1]
SR = 48000
WORLD = replace(PRESETS["tiny"], seconds=0.4, width=32, height=32, clips_per_shard=2)  # 5 clips = 3 shards


# ---------------------------------------------------------------- helpers


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file and folder under `folder` (hidden ones too), with the bytes of the files."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def fails(argv: list, capsys, *culprits: str) -> str:
    """Run the CLI: exit 1, one `foley: error:` line (the last) naming every culprit, no traceback."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err and err.count("foley: error:") == 1, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("foley: error:"), err
    for c in culprits:
        assert str(c) in line, (c, line)
    return line


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """A 2 s clip with sound (64x48), its mono sound as WAV, its true track."""
    d = tmp_path_factory.mktemp("media")
    scene = DemoScene(width=64, height=48, seconds=2.0)
    mono = scene.sound(SR)
    io.write_video(d / "v.mp4", scene.frames(), scene.fps, audio=np.stack([mono, mono]), sr=SR)
    io.write_audio(d / "a.wav", mono[None], SR)
    save_tracks(d / "t.json", [scene.track()])
    return d


@pytest.fixture
def work(media, tmp_path) -> Path:
    """A folder holding copies of the media, for tests that check nothing in it changes."""
    for name in ("v.mp4", "a.wav", "t.json"):
        shutil.copy(media / name, tmp_path / name)
    return tmp_path


# ---------------------------------------------------------------- 3. unwritable outputs, checked before the work


def _readonly(folder: Path) -> Path:
    folder.mkdir()
    folder.chmod(0o555)
    return folder


def test_a_read_only_output_folder_is_refused_before_any_work(work, capsys):
    ro = _readonly(work / "ro")
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: a 0o555 folder is writable")
        before = snapshot(work)
        for argv in (["spatialize", work / "v.mp4", "--audio", work / "a.wav", "--track", work / "t.json",
                      "-o", ro / "o.wav"],
                     ["track", work / "v.mp4", "--track", work / "t.json", "-o", ro / "t.json"],
                     ["world", "make", "--out", ro / "w", "--n", "1", "--preset", "tiny", "--quiet"]):
            fails(argv, capsys, ro, "permission")
        assert snapshot(work) == before
    finally:
        ro.chmod(0o755)


def test_an_unwritable_output_folder_is_refused_before_any_work_even_as_root(work, capsys, monkeypatch):
    """The same as above where root writes anywhere: os.access says no for the folder, as for a read-only mount."""
    ro = work / "ro"
    ro.mkdir()
    access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == ro and mode & os.W_OK
                        else access(p, mode, **kw))
    before = snapshot(work)
    for argv in (["spatialize", work / "v.mp4", "--audio", work / "a.wav", "--track", work / "t.json",
                  "-o", ro / "o.wav"],
                 ["track", work / "v.mp4", "--track", work / "t.json", "-o", work / "t2.json", "--plot", ro / "p.png"],
                 ["world", "make", "--out", ro / "w", "--n", "1", "--preset", "tiny", "--quiet"],
                 ["world", "make", "--out", ro, "--n", "1", "--preset", "tiny", "--quiet"],
                 ["demo", "--out", ro / "demo"]):
        fails(argv, capsys, ro, "no permission to write")
    assert snapshot(work) == before


@pytest.mark.parametrize("case", ["output_is_a_folder", "plot_is_a_folder", "world_out_is_a_file",
                                  "world_out_inside_a_file", "demo_out_is_a_file", "export_out_is_a_file"])
def test_an_output_of_the_wrong_kind_is_refused_before_any_work(case, work, capsys):
    (work / "dir.wav").mkdir()
    (work / "dir.png").mkdir()
    (work / "file").write_text("mine")
    argv, culprit = {
        "output_is_a_folder": (["spatialize", work / "v.mp4", "--audio", work / "a.wav", "--track", work / "t.json",
                                "-o", work / "dir.wav"], "is a folder"),
        "plot_is_a_folder": (["track", work / "v.mp4", "--track", work / "t.json", "-o", work / "o.json",
                              "--plot", work / "dir.png"], "is a folder"),
        "world_out_is_a_file": (["world", "make", "--out", work / "file", "--n", "1", "--preset", "tiny", "--quiet"],
                                "is a file"),
        "world_out_inside_a_file": (["world", "make", "--out", work / "file" / "w", "--n", "1", "--quiet"],
                                    "inside the file"),
        "demo_out_is_a_file": (["demo", "--out", work / "file"], "is a file"),
        "export_out_is_a_file": (["world", "export", work / "nowhere", "--out", work / "file"], "is a file"),
    }[case]
    before = snapshot(work)
    fails(argv, capsys, culprit)
    assert snapshot(work) == before


def test_world_make_into_a_file_is_refused_by_the_library_too(tmp_path):
    (tmp_path / "file").write_text("mine")
    with pytest.raises(WorldError, match="is a file"):
        make_world(tmp_path / "file", 1, cfg=WORLD, progress=False)
    assert (tmp_path / "file").read_text() == "mine"


# ---------------------------------------------------------------- 10. side outputs checked before the main output


@pytest.mark.parametrize("case", ["plot_folder_missing", "plot_not_png", "save_track_folder_missing",
                                  "save_track_not_json", "save_track_string_score"])
def test_side_outputs_are_checked_before_the_main_output_is_written(case, work, capsys):
    spatialize = ["spatialize", work / "v.mp4", "--audio", work / "a.wav", "-o", work / "o.wav"]
    track = ["track", work / "v.mp4", "--track", work / "t.json", "-o", work / "o.json"]
    if case == "save_track_string_score":
        doc = json.loads((work / "t.json").read_text())
        doc["tracks"][0]["score"] = "high"
        (work / "t.json").write_text(json.dumps(doc))
    argv, culprit = {
        "plot_folder_missing": (track + ["--plot", work / "missing" / "p.png"], "missing"),
        "plot_not_png": (track + ["--plot", work / "p.jpg"], "p.jpg"),
        "save_track_folder_missing": (spatialize + ["--track", work / "t.json", "--save-track",
                                                    work / "missing" / "s.json"], "missing"),
        "save_track_not_json": (spatialize + ["--track", work / "t.json", "--save-track", work / "s.csv"], "s.csv"),
        "save_track_string_score": (spatialize + ["--track", work / "t.json", "--save-track", work / "s.json"],
                                    "score"),
    }[case]
    before = snapshot(work)
    fails(argv, capsys, culprit)
    assert snapshot(work) == before  # neither the main output nor the side output


# ---------------------------------------------------------------- 4. other tracebacks: bad track files


TRACK_FILES = {
    "short_row.csv": "# fps=25\nframe,x,y,reliable\n0,0.1,0.2,1\n1,0.2\n",
    "row_without_reliable.csv": "# fps=25\nframe,x,reliable\n0,0.1,1\n1,0.2\n",
    "bad_fps_line.csv": "# fps=fast\nframe,x\n0,0.1\n",
    "empty_fps_line.csv": "# fps=\nframe,x\n0,0.1\n",
    "bad_fps_column.csv": "frame,x,fps\n0,0.1,abc\n",
    "binary.csv": b"\x00\xff\xfe\x00\x89PNG garbage",
    "nul_bytes.csv": b"# fps=25\nframe,x\n0,0.1\x00\n",
    "tracks_is_a_number.json": '{"fps": 25, "tracks": 5}',
    "frame_size_is_a_number.json": '{"fps": 25, "frame_size": 5, "tracks": [{"x": [0.1]}]}',
    "frame_size_of_words.json": '{"fps": 25, "frame_size": ["wide", 2], "tracks": [{"x": [0.1]}]}',
    "track_is_a_number.json": '{"fps": 25, "tracks": [5]}',
    "string_score.json": '{"fps": 25, "tracks": [{"x": [0.1], "score": "high"}]}',
    "infinite_x.json": '{"fps": 25, "tracks": [{"x": [0.1, Infinity]}]}',
    "garbage.npz": b"PK\x03\x04 this is not a zip archive",
    "pickle.npz": b"\x80\x04not numpy",
}


@pytest.mark.parametrize("name", sorted(TRACK_FILES))
def test_a_bad_track_file_gives_one_line_naming_it(name, work, capsys):
    bad = work / name
    data = TRACK_FILES[name]
    bad.write_bytes(data if isinstance(data, bytes) else data.encode())
    before = snapshot(work)
    fails(["track", work / "v.mp4", "--track", bad, "-o", work / "o.json"], capsys, bad)
    assert snapshot(work) == before


def test_masks_of_the_wrong_kind_give_one_line(work, capsys):
    bad = work / "m.npz"
    np.savez(bad, masks=np.full((50, 48, 64), "x"))
    fails(["track", work / "v.mp4", "--track", bad, "-o", work / "o.json"], capsys, bad)
    assert not (work / "o.json").exists()


# ---------------------------------------------------------------- 9. the real culprit, not "samples contain NaN"


def test_an_infinite_mass_is_named_where_it_is(work, capsys):
    doc = json.loads((work / "t.json").read_text())
    doc["tracks"][0]["mass"][7] = float("inf")
    (work / "inf.json").write_text(json.dumps(doc))  # json writes Infinity, as other tools do
    before = snapshot(work)
    line = fails(["spatialize", work / "v.mp4", "--audio", work / "a.wav", "--track", work / "inf.json",
                  "-o", work / "o.wav"], capsys, "inf.json", "mass at frame 7")
    assert "NaN" not in line
    assert snapshot(work) == before


@pytest.mark.parametrize("gain", ["nan", "inf", "-1"])
def test_a_bad_ambience_gain_is_named(gain, work, capsys):
    before = snapshot(work)
    line = fails(["spatialize", work / "v.mp4", "--audio", work / "a.wav", "--ambience", work / "a.wav",
                  "--ambience-gain", gain, "--track", work / "t.json", "-o", work / "o.wav"], capsys, "--ambience-gain")
    assert "samples contain" not in line
    assert snapshot(work) == before


def test_max_objects_below_one_is_refused(work, capsys):
    fails(["track", work / "v.mp4", "--max-objects", "0", "-o", work / "o.json"], capsys, "--max-objects")


# ---------------------------------------------------------------- 4 and 8. world and demo options


@pytest.mark.parametrize("option", [["--seconds", "nan"], ["--seconds", "inf"], ["--seconds", "-1"],
                                    ["--clips-per-shard", "0"], ["--clips-per-shard", "-1"],
                                    ["--jpeg-quality", "1000"], ["--jpeg-quality", "0"],
                                    ["--dual-mono-share", "nan"], ["--dual-mono-share", "1.5"]])
def test_world_make_refuses_out_of_range_options_and_leaves_nothing(option, tmp_path, capsys):
    name = option[0][2:].replace("-", "_")
    fails(["world", "make", "--out", tmp_path / "w", "--n", "2", "--preset", "tiny", "--quiet"] + option, capsys, name)
    assert list(tmp_path.iterdir()) == []


def test_zero_is_a_value_not_unset():
    from foley.cli.world import _config

    a = build_parser().parse_args(["world", "make", "--out", "w", "--n", "1", "--dual-mono-share", "0"])
    assert _config(a).dual_mono_share == 0
    a = build_parser().parse_args(["world", "make", "--out", "w", "--n", "1", "--clips-per-shard", "0"])
    with pytest.raises(WorldError, match="clips_per_shard"):
        _config(a)


@pytest.mark.parametrize("kw", [dict(clips_per_shard=0), dict(clips_per_shard=-1), dict(jpeg_quality=1000),
                                dict(seconds=float("nan")), dict(seconds=float("inf")), dict(width=8),
                                dict(dual_mono_share=-0.1), dict(pan_share=2.0), dict(sr=0)])
def test_the_library_refuses_them_too(kw):
    with pytest.raises(WorldError, match=next(iter(kw))):
        replace(WorldConfig(), **kw)


@pytest.mark.parametrize("option", [["--width", "0"], ["--height", "-5"], ["--seconds", "nan"], ["--seconds", "0"]])
def test_demo_refuses_bad_sizes_before_making_its_folder(option, tmp_path, capsys):
    fails(["demo", "--out", tmp_path / "demo"] + option, capsys, option[0])
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- 4 and 11. damaged worlds; resume verifies shards


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("world") / "w"
    assert make_world(d, 5, "train", 0, WORLD, progress=False) == 5
    return d


@pytest.fixture
def world_copy(world, tmp_path) -> Path:
    return Path(shutil.copytree(world, tmp_path / "w"))


def _tars(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("train/*.tar"))}


def test_the_manifest_records_each_shards_size_and_checksum(world):
    import hashlib

    files = json.loads((world / MANIFEST).read_text())["splits"]["train"]["files"]
    assert sorted(files) == [f"train-{s:06d}.tar" for s in range(3)]
    for name, rec in files.items():
        data = (world / "train" / name).read_bytes()
        assert rec == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize("damage", ["truncated", "altered", "not_recorded", "missing"])
def test_resume_rewrites_a_shard_that_does_not_match_its_record(damage, world, world_copy):
    good = _tars(world)
    victim = world_copy / "train" / "train-000001.tar"
    if damage == "truncated":
        victim.write_bytes(good[victim.name][:len(good[victim.name]) // 3])
    elif damage == "altered":  # same size, one byte flipped
        data = bytearray(good[victim.name])
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
    elif damage == "not_recorded":  # a run killed between the rename and the record
        doc = json.loads((world_copy / MANIFEST).read_text())
        del doc["splits"]["train"]["files"][victim.name]
        (world_copy / MANIFEST).write_text(json.dumps(doc))
    else:
        victim.unlink()
    assert make_world(world_copy, 5, "train", 0, WORLD, progress=False) == 2  # that shard, and only it
    assert _tars(world_copy) == good
    assert make_world(world_copy, 5, "train", 0, WORLD, progress=False) == 0  # now all verified


def test_world_stats_names_a_truncated_shard(world_copy, capsys):
    shard = world_copy / "train" / "train-000000.tar"
    shard.write_bytes(shard.read_bytes()[:5000])
    before = snapshot(world_copy)
    fails(["world", "stats", world_copy, "--bas-clips", "1"], capsys, shard, "damaged")
    doc = json.loads((world_copy / MANIFEST).read_text())  # without a record to compare: reading it fails
    doc["splits"]["train"]["files"] = {}
    (world_copy / MANIFEST).write_text(json.dumps(doc))
    fails(["world", "stats", world_copy, "--bas-clips", "1"], capsys, shard, "damaged")
    assert snapshot(world_copy).keys() == before.keys()


@pytest.mark.parametrize("text", ["{garbage", "[1, 2]", '{"seed": 0, "config": {}, "splits": {"train": 5}}',
                                  "\x00\xff"])
@pytest.mark.parametrize("verb", ["stats", "make"])
def test_a_damaged_manifest_gives_one_line(verb, text, world_copy, capsys):
    (world_copy / MANIFEST).write_bytes(text.encode("latin-1"))
    before = snapshot(world_copy)
    argv = (["world", "stats", world_copy] if verb == "stats" else
            ["world", "make", "--out", world_copy, "--n", "5", "--preset", "tiny", "--seconds", "0.4", "--size", "32x32",
             "--clips-per-shard", "2", "--quiet"])
    fails(argv, capsys, MANIFEST, "damaged")
    assert snapshot(world_copy) == before


# ---------------------------------------------------------------- 12. one run per (split, rank) and folder


HOLD = """
import sys
from pathlib import Path
from foley.world.shards import _locked_run
with _locked_run(Path(sys.argv[1]), "train", 0):
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_a_second_run_into_a_locked_folder_is_refused_and_other_ranks_go_on(tmp_path, capsys):
    out = tmp_path / "w"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        fails(["world", "make", "--out", out, "--n", "5", "--preset", "tiny", "--seconds", "0.4", "--size", "32x32",
               "--clips-per-shard", "2", "--quiet"], capsys, "another `foley world make`", out)
        assert not (out / "train").exists()  # it wrote no shard
        # rank 1 of 2 writes other shards: it is not held up
        assert make_world(out, 5, "train", 0, WORLD, rank=1, world_size=2, progress=False) == 2
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert make_world(out, 5, "train", 0, WORLD, rank=0, world_size=2, progress=False) == 3  # released
    with pytest.raises(WorldError, match="another seed"):  # and a run that disagrees still stops
        make_world(out, 5, "train", 1, WORLD, progress=False)


# ---------------------------------------------------------------- 2. truncated media


@pytest.fixture(scope="module")
def front_indexed(tmp_path_factory) -> Path:
    """A 2 s MP4 (64x48, 25 fps, AAC) whose index (moov) is at the front, as `+faststart` writes it."""
    path = tmp_path_factory.mktemp("front") / "whole.mp4"
    scene = DemoScene(width=64, height=48, seconds=2.0)
    mono = scene.sound(SR)
    io.write_video(path, scene.frames(), scene.fps, audio=np.stack([mono, mono]), sr=SR)
    data = path.read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")  # index first
    return path


def _intact_until(whole: Path, nbytes: int, kind: str) -> float:
    """Seconds of the `kind` stream whose packets lie wholly in the first `nbytes` of the file."""
    with av.open(str(whole)) as c:
        s = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        ends = [float((p.pts + p.duration) * s.time_base) for p in c.demux(s)
                if p.size and p.pos is not None and p.pos + p.size <= nbytes]
    return max(ends, default=0.0)


def _truncated(whole: Path, folder: Path, fraction: float) -> Path:
    data = whole.read_bytes()
    out = folder / f"cut{int(fraction * 100)}.mp4"
    out.write_bytes(data[:int(len(data) * fraction)])
    return out


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.8, 0.9])
def test_a_truncated_front_indexed_mp4_is_refused_by_every_reader(fraction, front_indexed, tmp_path):
    cut = _truncated(front_indexed, tmp_path, fraction)
    whole_seconds = io.probe(front_indexed).duration
    for read in (io.probe, io.probe_audio, lambda p: list(io.iter_frames(p)), io.read_audio,
                 lambda p: io.mux_audio(p, np.zeros((1, SR)), SR, tmp_path / "o.mp4")):
        with pytest.raises(MediaError, match=r"cut\d+\.mp4 is (truncated or )?damaged: its (video|audio) .* at (\d+\.\d\d) s") as e:
            read(cut)
        message = e.value.args[0]
        at = float(message.split(" at ")[1].split(" s")[0])
        kind = "video" if "its video" in message else "audio"
        assert at < whole_seconds  # where it breaks, not the end
        assert abs(at - _intact_until(front_indexed, cut.stat().st_size, kind)) <= 0.25, message
    assert sorted(p.name for p in tmp_path.iterdir()) == [cut.name]


def test_a_truncated_mp4_is_refused_when_its_audio_alone_is_decoded(front_indexed, tmp_path):
    """read_audio decodes without probing first: the decoder's end is checked against the headers too."""
    from foley.io.audio import _decoded

    cut = _truncated(front_indexed, tmp_path, 0.6)
    with pytest.raises(MediaError, match="cut60.mp4 is (truncated or )?damaged"):
        sum(c.shape[1] for c in _decoded(cut, SR, None))


def test_a_whole_file_passes(front_indexed):
    assert len(list(io.iter_frames(front_indexed))) == 50 and io.read_audio(front_indexed).shape[1] == 2 * SR


def _back_indexed(path: Path) -> Path:
    with av.open(str(path), "w") as c:  # no faststart: the index is written last
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(25):
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 8 * i, np.uint8), format="rgb24")))
        c.mux(s.encode(None))
    return path


@pytest.mark.parametrize("case", ["front_30", "front_90", "back_60", "zero_bytes"])
@pytest.mark.parametrize("verb", ["spatialize", "track", "codec"])
def test_damaged_media_through_the_verbs(verb, case, front_indexed, work, capsys):
    if case.startswith("front"):
        bad = _truncated(front_indexed, work, int(case[-2:]) / 100)
    elif case == "back_60":
        whole = _back_indexed(work / "back.mp4")
        bad = work / "cut_back.mp4"
        bad.write_bytes(whole.read_bytes()[:int(whole.stat().st_size * 0.6)])
        whole.unlink()
    else:
        bad = work / "empty.mp4"
        bad.write_bytes(b"")
    argv = {"spatialize": ["spatialize", bad, "--audio", work / "a.wav", "--track", work / "t.json", "-o", work / "o.wav"],
            "track": ["track", bad, "-o", work / "o.json"],
            "codec": ["codec", "roundtrip", bad, work / "o.wav"]}[verb]
    before = snapshot(work)
    fails(argv, capsys, bad)
    assert snapshot(work) == before
