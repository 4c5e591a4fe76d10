"""The one training loop of foley: DDP, EMA, AMP, schedule, SIGKILL-safe resume, CSV log, progress, validation.

    run = train(CodecTask(CodecTaskConfig()), LoopConfig(steps=4000), "runs/codec")   # or resume=True

What is model-specific lives in a `Task` (foley/train/<model>.py): it builds the model, makes the batch
of step s on rank r (a pure function of (seed, s, r), so a resumed run sees the same data in the same
order), may own auxiliary modules with their own step (a discriminator), validates, and exports the
shippable checkpoint. The model owns its loss: `task.loss` calls `model.loss(batch)` and returns a dict
with "total". `out/last.pt` (written atomically every `save_every` steps) holds everything to resume;
`out/log.csv` the curves (rows past the checkpoint are dropped on resume, so none is counted twice).
"""
from __future__ import annotations

import copy
import csv
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import nn

from foley import checkpoint, interrupts
from foley.errors import FoleyError


BATCH_STATS = ("running_mean", "running_var", "num_batches_tracked")


class TrainError(FoleyError):
    """A training request or run folder is invalid."""


@dataclass(frozen=True)
class LoopConfig:
    """What every run has, whatever the model; saved (resolved) in every run checkpoint."""

    steps: int = 4000
    batch: int = 16  # total over ranks
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.01
    ema: float = 0.999
    seed: int = 0
    log_every: int = 10
    val_every: int = 250
    save_every: int = 50
    amp: bool = True  # bf16 autocast on CUDA only
    threads: int = 1  # CPU threads per process
    clip_grad: float = 1.0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1:
            raise TrainError("steps and batch must be >= 1")
        if min(self.log_every, self.val_every, self.save_every) < 1:
            raise TrainError("log/val/save intervals must be >= 1")


@dataclass
class Aux:
    """An auxiliary trained module of a task (e.g. a discriminator) and its optimiser."""

    module: nn.Module
    opt: torch.optim.Optimizer


class Task(Protocol):
    """The model-specific half of a run (see module docstring)."""

    name: str  # "codec": names the progress bar and the run's checkpoint format
    fmt: str  # checkpoint format of the model, e.g. "foley.codec/1"
    csv_fields: tuple[str, ...]  # loss and validation columns of log.csv (after step, seconds, lr)

    def config(self) -> Any: ...  # the task's own frozen config (saved as task_config)
    def model_config(self) -> Any: ...  # the model's frozen config (saved as config)
    def build(self, device: torch.device) -> nn.Module: ...
    def prepare(self, device: torch.device, rank: int) -> None: ...  # load data (after build/restore)
    def batch(self, step: int, rank: int, n: int, device: torch.device) -> Any: ...
    def loss(self, model: nn.Module, raw: nn.Module, batch: Any, step: int) -> tuple[dict, Any]: ...
    def aux(self, device: torch.device, world: int, local: int) -> dict[str, Aux]: ...
    def aux_step(self, aux: dict[str, Aux], batch: Any, out: Any, step: int) -> dict: ...
    def validate(self, ema: nn.Module, step: int, out: Path) -> dict: ...
    def before_save(self, ema: nn.Module) -> None: ...
    def export(self, ema: nn.Module, path: Path, **meta: Any) -> None: ...


class NoAux:
    """The `Task` methods of a task with no auxiliary module and nothing to do before a save (most tasks)."""

    def aux(self, device: torch.device, world: int, local: int) -> dict[str, Aux]:
        return {}

    def aux_step(self, aux: dict[str, Aux], batch: Any, out: Any, step: int) -> dict:
        return {}

    def before_save(self, ema: nn.Module) -> None:
        return None


@dataclass
class Run:
    """The mutable state of a run (what a checkpoint holds)."""

    raw: nn.Module
    model: nn.Module  # raw, or raw wrapped in DDP
    ema: nn.Module
    opt: torch.optim.Optimizer
    aux: dict[str, Aux] = field(default_factory=dict)
    step: int = 0


def dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def ddp(module: nn.Module, device: torch.device, world: int, local: int) -> nn.Module:
    """Wrap in DistributedDataParallel when world > 1."""
    if world <= 1:
        return module
    return nn.parallel.DistributedDataParallel(module, device_ids=[local] if device.type == "cuda" else None)


