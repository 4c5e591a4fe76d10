"""`foley train clap`: the joint audio–text embedding's task on the shared loop (foley.train.loop).

    foley train clap --out runs/clap                  # CPU, about an hour; --resume after a stop

Data: scenes of the Procedural Foley world made from (seed, split, index). Each scene gives its objects'
dry stems (caption: the object's caption), its ambience bed (the backdrop's caption) and its objaware mix
(all captions joined), as log-mel spectrograms computed once and cached in the run folder (`pool-*.pt`).
The batch of step s is a pure function of (seed, s, rank): random items, a random 3 s crop, a random gain.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foley.files import atomic_output
from foley.models.clap import FORMAT, Clap, ClapBatch, ClapConfig, LogMel, build_vocab, save_clap
from foley.train.loop import (LoopConfig, NoAux, TrainError, add_loop_arguments, export_ema, loop_config, resume_configs,
                              train, with_steps)

AMBIENCE = "ambience"
KINDS = ("stem", "ambience", "mix")


def class_labels() -> tuple[str, ...]:
    """The class head's labels: the world's object classes, sorted, then "ambience"."""
    from foley.world.objects import CLASSES

    return tuple(sorted(CLASSES)) + (AMBIENCE,)


@dataclass(frozen=True)
class ClapTaskConfig:
    """What decides a CLAP run besides the loop; saved in every run checkpoint."""

    scenes: int = 3000  # train scenes in the pool
    val_scenes: int = 100
    seconds: float = 4.0
    crop_frames: int = 150  # 3 s at 50 mel frames/s
    gain_db: float = 6.0  # random gain +-, applied to the log-mel
    workers: int = 2  # processes making the pool
    seed: int = 0

    def __post_init__(self) -> None:
        if self.scenes < 2 or self.val_scenes < 2 or self.crop_frames < 16 or self.seconds <= 0.5:
            raise TrainError("scenes and val-scenes must be >= 2, crop-frames >= 16, seconds > 0.5")


# ---------------------------------------------------------------------- data

@dataclass
class Pool:
    """Items in memory: log-mels, captions, soft class targets, item kind and class (stems), scene index."""

    mel: torch.Tensor  # (P, n_mels, T) float16
    captions: list[str]
    targets: torch.Tensor  # (P, n_classes)
    kind: list[str]
    label: list[str]  # class of a stem, "ambience", or the classes of a mix joined by "+"
    scene: list[int]

    def select(self, kind: str) -> list[int]:
        return [i for i, k in enumerate(self.kind) if k == kind]


def _scene_items(args: tuple[int, str, int, float]) -> list[tuple[torch.Tensor, str, str, str, list[str], int]]:
    """(log-mel (n_mels, T) float16, caption, kind, label, classes, index) of every item of one world scene."""
    from foley.world import PRESETS as WORLD, render, sample_scene, synthesize
    from foley.world.backgrounds import BACKDROPS

    torch.set_num_threads(1)
    seed, split, index, seconds = args
    scene = sample_scene(replace(WORLD["tiny"], seconds=seconds), seed, split, index)
    sound = synthesize(scene, render(scene))
    classes = sorted({o.cls for o in scene.objects})
    audio = np.stack(list(sound.stems) + [sound.ambience, sound.mixes["objaware"].mean(0)]).astype(np.float32)
    with torch.no_grad():
        mels = LogMel(ClapConfig())(torch.from_numpy(audio)).half()  # (O + 2, M, T)
    out = [(m, o.caption, "stem", o.cls, [o.cls], index) for m, o in zip(mels, scene.objects)]
    out.append((mels[-2], BACKDROPS[scene.backdrop].caption(scene.amount), "ambience", AMBIENCE, [AMBIENCE], index))
    out.append((mels[-1], "; ".join(scene.captions), "mix", "+".join(classes), classes, index))
    return out


def make_pool(n: int, split: str, seed: int, seconds: float, workers: int = 1, progress: bool = True) -> Pool:
    """The items of scenes 0..n-1 of (seed, split), their log-mels computed with the model's front end."""
    from tqdm import tqdm

    labels = class_labels()
    jobs = [(seed, split, i, seconds) for i in range(n)]
    rows: list = []
    with (mp.get_context("spawn").Pool(workers) if workers > 1 else _Serial()) as ex:
        for items in tqdm(ex.imap(_scene_items, jobs, chunksize=8), total=n, desc=f"clap pool {split}",
                          disable=not progress):
            rows.extend(items)
    targets = torch.zeros(len(rows), len(labels))
    for i, r in enumerate(rows):
        targets[i, [labels.index(c) for c in r[4]]] = 1.0 / len(r[4])
    return Pool(torch.stack([r[0] for r in rows]), [r[1] for r in rows], targets, [r[2] for r in rows],
                [r[3] for r in rows], [r[5] for r in rows])


