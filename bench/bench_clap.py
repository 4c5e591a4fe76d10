"""The joint embedding on the world's held-out test split, beside trivial baselines (evaluation issue §1).

    python bench/bench_clap.py                            # the shipped foley/checkpoints/clap_tiny.pt
    python bench/bench_clap.py --embedding runs/clap/clap.pt --scenes 300 --markdown clap.md

Text->audio retrieval R@1/R@5 over the test scenes' objaware mixes (query: the scene caption) and over their
object stems (query: the object caption), zero-shot class accuracy of stems (prompts: the class caption in
each of its colours, averaged), and the class head's accuracy. Baselines in the same run: chance; the
bag-of-words text side trained beside the model on its (detached) audio embeddings; and class-mean audio
(each clip's embedding replaced by the mean of its class, or class set for mixes: what knowing the class
alone gives). Captions name colours, which no audio carries, so R@1 is bounded well under 1.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from foley.models.clap import load_clap  # noqa: E402
from foley.train.clap import make_pool, measure  # noqa: E402
from report import report  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--embedding", help="checkpoint (default: the shipped one)")
    p.add_argument("--scenes", type=int, default=300, help="test scenes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--markdown", help="also write the table as markdown here")
    a = p.parse_args(argv)
    t0 = time.time()
    pool = make_pool(a.scenes, "test", a.seed, 4.0, a.workers)
    m = measure(load_clap(a.embedding), pool)
    n_mix, n_stem = len(pool.select("mix")), len(pool.select("stem"))
    lines = ["| text -> audio | R@1 | R@5 |", "|---|---|---|"]
    for kind, n in (("mix", n_mix), ("stem", n_stem)):
        name = {"mix": "mixes", "stem": "stems"}[kind]
        lines.append(f"| **{name} ({n}), model** | **{m[f'{kind}_r1']:.3f}** | **{m[f'{kind}_r5']:.3f}** |")
        lines.append(f"| {name}, bag-of-words text | {m[f'bow_{kind}_r1']:.3f} | {m[f'bow_{kind}_r5']:.3f} |")
        lines.append(f"| {name}, class-mean audio | {m[f'classmean_{kind}_r1']:.3f} | {m[f'classmean_{kind}_r5']:.3f} |")
        lines.append(f"| {name}, chance | {m[f'chance_{kind}_r1']:.3f} | {min(1, 5 * m[f'chance_{kind}_r1']):.3f} |")
    lines += ["", "| stems | accuracy |", "|---|---|",
              f"| zero-shot (text prompts) | **{m['zeroshot_acc']:.3f}** |",
              f"| class head | {m['head_acc']:.3f} |", f"| chance | {m['chance_zeroshot']:.3f} |",
              "", f"{a.scenes} test scenes (seed {a.seed}), {time.time() - t0:.0f} s"]
    report(lines, a.markdown)


if __name__ == "__main__":
    main()
