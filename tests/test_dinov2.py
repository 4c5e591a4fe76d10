"""DINOv2 backbone (foley.models.ext_dinov2): equal to upstream's code, clear load errors, a causal tokenizer.

The fixture tests/data/dinov2_tiny_ref.pt holds reference outputs of the UPSTREAM model code,
facebookresearch/dinov2 at commit b8931f7bf91576930313be2c6d6af376033b35f0 (2025-08-14): `dinov2/__init__.py`,
`dinov2/layers/` and `dinov2/models/` extracted with `git archive`, run once on CPU (torch 2.13.0, float32,
XFORMERS_DISABLED=1, so attention is upstream's scaled_dot_product_attention path) with
`DinoVisionTransformer(img_size=70, patch_size=14, embed_dim=16, depth=2, num_heads=2, mlp_ratio=4,
init_values=1.0, ffn_layer="mlp", block_chunks=0, block_fn=partial(Block, attn_class=MemEffAttention))` in eval
mode, in two variants sharing one state dict:
- "plain": num_register_tokens=0, interpolate_antialias=False, interpolate_offset=0.1 (the hub's vit*14);
- "reg": num_register_tokens=2, interpolate_antialias=True, interpolate_offset=0.0 (the hub's vit*14_reg).
Parameters (torch.Generator seed 0, drawn in state_dict order): LayerScale gammas 0.5 + U(0, 1), LayerNorm
weights 1 + 0.2 N(0, 1), other >= 2-d weights N(0, 1) / sqrt(fan-in), the rest (biases, cls_token, pos_embed,
mask_token) 0.5 N(0, 1); then register_tokens (1, 2, 16) 0.5 N(0, 1); then one uint8 RGB image of each size
70x70 (the native 5x5 grid: stored position embeddings), 42x56 (3x4: bicubic downsampling, non-square) and
98x84 (7x6: upsampling), drawn with torch.randint. Inputs were normalised as (x / 255 - mean) / std with the
ImageNet mean/std; `forward_features` gave `x_norm_patchtokens` and `x_norm_clstoken`, stored as "patch" and
"cls" per variant and size, beside "state", "register_tokens", "inputs" and "commit".
"""
from dataclasses import replace

import pytest
import torch

from foley.errors import FoleyError
from foley.models.ext_dinov2 import PRESETS, DinoError, DinoTokenizer, DinoV2, load_dinov2
from foley.models.reactor import VideoTokenizer

REF = torch.load(__file__.rsplit("/", 1)[0] + "/data/dinov2_tiny_ref.pt", weights_only=True)
SIZES = sorted(REF["inputs"])


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def state(variant: str) -> dict:
    return dict(REF["state"]) | ({"register_tokens": REF["register_tokens"]} if variant == "reg" else {})


def saved(tmp_path, st: dict, name: str = "w.pth") -> str:
    path = tmp_path / name
    torch.save(st, path)
    return str(path)


# ---------------------------------------------------------------------- (a) upstream numerics

