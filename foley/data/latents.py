"""Latent and feature caches for the generators, built once with the frozen codec (and reused by every run).

A cache is one torch file (written atomically) holding, per clip: the codec latents of each stereo mix
(C, T), the frames at S x S (T, 3, S, S) uint8 at the codec's frame rate (one per latent frame), the log-mel
of the mono downmix (for the joint embedding's audio side), the caption, and the ground truth kept for
evaluation (classes, event times, track x per object). Sources: the Procedural Foley world generated from
(seed, split, index), or a folder / CSV of the user's own videos with audio (`video_clips`).

    cache = build_cache(world_clips(800, "train", 0), codec, "runs/dit/cache-train.pt")
"""
from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from foley.errors import FoleyError
from foley.models.codec import codec_hash, latent_hashes


@dataclass
class SourceClip:
    """One clip from a source, before encoding."""

    key: str
    frames: np.ndarray  # (K, H, W, 3) uint8 at the codec's fps
    mixes: dict[str, np.ndarray]  # name -> (2, N) float32 at 48 kHz
    caption: str = ""
    classes: list[str] = field(default_factory=list)
    events: list[float] = field(default_factory=list)
    track_x: np.ndarray | None = None  # (O, K) ground-truth x per object
    sounding_x: np.ndarray | None = None  # (K,) x of the object whose sound dominates each frame, NaN where none does


@dataclass
class Cache:
    """Clips as stacked tensors (all clips of one cache have one length)."""

    latents: dict[str, torch.Tensor]  # mix -> (P, C, T) float16
    frames: torch.Tensor  # (P, T, 3, S, S) uint8
    mel: torch.Tensor  # (P, M, Tm) float16
    keys: list[str]
    captions: list[str]
    classes: list[list[str]]
    events: list[list[float]]
    track_x: list[list[list[float]]]
    codec_hash: str
    sounding_x: list[list[float]] = field(default_factory=list)  # per clip (T,); a clip's [] without ground truth
    # (the user's videos), and no list at all in caches made before it was recorded

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class WorldClips:
    """Clips `range(n)` of the Procedural Foley world, made from (seed, split, index) at size x size pixels.

    Iterable (in index order); `part(a, b)` makes clips a..b-1 alone, so that processes can build a cache's
    parts side by side (`build_cache(..., workers=N)`); every clip is a function of its index.
    """

    n: int
    split: str
    seed: int
    seconds: float = 4.0
    fps: int = 25
    size: int = 96

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[SourceClip]:
        return self.part(0, self.n)

    def part(self, a: int, b: int) -> Iterator[SourceClip]:
        from foley.world import PRESETS as WORLD, render, sample_scene, synthesize

        cfg = replace(WORLD["tiny"], seconds=self.seconds, fps=self.fps, width=self.size, height=self.size)
        for i in range(a, min(b, self.n)):
            scene = sample_scene(cfg, self.seed, self.split, i)
            r = render(scene)
            sound = synthesize(scene, r)
            yield SourceClip(scene.key, r.frames, {m: sound.mixes[m] for m in ("objaware", "dataset")},
                             "; ".join(scene.captions), [o.cls for o in scene.objects],
                             sorted(float(t) for e in sound.events for t in e if 0 <= t < self.seconds),
                             np.stack([t.x for t in r.tracks]), sounding_x(sound, r.tracks, cfg.sr))


def sounding_x(sound, tracks, sr: int) -> np.ndarray:  # noqa: ANN001
    """(K,) x of the object whose sound dominates each frame (by the margin `foley.world.checks.dominant_bas`
    scores), NaN where none does: where a listener hears the sound come from, from the exact ground truth."""
    from foley.world.checks import dominant_frames

    dom = dominant_frames(sound.stems, sound.ambience, tracks, sr)  # (O, K)
    x = np.stack([t.x for t in tracks])
    return np.where(dom, x, 0.0).sum(0) + np.where(dom.any(0), 0.0, np.nan)


def world_clips(n: int, split: str, seed: int, seconds: float = 4.0, fps: int = 25, size: int = 96) -> WorldClips:
    """Clips of the Procedural Foley world, made from (seed, split, index) at size x size pixels."""
    return WorldClips(n, split, seed, seconds, fps, size)


