"""Streaming state for causal modules, after audiocraft's `modules/streaming.py`.

    with codec.streaming():          # every StreamingModule inside keeps its state between calls
        for chunk in chunks:         # (B, 2, k * hop)
            y = codec.decode(codec.encode(chunk))

State can be read (`get_streaming_state`), set (`set_streaming_state`) and reset (`reset_streaming`).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import nn

State = dict[str, torch.Tensor]


class StreamingModule(nn.Module):
    """A module whose forward may carry state across calls while `streaming()` is active."""

    def __init__(self) -> None:
        super().__init__()
        self._streaming_state: State = {}
        self._is_streaming = False

    @property
    def is_streaming(self) -> bool:
        return self._is_streaming

    def _state(self, key: str, initial: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The state kept under `key`, or `initial()` where there is none: made only when needed (per frame, an
        eagerly built default costs a kernel)."""
        value = self._streaming_state.get(key)
        return initial() if value is None else value

    def _streaming_modules(self) -> Iterator[tuple[str, "StreamingModule"]]:
        for name, m in self.named_modules():
            if isinstance(m, StreamingModule):
                yield name, m

    def _set_streaming(self, on: bool) -> None:
        for _, m in self._streaming_modules():
            m._is_streaming = on
            m._streaming_state = {}

    @contextlib.contextmanager
    def streaming(self) -> Iterator[None]:
        """Keep state between calls inside the block; drop it on exit."""
        self._set_streaming(True)
        try:
            yield
        finally:
            self._set_streaming(False)

    def reset_streaming(self) -> None:
        """Forget the state (start a new stream) without leaving streaming mode."""
        for _, m in self._streaming_modules():
            m._streaming_state = {}

    def get_streaming_state(self) -> State:
        """All state tensors, keyed `module.name`."""
        return {f"{n}.{k}" if n else k: v for n, m in self._streaming_modules() for k, v in m._streaming_state.items()}

    def set_streaming_state(self, state: State) -> None:
        """Restore a state read with `get_streaming_state`."""
        for n, m in self._streaming_modules():
            prefix = f"{n}." if n else ""
            m._streaming_state = {k[len(prefix):]: v for k, v in state.items()
                                  if k.startswith(prefix) and "." not in k[len(prefix):]}
