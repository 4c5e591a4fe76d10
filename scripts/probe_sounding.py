"""Which object sounds: can it be read from the picture at all, and from the shipped DiT's video features?

The shipped obj puts the sound on another object in 30% of the frames where one object of several dominates
(docs/benchmarks.md). This asks where that is lost. A small probe (`foley.models.video.SoundingHead`: two temporal convolutions
over per-frame features) is trained, with the world's exact ground truth, to name the position bin (left, centre, right; BAS's bins)
of the object that dominates each frame, and scored on held-out clips over the frames where one object dominates:

- `obj features`: the shipped obj's frame encoder, frozen (what the DiT is given);
- `fresh CNN`: the same encoder architecture trained with the probe (what a 32 px picture allows);
- a DiT trained with `--sounding-weight` (`--model PATH`): its own sounding head, as trained;
- baselines from the ground truth: the largest object's bin, the most moving object's bin, a random object's bin.

    python scripts/probe_sounding.py --train 1500 --test 300 --steps 1500
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from foley.metrics import position_bin
from foley.models.dit import checkpoint_path, load_dit
from foley.models.video import FrameEncoder, SoundingHead, resize_frames
from foley.train.dit import sounding_loss
from foley.world import PRESETS as WORLD, render, sample_scene, synthesize
from foley.world.checks import dominant_frames


def clips(n: int, split: str, size: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """n world clips: frames (n, T, 3, S, S) uint8, per object (n, 3, T) dominant mask, bin, area, and motion."""
    cfg = replace(WORLD["tiny"], seconds=4.0, fps=25, width=96, height=96)
    fr = np.empty((n, round(cfg.seconds * cfg.fps), 3, size, size), np.uint8)  # filled in place: a list of small
    dom, bins, area, motion = [], [], [], []  # arrays among freed large ones fragments the heap (~9 MB per clip)
    for i in range(n):
        scene = sample_scene(cfg, seed, split, i)
        r = render(scene)
        snd = synthesize(scene, r)
        t = r.frames.shape[0]
        f = torch.from_numpy(r.frames).permute(0, 3, 1, 2)[None]
        fr[i] = resize_frames(f, size)[0].numpy()
        d = np.zeros((3, t), bool)
        b = np.zeros((3, t), np.int8)
        a = np.zeros((3, t), np.float32)
        m = np.zeros((3, t), np.float32)
        d[: len(r.tracks)] = dominant_frames(snd.stems, snd.ambience, r.tracks, cfg.sr)
        for o, tr in enumerate(r.tracks):
            b[o] = position_bin(tr.x)
            a[o] = np.nan_to_num(tr.mass) + 1e-6  # > 0 marks the object as present
            m[o] = np.nan_to_num(np.abs(np.gradient(tr.x)) + np.abs(np.gradient(tr.y)))
        dom.append(d), bins.append(b), area.append(a), motion.append(m)
    return {"frames": fr, **{k: np.stack(v) for k, v in dict(dom=dom, bins=bins, area=area, motion=motion).items()}}


def target(d: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per frame: the dominant object's bin as a class 0..2 (-1 where none dominates), and whether the clip has
    several objects."""
    dom, bins = d["dom"], d["bins"]
    any_dom = dom.any(1)  # (n, T)
    cls = np.where(any_dom, (bins * dom).sum(1) + 1, -1)
    several = (np.abs(d["area"]).sum(-1) > 0).sum(1) >= 2  # objects present
    return torch.from_numpy(cls).long(), torch.from_numpy(any_dom), torch.from_numpy(several)


def score(pred: np.ndarray, d: dict[str, np.ndarray]) -> tuple[float, float, float]:
    """Fraction of dominated frames whose predicted bin (-1, 0, 1) is the dominant object's: all, several objects,
    and the share of misses that fall on another object's bin."""
    cls, any_dom, several = (x.numpy() for x in target(d))
    right = pred == cls - 1
    sev = any_dom & several[:, None]
    other = np.zeros_like(right)
    for o in range(3):
        present = d["area"][:, o] > 0
        other |= (d["bins"][:, o] == pred) & present & ~d["dom"][:, o]
    miss = any_dom & ~right
    return float(right[any_dom].mean()), float(right[sev].mean()), float((other & miss)[sev].sum() / max(1, (sev & ~right).sum()))


