"""`foley generate` end to end with a small random DiT: lengths, windows, seeds, muxing, batches, bad input."""
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from foley import io
from foley.cli import main

SR = 48000


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import torch

    from foley.models.codec import codec_hash, load_codec
    from foley.models.dit import DiT, DiTConfig, save_dit

    d = tmp_path_factory.mktemp("gen")
    codec = load_codec()
    torch.manual_seed(0)
    model = DiT(DiTConfig(width=32, depth=1, heads=2, cond_dim=256), codec.cfg.channels)
    for p in model.out.parameters():  # a non-zero output layer, so outputs depend on the noise
        torch.nn.init.normal_(p, std=0.02)
    save_dit(d / "tiny.pt", model, codec_hash(codec))
    save_dit(d / "other.pt", model, "f" * 64)
    frames = []
    for k in range(150):  # 6 s at 25 fps: longer than one 4 s window
        f = np.zeros((48, 64, 3), np.uint8)
        x = 4 + k * 50 // 150
        f[16:32, x:x + 10] = 255
        frames.append(f)
    io.write_video(d / "v.mp4", iter(frames), 25)
    return d


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_generate_writes_the_video_length_and_repeats_with_a_seed(setup, capsys, tmp_path):
    d = setup
    args = ["generate", d / "v.mp4", "--model", d / "tiny.pt", "--num_steps", "2", "--cfg_strength", "2"]
    assert run(args + ["-o", tmp_path / "a.wav", "--seed", "3"], capsys)[0] == 0
    assert run(args + ["-o", tmp_path / "b.wav", "--seed", "3"], capsys)[0] == 0
    assert run(args + ["-o", tmp_path / "c.wav", "--seed", "4", "--prompt", "a dog barking"], capsys)[0] == 0
    a, sr = sf.read(tmp_path / "a.wav")
    b, _ = sf.read(tmp_path / "b.wav")
    c, _ = sf.read(tmp_path / "c.wav")
    assert sr == SR and a.shape == (6 * SR, 2) and np.array_equal(a, b) and not np.allclose(a, c)
    assert np.isfinite(a).all()
    assert run(args + ["-o", tmp_path / "short.flac", "--duration", "2"], capsys)[0] == 0
    assert sf.info(tmp_path / "short.flac").frames == 2 * SR


def test_generate_muxes_into_a_copy_of_the_video_and_runs_batches_that_resume(setup, capsys, tmp_path):
    d = setup
    code, out, err = run(["generate", d / "v.mp4", "--model", d / "tiny.pt", "--num-steps", "1", "-o",
                          tmp_path / "v_foley.mp4"], capsys)
    assert code == 0, err
    info, src = io.probe(tmp_path / "v_foley.mp4"), io.probe(d / "v.mp4")
    assert info.has_audio and info.n_frames == src.n_frames
    batch = tmp_path / "videos"
    batch.mkdir()
    for name in ("one.mp4", "two.mp4"):
        (batch / name).write_bytes((d / "v.mp4").read_bytes())
    argv = ["generate", batch, "--model", d / "tiny.pt", "--num-steps", "1", "--duration", "1", "-o", tmp_path / "o"]
    assert run(argv, capsys)[0] == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["one.mp4", "two.mp4"]
    code, out, _ = run(argv, capsys)
    assert code == 0 and "wrote 0 clips" in out and "2 were already there" in out


