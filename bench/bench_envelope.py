"""Where the codec's speech quality goes: its fixed signal path fed the true or the decoded envelope, with the
measured harmonic fraction or a scaled one (codec v2 issue; docs/benchmarks.md, "Where v2 still loses").

    python bench/bench_envelope.py                                     # shipped causal codec
    python bench/bench_envelope.py --checkpoint foley/checkpoints/codec_tiny_offline.pt --gains 1,1.5,2

Rows: which envelope (log power per 5 ms subframe and bin) the tonal path reads its harmonic amplitudes from,
which one shapes the noise, and the gain on the harmonic fraction (per band, capped at 1; `--low-bands N`
scales only the N lowest of the 8 harmonic bands). "decoded / decoded, gain 1" is the codec itself. Speech:
the espeak-ng sentences of bench_listening.py (PESQ-WB, STOI, DNSMOS on the 16 kHz mid), or with `--voices N`
procedural voices of the training domain, where a gain is calibrated before it meets the sentences. With `--world N`,
also the mel distance on N world clips of the validation split (the codec issue bounds it).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_listening import speech_sounds  # noqa: E402
from foley.metrics import listening as L  # noqa: E402
from foley.metrics.codec import mel_distance  # noqa: E402
from foley.models.codec import DEFAULT_CHECKPOINT, load_codec  # noqa: E402


def liftered(log_power: torch.Tensor, q: int) -> torch.Tensor:
    """Log power (..., K) smoothed across frequency: its first q cepstral coefficients."""
    cep = torch.fft.irfft(log_power, 2 * (log_power.shape[-1] - 1))
    keep = torch.zeros(cep.shape[-1])
    keep[:q] = 1
    keep[cep.shape[-1] - q + 1:] = 1
    return torch.fft.rfft(cep * keep).real


def render(codec, x: np.ndarray, tonal_env: str, noise_env: str, gain: float, low_bands: int) -> np.ndarray:
    """(2, N) -> (2, N) through the codec's signal path with the chosen envelopes and harmonic-fraction gain."""
    nb = codec.cfg.stereo_bands
    xt = torch.from_numpy(np.asarray(x, np.float32))[None]
    n = xt.shape[-1]
    xt = torch.nn.functional.pad(xt, (0, (-n) % codec.cfg.hop))
    with torch.no_grad():
        mean, _, cues = codec.posterior(xt)
        true = codec.synthesis.target(xt)
        env = {"true": codec.synthesis.set_band_energy(true, cues[..., :nb]), "decoded": codec.envelope(mean, cues)}
        if tonal_env.startswith("true, "):  # "true, Q cepstra": the true envelope smoothed across frequency
            env[tonal_env] = codec.synthesis.set_band_energy(liftered(true, int(tonal_env.split()[1])), cues[..., :nb])
        _, pan, coherence = cues[..., : 3 * nb].chunk(3, -1)
        f0, harm, pos, share = codec.split_tonal(cues[..., 3 * nb:])
        learned = codec.harmonic_gains(mean, cues)  # the codec's own head, where it has one
        harm = harm if learned is None else (harm * learned).clamp(0, 1)
        scaled = (gain * harm).clamp(0, 1)
        harm = torch.where(torch.arange(harm.shape[-1]) < low_bands, scaled, harm)
        tonal, noise = codec.tonal_synthesis(env[tonal_env], f0, harm, pos, share)
        y = codec.synthesis(env[noise_env], pan, (coherence + 1) / 2, tonal, noise)
    return y[0, :, :n].numpy()


def procedural_voices(n: int) -> dict[str, np.ndarray]:
    """n 3 s voices of `foley.world.tonal` (seeds 1000 + i), panned as the sentences are."""
    from bench_listening import panned
    from foley.world.tonal import voice

    return {f"voice {i}": panned(voice(3 * 48000, 48000, np.random.default_rng(1000 + i)), 0.3 - 0.2 * i) for i in range(n)}


def speech_scores(speech: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> list[float]:
    """Mean PESQ-WB, STOI and DNSMOS of the outputs against their sounds (same keys)."""
    return [np.mean([L.pesq_wb(speech[k], y) for k, y in out.items()]),
            np.mean([L.stoi(speech[k], y) for k, y in out.items()]), np.mean([L.dnsmos(y) for y in out.values()])]


def world_clips(n: int) -> list[np.ndarray]:
    """The objaware mixes of the world's first n validation clips (the default preset), float32 (2, N)."""
    from foley.world import PRESETS as WORLD, render as render_scene, sample_scene, synthesize

    wcfg = replace(WORLD["default"], fps=25, sr=48000)
    out = []
    for i in range(n):
        scene = sample_scene(wcfg, 0, "val", i)
        out.append(synthesize(scene, render_scene(scene)).mixes["objaware"].astype(np.float32))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    ap.add_argument("--gains", default="1,2", help="harmonic-fraction gains, comma-separated")
    ap.add_argument("--low-bands", type=int, default=8, help="scale only the N lowest harmonic bands (8: all)")
    ap.add_argument("--world", type=int, default=0, help="also the mel distance on N world validation clips")
    ap.add_argument("--voices", type=int, default=0,
                    help="score N procedural voices (the training domain: calibrate there) instead of the sentences")
    ap.add_argument("--lifter", default="", help="also rows with the harmonic amplitudes from the true envelope "
                    "smoothed to Q cepstral coefficients, comma-separated Qs (the noise from the decoded one)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    codec = load_codec(a.checkpoint)
    speech = procedural_voices(a.voices) if a.voices else speech_sounds()
    if not speech:
        sys.exit("bench_envelope needs espeak-ng for its speech")
    world = world_clips(a.world) if a.world else []
    print(f"Codec `{a.checkpoint}`; gains on the {a.low_bands} lowest harmonic bands\n")
    print("| harmonic amplitudes from | noise shaped by | gain | PESQ-WB | STOI | DNSMOS |" + (" world mel |" if world else ""))
    print("|---|---|---|---|---|---|" + ("---|" if world else ""))
    pairs = [(t, n) for t in ("decoded", "true") for n in ("decoded", "true")]
    pairs += [(f"true, {q} cepstra", "decoded") for q in a.lifter.split(",") if q]
    for tonal_env, noise_env in pairs:
        for gain in (float(g) for g in a.gains.split(",")):
            ys = {k: render(codec, x, tonal_env, noise_env, gain, a.low_bands) for k, x in speech.items()}
            row = speech_scores(speech, ys)
            if world:
                row.append(np.mean([mel_distance(torch.from_numpy(render(codec, x, tonal_env, noise_env, gain, a.low_bands)),
                                                 torch.from_numpy(x), codec.cfg.sr) for x in world]))
            print(f"| {tonal_env} | {noise_env} | {gain:g} | " + " | ".join(f"{v:.3f}" for v in row) + " |", flush=True)


if __name__ == "__main__":
    main()