def video_clips(source: str | os.PathLike, seconds: float, fps: int, size: int = 96) -> Iterator[SourceClip]:
    """The user's own videos with audio: a folder of videos, or a CSV with columns video[, caption].

    Each video gives the clips of `seconds` it holds (a shorter remainder is dropped); its audio is the
    one stereo mix ("objaware" and "dataset" alike: a real recording is both).
    """
    from foley import io

    src = Path(source)
    if src.is_file() and src.suffix.lower() == ".csv":
        with open(src, newline="") as f:
            rows = [(src.parent / r["video"], r.get("caption", "") or "") for r in csv.DictReader(f)]
    elif src.is_dir():
        rows = [(p, "") for p in sorted(src.iterdir()) if p.suffix.lower() in (".mp4", ".mov", ".mkv", ".webm", ".avi")]
    else:
        raise FoleyError(f"{source}: give a folder of videos or a CSV with a `video` column")
    k = int(round(seconds * fps))
    for path, caption in rows:
        if not io.probe(path).has_audio:
            raise FoleyError(f"{path}: no audio stream to learn from")
        frames = np.stack(list(io.iter_frames(path, fps=fps, size=(size, size))))
        audio = io.read_audio(path, sr=48000, channels=2)
        n = int(round(seconds * 48000))
        for c in range(min(len(frames) // k, audio.shape[1] // n)):
            a = audio[:, c * n:(c + 1) * n]
            yield SourceClip(f"{path.stem}-{c:04d}", frames[c * k:(c + 1) * k], {"objaware": a, "dataset": a}, caption)


def _encoded(clips: list[SourceClip], codec, mel, size: int) -> dict[str, list]:  # noqa: ANN001
    """One batch of clips through the frozen codec: {"latents": {mix: (B, C, T)}, "frames", "mel", metadata}."""
    from foley.models.video import resize_frames

    with torch.no_grad():
        lat = {m: codec.encode(torch.from_numpy(np.stack([c.mixes[m] for c in clips])).float()).half()
               for m in clips[0].mixes}
        mono = torch.from_numpy(np.stack([c.mixes["objaware"].mean(0) for c in clips])).float()
        fr = torch.from_numpy(np.stack([c.frames for c in clips])).permute(0, 1, 4, 2, 3)  # (B, K, 3, H, W)
        return {"latents": lat, "mel": mel(mono).half(), "frames": resize_frames(fr, size),
                "keys": [c.key for c in clips], "captions": [c.caption for c in clips],
                "classes": [c.classes for c in clips], "events": [c.events for c in clips],
                "track_x": [[] if c.track_x is None else np.round(c.track_x, 4).tolist() for c in clips],
                "sounding_x": [[] if c.sounding_x is None else np.round(c.sounding_x, 4).tolist() for c in clips]}


LISTS = ("keys", "captions", "classes", "events", "track_x", "sounding_x")  # a cache's per-clip lists

_WORKER: dict = {}  # what a cache-building process holds (set before the fork, inherited)


def _encoded_part(span: tuple[int, int]) -> dict[str, list]:
    torch.set_num_threads(1)
    w = _WORKER
    return _encoded(list(w["clips"].part(*span)), w["codec"], w["mel"], w["size"])


def _batches(clips: Iterable[SourceClip], codec, mel, size: int, batch: int,  # noqa: ANN001
             workers: int) -> Iterator[dict[str, list]]:
    """Encoded batches, in order: world clips made and encoded by `workers` processes side by side (each clip
    is a function of its index, so the cache is the same), any other source in this process."""
    if workers > 1 and isinstance(clips, WorldClips) and len(clips) > batch:
        from foley.interrupts import fork_pool

        _WORKER.update(clips=clips, codec=codec, mel=mel, size=size)
        try:
            with fork_pool(workers) as pool:
                yield from pool.imap(_encoded_part, [(a, a + batch) for a in range(0, len(clips), batch)])
        finally:
            _WORKER.clear()
        return
    pending: list[SourceClip] = []
    for clip in clips:
        pending.append(clip)
        if len(pending) == batch:
            yield _encoded(pending, codec, mel, size)
            pending = []
    if pending:
        yield _encoded(pending, codec, mel, size)


def build_cache(clips: Iterable[SourceClip], codec, path: str | os.PathLike, size: int = 32,  # noqa: ANN001
                total: int | None = None, batch: int = 8, workers: int = 1) -> Cache:
    """Encode every clip with the frozen codec and write the cache atomically; returns it.

    workers > 1 builds world clips (`WorldClips`) in that many processes at once: the same cache, faster.
    """
    from tqdm import tqdm

    from foley.files import atomic_output
    from foley.models.clap import ClapConfig, LogMel

    mel = LogMel(ClapConfig())
    parts: dict[str, list] = {k: [] for k in ("frames", "mel", *LISTS)}
    lat: dict[str, list] = {}
    with tqdm(total=total if total is not None else getattr(clips, "n", None), desc="encode clips") as bar:
        for enc in _batches(clips, codec, mel, size, batch, workers):
            for m, z in enc["latents"].items():
                lat.setdefault(m, []).append(z)
            for k in ("frames", "mel"):
                parts[k].append(enc[k])
            for k in LISTS:
                parts[k].extend(enc[k])
            bar.update(len(enc["keys"]))
    if not parts["keys"]:
        raise FoleyError("no clips to cache")
    t = min(z.shape[-1] for z in lat["objaware"])
    cache = Cache({m: torch.cat(v)[..., :t] for m, v in lat.items()}, torch.cat(parts["frames"])[:, :t],
                  torch.cat(parts["mel"]), parts["keys"], parts["captions"], parts["classes"], parts["events"],
                  parts["track_x"], codec_hash(codec), [s[:t] for s in parts["sounding_x"]])
    with atomic_output(path) as tmp:
        torch.save(asdict(cache), tmp)
    return cache


def load_cache(path: str | os.PathLike, codec=None) -> Cache:  # noqa: ANN001
    """A cache; refuses one made with another codec than `codec` (when given)."""
    try:
        cache = Cache(**torch.load(path, weights_only=True))
    except Exception as e:  # a damaged or foreign file
        raise FoleyError(f"{path}: not a readable latent cache ({type(e).__name__}); delete it to rebuild") from None
    if codec is not None and cache.codec_hash not in latent_hashes(codec):
        raise FoleyError(f"{path} was encoded with another codec; delete it to rebuild")
    return cache


def source_size(size: int) -> int:
    """The side clips are made or read at before the cache shrinks them to `size`: at least 96 pixels and a whole
    multiple of `size`, so each cached pixel is a true box average (torch's "area" mode overlaps its windows at a
    fractional ratio such as 96 -> 64, and the frames would then differ from a video read at `size` directly)."""
    return size * -(-96 // size)


def ensure_cache(codec, split: str, n: int, cache_dir: str | os.PathLike = "runs/dit", videos: str = "",  # noqa: ANN001
                 seed: int = 0, size: int = 32, workers: int = 1) -> Cache:
    """The cache of a split, built on first use: n world clips of (seed, split), or the user's `videos` (a folder
    or CSV; the last tenth is the val split), frames at size x size. Caches live in `cache_dir`, shared by every
    generator's runs."""
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tag = "" if size == 32 else f"-{size}px"
    if videos:
        path = folder / f"cache-videos-{Path(videos).stem}{tag}.pt"
        if not path.is_file():
            build_cache(video_clips(videos, 4.0, codec.cfg.fps, source_size(size)), codec, path, size=size)
        cache = load_cache(path, codec)
        cut = max(1, len(cache) // 10)  # the last tenth validates
        return subset(cache, range(len(cache) - cut, len(cache)) if split == "val" else range(len(cache) - cut))
    path = folder / f"cache-{split}-{n}{tag}.pt"
    if not path.is_file():
        build_cache(world_clips(n, split, seed, fps=codec.cfg.fps, size=source_size(size)), codec, path, size=size,
                    total=n, workers=workers)
    return load_cache(path, codec)


def subset(c: Cache, idx: range | list[int]) -> Cache:
    """The clips of `c` at indices idx."""
    i = list(idx)
    pick = lambda xs: [xs[j] for j in i]  # noqa: E731
    return Cache({m: z[i] for m, z in c.latents.items()}, c.frames[i], c.mel[i], pick(c.keys), pick(c.captions),
                 pick(c.classes), pick(c.events), pick(c.track_x), c.codec_hash,
                 pick(c.sounding_x) if c.sounding_x else [])
