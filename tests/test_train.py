"""The shared training loop with the codec task: loss falls, resume after SIGKILL continues with the same data order."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from foley.models.codec import Codec, CodecConfig, LossWeights, load_codec
from foley.train.codec import CodecTask, CodecTaskConfig, batch_at, run_codec
from foley.train.loop import LoopConfig, TrainError, build, train_step

torch.set_num_threads(1)
SMALL = CodecConfig(width=32, enc_blocks=1, dec_blocks=1, tonal=True)
LOOP = dict(batch=2, val_every=1000, save_every=1, warmup=2)
TASK = dict(frames=4, pool=2, tonal_pool=1, val_clips=1, weights=LossWeights(stft_items=1))
ROOT = Path(__file__).resolve().parents[1]


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["ema"]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_batches_are_a_function_of_step_and_rank():
    pool = torch.randn(3, 2, 9600)
    a, b = batch_at(pool, 5, 0, 4, 1920, 0), batch_at(pool, 5, 0, 4, 1920, 0)
    assert torch.equal(a, b) and not torch.equal(a, batch_at(pool, 6, 0, 4, 1920, 0))
    assert not torch.equal(a, batch_at(pool, 5, 1, 4, 1920, 0))


def test_a_short_overfit_run_brings_the_loss_down(tmp_path):
    """120 steps on one clip: the loss of a fixed batch must fall well below the untrained model's."""
    lc = LoopConfig(steps=120, lr=3e-3, **{**LOOP, "save_every": 120})
    tc = CodecTaskConfig(**{**TASK, "pool": 1, "tonal_pool": 0})
    run_codec(lc, tc, tmp_path / "fit", codec_cfg=SMALL)
    task = CodecTask(tc, SMALL)
    task.prepare(torch.device("cpu"), 0)
    x = torch.cat([task.batch(s, 0, 2, torch.device("cpu")) for s in range(4)])  # 8 crops of the clip

    def loss(codec):
        torch.manual_seed(0)
        with torch.no_grad():
            return float(codec.loss(x, w=tc.weights)["total"])

    torch.manual_seed(lc.seed)
    before = loss(Codec(SMALL))  # the run's own initialisation
    trained = Codec(SMALL)
    trained.load_state_dict(torch.load(tmp_path / "fit" / "last.pt", weights_only=True)["model"])
    assert loss(trained) < 0.8 * before, (before, loss(trained))  # 4.1 -> 3.1 here; frozen weights stay at 4.1


