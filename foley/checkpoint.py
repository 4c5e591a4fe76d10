"""The one checkpoint format of foley: writer, reader, hash, and where the shipped ones live.

A checkpoint is a `torch.save`d dict {"format": "foley.<kind>/<version>", "config": {...}, "model": state,
"sha256": hash of the weights, ...extra}; it is read back with `weights_only=True` (no pickled code runs),
and its weights are checked against the hash, so a damaged file is an error, never a silently wrong model.
Shipped checkpoints are package data (`foley/checkpoints/`), found through importlib.resources, so an
installed (non-editable) foley finds them as well as a checkout does.
"""
from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import torch

from foley.errors import FoleyError
from foley.files import atomic_output


class CheckpointError(FoleyError):
    """A checkpoint is missing, unreadable, of another kind, or damaged."""


def shipped(name: str) -> Path:
    """Path of a checkpoint shipped inside the package, e.g. shipped('codec_tiny.pt')."""
    return Path(str(resources.files("foley") / "checkpoints" / name))


def state_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the names, shapes, dtypes and bytes of a state dict, in name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save(path: str | Path, fmt: str, config: dict, model: dict[str, torch.Tensor], **extra: object) -> str:
    """Write {format, config, model, sha256, **extra} atomically (temp file, then rename); returns the hash."""
    digest = state_hash(model)
    with atomic_output(path) as tmp:
        torch.save({"format": fmt, "config": config, "model": model, "sha256": digest, **extra}, tmp)
    return digest


def load(path: str | Path, formats: tuple[str, ...], what: str, hint: str,
         map_location: str | torch.device = "cpu") -> dict:
    """Read and check a checkpoint of one of `formats`; `what` names it and `hint` says how to get one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} checkpoint {str(path)!r} not found: {hint}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many kinds on a damaged file
        raise CheckpointError(f"{path}: not a readable {what} checkpoint ({type(e).__name__}): {hint}") from None
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    if fmt not in formats:
        raise CheckpointError(f"{path}: not a foley {what} checkpoint (format {fmt!r}, expected one of {list(formats)})")
    if "config" not in ckpt or "model" not in ckpt:
        raise CheckpointError(f"{path}: {what} checkpoint without config or weights: {hint}")
    if "sha256" in ckpt and state_hash(ckpt["model"]) != ckpt["sha256"]:
        raise CheckpointError(f"{path}: weights do not match their hash (damaged file): {hint}")
    return ckpt


def load_model(path: str | Path, fmt: str, what: str, hint: str, build, weights: str = "model"):  # noqa: ANN001, ANN201
    """(model, checkpoint): read and checked (`load`), built by `build(config dict)`, with the weights stored under
    `weights` ("model", or a run checkpoint's "ema")."""
    ckpt = load(path, (fmt,), what, hint)
    model = build(ckpt["config"])
    model.load_state_dict(ckpt[weights])
    return model, ckpt


def half_state(model: torch.nn.Module, half: bool, keep: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """A model's state, its floating tensors as float16 when `half` (how shipped generators stay small), but
    for the names in `keep` (e.g. normalisation statistics that need float32)."""
    return {k: v.half() if half and v.is_floating_point() and k not in keep else v
            for k, v in model.state_dict().items()}


def float_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A saved state with its floating tensors back in float32."""
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def check_codec(ckpt: dict, codec_hashes: tuple[str, ...] | None, path: str | Path) -> None:
    """A generator checkpoint must have been made for a codec with these latents (any of `codec_hashes`, from
    `foley.models.codec.latent_hashes`; None: any): a clear error otherwise."""
    if codec_hashes is not None and ckpt.get("codec_hash") not in codec_hashes:
        raise CheckpointError(f"{path}: made for another codec (its latents differ from this codec's); "
                              "use the codec it was trained with, or retrain")


def load_generator(path: str | Path, fmt: str, what: str, hint: str, build,  # noqa: ANN001, ANN201
                   codec_hashes: tuple[str, ...] | None):
    """(model, checkpoint) of a generator over codec latents: read, checked against the codec's `codec_hashes`
    (None: any), built by `build(config dict, latent_channels)` and loaded in float32."""
    ckpt = load(path, (fmt,), what, hint)
    check_codec(ckpt, codec_hashes, path)
    cfg = dict(ckpt["config"])
    channels = cfg.pop("latent_channels")
    model = build(cfg, channels)
    model.load_state_dict(float_state(ckpt["model"]))
    return model, ckpt
