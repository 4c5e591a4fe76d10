"""Schedule, v-objective, samplers and guidance against exact answers (oracle denoisers)."""
import math

import pytest
import torch

from foley.diffusion import SAMPLERS, alpha_sigma, cfg, mirror_cfg, v_target, x0_from_v


def gaussian_oracle(mu: float, s: float):
    """The exact v of data x0 ~ N(mu, s^2) (per element): E[x0 | x_t] in closed form."""
    def fn(x, t):
        a, sg = alpha_sigma(t)
        var = a ** 2 * s ** 2 + sg ** 2
        x0 = mu + a * s ** 2 * (x - a * mu) / var
        eps = (x - a * x0) / sg.clamp_min(1e-8)
        return a * eps - sg * x0
    return fn


def test_v_parameterisation_round_trips():
    x0, eps, t = torch.randn(3, 4, 5), torch.randn(3, 4, 5), torch.rand(3)
    a, s = alpha_sigma(t)
    xt = a * x0 + s * eps
    assert torch.allclose(x0_from_v(xt, v_target(x0, eps, t), t), x0, atol=1e-5)
    assert torch.allclose(a ** 2 + s ** 2, torch.ones_like(a))


@pytest.mark.parametrize("name,steps,tol", [("ddim", 1, 1e-4), ("ddim", 10, 1e-4), ("dpmpp_2m", 8, 1e-3), ("euler", 200, 0.03)])
def test_samplers_land_on_a_point_mass(name, steps, tol):
    fn = gaussian_oracle(0.7, 1e-4)
    out = SAMPLERS[name](fn, torch.randn(64, 2, 3, generator=torch.Generator().manual_seed(0)), steps)
    assert (out - 0.7).abs().max() < tol


@pytest.mark.parametrize("name,steps", [("ddim", 50), ("dpmpp_2m", 25), ("euler", 200)])
def test_samplers_reproduce_a_gaussian(name, steps):
    out = SAMPLERS[name](gaussian_oracle(-0.5, 0.3), torch.randn(20000, 1, 1, generator=torch.Generator().manual_seed(1)),
                         steps)
    assert out.mean().item() == pytest.approx(-0.5, abs=0.01)
    assert out.std().item() == pytest.approx(0.3, rel=0.05)


def test_guidance_extrapolates_from_the_unconditional():
    def fn(x, t, drop):
        return torch.where(drop[:, None, None], torch.zeros_like(x), torch.ones_like(x))
    x, t = torch.zeros(2, 1, 3), torch.rand(2)
    assert torch.allclose(cfg(fn, 1.0)(x, t), torch.ones_like(x))
    assert torch.allclose(cfg(fn, 6.0)(x, t), 6 * torch.ones_like(x))
    with pytest.raises(ValueError):
        SAMPLERS["ddim"](lambda x, t: x, torch.zeros(1, 1, 1), 0)
    assert math.isfinite(SAMPLERS["dpmpp_2m"](gaussian_oracle(0, 1), torch.randn(4, 1, 1), 1).sum().item())


def test_mirror_guidance_extrapolates_away_from_the_mirrored_prediction():
    """A toy conditional that says +1 for the picture, -1 for its mirror image, 0 unconditioned (and 5 if asked
    to flip an unconditioned row, which must never happen): v = s (1 - 0) + m (1 - (-1))."""
    def fn(x, t, drop, flip):
        v = torch.where(flip, -1.0, 1.0) * (~drop) + 5.0 * (drop & flip)
        return v[:, None, None].expand_as(x).clone()
    x, t = torch.zeros(3, 1, 4), torch.rand(3)
    assert torch.allclose(mirror_cfg(fn, 6.0, 2.5)(x, t), torch.full_like(x, 6.0 + 2 * 2.5))
    assert torch.allclose(mirror_cfg(fn, 1.0, 1.0)(x, t), torch.full_like(x, 3.0))
    plain = cfg(lambda x, t, drop: fn(x, t, drop, torch.zeros_like(drop)), 6.0)(x, t)
    assert torch.equal(mirror_cfg(fn, 6.0, 0.0)(x, t), plain)  # 0: exactly CFG, no mirrored rows
