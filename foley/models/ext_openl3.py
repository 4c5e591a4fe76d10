"""OpenL3 (Cramer et al. 2019, "Look, Listen and Learn More") audio embeddings as an FD embedder.

Parameter names follow torchopenl3/models.py (torchopenl3/torchopenl3, class PytorchOpenl3), so its files
`torchopenl3_{mel128,mel256,linear}_{env,music}_{512,6144}.pth.tar` (bare state dicts) load with every key
matched. Ignored on load: `speclayer.dft_real_kernels` / `speclayer.dft_imag_kernels`, kapre's periodic-Hann
DFT basis (a pure front-end constant: torch.stft computes the same transform); `speclayer.mel_basis` is loaded
and used. The input representation is read from the weights (mel_basis rows: 128 or 256; none: linear).
The embedding size is not in the weights (512 and 6144 differ only in the final max-pool): 512 is used.
Framing follows torchopenl3's preprocess_audio_batch (center: 0.5 s of zeros in front; 1 s windows every
`hop_s` = 0.1 s, its default; zero-padded to whole hops); features = the mean window embedding.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from foley.models.embedders import EmbedderError, load_exact

POOL = {"mel128": {512: (16, 24), 6144: (4, 8)}, "mel256": {512: (32, 24), 6144: (8, 8)},
        "linear": {512: (32, 24), 6144: (8, 8)}}  # torchopenl3's AUDIO_POOLING_SIZES, read only


def htk_mel(sr: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """(n_mels, n_fft//2+1) librosa.filters.mel(htk=True, norm=1, fmin=0, fmax=sr/2): Hz triangles, unit L1 rows."""
    mel, hz = (lambda f: 2595.0 * np.log10(1.0 + f / 700.0)), (lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0))
    edges = hz(np.linspace(mel(0.0), mel(sr / 2), n_mels + 2))[:, None]
    bins = np.fft.rfftfreq(n_fft, 1 / sr)[None]
    fb = np.maximum(0, np.minimum((bins - edges[:-2]) / (edges[1:-1] - edges[:-2]),
                                  (edges[2:] - bins) / (edges[2:] - edges[1:-1])))
    return torch.from_numpy(fb / np.maximum(fb.sum(1, keepdims=True), 1e-12)).float()


