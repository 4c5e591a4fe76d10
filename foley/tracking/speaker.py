"""The talking face, shot by shot: one track that follows whoever speaks in each shot.

In a dialogue the camera cuts between the speakers, so no single face track spans the clip. Within
each shot (between cuts) every face seen for at least half of it is scored by how its mouth motion
follows the speech envelope (`faces.speaking_score`); the best one, if it clearly speaks, is the
speaker of that shot. The speaker track is the chosen faces' tracks laid end to end, unreliable in
shots where no face clearly speaks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from foley.tracking.cuts import CutDetector
from foley.tracking.faces import FaceTrack, speaking_score, track_faces
from foley.tracks import Track

MIN_SPEAKING = 0.3  # a face speaks in a shot if its score is at least this ...
MIN_MARGIN = 0.15  # ... and this much above the next face's in that shot
MIN_PRESENT = 0.5  # faces seen for less of a shot than this are not scored there
LABEL = "speaker"


@dataclass(frozen=True)
class ShotSpeaker:
    """Who speaks in one shot [start, stop): the face's label (None: nobody clearly) and the scores."""

    start: int
    stop: int
    label: str | None
    scores: dict[str, float]


def shots(cuts: list[int], n: int) -> list[tuple[int, int]]:
    """[start, stop) frame ranges between the cuts (each cut is the first frame of a new shot)."""
    edges = [0] + sorted(c for c in set(cuts) if 0 < c < n) + [n]
    return list(zip(edges[:-1], edges[1:]))


def speaker_track(faces: list[FaceTrack], envelope: np.ndarray, cuts: list[int], n: int,
                  fps: float) -> tuple[Track | None, list[ShotSpeaker]]:
    """The speaker track over n frames (None if no face clearly speaks in any shot), and each shot's verdict.

    `envelope` is the (n,) speech-band envelope at the video's frames (`speech.SpeechMeter.band`).
    """
    x, y = np.full(n, math.nan), np.full(n, math.nan)
    mass, reliable = np.zeros(n), np.zeros(n, bool)
    verdicts = []
    for a, b in shots(cuts, n):
        where = np.zeros(n, bool)
        where[a:b] = True
        present = [f for f in faces if f.track.reliable[a:b].mean() >= MIN_PRESENT]
        scores = {f.label: speaking_score(f, envelope, where) for f in present}
        ranked = sorted(present, key=lambda f: scores[f.label], reverse=True)
        best = ranked[0] if ranked else None
        runner = scores[ranked[1].label] if len(ranked) > 1 else 0.0
        if best is not None and scores[best.label] >= MIN_SPEAKING and scores[best.label] - runner >= MIN_MARGIN:
            t = best.track
            x[a:b], y[a:b], mass[a:b], reliable[a:b] = t.x[a:b], t.y[a:b], t.mass[a:b], t.reliable[a:b]
            verdicts.append(ShotSpeaker(a, b, best.label, scores))
        else:
            verdicts.append(ShotSpeaker(a, b, None, scores))
    if not reliable.any():
        return None, verdicts
    size = faces[0].track.frame_size if faces else None
    return Track(fps=fps, x=x, y=y, mass=mass, reliable=reliable, label=LABEL, frame_size=size), verdicts


def describe(verdicts: list[ShotSpeaker], fps: float) -> str:
    """One line per shot: its time span, who speaks, and the faces' scores."""
    lines = []
    for v in verdicts:
        scores = ", ".join(f"{k} {s:+.2f}" for k, s in sorted(v.scores.items(), key=lambda kv: -kv[1])) or "no face"
        who = v.label or "nobody clearly"
        lines.append(f"  {v.start / fps:6.2f}-{v.stop / fps:6.2f} s: {who} ({scores})")
    return "\n".join(lines)


def find_speaker(frames: Iterable[np.ndarray], fps: float, envelope: np.ndarray, n: int,
                 progress: Callable[[int], None] | None = None) -> tuple[Track | None, list[FaceTrack],
                                                                        list[ShotSpeaker]]:
    """Faces of a video (RGB frames, read once), its shot cuts, and the speaker track over n frames."""
    cuts: list[int] = []
    detector = CutDetector()

    def watched() -> Iterator[np.ndarray]:
        for k, frame in enumerate(frames):
            if detector.is_cut(frame):
                cuts.append(k)
            yield frame

    faces = track_faces(watched(), fps, detect_every=2, progress=progress)
    track, verdicts = speaker_track(faces, envelope, cuts, n, fps)
    return track, faces, verdicts
