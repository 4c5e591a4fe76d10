"""Summaries of a world folder: class/motion histograms, Stereo-Score and BAS per mix."""
from __future__ import annotations

import json
import os
import tarfile
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np

from foley.world.audio import MIXES
from foley.world.checks import dominant_bas
from foley.world.record import bas_report, decode
from foley.world.scene import WorldError
from foley.world.shards import damaged_shard, iter_shard, read_manifest, shard_problem


def _shards(root: str | os.PathLike, split: str) -> Iterator[Path]:
    """The shards of a split present on disk, in order; WorldError for one whose size differs from its record."""
    entry = read_manifest(root)["splits"].get(split, {})
    for name in entry.get("shards", []):
        path = Path(root) / split / name
        if not path.is_file():
            continue
        record = entry.get("files", {}).get(name)
        problem = shard_problem(path, record, checksum=False) if record else None
        if problem:
            raise WorldError(f"shard {path} is damaged ({problem}): re-run the `foley world make` command that "
                             "made it; it rewrites damaged shards")
        yield path


def iter_meta(root: str | os.PathLike, split: str) -> Iterator[dict]:
    """The JSON metadata of every clip of a split, reading only the .json members."""
    for path in _shards(root, split):
        with damaged_shard(path), tarfile.open(path, "r") as tar:
            for m in tar:
                if m.name.endswith(".json"):
                    yield json.loads(tar.extractfile(m).read())


def _quantiles(values: list[float]) -> dict:
    if not values:
        return {}
    q = np.percentile(values, [10, 50, 90])
    return {"mean": round(float(np.mean(values)), 4), "p10": round(float(q[0]), 4),
            "p50": round(float(q[1]), 4), "p90": round(float(q[2]), 4)}


def _bas(root: str | os.PathLike, split: str, limit: int) -> dict[str, dict[str, list[float]]]:
    """BAS of each mix over the first `limit` clips (decodes audio): against the first object over all
    frames (`bas_report`), and against every object over the frames it dominates (`dominant_bas`)."""
    out: dict[str, dict[str, list[float]]] = {"all": {m: [] for m in MIXES}, "dominant": {m: [] for m in MIXES}}
    seen = 0
    for path in _shards(root, split):
        if seen >= limit:
            break
        for _, files in iter_shard(path):
            rec = decode(files, MIXES, frames=False, stems=True)
            sr = rec.meta["sr"]
            for m, vals in bas_report(rec.mixes, rec.tracks[:1], sr).items():
                out["all"][m] += [v for v in vals if v is not None]
            for m in MIXES:
                vals = dominant_bas(rec.mixes[m], rec.stems, rec.ambience, rec.tracks, sr)
                out["dominant"][m] += [v for v in vals if not np.isnan(v)]
            seen += 1
            if seen >= limit:
                break
    return out


def world_stats(root: str | os.PathLike, bas_clips: int = 50) -> dict:
    """Per split: clip count, histograms of classes, motions, backgrounds, dataset styles, object counts;
    Stereo-Score quantiles per mix; BAS quantiles per mix over the first `bas_clips` clips (see `_bas`)."""
    doc = read_manifest(root)
    out = {}
    for split in doc["splits"]:
        h = {k: Counter() for k in ("class", "motion", "backdrop", "dataset_style", "objects")}
        ss: dict[str, list[float]] = {m: [] for m in MIXES}
        n = 0
        for meta in iter_meta(root, split):
            n += 1
            for o in meta["objects"]:
                h["class"][o["class"]] += 1
                h["motion"][o["motion"]] += 1
            h["backdrop"][meta["backdrop"]] += 1
            h["dataset_style"][meta["dataset_style"]] += 1
            h["objects"][str(len(meta["objects"]))] += 1
            for m in MIXES:
                ss[m].append(meta["stereo_score"][m])
        bas = _bas(root, split, bas_clips) if bas_clips > 0 and n else {"all": {}, "dominant": {}}
        out[split] = {"clips": n, **{k: dict(sorted(v.items())) for k, v in h.items()},
                      "stereo_score": {m: _quantiles(v) for m, v in ss.items()},
                      "bas_first_object": {m: _quantiles(v) for m, v in bas["all"].items()},
                      "bas_dominant": {m: _quantiles(v) for m, v in bas["dominant"].items()}}
    if not out:
        raise WorldError(f"{root} holds no split yet")
    return out


def format_stats(stats: dict) -> str:
    """A plain-text report of `world_stats`."""
    lines = []
    for split, s in stats.items():
        lines.append(f"== {split}: {s['clips']} clips")
        for key in ("objects", "class", "motion", "backdrop", "dataset_style"):
            total = max(1, sum(s[key].values()))
            lines.append(f"  {key}:")
            lines += [f"    {k:<14} {v:6d}  {'#' * int(40 * v / total)}" for k, v in s[key].items()]
        for title, key in (("Stereo-Score", "stereo_score"), ("BAS, first object, all frames", "bas_first_object"),
                           ("BAS, each object where it dominates", "bas_dominant")):
            lines.append(f"  {title}:  mean    p10    p50    p90")
            for m, q in s[key].items():
                if q:
                    lines.append(f"    {m:<10} {q['mean']:6.3f} {q['p10']:6.3f} {q['p50']:6.3f} {q['p90']:6.3f}")
    return "\n".join(lines)
