"""Ctrl-C and SIGTERM that cannot be lost.

Python runs a signal's handler in whatever Python code the main thread is executing at that moment. If that is
a finalizer or a weakref callback (garbage collection can run one at any allocation), the exception the handler
raises is printed as "Exception ignored" and dropped, and the run goes on as if no signal had come: a roundtrip
interrupted that way wrote its whole file. So foley's CLI handler also notes the signal here, and the long loops
call `check()`, which raises it again if it was dropped: each audio block written (WAV, FLAC, AAC muxing), each
training step, each world shard recorded. Used as a library (no CLI handler), nothing is ever noted and
`check()` costs one list test.
"""
from __future__ import annotations

import contextlib
import signal
from typing import Iterator

from foley.errors import Terminated

_pending: list[int] = []


def handler(signum: int, frame: object) -> None:
    """The CLI's handler for SIGINT and SIGTERM: note the signal, then raise it as KeyboardInterrupt / Terminated."""
    _pending.append(signum)
    raise _exception(signum)


def check() -> None:
    """Raise a noted signal that no one has acted on yet (its first exception was swallowed)."""
    if _pending:
        raise _exception(_pending[-1])


def clear() -> None:
    """The signal was acted on (the CLI caught its exception): forget it."""
    _pending.clear()


def _exception(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated()


@contextlib.contextmanager
def forking_workers() -> Iterator[None]:
    """Fork worker processes inside this block: they are born ignoring Ctrl-C (the parent acts on it) and dying
    quietly on SIGTERM (how a pool stops them), not with the CLI's handlers, which would print a `Terminated`
    traceback from each worker and could leave the pool's shutdown waiting. Set before the fork, so no worker has
    a moment with the inherited handlers; the parent's own are restored on leaving."""
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
