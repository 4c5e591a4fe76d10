"""Scenes: what is in a clip, sampled deterministically from (seed, split, clip index).

`sample_scene(cfg, seed, split, index)` draws every random choice of a clip from
``np.random.default_rng([seed, split_id, index])``: the background, 1-3 objects (class, colour,
motion path, size, event rate and phase, voice), levels and the dataset-mix style. Rendering and
synthesis get their own generators from the same numbers, so a clip is a pure function of them.
The test split holds out some (class, motion) pairs that train and val never contain.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal, Mapping

import numpy as np

from foley.errors import FoleyError
from foley.sequence import SequenceConfig
from foley.world.backgrounds import BACKDROPS
from foley.world.motion import MOTIONS, Path, sample_path
from foley.world.objects import CLASSES, Schedule, schedule
from foley.world.sounds import Voice

Split = Literal["train", "val", "test"]
SPLITS: tuple[str, ...] = ("train", "val", "test")
DatasetStyle = Literal["dual_mono", "static", "random"]


class WorldError(FoleyError):
    """A world request or dataset folder is invalid."""


@dataclass(frozen=True)
class WorldConfig:
    """Clip format and sampling knobs of the world; `PRESETS` names the common ones."""

    seconds: float = 4.0
    fps: int = 25
    width: int = 224
    height: int = 224
    sr: int = 48000
    max_objects: int = 3
    dual_mono_share: float = 0.27  # share of `dataset` mixes that are dual-mono (VGGSound: 27%)
    dataset_pan_sd: float = 0.12  # spread of the unrelated pans of the other `dataset` mixes: weakly spatial
    pan_share: float = 0.5  # share of clips with a slow camera pan
    size: tuple[float, float] = (0.2, 0.3)  # object base size, fraction of the frame height
    ambience_db: tuple[float, float] = (-30.0, -18.0)  # ambience level against the objects
    jpeg_quality: int = 80
    masks: bool = False  # store per-object masks in the shards
    clips_per_shard: int = 32

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, want: str) -> None:
            if not ok:
                raise WorldError(f"{name} must be {want}, got {getattr(self, name)!r}")

        def whole(name: str, low: int, high: int | None = None) -> None:
            v = getattr(self, name)
            ok = isinstance(v, numbers.Integral) and not isinstance(v, bool) and low <= v <= (high or v)
            check(name, ok, f"a whole number >= {low}" if high is None else f"a whole number in {low}..{high}")

        def real(name: str, low: float, high: float | None = None) -> None:
            v = getattr(self, name)
            ok = isinstance(v, numbers.Real) and math.isfinite(v) and low <= v <= (v if high is None else high)
            check(name, ok, f"a finite number >= {low:g}" if high is None else f"in [{low:g}, {high:g}]")

        if self.fps not in (25, 30):
            raise WorldError(f"fps must be 25 or 30, got {self.fps}")
        check("seconds", isinstance(self.seconds, numbers.Real) and math.isfinite(self.seconds) and self.seconds > 0,
              "a finite number of seconds > 0")
        whole("width", 32)
        whole("height", 32)
        whole("sr", 8000)
        whole("max_objects", 1, 3)
        real("dual_mono_share", 0.0, 1.0)
        real("dataset_pan_sd", 0.0)
        real("pan_share", 0.0, 1.0)
        whole("jpeg_quality", 1, 100)
        whole("clips_per_shard", 1)

    @property
    def seq(self) -> SequenceConfig:
        return SequenceConfig(self.sr, self.fps)

    @property
    def n_frames(self) -> int:
        return self.seq.frames(self.seconds)

    @property
    def n_samples(self) -> int:
        return self.seq.samples(self.seconds)


PRESETS: Mapping[str, WorldConfig] = MappingProxyType({
    "default": WorldConfig(),
    "fps30": WorldConfig(fps=30),
    "tiny": WorldConfig(seconds=2.0, width=96, height=96, clips_per_shard=4),
})

# Held out of train/val: one motion per class, spread over the motions.
HELD_OUT: frozenset[tuple[str, str]] = frozenset(
    (name, MOTIONS[(3 * i + 2) % len(MOTIONS)]) for i, name in enumerate(CLASSES))


@dataclass(frozen=True)
class ObjectSpec:
    """One sounding object of a scene."""

    cls: str
    colour: str
    path: Path
    size: float  # base size, fraction of the frame height
    rate: float  # class event rate (events or turns per second)
    phase: float  # periodic events: phase in [0, 1)
    voice: Voice
    level: float  # peak level of the stem
    seed: int  # for this object's synthesis noise and irregular event times

    @property
    def caption(self) -> str:
        text = f"{CLASSES[self.cls].caption.format(c=self.colour)} {self.path.where()}"
        return "an " + text[2:] if text.startswith("a ") and text[2] in "aeiou" else text

    def schedule(self, seconds: float) -> Schedule:
        """Event times of this object: shared by its animation and its sound."""
        rng = np.random.default_rng([self.seed, 1])
        return schedule(CLASSES[self.cls], self.rate, self.phase, seconds, rng)


@dataclass(frozen=True)
class Scene:
    """Everything random about one clip."""

    seed: int
    split: str
    index: int
    cfg: WorldConfig = field(repr=False)
    backdrop: str
    amount: float  # ambience intensity in [0, 1]
    ambience_gain: float
    pan_px_per_s: float
    objects: tuple[ObjectSpec, ...]
    dataset_style: str
    dataset_pans: tuple[tuple[float, ...], ...]  # per object: knots of its unrelated pan

    @property
    def key(self) -> str:
        return f"{self.split}-{self.index:08d}"

    def rng(self, stream: int) -> np.random.Generator:
        """An independent generator for one use (background image, ambience...) of this clip."""
        return np.random.default_rng([self.seed, SPLITS.index(self.split), self.index, stream])

    @property
    def captions(self) -> list[str]:
        return [o.caption for o in self.objects] + [BACKDROPS[self.backdrop].caption(self.amount)]


def _allowed(split: str) -> list[tuple[str, str]]:
    """(class, motion) pairs a split may draw from."""
    pairs = [(c, m) for c in CLASSES for m in MOTIONS]
    return [p for p in pairs if p not in HELD_OUT] if split != "test" else pairs


def _object(cfg: WorldConfig, rng: np.random.Generator, cls_name: str, motion: str) -> ObjectSpec:
    cls = CLASSES[cls_name]
    size = rng.uniform(*cfg.size)
    half = size * 1.5 * cfg.height / cfg.width  # widest the object gets, in x units
    y = float(np.clip(rng.uniform(*cls.y), -1 + 2 * size * 1.5, 1 - size * 1.5))
    path = sample_path(motion, rng, y, half)
    voice = Voice(pitch=float(2 ** rng.uniform(-0.35, 0.35)), decay=float(rng.uniform(0.7, 1.4)),
                  bright=float(rng.uniform(0, 1)))
    return ObjectSpec(cls_name, str(rng.choice(cls.colours)), path, float(size), float(rng.uniform(*cls.rate)),
                      float(rng.random()), voice, float(10 ** (rng.uniform(-8, 0) / 20) * 0.5),
                      int(rng.integers(2 ** 31)))


def sample_scene(cfg: WorldConfig, seed: int, split: str, index: int) -> Scene:
    """The scene of clip `index` of `split` under `seed`: a pure function of its arguments."""
    if split not in SPLITS:
        raise WorldError(f"unknown split {split!r}; choose one of {SPLITS}")
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    pairs = _allowed(split)
    n_obj = int(rng.integers(1, cfg.max_objects + 1))
    picks: list[tuple[str, str]] = []
    if split == "test" and rng.random() < 0.5:  # half the test clips feature a held-out pair
        held = sorted(HELD_OUT)
        picks.append(held[int(rng.integers(len(held)))])
    for i in rng.permutation(len(pairs)):  # distinct classes and motions, so objects don't pile up
        if len(picks) < n_obj and all(pairs[i][0] != c and pairs[i][1] != m for c, m in picks):
            picks.append(pairs[i])
    objects = tuple(_object(cfg, rng, c, m) for c, m in picks)
    share = cfg.dual_mono_share
    style = "dual_mono" if rng.random() < share else str(rng.choice(["static", "random"]))
    pans = tuple(tuple(float(v) for v in np.clip(rng.normal(0, cfg.dataset_pan_sd, size=1 if style == "static" else 4),
                                                  -1, 1)) for _ in objects)
    backdrop = str(rng.choice(sorted(BACKDROPS)))
    pan = float(rng.uniform(-15, 15)) if rng.random() < cfg.pan_share else 0.0
    return Scene(seed, split, index, cfg, backdrop, float(rng.random()),
                 float(10 ** (rng.uniform(*cfg.ambience_db) / 20)), pan, objects, style, pans)


def object_scene(cfg: WorldConfig, seed: int, cls: str, motion: str, index: int = 0) -> Scene:
    """A one-object test scene of the given class and motion (background and levels sampled as usual)."""
    if cls not in CLASSES or motion not in MOTIONS:
        raise WorldError(f"unknown class {cls!r} or motion {motion!r}")
    base = sample_scene(cfg, seed, "test", index)
    rng = np.random.default_rng([seed, 99, index])
    obj = _object(cfg, rng, cls, motion)
    return replace(base, objects=(obj,), dataset_pans=base.dataset_pans[:1])
