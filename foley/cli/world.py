"""`foley world make | preview | stats`: the command line of the procedural world (thin over the library)."""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

from foley.world.scene import PRESETS, SPLITS, WorldConfig, WorldError


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 224x224, got {text!r}")
    return w, h


def _config(a: argparse.Namespace) -> WorldConfig:
    """The preset with the options given on the command line applied."""
    if a.preset not in PRESETS:
        raise WorldError(f"unknown preset {a.preset!r}; choose one of {sorted(PRESETS)}")
    changes = {k: v for k, v in (("seconds", a.seconds), ("fps", a.fps)) if v is not None}
    if a.size:
        changes["width"], changes["height"] = a.size
    for k in ("clips_per_shard", "dual_mono_share", "jpeg_quality"):
        if getattr(a, k, None) is not None:  # 0 is a value, not "unset"
            changes[k] = getattr(a, k)
    if getattr(a, "masks", False):
        changes["masks"] = True
    return replace(PRESETS[a.preset], **changes)


def _cmd_make(a: argparse.Namespace) -> None:
    from foley.world.shards import make_world

    n = make_world(a.out, a.n, a.split, a.seed, _config(a), workers=a.workers, rank=a.rank,
                   world_size=a.world_size, progress=not a.quiet)
    print(f"wrote {n} {a.split} clips to {a.out} (finished shards are skipped on re-runs)")


def _cmd_preview(a: argparse.Namespace) -> None:
    from foley.world.preview import preview

    for i, c in enumerate(preview(a.output, a.n, a.seed, a.split, _config(a), a.mix)):
        print(f"[{i}] {c}")
    print(f"wrote {a.output}")


def _cmd_stats(a: argparse.Namespace) -> None:
    from foley.world.stats import format_stats, world_stats

    s = world_stats(a.dir, bas_clips=a.bas_clips)
    print(json.dumps(s, indent=1) if a.json else format_stats(s))


def _cmd_export(a: argparse.Namespace) -> None:
    from foley.world.export import export

    n = export(a.dir, a.out, a.split, a.n, tuple(a.mixes.split(",")), progress=not a.quiet)
    print(f"{a.out} holds {n} {a.split} clips: key.mp4 (silent), key.json (ground truth), <mix>/key.flac; "
          f"score a generator with `foley eval GENERATED --ref {a.out}/objaware --truth {a.out}`")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    p.add_argument("--split", choices=SPLITS, default="train", help="train (default) | val | test")
    p.add_argument("--preset", default="default", help=f"clip format preset: {' | '.join(PRESETS)} (default: default)")
    p.add_argument("--seconds", type=float, help="clip length (default 4)")
    p.add_argument("--fps", type=int, choices=(25, 30), help="frame rate (default 25)")
    p.add_argument("--size", type=_size, help="frame size WxH (default 224x224)")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register `world` and its sub-verbs on the main CLI's subparsers."""
    w = subparsers.add_parser("world", help="procedural audio-visual clips with exact ground truth")
    sub = w.add_subparsers(dest="world_verb", required=True, metavar="SUBVERB")

    m = sub.add_parser("make", help="write N clips as tar shards (parallel, resumable, rank-aware)")
    m.add_argument("--out", required=True, help="output folder")
    m.add_argument("--n", type=int, required=True, help="clips in the split")
    m.add_argument("--workers", type=int, default=1, help="processes on this machine (default 1)")
    _common(m)
    m.add_argument("--masks", action="store_true", help="also store per-object masks")
    m.add_argument("--clips-per-shard", type=int, help="clips per tar shard (default 32)")
    m.add_argument("--dual-mono-share", type=float, help="share of dual-mono `dataset` mixes (default 0.27)")
    m.add_argument("--jpeg-quality", type=int, help="JPEG quality of the frames (default 80)")
    m.add_argument("--rank", type=int, help="this machine's index (default: $RANK or $SLURM_PROCID, else 0)")
    m.add_argument("--world-size", type=int, help="machines in all (default: $WORLD_SIZE or $SLURM_NTASKS, else 1)")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.set_defaults(func=_cmd_make, reads=(), writes=(), folders=("out",))

    p = sub.add_parser("preview", help="MP4 of a few clips with their captions, to watch and listen to")
    p.add_argument("-o", "--output", default="world-preview.mp4", help="output .mp4 (default world-preview.mp4)")
    p.add_argument("--n", type=int, default=4, help="clips (default 4)")
    p.add_argument("--mix", default="objaware", help="objaware (default) | dataset | mono")
    _common(p)
    p.set_defaults(func=_cmd_preview, reads=(), writes=("output",))

    x = sub.add_parser("export", help="clips of a split as silent MP4s, reference FLACs and ground-truth JSONs")
    x.add_argument("dir", help="world folder")
    x.add_argument("--split", choices=SPLITS, default="test", help="test (default) | val | train")
    x.add_argument("--n", type=int, help="first N clips (default: all)")
    x.add_argument("--mixes", default="objaware,dataset,mono", help="reference mixes (default: all three)")
    x.add_argument("--out", required=True, help="output folder (re-running skips clips already exported)")
    x.add_argument("--quiet", action="store_true", help="no progress bar")
    x.set_defaults(func=_cmd_export, reads=(), writes=(), folders=("out",))

    s = sub.add_parser("stats", help="class and motion histograms, Stereo-Score and BAS per mix")
    s.add_argument("dir", help="world folder")
    s.add_argument("--bas-clips", type=int, default=50, help="clips decoded per split for BAS (default 50, 0 = none)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=_cmd_stats, reads=(), writes=())
