"""`foley codec roundtrip` and `foley train codec`: any file in, 48 kHz stereo out; bad input refused clearly;
the shipped codecs beat equal-rate baselines on world clips."""
import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from foley import roundtrip as rt
from foley.cli import train as train_cli
from foley.cli import build_parser, main
from foley.errors import AudioError, FoleyError, MediaError
from foley.models.codec import DEFAULT_CHECKPOINT, OFFLINE_CHECKPOINT, Codec, CodecConfig, CodecError, load_codec, save_codec
from foley.spatial import pan_gains

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "codec.pt"
    save_codec(path, Codec(CodecConfig(width=32, enc_blocks=1, dec_blocks=1)))
    return path


def _wav(path, audio, sr, subtype="PCM_16"):
    sf.write(path, np.asarray(audio).T, sr, subtype=subtype)
    return path


def test_roundtrip_resamples_and_upmixes_with_a_warning(tmp_path, ckpt, caplog):
    mono = 0.3 * np.sin(2 * np.pi * 440 * np.arange(44100) / 44100)
    src = _wav(tmp_path / "in.wav", mono[None], 44100)
    with caplog.at_level(logging.WARNING, logger="foley"):
        r = rt.roundtrip(src, tmp_path / "out.wav", ckpt)
    assert "44100 Hz" in caplog.text and "upmixed" in caplog.text
    y, sr = sf.read(tmp_path / "out.wav", always_2d=True)
    assert sr == 48000 and y.shape == (48000, 2) and r.native_rate == 44100 and r.native_channels == 1
    assert np.max(np.abs(y)) > 1e-3


def test_roundtrip_keeps_a_panned_source_where_it_was(tmp_path, ckpt):
    noise = np.random.default_rng(0).standard_normal(48000) * 0.1
    gl, gr = pan_gains(np.array(0.6))
    src = _wav(tmp_path / "in.flac", np.stack([gl * noise, gr * noise]), 48000)
    r = rt.roundtrip(src, tmp_path / "out.flac", ckpt)
    assert r.pan_error < 0.05 and r.stereo_score_out == pytest.approx(r.stereo_score_in, abs=0.05)


def test_silent_and_clipped_input_warn(tmp_path, ckpt, caplog):
    with caplog.at_level(logging.WARNING, logger="foley"):
        rt.roundtrip(_wav(tmp_path / "s.wav", np.zeros((2, 9600)), 48000), tmp_path / "o.wav", ckpt)
        assert "silent" in caplog.text
        assert not np.any(sf.read(tmp_path / "o.wav")[0])
        loud = np.clip(3 * np.random.default_rng(1).standard_normal((2, 9600)), -1, 1)
        rt.roundtrip(_wav(tmp_path / "c.wav", loud, 48000), tmp_path / "o2.wav", ckpt)
        assert "clipped" in caplog.text


def test_bad_input_raises_foley_errors(tmp_path, ckpt):
    nan = np.zeros((2, 4800), np.float32)
    nan[0, 100] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        rt.roundtrip(_wav(tmp_path / "n.wav", nan, 48000, "FLOAT"), tmp_path / "o.wav", ckpt)
    src = _wav(tmp_path / "ok.wav", np.zeros((2, 4800)), 48000)
    with pytest.raises(MediaError, match=".wav or .flac"):
        rt.roundtrip(src, tmp_path / "o.mp3", ckpt)
    with pytest.raises(MediaError):
        rt.roundtrip(tmp_path / "missing.wav", tmp_path / "o.wav", ckpt)
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(CodecError):
        rt.roundtrip(src, tmp_path / "o.wav", tmp_path / "bad.pt")
    state = torch.load(ckpt, weights_only=True)
    state["config"]["width"] = 64  # weights of another config
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(CodecError, match="do not match"):
        rt.roundtrip(src, tmp_path / "o.wav", tmp_path / "other.pt")


