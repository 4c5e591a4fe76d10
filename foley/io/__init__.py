"""Video and audio read, write and mux: the only package of foley that touches FFmpeg (PyAV) or soundfile.

Audio is float (C, N) at a given rate. Writers (`write_audio`, `mux_audio`, `write_video`) also take
an iterator of (C, k) blocks, and `iter_audio` reads blocks, so whole jobs can stream: memory then
stays flat in the clip's length. Every user error raises MediaError or AudioError (foley.errors).

Modules, data flowing one way: `_base` (shared checks) -> `audio` (probe, read, resample, write,
FLAC bytes) -> `aac` (exact-length AAC) -> `video` (probe, frames, encode) -> `mux` (remux).
"""
from foley.io._base import AAC_FRAME, AAC_RATE, AudioLike, PathLike
from foley.io.audio import (
    AudioInfo, audio_duration, decode_flac, encode_flac, iter_audio, probe_audio, read_audio, write_audio,
)
from foley.io.mux import mux_audio
from foley.io.video import VideoInfo, count_frames, iter_frames, probe, write_video

__all__ = ["AAC_FRAME", "AAC_RATE", "AudioInfo", "AudioLike", "PathLike", "VideoInfo", "audio_duration",
           "count_frames", "decode_flac", "encode_flac", "iter_audio", "iter_frames", "mux_audio", "probe",
           "probe_audio", "read_audio", "write_audio", "write_video"]
