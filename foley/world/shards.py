"""Sharded, deterministic, parallel, resumable, rank-aware writing of a world dataset.

Layout of an output folder::

    DIR/world.json                  manifest: seed, config, per split the clip count and shard names
    DIR/train/train-000000.tar      WebDataset-style tar shards: the members of `record.encode` per clip
    DIR/test/test-000000.tar ...

Shard s of a split holds clips [s * clips_per_shard, (s + 1) * clips_per_shard). Every byte is a
function of (seed, split, clip index, config): tar headers have fixed mtime/uid/gid/mode and members
a fixed order, so regenerating a shard gives identical bytes. A shard is written to a temporary
name and renamed when complete; shards already present are skipped (resume by re-running).

Many machines: worker `rank` of `world_size` takes shards rank, rank + W, rank + 2W, ... Both default
to the environment (`RANK`/`WORLD_SIZE` as set by torchrun, else `SLURM_PROCID`/`SLURM_NTASKS`),
so the same command fans out under a scheduler::

    srun -n 8 foley world make --out /data/world --n 20000 --workers 16
    torchrun --nnodes 4 --nproc-per-node 1 -m foley world make --out /data/world --n 20000 --workers 16
"""
from __future__ import annotations

import io
import json
import math
import multiprocessing as mp
import os
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from foley.files import atomic_output
from foley.world.record import SCHEMA, make_clip
from foley.world.scene import SPLITS, WorldConfig, WorldError, sample_scene

MANIFEST = "world.json"


@dataclass(frozen=True)
class ShardJob:
    """One shard to write."""

    out: str
    split: str
    seed: int
    cfg: WorldConfig
    shard: int
    n: int  # clips in the whole split

    @property
    def indices(self) -> range:
        c = self.cfg.clips_per_shard
        return range(self.shard * c, min(self.n, (self.shard + 1) * c))

    @property
    def path(self) -> Path:
        return Path(self.out) / self.split / shard_name(self.split, self.shard)


def shard_name(split: str, shard: int) -> str:
    """File name of shard `shard` of a split."""
    return f"{split}-{shard:06d}.tar"


def n_shards(n: int, cfg: WorldConfig) -> int:
    """Shards holding n clips."""
    return math.ceil(n / cfg.clips_per_shard)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add a member with fixed metadata, so the archive bytes depend on the content only."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def write_shard(job: ShardJob) -> int:
    """Write one shard atomically; return the number of clips in it."""
    import cv2

    cv2.setNumThreads(1)  # one process per core already
    with atomic_output(job.path) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in job.indices:
                for name, data in make_clip(sample_scene(job.cfg, job.seed, job.split, i)).items():
                    _add(tar, name, data)
    return len(job.indices)


def env_rank() -> tuple[int, int]:
    """(rank, world_size) from torchrun or SLURM variables; (0, 1) when neither is set."""
    for r, w in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
        if r in os.environ and w in os.environ:
            return int(os.environ[r]), int(os.environ[w])
    return 0, 1


def _manifest(out: Path, split: str, n: int, seed: int, cfg: WorldConfig) -> dict:
    """The manifest with this split added; refuses to mix seeds or configs in one folder."""
    path = out / MANIFEST
    doc = {"schema": SCHEMA, "seed": seed, "config": asdict(cfg), "splits": {}}
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("seed") != seed or old.get("config") != json.loads(json.dumps(asdict(cfg))):
            raise WorldError(f"{out} already holds a world made with another seed or config: use another --out")
        doc["splits"] = old.get("splits", {})
        made = doc["splits"].get(split, {}).get("n", n)
        if made != n:
            raise WorldError(f"{out} already holds a {split!r} split of {made} clips; re-run with --n {made} to "
                             f"finish it, or write {n} clips to another --out")
    doc["splits"][split] = {"n": n, "shards": [shard_name(split, s) for s in range(n_shards(n, cfg))]}
    return doc


def read_manifest(root: str | os.PathLike) -> dict:
    """The manifest of a world folder, with a clear error when it is not one."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise WorldError(f"{root} is not a world folder (no {MANIFEST}); make one with `foley world make`")
    return json.loads(path.read_text())


def plan(out: str | os.PathLike, n: int, split: str, seed: int, cfg: WorldConfig, rank: int = 0,
         world_size: int = 1) -> list[ShardJob]:
    """The shards worker `rank` of `world_size` still has to write."""
    if split not in SPLITS:
        raise WorldError(f"unknown split {split!r}; choose one of {SPLITS}")
    if n < 1:
        raise WorldError(f"--n must be >= 1, got {n}")
    if not 0 <= rank < world_size:
        raise WorldError(f"rank {rank} is not in [0, {world_size})")
    jobs = [ShardJob(str(out), split, seed, cfg, s, n) for s in range(rank, n_shards(n, cfg), world_size)]
    return [j for j in jobs if not j.path.exists()]


def check_request(n: int, rank: int, world_size: int, workers: int) -> None:
    """Refuse a request that cannot make a world: no clips, a rank outside the world, no workers."""
    if n < 1:
        raise WorldError(f"--n must be at least 1, got {n}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise WorldError(f"--rank must be in 0..world-size-1, got rank {rank} of world size {world_size}")
    if workers < 1:
        raise WorldError(f"--workers must be at least 1, got {workers}")


def make_world(out: str | os.PathLike, n: int, split: str = "train", seed: int = 0, cfg: WorldConfig = WorldConfig(),
               workers: int = 1, rank: int | None = None, world_size: int | None = None,
               progress: bool = True) -> int:
    """Write this rank's missing shards of `split` with `workers` processes; return the clips written."""
    env = env_rank()
    rank, world_size = env[0] if rank is None else rank, env[1] if world_size is None else world_size
    check_request(n, rank, world_size, workers)  # before anything is written: a bad request leaves no trace
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    doc = _manifest(out, split, n, seed, cfg)
    with atomic_output(out / MANIFEST) as tmp:
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
    (out / split).mkdir(exist_ok=True)
    jobs = plan(out, n, split, seed, cfg, rank, world_size)
    return sum(_run(jobs, workers, progress))


def _run(jobs: list[ShardJob], workers: int, progress: bool) -> Iterator[int]:
    """Yield clip counts as shards finish, with a progress bar over clips."""
    from tqdm import tqdm

    with tqdm(total=sum(len(j.indices) for j in jobs), unit="clip", disable=not progress, smoothing=0.1) as bar:
        if workers <= 1 or len(jobs) <= 1:
            for j in jobs:
                bar.update(k := write_shard(j))
                yield k
            return
        with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            for k in pool.imap_unordered(write_shard, jobs):
                bar.update(k)
                yield k


def iter_shard(path: str | os.PathLike) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {member suffix: bytes}) for each clip of a shard, in order."""
    with tarfile.open(path, "r") as tar:
        key, files = None, {}
        for m in tar:
            k, ext = m.name.split(".", 1)
            if key is not None and k != key:
                yield key, files
                files = {}
            key = k
            files[ext] = tar.extractfile(m).read()
        if key is not None:
            yield key, files
