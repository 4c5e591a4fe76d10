"""`foley train <model>`: one verb for every model on the shared loop (foley.train); each model's task
module gives its own options (`add_arguments`) and run (`run_from_args`)."""
from __future__ import annotations

import argparse
import importlib

MODELS = {  # model -> (task module, help)
    "codec": ("foley.train.codec", "the stereo codec, on Procedural Foley world clips and procedural tonal audio"),
    "dit": ("foley.train.dit", "the StereoFoley DiT (base on the dataset mix, obj fine-tuned on objaware)"),
    "reactor": ("foley.train.reactor", "SoundReactor (online): diffusion pre-training, then --stage ect consistency tuning"),
    "clap": ("foley.train.clap", "the joint audio-text embedding, on world stems, ambiences and mixes with captions"),
    "sounding": ("foley.train.sounding", "the sounding-object detector: where the object heard in each frame is"),
}


def _cmd_train(a: argparse.Namespace) -> None:
    path = importlib.import_module(MODELS[a.model][0]).run_from_args(a)
    print(f"wrote {path} (resume with --resume --out {a.out}; curves in {a.out}/log.csv)")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register `train <model>` for every model in MODELS."""
    t = subparsers.add_parser("train", help="train a model (CPU, one GPU, or DDP under torchrun)")
    tsub = t.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, (module, text) in MODELS.items():
        p = tsub.add_parser(name, help=text)
        importlib.import_module(module).add_arguments(p)
        reads = tuple(d for d in ("init",) if any(a.dest == d for a in p._actions))
        p.set_defaults(func=_cmd_train, reads=reads, writes=(), folders=("out",))  # fills its run folder
