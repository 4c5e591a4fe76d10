"""Streams of sample blocks: iterators of (C, k) arrays, read, rendered and written a piece at a time; and
`ahead`, which runs any stream's producer in a thread beside its consumer.

Streaming readers, renderers and writers pass these instead of whole clips, so that memory stays
flat in the clip's length. Blocks handed on may be views: consumers do not modify them in place.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

import numpy as np

T = TypeVar("T")


def rechunk(blocks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """(C, size) blocks from (C, k) blocks of any sizes, in order; the last one may be shorter."""
    if size < 1:
        raise ValueError(f"block size must be >= 1, got {size}")
    pending: list[np.ndarray] = []
    have = 0
    for block in blocks:
        if block.shape[-1] == 0:
            continue
        pending.append(block)
        have += block.shape[-1]
        if have < size:
            continue
        buf = pending[0] if len(pending) == 1 else np.concatenate(pending, axis=-1)  # (C, have)
        cut = have - have % size
        for a in range(0, cut, size):
            yield buf[..., a:a + size]
        pending, have = ([buf[..., cut:]], have - cut) if have > cut else ([], 0)
    if have:
        yield pending[0] if len(pending) == 1 else np.concatenate(pending, axis=-1)


def fit_blocks(blocks: Iterable[np.ndarray], n: int, size: int, channels: int) -> Iterator[np.ndarray]:
    """(channels, size) blocks covering exactly n samples (the last n % size): trimmed, or zero-padded at the end.

    Stops reading `blocks` once n samples are out, so a longer stream is left partly unread.
    """
    done = 0
    for block in rechunk(blocks, size):
        k = min(size, n - done)
        if k <= 0:
            return
        yield block[:, :k] if block.shape[1] >= k else np.pad(block, ((0, 0), (0, k - block.shape[1])))
        done += k
    while done < n:
        k = min(size, n - done)
        yield np.zeros((channels, k), np.float32)
        done += k


def ahead(items: Iterator[T], depth: int) -> Iterator[T]:
    """The same items, produced by a thread up to `depth` ahead (a decoder, a tracker's first stage): its errors
    are raised here, in order, and `items` (its file, its work) is closed when the caller stops early. Work that
    releases the GIL (FFmpeg, OpenCV, numpy) then runs on a second core beside the caller's."""
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            put(("error", e))
        finally:
            close = getattr(items, "close", None)  # a generator: its own finally blocks run (files closed)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="foley-ahead", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = out.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        worker.join()
