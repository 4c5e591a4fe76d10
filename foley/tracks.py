"""Object tracks: the `Track` dataclass, its JSON/CSV files, and tracks from masks (StereoFoley eq. 2).

JSON schema (``foley.tracks/1``)::

    {
      "schema": "foley.tracks/1",
      "fps": 25.0,                      # frame rate of the per-frame arrays
      "frame_size": [1280, 720],        # optional, (width, height) of the video in pixels
      "tracks": [
        {
          "label": "ball",              # free text, optional
          "score": 0.71,                # optional: audio-guided selection score
          "x": [-0.5, -0.48, null, ...],   # horizontal centroid, -1 = left edge, +1 = right edge;
                                           # beyond +-1 when off-frame; null = unknown
          "y": [0.1, 0.1, null, ...],      # vertical centroid, -1 = top, +1 = bottom; null = unknown
          "mass": [0.02, 0.021, 0, ...],   # object pixels / frame pixels, in [0, 1]
          "reliable": [true, true, false, ...]  # frame is a trustworthy detection (or ground truth)
        }
      ]
    }

All per-frame arrays of one track have the same length (the number of video frames).
"""
from __future__ import annotations

import csv
import json
import math
import numbers
import os
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from foley.errors import TrackError
from foley.files import atomic_output

SCHEMA = "foley.tracks/1"


@dataclass(frozen=True)
class Track:
    """One object's per-frame centroid, pixel mass and reliability, at `fps` frames per second."""

    fps: float
    x: np.ndarray  # (K,) float, horizontal centroid in [-1, 1] (beyond when off-frame), NaN = unknown
    y: np.ndarray  # (K,) float, vertical centroid, NaN = unknown
    mass: np.ndarray  # (K,) float, fraction of the frame covered by the object
    reliable: np.ndarray  # (K,) bool
    label: str = ""
    score: float | None = None
    frame_size: tuple[int, int] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        arrays = {n: np.asarray(getattr(self, n)) for n in ("x", "y", "mass", "reliable")}
        lengths = {a.shape for a in arrays.values()}
        if len(lengths) != 1 or len(next(iter(lengths))) != 1:
            raise TrackError(f"track arrays must be 1-D and of equal length, got shapes {sorted(lengths)}")
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise TrackError(f"track fps must be a positive number, got {self.fps}")
        try:
            values = {n: arrays[n].astype(np.float64) for n in ("x", "y", "mass")}
            reliable = arrays["reliable"].astype(bool)
        except (TypeError, ValueError) as e:
            raise TrackError(f"track values must be numbers ({e})")
        for n, v in values.items():  # NaN means unknown; an infinite value is a damaged file
            if np.isinf(v).any():
                k = int(np.flatnonzero(np.isinf(v))[0])
                raise TrackError(f"{n} at frame {k} is {v[k]}: give a finite number (null = unknown)")
        mass = np.where(np.isnan(values["mass"]), 0.0, values["mass"])
        if np.any(mass < 0):
            k = int(np.flatnonzero(mass < 0)[0])
            raise TrackError(f"mass at frame {k} is {mass[k]}: it must be >= 0 (a fraction of the frame)")
        object.__setattr__(self, "x", values["x"])
        object.__setattr__(self, "y", values["y"])
        object.__setattr__(self, "mass", mass)
        object.__setattr__(self, "reliable", reliable & np.isfinite(self.x))
        if self.score is not None:
            if isinstance(self.score, bool) or not isinstance(self.score, numbers.Real) or not math.isfinite(self.score):
                raise TrackError(f"score must be a finite number or absent, got {self.score!r}")
            object.__setattr__(self, "score", float(self.score))
        if self.frame_size is not None:
            size = tuple(self.frame_size)
            if len(size) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0
                                         for v in size):
                raise TrackError(f"frame_size must be [width, height] in pixels, got {list(size)}")
            object.__setattr__(self, "frame_size", (int(size[0]), int(size[1])))

    def __len__(self) -> int:
        return len(self.x)

    @property
    def duration(self) -> float:
        return len(self) / self.fps

    @property
    def in_frame(self) -> np.ndarray:
        """(K,) bool: the centroid is known and on screen."""
        return np.isfinite(self.x) & (np.abs(self.x) <= 1.0)

    def with_(self, **changes) -> "Track":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        def col(a: np.ndarray) -> list:
            return [None if not math.isfinite(v) else round(float(v), 6) for v in a]

        d = {"label": self.label, "x": col(self.x), "y": col(self.y), "mass": col(self.mass),
             "reliable": [bool(r) for r in self.reliable]}
        if self.score is not None:
            d["score"] = round(float(self.score), 6)
        return d

    @classmethod
    def from_dict(cls, d: dict, fps: float, frame_size: tuple[int, int] | None = None) -> "Track":
        if not isinstance(d, dict):
            raise TrackError(f"a track must be an object with at least 'x', got {type(d).__name__}; "
                             "see the schema in foley/tracks.py")
        try:
            x = _floats(d["x"])
            n = len(x)
            y = _floats(d.get("y", [0.0] * n))
            mass = _floats(d.get("mass", [0.0] * n))
            reliable = d.get("reliable", [v is not None for v in d["x"]])
            return cls(fps=float(fps), x=x, y=y, mass=mass, reliable=np.asarray(reliable, bool),
                       label=str(d.get("label", "")), score=d.get("score"), frame_size=frame_size)
        except (KeyError, TypeError, ValueError) as e:
            raise TrackError(f"invalid track entry ({e.__class__.__name__}: {e}); see the schema in foley/tracks.py")


