"""`foley world export` and `foley eval`: the world as a V2A benchmark, scored end to end, bad inputs included."""
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from foley import io
from foley.cli import main
from foley.evaluate import evaluate, find_pairs
from foley.models.clap import Clap, ClapConfig, build_vocab, save_clap
from foley.train.clap import class_labels
from foley.world.record import decode
from foley.world.scene import PRESETS
from foley.world.shards import iter_shard, make_world

SR = 48000


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A tiny world's test split exported, and a small random embedding checkpoint."""
    d = tmp_path_factory.mktemp("bench")
    make_world(d / "world", 4, "test", 0, PRESETS["tiny"], progress=False)
    assert main(["world", "export", str(d / "world"), "--out", str(d / "clips"), "--quiet"]) == 0
    cfg = ClapConfig(channels=(4, 8, 8, 8), width=16, dim=16, text_width=16, text_layers=1, text_heads=2,
                     classes=class_labels(), vocab=build_vocab(["a red ball bouncing; wind"]))
    model = Clap(cfg)
    for m in model.modules():  # calibrate the random network's batch norms, so its features vary with the input
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    with torch.no_grad():
        model.audio_features(np.stack([sf.read(f, always_2d=True)[0].T for f in (d / "clips" / "objaware").iterdir()]))
    save_clap(d / "clap.pt", model.eval())
    return d


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_export_writes_video_references_and_truth(bench):
    clips = bench / "clips"
    shard = next((bench / "world" / "test").glob("*.tar"))
    key, files = next(iter_shard(shard))
    rec = decode(files)
    truth = json.loads((clips / f"{key}.json").read_text())
    assert truth["schema"] == "foley.truth/1"
    assert [o["events"] for o in truth["objects"]] == [o["events"] for o in rec.meta["objects"]]
    assert truth["caption"] == "; ".join(rec.meta["captions"])
    info = io.probe(clips / f"{key}.mp4")
    assert not info.has_audio and info.n_frames == rec.frames.shape[0]
    for mix in ("objaware", "dataset", "mono"):
        a, sr = sf.read(clips / mix / f"{key}.flac", always_2d=True)
        assert sr == SR and np.max(np.abs(a.T - rec.mixes[mix])) < 1e-3
    assert len(list(clips.glob("*.json"))) == 4


def test_reference_scores_perfectly_and_noise_does_not(bench, tmp_path):
    from foley.models.clap import load_clap

    clips, model = bench / "clips", load_clap(bench / "clap.pt")
    same = evaluate(*_pairs(clips / "objaware", clips), model=model, progress=False)
    noise_dir = tmp_path / "noise"
    noise_dir.mkdir()
    rng = np.random.default_rng(0)
    for f in (clips / "objaware").iterdir():
        io.write_audio(noise_dir / f.name, 0.1 * rng.standard_normal((2, 2 * SR)).astype(np.float32), SR)
    noise = evaluate(*_pairs(noise_dir, clips), model=model, progress=False)
    s, n = same.summary, noise.summary
    assert s["fd"] == pytest.approx(0, abs=1e-6) and s["kl"] == pytest.approx(0, abs=1e-6)
    assert s["onset_f1"] == 1.0 and n["onset_f1"] < 0.6
    assert s["sync_f1"] > n["sync_f1"] + 0.3
    assert n["fd"] > 1e-3 and n["kl"] > 1e-4
    assert s["stereo_score"] == pytest.approx(np.mean([c["stereo_score_ref"] for c in same.clips]))
    assert 0.5 < s["bas_all"] <= 1 and n["stereo_score"] == pytest.approx(1 / np.sqrt(2), abs=0.02)
    assert all(c["clap"] is not None for c in same.clips) and same.summary["is"] >= 1.0


def _pairs(gen, clips):
    pairs, problems = find_pairs(gen, clips / "objaware", clips)
    return (pairs,)


