"""What every bench does with its result: print the text, and also write it as markdown where asked."""
from __future__ import annotations

from pathlib import Path


def report(text: str | list[str], markdown: str | None = None) -> None:
    """Print `text` (lines are joined), and write it to `markdown` when that is given."""
    text = text if isinstance(text, str) else "\n".join(text)
    print(text)
    if markdown:
        Path(markdown).write_text(text + "\n")
