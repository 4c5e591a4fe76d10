"""StereoFoley's Table 2 on the world test split, and generation speed (DiT issue §3, §5; docs/benchmarks.md).

    python bench/bench_dit.py                                # shipped dit_base.pt / dit_obj.pt, 100 test clips
    python bench/bench_dit.py --base runs/dit-base/dit.pt --obj runs/dit-obj/dit.pt --n 50 --steps 25
    python bench/bench_dit.py --models add=A.pt,concat=B.pt,cross=C.pt --n 30   # the video-mode ablation
    python bench/bench_dit.py --models new=N.pt,obj=obj --seeds 0,1,2 [--dominant]  # compare over sampling seeds
    python bench/bench_dit.py --sweep --n 30       # obj at CFG 1/3/6/9 (25 steps) and 8/25/50/100 steps (CFG 6)
    python bench/bench_dit.py --dominant           # BAS where one object dominates, of the rows already generated

Needs the exported test clips of bench/bench_eval.py (runs/bench_eval/clips; made there on first use).
Rows: the objaware, dataset and mono references; base; obj; base -> mono -> our spatializer with the true
track of the clip's first object. Every row is scored against the objaware references and the ground truth
by `foley.evaluate`. Speed: seconds per 8 s clip at 100, 25 and 8 steps, and peak memory.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from foley import io  # noqa: E402
from foley.evaluate import evaluate, find_pairs, read_truth  # noqa: E402
from foley.generate import MIRROR, Generator, Settings, checkpoint_path, default_steer  # noqa: E402
from foley.models.clap import load_clap  # noqa: E402

from bench_dit_speed import peak_memory, speed  # noqa: E402
from report import report  # noqa: E402

SR = 48000
COLUMNS = ("bas_in", "bas_off", "bas_all", "bas_single", "stereo_score", "fd", "kl", "clap", "sync_f1", "class_acc")


def generate_row(gen: Generator, clips: Path, keys: list[str], out: Path, st: Settings) -> float:
    """Generate every clip into out/key.flac (kept if present); returns seconds per clip of the new ones."""
    out.mkdir(parents=True, exist_ok=True)
    spent, made = 0.0, 0
    for key in keys:
        target = out / f"{key}.flac"
        if target.exists():
            continue
        t0 = time.time()
        audio = gen(clips / f"{key}.mp4", settings=st)
        spent += time.time() - t0
        made += 1
        io.write_audio(target, audio.astype(np.float32), SR)
    return spent / made if made else float("nan")


def spatialize_row(source: Path, clips: Path, keys: list[str], out: Path) -> None:
    """Each generated clip downmixed to mono and placed by our spatializer on the first object's true track."""
    from foley.spatial import render_source

    out.mkdir(parents=True, exist_ok=True)
    for key in keys:
        audio = io.read_audio(source / f"{key}.flac", sr=SR, channels=2)
        tracks = read_truth(clips / f"{key}.json").tracks
        placed = render_source(audio.mean(0), tracks[0], SR) if tracks else audio
        io.write_audio(out / f"{key}.flac", placed.astype(np.float32), SR)


def score(folder: Path, clips: Path, keys: list[str], model) -> dict:  # noqa: ANN001
    """foley.evaluate's summary of a folder of generated clips against the objaware references."""
    pairs = [p for p in find_pairs(folder, clips / "objaware", clips)[0] if p.key in set(keys)]
    return evaluate(pairs, model=model, progress=False).summary


def row(name: str, s: dict, columns: tuple[str, ...] = COLUMNS, extra: str = "") -> str:
    return f"| {name} | " + " | ".join("—" if s[k] is None else f"{s[k]:.3f}" for k in columns) + f" |{extra}"


def tag(mirror: float, steer: float = 0.0) -> str:
    """Folder suffix of outputs made with mirror guidance (none for the paper's sampling: the older outputs) and
    steering towards the object heard (none without)."""
    return ("" if mirror == 0 else f"-mirror{mirror:g}") + ("" if steer == 0 else f"-steer{steer:g}")


def steer_share(ckpt: str, steer: float | None) -> float:
    """The steering a model's clips get: `steer` if given, else the model's default (foley.generate.default_steer)."""
    if steer is not None:
        return steer
    from foley.checkpoint import load
    from foley.models.dit import FORMAT

    return default_steer(load(checkpoint_path(ckpt), (FORMAT,), "DiT", "a dit.pt or base|obj"))


