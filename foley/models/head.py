"""The SoundReactor diffusion head: a small MLP that turns one transformer output into one audio latent frame.

MAR-style (Li et al. 2024): residual MLP blocks with adaLN from (transformer output + noise level). The head
owns its noise process, its losses and its samplers (EDM parameterisation, Karras et al. 2022):

    D(x; sigma) = c_skip x + c_out F(c_in x, ln(sigma) / 4 | z)

- `edm_loss`: diffusion pre-training (ln sigma ~ N(P_mean, P_std), weight (sigma^2 + sd^2) / (sigma sd)^2).
- `ect_loss`: Easy Consistency Tuning (Geng et al. 2024): f(x + t eps, t) is pulled towards the stop-gradient
  f(x + r eps, r) with r = t (1 - n(t) / q^(stage + 1)), n(t) = 1 + k sigmoid(-b t) (the "sigmoid" mapping),
  weight 1 / (t - r); r clipped at 0 makes the first stage the denoising loss, so tuning starts where
  pre-training ended and the gap t - r halves every stage.
- `sample`: `"diffusion"` (Euler on Karras sigmas, `nfe` evaluations) or `"consistency"` (1-4 evaluations:
  denoise from sigma_max, re-noise to the next sigma, denoise again). CFG combines a conditional and an
  unconditional z at every evaluation.

Latents are per-channel normalised by the caller (unit scale), so sigma_data = 1.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from foley.diffusion.guidance import combine
from foley.models.layers import timestep_embedding

SIGMA_MAX, SIGMA_MIN = 80.0, 0.002
P_MEAN, P_STD = -1.1, 2.0  # ECT's noise distribution, used for pre-training too (tuning starts where it ended)
CONSISTENCY_SIGMAS = {1: (SIGMA_MAX,), 2: (SIGMA_MAX, 1.6), 3: (SIGMA_MAX, 2.4, 0.8), 4: (SIGMA_MAX, 3.2, 1.2, 0.4)}
Mode = Literal["diffusion", "consistency"]


class ResBlock(nn.Module):
    """LayerNorm -> adaLN shift/scale -> MLP (SiLU, dropout) -> gated residual."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Dropout(dropout), nn.Linear(width, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))
        nn.init.zeros_(self.ada[-1].weight)
        nn.init.zeros_(self.ada[-1].bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        return self.apply(x, self.ada(c).chunk(3, dim=-1))

    def apply(self, x: Tensor, mod: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        """The block with its adaLN (shift, scale, gate) already computed from the condition."""
        shift, scale, gate = mod
        return x + gate * self.mlp(self.norm(x) * (1 + scale) + shift)


class DiffusionHead(nn.Module):
    """(N, C) noisy latent frames, (N,) sigmas, (N, Wz) conditions -> (N, C) denoised frames."""

    def __init__(self, channels: int, cond_width: int, width: int = 256, depth: int = 3, dropout: float = 0.0,
                 sigma_data: float = 1.0) -> None:
        super().__init__()
        self.channels, self.sigma_data = channels, sigma_data
        self.x_in = nn.Linear(channels, width)
        self.t_in = nn.Sequential(nn.Linear(256, width), nn.SiLU(), nn.Linear(width, width))
        self.z_in = nn.Linear(cond_width, width)
        self.blocks = nn.ModuleList(ResBlock(width, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.out = nn.Linear(width, channels)
        for m in (self.ada_out[-1], self.out):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def net(self, x: Tensor, c_noise: Tensor, z: Tensor) -> Tensor:
        """The raw network F."""
        return self._features(x, self.t_in(timestep_embedding(c_noise, 256)) + self.z_in(z))

    def _features(self, x: Tensor, c: Tensor) -> Tensor:
        """F's body from its input x and its adaLN condition c (noise-level features + condition features)."""
        return self._body(x, self._modulations(c))

    def _modulations(self, c: Tensor) -> list[tuple[Tensor, ...]]:
        """Every adaLN (shift, scale[, gate]) of F under conditions c (..., W): they depend on c alone, not on x,
        so a sampler computes them for all its noise levels in one batch (each weight read once per frame)."""
        return [blk.ada(c).chunk(3, dim=-1) for blk in self.blocks] + [self.ada_out(c).chunk(2, dim=-1)]

    def _body(self, x: Tensor, mods: list[tuple[Tensor, ...]]) -> Tensor:
        h = self.x_in(x)
        for blk, mod in zip(self.blocks, mods):
            h = blk.apply(h, mod)
        shift, scale = mods[-1]
        return self.out(self.norm(h) * (1 + scale) + shift)

    def _noise_features(self, sigmas: tuple[float, ...], device: torch.device) -> Tensor:
        """(len(sigmas), W) noise-level features of fixed sigmas, in one pass; kept between frames while the
        weights are unchanged (their in-place version counters) and no gradient is wanted."""
        key = (sigmas, str(device), tuple(_version(p) for p in self.t_in.parameters()))
        cached = getattr(self, "_noise_cache", None)
        if cached is not None and cached[0] == key and not torch.is_grad_enabled():
            return cached[1]
        sig = torch.tensor(sigmas, dtype=torch.float32, device=device)
        feats = self.t_in(timestep_embedding(sig.clamp_min(1e-12).log() / 4, 256))
        if not torch.is_grad_enabled():
            self._noise_cache = (key, feats)
        return feats

    def scalings(self, s):  # noqa: ANN001, ANN201 - a float or a tensor of sigmas, and the same back
        """EDM's (c_skip, c_out, c_in) at noise level(s) s."""
        sd = self.sigma_data
        norm = (s * s + sd * sd) ** 0.5
        return sd * sd / (norm * norm), s * sd / norm, 1 / norm

    def denoise(self, x: Tensor, sigma: Tensor, z: Tensor) -> Tensor:
        """D(x; sigma | z) with EDM preconditioning; exactly x where sigma = 0 (the consistency boundary)."""
        c_skip, c_out, c_in = self.scalings(sigma[:, None])
        c_noise = sigma.clamp_min(1e-12).log() / 4
        return c_skip * x + c_out * self.net(c_in * x, c_noise, z)

    # ------------------------------------------------------------------ losses

    def edm_loss(self, x0: Tensor, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Diffusion pre-training loss on clean frames x0 (N, C) under conditions z (N, Wz)."""
        n = x0.shape[0]
        sigma = (P_MEAN + P_STD * torch.randn(n, generator=generator)).exp().to(x0.device)
        eps = torch.randn(x0.shape, generator=generator).to(x0.device)
        weight = (sigma ** 2 + self.sigma_data ** 2) / (sigma * self.sigma_data) ** 2
        d = self.denoise(x0 + sigma[:, None] * eps, sigma, z)
        return (weight[:, None] * (d - x0) ** 2).mean()

    def ect_loss(self, x0: Tensor, z: Tensor, stage: int, generator: torch.Generator | None = None,
                 q: float = 2.0, k: float = 8.0, b: float = 1.0) -> Tensor:
        """Easy Consistency Tuning loss at tuning stage `stage` (0, 1, ...; the gap t - r shrinks by q each)."""
        n = x0.shape[0]
        t = (P_MEAN + P_STD * torch.randn(n, generator=generator)).exp().to(x0.device)
        r = (t * (1 - (1 + k * torch.sigmoid(-b * t)) / q ** (stage + 1))).clamp_min(0.0)
        eps = torch.randn(x0.shape, generator=generator).to(x0.device)
        cpu_state = torch.get_rng_state()
        cuda_state = torch.cuda.get_rng_state(x0.device) if x0.is_cuda else None
        f_t = self.denoise(x0 + t[:, None] * eps, t, z)
        with torch.no_grad():  # the same dropout masks for the target (ECT's shared randomness)
            torch.set_rng_state(cpu_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state(cuda_state, x0.device)
            f_r = self.denoise(x0 + r[:, None] * eps, r, z.detach())
            f_r = torch.where((r > 0)[:, None], f_r, x0)
        return ((f_t - f_r) ** 2).mean(-1).div(t - r).mean()

    # ------------------------------------------------------------------ sampling

    @torch.no_grad()
    def sample(self, z: Tensor, noise: Tensor, nfe: int, mode: Mode = "consistency", cfg: float = 1.0,
               z_null: Tensor | None = None, generator: torch.Generator | None = None,
               z_mirror: Tensor | None = None, mirror: float = 0.0) -> Tensor:
        """(N, C) clean frames from `noise` (N, C) ~ N(0, 1) under z (N, Wz); `nfe` network evaluations (each a
        batch of 2N with CFG, where `z_null` (N, Wz) is the unconditional z; one more N with mirror guidance, where
        `z_mirror` is z of the mirrored frames: D += mirror (D(z) - D(z_mirror))). Consistency re-noising draws
        from `generator`."""
        if nfe < 1:
            raise ValueError(f"nfe must be >= 1, got {nfe}")

        if mode not in ("diffusion", "consistency"):
            raise ValueError(f"mode must be diffusion or consistency, got {mode!r}")
        guided = cfg != 1.0 and z_null is not None
        mirrored = mirror > 0 and z_mirror is not None
        if mode == "consistency":
            sigmas = CONSISTENCY_SIGMAS.get(nfe) or karras(nfe, 0.2, SIGMA_MAX)
        else:
            sigmas = karras(nfe, SIGMA_MIN, SIGMA_MAX)
        # what every evaluation shares, computed once: the condition's features (every row: conditional, null,
        # mirrored) and the features of each noise level (the sigmas are fixed, so they are kept between frames)
        rows = [z] + ([z_null] if guided else []) + ([z_mirror] if mirrored else [])
        zc = self.z_in(torch.cat(rows))
        tc = self._noise_features(tuple(float(s) for s in sigmas), z.device)
        mods = self._modulations(tc[:, None] + zc[None])  # (levels, N, .) each: every level's adaLN in one batch

        def d(x: Tensor, i: int) -> Tensor:  # D(x; sigmas[i] | z), as `denoise` (scalings on Python floats)
            c_skip, c_out, c_in = self.scalings(float(sigmas[i]))
            xx = torch.cat([x] * len(rows)) if len(rows) > 1 else x
            out = c_skip * xx + c_out * self._body(c_in * xx, [tuple(m[i] for m in mod) for mod in mods])
            if len(rows) == 1:
                return out
            parts = out.chunk(len(rows))
            return combine(parts[0], parts[1] if guided else None, parts[-1] if mirrored else None, cfg, mirror)

        if mode == "consistency":
            x0 = d(noise * sigmas[0], 0)
            for i, s in enumerate(sigmas[1:], 1):
                eps = torch.randn(noise.shape, generator=generator).to(noise.device)
                x0 = d(x0 + s * eps, i)
            return x0
        x = noise * sigmas[0]
        for i, (s, s_next) in enumerate(zip(sigmas, sigmas[1:] + (0.0,))):
            den = d(x, i)
            x = x + (s_next - s) * (x - den) / s  # Euler on the probability-flow ODE; the last step lands on D
        return x


def _version(p: Tensor) -> int:
    """A parameter's in-place version counter; an inference tensor (weights loaded under `torch.inference_mode`)
    has none and cannot be trained, so it counts as unchanged."""
    return -1 if p.is_inference() else p._version


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> tuple[float, ...]:
    """n noise levels from sigma_max down to sigma_min (Karras et al. 2022, eq. 5); one level is sigma_max."""
    if n == 1:
        return (sigma_max,)
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return tuple((a + i / (n - 1) * (b - a)) ** rho for i in range(n))


def ect_stage(step: int, steps: int, stages: int) -> int:
    """The tuning stage of step `step` out of `steps` split into `stages` equal parts."""
    return min(stages - 1, int(stages * step / max(1, steps)))
