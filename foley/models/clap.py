"""A small joint audio–text embedding (the CLAP role; Elizalde et al. 2023, Wu et al. 2023), trained on the world.

Audio (48 kHz, stereo downmixed to mono) -> log-mel (64 bands, 50 frames/s) -> a CNN of four conv blocks ->
time pooling (mean + max) -> `features` (the embedding for FD/MMD) -> a projection into the joint space, and
a class head (13 world classes + "ambience") whose posteriors feed KL and IS. Text -> our own word tokenizer
(vocabulary saved with the model) -> a two-layer transformer -> masked mean -> the same joint space. A
bag-of-words text side is trained beside it on detached audio embeddings, as the trivial baseline.

    clap = load_clap()                                  # the shipped checkpoint
    a = clap.embed_audio(audio, sr)                     # (B, D) unit vectors
    t = clap.embed_text(["a red ball bouncing"])        # (B, D) unit vectors
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from foley import checkpoint
from foley.resample import resample

FORMAT = "foley.clap/1"
SR = 48000
SPECIALS = ("<pad>", "<unk>")
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class ClapConfig:
    """Sizes of the joint embedding; the vocabulary is part of it, so a checkpoint alone rebuilds the model."""

    n_mels: int = 64
    hop: int = 960  # 50 frames/s at 48 kHz
    n_fft: int = 2048
    fmin: float = 30.0
    fmax: float = 20000.0
    channels: tuple[int, ...] = (16, 32, 64, 128)
    width: int = 256  # audio feature size (the FD embedding)
    dim: int = 256  # joint space
    text_width: int = 128
    text_layers: int = 2
    text_heads: int = 4
    max_words: int = 48
    classes: tuple[str, ...] = ()  # class-head labels
    vocab: tuple[str, ...] = SPECIALS

    def __post_init__(self) -> None:
        if tuple(self.vocab[:2]) != SPECIALS:
            raise ValueError(f"vocabulary must start with {SPECIALS}")

    @staticmethod
    def from_dict(d: dict) -> "ClapConfig":
        return ClapConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def words(text: str) -> list[str]:
    """Lower-case words of a caption (the tokenizer's units)."""
    return _WORD.findall(text.lower())


def build_vocab(texts: list[str], min_count: int = 1) -> tuple[str, ...]:
    """SPECIALS + every word seen at least `min_count` times, sorted (deterministic)."""
    counts: dict[str, int] = {}
    for t in texts:
        for w in words(t):
            counts[w] = counts.get(w, 0) + 1
    return SPECIALS + tuple(sorted(w for w, c in counts.items() if c >= min_count))


class Tokenizer:
    """Words -> ids over a fixed vocabulary; unknown words -> <unk>; padded to the longest (<= max_words)."""

    def __init__(self, vocab: tuple[str, ...], max_words: int) -> None:
        self.index = {w: i for i, w in enumerate(vocab)}
        self.max_words = max_words

    def __call__(self, texts: list[str]) -> torch.Tensor:
        ids = [[self.index.get(w, 1) for w in words(t)][: self.max_words] or [1] for t in texts]
        n = max(len(i) for i in ids)
        return torch.tensor([i + [0] * (n - len(i)) for i in ids], dtype=torch.long)  # (B, L)

    def counts(self, texts: list[str]) -> torch.Tensor:
        """(B, V) word counts (the bag-of-words baseline's input)."""
        out = torch.zeros(len(texts), len(self.index))
        for b, t in enumerate(texts):
            for w in words(t):
                out[b, self.index.get(w, 1)] += 1
        return out


def mel_filters(cfg: ClapConfig, sr: int = SR) -> torch.Tensor:
    """(n_mels, n_fft//2+1) triangular mel filters (Slaney-style spacing via the HTK formula)."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = hz(np.linspace(mel(cfg.fmin), mel(min(cfg.fmax, sr / 2)), cfg.n_mels + 2))
    bins = np.fft.rfftfreq(cfg.n_fft, 1 / sr)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.maximum(0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))
    return torch.from_numpy(fb / np.maximum(fb.sum(1, keepdims=True), 1e-8)).float()


class LogMel(nn.Module):
    """(B, N) mono 48 kHz -> (B, n_mels, T) natural-log mel power, T = N // hop + 1."""

    def __init__(self, cfg: ClapConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        self.register_buffer("fb", mel_filters(cfg), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(x.float(), self.cfg.n_fft, self.cfg.hop, window=self.window, center=True,
                          return_complex=True).abs().pow(2)  # (B, F, T)
        return torch.log(self.fb @ spec + 1e-6)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU())


class AudioEncoder(nn.Module):
    """(B, n_mels, T) log-mel -> (B, width) features: conv blocks with 2x2 pooling, then mean+max over time."""

    def __init__(self, cfg: ClapConfig) -> None:
        super().__init__()
        ch = (1,) + tuple(cfg.channels)
        self.blocks = nn.ModuleList(_block(a, b) for a, b in zip(ch[:-1], ch[1:]))
        self.out = nn.Linear(2 * ch[-1], cfg.width)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = ((mel - MEL_MEAN) / MEL_STD).unsqueeze(1)  # (B, 1, M, T)
        for i, blk in enumerate(self.blocks):
            h = blk(h)
            if i < len(self.blocks) - 1:
                h = F.avg_pool2d(h, 2, ceil_mode=True)
        h = h.mean(2)  # (B, C, T')
        return self.out(torch.cat([h.mean(-1), h.amax(-1)], 1))  # (B, width)


MEL_MEAN, MEL_STD = -9.0, 3.0  # rough log-mel level of world audio (a fixed input scale, not learned)


class TextEncoder(nn.Module):
    """(B, L) token ids -> (B, dim): embeddings + positions, a small transformer, masked mean, projection."""

    def __init__(self, cfg: ClapConfig) -> None:
        super().__init__()
        self.tok = nn.Embedding(len(cfg.vocab), cfg.text_width, padding_idx=0)
        self.pos = nn.Parameter(torch.randn(cfg.max_words, cfg.text_width) * 0.02)
        layer = nn.TransformerEncoderLayer(cfg.text_width, cfg.text_heads, 4 * cfg.text_width, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, cfg.text_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.text_width)
        self.proj = nn.Linear(cfg.text_width, cfg.dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pad = ids == 0  # (B, L)
        h = self.body(self.tok(ids) + self.pos[: ids.shape[1]], src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).float()
        return self.proj((self.norm(h) * keep).sum(1) / keep.sum(1).clamp(min=1))  # (B, dim)


@dataclass
class ClapBatch:
    """One contrastive batch: mono audio, captions and soft class targets."""

    mel: torch.Tensor  # (B, n_mels, T) log-mel of mono 48 kHz audio (`Clap.log_mel`)
    captions: list[str]
    targets: torch.Tensor  # (B, n_classes) class shares summing to 1


class Clap(nn.Module):
    """Audio and text towers into one space, a class head, and the bag-of-words baseline text side."""

    def __init__(self, cfg: ClapConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokenizer = Tokenizer(cfg.vocab, cfg.max_words)
        self.mel = LogMel(cfg)
        self.audio = AudioEncoder(cfg)
        self.audio_proj = nn.Sequential(nn.GELU(), nn.Linear(cfg.width, cfg.dim))
        self.head = nn.Sequential(nn.GELU(), nn.Linear(cfg.width, max(1, len(cfg.classes))))
        self.text = TextEncoder(cfg)
        self.bow = nn.Linear(len(cfg.vocab), cfg.dim)
        self.scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.bow_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @property
    def device(self) -> torch.device:
        return self.scale.device

    # ------------------------------------------------------------------ towers
    def log_mel(self, audio: torch.Tensor | np.ndarray, sr: int = SR) -> torch.Tensor:
        """(B, N) or (B, C, N) audio at `sr` -> (B, n_mels, T) log-mel of the mono downmix."""
        return self.mel(prepare(audio, sr).to(self.device))

    def audio_features(self, audio: torch.Tensor | np.ndarray, sr: int = SR) -> torch.Tensor:
        """(B, N) or (B, C, N) audio at `sr` -> (B, width) features (C channels are averaged: mono downmix)."""
        return self.audio(self.log_mel(audio, sr))

    def joint(self, features: torch.Tensor) -> torch.Tensor:
        """(B, width) audio features -> (B, D) unit vectors in the joint space."""
        return F.normalize(self.audio_proj(features), dim=-1)

    def embed_audio(self, audio: torch.Tensor, sr: int = SR) -> torch.Tensor:
        """(B, D) unit vectors in the joint space."""
        return self.joint(self.audio_features(audio, sr))

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """(B, D) unit vectors in the joint space."""
        return F.normalize(self.text(self.tokenizer(texts).to(self.device)), dim=-1)

    def embed_bow(self, texts: list[str]) -> torch.Tensor:
        """(B, D) unit vectors of the bag-of-words baseline text side."""
        return F.normalize(self.bow(self.tokenizer.counts(texts).to(self.device)), dim=-1)

    def posteriors(self, features: torch.Tensor) -> torch.Tensor:
        """(B, width) audio features -> (B, n_classes) class posteriors (softmax)."""
        return self.head(features).softmax(-1)

    # ------------------------------------------------------------------ training
    def forward(self, b: ClapBatch) -> dict[str, torch.Tensor]:
        """The training loss (`loss`): called through a DDP wrapper, whose forward prepares the gradient reduction."""
        return self.loss(b)

    def loss(self, b: ClapBatch) -> dict[str, torch.Tensor]:
        """Symmetric InfoNCE (captions that are equal count as positives), class cross-entropy, BoW baseline."""
        feats = self.audio(b.mel.to(self.device))  # (B, W)
        a = self.joint(feats)
        t = self.embed_text(b.captions)
        same = torch.tensor([[x == y for y in b.captions] for x in b.captions], dtype=torch.float32, device=a.device)
        target = same / same.sum(1, keepdim=True)  # (B, B) symmetric
        nce = _soft_nce(self.scale.clamp(max=math.log(100)).exp() * a @ t.T, target)
        bow = _soft_nce(self.bow_scale.clamp(max=math.log(100)).exp() * a.detach() @ self.embed_bow(b.captions).T, target)
        cls = -(b.targets.to(a.device) * self.head(feats).log_softmax(-1)).sum(-1).mean()
        return {"total": nce + cls + bow, "nce": nce, "cls": cls, "bow": bow}


def _soft_nce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of the audio->text and text->audio cross-entropies against soft targets."""
    return 0.5 * (-(target * logits.log_softmax(1)).sum(1).mean() - (target.T * logits.T.log_softmax(1)).sum(1).mean())


def prepare(audio: torch.Tensor | np.ndarray, sr: int) -> torch.Tensor:
    """(B, N) or (B, C, N) (or (N,)) audio at `sr` -> (B, N) mono at 48 kHz, float32."""
    x = torch.as_tensor(np.asarray(audio) if not torch.is_tensor(audio) else audio).float()
    if x.dim() == 1:
        x = x[None]
    if x.dim() == 3:
        x = x.mean(1)
    if sr != SR:
        x = torch.from_numpy(resample(x.cpu().numpy(), sr, SR))
    return x


def save_clap(path: str | Path, model: Clap, **meta: object) -> str:
    return checkpoint.save(path, FORMAT, asdict(model.cfg), model.state_dict(), **meta)


def load_clap(path: str | Path | None = None, device: str | torch.device = "cpu") -> Clap:
    """The embedding of a checkpoint (default: the shipped one), in eval mode."""
    path = path or checkpoint.shipped("clap_tiny.pt")
    model, _ = checkpoint.load_model(path, FORMAT, "joint embedding", "train one with `foley train clap`",
                                     lambda c: Clap(ClapConfig.from_dict(c)))
    return model.to(device).eval()
