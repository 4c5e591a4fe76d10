"""Signals mid-run through the CLI (hardening issue): SIGTERM and SIGINT leave nothing behind, SIGKILL leaves
nothing at the target, and the next run sweeps the killed run's temporary."""
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from foley.errors import Terminated

# The CLI with its codec blocks held back (both streams the roundtrip may pick): 1 s before the first, which opens
# the temporary, then 30 s before each later one. The signal interrupts the wait, so the test stays short; a signal
# that went unheard would show as a timeout, never as a write that happened to end first (CI saw one exit 0 with 1 s).
_SLOW_CLI = """
import sys, time
import foley.roundtrip as r
def slowed(fast):
    def slow(*args, **kwargs):
        for i, block in enumerate(fast(*args, **kwargs)):
            time.sleep(1.0 if i == 0 else 30.0)
            yield block
    return slow
r.codec_blocks, r.offline_blocks = slowed(r.codec_blocks), slowed(r.offline_blocks)  # causal and offline codecs
from foley.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _start(tmp_path):
    src = tmp_path / "long.wav"
    if not src.exists():
        sf.write(src, 0.1 * np.random.default_rng(0).standard_normal((48000 * 30, 2)).astype(np.float32), 48000)
    out = tmp_path / "out.wav"
    # SIGINT back to its default in the child: a test run launched in the background (`cmd &`) inherits SIGINT
    # ignored, and Python then installs no KeyboardInterrupt handler, so the child would not hear it at all.
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_CLI, "codec", "roundtrip", str(src), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not list(tmp_path.glob(".out*part*")):  # wait until it is writing its temporary
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"the roundtrip ended before writing: {proc.communicate()[1]}")
        time.sleep(0.05)
    return proc, out


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_write_leaves_nothing_behind(tmp_path, sig, code):
    proc, out = _start(tmp_path)
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=45)
    except subprocess.TimeoutExpired:
        proc.kill()
        err = proc.communicate()[1]
        pytest.fail(f"signal {sig!r} went unheard: the roundtrip was still running 45 s later; stderr: {err[-800:]}")
    assert proc.returncode == code and "Traceback" not in err
    assert not out.exists() and list(tmp_path.glob(".*part*")) == []


def test_sigkill_leaves_nothing_at_the_target_and_the_next_run_sweeps_it(tmp_path):
    proc, out = _start(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    assert not out.exists() and list(tmp_path.glob(".out*part*"))  # the dead run's temporary is left...
    r = subprocess.run([sys.executable, "-m", "foley", "codec", "roundtrip", str(tmp_path / "long.wav"), str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and out.exists()
    assert list(tmp_path.glob(".*part*")) == []  # ...and swept by the next run into the same place


def _swallowed(sig):
    """The CLI's handler run where its exception is dropped, as in a finalizer or a weakref callback."""
    from foley import interrupts

    try:
        interrupts.handler(sig, None)
    except (KeyboardInterrupt, Terminated):
        pass


@pytest.mark.parametrize("sig,exc", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_a_signal_a_finalizer_swallowed_still_stops_the_write(tmp_path, sig, exc):
    """Python runs a handler in whatever code is running; in a finalizer its exception is printed and dropped
    (seen here: a roundtrip wrote its whole file after SIGINT). The next block written raises it again."""
    from foley import interrupts, io

    def blocks():
        yield np.zeros((2, 480), np.float32)
        _swallowed(sig)
        yield np.zeros((2, 480), np.float32)

    try:
        with pytest.raises(exc):
            io.write_audio(tmp_path / "a.wav", blocks(), 48000)
    finally:
        interrupts.clear()
    assert list(tmp_path.iterdir()) == []


def test_the_cli_handles_both_signals_keeps_an_ignored_ctrl_c_ignored_and_restores_handlers(monkeypatch):
    import foley.cli as cli
    from foley import interrupts
    from foley.errors import FoleyError

    seen = []

    def record(args):
        seen.append((signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)))
        raise FoleyError("stop here")

    monkeypatch.setattr(cli, "_check_paths", record)
    argv = ["codec", "roundtrip", "in.wav", "out.wav"]
    # a foreground run's Ctrl-C, whatever this process was started with (a shell's background job ignores SIGINT)
    started_with = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _cli_handlers(cli, interrupts, argv, record, seen, monkeypatch)
    finally:
        signal.signal(signal.SIGINT, started_with)


