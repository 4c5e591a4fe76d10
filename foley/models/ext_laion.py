"""LAION-CLAP's audio branch (Wu et al. 2023, "Large-scale Contrastive Language-Audio Pretraining") as an FD embedder.

Parameter names follow laion_clap/clap_module/htsat.py and model.py (LAION-AI/CLAP): `audio_branch.*` (HTS-AT,
Chen et al. 2022, a Swin transformer over a 4-way folded log-mel) and `audio_projection.{0,2}.*`, so
`630k-audioset-best.pt`-style files (`{"state_dict": {"module.audio_branch...": ...}}`, with or without the
`module.` prefix) load with every audio key matched. Ignored on load: the text branch (RoBERTa, `text_branch.*`,
`text_projection.*`, `text_transform.*`), `audio_transform.*` and `logit_scale_*` (text-side or training only:
only audio is embedded here), and `audio_branch.spectrogram_extractor.stft.conv_{real,imag}.weight`
(torchlibrosa's Hann DFT basis, a pure front-end constant: torch.stft computes the same transform); the stored
mel filters `audio_branch.logmel_extractor.melW` are loaded and used. Not supported: fusion checkpoints
(`*-fusion-*.pt`) and PANN-based audio branches. Assumed, not in the weights: HTS-AT's front end (48 kHz,
n_fft 1024, hop 480), patch stride = patch size, and the ReLU in the projection (CLAP's default mlp_act).
Inference follows laion_clap's get_audio_embedding_from_data: int16 round trip, clips up to 10 s repeated
then zero-padded to 10 s ("repeatpad"); features = the 512-d unit-norm projected embedding. Longer clips (where
laion_clap takes one random 10 s crop) are cut into ceil(N / 10 s) evenly spaced 10 s windows whose embeddings
are averaged, so features are deterministic.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from foley.models.embedders import EmbedderError, _slaney_fb, load_exact
from foley.models.layers import Mlp

_SKIP = ("text_branch.", "text_projection.", "text_transform.", "audio_transform.", "logit_scale",
         "audio_branch.spectrogram_extractor.")


def _rel_index(w: int) -> torch.Tensor:
    """(w*w, w*w) Swin relative-position index into the (2w-1)^2 bias table."""
    c = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)  # (2, w*w)
    rel = (c[:, :, None] - c[:, None, :]).permute(1, 2, 0) + (w - 1)  # (w*w, w*w, 2)
    return rel[..., 0] * (2 * w - 1) + rel[..., 1]


def _windows(x: torch.Tensor, w: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/w * W/w, w*w, C) non-overlapping w x w windows."""
    b, h, wd, c = x.shape
    return x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, c)


def _shift_mask(res: int, w: int, s: int) -> torch.Tensor:
    """(nW, w*w, w*w) additive mask (0 / -100) keeping shifted windows from mixing regions, as Swin's."""
    img = torch.zeros(1, res, res, 1)
    cuts = (slice(0, -w), slice(-w, -s), slice(-s, None))
    for i, (hs, ws) in enumerate((hs, ws) for hs in cuts for ws in cuts):
        img[:, hs, ws] = i
    win = _windows(img, w)[..., 0]  # (nW, w*w)
    m = win[:, None, :] - win[:, :, None]  # (nW, w*w, w*w)
    return m.masked_fill(m != 0, -100.0).masked_fill(m == 0, 0.0)


