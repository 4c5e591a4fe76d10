"""SoundReactor: causality, streaming = offline, the sliding window, the head's losses and samplers, learning."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from foley.models.head import DiffusionHead, karras
from foley.models.reactor import Objective, ReactorConfig, ReactorNet

SMALL = ReactorConfig(width=32, depth=2, heads=2, frame_size=16, video_width=32, video_depth=1, window=12,
                      head_width=32, head_depth=2)


def live(cfg=SMALL, channels=6, seed=0):
    """A random network whose every path reaches the output (the zero-initialised layers filled)."""
    torch.manual_seed(seed)
    m = ReactorNet(cfg, channels)
    for p in m.parameters():
        if p.dim() and (p == 0).all():
            torch.nn.init.normal_(p, std=0.1)
    return m.eval()


def clips(b, t, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, 3, size, size), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("cfg_scale,nfe,mode,mirror", [(1.0, 1, "consistency", 0.0), (2.5, 3, "consistency", 0.0),
                                                      (2.0, 4, "diffusion", 0.0), (2.0, 2, "consistency", 1.5),
                                                      (1.0, 1, "consistency", 2.0)])
def test_streaming_equals_an_offline_teacher_forced_run(cfg_scale, nfe, mode, mirror):
    """Frame-by-frame generation (KV cache, sliding window shorter than the clip) gives exactly the latents the
    whole-sequence causal forward gives on the same latents with the same noise; with mirror guidance, its third
    stream is the forward on the left-right mirrored frames."""
    m = live()
    frames = clips(2, 20)  # 40 tokens against a 12-token window: the cache slides
    with torch.no_grad():
        lat = m.generate(frames, nfe, mode, cfg_scale, seed=5, mirror=mirror)
        z = m(frames, lat)
        z_null = m(frames, lat, drop=torch.ones(2, dtype=torch.bool))
        z_mirror = m(frames.flip(-1), lat)
        g = torch.Generator().manual_seed(5)
        out = []
        for k in range(20):
            noise = torch.randn((2, 6), generator=g)
            out.append(m.head.sample(z[:, k], noise, nfe, mode, cfg_scale, z_null[:, k], g, z_mirror[:, k], mirror))
    again = m.denormalize(torch.stack(out, dim=1)).transpose(1, 2)
    assert torch.allclose(again, lat, atol=1e-5)
    assert lat.std() > 0.1  # not a degenerate (all-equal) output


def test_no_output_depends_on_a_future_frame_or_latent():
    m = live()
    frames, other = clips(1, 10), clips(1, 10, seed=1)
    k = 6
    changed = frames.clone()
    changed[:, k:] = other[:, k:]
    a = m.generate(frames, 2, "consistency", 2.0, seed=0)
    b = m.generate(changed, 2, "consistency", 2.0, seed=0)
    assert torch.equal(a[..., :k], b[..., :k])
    assert (a[..., k] - b[..., k]).abs().max() > 1e-3  # frame k itself does change frame k's audio

    lat = torch.randn(1, 6, 10, requires_grad=True)
    f = frames.float().requires_grad_()  # the tokenizer's arithmetic works on float frames too: gradients reach them
    z = m(f, lat)
    z[:, k].sum().backward()
    assert lat.grad[..., k:].abs().max() == 0 and lat.grad[..., :k].abs().max() > 0
    assert f.grad[:, k + 1:].abs().max() == 0 and f.grad[:, k].abs().max() > 0


def test_the_kv_cache_never_holds_more_than_the_window():
    m = live()
    st = m.start(1, 2.0)
    for f in clips(1, 40)[0]:
        m.step(st, f[None], 1)
    assert all(len(c) <= SMALL.window and c.keys().shape[0] == 2 for c in st.caches)
    assert st.pos == 80


def test_ntk_scaling_changes_long_range_rotation_only():
    from foley.models.layers import rope_base, rope_tables

    base = rope_base(10000.0, 16, 4.0)
    assert base > 10000.0 * 4 ** 0.99
    c1, _ = rope_tables(torch.arange(100), 16, 10000.0)
    c4, _ = rope_tables(torch.arange(100), 16, base)
    assert torch.allclose(c1[:, 0], c4[:, 0])  # the fastest frequency (local order) is kept
    assert not torch.allclose(c1[:, -1], c4[:, -1])  # the slowest is stretched


def test_edm_denoiser_is_the_identity_at_zero_noise_and_samplers_use_their_budget():
    torch.manual_seed(0)
    h = DiffusionHead(4, 8, 16, 1)
    for p in h.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x, z = torch.randn(5, 4), torch.randn(5, 8)
    assert torch.allclose(h.denoise(x, torch.zeros(5), z), x)
    calls = []
    real = h._body  # the network F's body (its adaLN precomputed), whatever preconditioning surrounds it
    h._body = lambda *a: calls.append(1) or real(*a)
    for nfe in (1, 4):
        for mode in ("diffusion", "consistency"):
            calls.clear()
            h.sample(z, torch.randn(5, 4), nfe, mode)
            assert len(calls) == nfe
    assert karras(4, 0.002, 80.0)[0] == pytest.approx(80.0) and karras(4, 0.002, 80.0)[-1] == pytest.approx(0.002)


def _toy(n, t, gen):
    """Frames whose brightness b (one per frame) sets every latent channel: x_k = 2 b_k - 1 (+ noise)."""
    b = torch.rand(n, t, generator=gen)
    frames = (b[:, :, None, None, None] * 255).round().to(torch.uint8).expand(n, t, 3, 16, 16).contiguous()
    lat = (2 * b[:, None, :] - 1).expand(n, 6, t) + 0.05 * torch.randn(n, 6, t, generator=gen)
    return frames, lat, b


def test_the_reactor_learns_a_video_dependent_latent_and_ect_keeps_it_in_one_step():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    m = ReactorNet(replace(SMALL, window=32), 6)
    frames, lat, _ = _toy(64, 8, gen)
    m.set_stats(lat)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    losses = []
    for step in range(250):
        i = torch.randint(0, 64, (16,), generator=gen)
        drop = torch.rand(16, generator=gen) < 0.1
        loss = m(frames[i], lat[i], drop, objective=Objective(gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-25:]) < 0.5 * np.mean(losses[:25])
    f, _, b = _toy(8, 8, torch.Generator().manual_seed(1))
    m.eval()

    def agreement(mode, nfe):
        x = m.generate(f, nfe, mode, 1.0, seed=0).mean(1)  # (B, T)
        return float(torch.corrcoef(torch.stack([x.flatten(), b.flatten()]))[0, 1])

    assert agreement("diffusion", 8) > 0.9
    for step in range(150):  # ECT from the pre-trained network
        i = torch.randint(0, 64, (16,), generator=gen)
        loss = m.train()(frames[i], lat[i], objective=Objective(gen, ect_stage=min(3, step // 40)))
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    assert agreement("consistency", 1) > 0.9
    shuffled = float(torch.corrcoef(torch.stack([m.generate(f, 1, "consistency", 1.0).mean(1).flatten(),
                                                 b[torch.randperm(8)].flatten()]))[0, 1])
    assert abs(shuffled) < 0.5  # the baseline: the same audio against another clip's pictures


def test_pretraining_then_ect_on_the_shared_loop(tmp_path):
    """Pre-train on a cache of world clips, export, tune with ECT from the export (dropout on, stages advancing),
    resume; checkpoints carry the codec's hash and the stage."""
    from foley.data.latents import build_cache, world_clips
    from foley.models.codec import codec_hash, load_codec
    from foley.models.head import ect_stage
    from foley.models.reactor import load_reactor
    from foley.train.loop import LoopConfig, train
    from foley.train.reactor import ReactorTask, ReactorTaskConfig, run_reactor

    codec = load_codec()
    for split, n in (("train", 3), ("val", 1)):
        build_cache(world_clips(n, split, 0, seconds=1.0, fps=25), codec, tmp_path / f"cache-{split}-{n}.pt")
    cfg = replace(SMALL, frame_size=32)
    lc = LoopConfig(steps=4, batch=2, lr=1e-3, warmup=1, val_every=4, save_every=2)
    tc = ReactorTaskConfig(clips=3, val_clips=1, crop=8, cache_dir=str(tmp_path), val_samples=1)
    pre = train(ReactorTask(tc, cfg), lc, tmp_path / "pre")
    net, ck = load_reactor(pre, codec)
    assert ck["stage"] == "pretrain" and ck["codec_hash"] == codec_hash(codec)
    assert net.std.min() > 0 and not torch.allclose(net.std, torch.ones_like(net.std))  # normalisation from the data
    rows = (tmp_path / "pre" / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,seconds,lr,total,val_loss") and rows[-1].split(",")[0] == "4"

    ect = ReactorTaskConfig(stage="ect", init=str(pre), clips=3, val_clips=1, crop=8, cache_dir=str(tmp_path),
                            val_samples=1)
    out = run_reactor(replace(lc, steps=2), ect, tmp_path / "ect")
    tuned, ck = load_reactor(out, codec)
    assert ck["stage"] == "ect" and tuned.cfg.head_dropout == 0.2 and tuned.cfg.width == cfg.width
    assert [ect_stage(s, 8, 4) for s in range(8)] == [0, 0, 1, 1, 2, 2, 3, 3]
    run_reactor(replace(lc, steps=3), ect, tmp_path / "ect", resume=True)
    assert (tmp_path / "ect" / "log.csv").read_text().splitlines()[-1].split(",")[0] == "3"
    with pytest.raises(Exception, match="--init"):
        ReactorTaskConfig(stage="ect")


def test_the_paper_size_preset_is_buildable():
    from foley.models.reactor import PRESETS

    with torch.device("meta"):
        m = ReactorNet(PRESETS["paper"], 64)
    n = sum(p.numel() for p in m.parameters())
    assert 250e6 < n < 500e6 and m.cfg.frame_size == 224
    tiny = sum(p.numel() for p in ReactorNet(PRESETS["tiny"], 120).parameters())
    assert 4e6 < tiny < 8e6


def test_dinov2_video_tokens_stream_causally_and_train_from_local_weights(tmp_path):
    """The reactor on a frozen DINOv2 (a tiny random one saved as a release file): streaming = offline, and
    `foley train reactor --dinov2 FILE` builds on it, leaving the backbone as loaded."""
    from foley.data.latents import build_cache, world_clips
    from foley.models.codec import load_codec
    from foley.models.ext_dinov2 import PRESETS as DINO, DinoV2
    from foley.models.reactor import load_reactor
    from foley.train.loop import LoopConfig, train
    from foley.train.reactor import ReactorTask, ReactorTaskConfig

    cfg = replace(SMALL, video_backbone="dinov2", dino_preset="tiny", frame_size=70)
    m = live(cfg)
    frames = clips(1, 8, size=70)
    with torch.no_grad():
        lat = m.generate(frames, 1, "consistency", 1.0, seed=2)
        z = m(frames, lat)
        g = torch.Generator().manual_seed(2)
        again = torch.stack([m.head.sample(z[:, k], torch.randn((1, 6), generator=g), 1) for k in range(8)], dim=-1)
    assert torch.allclose(m.denormalize(again.transpose(1, 2)).transpose(1, 2), lat, atol=1e-5)

    torch.manual_seed(3)
    dino = DinoV2(DINO["tiny"])
    torch.save(dino.state_dict(), tmp_path / "dino.pth")
    codec = load_codec()
    for split, n in (("train", 2), ("val", 1)):
        build_cache(world_clips(n, split, 0, seconds=1.0), codec, tmp_path / f"cache-{split}-{n}-224px.pt", size=224)
    tc = ReactorTaskConfig(clips=2, val_clips=1, crop=6, cache_dir=str(tmp_path), val_samples=1,
                           dinov2=str(tmp_path / "dino.pth"), dino_preset="tiny")
    out = train(ReactorTask(tc, replace(SMALL, frame_size=32)), LoopConfig(steps=2, batch=2, warmup=1, val_every=2),
                tmp_path / "run")
    net, _ = load_reactor(out)
    assert net.cfg.video_backbone == "dinov2" and net.cfg.dino_preset == "tiny" and net.cfg.frame_size == 224
    for k, v in dino.state_dict().items():
        assert torch.equal(net.video.backbone.state_dict()[k], v)  # frozen: as loaded, after training


def test_sampling_equals_evaluating_the_preconditioned_denoiser_and_follows_new_weights():
    """`sample` shares the condition's and the noise levels' features between evaluations (and frames): the
    result is what `denoise` at each sigma gives, with and without CFG, and a weight update is seen at once."""
    from foley.models.head import CONSISTENCY_SIGMAS

    torch.manual_seed(0)
    h = DiffusionHead(6, 8, 16, 2)
    for p in h.parameters():
        torch.nn.init.normal_(p, std=0.2)
    z, zn, noise = torch.randn(3, 8), torch.randn(3, 8), torch.randn(3, 6)

    def by_hand(cfg):
        g = torch.Generator().manual_seed(1)
        x = None
        for i, s in enumerate(CONSISTENCY_SIGMAS[4]):
            xin = noise * s if i == 0 else x + s * torch.randn(noise.shape, generator=g)
            sig = torch.full((3,), s)
            c = h.denoise(xin, sig, z)
            x = c if cfg == 1.0 else h.denoise(xin, sig, zn) + cfg * (c - h.denoise(xin, sig, zn))
        return x

    with torch.no_grad():
        for cfg in (1.0, 3.0):
            got = h.sample(z, noise, 4, "consistency", cfg, zn, torch.Generator().manual_seed(1))
            assert torch.allclose(got, by_hand(cfg), atol=1e-5)
        before = h.sample(z, noise, 4, "consistency", 3.0, zn, torch.Generator().manual_seed(1))
        h.t_in[0].weight.mul_(1.5)  # an in-place update, as an optimiser step makes
        after = h.sample(z, noise, 4, "consistency", 3.0, zn, torch.Generator().manual_seed(1))
        assert not torch.allclose(before, after) and torch.allclose(after, by_hand(3.0), atol=1e-5)


def test_the_kv_cache_keeps_exactly_the_visible_keys_of_a_growing_stream():
    """Against a plain concatenation: 1 or 2 tokens per step, well past the buffer's capacity (it compacts)."""
    from foley.models.layers import KVCache

    cache, ks, ps, pos, window = KVCache(), [], [], 0, 7
    g = torch.Generator().manual_seed(0)
    for step in range(60):
        n = 1 + step % 2
        k = torch.randn(2, 3, n, 4, generator=g)
        p = torch.arange(pos, pos + n)
        ks.append(k)
        ps.append(p)
        keys, values, kpos = cache.append(k, -k, p, window)
        all_k, all_p = torch.cat(ks, 2), torch.cat(ps)
        seen = all_p > p[0] - window  # every key the first new token may still see (the mask trims the rest)
        assert torch.equal(kpos, all_p[-len(kpos):]) and torch.equal(keys, all_k[:, :, -len(kpos):])
        assert torch.equal(values, -keys) and int(seen[-len(kpos):].sum()) == int(seen.sum())  # none missing
        assert len(cache) == int((all_p > p[-1] - window).sum())  # kept: what the next token can see
        pos += n


def test_mirror_guidance_in_the_head_extrapolates_away_from_the_mirrored_condition():
    """At one network evaluation from pure noise, D = D(z_null) + cfg (D(z) - D(z_null)) + m (D(z) - D(z_mirror)),
    each term the plain preconditioned denoiser; m = 0 is exactly the old two-row sampler."""
    torch.manual_seed(0)
    h = DiffusionHead(4, 8, 16, 1)
    for p in h.parameters():
        torch.nn.init.normal_(p, std=0.2)
    z, zn, zm, noise = torch.randn(3, 8), torch.randn(3, 8), torch.randn(3, 8), torch.randn(3, 4)
    s = torch.full((3,), 80.0)
    d = {k: h.denoise(noise * 80.0, s, v) for k, v in (("c", z), ("u", zn), ("m", zm))}
    got = h.sample(z, noise, 1, "consistency", 2.0, zn, None, zm, 1.5)
    assert torch.allclose(got, d["u"] + 2.0 * (d["c"] - d["u"]) + 1.5 * (d["c"] - d["m"]), atol=1e-5)
    assert torch.equal(h.sample(z, noise, 1, "consistency", 2.0, zn, None, zm, 0.0),
                       h.sample(z, noise, 1, "consistency", 2.0, zn, None))
