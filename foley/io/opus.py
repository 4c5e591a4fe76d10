"""Opus (libopus inside PyAV) encode + decode in memory: the reference codec beside which foley's codec is heard."""
from __future__ import annotations

import io

import av
import numpy as np

OPUS_DELAY = 312  # libopus's pre-skip at 48 kHz; PyAV's decoder does not drop it


def opus_roundtrip(x: np.ndarray, kbps: float) -> np.ndarray:
    """(2, N) float audio at 48 kHz -> the same after Opus at `kbps` kb/s stereo, aligned and cut to N samples."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48000, layout="stereo")
        stream.bit_rate = int(kbps * 1000)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x, dtype=np.float32), format="fltp", layout="stereo")
        frame.sample_rate = 48000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    with av.open(buf) as inp:
        y = np.concatenate([f.to_ndarray().reshape(2, -1) for f in inp.decode(audio=0)], 1)
    lag = _lag(x[0], y[0])
    y = y[:, lag:lag + x.shape[1]]
    return np.pad(y, ((0, 0), (0, x.shape[1] - y.shape[1]))).astype(np.float64)


def _lag(x: np.ndarray, y: np.ndarray, search: int = 2048) -> int:
    """Delay of y against x in samples (0..search), by cross-correlation of the first second."""
    n = min(len(x), 48000)
    if n == 0 or np.abs(x[:n]).max() == 0:
        return OPUS_DELAY
    scores = [float(np.dot(y[d:d + n], x[:len(y[d:d + n])])) for d in range(0, min(search, max(1, len(y) - n)))]
    return int(np.argmax(scores)) if scores else OPUS_DELAY