def test_resume_continues_exactly(tmp_path):
    tc = CodecTaskConfig(**TASK)
    run_codec(LoopConfig(steps=6, **LOOP), tc, tmp_path / "straight", codec_cfg=SMALL)
    run_codec(LoopConfig(steps=3, **LOOP), tc, tmp_path / "split", codec_cfg=SMALL)
    with pytest.raises(TrainError, match="--resume"):
        run_codec(LoopConfig(steps=6, **LOOP), tc, tmp_path / "split", codec_cfg=SMALL)
    run_codec(LoopConfig(steps=6, **LOOP), CodecTaskConfig(), tmp_path / "split", resume=True)  # configs from last.pt
    a, b = _weights(tmp_path / "straight" / "last.pt"), _weights(tmp_path / "split" / "last.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0, msg=k)
    steps = [int(r["step"]) for r in _rows(tmp_path / "split" / "log.csv") if int(r["step"]) >= 0]
    assert steps == sorted(set(steps)) and steps[-1] == 6
    ckpt = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    assert ckpt["loop_config"]["steps"] == 6 and CodecConfig(**ckpt["config"]) == SMALL
    assert load_codec(tmp_path / "split" / "codec.pt").cfg == SMALL
    assert any((tmp_path / "split" / "figures").iterdir())


def _cli(out: Path, steps: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "foley.train.codec", "--preset", "v1_tiny", "--out", str(out), "--steps", str(steps),
            "--batch", "2", "--frames", "4", "--pool", "2", "--tonal-pool", "1", "--val-clips", "1",
            "--val-every", "1000", "--save-every", "1", *extra]


def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(_cli(tmp_path / "straight", 16), check=True, env=env, capture_output=True, cwd=ROOT)
    proc = subprocess.Popen(_cli(tmp_path / "killed", 16), env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last, t0, step = tmp_path / "killed" / "last.pt", time.time(), 0
    while step < 4 and proc.poll() is None and time.time() - t0 < 300:  # kill once a few steps are saved
        time.sleep(0.05)
        try:
            step = torch.load(last, weights_only=True)["step"] if last.exists() else 0
        except Exception:  # the file is being replaced: read it again
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(last, weights_only=True)["step"]
    assert proc.returncode == -signal.SIGKILL and 4 <= killed_at < 16  # the kill landed mid-run
    subprocess.run(_cli(tmp_path / "killed", 16, "--resume"), check=True, env=env, capture_output=True, cwd=ROOT)
    a, b = _weights(tmp_path / "straight" / "last.pt"), _weights(last)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0, msg=k)
    steps = [int(r["step"]) for r in _rows(tmp_path / "killed" / "log.csv") if int(r["step"]) >= 0]
    assert steps == sorted(set(steps)) and steps[-1] == 16


def test_bad_requests_are_clear(tmp_path):
    with pytest.raises(TrainError, match="unknown preset"):
        CodecTaskConfig(preset="huge")
    with pytest.raises(TrainError, match="steps"):
        LoopConfig(steps=0)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_bytes(b"garbage")
    with pytest.raises(TrainError, match="cannot resume"):
        run_codec(LoopConfig(steps=2, **LOOP), CodecTaskConfig(**TASK), tmp_path / "run", resume=True)


def _task(cfg: CodecConfig = SMALL, **kw) -> CodecTask:
    """A codec task on random clips (no world generation)."""
    task = CodecTask(CodecTaskConfig(**{**TASK, **kw}), cfg)
    task.pool = 0.1 * torch.randn(4, 2, 4 * cfg.hop, generator=torch.Generator().manual_seed(0))
    task.device = torch.device("cpu")
    return task


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    """Two optimiser steps of the real loop on `rank` of `world` gloo processes; saves raw weights."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    lc, task = LoopConfig(**LOOP), _task()
    run = build(task, lc, torch.device("cpu"), world, rank)
    for step in range(2):
        torch.manual_seed(step * 10 + rank)
        train_step(run, task, task.batch(step, rank, lc.batch, torch.device("cpu")), lc, torch.device("cpu"))
    torch.save(run.raw.state_dict(), Path(out) / f"rank{rank}_of{world}.pt")
    if world > 1:
        dist.destroy_process_group()


def test_ddp_on_cpu_keeps_replicas_identical_and_uses_every_rank(tmp_path):
    """torchrun-style DDP (gloo on CPU): ranks see different batches yet end with the same weights,
    and those differ from a lone process trained on rank 0's batches (rank 1's gradients count)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    _ddp_worker(0, 1, port, str(tmp_path))
    r0, r1, alone = (torch.load(tmp_path / n, weights_only=True) for n in ("rank0_of2.pt", "rank1_of2.pt", "rank0_of1.pt"))
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    assert any(not torch.allclose(r0[k], alone[k]) for k in r0 if r0[k].is_floating_point())


def test_losses_under_bf16_autocast_match_float32_and_backpropagate():
    """The AMP path (bf16 autocast, as on CUDA) through codec, DSP (tonal path included), every loss and the
    GAN: finite gradients and losses within a few % of float32 (FFTs and complex cues stay in float32)."""
    torch.manual_seed(0)
    task = _task(adv=True, adv_start=0)
    lc = LoopConfig(**LOOP)
    run = build(task, lc, torch.device("cpu"), 1, 0)
    x = task.batch(0, 0, 2, torch.device("cpu"))
    got = {}
    for amp in (False, True):
        run.raw.zero_grad()
        torch.manual_seed(1)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            parts, out = task.loss(run.model, run.raw, x, 0)
        parts["total"].backward()
        assert out.audio.dtype == torch.float32
        assert all(torch.isfinite(p.grad).all() for p in run.raw.parameters() if p.grad is not None)
        got[amp] = {k: float(v.detach()) for k, v in parts.items()}
    for k in ("stft", "power", "band", "total"):
        assert abs(got[True][k] - got[False][k]) < 0.05 * abs(got[False][k]), (k, got)
