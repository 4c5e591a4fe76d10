"""Which object sounds: a small detector that says, per video frame, where the object whose sound dominates is.

Every part of foley that places sound (the DiT, the spatializer choosing among tracks) needs to know *which* of
the objects on screen is heard in each frame. What the picture holds is enough: on the Procedural Foley world, a
classifier given each object's class, size, place and event times (the truth of what a picture shows) names the
dominant object's position bin in 99% of the frames, and 96% without the event times (docs/benchmarks.md). The
largest object is right in 72%.

The detector is fully convolutional, so what it learns of one place holds at every place: a strided CNN per frame
(the frame and its differences with the previous and next frame, `foley.models.video.frame_stack`) gives a grid of
cells; two temporal convolutions per cell (+-8 frames together) see the moment an object strikes, barks or starts;
each cell scores "the sound comes from here". The scores of a column are pooled (log-sum-exp over its rows), and a
"none" score from the whole frame says that no object dominates. So the output per frame is a distribution over the
grid's columns plus "none", and within each column an offset, which together give the sounding object's x in
[-1, 1] (frame coordinates, as `foley.tracks.Track.x`) and how sure the detector is.

Trained on the world's exact ground truth (`foley train sounding`); the batch is a `SoundingBatch`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foley import checkpoint
from foley.models.video import frame_stack, resize_frames, strided_cnn

FORMAT = "foley.sounding/1"


@dataclass(frozen=True)
class SoundingConfig:
    """Sizes of the detector."""

    size: int = 64  # frames are read at size x size
    channels: tuple[int, ...] = (32, 64, 96)  # one stride-2 convolution each: the grid is size / 2**len
    hidden: int = 96  # width of the per-cell temporal convolutions
    reach: int = 4  # frames each side, per temporal convolution (two of them)

    @property
    def grid(self) -> int:
        return self.size // 2 ** len(self.channels)

    @property
    def context(self) -> int:
        """Frames each side that reach a frame's answer: the two temporal convolutions, and one more for the frame
        differences (a clip's edge frame has none)."""
        return 2 * self.reach + 1

    @staticmethod
    def from_dict(d: dict) -> "SoundingConfig":
        return SoundingConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclass
class SoundingBatch:
    """Clips and their truth: frames (B, T, 3, S, S) uint8; x (B, T) of the dominant object, NaN where none."""

    frames: Tensor
    x: Tensor


@dataclass
class Located:
    """Per frame: x of the object most likely heard, if one is (the best column and its offset), how sure the detector
    is of that column among the columns, and the probability that some object dominates the frame at all."""

    x: Tensor  # (B, T)
    confidence: Tensor  # (B, T) the column's probability given that an object dominates
    heard: Tensor  # (B, T) 1 - the probability of "none"


class SoundingDetector(nn.Module):
    """(B, T, 3, S, S) uint8 frames -> per frame logits over the grid's columns and "none", and column offsets."""

    def __init__(self, cfg: SoundingConfig = SoundingConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.channels[-1]
        self.conv = strided_cnn(9, cfg.channels)
        self.pos = nn.Parameter(torch.zeros(c, cfg.grid, cfg.grid))  # where in the frame (on-screen edges differ)
        k, r = 2 * cfg.reach + 1, cfg.reach
        self.time = nn.Sequential(nn.Conv1d(c, cfg.hidden, k, padding=r), nn.SiLU(),
                                  nn.Conv1d(cfg.hidden, cfg.hidden, k, padding=r), nn.SiLU())
        self.cell = nn.Conv1d(cfg.hidden, 2, 1)  # per cell: score, offset within its column
        self.none = nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden), nn.SiLU(), nn.Linear(cfg.hidden, 1))

    def forward(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """-> logits (B, T, G + 1) over the G columns and "none" (last), offsets (B, T, G) in (-0.5, 0.5) columns."""
        b, t = frames.shape[:2]
        s, g = self.cfg.size, self.cfg.grid
        if frames.shape[-2:] != (s, s):
            raise ValueError(f"frames must be {s}x{s}, got {tuple(frames.shape[-2:])}")
        h = self.conv(frame_stack(frames, causal=False).flatten(0, 1)) + self.pos  # (B*T, C, G, G)
        c = h.shape[1]
        h = h.view(b, t, c, g * g).permute(0, 3, 2, 1).reshape(b * g * g, c, t)  # each cell through time
        h = self.time(h)  # (B*G*G, H, T)
        cell = self.cell(h).view(b, g, g, 2, t)  # (B, rows, cols, 2, T)
        score, off = cell[:, :, :, 0], cell[:, :, :, 1]  # (B, rows, cols, T)
        cols = torch.logsumexp(score, dim=1)  # (B, cols, T)
        w = torch.softmax(score, dim=1)  # which row of the column holds it
        offsets = 0.5 * torch.tanh((w * off).sum(1))  # (B, cols, T)
        pooled = h.view(b, g * g, -1, t).mean(1).transpose(1, 2)  # (B, T, H)
        logits = torch.cat([cols.transpose(1, 2), self.none(pooled)], dim=-1)  # (B, T, G + 1)
        return logits, offsets.transpose(1, 2)

    def targets(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T) x (NaN: none) -> class (B, T) (a column, or G for none) and the offset in its column (B, T)."""
        g = self.cfg.grid
        pos = ((x.clamp(-1, 1) + 1) / 2 * g).nan_to_num(0.0)  # columns from the left edge
        col = pos.floor().clamp(0, g - 1)
        cls = torch.where(torch.isnan(x), g, col.long())
        return cls, (pos - col - 0.5).clamp(-0.5, 0.5)

    def loss(self, batch: SoundingBatch) -> dict[str, Tensor]:
        """Cross-entropy over columns + none, and the offset's L1 in columns where an object dominates."""
        return self.loss_of(*self(batch.frames), batch.x)

    def loss_of(self, logits: Tensor, offsets: Tensor, x: Tensor) -> dict[str, Tensor]:
        """`loss` from the forward's outputs (so a DDP wrapper can run the forward and reduce the gradients)."""
        cls, off = self.targets(x)
        ce = F.cross_entropy(logits.flatten(0, 1), cls.flatten())
        seen = cls < self.cfg.grid
        got = offsets.gather(-1, cls.clamp(max=self.cfg.grid - 1)[..., None])[..., 0]
        l1 = (got - off).abs()[seen].mean() if seen.any() else logits.sum() * 0
        return {"total": ce + l1, "ce": ce, "offset": l1}

    @torch.no_grad()
    def locate(self, frames: Tensor, chunk: int = 200) -> Located:
        """(B, T, 3, H, W) uint8 frames of any size -> where the sound comes from in each frame.

        Long clips run in overlapping chunks of `chunk` frames (each frame is taken from the chunk where it has
        the whole temporal context), so memory is flat in the clip's length."""
        s, g = self.cfg.size, self.cfg.grid
        if frames.shape[-2:] != (s, s):
            frames = resize_frames(frames, s)
        frames = frames.to(self.pos.device)
        t, ctx = frames.shape[1], self.cfg.context
        parts = []
        for a in range(0, t, chunk):
            lo, b = max(0, a - ctx), min(t, a + chunk)
            lg, of = self(frames[:, lo:min(t, b + ctx)])
            parts.append((lg[:, a - lo:b - lo], of[:, a - lo:b - lo]))
        logits = torch.cat([p[0] for p in parts], 1)
        offsets = torch.cat([p[1] for p in parts], 1)
        p = torch.softmax(logits.float(), -1)
        cols = p[..., :g] / p[..., :g].sum(-1, keepdim=True).clamp_min(1e-12)
        best = cols.argmax(-1)  # (B, T)
        x = (best + 0.5 + offsets.gather(-1, best[..., None])[..., 0]) / g * 2 - 1
        return Located(x.cpu(), cols.gather(-1, best[..., None])[..., 0].cpu(), (1 - p[..., g]).cpu())


def save_sounding(path: str | Path, model: SoundingDetector, **meta: object) -> str:
    return checkpoint.save(path, FORMAT, asdict(model.cfg), model.state_dict(), **meta)


def load_sounding(path: str | Path | None = None, device: str | torch.device = "cpu") -> SoundingDetector:
    """The detector of a checkpoint (default: the shipped one), in eval mode."""
    path = path or checkpoint.shipped("sounding_tiny.pt")
    model, _ = checkpoint.load_model(path, FORMAT, "sounding detector", "train one with `foley train sounding`",
                                     lambda c: SoundingDetector(SoundingConfig.from_dict(c)))
    return model.to(device).eval()
