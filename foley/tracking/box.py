"""Follow a user's box with OpenCV's CSRT tracker (Lukežič et al., CVPR 2017).

CSRT's cost is set by its working template, not by the frame: OpenCV's defaults (a 200-pixel template,
spatial-reliability segmentation, 33 scales) take ~40-60 ms a frame on one core whatever the frame size.
A 96-pixel template without segmentation and 9 scales takes ~14 ms, about 2 px off on a 640-wide frame.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import cv2
import numpy as np

from foley.errors import TrackError
from foley.tracking.appearance import colour_hist, hist_distance
from foley.tracks import Track

Box = tuple[float, float, float, float]  # (x, y, w, h) in pixels of the input frames


def track_box(frames: Iterable[np.ndarray], fps: float, box: Box, start_frame: int = 0,
              max_width: int = 640, give_up_s: float = 0.5, max_colour_distance: float = 0.5,
              progress: Callable[[int], None] | None = None) -> Track:
    """Track of a box the user drew on `start_frame`, followed by CSRT from there on.

    Args:
        frames: RGB uint8 frames (H, W, 3), read one at a time.
        fps: frame rate of `frames`.
        box: (x, y, w, h) in pixels of the frames, on frame `start_frame`, inside the frame.
        start_frame: the frame the box was drawn on; earlier frames are unreliable.
        max_width: frames wider than this are downscaled for the tracker (boxes scale with them).
        give_up_s: after this long lost (CSRT failure, or the box's centre off-frame) the object is
            deemed gone and the rest of the video is unreliable: CSRT, once lost, tends to lock
            onto background and report success.
        max_colour_distance: a box whose colours are further than this (Bhattacharyya) from the first
            box's counts as lost.
        progress: called with 1 after each frame.

    Returns:
        One track "box": centre of the box's visible part, mass = visible box area / frame area;
        unreliable (NaN) before `start_frame`, where CSRT reports a failure, where the box's
        centre has left the frame, and after `give_up_s` of either.
    """
    box = _check_request(fps, box, start_frame)
    tracker, scale, size = None, 1.0, None
    xs, ys, ms = [], [], []
    give_up, lost = max(1, int(round(give_up_s * fps))), 0
    for k, frame in enumerate(frames):
        if size is None:
            size = _frame_size(frame)
            check_box_inside(box, size)
            scale = min(1.0, max_width / size[0])
        elif _frame_size(frame) != size:
            raise TrackError(f"frame {k} is {_frame_size(frame)} but frame 0 is {size}: all frames must match")
        found = None
        if k == start_frame:
            small = _small(frame, scale)
            tracker = _start_csrt(small, box, scale)
            found, colours = box, _colours(small, box, scale)
        elif tracker is not None:
            small = _small(frame, scale)
            found = _follow(tracker, small, scale)
            if found is not None and hist_distance(colours, _colours(small, found, scale)) > max_colour_distance:
                found = None  # CSRT holds on to whatever is left once its object has gone: colours tell
        x, y, m = _box_centroid(found, size)
        lost = 0 if math.isfinite(x) else lost + 1
        if lost >= give_up:
            tracker = None
        xs.append(x), ys.append(y), ms.append(m)
        if progress is not None:
            progress(1)
    if size is None or start_frame >= len(xs):
        raise TrackError(f"start_frame {start_frame} is beyond the video's {len(xs)} frames")
    x = np.array(xs)  # (K,)
    return Track(fps=fps, x=x, y=np.array(ys), mass=np.array(ms), reliable=np.isfinite(x), label="box",
                 frame_size=size)


def _check_request(fps: float, box: Box, start_frame: int) -> Box:
    """The box as 4 floats; TrackError unless fps > 0, the box is 4 finite numbers with w, h >= 1, start_frame >= 0."""
    if not (fps > 0 and math.isfinite(fps)):
        raise TrackError(f"fps must be a positive number, got {fps}")
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError):
        raise TrackError(f"box must be (x, y, w, h) in pixels, got {box!r}")
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise TrackError(f"box must be (x, y, w, h) in finite pixels, got {box!r}")
    if w < 1 or h < 1:
        raise TrackError(f"box {(x, y, w, h)} is empty: width and height must be at least 1 pixel")
    if start_frame < 0:
        raise TrackError(f"start_frame must be >= 0, got {start_frame}")
    return x, y, w, h


def _start_csrt(image: np.ndarray, box: Box, scale: float) -> cv2.Tracker:
    """A CSRT tracker initialised on the (scaled) box; TrackError if OpenCV refuses the box."""
    x, y, w, h = (v * scale for v in box)
    rect = (int(round(x)), int(round(y)), max(1, int(round(w))), max(1, int(round(h))))
    params = cv2.TrackerCSRT_Params()
    params.template_size, params.use_segmentation, params.number_of_scales = 96, False, 9
    tracker = cv2.TrackerCSRT_create(params)
    try:
        tracker.init(image, rect)
    except cv2.error as e:
        raise TrackError(f"the tracker cannot start from box {box}: draw a larger box ({str(e).strip()})")
    return tracker


def _follow(tracker: cv2.Tracker, image: np.ndarray, scale: float) -> Box | None:
    """The box in the next frame, in input pixels; None where CSRT reports (or raises) a failure."""
    try:
        ok, b = tracker.update(image)
    except cv2.error:
        return None
    return tuple(v / scale for v in b) if ok else None


def _colours(small_bgr: np.ndarray, box: Box, scale: float) -> np.ndarray:
    """The colour histogram of the box's part inside the (scaled, BGR) frame."""
    h, w = small_bgr.shape[:2]
    x0, y0 = max(0, int(box[0] * scale)), max(0, int(box[1] * scale))
    x1, y1 = min(w, int(math.ceil((box[0] + box[2]) * scale))), min(h, int(math.ceil((box[1] + box[3]) * scale)))
    if x1 <= x0 or y1 <= y0:
        return colour_hist(np.zeros((1, 1, 3), np.uint8))
    return colour_hist(cv2.cvtColor(small_bgr[y0:y1, x0:x1], cv2.COLOR_BGR2RGB))


def check_box_inside(box: Box, size: tuple[int, int]) -> None:
    """TrackError unless the (x, y, w, h) box lies inside a (W, H) frame."""
    x, y, w, h = box
    if x < 0 or y < 0 or x + w > size[0] or y + h > size[1]:
        raise TrackError(f"box {tuple(box)} (x, y, w, h) is not inside the {size[0]}x{size[1]} frame")


def _frame_size(frame: np.ndarray) -> tuple[int, int]:
    """(W, H) of an RGB uint8 frame (H, W, 3); TrackError otherwise."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise TrackError(f"frames must be RGB uint8 arrays (H, W, 3), got {getattr(frame, 'shape', type(frame))}")
    return frame.shape[1], frame.shape[0]


def _small(frame: np.ndarray, scale: float) -> np.ndarray:
    """(h, w, 3) BGR copy at `scale`, as OpenCV's trackers expect."""
    bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    if scale == 1.0:
        return bgr
    h, w = frame.shape[:2]
    return cv2.resize(bgr, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_AREA)


def _box_centroid(box: Box | None, size: tuple[int, int]) -> tuple[float, float, float]:
    """Normalised centre and mass of the box's visible part (eq. 2 for a box); NaN when lost or out."""
    if box is None:
        return math.nan, math.nan, 0.0
    W, H = size
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, W), min(y + h, H)
    if not (0 <= cx <= W and 0 <= cy <= H) or x1 <= x0 or y1 <= y0:
        return math.nan, math.nan, 0.0
    return (x0 + x1) / W - 1.0, (y0 + y1) / H - 1.0, (x1 - x0) * (y1 - y0) / (W * H)
