"""A built-in example made from scratch: a textured ball crossing a slowly panning textured scene.

The ball enters from the left, crosses, leaves on the right, comes back in and stops near the
centre, bouncing all the while; it hums (a buzzing tone whose pitch follows its speed) and thuds at
every floor contact. Everything is exact: the true track comes from the very masks that are drawn.
Used by `foley demo`, the tests and the benchmarks.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from foley.errors import FoleyError
from foley.tracks import Track, centroid_and_mass


def _texture(h: int, w: int, rng: np.random.Generator, scale: int, colours: np.ndarray) -> np.ndarray:
    """Smooth random colour texture (h, w, 3) uint8: blurred noise mapped through a small palette."""
    small = rng.random((max(2, h // scale), max(2, w // scale), 3)).astype(np.float32)  # (h', w', 3)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    fine = rng.random((h, w, 3)).astype(np.float32) * 0.35
    t = np.clip(big * 0.8 + fine, 0, 1)
    img = colours[0] * (1 - t) + colours[1] * t  # (h, w, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class DemoScene:
    """Geometry of the demo clip; every quantity derives from these fields."""

    width: int = 480
    height: int = 270
    fps: float = 25.0
    seconds: float = 8.0
    pan_px_per_s: float = 12.0  # camera pan speed, pixels per second
    ball_radius_frac: float = 0.09  # ball radius as a fraction of the frame height
    bounces_per_s: float = 1.6
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 16 <= v <= 7680:
                raise FoleyError(f"--{name} must be a whole number of pixels in 16..7680, got {v!r}")
        for name in ("seconds", "fps"):
            v = getattr(self, name)
            if not (isinstance(v, numbers.Real) and math.isfinite(v) and v > 0):
                raise FoleyError(f"--{name} must be a finite number > 0, got {v!r}")
        if self.n_frames < 2:
            raise FoleyError(f"--seconds {self.seconds:g} is less than two frames: make the demo longer")

    @property
    def n_frames(self) -> int:
        return int(round(self.seconds * self.fps))

    @property
    def radius(self) -> float:
        return self.ball_radius_frac * self.height

    def centre(self, k: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ball centre in normalised coordinates (x beyond +-1 when off-frame; y in [-1, 1], +1 = bottom)."""
        u = np.asarray(k, dtype=np.float64) / max(1, self.n_frames - 1)
        x = 0.3 + 1.45 * np.sin(2 * math.pi * 0.8 * u - math.pi / 2)
        phase = np.asarray(k, dtype=np.float64) / self.fps * self.bounces_per_s
        floor = 1.0 - 2.2 * self.radius / self.height  # centre height at floor contact
        y = floor - 0.9 * np.abs(np.sin(math.pi * phase))
        return x, y

    def impact_times(self) -> np.ndarray:
        """Seconds at which the ball touches the floor (|sin| = 0)."""
        return np.arange(1, int(self.seconds * self.bounces_per_s) + 1) / self.bounces_per_s

    def mask(self, k: int) -> np.ndarray:
        """(H, W) bool: the ball's visible pixels in frame k."""
        x, y = self.centre(k)
        cx, cy = (x + 1) * self.width / 2, (y + 1) * self.height / 2
        cols = np.arange(self.width) + 0.5
        rows = np.arange(self.height) + 0.5
        return (cols[None, :] - cx) ** 2 + (rows[:, None] - cy) ** 2 <= self.radius ** 2

    def track(self) -> Track:
        """Exact track: visible-part centroid and mass when on screen, the centre beyond +-1 when off."""
        n = self.n_frames
        xs, ys, ms = np.zeros(n), np.zeros(n), np.zeros(n)
        full_mass = math.pi * self.radius ** 2 / (self.width * self.height)
        for k in range(n):
            wx, hy, m = centroid_and_mass(self.mask(k))
            if m == 0.0:
                cx, cy = self.centre(k)
                wx, hy, m = float(cx), float(cy), full_mass
            xs[k], ys[k], ms[k] = wx, hy, m
        return Track(fps=self.fps, x=xs, y=ys, mass=ms, reliable=np.ones(n, bool), label="ball",
                     frame_size=(self.width, self.height))

    def frames(self) -> Iterator[np.ndarray]:
        """Yield (H, W, 3) uint8 RGB frames; memory stays one background strip plus one frame."""
        rng = np.random.default_rng(self.seed)
        pan_total = int(math.ceil(self.pan_px_per_s * self.seconds)) + 2
        bg = _texture(self.height, self.width + pan_total, rng, 24,
                      np.array([[40, 70, 40], [150, 170, 120]], np.float32))
        r = int(math.ceil(self.radius)) + 1
        ball = _texture(2 * r, 2 * r, rng, 4, np.array([[200, 30, 20], [255, 210, 60]], np.float32))
        for k in range(self.n_frames):
            off = self.pan_px_per_s * k / self.fps
            o = int(off)
            frame = bg[:, o:o + self.width].copy()  # (H, W, 3)
            m = self.mask(k)
            if m.any():
                x, y = self.centre(k)
                cx, cy = int(round((x + 1) * self.width / 2)), int(round((y + 1) * self.height / 2))
                self._blit(frame, ball, m, cx - r, cy - r)
            yield frame

    @staticmethod
    def _blit(frame: np.ndarray, sprite: np.ndarray, mask: np.ndarray, x0: int, y0: int) -> None:
        """Paint the sprite where the mask is set; the sprite's texture moves with the ball."""
        h, w = frame.shape[:2]
        sh, sw = sprite.shape[:2]
        ys, xs = np.nonzero(mask)
        sy = np.clip(ys - y0, 0, sh - 1)
        sx = np.clip(xs - x0, 0, sw - 1)
        frame[ys, xs] = sprite[sy, sx]

    def sound(self, sr: int = 48000) -> np.ndarray:
        """(N,) float32 mono: a buzzing hum following the ball's speed plus a thud at each bounce."""
        n = int(round(self.seconds * sr))
        t = np.arange(n) / sr
        kf = np.arange(self.n_frames)
        x, _ = self.centre(kf)
        speed = np.abs(np.gradient(x)) * self.fps  # (K,) normalised units per second
        f0 = 110.0 + 60.0 * np.interp(t * self.fps - 0.5, kf, speed)  # (N,) Hz
        phase = 2 * math.pi * np.cumsum(f0) / sr
        hum = sum(np.sin(h * phase) / h for h in (1, 2, 3, 5)) * 0.25
        hum *= 0.6 + 0.4 * np.sin(2 * math.pi * 7.0 * t) ** 2
        rng = np.random.default_rng(self.seed + 1)
        thuds = np.zeros(n)
        for ti in self.impact_times():
            i = int(ti * sr)
            m = min(n - i, int(0.25 * sr))
            if m <= 0:
                continue
            tt = np.arange(m) / sr
            burst = (np.sin(2 * math.pi * 70 * tt) + 0.5 * rng.standard_normal(m) * np.exp(-tt * 60))
            thuds[i:i + m] += 0.8 * burst * np.exp(-tt * 18)
        out = hum + thuds
        return (0.5 * out / np.max(np.abs(out))).astype(np.float32)
