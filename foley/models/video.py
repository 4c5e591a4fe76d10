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
    """(B, T, 3, S, S) uint8 frames -> (B, T, width): a strided CNN per frame on the frame and its differences.

    `detail` > 1 reads frames at S = size x detail: the CNN above sees them area-averaged to size x size, and a
    second, deeper CNN sees them whole. Its projection starts at zero, so a model grown from one without detail
    (`load_state_dict(strict=False)`) starts as that model was on pictures whose 2 x 2 means are its old ones, and
    learns from the finer picture what it adds (a drumstick or a bell's clapper is a pixel or two at 32 x 32)."""

    def __init__(self, width: int, size: int = 32, causal: bool = False, channels: tuple[int, ...] = (32, 64, 96),
                 detail: int = 1) -> None:
        super().__init__()
        if detail < 1 or detail & (detail - 1):
            raise ValueError(f"detail must be a power of two, got {detail}")
        self.size, self.causal, self.detail = size * detail, causal, detail
        cin = 6 if causal else 9
        self.conv = strided_cnn(cin, channels)
        side = size // 2 ** len(channels)
        self.proj = nn.Linear(channels[-1] * side * side, width)
        if detail > 1:  # one more halving per doubling of the picture, narrower where the picture is larger
            steps = detail.bit_length() - 1
            self.fine = strided_cnn(cin, tuple(max(8, channels[0] >> (steps - i)) for i in range(steps)) + channels)
            self.fine_proj = nn.Linear(channels[-1] * side * side, width)
            nn.init.zeros_(self.fine_proj.weight)
            nn.init.zeros_(self.fine_proj.bias)

    def forward(self, frames: Tensor) -> Tensor:
        b, t = frames.shape[:2]
        if frames.shape[-1] != self.size or frames.shape[-2] != self.size:
            raise ValueError(f"frames must be {self.size}x{self.size}, got {tuple(frames.shape[-2:])}")
        x = frame_stack(frames, self.causal).flatten(0, 1)  # (B*T, 6|9, S, S)
        if self.detail == 1:
            return self.proj(self.conv(x).flatten(1)).view(b, t, -1)  # (B, T, width)
        coarse = self.proj(self.conv(F.avg_pool2d(x, self.detail)).flatten(1))  # frame_stack is linear: pool after
        return (coarse + self.fine_proj(self.fine(x).flatten(1))).view(b, t, -1)


class SoundingHead(nn.Module):
    """(B, T, width) frame features -> (B, T, 3) logits of where the object that dominates each frame's sound is:
    left, centre, right (BAS's position bins). Two temporal convolutions (+-8 frames): which object sounds shows
    in its motion around the moment. Trained beside the DiT on the world's exact ground truth (`foley train dit
    --sounding-weight`), so the frame encoder learns which object sounds, not only where the objects are."""

    BINS = 3

    def __init__(self, width: int, hidden: int = 128, reach: int = 4) -> None:
        super().__init__()
        k = 2 * reach + 1
        self.net = nn.Sequential(nn.Conv1d(width, hidden, k, padding=reach), nn.SiLU(),
                                 nn.Conv1d(hidden, hidden, k, padding=reach), nn.SiLU(), nn.Conv1d(hidden, self.BINS, 1))

    def forward(self, video: Tensor) -> Tensor:
        return self.net(video.transpose(1, 2)).transpose(1, 2)


def sounding_targets(x: Tensor, centre: float = 0.05) -> Tensor:
    """(..., T) x of the dominant object per frame (NaN where none dominates) -> class 0 (left), 1 (centre),
    2 (right), or -1 (none): `foley.metrics.position_bin` + 1, for `SoundingHead`'s cross-entropy."""
    cls = torch.where(x.abs() <= centre, 1, torch.where(x > 0, 2, 0))
    return torch.where(torch.isnan(x), -1, cls).long()


def strided_cnn(cin: int, channels: tuple[int, ...]) -> nn.Sequential:
    """3x3 convolutions of stride 2, each followed by GroupNorm and SiLU: the side halves per entry of `channels`."""
    layers: list[nn.Module] = []
    for c in channels:
        layers += [nn.Conv2d(cin, c, 3, stride=2, padding=1), nn.GroupNorm(8, c), nn.SiLU()]
        cin = c
    return nn.Sequential(*layers)


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
