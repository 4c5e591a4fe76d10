"""`foley eval`: score a folder of generated audio against references and ground truth (the V2A metrics suite).

    report = evaluate(find_pairs("gen/", "clips/objaware", truth="clips"))
    report.summary["fd"], report.clips[0]["sync_f1"]

Per clip: sync against ground-truth events (`foley.metrics.sync`), onset agreement with the reference,
CLAP score against the caption, paired KL of class posteriors, Stereo-Score and BAS against the tracks.
Over the set: FD and MMD on the embedding's features, KL mean, Inception Score, and every mean. A clip
that cannot be read is named in `problems` and left out; the rest are still scored.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from foley.errors import FoleyError

SR = 48000
AUDIO_EXT = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".mp4", ".mov", ".mkv", ".webm")
SUMMARY_KEYS = ("fd", "mmd", "kl", "is", "clap", "class_acc", "sync_f1", "sync_precision", "sync_recall",
                "sync_offset_ms", "onset_f1", "stereo_score", "bas_in", "bas_off", "bas_all", "bas_single")
MonoType = Literal["mean", "left", "right", "side"]


class EvalError(FoleyError):
    """Inputs of an evaluation are missing or unusable."""


@dataclass(frozen=True)
class Pair:
    """One generated clip, its reference and its ground truth (either may be absent)."""

    key: str
    generated: Path
    reference: Path | None
    truth: Path | None


@dataclass
class Report:
    summary: dict
    clips: list[dict]
    problems: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------- pairing

def _audio_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise EvalError(f"{folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXT)
    out: dict[str, Path] = {}
    for p in files:
        out.setdefault(p.stem, p)  # key.flac before key.mp4: the first in name order wins
    return out


def find_pairs(generated: str | os.PathLike, ref: str | os.PathLike | None = None,
               truth: str | os.PathLike | None = None) -> tuple[list[Pair], list[str]]:
    """Pairs matched by file stem (or read from a CSV with columns generated, reference[, truth]); and problems."""
    generated = Path(generated)
    if generated.is_file() and generated.suffix.lower() == ".csv":
        return _csv_pairs(generated)
    gen = _audio_files(generated)
    refs = _audio_files(Path(ref)) if ref else {}
    tdir = Path(truth) if truth else None
    if tdir is not None and not tdir.is_dir():
        raise EvalError(f"--truth {tdir} is not a folder")
    pairs, problems = [], []
    for key, path in gen.items():
        t = tdir / f"{key}.json" if tdir else None
        r = refs.get(key)
        if ref and r is None:
            problems.append(f"{path}: no reference named {key}.* in {ref}")
        if t is not None and not t.is_file():
            problems.append(f"{path}: no ground truth {t}")
            t = None
        pairs.append(Pair(key, path, r, t))
    problems += [f"{p}: reference without a generated clip" for k, p in refs.items() if k not in gen]
    if not pairs:
        raise EvalError(f"no audio or video files in {generated} (looked for {', '.join(AUDIO_EXT)})")
    return pairs, problems


def _csv_pairs(path: Path) -> tuple[list[Pair], list[str]]:
    base = path.parent
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise EvalError(f"{path}: cannot read the pairs CSV ({e})") from None
    if not rows or "generated" not in rows[0]:
        raise EvalError(f"{path}: a pairs CSV needs a header with columns generated, reference[, truth]")
    opt = lambda v: (base / v) if v else None  # noqa: E731
    pairs = [Pair(Path(r["generated"]).stem, base / r["generated"], opt(r.get("reference")), opt(r.get("truth")))
             for r in rows]
    return pairs, []


# ---------------------------------------------------------------------- reading

def read_clip(path: Path) -> np.ndarray:
    """(2, N) float32 at 48 kHz (mono duplicated); EvalError naming the file when unusable."""
    from foley import io

    try:
        x = io.read_audio(path, sr=SR, channels=2)
    except FoleyError as e:
        raise EvalError(str(e) if str(path) in str(e) else f"{path}: {e}") from None
    if x.shape[-1] == 0:
        raise EvalError(f"{path}: no audio samples")
    if not np.isfinite(x).all():
        raise EvalError(f"{path}: audio contains NaN or inf samples")
    return x


@dataclass(frozen=True)
class Truth:
    caption: str | None
    events: np.ndarray  # every object's event times, seconds
    tracks: list  # foley.tracks.Track per object
    classes: list[str]


def read_truth(path: Path) -> Truth:
    """Ground truth of `foley world export` (foley.truth/1, or the world's own clip JSON)."""
    import json

    from foley.tracks import Track

    try:
        doc = json.loads(path.read_text())
        objects = doc.get("objects", [])
        events = np.asarray([t for o in objects for t in o.get("events", [])], float)
        tr = doc.get("tracks", {})
        tracks = [Track.from_dict(d, tr["fps"], tuple(tr["frame_size"])) for d in tr.get("tracks", [])]
        caption = doc.get("caption") or ("; ".join(doc["captions"]) if doc.get("captions") else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, FoleyError) as e:
        raise EvalError(f"{path}: not a readable ground-truth JSON ({type(e).__name__}: {e})") from None
    seconds = float(doc.get("seconds", math.inf))
    classes = [str(o.get("class")) for o in objects if isinstance(o, dict)]
    return Truth(caption, np.sort(events[(events >= 0) & (events < seconds)]), tracks, classes)


def mono(x: np.ndarray, how: MonoType = "mean") -> np.ndarray:
    """(2, N) -> (N,) as av-benchmark's evaluation fork offers: mean, left, right, or side (L - R) / 2."""
    if how == "mean":
        return x.mean(0)
    if how == "left":
        return x[0]
    if how == "right":
        return x[1]
    if how == "side":
        return (x[0] - x[1]) / 2
    raise EvalError(f"unknown mono type {how!r}; choose mean, left, right or side")


# ---------------------------------------------------------------------- scoring

def clip_scores(gen: np.ndarray, ref: np.ndarray | None, truth: Truth | None) -> dict:
    """The per-clip metrics that need no embedding: sync, onset agreement, stereo."""
    from foley.metrics.stereo import evaluate as stereo_eval, stereo_score
    from foley.metrics.sync import match, onsets

    row: dict = {"seconds": gen.shape[-1] / SR, "stereo_score": stereo_score(gen)}
    det = onsets(gen, SR)
    if ref is not None:
        row["onset_f1"] = match(det, onsets(ref, SR)).f1
        row["stereo_score_ref"] = stereo_score(ref)
    if truth is not None:
        rep = match(det, truth.events)
        row |= {"sync_f1": rep.f1, "sync_precision": rep.precision, "sync_recall": rep.recall,
                "sync_offset_ms": rep.offset_ms, "events": rep.events}
        reps = [stereo_eval(gen, SR, t) for t in truth.tracks]
        for k in ("bas_in", "bas_off", "bas"):
            vals = [getattr(r, k) for r in reps if not math.isnan(getattr(r, k))]
            row["bas_all" if k == "bas" else k] = float(np.mean(vals)) if vals else math.nan
        if len(truth.tracks) == 1:  # one object: its placement is unambiguous
            row["bas_single"] = row["bas_all"]
    return row


def _trim(gen: np.ndarray, ref: np.ndarray | None, key: str, problems: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    if ref is None or gen.shape[-1] == ref.shape[-1]:
        return gen, ref
    if abs(gen.shape[-1] - ref.shape[-1]) > 0.1 * SR:
        problems.append(f"{key}: generated {gen.shape[-1] / SR:.2f} s vs reference {ref.shape[-1] / SR:.2f} s; "
                        "scored on the common part")
    n = min(gen.shape[-1], ref.shape[-1])
    return gen[:, :n], ref[:, :n]


Embed = Callable[[list[np.ndarray]], dict[str, np.ndarray]]  # clips -> {"features", "posteriors", "audio"}


def clap_embedder(model) -> Embed:  # noqa: ANN001
    """Features, class posteriors and joint embeddings of (2, N) clips from a `Clap` model."""
    import torch

    def embed(clips: list[np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list] = {"features": [], "posteriors": [], "audio": []}
        with torch.no_grad():
            for x in clips:
                f = model.audio_features(torch.from_numpy(x[None]).float())
                out["features"].append(f[0].numpy())
                out["posteriors"].append(model.posteriors(f)[0].numpy())
                out["audio"].append(model.joint(f)[0].numpy())
        return {k: np.stack(v) for k, v in out.items()}

    return embed


def evaluate(pairs: list[Pair], model=None, external: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None,  # noqa: ANN001
             progress: bool = True, problems: list[str] | None = None, mono_type: MonoType = "mean") -> Report:
    """Score every pair; `model` is a Clap (default: the shipped one); `external` maps a name to a function
    (N,) mono 48 kHz -> (D,) features (PANNs, VGGish, ...), each giving an `fd_<name>` on the `mono_type` downmix."""
    from tqdm import tqdm

    from foley.metrics.distribution import cosine, frechet, inception_score, kl_paired, mmd
    from foley.models.clap import load_clap

    problems = list(problems or [])
    model = model if model is not None else load_clap()
    embed = clap_embedder(model)
    rows, gens, refs = [], [], []
    for p in tqdm(pairs, desc="eval", disable=not progress):
        try:
            gen = read_clip(p.generated)
            ref = read_clip(p.reference) if p.reference else None
            truth = read_truth(p.truth) if p.truth else None
        except EvalError as e:
            problems.append(str(e))
            continue
        gen, ref = _trim(gen, ref, p.key, problems)
        row = {"key": p.key, "generated": str(p.generated), **clip_scores(gen, ref, truth)}
        row["caption"] = truth.caption if truth else None
        row["_classes"] = truth.classes if truth else []
        rows.append(row)
        gens.append(gen)
        refs.append(ref)
    if not rows:
        raise EvalError("no clip could be scored:\n  " + "\n  ".join(problems))
    g = embed(gens)
    paired = [i for i, r in enumerate(refs) if r is not None]
    r = embed([refs[i] for i in paired]) if paired else None
    if r is not None:
        for i, kl in zip(paired, kl_paired(r["posteriors"], g["posteriors"][paired])):
            rows[i]["kl"] = float(kl)
    labels = list(model.cfg.classes)
    for row, p in zip(rows, g["posteriors"]):
        if row["_classes"] and labels:  # the embedding's top class is one of the clip's true classes
            row["class_acc"] = float(labels[int(np.argmax(p))] in row["_classes"])
    capt = [i for i, row in enumerate(rows) if row["caption"]]
    if capt:
        text = model.embed_text([rows[i]["caption"] for i in capt]).detach().numpy()
        for i, c in zip(capt, cosine(g["audio"][capt], text)):
            rows[i]["clap"] = float(c)
    summary = {k: _mean([row.get(k) for row in rows]) for k in SUMMARY_KEYS}
    summary["is"] = inception_score(g["posteriors"]) if len(rows) > 1 else None
    summary["fd"] = summary["mmd"] = None
    if r is not None and len(paired) > 1:
        summary["fd"] = frechet(r["features"], g["features"])
        summary["mmd"] = mmd(r["features"], g["features"])
    for name, fn in (external or {}).items():
        summary[f"fd_{name}"] = None
        if r is not None and len(paired) > 1:
            fg = np.stack([fn(mono(x, mono_type)) for x in gens])
            fr = np.stack([fn(mono(refs[i], mono_type)) for i in paired])
            summary[f"fd_{name}"] = frechet(fr, fg)
    summary |= {"n_clips": len(rows), "n_problems": len(problems)}
    return Report(summary, [{k: _clean(v) for k, v in row.items() if not k.startswith("_")} for row in rows], problems)


def _mean(values: list) -> float | None:
    v = [float(x) for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(v)) if v else None


def _clean(v):  # noqa: ANN001, ANN202
    return None if isinstance(v, float) and math.isnan(v) else v


# ---------------------------------------------------------------------- outputs

def format_summary(rep: Report) -> str:
    """The summary as a two-column table."""
    lines = [f"{'metric':<16}{'value':>12}", "-" * 28]
    for k, v in rep.summary.items():
        lines.append(f"{k:<16}{'—' if v is None else (f'{v:12.4f}' if isinstance(v, float) else f'{v:>12}')}")
    return "\n".join(lines)


def write_json(path: str | os.PathLike, rep: Report) -> None:
    import json

    from foley.files import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps({"summary": rep.summary, "clips": rep.clips, "problems": rep.problems}, indent=1))


def write_csv(path: str | os.PathLike, rep: Report) -> None:
    from foley.files import atomic_output

    fields = list(dict.fromkeys(k for row in rep.clips for k in row))
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        w.writerows({k: ("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)) for k, v in row.items()}
                    for row in rep.clips)


def worst(rep: Report, pairs: list[Pair], n: int = 4) -> list[tuple[str, np.ndarray, np.ndarray | None, np.ndarray | None]]:
    """(key, generated onsets, reference onsets, true events) of the n clips with the lowest sync (or onset) F1."""
    from foley.metrics.sync import onsets

    by_key = {p.key: p for p in pairs}
    metric = "sync_f1" if any(r.get("sync_f1") is not None for r in rep.clips) else "onset_f1"
    scored = sorted((r for r in rep.clips if r.get(metric) is not None), key=lambda r: r[metric])[:n]
    out = []
    for row in scored:
        p = by_key[row["key"]]
        g = onsets(read_clip(p.generated), SR)
        r = onsets(read_clip(p.reference), SR) if p.reference else None
        t = read_truth(p.truth).events if p.truth else None
        out.append((p.key, g, r, t))
    return out
