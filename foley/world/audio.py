"""The sound side of a clip: per-object stems, the ambience bed, and the three mixes.

- `objaware`: the stems rendered through the spatializer (`render_source`, `spread_ambience` and
  `mix` of `foley.spatial`, i.e. `spatialize` with the bed spread once and shared) with the
  ground-truth tracks, over the ambience spread across both channels (StereoFoley §2.2.4);
- `dataset`: VGGSound-like. A share of clips (`WorldConfig.dual_mono_share`) is dual-mono; the rest
  pans each object statically or along a random path that has nothing to do with where it is, mostly
  near the centre (`dataset_pan_sd`): weakly spatial, like real stereo uploads;
- `mono`: the stems with their distance gains (eq. 4), dual-mono, over a dual-mono ambience.
All three carry the same loudness per object, so only the stereo placement differs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from foley.spatial import condition_track, distance_gain, mix, pan_gains, render_source, spread_ambience, upsample
from foley.tracks import Track
from foley.world.backgrounds import BACKDROPS
from foley.world.objects import CLASSES, Schedule
from foley.world.render import Motion, Rendered
from foley.world.scene import ObjectSpec, Scene
from foley.world.sounds import Drive

MIXES: tuple[str, ...] = ("objaware", "dataset", "mono")


@dataclass(frozen=True)
class Audio:
    """Stems, ambience and mixes of one clip at `sr`."""

    stems: np.ndarray  # (O, N) float32 dry mono stems at their levels
    ambience: np.ndarray  # (N,) float32 mono bed at its level
    mixes: dict[str, np.ndarray]  # name -> (2, N) float32
    events: list[np.ndarray]  # per object, event times in seconds


def stem(o: ObjectSpec, mo: Motion, scene: Scene, sched: Schedule) -> np.ndarray:
    """(N,) float32 mono stem of object o, peak at its level, its events at the schedule's times."""
    cfg = scene.cfg
    rng = np.random.default_rng([o.seed, 2])
    gate = sched.running(np.arange(cfg.n_samples) / cfg.sr)
    drive = Drive(x=mo.x, fps=cfg.fps, sr=cfg.sr, n=cfg.n_samples, rate=o.rate, gate=gate, anim=sched.anim)
    x = CLASSES[o.cls].sound(o.voice, sched.events, cfg.n_samples, cfg.sr, rng, drive)
    peak = float(np.max(np.abs(x)))
    return (x * (o.level / peak) if peak > 0 else x).astype(np.float32)


def ambience(scene: Scene) -> np.ndarray:
    """(N,) float32 mono ambience bed of the scene's background, at its level against the objects."""
    cfg = scene.cfg
    rng = scene.rng(11)
    x = BACKDROPS[scene.backdrop].sound(cfg.n_samples, cfg.sr, rng, scene.amount)
    x = x / (np.sqrt(np.mean(x ** 2)) + 1e-12)
    return (x * 0.5 * scene.ambience_gain).astype(np.float32)


def distance_scaled(source: np.ndarray, track: Track, sr: int) -> np.ndarray:
    """(N,) a mono source with the spatializer's distance gain (eq. 4) along its track, not panned.

    The gain is evaluated per frame on the conditioned track and then upsampled (the spatializer
    upsamples mass and position first); the two agree to within the frame-to-frame change of the gain.
    """
    ct = condition_track(track)
    v = distance_gain(ct.mass, ct.x, float(ct.mass.max()))  # (K,)
    return upsample(v, ct.fps, sr, source.size) * source


def _pan(scaled: np.ndarray, knots: tuple[float, ...], sr: int, control: int = 32) -> np.ndarray:
    """(2, N): a distance-scaled source (already / sqrt 2) panned by eq. (3) along a path unrelated to the
    picture: constant (one knot) or smooth through the knots; gains are computed every `control` samples."""
    n = scaled.size
    if len(knots) == 1:
        g_l, g_r = pan_gains(np.array(knots[0]))
    else:
        m = n // control + 2
        w = np.interp(np.linspace(0, len(knots) - 1, m), np.arange(len(knots)), knots)  # (M,)
        gl, gr = pan_gains(w)
        t = np.arange(n) / control
        g_l, g_r = np.interp(t, np.arange(m), gl), np.interp(t, np.arange(m), gr)
    return math.sqrt(2) * np.stack([g_l * scaled, g_r * scaled])


def mixes(scene: Scene, stems: np.ndarray, amb: np.ndarray, tracks: list[Track]) -> dict[str, np.ndarray]:
    """The three mixes (2, N) float32 of a clip."""
    sr = scene.cfg.sr
    bed = spread_ambience(amb, sr)  # (2, N), shared by the two stereo mixes
    objaware = mix([render_source(s, t, sr) for s, t in zip(stems, tracks)], bed)  # = spatialize()
    scaled = [distance_scaled(s, t, sr) / math.sqrt(2) for s, t in zip(stems, tracks)]
    mono = mix([np.stack([s, s]) for s in scaled], np.stack([amb, amb]))
    if scene.dataset_style == "dual_mono":
        dataset = mono
    else:
        dataset = mix([_pan(s, p, sr) for s, p in zip(scaled, scene.dataset_pans)], bed)
    return {"objaware": objaware, "dataset": dataset, "mono": mono}


def synthesize(scene: Scene, rendered: Rendered) -> Audio:
    """Stems, ambience and the three mixes of a rendered scene (same event times as the frames)."""
    stems = np.stack([stem(o, mo, scene, sc)
                      for o, mo, sc in zip(scene.objects, rendered.motions, rendered.schedules)])  # (O, N)
    amb = ambience(scene)
    return Audio(stems, amb, mixes(scene, stems, amb, rendered.tracks), [sc.events for sc in rendered.schedules])
