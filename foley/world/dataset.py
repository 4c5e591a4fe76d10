"""A PyTorch `IterableDataset` over world shards, at the fps, frame size and sample rate a model wants.

Shards are split across DataLoader workers and, when `torch.distributed` is initialised, across
ranks: consumer c of C (C = ranks x workers) reads shards c, c + C, ... so every shard is read once
per epoch. Call `set_epoch(e)` to reshuffle the shard order (same order on every consumer; with
`persistent_workers=True` the workers keep their copy, so recreate the DataLoader instead). Under DDP
make the shard count a multiple of ranks x workers (`--clips-per-shard`) so that every rank sees the
same number of clips, or cap the steps per epoch. Only this module of `foley.world` imports torch.

Each sample is a dict of tensors (collates with the default `collate_fn`):
  key        str
  video      (T, 3, H, W) uint8 RGB
  audio      {mix: (2, N) float32} for the requested mixes (`objaware`, `dataset`, `mono`)
  tracks     (O, T, 3) float32 ground truth [x, y, mass] per frame, O = max_objects (padding zeros)
  present    (O,) bool object slots in use
  labels     (O,) int64 class index into sorted(CLASSES), -1 = empty slot
  events     (O, T) bool an event starts during frame t
  caption    str, the object and background captions joined by "; "
  stems      (O, N) float32 (only with stems=True)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from foley.resample import resample
from foley.world.audio import MIXES
from foley.world.objects import CLASSES
from foley.world.record import decode
from foley.world.scene import WorldError
from foley.world.shards import iter_shard, read_manifest

LABELS: tuple[str, ...] = tuple(sorted(CLASSES))


def _consumer() -> tuple[int, int]:
    """(index, count) of this reader among all DDP ranks x DataLoader workers."""
    rank, world = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    info = get_worker_info()
    wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank * nw + wid, world * nw


class WorldDataset(IterableDataset):
    """Clips of one split of a world folder as tensors at the requested rates and size."""

    def __init__(self, root: str | os.PathLike, split: str = "train", fps: float | None = None,
                 size: tuple[int, int] | None = None, sr: int | None = None, mixes: tuple[str, ...] = ("objaware",),
                 stems: bool = False, max_objects: int = 3, shuffle: bool = False, seed: int = 0) -> None:
        self.root, self.split = Path(root), split
        doc = read_manifest(root)
        if split not in doc["splits"]:
            raise WorldError(f"{root} has no {split!r} split (it has {sorted(doc['splits'])})")
        bad = [m for m in mixes if m not in MIXES]
        if bad:
            raise WorldError(f"unknown mixes {bad}; choose from {MIXES}")
        self.names = list(doc["splits"][split]["shards"])
        self.n = int(doc["splits"][split]["n"])
        cfg = doc["config"]
        self.fps, self.sr = float(fps or cfg["fps"]), int(sr or cfg["sr"])
        self.size = tuple(size) if size else (cfg["width"], cfg["height"])  # (W, H)
        self.mixes, self.stems, self.max_objects = tuple(mixes), stems, max_objects
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shards(self) -> list[Path]:
        """All shard paths of the split, in this epoch's order; refuses when some are missing."""
        paths = [self.root / self.split / n for n in self.names]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise WorldError(f"{len(missing)} shard(s) of {self.split!r} missing in {self.root} (e.g. {missing[0]}): "
                             "finish them with the same `foley world make` command")
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(paths))
            paths = [paths[i] for i in order]
        return paths

    def __iter__(self) -> Iterator[dict]:
        c, count = _consumer()
        for path in self.shards()[c::count]:
            for key, files in iter_shard(path):
                yield self.sample(key, files)

    def sample(self, key: str, files: dict[str, bytes]) -> dict:
        """One clip's members -> the tensors described in the module docstring."""
        rec = decode(files, self.mixes, stems=self.stems)
        meta = rec.meta
        src_fps, k_src = float(meta["fps"]), rec.frames.shape[0]
        t_out = int(round(meta["seconds"] * self.fps))
        idx = np.minimum(k_src - 1, np.floor(np.arange(t_out) / self.fps * src_fps + 1e-6).astype(int))  # (T,)
        video = _resize(rec.frames[idx], self.size)  # (T, H, W, 3)
        o = self.max_objects
        tracks, present = np.zeros((o, t_out, 3), np.float32), np.zeros(o, bool)
        labels, events = np.full(o, -1, np.int64), np.zeros((o, t_out), bool)
        for j, (tr, ob) in enumerate(zip(rec.tracks[:o], meta["objects"][:o])):
            tracks[j] = np.stack([tr.x[idx], tr.y[idx], tr.mass[idx]], axis=1)
            present[j], labels[j] = True, LABELS.index(ob["class"])
            ev = np.floor(np.asarray(ob["events"]) * self.fps).astype(int)
            events[j, ev[(ev >= 0) & (ev < t_out)]] = True
        out = {"key": key, "video": torch.from_numpy(np.ascontiguousarray(video.transpose(0, 3, 1, 2))),
               "audio": {m: torch.from_numpy(resample(a, meta["sr"], self.sr)) for m, a in rec.mixes.items()},
               "tracks": torch.from_numpy(tracks), "present": torch.from_numpy(present),
               "labels": torch.from_numpy(labels), "events": torch.from_numpy(events),
               "caption": "; ".join(meta["captions"])}
        if self.stems:
            res = resample(rec.stems[:o], meta["sr"], self.sr)
            st = np.zeros((o, res.shape[-1]), np.float32)
            st[: res.shape[0]] = res
            out["stems"] = torch.from_numpy(st)
        return out


def _resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(T, H, W, 3) -> (T, size[1], size[0], 3), area-averaged when shrinking."""
    import cv2

    if frames.shape[2] == size[0] and frames.shape[1] == size[1]:
        return frames
    interp = cv2.INTER_AREA if size[0] < frames.shape[2] else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, size, interpolation=interp) for f in frames])