def _floats(values: Sequence) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def save_tracks(path: str | os.PathLike, tracks: Sequence[Track]) -> None:
    """Write tracks to JSON (schema above), atomically."""
    if not tracks:
        raise TrackError("no tracks to save")
    doc = {"schema": SCHEMA, "fps": tracks[0].fps, "tracks": [t.to_dict() for t in tracks]}
    if tracks[0].frame_size:
        doc["frame_size"] = list(tracks[0].frame_size)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(doc))


def load_tracks(path: str | os.PathLike) -> list[Track]:
    """Read tracks from our JSON schema or from CSV (columns: frame, x, [y], [mass], [reliable], [object])."""
    path = Path(path)
    if not path.is_file():
        raise TrackError(f"track file {str(path)!r} not found")
    if path.suffix.lower() == ".csv":
        return _load_csv(path)
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TrackError(f"{path} is not valid JSON ({e}); see the schema in foley/tracks.py")
    if not isinstance(doc, dict) or "tracks" not in doc or "fps" not in doc:
        raise TrackError(f"{path} is not a foley track file: it needs 'fps' and 'tracks' (schema in foley/tracks.py)")
    if not isinstance(doc["tracks"], list):
        raise TrackError(f"{path}: 'tracks' must be a list of tracks, got {type(doc['tracks']).__name__}; "
                         "see the schema in foley/tracks.py")
    size = doc.get("frame_size")
    if size is not None and not (isinstance(size, list) and len(size) == 2):
        raise TrackError(f"{path}: 'frame_size' must be [width, height] in pixels, got {size!r}")
    if not doc["tracks"]:
        raise TrackError(f"{path} holds no tracks")
    tracks = []
    for i, t in enumerate(doc["tracks"]):
        try:
            tracks.append(Track.from_dict(t, doc["fps"], tuple(size) if size else None))
        except TrackError as e:
            raise TrackError(f"{path}: track {i}: {e}") from None
    return tracks


def _load_csv(path: Path, fps: float | None = None) -> list[Track]:
    """CSV with a header; one row per (object, frame). Needs column `fps` or a `# fps=25` first line."""
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise TrackError(f"{path} is not a text CSV file (it holds binary bytes)")
    first = 1
    if lines and lines[0].startswith("#"):
        fps = _fps(lines[0].split("fps=", 1)[1], path) if "fps=" in lines[0] else fps
        lines, first = lines[1:], 2
    try:
        reader = csv.DictReader(lines)
        rows = list(reader)
    except csv.Error as e:
        raise TrackError(f"{path} is not a readable CSV file ({e})")
    if not rows or "frame" not in rows[0] or "x" not in rows[0]:
        raise TrackError(f"{path}: CSV needs a header with at least 'frame' and 'x' columns")
    for i, r in enumerate(rows):
        if None in r or None in r.values():  # more or fewer values than header columns
            raise TrackError(f"{path}: row {i + 1} (line {first + i + 1}) has {len([v for v in r.values() if v is not None])} "
                             f"value(s) but the header has {len(reader.fieldnames)} columns")
    fps = _fps(rows[0]["fps"], path) if rows[0].get("fps") else fps
    if fps is None:
        raise TrackError(f"{path}: say the frame rate with a first line '# fps=25' or an 'fps' column")
    by_object: dict[str, list[dict]] = {}
    for r in rows:
        by_object.setdefault(r.get("object", "") or "", []).append(r)
    return [_track_from_rows(label, rs, fps, path) for label, rs in by_object.items()]


def _fps(text: str, path: Path) -> float:
    try:
        fps = float(text)
    except ValueError:
        fps = math.nan
    if not (math.isfinite(fps) and fps > 0):
        raise TrackError(f"{path}: the frame rate must be a positive number, got {text.strip()!r} (write '# fps=25')")
    return fps


MAX_FRAMES = 10_000_000  # 4.6 days at 25 fps: a larger index is a damaged file, not a video