class _Serial:
    """A stand-in for a process pool that maps in this process."""

    def __enter__(self) -> "_Serial":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def imap(self, f, it, chunksize: int = 1):  # noqa: ANN001
        return map(f, it)


def cached_pool(folder: Path, n: int, split: str, seed: int, seconds: float, workers: int) -> Pool:
    """make_pool, cached as folder/pool-<split>-<n>-<seed>-<seconds>.pt (written atomically)."""
    path = folder / f"pool-{split}-{n}-{seed}-{seconds:g}.pt"
    if path.is_file():
        try:
            return Pool(**torch.load(path, weights_only=True))
        except Exception:  # a damaged cache is remade
            pass
    pool = make_pool(n, split, seed, seconds, workers)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        torch.save(asdict(pool), tmp)
    return pool


def batch_at(pool: Pool, step: int, rank: int, n: int, crop: int, gain_db: float, seed: int) -> ClapBatch:
    """Batch of `step` on `rank`: n random items, a random crop of `crop` frames each, a random gain."""
    rng = np.random.default_rng([seed, step, rank, 7])
    idx = rng.choice(len(pool.captions), size=n, replace=False)
    t = pool.mel.shape[-1]
    starts = rng.integers(0, max(1, t - crop + 1), size=n)
    mel = torch.stack([pool.mel[i, :, s:s + crop] for i, s in zip(idx, starts)]).float()  # (n, M, crop)
    gain = torch.from_numpy(rng.uniform(-gain_db, gain_db, n) * np.log(10) / 10).float()
    return ClapBatch(mel + gain[:, None, None], [pool.captions[i] for i in idx], pool.targets[idx])


# ---------------------------------------------------------------------- measures

