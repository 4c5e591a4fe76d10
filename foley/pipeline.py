"""Whole jobs on files: track a video, spatialize its sound, evaluate a stereo track. The CLI calls these."""
from __future__ import annotations

import json
import logging
import math
import numbers
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm import tqdm

from foley import io
from foley.sequence import AUDIO
from foley.errors import FoleyError, TrackError
from foley.metrics import StereoReport, evaluate
from foley.blocks import fit_blocks
from foley.spatial import SpatialConfig, is_stereo_bed, mix_blocks, normalise_blocks, spatialize, spread_blocks
from foley.files import atomic_output
from foley.tracking import MotionConfig, onset_envelope, track_box, track_motion
from foley.tracking.box import check_box_inside
from foley.tracking.speaker import describe, find_speaker
from foley.tracking.speech import SpeechMeter
from foley.tracking.select import TOLERANCE, Choice, check_label, choose, evidence_table
from foley.tracks import Track, load_masks, load_tracks

log = logging.getLogger("foley")
choice_log = logging.getLogger("foley.choice")  # the choice and its evidence: the CLI shows it by default
SR = AUDIO.sr  # every audio path of a job runs at foley's rate
FACE_WIDTH = 320  # the face detector works at this width: decode that small
MOTION_WIDTH = MotionConfig().work_width  # motion tracking decodes at most this wide: its working copy
BOX_WIDTH = 640  # the box tracker (CSRT) decodes at most this wide
DECODE_AHEAD = 8  # frames decoded ahead in a thread while the trackers work (the second core)
STRIP_FRAMES = 6
BLOCK = 1 << 16  # samples per streamed audio block (1.4 s at 48 kHz)
CENTRE_LABEL = "centre (no convincing object)"  # the track followed when no candidate is convincing


@dataclass(frozen=True)
class TrackSpec:
    """Where tracks come from: the motion tracker, a user box, or a file/folder of tracks or masks."""

    kind: str  # "motion" | "box" | "file"
    box: tuple[int, int, int, int] | None = None
    frame: int = 0
    path: Path | None = None

    @classmethod
    def parse(cls, text: str) -> "TrackSpec":
        """'motion', 'box=x,y,w,h@frame' (pixels; '@frame' optional) or a path (.json/.csv/.npz/mask folder)."""
        if text == "motion":
            return cls("motion")
        m = re.fullmatch(r"box=(\d+),(\d+),(\d+),(\d+)(?:@(\d+))?", text.replace(" ", ""))
        if m:
            return cls("box", box=tuple(int(v) for v in m.groups()[:4]), frame=int(m.group(5) or 0))
        if text.startswith("box"):
            raise TrackError(f"bad box {text!r}: write box=x,y,w,h@frame in pixels, e.g. box=100,80,60,60@0")
        path = Path(text)
        if not path.exists():
            raise TrackError(f"--track {text!r}: not 'motion', not 'box=x,y,w,h@frame', and no such file or folder")
        return cls("file", path=path)


def _progress(total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit="frame", leave=False, dynamic_ncols=True)


