"""Talking faces as sound-source candidates: find and track faces, measure mouth motion, score it against speech.

Detector: OpenCV's Viola-Jones cascade (Viola & Jones, CVPR 2001) with Lienhart's frontal-face model
(Lienhart & Maydt, ICIP 2002), `haarcascade_frontalface_default.xml.gz` beside this module (OpenCV's
file gzipped to 133 KB, which OpenCV reads as is; Intel's BSD-style open-source licence is in its
header). It runs in the OpenCV we already depend on, needs no download and no other runtime, and is
deterministic; 40-70 ms per 320-pixel-wide frame on two busy cores (`detect_every=2` halves that).
Its limits: frontal faces only (past ~30 degrees of turn it misses; short misses are bridged) and no
landmarks, so the mouth is measured as image motion in the lower face box, not as lip opening.
Rejected: MediaPipe (wheel 1.2.3) bundles no face model (its Tasks API takes a .tflite path users
would have to download) and requires opencv-contrib-python, which would replace our headless
OpenCV; YuNet (cv2.FaceDetectorYN) also needs a downloaded ONNX file.

Mouth motion at frame k: the mean absolute difference between the mouth region of frames k-1 and k,
both cut with the face's latest detected box (so detector jitter cancels), frame k-1's cut shifted
by the head's own motion (normalised cross-correlation of the upper face: eyes and nose), resampled
to a fixed size (so face size cancels) and divided by the face's grey-level contrast (so lighting
cancels). It rises while someone talks; it is NaN where the upper face does not match from frame to
frame (a cut). `speaking_score` is its Pearson correlation with a speech envelope (`speech_envelope`:
RMS of the 300-3400 Hz telephone band per video frame), both smoothed over about +-2 frames: near 0
the mouth says nothing about the speech, near 1 it moves when there is speech and rests otherwise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np

from foley.errors import TrackError
from foley.tracking.onsets import _mono
from foley.tracking.speech import SpeechMeter
from foley.tracks import Track

CASCADE = Path(__file__).with_name("haarcascade_frontalface_default.xml.gz")
MIN_FACE = 0.06  # smallest face side searched, as a fraction of the work frame's width
MAX_GAP_S = 0.3  # detector misses up to this long are bridged (blinks, turns, motion blur)
MIN_TRACK_S = 0.25  # faces present on fewer frames than this are flickers, dropped
MATCH_DIST = 0.6  # a detection continues a face if its centre is within this many face sides
MIN_MATCH = 0.6  # upper-face correlation from frame to frame below this: not the same face (a cut)
MOUTH = (0.2, 0.65, 0.8, 1.05)  # mouth region (left, top, right, bottom) as fractions of the face box
UPPER = (0.1, 0.1, 0.9, 0.6)  # eyes and nose: the region that registers head motion
MOUTH_PX = (32, 16)  # (width, height) the mouth region is resampled to
_SMOOTH = np.array([1.0, 2.0, 3.0, 2.0, 1.0]) / 9.0  # tolerance of a frame or two
MIN_FRAMES = 8  # fewer valid frames than this: score 0

Box = np.ndarray  # (4,) float x, y, w, h in pixels


@dataclass(frozen=True, eq=False)
class FaceTrack:
    """One face: its `Track` (centre of the face box), per-frame mouth motion and boxes."""

    track: Track
    mouth: np.ndarray  # (K,) float mouth motion, NaN where unknown
    boxes: np.ndarray  # (K, 4) float x, y, w, h in input pixels, NaN where unknown

    @property
    def label(self) -> str:
        return self.track.label


@dataclass
class _Trace:
    """A face being followed: detected boxes (work pixels), frames it is present on, mouth motion."""

    boxes: dict[int, Box] = field(default_factory=dict)  # frame -> box, where detected
    present: set[int] = field(default_factory=set)  # detected, or held between detection frames
    mouth: dict[int, float] = field(default_factory=dict)
    last: int = -1  # the latest frame detected on

    def detected(self, k: int, box: Box) -> None:
        self.boxes[k], self.last = box, k
        self.present.add(k)


def track_faces(frames: Iterable[np.ndarray], fps: float, max_faces: int = 4, work_width: int = 320,
                detect_every: int = 1, progress: Callable[[int], None] | None = None) -> list[FaceTrack]:
    """Faces found and followed through a video, each with its mouth motion.

    Args:
        frames: RGB uint8 frames (H, W, 3), read one at a time.
        fps: frame rate of `frames`.
        max_faces: follow at most this many faces at once, the largest on each detection frame (a
            video with cuts yields more tracks than this over its length).
        work_width: frames wider than this are downscaled for the detector (boxes are scaled back).
        detect_every: run the detector on every n-th frame only (n times faster); boxes in between are
            interpolated, mouth motion is still measured on every frame.
        progress: called with 1 after each frame.

    Returns:
        Faces in order of first appearance (left first on a tie), labelled "face0", "face1", ...:
        `track.x`, `track.y` the centre of the face box in [-1, 1], `track.mass` box area / frame
        area, reliable where detected or within a bridged miss of up to MAX_GAP_S; `mouth` the mouth
        motion (module docstring). An empty list if no face is found.
    """
    _check_request(fps, max_faces, work_width, detect_every)
    cascade = _open_cascade()
    max_gap = max(detect_every, round(MAX_GAP_S * fps))
    traces: list[_Trace] = []
    prev, size, scale, k = None, None, 1.0, -1
    for k, frame in enumerate(frames):
        size, scale = _check_frame(frame, k, size, scale, work_width)
        grey = _grey(frame, scale)  # (h, w) uint8
        live = [t for t in traces if t.last >= k - max_gap]
        if k % detect_every == 0:
            for t, box in _associate(live, _detect(cascade, grey)[:max_faces], traces):
                t.detected(k, box)
        else:  # held from the last detection frame while the face is still there (no cut)
            for t in live:
                if k - 1 in t.present and t.last == k - k % detect_every and \
                        _head_shift(prev, grey, t.boxes[t.last]) is not None:
                    t.present.add(k)
        for t in live:  # a face new on this frame has no mouth motion yet
            if k in t.present and k - 1 in t.present:
                t.mouth[k] = _mouth_motion(prev, grey, t.boxes[t.last])
        prev = grey
        if progress is not None:
            progress(1)
    if size is None:
        raise TrackError("no frames given")
    kept = _keep(traces, max(3, round(MIN_TRACK_S * fps)))
    return [_finish(t, f"face{i}", k + 1, fps, size, scale, max_gap) for i, t in enumerate(kept)]


def _check_request(fps: float, max_faces: int, work_width: int, detect_every: int) -> None:
    if not (fps > 0 and math.isfinite(fps)):
        raise TrackError(f"fps must be a positive number, got {fps}")
    if max_faces < 1:
        raise TrackError(f"max_faces must be at least 1, got {max_faces}")
    if work_width < 64:
        raise TrackError(f"work_width must be at least 64 pixels, got {work_width}")
    if detect_every < 1:
        raise TrackError(f"detect_every must be at least 1 (every frame), got {detect_every}")


def _check_frame(frame: np.ndarray, k: int, size: tuple[int, int] | None, scale: float,
                 work_width: int) -> tuple[tuple[int, int], float]:
    """(width, height) and detector scale; TrackError if the frame is not RGB uint8 or changes size."""
    if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8):
        raise TrackError(f"frame {k} must be an RGB uint8 array (H, W, 3), got "
                         f"{getattr(frame, 'dtype', type(frame).__name__)} {np.shape(frame)}")
    this = (frame.shape[1], frame.shape[0])
    if size is None:
        return this, min(1.0, work_width / this[0])
    if this != size:
        raise TrackError(f"frame {k} is {this[0]}x{this[1]} but frame 0 is {size[0]}x{size[1]}: all frames must match")
    return size, scale


def _open_cascade() -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier()
    if not CASCADE.is_file() or not cascade.load(str(CASCADE)):
        raise TrackError(f"the face detector model {CASCADE} is missing or unreadable: reinstall foley")
    return cascade


def _grey(frame: np.ndarray, scale: float) -> np.ndarray:
    """(h, w) uint8 grey frame at `scale`."""
    if scale < 1.0:
        frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def _detect(cascade: cv2.CascadeClassifier, grey: np.ndarray) -> list[Box]:
    """Face boxes (x, y, w, h) in work pixels, largest first; none centred inside a larger one."""
    side = max(20, round(MIN_FACE * grey.shape[1]))
    found = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
    kept: list[Box] = []
    for b in sorted((np.asarray(b, np.float64) for b in found), key=lambda b: -b[2] * b[3]):
        cx, cy = b[:2] + b[2:] / 2
        if not any(k[0] <= cx <= k[0] + k[2] and k[1] <= cy <= k[1] + k[3] for k in kept):
            kept.append(b)  # a detection nested in a face is part of that face
    return kept


def _associate(active: list[_Trace], boxes: list[Box], traces: list[_Trace]) -> list[tuple[_Trace, Box]]:
    """Greedy nearest-centre matching of detections to active faces; unmatched detections start faces."""
    pairs = sorted((_distance(t.boxes[t.last], b), i, j) for i, t in enumerate(active) for j, b in enumerate(boxes))
    used_t, used_b, out = set(), set(), []
    for d, i, j in pairs:
        if d <= MATCH_DIST and i not in used_t and j not in used_b:
            used_t.add(i), used_b.add(j)
            out.append((active[i], boxes[j]))
    for j, b in enumerate(boxes):
        if j not in used_b:
            traces.append(_Trace())
            out.append((traces[-1], b))
    return out


def _distance(a: Box, b: Box) -> float:
    """Centre distance in face sides; inf if the sizes differ by more than 1.6x."""
    sa, sb = math.sqrt(a[2] * a[3]), math.sqrt(b[2] * b[3])
    if max(sa, sb) > 1.6 * min(sa, sb):
        return math.inf
    ca, cb = a[:2] + a[2:] / 2, b[:2] + b[2:] / 2
    return float(np.linalg.norm(ca - cb)) / (0.5 * (sa + sb))


def _mouth_motion(prev: np.ndarray, grey: np.ndarray, box: Box) -> float:
    """Mean |change| of the head-registered, size- and contrast-normalised mouth region, k-1 to k."""
    shift = _head_shift(prev, grey, box)
    if shift is None:
        return math.nan  # the face changed too much to register: a cut, or a swap
    now = _region(grey, box, MOUTH, MOUTH_PX)  # (16, 32)
    before = _region(prev, box - np.array([*shift, 0.0, 0.0]), MOUTH, MOUTH_PX)
    contrast = float(_region(grey, box, (0.0, 0.0, 1.0, 1.0), MOUTH_PX).std()) + 4.0
    return float(np.abs(now - before).mean()) / contrast


def _head_shift(prev: np.ndarray, grey: np.ndarray, box: Box) -> tuple[float, float] | None:
    """(dx, dy) motion of the upper face (eyes, nose) from `prev` to `grey`, sub-pixel; None if it is lost.

    Normalised cross-correlation of the upper face of `prev` over `grey` within a quarter face side,
    the peak refined by a parabola through its neighbours.
    """
    template = _region(prev, box, UPPER)  # (th, tw)
    m = max(2, math.ceil(box[2] / 4))
    x, y, w, h = box
    centre = (float(x + (UPPER[0] + UPPER[2]) / 2 * w), float(y + (UPPER[1] + UPPER[3]) / 2 * h))
    search = cv2.getRectSubPix(grey, (template.shape[1] + 2 * m, template.shape[0] + 2 * m), centre)
    score = cv2.matchTemplate(search.astype(np.float32), template, cv2.TM_CCOEFF_NORMED)  # (2m+1, 2m+1)
    py, px = np.unravel_index(int(np.argmax(score)), score.shape)
    if score[py, px] < MIN_MATCH:
        return None
    return (float(px - m + _vertex(score[py, max(px - 1, 0):px + 2], px)),
            float(py - m + _vertex(score[max(py - 1, 0):py + 2, px], py)))


def _vertex(v: np.ndarray, i: int) -> float:
    """Sub-sample offset of the parabola's peak through the 3 values around a maximum (0 at the border)."""
    if len(v) != 3 or i == 0:
        return 0.0
    curve = v[0] - 2 * v[1] + v[2]
    return float(np.clip(0.5 * (v[0] - v[2]) / curve, -0.5, 0.5)) if curve < 0 else 0.0


