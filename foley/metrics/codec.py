"""Codec figures (MISSION part 4): reconstruction distances, stereo cues, BAS, and equal-rate baselines."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.signal import resample_poly
from torch import Tensor

from foley.metrics.stereo import audio_position, evaluate, frame_energies, position_of_energies
from foley.models.codec import Codec
from foley.models.codec_dsp import band_matrix
from foley.models.codec_loss import lrms, mrstft, stft_mag
from foley.spatial import pan_gains, pan_of_energies
from foley.tracks import Track


def mel_filters(n_fft: int, n_mels: int, sr: int) -> Tensor:
    """(n_mels, n_fft/2+1) triangular HTK mel filters."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    hz = 700 * (10 ** (np.linspace(0, mel(sr / 2), n_mels + 2) / 2595) - 1)
    bins = np.linspace(0, sr / 2, n_fft // 2 + 1)
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    fb = np.maximum(0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))
    return torch.tensor(fb, dtype=torch.float32)


def mel_distance(y: Tensor, x: Tensor, sr: int, n_fft: int = 2048, hop: int = 512, n_mels: int = 80) -> float:
    """Mean |log10 mel(y) - log10 mel(x)| over L and R, (B, 2, N)."""
    fb = mel_filters(n_fft, n_mels, sr)
    my, mx = (fb @ stft_mag(a, n_fft, hop) ** 2 for a in (y, x))  # (B, 2, M, F)
    return float((torch.log10(my + 1e-8) - torch.log10(mx + 1e-8)).abs().mean())


