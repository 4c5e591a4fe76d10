"""Reference rows of the V2A metrics suite on exported world test clips (evaluation issue §4; docs/benchmarks.md).

    python bench/bench_eval.py                       # 200 test clips in runs/bench_eval (made on first use)
    python bench/bench_eval.py --n 50 --embedding runs/clap/clap.pt --markdown eval.md

Every row is scored against the objaware references and the ground truth with `foley.evaluate`:
the objaware, dataset and mono mixes; a random train clip of the same class and one of another class;
silence; white noise; and two probes of single metrics: the objaware mix 200 ms late (sync) and with its
channels swapped (stereo placement). The rows bound what a generator must beat, and show each metric
separating good from bad.
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
from foley.evaluate import evaluate, find_pairs  # noqa: E402
from foley.models.clap import load_clap  # noqa: E402
from report import report  # noqa: E402

SR = 48000
COLUMNS = ("fd", "mmd", "kl", "is", "clap", "class_acc", "sync_f1", "sync_offset_ms", "onset_f1", "stereo_score",
           "bas_in", "bas_off", "bas_all", "bas_single")


def ensure_clips(folder: Path, n: int, seed: int) -> Path:
    """A world test split of n default-preset clips, exported (made once, then reused)."""
    from foley.world.export import export
    from foley.world.scene import PRESETS
    from foley.world.shards import make_world

    make_world(folder / "world", n, "test", seed, PRESETS["default"], progress=True)
    export(folder / "world", folder / "clips", "test", n)
    return folder / "clips"


def train_bank(n: int, seed: int, seconds: float) -> tuple[list[np.ndarray], list[set[str]]]:
    """Objaware mixes and class sets of n train-split scenes (tiny frames: only the audio is used)."""
    from foley.world import PRESETS as WORLD, render, sample_scene, synthesize

    cfg = replace(WORLD["tiny"], seconds=seconds)
    audio, classes = [], []
    for i in range(n):
        scene = sample_scene(cfg, seed, "train", i)
        audio.append(synthesize(scene, render(scene)).mixes["objaware"])
        classes.append({o.cls for o in scene.objects})
    return audio, classes


def write_rows(clips: Path, out: Path, bank: tuple[list[np.ndarray], list[set[str]]], seed: int) -> list[str]:
    """Write each row's clips into out/<row>/key.flac; returns the row names."""
    import json

    rng = np.random.default_rng(seed)
    bank_audio, bank_classes = bank
    rows = {"objaware": None, "dataset": None, "mono": None, "same class (train)": None,
            "other class (train)": None, "silence": None, "white noise": None, "objaware +200 ms": None,
            "objaware L/R swapped": None}
    for name in rows:
        (out / _slug(name)).mkdir(parents=True, exist_ok=True)
    for truth in sorted(clips.glob("*.json")):
        key = truth.stem
        ref = io.read_audio(clips / "objaware" / f"{key}.flac", sr=SR, channels=2)
        classes = set(json.loads(truth.read_text())["classes"])
        same = [i for i, c in enumerate(bank_classes) if c & classes]
        other = [i for i, c in enumerate(bank_classes) if not c & classes]
        level = np.sqrt(np.mean(ref ** 2)) + 1e-9
        made = {
            "dataset": io.read_audio(clips / "dataset" / f"{key}.flac", sr=SR, channels=2),
            "mono": io.read_audio(clips / "mono" / f"{key}.flac", sr=SR, channels=2),
            "objaware": ref,
            "same class (train)": bank_audio[rng.choice(same)] if same else np.zeros_like(ref),
            "other class (train)": bank_audio[rng.choice(other)] if other else np.zeros_like(ref),
            "silence": np.zeros_like(ref),
            "white noise": level * rng.standard_normal(ref.shape),
            "objaware +200 ms": np.pad(ref, ((0, 0), (SR // 5, 0)))[:, : ref.shape[1]],
            "objaware L/R swapped": ref[::-1],
        }
        for name, audio in made.items():
            a = np.zeros_like(ref)
            a[:, : min(ref.shape[1], audio.shape[1])] = audio[:, : ref.shape[1]]
            io.write_audio(out / _slug(name) / f"{key}.flac", a.astype(np.float32), SR)
    return list(rows)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def fmt(v: object) -> str:
    return "—" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", default="runs/bench_eval", help="where the world, the export and the rows go")
    p.add_argument("--n", type=int, default=200, help="test clips")
    p.add_argument("--bank", type=int, default=300, help="train scenes to draw the same/other-class rows from")
    p.add_argument("--embedding", help="joint embedding checkpoint (default: the shipped one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", help="also write the table as markdown here")
    a = p.parse_args(argv)
    folder = Path(a.folder)
    t0 = time.time()
    clips = ensure_clips(folder, a.n, a.seed)
    rows = write_rows(clips, folder / "rows", train_bank(a.bank, a.seed + 1, 4.0), a.seed)
    model = load_clap(a.embedding)
    table = []
    for name in rows:
        pairs, problems = find_pairs(folder / "rows" / _slug(name), clips / "objaware", clips)
        rep = evaluate(pairs, model=model, problems=problems)
        table.append((name, rep.summary))
        print(name, {k: fmt(rep.summary[k]) for k in COLUMNS}, flush=True)
    head = "| row | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    lines += [f"| {name} | " + " | ".join(fmt(s[k]) for k in COLUMNS) + " |" for name, s in table]
    report(lines + ["", f"{a.n} world test clips (4 s, default preset, seed {a.seed}); {time.time() - t0:.0f} s"],
           a.markdown)


if __name__ == "__main__":
    main()