class _WindowAttention(nn.Module):
    def __init__(self, dim: int, w: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * w - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", _rel_index(w))
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)  # (b, H, n, d) each
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)  # (n, n, H)
        attn = (q * (c // self.heads) ** -0.5) @ k.transpose(-2, -1) + bias.permute(2, 0, 1)  # (b, H, n, n)
        if mask is not None:
            attn = (attn.view(-1, mask.shape[0], self.heads, n, n) + mask[None, :, None]).view(b, self.heads, n, n)
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


class _SwinBlock(nn.Module):
    def __init__(self, dim: int, res: int, heads: int, w: int, shift: int, hidden: int) -> None:
        super().__init__()
        if res <= w:  # as Swin: one window covers the map, no shift
            w, shift = res, 0
        self.res, self.w, self.shift = res, w, shift
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn, self.mlp = _WindowAttention(dim, w, heads), Mlp(dim, hidden)
        self.register_buffer("attn_mask", _shift_mask(res, w, shift) if shift else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, res*res, C) -> same."""
        b, _, c = x.shape
        r, w, s = self.res, self.w, self.shift
        y = self.norm1(x).view(b, r, r, c)
        if s:
            y = torch.roll(y, (-s, -s), (1, 2))
        y = self.attn(_windows(y, w), self.attn_mask)  # (B*nW, w*w, C)
        y = y.view(b, r // w, r // w, w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, r, r, c)
        if s:
            y = torch.roll(y, (s, s), (1, 2))
        x = x + y.reshape(b, r * r, c)
        return x + self.mlp(self.norm2(x))


class _PatchMerging(nn.Module):
    def __init__(self, res: int, dim: int) -> None:
        super().__init__()
        self.res = res
        self.reduction, self.norm = nn.Linear(4 * dim, 2 * dim, bias=False), nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, res*res, C) -> (B, res*res/4, 2C)."""
        b, _, c = x.shape
        x = x.view(b, self.res, self.res, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)  # (B, r/2, r/2, 4C)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class HTSAT(nn.Module):
    """HTS-AT (Chen et al. 2022) as CLAP's audio branch: log-mel, bn0, time folded into 4 bands, Swin, mean token."""

    sr, n_fft, hop, fmin, fmax = 48000, 1024, 480, 50.0, 14000.0

    def __init__(self, mel_bins: int = 64, spec_size: int = 256, patch: int = 4, dim: int = 96,
                 depths: tuple[int, ...] = (2, 2, 6, 2), heads: tuple[int, ...] = (4, 8, 16, 32), window: int = 8,
                 classes: int = 527, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.mel_bins, self.spec_size, self.ratio = mel_bins, spec_size, spec_size // mel_bins
        self.logmel_extractor = nn.Module()
        self.logmel_extractor.register_buffer("melW", _slaney_fb(self.sr, self.n_fft, mel_bins, self.fmin, self.fmax))
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.bn0 = nn.BatchNorm2d(mel_bins)
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(1, dim, patch, patch)
        self.patch_embed.norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList()
        grid = spec_size // patch
        for i, (d, h) in enumerate(zip(depths, heads)):
            layer, c, r = nn.Module(), dim * 2 ** i, grid // 2 ** i
            layer.blocks = nn.ModuleList(_SwinBlock(c, r, h, window, window // 2 if j % 2 else 0, int(c * mlp_ratio))
                                         for j in range(d))
            layer.downsample = _PatchMerging(r, c) if i < len(depths) - 1 else None
            self.layers.append(layer)
        width = dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(width)
        sf = spec_size // 2 ** (len(depths) - 1) // patch // self.ratio
        self.tscam_conv = nn.Conv2d(width, classes, (sf, 3), padding=(0, 1))  # tagging head: unused, kept for the keys
        self.head = nn.Linear(classes, classes)
        self.width = width

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, L) at 48 kHz, L at most (spec_size * ratio - 1) hops -> (B, width) HTS-AT's `embedding`."""
        spec = torch.stft(wave, self.n_fft, self.hop, window=self.window, center=True, pad_mode="reflect",
                          return_complex=True).abs().pow(2)  # (B, F, T)
        x = 10 * torch.log10(torch.clamp(spec.transpose(1, 2) @ self.logmel_extractor.melW, min=1e-10))  # (B, T, M)
        x = self.bn0(x.transpose(1, 2).unsqueeze(-1)).squeeze(-1).transpose(1, 2).unsqueeze(1)  # (B, 1, T, M)
        tt, tf = self.spec_size * self.ratio, self.spec_size // self.ratio
        if x.shape[2] < tt:
            x = F.interpolate(x, (tt, x.shape[3]), mode="bicubic", align_corners=True)  # (B, 1, tt, M)
        if x.shape[3] < tf:
            x = F.interpolate(x, (x.shape[2], tf), mode="bicubic", align_corners=True)  # (B, 1, tt, tf)
        b, _, t, f = x.shape
        x = x.transpose(2, 3).reshape(b, 1, f, self.ratio, t // self.ratio).permute(0, 1, 3, 2, 4)  # (B, 1, r, F, T/r)
        x = self.patch_embed.proj(x.reshape(b, 1, self.ratio * f, t // self.ratio))  # (B, dim, g, g)
        x = self.patch_embed.norm(x.flatten(2).transpose(1, 2))  # (B, g*g, dim)
        for layer in self.layers:
            for blk in layer.blocks:
                x = blk(x)
            if layer.downsample is not None:
                x = layer.downsample(x)
        return self.norm(x).mean(1)  # (B, width): HTS-AT's avg-pooled latent


class LaionClapAudio(nn.Module):
    """LAION-CLAP audio tower (Wu et al. 2023): HTS-AT + 2-layer projection, unit-norm 512-d audio embeddings."""

    sr, chunk = 48000, 8  # chunk: 10 s windows a call

    def __init__(self, joint: int = 512, **htsat: object) -> None:
        super().__init__()
        self.audio_branch = HTSAT(**htsat)  # type: ignore[arg-type]
        self.audio_projection = nn.Sequential(nn.Linear(self.audio_branch.width, joint), nn.ReLU(),
                                              nn.Linear(joint, joint))
        tt = self.audio_branch.spec_size * self.audio_branch.ratio
        self.clip = min(480000, (tt - 1) * HTSAT.hop)  # 10 s for HTS-AT-tiny (1001 of its 1024 frames)

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, clip) at 48 kHz -> (B, joint) unit-norm embeddings, as laion_clap's get_audio_embedding."""
        return F.normalize(self.audio_projection(self.audio_branch(wave)), dim=-1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, N) at 48 kHz -> (B, joint): repeat-padded to 10 s, or the mean over evenly spaced 10 s windows."""
        wave = torch.trunc(wave.clamp(-1, 1) * 32767.0) / 32767.0  # laion_clap's float -> int16 -> float
        n = wave.shape[-1]
        if n <= self.clip:
            reps = self.clip // n
            return self.embed(F.pad(wave.repeat(1, reps), (0, self.clip - reps * n)))  # "repeatpad"
        starts = torch.linspace(0, n - self.clip, math.ceil(n / self.clip)).round().long().tolist()
        segs = torch.stack([wave[:, s: s + self.clip] for s in starts], 1)  # (B, S, clip)
        emb = torch.cat([self.embed(c) for c in segs.flatten(0, 1).split(self.chunk)])  # (B*S, joint)
        return emb.view(*segs.shape[:2], -1).mean(1)  # (B, joint)


def _spec_size(state: dict, mel: int, patch: int, depths: list[int], window: int, sf: int) -> int:
    """HTS-AT's input size (256 for the released models): the one agreeing with the tagging conv and shift masks."""
    masks = {k.split(".attn_mask")[0]: v.shape[0] for k, v in state.items() if k.endswith(".attn_mask")}
    for s in [256] + list(range(mel, 4097, mel)):
        ratio = s // mel
        if ratio < 1 or s // 2 ** (len(depths) - 1) // patch // ratio != sf:
            continue
        want = {}
        for i, d in enumerate(depths):
            r = s // patch // 2 ** i
            if r > window:
                want |= {f"layers.{i}.blocks.{j}": (r // window) ** 2 for j in range(1, d, 2)}
        if want == masks:
            return s
    raise EmbedderError("LAION-CLAP audio branch: no HTS-AT input size fits its tagging conv and attention masks")


def from_state(state: dict) -> LaionClapAudio:
    """LAION-CLAP audio tower (Wu et al. 2023) from a laion_clap checkpoint, HTS-AT sizes read from the weights."""
    state = state.get("state_dict", state)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(".fusion_model." in k or "mel_conv" in k for k in state):
        raise EmbedderError("LAION-CLAP fusion checkpoints are not supported; use a non-fusion one "
                            "(e.g. 630k-audioset-best.pt)")
    if "audio_branch.conv_block1.conv1.weight" in state:
        raise EmbedderError("LAION-CLAP checkpoints with a PANN audio branch are not supported (HTS-AT only)")
    need = ("audio_branch.patch_embed.proj.weight", "audio_branch.bn0.weight", "audio_branch.tscam_conv.weight",
            "audio_branch.layers.0.blocks.0.attn.relative_position_bias_table", "audio_projection.0.weight")
    if any(k not in state for k in need):
        raise EmbedderError(f"not a LAION-CLAP (HTS-AT) state dict: missing {[k for k in need if k not in state][:3]}")
    audio = {k: v for k, v in state.items() if k.startswith(("audio_branch.", "audio_projection."))
             and not k.startswith(_SKIP)}
    branch = {k[len("audio_branch."):]: v for k, v in audio.items() if k.startswith("audio_branch.")}
    w = branch["patch_embed.proj.weight"]  # (dim, 1, p, p)
    n_layers = 1 + max(int(k.split(".")[1]) for k in branch if k.startswith("layers."))
    depths = [1 + max(int(k.split(".")[3]) for k in branch if k.startswith(f"layers.{i}.blocks."))
              for i in range(n_layers)]
    heads = tuple(branch[f"layers.{i}.blocks.0.attn.relative_position_bias_table"].shape[1] for i in range(n_layers))
    window = (math.isqrt(branch["layers.0.blocks.0.attn.relative_position_bias_table"].shape[0]) + 1) // 2
    mel, tscam = branch["bn0.weight"].shape[0], branch["tscam_conv.weight"]  # tscam: (classes, width, sf, 3)
    spec = _spec_size(branch, mel, w.shape[-1], depths, window, tscam.shape[2])
    ratio = branch["layers.0.blocks.0.mlp.fc1.weight"].shape[0] / w.shape[0]
    model = LaionClapAudio(audio["audio_projection.0.weight"].shape[0], mel_bins=mel, spec_size=spec,
                           patch=w.shape[-1], dim=w.shape[0], depths=tuple(depths), heads=heads, window=window,
                           classes=tscam.shape[0], mlp_ratio=ratio)
    return load_exact(model, audio, "LAION-CLAP audio (laion_clap layout)")
