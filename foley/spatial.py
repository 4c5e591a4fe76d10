"""Object-aware stereo spatialization, StereoFoley §2.2.4: trajectory conditioning, pan law, distance gain, mix.

Pipeline for one source (`render_source`):
  1. `condition_track`: mass persistence near edges, fill missed frames (linear interpolation
     between reliable frames), extrapolate off-frame from the recent mean velocity, hold the last
     reliable mass off-frame (the first one before an entry), weighted-moving-average smoothing;
  2. `upsample`: per-frame position and mass -> per-sample, linear between frame centres, so the
     gains are continuous at the sample level (no zipper noise at frame boundaries);
  3. `pan_gains` on the clipped position, eq. (3); `distance_gain`, eq. (4); render, eq. (5).
`mix` sums rendered sources over an ambience bed spread across both channels (`spread_ambience`:
two different velvet-noise decorrelation filters, so the bed is wide rather than dual-mono) and
never clips: if the mix peak exceeds the ceiling (-1 dBFS) the whole mix is scaled by one gain,
which keeps the stereo image and the dynamics intact.

Streaming (memory flat in length): `render_block` renders any span of a source, `spread_blocks`
spreads a bed block by block, `mix_blocks` streams the mix of `spatialize` before its gain, and
`normalise_blocks` finds that gain in a first pass and applies it in a second.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
from scipy.signal import oaconvolve

from foley.blocks import fit_blocks
from foley.errors import AudioError, TrackError
from foley.tracks import Track

RENDER_CHUNK = 1 << 18  # samples rendered at a time (5.5 s at 48 kHz)

@dataclass(frozen=True)
class SpatialConfig:
    """Knobs of the conditioning and mix; defaults follow the paper's description."""

    smooth_frames: int = 5  # weighted-moving-average window (triangular weights), frames
    velocity_frames: int = 5  # reliable frames averaged for the "recent mean velocity"
    max_offscreen: float = 2.5  # extrapolated |x| is capped here (gain 1/(1+1.5^2) ~ 0.3)
    ceiling: float = 10 ** (-1 / 20)  # peak ceiling of the mix, -1 dBFS

    def __post_init__(self) -> None:
        if self.smooth_frames < 1 or self.velocity_frames < 1:
            raise ValueError("smooth_frames and velocity_frames must be >= 1")
        if self.max_offscreen < 1:
            raise ValueError("max_offscreen must be >= 1")


# ---------------------------------------------------------------- trajectory conditioning

def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs of a 1-D bool array."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def _edge_margin(mass: float, frame_size: tuple[int, int] | None) -> float:
    """Half-width of a roughly square object of this mass, in normalised x units: sqrt(m H / W)."""
    aspect = frame_size[1] / frame_size[0] if frame_size else 1.0
    return float(np.clip(math.sqrt(max(mass, 0.0) * aspect), 0.02, 0.5))


def _persist_edge_mass(x: np.ndarray, mass: np.ndarray, rel: np.ndarray,
                       frame_size: tuple[int, int] | None) -> np.ndarray:
    """Near an edge only part of the object shows: keep the mass of the nearest interior frame if larger."""
    out = mass.copy()
    interior = rel & (np.abs(x) <= 1.0)
    if not interior.any():
        return out
    ref = float(np.median(mass[interior]))
    interior &= np.abs(x) <= 1.0 - _edge_margin(ref, frame_size)
    idx = np.flatnonzero(interior)
    if idx.size == 0:
        return out
    edge = np.flatnonzero(rel & ~interior)
    pos = np.searchsorted(idx, edge)
    before = idx[np.clip(pos - 1, 0, idx.size - 1)]
    after = idx[np.clip(pos, 0, idx.size - 1)]
    nearest = np.where(np.abs(edge - before) <= np.abs(after - edge), before, after)
    out[edge] = np.maximum(mass[edge], mass[nearest])
    return out


def _velocity(x: np.ndarray, idx: np.ndarray) -> float:
    """Mean per-frame velocity over the reliable frames `idx` (ordered in time)."""
    if idx.size < 2:
        return 0.0
    return float((x[idx[-1]] - x[idx[0]]) / (idx[-1] - idx[0]))


