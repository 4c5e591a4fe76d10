"""Samplers: plain functions `sampler(fn, noise, steps) -> x0` over a v-predicting denoiser fn(x_t, t) (k-diffusion's shape).

Times run from 1 (pure noise) to 0 on a uniform grid of `steps` intervals.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from foley.diffusion.schedule import alpha_sigma, x0_from_v

Denoiser = Callable[[Tensor, Tensor], Tensor]


def _grid(steps: int, like: Tensor) -> Tensor:
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return torch.linspace(1.0, 0.0, steps + 1, device=like.device)


@torch.no_grad()
def ddim(fn: Denoiser, noise: Tensor, steps: int) -> Tensor:
    """Deterministic DDIM (Song et al. 2021, eq. 12 with eta = 0) in the v parameterisation."""
    x, ts = noise, _grid(steps, noise)
    for t, s in zip(ts[:-1], ts[1:]):
        tb = t.expand(x.shape[0])
        v = fn(x, tb)
        x0 = x0_from_v(x, v, tb)
        a, sg = alpha_sigma(tb)
        eps = sg * x + a * v
        a2, s2 = alpha_sigma(s.expand(x.shape[0]))
        x = a2 * x0 + s2 * eps
    return x


@torch.no_grad()
def euler(fn: Denoiser, noise: Tensor, steps: int) -> Tensor:
    """Euler on the probability-flow ODE dx/dt = (pi/2) v (the cosine schedule's velocity)."""
    import math

    x, ts = noise, _grid(steps, noise)
    for t, s in zip(ts[:-1], ts[1:]):
        x = x + (s - t) * 0.5 * math.pi * fn(x, t.expand(x.shape[0]))
    return x


@torch.no_grad()
def dpmpp_2m(fn: Denoiser, noise: Tensor, steps: int) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2), good in 8-25 steps; data prediction from v."""
    x, ts = noise, _grid(steps, noise).clamp(1e-4, 1 - 1e-4)
    ts[-1] = 0.0
    old = None
    lam = lambda t: torch.log(alpha_sigma(t)[0] / alpha_sigma(t)[1])  # noqa: E731  log-SNR / 2, (B, 1, 1)
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:])):
        tb, sb = t.expand(x.shape[0]), s.expand(x.shape[0])
        x0 = x0_from_v(x, fn(x, tb), tb)
        if float(s) == 0.0:
            x = x0
            break
        a_s, s_s = alpha_sigma(sb)
        _, s_t = alpha_sigma(tb)
        h = lam(sb) - lam(tb)
        if old is None:
            d = x0
        else:
            h_prev = lam(tb) - lam(ts[i - 1].expand(x.shape[0]))
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * old
        x = (s_s / s_t) * x - a_s * torch.expm1(-h) * d
        old = x0
    return x


SAMPLERS: dict[str, Callable[[Denoiser, Tensor, int], Tensor]] = {"ddim": ddim, "euler": euler, "dpmpp_2m": dpmpp_2m}
