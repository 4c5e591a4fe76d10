"""Classifier-free guidance (Ho & Salimans 2022): v = v_uncond + w (v_cond - v_uncond), in one batched call."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Conditional = Callable[[Tensor, Tensor, Tensor], Tensor]  # fn(x_t, t, drop (B,) bool) -> v


def cfg(fn: Conditional, scale: float) -> Callable[[Tensor, Tensor], Tensor]:
    """A denoiser fn(x, t) from a conditional one that drops its conditioning where `drop` is True."""
    def plain(x: Tensor, t: Tensor) -> Tensor:
        return fn(x, t, torch.zeros(x.shape[0], dtype=torch.bool, device=x.device))

    if scale == 1.0:
        return plain

    def guided(x: Tensor, t: Tensor) -> Tensor:
        drop = torch.arange(2 * x.shape[0], device=x.device) >= x.shape[0]  # second half unconditional
        c, u = fn(torch.cat([x, x]), torch.cat([t, t]), drop).chunk(2)
        return u + scale * (c - u)

    return guided
