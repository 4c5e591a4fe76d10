"""`foley.stream.Reactor` and `foley stream`: waveform streaming = offline decode, sources, bad input, outputs kept."""
import io as pyio
import json
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from foley import io
from foley.cli import main
from foley.models.codec import codec_hash, load_codec
from foley.models.reactor import ReactorConfig, ReactorNet, save_reactor
from foley.stream import Reactor, StreamError, parse_raw, raw_frames, retime

SMALL = ReactorConfig(width=32, depth=2, heads=2, frame_size=16, video_width=32, window=16, head_width=32, head_depth=2)
HOP = 1920


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A random reactor for the shipped causal codec (every path live), saved as a checkpoint."""
    codec = load_codec()
    torch.manual_seed(0)
    m = ReactorNet(SMALL, codec.cfg.channels)
    for p in m.parameters():
        if p.dim() and (p == 0).all():
            torch.nn.init.normal_(p, std=0.05)
    path = tmp_path_factory.mktemp("reactor") / "reactor.pt"
    save_reactor(path, m, codec_hash(codec), stage="ect")
    return path


def frames_of(n, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("mirror", [0.0, 2.0])
def test_pushed_audio_equals_the_offline_decode_of_the_offline_run(ckpt, mirror):
    fr = frames_of(12)
    with Reactor(ckpt, nfe=2, cfg=2.0, seed=3, mirror=mirror) as r:
        pushed = [r.push(f) for f in fr]
        net, codec = r.net, r.codec
    assert all(p.shape == (2, HOP) and p.dtype == np.float32 for p in pushed)
    with torch.no_grad():
        t = torch.from_numpy(np.stack(fr)).permute(0, 3, 1, 2)[None]
        lat = net.generate(t, 2, "consistency", 2.0, seed=3, mirror=mirror)
        offline = codec.decode(codec.cap_loudness(lat))[0].numpy()
    assert np.abs(np.concatenate(pushed, axis=1) - offline).max() < 1e-4
    assert np.abs(offline).max() > 1e-4


def test_pushed_frames_louder_than_audio_can_be_are_capped(ckpt, monkeypatch):
    from foley.models.codec import LOUDEST_RMS

    fr = frames_of(8)

    def pushed_rms(cap: bool):
        with Reactor(ckpt, nfe=1, cfg=2.0, seed=3) as r:
            cs, nb = r.codec.cfg.spectral_channels, r.codec.cfg.stereo_bands
            step = r.net.step

            def blown_up(*args):  # band energies e^8 too high, as strong guidance can ask for
                x = step(*args).clone()
                x[:, cs:cs + nb] += 8.0 / r.codec.latent_std[cs:cs + nb]
                return x

            monkeypatch.setattr(r.net, "step", blown_up)
            if not cap:
                monkeypatch.setattr(r.codec, "cap_loudness", lambda z: z)
            y = np.concatenate([r.push(f) for f in fr], axis=1)
        return np.sqrt((y ** 2).reshape(2, -1, HOP).mean(axis=(0, 2)))

    capped, uncapped = pushed_rms(True), pushed_rms(False)
    assert capped.max() <= 1.25 * LOUDEST_RMS and np.median(capped) > 0.5 * LOUDEST_RMS, capped
    assert np.median(uncapped) > 2 * LOUDEST_RMS, uncapped


def test_a_live_reactor_leaves_the_callers_autograd_alone_and_a_second_one_loads_beside_it(ckpt):
    """A Reactor used to hold torch.inference_mode open from construction to close(): every tensor the caller made
    meanwhile was an inference tensor, and a second Reactor's weights could not be version-tracked (crash)."""
    fr = frames_of(3)
    first = Reactor(ckpt, nfe=2, cfg=2.0, seed=1)
    a = [first.push(f) for f in fr]
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    assert torch.ones(2, requires_grad=True).sum().requires_grad
    with Reactor(ckpt, nfe=2, cfg=2.0, seed=1) as second:  # same seed, same frames, same audio
        b = [second.push(f) for f in fr]
    first.close()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with torch.inference_mode(), Reactor(ckpt, nfe=2, cfg=2.0, seed=1) as third:  # weights loaded as inference tensors
        assert np.array_equal(third.push(fr[0]), a[0])


