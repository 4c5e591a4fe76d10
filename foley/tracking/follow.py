"""Multi-object following of per-frame blobs: constant-velocity prediction + appearance, Hungarian
assignment (Kuhn 1955, as in SORT, Bewley et al. 2016; colour as in DeepSORT's appearance term),
continuation by appearance where motion sees nothing (an object that stops or slows), then joining of
fragments split by exits, occlusions and pauses (never across a shot cut), and merging of tracks that
move rigidly together (one object seen as two blobs)."""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from foley.errors import TrackError
from foley.tracking.appearance import Look, hist_distance
from foley.tracks import Track


@dataclass(frozen=True)
class Blob:
    """One detection: normalised centroid and mass (eq. 2), whether it reaches the frame border, whether
    motion saw it (False: only the background model, or appearance), and its look."""

    x: float
    y: float
    mass: float
    edge: bool = False
    moving: bool = True
    look: Look | None = None
    box: tuple[int, int, int, int] | None = None  # (x, y, w, h), working-frame pixels


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
    appearance_weight: float = 0.5  # cost of wholly different colours, in association radii
    max_colour_distance: float = 0.6  # fragments whose colours differ more are never joined
    max_dart_frac: float = 0.08  # a track's first steps faster than this (frame widths per frame) and 4x its
    # median speed are not its object (rain streaks darting about before the ball): `_steady_head` drops them
    continue_by_look: bool = True  # follow a found object by appearance where motion loses it
    backfill_s: float = 4.0  # ... and back in time, over the frames before motion found it
    min_travel_frac: float = 0.08  # a track motion never saw must travel this far (frame widths)
    rigid_offset_frac: float = 0.03  # tracks whose offset varies less than this move as one object

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
    look: Look | None = None  # from the newest moving detection with a look
    hist: np.ndarray | None = None  # (48,) running colour histogram of its moving detections
    moving_hits: int = 0
    backfilled: bool = False

    def __post_init__(self) -> None:
        self._learn(self.blobs[-1])
        self.blobs[-1] = replace(self.blobs[-1], look=None)  # learnt: kept, its patch would grow with the video

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
        self._learn(blob)
        self.frames.append(k), self.blobs.append(replace(blob, look=None)), self.points.append(p)

    def _learn(self, blob: Blob) -> None:
        if not blob.moving:
            return
        self.moving_hits += 1
        if blob.look is not None:
            self.hist = blob.look.hist if self.hist is None else 0.8 * self.hist + 0.2 * blob.look.hist
            if not blob.edge:  # a look of the whole object, not of the part inside the frame
                self.look = blob.look

    def colour_cost(self, blob: Blob) -> float:
        """Bhattacharyya distance of the blob's colours from the tracklet's (0 where either is unknown)."""
        if self.hist is None or blob.look is None:
            return 0.0
        return hist_distance(self.hist, blob.look.hist)

    def speed(self) -> float:
        """Median pixels per frame between detections."""
        if len(self.frames) < 2:
            return 0.0
        d = np.linalg.norm(np.diff(np.array(self.points), axis=0), axis=1) / np.diff(self.frames)
        return float(np.median(d))

    def mass(self) -> float:
        """Median size over the moving detections (the size seen by appearance is only assumed)."""
        moving = [b.mass for b in self.blobs if b.moving] or [b.mass for b in self.blobs]
        return float(np.median(moving))


