"""Sharded, deterministic, parallel, resumable, rank-aware writing of a world dataset.

Layout of an output folder::

    DIR/world.json                  manifest: seed, config, per split the clip count and shard names
    DIR/train/train-000000.tar      WebDataset-style tar shards: the members of `record.encode` per clip
    DIR/test/test-000000.tar ...

Shard s of a split holds clips [s * clips_per_shard, (s + 1) * clips_per_shard). Every byte is a
function of (seed, split, clip index, config): tar headers have fixed mtime/uid/gid/mode and members
a fixed order, so regenerating a shard gives identical bytes. A shard is written to a temporary
name and renamed when complete, and its size and sha256 are recorded in the manifest (per split,
"files"); a re-run skips the shards that match their record and rewrites the others (missing,
truncated, altered, or never recorded).

A run holds DIR/.lock (POSIX record locks, `fcntl.lockf`): one byte per (split, rank) for the whole
run, so a second run writing the same shards is refused at once, while the ranks of one world work
side by side, on one machine or on many sharing the folder; and byte 0 for the moment the manifest
is read and rewritten, so runs that disagree (another seed, config or size) see each other's
manifest and stop instead of mixing shards.

Many machines: worker `rank` of `world_size` takes shards rank, rank + W, rank + 2W, ... Both default
to the environment (`RANK`/`WORLD_SIZE` as set by torchrun, else `SLURM_PROCID`/`SLURM_NTASKS`),
so the same command fans out under a scheduler::

    srun -n 8 foley world make --out /data/world --n 20000 --workers 16
    torchrun --nnodes 4 --nproc-per-node 1 -m foley world make --out /data/world --n 20000 --workers 16
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import logging
import math
import multiprocessing as mp
import os
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from foley import interrupts
from foley.files import atomic_output
from foley.world.record import SCHEMA, make_clip
from foley.world.scene import SPLITS, WorldConfig, WorldError, sample_scene

MANIFEST = "world.json"
LOCK = ".lock"
_RANKS = 1 << 24  # lock bytes per split; byte 0 guards the manifest
log = logging.getLogger("foley")


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


def write_shard(job: ShardJob) -> tuple[int, dict]:
    """Write one shard atomically; return the number of clips in it and its record (size, sha256)."""
    import cv2

    cv2.setNumThreads(1)  # one process per core already
    with atomic_output(job.path) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in job.indices:
                for name, data in make_clip(sample_scene(job.cfg, job.seed, job.split, i)).items():
                    _add(tar, name, data)
        record = file_record(tmp)
    return len(job.indices), record


def file_record(path: str | os.PathLike) -> dict:
    """{"bytes": size, "sha256": hex digest} of a file, as the manifest records each shard."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"bytes": os.path.getsize(path), "sha256": h.hexdigest()}


def shard_problem(path: Path, record: dict | None, checksum: bool = True) -> str | None:
    """Why a shard on disk does not match its manifest record (None: it matches); `checksum=False` checks the size only."""
    if not path.is_file():
        return "missing"
    if not record:
        return "not recorded in the manifest"
    size = path.stat().st_size
    if size != record.get("bytes"):
        return f"{size} bytes where {MANIFEST} records {record.get('bytes')}"
    if checksum and file_record(path)["sha256"] != record.get("sha256"):
        return f"its sha256 differs from the one {MANIFEST} records"
    return None


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
        old = read_manifest(out)
        if old.get("seed") != seed or old.get("config") != json.loads(json.dumps(asdict(cfg))):
            raise WorldError(f"{out} already holds a world made with another seed or config: use another --out")
        doc["splits"] = old["splits"]
        made = doc["splits"].get(split, {}).get("n", n)
        if made != n:
            raise WorldError(f"{out} already holds a {split!r} split of {made} clips; re-run with --n {made} to "
                             f"finish it, or write {n} clips to another --out")
    files = doc["splits"].get(split, {}).get("files", {})
    doc["splits"][split] = {"n": n, "shards": [shard_name(split, s) for s in range(n_shards(n, cfg))], "files": files}
    return doc


def _write_manifest(out: Path, doc: dict) -> None:
    with atomic_output(out / MANIFEST) as tmp:
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))


