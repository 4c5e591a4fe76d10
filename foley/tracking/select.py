"""Audio-guided choice of the sounding object: match each track's motion events with the audio's onsets.

A sound starts when something happens to an object (a floor contact, a strike, a sharp reversal, a
start or a stop), not in proportion to how much it moves. So each track's motion events
(`events.motion_events`) are matched with the onsets of the soundtrack (peaks of its spectral
flux, `onsets.onset_envelope`, Bello et al. 2005) within TOLERANCE frames: precision (its events that hit
an onset), recall (onsets while it is seen that it explains) and their F-score, against the F that
as many events placed at random would get (a track that sprays events gains nothing), and the
chance that random events would explain as many distinct onsets (`_occupancy_tail`). Priors keep
short, tiny or flickering blobs from winning: score = prior x lift, prior = visible fraction x size
factor x continuity. `choose` follows the best only when it is convincing (`convincing`); else the
sound is rendered centred, and says why. Every candidate's `Evidence` says what counted.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Iterator

import numpy as np

from foley.errors import TrackError
from foley.tracking.events import motion_events, positions
from foley.tracking.onsets import audio_onsets, onset_envelope
from foley.tracks import Track

TOLERANCE = 2  # frames: an event and an onset this close match
SMALL = 0.002  # median mass under which size counts against a track (an object ~4.5% of the frame side)
JUMP = 0.25  # half frame widths: a centroid step larger than this between frames is not continuous
MIN_HITS = 3  # convincing: at least this many events on onsets ...
MAX_P = 0.01  # ... that chance would give with probability at most this ...
MIN_LIFT = 0.25  # ... an F at least this far from chance F towards 1 ...
MIN_PRIOR = 0.2  # ... and a prior at least this
MIN_VISIBLE = 0.5  # priors basis (no onsets): seen in at least this fraction of frames ...
STEADY = 0.8  # ... with at least this continuity
MIN_TRAVEL = 0.5  # of several steady objects, follow the one that travels at least this far (half widths) ...
DOMINANT = 3.0  # ... and this many times as far as any other ...
INERT_EVENTS = 2  # ... when none of the others has more motion events than this


def motion_energy(track: Track) -> np.ndarray:
    """(K,) |acceleration| + (|speed| + |Δ size|) / 4 per frame, NaN unless frames k-1..k+1 are reliable.

    The measure the choice used before motion events; kept for callers and plots (the choice no
    longer uses it: how much something moves says little about when it sounds).
    """
    p = positions(track)  # (K, 2), in half frame widths
    size = np.sqrt(np.where(track.reliable, track.mass, np.nan))
    energy = np.full(len(track), np.nan)
    if len(track) >= 3:
        acc = np.linalg.norm(p[2:] - 2 * p[1:-1] + p[:-2], axis=1)  # (K-2,)
        speed = np.linalg.norm(p[2:] - p[:-2], axis=1) / 2
        energy[1:-1] = acc + speed / 4 + np.abs(size[2:] - size[:-2]) / 8
    return energy


def audio_score(track: Track, envelope: np.ndarray) -> float:
    """The choice score of one track against an onset envelope (K,): `explain` for a single track."""
    return explain([track], envelope)[0].score


@dataclass(frozen=True)
class Evidence:
    """Why a track is (not) the sounding object: its priors and how its motion events meet the onsets."""

    label: str
    visible: float  # reliable frames / all frames
    size: float  # median mass over reliable frames (fraction of the frame)
    continuity: float  # reliable frames that continue the previous one plausibly / reliable frames
    events: int  # motion events (`events.motion_events`)
    onsets: int  # audio onsets in the frames where the track is reliable
    hits: int  # events within TOLERANCE frames of an onset
    explained: int  # onsets in view within TOLERANCE frames of an event
    precision: float  # hits / events
    recall: float  # explained / onsets
    f: float  # F-score of precision and recall
    chance_f: float  # F-score that as many events placed at random would get
    p_value: float  # chance that as many events placed at random explain at least `explained` onsets
    prior: float  # visible x size factor x continuity, in [0, 1]
    score: float  # prior x lift of F over chance; with no onsets: visible x continuity x sqrt(size / largest)
    reason: str

    def as_dict(self) -> dict:
        return {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Choice:
    """The sounding object of a video, or None: render centred rather than on a confident wrong side."""

    track: Track | None  # the track to follow; None = no convincing candidate, render centred
    ranked: list[Track]  # all candidates best first, `.score` set
    evidence: list[Evidence]  # parallel to `ranked`
    basis: str  # "events" | "priors" | "user" | "given"
    reason: str  # one sentence saying what was chosen and why

    def as_dict(self) -> dict:
        return {"chosen": None if self.track is None else self.track.label, "basis": self.basis,
                "reason": self.reason, "tolerance_frames": TOLERANCE,
                "candidates": [e.as_dict() for e in self.evidence]}


def continuity(track: Track) -> float:
    """Fraction of reliable frames whose previous frame is reliable and close (no jump, no size leap)."""
    ok = track.reliable
    if ok.sum() < 2:
        return 0.0
    p = positions(track)
    step = np.linalg.norm(p[1:] - p[:-1], axis=1)  # (K-1,), NaN unless both reliable
    m0, m1 = track.mass[:-1], track.mass[1:]
    steady = (step <= JUMP) & (m1 <= 2 * m0) & (m0 <= 2 * m1)
    return float(steady.sum() / ok.sum())


def prior(visible: float, size: float, steady: float) -> float:
    """Prior of a candidate in [0, 1]: visible fraction x size factor (1 from SMALL up) x continuity."""
    return visible * min(1.0, math.sqrt(size / SMALL)) * steady


def explain(tracks: list[Track], envelope: np.ndarray) -> list[Evidence]:
    """Evidence of each track (same order) against the soundtrack's onset envelope (K,) at the tracks' frames.

    With onsets, a track scores prior x lift, lift = (F - chance F) / (1 - chance F) of its motion
    events against the onsets in its reliable frames; with no onset at all (a continuous sound),
    it scores visible x continuity x sqrt(size / largest size): the largest, most visible, steadiest.
    """
    n, _ = _shared_timing(tracks)
    if np.shape(envelope) != (n,):
        raise TrackError(f"the onset envelope has shape {np.shape(envelope)} but the tracks have {n} frames")
    onsets = audio_onsets(envelope).frames
    out = [_evidence(t, onsets) for t in tracks]
    if len(onsets):
        return out
    largest = max(e.size for e in out)
    return [replace(e, score=e.visible * e.continuity * math.sqrt(e.size / largest) if largest > 0 else 0.0,
                    reason=_reason(e, "no onsets in the sound: priors only")) for e in out]


def _evidence(track: Track, onsets: np.ndarray) -> Evidence:
    """Evidence of one track against onset frames (O,); see `explain`."""
    ok = track.reliable
    visible = float(ok.mean())
    size = float(np.median(track.mass[ok])) if ok.any() else 0.0
    steady = continuity(track)
    events = motion_events(track).frames
    in_view = onsets[ok[onsets]]
    hits = int(sum(np.any(np.abs(in_view - e) <= TOLERANCE) for e in events))
    explained = int(sum(np.any(np.abs(events - o) <= TOLERANCE) for o in in_view))
    precision = hits / len(events) if len(events) else 0.0
    recall = explained / len(in_view) if len(in_view) else 0.0
    f = _f(precision, recall)
    cover = _coverage(in_view, ok)
    chance = _f(cover, 1.0 - (1.0 - (2 * TOLERANCE + 1) / max(ok.sum(), 1)) ** len(events)) if len(events) else 0.0
    lift = (f - chance) / (1.0 - chance) if chance < 1 else 0.0
    p_value = _occupancy_tail(explained, len(events), len(in_view), cover)
    pri = prior(visible, size, steady)
    ev = Evidence(track.label, visible, size, steady, len(events), len(in_view), hits, explained, precision, recall,
                  f, chance, p_value, pri, pri * lift, "")
    return replace(ev, reason=_reason(ev))


def _f(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _coverage(onsets: np.ndarray, reliable: np.ndarray) -> float:
    """Fraction of reliable frames within TOLERANCE of an onset: the hit rate of an event placed at random."""
    near = np.zeros(len(reliable), bool)
    for o in onsets:
        near[max(o - TOLERANCE, 0):o + TOLERANCE + 1] = True
    return float((near & reliable).sum() / max(reliable.sum(), 1))


def _occupancy_tail(m: int, n: int, onsets: int, cover: float) -> float:
    """P(D >= m): D the number of distinct onsets that n events placed at random explain, each onset
    being near a random event with probability cover / onsets (the occupancy problem, by recursion
    over the events). Stricter than counting hits alone: spraying events near one onset is no help."""
    if m <= 0:
        return 1.0
    if onsets == 0 or cover <= 0:
        return 0.0
    c = cover / onsets
    prob = np.zeros(onsets + 1)  # (O + 1,) P(s distinct onsets explained so far)
    prob[0] = 1.0
    for _ in range(n):
        s = np.arange(onsets + 1)
        new = prob * np.clip(1.0 - cover + s * c, 0.0, 1.0)
        new[1:] += prob[:-1] * (onsets - s[:-1]) * c
        prob = new
    return float(min(1.0, prob[m:].sum()))


def _reason(e: Evidence, lead: str | None = None) -> str:
    """One phrase on the main evidence of a candidate (or `lead`), then what counts against it."""
    if lead is not None:
        words = [lead]
    elif e.onsets == 0:
        words = ["no onsets while it is seen"]
    elif e.events == 0:
        words = ["no motion events"]
    else:
        words = [f"{e.hits}/{e.events} events on onsets, {e.explained}/{e.onsets} onsets explained "
                 f"(F {e.f:.2f}, chance {e.chance_f:.2f}, p {e.p_value:.1g})"]
    if e.visible < MIN_VISIBLE:
        words.append(f"seen in only {e.visible:.0%} of frames")
    if e.size < SMALL:
        words.append(f"tiny ({e.size:.2%} of the frame)")
    if e.continuity < STEADY:
        words.append(f"flickers or jumps (continuity {e.continuity:.2f})")
    return "; ".join(words)


def convincing(e: Evidence, onsets_total: int) -> tuple[bool, str]:
    """Whether the best candidate's evidence is enough to follow it, and why (not).

    With onsets: at least MIN_HITS hits, p_value <= MAX_P, F at least MIN_LIFT of the way from
    chance to 1, and prior >= MIN_PRIOR (seen long enough, big enough, steady). With no onsets:
    visible >= MIN_VISIBLE and continuity >= STEADY (the priors are then the only evidence).
    """
    if onsets_total == 0:
        ok = e.visible >= MIN_VISIBLE and e.continuity >= STEADY
        return ok, ("no onsets in the sound (a continuous sound): chose by priors, the largest, most visible, "
                    "steadiest track" if ok else "no onsets in the sound and no track seen steadily in half the frames")
    lift = (e.f - e.chance_f) / (1 - e.chance_f) if e.chance_f < 1 else 0.0
    failed = [why for bad, why in [
        (e.hits < MIN_HITS, f"{e.hits} hits < {MIN_HITS}"),
        (e.p_value > MAX_P, f"hits could be chance (p {e.p_value:.2g} > {MAX_P})"),
        (lift < MIN_LIFT, f"F {e.f:.2f} not clearly above chance {e.chance_f:.2f}"),
        (e.prior < MIN_PRIOR, f"prior {e.prior:.2f} < {MIN_PRIOR} (seen too briefly, too small or unsteady)"),
    ] if bad]
    if failed:
        return False, "; ".join(failed)
    return True, f"its motion events meet the sound's onsets: {e.reason}"


def choose(tracks: list[Track], envelope: np.ndarray, label: str | None = None, given: bool = False) -> Choice:
    """The track to follow (or None: render centred), with every candidate's evidence.

    Args:
        tracks: candidates of one video (same fps and length).
        envelope: (K,) `onset_envelope` of the sound at the tracks' frames.
        label: a user's pick by label (`--object`); TrackError listing the labels if none has it.
        given: the user gave this one track (a box, a one-track file): follow it whatever the evidence.
    """
    if label is not None:
        check_label(tracks, label)
    evidence = explain(tracks, envelope)
    order = sorted(range(len(tracks)), key=lambda i: (evidence[i].score, evidence[i].prior), reverse=True)
    ranked = [tracks[i].with_(score=evidence[i].score) for i in order]
    evidence = [evidence[i] for i in order]
    if label is not None:
        i = next(i for i, t in enumerate(ranked) if t.label == label)
        return Choice(ranked[i], ranked, evidence, "user", f"{label} chosen with --object")
    if given and len(tracks) == 1:
        return Choice(ranked[0], ranked, evidence, "given", "the one track given is followed")
    n_onsets = len(audio_onsets(envelope))
    ok, why = convincing(evidence[0], n_onsets)
    basis = "events" if n_onsets else "priors"
    if ok:
        return Choice(ranked[0], ranked, evidence, basis, f"following {ranked[0].label}: {why}")
    # The sound does not single out an object. If only one object is seen steadily, it is the one to
    # follow (the rest are glimpses); with two or more, any side would be a guess.
    solid = [i for i, e in enumerate(evidence) if e.visible >= MIN_VISIBLE and e.continuity >= STEADY
             and e.prior >= MIN_PRIOR]
    if n_onsets and len(solid) == 1:
        i = solid[0]
        return Choice(ranked[i], ranked, evidence, "priors",
                      f"following {ranked[i].label}: the sound's onsets single out no object ({why}), and it is "
                      f"the only object seen steadily ({evidence[i].visible:.0%} of the frames)")
    # Of several steady ones, one may be the only one that does anything: the rest creep and make no
    # events (a far layer of a panned scene, swaying leaves). Things that move make the sounds; but an
    # object with events of its own (a bouncer whose contacts miss the onsets) is no bystander.
    travel = sorted(((_travel(ranked[i]), i) for i in solid), reverse=True)
    inert = all(evidence[i].events <= INERT_EVENTS for _, i in travel[1:])
    if (n_onsets and len(travel) > 1 and inert and travel[0][0] >= MIN_TRAVEL
            and travel[0][0] >= DOMINANT * travel[1][0]):
        i = travel[0][1]
        return Choice(ranked[i], ranked, evidence, "priors",
                      f"following {ranked[i].label}: the sound's onsets single out no object ({why}), and of the "
                      f"{len(solid)} objects seen steadily it alone moves across the frame ({travel[0][0]:.2f} of "
                      f"the frame's half-width against {travel[1][0]:.2f}; the others make no events)")
    many = f"; {len(solid)} objects are seen steadily" if len(solid) > 1 else ""
    return Choice(None, ranked, evidence, basis, f"no convincing sounding object (best {ranked[0].label}: {why}{many})")


def _travel(track: Track) -> float:
    """How far a track goes: the larger span of its x and y over reliable frames (in half frame widths)."""
    ok = track.reliable
    if ok.sum() < 2:
        return 0.0
    return float(max(np.ptp(track.x[ok]), np.ptp(track.y[ok])))


def check_label(tracks: list[Track], label: str) -> None:
    """TrackError, listing the labels there are, unless a track has this label (--object)."""
    labels = [t.label for t in tracks]
    if label not in labels:
        shown = ", ".join(repr(s) for s in labels)
        raise TrackError(f"--object {label!r}: no track has that label; the tracks are {shown}")


def evidence_table(evidence: list[Evidence]) -> str:
    """A plain-text table of candidates' evidence, one row each, best first."""
    w = max([8] + [len(e.label) + 1 for e in evidence])
    head = (f"{'object':<{w}}{'seen':>6}{'size':>7}{'steady':>7}{'events':>7}{'onsets':>7}{'hits':>5}"
            f"{'P':>6}{'R':>6}{'F':>6}{'chance':>7}{'score':>7}  reason")
    rows = [f"{e.label:<{w}}{e.visible:>6.0%}{e.size:>7.2%}{e.continuity:>7.2f}{e.events:>7d}{e.onsets:>7d}"
            f"{e.hits:>5d}{e.precision:>6.2f}{e.recall:>6.2f}{e.f:>6.2f}{e.chance_f:>7.2f}{e.score:>7.2f}  {e.reason}"
            for e in evidence]
    return "\n".join([head, *rows])


