"""Codec figures on the Procedural Foley world's test split (MISSION part 4; docs/benchmarks.md).

    python bench/bench_codec.py                      # shipped foley/checkpoints/codec_tiny.pt (v2), 32 test clips
    python bench/bench_codec.py --checkpoint runs/codec/codec.pt --clips 64 --markdown codec.md
    python bench/bench_codec.py --speed-only         # per-frame time only, frame for frame beside codec v1

Reconstruction (MR-STFT on L/R/mid/side, mel distance, SI-SDR per channel), stereo (per-band ILD error,
per-frame pan error, Stereo-Score, BAS against the ground-truth tracks) for the codec and two trivial
baselines with no more floats per second; then speed: causal encode+decode per frame, batch x real time.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from foley.io.opus import opus_roundtrip  # noqa: E402
from foley.roundtrip import codec_audio  # noqa: E402
from foley.models.codec import V1_CHECKPOINTS, load_codec  # noqa: E402
from foley.metrics.codec import Figures, baseline_mono_pan, baseline_resample, figures  # noqa: E402
from foley.world import PRESETS as WORLD, render, sample_scene, synthesize  # noqa: E402
from foley.world.checks import dominant_bas  # noqa: E402
from report import report  # noqa: E402

COLUMNS = (("mrstft", "MR-STFT ↓"), ("mel", "mel dist ↓"), ("si_sdr", "SI-SDR dB ↑"), ("ild_db", "band ILD err dB ↓"),
           ("pan_err", "pan err ↓"), ("stereo_score", "Stereo-Score"), ("bas", "BAS ↑"))


def quality(codec, clips: int, seed: int) -> tuple[dict[str, Figures], dict[str, float]]:
    """Mean figures per output, and BAS over the frames where one object dominates the mix (by 10 dB).

    BAS over all frames of a 1-3 object clip is ~0.5 even for the original (one track cannot say where
    two sounds are, and a silent object leaves the centred ambience to decide the bin); the frames
    where one object is clearly heard are where its placement can be judged (foley.world.checks).
    """
    cfg = codec.cfg
    wcfg = replace(WORLD["default"], fps=cfg.fps, sr=cfg.sr)
    rows: dict[str, list[Figures]] = {k: [] for k in ("original", "codec", "Opus 12 kb/s", "Opus 24 kb/s", "resample",
                                                      "mono+pan")}
    dom: dict[str, list[float]] = {k: [] for k in rows}
    for i in range(clips):
        scene = sample_scene(wcfg, seed, "test", i)
        rendered = render(scene)
        audio = synthesize(scene, rendered)
        x = audio.mixes["objaware"].astype(np.float64)  # (2, N)
        outs = {"original": x, "codec": codec_audio(codec, x), "Opus 12 kb/s": opus_roundtrip(x, 12),
                "Opus 24 kb/s": opus_roundtrip(x, 24),
                "resample": baseline_resample(x, cfg.sr, cfg.floats_per_second),
                "mono+pan": baseline_mono_pan(x, cfg.sr, cfg.fps, cfg.floats_per_second)}
        xt = torch.from_numpy(x).float()
        for name, y in outs.items():
            rows[name].append(figures(torch.from_numpy(np.asarray(y)).float(), xt, cfg.sr, cfg.fps, rendered.tracks))
            dom[name] += dominant_bas(np.asarray(y), audio.stems, audio.ambience, rendered.tracks, cfg.sr)
    return {k: Figures.mean(v) for k, v in rows.items()}, {k: float(np.nanmean(v)) for k, v in dom.items()}


def frame_times(codecs: dict[str, object], seconds: float = 10.0) -> dict[str, np.ndarray]:
    """Seconds of causal encode + decode of each 1-frame step, per codec: the codecs take turns on the same frame
    (interleaved, so a shared host's slow spells hit them alike), under `torch.inference_mode` as `foley stream`
    runs them. The first second is warm-up and left out. The codecs must share a frame (rate and hop)."""
    cfg = next(iter(codecs.values())).cfg
    hop, fps = cfg.hop, cfg.fps
    x = 0.1 * torch.randn(1, 2, int(seconds * fps) * hop, generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {k: [] for k in codecs}
    with torch.inference_mode(), contextlib.ExitStack() as stack:
        for c in codecs.values():
            stack.enter_context(c.streaming())
        for t in range(x.shape[-1] // hop):
            for name, c in codecs.items():
                t0 = time.perf_counter()
                c.decode(c.encode(x[..., t * hop:(t + 1) * hop]))
                times[name].append(time.perf_counter() - t0)
    return {k: np.asarray(v[fps:]) for k, v in times.items()}


def speed(codec, against=None, seconds: float = 10.0) -> dict[str, float]:
    """Per-frame causal times (median, p99; against the `against` codec's in the same run) and batch x real time."""
    cfg = codec.cfg
    out = {"frame_interval_ms": 1e3 / cfg.fps}
    if cfg.causal:
        both = frame_times({"codec": codec, **({"against": against} if against is not None else {})}, seconds)
        t = both["codec"]
        out.update(frame_ms_median=1e3 * float(np.median(t)), frame_ms_p99=1e3 * float(np.percentile(t, 99)))
        if "against" in both:
            out.update(against_ms_median=1e3 * float(np.median(both["against"])),
                       ratio=float(np.median(t / both["against"])))  # per frame, then the median: drift cancels
    x = 0.1 * torch.randn(1, 2, int(seconds * cfg.fps) * cfg.hop)
    with torch.inference_mode():
        codec.encode(x[..., : 10 * cfg.hop])  # warm up
        t0 = time.perf_counter()
        z = codec.encode(x)
        t_enc = time.perf_counter() - t0
        t0 = time.perf_counter()
        codec.decode(z)
        t_dec = time.perf_counter() - t0
    return {**out, "encode_x_realtime": seconds / t_enc, "decode_x_realtime": seconds / t_dec}


def against_label(path: str) -> str:
    return "codec v1 (causal)" if Path(path) == Path(V1_CHECKPOINTS[0]) else path


def speed_line(s: dict[str, float], cfg, against: str | None) -> str:
    per_frame = ""
    if cfg.causal:
        per_frame = (f"causal encode+decode per frame {s['frame_ms_median']:.2f} ms median, {s['frame_ms_p99']:.2f} ms "
                     f"p99, against a {s['frame_interval_ms']:.0f} ms frame interval; ")
        if "ratio" in s:
            per_frame += (f"`{against}` in the same run, frame for frame: {s['against_ms_median']:.2f} ms median, "
                          f"this codec {s['ratio']:.2f}x its time; ")
    return (f"Speed ({torch.get_num_threads()} CPU thread(s)): {per_frame}batch encode {s['encode_x_realtime']:.0f}x real "
            f"time, decode {s['decode_x_realtime']:.0f}x real time.")


def markdown(q: dict[str, Figures], dom: dict[str, float], s: dict[str, float], codec, args: argparse.Namespace) -> str:
    cfg = codec.cfg
    lines = [f"Codec `{args.checkpoint or 'foley/checkpoints/codec_tiny.pt'}` ({codec.num_parameters() / 1e6:.2f} M parameters, "
             f"{'causal' if cfg.causal else 'non-causal'}, {cfg.channels} channels x {cfg.fps} Hz = "
             f"{cfg.floats_per_second} floats/s) on {args.clips} clips of the world's test split (objaware mix, "
             f"{WORLD['default'].seconds:.0f} s each), seed {args.seed}. Opus (libopus through PyAV) at 12 and 24 kb/s is the reference codec. Baselines use no more floats/s: `resample` = both "
             f"channels down to {cfg.floats_per_second // 2} Hz and back; `mono+pan` = one pan per frame + a mono "
             f"downmix along it, downsampled.", "",
             "| | " + " | ".join(h for _, h in COLUMNS) + " | BAS / BAS(original) | BAS dominant ↑ | ratio |",
             "|---" * (len(COLUMNS) + 4) + "|"]
    for name, f in q.items():
        d = asdict(f)
        lines.append(f"| {name} | " + " | ".join(f"{d[k]:.3f}" for k, _ in COLUMNS) + f" | {f.bas / q['original'].bas:.3f} | "
                     f"{dom[name]:.3f} | {dom[name] / dom['original']:.3f} |")
    lines += ["", speed_line(s, cfg, against_label(args.against)), "",
              "BAS: over all frames, mean over each clip's objects; BAS dominant: per object, over the frames where it is "
              "10 dB above the other objects and the ambience (foley.world.checks.dominant_bas).", "",
              f"Command: `python bench/bench_codec.py --clips {args.clips} --threads {args.threads}"
              + (f" --checkpoint {args.checkpoint}" if args.checkpoint else "") + "`"]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--clips", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--markdown", help="also write the table to this file")
    p.add_argument("--against", default=str(V1_CHECKPOINTS[0]),
                   help="a causal codec timed frame for frame beside this one ('none': no comparison; default: v1)")
    p.add_argument("--speed-only", action="store_true", help="skip the quality table")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    codec = load_codec(a.checkpoint)
    other = None if a.against == "none" else load_codec(a.against)
    if other is not None and not (other.cfg.causal and (other.cfg.sr, other.cfg.hop) == (codec.cfg.sr, codec.cfg.hop)):
        print(f"not timed beside {a.against}: it is not a causal codec with this one's frame "
              f"({codec.cfg.sr} Hz, {codec.cfg.hop} samples)")
        other = None
    s = speed(codec, other if codec.cfg.causal else None)
    if a.speed_only:
        report([speed_line(s, codec.cfg, against_label(a.against))], a.markdown)
        return
    report(markdown(*quality(codec, a.clips, a.seed), s, codec, a), a.markdown)


if __name__ == "__main__":
    main()