class _SpecLayer(nn.Module):
    """kapre-0.1.4-style spectrogram of one 1 s frame: 'same' padding (mel), |STFT|, mel, dB below the frame max."""

    def __init__(self, input_repr: str, sr: int = 48000) -> None:
        super().__init__()
        self.mel = input_repr != "linear"
        self.n_dft, self.n_hop, self.sr = (2048 if self.mel else 512), 242, sr
        if self.mel:
            self.register_buffer("mel_basis", htk_mel(sr, self.n_dft, int(input_repr[3:])))
        self.register_buffer("window", torch.hann_window(self.n_dft), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, sr) frames -> (B, 1, F, T) dB spectrogram, 0 dB at each frame's maximum, floor -80 dB."""
        if self.mel:  # torchopenl3's custom_pad, with the frame length taken as sr as there
            rem = self.sr % self.n_hop
            pad = max(self.n_dft - (self.n_hop if rem == 0 else rem), 0)
            x = F.pad(x, (pad // 2, pad - pad // 2))
        power = torch.stft(x, self.n_dft, self.n_hop, window=self.window, center=False,
                           return_complex=True).abs().pow(2)  # (B, n_dft/2+1, T)
        amp = (self.mel_basis @ power if self.mel else power).sqrt()  # (B, F, T), power 1 as torchopenl3
        db = 10 * torch.log10(torch.clamp(amp, min=1e-10))
        return torch.clamp(db - db.amax((1, 2), keepdim=True), min=-80.0).unsqueeze(1)  # (B, 1, F, T)


class OpenL3(nn.Module):
    """OpenL3 audio network (Cramer et al. 2019), torchopenl3's names: 48 kHz, 1 s windows, 7 convs + embedding conv."""

    sr, frame, hop_s, chunk = 48000, 48000, 0.1, 32

    def __init__(self, widths: tuple[int, ...] = (64, 64, 128, 128, 256, 256, 512, 512), input_repr: str = "mel128",
                 embedding_size: int = 512) -> None:
        super().__init__()
        if input_repr not in POOL or embedding_size not in POOL[input_repr]:
            raise EmbedderError(f"OpenL3 input {input_repr!r} / size {embedding_size} unknown; have {sorted(POOL)}")
        self.pool = POOL[input_repr][embedding_size]
        self.speclayer = _SpecLayer(input_repr, self.sr)
        self.batch_normalization_1 = nn.BatchNorm2d(1, eps=1e-3)
        cin = 1
        for i, w in enumerate(widths[:-1]):
            setattr(self, f"conv2d_{i + 1}", nn.Conv2d(cin, w, 3, padding=1))
            setattr(self, f"batch_normalization_{i + 2}", nn.BatchNorm2d(w, eps=1e-3))
            cin = w
        self.audio_embedding_layer = nn.Conv2d(cin, widths[-1], 3, padding=1)
        self.n_convs = len(widths) - 1

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 48000) 1 s frames -> (B, D) embeddings (D = width x pooled cells, channels last as torchopenl3)."""
        x = self.batch_normalization_1(self.speclayer(frames))  # (B, 1, F, T)
        for i in range(1, self.n_convs + 1):
            x = F.relu(getattr(self, f"batch_normalization_{i + 1}")(getattr(self, f"conv2d_{i}")(x)))
            if i % 2 == 0 and i < self.n_convs:
                x = F.max_pool2d(x, 2)  # after conv2d_2, _4, _6
        x = F.max_pool2d(self.audio_embedding_layer(x), self.pool)  # (B, C, h, w)
        return x.permute(0, 2, 3, 1).flatten(1)  # (B, h*w*C)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, N) at 48 kHz -> (B, D) mean of the embeddings of 1 s windows every hop_s, centred as torchopenl3."""
        hop = int(self.hop_s * self.sr)
        x = F.pad(wave, (self.frame // 2, 0))  # (B, N + frame/2)
        n = x.shape[-1]
        x = F.pad(x, (0, self.frame + max(0, math.ceil((n - self.frame) / hop)) * hop - n))
        frames = x.unfold(-1, self.frame, hop)  # (B, W, frame)
        emb = torch.cat([self.embed(c) for c in frames.flatten(0, 1).split(self.chunk)])  # (B*W, D)
        return emb.view(wave.shape[0], frames.shape[1], -1).mean(1)  # (B, D)


def from_state(state: dict) -> OpenL3:
    """OpenL3 (Cramer et al. 2019) from a torchopenl3 state dict, widths and input representation from the weights."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    convs = sorted(int(k.split(".")[0][7:]) for k in state if k.startswith("conv2d_") and k.endswith(".weight"))
    if convs != list(range(1, 8)) or "audio_embedding_layer.weight" not in state:
        raise EmbedderError("not an OpenL3 state dict (torchopenl3 layout: conv2d_1..7, batch_normalization_1..8, "
                            "audio_embedding_layer)")
    dft, mel = state.pop("speclayer.dft_real_kernels", None), state.get("speclayer.mel_basis")
    state.pop("speclayer.dft_imag_kernels", None)
    if mel is not None:
        input_repr = f"mel{mel.shape[0]}"
    elif dft is not None and dft.shape[0] == 257:
        input_repr = "linear"
    else:
        raise EmbedderError("OpenL3 weights without speclayer.mel_basis, and no 512-point DFT kernels saying "
                            "'linear': cannot tell the input representation")
    widths = tuple(state[f"conv2d_{i}.weight"].shape[0] for i in convs) + (
        state["audio_embedding_layer.weight"].shape[0],)
    return load_exact(OpenL3(widths, input_repr), state, f"OpenL3 {input_repr} (torchopenl3 layout)")