def test_foley_cli_runs_codec_verbs_and_refuses_bad_input_in_one_line(tmp_path, ckpt, capsys):
    noise = 0.1 * np.random.default_rng(2).standard_normal((2, 9600))
    src = _wav(tmp_path / "in.wav", noise, 48000)
    assert main(["codec", "roundtrip", str(src), str(tmp_path / "out.flac"), "--checkpoint", str(ckpt)]) == 0
    assert "Stereo-Score" in capsys.readouterr().out
    assert sf.read(tmp_path / "out.flac")[0].shape == (9600, 2)
    for argv in ([str(tmp_path / "missing.wav"), str(tmp_path / "o.wav")],
                 [str(src), str(tmp_path / "o.wav"), "--checkpoint", str(tmp_path / "none.pt")],
                 [str(src), str(tmp_path / "o.mp3")]):
        assert main(["codec", "roundtrip", *argv, "--checkpoint", str(ckpt)] if "--checkpoint" not in argv
                    else ["codec", "roundtrip", *argv]) == 1
        err = capsys.readouterr().err
        assert err.startswith("foley: error: ") and "Traceback" not in err
    assert not list(tmp_path.glob("o.*"))
    a = build_parser().parse_args(
        ["train", "codec", "--preset", "tiny", "--out", "runs/x", "--steps", "5", "--resume"])
    assert a.func is train_cli._cmd_train and a.model == "codec" and a.steps == 5 and a.resume


@pytest.mark.parametrize("path,causal", [(DEFAULT_CHECKPOINT, True), (OFFLINE_CHECKPOINT, False)])
def test_shipped_checkpoints_are_small_calibrated_and_beat_equal_rate_baselines(path, causal):
    """On held-out world clips the trained codec is closer in spectrum and per-band stereo than both
    trivial baselines with as many floats/s, and keeps BAS where one object dominates (>= 0.95x)."""
    from foley.metrics.codec import baseline_mono_pan, baseline_resample, figures
    from foley.world import PRESETS as WORLD, render, sample_scene, synthesize
    from foley.metrics import audio_position, position_bin
    from foley.world.checks import dominant_frames

    assert path.is_file() and path.stat().st_size < 16 * 2 ** 20
    codec = load_codec(path)
    cfg = codec.cfg
    assert cfg.causal == causal and cfg.hop == 1920
    assert torch.all(codec.latent_std != 1)  # calibrated: the latent scale lives in the checkpoint
    got = {"codec": [], "resample": [], "mono+pan": []}
    hits = {"original": 0, "codec": 0}  # dominant frames (pooled over objects and clips) in the right bin
    for i in range(6):
        scene = sample_scene(WORLD["default"], 0, "test", i)
        rendered = render(scene)
        audio = synthesize(scene, rendered)
        x = audio.mixes["objaware"].astype(np.float64)
        outs = {"codec": rt.codec_audio(codec, x), "resample": baseline_resample(x, cfg.sr, cfg.floats_per_second),
                "mono+pan": baseline_mono_pan(x, cfg.sr, cfg.fps, cfg.floats_per_second)}
        for name, y in outs.items():
            got[name].append(figures(torch.from_numpy(np.asarray(y)).float(), torch.from_numpy(x).float(), cfg.sr, cfg.fps))
        dom = dominant_frames(audio.stems, audio.ambience, rendered.tracks, cfg.sr)  # (O, K)
        for name, y in (("original", x), ("codec", outs["codec"])):
            pos = audio_position(np.asarray(y), cfg.sr, cfg.fps, n_frames=dom.shape[1])
            for d, t in zip(dom, rendered.tracks):
                hits[name] += int(np.sum((position_bin(t.x) == position_bin(pos.pan))[d & ~pos.silent]))
    mean = {k: {f: np.mean([getattr(v, f) for v in vs]) for f in ("mrstft", "mel", "ild_db")} for k, vs in got.items()}
    for base in ("resample", "mono+pan"):
        assert all(mean["codec"][f] < 0.8 * mean[base][f] for f in ("mrstft", "mel", "ild_db")), (mean, base)
    assert hits["original"] > 20 and hits["codec"] >= 0.95 * hits["original"], hits


