"""Photo scenes: cut-outs of real photographs moving over a real photograph, with exact ground truth.

The tracking benchmark's clips (issue 9). Every picture comes from the photographs that ship inside
scikit-image's wheel (`skimage.data`, offline): a background (optionally panned by the camera),
sprites cut from photos (a box, rectangular or elliptical) or flat colours, moving along keyframes
or a function of time, optionally bouncing, drawn back to front, and an optional foreground strip
in front of them all. The truth of each sprite is StereoFoley eq. (2) on the very pixels of it that
stay visible (`visible_masks`), and the soundtrack starts each bell at exactly a contact frame.

    from foley.world.photo import SCENES, frames, truth, soundtrack, sounding, write_clip
    scene = SCENES["choice"]
    write_clip(scene, "choice.mp4")          # H.264 + the mono soundtrack as dual-mono AAC
    tracks = truth(scene)                    # list[Track], one per sprite, label = sprite name
    name = sounding(scene)                   # "cup"

The description (`PhotoScene`, `Sprite`, `Cut`, `Occluder`) and the catalogue `SCENES` live in
`foley.world.photo_scene` and are re-exported here.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterator

import cv2
import numpy as np
from scipy.signal import sosfilt

from foley.tracks import Track, centroid_and_mass
from foley.world.photo_scene import PHOTOS, SCENES, Box, Cut, Occluder, PhotoScene, Sprite
from foley.world.scene import WorldError
from foley.world.sounds import Voice, band, bell, harmonic

# ---------------------------------------------------------------------------------------------- pictures


@lru_cache(maxsize=16)
def photo(name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB photograph `name` from scikit-image's bundled data (read-only, cached)."""
    try:
        import skimage.data
    except ImportError:
        raise WorldError("photo scenes need scikit-image: pip install 'foley[test]' or pip install scikit-image")
    if name not in PHOTOS:
        raise WorldError(f"unknown photo {name!r}: choose one of {', '.join(PHOTOS)}")
    img = np.ascontiguousarray(getattr(skimage.data, name)()[..., :3])
    img.flags.writeable = False
    return img


def _crop_resize(name: str, box: Box | None, size: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) uint8: box of photo `name` resized to size = (w, h)."""
    img = photo(name)
    if box is not None:
        x, y, w, h = box
        img = img[y:y + h, x:x + w]
    if img.size == 0:
        raise WorldError(f"box {box} lies outside photo {name!r} of size {photo(name).shape[1::-1]}")
    interp = cv2.INTER_AREA if img.shape[1] > size[0] else cv2.INTER_CUBIC
    return cv2.resize(img, size, interpolation=interp)


@lru_cache(maxsize=64)
def sprite_image(cut: Cut) -> tuple[np.ndarray, np.ndarray]:
    """The cut's pixels (h, w, 3) uint8 and its alpha (h, w) bool."""
    w, h = cut.size
    if cut.photo is None:
        pixels = np.empty((h, w, 3), np.uint8)
        pixels[:] = cut.colour
    else:
        pixels = _crop_resize(cut.photo, cut.box, cut.size)
    if cut.shape == "rect":
        alpha = np.ones((h, w), bool)
    else:
        u = (np.arange(w) + 0.5 - w / 2) / (w / 2)
        v = (np.arange(h) + 0.5 - h / 2) / (h / 2)
        alpha = u[None, :] ** 2 + v[:, None] ** 2 <= 1.0
    return pixels, alpha


def centre(sprite: Sprite, k: int, fps: float) -> tuple[float, float]:
    """Centre (x, y) of the sprite in frame k, screen pixels (may lie off-frame), bounce included."""
    t = k / fps
    if callable(sprite.path):
        cx, cy = sprite.path(t)
    else:
        keys = np.asarray(sprite.path, np.float64)  # (K, 3)
        cx, cy = float(np.interp(t, keys[:, 0], keys[:, 1])), float(np.interp(t, keys[:, 0], keys[:, 2]))
    if sprite.bounce is not None:
        height, period = sprite.bounce
        cy -= height * abs(math.sin(math.pi * k / int(period)))
    return float(cx), float(cy)