def si_sdr(y: Tensor, x: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale-invariant SDR in dB per channel, (B, C, N) -> (B, C)."""
    alpha = (y * x).sum(-1, keepdim=True) / (x.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * x
    return 10 * torch.log10(target.pow(2).sum(-1) / ((y - target).pow(2).sum(-1) + eps) + eps)


def band_ild(x: Tensor, hop: int, sr: int, n_bands: int = 16, floor_db: float = -40.0) -> tuple[Tensor, Tensor]:
    """Per video frame and band: ILD 10 log10(E_L / E_R) in dB clipped to +-30, and an 'active' mask.

    x: (B, 2, T*hop); bands on the ERB scale over a Hann-windowed FFT of each frame. Returns (B, T, nb) x 2.
    """
    frames = x.float().unfold(-1, hop, hop) * torch.hann_window(hop, device=x.device)  # (B, 2, T, hop)
    p = torch.fft.rfft(frames).abs().pow(2) @ band_matrix(hop // 2 + 1, n_bands, sr).to(x.device)  # (B, 2, T, nb)
    ild = (10 * torch.log10((p[:, 0] + 1e-10) / (p[:, 1] + 1e-10))).clamp(-30, 30)
    total = p.sum(1)  # (B, T, nb)
    active = total > total.amax(dim=(1, 2), keepdim=True) * 10 ** (floor_db / 10)
    return ild, active


def ild_error_db(y: Tensor, x: Tensor, hop: int, sr: int) -> float:
    """Mean |ILD(y) - ILD(x)| in dB over the active band-frames of x."""
    iy, _ = band_ild(y, hop, sr)
    ix, active = band_ild(x, hop, sr)
    return float((iy - ix).abs()[active].mean())


def pan_error(y: np.ndarray, x: np.ndarray, sr: int, fps: float) -> float:
    """Mean |pan(y) - pan(x)| per video frame (foley.metrics.audio_position), over x's non-silent frames."""
    return frame_pan_error(frame_energies(y, sr, fps), frame_energies(x, sr, fps))


def frame_pan_error(ey: np.ndarray, ex: np.ndarray) -> float:
    """`pan_error` from per-frame channel energies (2, K) of y and x (`frame_energies`, or a stream's block sums)."""
    py, px = position_of_energies(ey), position_of_energies(ex)
    k = min(len(py.pan), len(px.pan))
    keep = ~px.silent[:k]
    return float(np.abs(py.pan[:k] - px.pan[:k])[keep].mean()) if keep.any() else 0.0


@dataclass
class Figures:
    """Reconstruction figures of one clip (or their mean over clips)."""

    mrstft: float
    mel: float
    si_sdr: float  # dB, mean over L and R
    ild_db: float
    pan_err: float
    stereo_score: float
    bas: float  # mean over the clip's objects (NaN when no track)

    @staticmethod
    def mean(items: list["Figures"]) -> "Figures":
        return Figures(*[float(np.nanmean([getattr(f, k) for f in items])) for k in Figures.__dataclass_fields__])


def figures(y: Tensor, x: Tensor, sr: int, fps: int, tracks: list[Track] | None = None) -> Figures:
    """All figures of a reconstruction y against the original x, both (2, N) at sr."""
    n = min(y.shape[-1], x.shape[-1]) // (sr // fps) * (sr // fps)
    y, x = y[None, :, :n].float(), x[None, :, :n].float()
    yn, xn = y[0].double().numpy(), x[0].double().numpy()
    bas = [evaluate(yn, sr, t).bas for t in tracks] if tracks else [math.nan]
    return Figures(mrstft=float(mrstft(lrms(y), lrms(x))), mel=mel_distance(y, x, sr),
                   si_sdr=float(si_sdr(y, x).mean()), ild_db=ild_error_db(y, x, sr // fps, sr),
                   pan_err=pan_error(yn, xn, sr, fps), stereo_score=evaluate(yn, sr, tracks[0]).stereo_score
                   if tracks else math.nan, bas=float(np.nanmean(bas)) if not all(map(math.isnan, bas)) else math.nan)


# ---------------------------------------------------------------------- equal-rate baselines

def _rate_at_most(sr: int, rate: float) -> int:
    """The largest integer divisor of sr that is <= rate (so resampling is a clean polyphase ratio)."""
    return max(d for d in range(1, int(rate) + 1) if sr % d == 0)


def baseline_resample(x: np.ndarray, sr: int, floats_per_second: int) -> np.ndarray:
    """Downsample both channels to floats_per_second / 2 Hz and back: (2, N) -> (2, N)."""
    r = _rate_at_most(sr, floats_per_second / 2)
    return resample_poly(resample_poly(x, r, sr, axis=-1), sr, r, axis=-1)[:, : x.shape[-1]]


def baseline_mono_pan(x: np.ndarray, sr: int, fps: int, floats_per_second: int) -> np.ndarray:
    """One pan value per video frame + a downsampled mono downmix along the pan axis, rendered by eq. (3)."""
    hop = sr // fps
    r = _rate_at_most(sr, floats_per_second - fps)
    k = x.shape[-1] // hop
    pan = audio_position(x, sr, fps, n_frames=k).pan  # (K,)
    gl, gr = (np.repeat(g, hop) for g in pan_gains(pan))  # (K*hop,)
    n = k * hop
    mono = gl * x[0, :n] + gr * x[1, :n]  # projection on the panned direction: exact for one panned source
    mono = resample_poly(resample_poly(mono, r, sr), sr, r)[:n]
    out = np.zeros_like(x)
    out[:, :n] = np.stack([gl * mono, gr * mono])
    return out


def frame_pan(x: np.ndarray, sr: int, fps: int) -> np.ndarray:
    """(K,) pan per frame (helper for plots)."""
    e = frame_energies(x, sr, fps)
    return pan_of_energies(e[0], e[1])


# ---------------------------------------------------------------------- validation during training

@torch.no_grad()
def validate(codec: Codec, audio: Tensor, tracks: list[list[Track]], device: torch.device) -> Figures:
    """Mean figures of the codec on clips audio (P, 2, N) with their tracks (whole clips, batch mode)."""
    figs = []
    for x, t in zip(audio, tracks):
        y = codec.decode(codec.encode(x[None].to(device)))[0].cpu()
        figs.append(figures(y, x, codec.cfg.sr, codec.cfg.fps, t))
    return Figures.mean(figs)


def plot_validation(path: Path, codec: Codec, x: torch.Tensor, tracks: list, step: int) -> None:
    """Spectrograms (mid, side) of original vs reconstruction and per-frame pan against the tracks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = codec.cfg
    with torch.no_grad():
        y = codec.decode(codec.encode(x[None].to(next(codec.parameters()).device)))[0].cpu()
    fig, ax = plt.subplots(3, 2, figsize=(11, 8))
    for col, (name, a) in enumerate((("original", x), ("reconstruction", y))):
        for row, (lab, s) in enumerate((("mid", a[0] + a[1]), ("side", a[0] - a[1]))):
            ax[row, col].specgram(s.numpy(), NFFT=1024, Fs=cfg.sr, noverlap=768, vmin=-140, vmax=-20)
            ax[row, col].set_title(f"{name}: {lab}")
    ax[2, 0].plot(frame_pan(x.double().numpy(), cfg.sr, cfg.fps), label="original")
    ax[2, 0].plot(frame_pan(y.double().numpy(), cfg.sr, cfg.fps), label="reconstruction")
    for t in tracks:
        ax[2, 0].plot(np.clip(t.x, -1, 1), "--", label=f"track {t.label}")
    ax[2, 0].set_ylim(-1.05, 1.05), ax[2, 0].legend(fontsize=7), ax[2, 0].set_title("pan per frame")
    ax[2, 1].axis("off")
    fig.suptitle(f"codec validation, step {step}")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