@pytest.mark.parametrize("path", [DEFAULT_CHECKPOINT, OFFLINE_CHECKPOINT])
def test_shipped_v2_codecs_keep_tones_and_voices_that_v1_turned_into_noise(path):
    """Codec v2 against v1 on what a listener hears: a harmonic tone stays a tone (energy at its partials)
    and a voice keeps its pitch and quality (PESQ), where the noise-excited v1 lost both."""
    from foley.metrics import listening as L
    from foley.models.codec import V1_CHECKPOINTS
    from foley.world.tonal import voice

    v2, v1 = load_codec(path), load_codec(V1_CHECKPOINTS[0])
    assert v2.cfg.tonal and v2.cfg.channels <= 128 and path.stat().st_size < 16 * 2 ** 20
    t = np.arange(2 * 48000) / 48000
    tone = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 8)) * 0.2
    tone = np.stack([tone, 0.6 * tone])
    got = {name: L.partial_ratio(tone, rt.codec_audio(c, tone)) for name, c in (("v2", v2), ("v1", v1))}
    assert got["v2"] > 10 and got["v1"] < 0, got
    m = voice(3 * 48000, 48000, np.random.default_rng(123))
    x = np.stack([m, 0.7 * m]) / np.abs(m).max() * 0.5
    y2, y1 = rt.codec_audio(v2, x), rt.codec_audio(v1, x)
    assert L.pesq_wb(x, y2) > L.pesq_wb(x, y1) + 0.05, (L.pesq_wb(x, y2), L.pesq_wb(x, y1))
    assert L.pitch_error_cents(x, y2) < 40 < 200 < L.pitch_error_cents(x, y1)  # v1: about 800 cents
    assert L.periodicity(y2) > L.periodicity(y1) + 0.2


# ---------------------------------------------------------------------- streaming (issue 13, defect 13)

