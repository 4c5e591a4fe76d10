"""Tests for foley.io: probe, frame resampling by timestamp, audio read/write, mux with exact duration."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from foley.errors import AudioError, FoleyError, MediaError
from foley.io import (
    audio_duration, count_frames, iter_frames, mux_audio, probe, read_audio, write_audio, write_video,
)

W, H = 64, 48
STEP = 8  # grey level per frame index, so a decoded frame tells which source frame it shows


def _frame(i: int, w: int = W, h: int = H) -> np.ndarray:
    """A flat grey RGB frame whose level encodes index i."""
    return np.full((h, w, 3), STEP * i, np.uint8)


def _index(rgb: np.ndarray) -> int:
    """The frame index a decoded frame encodes."""
    return round(float(rgb.mean()) / STEP)


def _tone(freq: float, seconds: float, sr: int) -> np.ndarray:
    """(N,) float32 sine at half scale."""
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(round(seconds * sr)) / sr)).astype(np.float32)


def _write_vfr(path: Path, pts_ms: list[int]) -> None:
    """An H.264 file (.mp4, .mkv) whose frames sit at irregular millisecond timestamps, frame i showing i.

    No B-frames: with them the mov muxer derives the track duration from the (compressed) dts.
    """
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30, options={"bf": "0"})
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i, pts in enumerate(pts_ms):
            frame = av.VideoFrame.from_ndarray(_frame(i), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _video_packets(path: Path) -> list[tuple[bytes, float, bool]]:
    """(payload, pts in s, keyframe) of every video packet."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [(bytes(p), float(p.pts * p.time_base), p.is_keyframe) for p in c.demux(s) if p.size]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """30 frames at 15 fps (2 s), 64x48, frame i grey level 8 i."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_video(path, (_frame(i) for i in range(30)), fps=15)
    return path


# ---------------------------------------------------------------- probe and frames


def test_probe_reads_what_write_video_wrote(clip):
    info = probe(clip)
    assert (info.width, info.height, info.n_frames) == (W, H, 30)
    assert info.fps == pytest.approx(15)
    assert info.duration == pytest.approx(2.0)
    assert not info.has_audio and info.audio_rate is None and not info.variable_frame_rate


def test_iter_frames_at_source_rate_is_every_frame(clip, tmp_path):
    assert [_index(f) for f in iter_frames(clip)] == list(range(30))
    mkv = tmp_path / "ms.mkv"  # Matroska rounds timestamps to ms: frame 2 sits at 67 ms > 2/30 s
    write_video(mkv, (_frame(i) for i in range(30)), fps=30)
    assert [_index(f) for f in iter_frames(mkv)] == list(range(30))


