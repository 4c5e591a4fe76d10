"""Frames, masks and exact tracks of a scene.

Each object is drawn into a small label canvas (only its bounding box is touched) and blitted over
the panning background. Its track is measured on the very mask that was drawn, with
`centroid_and_mass` (StereoFoley eq. 2) on the visible part and mapped to frame coordinates; when
nothing is visible the track holds the centroid of the whole (off-frame) shape, beyond +-1, and its
full mass. Tracks are ground truth, so every frame is reliable. Masks are per object and amodal
(an object's silhouette even where another object covers it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from foley.demo import _texture
from foley.tracks import Track, centroid_and_mass
from foley.world.backgrounds import BACKDROPS, rain_layer
from foley.world.looks import Pose, pose_at
from foley.world.objects import CLASSES, Schedule
from foley.world.scene import ObjectSpec, Scene


@dataclass(frozen=True)
class Motion:
    """Per-frame geometry of one object, in pixels."""

    cx: np.ndarray  # (K,) anchor centre x
    cy: np.ndarray  # (K,) anchor centre y (before the hop)
    side: np.ndarray  # (K,) int canvas side S
    x: np.ndarray  # (K,) anchor x in track units (may be beyond +-1)
    facing: np.ndarray  # (K,) +1 / -1
    travelled: np.ndarray  # (K,) distance travelled in object sizes, or turns for rotors


@dataclass(frozen=True)
class Rendered:
    """The picture side of a clip."""

    frames: np.ndarray  # (K, H, W, 3) uint8 RGB
    tracks: list[Track]  # one per object, ground truth
    masks: list[np.ndarray] | None  # per object (K, H, W) bool, if asked for
    schedules: list[Schedule]
    motions: list[Motion]


def object_motion(o: ObjectSpec, scene: Scene) -> Motion:
    """Where object o is in every frame, and how it is turned."""
    cfg = scene.cfg
    t = np.arange(cfg.n_frames) / cfg.fps
    x, y, scale = o.path.at(t / cfg.seconds)
    side = np.maximum(4, np.round(o.size * cfg.height * scale)).astype(int)
    vx = np.gradient(x) if len(x) > 1 else np.zeros_like(x)
    default = -1.0 if o.path.x0 > 0 else 1.0
    facing = np.where(np.abs(vx) > 1e-6, np.sign(vx), default).astype(int)
    if o.cls == "fan":  # rotors: turns
        travelled = o.rate * t
    else:
        travelled = np.cumsum(np.abs(vx)) * cfg.width / 2 / (o.size * cfg.height)
    return Motion((x + 1) * cfg.width / 2, (y + 1) * cfg.height / 2, side, x, facing, travelled)


def _centroid_px(mask: np.ndarray, x0: int, y0: int, size: tuple[int, int]) -> tuple[float, float, float]:
    """Eq. (2) on a crop `mask` whose top-left pixel sits at (x0, y0) of a frame of `size` = (W, H)."""
    w, h = size
    cx, cy, m = centroid_and_mass(mask)  # in the crop's own normalised coordinates
    ch, cw = mask.shape
    col = x0 + (cx + 1) * cw / 2  # mean pixel-centre column, frame pixels
    row = y0 + (cy + 1) * ch / 2
    return 2 * col / w - 1, 2 * row / h - 1, m * ch * cw / (w * h)


def _background(scene: Scene) -> tuple[np.ndarray, np.ndarray | None]:
    """The panorama (H, W + pan, 3) and the rain layer (2H, W, 3) or None."""
    cfg = scene.cfg
    rng = scene.rng(7)
    extra = int(math.ceil(abs(scene.pan_px_per_s) * cfg.seconds)) + 2
    bd = BACKDROPS[scene.backdrop]
    pano = cv2.GaussianBlur(bd.image(cfg.height, cfg.width + extra, rng), (3, 3), 0.8)  # less grain: smaller JPEGs
    rain = rain_layer(cfg.height, cfg.width, rng, scene.amount) if bd.rain else None
    return pano, rain


def render(scene: Scene, with_masks: bool = False) -> Rendered:
    """Draw every frame of the scene and measure each object's exact track."""
    cfg = scene.cfg
    k_n, w, h = cfg.n_frames, cfg.width, cfg.height
    pano, rain = _background(scene)
    objs = scene.objects
    motions = [object_motion(o, scene) for o in objs]
    scheds = [o.schedule(cfg.seconds) for o in objs]
    paints = [_paint(o, int(m.side.max())) for o, m in zip(objs, motions)]
    times = np.arange(k_n) / cfg.fps
    running = [sc.running(times) for sc in scheds]
    order = sorted(range(len(objs)), key=lambda i: float(np.mean(motions[i].side)))  # far first
    frames = np.empty((k_n, h, w, 3), np.uint8)
    tr = np.zeros((len(objs), k_n, 3))  # (N, K, [x, y, mass])
    masks = [np.zeros((k_n, h, w), bool) for _ in objs] if with_masks else None
    start = pano.shape[1] - w if scene.pan_px_per_s < 0 else 0
    for k in range(k_n):
        t = k / cfg.fps
        f = frames[k]
        f[:] = pano[:, start + int(scene.pan_px_per_s * t):][:, :w]
        if rain is not None:
            o = int(t * 6 * h) % h
            np.maximum(f, rain[h - o:2 * h - o], out=f)
        for i in order:
            mo = motions[i]
            pose = pose_at(t, scheds[i].anim, int(mo.facing[k]), float(mo.travelled[k]), bool(running[i][k]))
            tr[i, k] = _draw(f, objs[i], mo, pose, paints[i], k, masks[i][k] if masks else None)
    tracks = [Track(fps=cfg.fps, x=tr[i, :, 0], y=tr[i, :, 1], mass=tr[i, :, 2], reliable=np.ones(k_n, bool),
                    label=o.cls, frame_size=(w, h)) for i, o in enumerate(objs)]
    return Rendered(frames, tracks, masks, scheds, motions)