def models_table(spec: str, clips: Path, keys: list[str], out: Path, st: Settings, model,  # noqa: ANN001
                 seeds: tuple[int, ...] = (0,)) -> list[str]:
    """Rows of the models NAME=CKPT,... (e.g. the video-mode ablation), each generated with the same settings; with
    several seeds, a row per seed and their mean (the seed alone moves these figures by a few points)."""
    lines = ["| model | " + " | ".join(COLUMNS) + " | s per clip |", "|" + "---|" * (len(COLUMNS) + 2)]
    for name, ckpt in parse_models(spec):
        gen, runs, share = None, [], steer_share(ckpt, st.steer)
        for seed in seeds:
            folder = model_folder(out, name, st.mirror, seed, share)
            if any(not (folder / f"{key}.flac").exists() for key in keys):  # rows made already need no model
                gen = gen or Generator(ckpt)
            secs = generate_row(gen, clips, keys, folder, replace(st, seed=seed))
            runs.append(score(folder, clips, keys, model))
            label = name if len(seeds) == 1 else f"{name}, seed {seed}"
            lines.append(row(label, runs[-1], extra=f" {secs:.1f} |"))
            print(lines[-1], flush=True)
        if len(seeds) > 1:
            mean = {k: None if any(r[k] is None for r in runs) else float(np.mean([r[k] for r in runs])) for k in COLUMNS}
            lines.append(row(f"**{name}, mean of {len(seeds)} seeds**", mean, extra=" |"))
            print(lines[-1], flush=True)
    return lines


def parse_models(spec: str) -> list[tuple[str, str]]:
    """NAME=CKPT,... -> [(name, ckpt)]."""
    return [tuple(item.split("=", 1)) for item in spec.split(",")]  # type: ignore[misc]


def model_folder(out: Path, name: str, mirror: float, seed: int, steer: float = 0.0) -> Path:
    """Where a --models row's clips go: NAME, the mirror and steering tags, and -seedN for seeds other than the
    bench's 0 (none for 0: the older outputs)."""
    return out / f"{name}{tag(mirror, steer)}{'' if seed == 0 else f'-seed{seed}'}"


SWEEP_COLUMNS = ("bas_all", "bas_single", "stereo_score", "fd", "kl", "clap", "sync_f1", "class_acc")


def sweep_table(ckpt: str, clips: Path, keys: list[str], out: Path, sampler: str, model,  # noqa: ANN001
                mirror: float = 0.0) -> list[str]:
    """One model at CFG 1, 3, 6, 9 (25 steps) and at 8, 25, 50, 100 steps (CFG 6): quality against time."""
    gen = Generator(ckpt)
    lines = ["| cfg | steps | " + " | ".join(SWEEP_COLUMNS) + " | s per 4 s clip |", "|" + "---|" * (len(SWEEP_COLUMNS) + 3)]
    for cfg, steps in [(1.0, 25), (3.0, 25), (6.0, 25), (9.0, 25), (6.0, 8), (6.0, 50), (6.0, 100)]:
        folder = out / f"cfg{cfg:g}-steps{steps}{tag(mirror)}"
        secs = generate_row(gen, clips, keys, folder, Settings(cfg, steps, sampler, 0, mirror, 0.0))
        lines.append(row(f"{cfg:g} | {steps}", score(folder, clips, keys, model), SWEEP_COLUMNS, f" {secs:.1f} |"))
        print(lines[-1], flush=True)
    return lines


def world_truth(world: Path, keys: list[str]) -> dict[str, tuple]:
    """key -> (stems (O, N), ambience (N,), tracks) from the world shards the test clips were exported from."""
    from foley.world.record import decode
    from foley.world.shards import iter_shard

    want, out = set(keys), {}
    for shard in sorted(world.rglob("*.tar")):
        for key, files in iter_shard(shard):
            if key in want:
                rec = decode(files, (), frames=False, stems=True)
                out[key] = (rec.stems, rec.ambience, rec.tracks)
    return out


