"""Video and audio read, write and mux: the only package of foley that touches FFmpeg (PyAV) or soundfile."""
from foley.io.video import (
    AAC_FRAME, AAC_RATE, PathLike, VideoInfo, _first, _open_input, audio_duration, count_frames, iter_frames,
    mux_audio, probe, read_audio, write_audio, write_video,
)

__all__ = ["AAC_FRAME", "AAC_RATE", "PathLike", "VideoInfo", "audio_duration", "count_frames", "iter_frames",
           "mux_audio", "probe", "read_audio", "write_audio", "write_video"]