@pytest.mark.parametrize("variant", ["plain", "reg"])
def test_matches_upstream_dinov2_at_every_grid(tmp_path, variant):
    """Loaded through load_dinov2, the tiny model gives upstream's patch and cls tokens at the native grid, a
    downsampled non-square grid and an upsampled one (register tokens and interpolation settings inferred)."""
    m = load_dinov2(saved(tmp_path, state(variant)), preset="tiny")
    assert m.cfg.registers == (2 if variant == "reg" else 0)
    assert not m.training
    for size in SIZES:
        img = REF["inputs"][size]
        with torch.no_grad():
            grid, cls = m.features(img)
        h, w = (int(s) // 14 for s in size.split("x"))
        assert grid.shape == (1, h, w, 16)
        torch.testing.assert_close(grid.flatten(1, 2), REF[variant][size]["patch"], atol=1e-5, rtol=0)
        torch.testing.assert_close(cls, REF[variant][size]["cls"], atol=1e-5, rtol=0)
        assert torch.equal(m.grid(img), grid)


def test_interpolation_details_matter():
    """The fixture tells upstream's offset and antialias apart: without them the interpolated grids differ."""
    right = DinoV2(PRESETS["tiny"])
    right.load_state_dict(REF["state"])
    wrong = DinoV2(replace(PRESETS["tiny"], offset=0.0))
    wrong.load_state_dict(REF["state"])
    with torch.no_grad():
        for size in ("42x56", "98x84"):
            a, b = (m.grid(REF["inputs"][size]) for m in (right, wrong))
            assert (a - b).abs().max() > 1e-3
        assert torch.equal(right.grid(REF["inputs"]["70x70"]), wrong.grid(REF["inputs"]["70x70"]))


def test_full_size_presets_have_the_release_names_and_shapes():
    """vits14: the 518 px / patch 14 grid (1 + 37 * 37 positions), upstream's names, 22 M parameters."""
    m = DinoV2(PRESETS["vits14"])
    sd = m.state_dict()
    assert sd["pos_embed"].shape == (1, 1370, 384) and sd["mask_token"].shape == (1, 384)
    assert sd["blocks.11.attn.qkv.weight"].shape == (1152, 384) and sd["blocks.0.ls2.gamma"].shape == (384,)
    assert sd["patch_embed.proj.weight"].shape == (384, 3, 14, 14) and "register_tokens" not in sd
    assert {k.split(".", 2)[2] for k in sd if k.startswith("blocks.0.")} == {
        "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
        "ls1.gamma", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
        "mlp.fc2.bias", "ls2.gamma"}
    assert 21.5e6 < sum(p.numel() for p in m.parameters()) < 22.5e6
    assert DinoV2(PRESETS["vitb14_reg"]).register_tokens.shape == (1, 4, 768)


# ---------------------------------------------------------------------- (b) load errors

def _message(path, preset="tiny") -> str:
    with pytest.raises(DinoError) as e:
        load_dinov2(path, preset)
    assert isinstance(e.value, FoleyError) and "\n" not in str(e.value)
    return str(e.value)


def test_load_errors_are_clear(tmp_path):
    st = state("plain")
    assert "not found" in _message(tmp_path / "nowhere.pth")
    assert "not found" in _message(tmp_path)  # a directory is not a file
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    assert "not a readable weight file" in _message(tmp_path / "junk.pth")

    msg = _message(saved(tmp_path, {k: v for k, v in st.items() if k != "blocks.1.norm2.weight"}))
    assert "missing" in msg and "blocks.1.norm2.weight" in msg

    msg = _message(saved(tmp_path, st | {"blocks.0.attn.q_norm.weight": torch.ones(8)}))
    assert "unexpected" in msg and "blocks.0.attn.q_norm.weight" in msg

    msg = _message(saved(tmp_path, st | {"blocks.0.attn.qkv.weight": torch.zeros(40, 16)}))
    assert "wrong shapes" in msg and "blocks.0.attn.qkv.weight (40, 16) != (48, 16)" in msg

    msg = _message(saved(tmp_path, {k: v for k, v in st.items() if k != "cls_token"}))
    assert "not a DINOv2 state dict" in msg and "cls_token" in msg

    assert "unknown DINOv2 preset" in _message(saved(tmp_path, st), preset="vit_huge")


def test_pickled_objects_need_trust_and_wrappers_unwrap(tmp_path):
    path = saved(tmp_path, {"model": {f"module.{k}": v for k, v in state("plain").items()}, "epoch": object()})
    assert "trust=True" in _message(path)
    m = load_dinov2(path, "tiny", trust=True)
    assert torch.equal(m.cls_token, REF["state"]["cls_token"])


# ---------------------------------------------------------------------- (c) the tokenizer

def tokenizer(width=24, seed=0) -> DinoTokenizer:
    torch.manual_seed(seed)
    backbone = DinoV2(PRESETS["tiny"])
    backbone.load_state_dict(REF["state"])
    return DinoTokenizer(width, backbone, inner=32, depth=1)


def clips(b, t, size=56, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, 3, size, size), generator=g, dtype=torch.uint8)


def test_tokenizer_shape_and_interface():
    tok = tokenizer()
    frames = clips(2, 5)
    out = tok(frames)
    assert out.shape == (2, 5, 24) and out.dtype == torch.float32
    assert tok(frames, prev=clips(2, 1, seed=3)[:, 0]).shape == (2, 5, 24)
    ref = VideoTokenizer.forward.__code__.co_varnames[:3]
    assert DinoTokenizer.forward.__code__.co_varnames[:3] == ref  # (self, frames, prev)


def test_tokenizer_is_causal_and_streams():
    """Changing frame k changes no earlier token and does change token k (and k + 1, through the difference);
    `prev` reaches token 0 only; frame-by-frame calls with prev = the last frame give the whole-clip tokens."""
    tok = tokenizer().eval()
    frames, other = clips(1, 6), clips(1, 6, seed=1)
    k = 3
    changed = frames.clone()
    changed[:, k] = other[:, k]
    with torch.no_grad():
        a, b = tok(frames), tok(changed)
        assert torch.equal(a[:, :k], b[:, :k])
        assert (a[:, k] - b[:, k]).abs().max() > 1e-4 and (a[:, k + 1] - b[:, k + 1]).abs().max() > 1e-4
        assert torch.equal(a[:, k + 2:], b[:, k + 2:])

        prev = other[:, 0]
        c = tok(frames, prev)
        assert (c[:, 0] - a[:, 0]).abs().max() > 1e-4 and torch.allclose(c[:, 1:], a[:, 1:], atol=1e-5)

        steps = [tok(frames[:, :1])] + [tok(frames[:, j: j + 1], frames[:, j - 1]) for j in range(1, 6)]
        torch.testing.assert_close(torch.cat(steps, dim=1), a, atol=1e-5, rtol=0)


def test_backbone_is_frozen_and_the_tokenizer_learns():
    tok = tokenizer().train()
    assert not tok.backbone.training and tok.blocks.training
    assert all(not p.requires_grad for p in tok.backbone.parameters())
    tok(clips(2, 3), prev=clips(2, 1, seed=2)[:, 0]).square().mean().backward()
    assert all(p.grad is None for p in tok.backbone.parameters())
    own = [(n, p) for n, p in tok.named_parameters() if not n.startswith("backbone.")]
    assert own and all(p.grad is not None and p.grad.abs().sum() > 0 for _, p in own), \
        [n for n, p in own if p.grad is None or p.grad.abs().sum() == 0]
