"""The cosine schedule and the v-objective (Salimans & Ho 2022), the StereoFoley DiT's training target (§2.1).

x_t = alpha(t) x0 + sigma(t) eps with alpha = cos(pi t / 2), sigma = sin(pi t / 2), t in [0, 1];
v = alpha eps - sigma x0, so x0 = alpha x_t - sigma v and eps = sigma x_t + alpha v.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def alpha_sigma(t: Tensor) -> tuple[Tensor, Tensor]:
    """(B,) times -> (B, 1, 1) alpha and sigma."""
    a = torch.cos(0.5 * math.pi * t)[:, None, None]
    s = torch.sin(0.5 * math.pi * t)[:, None, None]
    return a, s


def v_target(x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
    a, s = alpha_sigma(t)
    return a * eps - s * x0


def x0_from_v(x_t: Tensor, v: Tensor, t: Tensor) -> Tensor:
    a, s = alpha_sigma(t)
    return a * x_t - s * v


def v_loss(fn, x0: Tensor, t: Tensor, generator: torch.Generator | None = None,  # noqa: ANN001
           weight: Tensor | None = None) -> Tensor:
    """Mean squared v error of denoiser `fn(x_t, t)` at times t (B,), on clean latents x0 (B, C, T); `weight` (C,)
    scales each channel's squared error (e.g. more on the channels that place a sound), normalised to mean 1 so the
    loss keeps its scale (and a clipped gradient its step).

    The noise is drawn on the generator's own device (a CPU generator stays reproducible whatever device
    trains) and moved to x0's."""
    where = generator.device if generator is not None else x0.device
    eps = torch.randn(x0.shape, generator=generator, device=where, dtype=x0.dtype).to(x0.device)
    a, s = alpha_sigma(t)
    err = (fn(a * x0 + s * eps, t) - v_target(x0, eps, t)).pow(2)
    return (err if weight is None else err * (weight / weight.mean())[:, None].to(err)).mean()
