"""The StereoFoley generator's network: a DiT over codec latents, conditioned on video and a joint embedding (§2.1).

    dit = DiT(PRESETS["tiny"], latent_channels=120)
    v = dit(x_t, t, frames, cond, drop)    # (B, C, T), (B,), (B, T, 3, S, S) uint8, (B, D), (B,) bool -> (B, C, T)

Per-frame video features (`foley.models.video`, one per latent frame, Tv = Tz) are **added** to the projected
noisy latent (§2.1.1; `video_mode` "concat" and "cross" exist for the ablation); the text or audio-example
embedding enters through cross-attention (§2.1.2), as one token beside a learned register token; the timestep
through adaLN-Zero. Where `drop` is set, video and embedding are replaced by learned null embeddings (CFG).
The network knows nothing of the noise process (foley.diffusion does).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Mapping

import torch
from torch import Tensor, nn

from foley.models.layers import Attention, GatedMLP, TimestepEmbedder, modulate
from foley.models.video import FrameEncoder, SoundingHead

VideoMode = Literal["add", "concat", "cross"]


@dataclass(frozen=True)
class DiTConfig:
    """Sizes of the DiT; saved in every checkpoint."""

    width: int = 192
    depth: int = 6
    heads: int = 4
    cond_dim: int = 256  # joint-embedding size
    frame_size: int = 32  # the frame encoder's picture: frame_size x frame_size
    video_mode: VideoMode = "add"
    causal_video: bool = False
    detail: int = 1  # frames are read at frame_size x detail; a second CNN sees that finer picture (video.py)
    sounding: bool = False  # a head on the frame features names where the sounding object is (training only)

    def __post_init__(self) -> None:
        if self.video_mode not in ("add", "concat", "cross"):
            raise ValueError(f"video_mode must be add, concat or cross, got {self.video_mode!r}")
        if self.width % self.heads or self.depth < 1:
            raise ValueError("width must be a multiple of heads, depth >= 1")
        if self.detail < 1 or self.detail & (self.detail - 1):
            raise ValueError(f"detail must be a power of two, got {self.detail}")

    @property
    def read_size(self) -> int:
        """Frames are read at read_size x read_size pixels."""
        return self.frame_size * self.detail


PRESETS: Mapping[str, DiTConfig] = {
    "tiny": DiTConfig(),
    "small": DiTConfig(width=512, depth=12, heads=8),
    "paper": DiTConfig(width=1536, depth=24, heads=24, frame_size=64),  # StereoFoley's size
}


def positions(t: int, width: int, device: torch.device) -> Tensor:
    """(T, W) fixed sinusoidal positions (any length: long clips run in windows anyway)."""
    pos = torch.arange(t, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, width, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / width))
    pe = torch.zeros(t, width, device=device)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    return pe


class Block(nn.Module):
    """Self-attention, cross-attention and a gated MLP, each pre-norm with an adaLN-Zero gated residual."""

    def __init__(self, w: int, heads: int) -> None:
        super().__init__()
        self.n1, self.n2, self.n3 = (nn.LayerNorm(w, elementwise_affine=False, eps=1e-6) for _ in range(3))
        self.attn, self.cross, self.mlp = Attention(w, heads), Attention(w, heads), GatedMLP(w)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(w, 9 * w))
        nn.init.zeros_(self.ada[-1].weight)
        nn.init.zeros_(self.ada[-1].bias)

    def forward(self, x: Tensor, c: Tensor, ctx: Tensor) -> Tensor:
        s1, sc1, g1, s2, sc2, g2, s3, sc3, g3 = self.ada(c).chunk(9, dim=-1)  # (B, W) each
        x = x + g1[:, None] * self.attn(modulate(self.n1(x), s1, sc1))
        x = x + g2[:, None] * self.cross(modulate(self.n2(x), s2, sc2), ctx)
        return x + g3[:, None] * self.mlp(modulate(self.n3(x), s3, sc3))


class DiT(nn.Module):
    """v-prediction network over (B, C, T) latents."""

    def __init__(self, cfg: DiTConfig, latent_channels: int) -> None:
        super().__init__()
        self.cfg, self.channels = cfg, latent_channels
        w = cfg.width
        self.video = FrameEncoder(w, cfg.frame_size, cfg.causal_video, detail=cfg.detail)
        self.null_video = nn.Parameter(torch.zeros(w))
        if cfg.sounding:
            self.sounding_head = SoundingHead(w)
        self.x_in = nn.Linear(latent_channels + (w if cfg.video_mode == "concat" else 0), w)
        self.t_emb = TimestepEmbedder(w)
        self.cond = nn.Linear(cfg.cond_dim, w)
        self.null_cond = nn.Parameter(torch.zeros(w))
        self.register_token = nn.Parameter(torch.randn(w) * 0.02)
        self.blocks = nn.ModuleList(Block(w, cfg.heads) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(w, 2 * w))
        self.out = nn.Linear(w, latent_channels)
        for m in (self.ada_out[-1], self.out):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, t: Tensor, frames: Tensor | None, cond: Tensor | None, drop: Tensor,
                cond_drop: Tensor | None = None, video: Tensor | None = None) -> Tensor:
        """x (B, C, T) noisy latents, t (B,), frames (B, T, 3, S, S) uint8, cond (B, D) or None;
        drop (B,) bool replaces video and embedding by their null embeddings, cond_drop (B,) the embedding only.
        `video` (B, T, W): the frames' features (`self.video(frames)`) computed beforehand, in place of frames. They
        depend on the frames alone, so a sampler computes them once per clip, not once per step (on a CPU the
        frame encoder is most of a step)."""
        b, _, n = x.shape
        keep = (~drop).float()[:, None, None]  # (B, 1, 1)
        keep_c = keep[:, 0] if cond_drop is None else (~(drop | cond_drop)).float()[:, None]  # (B, 1)
        if video is not None and video.shape[1] != n:  # features of more frames would differ at the last frame
            raise ValueError(f"video features cover {video.shape[1]} frames, the latents {n}")
        v = self.video(frames[:, :n]) if video is None else video  # (B, T, W)
        v = keep * v + (1 - keep) * self.null_video
        h = x.transpose(1, 2)  # (B, T, C)
        if self.cfg.video_mode == "concat":
            h = torch.cat([h, v], dim=-1)
        h = self.x_in(h) + positions(n, self.cfg.width, x.device)
        if self.cfg.video_mode == "add":
            h = h + v
        c_tok = self.null_cond.expand(b, -1) if cond is None else self.cond(cond)  # (B, W)
        c_tok = keep_c * c_tok + (1 - keep_c) * self.null_cond
        ctx = torch.stack([c_tok, self.register_token.expand(b, -1)], dim=1)  # (B, 2, W)
        if self.cfg.video_mode == "cross":
            ctx = torch.cat([ctx, v + positions(n, self.cfg.width, x.device)], dim=1)
        c = self.t_emb(t)  # (B, W)
        for blk in self.blocks:
            h = blk(h, c, ctx)
        shift, scale = self.ada_out(c).chunk(2, dim=-1)
        return self.out(modulate(self.norm(h), shift, scale)).transpose(1, 2)  # (B, C, T)

    def config_dict(self) -> dict:
        return {**asdict(self.cfg), "latent_channels": self.channels}


FORMAT = "foley.dit/1"


def save_dit(path, model: DiT, codec_hash: str, half: bool = False, **meta: object) -> str:  # noqa: ANN001
    """Write a DiT checkpoint recording the hash of the codec whose latents it generates; `half` stores the
    weights as float16 (how the shipped ones stay under 16 MiB; they load back into float32)."""
    from foley import checkpoint

    return checkpoint.save(path, FORMAT, model.config_dict(), checkpoint.half_state(model, half), codec_hash=codec_hash,
                           **meta)


def checkpoint_path(model: str) -> Path:
    """base | obj -> the shipped checkpoint; anything else is a path."""
    from foley.checkpoint import shipped

    return shipped(f"dit_{model}.pt") if model in ("base", "obj") else Path(model)


def load_dit(path, codec=None, device: str | torch.device = "cpu") -> tuple[DiT, dict]:  # noqa: ANN001
    """(model in eval mode, checkpoint dict); refuses a checkpoint made for another codec than `codec`."""
    from foley import checkpoint
    from foley.models.codec import latent_hashes

    model, ckpt = checkpoint.load_generator(path, FORMAT, "DiT", "train one with `foley train dit`",
                                            lambda cfg, c: DiT(DiTConfig(**cfg), c),
                                            None if codec is None else latent_hashes(codec))
    return model.to(device).eval(), ckpt
