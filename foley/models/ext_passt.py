"""PaSST (Koutini et al. 2021, "Efficient Training of Audio Transformers with Patchout") as an FD embedder.

Parameter names follow hear21passt/models/passt.py (kkoutini/passt_hear21), so its release file
`passt-s-f128-p16-s10-ap.476-swa.pt` (`passt_s_swa_p16_128_ap476`: a bare state dict) loads with every key
matched; hear21passt wrapper dicts (`net.` prefix, `device_proxy`) and Lightning dicts (`state_dict`, `net.`)
load too. The front end is hear21passt's AugmentMelSTFT in eval mode (32 kHz, pre-emphasis, window 800,
n_fft 1024, hop 320, 128 Kaldi mel bands 0-15 kHz, log, (x + 4.5) / 5); it has no stored buffers.
Not in the weights and assumed: the patch stride (10 when the frequency grid says so, as the release models;
else the patch size), equal strides in frequency and time, and dim // 64 attention heads (12 for 768).
Features: the mean of the final cls and dist token outputs (the 768-d `features` half of hear21passt's
scene embedding, without its 527 logits); clips longer than the trained 10 s are cut into 10 s windows every
2.5 s after reflect-padding 5 s on both ends (as hear21passt's get_scene_embeddings) and averaged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from foley.models.embedders import EmbedderError, load_exact
from foley.models.layers import Mlp


def kaldi_mel(n_mels: int, n_fft: int, sr: int, fmin: float, fmax: float) -> torch.Tensor:
    """(n_mels, n_fft//2+1) triangles on the 1127 ln(1 + f/700) scale, torchaudio.compliance.kaldi.get_mel_banks."""
    mel = lambda f: 1127.0 * torch.log1p(torch.as_tensor(f, dtype=torch.float32) / 700.0)  # noqa: E731
    lo, hi = mel(fmin), mel(fmax)
    step = (hi - lo) / (n_mels + 1)
    b = torch.arange(n_mels, dtype=torch.float32)[:, None]
    left, mid, right = lo + b * step, lo + (b + 1) * step, lo + (b + 2) * step  # (M, 1) each
    m = mel(sr / n_fft * torch.arange(n_fft // 2, dtype=torch.float32))[None]  # (1, n_fft/2): no Nyquist bin
    fb = torch.clamp(torch.minimum((m - left) / (mid - left), (right - m) / (right - mid)), min=0)
    return F.pad(fb, (0, 1))  # (M, n_fft/2+1), the Nyquist column zero as hear21passt pads it


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim, bias=qkv_bias), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)  # (B, H, N, d) each
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, qkv_bias: bool) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn, self.mlp = _Attention(dim, heads, qkv_bias), Mlp(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PaSST(nn.Module):
    """PaSST (Koutini et al. 2021) with hear21passt's names: mel front end, patch ViT, cls/dist tokens."""

    sr, n_fft, win, hop, n_mels, fmax, chunk = 32000, 1024, 800, 320, 128, 15000.0, 8  # chunk: windows a call

    def __init__(self, dim: int = 768, depth: int = 12, heads: int = 12, patch: tuple[int, int] = (16, 16),
                 stride: int = 10, grid: tuple[int, int] = (12, 99), classes: int = 527, hidden: int = 3072,
                 distilled: bool = True, qkv_bias: bool = True) -> None:
        super().__init__()
        self.stride, self.patch = stride, patch
        self.register_buffer("mel_fb", kaldi_mel(self.n_mels, self.n_fft, self.sr, 0.0, self.fmax), persistent=False)
        self.register_buffer("window", torch.hann_window(self.win, periodic=False), persistent=False)
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(1, dim, patch, stride)
        self.n_tok = 2 if distilled else 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim)) if distilled else None
        self.new_pos_embed = nn.Parameter(torch.zeros(1, self.n_tok, dim))
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, dim, grid[0], 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, dim, 1, grid[1]))
        for p in self.parameters(recurse=False):  # cls, dist and the three position embeddings
            nn.init.trunc_normal_(p, std=0.02)
        self.blocks = nn.Sequential(*[_Block(dim, heads, hidden, qkv_bias) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, classes))  # unused for features, kept for the keys
        self.head_dist = nn.Linear(dim, classes) if distilled else None
        frames = (grid[1] - 1) * stride + patch[1] + stride - 1  # the most STFT frames that give grid[1] patches
        tenth = self.sr // 10
        self.window_len = max(tenth, frames * self.hop // tenth * tenth)  # 320000 (10 s) for the release model
        self.min_len = (patch[1] - 1) * self.hop + 1  # enough frames for one patch

    def logmel(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, N) at 32 kHz -> (B, 128, T) hear21passt's normalised log-mel."""
        x = wave[:, 1:] - 0.97 * wave[:, :-1]  # (B, N-1) pre-emphasis
        spec = torch.stft(x, self.n_fft, self.hop, self.win, window=self.window, center=True, pad_mode="reflect",
                          return_complex=True).abs().pow(2)  # (B, F, T)
        return (torch.log(self.mel_fb @ spec + 1e-5) + 4.5) / 5.0  # (B, M, T)

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, N <= window_len) at 32 kHz -> (B, dim) mean of the cls and dist token outputs."""
        x = self.patch_embed.proj(self.logmel(wave).unsqueeze(1))  # (B, dim, F', T')
        x = x + self.time_new_pos_embed[..., : x.shape[-1]] + self.freq_new_pos_embed
        x = x.flatten(2).transpose(1, 2)  # (B, F'*T', dim)
        toks = [self.cls_token] + ([self.dist_token] if self.dist_token is not None else [])
        toks = [t + self.new_pos_embed[:, i: i + 1] for i, t in enumerate(toks)]
        x = torch.cat([t.expand(x.shape[0], -1, -1) for t in toks] + [x], 1)  # (B, n_tok + F'*T', dim)
        x = self.norm(self.blocks(x))
        return x[:, : self.n_tok].mean(1)  # (B, dim)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, N) at 32 kHz -> (B, dim) clip embedding, windows averaged past the trained length."""
        if wave.shape[-1] < self.min_len:
            wave = F.pad(wave, (0, self.min_len - wave.shape[-1]))
        if wave.shape[-1] <= self.window_len:
            return self.embed(wave)
        pad = self.window_len // 2
        x = F.pad(wave[:, None], (pad, pad), mode="reflect")[:, 0]  # (B, N + window_len)
        segs = x.unfold(-1, self.window_len, self.window_len // 4)  # (B, S, window_len)
        emb = torch.cat([self.embed(c) for c in segs.flatten(0, 1).split(self.chunk)])  # (B*S, dim)
        return emb.view(*segs.shape[:2], -1).mean(1)  # (B, dim)


def _stride(n_mels: int, patch: int, cells: int) -> int:
    """The patch stride that turns n_mels bands into `cells` rows: 10 (the release models) or the patch, else any."""
    fits = [s for s in range(1, patch + 1) if (n_mels - patch) // s + 1 == cells]
    if not fits:
        raise EmbedderError(f"not a PaSST state dict: no patch stride makes {cells} frequency rows of {n_mels} bands")
    return 10 if 10 in fits else patch if patch in fits else max(fits)


def from_state(state: dict) -> PaSST:
    """PaSST (Koutini et al. 2021) from a hear21passt-layout state dict, sizes read from the weights."""
    state = state.get("state_dict", state)
    state = {k.removeprefix("module."): v for k, v in state.items() if k != "device_proxy"}
    if state and all(k.startswith("net.") for k in state if not k.startswith("mel.")):
        state = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
    need = ("patch_embed.proj.weight", "freq_new_pos_embed", "time_new_pos_embed", "blocks.0.mlp.fc1.weight",
            "head.1.weight")
    if any(k not in state for k in need):
        raise EmbedderError(f"not a PaSST state dict (hear21passt layout): missing "
                            f"{[k for k in need if k not in state][:3]}")
    w = state["patch_embed.proj.weight"]  # (dim, 1, pf, pt)
    dim, patch = w.shape[0], (w.shape[2], w.shape[3])
    grid = (state["freq_new_pos_embed"].shape[2], state["time_new_pos_embed"].shape[3])
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    model = PaSST(dim, depth, max(1, dim // 64), patch, _stride(PaSST.n_mels, patch[0], grid[0]), grid,
                  state["head.1.weight"].shape[0], state["blocks.0.mlp.fc1.weight"].shape[0],
                  "dist_token" in state, "blocks.0.attn.qkv.bias" in state)
    return load_exact(model, state, "PaSST (hear21passt layout)")
