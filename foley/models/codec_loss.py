"""Codec training losses: multi-resolution STFT on L, R, mid and side, KL, and an optional spectrogram GAN."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foley.models.codec_dsp import full_precision

RESOLUTIONS: tuple[tuple[int, int], ...] = ((256, 64), (1024, 256), (2048, 512))


def lrms(x: Tensor) -> Tensor:
    """(B, 2, N) -> (B, 4, N): left, right, mid (L+R)/2, side (L-R)/2."""
    return torch.cat([x, (x[:, :1] + x[:, 1:]) / 2, (x[:, :1] - x[:, 1:]) / 2], 1)


@full_precision
def stft(x: Tensor, n_fft: int, hop: int) -> Tensor:
    """(..., N) -> complex (..., n_fft/2+1, frames) with a Hann window."""
    lead = x.shape[:-1]
    win = torch.hann_window(n_fft, device=x.device)
    s = torch.stft(x.reshape(-1, x.shape[-1]).float(), n_fft, hop, window=win, return_complex=True)
    return s.view(*lead, *s.shape[-2:])


def stft_mag(x: Tensor, n_fft: int, hop: int) -> Tensor:
    """(..., N) -> (..., n_fft/2+1, frames) magnitude with a Hann window."""
    return stft(x, n_fft, hop).abs()


def _distance(my: Tensor, mx: Tensor, eps: float) -> Tensor:
    """Spectral convergence + log-magnitude L1 of magnitudes (B, C, K, F).

    Convergence norms run over the whole batch per channel, so a near-silent item cannot blow it up.
    """
    dims = (0, 2, 3)
    sc = torch.linalg.vector_norm(mx - my, dim=dims) / (torch.linalg.vector_norm(mx, dim=dims) + eps)
    return sc.mean() + (torch.log(my + eps) - torch.log(mx + eps)).abs().mean()


def mrstft(y: Tensor, x: Tensor, resolutions=RESOLUTIONS, eps: float = 1e-5) -> Tensor:
    """Multi-resolution STFT loss (Yamamoto et al. 2020): spectral convergence + log-magnitude L1, averaged.

    y, x: (B, C, N); every channel weighs the same. Returns a scalar.
    """
    total = sum(_distance(stft_mag(y, n, h), stft_mag(x, n, h), eps) for n, h in resolutions)
    return total / len(resolutions)


def stereo_mrstft(y: Tensor, x: Tensor, resolutions=RESOLUTIONS, eps: float = 1e-5) -> Tensor:
    """MR-STFT loss on L, R, mid and side of stereo (B, 2, N); mid/side spectra from L/R (the STFT is linear)."""
    total = y.new_zeros(())
    for n, h in resolutions:
        sy, sx = stft(y, n, h), stft(x, n, h)  # (B, 2, K, F)
        lrms_y = torch.cat([sy, (sy[:, :1] + sy[:, 1:]) / 2, (sy[:, :1] - sy[:, 1:]) / 2], 1).abs()
        with torch.no_grad():
            lrms_x = torch.cat([sx, (sx[:, :1] + sx[:, 1:]) / 2, (sx[:, :1] - sx[:, 1:]) / 2], 1).abs()
        total = total + _distance(lrms_y, lrms_x, eps)
    return total / len(resolutions)


def kl(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)), mean over elements."""
    return 0.5 * (mean ** 2 + logvar.exp() - 1 - logvar).mean()


@full_precision
def log_power_loss(pred: Tensor, target: Tensor, floor: float = -12.0, weight: Tensor | None = None) -> Tensor:
    """L1 between decoded and true log power on the synthesis grid, both floored (silence is silence).

    weight: (K,) per-bin weights of mean 1 (e.g. `mel_weights`), or None for flat.
    """
    err = (pred.clamp_min(floor) - target.clamp_min(floor)).abs()
    return (err * weight).mean() if weight is not None else err.mean()


def mel_weights(n_bins: int, sr: int, tilt: float) -> Tensor:
    """(K,) weights ~ (1 + f / 700)^-tilt, mean 1: tilt 1 weighs each bin as its share of a mel band."""
    f = torch.arange(n_bins) * (sr / 2) / (n_bins - 1)
    w = (1 + f / 700) ** -tilt
    return w / w.mean()


@full_precision
def band_energy_loss(pred: Tensor, target: Tensor, bands: Tensor, eps: float = 1e-6) -> Tensor:
    """L1 between log band energies per subframe: log of sums, so unbiased where log-power L1 is not.

    pred, target: log power (B, T, sub, K); bands: (K, nb) one-hot. This is what the stereo cues weight:
    a wrong band energy moves the frame's pan even when every band's own pan is exact.
    """
    ep = torch.exp(pred.float().clamp(max=30.0)) @ bands  # (B, T, sub, nb)
    et = torch.exp(target.float()) @ bands
    return (torch.log(ep + eps) - torch.log(et + eps)).abs().mean()


class SpectrogramDiscriminator(nn.Module):
    """A small 2-D conv discriminator on log-magnitude STFTs of L, R, mid and side (B, 4, K, F) -> logits."""

    def __init__(self, width: int = 32, n_fft: int = 1024, hop: int = 256) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        chans = [4, width, width, width, width]
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(a, b, (3, 9), stride=(2, 1), padding=(1, 4)), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers, nn.Conv2d(width, 1, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(torch.log(stft_mag(lrms(x), self.n_fft, self.hop) + 1e-5))


def hinge_d(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_g(fake: Tensor) -> Tensor:
    return -fake.mean()
