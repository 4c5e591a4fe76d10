"""SoundReactor: per-frame latency, memory over a long stream, and quality on the world test split (reactor issue §4).

    python bench/bench_reactor.py --latency                 # shipped model, NFE 1 and 4, waveform level
    python bench/bench_reactor.py --paper-latency           # the paper-size preset, random weights
    python bench/bench_reactor.py --memory 10               # RSS over a 10-minute stream
    python bench/bench_reactor.py --quality --n 50          # FD, KL, sync F1, BAS, ... beside the DiT and references

Latency is what a live user waits for: a video frame handed to `Reactor.push` until its 40 ms of 48 kHz stereo
audio comes back (video token, transformer step with its KV cache, head at NFE evaluations, causal codec
decode of the frame), on `--threads` CPU threads, after 25 warm-up frames. Quality rows stream every test
clip (exported by bench/bench_eval.py) frame by frame and score them with `foley.evaluate` against the
objaware references and the ground truth, as bench_dit.py scores the DiT.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from report import report  # noqa: E402

COLUMNS = ("fd", "kl", "clap", "sync_f1", "bas_all", "bas_single", "stereo_score", "class_acc")


def rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def clip_frames(path: Path, fps: int = 25) -> list[np.ndarray]:
    from foley import io

    return list(io.iter_frames(path, fps=fps))


def latency(model: str | None, nfe: int, frames: list[np.ndarray], n: int, threads: int, cfg: float,
            int8: bool = False, device: str = "cpu", mirror: float = 0.0) -> dict:
    """Per-frame ms of push() and of its parts (network step, codec decode)."""
    from foley.stream import Reactor

    r = Reactor(model, nfe=nfe, cfg=cfg, threads=threads, int8=int8, device=device, mirror=mirror)
    total, dec = [], []
    real_decode = r.codec.decode

    def timed_decode(z):  # noqa: ANN001
        t = time.perf_counter()
        y = real_decode(z)
        dec.append(1000 * (time.perf_counter() - t))
        return y

    r.codec.decode = timed_decode
    for k in range(n + 25):
        f = frames[k % len(frames)]
        t = time.perf_counter()
        r.push(f)
        total.append(1000 * (time.perf_counter() - t))
    r.close()
    tot, d = np.array(total[25:]), np.array(dec[25:])
    return {"nfe": nfe, "p50": np.percentile(tot, 50), "p95": np.percentile(tot, 95), "p99": np.percentile(tot, 99),
            "misses": int((tot > 40.0).sum()), "frames": len(tot), "codec_p50": np.median(d),
            "net_p50": np.median(tot - d), "mode": r.mode}


def paper_latency(nfe: int, threads: int, n: int, device: str = "cpu", bf16: bool = False) -> dict:
    """The paper-size preset with random weights, CFG on: the network step per frame, and the step plus the
    shipped causal codec's streaming decode of that frame (waveform level), on `device`."""
    import contextlib

    from foley.models.codec import load_codec
    from foley.models.reactor import PRESETS, ReactorNet

    torch.set_num_threads(threads)
    dev = torch.device(device)
    net = ReactorNet(PRESETS["paper"], 120).to(dev).eval()
    codec = load_codec().eval().to(dev)
    params = sum(p.numel() for p in net.parameters())
    st = net.start(1, 2.0)
    frame = torch.randint(0, 256, (1, 3, 224, 224), dtype=torch.uint8, device=dev)
    cast = torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    step, total = [], []
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with torch.inference_mode(), codec.streaming():
        for k in range(n + 5):
            sync()
            t = time.perf_counter()
            with cast:
                x = net.step(st, frame, nfe, "consistency")
            sync()
            t1 = time.perf_counter()
            codec.decode(x.float()[:, :, None])[0].cpu().numpy()
            t2 = time.perf_counter()
            step.append(1000 * (t1 - t))
            total.append(1000 * (t2 - t))
    a, b = np.array(step[5:]), np.array(total[5:])
    return {"params_m": params / 1e6, "nfe": nfe, "p50": np.median(a), "p99": np.percentile(a, 99),
            "wave_p50": np.median(b), "wave_p99": np.percentile(b, 99)}


