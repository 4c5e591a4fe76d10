"""What a listener hears through each codec, beside Opus in the same run (codec v2 issue; docs/benchmarks.md).

    python bench/bench_listening.py                          # shipped v2 (causal, offline) and v1, Opus 12/24, WORLD
    python bench/bench_listening.py --codec mine=runs/codec/codec.pt --markdown listening.md

Sounds no codec trained on: espeak-ng sentences (three voices; skipped with a note when espeak-ng is
missing), freedesktop sound-theme sounds (when installed), and synthetic tones, bells, chimes and a siren.
Speech: PESQ-WB, STOI, DNSMOS, periodicity, pitch error. Tonal sounds: partial-energy ratio (dB at the
original's peaks against between them) and pitch error. For v2 codecs also robustness: partial ratio of
decode(z + 0.1 noise) and of decode of the mean of two sounds' latents (against the mix of the two).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from foley.roundtrip import codec_audio  # noqa: E402
from foley.io import read_audio  # noqa: E402
from foley.io.opus import opus_roundtrip  # noqa: E402
from foley.metrics import listening as L  # noqa: E402
from foley.models.codec import DEFAULT_CHECKPOINT, OFFLINE_CHECKPOINT, V1_CHECKPOINTS, load_codec  # noqa: E402

SR = 48000
SENTENCES = [("en-us", "The quick brown fox jumps over the lazy dog, and a bell rings twice in the distance."),
             ("en-us+f3", "Please hold the door for me while I carry these heavy boxes up the stairs."),
             ("en-gb+m3", "Seven silver ships sailed quietly into the harbour before the storm arrived.")]
HARMONIC = ("tone 220 Hz x7", "siren (glide)")  # tonal sounds with one pitch: pitch error is defined on these
FREEDESKTOP = ["bell", "complete", "message", "phone-incoming-call", "alarm-clock-elapsed", "dialog-information"]


def panned(m: np.ndarray, pan: float = 0.3, peak: float = 0.5) -> np.ndarray:
    """(N,) -> (2, N) equal-power panned, normalised to `peak`."""
    m = m / (np.abs(m).max() + 1e-12) * peak
    th = np.pi / 4 * (pan + 1)
    return np.stack([np.cos(th) * m, np.sin(th) * m])


def speech_sounds() -> dict[str, np.ndarray]:
    if not shutil.which("espeak-ng"):
        print("note: espeak-ng not found, speech rows skipped (apt install espeak-ng)")
        return {}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (voice, text) in enumerate(SENTENCES):
            wav = Path(tmp) / f"s{i}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text], check=True)
            out[f"speech {voice}"] = panned(read_audio(wav, SR, channels=1)[0].astype(np.float64), 0.4 - 0.4 * i)
    return out


def tonal_sounds() -> dict[str, np.ndarray]:
    t = np.arange(3 * SR) / SR
    out = {"tone 220 Hz x7": panned(sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 8)), -0.5)}
    bell = np.zeros_like(t)
    for r, a, tau in [(0.5, .4, 1.5), (1, 1, 1.0), (1.19, .6, .8), (1.5, .5, .6), (2, .5, .5), (2.52, .3, .4), (3.01, .2, .3)]:
        for on in (0, 1.5):
            tt = np.clip(t - on, 0, None)
            bell += (t >= on) * a * np.exp(-tt / tau) * np.sin(2 * np.pi * 523 * r * tt)
    out["bell (inharmonic)"] = panned(bell, 0.6, 0.3)
    chime = np.zeros_like(t)
    for on, f in zip(np.arange(0, 3, 0.4), [1568, 2093, 1760, 2637, 1975, 2349, 3136, 1568]):
        tt = np.clip(t - on, 0, None)
        for r, a in [(1, 1), (2.76, .5), (5.40, .25)]:
            chime += (t >= on) * a * np.exp(-tt / 0.6) * np.sin(2 * np.pi * f * r * tt)
    out["chime"] = panned(chime, 0.0, 0.3)
    f = 700 + 400 * np.sin(2 * np.pi * 0.5 * t)
    ph = 2 * np.pi * np.cumsum(f) / SR
    out["siren (glide)"] = panned(sum(np.sin(k * ph) / k for k in range(1, 5)), 0.3)
    base = Path("/usr/share/sounds/freedesktop/stereo")
    for name in FREEDESKTOP:
        p = base / f"{name}.oga"
        if p.exists():
            out[f"fd {name}"] = read_audio(p, SR, channels=2).astype(np.float64)[:, : 4 * SR]
    if not base.exists():
        print("note: freedesktop sound theme not found, its rows skipped (apt install sound-theme-freedesktop)")
    return out


def world_oracle(x: np.ndarray) -> np.ndarray:
    """pyworld analysis/synthesis per channel at 5 ms frames, unquantised: the reference oracle."""
    import pyworld as pw

    out = []
    for ch in x:
        ch = np.ascontiguousarray(ch, dtype=np.float64)
        f0, sp, ap = pw.wav2world(ch, SR, frame_period=5.0)
        out.append(pw.synthesize(f0, sp, ap, SR, frame_period=5.0)[: ch.size])
    y = np.stack(out)
    return np.pad(y, ((0, 0), (0, x.shape[1] - y.shape[1])))


def robustness(codec, sounds: dict[str, np.ndarray]) -> dict[str, float]:
    """Tonality of imperfect latents: partial ratio and periodicity of decode(z + 0.1 N(0, 1)), and of
    decode((z_a + z_b) / 2) against (a + b) / 2."""
    gen = torch.Generator().manual_seed(0)
    noisy, mixed, p_clean, p_noisy, p_mixed = [], [], [], [], []
    items = list(sounds.values())
    with torch.no_grad():
        for i, x in enumerate(items):
            n = x.shape[1] // codec.cfg.hop * codec.cfg.hop
            xt = torch.from_numpy(x[:, :n]).float()[None]
            z = codec.encode(xt)
            y = codec.decode(z + 0.1 * torch.randn(z.shape, generator=gen))[0].double().numpy()
            noisy.append(L.partial_ratio(x[:, :n], y))
            p_noisy.append(L.periodicity(y))
            p_clean.append(L.periodicity(codec.decode(z)[0].double().numpy()))
            other = items[(i + 1) % len(items)]
            m = min(n, other.shape[1] // codec.cfg.hop * codec.cfg.hop)
            zb = codec.encode(torch.from_numpy(other[:, :m]).float()[None])
            y = codec.decode((z[..., : zb.shape[-1]] + zb) / 2)[0].double().numpy()
            mixed.append(L.partial_ratio((x[:, :m] + other[:, :m]) / 2, y))
            p_mixed.append(L.periodicity(y))
    return {"noisy": float(np.mean(noisy)), "averaged": float(np.mean(mixed)), "p_clean": float(np.mean(p_clean)),
            "p_noisy": float(np.mean(p_noisy)), "p_averaged": float(np.mean(p_mixed))}


def measure(name: str, fn, speech: dict, tonal: dict) -> dict[str, float]:
    row: dict[str, float] = {}
    sp = {k: fn(x) for k, x in speech.items()}
    tn = {k: fn(x) for k, x in tonal.items()}
    if sp:
        row["pesq"] = np.mean([L.pesq_wb(speech[k], y) for k, y in sp.items()])
        row["stoi"] = np.mean([L.stoi(speech[k], y) for k, y in sp.items()])
        row["dnsmos"] = np.mean([L.dnsmos(y) for y in sp.values()])
        row["periodicity"] = np.mean([L.periodicity(y) for y in sp.values()])
        row["speech_cents"] = np.nanmean([L.pitch_error_cents(speech[k], y) for k, y in sp.items()])
    for k, y in tn.items():
        row[f"partial {k}"] = L.partial_ratio(tonal[k], y)
    row["partial_mean"] = np.mean([row[f"partial {k}"] for k in tn if k != "siren (glide)"])
    row["tonal_cents"] = np.nanmean([L.pitch_error_cents(tonal[k], y) for k, y in tn.items() if k in HARMONIC])
    print(f"  {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items() if not k.startswith("partial ")), flush=True)
    return row


def table(rows: dict[str, dict[str, float]], keys: list[str]) -> str:
    head = "| | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys) + "\n"
    return head + "".join(f"| {n} | " + " | ".join(f"{r.get(k, float('nan')):.2f}" for k in keys) + " |\n"
                          for n, r in rows.items())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--codec", action="append", default=[], help="NAME=CHECKPOINT (repeatable); default: the shipped ones")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-world", action="store_true", help="skip the pyworld oracle row")
    p.add_argument("--markdown", help="also write the tables to this file")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    codecs = dict(c.split("=", 1) for c in a.codec) or {
        "codec v2 causal (default)": DEFAULT_CHECKPOINT, "codec v2 offline": OFFLINE_CHECKPOINT,
        "codec v1 causal": V1_CHECKPOINTS[0]}
    speech, tonal = speech_sounds(), tonal_sounds()
    print(f"{len(speech)} speech, {len(tonal)} tonal sounds")
    rows = {"original": measure("original", lambda x: x, speech, tonal)}
    loaded = {}
    for name, path in codecs.items():
        loaded[name] = load_codec(path)
        rows[name] = measure(name, lambda x, c=loaded[name]: codec_audio(c, x), speech, tonal)
    for kbps in (12, 24):
        rows[f"Opus {kbps} kb/s"] = measure(f"opus {kbps}", lambda x, k=kbps: opus_roundtrip(x, k), speech, tonal)
    if not a.no_world:
        rows["WORLD oracle (pyworld, unquantised)"] = measure("world", world_oracle, speech, tonal)
    robust = {n: robustness(c, tonal) for n, c in loaded.items()}
    main_keys = ["pesq", "stoi", "dnsmos", "periodicity", "speech_cents", "partial_mean", "tonal_cents"]
    out = ("Speech (mean over the sentences) and tonal sounds (partial ratio: mean over the tonal sounds but the glide; "
           "pitch error: the tone and the siren)\n\n")
    out += table(rows, main_keys)
    out += "\nPartial-energy ratio (dB) per tonal sound\n\n" + table(rows, [f"partial {k}" for k in tonal])
    out += ("\nImperfect latents, over the tonal sounds: mean partial ratio (dB) and periodicity of decode(z), "
            "decode(z + 0.1 noise), decode of the mean of two sounds' latents\n\n| | partial: clean | noisy | averaged "
            "| periodicity: clean | noisy | averaged |\n|---|---|---|---|---|---|---|\n")
    out += "".join(f"| {n} | {rows[n]['partial_mean']:.2f} | {r['noisy']:.2f} | {r['averaged']:.2f} | {r['p_clean']:.2f} | "
                   f"{r['p_noisy']:.2f} | {r['p_averaged']:.2f} |\n" for n, r in robust.items())
    print(out)
    if a.markdown:
        Path(a.markdown).write_text(out + "\nCommand: `python bench/bench_listening.py`\n")


if __name__ == "__main__":
    main()
