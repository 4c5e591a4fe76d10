"""DINOv2 (Oquab et al. 2023) from its released weights, and SoundReactor's per-frame video tokenizer on it.

    backbone = load_dinov2("dinov2_vits14_pretrain.pth")       # a local file; nothing is downloaded
    grid = backbone.grid(frames_uint8)                        # (N, h, w, 384) patch tokens after the final norm
    tok = DinoTokenizer(width=1024, backbone=backbone)        # frozen backbone, trainable head
    v = tok(frames, prev)                                     # (B, T, 1024): one token per frame, causal

- **Backbone** (`DinoV2`): facebookresearch/dinov2's `DinoVisionTransformer` as its hub models build it
  (`block_chunks=0`, LayerScale, GELU MLP, 518 px / patch 14 position grid), with exactly the parameter names of
  the release files (`dinov2_vit{s,b,l}14[_reg4]_pretrain.pth`, bare state dicts), so they load with every key
  matched. Position embeddings are interpolated to the input's grid as upstream's `interpolate_pos_encoding`:
  bicubic with the historical `+0.1` scale-factor offset and no antialias for the plain models, antialias and
  an exact output size for the register (`_reg`) models; the native grid of a square input is used as stored.
  Frames enter as uint8 RGB and are normalised with the ImageNet mean and std (torchvision's ToTensor +
  Normalize). Sides must be multiples of the patch (224 = 16 x 14 gives a 16 x 16 grid). ViT-g (SwiGLU FFN) and
  masked tokens (`mask_token` is loaded but unused) are not supported.
- **Loading** (`load_dinov2`): sizes are read from the weights (width, depth, patch, trained grid, MLP ratio,
  register tokens); the head count comes from the preset when the width matches it, else width // 64 (every
  release model's head size). Register tokens imply the `_reg` interpolation settings.
- **Tokenizer** (`DinoTokenizer`): the interface of foley.models.reactor.VideoTokenizer. Per frame k, the frozen
  backbone's grid g_k and its difference g_k - g_{k-1} with the previous frame's grid (SoundReactor's recipe;
  the first frame's difference is taken with `prev`, or zero without one) are concatenated -> LayerNorm ->
  Linear -> a stride-2 3x3 conv over the grid -> grid tokens (+ fixed 2-D sin-cos positions, any grid size) and
  an aggregation token -> `depth` bidirectional reactor Blocks -> the aggregation token -> Linear(width). Token
  k depends on frames k-1 and k (or `prev`) only. The backbone stays a submodule (it follows `.to()` and is in
  the state dict) but is frozen: no gradients, always in eval mode, run under no_grad.
"""
from __future__ import annotations

import math
import pickle
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foley.models.embedders import EmbedderError, load_exact
from foley.models.layers import Mlp, RMSNorm, RotaryBlock

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DinoError(EmbedderError):
    """DINOv2 weights that are missing, unreadable or do not fit the model."""


@dataclass(frozen=True)
class DinoConfig:
    """Sizes of a DINOv2 ViT (upstream's `vit_small`, `vit_base`, ... with the hub's settings)."""

    dim: int = 384
    depth: int = 12
    heads: int = 6
    patch: int = 14
    img_size: int = 518  # the trained position grid: img_size // patch per side (37)
    mlp_ratio: float = 4.0
    registers: int = 0  # the `_reg` release models have 4
    antialias: bool = False  # position-embedding interpolation: upstream's interpolate_antialias
    offset: float = 0.1  # and interpolate_offset (0.1 plain models, 0.0 `_reg` models)

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not a multiple of heads {self.heads}")


def _reg(cfg: DinoConfig, registers: int = 4) -> DinoConfig:
    """The hub's `_reg` variant of a config: register tokens, antialiased exact-size interpolation."""
    return replace(cfg, registers=registers, antialias=True, offset=0.0)


