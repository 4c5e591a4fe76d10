"""One clip as a set of named byte strings (a WebDataset sample), and back.

Members of clip `key` (all deterministic bytes):
  key.json          metadata: scene, captions, classes, motions, event times, tracks (foley.tracks/1),
                    per-mix Stereo-Score, frame byte lengths (BAS: `bas_report`, computed by `stats`)
  key.mjpeg         the frames as concatenated JPEGs (a valid MJPEG stream: ``ffplay -f mjpeg``)
  key.objaware.flac / key.dataset.flac  stereo mixes; key.mono.flac  the mono mix, one channel
  key.stems.flac    one channel per object, then the ambience bed
  key.masks.bin     optional: zlib of np.packbits of the (O, K, H, W) bool masks
Audio is 16-bit FLAC at the world's sample rate.
"""
from __future__ import annotations

import json
import math
import zlib
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from foley.io import decode_flac, encode_flac
from foley.metrics import evaluate, stereo_score
from foley.tracks import SCHEMA as TRACK_SCHEMA, Track
from foley.world.audio import MIXES, Audio, synthesize
from foley.world.render import Rendered, render
from foley.world.scene import Scene, WorldError

SCHEMA = "foley.world/1"


def _r(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in values]


def bas_report(mixes: dict[str, np.ndarray], tracks: list[Track], sr: int) -> dict[str, list[float | None]]:
    """BAS of each mix against each object's track (StereoFoley §3.3); None where no frame is scored."""
    out = {}
    for name, stereo in mixes.items():
        reps = [evaluate(stereo, sr, t) for t in tracks]
        out[name] = [None if math.isnan(r.bas) else round(r.bas, 4) for r in reps]
    return out


def metadata(scene: Scene, rendered: Rendered, audio: Audio, frame_bytes: list[int]) -> dict:
    """The JSON document of a clip."""
    cfg = scene.cfg
    objects = []
    for o, sc in zip(scene.objects, rendered.schedules):
        objects.append({"class": o.cls, "colour": o.colour, "motion": o.path.kind, "caption": o.caption,
                        "events": _r(sc.events), "run_ends": _r(sc.offs), "size": round(o.size, 4),
                        "rate": round(o.rate, 4), "level": round(o.level, 4), "voice": asdict(o.voice),
                        "path": asdict(o.path)})
    return {
        "schema": SCHEMA, "key": scene.key, "seed": scene.seed, "split": scene.split, "index": scene.index,
        "fps": cfg.fps, "seconds": cfg.seconds, "frame_size": [cfg.width, cfg.height], "sr": cfg.sr,
        "backdrop": scene.backdrop, "captions": scene.captions, "camera_pan_px_per_s": round(scene.pan_px_per_s, 4),
        "objects": objects, "dataset_style": scene.dataset_style,
        "tracks": {"schema": TRACK_SCHEMA, "fps": cfg.fps, "frame_size": [cfg.width, cfg.height],
                   "tracks": [t.to_dict() for t in rendered.tracks]},
        "stereo_score": {m: round(stereo_score(audio.mixes[m]), 4) for m in MIXES}, "frame_bytes": frame_bytes,
    }


def encode(scene: Scene, rendered: Rendered, audio: Audio) -> dict[str, bytes]:
    """The members of one clip, name -> bytes, in a fixed order."""
    cfg, key = scene.cfg, scene.key
    q = [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]
    jpegs = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), q)[1].tobytes() for f in rendered.frames]
    meta = metadata(scene, rendered, audio, [len(j) for j in jpegs])
    files = {f"{key}.json": json.dumps(meta, sort_keys=True).encode(), f"{key}.mjpeg": b"".join(jpegs)}
    files[f"{key}.objaware.flac"] = encode_flac(audio.mixes["objaware"], cfg.sr)
    files[f"{key}.dataset.flac"] = encode_flac(audio.mixes["dataset"], cfg.sr)
    files[f"{key}.mono.flac"] = encode_flac(audio.mixes["mono"][:1], cfg.sr)
    files[f"{key}.stems.flac"] = encode_flac(np.concatenate([audio.stems, audio.ambience[None]]), cfg.sr)
    if cfg.masks:
        masks = rendered.masks if rendered.masks is not None else []
        files[f"{key}.masks.bin"] = zlib.compress(np.packbits(np.stack(masks)).tobytes(), 6)
    return files


def make_clip(scene: Scene) -> dict[str, bytes]:
    """Render, synthesise and encode one scene."""
    rendered = render(scene, with_masks=scene.cfg.masks)
    return encode(scene, rendered, synthesize(scene, rendered))


@dataclass(frozen=True)
class ClipRecord:
    """A decoded clip."""

    meta: dict
    frames: np.ndarray  # (K, H, W, 3) uint8 RGB
    mixes: dict[str, np.ndarray]  # name -> (2, N) float32
    stems: np.ndarray | None  # (O, N) float32
    ambience: np.ndarray | None  # (N,) float32
    masks: np.ndarray | None  # (O, K, H, W) bool

    @property
    def tracks(self) -> list[Track]:
        t = self.meta["tracks"]
        return [Track.from_dict(d, t["fps"], tuple(t["frame_size"])) for d in t["tracks"]]


def decode_frames(data: bytes, lengths: list[int]) -> np.ndarray:
    """(K, H, W, 3) uint8 RGB from concatenated JPEGs."""
    out, pos = [], 0
    for n in lengths:
        img = cv2.imdecode(np.frombuffer(data, np.uint8, n, pos), cv2.IMREAD_COLOR)
        out.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        pos += n
    return np.stack(out)


def decode(files: dict[str, bytes], mixes: tuple[str, ...] = MIXES, frames: bool = True,
           stems: bool = True) -> ClipRecord:
    """A clip from its members (keys may carry the clip key prefix or just the suffix)."""
    by_ext = files if "json" in files else {k.split(".", 1)[1]: v for k, v in files.items() if "." in k}
    if "json" not in by_ext:
        raise WorldError("clip record has no .json member: not a foley world clip")
    meta = json.loads(by_ext["json"])
    video = decode_frames(by_ext["mjpeg"], meta["frame_bytes"]) if frames else np.zeros((0,), np.uint8)
    out = {}
    for m in mixes:
        a, _ = decode_flac(by_ext[f"{m}.flac"])
        out[m] = np.concatenate([a, a]) if a.shape[0] == 1 else a
    st = decode_flac(by_ext["stems.flac"])[0] if stems else None
    masks = None
    if "masks.bin" in by_ext:
        w, h = meta["frame_size"]
        shape = (len(meta["objects"]), len(meta["frame_bytes"]), h, w)
        bits = np.frombuffer(zlib.decompress(by_ext["masks.bin"]), np.uint8)
        masks = np.unpackbits(bits)[: int(np.prod(shape))].reshape(shape).astype(bool)
    return ClipRecord(meta, video, out, None if st is None else st[:-1], None if st is None else st[-1], masks)