def _fill_gap(x: np.ndarray, mass: np.ndarray, rel_idx: np.ndarray, a: int, b: int,
              cfg: SpatialConfig, margin: float) -> None:
    """Fill the unreliable run [a, b) in place, from the reliable frames around it."""
    n_v = cfg.velocity_frames
    prev = rel_idx[rel_idx < a][-n_v:]
    nxt = rel_idx[rel_idx >= b][:n_v]
    k = np.arange(a, b)
    if prev.size and nxt.size:
        p, q = prev[-1], nxt[0]
        t = (k - p) / (q - p)  # (G,) in (0, 1)
        central = max(abs(x[p]), abs(x[q])) <= 1.0 - margin
        if central:  # a missed detection: linear interpolation, StereoFoley §2.2.4
            x[k] = x[p] + t * (x[q] - x[p])
        else:  # left the frame and came back: extrapolate from both sides, cross-fade
            fwd = x[p] + _velocity(x, prev) * (k - p)
            bwd = x[q] + _velocity(x, nxt) * (k - q)
            x[k] = (1 - t) * np.clip(fwd, -cfg.max_offscreen, cfg.max_offscreen) + t * np.clip(
                bwd, -cfg.max_offscreen, cfg.max_offscreen)
        mass[k] = mass[p] + t * (mass[q] - mass[p]) if central else (1 - t) * mass[p] + t * mass[q]
    elif prev.size:  # trailing gap: extrapolate forward, hold the last reliable mass
        p = prev[-1]
        x[k] = np.clip(x[p] + _velocity(x, prev) * (k - p), -cfg.max_offscreen, cfg.max_offscreen)
        mass[k] = mass[p]
    else:  # leading gap: extrapolate backward from the entry, hold the first reliable mass
        q = nxt[0]
        x[k] = np.clip(x[q] + _velocity(x, nxt) * (k - q), -cfg.max_offscreen, cfg.max_offscreen)
        mass[k] = mass[q]


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Weighted moving average with triangular weights, edges padded by repetition."""
    if window <= 1 or values.size < 2:
        return values.copy()
    half = window // 2
    w = np.concatenate([np.arange(1, half + 2), np.arange(half, 0, -1)]).astype(np.float64)
    w /= w.sum()
    padded = np.pad(values, half, mode="edge")
    return np.convolve(padded, w, mode="valid")


def condition_track(track: Track, cfg: SpatialConfig = SpatialConfig()) -> Track:
    """Complete and smooth a track so every frame has a position and mass, StereoFoley §2.2.4."""
    rel = track.reliable
    if not rel.any():
        raise TrackError(f"track {track.label!r} has no reliable frame: nothing to follow")
    x, mass = track.x.copy(), track.mass.copy()
    mass = _persist_edge_mass(x, mass, rel, track.frame_size)
    rel_idx = np.flatnonzero(rel)
    margin = _edge_margin(float(np.median(mass[rel])), track.frame_size)
    for a, b in _runs(~rel):
        _fill_gap(x, mass, rel_idx, a, b, cfg, margin)
    y = np.interp(np.arange(len(x)), rel_idx, np.nan_to_num(track.y[rel_idx]))
    x, mass = smooth(x, cfg.smooth_frames), smooth(mass, cfg.smooth_frames)
    return track.with_(x=x, y=y, mass=np.maximum(mass, 0.0))


# ---------------------------------------------------------------- gains and rendering

def upsample(values: np.ndarray, fps: float, sr: int, n_samples: int, start: int = 0) -> np.ndarray:
    """Per-frame values -> samples [start, start + n_samples), linear between frame centres (k + 0.5) / fps."""
    t_frames = (np.arange(len(values)) + 0.5) / fps  # (K,) seconds
    t = np.arange(start, start + n_samples) / sr  # (N,)
    return np.interp(t, t_frames, values)


def pan_gains(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equal-power gains on the clipped position, StereoFoley eq. (3): gL^2 + gR^2 = 1."""
    theta = np.clip(w, -1.0, 1.0) + 1.0
    theta *= math.pi / 4
    return np.cos(theta), np.sin(theta)


def pan_of_energies(e_left, e_right, eps: float = 0.0):
    """Inverse of the equal-power law (eq. 3): w = (4/pi) atan2(sqrt(E_R), sqrt(E_L)) - 1 in [-1, 1].

    Works on numpy arrays and torch tensors alike (the one copy of the inverse pan law): a source panned
    to w by `pan_gains` comes back as w, whatever its level.
    """
    if hasattr(e_left, "sqrt"):  # torch
        import torch

        return (4 / math.pi) * torch.atan2(torch.sqrt(e_right + eps), torch.sqrt(e_left + eps)) - 1
    return (4 / math.pi) * np.arctan2(np.sqrt(e_right + eps), np.sqrt(e_left + eps)) - 1


def distance_gain(mass: np.ndarray, w: np.ndarray, m_max: float) -> np.ndarray:
    """Distance gain, StereoFoley eq. (4): (m / m_max) / (1 + max(0, |w| - 1)^2)."""
    if m_max <= 0:
        return np.ones_like(mass)
    gain = mass / m_max
    off = np.abs(w) > 1.0
    if off.any():  # attenuation only where off-frame
        gain[off] /= 1.0 + (np.abs(w[off]) - 1.0) ** 2
    return gain


