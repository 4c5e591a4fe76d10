"""Object paths as functions of time: where an object's anchor is and how large it looks.

Positions are normalised like a `Track`: x in [-1, 1] across the frame (beyond when off-frame),
y in [-1, 1] top to bottom; `scale` multiplies the object's base size (approaching/receding).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

Motion = Literal["static_centre", "static_off", "crossing", "entering", "leaving", "enter_leave",
                 "approaching", "receding", "bouncing", "circling"]
MOTIONS: tuple[str, ...] = get_args(Motion)

_WHERE = {"static_centre": "in the centre", "crossing": "crossing from {a} to {b}",
          "entering": "coming in from the {a}", "leaving": "leaving to the {b}",
          "enter_leave": "passing from {a} to {b}", "approaching": "coming closer on the {s}",
          "receding": "moving away on the {s}", "bouncing": "going back and forth",
          "circling": "circling around"}


@dataclass(frozen=True)
class Path:
    """A motion of one kind with its sampled parameters; `at(u)` gives the pose at clip fraction u."""

    kind: str
    x0: float  # anchor x at the start of the move
    x1: float  # anchor x at the end of the move
    y: float  # resting y
    scale0: float = 1.0
    scale1: float = 1.0
    u0: float = 0.0  # clip fraction where the move starts
    u1: float = 1.0  # ... and ends (held before and after)
    turns: float = 1.0  # bouncing: legs of the back-and-forth; circling: revolutions
    radius: float = 0.0  # circling radius in x units

    def __post_init__(self) -> None:
        if self.kind not in MOTIONS:
            raise ValueError(f"unknown motion {self.kind!r}; choose one of {MOTIONS}")

    def at(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, scale), each shaped like u (clip fraction in [0, 1])."""
        u = np.asarray(u, dtype=np.float64)
        s = np.clip((u - self.u0) / max(1e-9, self.u1 - self.u0), 0.0, 1.0)
        one = np.ones_like(u)
        if self.kind == "bouncing":
            p = s * self.turns
            tri = np.where(np.floor(p) % 2 == 0, p % 1.0, 1.0 - p % 1.0)
            return self.x0 + (self.x1 - self.x0) * tri, self.y * one, one
        if self.kind == "circling":
            a = 2 * math.pi * self.turns * s
            return self.x0 + self.radius * np.cos(a), self.y + 0.3 * self.radius * np.sin(a), 1.0 + 0.25 * np.sin(a)
        scale = self.scale0 + (self.scale1 - self.scale0) * s
        return self.x0 + (self.x1 - self.x0) * s, self.y * one, scale

    def where(self) -> str:
        """Words for the caption: where the object is and how it moves."""
        side = lambda v: "left" if v < 0 else "right"  # noqa: E731
        if self.kind == "static_off":
            return f"on the {side(self.x0)}"
        return _WHERE[self.kind].format(a=side(self.x0), b=side(self.x1), s=side(self.x0))


def sample_path(kind: str, rng: np.random.Generator, y: float, half: float) -> Path:
    """Random parameters for a motion kind; `half` is the object's largest half-width in x units."""
    side = float(rng.choice([-1.0, 1.0]))
    out = 1.0 + half + rng.uniform(0.05, 0.25)  # fully off-frame
    if kind == "static_centre":
        return Path(kind, 0.0, 0.0, y)
    if kind == "static_off":
        x = side * rng.uniform(0.35, 0.7)
        return Path(kind, x, x, y)
    if kind == "crossing":
        return Path(kind, side * rng.uniform(0.55, 0.75), -side * rng.uniform(0.55, 0.75), y)
    if kind == "entering":
        return Path(kind, side * out, side * rng.uniform(0.0, 0.6), y, u0=rng.uniform(0, 0.2),
                    u1=rng.uniform(0.55, 0.8))
    if kind == "leaving":
        return Path(kind, side * rng.uniform(0.0, 0.5), side * out, y, u0=rng.uniform(0.1, 0.3),
                    u1=rng.uniform(0.6, 0.8))
    if kind == "enter_leave":
        return Path(kind, side * out, -side * out, y, u0=rng.uniform(-0.1, 0.0), u1=rng.uniform(1.0, 1.1))
    if kind in ("approaching", "receding"):
        x = rng.uniform(-0.6, 0.6)
        small, big = rng.uniform(0.45, 0.6), rng.uniform(1.3, 1.5)
        s0, s1 = (small, big) if kind == "approaching" else (big, small)
        return Path(kind, x, x, y, s0, s1, u0=rng.uniform(0, 0.15), u1=rng.uniform(0.85, 1.0))
    if kind == "bouncing":
        a = rng.uniform(0.55, 0.75)
        return Path(kind, side * a, -side * a, y, turns=float(rng.integers(2, 4)))
    return Path(kind, rng.uniform(-0.2, 0.2), 0.0, y, turns=rng.uniform(0.6, 1.2) * side,
                radius=rng.uniform(0.4, 0.6))