def recall_at(sim: torch.Tensor, truth: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """Text->audio recall: sim (Q, A) scores, truth (Q, A) bool relevant pairs; share of queries with a hit in top k."""
    order = sim.argsort(1, descending=True)
    hits = torch.gather(truth, 1, order)
    return {k: float(hits[:, :k].any(1).float().mean()) for k in ks}


@torch.no_grad()
def audio_embeddings(model: Clap, pool: Pool, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, joint embeddings) of pool items (whole clips)."""
    feats = torch.cat([model.audio(pool.mel[idx[a:a + 64]].float().to(model.device)) for a in range(0, len(idx), 64)])
    return feats, model.joint(feats)


def class_prompts(cls: str) -> list[str]:
    """The captions of a class over its colours, without place words (zero-shot prompts)."""
    from foley.world.objects import CLASSES

    c = CLASSES[cls]
    return [c.caption.format(c=col) for col in c.colours]


@torch.no_grad()
def measure(model: Clap, pool: Pool) -> dict[str, float]:
    """Retrieval, zero-shot and baseline figures of a model on a pool (see docs/benchmarks.md)."""
    model.eval()
    out: dict[str, float] = {}
    for kind in ("mix", "stem"):
        idx = pool.select(kind)
        caps = [pool.captions[i] for i in idx]
        _, a = audio_embeddings(model, pool, idx)
        truth = torch.tensor([[x == y for y in caps] for x in caps])
        for name, t in (("", model.embed_text(caps)), ("bow_", model.embed_bow(caps))):
            r = recall_at(t @ a.T, truth)
            out[f"{name}{kind}_r1"], out[f"{name}{kind}_r5"] = r[1], r[5]
        out[f"chance_{kind}_r1"] = float(truth.float().sum(1).mean() / len(idx))
        labels = [pool.label[i] for i in idx]
        means = {c: a[[j for j, lab in enumerate(labels) if lab == c]].mean(0) for c in set(labels)}
        a_cls = torch.nn.functional.normalize(torch.stack([means[c] for c in labels]), dim=-1)
        r = recall_at(model.embed_text(caps) @ a_cls.T + 1e-6 * torch.rand(len(idx), len(idx)), truth)
        out[f"classmean_{kind}_r1"], out[f"classmean_{kind}_r5"] = r[1], r[5]
    stems = pool.select("stem")
    feats, a = audio_embeddings(model, pool, stems)
    names = sorted({pool.label[i] for i in stems} | set(class_labels()[:-1]))
    protos = torch.nn.functional.normalize(torch.stack([model.embed_text(class_prompts(c)).mean(0) for c in names]), dim=-1)
    truth = [names.index(pool.label[i]) for i in stems]
    out["zeroshot_acc"] = float(np.mean([int(p) == t for p, t in zip((a @ protos.T).argmax(1), truth)]))
    head = class_labels()
    out["head_acc"] = float(np.mean([head[int(p)] == pool.label[i] for p, i in zip(model.head(feats).argmax(1), stems)]))
    out["chance_zeroshot"] = 1.0 / len(names)
    return out


# ---------------------------------------------------------------------- task

class ClapTask(NoAux):
    """The joint embedding on the shared loop."""

    name, fmt = "clap", FORMAT
    csv_fields = ("total", "nce", "cls", "bow", "val_mix_r1", "val_mix_r5", "val_stem_r1", "val_zeroshot_acc",
                  "val_bow_mix_r1", "val_head_acc")

    def __init__(self, tc: ClapTaskConfig, cfg: ClapConfig | None = None, pool: Pool | None = None,
                 val: Pool | None = None, folder: Path | None = None) -> None:
        self.tc, self.folder = tc, folder or Path("runs/clap")
        self.pool, self.val = pool, val
        self.cfg = cfg or ClapConfig(classes=class_labels(), vocab=build_vocab(self._pool().captions))

    def _pool(self) -> Pool:
        if self.pool is None:
            self.pool = cached_pool(self.folder, self.tc.scenes, "train", self.tc.seed, self.tc.seconds, self.tc.workers)
        return self.pool

    def config(self) -> ClapTaskConfig:
        return self.tc

    def model_config(self) -> ClapConfig:
        return self.cfg

    def build(self, device: torch.device) -> Clap:
        return Clap(self.cfg).to(device)

    def prepare(self, device: torch.device, rank: int) -> None:
        self._pool()
        if self.val is None:
            self.val = cached_pool(self.folder, self.tc.val_scenes, "val", self.tc.seed, self.tc.seconds, self.tc.workers)

    def batch(self, step: int, rank: int, n: int, device: torch.device) -> ClapBatch:
        return batch_at(self.pool, step, rank, n, self.tc.crop_frames, self.tc.gain_db, self.tc.seed)

    def loss(self, model: Any, raw: Clap, batch: ClapBatch, step: int) -> tuple[dict, None]:
        model.train()
        return model(batch), None  # through the DDP wrapper: gradients are reduced

    def validate(self, ema: Clap, step: int, out: Path) -> dict:
        m = measure(ema, self.val)
        return {f"val_{k}": m[k] for k in ("mix_r1", "mix_r5", "stem_r1", "zeroshot_acc", "bow_mix_r1", "head_acc")}

    def export(self, ema: Clap, path: Path, **meta: Any) -> None:
        save_clap(path, ema, **meta)


def run_clap(lc: LoopConfig, tc: ClapTaskConfig, out: str | Path, resume: bool = False,
             device: str | None = None) -> Path:
    """Train (or resume) the embedding into `out`; returns out/clap.pt. On resume every config comes from out/last.pt."""
    cfg = None
    if resume and (Path(out) / "last.pt").exists():
        lc_d, tc_d, cfg_d = resume_configs(out, FORMAT)
        lc, tc, cfg = with_steps(lc_d, lc.steps), ClapTaskConfig(**tc_d), ClapConfig.from_dict(cfg_d)
    task = ClapTask(tc, cfg, folder=Path(out))
    print(f"clap: {len(task._pool().captions)} train items, vocabulary of {len(task.cfg.vocab)} words")
    return train(task, lc, out, resume=resume, device=device)


def export_run(run_checkpoint: str | Path, path: str | Path) -> Clap:
    """The EMA model of a run checkpoint (e.g. out/last.pt of a stopped run) as a small shippable file."""
    return export_ema(run_checkpoint, path, FORMAT, "clap", lambda c: Clap(ClapConfig.from_dict(c)), save_clap)


# ---------------------------------------------------------------------- command line

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/clap", help="run folder: last.pt, clap.pt, log.csv, pool caches")
    add_loop_arguments(p, steps=3000, batch=64, lr=1e-3, val_every=250)
    p.add_argument("--scenes", type=int, default=ClapTaskConfig.scenes, help="train scenes in the pool")
    p.add_argument("--val-scenes", type=int, default=ClapTaskConfig.val_scenes)
    p.add_argument("--workers", type=int, default=ClapTaskConfig.workers, help="processes making the pool")


def run_from_args(a: argparse.Namespace) -> Path:
    lc = loop_config(a, warmup=100, weight_decay=0.05)
    tc = ClapTaskConfig(scenes=a.scenes, val_scenes=a.val_scenes, workers=a.workers, seed=a.seed)
    return run_clap(lc, tc, a.out, a.resume, a.device)


def main(argv: list[str] | None = None) -> None:
    from foley.train import script_main

    script_main("python -m foley.train.clap", __doc__, add_arguments, run_from_args, argv)


if __name__ == "__main__":
    main()
