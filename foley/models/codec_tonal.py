"""The codec's tonal path: measured pitch, harmonicity and partials, rendered as phase-continuous sinusoids.

Codec v1 excited every bin with random phase, so tones and voices came back as coloured noise. v2 splits
each band's energy (from the decoded envelope) three ways, all measured from the signal, never learned:

- **harmonic**: a fraction `harm` per harmonic band (8 bands) rendered as harmonics of one f0 per 5 ms
  subframe (a harmonic-plus-noise model, as DDSP's synthesiser and WORLD's f0 + aperiodicity);
- **partial**: a fraction `part` per partial band (12 log bands, 1.1 to 12 kHz) rendered as one
  sinusoid at the band's strongest peak (Serra's spectral modelling, McAulay-Quatieri phase
  continuation): inharmonic bells, chimes and a second source survive without an unordered set of peaks;
- **noise**: the rest, as in v1.

Analysis windows are `pitch_window` samples long and end at each subframe's end (causal; the offline
codec centres them instead). Pitch: normalised autocorrelation of the mid, corrected for the window's
own autocorrelation, first peak within 85% of the best lag (YIN-like, no octave-down errors). Harmonic
fraction per band: the band's autocorrelation at the pitch lag (periodicity, as WORLD's band
aperiodicity). Partial per band: the strongest peak (quadratic interpolation) and the share of the
band's energy within +-4 bins of it, above what noise would put there.

Synthesis places windowed sinusoids straight into the synthesis grid's spectra with the sine window's
closed-form transform (tabulated, 2 * KERNEL_HALF + 1 = 7 bins each), so hundreds of harmonics cost
less than one FFT; phases advance
with the mean frequency between window centres, so tones are continuous across windows and frames.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from foley.models.codec_dsp import EPS, full_precision, power_of
from foley.models.streaming import StreamingModule

F0_MIN, F0_MAX = 70.0, 1600.0
F0_HELD = 200.0  # f0 reported before the first periodic subframe (the codec's reference: latent 0)
HARM_EDGES_HZ = (0, 200, 500, 1100, 2100, 4000, 7300, 13300, 24000)  # pairs of the 16 stereo bands
PART_LO, PART_HI, PART_BANDS = 1100.0, 12000.0, 12  # narrower bands (below ~1 kHz) cannot tell a peak from noise
MAX_HARMONICS = 160
HARMONIC_CEILING_HZ = 11000.0  # above, bands keep their partial and noise
HARMONIC_SHARPEN = 1.5  # harmonic amplitudes ~ envelope^1.5: a partial's leakage into a missing harmonic stays low
PERIODIC_FLOOR = 0.2  # whole-signal periodicity below which nothing counts as harmonic (noise reaches ~0.3)
KERNEL_HALF = 3  # bins each side of a sinusoid's peak placed in the spectrum (truncation about -30 dB)


def hz_band_matrix(n_bins: int, sr: int, edges_hz) -> Tensor:
    """(K, nb) one-hot map of rfft bins (n_bins up to sr/2) to bands with the given edges in Hz."""
    f = torch.arange(n_bins) * (sr / 2) / (n_bins - 1)
    e = torch.tensor(edges_hz, dtype=torch.float32)
    idx = torch.bucketize(f, e, right=True) - 1  # (K,)
    m = torch.zeros(n_bins, len(edges_hz) - 1)
    ok = (idx >= 0) & (idx < len(edges_hz) - 1)
    m[torch.arange(n_bins)[ok], idx[ok]] = 1.0
    return m


def partial_edges_hz() -> list[float]:
    """Edges of the PART_BANDS partial bands: geometric from PART_LO to PART_HI."""
    return np.geomspace(PART_LO, PART_HI, PART_BANDS + 1).tolist()


def part_to_harm_band(part_edges: list[float]) -> Tensor:
    """(P,) index of the harmonic band holding each partial band's centre."""
    centres = torch.tensor([math.sqrt(a * b) for a, b in zip(part_edges[:-1], part_edges[1:])])
    return torch.bucketize(centres, torch.tensor(HARM_EDGES_HZ, dtype=torch.float32), right=True) - 1


