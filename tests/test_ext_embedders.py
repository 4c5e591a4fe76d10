"""PaSST, OpenL3, LAION-CLAP: small random instances saved in the official layouts load exactly and embed."""
import numpy as np
import pytest
import torch
from scipy.signal import resample_poly

from foley.models.embedders import EmbedderError, load_embedder
from foley.models.ext_laion import LaionClapAudio
from foley.models.ext_openl3 import OpenL3
from foley.models.ext_passt import PaSST

SR = 48000


def _tone(f, seconds):
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * f * t) + 0.05 * np.sin(2 * np.pi * 3.7 * f * t)).astype(np.float32)


def _direct(model, mono, up, down):
    x = torch.from_numpy(resample_poly(mono, up, down).astype(np.float32) if up != down else mono)[None]
    with torch.no_grad():
        return model(x)[0].numpy()


def _randomise_bn(model, mean=(-0.5, 0.5), var=(0.5, 2.0)):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(*mean)
            m.running_var.uniform_(*var)


def _passt():
    torch.manual_seed(0)
    return PaSST(dim=128, depth=1, heads=2, grid=(12, 20), classes=7, hidden=64).eval()  # 2.1 s windows


def test_passt_release_layout_loads_and_gives_the_cls_dist_mean(tmp_path):
    model = _passt()
    state = model.state_dict()
    assert {"cls_token", "dist_token", "new_pos_embed", "freq_new_pos_embed", "time_new_pos_embed",
            "patch_embed.proj.weight", "head.0.weight", "head.1.weight", "head_dist.weight"} <= set(state)
    torch.save(state, tmp_path / "passt-s-f128-p16-s10-ap.476-swa.pt")  # a bare state dict, as the release
    name, fn = load_embedder(f"passt={tmp_path / 'passt-s-f128-p16-s10-ap.476-swa.pt'}")
    assert name == "passt" and model.window_len == 67200 and model.stride == 10
    for seconds in (1.0, 3.0):  # one window; then reflect-padded 2.1 s windows averaged
        a = fn(_tone(440, seconds))
        assert a.shape == (128,) and np.allclose(a, _direct(model, _tone(440, seconds), 2, 3), atol=1e-5)
        assert not np.allclose(a, fn(_tone(2500, seconds)), atol=1e-4)
    wrapped = {"device_proxy": torch.zeros(1)} | {f"net.{k}": v for k, v in state.items()}  # hear21passt wrapper
    torch.save(wrapped, tmp_path / "wrapped.pt")
    assert np.allclose(load_embedder(f"passt={tmp_path / 'wrapped.pt'}")[1](_tone(440, 1.0)), fn(_tone(440, 1.0)))


def test_openl3_torchopenl3_layout_loads_and_averages_1s_windows(tmp_path):
    torch.manual_seed(0)
    model = OpenL3(widths=(4, 4, 8, 8, 8, 8, 8, 6)).eval()
    _randomise_bn(model)
    state = model.state_dict() | {"speclayer.dft_real_kernels": torch.zeros(1025, 1, 2048),  # ignored: torch.stft
                                  "speclayer.dft_imag_kernels": torch.zeros(1025, 1, 2048)}
    assert "speclayer.mel_basis" in state and "batch_normalization_8.running_var" in state
    torch.save(state, tmp_path / "torchopenl3_mel128_env_512.pth.tar")
    name, fn = load_embedder(f"openl3={tmp_path / 'torchopenl3_mel128_env_512.pth.tar'}")
    a = fn(_tone(440, 1.5))
    assert name == "openl3" and a.shape == (6,)
    assert np.allclose(a, _direct(model, _tone(440, 1.5), 1, 1), atol=1e-5)
    assert not np.allclose(a, fn(_tone(2500, 1.5)), atol=1e-4)
    with torch.no_grad():  # 0.5 s of zeros in front, 1 s windows every 0.1 s: 1.5 s -> 11 windows
        x = torch.from_numpy(_tone(440, 1.5))[None]
        frames = torch.nn.functional.pad(x, (24000, 0)).unfold(-1, 48000, 4800)
        assert frames.shape[1] == 11 and np.allclose(model.embed(frames[0]).mean(0).numpy(), a, atol=1e-5)