def lr_at(step: int, lc: LoopConfig) -> float:
    """Linear warmup, then cosine to 10%."""
    if step < lc.warmup:
        return lc.lr * (step + 1) / lc.warmup
    p = (step - lc.warmup) / max(1, lc.steps - lc.warmup)
    return lc.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def build(task: Task, lc: LoopConfig, device: torch.device, world: int, local: int) -> Run:
    torch.manual_seed(lc.seed)
    raw = task.build(device)
    ema = copy.deepcopy(raw).eval().requires_grad_(False)
    opt = torch.optim.AdamW(raw.parameters(), lr=lc.lr, betas=(0.9, 0.99), weight_decay=lc.weight_decay)
    return Run(raw, ddp(raw, device, world, local), ema, opt, task.aux(device, world, local))


def _unwrap(m: nn.Module) -> nn.Module:
    return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m


def save(path: Path, run: Run, task: Task, lc: LoopConfig) -> None:
    """Everything to resume, atomically (temp file, then rename: a SIGKILL leaves the previous one whole)."""
    task.before_save(run.ema)
    state = {"task": task.name, "loop_config": asdict(lc), "task_config": asdict(task.config()), "step": run.step,
             "ema": run.ema.state_dict(), "opt": run.opt.state_dict(),
             "aux": {k: {"module": _unwrap(a.module).state_dict(), "opt": a.opt.state_dict()} for k, a in run.aux.items()}}
    checkpoint.save(path, task.fmt, asdict(task.model_config()), run.raw.state_dict(), **state)


def load_run(path: Path, task_fmt: str) -> dict:
    """A run checkpoint, or a clear error."""
    try:
        return checkpoint.load(path, (task_fmt,), "run", "delete it or use another --out")
    except FoleyError as e:
        raise TrainError(f"{path}: cannot resume from it ({e})") from None


def restore(run: Run, ckpt: dict) -> None:
    run.raw.load_state_dict(ckpt["model"])
    run.ema.load_state_dict(ckpt["ema"])
    run.opt.load_state_dict(ckpt["opt"])
    for k, a in run.aux.items():
        if k in ckpt.get("aux", {}):
            _unwrap(a.module).load_state_dict(ckpt["aux"][k]["module"])
            a.opt.load_state_dict(ckpt["aux"][k]["opt"])
    run.step = int(ckpt["step"])


def train_step(run: Run, task: Task, batch: Any, lc: LoopConfig, device: torch.device) -> dict:
    """One optimiser step of the model (and the task's auxiliary step); returns float losses."""
    for g in run.opt.param_groups:
        g["lr"] = lr_at(run.step, lc)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=lc.amp and device.type == "cuda"):
        parts, out = task.loss(run.model, run.raw, batch, run.step)
    run.opt.zero_grad(set_to_none=True)
    parts["total"].backward()
    torch.nn.utils.clip_grad_norm_(run.raw.parameters(), lc.clip_grad)
    run.opt.step()
    if run.aux:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=lc.amp and device.type == "cuda"):
            parts |= task.aux_step(run.aux, batch, out, run.step)
    decay = min(lc.ema, (1 + run.step) / (10 + run.step))
    with torch.no_grad():
        for pe, p in zip(run.ema.parameters(), run.raw.parameters()):
            pe.lerp_(p.detach(), 1 - decay)
        for (name, be), b in zip(run.ema.named_buffers(), run.raw.buffers()):
            if name.rsplit(".", 1)[-1] in BATCH_STATS:  # batch-norm statistics follow the raw model
                be.copy_(b)
    run.step += 1
    return {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in parts.items()}


def _csv_rows(path: Path, upto: int) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if int(r["step"]) <= upto]


