"""What a photo scene is (sprites cut from photographs, their paths and sounds) and the benchmark's scenes.

The description only: `foley.world.photo` draws the frames, measures the truth and makes the sound.
Positions are screen pixels of the sprite's centre; a bounce lifts it by height |sin(pi k / period)|
in frame k, so it touches the floor (and a bell rings) exactly at frames period, 2 period, ...
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Literal, Mapping, get_args

from foley.world.scene import WorldError

PHOTOS: tuple[str, ...] = ("astronaut", "coffee", "chelsea", "rocket", "cat", "hubble_deep_field",
                           "immunohistochemistry")
Shape = Literal["rect", "ellipse"]
Sound = Literal["silent", "bell", "hum", "noise"]
Box = tuple[int, int, int, int]  # x, y, w, h in the photo's pixels
Key = tuple[float, float, float]  # (t seconds, centre x px, centre y px) on screen
PathFn = Callable[[float], tuple[float, float]]  # t seconds -> centre (x, y) px on screen


@dataclass(frozen=True)
class Cut:
    """A sprite's look: box of a photo (None: flat `colour`) resized to `size` = (w, h) px, cut as `shape`."""

    photo: str | None
    box: Box | None = None  # None: the whole photo
    size: tuple[int, int] = (100, 100)
    shape: Shape = "rect"
    colour: tuple[int, int, int] = (220, 30, 30)

    def __post_init__(self) -> None:
        if self.photo is not None and self.photo not in PHOTOS:
            raise WorldError(f"unknown photo {self.photo!r}: choose one of {', '.join(PHOTOS)}")
        if self.shape not in get_args(Shape):
            raise WorldError(f"cut shape must be one of {get_args(Shape)}, got {self.shape!r}")
        if len(self.size) != 2 or min(self.size) < 2:
            raise WorldError(f"cut size must be (w, h) >= 2 px, got {self.size}")


@dataclass(frozen=True)
class Sprite:
    """One moving cut-out: where its centre is (keyframes, linear and held at the ends, or a function of
    time), an optional bounce (height px, period frames: it touches the floor every `period` frames,
    from frame `period` on) and what it sounds like (a bell needs a bounce: it rings at each contact)."""

    name: str
    cut: Cut
    path: tuple[Key, ...] | PathFn
    bounce: tuple[float, int] | None = None
    sound: Sound = "silent"
    pitch: float = 1.0

    def __post_init__(self) -> None:
        if self.sound not in get_args(Sound):
            raise WorldError(f"sprite {self.name!r}: sound must be one of {get_args(Sound)}, got {self.sound!r}")
        if self.sound == "bell" and self.bounce is None:
            raise WorldError(f"sprite {self.name!r}: a bell rings at floor contacts, so it needs a bounce")
        if not callable(self.path):
            times = [k[0] for k in self.path]
            if not times or any(b < a for a, b in zip(times, times[1:])):
                raise WorldError(f"sprite {self.name!r}: keyframes must be non-empty and in time order")
        if self.bounce is not None and not (self.bounce[0] >= 0 and int(self.bounce[1]) >= 2):
            raise WorldError(f"sprite {self.name!r}: bounce is (height >= 0 px, period >= 2 frames)")


@dataclass(frozen=True)
class Occluder:
    """A full-height vertical strip, columns [x, x + width), in front of every sprite."""

    x: int
    width: int
    photo: str = "rocket"
    box: Box | None = (560, 0, 80, 427)  # the rocket photo's right launch tower


@dataclass(frozen=True)
class PhotoScene:
    """One clip: frame size and rate, background photo (box), camera pan, sprites back to front, occluder."""

    width: int = 640
    height: int = 360
    fps: float = 25.0
    seconds: float = 7.0
    background: str = "coffee"
    background_box: Box | None = None  # None: the whole photo
    pan_px_per_frame: float = 0.0  # the background slides left by this much per frame (< 0: right)
    sprites: tuple[Sprite, ...] = ()
    occluder: Occluder | None = None

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 16 <= v <= 4096:
                raise WorldError(f"scene {name} must be a whole number of pixels in 16..4096, got {v!r}")
        if not (self.fps > 0 and self.seconds > 0 and math.isfinite(self.fps * self.seconds)):
            raise WorldError(f"scene fps and seconds must be finite and > 0, got {self.fps}, {self.seconds}")
        if self.background not in PHOTOS:
            raise WorldError(f"unknown background photo {self.background!r}: choose one of {', '.join(PHOTOS)}")
        names = [s.name for s in self.sprites]
        if len(set(names)) != len(names):
            raise WorldError(f"sprite names must be unique, got {names}")

    @property
    def n_frames(self) -> int:
        return int(round(self.seconds * self.fps))


# ---------------------------------------------------------------------------------------------- catalogue

