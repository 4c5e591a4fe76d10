"""Shot cuts: where consecutive frames share too little colour to be one shot.

A cut is a jump of the hue-saturation-value histogram between consecutive frames (Bhattacharyya
distance above `threshold`) that stands out from the distances around it, so a fast pan or a flash
that changes every frame a little does not count. Trackers end every track at a cut and start afresh:
a position is never carried from one shot into the next.
"""
from __future__ import annotations

import cv2
import numpy as np

BINS = (8, 4, 4)


def frame_hist(image: np.ndarray) -> np.ndarray:
    """(128,) float32 normalised HSV histogram of an RGB (h, w, 3) image."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(BINS), [0, 180, 0, 256, 0, 256]).ravel()
    return hist / max(float(hist.sum()), 1e-9)


class CutDetector:
    """Feed frames in order (`is_cut(image)`): True for the first frame of a new shot."""

    def __init__(self, threshold: float = 0.2, contrast: float = 4.0) -> None:
        self.threshold, self.contrast = threshold, contrast
        self.prev: np.ndarray | None = None
        self.recent: list[float] = []  # the last few distances, for the local level

    def is_cut(self, image: np.ndarray) -> bool:
        hist = frame_hist(image)
        prev, self.prev = self.prev, hist
        if prev is None:
            return False
        d = float(cv2.compareHist(prev, hist, cv2.HISTCMP_BHATTACHARYYA))
        level = float(np.median(self.recent)) if self.recent else 0.0
        self.recent = (self.recent + [d])[-8:]
        return d > self.threshold and d > self.contrast * level