def dominant_table(rows: dict[str, Path], world: Path, keys: list[str], margin_db: float = 10.0) -> list[str]:
    """Per row: BAS over the frames where one object's sound is `margin_db` above the rest of the mix (its other
    objects and the ambience; `foley.world.checks.dominant_bas`), over every such object, and over the clips with
    one object only. The frames where an object can be heard are where its placement can be judged. Then, on the
    clips with several objects, where those frames' sound was heard (`dominant_misses`): on the dominant object,
    on another object (the wrong one was placed), centred, or elsewhere."""
    from foley.world.checks import MISSES, dominant_bas, dominant_misses

    truth = world_truth(world, keys)
    missing = sorted(set(keys) - set(truth))
    if missing:
        raise SystemExit(f"{len(missing)} clips are not in the world shards under {world} (first: {missing[0]})")
    lines = [f"| row | BAS, each object where it dominates ({margin_db:g} dB) | objects | the same, one-object clips | "
             "objects | " + " | ".join(f"several objects: {k}" for k in MISSES) + " |", "|---" * (5 + len(MISSES)) + "|"]
    objects: dict[str, list[tuple[float, str, float]]] = {}  # row -> (object's mean size, class, its BAS)
    for name, folder in rows.items():
        every, single, misses = [], [], dict.fromkeys(MISSES, 0)
        for key in keys:
            stems, amb, tracks = truth[key]
            audio = io.read_audio(folder / f"{key}.flac", sr=SR, channels=2)
            per = dominant_bas(audio, stems, amb, tracks, SR, margin_db)
            objects.setdefault(name, []).extend((float(np.nanmean(t.mass)), t.label, v)
                                                for t, v in zip(tracks, per) if not np.isnan(v))
            vals = [v for v in per if not np.isnan(v)]
            every += vals
            single += vals if len(tracks) == 1 else []
            if len(tracks) > 1:
                for k, v in dominant_misses(audio, stems, amb, tracks, SR, margin_db).items():
                    misses[k] += v
        total = max(1, sum(misses.values()))
        lines.append(f"| {name} | {np.mean(every):.3f} | {len(every)} | "
                     f"{np.mean(single) if single else float('nan'):.3f} | {len(single)} | "
                     + " | ".join(f"{misses[k] / total:.3f}" for k in MISSES) + " |")
        print(lines[-1], flush=True)
    return lines + [""] + breakdown(objects)


