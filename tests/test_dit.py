"""The DiT: conditioning paths, learning a video-dependent latent, checkpoints tied to their codec, `foley generate`."""
import numpy as np
import pytest
import torch

from foley.diffusion import SAMPLERS, cfg, v_loss
from foley.models.dit import DiT, DiTConfig, PRESETS, load_dit, save_dit

TINY = DiTConfig(width=32, depth=2, heads=2, cond_dim=8, frame_size=32)


def squares(b, t, gen):
    """(B, T, 3, 32, 32) frames of a white square moving at random, and its x in [-1, 1] per frame (B, T)."""
    x = torch.cumsum(torch.randn(b, t, generator=gen) * 0.25, dim=1).clamp(-1, 1)
    frames = torch.zeros(b, t, 3, 32, 32, dtype=torch.uint8)
    cols = ((x + 1) / 2 * 24).round().long()
    for i in range(b):
        for k in range(t):
            frames[i, k, :, 12:20, cols[i, k]:cols[i, k] + 8] = 255
    return frames, x


def test_dropping_removes_the_dependence_on_video_and_embedding():
    torch.manual_seed(0)
    m = DiT(TINY, 4)
    for p in m.parameters():  # leave the zero-initialised state, so every path reaches the output
        torch.nn.init.normal_(p, std=0.05)
    x, t = torch.randn(2, 4, 6), torch.rand(2)
    gen = torch.Generator().manual_seed(0)
    f1, _ = squares(2, 6, gen)
    f2, _ = squares(2, 6, gen)
    c1, c2 = torch.randn(2, 8), torch.randn(2, 8)
    yes, no = torch.ones(2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool)
    assert not torch.allclose(m(x, t, f1, c1, no), m(x, t, f2, c1, no))
    assert not torch.allclose(m(x, t, f1, c1, no), m(x, t, f1, c2, no))
    assert torch.allclose(m(x, t, f1, c1, yes), m(x, t, f2, c2, yes))
    assert torch.allclose(m(x, t, f1, c1, no, yes), m(x, t, f1, c2, no, yes))
    assert torch.allclose(m(x, t, f1, None, no), m(x, t, f1, c2, no, yes))


@pytest.mark.parametrize("mode", ["add", "concat", "cross"])
def test_every_video_mode_and_preset_builds(mode):
    m = DiT(DiTConfig(width=32, depth=1, heads=2, cond_dim=8, video_mode=mode), 4)
    out = m(torch.randn(1, 4, 5), torch.rand(1), torch.zeros(1, 5, 3, 32, 32, dtype=torch.uint8), torch.randn(1, 8),
            torch.zeros(1, dtype=torch.bool))
    assert out.shape == (1, 4, 5)
    assert set(PRESETS) >= {"tiny", "small", "paper"} and PRESETS["paper"].depth == 24 and PRESETS["paper"].width == 1536
    # the frames' features computed beforehand (a sampler's cache) give the same output in every mode
    torch.manual_seed(0)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x, t, c, no = torch.randn(2, 4, 5), torch.rand(2), torch.randn(2, 8), torch.zeros(2, dtype=torch.bool)
    frames = torch.randint(0, 255, (2, 5, 3, 32, 32), dtype=torch.uint8)
    torch.testing.assert_close(m(x, t, None, c, no, video=m.video(frames)), m(x, t, frames, c, no))
    with pytest.raises(ValueError, match="6 frames"):  # features of more frames differ at the last one
        m(x, t, None, c, no, video=m.video(torch.cat([frames, frames[:, :1]], 1)))