def test_laion_clap_checkpoint_layout_loads_and_gives_the_projected_unit_embedding(tmp_path):
    torch.manual_seed(0)
    model = LaionClapAudio(joint=6, mel_bins=16, spec_size=64, patch=4, dim=8, depths=(2, 2), heads=(1, 2),
                           window=4, classes=5).eval()
    _randomise_bn(model, (-30.0, -10.0), (50.0, 200.0))
    audio = {f"module.{k}": v for k, v in model.state_dict().items()}
    assert "module.audio_branch.layers.0.blocks.1.attn_mask" in audio and "module.audio_projection.2.weight" in audio
    other = {"module.text_branch.embeddings.word_embeddings.weight": torch.zeros(5, 4),  # all ignored
             "module.text_projection.0.weight": torch.zeros(6, 4), "module.audio_transform.sequential.0.weight":
             torch.zeros(6, 6), "module.logit_scale_a": torch.tensor(2.0), "module.logit_scale_t": torch.tensor(2.0),
             "module.audio_branch.spectrogram_extractor.stft.conv_real.weight": torch.zeros(513, 1, 8)}
    torch.save({"epoch": 45, "state_dict": audio | other}, tmp_path / "630k-audioset-best.pt")
    name, fn = load_embedder(f"laion_clap={tmp_path / '630k-audioset-best.pt'}", mono_type="left")
    assert name == "laion_clap_left" and model.clip == 122400  # 255 hops: this tiny HTS-AT's input length
    short = fn(_tone(440, 1.0))  # repeat-padded to the clip
    assert short.shape == (6,) and np.isclose(np.linalg.norm(short), 1.0, atol=1e-5)
    assert np.allclose(short, _direct(model, _tone(440, 1.0), 1, 1), atol=1e-5)
    long = fn(_tone(440, 4.0))  # two windows averaged
    assert np.allclose(long, _direct(model, _tone(440, 4.0), 1, 1), atol=1e-5)
    assert not np.allclose(short, fn(_tone(2500, 1.0)), atol=1e-4)
    plain = {k.removeprefix("module."): v for k, v in audio.items()}  # no DataParallel prefix, no wrapper
    torch.save(plain, tmp_path / "plain.pt")
    assert np.allclose(load_embedder(f"laion_clap={tmp_path / 'plain.pt'}")[1](_tone(440, 1.0)), short)


def test_wrong_layouts_are_clear_errors(tmp_path):
    passt = _passt().state_dict()
    torch.save(passt, tmp_path / "passt.pt")
    torch.save({k: v for k, v in passt.items() if k != "blocks.0.norm2.bias"}, tmp_path / "passt_cut.pt")
    torch.save(passt | {"blocks.0.extra": torch.zeros(1)}, tmp_path / "passt_more.pt")
    torch.save({"state_dict": {"module.audio_branch.patch_embed.fusion_model.local_att.0.weight": torch.zeros(1)}},
               tmp_path / "fusion.pt")
    torch.save({"conv2d_1.weight": torch.zeros(4, 1, 3, 3)}, tmp_path / "l3_half.pt")
    for spec, words in ((f"openl3={tmp_path / 'passt.pt'}", "not an OpenL3 state dict"),
                        (f"laion_clap={tmp_path / 'passt.pt'}", "not a LAION-CLAP"),
                        (f"passt={tmp_path / 'l3_half.pt'}", "not a PaSST state dict"),
                        (f"passt={tmp_path / 'passt_cut.pt'}", r"missing \['blocks.0.norm2.bias'\]"),
                        (f"passt={tmp_path / 'passt_more.pt'}", r"unexpected \['blocks.0.extra'\]"),
                        (f"laion_clap={tmp_path / 'fusion.pt'}", "fusion checkpoints are not supported"),
                        (f"openl3={tmp_path / 'l3_half.pt'}", "torchopenl3 layout")):
        with pytest.raises(EmbedderError, match=words):
            load_embedder(spec)