def breakdown(objects: dict[str, list[tuple[float, str, float]]]) -> list[str]:
    """The same BAS per row by the object's size (thirds of the objects by mean share of the frame) and class."""
    first = next(iter(objects.values()))
    cuts = np.quantile([m for m, _, _ in first], [1 / 3, 2 / 3])
    classes = sorted({c for _, c, _ in first})
    lines = [f"| row | small (< {cuts[0]:.3f} of the frame) | middle | large (> {cuts[1]:.3f}) | "
             + " | ".join(classes) + " |", "|---" * (4 + len(classes)) + "|"]
    for name, objs in objects.items():
        size = np.digitize([m for m, _, _ in objs], cuts)
        vals = np.array([v for _, _, v in objs])
        cells = [f"{vals[size == k].mean():.2f}" for k in range(3)]
        cells += [f"{np.mean([v for _, c2, v in objs if c2 == c]):.2f}" for c in classes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    counts = [sum(c2 == c for _, c2, _ in first) for c in classes]
    return lines + ["", "objects per class: " + ", ".join(f"{c} {n}" for c, n in zip(classes, counts))]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", default="runs/bench_eval/clips", help="exported test clips (bench_eval.py makes them)")
    p.add_argument("--out", default="runs/bench_dit", help="generated rows go here (kept: re-runs resume)")
    p.add_argument("--base", default="base", help="base checkpoint (default: the shipped one)")
    p.add_argument("--obj", default="obj", help="obj checkpoint (default: the shipped one)")
    p.add_argument("--n", type=int, default=100, help="test clips")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--cfg", type=float, default=6.0)
    p.add_argument("--sampler", default="ddim")
    p.add_argument("--mirror", type=float, default=MIRROR, help=f"mirror guidance (default {MIRROR:g}; 0: the paper's)")
    p.add_argument("--steer", type=float, default=None,
                   help="steering towards the object heard, 0..1 (default: each model's own; --sweep: 0)")
    p.add_argument("--speed", action="store_true", help="also time 8 s clips at 100, 25 and 8 steps")
    p.add_argument("--models", default="", help="NAME=CKPT,... : score these models instead (e.g. the ablation)")
    p.add_argument("--seeds", default="0", help="with --models: sampling seeds, e.g. 0,1,2 (a row each, and their mean)")
    p.add_argument("--sweep", action="store_true", help="instead: --obj at several CFG scales and step counts")
    p.add_argument("--dominant", action="store_true",
                   help="instead: BAS where one object dominates, of the rows already generated under --out")
    p.add_argument("--world", help="the world shards of the clips (default: beside --clips, bench_eval.py's)")
    p.add_argument("--markdown", help="also write the tables as markdown here")
    a = p.parse_args(argv)
    clips, out = Path(a.clips), Path(a.out)
    keys = sorted(f.stem for f in clips.glob("*.json"))[: a.n]
    st = Settings(a.cfg, a.steps, a.sampler, 0, a.mirror, a.steer)
    seeds = tuple(int(x) for x in a.seeds.split(","))
    if a.models and a.dominant:  # the named models' rows, already generated under --out, beside the reference
        rows = {"objaware (reference)": clips / "objaware",
                **{name if len(seeds) == 1 else f"{name}, seed {seed}": model_folder(out, name, a.mirror, seed, share)
                   for name, share in ((n, steer_share(c, a.steer)) for n, c in parse_models(a.models))
                   for seed in seeds}}
        lines = dominant_table(rows, Path(a.world) if a.world else clips.parent / "world", keys)
        report(lines + ["", f"{len(keys)} world test clips (4 s), mirror guidance {a.mirror:g}"], a.markdown)
        return
    if a.models or a.sweep:
        model = load_clap()
        lines = (models_table(a.models, clips, keys, out, st, model, seeds) if a.models
                 else sweep_table(a.obj, clips, keys, out, a.sampler, model, a.mirror))
        lines += ["", f"{len(keys)} world test clips (4 s), scored against the objaware references"
                  + (f"; {a.sampler} {a.steps} steps, CFG {a.cfg}" if a.models else f"; {a.sampler}")
                  + f", mirror guidance {a.mirror:g}"]
        report(lines, a.markdown)
        return
    sb, so = tag(a.mirror, steer_share(a.base, a.steer)), tag(a.mirror, steer_share(a.obj, a.steer))
    rows = {"objaware (reference)": clips / "objaware", "dataset (reference)": clips / "dataset",
            "mono (reference)": clips / "mono", "base": out / f"base{sb}", "obj": out / f"obj{so}",
            "base -> mono -> spatialize": out / f"base_spatial{sb}"}
    if a.dominant:
        lines = dominant_table(rows, Path(a.world) if a.world else clips.parent / "world", keys)
        report(lines + ["", f"{len(keys)} world test clips (4 s), mirror guidance {a.mirror:g}"], a.markdown)
        return
    gens = {"base": Generator(a.base), "obj": Generator(a.obj)}
    secs = {"base": generate_row(gens["base"], clips, keys, rows["base"], st),
            "obj": generate_row(gens["obj"], clips, keys, rows["obj"], st)}
    spatialize_row(rows["base"], clips, keys, rows["base -> mono -> spatialize"])
    model = load_clap()
    lines = ["| row | " + " | ".join(COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 1)]
    for name, folder in rows.items():
        lines.append(row(name, score(folder, clips, keys, model)))
        print(lines[-1], flush=True)
    lines += ["", f"{len(keys)} world test clips (4 s), {a.sampler} {a.steps} steps, CFG {a.cfg}, mirror {a.mirror:g}, "
              f"steering base {steer_share(a.base, a.steer):g} / obj {steer_share(a.obj, a.steer):g}; "
              f"generation {secs['obj']:.1f} s per 4 s clip (obj) on this machine"]
    if a.speed:
        lines += ["", "| steps | seconds per 8 s clip |", "|---|---|"]
        lines += [f"| {s} | {t:.1f} |" for s, t in speed(gens["obj"], clips / f"{keys[0]}.mp4", mirror=a.mirror)]
        lines.append(f"\n{peak_memory(gens['obj'].device)}")
    report(lines, a.markdown)


if __name__ == "__main__":
    main()
