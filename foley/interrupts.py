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

import signal

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
