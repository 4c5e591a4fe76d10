"""Training: the shared loop (loop.py) and one task module per model (codec.py, clap.py, dit.py)."""
from __future__ import annotations

import argparse
from typing import Callable


def script_main(prog: str, doc: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                run_from_args: Callable[[argparse.Namespace], object], argv: list[str] | None = None) -> None:
    """`python -m foley.train.<model>` (what torchrun launches): parse, run, print the exported path; user errors
    end in one line."""
    from foley.errors import FoleyError

    p = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    add_arguments(p)
    try:
        print(run_from_args(p.parse_args(argv)))
    except FoleyError as e:
        raise SystemExit(f"error: {e}") from None
