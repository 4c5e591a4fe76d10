"""The registry of sounding-object classes: look, sound, event timing and caption of each.

Event times are drawn once per instance (`schedule`) and are the single source of truth: the
animation (`looks`) is posed from them and the synthesis (`sounds`) starts each event at them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Literal, Mapping

import numpy as np

from foley.world import looks, sounds

Timing = Literal["periodic", "barks", "speech", "runs", "none"]

COLOURS: Mapping[str, tuple[int, int, int]] = MappingProxyType({
    "red": (215, 40, 35), "blue": (40, 85, 215), "green": (45, 165, 60), "yellow": (235, 200, 40),
    "orange": (240, 130, 30), "purple": (140, 60, 190), "white": (235, 235, 230), "black": (35, 35, 40),
    "brown": (130, 80, 40), "pink": (240, 125, 170), "grey": (135, 135, 140), "teal": (30, 160, 160),
})
DARK, LIGHT = (45, 45, 50), (250, 245, 200)


@dataclass(frozen=True)
class ObjectClass:
    """One class of sounding object."""

    name: str
    caption: str  # template with {c} for the colour name
    draw: Callable[[np.ndarray, looks.Pose], None]
    sound: Callable[..., np.ndarray]
    colours: tuple[str, ...]
    timing: Timing
    rate: tuple[float, float]  # events (or turns) per second, sampled per instance
    impulsive: bool  # each event starts an audible onset (used by the sync checks)
    y: tuple[float, float]  # range of the resting vertical centre, -1 top .. +1 bottom
    secondary: tuple[int, int, int] = (230, 150, 60)  # colour of label 4
    lift: float = 0.0  # hop height in object sizes, sin(pi * cycle): 0 at each event (ball contacts)

    def palette(self, colour: str) -> np.ndarray:
        """(5, 3) float32 colours of the canvas labels 0..4."""
        return np.array([(0, 0, 0), COLOURS[colour], DARK, LIGHT, self.secondary], np.float32)


_GROUND = (0.35, 0.6)
CLASSES: Mapping[str, ObjectClass] = MappingProxyType({c.name: c for c in (
    ObjectClass("ball", "a {c} ball bouncing", looks.ball, sounds.ball,
                ("red", "blue", "green", "yellow", "orange", "pink"), "periodic", (1.2, 2.2), True, _GROUND,
                lift=1.1),
    ObjectClass("hammer", "a {c} hammer striking an anvil", looks.hammer, sounds.hammer,
                ("red", "grey", "brown", "blue"), "periodic", (0.8, 1.6), True, _GROUND, (120, 80, 40)),
    ObjectClass("bird", "a {c} bird flapping and chirping", looks.bird, sounds.bird,
                ("blue", "red", "yellow", "black", "green"), "periodic", (2.5, 4.0), True, (-0.6, -0.2),
                lift=0.08),
    ObjectClass("car", "a {c} car driving", looks.car, sounds.car,
                ("red", "blue", "white", "black", "yellow", "green"), "none", (0.0, 0.0), False, _GROUND),
    ObjectClass("drum", "a {c} drum being struck", looks.drum, sounds.drum,
                ("red", "blue", "white", "purple"), "periodic", (1.5, 3.0), True, _GROUND, (200, 170, 120)),
    ObjectClass("bell", "a {c} bell swinging and ringing", looks.bell, sounds.bell,
                ("yellow", "orange", "brown", "grey"), "periodic", (0.7, 1.2), True, (-0.3, 0.1)),
    ObjectClass("walker", "a person in {c} walking", looks.walker, sounds.walker,
                ("red", "blue", "green", "purple", "orange", "teal"), "periodic", (1.6, 2.4), True, _GROUND),
    ObjectClass("fan", "a {c} fan spinning", looks.fan, sounds.fan,
                ("white", "blue", "grey", "teal"), "none", (1.0, 3.0), False, (0.0, 0.4)),
    ObjectClass("dog", "a {c} dog barking", looks.dog, sounds.dog,
                ("brown", "black", "white", "orange"), "barks", (0.35, 1.1), True, _GROUND, (200, 60, 60)),
    ObjectClass("fountain", "a {c} fountain splashing", looks.fountain, sounds.fountain,
                ("grey", "white", "teal"), "runs", (0.4, 1.4), True, _GROUND),
    ObjectClass("metronome", "a {c} metronome ticking", looks.metronome, sounds.metronome,
                ("brown", "black", "red"), "periodic", (1.5, 3.0), True, (0.0, 0.4)),
    ObjectClass("siren", "a siren on a {c} box, wailing with a flashing light", looks.siren, sounds.siren,
                ("red", "blue", "white"), "periodic", (0.8, 1.4), False, (0.0, 0.5)),
    ObjectClass("talker", "a {c} cartoon face talking", looks.talker, sounds.talker,
                ("yellow", "pink", "orange", "green", "purple"), "speech", (0.2, 0.3), True, (-0.3, 0.2),
                (60, 40, 30)),
)})


@dataclass(frozen=True)
class Schedule:
    """Event times of one instance."""

    anim: np.ndarray  # (E',) event times that pose the animation, may extend past the clip
    events: np.ndarray  # (E,) event times inside the clip: each starts a sound event (onset if impulsive)
    offs: np.ndarray  # (E,) end times of the runs (fountain), else empty

    def running(self, t: np.ndarray) -> np.ndarray:
        """(T,) bool: inside a run (always True for classes without runs)."""
        if self.offs.size == 0:
            return np.ones(np.shape(t), bool)
        i = np.searchsorted(self.events, t, side="right") - 1
        return (i >= 0) & (t < self.offs[np.clip(i, 0, None)])


def _bursts(duration: float, rng: np.random.Generator, first: tuple[float, float],
            gap: Callable[[int], float]) -> np.ndarray:
    """Irregular event times from `first` onwards, spaced by gap(k), up to the clip end."""
    t, out = rng.uniform(*first), []
    while t < duration - 0.05:
        out.append(t)
        t += gap(len(out))
    return np.array(out)


def schedule(cls: ObjectClass, rate: float, phase: float, duration: float, rng: np.random.Generator) -> Schedule:
    """Event times of one instance of `cls` for a clip of `duration` seconds."""
    none = np.zeros(0)
    if cls.timing == "periodic":
        anim = phase / rate + np.arange(-2, math.ceil(duration * rate) + 3) / rate
        return Schedule(anim, anim[(anim >= 0) & (anim < duration)], none)
    if cls.timing == "barks":
        ev = _bursts(duration, rng, (0.1, 0.6), lambda k: rng.uniform(0.3, 0.45) if rng.random() < 0.4
                     else rng.uniform(rate, rate + 0.6))
        return Schedule(ev, ev, none)
    if cls.timing == "speech":
        ev = _bursts(duration, rng, (0.05, 0.4), lambda k: rng.uniform(0.45, 0.8) if k % 5 == 0
                     else rng.uniform(rate, rate + 0.08))
        return Schedule(ev, ev, none)
    if cls.timing == "runs":
        on = _bursts(duration, rng, (0.05, 0.5), lambda k: rng.uniform(0.7, 1.4) + rng.uniform(rate, rate + 0.5))
        offs = np.array([min(duration, t + rng.uniform(0.6, 1.2)) for t in on])
        nxt = np.append(on[1:], np.inf)
        return Schedule(on, on, np.minimum(offs, nxt - 0.3))
    return Schedule(none, none, none)
