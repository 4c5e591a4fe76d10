"""Model-free motion tracking: camera-compensated double differencing and a background model, filled
blobs, then `follow`.

Per frame k, one frame late (the object is placed at k, not at k-1 ∪ k):
downscale + blur → shot cut? (then every track ends and tracking starts afresh) → camera motion
k-1→k (a grid of Shi–Tomasi corners, pyramidal Lucas–Kanade, RANSAC similarity: Shi & Tomasi 1994,
Bouguet 2000, Fischler & Bolles 1981) → for each neighbour j ∈ {k-1, k+1}: fill(|I_k − warp(I_j)| > τ)
→ AND of the two (double difference, Kameda & Minoh 1996), OR'd with where I_k differs from the
camera-compensated median background (`background`: plain objects that move slowly) → blobs →
centroid and mass by StereoFoley eq. (2), and each blob's look (`appearance`), with which the follower
keeps an object once it stops.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from foley.blocks import ahead
from foley.errors import TrackError
from foley.tracking.appearance import Look
from foley.tracking.background import Background, to3x3, valid_after_warp
from foley.tracking.cuts import CutDetector
from foley.tracking.follow import Blob, Follower, FollowConfig
from foley.tracks import Track, centroid_and_mass

_IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
FRONT_AHEAD = 4  # frames the front stage may run ahead of the segmentation


@dataclass(frozen=True)
class MotionConfig:
    """Segmentation settings; sizes are fractions of the working frame so they hold at any resolution."""

    work_width: int = 320  # frames are processed at (about) this width
    blur: int = 5  # odd Gaussian kernel, pixels of the working frame
    min_threshold: float = 10.0  # levels of 255: never segment weaker differences
    noise_factor: float = 6.0  # threshold = max(min_threshold, noise_factor * median difference)
    min_area_frac: float = 0.0004  # smallest blob, fraction of the frame
    close_frac: float = 0.04  # closing kernel, fraction of the working width
    max_blobs: int = 12  # largest blobs kept per frame
    max_area_frac: float = 0.35  # a blob larger than this is the whole scene changing (a flash, rain, an
    # exposure jump), not an object: dropped
    colour: bool = True  # difference the colour channels (max), so objects as bright as their
    # background still stand out; False: grey only, about 1.4x faster
    background: bool = True  # also segment against a median background (plain, slow objects)
    background_factor: float = 1.5  # its threshold, times the differencing one (it sees more noise)
    cuts: bool = True  # end every track at a shot cut

    def __post_init__(self) -> None:
        if self.work_width < 32 or self.blur < 1 or self.blur % 2 == 0:
            raise TrackError("MotionConfig needs work_width >= 32 and an odd blur >= 1")


@dataclass(frozen=True)
class _Frame:
    """One working frame: grey (h, w) for camera motion, blurred image (h, w, C) for differences."""

    grey: np.ndarray
    image: np.ndarray
    k: int = 0  # its index in the video
    width: int = 0  # the source frame's size
    height: int = 0


def track_motion(frames: Iterable[np.ndarray], fps: float, max_objects: int = 3,
                 config: MotionConfig | None = None, follow: FollowConfig | None = None,
                 progress: Callable[[int], None] | None = None) -> list[Track]:
    """Tracks of what moves against the (compensated) camera motion, longest first.

    Args:
        frames: RGB uint8 frames (H, W, 3), read one at a time.
        fps: frame rate of `frames`.
        max_objects: at most this many tracks are returned.
        config: segmentation settings (`MotionConfig`).
        follow: association settings (`FollowConfig`).
        progress: called with 1 after each frame.

    Returns:
        Up to `max_objects` tracks "object0", "object1", ... each covering every frame (NaN x and
        reliable=False where the object was not seen; always so on the first and last frames,
        which lack a neighbour to difference with); an empty list when nothing moves.
    """
    if not (fps > 0 and math.isfinite(fps)):
        raise TrackError(f"fps must be a positive number, got {fps}")
    if max_objects < 1:
        raise TrackError(f"max_objects must be >= 1, got {max_objects}")
    config = config or MotionConfig()
    follower: Follower | None = None
    window: list[_Frame] = []  # last three working frames of the current shot
    motions: list[np.ndarray] = []  # camera motion into each of those frames (2, 3)
    background = Background() if config.background else None
    n, size = 0, None
    repeats: list[int] = []  # frames that repeat the one before (a low-rate source padded to a higher rate)
    # the per-frame front (downscale, cut, repeat, camera motion) runs a few frames ahead in a thread: most of
    # it is OpenCV, which releases the GIL, so it overlaps the segmentation of earlier frames on a second core
    for cur, cut, repeat, motion in ahead(_front(iter(frames), config), FRONT_AHEAD):
        if size is None:
            size = (cur.width, cur.height)
            follower = Follower(cur.grey.shape[1], cur.grey.shape[0], fps, follow)
        if cut:
            follower.cut(n)
            window, motions = [], []
            if background is not None:
                background.reset()
        if repeat:
            repeats.append(n)
        else:
            motions.append(motion)
            window.append(cur)
            if background is not None:
                background.push(cur.image, motion)
        if len(window) == 3:
            blobs = _segment(window, motions[1], motions[2], config, background)
            follower.update(window[1].k, blobs, window[1].image, window[1].grey)
            window.pop(0), motions.pop(0)
        n += 1
        if progress is not None:
            progress(1)
    if n == 0:
        raise TrackError("the video has no frames")
    return [_hold(t, repeats).with_(frame_size=size) for t in follower.finish(n, max_objects)]


def _front(frames: Iterator[np.ndarray], config: MotionConfig) -> Iterator[tuple[_Frame, bool, bool, np.ndarray | None]]:
    """Per frame, what needs only the frames so far: (working frame, a cut ends the shot here, it repeats the
    last kept frame, camera motion from that frame (2, 3); None for a repeat)."""
    cuts = CutDetector() if config.cuts else None
    last: _Frame | None = None  # the last kept frame of the current shot
    repeats: list[int] = []
    size = None
    for n, frame in enumerate(frames):
        cur = _prepare(frame, config, size, n)
        size = size or (frame.shape[1], frame.shape[0])
        cut = cuts is not None and cuts.is_cut(cur.image) and last is not None
        if cut:
            last = None
        if last is not None and _repeats(last.grey, cur.grey) and repeats[-2:] != [n - 2, n - 1]:
            repeats.append(n)  # a copy (at most 2 in a row: a still scene is no copy): differencing sees nothing
            yield cur, cut, True, None
            continue
        motion = _camera_motion(last.grey, cur.grey) if last is not None else _IDENTITY
        last = cur
        yield cur, cut, False, motion


def _repeats(prev: np.ndarray, cur: np.ndarray) -> bool:
    """Whether a working frame repeats the previous one: no pixel differs by more than 2 levels."""
    return cv2.norm(prev, cur, cv2.NORM_INF) <= 2


def _hold(track: Track, repeats: list[int]) -> Track:
    """The track with each repeated frame given the values of the frame it repeats."""
    if not repeats:
        return track
    x, y, mass, reliable = track.x.copy(), track.y.copy(), track.mass.copy(), track.reliable.copy()
    for k in repeats:  # ascending, so a run of repeats copies down from its first real frame
        x[k], y[k], mass[k], reliable[k] = x[k - 1], y[k - 1], mass[k - 1], reliable[k - 1]
    return track.with_(x=x, y=y, mass=mass, reliable=reliable)


def _prepare(frame: np.ndarray, config: MotionConfig, size: tuple[int, int] | None, k: int = 0) -> _Frame:
    """Downscaled, blurred working copy of an RGB frame (H, W, 3)."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise TrackError(f"frames must be RGB uint8 arrays (H, W, 3), got {frame.dtype} {frame.shape}")
    if size is not None and (frame.shape[1], frame.shape[0]) != size:
        raise TrackError(f"frame size changed from {size} to {(frame.shape[1], frame.shape[0])}")
    h, w = frame.shape[:2]
    img = frame if config.colour else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)  # (H, W, C)
    if w > config.work_width:
        small = (config.work_width, max(8, int(round(h * config.work_width / w))))
        img = cv2.resize(img, small, interpolation=cv2.INTER_AREA)  # (h, w, C)
    img = cv2.GaussianBlur(img, (config.blur, config.blur), 0)
    return _Frame(grey=cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if config.colour else img, image=img, k=k, width=w, height=h)