def _top_left(sprite: Sprite, k: int, fps: float) -> tuple[int, int]:
    """Integer top-left pixel of the sprite's box in frame k (the centre rounded half up)."""
    cx, cy = centre(sprite, k, fps)
    w, h = sprite.cut.size
    return int(math.floor(cx - w / 2 + 0.5)), int(math.floor(cy - h / 2 + 0.5))


def _paste_mask(out: np.ndarray, alpha: np.ndarray, x0: int, y0: int) -> None:
    """OR alpha (h, w) into out (H, W) with its top-left at (x0, y0), clipped to the frame."""
    H, W = out.shape
    h, w = alpha.shape
    a, b = max(0, x0), min(W, x0 + w)
    c, d = max(0, y0), min(H, y0 + h)
    if a < b and c < d:
        out[c:d, a:b] |= alpha[c - y0:d - y0, a - x0:b - x0]


def visible_masks(scene: PhotoScene, k: int) -> list[np.ndarray]:
    """Per sprite, (H, W) bool: its pixels in frame k not covered by a sprite in front or the occluder."""
    masks = []
    for s in scene.sprites:
        m = np.zeros((scene.height, scene.width), bool)
        _paste_mask(m, sprite_image(s.cut)[1], *_top_left(s, k, scene.fps))
        masks.append(m)
    cover = np.zeros((scene.height, scene.width), bool)
    if scene.occluder is not None:
        cover[:, max(0, scene.occluder.x):max(0, scene.occluder.x + scene.occluder.width)] = True
    for m in reversed(masks):  # front to back
        m &= ~cover
        cover |= m
    return masks


def _background(scene: PhotoScene) -> np.ndarray:
    """(H, W + travel, 3) uint8 panorama the camera slides over."""
    travel = int(math.ceil(abs(scene.pan_px_per_frame) * scene.n_frames)) + 1
    return _crop_resize(scene.background, scene.background_box, (scene.width + travel, scene.height))


def frames(scene: PhotoScene) -> Iterator[np.ndarray]:
    """Yield the scene's (H, W, 3) uint8 RGB frames: panned background, sprites back to front, occluder."""
    pano = _background(scene)
    start = pano.shape[1] - scene.width if scene.pan_px_per_frame < 0 else 0
    strip = None
    if scene.occluder is not None:
        o = scene.occluder
        strip = _crop_resize(o.photo, o.box, (o.width, scene.height))
    for k in range(scene.n_frames):
        off = start + int(round(scene.pan_px_per_frame * k))
        frame = pano[:, off:off + scene.width].copy()  # (H, W, 3)
        for s in scene.sprites:
            _paint(frame, s, *_top_left(s, k, scene.fps))
        if strip is not None:
            a, b = max(0, o.x), min(scene.width, o.x + o.width)
            frame[:, a:b] = strip[:, a - o.x:b - o.x]
        yield frame


def _paint(frame: np.ndarray, sprite: Sprite, x0: int, y0: int) -> None:
    """Draw the sprite's pixels where its alpha is set, top-left at (x0, y0), clipped to the frame."""
    pixels, alpha = sprite_image(sprite.cut)
    H, W = frame.shape[:2]
    h, w = alpha.shape
    a, b, c, d = max(0, x0), min(W, x0 + w), max(0, y0), min(H, y0 + h)
    if a < b and c < d:
        sub = alpha[c - y0:d - y0, a - x0:b - x0]
        frame[c:d, a:b][sub] = pixels[c - y0:d - y0, a - x0:b - x0][sub]


# ---------------------------------------------------------------------------------------------- truth