def memory(model: str | None, minutes: float, frames: list[np.ndarray], threads: int) -> list[tuple[float, float]]:
    """(minutes streamed, RSS MiB) every half minute of a long stream at NFE 1."""
    from foley.stream import Reactor

    r = Reactor(model, nfe=1, threads=threads)
    out = [(0.0, rss_mib())]
    per = 25 * 30
    for k in range(int(minutes * 60 * 25)):
        r.push(frames[k % len(frames)])
        if (k + 1) % per == 0:
            out.append(((k + 1) / 1500, rss_mib()))
            print(f"  {out[-1][0]:.1f} min: {out[-1][1]:.0f} MiB", flush=True)
    r.close()
    return out


def stream_row(model: str | None, clips: Path, keys: list[str], out: Path, nfe: int, cfg: float, mode: str | None,
               int8: bool = False, seed: int = 0, mirror: float = 0.0) -> float:
    """Stream every test clip into out/key.flac (kept if present); returns ms per frame of the new ones."""
    from foley import io
    from foley.stream import Reactor

    out.mkdir(parents=True, exist_ok=True)
    spent, frames_done = 0.0, 0
    for key in keys:
        target = out / f"{key}.flac"
        if target.exists():
            continue
        fr = clip_frames(clips / f"{key}.mp4")
        with Reactor(model, nfe=nfe, cfg=cfg, seed=seed, mode=mode, int8=int8, mirror=mirror) as r:
            t = time.perf_counter()
            audio = np.concatenate([r.push(f) for f in fr], axis=1)
            spent += time.perf_counter() - t
        frames_done += len(fr)
        io.write_audio(target, np.clip(audio, -1, 1).astype(np.float32), 48000)
    return 1000 * spent / frames_done if frames_done else float("nan")


