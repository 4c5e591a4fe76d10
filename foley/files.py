"""Atomic file output: write to a temporary file beside the target, then rename."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from foley.errors import FoleyError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def sweep_stale(path: Path) -> list[Path]:
    """Delete temporaries of `atomic_output` for `path` left by processes that no longer run (SIGKILL, power loss)."""
    gone = []
    for p in path.parent.glob(f".{path.stem}.pid*.part{path.suffix}"):
        try:
            pid = int(p.name[len(path.stem) + 5:].split(".", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            p.unlink(missing_ok=True)
            gone.append(p)
    return gone


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, on failure delete it.

    The temporary name keeps the target's suffix so that format sniffing by extension still works, and
    carries the writer's pid, so that a later run can sweep what a killed one left (`sweep_stale`).
    SIGTERM ends a `foley` command through the same cleanup as an error (foley.cli.main).
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FoleyError(f"output folder {str(parent)!r} does not exist: create it first")
    sweep_stale(parent / path.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.pid{os.getpid()}.", suffix=f".part{path.suffix}", dir=parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600: give the output the usual permissions
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when a and b name the same file: the same inode if both exist (links, symlinks), else the same resolved path."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


def _label(name: str) -> str:
    """An option's argparse dest as the user typed it."""
    return f"the {name}" if name in ("input", "output", "video") else "--" + name.replace("_", "-")


def refuse_overwriting(reads: dict[str, str | os.PathLike | None], writes: dict[str, str | os.PathLike | None]) -> None:
    """Raise before any work when an output would replace an input file, or two outputs are one file.

    reads / writes: {option name: path or None}; inputs that are not existing files (a tracker name, a
    box) cannot be destroyed and are skipped.
    """
    inputs = {k: v for k, v in reads.items() if v is not None and Path(v).is_file()}
    outputs = [(k, v) for k, v in writes.items() if v is not None]
    for i, (name, out) in enumerate(outputs):
        for src_name, src in inputs.items():
            if same_file(out, src):
                raise FoleyError(f"{_label(name)} {str(out)!r} is the same file as {_label(src_name)} {str(src)!r}: "
                                 "refusing to overwrite it; choose another output path")
        for other_name, other in outputs[i + 1:]:
            if same_file(out, other):
                raise FoleyError(f"{_label(name)} and {_label(other_name)} are the same file {str(out)!r}: choose two paths")


def _can_write_in(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def check_outputs(writes: dict[str, str | os.PathLike | None], folders: dict[str, str | os.PathLike | None] | None = None,
                  suffixes: dict[str, tuple[str, ...]] | None = None) -> None:
    """Raise before any work when an output could not be written, so that no run fails at its end.

    writes: {option name: output file or None ("-" = standard output)}: the file must not be a folder,
    its folder must exist and be writable, and its extension one of `suffixes[name]` when given.
    folders: {option name: output folder or None}, a folder the verb fills (made if missing): it must
    not be a file, and it, or the nearest folder above it that exists, must be writable.
    """
    for name, out in writes.items():
        if out is None or str(out) == "-":
            continue
        path = Path(out)
        allowed = (suffixes or {}).get(name)
        if allowed and path.suffix.lower() not in allowed:
            raise FoleyError(f"{_label(name)} {str(out)!r} must end in {' or '.join(allowed)}")
        if path.is_dir():
            raise FoleyError(f"{_label(name)} {str(out)!r} is a folder: give a file name")
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise FoleyError(f"output folder {str(parent)!r} does not exist: create it first")
        if not _can_write_in(parent):
            raise FoleyError(f"{_label(name)} {str(out)!r}: no permission to write in {str(parent)!r}")
    for name, folder in (folders or {}).items():
        if folder is None:
            continue
        path = Path(folder)
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            what = "is a file" if existing == path else f"is inside the file {str(existing)!r}"
            raise FoleyError(f"{_label(name)} {str(folder)!r} {what}: it must be a folder; choose another path")
        if not _can_write_in(existing):
            raise FoleyError(f"{_label(name)} {str(folder)!r}: no permission to write in {str(existing)!r}")
