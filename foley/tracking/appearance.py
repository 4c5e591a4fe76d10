"""What an object looks like: a colour histogram to tell objects apart, and a template to find it again.

Motion finds an object only while it moves. Once found, its look (the patch under its last moving
detection, and the hue-saturation histogram of its pixels) lets the follower keep it when it stops or
slows (`Look.find`: normalised cross-correlation in a window around where it should be, Lewis 1995),
and keeps identities apart when two objects pass close (`hist_distance`, Bhattacharyya).

A continuation is accepted only where the template matches well *and* the colours under the match are
the object's, and the template is never refreshed from a continuation, only from motion: a look that
slowly slid onto the background could otherwise follow the background for ever.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

HIST_BINS = (12, 4)  # hue x saturation
Box = tuple[int, int, int, int]  # (x, y, w, h) in working-frame pixels


def colour_hist(image: np.ndarray, mask: np.ndarray | None = None, box: Box | None = None) -> np.ndarray:
    """(12 * 4,) float32 hue-saturation histogram, summing to 1, of an RGB (h, w, 3) image's masked pixels.

    Dark and grey pixels carry no reliable hue; they fall in saturation's lowest bins like any other.
    """
    if box is not None:
        x, y, w, h = box
        image = image[y:y + h, x:x + w]
        mask = None if mask is None else mask[y:y + h, x:x + w]
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    m = None if mask is None else mask.astype(np.uint8)
    hist = cv2.calcHist([hsv], [0, 1], m, list(HIST_BINS), [0, 180, 0, 256]).ravel()
    return hist / max(float(hist.sum()), 1e-9)


def hist_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance of two normalised histograms: 0 the same, 1 nothing in common."""
    return float(cv2.compareHist(a.astype(np.float32), b.astype(np.float32), cv2.HISTCMP_BHATTACHARYYA))


@dataclass(frozen=True)
class Look:
    """An object's appearance taken from a moving detection: a grey patch, where its centroid sits in it,
    and its colour histogram."""

    patch: np.ndarray  # (ph, pw) uint8 grey
    offset: tuple[float, float]  # centroid minus the patch's top-left corner, pixels
    hist: np.ndarray  # (48,) float32, of the object's pixels
    box_hist: np.ndarray  # (48,) float32, of the whole patch (what a match is compared with)
    mass: float  # visible area fraction when taken

    @classmethod
    def take(cls, image: np.ndarray, grey: np.ndarray, mask: np.ndarray, box: Box, centroid: tuple[float, float],
             mass: float) -> "Look | None":
        """The look of a detection: its box's grey patch (None if the box is too small to match on)."""
        x, y, w, h = box
        if w < 6 or h < 6:
            return None
        return cls(patch=grey[y:y + h, x:x + w].copy(), offset=(centroid[0] - x, centroid[1] - y),
                   hist=colour_hist(image, mask, box), box_hist=colour_hist(image, None, box), mass=mass)

    def find(self, image: np.ndarray, grey: np.ndarray, around: np.ndarray, reach: float,
             min_score: float = 0.6, max_hist: float = 0.5) -> tuple[np.ndarray, float] | None:
        """Where the object is in this frame, searched within `reach` pixels of `around` (its centroid, (2,)).

        Returns (centroid (2,) in pixels, match score), or None where the patch does not match well
        enough, the colours under the match are not the object's, or the patch would leave the frame
        (an object leaving is lost, not pinned to the border). The patch must lie wholly inside.
        """
        ph, pw = self.patch.shape
        H, W = grey.shape
        x0 = int(round(around[0] - self.offset[0] - reach))
        y0 = int(round(around[1] - self.offset[1] - reach))
        x1, y1 = x0 + pw + 2 * int(reach), y0 + ph + 2 * int(reach)
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
        if x1 - x0 < pw or y1 - y0 < ph or float(self.patch.std()) < 2.0:
            return None  # no room, or a flat patch (it would match anywhere)
        res = cv2.matchTemplate(grey[y0:y1, x0:x1], self.patch, cv2.TM_CCOEFF_NORMED)
        _, score, _, (bx, by) = cv2.minMaxLoc(res)
        if not score >= min_score:
            return None
        box = (x0 + bx, y0 + by, pw, ph)
        if hist_distance(self.box_hist, colour_hist(image, None, box)) > max_hist:
            return None
        return np.array([box[0] + self.offset[0], box[1] + self.offset[1]]), float(score)
