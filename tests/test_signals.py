"""Signals mid-run through the CLI (hardening issue): SIGTERM and SIGINT leave nothing behind, SIGKILL leaves
nothing at the target, and the next run sweeps the killed run's temporary."""
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

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
        pytest.fail(f"signal {sig!r} went unheard: the roundtrip was still running 45 s later")
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