def sine_window_kernel(u: Tensor, n: int) -> Tensor:
    """Real part R(u) of the n-point sine window's transform at fractional bin offset u.

    sum_m w[m] e^{2 pi i u m / n} = e^{i pi u (n - 1) / n} R(u), R(u) = (d(u + 1/2) + d(u - 1/2)) / 2 with the
    Dirichlet kernel d(v) = sin(pi v) / sin(pi v / n) (= n at v = 0): the window is symmetric.
    """
    def d(v: Tensor) -> Tensor:
        s = torch.sin(math.pi * v / n)
        small = s.abs() < 1e-6
        return torch.where(small, torch.full_like(v, float(n)), torch.sin(math.pi * v) / torch.where(small, 1.0, s))

    return (d(u + 0.5) + d(u - 0.5)) / 2


TABLE_STEPS = 512  # samples of the kernel table per bin


@functools.lru_cache(maxsize=8)
def kernel_table(n: int, device: torch.device = torch.device("cpu")) -> Tensor:
    """(N - 1, 2): R(u) of `sine_window_kernel` sampled every 1/TABLE_STEPS bin over |u| <= KERNEL_HALF + 1 (float64
    exact), each sample beside the next, so one gather fetches both ends of an interpolation."""
    u = torch.arange(-(KERNEL_HALF + 1) * TABLE_STEPS, (KERNEL_HALF + 1) * TABLE_STEPS + 1, dtype=torch.float64) / TABLE_STEPS
    r = sine_window_kernel(u, n).float()
    return torch.stack([r[:-1], r[1:]], -1).to(device)


def kernel_lookup(u: Tensor, n: int) -> Tensor:
    """R(u) by linear interpolation in `kernel_table`; 0 beyond KERNEL_HALF + 1 bins (the kernel's truncation)."""
    pairs = kernel_table(n, u.device)
    last = pairs.shape[0]  # the table's last sample
    x = (u + KERNEL_HALF + 1) * TABLE_STEPS
    inside = (x >= 0) & (x <= last)
    x = x.clamp(0, last - 0.001)
    i = x.long()
    ends = pairs[i]  # (..., 2)
    return torch.lerp(ends[..., 0], ends[..., 1], x - i) * inside


@functools.lru_cache(maxsize=8)
def tap_offsets(device: torch.device) -> Tensor:
    """(2 * KERNEL_HALF + 1,) bin offsets of a sinusoid's taps around its nearest bin."""
    return torch.arange(-KERNEL_HALF, KERNEL_HALF + 1, device=device)


def place_sinusoids(freq: Tensor, amp: Tensor, phase: Tensor, n: int, sr: int, image: bool = True) -> Tensor:
    """Spectra of sum_s amp_s cos(2 pi f_s (m - n/2) / sr + phase_s) w[m], m < n, on rfft bins.

    freq, amp, phase: (..., S) with `phase` the phase at the window centre m = n/2. Returns complex (..., n/2 + 1).
    Equal to rfft(w * signal) up to the kernel's truncation at +-KERNEL_HALF bins; `image=False` drops the
    negative-frequency image (negligible above a few bins). Gradients flow to `amp` only (frequencies and
    phases are measured, not learned).
    """
    k_bins = n // 2 + 1
    taps = 2 * KERNEL_HALF + 1
    with torch.no_grad():
        beta = freq * n / sr  # (..., S) fractional bin
        offs = tap_offsets(freq.device)
        k = torch.round(beta)[..., None].long() + offs  # (..., S, 2H+1)
        kf = k.to(freq.dtype)
        phi = (phase - 2 * math.pi * freq / sr * (n / 2))[..., None]  # phase at m = 0
        slope = math.pi * (n - 1) / n
        # bin k of rfft(w(m) cos(w m + phi)): [e^{i phi} W(beta - k) + e^{-i phi} W(-beta - k)] / 2
        u = beta[..., None] - kf
        if image:  # the transform is periodic in the bin offset (period n): an image past Nyquist wraps around
            v = torch.remainder(-beta[..., None] - kf + n / 2, n) - n / 2
            # both terms in one lookup and one polar: this runs for every harmonic of every subframe
            both = torch.polar(kernel_lookup(torch.cat([u, v], -1), n) / 2, torch.cat([phi + slope * u, slope * v - phi], -1))
            kernel = both[..., :taps] + both[..., taps:]
        else:
            kernel = torch.polar(kernel_lookup(u, n) / 2, phi + slope * u)
        ok = (k >= 0) & (k < k_bins)
        kernel = torch.where(ok, kernel, torch.zeros_like(kernel))
        index = k.clamp(0, k_bins - 1).flatten(-2)
    val = amp[..., None] * kernel  # (..., S, 2H+1)
    out = torch.zeros(*freq.shape[:-1], k_bins, dtype=val.dtype, device=freq.device)
    return out.scatter_add(-1, index, val.flatten(-2))


