"""Classifier-free guidance (Ho & Salimans 2022): v = v_uncond + w (v_cond - v_uncond), in one batched call; and
mirror guidance, which adds m (v_cond - v_cond on the left-right mirrored picture).

Mirror guidance is ours. A video-conditioned stereo model given the mirrored picture places each sound on the
other side, and keeps everything else (what sounds, when). So the difference of the two predictions is the
placement alone, and extrapolating along it sharpens where sounds sit without the rest of CFG's side effects.
The guided denoiser becomes

    v = v_u + w (v_c - v_u) + m (v_c - v_f)

with v_f conditioned on the flipped frames: a third batch row per step.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Conditional = Callable[[Tensor, Tensor, Tensor], Tensor]  # fn(x_t, t, drop (B,) bool) -> v
Mirrorable = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]  # fn(x_t, t, drop, flip (B,) bool) -> v


def combine(c: Tensor, u: Tensor | None, f: Tensor | None, scale: float, mirror: float) -> Tensor:
    """The guided prediction from the conditional one c, the unconditional u (None: no CFG) and the one on the
    mirrored picture f (None: no mirror guidance): u + scale (c - u) + mirror (c - f). The DiT's samplers and
    the reactor's head both guide through it."""
    out = c if u is None else u + scale * (c - u)
    return out if f is None else out + mirror * (c - f)


def cfg(fn: Conditional, scale: float) -> Callable[[Tensor, Tensor], Tensor]:
    """A denoiser fn(x, t) from a conditional one that drops its conditioning where `drop` is True."""
    def plain(x: Tensor, t: Tensor) -> Tensor:
        return fn(x, t, torch.zeros(x.shape[0], dtype=torch.bool, device=x.device))

    if scale == 1.0:
        return plain

    def guided(x: Tensor, t: Tensor) -> Tensor:
        drop = torch.arange(2 * x.shape[0], device=x.device) >= x.shape[0]  # second half unconditional
        c, u = fn(torch.cat([x, x]), torch.cat([t, t]), drop).chunk(2)
        return combine(c, u, None, scale, 0.0)

    return guided


def mirror_cfg(fn: Mirrorable, scale: float, mirror: float) -> Callable[[Tensor, Tensor], Tensor]:
    """`cfg` plus mirror guidance of strength `mirror` (0: plain `cfg`), from a conditional that also flips its
    picture left-right where `flip` is True; the three predictions come from one batched call."""
    if mirror == 0.0:
        return cfg(lambda x, t, drop: fn(x, t, drop, torch.zeros_like(drop)), scale)

    def guided(x: Tensor, t: Tensor) -> Tensor:
        b = x.shape[0]
        row = torch.arange(3 * b, device=x.device)
        drop, flip = (row >= b) & (row < 2 * b), row >= 2 * b  # rows: conditional, unconditional, mirrored
        c, u, f = fn(torch.cat([x, x, x]), torch.cat([t, t, t]), drop, flip).chunk(3)
        return combine(c, u, f, scale, mirror)

    return guided
