"""`foley world export`: clips of a world split as a V2A benchmark that `foley eval` scores directly.

Layout of the output folder, per clip `key`::

    OUT/key.mp4             the frames at the world's fps, silent (what a generator is given)
    OUT/key.json            ground truth (foley.truth/1): captions, classes, event times per object, tracks
    OUT/<mix>/key.flac      the reference audio of each mix (objaware, dataset, mono), 48 kHz stereo

so `foley eval GENERATED --ref OUT/objaware --truth OUT` scores a generator's output with one command.
Every file is written atomically; clips already exported are skipped, so an interrupted export resumes.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from foley.world.audio import MIXES
from foley.world.scene import WorldError

TRUTH_SCHEMA = "foley.truth/1"


def truth_document(meta: dict) -> dict:
    """The ground-truth JSON of a clip: the world's metadata, plus the joined caption and the class list."""
    objects = meta["objects"]
    return {**meta, "schema": TRUTH_SCHEMA, "world_schema": meta.get("schema"),
            "caption": "; ".join(meta["captions"]), "classes": [o["class"] for o in objects]}


def _clips(root: Path, split: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    from foley.world.shards import iter_shard, read_manifest

    doc = read_manifest(root)
    if split not in doc["splits"]:
        raise WorldError(f"{root} has no {split!r} split (it has {sorted(doc['splits'])})")
    for name in doc["splits"][split]["shards"]:
        path = root / split / name
        if not path.is_file():
            raise WorldError(f"{path} is missing: finish the world with the same `foley world make` command")
        yield from iter_shard(path)


def export(root: str | os.PathLike, out: str | os.PathLike, split: str = "test", n: int | None = None,
           mixes: tuple[str, ...] = MIXES, progress: bool = True) -> int:
    """Export the first n clips (all if None) of a split; returns how many clips the folder now holds."""
    from tqdm import tqdm

    from foley.files import atomic_output
    from foley.io import write_audio, write_video
    from foley.world.record import decode

    if n is not None and n < 1:
        raise WorldError(f"--n must be >= 1, got {n}")
    bad = [m for m in mixes if m not in MIXES]
    if bad:
        raise WorldError(f"unknown mixes {bad}; choose from {MIXES}")
    root, out = Path(root), Path(out)
    if out.exists() and not out.is_dir():
        raise WorldError(f"--out {out} exists and is not a folder")
    for m in mixes:
        (out / m).mkdir(parents=True, exist_ok=True)
    done = 0
    bar = tqdm(total=n, desc=f"export {split}", disable=not progress)
    for key, files in _clips(root, split):
        if n is not None and done >= n:
            break
        truth = out / f"{key}.json"
        if not truth.is_file():  # the JSON is written last: its presence marks a finished clip
            rec = decode(files, mixes, stems=False)
            write_video(out / f"{key}.mp4", iter(rec.frames), rec.meta["fps"])
            for m in mixes:
                write_audio(out / m / f"{key}.flac", rec.mixes[m], rec.meta["sr"])
            with atomic_output(truth) as tmp:
                tmp.write_text(json.dumps(truth_document(rec.meta), indent=1))
        done += 1
        bar.update(1)
    bar.close()
    return done