def _track_from_rows(label: str, rows: list[dict], fps: float, path: Path) -> Track:
    def num(v: str | None, default: float) -> float:
        return default if v in (None, "", "nan", "null") else float(v)

    try:
        frames = [int(r["frame"]) for r in rows]
        if min(frames) < 0 or max(frames) > MAX_FRAMES:
            bad = min(frames) if min(frames) < 0 else max(frames)
            raise TrackError(f"{path}: frame index {bad} out of range (0..{MAX_FRAMES}): frames count from 0")
        n = max(frames) + 1
        cols = {k: np.full(n, np.nan) for k in ("x", "y", "mass")}
        reliable = np.zeros(n, bool)
        for f, r in zip(frames, rows):
            cols["x"][f], cols["y"][f] = num(r["x"], np.nan), num(r.get("y"), 0.0)
            cols["mass"][f] = num(r.get("mass"), 0.0)
            reliable[f] = r.get("reliable", "1").strip().lower() not in ("0", "false", "no")
    except (ValueError, KeyError) as e:
        raise TrackError(f"{path}: bad CSV value ({e})")
    try:
        return Track(fps=fps, x=cols["x"], y=cols["y"], mass=cols["mass"], reliable=reliable, label=label)
    except TrackError as e:
        raise TrackError(f"{path}: {e}") from None


def centroid_and_mass(mask: np.ndarray) -> tuple[float, float, float]:
    """Normalised centroid (w̄, h̄) in [-1, 1] and pixel mass (fraction of frame) of a mask, StereoFoley eq. (2)."""
    mask = np.asarray(mask, bool)  # (H, W)
    h, w = mask.shape
    n = int(mask.sum())
    if n == 0:
        return math.nan, math.nan, 0.0
    rows, cols = np.nonzero(mask)
    # pixel centres (c + 0.5) so that a full-frame mask has centroid exactly 0
    wbar = float(np.mean(2.0 * (cols + 0.5) / w - 1.0))
    hbar = float(np.mean(2.0 * (rows + 0.5) / h - 1.0))
    return wbar, hbar, n / (h * w)


def track_from_masks(masks: Iterable[np.ndarray], fps: float, label: str = "",
                     frame_size: tuple[int, int] | None = None) -> Track:
    """A track from per-frame binary masks (e.g. SAM2 output): centroid and mass by eq. (2); empty = unreliable."""
    xs, ys, ms, shape = [], [], [], None
    for k, m in enumerate(masks):
        m = np.asarray(m)
        if m.ndim == 3:  # (H, W, C) image: any non-zero channel counts
            m = m.any(axis=-1)
        if shape is None:
            shape = m.shape
        elif m.shape != shape:
            raise TrackError(f"mask {k} has size {m.shape[::-1]} but mask 0 has {shape[::-1]}: all masks must match")
        if frame_size is not None and m.shape != (frame_size[1], frame_size[0]):
            raise TrackError(f"mask {k} is {m.shape[1]}x{m.shape[0]} but the video is {frame_size[0]}x{frame_size[1]}")
        x, y, mass = centroid_and_mass(m)
        xs.append(x), ys.append(y), ms.append(mass)
    if not xs:
        raise TrackError("no masks given")
    x = np.array(xs)
    return Track(fps=fps, x=x, y=np.array(ys), mass=np.array(ms), reliable=np.isfinite(x), label=label,
                 frame_size=frame_size or (shape[1], shape[0]))


def load_masks(path: str | os.PathLike, fps: float, frame_size: tuple[int, int] | None = None) -> list[Track]:
    """Tracks from a folder of PNG masks (one per frame, sorted by name) or an .npz holding `masks`.

    The .npz array is (K, H, W) for one object or (N, K, H, W) for N objects; PNGs are one object, any
    non-zero pixel belongs to it.
    """
    path = Path(path)
    if path.is_dir():
        import cv2

        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png")
        if not files:
            raise TrackError(f"mask folder {path} has no .png files")

        def read(p: Path) -> np.ndarray:
            img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise TrackError(f"cannot read mask image {p}")
            return img

        return [track_from_masks((read(p) for p in files), fps, path.name, frame_size)]
    if path.suffix.lower() == ".npz" and path.is_file():
        try:
            with np.load(path) as npz:
                arr = npz["masks"]
        except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, AttributeError) as e:
            raise TrackError(f"{path}: expected an .npz with an array named 'masks' ({e.__class__.__name__}: {str(e).split('. ')[0]})")
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or 0 in arr.shape[2:]:
            raise TrackError(f"{path}: 'masks' must be (K, H, W) or (N, K, H, W), got shape {arr.shape}")
        if arr.dtype.kind not in "biuf":
            raise TrackError(f"{path}: 'masks' must hold numbers or booleans, got {arr.dtype}")
        return [track_from_masks(a, fps, f"object{i}", frame_size) for i, a in enumerate(arr)]
    raise TrackError(f"{path}: masks must be a folder of PNGs or an .npz file")
