"""Tests for foley.io's streaming side and audio helpers: iter_audio == read_audio, block writers == array
writers (same bytes), probe_audio, FLAC bytes; and foley.blocks."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from foley.blocks import fit_blocks, rechunk
from foley.errors import AudioError, MediaError
from foley.io import (
    audio_duration, decode_flac, encode_flac, iter_audio, mux_audio, probe_audio, read_audio, write_audio,
    write_video,
)

SR = 48000


def _noise(channels: int, n: int, seed: int = 0) -> np.ndarray:
    """(C, n) float32 noise at a tenth of full scale."""
    return (0.1 * np.random.default_rng(seed).standard_normal((channels, n))).astype(np.float32)


def _split(audio: np.ndarray, sizes: tuple[int, ...] = (1, 999, 4097, 0, 31000)):
    """An iterator of (C, k) blocks of irregular sizes (cycling through `sizes`) covering `audio`."""
    a, i = 0, 0
    while a < audio.shape[1]:
        k = sizes[i % len(sizes)]
        yield audio[:, a:a + k]
        a, i = a + k, i + 1


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """2 s of video at 25 fps, 64x48, no audio."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_video(path, (np.full((48, 64, 3), 4 * i, np.uint8) for i in range(50)), fps=25)
    return path


# ---------------------------------------------------------------- foley.blocks


def test_rechunk_and_fit_blocks_keep_the_samples():
    audio = _noise(2, 10_000)
    chunks = list(rechunk(_split(audio), 3000))
    assert [c.shape[1] for c in chunks] == [3000, 3000, 3000, 1000]
    np.testing.assert_array_equal(np.concatenate(chunks, axis=1), audio)
    short = list(fit_blocks(_split(audio), 12_500, 3000, 2))  # zero-padded
    assert [c.shape[1] for c in short] == [3000] * 4 + [500]
    np.testing.assert_array_equal(np.concatenate(short, axis=1)[:, :10_000], audio)
    assert not np.concatenate(short, axis=1)[:, 10_000:].any()
    long = list(fit_blocks(_split(audio), 4500, 3000, 2))  # trimmed
    np.testing.assert_array_equal(np.concatenate(long, axis=1), audio[:, :4500])


# ---------------------------------------------------------------- reading


@pytest.mark.parametrize("channels", [None, 1, 2])
def test_iter_audio_equals_read_audio(tmp_path, channels):
    path = tmp_path / "x44k.flac"
    sf.write(path, _noise(2, 3 * 44100 + 17).T, 44100)  # another rate: resampled chunk by chunk
    whole = read_audio(path, sr=SR, channels=channels)
    blocks = list(iter_audio(path, sr=SR, channels=channels, block=10_000))
    assert all(b.shape == (whole.shape[0], 10_000) for b in blocks[:-1]) and 0 < blocks[-1].shape[1] <= 10_000
    assert all(b.dtype == np.float32 for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), whole)


def test_iter_audio_checks_each_block_and_the_path_at_once(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        iter_audio(tmp_path / "nope.wav")  # before any block is asked for
    bad = _noise(1, 3 * SR)
    bad[0, 2 * SR + 5] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, bad.T, SR, subtype="FLOAT")
    blocks = iter_audio(path, block=SR)
    np.testing.assert_array_equal(next(blocks), bad[:, :SR])  # the blocks before the NaN come out
    with pytest.raises(AudioError, match="NaN or inf"):
        list(blocks)