def baselines(d: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    present = d["area"] > 0
    n_obj = present.any(-1).sum(1)
    largest = np.take_along_axis(d["bins"], d["area"].argmax(1)[:, None], 1)[:, 0]
    moving = np.take_along_axis(d["bins"], np.where(present, d["motion"], -1).argmax(1)[:, None], 1)[:, 0]
    pick = rng.integers(0, 1 << 30, size=len(n_obj)) % np.maximum(n_obj, 1)
    random_obj = d["bins"][np.arange(len(n_obj)), pick]
    return {"largest object (truth)": largest, "most moving object (truth)": moving, "a random object (truth)": random_obj}


def train_probe(encoder: nn.Module, frozen: bool, train: dict, test: dict, steps: int, batch: int, lr: float,
                log: str) -> np.ndarray:
    w = encoder.proj.out_features
    probe = SoundingHead(w)
    params = list(probe.parameters()) + ([] if frozen else list(encoder.parameters()))
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    frames = torch.from_numpy(train["frames"])
    cls = target(train)[0]
    encoder.train(not frozen)
    g = torch.Generator().manual_seed(0)
    t0 = time.time()
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(frames), (batch,), generator=g)
        for pg in opt.param_groups:
            pg["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        with torch.set_grad_enabled(not frozen):
            v = encoder(frames[idx])
        loss = sounding_loss(probe(v.detach() if frozen else v), cls[idx])  # the training task's own loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == 1:
            print(f"{log} step {step} loss {loss.item():.3f} ({time.time() - t0:.0f} s)", flush=True)
    encoder.eval()
    with torch.no_grad():
        out = [probe(encoder(torch.from_numpy(test["frames"][i:i + 32]))).argmax(-1) - 1
               for i in range(0, len(test["frames"]), 32)]
    return torch.cat(out).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=int, default=1500)
    p.add_argument("--test", type=int, default=300)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--model", default="obj")
    p.add_argument("--only", default="", help="frozen|fresh|none: run one probe, or none (baselines, own head)")
    a = p.parse_args()
    torch.manual_seed(0)
    t0 = time.time()
    train, test = clips(a.train, "train"), clips(a.test, "test")
    print(f"clips made in {time.time() - t0:.0f} s", flush=True)
    rows = {name: score(pred, test) for name, pred in baselines(test, np.random.default_rng(0)).items()}
    dit, _ = load_dit(checkpoint_path(a.model))
    if dit.cfg.sounding:  # a model trained with --sounding-weight: its own head, as trained
        with torch.no_grad():
            pred = torch.cat([dit.sounding_head(dit.video(torch.from_numpy(test["frames"][i:i + 32]))).argmax(-1) - 1
                              for i in range(0, len(test["frames"]), 32)]).numpy()
        rows[f"{a.model}: its own sounding head"] = score(pred, test)
    if a.only in ("", "frozen"):
        enc = dit.video.float()
        for q in enc.parameters():
            q.requires_grad_(False)
        rows[f"{a.model} features, frozen"] = score(train_probe(enc, True, train, test, a.steps, a.batch, 1e-3, "frozen"), test)
    if a.only in ("", "fresh"):
        enc = FrameEncoder(dit.video.proj.out_features, 32, dit.cfg.causal_video)
        rows["fresh CNN, trained with the probe"] = score(train_probe(enc, False, train, test, a.steps, a.batch, 1e-3, "fresh"), test)
    print("\n| predictor | dominant bin right, all | several objects | misses on another object |\n|---|---|---|---|")
    for k, (x, y, z) in rows.items():
        print(f"| {k} | {x:.3f} | {y:.3f} | {z:.3f} |")


if __name__ == "__main__":
    main()
