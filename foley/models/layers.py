"""The one copy of the transformer pieces foley's generators share: timestep embedding, adaLN, attention, MLP.

Conventions: tokens are (B, T, W); attention uses PyTorch's fused `scaled_dot_product_attention`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """(B,) times in [0, 1] (scaled by 1000) -> (B, dim) sinusoidal features (DiT's `TimestepEmbedder`)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class TimestepEmbedder(nn.Module):
    """Sinusoidal features of t through a two-layer MLP."""

    def __init__(self, width: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(timestep_embedding(t, self.freq_dim))  # (B, W)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: x (B, T, W) normalised elsewhere, shift/scale (B, W)."""
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    """Multi-head attention; self-attention when `context` is None, else cross-attention to it."""

    def __init__(self, width: int, heads: int, context_width: int | None = None) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not a multiple of heads {heads}")
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(context_width or width, 2 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: Tensor, context: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """x (B, T, W); context (B, S, Wc); mask (B, S) bool, True = attend."""
        b, t, w = x.shape
        ctx = x if context is None else context
        q = self.q(x).view(b, t, self.heads, -1).transpose(1, 2)  # (B, H, T, d)
        k, v = self.kv(ctx).view(b, ctx.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)  # (B, H, S, d) each
        attn_mask = None if mask is None else mask[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, H, T, d)
        return self.out(y.transpose(1, 2).reshape(b, t, w))


class GatedMLP(nn.Module):
    """SwiGLU feed-forward (Shazeer 2020): W2 (silu(W1 x) * W3 x)."""

    def __init__(self, width: int, ratio: float = 8 / 3) -> None:
        super().__init__()
        hidden = int(width * ratio)
        self.w13 = nn.Linear(width, 2 * hidden)
        self.w2 = nn.Linear(hidden, width)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.w13(x).chunk(2, dim=-1)
        return self.w2(F.silu(a) * b)


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (timm's `Mlp`, whose parameter names the ViT checkpoints we load use)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))
