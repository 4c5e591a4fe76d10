"""Pictures: tracks (a strip of frames with the centroids marked, position and mass over time) and evaluation
reports (per-clip metric histograms, onset timelines)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from foley.files import atomic_output
from foley.spatial import SpatialConfig, condition_track
from foley.tracks import Track

COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4"]


def plot_tracks(path: str | os.PathLike, tracks: Sequence[Track], strip: Sequence[tuple[int, np.ndarray]] = (),
                title: str = "", cfg: SpatialConfig = SpatialConfig()) -> None:
    """Write a PNG: frames with centroids (top), x over time (middle), mass over time (bottom).

    Solid lines are reliable detections; dashed lines are what the spatializer fills in (interpolation,
    off-frame extrapolation); the grey band is the screen, |x| <= 1.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_strip = len(strip)
    fig = plt.figure(figsize=(12, 7.5 if n_strip else 6), dpi=100)
    grid = fig.add_gridspec(3 if n_strip else 2, max(n_strip, 1), height_ratios=([1.1] if n_strip else []) + [1.4, 1])
    row = 0
    if n_strip:
        for i, (k, frame) in enumerate(strip):
            ax = fig.add_subplot(grid[0, i])
            _draw_frame(ax, k, frame, tracks)
        row = 1
    ax_x = fig.add_subplot(grid[row, :])
    ax_m = fig.add_subplot(grid[row + 1, :], sharex=ax_x)
    for j, t in enumerate(tracks):
        _draw_series(ax_x, ax_m, t, condition_track(t, cfg) if t.reliable.any() else t, COLOURS[j % len(COLOURS)])
    ax_x.axhspan(-1, 1, color="0.92", zorder=0)
    ax_x.set_ylabel("horizontal position x\n(-1 left, +1 right)")
    ax_m.set_ylabel("mass (fraction of frame)")
    ax_m.set_xlabel("time (s)")
    ax_x.legend(loc="upper left", fontsize=8, ncols=min(4, len(tracks)))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _draw_frame(ax, k: int, frame: np.ndarray, tracks: Sequence[Track]) -> None:
    h, w = frame.shape[:2]
    ax.imshow(frame)
    for j, t in enumerate(tracks):
        if k < len(t) and t.reliable[k] and abs(t.x[k]) <= 1:
            px, py = (t.x[k] + 1) * w / 2, (np.nan_to_num(t.y[k]) + 1) * h / 2
            ax.plot(px, py, marker="+", markersize=14, mew=2.5, color=COLOURS[j % len(COLOURS)])
    ax.set_title(f"{k / tracks[0].fps:.2f} s", fontsize=8)
    ax.axis("off")


def _draw_series(ax_x, ax_m, raw: Track, filled: Track, colour: str) -> None:
    t = np.arange(len(raw)) / raw.fps
    label = raw.label or "track"
    if raw.score is not None:
        label += f" (audio score {raw.score:.2f})"
    ax_x.plot(t, filled.x, "--", color=colour, lw=1)
    ax_x.plot(t, np.where(raw.reliable, raw.x, np.nan), "-", color=colour, lw=2, label=label)
    ax_m.plot(t, filled.mass, "--", color=colour, lw=1)
    ax_m.plot(t, np.where(raw.reliable, raw.mass, np.nan), "-", color=colour, lw=2)


def plot_eval(folder: str | os.PathLike, clips: list[dict], timelines: list[tuple], keys: Sequence[str]) -> list[Path]:
    """metrics.png (a histogram per per-clip metric) and onsets.png (onset timelines of the given worst clips)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keys = [k for k in keys if any(isinstance(c.get(k), (int, float)) for c in clips)]
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(3 * max(1, len(keys)), 2.6), squeeze=False)
    for ax, k in zip(axes[0], keys):
        ax.hist([c[k] for c in clips if isinstance(c.get(k), (int, float))], bins=20, color="#4477aa")
        ax.set_title(k, fontsize=9)
    fig.tight_layout()
    out = [folder / "metrics.png", folder / "onsets.png"]
    with atomic_output(out[0]) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    fig, axes = plt.subplots(max(1, len(timelines)), 1, figsize=(9, 1.1 * max(1, len(timelines)) + 0.6), squeeze=False)
    for ax, (key, gen, ref, truth) in zip(axes[:, 0], timelines):
        for y, times, colour, name in ((2, truth, "k", "events"), (1, ref, "#228833", "reference"), (0, gen, "#cc3311", "generated")):
            if times is not None:
                ax.vlines(times, y - 0.4, y + 0.4, colour, label=name)
        ax.set_yticks([0, 1, 2], ["gen", "ref", "truth"], fontsize=7)
        ax.set_title(key, fontsize=8)
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    with atomic_output(out[1]) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return out
