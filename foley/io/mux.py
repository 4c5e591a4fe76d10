"""Remux a video with a new audio track: the video stream is copied, the audio encoded as it is muxed."""
from __future__ import annotations

from typing import Iterable, Iterator

import av

from foley.errors import MediaError
from foley.files import atomic_output
from foley.io._base import (
    AAC_RATE, AudioLike, PathLike, _check_reached, _container_format, _declared_end, _decode_errors, _media_errors,
    _nominal_step, _open_input, _open_output,
)
from foley.io.aac import _aac_input, _aac_packets, _add_aac
from foley.io.video import probe


def mux_audio(video_path: PathLike, audio: AudioLike, sr: int, out_path: PathLike) -> None:
    """Copy a video with its video stream remuxed (not re-encoded) and `audio` as its only audio track.

    Args:
        video_path: the source video; its other streams are dropped.
        audio: (C, N) float, C in 1..2, at rate `sr`, or an iterator of (C, k) blocks (any k, one C),
            encoded as they come so that memory stays flat in length; padded or trimmed here to the
            video's duration and encoded as 48 kHz AAC that decodes to exactly that duration.
        out_path: .mp4, .mov or .mkv; written atomically.
    """
    fmt = _container_format(out_path)
    info = probe(video_path)
    channels, blocks = _aac_input(audio, sr, f"audio for {out_path}")
    n = round(info.duration * AAC_RATE)  # the audio is padded with zeros or trimmed to this
    with _open_input(video_path) as src, atomic_output(out_path) as tmp:
        video_in = src.streams.video[0]
        # A video starting late gets silence before it: audio starting at pts > 0 would keep its priming in MP4.
        silence = max(0, round(float((video_in.start_time or 0) * video_in.time_base) * AAC_RATE))
        with _media_errors(f"cannot write {out_path}"), _open_output(tmp, fmt) as out:
            video_out = _copy_stream(out, video_in, out_path)
            packets = _aac_packets(_add_aac(out, channels), blocks, channels, fmt, silence, n)
            _mux_in_order(out, video_out, _whole(src, video_in, video_path), packets)


def _whole(container: av.container.InputContainer, stream: av.VideoStream, path: PathLike) -> Iterator[av.Packet]:
    """The stream's packets; MediaError at an unreadable one, or at the end if they stop well before the headers say."""
    end, reached, step = _declared_end(container, stream), None, _nominal_step(stream)
    start = float((stream.start_time or 0) * stream.time_base)
    with _decode_errors(path, "video", lambda: max(0.0, (reached or start) - start)):
        for packet in container.demux(stream):
            if packet.size and packet.pts is not None:
                if packet.is_corrupt:
                    raise MediaError(f"{path} is damaged: its video holds an unreadable packet at "
                                     f"{max(0.0, (reached or start) - start):.2f} s; re-download or re-export it")
                length = float((packet.duration or 0) * stream.time_base)
                reached, step = max(reached or 0.0, float(packet.pts * stream.time_base) + length), max(step, length)
            yield packet
    _check_reached(path, "video", reached, end, start, step)


def _copy_stream(out: av.container.OutputContainer, template: av.VideoStream, path: PathLike) -> av.VideoStream:
    """An output stream taking `template`'s packets unchanged; MediaError if the container can't hold them."""
    try:
        return out.add_stream_from_template(template, opaque=True)  # opaque: remux needs no encoder
    except ValueError as e:
        raise MediaError(f"cannot copy {template.codec_context.name} video into {path}: {e}; try .mkv") from e


def _mux_in_order(
    out: av.container.OutputContainer, video_out: av.VideoStream,
    video_packets: Iterable[av.Packet], audio_packets: Iterator[av.Packet],
) -> None:
    """Mux copied video packets and encoded audio packets interleaved by decode time, both streamed."""
    audio, t = next(audio_packets, None), 0
    for packet in video_packets:
        if packet.size == 0:  # the demuxer's final empty packet
            continue
        stamp = packet.dts if packet.dts is not None else packet.pts  # Matroska stores no dts
        t = t if stamp is None else stamp * packet.time_base
        while audio is not None and audio.dts * audio.time_base <= t:
            out.mux(audio)
            audio = next(audio_packets, None)
        packet.stream = video_out
        out.mux(packet)
    if audio is not None:
        out.mux(audio)
    for packet in audio_packets:
        out.mux(packet)
