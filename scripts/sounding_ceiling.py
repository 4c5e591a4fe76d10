"""How well can "which object is heard" be told from what a picture shows? A ceiling from the world's truth.

For every frame and object, a gradient-boosted classifier is given what a picture shows of the object, from the
exact truth: its class, its pixel mass (now and its largest), x, speed, time since its last and until its next event
(the animation is posed from the event times), whether a run is on, and the same of the other objects. It predicts
whether the object's sound dominates the frame by 10 dB (`foley.world.checks.dominant_frames`); the frame's answer
is the most likely object. Scored as BAS is, by position bin, on held-out test clips over the frames where an
object dominates, all clips and clips with several objects; then without each group of cues, and with what no
picture shows (each object's level and decay) for comparison.

    python scripts/sounding_ceiling.py --train 400 --test 150      # needs scikit-learn (the listen extra has it)
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from foley.metrics import position_bin
from foley.world import PRESETS as WORLD, render, sample_scene, synthesize
from foley.world.checks import dominant_frames
from foley.world.objects import CLASSES

NAMES = sorted(CLASSES)
CUES = 22  # per object: class one-hot (13), mass, largest mass, x, since, until, running, speed, level, decay
GROUPS = {"event timing": [16, 17, 18], "class": list(range(13)), "size": [13, 14]}
HIDDEN = [20, 21]  # level and decay: no picture shows them


def _since_until(events: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not events.size:
        return np.full_like(t, 3.0), np.full_like(t, 3.0)
    i = np.searchsorted(events, t, side="right")
    last = np.where(i > 0, t - events[np.clip(i - 1, 0, None)], 3.0)
    nxt = np.where(i < events.size, events[np.clip(i, None, events.size - 1)] - t, 3.0)
    return np.minimum(last, 3.0), np.minimum(nxt, 3.0)


def clip_rows(cfg, split: str, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:  # noqa: ANN001
    """(O, K, 3 * CUES + 1) cues of each object (itself first, then the others by size), (O, K) dominant, (O, K)
    bins, objects."""
    scene = sample_scene(cfg, 0, split, i)
    r = render(scene)
    snd = synthesize(scene, r)
    k = r.frames.shape[0]
    t = np.arange(k) / cfg.fps
    dom = dominant_frames(snd.stems, snd.ambience, r.tracks, cfg.sr)
    per = []
    for o, (spec, tr, sc) in enumerate(zip(scene.objects, r.tracks, r.schedules)):
        f = np.zeros((k, CUES), np.float32)
        f[:, NAMES.index(spec.cls)] = 1
        m = np.nan_to_num(tr.mass)
        f[:, 13], f[:, 14], f[:, 15] = m, m.max(), np.nan_to_num(tr.x, nan=2.0)
        f[:, 16], f[:, 17] = _since_until(sc.anim, t)
        f[:, 18], f[:, 19] = sc.running(t), np.abs(np.gradient(np.nan_to_num(tr.x)))
        f[:, 20], f[:, 21] = 20 * np.log10(spec.level), spec.voice.decay
        per.append((f, position_bin(tr.x), dom[o]))
    rows = []
    for o in range(len(per)):
        others = sorted((per[j][0] for j in range(len(per)) if j != o), key=lambda f: -f[0, 14])
        pad = [np.full_like(per[o][0], -1)] * (2 - len(others))
        rows.append(np.concatenate([per[o][0], *others, *pad, np.full((k, 1), len(per), np.float32)], 1))
    return np.stack(rows), np.stack([p[2] for p in per]), np.stack([p[1] for p in per]), len(per)


def score(train: list, test: list, drop: list[int]) -> tuple[float, float]:
    width = train[0][0].shape[-1]
    cols = [blk * CUES + c for blk in range(3) for c in drop]
    keep = [c for c in range(width) if c not in cols]
    x = np.concatenate([r[0].reshape(-1, width) for r in train])[:, keep]
    y = np.concatenate([r[1].reshape(-1) for r in train])
    clf = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.1, max_leaf_nodes=63).fit(x, y)
    hits = {"all": [0, 0], "several": [0, 0]}
    for cues, dom, bins, n in test:
        p = clf.predict_proba(cues.reshape(-1, width)[:, keep])[:, 1].reshape(cues.shape[:2])
        pred = bins[p.argmax(0), np.arange(bins.shape[1])]
        judged = dom.any(0)
        ok = (pred == (bins * dom).sum(0))[judged]
        for name in ("all",) + (("several",) if n >= 2 else ()):
            hits[name][0] += int(ok.sum())
            hits[name][1] += int(judged.sum())
    return hits["all"][0] / hits["all"][1], hits["several"][0] / max(1, hits["several"][1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=int, default=400)
    p.add_argument("--test", type=int, default=150)
    a = p.parse_args()
    cfg = replace(WORLD["tiny"], seconds=4.0, fps=25, width=96, height=96)
    t0 = time.time()
    train = [clip_rows(cfg, "train", i) for i in range(a.train)]
    test = [clip_rows(cfg, "test", i) for i in range(a.test)]
    print(f"{a.train} train and {a.test} test clips in {time.time() - t0:.0f} s\n")
    print("| cues | dominant bin right, all | several objects |\n|---|---|---|")
    print("| what a picture shows | %.3f | %.3f |" % score(train, test, HIDDEN))
    for name, cols in GROUPS.items():
        print(f"| ... without {name} | %.3f | %.3f |" % score(train, test, HIDDEN + cols))
    print("| ... and each object's level and decay (no picture shows them) | %.3f | %.3f |" % score(train, test, []))


if __name__ == "__main__":
    main()
