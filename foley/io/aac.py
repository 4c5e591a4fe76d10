"""AAC encoding that decodes to an exact length, streamed one second at a time."""
from __future__ import annotations

import itertools
import struct
from fractions import Fraction
from typing import Iterator

import av
import numpy as np

from foley.blocks import fit_blocks, rechunk
from foley.errors import AudioError
from foley.io._base import AAC_FRAME, AAC_RATE, _LAYOUTS, AudioLike, _audio_blocks, _check_rate
from foley.io.audio import _resample_blocks


def _aac_input(audio: AudioLike, sr: int, what: str) -> tuple[int, Iterator[np.ndarray]]:
    """Validate 1- or 2-channel audio (array or block iterator): (C, its float32 blocks resampled to 48 kHz)."""
    _check_rate(sr, "sample rate")
    channels, blocks = _audio_blocks(audio, what)
    if channels not in _LAYOUTS:
        raise AudioError(f"{what}: expected 1 or 2 channels, got {channels}; downmix first")
    return channels, _resample_blocks(blocks, channels, int(sr), AAC_RATE)


def _add_aac(out: av.container.OutputContainer, channels: int) -> av.AudioStream:
    """A 48 kHz AAC stream, 96 kbit/s per channel."""
    stream = out.add_stream("aac", rate=AAC_RATE, layout=_LAYOUTS[channels])
    stream.bit_rate = 96_000 * channels
    return stream


def _aac_packets(stream: av.AudioStream, blocks: Iterator[np.ndarray], channels: int, fmt: str, silence: int,
                 n: int) -> Iterator[av.Packet]:
    """Encode `silence` zeros then the (C, k) blocks trimmed/padded to n, so that exactly silence + n samples decode.

    The encoder primes with AAC_FRAME samples: its first packet starts at pts -1024, which the mov
    and Matroska muxers record (edit list / CodecDelay) and FFmpeg's demuxers skip. The end needs
    help: FFmpeg's mov demuxer ignores the edit list's end, so for MP4/MOV we prepend `lead` silent
    samples at negative time to make lead + total whole AAC frames; Matroska instead marks the last
    packet's padding as DiscardPadding (skip_samples side data). Read, encoded and yielded one
    second at a time, so memory stays flat in the clip's length.
    """
    total = silence + n
    lead = (-total) % AAC_FRAME if fmt in ("mp4", "mov") else 0
    head = np.zeros((channels, lead + silence), np.float32)
    samples = rechunk(itertools.chain([head], fit_blocks(blocks, n, AAC_RATE, channels)), AAC_RATE)
    frames = (_frame(block, channels, pts) for pts, block in zip(itertools.count(-lead, AAC_RATE), samples))
    packets = _encode(stream, frames)
    last = next(packets)  # held back: its padding is marked once it is known to be the last
    for packet in packets:
        yield last
        last = packet
    _discard_end(last, last.pts + AAC_FRAME - total)
    yield last


def _frame(block: np.ndarray, channels: int, pts: int) -> av.AudioFrame:
    """A 48 kHz planar-float frame of (C, k) samples starting at sample `pts`."""
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout=_LAYOUTS[channels])
    frame.sample_rate, frame.time_base, frame.pts = AAC_RATE, Fraction(1, AAC_RATE), pts
    return frame


def _encode(stream: av.AudioStream, frames: Iterator[av.AudioFrame]) -> Iterator[av.Packet]:
    """Packets of each frame as it is encoded, then the encoder's flush."""
    for frame in frames:
        yield from stream.encode(frame)
    yield from stream.encode(None)


def _discard_end(packet: av.Packet, samples: int) -> None:
    """Mark the last `samples` decoded samples of `packet` as padding (AV_PKT_DATA_SKIP_SAMPLES)."""
    if samples <= 0 or not hasattr(av.packet, "PacketSideData"):  # PyAV < 15: .mkv decodes a bit long
        return
    side = av.packet.PacketSideData(av.packet.packet_sidedata_type_from_literal("skip_samples"), 10)
    memoryview(side)[:] = struct.pack("<IIBB", 0, samples, 0, 0)  # skip at start, skip at end, reasons
    packet.set_sidedata(side)