def _region(grey: np.ndarray, box: Box, part: tuple[float, float, float, float],
            out: tuple[int, int] | None = None) -> np.ndarray:
    """(h, w) float32 sub-pixel cut of `part` (fractions of `box`) from `grey`, resized to `out` if given."""
    x, y, w, h = box
    left, top, right, bottom = part
    pw, ph = max(4, round((right - left) * w)), max(4, round((bottom - top) * h))
    centre = (float(x + (left + right) / 2 * w), float(y + (top + bottom) / 2 * h))
    cut = cv2.getRectSubPix(grey, (pw, ph), centre).astype(np.float32)
    return cv2.resize(cut, out, interpolation=cv2.INTER_AREA) if out else cut


def _keep(traces: list[_Trace], min_frames: int) -> list[_Trace]:
    """The traces present on at least `min_frames` frames (the rest are flickers), in order of first appearance."""
    long = [t for t in traces if len(t.present) >= min_frames]
    return sorted(long, key=lambda t: (min(t.boxes), t.boxes[min(t.boxes)][0]))  # first seen, then left first


def _finish(trace: _Trace, label: str, n: int, fps: float, size: tuple[int, int], scale: float,
            max_gap: int) -> FaceTrack:
    """The trace as a FaceTrack in input pixels, misses of up to `max_gap` frames bridged linearly."""
    boxes = np.full((n, 4), np.nan)
    for k, b in trace.boxes.items():
        boxes[k] = b / scale
    seen = np.array(sorted(trace.boxes))
    for a, b in zip(seen[:-1], seen[1:]):
        if 1 < b - a <= max_gap + 1:
            w = (np.arange(a + 1, b) - a)[:, None] / (b - a)  # (gap, 1)
            boxes[a + 1:b] = (1 - w) * boxes[a] + w * boxes[b]
    held = np.array(sorted(k for k in trace.present if k > seen[-1]), int)
    boxes[held] = boxes[seen[-1]]  # held after the last detection
    width, height = size
    x = 2.0 * (boxes[:, 0] + boxes[:, 2] / 2) / width - 1.0
    y = 2.0 * (boxes[:, 1] + boxes[:, 3] / 2) / height - 1.0
    mass = np.nan_to_num(np.minimum(boxes[:, 2] * boxes[:, 3] / (width * height), 1.0))
    mouth = np.full(n, np.nan)
    for k, m in trace.mouth.items():
        mouth[k] = m
    track = Track(fps=fps, x=x, y=y, mass=mass, reliable=np.isfinite(x), label=label, frame_size=size)
    return FaceTrack(track=track, mouth=mouth, boxes=boxes)