def test_a_frame_of_another_size_mid_stream_is_refused(ckpt):
    with Reactor(ckpt) as r:
        r.push(frames_of(1)[0])
        with pytest.raises(StreamError, match="frame 1 is 20x16.*started at 16x16"):
            r.push(np.zeros((16, 20, 3), np.uint8))
        with pytest.raises(StreamError, match="uint8 RGB"):
            r.push(np.zeros((16, 16), np.uint8))


def test_retime_never_gives_a_future_frame():
    out = list(retime(range(30), 30.0, 25.0))  # one second at 30 fps -> 25 ticks
    assert len(out) == 25
    for k, i in enumerate(out):
        assert i / 30 <= k / 25 + 1e-9 < (i + 1) / 30  # the newest frame at tick time, not a later one
    assert list(retime(range(5), 25.0, 25.0)) == list(range(5))
    assert list(retime(range(3), 12.5, 25.0)) == [0, 0, 1, 1, 2, 2]


def test_raw_frames_need_whole_frames():
    data = bytes(range(256)) * 3  # 768 bytes = 2 frames of 8x16 ... plus nothing
    got = list(raw_frames(pyio.BytesIO(data[:2 * 384]), 16, 8))
    assert len(got) == 2 and got[1].shape == (8, 16, 3)
    with pytest.raises(StreamError, match="inside frame 1: 100 of 384 bytes"):
        list(raw_frames(pyio.BytesIO(data[:484]), 16, 8))
    assert parse_raw("640x480@30") == (640, 480, 30.0)
    with pytest.raises(Exception, match="640x480@30"):
        parse_raw("640x480")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    io.write_video(path, iter(frames_of(12, 32)), 25)
    return path


def test_foley_stream_writes_the_audio_and_the_latency_report(ckpt, video, tmp_path):
    out, js = tmp_path / "out.wav", tmp_path / "lat.json"
    assert main(["stream", str(video), "-o", str(out), "--model", str(ckpt), "--json", str(js), "-q", "--nfe", "1"]) == 0
    audio, sr = sf.read(out)
    assert sr == 48000 and audio.shape == (12 * HOP, 2)
    rep = json.loads(js.read_text())
    assert rep["frames"] == 12 and rep["p50_ms"] <= rep["p95_ms"] <= rep["p99_ms"] and rep["misses"] >= 0
    again = tmp_path / "again.wav"
    main(["stream", str(video), "-o", str(again), "--model", str(ckpt), "-q", "--nfe", "1"])
    other = tmp_path / "other.wav"
    main(["stream", str(video), "-o", str(other), "--model", str(ckpt), "-q", "--nfe", "1", "--seed", "1"])
    assert np.array_equal(sf.read(again)[0], audio) and not np.array_equal(sf.read(other)[0], audio)


def test_foley_stream_muxes_into_a_copy_of_the_video_and_leaves_same_named_files_alone(ckpt, video, tmp_path):
    mine = tmp_path / "out.wav"
    mine.write_bytes(b"the user's own file")
    out = tmp_path / "out.mp4"
    assert main(["stream", str(video), "-o", str(out), "--model", str(ckpt), "-q"]) == 0
    assert mine.read_bytes() == b"the user's own file"
    assert abs(io.audio_duration(out) - 12 / 25) < 0.03
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "out.wav"]  # no temporary left


def test_a_raw_pipe_with_a_wrong_byte_count_keeps_what_was_made(ckpt, tmp_path, monkeypatch, capsys):
    data = b"".join(f.tobytes() for f in frames_of(3)) + b"\0" * 100
    monkeypatch.setattr(sys, "stdin", pyio.TextIOWrapper(pyio.BytesIO(data)))
    out = tmp_path / "raw.flac"
    assert main(["stream", "-", "--raw", "16x16@25", "-o", str(out), "--model", str(ckpt), "-q"]) == 1
    err = capsys.readouterr().err
    assert "inside frame 3: 100 of 768 bytes" in err and "kept" in err
    assert sf.read(out)[0].shape == (3 * HOP, 2)


