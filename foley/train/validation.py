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


class Scorer:
    """Validation scores of generated latents beside those of the references, which are decoded and scored once."""

    def __init__(self, codec, cache: Cache) -> None:  # noqa: ANN001
        self.codec, self.cache, self.ref = codec, cache, None

    def __call__(self, generated, references) -> dict:  # noqa: ANN001
        """(P, C, T) generated and reference latents of the cache's first P clips -> the log.csv columns."""
        fps = self.codec.cfg.fps
        if self.ref is None:
            self.ref = clip_scores(self.codec.decode(references.cpu()).numpy(), self.cache, fps)
        g = clip_scores(self.codec.decode(generated.cpu()).numpy(), self.cache, fps)
        return {"val_onset_f1": g[0], "val_pan_agree": g[1], "val_onset_f1_ref": self.ref[0],
                "val_pan_agree_ref": self.ref[1]}
