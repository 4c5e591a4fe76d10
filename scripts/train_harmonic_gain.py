"""Train the codec's harmonic-gain head (decoder side: the latents, and every generator trained on them, stay valid).

    python scripts/train_harmonic_gain.py --steps 900 --out runs/hgain/codec_tiny.pt   # shipped causal codec, ~20 min on one core
    python scripts/train_harmonic_gain.py --checkpoint foley/checkpoints/codec_tiny_offline.pt --out ...

Why: the measured harmonic fraction is low for voices (their pitch and loudness move inside the 43 ms analysis
window), and a fixed gain that fixes speech raises the world mixes' mel distance past the codec issue's bound
(docs/benchmarks.md, "Where v2 still loses"). The head (`CodecConfig.harmonic_gain`, `Codec.harmonic_gains`) reads
the frame's whole latent and proposes a gain per harmonic band, starting at 1 (zero-init output); the codec's own
loss on the rendered audio, with the encoder and decoder frozen, teaches it where harmonics were rendered as noise.
Every `--every` steps and at the end it prints speech PESQ-WB / STOI / DNSMOS (the espeak-ng sentences of
bench_listening.py) and the mel distance on 16 world validation clips. `--out` gets the whole codec, head included,
listing the hash of the codec it came from among its `legacy_hashes`, so generators made for that one still load.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from bench_envelope import speech_scores, world_clips as world_val  # noqa: E402
from bench_listening import speech_sounds  # noqa: E402
from foley.metrics.codec import mel_distance  # noqa: E402
from foley.models.codec import (DEFAULT_CHECKPOINT, LossWeights, codec_hash, load_codec, save_codec,  # noqa: E402
                                with_harmonic_gain)
from foley.roundtrip import codec_audio  # noqa: E402
from foley.train.codec import batch_at, tonal_clips, world_clips  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--every", type=int, default=300)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/hgain/codec.pt", help="the codec with its head")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    codec = load_codec(a.checkpoint)
    if not codec.cfg.tonal:
        sys.exit("the codec has no tonal path (v1): nothing to scale")
    codec = with_harmonic_gain(codec)
    assert codec_hash(codec) == codec_hash(load_codec(a.checkpoint))  # the latents did not change
    cfg, head = codec.cfg, codec.harmonic_gain
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
    for p in head.parameters():  # only the head learns
        p.requires_grad_(True)
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
    codec.eval()
    source = torch.load(a.checkpoint, map_location="cpu", weights_only=True)  # how the rest was trained
    trained = {k: source[k] for k in ("step", "loop_config", "task_config", "base_training") if k in source}
    save_codec(a.out, codec, head_steps=a.steps, head_lr=a.lr, source=str(a.checkpoint), base_training=trained)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
