"""Multi-object following of per-frame blobs: constant-velocity prediction + Hungarian assignment
(Kuhn 1955, as in SORT, Bewley et al. 2016), then joining of fragments split by exits and pauses."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from foley.errors import TrackError
from foley.tracks import Track


@dataclass(frozen=True)
class Blob:
    """One detection: normalised centroid and mass (eq. 2), and whether it reaches the frame border."""

    x: float
    y: float
    mass: float
    edge: bool = False


@dataclass(frozen=True)
class FollowConfig:
    """Association settings; distances are fractions of the frame width, times in seconds."""

    min_hits: int = 3  # consecutive detections before a tracklet is believed
    max_missed_s: float = 0.5  # a tracklet ends after this long unseen
    gate_frac: float = 0.12  # association radius beyond the tracklet's own motion
    velocity_weight: float = 0.6  # weight of the newest step in the velocity estimate
    min_track_s: float = 0.4  # tracks with fewer detected seconds are dropped
    max_gap_s: float = 10.0  # fragments this far apart in time may be joined
    max_mass_ratio: float = 2.5  # ... if their sizes agree within this factor

    def __post_init__(self) -> None:
        if self.min_hits < 1 or self.max_missed_s < 0 or self.gate_frac <= 0 or not 0 < self.velocity_weight <= 1:
            raise TrackError("FollowConfig needs min_hits >= 1, max_missed_s >= 0, gate_frac > 0, "
                             "0 < velocity_weight <= 1")


@dataclass
class _Tracklet:
    """A run of associated detections (working-frame pixels); mutable while it is followed."""

    frames: list[int]
    blobs: list[Blob]
    points: list[np.ndarray]  # (2,) pixel positions
    vel: np.ndarray = field(default_factory=lambda: np.zeros(2))  # (2,) pixels per frame

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]

    def predict(self, k: int) -> np.ndarray:
        return self.points[-1] + self.vel * (k - self.last)

    def add(self, k: int, blob: Blob, p: np.ndarray, weight: float) -> None:
        step = (p - self.points[-1]) / (k - self.last)
        self.vel = step if len(self.frames) == 1 else weight * step + (1 - weight) * self.vel
        self.frames.append(k), self.blobs.append(blob), self.points.append(p)

    def speed(self) -> float:
        """Median pixels per frame between detections."""
        if len(self.frames) < 2:
            return 0.0
        d = np.linalg.norm(np.diff(np.array(self.points), axis=0), axis=1) / np.diff(self.frames)
        return float(np.median(d))

    def mass(self) -> float:
        return float(np.median([b.mass for b in self.blobs]))


class Follower:
    """Feeds on blobs frame by frame (`update`), returns whole-video tracks at the end (`finish`)."""

    def __init__(self, width: int, height: int, fps: float, config: FollowConfig | None = None) -> None:
        self.w, self.h, self.fps = width, height, fps
        self.cfg = config or FollowConfig()
        self.gate = self.cfg.gate_frac * width
        self.max_missed = max(1, int(round(self.cfg.max_missed_s * fps)))
        self.live: list[_Tracklet] = []
        self.done: list[_Tracklet] = []

    def _pixels(self, b: Blob) -> np.ndarray:
        """(2,) position of a blob in working-frame pixels, where distances are isotropic."""
        return np.array([(b.x + 1) * self.w / 2, (b.y + 1) * self.h / 2])

    def update(self, k: int, blobs: list[Blob]) -> None:
        """Associate frame k's blobs: believed tracklets first, then the tentative ones."""
        pts = [self._pixels(b) for b in blobs]
        free = list(range(len(blobs)))
        believed = [t for t in self.live if len(t.frames) >= self.cfg.min_hits]
        tentative = [t for t in self.live if len(t.frames) < self.cfg.min_hits]
        for group in (believed, tentative):
            for t, j in self._assign(group, pts, free, k):
                t.add(k, blobs[j], pts[j], self.cfg.velocity_weight)
                free.remove(j)
        keep = []
        for t in self.live:
            if t.last == k or (len(t.frames) >= self.cfg.min_hits and k - t.last <= self.max_missed):
                keep.append(t)
            elif len(t.frames) >= self.cfg.min_hits:
                self.done.append(t)
        self.live = keep + [_Tracklet([k], [blobs[j]], [pts[j]]) for j in free]

    def _assign(self, group: list[_Tracklet], pts: list[np.ndarray], free: list[int],
                k: int) -> list[tuple[_Tracklet, int]]:
        """Hungarian assignment on predicted-position distance, within each tracklet's gate."""
        if not group or not free:
            return []
        pred = np.array([t.predict(k) for t in group])  # (T, 2)
        cand = np.array([pts[j] for j in free])  # (B, 2)
        cost = np.linalg.norm(pred[:, None] - cand[None], axis=-1)  # (T, B)
        gate = np.array([self.gate + 1.5 * np.linalg.norm(t.vel) * (k - t.last) for t in group])  # (T,)
        cost = np.where(cost <= gate[:, None], cost, 1e9)
        rows, cols = linear_sum_assignment(cost)
        return [(group[r], free[c]) for r, c in zip(rows, cols) if cost[r, c] < 1e9]

    def finish(self, n: int, max_objects: int) -> list[Track]:
        """Join fragments, drop short tracks, keep the `max_objects` most-detected, as Tracks of n frames."""
        done = self.done + [t for t in self.live if len(t.frames) >= self.cfg.min_hits]
        chains = self._join(sorted(done, key=lambda t: t.first))
        min_frames = max(self.cfg.min_hits, int(round(self.cfg.min_track_s * self.fps)))
        chains = [c for c in chains if sum(len(t.frames) for t in c) >= min_frames]
        chains.sort(key=lambda c: sum(len(t.frames) for t in c), reverse=True)
        return [self._to_track(c, n, f"object{i}") for i, c in enumerate(chains[:max_objects])]

    def _join(self, pieces: list[_Tracklet]) -> list[list[_Tracklet]]:
        """Chains of time-ordered fragments, linked greedily, most plausible link first."""
        nxt: dict[int, int] = {}
        prv: dict[int, int] = {}
        for _, i, j in sorted(self._links(pieces)):
            if i not in nxt and j not in prv:
                nxt[i], prv[j] = j, i
        chains = []
        for i in range(len(pieces)):
            if i in prv:
                continue
            chain = [i]
            while chain[-1] in nxt:
                chain.append(nxt[chain[-1]])
            chains.append([pieces[c] for c in chain])
        return chains

    def _links(self, pieces: list[_Tracklet]) -> list[tuple[float, int, int]]:
        """(cost, i, j): piece j may continue piece i (same size, gap bridgeable at their speed)."""
        max_gap = self.cfg.max_gap_s * self.fps
        mass = [p.mass() for p in pieces]
        speed = [p.speed() for p in pieces]
        links = []
        for i, a in enumerate(pieces):
            for j, b in enumerate(pieces):
                gap = b.first - a.last
                if gap <= 0 or gap > max_gap or (a.blobs[-1].edge and not self._near_edge(b.points[0])):
                    continue  # what left the frame can only come back through its edge
                ratio = max(mass[i], mass[j]) / max(min(mass[i], mass[j]), 1e-9)
                reach = self.gate + max(speed[i], speed[j]) * gap
                dist = float(np.linalg.norm(b.points[0] - a.points[-1]))
                if ratio <= self.cfg.max_mass_ratio and dist <= reach:
                    links.append((dist / reach, i, j))
        return links

    def _near_edge(self, p: np.ndarray) -> bool:
        """Whether a point (pixels) is within the association radius of the frame's border."""
        return min(p[0], p[1], self.w - p[0], self.h - p[1]) <= self.gate

    def _to_track(self, chain: list[_Tracklet], n: int, label: str) -> Track:
        """A whole-video Track from a chain of fragments: NaN and unreliable between them."""
        x, y = np.full(n, math.nan), np.full(n, math.nan)  # (K,)
        mass, reliable = np.zeros(n), np.zeros(n, bool)
        for t in chain:
            for k, b in zip(t.frames, t.blobs):
                x[k], y[k], mass[k], reliable[k] = b.x, b.y, b.mass, True
        return Track(fps=self.fps, x=x, y=y, mass=mass, reliable=reliable, label=label)
