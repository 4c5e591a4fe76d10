"""Quick scores of generated clips against a latent cache's ground truth, for generators' validation during training."""
from __future__ import annotations

import numpy as np

from foley.data.latents import Cache


def clip_scores(audio: np.ndarray, cache: Cache, fps: float) -> tuple[float, float]:
    """(onset F1 against the true events, BAS against the first object's track) averaged over clips;
    audio (P, 2, N) at 48 kHz for the first P clips of the cache."""
    from foley.metrics.stereo import evaluate
    from foley.metrics.sync import match, onsets
    from foley.tracks import Track

    f1, bas = [], []
    for i, a in enumerate(audio):
        f1.append(match(onsets(a, 48000), np.asarray(cache.events[i])).f1)
        if cache.track_x[i]:
            x = np.asarray(cache.track_x[i][0])
            tr = Track(fps=fps, x=x, y=np.zeros_like(x), mass=np.ones_like(x), reliable=np.ones(len(x), bool))
            b = evaluate(a, 48000, tr).bas
            if b == b:
                bas.append(b)
    return float(np.mean(f1)), float(np.mean(bas)) if bas else float("nan")