def truth(scene: PhotoScene) -> list[Track]:
    """Exact tracks, one per sprite (label = its name): eq. (2) on its visible pixels; where none are
    visible, reliable False, mass 0 and x, y the whole sprite's centre (beyond +-1 when off-frame)."""
    n, w, h = scene.n_frames, scene.width, scene.height
    xym = np.zeros((len(scene.sprites), n, 3))  # (S, K, [x, y, mass])
    for k in range(n):
        for i, m in enumerate(visible_masks(scene, k)):
            x, y, mass = centroid_and_mass(m)
            if mass == 0.0:
                cx, cy = centre(scene.sprites[i], k, scene.fps)
                x, y = 2 * cx / w - 1, 2 * cy / h - 1
            xym[i, k] = x, y, mass
    return [Track(fps=scene.fps, x=xym[i, :, 0], y=xym[i, :, 1], mass=xym[i, :, 2], reliable=xym[i, :, 2] > 0,
                  label=s.name, frame_size=(w, h)) for i, s in enumerate(scene.sprites)]


def sounding(scene: PhotoScene) -> str | None:
    """Name of the one sprite that makes a sound; None when none or several do."""
    names = [s.name for s in scene.sprites if s.sound != "silent"]
    return names[0] if len(names) == 1 else None


def contact_frames(scene: PhotoScene, name: str) -> np.ndarray:
    """(E,) int frames at which sprite `name` touches the floor (its bell's onsets); empty without a bounce."""
    s = _sprite(scene, name)
    if s.bounce is None:
        return np.zeros(0, int)
    period = int(s.bounce[1])
    return np.arange(period, scene.n_frames, period)


def _sprite(scene: PhotoScene, name: str) -> Sprite:
    for s in scene.sprites:
        if s.name == name:
            return s
    raise WorldError(f"no sprite {name!r} in the scene; it has {[s.name for s in scene.sprites]}")


# ---------------------------------------------------------------------------------------------- sound


def _voice(scene: PhotoScene, s: Sprite, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) float64 sound of sprite s, peak 1 (zeros when silent)."""
    t = np.arange(n) / sr
    if s.sound == "bell":
        events = contact_frames(scene, s.name) / scene.fps
        x = bell(Voice(pitch=s.pitch, bright=0.6), events, n, sr, rng, None)
    elif s.sound == "hum":
        f = 110.0 * s.pitch * (1 + 0.01 * np.sin(2 * math.pi * 0.7 * t))  # (n,) Hz
        x = harmonic(f, sr, [1.0, 0.5, 0.33, 0.2]) * (0.8 + 0.2 * np.sin(2 * math.pi * 3.0 * t))
    elif s.sound == "noise":
        x = sosfilt(band(300.0 * s.pitch, 3000.0 * s.pitch, sr), rng.standard_normal(n))
    else:
        return np.zeros(n)
    peak = float(np.max(np.abs(x)))
    return x / peak if peak > 0 else x


def soundtrack(scene: PhotoScene, sr: int = 48000) -> np.ndarray:
    """(N,) float32 mono mix of the sounding sprites, N = round(seconds * sr), peak 0.5 (silent: zeros).

    A bell starts at exactly sample round(k / fps * sr) of each contact frame k.
    """
    n = int(round(scene.n_frames / scene.fps * sr))
    rng = np.random.default_rng(0)
    mix = sum((_voice(scene, s, n, sr, rng) for s in scene.sprites), np.zeros(n))
    peak = float(np.max(np.abs(mix)))
    return (0.5 * mix / peak if peak > 0 else mix).astype(np.float32)


def write_clip(scene: PhotoScene, path, sr: int = 48000) -> None:
    """Write the scene as H.264 video with its soundtrack as dual-mono AAC (.mp4/.mov/.mkv), atomically."""
    from foley import io

    io.write_video(path, frames(scene), scene.fps, audio=soundtrack(scene, sr)[None], sr=sr)


__all__ = ["PHOTOS", "SCENES", "Box", "Cut", "Occluder", "PhotoScene", "Sprite", "centre", "contact_frames", "frames",
           "photo", "sounding", "soundtrack", "sprite_image", "truth", "visible_masks", "write_clip"]
