"""End to end through the CLI: spatialize, track, eval, and every bad input of the issue (§7)."""
import json
import subprocess
import sys

import av
import numpy as np
import pytest
import soundfile as sf

from foley import io
from foley.cli import main
from foley.demo import DemoScene
from foley.metrics import evaluate
from foley.tracks import load_tracks, save_tracks

SR = 48000


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A small demo clip: silent video, its mono sound, its true track."""
    d = tmp_path_factory.mktemp("clip")
    scene = DemoScene(width=320, height=180, seconds=6.0)
    io.write_video(d / "silent.mp4", scene.frames(), scene.fps)
    io.write_audio(d / "mono.wav", scene.sound(SR)[None], SR)
    truth = scene.track()
    save_tracks(d / "truth.json", [truth])
    return d, truth


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_spatialize_end_to_end_follows_the_object(clip, capsys, tmp_path):
    d, truth = clip
    out = tmp_path / "stereo.mp4"
    code, stdout, err = run(["spatialize", d / "silent.mp4", "--audio", d / "mono.wav", "-o", out], capsys)
    assert code == 0, err
    decoded = io.read_audio(out, sr=SR)
    assert decoded.shape[0] == 2
    rep = evaluate(decoded, SR, truth)
    assert rep.bas_in >= 0.9 and rep.bas >= 0.9, rep
    assert rep.frames_off > 20 and rep.bas_off >= 0.85, rep  # off-frame: extrapolated, kept audible
    video = io.probe(out)
    assert abs(io.audio_duration(out) - video.duration) <= 1.0 / video.fps
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stereo.mp4"]  # no temp files left


def test_track_and_eval(clip, capsys, tmp_path):
    d, truth = clip
    code, stdout, err = run(["track", d / "silent.mp4", "-o", tmp_path / "t.json", "--plot", tmp_path / "t.png"],
                            capsys)
    assert code == 0, err
    (best, *_) = load_tracks(tmp_path / "t.json")
    sel = truth.in_frame & best.reliable
    assert sel.sum() > 60 and np.mean(np.abs(best.x[sel] - truth.x[sel])) < 0.05
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    st = tmp_path / "st.wav"
    assert run(["spatialize", d / "silent.mp4", "--audio", d / "mono.wav", "--track", tmp_path / "t.json",
                "-o", st], capsys)[0] == 0
    code, stdout, err = run(["eval", "--audio", st, "--track", d / "truth.json", "--json"], capsys)
    rep = json.loads(stdout)
    assert code == 0 and rep["bas"] >= 0.9 and 0 < rep["stereo_score"] < 1
    code, stdout, err = run(["eval", "--audio", st, "--track", d / "truth.json"], capsys)
    assert "BAS in" in stdout and code == 0


def test_box_tracker_from_the_cli(clip, capsys, tmp_path):
    d, truth = clip
    k = 40
    x, y = truth.x[k], truth.y[k]
    cx, cy, r = (x + 1) * 160, (y + 1) * 90, 0.09 * 180
    box = f"box={int(cx - r)},{int(cy - r)},{int(2 * r)},{int(2 * r)}@{k}"
    code, _, err = run(["track", d / "silent.mp4", "--track", box, "-o", tmp_path / "b.json"], capsys)
    assert code == 0, err
    (t,) = load_tracks(tmp_path / "b.json")
    assert not t.reliable[:k].any() and t.reliable[k]
    sel = t.reliable & truth.in_frame
    assert np.mean(np.abs(t.x[sel] - truth.x[sel])) < 0.05


def test_audio_length_and_rate_are_fitted_with_a_warning(clip, capsys, tmp_path, caplog):
    d, _ = clip
    short = tmp_path / "short.flac"
    sf.write(short, np.random.default_rng(0).standard_normal(22050 * 2) * 0.1, 22050)  # 2 s at 22.05 kHz
    out = tmp_path / "o.wav"
    code, _, err = run(["spatialize", d / "silent.mp4", "--audio", short, "-o", out], capsys)
    assert code == 0, err
    assert "padding the audio" in caplog.text
    audio, sr = sf.read(out, always_2d=True)
    assert sr == SR and audio.shape == (6 * SR, 2)


def _zero_frame_video(path):
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"


@pytest.mark.parametrize("case", ["unreadable", "no_video", "zero_frames", "no_audio", "nan_audio",
                                  "bad_masks", "bad_json", "missing_folder", "bad_box", "bad_suffix"])
def test_bad_input_gives_one_message_and_no_file(case, clip, capsys, tmp_path):
    d, _ = clip
    video, audio, track = d / "silent.mp4", d / "mono.wav", "motion"
    out = tmp_path / "out.mp4"
    if case == "unreadable":
        video = tmp_path / "text.mp4"
        video.write_text("this is not a video")
    elif case == "no_video":
        video = audio
    elif case == "zero_frames":
        video = tmp_path / "empty.mp4"
        _zero_frame_video(video)
    elif case == "no_audio":
        audio = None
    elif case == "nan_audio":
        audio = tmp_path / "nan.wav"
        x = np.zeros(SR, np.float32)
        x[100] = np.nan
        sf.write(audio, x, SR, subtype="FLOAT")
    elif case == "bad_masks":
        track = tmp_path / "m.npz"
        np.savez(track, masks=np.zeros((150, 10, 10), bool))
    elif case == "bad_json":
        track = tmp_path / "t.json"
        track.write_text('{"fps": 25, "tracks": [{"x": "left"}]}')
    elif case == "missing_folder":
        out = tmp_path / "nope" / "out.mp4"
    elif case == "bad_box":
        track = "box=1,2,3"
    elif case == "bad_suffix":
        out = tmp_path / "out.txt"
    argv = ["spatialize", video, "--track", track, "-o", out] + (["--audio", audio] if audio else [])
    before = set(tmp_path.iterdir())
    code, stdout, err = run(argv, capsys)
    assert code == 1
    assert err.startswith("foley: error:") and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and set(tmp_path.iterdir()) == before


def test_console_script_exit_code_without_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "foley", "eval", "--audio", tmp_path / "x.wav", "--track",
                          tmp_path / "t.json"], capture_output=True, text=True)
    assert res.returncode == 1 and "Traceback" not in res.stderr and "foley: error:" in res.stderr


def test_video_own_audio_is_used_when_no_audio_given(clip, capsys, tmp_path):
    d, truth = clip
    scene = DemoScene(width=320, height=180, seconds=6.0)
    with_sound = tmp_path / "with_sound.mp4"
    mono = scene.sound(SR)
    io.write_video(with_sound, scene.frames(), scene.fps, audio=np.stack([mono, mono]), sr=SR)
    out = tmp_path / "o.flac"
    code, _, err = run(["spatialize", with_sound, "-o", out], capsys)
    assert code == 0, err
    audio, sr = sf.read(out, always_2d=True)
    assert evaluate(audio.T, sr, truth).bas >= 0.9


def _leaf_parsers(parser, prefix=()):
    """(verb path, parser) of every verb that runs something."""
    import argparse

    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
    for action in subs:
        for name, p in action.choices.items():
            yield from _leaf_parsers(p, prefix + (name,))


def test_every_verb_declares_the_files_it_reads_and_writes():
    """The path checks (output = input, outputs writable) run for every verb: a new verb that forgets to
    declare its files, or the folder it fills, fails here."""
    from foley.cli import build_parser

    for path, p in _leaf_parsers(build_parser()):
        d = p._defaults
        assert "reads" in d and "writes" in d, f"foley {' '.join(path)} must set_defaults(reads=..., writes=...)"
        dests = {a.dest for a in p._actions}
        folders = set(d.get("folders", ()))
        assert set(d["reads"]) | set(d["writes"]) | folders <= dests, path
        assert set(d.get("suffixes", {})) <= set(d["writes"]), path
        assert dests & {"out", "output", "plots"} <= set(d["writes"]) | folders, \
            f"foley {' '.join(path)}: declare its output in writes= (a file) or folders= (a folder it fills)"


@pytest.mark.parametrize("argv", [
    ["track", "{v}", "-o", "{v}"],
    ["spatialize", "{v}", "-o", "{v}"],
    ["spatialize", "{v}", "--audio", "{w}", "-o", "{w}"],
    ["spatialize", "{v}", "--audio", "{w}", "-o", "{d}/out.wav", "--save-track", "{link}"],
    ["track", "{v}", "-o", "{d}/t.json", "--plot", "{v}"],
    ["track", "{v}", "-o", "{d}/t.json", "--plot", "{d}/t.json"],
    ["codec", "roundtrip", "{w}", "{w}"],
    ["codec", "roundtrip", "{w}", "{link}"],
])
def test_an_output_that_is_an_input_is_refused_before_any_work(argv, clip, capsys, tmp_path):
    import os
    import shutil

    video = tmp_path / "x.mp4"
    shutil.copy(clip[0] / "silent.mp4", video)
    wav = tmp_path / "d.wav"
    sf.write(wav, np.zeros((4800, 2)), 48000)
    link = tmp_path / "link.wav"
    os.symlink(wav, link)
    before = {p: p.read_bytes() for p in (video, wav)}
    fill = {"v": str(video), "w": str(wav), "d": str(tmp_path), "link": str(link)}
    assert main([a.format(**fill) for a in argv]) == 1
    err = capsys.readouterr().err
    assert "refusing to overwrite" in err or "same file" in err, err
    assert all(p.read_bytes() == b for p, b in before.items())  # nothing destroyed
    assert not (tmp_path / "t.json").exists() and not (tmp_path / "out.wav").exists()  # and no work done
