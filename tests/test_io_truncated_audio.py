"""Audio files cut short whose length FFmpeg takes from what is left (WAV, MP3 with a Xing/Info header, Ogg):
refused as truncated, naming where they stop; whole files, and files whose headers state no length, still read."""
import struct

import av
import numpy as np
import pytest
import soundfile as sf

from foley import io
from foley.errors import MediaError
from foley.io import framing

SR = 48000


def encoded(path, codec, seconds=4.0, layout="stereo"):
    """An audio file encoded by FFmpeg (`codec`: libmp3lame, libopus)."""
    x = (0.1 * np.random.default_rng(0).standard_normal((2 if layout == "stereo" else 1, int(seconds * SR)))).astype(np.float32)
    with av.open(str(path), "w") as out:
        st = out.add_stream(codec, rate=SR, layout=layout)
        for a in range(0, x.shape[1], 960):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, a:a + 960]), format="fltp", layout=layout)
            frame.sample_rate = SR
            for p in st.encode(frame):
                out.mux(p)
        for p in st.encode(None):
            out.mux(p)
    return path


def cut(path, share=0.6):
    out = path.with_name("cut" + path.suffix)
    data = path.read_bytes()
    out.write_bytes(data[:int(len(data) * share)])
    return out


@pytest.mark.parametrize("make", [
    lambda p: (sf.write(p / "a.wav", np.zeros((4 * SR, 2), np.float32) + 0.1, SR), p / "a.wav")[1],
    lambda p: encoded(p / "a.mp3", "libmp3lame"),
    lambda p: encoded(p / "a.mp3", "libmp3lame", layout="mono"),
    lambda p: encoded(p / "a.opus", "libopus"),
], ids=["wav", "mp3", "mp3-mono", "opus"])
def test_a_cut_file_is_refused_and_the_whole_one_reads(tmp_path, make):
    whole = make(tmp_path)
    assert abs(io.read_audio(whole, sr=SR).shape[1] / SR - 4.0) < 0.05
    short = cut(whole)
    with pytest.raises(MediaError, match="truncated"):
        io.read_audio(short, sr=SR)
    with pytest.raises(MediaError, match="truncated"):
        list(io.iter_audio(short, sr=SR))


def test_the_declared_lengths_are_read_from_the_headers(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros((3 * 44100, 1), np.float32), 44100, subtype="PCM_16")
    assert framing.wav_declared_seconds(tmp_path / "a.wav") == pytest.approx(3.0)
    mp3 = encoded(tmp_path / "a.mp3", "libmp3lame", seconds=3.0)
    assert framing.mp3_declared_seconds(mp3) == pytest.approx(3.0, abs=0.06)  # whole frames of 1152 samples
    assert framing.mp3_declared_seconds(cut(mp3)) == framing.mp3_declared_seconds(mp3)  # the header outlives the cut
    opus = encoded(tmp_path / "a.opus", "libopus")
    assert not framing.ogg_unfinished(opus) and framing.ogg_unfinished(cut(opus))


def test_a_wav_that_states_no_length_reads_whole(tmp_path):
    """A WAV written to a pipe carries 0xFFFFFFFF (or 0) as its data size: no length to hold it to."""
    f = tmp_path / "piped.wav"
    sf.write(f, np.full((2 * SR, 2), 0.1, np.float32), SR, subtype="PCM_16")
    data = bytearray(f.read_bytes())
    at = data.index(b"data")
    data[at + 4:at + 8] = struct.pack("<I", 0xFFFFFFFF)
    data[4:8] = struct.pack("<I", 0xFFFFFFFF)
    f.write_bytes(bytes(data))
    assert framing.wav_declared_seconds(f) is None
    assert io.read_audio(f, sr=SR).shape[1] == 2 * SR


def test_an_mp4_cut_before_its_index_says_so(tmp_path):
    """An MP4 written with its index last (no faststart), cut short: FFmpeg cannot open it at all; the message
    says why instead of "is it a video file?"."""
    f = tmp_path / "back.mp4"
    with av.open(str(f), "w") as out:  # no movflags: the moov box goes after the media data
        st = out.add_stream("mpeg4", rate=25)
        st.width, st.height, st.pix_fmt = 64, 48, "yuv420p"
        for k in range(50):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 4 * k, np.uint8), format="rgb24")
            for p in st.encode(frame):
                out.mux(p)
        for p in st.encode(None):
            out.mux(p)
    assert io.probe(f).n_frames == 50 and not framing.mp4_cut_before_index(f)
    short = cut(f, 0.7)
    assert framing.mp4_cut_before_index(short)
    with pytest.raises(MediaError, match="stops before its index"):
        io.probe(short)
    other = tmp_path / "noise.mp4"
    other.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(MediaError, match="cannot read"):  # not an MP4 at all: the plain message
        io.probe(other)