def _keep_strip(frames: Iterable[np.ndarray], total: int, keep: dict[int, np.ndarray]) -> Iterator[np.ndarray]:
    """Pass frames through, keeping a few evenly spaced small copies for the track plot."""
    wanted = set(np.linspace(0, max(total - 1, 0), STRIP_FRAMES).round().astype(int).tolist())
    for k, f in enumerate(frames):
        if k in wanted:
            step = max(1, f.shape[1] // 320)
            keep[k] = f[::step, ::step].copy()
        yield f


def find_tracks(video: str | os.PathLike, spec: TrackSpec, audio: np.ndarray | Iterator[np.ndarray] | None = None,
                max_objects: int = 3, strip: dict[int, np.ndarray] | None = None, object_label: str | None = None,
                evidence_path: str | os.PathLike | None = None) -> list[Track]:
    """Tracks for a video, best first when audio ((C, N) at SR, or (C, k) blocks streamed) is given.

    `object_label` (--object) puts that track first (TrackError listing the labels if none has it);
    `evidence_path` receives the choice's evidence as JSON (needs audio).
    """
    _check_max_objects(max_objects)
    if evidence_path is not None and audio is None:
        raise FoleyError("--evidence needs the video's audio: the evidence is how each track's motion meets "
                         "its onsets (drop --no-audio, or use a video with sound)")
    info = io.probe(video)
    n = io.count_frames(info, info.fps)
    tracks = _tracks_of(video, spec, info, n, max_objects, {} if strip is None else strip)
    tracks = [t.with_(frame_size=(info.width, info.height)) for t in tracks]
    if audio is None:
        return _user_first(tracks, object_label)
    choice = choose_track(tracks, onset_envelope(audio, SR, info.fps, n), spec, object_label)
    if evidence_path is not None:
        save_evidence(evidence_path, choice)
    return _user_first(choice.ranked, object_label)


def _tracks_of(video: str | os.PathLike, spec: TrackSpec, info: io.VideoInfo, n: int, max_objects: int,
               keep: dict[int, np.ndarray]) -> list[Track]:
    """The candidate tracks of a video by `spec` (TrackError if the motion tracker finds nothing)."""
    if spec.kind == "file":
        return _load_spec_file(spec.path, info, n)
    # both trackers work on a small copy: decode it that small (the motion tracker's working width)
    size = _small_size(info, MOTION_WIDTH if spec.kind == "motion" else BOX_WIDTH)
    with _progress(n, f"tracking ({spec.kind})") as bar:
        frames = _keep_strip(io.iter_frames(video, fps=info.fps, size=size, ahead=DECODE_AHEAD), n, keep)
        if spec.kind == "motion":
            tracks = track_motion(frames, info.fps, max_objects=max_objects, progress=bar.update)
        else:
            check_box_inside(spec.box, (info.width, info.height))  # in the user's pixels
            scale = 1.0 if size is None else size[0] / info.width
            box = tuple(v * scale for v in spec.box)
            tracks = [track_box(frames, info.fps, box=box, start_frame=spec.frame, progress=bar.update)]
    if not tracks:
        raise TrackError(f"the motion tracker found nothing moving in {video}: give a box with "
                         "--track box=x,y,w,h@frame, or import tracks")
    return tracks


def choose_track(tracks: list[Track], envelope: np.ndarray, spec: TrackSpec, object_label: str | None = None) -> Choice:
    """The sounding object among `tracks` by their motion events and the sound's onset envelope (K,); logged.

    A single track the user gave (a box, a one-track file) is followed whatever the evidence; a
    choice that is not convincing has `track` None (render centred) and says why, as a warning.
    """
    given = spec.kind == "box" or (spec.kind == "file" and len(tracks) == 1)
    choice = choose(tracks, envelope, label=object_label, given=given)
    choice_log.info("candidates for the sounding object (motion events within +-%d frames of audio onsets):\n%s",
                    TOLERANCE, evidence_table(choice.evidence))
    (choice_log.info if choice.track is not None else choice_log.warning)("%s", choice.reason)
    return choice


def _user_first(tracks: list[Track], object_label: str | None) -> list[Track]:
    """Tracks with the one labelled `object_label` first (unchanged if None); TrackError listing labels if absent."""
    if object_label is None:
        return tracks
    check_label(tracks, object_label)
    i = [t.label for t in tracks].index(object_label)
    return [tracks[i]] + tracks[:i] + tracks[i + 1:]


def centred_track(n: int, fps: float, frame_size: tuple[int, int] | None = None) -> Track:
    """A track at the centre of the frame for n frames: the mono sound in both channels at equal power."""
    return Track(fps=fps, x=np.zeros(n), y=np.zeros(n), mass=np.zeros(n), reliable=np.ones(n, bool),
                 label=CENTRE_LABEL, frame_size=frame_size)


def save_evidence(path: str | os.PathLike, choice: Choice) -> None:
    """Write the choice and every candidate's evidence as JSON (schema foley.choice/1), atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps({"schema": "foley.choice/1", **choice.as_dict()}, indent=1))


def _check_max_objects(max_objects: int) -> None:
    if isinstance(max_objects, bool) or not isinstance(max_objects, numbers.Integral) or max_objects < 1:
        raise FoleyError(f"--max-objects must be a whole number >= 1, got {max_objects!r}")


def _small_size(info: io.VideoInfo, width: int) -> tuple[int, int] | None:
    """(width, height) keeping the video's aspect, or None where the video is no wider."""
    if info.width <= width:
        return None
    return width, max(2, int(round(info.height * width / info.width)))


def _load_spec_file(path: Path, info: io.VideoInfo, n: int) -> list[Track]:
    if path.is_dir() or path.suffix.lower() == ".npz":
        tracks = load_masks(path, info.fps, frame_size=(info.width, info.height))
    else:
        tracks = load_tracks(path)
    return [_fit_track(t, n, info.fps, str(path)) for t in tracks]


def _fit_track(track: Track, n: int, fps: float, source: str) -> Track:
    """Make an imported track cover exactly n frames at the video's rate (pad unreliable / trim, with a warning)."""
    if abs(track.fps - fps) > 1e-3 * fps:
        raise TrackError(f"{source} is at {track.fps:g} fps but the video is at {fps:g} fps: re-export the track "
                         "at the video's frame rate")
    if len(track) == n:
        return track
    log.warning("%s has %d frames but the video has %d: %s", source, len(track), n,
                "trimming" if len(track) > n else "the rest counts as not detected")
    pad = max(0, n - len(track))

    def fit(a: np.ndarray, fill) -> np.ndarray:
        return np.concatenate([a[:n], np.full(pad, fill, dtype=a.dtype)])

    return track.with_(x=fit(track.x, np.nan), y=fit(track.y, np.nan), mass=fit(track.mass, 0.0),
                       reliable=fit(track.reliable, False))


def spatialize_video(video: str | os.PathLike, out: str | os.PathLike, spec: TrackSpec,
                     audio_path: str | os.PathLike | None = None, ambience_path: str | os.PathLike | None = None,
                     ambience_gain: float = 0.3, max_objects: int = 3,
                     cfg: SpatialConfig = SpatialConfig(), object_label: str | None = None,
                     evidence_path: str | os.PathLike | None = None, faces: str = "auto") -> tuple[Track, float]:
    """Object-aware stereo for a video: track, pick the sounding object, render, write OUT (.mp4/.mov/.mkv/.wav/.flac).

    The sound is --audio if given, else the video's own audio; padded/trimmed to the video with a
    warning. Audio is streamed, so memory stays flat in the video's length: a first pass over the
    sound checks and measures it and takes its onset envelope (for the audio-guided choice), and
    after tracking the mix is rendered twice, once for its peak and once, scaled by the one gain of
    `spatialize`, into OUT. The sounding object is chosen by `choose_track` (or by `object_label`,
    --object); when no candidate is convincing the sound is rendered centred (`centred_track`,
    labelled CENTRE_LABEL). `evidence_path` receives the choice's evidence as JSON after OUT. With the
    motion tracker, `faces` ("auto": when the sound looks like speech; "on"; "off") also looks for talking
    faces, and a face that speaks in some shot is followed, shot by shot (`_speaker`). Returns the
    followed track and that gain (1 when the mix did not clip).
    """
    out = Path(out)
    if not (isinstance(ambience_gain, numbers.Real) and math.isfinite(ambience_gain) and ambience_gain >= 0):
        raise FoleyError(f"--ambience-gain must be a finite number >= 0, got {ambience_gain!r}")
    _check_max_objects(max_objects)
    _check_output(out, (".mp4", ".mov", ".mkv", ".wav", ".flac"))
    info = io.probe(video)
    n_frames = io.count_frames(info, info.fps)
    n = int(round(n_frames / info.fps * SR))
    if faces not in ("auto", "on", "off"):
        raise FoleyError(f"--faces must be auto, on or off, got {faces!r}")
    sound = _sound_path(audio_path, video, info)
    envelope, meter = _scan_sound(sound, n, info.fps, n_frames)
    stereo_bed = ambience_path is not None and _is_stereo_file(ambience_path)
    speaker, face_tracks = _speaker(video, info, n_frames, meter, faces if spec.kind == "motion" else "off")
    try:
        tracks = find_tracks(video, spec, max_objects=max_objects)
    except TrackError:
        if speaker is None:
            raise
        tracks = []  # nothing moves but a face talks
    if speaker is not None and object_label is None:
        evidence = choose(tracks, envelope).evidence if tracks else []
        choice = Choice(speaker, [speaker, *tracks], evidence, "speech",
                        "following the talking face of each shot (its mouth moves with the speech)")
        choice_log.info("%s", choice.reason)
    else:
        candidates = tracks if object_label is None else [*tracks, *face_tracks, *([speaker] if speaker else [])]
        choice = choose_track(candidates, envelope, spec, object_label)
    track = choice.track or centred_track(n_frames, info.fps, (info.width, info.height))
    if choice.track is None:
        choice_log.warning("rendering the sound centred (equal power in both channels) rather than on a guessed side")

    def render() -> Iterator[np.ndarray]:  # the unscaled mix, (2, BLOCK) blocks; the same each call
        bed = None if ambience_path is None else io.iter_audio(ambience_path, sr=SR, block=BLOCK)
        bed = bed if bed is None or stereo_bed else spread_blocks(bed, SR)
        source = io.iter_audio(sound, sr=SR, channels=1, block=BLOCK)
        return mix_blocks([source], [track], n, SR, bed, ambience_gain, cfg, BLOCK)

    gain, stereo = normalise_blocks(render, cfg)
    if out.suffix.lower() in (".wav", ".flac"):
        io.write_audio(out, stereo, SR)
    else:
        io.mux_audio(video, stereo, SR, out)
    if evidence_path is not None:
        save_evidence(evidence_path, choice)
    return track, gain


def _sound_path(audio_path: str | os.PathLike | None, video: str | os.PathLike,
                info: io.VideoInfo) -> str | os.PathLike:
    """The file holding the sound to place: --audio, else the video (FoleyError if it has no audio)."""
    if audio_path is not None:
        return audio_path
    if not info.has_audio:
        raise FoleyError(f"{video} has no audio stream: give the sound to spatialize with --audio FILE")
    return video


def _scan_sound(path: str | os.PathLike, n: int, fps: float, n_frames: int) -> tuple[np.ndarray, SpeechMeter]:
    """Read the whole sound once: NaN/inf raise, a length off the video's n samples warns; its onset envelope,
    and its speech meter."""
    length = 0

    def counted() -> Iterator[np.ndarray]:
        nonlocal length
        for block in io.iter_audio(path, sr=SR, channels=1, block=BLOCK):
            length += block.shape[1]
            yield block

    meter = SpeechMeter(SR, fps, n_frames)

    def metered(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for block in blocks:
            meter.feed(block)
            yield block

    blocks = counted()
    envelope = onset_envelope(metered(fit_blocks(blocks, n, BLOCK, 1)), SR, fps, n_frames)  # of the sound as placed
    for _ in blocks:  # the rest, beyond the video's end
        pass
    if abs(length - n) > SR * 0.04:
        log.warning("audio is %.2f s but the video is %.2f s: %s", length / SR, n / SR,
                    "trimming the audio" if length > n else "padding the audio with silence")
    return envelope, meter


def _speaker(video: str | os.PathLike, info: io.VideoInfo, n_frames: int, meter: SpeechMeter,
             mode: str) -> tuple[Track | None, list[Track]]:
    """The talking face shot by shot (None if none clearly talks, or not looked for), and the face tracks."""
    if mode == "off":
        return None, []
    like, why = meter.speech_like()
    if mode == "auto" and not like:
        choice_log.info("not looking for talking faces: the sound does not look like speech (%s)", why)
        return None, []
    size = _small_size(info, FACE_WIDTH)
    with _progress(n_frames, "faces") as bar:
        frames = io.iter_frames(video, fps=info.fps, size=size, ahead=DECODE_AHEAD)
        speaker, faces, verdicts = find_speaker(frames, info.fps, meter.band, n_frames, bar.update)
    choice_log.info("talking faces, shot by shot (the sound: %s):\n%s", why, describe(verdicts, info.fps))
    size = (info.width, info.height)
    return speaker and speaker.with_(frame_size=size), [f.track.with_(frame_size=size) for f in faces]


def _is_stereo_file(path: str | os.PathLike) -> bool:
    """Whether an ambience file is a real stereo bed (kept) rather than mono or dual-mono (spread); reads it all."""
    return any([is_stereo_bed([block]) for block in io.iter_audio(path, sr=SR, block=BLOCK)])  # a list: checks all


def _check_output(out: Path, suffixes: tuple[str, ...]) -> None:
    if out.suffix.lower() not in suffixes:
        raise FoleyError(f"output {out} must end in one of {', '.join(suffixes)}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise FoleyError(f"output folder {str(parent)!r} does not exist: create it first")


def evaluate_file(audio_path: str | os.PathLike, track_path: str | os.PathLike, centre: float = 0.05,
                  index: int = 0) -> StereoReport:
    """Stereo-Score, BAS and pan error of a stereo file (audio or video) against a track file."""
    tracks = load_tracks(track_path)
    if not 0 <= index < len(tracks):
        raise TrackError(f"{track_path} has {len(tracks)} tracks; --index must be in 0..{len(tracks) - 1}")
    audio = io.read_audio(audio_path, sr=SR)
    if audio.shape[0] != 2:
        raise FoleyError(f"{audio_path} has {audio.shape[0]} channel(s): stereo metrics need 2 channels")
    return evaluate(audio, SR, tracks[index], centre=centre)


def report_table(rows: dict[str, StereoReport]) -> str:
    """A plain-text table of reports, one row each."""
    w = max([22] + [len(n) + 1 for n in rows])
    head = f"{'':<{w}}{'Stereo-Score':>13}{'BAS in':>9}{'BAS off':>9}{'BAS all':>9}{'MAE in':>9}{'MAE off':>9}"
    lines = [head, "-" * len(head)]

    def f(v: float) -> str:
        return f"{'n/a':>9}" if v != v else f"{v:>9.3f}"

    for name, r in rows.items():
        lines.append(f"{name:<{w}}{r.stereo_score:>13.3f}{f(r.bas_in)}{f(r.bas_off)}{f(r.bas)}{f(r.mae_in)}{f(r.mae_off)}")
    return "\n".join(lines)


def run_demo(out_dir: str | os.PathLike, width: int = 640, height: int = 360, seconds: float = 8.0,
             seed: int = 0, generate: bool = True, steps: int = 25) -> dict[str, StereoReport]:
    """The main job on a built-in example: make a clip, track it, spatialize it, generate its sound with the
    shipped object-aware DiT (unless `generate` is False), score them all; files go to out_dir."""
    from foley.demo import DemoScene
    from foley.plot import plot_tracks
    from foley.spatial import spread_ambience
    from foley.tracks import save_tracks

    scene = DemoScene(width=width, height=height, seconds=seconds, seed=seed)  # checks the arguments first
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    silent = out / "demo_silent.mp4"
    frames = tqdm(scene.frames(), total=scene.n_frames, desc="making the demo clip", unit="frame", leave=False)
    io.write_video(silent, frames, scene.fps)
    mono = scene.sound(SR).astype(np.float64)  # (N,)
    io.write_audio(out / "demo_mono.wav", mono[None], SR)
    truth = scene.track()
    save_tracks(out / "truth.json", [truth])
    strip: dict[int, np.ndarray] = {}
    tracks = find_tracks(silent, TrackSpec("motion"), audio=mono[None], strip=strip)
    save_tracks(out / "tracks.json", tracks)
    plot_tracks(out / "tracks.png", tracks, sorted(strip.items()), title="foley demo: motion tracker output")
    rng = np.random.default_rng(seed)
    wind = np.cumsum(rng.standard_normal(mono.size)) * 1e-3  # brown noise: a soft wind bed
    wind -= np.convolve(wind, np.ones(4801) / 4801, mode="same")
    bed = spread_ambience(wind / np.max(np.abs(wind)), SR)
    stereo = spatialize([mono], [tracks[0]], SR, ambience=bed, ambience_gain=0.02)
    io.mux_audio(silent, stereo, SR, out / "demo_stereo.mp4")
    decoded = io.read_audio(out / "demo_stereo.mp4", sr=SR)
    dual = np.stack([mono, mono]) * 0.5
    reports = {
        "object-aware vs truth": evaluate(decoded, SR, truth),
        "object-aware vs tracked": evaluate(decoded, SR, tracks[0]),
        "dual-mono vs truth": evaluate(dual, SR, truth),
    }
    if generate:
        from foley.generate import Generator, Settings

        made = Generator("obj")(silent, settings=Settings(steps=steps, seed=seed))
        io.mux_audio(silent, made, SR, out / "demo_generated.mp4")
        reports["generated (obj DiT) vs truth"] = evaluate(made, SR, truth)
    return reports
