"""What a listener hears: speech quality, intelligibility, tonality and pitch of a decoded signal against its original.

Magnitude distances (MR-STFT, mel) cannot tell a tone from coloured noise of the same spectrum; these can:

- `pesq_wb`, `stoi`, `dnsmos`: the kept libraries (pesq, pystoi, speechmos's DNSMOS, weights in the wheel),
  on the 16 kHz mid of 48 kHz stereo; install them with `pip install 'foley[listen]'`.
- `partial_ratio`: energy within +-8 Hz of the original's spectral peaks against the rest (100-8000 Hz), in dB:
  high for a tone rebuilt as a tone, negative for a tone rebuilt as noise.
- `periodicity`: mean best normalised autocorrelation (60-500 Hz lags) over non-silent 40 ms frames.
- `pitch_error_cents`: median |f0(decoded) - f0(original)| in cents over frames where the original is periodic.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks, resample_poly, welch

from foley.errors import FoleyError

SR = 48000


class ListeningError(FoleyError):
    """A listening metric cannot run (missing optional package, wrong input)."""


def mid16k(x: np.ndarray, sr: int = SR) -> np.ndarray:
    """(2, N) or (N,) at sr -> (M,) mid at 16 kHz."""
    m = x.mean(0) if x.ndim == 2 else x
    from math import gcd

    g = gcd(16000, sr)
    return resample_poly(m, 16000 // g, sr // g)


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except Exception as e:  # ImportError, or a broken dependency of it
        raise ListeningError(f"{module} is not usable ({type(e).__name__}: {e}): pip install 'foley[listen]'") from None


def _pair(ref: np.ndarray, deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r, d = mid16k(ref), mid16k(deg)
    n = min(len(r), len(d))
    return r[:n], d[:n]


def pesq_wb(ref: np.ndarray, deg: np.ndarray) -> float:
    """PESQ wide-band (ITU-T P.862.2) of deg against ref, both (2, N) at 48 kHz."""
    r, d = _pair(ref, deg)
    return float(_need("pesq").pesq(16000, r, d, "wb"))


def stoi(ref: np.ndarray, deg: np.ndarray) -> float:
    """Short-time objective intelligibility of deg against ref, both (2, N) at 48 kHz."""
    r, d = _pair(ref, deg)
    return float(_need("pystoi").stoi(r, d, 16000))


def dnsmos(deg: np.ndarray) -> float:
    """DNSMOS P.835 overall quality of deg (2, N) at 48 kHz (no reference needed)."""
    d = mid16k(deg)
    d = d / max(1e-9, float(np.abs(d).max())) * 0.9
    return float(_need("speechmos.dnsmos").run(d, sr=16000)["ovrl_mos"])


def partial_ratio(ref: np.ndarray, deg: np.ndarray, sr: int = SR, lo: float = 100, hi: float = 8000,
                  tol: float = 8.0) -> float:
    """dB of deg's energy within +-tol Hz of ref's spectral peaks against its energy elsewhere in [lo, hi] Hz."""
    r, d = (a.mean(0) if a.ndim == 2 else a for a in (ref, deg))
    seg = min(sr // 2, r.size, d.size)  # 2 Hz resolution, or what a short sound allows
    f, pr = welch(r, sr, nperseg=seg)
    _, pd = welch(d, sr, nperseg=seg)
    band = (f >= lo) & (f <= hi)
    lp = 10 * np.log10(pr + 1e-20)
    peaks, _ = find_peaks(np.where(band, lp, -400), prominence=10, height=lp[band].max() - 50)
    near = np.zeros_like(band)
    for p in peaks:
        near |= np.abs(f - f[p]) <= tol
    near &= band
    return float(10 * np.log10((pd[near].sum() + 1e-20) / (pd[band & ~near].sum() + 1e-20)))


def _frames_acf(x16: np.ndarray, win: int = 640, hop: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """Normalised autocorrelation (window-corrected) of 40 ms frames at 10 ms hop, and their energies."""
    if len(x16) < win:
        x16 = np.pad(x16, (0, win - len(x16)))
    w = np.hanning(win)
    fr = np.lib.stride_tricks.sliding_window_view(x16, win)[::hop] * w
    r = np.fft.irfft(np.abs(np.fft.rfft(fr, 2 * win)) ** 2)[:, :win]
    wac = np.correlate(w, w, "full")[win - 1:]
    wac = np.maximum(wac / wac[0], 0.05)
    return r / (r[:, :1] + 1e-12) / wac, (fr ** 2).sum(1)


def _f0_track(x16: np.ndarray, lo_hz: float = 60, hi_hz: float = 500) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per 10 ms frame: f0 (Hz), periodicity in [0, 1], energy (first lag within 90% of the best)."""
    rn, e = _frames_acf(x16)
    lo, hi = int(16000 / hi_hz), int(16000 / lo_hz)
    seg = rn[:, lo:hi]
    best = seg.max(1, keepdims=True)
    lag = np.argmax(seg >= 0.9 * best, axis=1) + lo
    return 16000 / lag, np.clip(best[:, 0], 0, 1), e


def periodicity(x: np.ndarray) -> float:
    """Mean periodicity of (2, N) 48 kHz audio over frames within 30 dB of its loudest."""
    _, p, e = _f0_track(mid16k(x))
    keep = e > e.max() * 1e-3
    return float(p[keep].mean()) if keep.any() else 0.0


def pitch_error_cents(ref: np.ndarray, deg: np.ndarray) -> float:
    """Median |1200 log2(f0_deg / f0_ref)| over frames where ref is periodic (> 0.8) and not silent."""
    r, d = _pair(ref, deg)
    fr, pr, er = _f0_track(r)
    fd, _, _ = _f0_track(d)
    k = min(len(fr), len(fd))
    keep = (pr[:k] > 0.8) & (er[:k] > er.max() * 1e-3)
    if not keep.any():
        return float("nan")
    return float(np.median(np.abs(1200 * np.log2(fd[:k][keep] / fr[:k][keep]))))
