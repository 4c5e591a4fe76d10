"""`foley generate`: stereo audio for a video (or a folder / CSV of videos) with the StereoFoley DiT."""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

from foley.errors import FoleyError

VIDEO_EXT = (".mp4", ".mov", ".mkv", ".webm", ".avi")


def _jobs(source: Path, out: Path) -> list[tuple[Path, Path, str | None]]:
    """(video, output, prompt) for a batch: a folder of videos, or a CSV with columns video[, prompt]."""
    if source.suffix.lower() == ".csv":
        with open(source, newline="") as f:
            rows = [(source.parent / r["video"], r.get("prompt") or None) for r in csv.DictReader(f)]
    else:
        rows = [(p, None) for p in sorted(source.iterdir()) if p.suffix.lower() in VIDEO_EXT]
    if not rows:
        raise FoleyError(f"{source}: no videos to generate for")
    return [(v, out / f"{v.stem}.mp4", p) for v, p in rows]


def _cmd_generate(a: argparse.Namespace) -> None:
    from tqdm import tqdm

    from foley.generate import MIRROR, Generator, Settings

    st = Settings(a.cfg_strength, a.num_steps, a.sampler, a.seed, MIRROR if a.mirror is None else a.mirror, a.steer)
    src = Path(a.video)
    gen = Generator(a.model, a.device, a.sounding)
    kw = dict(audio_prompt=a.audio_prompt, duration=a.duration, settings=st)
    if _is_batch(a):
        out = Path(a.output or "generated")
        out.mkdir(parents=True, exist_ok=True)
        jobs = _jobs(src, out)
        todo = [j for j in jobs if not j[1].exists()]  # resume: finished outputs are kept
        for video, target, prompt in tqdm(todo, desc="generate"):
            gen.write(video, target, prompt=prompt or a.prompt, **kw)
        print(f"wrote {len(todo)} clips into {out} ({len(jobs) - len(todo)} were already there)")
        return
    out = a.output or f"{src.stem}_foley.mp4"
    gen.write(src, out, prompt=a.prompt, **kw)
    print(f"wrote {out}")


def _is_batch(a: argparse.Namespace) -> bool:
    src = Path(a.video)
    return src.is_dir() or src.suffix.lower() == ".csv"


def _paths(a: argparse.Namespace) -> None:
    """A batch writes a folder: check -o as one."""
    if _is_batch(a):
        a.writes, a.folders = (), ("output",)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    g = subparsers.add_parser("generate", help="generate object-aware stereo audio for a video (StereoFoley DiT)")
    g.add_argument("video", help="a video, or a folder / CSV (columns video[, prompt]) for a batch")
    g.add_argument("-o", "--output", help="output .mp4/.mov/.mkv (video copied) or .wav/.flac; a folder for a batch")
    g.add_argument("--prompt", help="text guidance, e.g. 'a dog barking'")
    g.add_argument("--audio-prompt", help="an audio example to match (its joint embedding)")
    g.add_argument("--model", default="obj", help="obj (default, object-aware) | base | a dit.pt checkpoint")
    g.add_argument("--duration", type=float, help="seconds from the start (default: the whole video)")
    g.add_argument("--cfg-strength", "--cfg_strength", dest="cfg_strength", type=float, default=6.0,
                   help="classifier-free guidance (default 6)")
    g.add_argument("--num-steps", "--num_steps", dest="num_steps", type=int, default=100,
                   help="sampler steps (default 100)")
    g.add_argument("--sampler", default="ddim", help="ddim (default) | euler | dpmpp_2m")
    g.add_argument("--mirror-guidance", dest="mirror", type=float, default=None,
                   help="push each sound away from the side it would take in the mirrored picture (default: "
                        "foley.generate.MIRROR, 3; 0: the paper's sampling, about a fifth faster)")
    g.add_argument("--steer", type=float, default=None,
                   help="move each frame's sound this share of the way (0..1) towards the object the sounding detector "
                        "sees heard (default: foley.generate.STEER for obj, 0 for base; 0: the DiT's placement)")
    g.add_argument("--sounding", help="a sounding detector checkpoint (default: the shipped one)")
    g.add_argument("--seed", type=int, default=0, help="the same seed gives the same audio")
    g.add_argument("--device", default="cpu", help="cpu (default) or cuda: where the DiT, the codec and the detector run")
    g.set_defaults(func=_cmd_generate, reads=("video", "audio_prompt", "sounding"), writes=("output",), paths=_paths)