_S, _B, _L = DinoConfig(), DinoConfig(768, 12, 12), DinoConfig(1024, 24, 16)
PRESETS: Mapping[str, DinoConfig] = {
    "vits14": _S, "vitb14": _B, "vitl14": _L,
    "vits14_reg": _reg(_S), "vitb14_reg": _reg(_B), "vitl14_reg": _reg(_L),
    "tiny": DinoConfig(dim=16, depth=2, heads=2, img_size=70),  # tests: a 5 x 5 grid, ~17 k parameters
}


# ---------------------------------------------------------------------- the ViT, upstream's names

class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)  # (B, H, N, d) each
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class _LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))  # the hub's init_values=1.0

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class _Block(nn.Module):
    """x + ls1(attn(norm1 x)); x + ls2(mlp(norm2 x)) (upstream's Block in eval mode)."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn, self.mlp = _Attention(dim, heads), Mlp(dim, hidden)
        self.ls1, self.ls2 = _LayerScale(dim), _LayerScale(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoV2(nn.Module):
    """DINOv2's DinoVisionTransformer (hub settings, `block_chunks=0`) with the release files' parameter names."""

    def __init__(self, cfg: DinoConfig = PRESETS["vits14"]) -> None:
        super().__init__()
        self.cfg = cfg
        d, side = cfg.dim, cfg.img_size // cfg.patch
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, d, cfg.patch, cfg.patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + side * side, d))
        self.register_tokens = nn.Parameter(torch.zeros(1, cfg.registers, d)) if cfg.registers else None
        self.mask_token = nn.Parameter(torch.zeros(1, d))  # masked training only: kept for the keys
        for p in (self.cls_token, self.pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        self.blocks = nn.ModuleList(_Block(d, cfg.heads, round(d * cfg.mlp_ratio)) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN)[:, None, None], persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD)[:, None, None], persistent=False)

    @property
    def dim(self) -> int:
        return self.cfg.dim

    def normalize(self, frames: Tensor) -> Tensor:
        """(N, 3, H, W) uint8 RGB -> float, ImageNet-normalised (torchvision ToTensor + Normalize)."""
        return (frames.float() / 255 - self.mean) / self.std

    def pos_embed_for(self, h: int, w: int) -> Tensor:
        """(1, 1 + h*w, D) position embeddings for an h x w patch grid (upstream's interpolate_pos_encoding)."""
        n = self.pos_embed.shape[1] - 1
        if h * w == n and h == w:
            return self.pos_embed
        pe, d, m = self.pos_embed.float(), self.pos_embed.shape[-1], math.isqrt(n)
        size = ({"scale_factor": ((h + self.cfg.offset) / m, (w + self.cfg.offset) / m)} if self.cfg.offset
                else {"size": (h, w)})
        grid = F.interpolate(pe[:, 1:].reshape(1, m, m, d).permute(0, 3, 1, 2), mode="bicubic",
                             antialias=self.cfg.antialias, **size)  # (1, D, h, w)
        if grid.shape[-2:] != (h, w):
            raise ValueError(f"position grid {tuple(grid.shape[-2:])} != patch grid {(h, w)}")
        return torch.cat([pe[:, :1], grid.permute(0, 2, 3, 1).reshape(1, h * w, d)], 1).to(self.pos_embed.dtype)

    def tokens(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) normalised images -> (N, 1 + registers + h*w, D) tokens after the final norm."""
        p = self.cfg.patch
        if x.shape[-2] % p or x.shape[-1] % p:
            raise ValueError(f"image sides must be multiples of the patch {p}, got {tuple(x.shape[-2:])}")
        t = self.patch_embed.proj(x).flatten(2).transpose(1, 2)  # (N, h*w, D)
        t = torch.cat([self.cls_token.expand(len(t), -1, -1), t], 1)
        t = t + self.pos_embed_for(x.shape[-2] // p, x.shape[-1] // p).to(t.dtype)
        if self.register_tokens is not None:
            t = torch.cat([t[:, :1], self.register_tokens.expand(len(t), -1, -1), t[:, 1:]], 1)
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t)

    def features(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """(N, 3, H, W) uint8 RGB -> (grid (N, H/p, W/p, D) x_norm_patchtokens, cls (N, D) x_norm_clstoken)."""
        t = self.tokens(self.normalize(frames))
        h, w = frames.shape[-2] // self.cfg.patch, frames.shape[-1] // self.cfg.patch
        return t[:, 1 + self.cfg.registers:].reshape(len(t), h, w, -1), t[:, 0]

    def grid(self, frames: Tensor) -> Tensor:
        """(N, 3, H, W) uint8 RGB -> (N, H/p, W/p, D) patch tokens after the final norm."""
        return self.features(frames)[0]


# ---------------------------------------------------------------------- loading

def _unwrap(state: dict) -> dict:
    """A bare DINOv2 state dict from common wrappers ("model"/"state_dict"/"teacher", a "module." prefix, a
    training checkpoint's "backbone." keys, FSDP-chunked `blocks.c.i.` names)."""
    for key in ("model", "state_dict", "teacher"):
        if isinstance(state.get(key), dict):
            state = state[key]
    if state and all(k.startswith("module.") for k in state):
        state = {k[7:]: v for k, v in state.items()}
    if any(k.startswith("backbone.") for k in state):  # a training checkpoint's teacher: drop its heads
        state = {k[9:]: v for k, v in state.items() if k.startswith("backbone.")}
    return {re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", k): v for k, v in state.items()}


def config_from_state(state: dict, preset: DinoConfig) -> DinoConfig:
    """The config of a DINOv2 state dict: sizes from the weights, heads and interpolation from `preset`."""
    need = ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight")
    missing = [k for k in need if not isinstance(state.get(k), Tensor)]
    if missing:
        raise DinoError(f"not a DINOv2 state dict (facebookresearch/dinov2 layout): missing {missing[:3]}")
    dim, patch = state["cls_token"].shape[-1], state["patch_embed.proj.weight"].shape[-1]
    side = math.isqrt(state["pos_embed"].shape[1] - 1)
    depth = 1 + max(int(k.split(".")[1]) for k in state if re.match(r"blocks\.\d+\.", k))
    regs = state["register_tokens"].shape[1] if "register_tokens" in state else 0
    heads = preset.heads if dim == preset.dim else max(1, dim // 64)
    cfg = replace(preset, dim=dim, depth=depth, heads=heads, patch=patch, img_size=side * patch,
                  mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / dim, registers=regs)
    if regs and not preset.registers:
        return _reg(cfg, regs)
    return replace(cfg, antialias=False, offset=0.1) if not regs and preset.registers else cfg


def from_state(state: dict, preset: str | DinoConfig = "vits14") -> DinoV2:
    """DinoV2 in eval mode from a (possibly wrapped) state dict; every key must match with its shape."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise DinoError(f"unknown DINOv2 preset {preset!r}; one of {sorted(PRESETS)}")
        preset = PRESETS[preset]
    state = _unwrap(state)
    try:
        model = DinoV2(config_from_state(state, preset))
    except (ValueError, IndexError) as e:  # inconsistent sizes, tensors of the wrong rank
        raise DinoError(f"not a DINOv2 state dict: {type(e).__name__}: {e}") from None
    try:
        return load_exact(model, state, "DINOv2 (facebookresearch/dinov2 layout)").eval()
    except EmbedderError as e:  # the same message, as this module's error
        raise DinoError(str(e)) from None


def load_dinov2(path: str | Path, preset: str = "vits14", trust: bool = False) -> DinoV2:
    """A local DINOv2 release file (`dinov2_vits14_pretrain.pth`, ...) -> DinoV2 in eval mode.

    Read with `weights_only=True` (no pickled code runs) unless `trust`. Sizes and register tokens come from
    the weights; `preset` gives the head count (for its width) and interpolation settings.
    """
    if not Path(path).is_file():
        raise DinoError(f"DINOv2 weights {str(path)!r} not found (download a release .pth yourself)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as e:
        if "Unsupported global" not in str(e):  # garbage bytes fail the weights-only unpickler too
            raise DinoError(f"{path}: not a readable weight file (UnpicklingError)") from None
        raise DinoError(f"{path}: it holds more than tensors (pickled objects); load it with trust=True only if "
                        "you trust the file") from None
    except Exception as e:  # torch raises many kinds on a damaged file
        raise DinoError(f"{path}: not a readable weight file ({type(e).__name__})") from None
    if not isinstance(state, dict):
        raise DinoError(f"{path}: expected a state dict, got {type(state).__name__}")
    try:
        return from_state(state, preset)
    except DinoError as e:
        raise DinoError(f"{path}: {e}") from None


# ---------------------------------------------------------------------- the video tokenizer

def sincos_2d(h: int, w: int, dim: int, device: torch.device | None = None) -> Tensor:
    """(h*w, dim) fixed 2-D sin-cos position embeddings (MAE's): half the channels for rows, half for columns."""
    q = dim // 4
    freqs = 1.0 / 10000 ** (torch.arange(q, device=device, dtype=torch.float32) / max(q, 1))
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
    parts = [f(a.reshape(-1, 1) * freqs) for a in (ys, xs) for f in (torch.sin, torch.cos)]
    return F.pad(torch.cat(parts, dim=1), (0, dim - 4 * q))


class DinoTokenizer(nn.Module):
    """(B, T, 3, S, S) uint8 frames -> (B, T, W): frozen DINOv2 grid + its frame difference -> aggregation token.

    A drop-in for foley.models.reactor.VideoTokenizer (same forward); S must be a multiple of the patch (14).
    """

    chunk = 64  # frames per backbone call

    def __init__(self, width: int, backbone: DinoV2, inner: int = 128, depth: int = 1) -> None:
        super().__init__()
        self.backbone = backbone.eval().requires_grad_(False)
        d = backbone.dim
        self.inp = nn.Sequential(nn.LayerNorm(2 * d), nn.Linear(2 * d, inner))
        self.conv = nn.Conv2d(inner, inner, 3, stride=2, padding=1)
        self.agg = nn.Parameter(torch.randn(inner) * 0.02)
        self.heads = max(1, inner // 64)
        self.blocks = nn.ModuleList(RotaryBlock(inner, self.heads) for _ in range(depth))
        self.norm = RMSNorm(inner)
        self.out = nn.Linear(inner, width)

    def train(self, mode: bool = True) -> "DinoTokenizer":
        super().train(mode)
        self.backbone.eval()  # frozen: always in inference mode
        return self

    @torch.no_grad()
    def grids(self, frames: Tensor) -> Tensor:
        """(N, 3, S, S) uint8 -> (N, h, w, D) backbone grids, `chunk` frames a call, no graph."""
        return torch.cat([self.backbone.grid(c) for c in frames.split(self.chunk)])

    def forward(self, frames: Tensor, prev: Tensor | None = None) -> Tensor:
        """frames (B, T, 3, S, S) uint8; `prev` (B, 3, S, S) the frame before the first (else a zero difference)."""
        b, t = frames.shape[:2]
        full = frames if prev is None else torch.cat([prev[:, None], frames], dim=1)
        g = self.grids(full.flatten(0, 1)).unflatten(0, (b, -1))  # (B, T or T+1, h, w, D)
        before = torch.cat([g[:, :1], g[:, :-1]], dim=1)  # the first frame's own grid: a zero difference
        g, diff = g[:, -t:], (g - before)[:, -t:]
        x = self.inp(torch.cat([g, diff], dim=-1)).flatten(0, 1)  # (B*T, h, w, inner)
        x = self.conv(x.permute(0, 3, 1, 2))  # (B*T, inner, h', w')
        x = x.flatten(2).transpose(1, 2) + sincos_2d(*x.shape[-2:], x.shape[1], x.device)  # (B*T, G, inner)
        h = torch.cat([self.agg.expand(len(x), 1, -1), x], dim=1)
        for blk in self.blocks:  # the tokens of one frame see each other, nothing of another frame
            h = blk.full(h)
        return self.out(self.norm(h[:, 0])).view(b, t, -1)
