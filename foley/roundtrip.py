"""Audio files through the codec: `roundtrip(IN, OUT)` (what `foley codec roundtrip` runs), `codec_blocks` and
`codec_audio`.

`roundtrip` streams: the input is read in blocks (`foley.io.iter_audio`), run through the codec a chunk of
`CHUNK_FRAMES` latent frames at a time, and written block by block, so memory stays flat in the input's
length. The causal codecs (the default, `foley/checkpoints/codec_tiny.pt`) run in their streaming mode; the
offline ones (e.g. `foley/checkpoints/codec_tiny_offline.pt`), which look ahead and carry state along the clip,
run in overlapping chunks with their state handed on (`foley.models.codec_chunks`). Either way the output is
that of a whole-clip roundtrip within float rounding. The passes:

1. read the input once: NaN/inf and empty input raise before anything is written; its length, clipped
   and non-zero samples, Stereo-Score and per-frame channel energies (for the pan error) are summed up;
2. read it again through the codec into OUT, measuring the reconstruction the same way;
3. only when the reconstruction peaks above 1: that write is dropped (nothing reaches OUT) and the codec
   runs once more, scaled by the one gain 0.99 / peak that the whole-clip roundtrip applies.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from foley.blocks import rechunk
from foley.errors import AudioError, MediaError
from foley.models.codec_chunks import offline_blocks

log = logging.getLogger("foley")
CHUNK_FRAMES = 250  # codecs stream in chunks of 250 latent frames (10 s at 25 fps): streaming == batch


@dataclass(frozen=True)
class Roundtrip:
    """What a roundtrip did."""

    seconds: float
    native_rate: int | None
    native_channels: int | None
    floats_per_second: int
    pan_error: float  # mean per-frame |pan(out) - pan(in)|, foley.metrics.audio_position
    stereo_score_in: float
    stereo_score_out: float


class _Measure:
    """Running figures of a stream of (2, k) float blocks, in constant memory but for 4 floats a frame.

    Length, clipped samples (|x| >= 0.999), whether any sample is non-zero, the peak, the sums of the
    Stereo-Score (foley.metrics.stereo_score) and each channel's energy in each whole frame of `hop`
    samples (foley.metrics.frame_energies; the last partial frame is left out, as there).
    """

    def __init__(self, hop: int) -> None:
        self.hop, self.n, self.clipped, self.nonzero, self.peak = hop, 0, 0, False, 0.0
        self._diff = self._level = 0.0
        self._energies: list[np.ndarray] = []
        self._rest = np.zeros((2, 0))

    def add(self, block: np.ndarray) -> None:
        if block.shape[-1] == 0:
            return
        a = np.abs(block)
        self.n += block.shape[-1]
        self.clipped += int(np.count_nonzero(a >= 0.999))
        self.nonzero = self.nonzero or bool(np.any(block))
        self.peak = max(self.peak, float(np.max(a)))
        b = np.asarray(block, np.float64)
        self._diff += float(np.sum(np.abs(b[0] - b[1])))
        self._level += float(np.sum(np.abs(b)))
        if self._rest.shape[-1]:
            b = np.concatenate([self._rest, b], -1)
        whole = b.shape[-1] // self.hop * self.hop
        self._energies.append((b[:, :whole] ** 2).reshape(2, -1, self.hop).sum(-1))
        self._rest = b[:, whole:].copy()

    @property
    def energies(self) -> np.ndarray:
        """(2, K) energy of each channel in each whole frame."""
        return np.concatenate(self._energies, -1) if self._energies else np.zeros((2, 0))

    @property
    def stereo_score(self) -> float:
        return self._diff / self._level if self._level > 0 else 0.0


class _Clipped(Exception):
    """The reconstruction peaked above 1: write it again, scaled (raised to drop the write under way)."""

    def __init__(self, peak: float) -> None:
        super().__init__(f"reconstruction peaks at {peak:.2f}")
        self.peak = peak


def _warn_clipped_input(m: _Measure, path: str | Path) -> None:
    """Warn on clipped audio; refuse empty audio (foley.io refuses NaN/inf and empty files already)."""
    if m.n == 0:
        raise AudioError(f"{path}: no audio samples")
    clipped = m.clipped / (2 * m.n)
    if clipped > 1e-3:
        log.warning("%s: %.1f%% of samples are at full scale (clipped); the codec keeps that distortion",
                    path, 100 * clipped)


def codec_blocks(codec: torch.nn.Module, blocks: Iterable[np.ndarray],
                 chunk_frames: int = CHUNK_FRAMES) -> Iterator[np.ndarray]:
    """Stream (2, k) float blocks at codec.cfg.sr through a causal codec: float32 (2, k') blocks of its reconstruction.

    The blocks are re-cut into chunks of `chunk_frames` latent frames, each encoded and decoded in the
    codec's streaming mode; the last one is zero-padded to whole frames and trimmed back, so the output
    has the input's length, and equals a whole-clip `decode(encode(x))` within float tolerance. One
    stream at a time per codec (the streaming state lives in the codec).
    """
    from foley.models.codec import CodecError

    cfg = codec.cfg
    if not cfg.causal:
        raise CodecError("this codec is non-causal: it cannot stream; run it on the whole clip (codec_audio)")
    if chunk_frames < 1:
        raise CodecError(f"chunk_frames must be >= 1, got {chunk_frames!r}")
    if codec.is_streaming:
        raise CodecError("this codec is already streaming another input: one stream at a time")
    with codec.streaming():
        for block in rechunk(blocks, chunk_frames * cfg.hop):
            n = block.shape[-1]
            xt = torch.zeros(1, 2, -(-n // cfg.hop) * cfg.hop)
            xt[..., :n] = torch.from_numpy(np.asarray(block, np.float32))
            with torch.no_grad():
                y = codec.decode(codec.encode(xt))[0, :, :n].numpy()
            yield y


def codec_audio(codec: torch.nn.Module, x: np.ndarray, chunk_frames: int = CHUNK_FRAMES) -> np.ndarray:
    """(2, N) float at codec.cfg.sr -> its reconstruction (2, N): streamed in chunks when causal, else whole."""
    cfg = codec.cfg
    n = x.shape[-1]
    if cfg.causal:
        out = list(codec_blocks(codec, [x], chunk_frames))
        return np.concatenate(out, -1) if out else np.zeros((2, 0), np.float32)
    xt = torch.zeros(1, 2, -(-n // cfg.hop) * cfg.hop)
    xt[..., :n] = torch.from_numpy(np.asarray(x, np.float32))
    with torch.no_grad():
        return codec.decode(codec.encode(xt))[0, :, :n].numpy()


def roundtrip(in_path: str | Path, out_path: str | Path, checkpoint: str | Path | None = None,
              chunk_frames: int = CHUNK_FRAMES) -> Roundtrip:
    """Encode and decode any audio (or video's audio) file with the codec; write 48 kHz stereo WAV/FLAC.

    Other rates are resampled and mono is upmixed, with a warning. Silent input gives silent output.
    Memory stays flat in the input's length, with causal and offline codecs alike: see the module's
    docstring. `chunk_frames`: latent frames per streamed chunk (the output depends on it only
    within float rounding; the default gives the samples of the former whole-clip roundtrip exactly).
    """
    from foley import io
    from foley.metrics.codec import frame_pan_error
    from foley.models.codec import load_codec

    if Path(out_path).suffix.lower() not in (".wav", ".flac"):
        raise MediaError(f"{out_path}: write the roundtrip as .wav or .flac")
    if not (isinstance(chunk_frames, int) and chunk_frames >= 1):
        raise ValueError(f"chunk_frames must be an int >= 1, got {chunk_frames!r}")
    codec = load_codec(checkpoint)
    cfg = codec.cfg
    sr, hop, block = cfg.sr, cfg.hop, chunk_frames * cfg.hop
    info = io.probe_audio(in_path)
    rate, channels = info.rate, info.channels
    if rate != sr or channels != 2:
        log.warning("%s is %s Hz, %s channel(s): resampled to %d Hz%s", in_path, rate, channels, sr,
                    ", mono upmixed to stereo" if channels == 1 else (", downmixed to stereo" if channels and channels > 2 else ""))

    def read() -> Iterator[np.ndarray]:  # (2, block) float32 blocks; NaN/inf raise AudioError
        return io.iter_audio(in_path, sr=sr, channels=2, block=block)

    x = _Measure(hop)
    for b in read():
        x.add(b)
    _warn_clipped_input(x, in_path)
    stream = codec_blocks if cfg.causal else offline_blocks
    render: Callable[[], Iterable[np.ndarray]] = lambda: stream(codec, read(), chunk_frames)  # noqa: E731
    if not x.nonzero:
        log.warning("%s is silent: the roundtrip is silent too", in_path)
        render = lambda: (np.zeros((2, min(block, x.n - i)), np.float32) for i in range(0, x.n, block))  # noqa: E731

    def written(gain: float, measured: list[_Measure]) -> Iterator[np.ndarray]:
        m = _Measure(hop)
        for y in render():
            y = y * gain if gain != 1.0 else y
            m.add(y)
            yield y
        if m.n != x.n:  # the codec keeps the length: a mismatch is a bug, never a silently shorter file
            raise AudioError(f"{out_path}: the roundtrip made {m.n} samples of the {x.n} read")
        if gain == 1.0 and m.peak > 1.0:
            raise _Clipped(m.peak)  # inside write_audio: its temporary file is deleted, OUT left untouched
        measured.append(m)

    measured: list[_Measure] = []
    try:
        io.write_audio(out_path, written(1.0, measured), sr)
    except _Clipped as c:
        log.warning("reconstruction peaks at %.2f: scaled down to avoid clipping", c.peak)
        io.write_audio(out_path, written(0.99 / c.peak, measured), sr)
    y_m = measured[-1]
    return Roundtrip(x.n / sr, rate, channels, cfg.floats_per_second,
                     frame_pan_error(y_m.energies, x.energies) if x.nonzero else 0.0, x.stereo_score, y_m.stereo_score)
