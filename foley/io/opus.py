"""Opus (libopus inside PyAV) encode + decode in memory: the reference codec beside which foley's codec is heard."""
from __future__ import annotations

import io

import av
import numpy as np


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
    y = y[:, : x.shape[1]]  # the Ogg demuxer applies libopus's pre-skip: the output is already aligned
    return np.pad(y, ((0, 0), (0, x.shape[1] - y.shape[1]))).astype(np.float64)