# 16:9 boxes of the background photos, and the cut-outs
_COFFEE, _ROCKET, _CELLS = (0, 31, 600, 338), (0, 33, 640, 360), (0, 112, 512, 288)
_HUBBLE = (0, 155, 1000, 562)
CAT = Cut("chelsea", (60, 0, 340, 300), (110, 98), "ellipse")  # the cat's head
CUP = Cut("coffee", (165, 10, 255, 290), (70, 80), "ellipse")  # the espresso cup
FACE = Cut("astronaut", (150, 20, 155, 170), (86, 96), "ellipse")  # the astronaut's face
SUIT = Cut("astronaut", (20, 150, 340, 360), (230, 220))  # her suit and badge: large, rigid, textured
RED = Cut(None, size=(120, 120), colour=(220, 30, 30))  # a plain red square

SCENES: Mapping[str, PhotoScene] = MappingProxyType({
    # enters from off-frame on the left, crosses, stops for the last 2.5 s (humming all the while)
    "stop": PhotoScene(background="rocket", background_box=_ROCKET, sprites=(
        Sprite("cat", CAT, ((0.0, -70, 230), (4.5, 420, 230), (7.0, 420, 230)), sound="hum"),)),
    # a uniform 120 px red square at exactly 4 px/frame over a photo scaled up to 1280x720
    "plain_slow": PhotoScene(width=1280, height=720, seconds=8.0, background="coffee", background_box=_COFFEE,
                             sprites=(Sprite("square", RED, ((0.0, 200, 420), (8.0, 1000, 420)), sound="hum"),)),
    # the cup (bouncing, ringing, in front) and the silent face meet at the centre, linger overlapping for
    # 2 s at 1 px/frame (one merged blob) and part on the far sides: identity must not swap
    "crossing": PhotoScene(background="immunohistochemistry", background_box=_CELLS, sprites=(
        Sprite("face", FACE, ((0.0, 580, 205), (2.5, 345, 210), (4.5, 295, 220), (7.0, 60, 225))),
        Sprite("cup", CUP, ((0.0, 60, 250), (2.5, 295, 245), (4.5, 345, 240), (7.0, 580, 235)), bounce=(30, 15),
               sound="bell"))),
    # one large rigid textured object sliding slowly (1.7 px/frame), hissing
    "rigid": PhotoScene(background="coffee", background_box=_COFFEE, sprites=(
        Sprite("suit", SUIT, ((0.0, 170, 190), (7.0, 470, 190)), sound="noise"),)),
    # a large silent sweeper on the right; a small cup bouncing on the left rings at each floor contact
    "choice": PhotoScene(background="rocket", background_box=_ROCKET, sprites=(
        Sprite("suit", SUIT, ((0.0, 330, 180), (2.3, 520, 180), (4.6, 330, 180), (7.0, 520, 180))),
        Sprite("cup", CUP, ((0.0, 95, 310), (7.0, 145, 310)), bounce=(90, 20), sound="bell"))),
    # three objects, one sounding: a cat sweeping along the top, a face drifting, a ringing cup on the right
    "choice3": PhotoScene(background="immunohistochemistry", background_box=_CELLS, sprites=(
        Sprite("cat", CAT, ((0.0, 100, 90), (3.5, 540, 90), (7.0, 100, 90))),
        Sprite("face", FACE, ((0.0, 80, 300), (7.0, 330, 200))),
        Sprite("cup", CUP, ((0.0, 520, 300), (7.0, 470, 300)), bounce=(70, 18), sound="bell"))),
    # the camera pans right (background slides left 3 px/frame) while a ringing cat moves right to left
    "pan": PhotoScene(background="coffee", background_box=(0, 200, 600, 185), pan_px_per_frame=3.0, sprites=(
        Sprite("cat", CAT, ((0.0, 520, 250), (7.0, 140, 250)), bounce=(40, 16), sound="bell"),)),
    # enters on the left, leaves on the right at 3 s, comes back from the right at 3.6 s and stops
    "entry_exit": PhotoScene(background="hubble_deep_field", background_box=_HUBBLE, sprites=(
        Sprite("face", FACE, ((0.0, -60, 200), (3.0, 700, 200), (3.6, 700, 200), (6.2, 300, 200),
                              (7.0, 300, 200)), sound="hum"),)),
    # passes behind a 130 px foreground strip (fully hidden for ~10 frames)
    "occlusion": PhotoScene(background="coffee", background_box=_COFFEE, occluder=Occluder(x=290, width=130),
                            sprites=(Sprite("cat", CAT, ((0.0, 50, 200), (7.0, 590, 200)), sound="noise"),)),
    # the ringing cup is off-frame (still ringing) until ~3.3 s: visible ~53% of the time; a silent face drifts
    "mostly_hidden": PhotoScene(background="immunohistochemistry", background_box=_CELLS, sprites=(
        Sprite("face", FACE, ((0.0, 100, 170), (7.0, 520, 170))),
        Sprite("cup", CUP, ((0.0, 720, 290), (3.0, 720, 290), (4.5, 460, 290), (7.0, 420, 290)),
               bounce=(60, 20), sound="bell"))),
})
