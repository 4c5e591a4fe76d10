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
from typing import Callable, Iterator

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


_QUIET = {signal.SIGINT, signal.SIGTERM}


def quiet_worker() -> None:
    """A forked worker's initializer (see `forking_workers`): Ctrl-C is the parent's to act on, SIGTERM (how a pool
    stops its workers) ends it without a traceback; then the signals held back since the fork are let through."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _QUIET)


@contextlib.contextmanager
def forking_workers() -> Iterator[Callable[[], None]]:
    """Create a process pool inside this block, with the initializer it yields:

        with forking_workers() as init:
            pool = mp.get_context("fork").Pool(n, initializer=init)

    Forked workers inherit the CLI's handlers, which raise: each worker the pool stopped printed a `Terminated`
    traceback, and the pool could wait forever. Here SIGINT and SIGTERM are held back (blocked, not lost) in this
    thread while the pool forks, so a worker has no moment with those handlers: `quiet_worker` replaces them before
    letting the signals through. The pool's own threads, started in here, keep the mask, so workers it forks later
    are born the same way. On leaving, this thread lets through what arrived meanwhile, to the CLI's handlers."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _QUIET)
    try:
        yield quiet_worker
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def fork_pool(workers: int) -> Iterator[object]:
    """A fork process pool of `workers` born quiet (`forking_workers`): closed when the block ends normally (the
    workers leave on their own), stopped at once when it ends by an error, Ctrl-C, or a generator closed early."""
    import multiprocessing as mp

    with forking_workers() as init:
        pool = mp.get_context("fork").Pool(workers, initializer=init)
    try:
        yield pool
        pool.close()
    finally:
        pool.terminate()  # a no-op after close once the workers have left
        pool.join()
