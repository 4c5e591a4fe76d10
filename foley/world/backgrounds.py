"""Backgrounds and their ambiences: a panorama image and a matching mono bed per type.

The panorama is wider than the frame so that a slow camera pan can slide across it; rain adds a
falling-streak layer drawn over the background (and under the objects) in every frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

import cv2
import numpy as np
from scipy.signal import lfilter, sosfilt

from foley.demo import _texture
from foley.world.sounds import harmonic, band

Image = Callable[[int, int, np.random.Generator], np.ndarray]
Sound = Callable[[int, int, np.random.Generator, float], np.ndarray]


def _sky_ground(h: int, w: int, rng: np.random.Generator, sky: tuple, ground: tuple, horizon: float,
                scale: int = 20) -> np.ndarray:
    """(h, w, 3) uint8: a vertical sky gradient over a textured ground."""
    img = np.empty((h, w, 3), np.uint8)
    hz = int(horizon * h)
    ramp = np.linspace(0.85, 1.1, hz)[:, None, None]
    img[:hz] = np.clip(np.array(sky[0], np.float32) * ramp, 0, 255).astype(np.uint8)
    img[hz:] = _texture(h - hz, w, rng, scale, np.array(ground, np.float32))
    return img


def _meadow(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = _sky_ground(h, w, rng, ((150, 190, 235),), ((60, 110, 40), (130, 170, 70)), 0.45)
    for _ in range(w // 60):  # distant trees
        x, r = int(rng.uniform(0, w)), int(rng.uniform(0.05, 0.1) * h)
        cv2.circle(img, (x, int(0.45 * h) - r // 2), r, (40, 90, 45), -1)
    return img


def _street(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = _sky_ground(h, w, rng, ((95, 100, 110),), ((45, 45, 50), (85, 85, 95)), 0.5, 30)
    for _ in range(w // 40):  # dark buildings
        x, bw, bh = int(rng.uniform(0, w)), int(rng.uniform(20, 50)), int(rng.uniform(0.15, 0.4) * h)
        cv2.rectangle(img, (x, int(0.5 * h) - bh), (x + bw, int(0.5 * h)), (60, 62, 70), -1)
    return img


def _plaza(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = _sky_ground(h, w, rng, ((175, 200, 225),), ((150, 130, 110), (200, 185, 160)), 0.42, 16)
    for _ in range(w // 6):  # a distant crowd: small coloured figures on the horizon
        x, y = int(rng.uniform(0, w)), int(0.42 * h + rng.uniform(-0.02, 0.04) * h)
        col = tuple(int(c) for c in rng.integers(40, 220, 3))
        cv2.ellipse(img, (x, y), (3, 7), 0, 0, 360, col, -1)
        cv2.circle(img, (x, y - 9), 3, (200, 170, 140), -1)
    return img


def _city(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = _sky_ground(h, w, rng, ((200, 180, 160),), ((70, 70, 75), (110, 110, 115)), 0.48, 40)
    for _ in range(w // 25):  # skyline with windows
        x, bw, bh = int(rng.uniform(0, w)), int(rng.uniform(15, 40)), int(rng.uniform(0.15, 0.45) * h)
        top = int(0.48 * h) - bh
        cv2.rectangle(img, (x, top), (x + bw, int(0.48 * h)), tuple(int(c) for c in rng.integers(70, 140, 3)), -1)
        for wy in range(top + 4, int(0.48 * h) - 4, 8):
            cv2.line(img, (x + 3, wy), (x + bw - 3, wy), (230, 220, 150), 1)
    cv2.line(img, (0, int(0.8 * h)), (w, int(0.8 * h)), (230, 230, 230), 2)  # lane marking
    return img


def _room(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = _sky_ground(h, w, rng, ((205, 195, 170),), ((120, 80, 50), (170, 120, 80)), 0.55, 12)
    for x in range(0, w, 90):  # picture frames on the wall
        cv2.rectangle(img, (x + 20, int(0.15 * h)), (x + 60, int(0.35 * h)), (90, 70, 50), 3)
    return img


def _noise(n: int, lo: float, hi: float, sr: int, rng: np.random.Generator, order: int = 2,
           white: np.ndarray | None = None) -> np.ndarray:
    """(n,) unit-variance band-passed noise (of `white` if given: disjoint bands of one white noise are
    nearly independent, and drawing it once is half the cost)."""
    x = sosfilt(band(lo, hi, sr, order), rng.standard_normal(n) if white is None else white)
    return x / (np.std(x) + 1e-12)


def _slow(n: int, sr: int, rng: np.random.Generator, hz: float) -> np.ndarray:
    """(n,) smooth random modulation in [0, 1] varying at about `hz`."""
    knots = rng.random(int(n / sr * hz) + 3)
    return np.interp(np.arange(n) / sr * hz, np.arange(knots.size), knots)


def _wind(n: int, sr: int, rng: np.random.Generator, amount: float) -> np.ndarray:
    return _noise(n, 80, 900, sr, rng) * (0.3 + 0.7 * _slow(n, sr, rng, 0.7)) * (0.5 + 0.5 * amount)


def _rain(n: int, sr: int, rng: np.random.Generator, amount: float) -> np.ndarray:
    hiss = _noise(n, 1500, 12000, sr, rng)
    drops = (rng.random(n) < 150 * (0.3 + amount) / sr) * rng.standard_normal(n)
    drops = lfilter([1.0], [1.0, -0.9], drops)
    return hiss * (0.4 + 0.6 * amount) + 2 * drops


def _crowd(n: int, sr: int, rng: np.random.Generator, amount: float) -> np.ndarray:
    white = rng.standard_normal(n)
    voices = [_noise(n, f, f * 1.6, sr, rng, white=white) * _slow(n, sr, rng, 4.0) for f in (300, 700, 1600)]
    return sum(voices) / math.sqrt(len(voices)) * (0.5 + 0.5 * amount)


def _traffic(n: int, sr: int, rng: np.random.Generator, amount: float) -> np.ndarray:
    white = rng.standard_normal(n)
    rumble = _noise(n, 40, 400, sr, rng, white=white)
    passes = _slow(n, sr, rng, 0.5) ** 2
    return rumble * (0.5 + passes) + 0.3 * _noise(n, 500, 3000, sr, rng, white=white) * passes


def _hum(n: int, sr: int, rng: np.random.Generator, amount: float) -> np.ndarray:
    f = rng.uniform(95, 125)
    return harmonic(np.full(n, f), sr, [0.5, 0.2]) + 0.6 * _noise(n, 100, 2000, sr, rng)


@dataclass(frozen=True)
class Backdrop:
    """A background type: its look, its ambience, and caption words by intensity (soft, loud)."""

    name: str
    image: Image
    sound: Sound
    captions: tuple[str, str]
    rain: bool = False

    def caption(self, amount: float) -> str:
        return self.captions[int(amount >= 0.5)]


BACKDROPS: Mapping[str, Backdrop] = MappingProxyType({b.name: b for b in (
    Backdrop("wind", _meadow, _wind, ("a light breeze over a meadow", "strong wind over a meadow")),
    Backdrop("rain", _street, _rain, ("light rain on a street", "heavy rain on a street"), rain=True),
    Backdrop("crowd", _plaza, _crowd, ("a quiet crowd murmuring in a square", "a busy crowd chattering in a square")),
    Backdrop("traffic", _city, _traffic, ("distant traffic hum in a city", "heavy traffic noise in a city")),
    Backdrop("room", _room, _hum, ("the hum of a quiet room", "an air conditioner humming in a room")),
)})


def rain_layer(h: int, w: int, rng: np.random.Generator, amount: float) -> np.ndarray:
    """(2h, w, 3) uint8 streaks to max() over frames, scrolled down over time."""
    layer = np.zeros((2 * h, w), np.uint8)
    for _ in range(int((0.3 + amount) * w * 1.5)):
        x, y = int(rng.uniform(0, w)), int(rng.uniform(0, 2 * h))
        cv2.line(layer, (x, y), (x - 2, y + 9), int(rng.uniform(140, 200)), 1)
    layer[h:] = np.maximum(layer[h:], layer[:h])  # tile seamlessly when scrolling by h
    layer[:h] = layer[h:]
    return np.repeat(layer[:, :, None], 3, axis=2)
