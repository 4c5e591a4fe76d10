"""External embedders: small randomly initialised instances saved in the official layouts load and embed."""
import numpy as np
import pytest
import torch

from foley.models.embedders import Cnn14, EmbedderError, VGGish, load_embedder

SR = 48000


def _tone(f, seconds=2.0):
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def _randomise_bn(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)


def test_cnn14_weights_in_the_official_layout_load_and_give_the_fc1_embedding(tmp_path):
    torch.manual_seed(0)
    model = Cnn14(widths=(4, 4, 8, 8, 8, 16), classes=7).eval()
    _randomise_bn(model)
    state = {k: v for k, v in model.state_dict().items() if k != "melW"}
    state["logmel_extractor.melW"] = model.melW.clone()  # torchlibrosa keeps the filters here
    state["spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(513, 1, 1024)  # ignored: we use torch.stft
    torch.save({"model": state, "iteration": 0}, tmp_path / "Cnn14.pth")
    name, fn = load_embedder(f"panns={tmp_path / 'Cnn14.pth'}")
    a, b = fn(_tone(440)), fn(_tone(3000))
    assert name == "panns" and a.shape == (16,)
    from scipy.signal import resample_poly

    with torch.no_grad():
        direct = model(torch.from_numpy(resample_poly(_tone(440), 2, 3).astype(np.float32))[None])[0].numpy()
    assert np.allclose(a, direct, atol=1e-5) and not np.allclose(a, b)
    assert model.melW.sum(0).min() > 0  # every band has a filter


def test_vggish_weights_load_and_average_one_embedding_per_0_96_s(tmp_path):
    torch.manual_seed(0)
    model = VGGish(widths=(4, 4, 8, 8, 8, 8), hidden=16, dim=6).eval()
    torch.save(model.state_dict(), tmp_path / "vggish.pth")
    name, fn = load_embedder(f"vggish={tmp_path / 'vggish.pth'}", mono_type="side")
    assert name == "vggish_side"
    assert model.examples(torch.zeros(16000 * 3)).shape == (3, 1, 96, 64)
    a = fn(_tone(440, 3.0))
    assert a.shape == (6,) and not np.allclose(a, fn(_tone(2500, 3.0)))


def test_bad_embedder_requests_are_clear_errors(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"junk")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    for spec, words in ((f"panns={tmp_path / 'junk.pth'}", "not a readable"),
                        (f"vggish={tmp_path / 'wrong.pth'}", "VGGish"),
                        (f"panns={tmp_path / 'wrong.pth'}", "panns"),
                        ("nope=x", "NAME=WEIGHTS"),
                        (f"panns={tmp_path / 'missing.pth'}", "not found")):
        with pytest.raises(EmbedderError, match=words):
            load_embedder(spec)


def test_release_files_with_pickled_objects_load_only_when_trusted(tmp_path):
    torch.manual_seed(0)
    model = VGGish(widths=(4, 4, 8, 8, 8, 8), hidden=16, dim=6).eval()
    torch.save({"model": model.state_dict(), "iteration": np.int64(3)}, tmp_path / "release.pth")
    with pytest.raises(EmbedderError, match="--trust-weights"):
        load_embedder(f"vggish={tmp_path / 'release.pth'}")
    name, fn = load_embedder(f"vggish={tmp_path / 'release.pth'}", trust=True)
    assert fn(_tone(440, 1.0)).shape == (6,)
