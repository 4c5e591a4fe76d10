"""The SoundReactor network: one video token per frame, a causal transformer over [v1, x1, v2, x2, ...], a diffusion head.

    net = ReactorNet(PRESETS["tiny"], latent_channels=120)
    z = net(frames, latents, drop)          # teacher forcing: (B, T, W) conditions, z[:, k] for latent frame k
    state = net.start(batch=1, cfg=2.0)     # streaming: a KV cache per stream (and one for CFG's null stream)
    x_k = net.step(state, frame_k, nfe=4)   # (B, C) the latent frame of video frame k, never looking ahead

- **Video tokens** (`VideoTokenizer`, or `ext_dinov2.DinoTokenizer` on a frozen DINOv2 from local weights): each frame at S x S and its difference with the previous frame -> a strided
  CNN -> a grid of patch tokens plus an aggregation token -> a shallow transformer -> the aggregation token.
  A frame's token depends on that frame and the one before, nothing later.
- **Transformer**: pre-norm blocks (RMSNorm, rotary attention, SwiGLU), causal, attending to the last `window`
  tokens (a sliding window: streams longer than the training window run forever, memory bounded). `ntk` > 1
  stretches RoPE (NTK-aware) for a wider window than trained. The output at video token v_k (which has seen
  x_1..x_{k-1} and v_1..v_k) conditions the head that makes x_k.
- **CFG on video**: a learned null token replaces every video token of a dropped sample (p = 0.1 in training);
  at inference a second stream with null tokens runs beside the conditional one in the same batch.
Latents are normalised per channel with the statistics of the training set (buffers saved with the model).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping

import torch
from torch import Tensor, nn

from foley.models.head import DiffusionHead, Mode
from foley.models.layers import KVCache, RMSNorm, RotaryBlock, rope_base, rope_tables
from foley.models.video import frame_stack


@dataclass(frozen=True)
class ReactorConfig:
    """Sizes of the reactor; saved in every checkpoint."""

    width: int = 256
    depth: int = 6
    heads: int = 4
    frame_size: int = 32  # frames are read at frame_size x frame_size
    video_width: int = 128  # the tokenizer's inner width
    video_depth: int = 1
    window: int = 128  # attention span in tokens (two per frame): the training window
    rope_base: float = 10000.0
    head_width: int = 256
    head_depth: int = 3
    head_dropout: float = 0.0  # ECT tunes with 0.2
    video_backbone: str = "builtin"  # "builtin" (our small CNN) or "dinov2" (frozen, from local weights)
    dino_preset: str = "vits14"  # which DINOv2 (foley.models.ext_dinov2.PRESETS) when video_backbone = "dinov2"

    def __post_init__(self) -> None:
        if self.width % self.heads or (self.width // self.heads) % 2:
            raise ValueError("width must split into heads of even size")
        if self.window < 2 or self.depth < 1 or (self.video_backbone == "builtin" and self.frame_size % 8):
            raise ValueError("window >= 2, depth >= 1, frame_size a multiple of 8 (the built-in CNN)")
        if self.video_backbone not in ("builtin", "dinov2"):
            raise ValueError(f"video_backbone must be builtin or dinov2, got {self.video_backbone!r}")
        if self.video_backbone == "dinov2" and self.frame_size % 14:
            raise ValueError(f"DINOv2 reads frames in 14-pixel patches: frame_size {self.frame_size} is not a multiple")


PRESETS: Mapping[str, ReactorConfig] = {
    "tiny": ReactorConfig(),  # ~6 M parameters: trains on a 2-core CPU, shipped
    # The paper's scale (the seed gives no exact sizes): a 24-layer, 1024-wide transformer on 224 px frames.
    "paper": ReactorConfig(width=1024, depth=24, heads=16, frame_size=224, video_width=384, video_depth=2,
                           window=600, head_width=1024, head_depth=6),
}


class VideoTokenizer(nn.Module):
    """(B, T, 3, S, S) uint8 frames -> (B, T, W): frame + difference -> CNN grid -> aggregation token."""

    def __init__(self, width: int, size: int, inner: int, depth: int) -> None:
        super().__init__()
        self.size = size
        chans = (32, 64, inner)
        layers: list[nn.Module] = []
        cin = 6
        for i, c in enumerate(chans):
            layers += [nn.Conv2d(cin, c, 3, stride=2, padding=1)]
            if i < len(chans) - 1:
                layers += [nn.GroupNorm(8, c), nn.SiLU()]
            cin = c
        self.conv = nn.Sequential(*layers)
        grid = (size // 8) ** 2
        self.grid_pos = nn.Parameter(torch.randn(grid, inner) * 0.02)
        self.agg = nn.Parameter(torch.randn(inner) * 0.02)
        self.heads = max(1, inner // 64)
        self.blocks = nn.ModuleList(RotaryBlock(inner, self.heads) for _ in range(depth))
        self.norm = RMSNorm(inner)
        self.out = nn.Linear(inner, width)

    def forward(self, frames: Tensor, prev: Tensor | None = None) -> Tensor:
        """frames (B, T, 3, S, S) uint8; `prev` (B, 3, S, S) the frame before the first (else the first itself)."""
        b, t = frames.shape[:2]
        if frames.shape[-2:] != (self.size, self.size):
            raise ValueError(f"frames must be {self.size}x{self.size}, got {tuple(frames.shape[-2:])}")
        full = frames if prev is None else torch.cat([prev[:, None], frames], dim=1)
        x = frame_stack(full, causal=True)[:, -t:].flatten(0, 1)  # (B*T, 6, S, S)
        g = self.conv(x).flatten(2).transpose(1, 2) + self.grid_pos  # (B*T, G, inner)
        h = torch.cat([self.agg.expand(len(g), 1, -1), g], dim=1)
        for blk in self.blocks:  # patches of one frame see each other (they carry grid_pos, no rotation)
            h = blk.full(h)
        return self.out(self.norm(h[:, 0])).view(b, t, -1)


@dataclass
class Objective:
    """What `ReactorNet.forward` returns a loss for: diffusion pre-training (ect_stage None) or ECT at a stage."""

    generator: torch.Generator
    ect_stage: int | None = None
    repeat: int = 4


@dataclass
class StreamState:
    """What a stream carries between frames: KV caches, the position, the previous frame and latent."""

    caches: list[KVCache]
    batch: int
    cfg: float
    pos: int = 0
    prev_frame: Tensor | None = None
    prev_latent: Tensor | None = None  # (B, C) normalised, fed at the next step
    generator: torch.Generator = field(default_factory=torch.Generator)
    mirror: float = 0.0  # mirror guidance: a stream of the left-right mirrored frames rides along too

    @property
    def rows(self) -> tuple[str, ...]:
        """The parallel streams, in batch order: the conditional one, CFG's null-video one, the mirrored one."""
        return ("cond",) + (("null",) if self.cfg != 1.0 else ()) + (("mirror",) if self.mirror > 0 else ())