def test_probe_audio_reads_the_headers(tmp_path, clip):
    wav = tmp_path / "a.wav"
    sf.write(wav, _noise(2, 44100 // 2).T, 44100)
    info = probe_audio(wav)
    assert (info.rate, info.channels, info.duration) == (44100, 2, pytest.approx(0.5))
    assert info.path == str(wav)
    flac = tmp_path / "a.flac"
    write_audio(flac, _noise(1, SR * 2), SR)
    assert (probe_audio(flac).rate, probe_audio(flac).channels, probe_audio(flac).duration) == (SR, 1, 2.0)
    with_sound = tmp_path / "v.mp4"
    mux_audio(clip, _noise(1, SR), SR, with_sound)
    info = probe_audio(with_sound)
    assert (info.rate, info.channels) == (SR, 1)
    assert info.duration == pytest.approx(audio_duration(with_sound), abs=0.03)
    with pytest.raises(MediaError, match="no audio stream"):
        probe_audio(clip)


# ---------------------------------------------------------------- writing


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_write_audio_from_blocks_writes_the_same_bytes(tmp_path, ext):
    audio = _noise(2, 50_000)
    audio[0, 7] = 1.5  # clipped in both
    write_audio(tmp_path / f"whole.{ext}", audio, SR)
    write_audio(tmp_path / f"blocks.{ext}", _split(audio), SR)
    assert (tmp_path / f"whole.{ext}").read_bytes() == (tmp_path / f"blocks.{ext}").read_bytes()


def test_write_audio_from_bad_blocks_leaves_no_file(tmp_path):
    audio = _noise(2, 50_000)
    audio[1, 40_000] = np.inf
    with pytest.raises(AudioError, match="NaN or inf"):
        write_audio(tmp_path / "x.wav", _split(audio), SR)
    with pytest.raises(AudioError, match="length 0"):
        write_audio(tmp_path / "x.wav", iter([]), SR)
    with pytest.raises(AudioError, match="length 0"):
        write_audio(tmp_path / "x.wav", iter([np.zeros((2, 0))]), SR)
    with pytest.raises(AudioError, match=r"\(2, samples\)"):
        write_audio(tmp_path / "x.wav", iter([np.zeros((2, 10)), np.zeros((1, 10))]), SR)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sr", [SR, 44100])
def test_mux_audio_from_blocks_equals_from_an_array(tmp_path, clip, sr):
    audio = _noise(2, int(2.5 * sr))  # longer than the video: trimmed
    mux_audio(clip, audio, sr, tmp_path / "whole.mp4")
    mux_audio(clip, _split(audio), sr, tmp_path / "blocks.mp4")
    if sr == SR:  # same samples into the encoder: same bytes
        assert (tmp_path / "whole.mp4").read_bytes() == (tmp_path / "blocks.mp4").read_bytes()
    a, b = read_audio(tmp_path / "whole.mp4"), read_audio(tmp_path / "blocks.mp4")
    assert a.shape == b.shape == (2, 2 * SR)
    assert np.abs(a - b).max() < 1e-3


def test_write_video_with_streamed_audio(tmp_path):
    frames = [np.full((48, 64, 3), 4 * i, np.uint8) for i in range(25)]
    audio = _noise(1, SR // 2)  # shorter than the video: padded
    write_video(tmp_path / "whole.mp4", frames, 25, audio=audio, sr=SR)
    write_video(tmp_path / "blocks.mp4", frames, 25, audio=_split(audio), sr=SR)
    assert (tmp_path / "whole.mp4").read_bytes() == (tmp_path / "blocks.mp4").read_bytes()
    assert audio_duration(tmp_path / "blocks.mp4") == pytest.approx(1.0, abs=1e-3)


# ---------------------------------------------------------------- FLAC bytes


def test_flac_bytes_round_trip_at_16_bit():
    audio = np.clip(_noise(3, 12_345) * 5, -1.2, 1.2)  # some samples beyond full scale
    data = encode_flac(audio, 16000)
    assert data[:4] == b"fLaC" and encode_flac(audio, 16000) == data  # deterministic
    back, sr = decode_flac(data)
    assert sr == 16000 and back.shape == audio.shape and back.dtype == np.float32
    expected = np.clip(np.round(audio * 32767), -32768, 32767) / 32768  # soundfile reads int16 / 32768
    np.testing.assert_allclose(back, expected, atol=1e-7)
    assert sf.info(io.BytesIO(data)).subtype == "PCM_16"
