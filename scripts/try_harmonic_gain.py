"""Experiment (not shipped): a learned per-band gain on the codec's measured harmonic fraction, trained with the
codec's own loss while the encoder and decoder stay frozen, so the latents (and both generators) stay valid.

    python scripts/try_harmonic_gain.py --steps 900                 # shipped causal codec, ~20 min on one core
    python scripts/try_harmonic_gain.py --checkpoint foley/checkpoints/codec_tiny_offline.pt

Why: the measured harmonic fraction is low for voices (their pitch moves inside the 43 ms analysis window), and
a fixed gain that fixes speech raises the world mixes' mel distance past the codec issue's bound
(docs/benchmarks.md, "Where v2 still loses"). Here a small MLP reads the frame's whole latent (pitch per subframe,
band energies, the learned envelope channels) and proposes a gain per harmonic band, starting at 1 (zero-init
output); the codec's MR-STFT loss on the rendered audio teaches it where harmonics were rendered as noise.
Every `--every` steps and at the end it prints speech PESQ-WB / STOI / DNSMOS (the espeak-ng sentences of
bench_listening.py) and the mel distance on 16 world validation clips; the head's weights go to `--out`.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from bench_envelope import speech_scores, world_clips as world_val  # noqa: E402
from bench_listening import speech_sounds  # noqa: E402
from foley.metrics.codec import mel_distance  # noqa: E402
from foley.models.codec import DEFAULT_CHECKPOINT, LossWeights, load_codec  # noqa: E402
from foley.roundtrip import codec_audio  # noqa: E402
from foley.train.codec import batch_at, tonal_clips, world_clips  # noqa: E402


def with_gain_head(codec) -> nn.Module:
    """Give `codec` a harmonic-gain head (returned): render() scales the harmonic fraction by its output."""
    cfg = codec.cfg
    bands = codec.split_tonal(torch.zeros(1, 1, cfg.tonal_channels))[1].shape[-1]
    head = nn.Sequential(nn.Linear(cfg.channels, 128), nn.GELU(), nn.Linear(128, bands))
    nn.init.zeros_(head[2].weight)
    nn.init.zeros_(head[2].bias)
    render, split = codec.render, codec.split_tonal

    def rendered(spectral, cues):
        z = (torch.cat([spectral, cues], -1) - codec.latent_mean) / codec.latent_std
        gain = torch.exp(head(z).clamp(-2, 2))  # (B, T, bands)

        def scaled(c):
            f0, harm, pos, share = split(c)
            return f0, (harm * gain).clamp(0, 1), pos, share

        codec.split_tonal = scaled
        try:
            return render(spectral, cues)
        finally:
            codec.split_tonal = split

    codec.render = rendered
    return head


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--every", type=int, default=300)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/harmonic_gain_head.pt")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    codec = load_codec(a.checkpoint)
    cfg = codec.cfg
    if not cfg.tonal:
        sys.exit("the codec has no tonal path (v1): nothing to scale")
    head = with_gain_head(codec)
    speech = speech_sounds()
    world = world_val(16)

    def score() -> str:
        codec.eval()
        with torch.no_grad():
            ys = {k: codec_audio(codec, x.astype(np.float32)) for k, x in speech.items()}
            mel = np.mean([mel_distance(torch.from_numpy(codec_audio(codec, x)), torch.from_numpy(x), cfg.sr) for x in world])
        codec.train()
        sp = "PESQ-WB {:.3f}, STOI {:.3f}, DNSMOS {:.2f}, ".format(*speech_scores(speech, ys)) if speech else ""
        return sp + f"world val mel {mel:.4f}"

    print("before:", score(), flush=True)
    pool = torch.cat([world_clips(96, "train", 0, cfg.fps, 2.0).audio, tonal_clips(128, 0, 2.0, cfg.sr)])
    for p in codec.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(head.parameters(), lr=a.lr)
    w = LossWeights(power_tilt=1.0, stft_items=8)
    codec.train()
    t0, hist = time.time(), []
    for s in range(a.steps):
        loss = codec.loss(batch_at(pool, s, 0, 16, 16 * cfg.hop, 321), w=w)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist.append(float(loss.detach()))
        if (s + 1) % 50 == 0:
            print(f"step {s + 1}: loss {np.mean(hist[-50:]):.4f} ({time.time() - t0:.0f} s)", flush=True)
        if (s + 1) % a.every == 0 or s + 1 == a.steps:
            print(f"after {s + 1} steps:", score(), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(head.state_dict(), a.out)


if __name__ == "__main__":
    main()
