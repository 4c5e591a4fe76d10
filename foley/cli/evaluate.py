"""`foley eval`: the V2A metrics suite over a folder, or one file's stereo placement against a track."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from foley.errors import FoleyError


def _cmd_eval(a: argparse.Namespace) -> None:
    if a.audio or a.track:
        return _one_file(a)
    if not a.generated:
        raise FoleyError("give a folder of generated clips (GENERATED --ref REFERENCES), or --audio FILE --track TRACKS")
    from foley import evaluate as ev
    from foley.models.clap import load_clap
    from foley.models.embedders import load_embedder

    external = dict(load_embedder(spec, a.mono_type, a.trust_weights) for spec in a.embedder)
    pairs, problems = ev.find_pairs(a.generated, a.ref, a.truth)
    rep = ev.evaluate(pairs, load_clap(a.embedding), external, problems=problems, mono_type=a.mono_type)
    for p in rep.problems:
        print(f"foley: warning: {p}", file=sys.stderr)
    print(ev.format_summary(rep))
    written = []
    if a.json and a.json != "-":
        ev.write_json(a.json, rep)
        written.append(a.json)
    elif a.json == "-":
        print(json.dumps({"summary": rep.summary, "clips": rep.clips, "problems": rep.problems}, indent=1))
    if a.csv:
        ev.write_csv(a.csv, rep)
        written.append(a.csv)
    if a.plots:
        from foley.plot import plot_eval

        keys = ("sync_f1", "onset_f1", "clap", "kl", "stereo_score", "bas_all")
        written += [str(p) for p in plot_eval(a.plots, rep.clips, ev.worst(rep, pairs), keys)]
    if written:
        print("wrote " + ", ".join(written))


def _one_file(a: argparse.Namespace) -> None:
    from foley import pipeline

    if not (a.audio and a.track):
        raise FoleyError("one file's stereo placement needs both --audio and --track")
    rep = pipeline.evaluate_file(a.audio, a.track, centre=a.centre, index=a.index)
    if a.json:
        print(json.dumps(rep.as_dict(), indent=2))
    else:
        print(pipeline.report_table({Path(a.audio).name: rep}))
        print(f"frames: {rep.frames_in} in-frame, {rep.frames_off} off-frame, {rep.frames_silent} silent (left out)")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    e = subparsers.add_parser(
        "eval", help="score generated audio: FD, MMD, KL, IS, CLAP, sync F1, Stereo-Score, BAS",
        description="foley eval GENERATED --ref REFERENCES [--truth DIR] [--json FILE]: a folder of generated "
                    "clips against references matched by file stem (or GENERATED = a CSV with columns generated, "
                    "reference[, truth]). Or: foley eval --audio FILE --track TRACKS, one file's stereo placement.")
    e.add_argument("generated", nargs="?", help="folder of generated audio/video files, or a CSV of pairs")
    e.add_argument("--ref", help="folder of reference clips, matched by file stem")
    e.add_argument("--truth", help="folder of ground-truth JSONs (`foley world export`): events, tracks, captions")
    e.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write {summary, clips} to FILE (alone: print JSON)")
    e.add_argument("--csv", metavar="FILE", help="per-clip metrics as CSV")
    e.add_argument("--plots", metavar="DIR", help="write metrics.png and onsets.png (worst clips) into DIR")
    e.add_argument("--embedding", help="joint embedding checkpoint (default: the shipped clap_tiny.pt)")
    e.add_argument("--embedder", action="append", default=[], metavar="NAME=WEIGHTS",
                   help="also FD on an external embedder from local weights: panns=Cnn14.pth, vggish=vggish.pth "
                        "(repeatable)")
    e.add_argument("--trust-weights", action="store_true",
                   help="let --embedder files hold pickled objects besides tensors (only for files you trust)")
    e.add_argument("--mono-type", default="mean", choices=("mean", "left", "right", "side"),
                   help="downmix for external embedders (default mean)")
    e.add_argument("--audio", help="one stereo file (with --track): Stereo-Score, BAS and pan error")
    e.add_argument("--track", help="tracks JSON/CSV for --audio")
    e.add_argument("--index", type=int, default=0, help="which track of the file (default 0, the best)")
    e.add_argument("--centre", type=float, default=0.05, help="half-width of the centre bin (default 0.05)")
    e.set_defaults(func=_cmd_eval, reads=("generated", "ref", "truth", "embedding", "audio", "track"),
                   writes=("json", "csv"), folders=("plots",))
