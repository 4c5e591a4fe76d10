"""Where a model runs: the one check of a user's --device, shared by `foley generate` and `foley stream`."""
from __future__ import annotations

import torch

from foley.errors import FoleyError


def compute_device(device: str | torch.device) -> torch.device:
    """'cpu', 'cuda' or 'cuda:N' -> torch.device; a one-line FoleyError for any other name or a GPU not here."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise FoleyError(f"device {str(device)!r}: use cpu or cuda (cuda:N for the N-th GPU)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FoleyError(f"device {str(device)!r}: no CUDA device here")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise FoleyError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    return dev