@pytest.mark.parametrize("fps", [6, 40])
def test_iter_frames_resamples_by_timestamp(clip, fps):
    frames = list(iter_frames(clip, fps=fps))
    assert len(frames) == round(2.0 * fps) == count_frames(probe(clip), fps)
    assert [_index(f) for f in frames] == [int(i * 15 // fps) for i in range(len(frames))]  # latest pts <= i/fps
    assert all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in frames)


def test_iter_frames_resizes(clip):
    frames = list(iter_frames(clip, fps=5, size=(32, 20)))
    assert len(frames) == 10 and frames[0].shape == (20, 32, 3)


def test_variable_frame_rate_comes_out_constant(tmp_path):
    pts_ms = [0, 30, 45, 160, 180, 410, 430, 450, 700, 950]
    path = tmp_path / "vfr.mp4"
    _write_vfr(path, pts_ms)
    info = probe(path)
    assert info.variable_frame_rate and info.n_frames == len(pts_ms)
    assert 0.95 < info.duration < 1.0 + 1e-6  # the last frame lasts until the end of the stream
    fps = 20
    frames = list(iter_frames(path, fps=fps))
    assert len(frames) == round(info.duration * fps)
    expected = [int(np.searchsorted(pts_ms, 1000 * i / fps, side="right")) - 1 for i in range(len(frames))]
    assert [_index(f) for f in frames] == expected


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_time_is_relative_to_the_stream_start(tmp_path, ext):
    path = tmp_path / f"late.{ext}"
    _write_vfr(path, [500, 600, 700, 800])  # the first frame is at 0.5 s
    info = probe(path)
    assert info.duration == pytest.approx(0.3 + 1 / 30, abs=2e-3)  # last frame: the nominal 1/30 s
    assert [_index(f) for f in iter_frames(path, fps=20)] == [0, 0, 1, 1, 2, 2, 3]


def test_constant_rate_is_not_flagged_variable(clip):
    assert not probe(clip).variable_frame_rate


def test_odd_size_is_padded_to_even(tmp_path):
    path = tmp_path / "odd.mp4"
    frames = [_frame(i, 63, 47) for i in range(5)]
    for f in frames:
        f[:, -1] = 255  # the last column is white, so its replica must be too
    write_video(path, frames, fps=10)
    info = probe(path)
    assert (info.width, info.height) == (64, 48)
    out = list(iter_frames(path))
    assert len(out) == 5 and out[0][:, -2:].mean() > 240
    assert next(iter_frames(path, size=(63, 47))).shape == (47, 63, 3)


# ---------------------------------------------------------------- audio files


def test_read_audio_resamples_keeping_frequency_and_duration(tmp_path):
    path = tmp_path / "tone44k.wav"
    sf.write(path, _tone(1000, 1.5, 44100), 44100, subtype="FLOAT")
    audio = read_audio(path, sr=48000)
    assert audio.dtype == np.float32 and audio.shape[0] == 1
    assert abs(audio.shape[1] - 72000) <= 2
    spectrum = np.abs(np.fft.rfft(audio[0]))
    assert np.fft.rfftfreq(audio.shape[1], 1 / 48000)[spectrum.argmax()] == pytest.approx(1000, abs=1)


def test_read_audio_channels(tmp_path):
    path = tmp_path / "lr.wav"
    sf.write(path, np.stack([np.full(480, 0.5), np.full(480, -0.1)], axis=1), 48000, subtype="FLOAT")
    assert np.allclose(read_audio(path, channels=1), 0.2, atol=1e-6)
    mono = tmp_path / "mono.wav"
    sf.write(mono, np.full(480, 0.25), 48000, subtype="FLOAT")
    stereo = read_audio(mono, channels=2)
    assert stereo.shape == (2, 480) and np.allclose(stereo, 0.25)


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_write_audio_round_trip_24_bit(tmp_path, ext):
    rng = np.random.default_rng(0)
    audio = rng.uniform(-0.99, 0.99, (2, 4800)).astype(np.float32)
    path = tmp_path / f"x.{ext}"
    write_audio(path, audio, 48000)
    assert sf.info(path).subtype == "PCM_24"
    assert np.abs(read_audio(path, sr=48000) - audio).max() < 1e-6


def test_write_audio_clips_only_as_a_guard(tmp_path):
    path = tmp_path / "loud.wav"
    write_audio(path, np.array([[2.0, -3.0, 0.5]]), 48000)
    assert np.allclose(read_audio(path), [[1.0, -1.0, 0.5]], atol=1e-6)


# ---------------------------------------------------------------- mux


@pytest.mark.parametrize("ext", ["mp4", "mov", "mkv"])
def test_mux_audio_copies_video_and_matches_duration(tmp_path, ext):
    fps, n = 60, 100  # 1.667 s: 80000 samples, not a whole number of AAC frames; 1/fps < 1024 samples
    src = tmp_path / "src.mp4"
    write_video(src, (_frame(i % 30) for i in range(n)), fps=fps, audio=np.zeros((1, 4800)), sr=48000)
    left = _tone(440, 2.5, 44100)  # longer than the video, at another rate: trimmed and resampled
    out = tmp_path / f"out.{ext}"
    mux_audio(src, np.stack([left, np.zeros_like(left)]), 44100, out)

    a, b = _video_packets(src), _video_packets(out)
    assert [(p[0], p[2]) for p in a] == [(p[0], p[2]) for p in b]  # same bytes, same keyframes: no re-encode
    assert np.allclose([p[1] for p in a], [p[1] for p in b], atol=1e-3)  # same timestamps (ms in .mkv)
    info = probe(out)
    assert info.duration == pytest.approx(n / fps, abs=1e-3) and info.audio_channels == 2
    assert abs(audio_duration(out) - info.duration) < 1 / fps
    assert audio_duration(out) == pytest.approx(n / fps, abs=1e-3)  # priming and padding are trimmed
    audio = read_audio(out)
    assert (audio[1] ** 2).sum() < 1e-3 * (audio[0] ** 2).sum()  # a tone only in L stays in L
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 1


def test_mux_audio_pads_short_mono_audio(tmp_path, clip):
    out = tmp_path / "short.mp4"
    mux_audio(clip, _tone(440, 0.5, 48000)[None], 48000, out)
    assert audio_duration(out) == pytest.approx(2.0, abs=1e-3)
    audio = read_audio(out)
    assert audio.shape[0] == 1 and np.abs(audio[0, 36000:]).max() < 1e-3  # the pad is silent


def test_mux_audio_into_a_late_starting_video(tmp_path):
    src = tmp_path / "late.mp4"
    _write_vfr(src, [500, 600, 700, 800])  # the video starts at 0.5 s
    out = tmp_path / "late_out.mp4"
    mux_audio(src, np.full((1, 48000), 0.5, np.float32), 48000, out)
    audio = read_audio(out)
    assert abs(int(np.argmax(audio[0] > 0.25)) - 24000) < 48  # the audio starts with the video
    assert audio_duration(out) == pytest.approx(0.5 + probe(src).duration, abs=1e-3)


def test_write_video_with_audio(tmp_path):
    path = tmp_path / "av.mp4"
    write_video(path, (_frame(i) for i in range(24)), fps=24, audio=_tone(440, 3.0, 16000)[None], sr=16000)
    info = probe(path)
    assert info.has_audio and info.audio_rate == 48000 and info.audio_channels == 2
    assert audio_duration(path) == pytest.approx(1.0, abs=1e-3)


# ---------------------------------------------------------------- errors


def test_missing_file(tmp_path):
    for call in (probe, iter_frames, read_audio, audio_duration):
        with pytest.raises(MediaError, match="no such file"):
            call(tmp_path / "nope.mp4")


def test_text_file_is_not_media(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    with pytest.raises(MediaError, match="cannot read"):
        probe(path)
    with pytest.raises(MediaError, match="cannot read"):
        read_audio(path)


def test_audio_only_file_has_no_video(tmp_path):
    path = tmp_path / "a.wav"
    write_audio(path, np.zeros((1, 480)), 48000)
    with pytest.raises(MediaError, match="no video stream"):
        probe(path)


def test_video_stream_without_frames(tmp_path):
    path = tmp_path / "no_frames.mkv"  # a video track with no packets beside a real audio track
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        audio = out.add_stream("aac", rate=48000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4800), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(audio.encode(frame) + audio.encode(None))
    with pytest.raises(MediaError, match="no timestamped frames"):
        probe(path)


def test_silent_video_has_no_audio(clip):
    with pytest.raises(MediaError, match="no audio stream: pass --audio FILE"):
        read_audio(clip)


def test_bad_audio_raises_audio_error(tmp_path):
    nan = np.zeros((2, 100), np.float32)
    nan[1, 50] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        write_audio(tmp_path / "nan.wav", nan, 48000)
    with pytest.raises(AudioError, match="length 0"):
        write_audio(tmp_path / "empty.wav", np.zeros((1, 0)), 48000)
    assert list(tmp_path.iterdir()) == []
    raw = tmp_path / "nan_in_file.wav"
    sf.write(raw, nan.T, 48000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        read_audio(raw)


def test_unsupported_extensions(tmp_path, clip):
    with pytest.raises(MediaError, match=".wav or .flac"):
        write_audio(tmp_path / "x.mp3", np.zeros((1, 10)), 48000)
    with pytest.raises(MediaError, match=".mp4, .mov or .mkv"):
        mux_audio(clip, np.zeros((1, 10)), 48000, tmp_path / "x.avi")


def test_missing_output_folder_leaves_nothing(tmp_path, clip):
    with pytest.raises(FoleyError, match="does not exist"):
        write_audio(tmp_path / "no" / "x.wav", np.zeros((1, 10)), 48000)
    with pytest.raises(FoleyError, match="does not exist"):
        write_video(tmp_path / "no" / "x.mp4", [_frame(0)], fps=10)
    with pytest.raises(FoleyError, match="does not exist"):
        mux_audio(clip, np.zeros((2, 10)), 48000, tmp_path / "no" / "x.mp4")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_video_leaves_nothing(tmp_path):
    def frames():
        yield _frame(0)
        yield _frame(1)
        raise RuntimeError("generator broke")

    with pytest.raises(RuntimeError):
        write_video(tmp_path / "x.mp4", frames(), fps=10)
    with pytest.raises(MediaError, match="frame 1"):
        write_video(tmp_path / "x.mp4", [_frame(0), _frame(0, 32, 32)], fps=10)
    assert list(tmp_path.iterdir()) == []


def test_an_audio_probe_is_remembered_only_while_the_file_is_unchanged(tmp_path):
    """A job streams its input several times: the header is read once. A changed file is read again, and a
    failure is said every time (never remembered)."""
    import os
    import time

    from foley.io import probe_audio

    f = tmp_path / "a.wav"
    sf.write(f, np.zeros((48000, 2), np.float32), 48000)
    opens = []
    real = av.open
    av.open = lambda *a, **k: opens.append(a[0]) or real(*a, **k)
    try:
        assert probe_audio(f).duration == pytest.approx(1.0) and probe_audio(f).duration == pytest.approx(1.0)
        assert len(opens) == 1
        sf.write(f, np.zeros((96000, 1), np.float32), 48000)
        os.utime(f, ns=(time.time_ns(), time.time_ns() + 10 ** 9))  # a new mtime even on a coarse clock
        info = probe_audio(f)
        assert info.duration == pytest.approx(2.0) and info.channels == 1 and len(opens) == 2
        f.write_bytes(b"not audio")
        for _ in range(2):
            with pytest.raises(MediaError):
                probe_audio(f)
    finally:
        av.open = real