def _whole_clip(codec, x):
    """The reference: one non-streamed encode/decode of the whole clip, trimmed to its length."""
    n, hop = x.shape[-1], codec.cfg.hop
    xt = torch.zeros(1, 2, -(-n // hop) * hop)
    xt[..., :n] = torch.from_numpy(np.asarray(x, np.float32))
    with torch.no_grad():
        return codec.decode(codec.encode(xt))[0, :, :n].numpy()


@pytest.mark.parametrize("chunk_frames", [7, rt.CHUNK_FRAMES])
def test_streamed_roundtrip_equals_the_whole_clip_for_the_causal_codec(tmp_path, chunk_frames):
    """The shipped causal codec, streamed in chunks (7 frames: chunk edges inside the clip), writes what one
    whole-clip encode/decode gives (24-bit and float tolerance), as long as the input; the same figures."""
    from foley.metrics import stereo_score
    from foley.metrics.codec import pan_error

    n = 3 * 48000 + 1234  # not whole latent frames
    t = np.arange(n) / 48000
    noise = 0.05 * np.random.default_rng(3).standard_normal((2, n))
    x = (np.stack([0.3, 0.1])[:, None] * np.sin(2 * np.pi * 330 * t) + noise).astype(np.float32)
    src = _wav(tmp_path / "in.wav", x, 48000, "FLOAT")
    r = rt.roundtrip(src, tmp_path / "out.wav", DEFAULT_CHECKPOINT, chunk_frames=chunk_frames)
    y, sr = sf.read(tmp_path / "out.wav", always_2d=True, dtype="float32")
    ref = _whole_clip(load_codec(DEFAULT_CHECKPOINT), x)
    assert sr == 48000 and y.shape == (n, 2) and r.seconds == n / 48000
    assert np.abs(ref).max() > 0.1 and np.abs(y.T - ref).max() < 2e-6
    xd, refd = x.astype(np.float64), ref.astype(np.float64)
    assert r.pan_error == pytest.approx(pan_error(refd, xd, 48000, 25), abs=1e-6)
    assert r.stereo_score_in == pytest.approx(stereo_score(xd), abs=1e-9)
    assert r.stereo_score_out == pytest.approx(stereo_score(refd), abs=1e-6)


def _gated_tone(n):
    """A gliding harmonic tone that stops and starts (the offline codec holds its pitch across the gaps and
    continues the harmonics' phases from it), a burst of noise, and a short partial of its own."""
    t = np.arange(n) / 48000
    f = 220 * (1 + 0.3 * np.sin(2 * np.pi * 0.2 * t))
    phase = 2 * np.pi * np.cumsum(f) / 48000
    tone = sum(np.sin(k * phase) / k for k in range(1, 6)) * ((t % 1.3) < 0.8) * 0.15
    x = np.stack([tone, 0.5 * tone]) + 0.05 * np.random.default_rng(7).standard_normal((2, n)) * ((t % 2) > 1.6)
    x[:, (t > 2.0) & (t < 2.3)] += 0.3 * np.sin(2 * np.pi * 1234 * t[(t > 2.0) & (t < 2.3)])
    return x.astype(np.float32)


def test_streamed_roundtrip_equals_the_whole_clip_for_the_offline_codec(tmp_path):
    """The shipped offline codec looks ahead and carries its held pitch and phases along the clip; run in
    overlapping 7-frame chunks with that state handed on, it writes what one whole-clip encode/decode gives."""
    n = 4 * 48000 + 777
    x = _gated_tone(n)
    src = _wav(tmp_path / "in.wav", x, 48000, "FLOAT")
    rt.roundtrip(src, tmp_path / "out.wav", OFFLINE_CHECKPOINT, chunk_frames=7)
    y = sf.read(tmp_path / "out.wav", always_2d=True, dtype="float32")[0].T
    ref = _whole_clip(load_codec(OFFLINE_CHECKPOINT), x)
    assert y.shape == x.shape and np.abs(ref).max() > 0.1 and np.abs(y - ref).max() < 2e-6


def test_offline_chunks_need_the_held_pitch_handed_on(monkeypatch):
    """Without the pitch held before a chunk (each chunk starting from the default), the phases of the harmonics
    after a gap differ from the whole clip's: the hand-on is what makes chunks exact."""
    from foley.models import codec_chunks

    codec = load_codec(OFFLINE_CHECKPOINT)
    x = _gated_tone(3 * 48000)
    ref = _whole_clip(codec, x)
    got = np.concatenate(list(codec_chunks.offline_blocks(codec, [x], 9)), -1)
    assert np.abs(got - ref).max() < 2e-6
    real = codec.measure
    monkeypatch.setattr(codec, "measure", lambda a: (codec.tonal_analysis._streaming_state.pop("f0", None), real(a))[1])
    broken = np.concatenate(list(codec_chunks.offline_blocks(codec, [x], 9)), -1)
    assert np.abs(broken - ref).max() > 0.05


def test_offline_chunks_with_a_harmonic_gain_head_equal_the_whole_clip():
    """The head scales each decoded chunk's harmonic fractions from that chunk's own latents, as whole decoding does."""
    from foley.models import codec_chunks
    from foley.models.codec import with_harmonic_gain

    plain = load_codec(OFFLINE_CHECKPOINT)
    codec = with_harmonic_gain(plain)
    with torch.no_grad():
        torch.nn.init.normal_(codec.harmonic_gain[2].weight, std=0.5)  # gains that differ by frame and band
    x = _gated_tone(3 * 48000)
    ref = _whole_clip(codec, x)
    assert np.abs(ref - _whole_clip(plain, x)).max() > 1e-3  # the head changes the sound
    got = np.concatenate(list(codec_chunks.offline_blocks(codec, [x], 9)), -1)
    assert np.abs(got - ref).max() < 2e-6


@pytest.mark.parametrize("causal", [True, False])
def test_roundtrip_output_is_as_long_as_the_input(tmp_path, causal):
    """Any length, below one latent frame, whole frames, one sample over, causal (streamed in 3-frame
    chunks) or offline (overlapping 3-frame chunks): the output has the input's length."""
    torch.manual_seed(0)
    path = tmp_path / "codec.pt"
    save_codec(path, Codec(CodecConfig(width=32, enc_blocks=1, dec_blocks=1, causal=causal)))
    rng = np.random.default_rng(4)
    for n in (700, 1920, 1921, 3 * 1920 * 3 + 5):
        src = _wav(tmp_path / f"in{n}.wav", 0.1 * rng.standard_normal((2, n)), 48000)
        r = rt.roundtrip(src, tmp_path / f"out{n}.flac", path, chunk_frames=3)
        assert sf.info(str(tmp_path / f"out{n}.flac")).frames == n and r.seconds == n / 48000, n


def test_a_clipping_reconstruction_is_written_once_scaled_and_leaves_nothing_behind(tmp_path, ckpt, monkeypatch,
                                                                                      caplog):
    """A reconstruction peaking above 1 is known only at its end: that write is dropped and the stream run
    again, scaled by 0.99 / peak as a whole clip would be."""
    from foley.blocks import rechunk

    def loud(codec, blocks, chunk_frames=rt.CHUNK_FRAMES):  # a 'codec' that doubles the input
        return (2 * np.asarray(b, np.float32) for b in rechunk(blocks, chunk_frames * codec.cfg.hop))

    monkeypatch.setattr(rt, "codec_blocks", loud)
    x = 0.2 * np.random.default_rng(5).standard_normal((2, 20000))
    x[0, 12345] = 0.9  # the peak, in a later chunk: 1.8 after the 'codec'
    src = _wav(tmp_path / "in.wav", x, 48000, "FLOAT")
    with caplog.at_level(logging.WARNING, logger="foley"):
        rt.roundtrip(src, tmp_path / "out.wav", ckpt, chunk_frames=2)
    assert "peaks at 1.80" in caplog.text
    y = sf.read(tmp_path / "out.wav", always_2d=True)[0].T
    assert np.abs(y - 2 * x.astype(np.float32) * (0.99 / 1.8)).max() < 1e-6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]


def _peak_mib(argv: list[str]) -> float:
    """Peak RSS (MiB) of `python -m foley ARGV` in a fresh process: its own VmHWM, printed at exit.

    Not getrusage(RUSAGE_CHILDREN): Linux carries ru_maxrss across exec, so a child of this (large)
    test process reports at least this process's peak.
    """
    import os
    import subprocess
    import sys

    code = ("import atexit, runpy, sys\n"
            "def peak():\n"
            "    for line in open('/proc/self/status'):\n"
            "        if line.startswith('VmHWM:'):\n"
            "            print('VmHWM', int(line.split()[1]) / 1024, file=sys.stderr)\n"
            "atexit.register(peak)\n"
            "sys.argv = ['foley', *sys.argv[1:]]\n"
            "runpy.run_module('foley', run_name='__main__')\n")
    res = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return float(res.stderr.split("VmHWM")[-1].split()[0])


@pytest.mark.skipif(not __import__("pathlib").Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("checkpoint", [DEFAULT_CHECKPOINT, OFFLINE_CHECKPOINT], ids=["causal", "offline"])
def test_roundtrip_memory_is_flat_in_the_input_length(tmp_path, checkpoint):
    """`foley codec roundtrip` of 120 s peaks under 1.3x the memory of 20 s (whole-clip it was 1.6x; 5x at 10 min),
    with the causal codec streaming and the offline one in overlapping chunks."""
    rng = np.random.default_rng(6)
    peaks = {}
    for seconds in (20, 120):
        src = tmp_path / f"in{seconds}.wav"
        with sf.SoundFile(src, "w", 48000, 2, subtype="PCM_16") as f:
            for _ in range(seconds // 10):
                f.write(0.1 * rng.standard_normal((480000, 2)))
        peaks[seconds] = _peak_mib(["codec", "roundtrip", str(src), str(tmp_path / f"out{seconds}.wav"),
                                    "--checkpoint", str(checkpoint)])
        assert sf.info(str(tmp_path / f"out{seconds}.wav")).frames == seconds * 48000
    assert peaks[120] < 1.3 * peaks[20], peaks
