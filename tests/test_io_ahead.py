"""Reading video for less: frames decoded ahead in a thread (`iter_frames(..., ahead=N)`: the same frames,
errors where they were, no decoder left running when the caller stops early), and a probe remembered while
its file is unchanged."""
import threading

import numpy as np
import pytest

from foley import io
from foley.errors import MediaError


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("ahead") / "ramp.mp4"
    io.write_video(path, (np.full((48, 64, 3), 4 * i, np.uint8) for i in range(60)), fps=25)
    return path


def decoders() -> int:
    return sum(t.name == "foley-decode" for t in threading.enumerate())


def test_frames_decoded_ahead_are_the_same_frames(clip):
    plain = list(io.iter_frames(clip, size=(32, 24)))
    ahead = list(io.iter_frames(clip, size=(32, 24), ahead=4))
    assert len(ahead) == len(plain) == 60
    for a, b in zip(plain, ahead):
        np.testing.assert_array_equal(a, b)
    assert decoders() == 0


def test_stopping_early_ends_the_decoder(clip):
    frames = io.iter_frames(clip, ahead=2)
    first = [next(frames) for _ in range(3)]
    frames.close()  # the caller stops (a break, an error)
    assert len(first) == 3 and decoders() == 0


def test_a_decoding_error_reaches_the_caller_after_the_good_frames():
    from foley.blocks import ahead as _decoded_ahead

    closed = []

    def decoder():
        try:
            for i in range(5):
                yield np.full((2, 2, 3), i, np.uint8)
            raise MediaError("clip.mp4 is damaged: its video stops decoding at 0.20 s")
        finally:
            closed.append(True)

    got = []
    with pytest.raises(MediaError, match="stops decoding at 0.20 s"):
        for f in _decoded_ahead(decoder(), 2):
            got.append(int(f[0, 0, 0]))
    assert got == [0, 1, 2, 3, 4] and closed == [True] and decoders() == 0


def test_probe_is_remembered_only_while_the_file_is_unchanged(tmp_path):
    path = tmp_path / "clip.mp4"
    io.write_video(path, (np.zeros((48, 64, 3), np.uint8) for _ in range(60)), fps=25)
    first = io.probe(path)
    assert io.probe(str(path)) is first  # the same file: not read again
    io.write_video(path, (np.zeros((48, 64, 3), np.uint8) for _ in range(30)), fps=25)  # replaced
    assert io.probe(path).n_frames == 30 and first.n_frames == 60
    path.unlink()
    with pytest.raises(MediaError):
        io.probe(path)