def rank_by_audio(tracks: list[Track], audio: np.ndarray | Iterator[np.ndarray], sr: int) -> list[Track]:
    """Tracks sorted best first by how their motion events meet the audio's onsets, each with `.score` set.

    Args:
        tracks: tracks of one video (same fps and length).
        audio: (C, N) or (N,) float samples of the video's soundtrack, or an iterator of (C, k) blocks.
        sr: sample rate of `audio`.

    Returns:
        The same tracks, best first; `.score` is the `Evidence.score` of `explain`.
    """
    n, fps = _shared_timing(tracks)
    return rank_by_envelope(tracks, onset_envelope(audio, sr, fps, n))


def rank_by_envelope(tracks: list[Track], envelope: np.ndarray) -> list[Track]:
    """`rank_by_audio` given the soundtrack's `onset_envelope` at the tracks' frames, (len(track),)."""
    return choose(tracks, envelope).ranked


def _shared_timing(tracks: list[Track]) -> tuple[int, float]:
    """(frames, fps) shared by all tracks; TrackError if there are none or they differ."""
    if not tracks:
        raise TrackError("no tracks to rank")
    n, fps = len(tracks[0]), tracks[0].fps
    if any(len(t) != n or t.fps != fps for t in tracks):
        raise TrackError("tracks to rank must share one frame rate and length (they come from one video)")
    return n, fps
