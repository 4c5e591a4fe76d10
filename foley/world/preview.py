"""`foley world preview`: a contact sheet MP4 of a few clips with their captions, to watch and listen to.

All clips play at once, looping, in a grid; the soundtrack plays each clip's mix in turn while a
yellow frame marks the clip being heard.
"""
from __future__ import annotations

import math
import os
import textwrap

import cv2
import numpy as np

from foley.world.audio import MIXES, synthesize
from foley.world.render import render
from foley.world.scene import WorldConfig, WorldError, sample_scene

_LINE = 13  # caption line height, pixels


def caption_tile(frame: np.ndarray, lines: list[str], rows: int, border: bool) -> np.ndarray:
    """(H + strip, W, 3) uint8: a frame with caption lines below it, framed in yellow if `border`."""
    strip = np.full((_LINE * rows + 6, frame.shape[1], 3), 20, np.uint8)
    for i, ln in enumerate(lines[:rows]):
        cv2.putText(strip, ln, (3, _LINE * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (235, 235, 235), 1, cv2.LINE_AA)
    tile = np.concatenate([frame, strip])
    if border:
        cv2.rectangle(tile, (0, 0), (tile.shape[1] - 1, tile.shape[0] - 1), (255, 220, 0), 3)
    return tile


def _grid(tiles: list[np.ndarray], cols: int) -> np.ndarray:
    """Tiles (equal shapes) in rows of `cols`, blank-padded."""
    blank = np.zeros_like(tiles[0])
    tiles = tiles + [blank] * (-len(tiles) % cols)
    return np.concatenate([np.concatenate(tiles[r:r + cols], axis=1) for r in range(0, len(tiles), cols)])


def preview(out: str | os.PathLike, n: int = 4, seed: int = 0, split: str = "train",
            cfg: WorldConfig = WorldConfig(), mix: str = "objaware") -> list[str]:
    """Write the contact sheet of clips 0..n-1 of (seed, split) with the chosen mix; return their captions."""
    from foley import io

    if mix not in MIXES:
        raise WorldError(f"unknown mix {mix!r}; choose from {MIXES}")
    if not 1 <= n <= 16:
        raise WorldError(f"preview shows 1 to 16 clips, got {n}")
    clips, captions = [], []
    width = max(20, int(cfg.width / 5.6))  # characters per caption line
    for i in range(n):
        scene = sample_scene(cfg, seed, split, i)
        rendered = render(scene)
        lines = [ln for c in [f"[{i}] {scene.key}, {mix}"] + scene.captions for ln in textwrap.wrap(c, width)]
        clips.append((rendered.frames, lines, synthesize(scene, rendered).mixes[mix]))
        captions.append(" | ".join(scene.captions))
    rows = max(len(c[1]) for c in clips)
    cols = math.ceil(math.sqrt(n))
    k = cfg.n_frames

    def sheets():
        for t in range(n * k):
            yield _grid([caption_tile(f[t % k], lines, rows, i == t // k) for i, (f, lines, _) in enumerate(clips)], cols)

    io.write_video(out, sheets(), cfg.fps, audio=np.concatenate([c[2] for c in clips], axis=1), sr=cfg.sr)
    return captions