def parabolic_peak(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Offset in [-0.5, 0.5] of the vertex of the parabola through (-1, a), (0, b), (1, c): sub-bin peak position."""
    den = a - 2 * b + c
    safe = den.abs() > 1e-9
    return torch.where(safe, 0.5 * (a - c) / torch.where(safe, den, 1.0), 0.0).clamp(-0.5, 0.5)


def asymmetric_window(n: int, fall: int) -> Tensor:
    """(n,) rising half-Hann over n - fall samples, falling half-Hann over the last `fall` (low-delay analysis)."""
    rise = n - fall
    up = torch.hann_window(2 * rise, periodic=False)[:rise]
    down = torch.hann_window(2 * fall, periodic=False)[fall:]
    return torch.cat([up, down])


class TonalAnalysis(StreamingModule):
    """(B, 2, T*hop) -> f0 (B, T, sub) Hz, harmonic fraction (B, T, 8), partial position and share (B, T, P) x 2."""

    def __init__(self, hop: int, sub: int, sr: int, window: int = 2048, causal: bool = True) -> None:
        super().__init__()
        self.hop, self.sub, self.sub_hop, self.sr, self.win = hop, sub, hop // sub, sr, window
        self.lookahead = 0 if causal else window // 2 - self.sub_hop // 2
        w = torch.hann_window(window, periodic=False) if not causal else asymmetric_window(window, window // 4)
        self.register_buffer("window", w, persistent=False)
        wac = torch.fft.irfft(torch.fft.rfft(w, 2 * window).abs() ** 2)[:window]
        self.register_buffer("wac", (wac / wac[0]).clamp_min(0.05), persistent=False)
        self.lag_lo, self.lag_hi = int(sr / F0_MAX), int(math.ceil(sr / F0_MIN))
        k = window + 1
        self.register_buffer("harm_bands", hz_band_matrix(k, sr, HARM_EDGES_HZ), persistent=False)
        pe = partial_edges_hz()
        bands = hz_band_matrix(k, sr, pe)  # (K, P): contiguous ranges of bins
        lo, width = bands.argmax(0), bands.sum(0).long()  # (P,)
        m = int(width.max())
        self.register_buffer("part_index", (lo[:, None] + torch.arange(m)).clamp(max=k - 1), persistent=False)
        self.register_buffer("part_valid", torch.arange(m) < width[:, None], persistent=False)
        self.register_buffer("part_slot", torch.arange(m), persistent=False)
        self.register_buffer("part_q0", (18.0 / self.part_valid.sum(-1)).clamp(max=1.0), persistent=False)  # (P,)
        self.register_buffer("three", torch.arange(3), persistent=False)
        self.register_buffer("bin_phase", torch.arange(k, dtype=torch.float32) * math.pi / window, persistent=False)
        self.register_buffer("part_lo", torch.tensor(pe[:-1]), persistent=False)
        self.register_buffer("part_hi", torch.tensor(pe[1:]), persistent=False)
        self.register_buffer("part_to_harm", part_to_harm_band(pe), persistent=False)
        self.register_buffer("part_in_harm", torch.nn.functional.one_hot(self.part_to_harm, len(HARM_EDGES_HZ) - 1)
                             .float(), persistent=False)  # (P, 8)

    def frames(self, mono: Tensor) -> Tensor:
        """(B, N) -> (B, N/sub_hop, window): each window ends at a subframe's end (+ lookahead offline)."""
        h, la = self.sub_hop, self.lookahead
        past = self._state("past", lambda: mono.new_zeros(mono.shape[0], self.win - h - la))
        xp = torch.cat([past, mono, mono.new_zeros(mono.shape[0], la)], -1)
        if self.is_streaming:
            self._streaming_state["past"] = xp[:, xp.shape[-1] - (self.win - h):]
        return xp.unfold(-1, self.win, h)

    def hold(self, f0: Tensor, periodic: Tensor) -> Tensor:
        """f0 (B, F) where the signal is aperiodic replaced by the last periodic one (F0_HELD before any).

        There the harmonic fraction is 0 and f0 unused; holding it keeps the f0 channels smooth, so a
        generator need not model the pitch estimator's noise. Causal, and carried across streaming calls.
        """
        prev = self._state("f0", lambda: torch.full_like(f0[:, :1], F0_HELD))
        f = torch.cat([prev, f0], 1)  # (B, 1 + F)
        ok = torch.cat([torch.ones_like(periodic[:, :1]), periodic], 1)
        idx = torch.where(ok, torch.arange(f.shape[1], device=f.device), 0).cummax(1).values
        held = f.gather(1, idx)[:, 1:]
        if self.is_streaming:
            self._streaming_state["f0"] = held[:, -1:]
        return held

    def pitch(self, power: Tensor) -> tuple[Tensor, Tensor]:
        """Power spectra (B, F, W+1) -> lag in samples (B, F) and periodicity in [0, 1] (B, F)."""
        r = torch.fft.irfft(power, 2 * self.win)[..., : self.lag_hi + 2]  # (B, F, L)
        rn = r / (r[..., :1] + EPS) / self.wac[: r.shape[-1]]
        seg = rn[..., self.lag_lo - 1:]  # lags lag_lo-1 .. lag_hi+1
        mid = seg[..., 1:-1]
        peak = (mid >= seg[..., :-2]) & (mid >= seg[..., 2:])
        best = torch.where(peak, mid, -1.0).amax(-1, keepdim=True)  # (B, F, 1)
        first = (peak & (mid >= 0.85 * best)).float().argmax(-1)  # (B, F)
        a, b, c = seg.gather(-1, first[..., None] + self.three).unbind(-1)  # around the peak: lags first-1..first+1
        lag = (first + self.lag_lo).float() + parabolic_peak(a, b, c)
        return lag, b.clamp(0, 1)

    @full_precision
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Stereo (B, 2, T*hop) -> f0 (B, T, sub), harmonic fraction (B, T, 8), partial position, share (B, T, P)."""
        b, _, n = x.shape
        t = n // self.hop
        spec = torch.fft.rfft(self.frames(x.sum(1)) * self.window, 2 * self.win)  # (B, F, 2W/2+1)
        power = power_of(spec)  # (B, F, W+1)
        lag, periodic = self.pitch(power)  # (B, F)
        f0 = self.hold(self.sr / lag, periodic > PERIODIC_FLOOR)
        # band periodicity at the pitch lag: sum_k P_k cos(2 pi k lag / 2W) / sum_k P_k / wac(lag)
        pw = power  # (B, F, W+1) on the zero-padded 2W-point grid, k = 0..W
        cosine = torch.cos(self.bin_phase * lag[..., None])  # (B, F, W+1): cos(pi k lag / W)
        wac = torch.lerp(self.wac[lag.long()], self.wac[(lag.long() + 1).clamp(max=self.win - 1)], lag.frac())
        e_h = pw @ self.harm_bands  # (B, F, 8)
        rho = ((pw * cosine) @ self.harm_bands) / (e_h + EPS) / wac[..., None]
        # noise also correlates a little at any lag (more in narrow bands): count a band as harmonic only as
        # far as the whole signal is periodic at that lag
        gate = ((periodic - PERIODIC_FLOOR) / PERIODIC_FLOOR / 1.5).clamp(0, 1)  # (B, F): 0 at the floor, 1 from 0.5
        rho = rho.clamp(0, 1) * gate[..., None]
        e_h = e_h.view(b, t, self.sub, -1)
        harm = (rho.view(b, t, self.sub, -1) * e_h).sum(2) / (e_h.sum(2) + EPS)  # (B, T, 8) energy-weighted
        f0_frame = torch.exp(torch.log(f0.view(b, t, self.sub)).mean(2))  # (B, T) geometric mean
        pos, share, harm = self.partials(pw.view(b, t, self.sub, -1).mean(2), harm, f0_frame)
        return f0.view(b, t, self.sub), harm, pos, share

    def partials(self, pw: Tensor, harm: Tensor, f0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Frame power (B, T, W+1) -> strongest peak's position in each partial band [0, 1], its share, and harm.

        A peak on a harmonic of the frame's f0 (B, T) is already rendered by the harmonic path: its share
        counts only beyond the band's harmonic fraction. A peak off every harmonic is a partial of its own
        (a bell's, a second source's): its energy is taken out of the harmonic fraction, which a near-harmonic
        sinusoid inflates. The share never exceeds what harmonics leave.
        """
        idx, valid = self.part_index, self.part_valid  # (P, M) bins of each band, padded
        band_pw = pw[..., idx]  # (B, T, P, M)
        lp = torch.log(band_pw + EPS).masked_fill(~valid, -1e9)
        j = lp.argmax(-1, keepdim=True)  # (B, T, P, 1) position inside the band's slice
        a, bb, c = lp.gather(-1, (j + self.three - 1).clamp(0, idx.shape[1] - 1)).unbind(-1)
        a, c = torch.where(a < -1e8, bb, a), torch.where(c < -1e8, bb, c)  # band edges: no interpolation
        k = idx[:, 0] + j[..., 0]  # (B, T, P) bin of the peak
        hz = (k.float() + parabolic_peak(a, bb, c)) * self.sr / (2 * (pw.shape[-1] - 1))
        pos = ((hz - self.part_lo) / (self.part_hi - self.part_lo)).clamp(0, 1)
        near = ((self.part_slot - j).abs() <= 4) & valid  # (B, T, P, M)
        e_band = (band_pw * valid).sum(-1)  # (B, T, P)
        q = (band_pw * near).sum(-1) / (e_band + EPS)
        q0 = self.part_q0  # what the 9 bins around the strongest of noise hold
        share = ((q - q0) / (1 - q0 + EPS)).clamp(0, 1)
        ratio = hz / f0[..., None]
        on_harmonic = (ratio - torch.round(ratio)).abs() * f0[..., None] < torch.clamp(0.005 * hz, min=6.0)
        claimed = (share * e_band * ~on_harmonic) @ self.part_in_harm  # (B, T, 8) energy of off-harmonic peaks
        harm = (harm - claimed / (pw @ self.harm_bands + EPS)).clamp(0, 1)
        h = harm.gather(-1, self.part_to_harm.expand(*share.shape[:2], -1))  # (B, T, P)
        share = torch.minimum(torch.where(on_harmonic, share - h, share), 1 - h).clamp(0, 1)
        pos = torch.where(share > 0.05, pos, torch.full_like(pos, 0.5))
        return pos, share, harm


class TonalSynthesis(StreamingModule):
    """Deterministic spectra on the synthesis grid from the envelope and the tonal cues, and the noise share."""

    def __init__(self, hop: int, sub: int, sr: int) -> None:
        super().__init__()
        self.hop, self.sub, self.sub_hop, self.sr = hop, sub, hop // sub, sr
        self.n = 2 * self.sub_hop
        k = self.sub_hop + 1
        self.register_buffer("harm_bands", hz_band_matrix(k, sr, HARM_EDGES_HZ), persistent=False)
        pe = partial_edges_hz()
        self.register_buffer("part_bands", hz_band_matrix(k, sr, pe), persistent=False)
        self.register_buffer("part_lo", torch.tensor(pe[:-1]), persistent=False)
        self.register_buffer("part_hi", torch.tensor(pe[1:]), persistent=False)
        self.register_buffer("part_to_harm", part_to_harm_band(pe), persistent=False)
        self.register_buffer("harmonic_numbers", torch.arange(1, MAX_HARMONICS + 1, dtype=torch.float32), persistent=False)

    def _phases(self, freq: Tensor, key: str) -> Tensor:
        """(B, F, S) frequencies at window centres -> phase at each centre, continued from the last call."""
        prev_f = self._state(key + "_f", lambda: freq[:, :1])
        prev_p = self._state(key + "_p", lambda: torch.zeros_like(freq[:, :1], dtype=torch.float64))
        f = torch.cat([prev_f, freq], 1).double()
        step = math.pi * (f[:, 1:] + f[:, :-1]) * self.sub_hop / self.sr  # 2 pi mean(f) h / sr
        phase = (prev_p + torch.cumsum(step, 1)) % (2 * math.pi)  # (B, F, S)
        if self.is_streaming:
            self._streaming_state[key + "_f"] = freq[:, -1:]
            self._streaming_state[key + "_p"] = phase[:, -1:]
        return phase

    @full_precision
    def forward(self, log_power: Tensor, f0: Tensor, harm: Tensor, pos: Tensor, share: Tensor) -> tuple[Tensor, Tensor]:
        """Envelope log power (B, T, sub, K) + cues -> tonal spectra (B, T*sub, K) and noise share (B, T, sub, K)."""
        b, t, sub, k = log_power.shape
        # a generator may propose more tonal energy than a band holds: harmonics first, partials get the rest
        share = torch.minimum(share, 1 - harm.gather(-1, self.part_to_harm.expand(b, t, -1)))
        power = torch.exp(log_power.clamp(max=30.0)).view(b, t * sub, k)  # (B, F, K)
        f0 = f0.reshape(b, t * sub).clamp(F0_MIN, F0_MAX)
        n_h = max(1, min(MAX_HARMONICS, math.ceil(HARMONIC_CEILING_HZ / float(f0.detach().min())))) if f0.numel() else 1
        hh = self.harmonic_numbers[:n_h]
        fh = f0[..., None] * hh  # (B, F, H)
        alive = fh < min(HARMONIC_CEILING_HZ, 0.48 * self.sr)
        pos_bin = (fh * self.n / self.sr).clamp(max=k - 1.001)
        lo = pos_bin.floor().long()
        lp = log_power.reshape(b, t * sub, k)
        env = torch.lerp(lp.gather(-1, lo), lp.gather(-1, lo + 1), pos_bin - lo)  # log power at each harmonic
        amp = torch.exp(0.5 * HARMONIC_SHARPEN * env.clamp(max=30.0)) * alive  # band scaling restores the energy
        phase = (self._phases(f0[..., None], "f0") * hh.double()) % (2 * math.pi)
        # per frame (B, T, n) -> per synthesis window (B, T*sub, n)
        harm_w, share_w = (v.repeat_interleave(sub, 1) for v in (harm, share))

        # harmonics, each harmonic band scaled to its share of the envelope's energy, measured on the spectrum
        # itself (close harmonics interfere); bands without harmonics leave their energy to the noise
        harmonic = place_sinusoids(fh, amp, phase.float(), self.n, self.sr)  # (B, F, K)
        e_h = power_of(harmonic) @ self.harm_bands  # (B, F, 8)
        target = harm_w * (power @ self.harm_bands)
        ok_h = (e_h > 1e-4 * target) & (target > 0)
        gain = torch.sqrt(torch.where(ok_h, target / (e_h + EPS), 1.0)) * ok_h  # no 0/0 in the gradient
        harmonic = harmonic * (gain @ self.harm_bands.T)
        # partials: one sinusoid per partial band at its measured peak, with its share of the band's energy
        # (a windowed unit sinusoid carries sum_k |X_k|^2 = (n/2) sum_m x^2 = n^2 / 8 on rfft bins; above 1 kHz
        # the negative-frequency image is negligible)
        fp = (self.part_lo + pos.clamp(0, 1) * (self.part_hi - self.part_lo)).repeat_interleave(sub, 1)  # (B, F, P) Hz
        amp_p = torch.sqrt((share_w * (power @ self.part_bands) / (self.n ** 2 / 8)).clamp_min(1e-20))  # (B, F, P)
        partial = place_sinusoids(fp, amp_p, self._phases(fp, "part").float(), self.n, self.sr, image=False)
        ok_h = ok_h.float()
        frac = (harm_w * ok_h) @ self.harm_bands.T + share_w @ self.part_bands.T  # (B, F, K)
        noise = (1 - frac).clamp(0, 1)
        return harmonic + partial, noise.view(b, t, sub, k)