def _cli_handlers(cli, interrupts, argv, record, seen, monkeypatch):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert cli.main(argv) == 1
    assert seen[-1] == (interrupts.handler, interrupts.handler)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    _swallowed(signal.SIGTERM)  # a signal noted and dropped in an earlier run in this process...
    monkeypatch.setattr(cli, "_check_paths", lambda args: interrupts.check() or record(args))
    assert cli.main(argv) == 1  # ...does not stop this one (it would exit 143)
    monkeypatch.setattr(cli, "_check_paths", lambda args: interrupts.handler(signal.SIGINT, None))
    assert cli.main(argv) == 130 and interrupts._pending == []  # an interrupted run leaves nothing noted
    monkeypatch.setattr(cli, "_check_paths", record)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job: Ctrl-C at the terminal is not for it
    try:
        assert cli.main(argv) == 1
        assert seen[-1] == (signal.SIG_IGN, interrupts.handler)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before[0])


def test_a_stream_stopped_by_a_signal_can_still_keep_what_it_made():
    """foley stream keeps the audio made before Ctrl-C (muxing it into a video output): acting on the signal
    clears it, so that muxing is not stopped by it a second time."""
    from foley import interrupts
    from foley.cli.stream import run_stream

    class Reactor:
        fps = 25

        def push(self, frame):
            return np.zeros((2, 1920), np.float32)

    def frames():
        yield 0
        yield 0
        interrupts.handler(signal.SIGINT, None)

    def swallowed_midway():  # the signal lands in a finalizer between frames 2 and 3, and is dropped
        yield from (0, 0)
        _swallowed(signal.SIGINT)
        yield from (0, 0, 0)

    for source in (frames, swallowed_midway):
        got = []
        try:
            lat, stop = run_stream(Reactor(), source(), got.append, realtime=False)
            assert isinstance(stop, KeyboardInterrupt) and len(got) == 2 and len(lat) == 2, source.__name__
            interrupts.check()
        except KeyboardInterrupt:
            pytest.fail("the signal was still pending after the stream acted on it: keeping its audio would stop")
        finally:
            interrupts.clear()


def test_training_stops_on_a_signal_a_finalizer_swallowed(tmp_path):
    """The training loop checks for a dropped signal before each step (the world's shard loop after each shard)."""
    from foley import interrupts
    from foley.models.codec import CodecConfig, LossWeights
    from foley.train.codec import CodecTaskConfig, run_codec
    from foley.train.loop import LoopConfig

    small = CodecConfig(width=32, enc_blocks=1, dec_blocks=1)
    tc = CodecTaskConfig(frames=4, pool=1, tonal_pool=0, val_clips=1, weights=LossWeights(stft_items=1))
    lc = LoopConfig(steps=3, batch=2, val_every=1000, save_every=1, warmup=1)
    _swallowed(signal.SIGTERM)
    try:
        with pytest.raises(Terminated):
            run_codec(lc, tc, tmp_path / "run", codec_cfg=small)
    finally:
        interrupts.clear()
    assert not (tmp_path / "run" / "last.pt").exists()  # stopped before its first step
    run_codec(lc, tc, tmp_path / "run2", codec_cfg=small)  # and once cleared, the same run trains
    assert (tmp_path / "run2" / "last.pt").exists()


_POOLS = """
import multiprocessing as mp, signal, sys
from foley import interrupts
signal.signal(signal.SIGTERM, interrupts.handler)  # as the CLI sets it
def pools():
    for _ in range(10):
        with interrupts.forking_workers() as init:
            pool = mp.get_context("fork").Pool(2, initializer=init)
        try:
            assert list(pool.imap(abs, [1, -2, 3])) == [1, 2, 3]
            assert pool.apply(signal.getsignal, (signal.SIGINT,)) == signal.SIG_IGN  # Ctrl-C is the parent's
        finally:
            pool.terminate()  # how a pool stops its workers: SIGTERM
            pool.join()
pools()
import threading  # the CLI may run off the main thread: pools made there work as well
t = threading.Thread(target=pools)
t.start()
t.join()
print(signal.getsignal(signal.SIGTERM) is interrupts.handler, signal.pthread_sigmask(signal.SIG_BLOCK, []) == set())
"""


def test_workers_forked_under_the_cli_handlers_stop_quietly():
    """The latent cache's builders are forked from the CLI: with its handlers they printed a `Terminated` traceback
    when the pool stopped them, and the pool could wait forever (seen here on 1 `foley train dit` in 4; 8 tracebacks
    and a hang in 10 pools without `forking_workers`). The parent keeps its own handler."""
    done = subprocess.run([sys.executable, "-c", _POOLS], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "Terminated" not in done.stderr
    assert done.stdout.strip() == "True True"  # its handler, and no signal left held back
