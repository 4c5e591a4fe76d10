"""Length cues in audio file headers that FFmpeg reads past: how long a WAV, an MP3 or an Ogg file says it is.

FFmpeg reports a truncated WAV at the length that is left (it trusts the file size over the RIFF `data`
chunk), an MP3 at the length of its Xing/Info or VBRI header without checking that the frames are there, and
an Ogg stream at the last page it finds. These readers give the declared length from the bytes themselves,
so that foley.io can say "truncated" instead of silently returning a shorter clip:

- `wav_declared_seconds`: the `data` chunk's stated size over the format's byte rate (None for a streamed
  WAV whose size fields are 0 or 0xFFFFFFFF, and for RF64);
- `mp3_declared_seconds`: the frame count of a Xing/Info (LAME, FFmpeg) or VBRI header times the frame length;
- `ogg_unfinished`: True when the last Ogg page is cut short or no page ends the stream (the EOS flag).
"""
from __future__ import annotations

import os
import struct

_SCAN = 1 << 16  # bytes searched for the first MPEG audio frame after the ID3 tag
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # by version bits


def wav_declared_seconds(path: str | os.PathLike) -> float | None:
    """Seconds the RIFF/WAVE header's `data` chunk states, or None where the header states no length."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        byte_rate = None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            kind, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if kind == b"fmt ":
                fmt = f.read(size)
                if len(fmt) < 16:
                    return None
                byte_rate = struct.unpack("<I", fmt[8:12])[0]
                f.seek(size & 1, os.SEEK_CUR)
            elif kind == b"data":
                if byte_rate is None or not byte_rate or size in (0, 0xFFFFFFFF):
                    return None
                return size / byte_rate
            else:
                f.seek(size + (size & 1), os.SEEK_CUR)


def _id3_end(head: bytes) -> int:
    """Where the audio starts after an ID3v2 tag (0 if none)."""
    if head[:3] != b"ID3" or len(head) < 10:
        return 0
    size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
    return 10 + size + (10 if head[5] & 0x10 else 0)


def mp3_declared_seconds(path: str | os.PathLike) -> float | None:
    """Seconds an MP3's Xing/Info or VBRI header states (frame count x samples per frame), or None."""
    with open(path, "rb") as f:
        start = _id3_end(f.read(10))
        f.seek(start)
        buf = f.read(_SCAN)
    for i in range(len(buf) - 4):
        if buf[i] != 0xFF or buf[i + 1] & 0xE0 != 0xE0:
            continue
        version, layer = (buf[i + 1] >> 3) & 3, (buf[i + 1] >> 1) & 3
        rate_index = (buf[i + 2] >> 2) & 3
        if version == 1 or layer == 0 or rate_index == 3 or (buf[i + 2] >> 4) in (0, 15):
            continue  # reserved values: not a frame header
        sr = _MP3_RATES[version][rate_index]
        spf = 384 if layer == 3 else (1152 if version == 3 or layer == 2 else 576)
        mono = (buf[i + 3] >> 6) == 3
        side = (17 if mono else 32) if version == 3 else (9 if mono else 17)
        xing = buf[i + 4 + side:i + 4 + side + 12]
        if xing[:4] in (b"Xing", b"Info") and len(xing) == 12 and struct.unpack(">I", xing[4:8])[0] & 1:
            return struct.unpack(">I", xing[8:12])[0] * spf / sr
        vbri = buf[i + 36:i + 36 + 18]
        if vbri[:4] == b"VBRI" and len(vbri) == 18:
            return struct.unpack(">I", vbri[14:18])[0] * spf / sr
        return None  # the first frame carries no length header: a plain CBR file
    return None


def ogg_unfinished(path: str | os.PathLike) -> bool:
    """True when an Ogg file stops inside a page, or its last whole page does not end the stream (EOS flag)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        pos, eos = 0, False
        while pos < size:
            f.seek(pos)
            head = f.read(27)
            if len(head) < 27 or head[:4] != b"OggS":
                return True  # bytes that are no page: a cut (or damaged) file
            table = f.read(head[26])
            if len(table) < head[26]:
                return True
            pos += 27 + head[26] + sum(table)
            eos = bool(head[5] & 0x04)
        return pos > size or not eos


def mp4_cut_before_index(path: str | os.PathLike) -> bool:
    """True for an MP4/MOV (ISO base media) file cut short before its index: its top-level boxes run past the
    end of the file and none of the whole ones is the `moov` box (an index written last, then lost)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        pos, kinds = 0, []
        while pos + 8 <= size:
            f.seek(pos)
            head = f.read(16)
            box, kind = struct.unpack(">I", head[:4])[0], head[4:8]
            if box == 1 and len(head) == 16:
                box = struct.unpack(">Q", head[8:16])[0]
            elif box == 0:
                box = size - pos
            if box < 8:
                return False  # not a box structure this reader understands
            kinds.append(kind)
            if pos + box > size:
                return kinds[0] == b"ftyp" and b"moov" not in kinds[:-1]
            pos += box
        return False