class Follower:
    """Feeds on blobs frame by frame (`update`), returns whole-video tracks at the end (`finish`)."""

    def __init__(self, width: int, height: int, fps: float, config: FollowConfig | None = None) -> None:
        self.w, self.h, self.fps = width, height, fps
        self.cfg = config or FollowConfig()
        self.gate = self.cfg.gate_frac * width
        self.max_missed = max(1, int(round(self.cfg.max_missed_s * fps)))
        self.live: list[_Tracklet] = []
        self.done: list[_Tracklet] = []
        self.cuts: list[int] = []  # first frames of new shots
        self.recent: deque[tuple[int, np.ndarray, np.ndarray]] = deque(maxlen=max(1, int(self.cfg.backfill_s * fps)))

    def _pixels(self, b: Blob) -> np.ndarray:
        """(2,) position of a blob in working-frame pixels, where distances are isotropic."""
        return np.array([(b.x + 1) * self.w / 2, (b.y + 1) * self.h / 2])

    def cut(self, k: int) -> None:
        """Frame k starts a new shot: every tracklet ends before it."""
        self.done += [t for t in self.live if len(t.frames) >= self.cfg.min_hits]
        self.live = []
        self.cuts.append(k)
        self.recent.clear()

    def update(self, k: int, blobs: list[Blob], image: np.ndarray | None = None, grey: np.ndarray | None = None) -> None:
        """Associate frame k's blobs: believed tracklets first, then the tentative ones; then follow the
        believed ones motion missed by their look in `image` (RGB) / `grey`, the working frame k."""
        pts = [self._pixels(b) for b in blobs]
        free = list(range(len(blobs)))
        believed = [t for t in self.live if len(t.frames) >= self.cfg.min_hits]
        tentative = [t for t in self.live if len(t.frames) < self.cfg.min_hits]
        for group in (believed, tentative):
            for t, j in self._assign(group, blobs, pts, free, k):
                t.add(k, blobs[j], pts[j], self.cfg.velocity_weight)
                free.remove(j)
        if self.cfg.continue_by_look and image is not None and grey is not None:
            # motion's finds and the assigned blobs are taken; continuations claim theirs, seniors first
            taken = [b.box for b in blobs if b.moving and b.box is not None]
            taken += [t.blobs[-1].box for t in self.live if t.last == k and t.blobs[-1].box is not None]
            for t in sorted(believed, key=lambda t: -t.moving_hits):
                if t.last != k and t.moving_hits >= self.cfg.min_hits:
                    box = self._continue(t, k, image, grey, taken)
                    if box is not None:
                        taken.append(box)
                        free = [j for j in free if blobs[j].moving or not _inside(pts[j], box)]  # its own parts
        keep = []
        for t in self.live:
            if t.last == k or (len(t.frames) >= self.cfg.min_hits and k - t.last <= self.max_missed):
                keep.append(t)
            elif len(t.frames) >= self.cfg.min_hits:
                self.done.append(t)
        self.live = keep + [_Tracklet([k], [blobs[j]], [pts[j]]) for j in free]
        if self.cfg.continue_by_look and image is not None and grey is not None:
            for t in self.live:
                if not t.backfilled and t.look is not None and t.moving_hits >= self.cfg.min_hits:
                    self._backfill(t)
            self.recent.append((k, image, grey))

    def _backfill(self, t: _Tracklet) -> None:
        """Follow a newly believed tracklet back by its look over the recent frames before it was found
        (an object that stood still until it moved), as far as it matches and no other track is there."""
        t.backfilled = True
        claimed = {k: [u.points[u.frames.index(k)] for u in self.live if u is not t and k in u.frames]
                   for k, _, _ in self.recent}
        reach = max(4.0, 0.25 * max(t.look.patch.shape))
        for k, image, grey in reversed(self.recent):
            if k >= t.first:
                continue
            found = t.look.find(image, grey, t.points[0], reach)
            if found is None or any(np.linalg.norm(found[0] - q) < reach for q in claimed.get(k, [])):
                break
            p = found[0]
            blob = Blob(x=float(2 * p[0] / self.w - 1), y=float(2 * p[1] / self.h - 1), mass=t.mass(), moving=False)
            t.frames.insert(0, k), t.blobs.insert(0, blob), t.points.insert(0, p)

    def _continue(self, t: _Tracklet, k: int, image: np.ndarray, grey: np.ndarray,
                  taken: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int] | None:
        """Find a tracklet motion missed at frame k by its look, near where it should be, and not inside
        a box already `taken` this frame (never two tracks on one object). Returns the box it claims."""
        if t.look is None:
            return None
        gap = k - t.last
        reach = max(4.0, 0.25 * max(t.look.patch.shape)) + 1.5 * float(np.linalg.norm(t.vel)) * gap
        found = t.look.find(image, grey, t.predict(k), reach)
        if found is None or any(_inside(found[0], box) for box in taken):
            return None
        p = found[0]
        ph, pw = t.look.patch.shape
        box = (int(round(p[0] - t.look.offset[0])), int(round(p[1] - t.look.offset[1])), pw, ph)
        x, y = 2 * p[0] / self.w - 1, 2 * p[1] / self.h - 1
        t.add(k, Blob(x=float(x), y=float(y), mass=t.mass(), moving=False, box=box), p, self.cfg.velocity_weight)
        return box

    def _assign(self, group: list[_Tracklet], blobs: list[Blob], pts: list[np.ndarray], free: list[int],
                k: int) -> list[tuple[_Tracklet, int]]:
        """Hungarian assignment on predicted-position distance plus colour, within each tracklet's gate;
        blobs motion did not see cost a little more (a ghost beside an object that starts to move)."""
        if not group or not free:
            return []
        pred = np.array([t.predict(k) for t in group])  # (T, 2)
        cand = np.array([pts[j] for j in free])  # (B, 2)
        dist = np.linalg.norm(pred[:, None] - cand[None], axis=-1)  # (T, B)
        gate = np.array([self.gate + 1.5 * np.linalg.norm(t.vel) * (k - t.last) for t in group])  # (T,)
        colour = np.array([[t.colour_cost(blobs[j]) for j in free] for t in group])  # (T, B)
        still = np.array([0.0 if blobs[j].moving else 0.25 * self.gate for j in free])  # (B,)
        cost = dist + self.cfg.appearance_weight * self.gate * colour + still[None]
        ok = dist <= gate[:, None]
        for r, t in enumerate(group):  # what motion did not see must at least be the tracklet's size
            size = t.mass()
            for c, j in enumerate(free):
                if not blobs[j].moving and max(size, blobs[j].mass) > self.cfg.max_mass_ratio * min(size, blobs[j].mass):
                    ok[r, c] = False
        cost = np.where(ok, cost, 1e9)
        rows, cols = linear_sum_assignment(cost)
        return [(group[r], free[c]) for r, c in zip(rows, cols) if cost[r, c] < 1e9]

    def finish(self, n: int, max_objects: int) -> list[Track]:
        """Join fragments, drop short and never-moving tracks, merge rigid pairs, keep the `max_objects`
        most-detected, as Tracks of n frames."""
        done = [self._steady_head(t) for t in self.done + [t for t in self.live if len(t.frames) >= self.cfg.min_hits]]
        chains = self._join(sorted(done, key=lambda t: t.first))
        min_frames = max(self.cfg.min_hits, int(round(self.cfg.min_track_s * self.fps)))
        chains = [c for c in chains if sum(len(t.frames) for t in c) >= min_frames]
        seen = [self._chain_mass(c) for c in chains if sum(t.moving_hits for t in c) >= 2 * self.cfg.min_hits]
        chains = [c for c in chains if self._moved(c, max(seen, default=0.0))]
        chains.sort(key=lambda c: sum(len(t.frames) for t in c), reverse=True)
        tracks = merge_rigid([self._to_track(c, n, "") for c in chains], self.cfg.rigid_offset_frac)
        return [t.with_(label=f"object{i}") for i, t in enumerate(tracks[:max_objects])]

    def _steady_head(self, t: _Tracklet) -> _Tracklet:
        """The tracklet without a darting start: before an object comes into view a tracklet can latch onto
        noise (rain streaks, flicker) that jumps about, then onto the object as it appears, its wide gate
        set by those jumps. Within its first second (at most a quarter of it), everything up to the last
        step faster than `max_dart_frac` frame widths a frame and 4x its median speed is dropped."""
        if len(t.frames) < 8:
            return t
        pts, frames = np.array(t.points), np.array(t.frames)
        steps = np.linalg.norm(np.diff(pts, axis=0), axis=1) / np.diff(frames)  # (P - 1,) pixels per frame
        limit = max(self.cfg.max_dart_frac * self.w, 4 * float(np.median(steps)))
        head = min(len(steps) // 4, int(round(self.fps)))
        fast = np.nonzero(steps[:head] > limit)[0]
        if len(fast) == 0:
            return t
        cut = int(fast[-1]) + 1  # the first point after the last darting step
        t.frames, t.blobs, t.points = t.frames[cut:], t.blobs[cut:], t.points[cut:]
        return t

    def _moved(self, chain: list[_Tracklet], largest_seen: float) -> bool:
        """Motion saw it (a ghost or a patch of background is never seen by motion); or it travelled and is
        not a small remnant beside an object motion saw (the background model's trail of that object)."""
        if sum(t.moving_hits for t in chain) >= self.cfg.min_hits * 2:
            return True
        pts = np.concatenate([np.array(t.points) for t in chain])  # (P, 2)
        travelled = float(np.ptp(pts, axis=0).max()) >= self.cfg.min_travel_frac * self.w
        return travelled and self._chain_mass(chain) >= 0.25 * largest_seen

    @staticmethod
    def _chain_mass(chain: list[_Tracklet]) -> float:
        return float(np.median([t.mass() for t in chain]))

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
        """(cost, i, j): piece j may continue piece i (same size and colours, gap bridgeable at their
        speed, no shot cut between)."""
        max_gap = self.cfg.max_gap_s * self.fps
        mass = [p.mass() for p in pieces]
        speed = [p.speed() for p in pieces]
        links = []
        for i, a in enumerate(pieces):
            for j, b in enumerate(pieces):
                gap = b.first - a.last
                left = a.blobs[-1].edge and self._near_edge(a.points[-1])  # not just an arm reaching in
                if gap > max_gap or b.first <= a.first or b.last <= a.last or (left and not self._near_edge(b.points[0])):
                    continue  # what left the frame can only come back through its edge
                end = a.points[-1]
                if gap <= 0:  # b began while a still ran (a second tracklet took over): compare them then
                    if -gap > self.max_missed:
                        continue
                    end = a.points[next(i for i, f in enumerate(a.frames) if f >= b.first)]
                    gap = 1
                if any(a.last < c <= b.first for c in self.cuts):
                    continue
                colour = hist_distance(a.hist, b.hist) if a.hist is not None and b.hist is not None else 0.0
                ratio = max(mass[i], mass[j]) / max(min(mass[i], mass[j]), 1e-9)
                size = math.sqrt(min(mass[i], mass[j]) * self.w * self.h)  # pixels: a big object's centroid
                reach = self.gate + max(speed[i], speed[j]) * gap + 0.5 * size  # shifts with what is seen of it
                dist = float(np.linalg.norm(b.points[0] - end))
                if ratio <= self.cfg.max_mass_ratio and dist <= reach and colour <= self.cfg.max_colour_distance:
                    links.append((dist / reach + colour + 0.5 * gap / self.fps, i, j))  # sooner is likelier
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


def _inside(p: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    x, y, w, h = box
    return x <= p[0] <= x + w and y <= p[1] <= y + h


def merge_rigid(tracks: list[Track], max_offset_std: float) -> list[Track]:
    """Tracks that move as one (seen together in most frames, their offset steady) merged into one:
    mass-weighted centroid, summed mass. Order kept (a merged track takes the earlier place)."""
    out = list(tracks)
    i = 0
    while i < len(out):
        j = i + 1
        while j < len(out):
            if _rigid(out[i], out[j], max_offset_std):
                out[i] = _merge(out[i], out.pop(j))
            else:
                j += 1
        i += 1
    return out


def _rigid(a: Track, b: Track, max_offset_std: float) -> bool:
    both = a.reliable & b.reliable
    if both.sum() < 10 or both.sum() < 0.8 * min(a.reliable.sum(), b.reliable.sum()):
        return False
    off = np.stack([a.x - b.x, a.y - b.y], axis=1)[both]  # (F, 2)
    size = math.sqrt(float(np.median(a.mass[both]))) + math.sqrt(float(np.median(b.mass[both])))  # ~frame sides
    travel = float(np.ptp(np.stack([a.x, a.y], axis=1)[both], axis=0).max())
    wobble = max(max_offset_std, 0.25 * size)  # parts of a big object, seen as motion finds them, wobble more
    return (float(off.std(axis=0).max()) <= wobble and float(np.linalg.norm(off.mean(axis=0))) <= 1.5 * size
            and travel > 4 * wobble)


def _merge(a: Track, b: Track) -> Track:
    wa, wb = np.where(a.reliable, a.mass, 0.0), np.where(b.reliable, b.mass, 0.0)
    w = np.maximum(wa + wb, 1e-12)
    x = np.where(a.reliable & b.reliable, (np.nan_to_num(a.x) * wa + np.nan_to_num(b.x) * wb) / w,
                 np.where(a.reliable, a.x, b.x))
    y = np.where(a.reliable & b.reliable, (np.nan_to_num(a.y) * wa + np.nan_to_num(b.y) * wb) / w,
                 np.where(a.reliable, a.y, b.y))
    return a.with_(x=x, y=y, mass=wa + wb, reliable=a.reliable | b.reliable)