def test_a_checkpoint_for_another_codec_is_a_clear_error(tmp_path, video, capsys):
    m = ReactorNet(SMALL, 120)
    bad = tmp_path / "other.pt"
    save_reactor(bad, m, "not-this-codec")
    assert main(["stream", str(video), "-o", str(tmp_path / "x.wav"), "--model", str(bad), "-q"]) == 1
    assert "another codec" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()


def test_stream_refuses_muxing_without_a_video_and_bad_options(ckpt, tmp_path, capsys):
    assert main(["stream", "-", "--raw", "16x16@25", "-o", str(tmp_path / "x.mp4"), "--model", str(ckpt)]) == 1
    assert "needs a video file" in capsys.readouterr().err
    assert main(["stream", "nothere.mp4", "-o", str(tmp_path / "x.wav"), "--model", str(ckpt)]) == 1
    assert main(["stream", str(tmp_path), "-o", str(tmp_path / "x.wav"), "--model", str(ckpt), "--nfe", "0"]) == 1


def test_a_stalled_pipe_ends_the_stream_with_what_was_made(ckpt, tmp_path, monkeypatch, capsys):
    import os

    r, w = os.pipe()
    os.write(w, b"".join(f.tobytes() for f in frames_of(2)))  # two frames, then nothing (the writer stays open)
    monkeypatch.setattr(sys, "stdin", os.fdopen(r, "r"))
    out = tmp_path / "stalled.wav"
    rc = main(["stream", "-", "--raw", "16x16@25", "-o", str(out), "--model", str(ckpt), "-q", "--stall-timeout", "0.3"])
    os.close(w)
    assert rc == 1 and "stalled: no data for 0.3 s after frame 2" in capsys.readouterr().err
    assert sf.read(out)[0].shape == (2 * HOP, 2)


def test_a_camera_that_cannot_open_is_a_clear_error(ckpt, tmp_path, capsys):
    assert main(["stream", "57", "-o", str(tmp_path / "cam.wav"), "--model", str(ckpt)]) == 1
    assert "cannot open camera 57" in capsys.readouterr().err


def test_the_shipped_reactor_streams_with_the_default_codec():
    """The shipped model loads against the default causal codec (hash checked), is the ECT stage, and makes
    finite, non-silent audio that depends on the pictures."""
    with Reactor(nfe=1) as r:
        assert r.mode == "consistency" and r.net.cfg.head_dropout == 0.0
        a = np.concatenate([r.push(f) for f in frames_of(10, 96)], axis=1)
    with Reactor(nfe=1) as r:
        b = np.concatenate([r.push(np.full((96, 96, 3), 30, np.uint8)) for _ in range(10)], axis=1)
    assert np.isfinite(a).all() and 1e-4 < np.sqrt((a ** 2).mean()) < 1.0
    assert np.abs(a - b).max() > 1e-3


def test_int8_streams_close_to_float(ckpt):
    fr = frames_of(8)
    with Reactor(ckpt, nfe=1, cfg=2.0, seed=1) as r:
        a = np.concatenate([r.push(f) for f in fr], axis=1)
    with Reactor(ckpt, nfe=1, cfg=2.0, seed=1, int8=True) as r:
        assert any("Quantized" in type(m).__name__ or "quantized" in type(m).__module__ for m in r.net.modules())
        b = np.concatenate([r.push(f) for f in fr], axis=1)
    assert np.isfinite(b).all() and 0 < np.abs(a - b).max() < 0.5 * np.abs(a).max()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_asking_for_cuda_without_one_is_a_clear_error(ckpt, video, tmp_path, capsys):
    assert main(["stream", str(video), "-o", str(tmp_path / "x.wav"), "--model", str(ckpt), "--device", "cuda"]) == 1
    assert "no CUDA device here" in capsys.readouterr().err and not (tmp_path / "x.wav").exists()
