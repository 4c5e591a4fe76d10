"""An offline (non-causal) codec over a long input in overlapping chunks: memory flat in the input's length, and
the samples of a whole-clip `decode(encode(x))` within float rounding.

The offline codec looks ahead (each temporal convolution one latent frame each side: two in the encoder, three
in the decoder; the tonal analysis about half a frame) and carries state along the clip (the held pitch, the
phases of the sinusoids, the noise phases' frame index, the overlap-add spill). Both are handled exactly:

- **encode**: latent frames [a, b) are measured on the audio of frames [a - M, b + M) (M = `ENCODE_MARGIN`), with
  the analysers' left context set to what the whole clip has there (the samples before the chunk, the pitch
  held so far). Only the convolutions' and the look-ahead's reach then needs the margin, and [a, b) is kept.
- **decode**: the envelope of frames [a, b) comes from the latents of [a - D, b + D) (D = `DECODE_MARGIN`). It
  is synthesised with the synthesisers in streaming mode, which carry their phases, frame index and spill from
  chunk to chunk (synthesis looks at one frame at a time).

The causal codecs need none of this: they stream natively (`foley.roundtrip.codec_blocks`).
"""
from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import Tensor

from foley.blocks import rechunk

ENCODE_MARGIN = 4  # latent frames each side: the encoder's 2 convolutions + the tonal look-ahead (< 1 frame), + 1
DECODE_MARGIN = 4  # the decoder's 3 convolutions, + 1


class _Audio:
    """The input's samples from `base` on, read ahead as far as a chunk needs; older samples are dropped."""

    def __init__(self, blocks: Iterable[np.ndarray], step: int) -> None:
        self._blocks = iter(rechunk(blocks, step))
        self.buf = np.zeros((2, 0), np.float32)
        self.base = 0  # absolute index of buf[:, 0]
        self.ended = False

    @property
    def end(self) -> int:
        return self.base + self.buf.shape[1]

    def read_to(self, sample: int) -> None:
        while not self.ended and self.end < sample:
            block = next(self._blocks, None)
            if block is None:
                self.ended = True
            else:
                self.buf = np.concatenate([self.buf, np.asarray(block, np.float32)], -1)

    def span(self, lo: int, hi: int) -> np.ndarray:
        """Samples [lo, hi) (zeros before 0 and past the end)."""
        out = np.zeros((2, hi - lo), np.float32)
        a, b = max(lo, self.base), min(hi, self.end)
        if b > a:
            out[:, a - lo:b - lo] = self.buf[:, a - self.base:b - self.base]
        return out

    def drop_before(self, sample: int) -> None:
        if sample > self.base:
            self.buf = self.buf[:, sample - self.base:]
            self.base = sample


def _latents(codec: torch.nn.Module, audio: _Audio, chunk: int) -> Iterator[Tensor]:
    """Raw latents (1, k, C) of consecutive frames, chunk by chunk, as a whole-clip encode makes them."""
    cfg, hop, m = codec.cfg, codec.cfg.hop, ENCODE_MARGIN
    ta = codec.tonal_analysis if cfg.tonal else None
    analysers = [codec.analysis] + ([ta] if ta is not None else [])
    past_spectral = cfg.sub_hop  # samples before a frame that each analyser reads
    past_tonal = ta.win - ta.sub_hop - ta.lookahead if ta is not None else 0
    context = max(past_spectral, past_tonal)
    held: Tensor | None = None  # the held f0 just before the next chunk's first analysed frame
    a = 0
    while True:
        audio.read_to((a + chunk + m) * hop)
        total = -(-audio.end // hop) if audio.ended else None  # latent frames of the whole input
        b = a + chunk if total is None else min(a + chunk, total)
        if b <= a:
            return
        s = max(0, a - m)
        e = b + m if total is None else min(b + m, total)
        x = torch.from_numpy(audio.span(s * hop, min(e * hop, audio.end)))[None]  # the codec pads the last frame
        left = audio.span(s * hop - context, s * hop)
        # the analysers read their left context from their state (what a stream would have carried there)
        codec.analysis.set_streaming_state({"past": torch.from_numpy(left[:, context - past_spectral:])[None]})
        if ta is not None:
            state = {"past": torch.from_numpy(left.sum(0)[context - past_tonal:])[None]}
            ta.set_streaming_state(state if held is None else {**state, "f0": held})
        try:
            with torch.no_grad():
                mean, _, cues, f0 = codec.measure(x)
        finally:
            for an in analysers:
                an.reset_streaming()
        nxt = max(0, b - m)  # the next chunk's first analysed frame: hand on the pitch held just before it
        if f0 is not None and nxt > 0:
            held = f0[:, nxt - s - 1, -1:].clone()
        raw = torch.cat([mean, cues], -1)[:, a - s:b - s]
        z = (raw - codec.latent_mean) / codec.latent_std  # what encode gives and decode takes back, to the bit
        yield z * codec.latent_std + codec.latent_mean
        audio.drop_before((b - m) * hop - context)
        a = b


def offline_blocks(codec: torch.nn.Module, blocks: Iterable[np.ndarray], chunk_frames: int = 250) -> Iterator[np.ndarray]:
    """Stream (2, k) float blocks at codec.cfg.sr through an offline codec: float32 (2, k') blocks of its
    reconstruction, the input's length in all, equal to the whole-clip roundtrip within float rounding."""
    from foley.models.codec import CodecError

    cfg = codec.cfg
    if cfg.causal:
        raise CodecError("this codec is causal: stream it with codec_blocks")
    if not (isinstance(chunk_frames, int) and chunk_frames >= 1):
        raise CodecError(f"chunk_frames must be an int >= 1, got {chunk_frames!r}")
    hop, d, cs = cfg.hop, DECODE_MARGIN, cfg.spectral_channels
    audio = _Audio(blocks, chunk_frames * hop)
    synths = [codec.synthesis] + ([codec.tonal_synthesis] if cfg.tonal else [])
    lat = torch.zeros(1, 0, cfg.channels)
    base = a = 0  # lat holds frames base.. ; a: the next frame to decode
    source = _latents(codec, audio, chunk_frames)
    with contextlib.ExitStack() as stack:
        for sy in synths:  # phases, frame index and spill carried from chunk to chunk
            stack.enter_context(sy.streaming())
        ended = False
        while True:
            while not ended and base + lat.shape[1] < a + chunk_frames + d:
                more = next(source, None)
                if more is None:
                    ended = True
                else:
                    lat = torch.cat([lat, more], 1)
            top = base + lat.shape[1]
            b = min(a + chunk_frames, top)
            if b <= a:
                break
            s, e = max(base, a - d), min(top, b + d)
            part = lat[:, s - base:e - base]
            with torch.no_grad():
                log_power = codec.envelope(part[..., :cs], part[..., cs:])[:, a - s:b - s]
                here = part[:, a - s:b - s]
                gains = codec.harmonic_gains(here[..., :cs], here[..., cs:])
                y = codec.synthesize(log_power, here[..., cs:], gains)[0].numpy()
            yield y[:, : max(0, audio.end - a * hop)] if audio.ended else y  # the input's length, not whole frames
            lat, base = lat[:, max(0, b - d) - base:], max(0, b - d)
            a = b