def read_manifest(root: str | os.PathLike) -> dict:
    """The manifest of a world folder, with a clear error when it is not one or is damaged."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise WorldError(f"{root} is not a world folder (no {MANIFEST}); make one with `foley world make`")
    try:
        doc = json.loads(path.read_text())
        problem = _manifest_problem(doc)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        problem = f"not JSON: {e}"
    if problem:
        raise WorldError(f"{path} is damaged ({problem}): delete it and re-run the `foley world make` command "
                         "that made the world (its shards are rewritten), or use another folder")
    return doc


def _manifest_problem(doc) -> str | None:
    """What is wrong with the structure of a manifest, or None."""
    if not isinstance(doc, dict) or not isinstance(doc.get("splits"), dict) or not isinstance(doc.get("config"), dict):
        return "it needs 'seed', 'config' and 'splits'"
    for split, entry in doc["splits"].items():
        if split not in SPLITS:
            return f"unknown split {split!r}"
        entry = entry if isinstance(entry, dict) else {}
        n, shards, files = entry.get("n"), entry.get("shards"), entry.get("files", {})
        if not (isinstance(n, int) and n >= 1 and isinstance(shards, list) and all(isinstance(v, str) for v in shards)
                and isinstance(files, dict) and all(isinstance(v, dict) for v in files.values())):
            return f"the {split!r} entry needs 'n', 'shards' and 'files'"
    return None


@contextlib.contextmanager
def _locked_run(out: Path, split: str, rank: int) -> Iterator[int | None]:
    """Hold this (split, rank)'s byte of DIR/.lock for the run (module docstring); yields the lock's fd
    for `_manifest_locked`, or None where the file system has no locks (then runs are not guarded)."""
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 1 + SPLITS.index(split) * _RANKS + rank)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise WorldError(f"another `foley world make` is writing the {split!r} split (rank {rank}) into {out} "
                                 f"(it holds {out / LOCK}): wait for it to finish, or use another --out") from None
            log.warning("cannot lock %s (%s): runs into this folder are not guarded against each other", out / LOCK, e)
            os.close(fd)
            fd = None
        yield fd
    finally:
        if fd is not None:
            os.close(fd)  # releases the locks


@contextlib.contextmanager
def _manifest_locked(fd: int | None) -> Iterator[None]:
    """Byte 0 of DIR/.lock while the manifest is read and rewritten (waits for another run's few milliseconds)."""
    if fd is not None:
        fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0)
    try:
        yield
    finally:
        if fd is not None:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, 0)


def _record(out: Path, job: ShardJob, record: dict) -> None:
    """Add a finished shard's size and sha256 to the manifest (call under `_manifest_locked`)."""
    doc = read_manifest(out)
    doc["splits"][job.split].setdefault("files", {})[job.path.name] = record
    _write_manifest(out, doc)


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
    files = read_manifest(out)["splits"].get(split, {}).get("files", {}) if (Path(out) / MANIFEST).is_file() else {}
    todo = []
    for j in jobs:
        problem = shard_problem(j.path, files.get(j.path.name))
        if problem is not None:
            if problem != "missing":
                log.warning("rewriting %s: %s", j.path, problem)
            todo.append(j)
    return todo


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
    """Write this rank's shards of `split` that are missing or do not match their record, with `workers`
    processes; return the clips written."""
    env = env_rank()
    rank, world_size = env[0] if rank is None else rank, env[1] if world_size is None else world_size
    check_request(n, rank, world_size, workers)  # before anything is written: a bad request leaves no trace
    if split not in SPLITS:
        raise WorldError(f"unknown split {split!r}; choose one of {SPLITS}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise WorldError(f"--out {str(out)!r} is a file: it must be a folder")
    out.mkdir(parents=True, exist_ok=True)
    with _locked_run(out, split, rank) as lock:
        with _manifest_locked(lock):
            _write_manifest(out, _manifest(out, split, n, seed, cfg))
        (out / split).mkdir(exist_ok=True)
        jobs = plan(out, n, split, seed, cfg, rank, world_size)
        written = 0
        for job, (k, record) in _run(jobs, workers, progress):
            with _manifest_locked(lock):
                _record(out, job, record)
            written += k
            interrupts.check()  # a Ctrl-C or SIGTERM that a finalizer swallowed stops here, the shard kept
        return written


def _write(job: ShardJob) -> tuple[ShardJob, tuple[int, dict]]:
    return job, write_shard(job)


def _run(jobs: list[ShardJob], workers: int, progress: bool) -> Iterator[tuple[ShardJob, tuple[int, dict]]]:
    """Yield (job, (clips, record)) as shards finish, with a progress bar over clips."""
    from tqdm import tqdm

    with tqdm(total=sum(len(j.indices) for j in jobs), unit="clip", disable=not progress, smoothing=0.1) as bar, \
            contextlib.ExitStack() as stack:
        if workers <= 1 or len(jobs) <= 1:
            done = map(_write, jobs)
        else:
            pool = stack.enter_context(mp.get_context("spawn").Pool(min(workers, len(jobs))))
            done = pool.imap_unordered(_write, jobs)
        for job, result in done:
            bar.update(result[0])
            yield job, result


@contextlib.contextmanager
def damaged_shard(path: str | os.PathLike) -> Iterator[None]:
    """Turn the errors of reading a damaged shard (truncated, altered) into a WorldError naming it."""
    try:
        yield
    except (tarfile.TarError, EOFError, OSError, ValueError, KeyError) as e:
        raise WorldError(f"shard {path} is damaged ({e.__class__.__name__}: {e}): re-run the `foley world make` "
                         "command that made it; it rewrites damaged shards") from None


def iter_shard(path: str | os.PathLike) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {member suffix: bytes}) for each clip of a shard, in order; WorldError if the shard is damaged."""
    with damaged_shard(path), tarfile.open(path, "r") as tar:
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
