"""A dented audio stream (a few undecodable packets) plays on with silence in their place; a broken one is refused."""
import logging

import av
import numpy as np
import pytest

from foley import io
from foley.errors import MediaError

SR = 48000


def ac3_file(path, seconds=2.0):
    """A Matroska file of AC-3 audio (1536-sample packets), a 440 Hz tone; returns the packets' byte offsets."""
    with av.open(str(path), "w") as out:
        st = out.add_stream("ac3", rate=SR)
        st.layout = "stereo"
        t = np.arange(int(seconds * SR)) / SR
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for a in range(0, len(tone), 1536):
            frame = av.AudioFrame.from_ndarray(np.stack([tone[a:a + 1536]] * 2), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = SR, a
            for p in st.encode(frame):
                out.mux(p)
        for p in st.encode(None):
            out.mux(p)
    with av.open(str(path)) as c:
        return [(p.pos, p.size) for p in c.demux(c.streams.audio[0]) if p.size]


def damage(path, spans):
    data = bytearray(path.read_bytes())
    for pos, size in spans:
        data[pos + 2:pos + size] = bytes(size - 2)  # keep the sync word: the demuxer still finds the packet
    path.write_bytes(bytes(data))


def test_one_damaged_packet_is_heard_as_silence_in_time(tmp_path, caplog):
    f = tmp_path / "dented.mkv"
    packets = ac3_file(f)
    clean = io.read_audio(f, sr=SR, channels=1)
    damage(f, packets[:1])
    with caplog.at_level(logging.WARNING, logger="foley"):
        dented = io.read_audio(f, sr=SR, channels=1)
    assert "undecodable audio packet at 0.00 s" in caplog.text
    assert abs(dented.shape[1] - clean.shape[1]) <= 1536  # in time: the gap is filled, not closed
    assert np.abs(dented[0, :1000]).max() < 1e-3  # the damaged packet is silent
    late = slice(SR // 2, SR)
    np.testing.assert_allclose(dented[0, late], clean[0, late], atol=2e-2)  # the rest plays as before


def test_a_stream_that_keeps_failing_is_damaged(tmp_path):
    f = tmp_path / "broken.mkv"
    packets = ac3_file(f)
    damage(f, packets[5:15])
    with pytest.raises(MediaError, match="is damaged"):
        io.read_audio(f, sr=SR)
