"""What each sounding object looks like: one small drawing function per class, on a label canvas.

A drawing function paints part labels (0 = empty, 1 = body in the instance's colour and texture,
2 = dark parts, 3 = light/accent parts, 4 = secondary colour) into a square (S, S) uint8 canvas,
posed at time `t` from the same event times the sound is made from (`Pose`). The renderer turns the
labels into colours and the non-zero labels into the object's mask.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

SHIFT = 4  # cv2 fixed-point bits: sub-pixel drawing
ONE = 1 << SHIFT


@dataclass(frozen=True)
class Pose:
    """Animation state at one instant, derived from the event times."""

    t: float  # seconds since the clip start
    since: float  # seconds since the last event (inf before the first)
    until: float  # seconds until the next event (inf after the last)
    cycle: float  # fraction of the way from the last event to the next, in [0, 1)
    facing: int  # +1 moving/looking right, -1 left
    travelled: float  # horizontal distance travelled so far, in object sizes (wheels, legs)
    running: bool  # fountain: water on
    index: int  # number of events up to t (its parity alternates swings)


def pose_at(t: float, events: np.ndarray, facing: int = 1, travelled: float = 0.0,
            running: bool = True) -> Pose:
    """Pose at time t from sorted event times (an animation schedule that may extend past the clip)."""
    i = int(np.searchsorted(events, t, side="right"))
    prev = events[i - 1] if i > 0 else -math.inf
    nxt = events[i] if i < len(events) else math.inf
    span = nxt - prev
    cycle = (t - prev) / span if math.isfinite(span) and span > 0 else 0.0
    return Pose(t, t - prev, nxt - t, cycle, facing, travelled, running, i)


def _p(x: float, y: float) -> tuple[int, int]:
    """Canvas point in fixed point."""
    return int(round(x * ONE)), int(round(y * ONE))


def _circle(c: np.ndarray, x: float, y: float, r: float, label: int) -> None:
    cv2.circle(c, _p(x, y), int(round(r * ONE)), label, -1, cv2.LINE_8, SHIFT)


def _ellipse(c: np.ndarray, x: float, y: float, rx: float, ry: float, label: int, angle: float = 0.0) -> None:
    cv2.ellipse(c, _p(x, y), (int(round(rx * ONE)), int(round(ry * ONE))), angle, 0, 360, label, -1,
                cv2.LINE_8, SHIFT)


def _poly(c: np.ndarray, pts: list[tuple[float, float]], label: int) -> None:
    cv2.fillPoly(c, [np.array([_p(x, y) for x, y in pts], np.int32)], label, cv2.LINE_8, SHIFT)


def _line(c: np.ndarray, a: tuple[float, float], b: tuple[float, float], width: float, label: int) -> None:
    cv2.line(c, _p(*a), _p(*b), label, max(1, int(round(width))), cv2.LINE_8, SHIFT)


def _rot(cx: float, cy: float, r: float, ang: float) -> tuple[float, float]:
    """Point at distance r from (cx, cy), angle in radians (0 = right, positive = clockwise on screen)."""
    return cx + r * math.cos(ang), cy + r * math.sin(ang)


def ball(c: np.ndarray, p: Pose) -> None:
    """A round ball with a stripe; squashed for a moment at floor contact."""
    s = c.shape[0]
    squash = 0.12 * math.exp(-min(p.since, p.until) / 0.03)
    _ellipse(c, s / 2, s / 2 + squash * s * 0.2, s * 0.42 * (1 + squash), s * 0.42 * (1 - squash), 1)
    _ellipse(c, s / 2, s / 2, s * 0.42, s * 0.07, 3, angle=30 * p.travelled)


def hammer(c: np.ndarray, p: Pose) -> None:
    """An anvil and a hammer swinging about a pivot; the head meets the anvil at each event."""
    s = c.shape[0]
    _poly(c, [(0.15 * s, 0.62 * s), (0.85 * s, 0.62 * s), (0.7 * s, 0.75 * s), (0.62 * s, 0.98 * s),
              (0.38 * s, 0.98 * s), (0.3 * s, 0.75 * s)], 2)
    ang = -1.2 * math.sin(math.pi * p.cycle) ** 0.7  # 0 = resting on the anvil
    px, py = 0.9 * s, 0.5 * s
    head = _rot(px, py, 0.48 * s, math.pi + ang * -1)
    _line(c, (px, py), head, 0.06 * s, 4)
    hx, hy = head
    dx, dy = math.cos(math.pi - ang), math.sin(math.pi - ang)
    w, h = 0.1 * s, 0.16 * s
    _poly(c, [(hx - w * dx + h * dy, hy - w * dy - h * dx), (hx + w * dx + h * dy, hy + w * dy - h * dx),
              (hx + w * dx - h * dy, hy + w * dy + h * dx), (hx - w * dx - h * dy, hy - w * dy + h * dx)], 1)


def bird(c: np.ndarray, p: Pose) -> None:
    """A bird whose wings beat once per event (the downstroke ends on the chirp)."""
    s = c.shape[0]
    f = p.facing
    _ellipse(c, s / 2, s * 0.55, s * 0.26, s * 0.13, 1)
    _circle(c, s / 2 + f * 0.24 * s, s * 0.47, s * 0.09, 1)
    _poly(c, [(s / 2 + f * 0.31 * s, s * 0.45), (s / 2 + f * 0.43 * s, s * 0.48), (s / 2 + f * 0.31 * s, s * 0.5)], 4)
    tip = -0.45 * s * math.cos(2 * math.pi * p.cycle)  # down at the event (end of the downstroke), up half-way
    _poly(c, [(s * 0.38, s * 0.52), (s * 0.62, s * 0.52), (s * 0.5 - f * 0.1 * s, s * 0.52 - tip)], 3)
    _poly(c, [(s / 2 - f * 0.24 * s, s * 0.53), (s / 2 - f * 0.42 * s, s * 0.45), (s / 2 - f * 0.42 * s, s * 0.62)], 1)


def car(c: np.ndarray, p: Pose) -> None:
    """A car with a cabin and two spoked wheels turning with the distance travelled."""
    s = c.shape[0]
    f = p.facing
    _poly(c, [(0.04 * s, 0.5 * s), (0.96 * s, 0.5 * s), (0.96 * s, 0.72 * s), (0.04 * s, 0.72 * s)], 1)
    _poly(c, [(s / 2 - f * 0.3 * s, 0.5 * s), (s / 2 - f * 0.2 * s, 0.3 * s), (s / 2 + f * 0.12 * s, 0.3 * s),
              (s / 2 + f * 0.25 * s, 0.5 * s)], 1)
    _poly(c, [(s / 2 - f * 0.15 * s, 0.47 * s), (s / 2 - f * 0.12 * s, 0.34 * s),
              (s / 2 + f * 0.08 * s, 0.34 * s), (s / 2 + f * 0.16 * s, 0.47 * s)], 3)
    ang = p.travelled / 0.13 * f
    for wx in (0.25 * s, 0.75 * s):
        _circle(c, wx, 0.74 * s, 0.13 * s, 2)
        for k in range(3):
            a = ang + k * math.pi / 3
            _line(c, _rot(wx, 0.74 * s, 0.11 * s, a), _rot(wx, 0.74 * s, 0.11 * s, a + math.pi), 0.025 * s, 3)


def drum(c: np.ndarray, p: Pose) -> None:
    """A drum and a stick that hits the head at each event."""
    s = c.shape[0]
    _poly(c, [(0.2 * s, 0.55 * s), (0.8 * s, 0.55 * s), (0.8 * s, 0.95 * s), (0.2 * s, 0.95 * s)], 1)
    _ellipse(c, s / 2, 0.55 * s, 0.3 * s, 0.08 * s, 3)
    ang = 0.15 + 1.0 * math.sin(math.pi * p.cycle) ** 0.6
    px, py = 0.95 * s, 0.3 * s
    _line(c, (px, py), _rot(px, py, 0.45 * s, math.pi - 0.5 + ang), 0.05 * s, 4)


def bell(c: np.ndarray, p: Pose) -> None:
    """A bell on a pendulum, struck by its clapper at each swing extreme (the events)."""
    s = c.shape[0]
    ang = 0.5 * math.cos(math.pi * p.cycle) * (-1) ** p.index
    px, py = s / 2, 0.08 * s
    _line(c, (px, py), _rot(px, py, 0.35 * s, math.pi / 2 + ang), 0.04 * s, 2)
    bx, by = _rot(px, py, 0.55 * s, math.pi / 2 + ang)
    d = (math.cos(ang), math.sin(ang))  # along the bell's rim

    def q(u: float, v: float) -> tuple[float, float]:
        return bx + u * s * d[0] - v * s * d[1], by + u * s * d[1] + v * s * d[0]

    _poly(c, [q(-0.12, -0.2), q(0.12, -0.2), q(0.25, 0.15), q(-0.25, 0.15)], 1)
    _circle(c, *q(0.0, 0.2), 0.05 * s, 3)


def walker(c: np.ndarray, p: Pose) -> None:
    """A walking figure whose legs swing; a foot lands at each event (legs at full stride)."""
    s = c.shape[0]
    f = p.facing
    swing = 0.5 * math.cos(math.pi * p.cycle)
    hip = (s / 2, 0.6 * s)
    _ellipse(c, s / 2, 0.42 * s, 0.1 * s, 0.2 * s, 1)
    _circle(c, s / 2 + f * 0.02 * s, 0.14 * s, 0.09 * s, 4)
    for sgn in (1, -1):
        _line(c, hip, _rot(*hip, 0.38 * s, math.pi / 2 + sgn * swing), 0.06 * s, 2)
        _line(c, (s / 2, 0.3 * s), _rot(s / 2, 0.3 * s, 0.25 * s, math.pi / 2 - sgn * swing), 0.04 * s, 4)


def fan(c: np.ndarray, p: Pose) -> None:
    """A fan with three blades; the angle follows the rotation phase in `travelled` (turns)."""
    s = c.shape[0]
    _poly(c, [(0.46 * s, 0.5 * s), (0.54 * s, 0.5 * s), (0.6 * s, 0.98 * s), (0.4 * s, 0.98 * s)], 2)
    a0 = 2 * math.pi * p.travelled
    for k in range(3):
        a = a0 + 2 * math.pi * k / 3
        _ellipse(c, *_rot(s / 2, 0.45 * s, 0.2 * s, a), 0.19 * s, 0.07 * s, 1, angle=math.degrees(a))
    _circle(c, s / 2, 0.45 * s, 0.06 * s, 3)


def dog(c: np.ndarray, p: Pose) -> None:
    """A dog whose jaw drops while it barks (from each event for the bark's length)."""
    s = c.shape[0]
    f = p.facing
    open_ = 0.5 * math.exp(-max(0.0, p.since - 0.05) / 0.08) if p.since < 0.3 else 0.0
    _ellipse(c, s / 2 - f * 0.08 * s, 0.6 * s, 0.28 * s, 0.13 * s, 1)
    for lx in (-0.25, -0.05, 0.1):
        _line(c, (s / 2 + f * lx * s, 0.65 * s), (s / 2 + f * lx * s, 0.92 * s), 0.05 * s, 1)
    hx, hy = s / 2 + f * 0.24 * s, 0.4 * s
    _circle(c, hx, hy, 0.12 * s, 1)
    _poly(c, [(hx, hy - 0.02 * s), (hx + f * 0.24 * s, hy), (hx + f * 0.22 * s, hy + 0.05 * s), (hx, hy + 0.05 * s)], 1)
    jaw = _rot(hx, hy + 0.06 * s, 0.2 * s, (0.1 + open_) if f > 0 else math.pi - 0.1 - open_)
    _line(c, (hx, hy + 0.06 * s), jaw, 0.05 * s, 4)
    _ellipse(c, hx - f * 0.06 * s, hy - 0.06 * s, 0.04 * s, 0.09 * s, 2)
    _line(c, (s / 2 - f * 0.35 * s, 0.55 * s), (s / 2 - f * 0.46 * s, 0.38 * s), 0.04 * s, 1)


def fountain(c: np.ndarray, p: Pose) -> None:
    """A basin with a water jet that shows while the fountain runs."""
    s = c.shape[0]
    _poly(c, [(0.08 * s, 0.75 * s), (0.92 * s, 0.75 * s), (0.8 * s, 0.98 * s), (0.2 * s, 0.98 * s)], 1)
    if p.running:
        h = min(1.0, p.since / 0.15) * 0.6 * s
        wob = 0.03 * s * math.sin(2 * math.pi * 5 * p.t)
        _poly(c, [(0.46 * s, 0.76 * s), (0.54 * s, 0.76 * s), (0.52 * s + wob, 0.75 * s - h),
                  (0.48 * s + wob, 0.75 * s - h)], 3)
        _ellipse(c, s / 2 + wob, 0.75 * s - h, 0.18 * s, 0.05 * s, 3)


def metronome(c: np.ndarray, p: Pose) -> None:
    """A pyramid metronome; its arm passes the centre (and ticks) at each event."""
    s = c.shape[0]
    _poly(c, [(0.35 * s, 0.05 * s), (0.65 * s, 0.05 * s), (0.85 * s, 0.98 * s), (0.15 * s, 0.98 * s)], 1)
    ang = 0.45 * math.sin(math.pi * p.cycle) * (-1) ** p.index
    px, py = s / 2, 0.85 * s
    _line(c, (px, py), _rot(px, py, 0.7 * s, -math.pi / 2 + ang), 0.04 * s, 3)
    _circle(c, *_rot(px, py, 0.5 * s, -math.pi / 2 + ang), 0.05 * s, 2)


def siren(c: np.ndarray, p: Pose) -> None:
    """A box with a dome light that flashes in the first half of each siren cycle."""
    s = c.shape[0]
    _poly(c, [(0.15 * s, 0.55 * s), (0.85 * s, 0.55 * s), (0.85 * s, 0.95 * s), (0.15 * s, 0.95 * s)], 1)
    _ellipse(c, s / 2, 0.55 * s, 0.2 * s, 0.22 * s, 3 if p.cycle < 0.5 else 2)
    _poly(c, [(0.25 * s, 0.52 * s), (0.75 * s, 0.52 * s), (0.75 * s, 0.6 * s), (0.25 * s, 0.6 * s)], 2)


def talker(c: np.ndarray, p: Pose) -> None:
    """A face whose mouth opens with each spoken syllable (from each event for its length)."""
    s = c.shape[0]
    _ellipse(c, s / 2, s / 2, 0.34 * s, 0.44 * s, 1)
    for ex in (0.38, 0.62):
        _circle(c, ex * s, 0.38 * s, 0.045 * s, 2)
    open_ = math.sin(math.pi * min(1.0, p.since / 0.16)) if p.since < 0.16 else 0.0
    _ellipse(c, s / 2, 0.7 * s, 0.12 * s, 0.015 * s + 0.09 * s * open_, 2)
    _ellipse(c, s / 2, 0.1 * s, 0.3 * s, 0.1 * s, 4)