def test_cli_writes_json_csv_and_plots_with_the_required_keys(bench, tmp_path, capsys):
    clips = bench / "clips"
    out = tmp_path / "report.json"
    code, stdout, err = _run(["eval", clips / "dataset", "--ref", clips / "objaware", "--truth", clips,
                              "--embedding", bench / "clap.pt", "--json", out, "--csv", tmp_path / "clips.csv",
                              "--plots", tmp_path / "plots"], capsys)
    assert code == 0, err
    doc = json.loads(out.read_text())
    for k in ("fd", "kl", "is", "clap", "sync_f1", "stereo_score", "bas_all"):
        assert k in doc["summary"]
    assert len(doc["clips"]) == 4 and "sync_f1" in stdout
    assert (tmp_path / "plots" / "metrics.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "onsets.png").stat().st_size > 1000
    assert len((tmp_path / "clips.csv").read_text().splitlines()) == 5


def test_bad_clips_are_named_and_the_rest_still_scored(bench, tmp_path, capsys):
    clips = bench / "clips"
    gen = tmp_path / "gen"
    gen.mkdir()
    keys = sorted(p.stem for p in (clips / "objaware").iterdir())
    for k in keys[:2]:
        (gen / f"{k}.flac").write_bytes((clips / "objaware" / f"{k}.flac").read_bytes())
    bad = np.zeros((SR, 2), np.float32)
    bad[100] = np.nan
    sf.write(gen / f"{keys[2]}.wav", bad, SR, subtype="FLOAT")  # NaN samples
    (gen / f"{keys[3]}.flac").write_bytes(b"not audio at all")  # corrupt
    (gen / "stranger.wav").write_bytes((clips / "objaware" / f"{keys[0]}.flac").read_bytes())  # no reference
    code, stdout, err = _run(["eval", gen, "--ref", clips / "objaware", "--truth", clips,
                              "--embedding", bench / "clap.pt", "--json", tmp_path / "r.json"], capsys)
    assert code == 0, err
    assert "Traceback" not in stdout + err
    assert "NaN" in err and keys[3] in err and "stranger" in err and "n_clips" in stdout
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["summary"]["n_clips"] == 3 and len(doc["problems"]) >= 3  # 2 good + stranger (no truth, no ref)


def test_corrupt_embedding_and_missing_folder_are_one_line_errors(bench, tmp_path):
    clips = bench / "clips"
    broken = tmp_path / "clap.pt"
    broken.write_bytes(b"\x00" * 100)
    for argv in (["eval", clips / "objaware", "--ref", clips / "objaware", "--embedding", broken],
                 ["eval", tmp_path / "nowhere", "--ref", clips / "objaware"]):
        r = subprocess.run([sys.executable, "-m", "foley", *map(str, argv)], capture_output=True, text=True)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.strip().startswith("foley: error:") and len(r.stderr.strip().splitlines()) == 1


def test_other_rates_and_lengths_are_resampled_and_trimmed_with_a_warning(bench, tmp_path):
    from foley.models.clap import load_clap

    clips = bench / "clips"
    key = sorted(p.stem for p in (clips / "objaware").iterdir())[0]
    ref, _ = sf.read(clips / "objaware" / f"{key}.flac", always_2d=True)
    gen = tmp_path / "gen"
    gen.mkdir()
    from scipy.signal import resample_poly

    low = resample_poly(ref, 1, 3, axis=0)  # 16 kHz
    sf.write(gen / f"{key}.wav", np.concatenate([low, np.zeros((16000, 2))]), 16000)  # and 1 s longer
    pairs, problems = find_pairs(gen, clips / "objaware", clips)
    rep = evaluate(pairs, model=load_clap(bench / "clap.pt"), progress=False, problems=problems)
    assert rep.summary["n_clips"] == 1 and rep.clips[0]["seconds"] == pytest.approx(ref.shape[0] / SR)
    assert any("scored on the common part" in p for p in rep.problems)
    c = rep.clips[0]  # the same sound at another rate: the same class posteriors and stereo image
    assert c["kl"] < 0.3 and abs(c["stereo_score"] - c["stereo_score_ref"]) < 0.05
