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


class RMSNorm(nn.Module):
    """x / rms(x) * g (Zhang & Sennrich 2019), over the last dimension."""

    def __init__(self, width: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_base(base: float, head_dim: int, ntk: float = 1.0) -> float:
    """NTK-aware scaling (bloc97 2023): stretch the rotary base so a context `ntk` times the trained one keeps
    its high frequencies (local order) and interpolates only the low ones."""
    return base * ntk ** (head_dim / (head_dim - 2)) if ntk != 1.0 else base


def rope_tables(pos: Tensor, head_dim: int, base: float, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """(cos, sin), each (L, head_dim / 2), of rotary embeddings at integer positions pos (L,).

    Angles are computed in float64, so a stream's positions can grow for hours without losing precision."""
    inv = base ** (-torch.arange(0, head_dim, 2, device=pos.device, dtype=torch.float64) / head_dim)
    ang = pos.to(torch.float64)[:, None] * inv[None]
    return torch.cos(ang).to(dtype), torch.sin(ang).to(dtype)


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary position embedding (Su et al. 2021) of x (B, H, L, d) with tables from `rope_tables`."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)


class KVCache:
    """One attention layer's keys and values of a stream, in preallocated buffers (no copy of the whole cache per
    token): new keys are written after the kept ones; when the buffer is full the kept ones (at most a window)
    move to the front of a fresh one, once every ~window tokens."""

    def __init__(self) -> None:
        self.k: Tensor | None = None
        self.v: Tensor | None = None
        self.pos: Tensor | None = None
        self.start = self.end = 0

    def __len__(self) -> int:
        return self.end - self.start

    def keys(self) -> Tensor:
        """(B, H, S, d) the kept keys (a view)."""
        return self.k[:, :, self.start:self.end] if self.k is not None else torch.empty(0)

    def _refill(self, k: Tensor, v: Tensor, pos: Tensor, capacity: int) -> None:
        """New buffers of `capacity` slots (shaped like k, v, pos) that start with the kept keys."""
        kept = len(self)
        new = [t.new_empty(*t.shape[:-2], capacity, t.shape[-1]) for t in (k, v)] + [pos.new_empty(capacity)]
        if kept:
            s, e = self.start, self.end
            new[0][:, :, :kept], new[1][:, :, :kept], new[2][:kept] = self.k[:, :, s:e], self.v[:, :, s:e], self.pos[s:e]
        self.k, self.v, self.pos = new
        self.start, self.end = 0, kept

    def append(self, k: Tensor, v: Tensor, pos: Tensor, window: int) -> tuple[Tensor, Tensor, Tensor]:
        """Add (B, H, L, d) keys and values at positions pos (L,); -> every key, value and position the new tokens
        may attend to (views), after which only what a later token can still see is kept."""
        n = k.shape[2]
        if self.k is None or self.end + n > self.k.shape[2]:  # first use, or full: the kept keys to a new front
            self._refill(k, v, pos, max(2 * window, len(self)) + n)
        e = self.end + n
        self.k[:, :, self.end:e], self.v[:, :, self.end:e], self.pos[self.end:e] = k, v, pos
        self.end = e
        keys, values, kpos = self.k[:, :, self.start:e], self.v[:, :, self.start:e], self.pos[self.start:e]
        self.start = e - int((kpos > pos[-1] - window).sum())  # positions grow: the newest keys stay visible
        return keys, values, kpos


class RotaryBlock(nn.Module):
    """RMSNorm -> attention -> residual; RMSNorm -> SwiGLU -> residual (the reactor's block, and the tokenizers').

    `forward`: rotary, causal within a sliding window, with an optional KV cache; `full`: no mask, no rotation
    (the patches of one frame, which carry their own position embeddings)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.n1, self.n2 = RMSNorm(width), RMSNorm(width)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)
        self.mlp = GatedMLP(width)

    def forward(self, x: Tensor, pos: Tensor, window: int, rope: tuple[Tensor, Tensor],
                cache: "KVCache | None" = None) -> Tensor:
        """x (B, L, W) at positions pos (L,) with their rotary tables; `cache` grows with these tokens (then keeps
        what the next token can still see)."""
        b, n, w = x.shape
        q, k, v = self.qkv(self.n1(x)).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)  # (B, H, L, d) each
        q, k = rotate(q, *rope), rotate(k, *rope)
        kpos = pos
        if cache is not None:
            k, v, kpos = cache.append(k, v, pos, window)
        mask = (kpos[None] <= pos[:, None]) & (pos[:, None] - kpos[None] < window)  # (L, S)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(y.transpose(1, 2).reshape(b, n, w))
        return x + self.mlp(self.n2(x))

    def full(self, x: Tensor) -> Tensor:
        """Every token sees every other (no mask, no rotation)."""
        b, n, w = x.shape
        q, k, v = self.qkv(self.n1(x)).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, w))
        return x + self.mlp(self.n2(x))