def write_csv(path: Path, rows: list[dict], fields: tuple[str, ...]) -> None:
    from foley.files import atomic_output

    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, ("step", "seconds", "lr") + fields, extrasaction="ignore")
        w.writeheader()
        w.writerows({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)


def train(task: Task, lc: LoopConfig, out: str | Path, resume: bool = False, device: str | None = None,
          rows: list[dict] | None = None) -> Path:
    """Train (or resume) `task` into folder `out`; returns the exported model `out/<task.name>.pt`.

    On resume the loop and task configs come from the checkpoint (only `steps` may grow); `rows` are
    extra log rows for a fresh run (e.g. baselines at negative steps).
    """
    from tqdm import tqdm

    out = Path(out)
    rank, world, local = dist_env()
    dev = torch.device(device or (f"cuda:{local}" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cpu":
        torch.set_num_threads(lc.threads)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    if lc.batch % world:
        raise TrainError(f"batch {lc.batch} does not split over {world} processes")
    last = out / "last.pt"
    if last.exists() and not resume:
        raise TrainError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)
    run = build(task, lc, dev, world, local)
    if resume and last.exists():
        restore(run, load_run(last, task.fmt))
    task.prepare(dev, rank)
    log = _csv_rows(out / "log.csv", run.step) + ([] if run.step else list(rows or []))
    t0 = time.time()
    bar = tqdm(total=lc.steps, initial=run.step, disable=rank != 0, desc=f"train {task.name}", dynamic_ncols=True)
    while run.step < lc.steps:
        interrupts.check()  # a Ctrl-C or SIGTERM that a finalizer swallowed stops the run here (foley.interrupts)
        torch.manual_seed(hash((lc.seed, run.step, rank)) % 2 ** 62)  # sampling noise: a function of the step
        parts = train_step(run, task, task.batch(run.step, rank, lc.batch // world, dev), lc, dev)
        bar.update(1)
        row = None
        if run.step % lc.log_every == 0 or run.step in (1, lc.steps):
            row = {"step": run.step, "seconds": round(time.time() - t0, 2), "lr": lr_at(run.step - 1, lc), **parts}
            bar.set_postfix(loss=f"{parts['total']:.3f}")
        if rank == 0 and (run.step % lc.val_every == 0 or run.step in (1, lc.steps)):
            row = (row or {"step": run.step}) | task.validate(run.ema, run.step, out)
        if rank == 0 and row is not None:
            log.append(row)
        if rank == 0 and (run.step % lc.save_every == 0 or run.step == lc.steps):
            write_csv(out / "log.csv", log, task.csv_fields)
            save(last, run, task, lc)
    bar.close()
    final = out / f"{task.name}.pt"
    if rank == 0:
        task.export(run.ema, final, train_config={"loop": asdict(lc), "task": asdict(task.config())}, step=run.step)
    if world > 1:
        dist.barrier()
    return final


def export_ema(run_checkpoint: str | Path, path: str | Path, fmt: str, what: str, build, save_model):  # noqa: ANN001, ANN201
    """The EMA model of a run checkpoint (e.g. out/last.pt of a stopped run), built by `build(config dict)`, written
    by `save_model(path, model, **meta)` as a small shippable file; returns the model."""
    model, ckpt = checkpoint.load_model(run_checkpoint, fmt, f"{what} run", "pass a run's last.pt", build, "ema")
    save_model(path, model.eval(), **{k: ckpt[k] for k in ("step", "loop_config", "task_config") if k in ckpt})
    return model


def add_loop_arguments(p, steps: int, batch: int, lr: float | None, val_every: int, threads: int = 2,  # noqa: ANN001
                       save_every: int = 50, lr_help: str | None = None) -> None:
    """The options every `foley train <model>` has (a LoopConfig's, plus --device and --resume)."""
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--lr", type=float, default=lr, help=lr_help)
    p.add_argument("--threads", type=int, default=threads, help="CPU threads per process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=save_every)
    p.add_argument("--val-every", type=int, default=val_every)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from out/last.pt")


def loop_config(a, **fixed: Any) -> LoopConfig:  # noqa: ANN001
    """The LoopConfig of parsed `add_loop_arguments` options; `fixed` sets what a model does not expose (or overrides)."""
    opts = dict(steps=a.steps, batch=a.batch, lr=a.lr, threads=a.threads, seed=a.seed, save_every=a.save_every,
                val_every=a.val_every)
    return LoopConfig(**(opts | fixed))


def resume_configs(out: str | Path, task_fmt: str) -> tuple[dict, dict, dict]:
    """(loop config, task config, model config) dicts saved in out/last.pt, for rebuilding a task on resume."""
    ckpt = load_run(Path(out) / "last.pt", task_fmt)
    return ckpt["loop_config"], ckpt["task_config"], ckpt["config"]


def with_steps(lc_saved: dict, steps: int) -> LoopConfig:
    """The saved loop config with a new step count (the one thing a resume may change)."""
    return replace(LoopConfig(**lc_saved), steps=steps)
