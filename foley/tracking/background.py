"""A background model on camera-compensated frames: the median of a few past frames, each warped into now.

Double differencing sees a uniform object that moves less than its own size per frame only by its
thin leading and trailing edges. Against a background that the object has left, the whole object
stands out. The background here is the per-pixel median of the past frames taken `every` frames apart
(five of them, over 2 s at 25 fps), each carried into the current frame by the chained camera
motion, so it holds for a panning camera too. An object that stays longer than about half the history
becomes background: that is when appearance takes over (`foley.tracking.appearance`).

Its foreground also holds *ghosts*: where an object stood when the history began, before it moved
away. Behind an object that takes longer than 3 spacings (1.2 s) to pass its own length, the median
still holds the object; the oldest frame, from before it came, does not, so a pixel is foreground only
where it differs from both. Where motion sees an object, its outline wins (`motion._motion_mask`); and
ghosts don't move, so the follower keeps only tracks that moved.
"""
from __future__ import annotations

import cv2
import numpy as np


_EYE23 = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)


def to3x3(m: np.ndarray) -> np.ndarray:
    """(3, 3) homogeneous form of a (2, 3) affine map."""
    return np.vstack([m, [0.0, 0.0, 1.0]])


def valid_after_warp(m: np.ndarray, w: int, h: int, inverse: bool = False) -> np.ndarray:
    """(h, w) bool: the pixels of a (w, h) image warped by the (2, 3) affine m (cv2.warpAffine; `inverse`:
    with WARP_INVERSE_MAP) that come from inside the source, 1 px in from its edge. The source rectangle
    mapped into the destination is a convex quadrilateral: drawn, not warped (a tenth of the time)."""
    t = to3x3(np.asarray(m, np.float64))
    t = np.linalg.inv(t) if inverse else t  # destination <- source
    rect = np.array([[1, 1, 1], [w - 2, 1, 1], [w - 2, h - 2, 1], [1, h - 2, 1]], np.float64)  # (4, 3)
    quad = (rect @ t[:2].T).round().astype(np.int32)  # (4, 2)
    out = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(out, quad, 1)
    return out > 0


def _median3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return cv2.max(cv2.min(a, b), cv2.min(cv2.max(a, b), c))


def _median5(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Per-pixel median of five images by a min/max network (a tenth of np.median's time)."""
    return _median3(e, cv2.max(cv2.min(a, b), cv2.min(c, d)), cv2.min(cv2.max(a, b), cv2.max(c, d)))


class Background:
    """Feed it every working frame with the camera motion into it (`push`); ask for its `difference` from an image."""

    def __init__(self, history: int = 6, every: int = 10) -> None:
        self.history, self.every = history, every
        self.frames: list[np.ndarray] = []  # (h, w, C) uint8 past images
        self.into_now: list[np.ndarray] = []  # (3, 3): each past image's pixels -> the current frame's
        self.count, self.pushed = 0, 0
        self._median: tuple[int, np.ndarray] | None = None  # (frames pushed, median in the newest's coordinates)

    def reset(self) -> None:
        """Forget the past (a shot cut)."""
        self.frames, self.into_now, self.count, self.pushed, self._median = [], [], 0, 0, None

    def push(self, image: np.ndarray, motion: np.ndarray) -> None:
        """The newest frame and the (2, 3) camera motion from the previous frame into it."""
        m = to3x3(motion.astype(np.float64))
        self.into_now = [m @ t for t in self.into_now]
        spacing = min(self.every, 2 * len(self.frames))  # closer at first: a model within half a second
        if self.count - self.pushed >= spacing:
            self.pushed = self.count
            self.frames.append(image)
            self.into_now.append(np.eye(3))
            if len(self.frames) > self.history:
                self.frames.pop(0), self.into_now.pop(0)
        self.count += 1

    def difference(self, image: np.ndarray, into_image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """((h, w) uint8 largest channel difference of `image` from the median background, (h, w) bool valid).

        `into_image` (3, 3) maps the newest pushed frame's pixels into `image`'s (the tracker works one
        frame late). None until the history holds at least 4 frames
        (3 besides the newest).
        """
        if len(self.frames) < 4:
            return None
        h, w = image.shape[:2]
        # The median changes only when a frame is pushed (every `every` frames): it is made then, in the
        # coordinates of the newest pushed frame, and carried into each later frame by one warp.
        if self._median is None or self._median[0] != self.pushed:
            into_newest = np.linalg.inv(self.into_now[-1])
            past = [_warped(f, (into_newest @ t)[:2], w, h) for f, t in zip(self.frames[:-1], self.into_now[:-1])]
            self._median = (self.pushed, _median5(*past[-5:]) if len(past) >= 5 else _median3(*past[-3:]))
        bg = _warped(self._median[1], (into_image @ self.into_now[-1])[:2], w, h)  # (h, w, C)
        # and from the oldest frame: behind a slow object the median still holds the object (a trail),
        # but the oldest frame, from before it came, shows the background the frame shows now
        oldest = _warped(self.frames[0], (into_image @ self.into_now[0])[:2], w, h)
        d = cv2.min(_channel_max(cv2.absdiff(image, bg)), _channel_max(cv2.absdiff(image, oldest)))
        ok = np.ones((h, w), bool)
        for t in self.into_now:  # where every past frame had pixels (the newest's: the median is kept in its frame)
            m = (into_image @ t)[:2]
            if not _is_identity(m):
                ok &= valid_after_warp(m, w, h)
        return d, ok


def _is_identity(m: np.ndarray) -> bool:
    """Whether a (2, 3) affine map moves no pixel by more than rounding (np.allclose costs ten times as much)."""
    return bool(np.abs(np.asarray(m, np.float32) - _EYE23).max() <= 1e-3)


def _warped(img: np.ndarray, m: np.ndarray, w: int, h: int) -> np.ndarray:
    """img carried by the (2, 3) affine m into a (w, h) frame; img itself where m is the identity."""
    if _is_identity(m):
        return img
    return cv2.warpAffine(img, np.asarray(m, np.float32), (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _channel_max(d: np.ndarray) -> np.ndarray:
    """(h, w) largest of the channels of an (h, w, C) difference."""
    if d.ndim == 2:
        return d
    c = cv2.split(d)
    return cv2.max(cv2.max(c[0], c[1]), c[2])