@pytest.mark.parametrize("case", ["not_video", "bad_prompt", "other_codec", "bad_steps", "bad_device", "meta_device"])
def test_bad_generation_requests_are_one_line_errors_without_output(setup, tmp_path, case):
    d = setup
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros((SR, 2)), SR)
    (tmp_path / "junk.wav").write_bytes(b"junk")
    argv = {"not_video": [wav, "--model", d / "tiny.pt"],
            "bad_prompt": [d / "v.mp4", "--model", d / "tiny.pt", "--audio-prompt", tmp_path / "junk.wav"],
            "other_codec": [d / "v.mp4", "--model", d / "other.pt"],
            "bad_steps": [d / "v.mp4", "--model", d / "tiny.pt", "--num-steps", "0"],
            "bad_device": [d / "v.mp4", "--model", d / "tiny.pt", "--device", "gpu0"],
            "meta_device": [d / "v.mp4", "--model", d / "tiny.pt", "--device", "meta"]}[case]
    out = tmp_path / "out.wav"
    r = subprocess.run([sys.executable, "-m", "foley", "generate", *map(str, argv), "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()
    assert list(tmp_path.glob(".*part*")) == []


def test_the_demo_generates_with_the_shipped_model_and_scores_it(tmp_path):
    from foley.pipeline import run_demo

    reports = run_demo(tmp_path / "demo", width=160, height=96, seconds=2.0, steps=2)
    rep = reports["generated (obj DiT) vs truth"]
    assert io.probe(tmp_path / "demo" / "demo_generated.mp4").has_audio
    assert 0 <= rep.stereo_score <= 1 and rep.frames_in + rep.frames_off + rep.frames_silent == 50


def test_mirror_guidance_feeds_the_mirrored_picture_and_zero_samples_as_before(setup):
    """Mirror guidance conditions its third rows on the frames flipped left-right (and only those); at 0 it runs
    the plain two-row CFG. The frame encoder runs once per picture, not once per step. Seeded: the same settings
    give the same audio."""
    import torch

    from foley.diffusion import SAMPLERS, cfg, mirror_cfg
    from foley.generate import Generator, Settings

    gen = Generator(str(setup / "tiny.pt"))
    frames = torch.stack(list(gen.frames(setup / "v.mp4")))[:20]
    encoded, rows = [], []
    encode, forward = gen.dit.video.forward, gen.dit.forward
    gen.dit.video.forward = lambda f: encoded.append(f.clone()) or encode(f)
    gen.dit.forward = lambda x, t, f, c, d, cd=None, video=None: rows.append(video) or forward(x, t, f, c, d, cd, video)
    z = gen.latents(frames, None, Settings(2.0, 4, "ddim", 5, mirror=3.0), 0)
    assert len(rows) == 4 and all(v.shape[0] == 3 for v in rows)  # 4 steps of 3 rows each
    assert len(encoded) == 2 and torch.equal(encoded[0][0], frames) and torch.equal(encoded[1][0], frames.flip(-1))
    assert not torch.equal(frames, frames.flip(-1))  # the clip's square is off-centre: the flip changes it
    v = rows[0]
    assert torch.equal(v[0], v[1]) and torch.equal(v[0], encode(frames[None])[0])
    assert torch.equal(v[2], encode(frames.flip(-1)[None])[0])  # the third row sees the mirrored picture
    encoded.clear(), rows.clear()
    plain = gen.latents(frames, None, Settings(2.0, 2, "ddim", 5, mirror=0.0), 0)
    assert len(encoded) == 1 and all(r.shape[0] == 2 for r in rows) and not torch.allclose(plain, z[..., :20])
    gen.dit.video.forward, gen.dit.forward = encode, forward
    fr, c, drop_c = frames[None], torch.zeros(1, gen.dit.cfg.cond_dim), torch.tensor([True])
    noise = torch.randn((1, gen.dit.channels, 20), generator=torch.Generator().manual_seed(5 * 1_000_003))
    before = SAMPLERS["ddim"](cfg(lambda x, t, d: gen.dit(x, t, fr.expand(len(x), -1, -1, -1, -1),
                                                          c.expand(len(x), -1), d, drop_c.expand(len(x))), 2.0), noise, 2)
    assert torch.equal(plain, before)  # the sampling before mirror guidance and the feature cache, to the bit

    def uncached(x, t, d, flip):  # mirror guidance as it ran before the cache: frames into every step
        f = fr.expand(len(x), -1, -1, -1, -1)
        f = torch.where(flip[:, None, None, None, None], f.flip(-1), f)
        return gen.dit(x, t, f, c.expand(len(x), -1), d, drop_c.expand(len(x)))

    noise4 = torch.randn((1, gen.dit.channels, 20), generator=torch.Generator().manual_seed(5 * 1_000_003))
    torch.testing.assert_close(SAMPLERS["ddim"](mirror_cfg(uncached, 2.0, 3.0), noise4, 4), z, rtol=0, atol=1e-5)
    assert torch.equal(gen.latents(frames, None, Settings(2.0, 4, "ddim", 5, mirror=3.0), 0), z)


def test_streamed_windows_equal_the_whole_clip_overlap_add(setup):
    import torch

    from foley.generate import OVERLAP, WINDOW, Generator, Settings, _ramp

    d = setup
    gen = Generator(str(d / "tiny.pt"))
    st = Settings(2.0, 2, "ddim", 5, steer=0.0)  # the DiT's own placement (steering: the test below)
    frames = torch.stack(list(gen.frames(d / "v.mp4", size=gen.detector().cfg.size)))  # (150, 3, S, S): two windows
    hop, k = gen.codec.cfg.hop, frames.shape[0]
    out, weight = np.zeros((2, k * hop)), np.zeros(k * hop)
    for i, a in enumerate(range(0, k - OVERLAP, WINDOW - OVERLAP)):  # the whole-clip overlap-add, by hand
        b = min(k, a + WINDOW)
        audio = gen.codec.decode(gen.latents(frames[a:b], None, st, i))[0].detach().numpy()
        ramp = _ramp(b - a, hop, fade_in=a > 0, fade_out=b < k)
        out[:, a * hop:b * hop] += audio[:, : (b - a) * hop] * ramp
        weight[a * hop:b * hop] += ramp
    blocks = list(gen.blocks(d / "v.mp4", settings=st))
    assert len(blocks) == 2 and blocks[0].shape[1] == (WINDOW - OVERLAP) * hop
    assert np.allclose(np.concatenate(blocks, axis=1), out / weight, atol=1e-5)


def test_each_window_is_steered_to_where_the_detector_hears_the_object(setup, tmp_path):
    """With steering, each frame's sound sits where the sounding detector places the object heard, or the share
    asked of the way there from where the DiT put it; a detector reading larger frames than the DiT gets them (the
    DiT's shrunk from them); a base-stage model is not steered unless asked."""
    import torch

    from foley.generate import WINDOW, Generator, Settings
    from foley.metrics import audio_position
    from foley.models.codec import codec_hash
    from foley.models.dit import load_dit, save_dit
    from foley.models.sounding import SoundingConfig, SoundingDetector, save_sounding

    d = setup
    torch.manual_seed(0)
    for size in (32, 64):
        save_sounding(tmp_path / f"d{size}.pt", SoundingDetector(SoundingConfig(size, (8, 16, 16), 16, 2)))
    run = lambda share, size=32: Generator(str(d / "tiny.pt"), sounding=str(tmp_path / f"d{size}.pt"))(  # noqa: E731
        d / "v.mp4", settings=Settings(2.0, 2, "ddim", 5, steer=share))
    k = WINDOW - 20  # the first window alone
    pan = lambda a: audio_position(a, SR, 25).pan[1:k - 1]  # noqa: E731
    for size in (32, 64):  # the DiT reads 32 px: from the video, or shrunk from the 64 px detector's frames
        plain, full = run(0.0, size), run(1.0, size)
        gen = Generator(str(d / "tiny.pt"), sounding=str(tmp_path / f"d{size}.pt"))
        frames = torch.stack(list(gen.frames(d / "v.mp4", size=size)))
        x = gen.detector().locate(frames[None, :WINDOW]).x[0].numpy()[1:k - 1]
        assert np.abs(pan(plain) - x).mean() > 0.1  # there was somewhere to go
        err = np.abs(pan(full) - x)  # a random detector jumps frame to frame: the 4 ms ramps show
        assert np.median(err) < 0.02 and np.quantile(err, 0.9) < 0.06
    plain, half = run(0.0), run(0.5)
    x = Generator(str(d / "tiny.pt"), sounding=str(tmp_path / "d32.pt")).detector().locate(
        torch.stack(list(gen.frames(d / "v.mp4", size=32)))[None, :WINDOW]).x[0].numpy()[1:k - 1]
    assert np.median(np.abs(pan(half) - (pan(plain) + x) / 2)) < 0.02
    default = Generator(str(d / "tiny.pt"), sounding=str(tmp_path / "d32.pt"))(
        d / "v.mp4", settings=Settings(2.0, 2, "ddim", 5))  # steer unset: an obj-stage model is steered fully
    assert np.array_equal(default, run(1.0))
    model, _ = load_dit(d / "tiny.pt")
    save_dit(tmp_path / "base.pt", model, codec_hash(gen.codec), stage="base")
    assert Generator(str(tmp_path / "base.pt")).default_steer == 0.0 and gen.default_steer > 0


def test_soft_limit_keeps_the_body_and_rounds_off_peaks():
    from foley.generate import KNEE, soft_limit

    x = np.linspace(-12, 12, 200001, dtype=np.float32)
    y = soft_limit(x)
    inside = np.abs(x) <= KNEE
    assert np.array_equal(y[inside], x[inside])  # untouched below the knee
    assert np.abs(y).max() <= 1.0 and np.all(np.diff(y) >= 0)  # never past full scale, monotonic
    assert np.abs(np.diff(y)).max() <= np.diff(x).max() * 1.0001  # continuous, slope <= 1 (1 at the knee)
    assert soft_limit(np.float32([0.95]))[0] > 0.94  # just over the knee: barely bent, not clipped flat


def test_an_overshooting_generation_is_limited_and_reported(setup, caplog, monkeypatch):
    import logging

    from foley.generate import Generator, Settings

    gen = Generator(str(setup / "tiny.pt"))
    st = Settings(2.0, 2, "ddim", 5, mirror=0.0)
    quiet = np.concatenate(list(gen.blocks(setup / "v.mp4", duration=2.0, settings=st)), axis=1)
    real = gen.codec.decode
    monkeypatch.setattr(gen.codec, "decode", lambda z: real(z) * (2.0 / np.abs(quiet).max()))  # peaks at 2
    with caplog.at_level(logging.WARNING, logger="foley.generate"):
        loud = np.concatenate(list(gen.blocks(setup / "v.mp4", duration=2.0, settings=st)), axis=1)
    assert np.abs(loud).max() <= 1.0 and "above full scale" in caplog.text
    scaled = quiet * (2.0 / np.abs(quiet).max())
    body = np.abs(scaled) <= 0.9
    assert body.mean() > 0.5 and np.allclose(loud[body], scaled[body], atol=1e-5)  # only the peaks were bent


def test_generated_frames_louder_than_audio_can_be_are_capped(setup, monkeypatch):
    from foley.generate import Generator, Settings
    from foley.models.codec import LOUDEST_RMS

    gen = Generator(str(setup / "tiny.pt"))
    st = Settings(2.0, 2, "ddim", 5, mirror=0.0, steer=0.0)  # the loudness the DiT asks for, not moved by steering
    cs, nb = gen.codec.cfg.spectral_channels, gen.codec.cfg.stereo_bands
    real = gen.latents

    def blown_up(*args):  # what strong guidance can produce: band energies e^8 too high
        z = real(*args).clone()
        z[:, cs:cs + nb] += 8.0 / gen.codec.latent_std[cs:cs + nb, None]
        return z

    def frame_rms():
        y = np.concatenate(list(gen.blocks(setup / "v.mp4", duration=2.0, settings=st)), axis=1)
        return np.sqrt((y[:, : y.shape[1] // 1920 * 1920] ** 2).reshape(2, -1, 1920).mean(axis=(0, 2)))

    monkeypatch.setattr(gen, "latents", blown_up)
    capped = frame_rms()
    monkeypatch.setattr(gen.codec, "cap_loudness", lambda z: z)
    uncapped = frame_rms()  # only the soft limiter left: samples pinned near full scale
    assert capped.max() <= 1.25 * LOUDEST_RMS and np.median(capped) > 0.5 * LOUDEST_RMS, capped
    assert np.median(uncapped) > 1.5 * LOUDEST_RMS, uncapped


def test_generate_on_a_missing_gpu_says_so_and_writes_nothing(setup, capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run(["generate", setup / "v.mp4", "--model", setup / "tiny.pt", "--device", "cuda",
                        "-o", tmp_path / "a.wav"], capsys)
    assert code == 1 and "no CUDA device here" in err and not (tmp_path / "a.wav").exists()