class ReactorNet(nn.Module):
    """The whole SoundReactor network over (B, C, T) codec latents and (B, T, 3, S, S) frames."""

    def __init__(self, cfg: ReactorConfig, latent_channels: int) -> None:
        super().__init__()
        self.cfg, self.channels = cfg, latent_channels
        w = cfg.width
        if cfg.video_backbone == "dinov2":  # its weights are set by the caller (load_dinov2) or a checkpoint
            from foley.models.ext_dinov2 import PRESETS as DINO, DinoTokenizer, DinoV2

            self.video: nn.Module = DinoTokenizer(w, DinoV2(DINO[cfg.dino_preset]), cfg.video_width, cfg.video_depth)
        else:
            self.video = VideoTokenizer(w, cfg.frame_size, cfg.video_width, cfg.video_depth)
        self.null_video = nn.Parameter(torch.zeros(w))
        self.audio_in = nn.Linear(latent_channels, w)
        self.kind = nn.Parameter(torch.randn(2, w) * 0.02)  # video / audio token type
        self.blocks = nn.ModuleList(RotaryBlock(w, cfg.heads) for _ in range(cfg.depth))
        self.norm = RMSNorm(w)
        self.head = DiffusionHead(latent_channels, w, cfg.head_width, cfg.head_depth, cfg.head_dropout)
        self.register_buffer("mean", torch.zeros(latent_channels))
        self.register_buffer("std", torch.ones(latent_channels))

    # ------------------------------------------------------------------ latents

    def set_stats(self, latents: Tensor) -> None:
        """Per-channel normalisation from training latents (P, C, T)."""
        self.mean.copy_(latents.float().mean(dim=(0, 2)))
        self.std.copy_(latents.float().std(dim=(0, 2)).clamp_min(1e-3))

    def normalize(self, x: Tensor) -> Tensor:  # (..., C)
        return (x - self.mean) / self.std

    def denormalize(self, x: Tensor) -> Tensor:
        return x * self.std + self.mean

    # ------------------------------------------------------------------ teacher forcing

    def video_tokens(self, frames: Tensor, drop: Tensor | None = None, prev: Tensor | None = None) -> Tensor:
        v = self.video(frames, prev)  # (B, T, W)
        if drop is not None:
            v = torch.where(drop[:, None, None], self.null_video.expand_as(v), v)
        return v + self.kind[0]

    def trunk(self, h: Tensor, pos: Tensor, caches: list[KVCache] | None = None, ntk: float = 1.0) -> Tensor:
        d = self.cfg.width // self.cfg.heads
        rope = rope_tables(pos, d, rope_base(self.cfg.rope_base, d, ntk), h.dtype)
        window = int(self.cfg.window * ntk)
        for i, blk in enumerate(self.blocks):
            h = blk(h, pos, window, rope, None if caches is None else caches[i])
        return self.norm(h)

    def forward(self, frames: Tensor, latents: Tensor, drop: Tensor | None = None, prev: Tensor | None = None,
                ntk: float = 1.0, objective: "Objective | None" = None) -> Tensor:
        """frames (B, T, 3, S, S) uint8, latents (B, C, T) (raw codec latents) -> z (B, T, W): the condition of
        latent frame k, computed from frames 1..k and latents 1..k-1 only. With an `objective`, the training loss
        of every latent frame instead (inside forward, so DDP sees the head's parameters used)."""
        b, _, t = latents.shape
        v = self.video_tokens(frames[:, :t], drop, prev)  # (B, T, W)
        a = self.audio_in(self.normalize(latents.transpose(1, 2))) + self.kind[1]  # (B, T, W)
        seq = torch.stack([v, a], dim=2).flatten(1, 2)[:, :-1]  # [v1, x1, ..., vT]: (B, 2T - 1, W)
        z = self.trunk(seq, torch.arange(2 * t - 1, device=seq.device), ntk=ntk)[:, 0::2]  # at the video tokens
        if objective is None:
            return z
        o = objective
        z = z.flatten(0, 1).repeat(o.repeat, 1)  # (R*B*T, W): `repeat` noise draws per frame
        x0 = self.normalize(latents.transpose(1, 2)).flatten(0, 1).repeat(o.repeat, 1)
        if o.ect_stage is None:
            return self.head.edm_loss(x0, z, o.generator)
        return self.head.ect_loss(x0, z, o.ect_stage, o.generator)

    # ------------------------------------------------------------------ streaming

    def start(self, batch: int = 1, cfg: float = 1.0, seed: int = 0, mirror: float = 0.0) -> StreamState:
        """A fresh stream of `batch` parallel sequences (more with guidance: CFG's null-video stream, and with
        `mirror` > 0 a stream of the mirrored frames, ride along in the same batch)."""
        return StreamState([KVCache() for _ in self.blocks], batch, cfg, generator=torch.Generator().manual_seed(seed),
                           mirror=mirror)

    @torch.no_grad()
    def step(self, st: StreamState, frame: Tensor, nfe: int = 4, mode: Mode = "consistency", ntk: float = 1.0) -> Tensor:
        """One video frame (B, 3, S, S) uint8 in -> its latent frame (B, C) out (raw codec scale)."""
        rows = st.rows
        if "mirror" in rows:  # the frame and its mirror image through the tokenizer at once
            prev = None if st.prev_frame is None else torch.cat([st.prev_frame, st.prev_frame.flip(-1)])
            v, v_mirror = self.video_tokens(torch.cat([frame, frame.flip(-1)])[:, None], prev=prev).chunk(2)
        else:
            v, v_mirror = self.video_tokens(frame[:, None], prev=st.prev_frame), None  # (B, 1, W)
        parts = {"cond": v, "null": (self.null_video + self.kind[0]).expand_as(v), "mirror": v_mirror}
        toks = [torch.cat([parts[r] for r in rows])]
        pos = [st.pos]
        if st.prev_latent is not None:  # x_{k-1} enters now, just before v_k
            a = self.audio_in(st.prev_latent) + self.kind[1]
            toks.insert(0, torch.cat([a] * len(rows))[:, None])
            pos.insert(0, st.pos - 1)
        h = self.trunk(torch.cat(toks, dim=1), torch.tensor(pos, device=frame.device), st.caches, ntk)[:, -1]
        noise = torch.randn((st.batch, self.channels), generator=st.generator).to(frame.device)
        z = dict(zip(rows, h.chunk(len(rows))))
        x = self.head.sample(z["cond"], noise, nfe, mode, st.cfg, z.get("null"), st.generator,
                             z_mirror=z.get("mirror"), mirror=st.mirror)
        st.prev_frame, st.prev_latent, st.pos = frame, x, st.pos + 2
        return self.denormalize(x)

    @torch.no_grad()
    def generate(self, frames: Tensor, nfe: int = 4, mode: Mode = "consistency", cfg: float = 1.0, seed: int = 0,
                 ntk: float = 1.0, mirror: float = 0.0) -> Tensor:
        """(B, T, 3, S, S) frames -> (B, C, T) latents, frame by frame (the same steps a stream takes)."""
        st = self.start(frames.shape[0], cfg, seed, mirror)
        return torch.stack([self.step(st, frames[:, k], nfe, mode, ntk) for k in range(frames.shape[1])], dim=-1)

    def config_dict(self) -> dict:
        return {**asdict(self.cfg), "latent_channels": self.channels}


FORMAT = "foley.reactor/1"


def save_reactor(path, model: ReactorNet, codec_hash: str, half: bool = False, **meta: object) -> str:  # noqa: ANN001
    """A reactor checkpoint recording its codec's hash; `half` stores float16 weights (loaded back as float32)."""
    from foley import checkpoint

    state = checkpoint.half_state(model, half, keep=("mean", "std"))
    return checkpoint.save(path, FORMAT, model.config_dict(), state, codec_hash=codec_hash, **meta)


def load_reactor(path, codec=None, device: str | torch.device = "cpu") -> tuple[ReactorNet, dict]:  # noqa: ANN001
    """(model in eval mode, checkpoint); refuses a checkpoint made for another codec than `codec`."""
    from foley import checkpoint
    from foley.models.codec import latent_hashes

    model, ckpt = checkpoint.load_generator(path, FORMAT, "reactor", "train one with `foley train reactor`",
                                            lambda cfg, c: ReactorNet(ReactorConfig(**cfg), c),
                                            None if codec is None else latent_hashes(codec))
    return model.to(device).eval(), ckpt
