"""Audio files through the codec: `roundtrip(IN, OUT)` (what `foley codec roundtrip` runs) and `codec_audio`."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from foley.errors import AudioError, MediaError

log = logging.getLogger("foley")
CHUNK_FRAMES = 250  # causal codecs stream long files in 10 s chunks (exact: streaming == batch)


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


def _native_format(path: str | Path) -> tuple[int | None, int | None]:
    """(sample rate, channels) of the first audio stream, read from the header."""
    from foley import io

    info = io.probe_audio(path)
    return info.rate, info.channels


def check_input(x: np.ndarray, path: str | Path) -> None:
    """Warn on clipped audio, refuse empty audio; NaN/inf are refused by foley.io already."""
    if x.shape[-1] == 0:
        raise AudioError(f"{path}: no audio samples")
    clipped = float(np.mean(np.abs(x) >= 0.999))
    if clipped > 1e-3:
        log.warning("%s: %.1f%% of samples are at full scale (clipped); the codec keeps that distortion",
                    path, 100 * clipped)


def codec_audio(codec: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """(2, N) float at codec.cfg.sr -> its reconstruction (2, N): streamed in chunks when causal."""
    cfg = codec.cfg
    n = x.shape[-1]
    frames = -(-n // cfg.hop)
    xt = torch.zeros(1, 2, frames * cfg.hop)
    xt[..., :n] = torch.from_numpy(np.asarray(x, np.float32))
    with torch.no_grad():
        if not cfg.causal:
            return codec.decode(codec.encode(xt))[0, :, :n].numpy()
        step = CHUNK_FRAMES * cfg.hop
        with codec.streaming():
            out = [codec.decode(codec.encode(xt[..., i:i + step])) for i in range(0, xt.shape[-1], step)]
    return torch.cat(out, -1)[0, :, :n].numpy()


def roundtrip(in_path: str | Path, out_path: str | Path, checkpoint: str | Path | None = None) -> Roundtrip:
    """Encode and decode any audio (or video's audio) file with the codec; write 48 kHz stereo WAV/FLAC.

    Other rates are resampled and mono is upmixed, with a warning. Silent input gives silent output.
    """
    from foley import io
    from foley.metrics import stereo_score
    from foley.models.codec import load_codec
    from foley.metrics.codec import pan_error

    if Path(out_path).suffix.lower() not in (".wav", ".flac"):
        raise MediaError(f"{out_path}: write the roundtrip as .wav or .flac")
    codec = load_codec(checkpoint)
    sr = codec.cfg.sr
    rate, channels = _native_format(in_path)
    if rate != sr or channels != 2:
        log.warning("%s is %s Hz, %s channel(s): resampled to %d Hz%s", in_path, rate, channels, sr,
                    ", mono upmixed to stereo" if channels == 1 else (", downmixed to stereo" if channels and channels > 2 else ""))
    x = io.read_audio(in_path, sr=sr, channels=2)  # (2, N) float32; NaN/inf raise AudioError
    check_input(x, in_path)
    if not np.any(x):
        log.warning("%s is silent: the roundtrip is silent too", in_path)
        y = np.zeros_like(x)
    else:
        y = codec_audio(codec, x)
    peak = float(np.max(np.abs(y)))
    if peak > 1.0:
        log.warning("reconstruction peaks at %.2f: scaled down to avoid clipping", peak)
        y = y * (0.99 / peak)
    io.write_audio(out_path, y, sr)
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    return Roundtrip(x.shape[-1] / sr, rate, channels, codec.cfg.floats_per_second,
                     pan_error(yd, xd, sr, codec.cfg.fps) if np.any(x) else 0.0, stereo_score(xd), stereo_score(yd))
