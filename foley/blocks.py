"""Streams of sample blocks: iterators of (C, k) arrays, read, rendered and written a piece at a time.

Streaming readers, renderers and writers pass these instead of whole clips, so that memory stays
flat in the clip's length. Blocks handed on may be views: consumers do not modify them in place.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np


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