def check_audio(audio: np.ndarray, what: str = "audio") -> np.ndarray:
    """Reject NaN/inf or empty audio with a clear message; return it as a float array (no copy if it is one)."""
    audio = np.asarray(audio)
    if not np.issubdtype(audio.dtype, np.floating):
        audio = audio.astype(np.float32)
    if audio.size == 0:
        raise AudioError(f"{what} is empty")
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{what} contains NaN or infinite samples: repair or re-export the file")
    return audio


def render_block(mono: np.ndarray, ct: Track, sr: int, start: int, m_max: float,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Samples [start, start + n) of a source (mono: (n,)) rendered to stereo (2, n) along a conditioned track, eq. (5).

    `ct` comes from `condition_track` and `m_max` is its largest mass; the gains depend only on the
    absolute sample index, so blocks rendered one by one equal the whole.
    """
    n = mono.size
    w = upsample(ct.x, ct.fps, sr, n, start).astype(np.float32)  # (n,) unclipped position
    m = upsample(ct.mass, ct.fps, sr, n, start).astype(np.float32)  # (n,)
    g_l, g_r = pan_gains(w)
    vm = distance_gain(m, w, m_max) * mono  # (n,) distance-scaled source
    out = np.empty((2, n), np.float32) if out is None else out
    np.multiply(g_l, vm, out=out[0])
    np.multiply(g_r, vm, out=out[1])
    return out  # (2, n)


def render_source(mono: np.ndarray, track: Track, sr: int, cfg: SpatialConfig = SpatialConfig()) -> np.ndarray:
    """Render a mono source to stereo (2, N) following its track, StereoFoley eq. (5)."""
    mono = _check_mono(mono)
    ct = condition_track(track, cfg)
    m_max = float(ct.mass.max())
    out = np.empty((2, mono.size), np.float32)
    for a in range(0, mono.size, RENDER_CHUNK):  # chunks keep memory flat in clip length
        render_block(mono[a:a + RENDER_CHUNK], ct, sr, a, m_max, out=out[:, a:a + RENDER_CHUNK])
    return out  # (2, N)


def _check_mono(mono: np.ndarray) -> np.ndarray:
    """A finite (N,) float source; AudioError otherwise."""
    mono = check_audio(mono, "source audio")
    if mono.ndim != 1:
        raise AudioError(f"source audio must be mono (N,), got shape {mono.shape}")
    return mono


def _velvet(n: int, density: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Velvet-noise decorrelation filter of n taps: sparse +-1 pulses under a decaying envelope, unit energy."""
    h = np.zeros(n)
    step = max(1, sr // density)
    pos = np.arange(0, n, step) + rng.integers(0, step, size=len(range(0, n, step)))
    pos = pos[pos < n]
    h[pos] = rng.choice([-1.0, 1.0], size=pos.size) * np.exp(-3.0 * pos / n)
    h[0] = 1.0  # keep a direct path so transients stay put
    return h / np.sqrt(np.sum(h ** 2))


def is_stereo_bed(blocks: Iterable[np.ndarray]) -> bool:
    """True for a real stereo bed, (2, k) blocks whose channels differ somewhere by more than 1e-5."""
    return any(b.ndim == 2 and b.shape[0] == 2 and not np.allclose(b[0], b[1], atol=1e-5) for b in blocks)


def spread_ambience(ambience: np.ndarray, sr: int, seed: int = 0) -> np.ndarray:
    """An ambience bed across both channels (2, N): a mono or dual-mono bed is decorrelated into L/R."""
    amb = check_audio(ambience, "ambience")
    if is_stereo_bed([amb]):
        return amb  # already a real stereo bed
    return next(spread_blocks([amb], sr, seed))  # (2, N)


def spread_blocks(blocks: Iterable[np.ndarray], sr: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Decorrelate a bed, (C, k) blocks downmixed to mono (or (k,)), into L/R: one (2, k) block per block.

    Two different 30 ms velvet-noise filters, by overlap-add: each block is convolved whole and its
    filter tail carried into the next; the tail after the last block is dropped (the output is as
    long as the input). One block gives `spread_ambience`'s result.
    """
    rng = np.random.default_rng(seed)
    n = int(0.03 * sr)  # 30 ms filters
    filters = [_velvet(n, 2000, sr, rng) for _ in range(2)]
    tail = np.zeros((2, n - 1))
    for block in blocks:
        mono = block.mean(axis=0) if block.ndim == 2 else block  # (k,)
        if mono.size == 0:
            continue
        wet = np.stack([oaconvolve(mono, h) for h in filters])  # (2, k + n - 1)
        wet[:, :n - 1] += tail
        tail = wet[:, mono.size:].copy()
        yield wet[:, :mono.size]


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad the last axis to n samples."""
    if audio.shape[-1] >= n:
        return audio[..., :n]
    pad = [(0, 0)] * (audio.ndim - 1) + [(0, n - audio.shape[-1])]
    return np.pad(audio, pad)


def mix(sources: Sequence[np.ndarray], ambience: np.ndarray | None = None, ambience_gain: float = 1.0,
        cfg: SpatialConfig = SpatialConfig()) -> np.ndarray:
    """Sum stereo sources (2, N) over an ambience bed (2, N); one gain brings the peak under the ceiling."""
    if not sources:
        raise AudioError("nothing to mix")
    n = max(s.shape[-1] for s in sources)
    out = np.zeros((2, n), np.float32)
    for s in sources:
        out += fit_length(s, n)
    if ambience is not None:
        out += ambience_gain * fit_length(ambience, n)
    out *= peak_gain(float(np.max(np.abs(out))), cfg)
    return out.astype(np.float32)


def peak_gain(peak: float, cfg: SpatialConfig = SpatialConfig()) -> float:
    """The one gain that brings a mix peaking at `peak` under the ceiling (1 when it is under already)."""
    return cfg.ceiling / peak if peak > cfg.ceiling else 1.0


def spatialize(sources: Sequence[np.ndarray], tracks: Sequence[Track], sr: int,
               ambience: np.ndarray | None = None, ambience_gain: float = 1.0,
               cfg: SpatialConfig = SpatialConfig()) -> np.ndarray:
    """Object-aware stereo (2, N) from mono sources and their tracks, over an optional ambience."""
    if len(sources) != len(tracks):
        raise TrackError(f"{len(sources)} sources but {len(tracks)} tracks: give one track per source")
    rendered = [render_source(s, t, sr, cfg) for s, t in zip(sources, tracks)]
    bed = spread_ambience(ambience, sr) if ambience is not None else None
    return mix(rendered, bed, ambience_gain, cfg)


def mix_blocks(sources: Sequence[Iterable[np.ndarray]], tracks: Sequence[Track], n: int, sr: int,
               bed: Iterable[np.ndarray] | None = None, ambience_gain: float = 1.0,
               cfg: SpatialConfig = SpatialConfig(), block: int = RENDER_CHUNK) -> Iterator[np.ndarray]:
    """The mix of `spatialize` before its gain, streamed: (2, block) float32 blocks covering n samples.

    Args:
        sources: one stream of mono (1, k) blocks per track (any k), trimmed or zero-padded to n.
        bed: a stream of (2, k) blocks, already spread (`spread_blocks`) or real stereo; fitted to n.
    """
    if len(sources) != len(tracks):
        raise TrackError(f"{len(sources)} sources but {len(tracks)} tracks: give one track per source")
    cts = [condition_track(t, cfg) for t in tracks]
    streams = [fit_blocks(s, n, block, 1) for s in sources]
    beds = fit_blocks(bed, n, block, 2) if bed is not None else None
    return _mixed(streams, cts, n, sr, beds, ambience_gain, block)


def _mixed(streams: list[Iterator[np.ndarray]], cts: list[Track], n: int, sr: int,
           beds: Iterator[np.ndarray] | None, ambience_gain: float, block: int) -> Iterator[np.ndarray]:
    """Render and sum the fitted streams block by block, as `mix` sums whole arrays."""
    m_maxes = [float(ct.mass.max()) for ct in cts]
    for a in range(0, n, block):
        out = np.zeros((2, min(block, n - a)), np.float32)
        for stream, ct, m_max in zip(streams, cts, m_maxes):
            out += render_block(_check_mono(next(stream)[0]), ct, sr, a, m_max)
        if beds is not None:
            out += ambience_gain * _check_bed(next(beds))
        yield out


def _check_bed(block: np.ndarray) -> np.ndarray:
    """A (2, k) block of a stereo bed; AudioError otherwise (a mono bed must go through `spread_blocks`)."""
    if block.ndim != 2 or block.shape[0] != 2:
        raise AudioError(f"ambience bed blocks must be stereo (2, samples), got {block.shape}: spread it first")
    return block


def normalise_blocks(render: Callable[[], Iterable[np.ndarray]],
                     cfg: SpatialConfig = SpatialConfig()) -> tuple[float, Iterator[np.ndarray]]:
    """One gain under the ceiling for a streamed mix, as `mix` applies to a whole one: two passes.

    `render()` must give the same blocks each call. The first pass runs now, keeping only the peak;
    returns (`peak_gain`, the blocks of a second pass scaled by it as they are read).
    """
    peak = max((float(np.max(np.abs(b))) for b in render() if b.size), default=0.0)
    gain = peak_gain(peak, cfg)
    return gain, (b * np.float32(gain) if gain != 1.0 else b for b in render())