def _camera_motion(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """(2, 3) similarity mapping prev's pixels onto cur's: KLT matches + RANSAC; identity if unsure."""
    pts = _grid_corners(prev)
    if len(pts) < 8:
        return _IDENTITY
    nxt, status, _ = cv2.calcOpticalFlowPyrLK(prev, cur, pts, None, winSize=(15, 15), maxLevel=2)
    ok = status.ravel() == 1
    if ok.sum() < 8:
        return _IDENTITY
    m, _ = cv2.estimateAffinePartial2D(pts[ok], nxt[ok], method=cv2.RANSAC, ransacReprojThreshold=1.0)
    if m is None:
        return _IDENTITY
    h, w = prev.shape
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64)  # (4, 3)
    if np.abs(corners @ (m - _IDENTITY).T).max() < 0.2:
        return _IDENTITY  # a still camera: estimation noise, chained over the background's history, would
    m = m.astype(np.float32)  # misregister it
    # Where the background is plain, the only corners are on the moving object, and their motion is not
    # the camera's: keep a motion only if it explains the frame (its median pixel) better than none.
    half = (np.diag([0.5, 0.5, 1.0]) @ to3x3(m))[:2]  # compared on every other pixel
    still = _median8(cv2.absdiff(cur, prev)[::2, ::2])
    shifted = cv2.warpAffine(prev, half, ((w + 1) // 2, (h + 1) // 2), borderMode=cv2.BORDER_REPLICATE)
    moved = _median8(cv2.absdiff(np.ascontiguousarray(cur[::2, ::2]), shifted))
    return m if moved < 0.9 * still - 0.2 else _IDENTITY


def _median8(a: np.ndarray) -> float:
    """The median of a uint8 array by its histogram (np.median sorts: ten times slower here); the lower
    middle value for an even count."""
    counts = np.bincount(a.ravel(), minlength=256)
    return float(np.searchsorted(np.cumsum(counts), (a.size + 1) // 2))


def _grid_corners(img: np.ndarray, cell: int = 24) -> np.ndarray:
    """(P, 1, 2) float32: the strongest Shi-Tomasi corner of each cell of a grid, flat cells left out.

    One point per cell spreads the features over the whole frame, so one high-contrast object
    cannot hold all of them (as a global quality threshold lets it) and steer the camera estimate.
    """
    eig = cv2.cornerMinEigenVal(img, blockSize=7)  # (h, w)
    h, w = img.shape
    ch, cw = h // cell, w // cell
    cells = eig[:ch * cell, :cw * cell].reshape(ch, cell, cw, cell).transpose(0, 2, 1, 3)
    cells = cells.reshape(ch, cw, cell * cell)  # (ch, cw, cell²)
    best, at = cells.max(axis=-1), cells.argmax(axis=-1)  # (ch, cw)
    rows = np.arange(ch)[:, None] * cell + at // cell
    cols = np.arange(cw)[None, :] * cell + at % cell
    keep = best > max(5e-6, 0.1 * float(np.median(best)))
    return np.stack([cols[keep], rows[keep]], axis=-1).astype(np.float32)[:, None, :]


def _warp(img: np.ndarray, m: np.ndarray, inverse: bool) -> tuple[np.ndarray, np.ndarray]:
    """img warped by m (or m⁻¹), and the (h, w) bool mask of pixels that came from inside img."""
    h, w = img.shape[:2]
    if m is _IDENTITY:  # a still camera (`_camera_motion` snaps to this very object)
        return img, np.ones((h, w), bool)
    flags = cv2.INTER_LINEAR | (cv2.WARP_INVERSE_MAP if inverse else 0)
    out = cv2.warpAffine(img, m, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    return out, valid_after_warp(m, w, h, inverse)


def _motion_mask(window: list[_Frame], m_prev: np.ndarray, m_next: np.ndarray,
                 config: MotionConfig, background: Background | None = None) -> tuple[np.ndarray, np.ndarray]:
    """((h, w) bool moving objects of the middle frame, (h, w) bool the part of it motion saw).

    Motion: fill(cur ≠ prev) ∧ fill(cur ≠ next). Each filled two-frame mask covers the object at both
    instants, even when it is untextured (the two crescents of a uniform disc enclose their overlap);
    their intersection is the object now. Background: fill(cur ≠ median of the past), which covers a
    plain object that moves less than its size per frame, whose crescents are too thin to enclose it.
    """
    prev, cur, nxt = (f.image for f in window)
    wp, vp = _warp(prev, m_prev, inverse=False)  # prev seen from cur
    wn, vn = _warp(nxt, m_next, inverse=True)  # next seen from cur
    d1 = _difference(cur, wp)  # (h, w)
    d2 = _difference(cur, wn)
    noise = _median8(cv2.min(d1, d2)[::2, ::2])
    thr = max(config.min_threshold, config.noise_factor * noise)
    b1 = _clean((d1 > thr) & vp, config) | ~vp  # where a neighbour is unknown (the strip warping
    b2 = _clean((d2 > thr) & vn, config) | ~vn  # uncovers), trust the other one
    both = (b1 & b2 & (vp | vn)).astype(np.uint8)
    moving = both > 0 if config.blur == 1 else cv2.erode(both, np.ones((3, 3), np.uint8)) > 0
    # the blur (σ ≈ 1 px) widened the edges by ~1 px
    # the background's newest frame is `next`; m_next carries cur's pixels into it
    diff = None if background is None else background.difference(cur, np.linalg.inv(to3x3(m_next)))
    if diff is None:
        return moving, moving
    d, valid = diff
    bthr = config.background_factor * max(thr, config.noise_factor * _median8(d[::2, ::2]))
    still = cv2.erode(_clean((d > bthr) & valid, config).astype(np.uint8), np.ones((3, 3), np.uint8))
    count, labels = cv2.connectedComponents(still)
    area = np.bincount(labels.ravel(), minlength=count)  # (count,)
    seen = np.bincount(labels[moving], minlength=count)
    kept = (seen < 0.3 * area)  # where motion covers a find well, its outline is the truer one
    kept &= area >= 4 * config.min_area_frac * d.size  # and specks of misregistration are no finds
    kept[0] = False
    return moving | kept[labels], moving


def _difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(h, w) uint8 largest absolute difference over the channels of two (h, w, C) images."""
    d = cv2.absdiff(a, b)
    if d.ndim == 2:
        return d
    c = cv2.split(d)  # faster than a numpy reduction over the interleaved channel axis
    return cv2.max(cv2.max(c[0], c[1]), c[2])


def _clean(mask: np.ndarray, config: MotionConfig) -> np.ndarray:
    """(h, w) bool: speckle removed (opening), gaps bridged (closing), holes filled."""
    m = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    k = max(3, int(round(config.close_frac * mask.shape[1])) | 1)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return _fill_holes(m)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """(h, w) bool: mask plus every region it encloses, the frame edge closing outlines cut by it."""
    m = mask.astype(np.uint8)
    gap = max(mask.shape) // 4  # longest stretch of frame edge that may close an outline
    for line in (m[0], m[-1], m[:, 0], m[:, -1]):  # views: edited in place
        line[:] = _bridge(line, gap)
    padded = cv2.copyMakeBorder(m, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)  # (h+2, w+2)
    cv2.floodFill(padded, None, (0, 0), 2)
    return (padded != 2)[1:-1, 1:-1]


def _bridge(line: np.ndarray, gap: int) -> np.ndarray:
    """(n,) uint8: gaps of at most `gap` between set pixels of a line set too (1-D closing)."""
    on = np.flatnonzero(line)
    out = line.copy()
    for a, b in zip(on[:-1], on[1:]):
        if 1 < b - a <= gap:
            out[a:b] = 1
    return out


def _segment(window: list[_Frame], m_prev: np.ndarray, m_next: np.ndarray,
             config: MotionConfig, background: Background | None = None) -> list[Blob]:
    """Filled blobs of the middle frame's mask, largest first, each with its look."""
    mask, moving = _motion_mask(window, m_prev, m_next, config, background)
    cur = window[1]
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    h, w = mask.shape
    min_area = config.min_area_frac * h * w
    max_area = config.max_area_frac * h * w
    contours = sorted((c for c in contours if min_area <= cv2.contourArea(c) <= max_area), key=cv2.contourArea,
                      reverse=True)
    margin = max(2, int(0.02 * w))  # a blob this close to the border is entering or leaving
    blobs = []
    for c in contours[:config.max_blobs]:
        filled = np.zeros((h, w), np.uint8)
        cv2.drawContours(filled, [c], -1, 1, thickness=cv2.FILLED)  # holes filled
        x, y, mass = centroid_and_mass(filled)
        bx, by, bw, bh = cv2.boundingRect(c)
        edge = min(bx, by, w - bx - bw, h - by - bh) <= margin
        seen = float(moving[by:by + bh, bx:bx + bw][filled[by:by + bh, bx:bx + bw] > 0].mean())
        centre = ((x + 1) * w / 2, (y + 1) * h / 2)
        look = Look.take(cur.image, cur.grey, filled, (bx, by, bw, bh), centre, mass)
        blobs.append(Blob(x=x, y=y, mass=mass, edge=edge, moving=seen >= 0.25, look=look, box=(bx, by, bw, bh)))
    return blobs