@dataclass(frozen=True)
class _Paint:
    """Colours of one instance: a label -> RGB lookup table and a brightness texture."""

    lut: np.ndarray  # (1, 256, 3) uint8
    shade: np.ndarray  # (S, S, 3) float32, around 1


def _paint(o: ObjectSpec, side: int) -> _Paint:
    rng = np.random.default_rng([o.seed, 3])
    tex = _texture(side, side, rng, max(2, side // 6), np.array([[175, 175, 175], [255, 255, 255]], np.float32))
    lut = np.zeros((1, 256, 3), np.uint8)
    lut[0, :5] = CLASSES[o.cls].palette(o.colour)
    return _Paint(lut, np.repeat(tex[:, :, :1].astype(np.float32) / 225.0, 3, axis=2))


def _draw(frame: np.ndarray, o: ObjectSpec, mo: Motion, pose: Pose, paint: _Paint, k: int,
          mask_out: np.ndarray | None) -> tuple[float, float, float]:
    """Blit object o, posed, into frame k; return its exact (x, y, mass)."""
    cls = CLASSES[o.cls]
    h, w = frame.shape[:2]
    s = int(mo.side[k])
    canvas = np.zeros((s, s), np.uint8)
    cls.draw(canvas, pose)
    hop = cls.lift * math.sin(math.pi * pose.cycle) * s
    x0, y0 = int(round(mo.cx[k] - s / 2)), int(round(mo.cy[k] - hop - s / 2))
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(w, x0 + s), min(h, y0 + s)
    crop = canvas[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0] if fx1 > fx0 and fy1 > fy0 else canvas[:0, :0]
    if not crop.any():
        return _centroid_px(canvas > 0, x0, y0, (w, h))  # off-frame: the whole shape, beyond +-1
    crop = np.ascontiguousarray(crop)
    rgb = cv2.LUT(cv2.merge([crop, crop, crop]), paint.lut)  # (h', w', 3) uint8
    rgb = cv2.multiply(rgb, np.ascontiguousarray(paint.shade[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]), dtype=cv2.CV_8U)
    cv2.copyTo(rgb, crop, frame[fy0:fy1, fx0:fx1])  # in place, where the label is non-zero
    vis = crop > 0  # (h', w')
    if mask_out is not None:
        mask_out[fy0:fy1, fx0:fx1] |= vis
    return _centroid_px(vis, fx0, fy0, (w, h))
