"""Per-frame video features at the latent frame rate: each frame's grid plus its temporal differences.

SoundReactor's recipe (grid features of the frame and their difference with the previous frame) with our
own small CNN in place of DINOv2: frames are read at S x S (default 32), and the encoder sees the RGB frame,
its difference with the previous frame and (offline only) with the next one, so both where an object is
and when it moves survive. `DinoAdapter` projects precomputed DINOv2/Synchformer features instead.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def frame_stack(frames: Tensor, causal: bool) -> Tensor:
    """(B, T, 3, S, S) uint8 -> (B, T, 6 or 9, S, S) float: frame, frame - previous, [next - frame]."""
    x = frames.float() / 127.5 - 1.0
    prev = torch.cat([x[:, :1], x[:, :-1]], dim=1)
    parts = [x, 4 * (x - prev)]  # differences are small: scale them up to the frame's range
    if not causal:
        nxt = torch.cat([x[:, 1:], x[:, -1:]], dim=1)
        parts.append(4 * (nxt - x))
    return torch.cat(parts, dim=2)


class FrameEncoder(nn.Module):
    """(B, T, 3, S, S) uint8 frames -> (B, T, width): a strided CNN per frame on the frame and its differences."""

    def __init__(self, width: int, size: int = 32, causal: bool = False, channels: tuple[int, ...] = (32, 64, 96)) -> None:
        super().__init__()
        self.size, self.causal = size, causal
        cin = 6 if causal else 9
        layers: list[nn.Module] = []
        for c in channels:
            layers += [nn.Conv2d(cin, c, 3, stride=2, padding=1), nn.GroupNorm(8, c), nn.SiLU()]
            cin = c
        self.conv = nn.Sequential(*layers)
        side = size // 2 ** len(channels)
        self.proj = nn.Linear(cin * side * side, width)

    def forward(self, frames: Tensor) -> Tensor:
        b, t = frames.shape[:2]
        if frames.shape[-1] != self.size or frames.shape[-2] != self.size:
            raise ValueError(f"frames must be {self.size}x{self.size}, got {tuple(frames.shape[-2:])}")
        x = frame_stack(frames, self.causal).flatten(0, 1)  # (B*T, 6|9, S, S)
        return self.proj(self.conv(x).flatten(1)).view(b, t, -1)  # (B, T, width)


class DinoAdapter(nn.Module):
    """(B, T, D) precomputed backbone features per frame (DINOv2, Synchformer) -> (B, T, width), plus their difference."""

    def __init__(self, dim: int, width: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(2 * dim), nn.Linear(2 * dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, feats: Tensor) -> Tensor:
        prev = torch.cat([feats[:, :1], feats[:, :-1]], dim=1)
        return self.proj(torch.cat([feats, feats - prev], dim=-1))


def resize_frames(frames: Tensor, size: int) -> Tensor:
    """(B, T, 3, H, W) uint8 -> (B, T, 3, size, size) uint8, area-averaged."""
    b, t = frames.shape[:2]
    x = F.interpolate(frames.flatten(0, 1).float(), size=(size, size), mode="area")
    return x.round().clamp(0, 255).to(torch.uint8).view(b, t, 3, size, size)
