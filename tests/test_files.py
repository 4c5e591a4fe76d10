"""Atomic outputs: SIGTERM cleans up like an error, and a killed writer's temporary is swept by the next run."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from foley.errors import FoleyError
from foley.files import atomic_output, refuse_overwriting, sweep_stale

ROOT = Path(__file__).resolve().parents[1]


def test_sigterm_inside_an_atomic_write_leaves_no_temporary_and_no_target(tmp_path):
    script = (
        "import os, signal, sys\n"
        "from foley.errors import Terminated\n"
        "from foley.files import atomic_output\n"
        "from foley.interrupts import handler\n"
        "signal.signal(signal.SIGTERM, handler)\n"
        "try:\n"
        "    with atomic_output(sys.argv[1]) as tmp:\n"
        "        tmp.write_bytes(b'x' * 100000)\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        for _ in range(10 ** 8): pass\n"
        "except Terminated:\n"
        "    sys.exit(143)\n")
    target = tmp_path / "out.wav"
    r = subprocess.run([sys.executable, "-c", script, str(target)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       capture_output=True, timeout=60)
    assert r.returncode == 143, r.stderr
    assert list(tmp_path.iterdir()) == []  # neither the target nor a hidden .part file


def test_a_killed_writers_temporary_is_swept_and_a_live_ones_kept(tmp_path):
    target = tmp_path / "clip.wav"
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that no longer runs
    stale = tmp_path / f".clip.pid{proc.pid}.abc.part.wav"
    live = tmp_path / f".clip.pid{os.getpid()}.def.part.wav"
    other = tmp_path / f".other.pid{proc.pid}.ghi.part.wav"
    for p in (stale, live, other):
        p.write_bytes(b"half")
    assert sweep_stale(target) == [stale]
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and live.exists() and other.exists() and not stale.exists()


def test_refuse_overwriting_compares_files_not_names(tmp_path):
    a = tmp_path / "a.wav"
    a.write_bytes(b"data")
    os.link(a, tmp_path / "hard.wav")
    with pytest.raises(FoleyError, match="same file"):
        refuse_overwriting({"input": a}, {"output": tmp_path / "hard.wav"})
    with pytest.raises(FoleyError, match="same file"):
        refuse_overwriting({"input": a}, {"output": tmp_path / "sub" / ".." / "a.wav"})
    refuse_overwriting({"input": a, "track": "motion"}, {"output": tmp_path / "b.wav", "plot": None})  # fine


def test_outputs_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "o.json") as tmp:
            tmp.write_text("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "o.json").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("frame", ["-3", "99999999999"])
def test_a_csv_frame_index_out_of_range_is_refused_not_wrapped(tmp_path, frame):
    from foley.tracks import TrackError, load_tracks

    p = tmp_path / "t.csv"
    p.write_text(f"# fps=25\nframe,x\n0,0.1\n2,0.2\n{frame},0.9\n")
    with pytest.raises(TrackError, match="out of range"):
        load_tracks(p)