def test_the_dit_learns_a_latent_that_follows_the_video():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    m = DiT(TINY, 2)
    opt = torch.optim.AdamW(m.parameters(), lr=2e-3)
    no = torch.zeros(16, dtype=torch.bool)
    losses = []
    for step in range(250):
        frames, x = squares(16, 12, gen)
        x0 = torch.stack([x, -x], dim=1)  # (B, 2, T): the latent is the square's position
        loss = v_loss(lambda xt, t: m(xt, t, frames, None, no), x0, torch.rand(16, generator=gen), gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
    m.eval()
    frames, x = squares(32, 12, gen)
    fn = cfg(lambda xt, t, drop: m(xt, t, torch.cat([frames] * (len(xt) // 32)), None, drop), 1.0)
    out = SAMPLERS["ddim"](fn, torch.randn(32, 2, 12, generator=gen), 20)
    corr = np.corrcoef(out[:, 0].flatten().numpy(), x.flatten().numpy())[0, 1]
    chance = np.corrcoef(out[:, 0].flatten().numpy(), x.roll(1, 0).flatten().numpy())[0, 1]  # other clips' videos
    assert corr > 0.8 and abs(chance) < 0.4


def test_a_checkpoint_refuses_another_codec(tmp_path):
    from foley.checkpoint import CheckpointError
    from foley.models.codec import load_codec

    codec = load_codec()
    m = DiT(TINY, codec.cfg.channels)
    save_dit(tmp_path / "d.pt", m, codec_hash="0" * 64)
    with pytest.raises(CheckpointError, match="another codec"):
        load_dit(tmp_path / "d.pt", codec)
    assert load_dit(tmp_path / "d.pt")[0].channels == codec.cfg.channels


def test_half_precision_shipping_keeps_the_weights(tmp_path):
    m = DiT(TINY, 4)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.05)
    save_dit(tmp_path / "full.pt", m, "a" * 64)
    save_dit(tmp_path / "half.pt", m, "a" * 64, half=True)
    back, ckpt = load_dit(tmp_path / "half.pt")
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * (tmp_path / "full.pt").stat().st_size
    assert next(back.parameters()).dtype == torch.float32 and ckpt["codec_hash"] == "a" * 64
    for a, b in zip(m.parameters(), back.parameters()):
        assert torch.allclose(a, b, atol=1e-3)


def test_a_users_videos_become_training_clips(tmp_path):
    from foley import io
    from foley.data.latents import video_clips

    frames = [np.full((48, 64, 3), min(2 * k, 255), np.uint8) for k in range(225)]  # 9 s at 25 fps
    audio = 0.1 * np.random.default_rng(0).standard_normal((2, 9 * 48000)).astype(np.float32)
    io.write_video(tmp_path / "mine.mp4", iter(frames), 25, audio=audio, sr=48000)
    (tmp_path / "list.csv").write_text("video,caption\nmine.mp4,a grey wall\n")
    clips = list(video_clips(tmp_path / "list.csv", 4.0, 25))
    assert [c.key for c in clips] == ["mine-0000", "mine-0001"]  # two whole 4 s clips; the last second dropped
    assert clips[1].frames.shape == (100, 96, 96, 3) and clips[1].mixes["objaware"].shape == (2, 4 * 48000)
    assert clips[0].caption == "a grey wall" and abs(int(clips[1].frames[0].mean()) - 200) <= 2
    io.write_video(tmp_path / "silent.mp4", iter(frames[:30]), 25)
    with pytest.raises(Exception, match="no audio"):
        list(video_clips(tmp_path, 4.0, 25))


def test_a_world_cache_built_by_several_processes_is_the_same_cache(tmp_path):
    from foley.data.latents import build_cache, world_clips
    from foley.models.codec import load_codec

    codec = load_codec().eval()
    one = build_cache(world_clips(6, "val", 3, seconds=1.0), codec, tmp_path / "one.pt", batch=2)
    two = build_cache(world_clips(6, "val", 3, seconds=1.0), codec, tmp_path / "two.pt", batch=2, workers=2)
    assert one.keys == two.keys
    assert len(set(one.keys)) == 6 and one.events == two.events and one.captions == two.captions
    for m in one.latents:
        assert torch.equal(one.latents[m], two.latents[m]) and one.latents[m].abs().sum() > 0
    assert torch.equal(one.frames, two.frames) and torch.equal(one.mel, two.mel)
    assert np.array_equal(np.array(one.sounding_x), np.array(two.sounding_x), equal_nan=True)
    # the clips are the world's clips in index order: clip 4 alone is the cache's fifth (encoded alone: the same
    # latents up to float rounding, as a batch of one)
    alone = build_cache(world_clips(6, "val", 3, seconds=1.0).part(4, 5), codec, tmp_path / "alone.pt")
    assert alone.keys == [one.keys[4]] and torch.equal(alone.frames[0], one.frames[4])
    assert torch.allclose(alone.latents["objaware"][0].float(), one.latents["objaware"][4].float(), atol=2e-2)


def test_a_detail_branch_grown_onto_a_model_starts_where_it_was_and_sees_finer_pictures():
    from dataclasses import replace

    torch.manual_seed(0)
    small = DiT(TINY, 4)
    for p in small.parameters():
        torch.nn.init.normal_(p, std=0.05)
    grown = DiT(replace(TINY, detail=2), 4)
    missing, unexpected = grown.load_state_dict(small.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("video.fine") for k in missing)
    assert grown.cfg.read_size == 64
    gen = torch.Generator().manual_seed(1)
    f32, _ = squares(2, 5, gen)
    f64 = f32.repeat_interleave(2, -1).repeat_interleave(2, -2)  # the same picture, each pixel 2 x 2
    x, t, c, no = torch.randn(2, 4, 5), torch.rand(2), torch.randn(2, 8), torch.zeros(2, dtype=torch.bool)
    torch.testing.assert_close(grown(x, t, f64, c, no), small(x, t, f32, c, no))
    # two checkerboards finer than 2 x 2 pixels average to the same picture: told apart once the branch has weights
    one, other = f64.clone(), f64.clone()
    for board, phase in ((one, 0), (other, 1)):
        board[..., :32, :32] = 0
        board[..., phase:32:2, 0:32:2] = 255
        board[..., 1 - phase:32:2, 1:32:2] = 255
    torch.testing.assert_close(grown(x, t, one, c, no), grown(x, t, other, c, no))
    torch.nn.init.normal_(grown.video.fine_proj.weight, std=0.05)
    assert not torch.allclose(grown(x, t, one, c, no), grown(x, t, other, c, no), atol=1e-4)
    with pytest.raises(ValueError, match="64x64"):
        grown(x, t, f32, c, no)


def test_a_channel_weight_scales_only_its_channels_squared_error():
    x0, t = torch.randn(3, 4, 6), torch.rand(3)
    fn = lambda x, tt: torch.zeros_like(x)  # noqa: E731
    plain = v_loss(fn, x0, t, torch.Generator().manual_seed(0))
    assert v_loss(fn, x0, t, torch.Generator().manual_seed(0), torch.ones(4)) == plain
    only = [v_loss(fn, x0, t, torch.Generator().manual_seed(0), torch.eye(4)[c]) / 4 for c in range(4)]
    torch.testing.assert_close(sum(only), plain)  # the channels' shares add up to the whole
    w = torch.tensor([1.0, 4.0, 1.0, 1.0])  # normalised to mean 1: the loss keeps its scale
    torch.testing.assert_close(v_loss(fn, x0, t, torch.Generator().manual_seed(0), w), (plain + 3 * only[1]) / 1.75)


def test_a_cache_of_larger_frames_serves_a_smaller_model():
    from foley.data.latents import Cache
    from foley.train.dit import resized

    small = torch.randint(0, 256, (3, 4, 3, 32, 32), dtype=torch.uint8)
    big = small.repeat_interleave(2, -1).repeat_interleave(2, -2)
    cache = Cache({"objaware": torch.zeros(3, 5, 4)}, big, torch.zeros(3, 2, 2), ["a", "b", "c"], [""] * 3,
                  [[]] * 3, [[]] * 3, [[]] * 3, "h")
    assert torch.equal(resized(cache, 32).frames, small)
    assert resized(cache, 64) is cache and resized(cache, 32).keys == cache.keys


def test_the_pan_weight_falls_on_the_latent_channels_that_carry_pan():
    from foley.train.dit import DitTask, DitTaskConfig

    task = DitTask(DitTaskConfig(pan_weight=4.0))
    noise = torch.randn(48000, generator=torch.Generator().manual_seed(0))
    left, right = torch.stack([noise, 0.2 * noise])[None], torch.stack([0.2 * noise, noise])[None]
    with torch.no_grad():
        moved = (task.codec.encode(left) - task.codec.encode(right)).abs().mean(-1)[0]  # (C,) per channel
    weighted = set(torch.nonzero(task.weight == 4.0).flatten().tolist())
    assert len(weighted) == task.codec.cfg.stereo_bands and set(task.weight.unique().tolist()) == {1.0, 4.0}
    assert set(moved.topk(len(weighted)).indices.tolist()) == weighted  # mirroring the image moves exactly these


def test_a_warm_start_may_grow_a_detail_branch_and_refuses_another_preset(tmp_path):
    from foley.train.dit import DitTask, DitTaskConfig, TrainError

    task = DitTask(DitTaskConfig())
    plain = DiT(task.cfg, task.codec.cfg.channels)
    save_dit(tmp_path / "plain.pt", plain, codec_hash="0" * 64)
    grown = DitTask(DitTaskConfig(detail=2, init=str(tmp_path / "plain.pt"))).build(torch.device("cpu"))
    assert grown.cfg.read_size == 64 and not grown.video.fine_proj.weight.any()
    kept = grown.state_dict()
    assert all(torch.equal(kept[k], v) for k, v in plain.state_dict().items())  # every weight it had, as it was
    save_dit(tmp_path / "other.pt", DiT(TINY, task.codec.cfg.channels), codec_hash="0" * 64)
    with pytest.raises(TrainError, match="does not fit"):
        DitTask(DitTaskConfig(init=str(tmp_path / "other.pt"))).build(torch.device("cpu"))
    save_dit(tmp_path / "grown.pt", grown, codec_hash="0" * 64)  # a branch can be grown, not dropped
    with pytest.raises(TrainError, match="--detail"):
        DitTask(DitTaskConfig(init=str(tmp_path / "grown.pt"))).build(torch.device("cpu"))
    with pytest.raises(TrainError, match="detail is 1"):
        DitTask(DitTaskConfig(detail=2), task.cfg)


def test_cached_frames_are_true_box_averages_of_the_source():
    from foley.data.latents import source_size

    for size in (32, 48, 64, 128, 224):
        side = source_size(size)
        assert side >= 96 and side % size == 0 and side - size < 96
    assert source_size(32) == 96  # the caches made before keep their frames


def test_the_cache_records_where_the_dominant_sound_comes_from():
    """`sounding_x`: per frame, the x of the object whose sound dominates (as `dominant_bas` judges it), NaN where
    none does; here from the world's renders, against the stems' own frame energies."""
    from dataclasses import replace

    from foley.data.latents import world_clips
    from foley.metrics import frame_energies
    from foley.world import PRESETS as WORLD, render, sample_scene, synthesize
    from foley.world.audio import distance_scaled

    clips = world_clips(12, "val", 3, seconds=2.0)
    cfg = replace(WORLD["tiny"], seconds=2.0, fps=25, width=96, height=96)
    judged = decided = 0
    for i, clip in enumerate(clips):
        scene = sample_scene(cfg, 3, "val", i)
        r = render(scene)
        snd = synthesize(scene, r)
        k = len(clip.sounding_x)
        e = np.stack([frame_energies(np.stack([distance_scaled(s, t, cfg.sr)] * 2), cfg.sr, 25, k)[0]
                      for s, t in zip(snd.stems, r.tracks)] + [frame_energies(np.stack([snd.ambience] * 2), cfg.sr, 25, k)[0]])
        loud = e[:-1].argmax(0)
        margin = e[:-1].max(0) / (e.sum(0) - e[:-1].max(0) + 1e-30)
        x = np.stack([t.x for t in r.tracks])[loud, np.arange(k)]
        sure = np.abs(10 * np.log10(margin + 1e-30) - 10) > 0.5  # away from the 10 dB margin (frame pairs round)
        has = ~np.isnan(clip.sounding_x)
        assert np.array_equal(has[sure], (margin > 10)[sure])
        assert np.allclose(clip.sounding_x[has & sure], x[has & sure])
        judged, decided = judged + has.sum(), decided + k
    assert 0.2 < judged / decided < 0.95  # some frames have one dominant object, some none


def test_sounding_targets_are_the_metrics_position_bins():
    from foley.metrics import position_bin
    from foley.models.video import sounding_targets

    x = np.array([-1.3, -0.4, -0.05, 0.0, 0.03, 0.06, 0.9, 1.4, np.nan], np.float32)
    t = sounding_targets(torch.from_numpy(x)).numpy()
    assert t[-1] == -1 and np.array_equal(t[:-1], position_bin(x[:-1]) + 1)


def two_squares(b, t, gen):
    """Two squares that stay put on either side, one of them hopping up and down (the one that sounds): frames
    (B, T, 3, 32, 32) and the class of the hopping one's position bin (0 left, 2 right) per frame (B, T)."""
    frames = torch.zeros(b, t, 3, 32, 32, dtype=torch.uint8)
    side = torch.randint(0, 2, (b,), generator=gen)  # 0: the left square hops
    for i in range(b):
        for k in range(t):
            for s, col in ((0, 2), (1, 22)):
                row = 12 + (4 if s == side[i] and k % 2 else 0)
                frames[i, k, :, row:row + 8, col:col + 8] = 255
    return frames, (2 * side)[:, None].expand(b, t)


def test_the_sounding_head_learns_which_of_two_objects_sounds():
    """The DiT's frame encoder with its sounding head, trained on the head's loss alone, tells the hopping square from
    the still one (whose bins differ only by which one moves), far above the one-bin baseline of 0.5."""
    from foley.train.dit import sounding_loss

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    m = DiT(DiTConfig(width=32, depth=1, heads=2, cond_dim=8, frame_size=32, sounding=True), 2)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    for _ in range(60):
        frames, target = two_squares(8, 8, gen)
        loss = sounding_loss(m.sounding_head(m.video(frames)), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    frames, target = two_squares(32, 8, gen)
    with torch.no_grad():
        acc = (m.sounding_head(m.video(frames)).argmax(-1) == target).float().mean()
    assert acc > 0.9
    masked = target.clone()
    masked[:, ::2] = -1  # frames where none dominates do not count
    logits = torch.randn(32, 8, 3, generator=gen)
    kept = torch.nn.functional.cross_entropy(logits[:, 1::2].flatten(0, 1), target[:, 1::2].flatten())
    assert torch.isclose(sounding_loss(logits, masked), kept)
    assert sounding_loss(torch.zeros(2, 8, 3), torch.full((2, 8), -1)) == 0


def test_a_sounding_run_needs_the_worlds_ground_truth(tmp_path):
    from foley.train.dit import DitTask, DitTaskConfig, TrainError

    with pytest.raises(TrainError, match="ground truth"):
        DitTaskConfig(sounding_weight=1.0, videos=str(tmp_path))
    task = DitTask(DitTaskConfig(sounding_weight=0.5))
    assert task.cfg.sounding and "val_sounding_acc" in task.csv_fields
    grown = DitTask(DitTaskConfig(sounding_weight=0.5, init="obj")).build(torch.device("cpu"))  # a head grown on obj
    from foley.models.dit import checkpoint_path

    shipped, _ = load_dit(checkpoint_path("obj"))
    assert all(torch.equal(grown.state_dict()[k], v) for k, v in shipped.state_dict().items())
    with pytest.raises(TrainError, match="sounding head"):
        DitTask(DitTaskConfig(), task.cfg)
    save_dit(tmp_path / "snd.pt", grown, codec_hash="0" * 64)  # the head is for training: a plain run may leave it
    plain = DitTask(DitTaskConfig(init=str(tmp_path / "snd.pt"))).build(torch.device("cpu"))
    assert not hasattr(plain, "sounding_head")
    assert all(torch.equal(v, grown.state_dict()[k]) for k, v in plain.state_dict().items())


def test_a_sounding_run_adds_the_heads_loss_and_refuses_caches_without_the_truth(tmp_path):
    import csv
    from dataclasses import replace

    from foley.data.latents import build_cache, subset, world_clips
    from foley.train.dit import DitTask, DitTaskConfig, TrainError
    from foley.train.loop import LoopConfig, train

    task = DitTask(DitTaskConfig(stage="obj", sounding_weight=0.5, val_samples=2, val_steps=2))
    cache = build_cache(world_clips(4, "val", 3, seconds=1.0), task.codec, tmp_path / "c.pt", batch=2)
    assert [len(s) for s in cache.sounding_x] == [cache.latents["objaware"].shape[-1]] * 4  # one per latent frame
    task.train_cache, task.val_cache = cache, subset(cache, [0, 1])
    train(task, LoopConfig(steps=2, batch=2, log_every=1, val_every=2, save_every=2), tmp_path / "run")
    with open(tmp_path / "run" / "log.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    v, s, total = (float(last[k]) for k in ("v", "sounding", "total"))
    from foley.train.dit import export_run

    run = torch.load(tmp_path / "run" / "last.pt", weights_only=True)  # a run cut short, as it ships
    export_run(tmp_path / "run" / "last.pt", tmp_path / "again.pt")
    export_run(tmp_path / "run" / "last.pt", tmp_path / "full.pt", half=False)
    final, ckpt = load_dit(tmp_path / "run" / "dit.pt")
    again, meta = load_dit(tmp_path / "again.pt")
    assert meta["stage"] == "obj" and meta["step"] == 2 and meta["codec_hash"] == ckpt["codec_hash"]
    assert meta["train_config"]["task"] == ckpt["train_config"]["task"]
    for k, w in final.state_dict().items():  # the final EMA, to float16 precision
        assert torch.allclose(again.state_dict()[k], w, atol=1e-3 * (1 + w.abs().max()))
    full = load_dit(tmp_path / "full.pt")[0].state_dict()
    assert all(torch.equal(full[k], v) for k, v in run["ema"].items())  # the EMA, not the raw weights
    assert any(not torch.equal(full[k], v) for k, v in run["model"].items())
    assert s > 0 and abs(total - (v + 0.5 * s)) < 1e-4
    assert 0 <= float(last["val_sounding_acc"]) <= 1 and 1 / 3 <= float(last["val_sounding_base"]) <= 1
    for old in (replace(cache, sounding_x=[]), replace(cache, sounding_x=[[] for _ in range(4)])):  # before / videos
        again = DitTask(DitTaskConfig(sounding_weight=0.5))
        again.train_cache = again.val_cache = old
        with pytest.raises(TrainError, match="no sounding ground truth"):
            again.prepare(torch.device("cpu"), 0)