def quality(rows: dict[str, tuple], clips: Path, keys: list[str], out: Path, extra: dict[str, Path]) -> list[str]:
    from foley.evaluate import evaluate, find_pairs
    from foley.models.clap import load_clap

    folders = {"objaware (reference)": clips / "objaware", "dataset (reference)": clips / "dataset", **extra}
    for name, (model, nfe, cfg, mode, *more) in rows.items():  # more: int8, mirror
        folder = out / name.replace(" ", "_").replace(",", "").replace("=", "")
        int8, mirror = (list(more) + [False, 0.0][len(more):])[:2]
        ms = stream_row(model, clips, keys, folder, nfe, cfg, mode, bool(int8), mirror=float(mirror))
        print(f"  streamed {name}: {ms:.1f} ms per frame", flush=True)
        folders[name] = folder
    clap = load_clap()
    lines = ["| row | " + " | ".join(COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 1)]
    for name, folder in folders.items():
        pairs = [p for p in find_pairs(folder, clips / "objaware", clips)[0] if p.key in set(keys)]
        s = evaluate(pairs, model=clap, progress=False).summary
        lines.append(f"| {name} | " + " | ".join("—" if s.get(k) is None else f"{s[k]:.3f}" for k in COLUMNS) + " |")
        print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="ECT reactor checkpoint (default: the shipped one)")
    p.add_argument("--pretrained", default=None, help="the pre-trained (diffusion) checkpoint, for the ECT ablation")
    p.add_argument("--clips", default="runs/bench_eval/clips", help="exported test clips (bench_eval.py makes them)")
    p.add_argument("--out", default="runs/bench_reactor")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--latency", action="store_true")
    p.add_argument("--frames", type=int, default=500, help="timed frames per latency row")
    p.add_argument("--paper-latency", action="store_true")
    p.add_argument("--device", default="cpu", help="where --paper-latency runs (cuda on a GPU machine)")
    p.add_argument("--memory", type=float, default=0.0, metavar="MINUTES")
    p.add_argument("--quality", action="store_true")
    p.add_argument("--n", type=int, default=50, help="test clips for --quality")
    p.add_argument("--dit", default="runs/bench_dit/obj", help="the DiT's generated clips (bench_dit.py), a row beside")
    p.add_argument("--markdown", help="also write the tables here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    clips = Path(a.clips)
    keys = sorted(f.stem for f in clips.glob("*.json"))[: a.n]
    frames = (clip_frames(clips / f"{keys[0]}.mp4") if keys  # latency needs frames, not any one clip's
              else list(np.random.default_rng(0).integers(0, 256, (100, 96, 96, 3), dtype=np.uint8)))
    lines: list[str] = []
    if a.latency:
        gpu = a.device.startswith("cuda")
        where = torch.cuda.get_device_name() if gpu else f"{a.threads} CPU threads"
        lines += [f"Latency per frame, waveform level ({where}, {a.frames} frames, deadline 40 ms):", "",
                  "| NFE | weights | p50 ms | p95 ms | p99 ms | misses | network p50 | codec decode p50 |",
                  "|---|---|---|---|---|---|---|---|"]
        for nfe, int8 in ((1, False), (4, False)) if gpu else ((1, False), (4, False), (1, True), (4, True)):
            r = latency(a.model, nfe, frames, a.frames, a.threads, 3.0, int8, a.device)
            lines.append(f"| {nfe} | {'int8' if int8 else 'fp32'} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | {r['misses']} | "
                         f"{r['net_p50']:.1f} | {r['codec_p50']:.1f} |")
            print(lines[-1], flush=True)
        lines.append("")
    if a.paper_latency:
        where = torch.cuda.get_device_name() if a.device.startswith("cuda") else f"CPU, {a.threads} threads"
        lines += [f"Paper-size preset, random weights, CFG on ({where}):", "",
                  "| params (M) | NFE | precision | step p50 ms | step p99 ms | waveform p50 ms | waveform p99 ms |",
                  "|---|---|---|---|---|---|---|"]
        precisions = (False, True) if a.device.startswith("cuda") else (False,)
        for bf16 in precisions:
            for nfe in (1, 4):
                r = paper_latency(nfe, a.threads, a.frames if a.device.startswith("cuda") else 20, a.device, bf16)
                lines.append(f"| {r['params_m']:.0f} | {nfe} | {'bf16' if bf16 else 'fp32'} | {r['p50']:.1f} | "
                             f"{r['p99']:.1f} | {r['wave_p50']:.1f} | {r['wave_p99']:.1f} |")
                print(lines[-1], flush=True)
        lines.append("")
    if a.memory:
        mem = memory(a.model, a.memory, frames, a.threads)
        lines += [f"RSS over a {a.memory:g}-minute stream (NFE 1): " +
                  ", ".join(f"{m:.1f} min {r:.0f} MiB" for m, r in mem), ""]
    if a.quality:
        rows = {"reactor ECT, NFE 1, CFG 2": (a.model, 1, 2.0, None),
                "reactor ECT, NFE 4, CFG 2": (a.model, 4, 2.0, None),
                "reactor ECT, NFE 4, CFG 1": (a.model, 4, 1.0, None),
                "reactor ECT, NFE 4, CFG 3": (a.model, 4, 3.0, None),
                "reactor ECT, NFE 4, CFG 3, int8": (a.model, 4, 3.0, None, True),
                "reactor ECT, NFE 4, CFG 3, mirror 1.5": (a.model, 4, 3.0, None, False, 1.5),
                "reactor ECT, NFE 4, CFG 3, mirror 3": (a.model, 4, 3.0, None, False, 3.0)}
        if a.pretrained:
            rows["reactor pre-trained, Euler NFE 1, CFG 2"] = (a.pretrained, 1, 2.0, "diffusion")
            rows["reactor pre-trained, Euler NFE 4, CFG 2"] = (a.pretrained, 4, 2.0, "diffusion")
            rows["reactor pre-trained, Euler NFE 16, CFG 2"] = (a.pretrained, 16, 2.0, "diffusion")
        extra = {"DiT obj (offline)": Path(a.dit)} if Path(a.dit).is_dir() else {}
        lines += quality(rows, clips, keys, Path(a.out), extra)
        lines += ["", f"{len(keys)} world test clips (4 s), streamed frame by frame"]
    report(lines, a.markdown)


if __name__ == "__main__":
    main()
