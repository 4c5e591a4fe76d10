"""Diffusion apart from the networks (as DiT and k-diffusion separate them): schedule, v-objective, samplers, guidance.

A denoiser is any function `fn(x_t, t) -> v` over (B, C, T) tensors and (B,) times in [0, 1]; samplers are plain
functions with one signature `sampler(fn, noise, steps) -> x0`.
"""
from foley.diffusion.schedule import alpha_sigma, v_loss, v_target, x0_from_v
from foley.diffusion.sampling import SAMPLERS, ddim, dpmpp_2m, euler
from foley.diffusion.guidance import cfg, mirror_cfg

__all__ = ["alpha_sigma", "v_loss", "v_target", "x0_from_v", "SAMPLERS", "ddim", "dpmpp_2m", "euler", "cfg", "mirror_cfg"]