def speech_envelope(audio: np.ndarray, sr: int, fps: float, n_frames: int) -> np.ndarray:
    """(n_frames,) RMS of the 300-3400 Hz band of the mono downmix over each frame's interval, max 1.

    Frame k covers [k / fps, (k + 1) / fps); frames past the audio's end are 0; silence is all 0.
    `audio` is (C, N) or (N,) samples at `sr`. The whole-array form of `speech.SpeechMeter.band`.
    """
    return SpeechMeter(sr, fps, n_frames).feed_all([_mono(audio)]).band


def speaking_score(face: FaceTrack, envelope: np.ndarray, where: np.ndarray | None = None) -> float:
    """Pearson correlation of smoothed mouth motion and speech envelope over the face's valid frames.

    Args:
        face: a face from `track_faces`.
        envelope: (K,) speech activity per video frame, e.g. `speech_envelope`.
        where: optional (K,) bool, frames to score over (e.g. one shot); default all.

    Returns:
        A number in [-1, 1]; 0 with fewer than MIN_FRAMES valid frames or a constant input.
    """
    n = len(face.mouth)
    envelope = np.asarray(envelope, np.float64)
    if envelope.shape != (n,):
        raise TrackError(f"the speech envelope has shape {envelope.shape} but the face has {n} frames")
    valid = np.isfinite(face.mouth) & face.track.reliable & np.isfinite(envelope)
    if where is not None:
        if np.shape(where) != (n,):
            raise TrackError(f"`where` has shape {np.shape(where)} but the face has {n} frames")
        valid &= np.asarray(where, bool)
    if valid.sum() < MIN_FRAMES:
        return 0.0
    a = _smooth_valid(face.mouth, valid)[valid]
    b = _smooth_valid(envelope, valid)[valid]
    if a.std() < 1e-12 or b.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _smooth_valid(v: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(K,) `v` smoothed by _SMOOTH over valid neighbours only (invalid frames: arbitrary)."""
    s = np.convolve(np.where(valid, v, 0.0), _SMOOTH, mode="same")
    w = np.convolve(valid.astype(float), _SMOOTH, mode="same")
    return s / np.maximum(w, 1e-9)


def rank_faces(faces: list[FaceTrack], envelope: np.ndarray) -> list[FaceTrack]:
    """Faces sorted best first by `speaking_score`, each track's `.score` set to it."""
    scored = [FaceTrack(f.track.with_(score=speaking_score(f, envelope)), f.mouth, f.boxes) for f in faces]
    return sorted(scored, key=lambda f: f.track.score, reverse=True)
