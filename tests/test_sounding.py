"""foley.models.sounding (where the object heard is, per frame), its task (foley.train.sounding) and foley.steer."""
import math

import numpy as np
import torch

from foley.metrics import audio_position, position_bin
from foley.models.sounding import SoundingBatch, SoundingConfig, SoundingDetector, load_sounding, save_sounding
from foley.steer import frame_gains, steer

SMALL = SoundingConfig(size=32, channels=(8, 16, 16), hidden=16, reach=2)


def hopping(b, t, gen):
    """Two squares that stay put at random columns, one hopping (the one heard): frames (B, T, 3, 32, 32) and the
    hopping one's centre x per frame (B, T)."""
    frames = torch.zeros(b, t, 3, 32, 32, dtype=torch.uint8)
    x = torch.empty(b, t)
    for i in range(b):
        cols = torch.randperm(3, generator=gen)[:2] * 11  # two of three places: 0, 11, 22 (left, middle, right)
        hop = int(torch.randint(0, 2, (1,), generator=gen))
        for k in range(t):
            for s, col in enumerate(cols.tolist()):
                row = 12 + (4 if s == hop and k % 2 else 0)
                frames[i, k, :, row:row + 8, col:col + 8] = 255
        x[i] = (int(cols[hop]) + 4) / 16 - 1  # the square's centre in frame coordinates
    return frames, x


def test_targets_name_the_column_and_the_offset_in_it():
    m = SoundingDetector(SMALL)  # grid 4: columns of width 0.5
    cls, off = m.targets(torch.tensor([[-1.0, -0.2, 0.3, 0.99, 1.7, math.nan]]))
    assert cls.tolist() == [[0, 1, 2, 3, 3, 4]]  # 4 = none; off-screen on the right goes to the last column
    assert torch.allclose(off[:, :5], torch.tensor([[-0.5, 0.1, 0.1, 0.48, 0.5]]), atol=1e-6)  # none: unused


def test_the_detector_learns_which_of_two_objects_sounds_and_where():
    """Trained on its own loss, the detector names the hopping square's place (its bin far above the 0.5 of a
    random square) and its x within a tenth of the frame."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    m = SoundingDetector(SMALL)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        frames, x = hopping(8, 8, gen)
        loss = m.loss(SoundingBatch(frames, x))["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    frames, x = hopping(32, 8, gen)
    loc = m.eval().locate(frames)
    right = position_bin(loc.x.numpy()) == position_bin(x.numpy())
    assert right.mean() > 0.9
    assert np.median(np.abs(loc.x.numpy() - x.numpy())) < 0.1
    assert loc.confidence.shape == x.shape and float(loc.heard.min()) > 0.5  # an object is heard in every frame


def test_locate_in_chunks_equals_whole_and_checkpoint_round_trips(tmp_path):
    torch.manual_seed(1)
    m = SoundingDetector(SMALL).eval()
    frames, _ = hopping(1, 30, torch.Generator().manual_seed(1))
    whole, chunked = m.locate(frames, chunk=1000), m.locate(frames, chunk=7)
    assert torch.allclose(whole.confidence, chunked.confidence, atol=1e-5)
    assert torch.allclose(whole.x, chunked.x, atol=1e-5) and torch.allclose(whole.heard, chunked.heard, atol=1e-5)
    save_sounding(tmp_path / "d.pt", m)
    back = load_sounding(tmp_path / "d.pt")
    assert back.cfg == SMALL and torch.allclose(back.locate(frames).confidence, whole.confidence)


def test_steer_moves_each_named_frame_to_its_position_and_leaves_the_rest():
    rng = np.random.default_rng(0)
    sr, fps = 48000, 25
    y = (rng.normal(size=(2, sr * 2)) * np.array([[1.0], [0.3]])).astype(np.float32)  # sits at the left
    x = np.full(50, np.nan)
    x[10:30], x[30:40] = 0.6, -0.8
    out = steer(y, x, np.ones(50), sr, fps)
    before, after = audio_position(y, sr, fps).pan, audio_position(out, sr, fps).pan
    assert np.allclose(after[11:29], 0.6, atol=0.01) and np.allclose(after[31:39], -0.8, atol=0.01)
    hop = sr // fps
    assert np.array_equal(out[:, : 9 * hop], y[:, : 9 * hop])  # frames without an x are untouched
    assert np.array_equal(out[:, 41 * hop:], y[:, 41 * hop:])
    e = lambda a, k: float(np.square(a[:, k * hop:(k + 1) * hop], dtype=np.float64).sum())  # noqa: E731
    assert all(math.isclose(e(out, k), e(y, k), rel_tol=1e-2) for k in (15, 35))  # each frame keeps its energy (ramps: ~0.2%)
    half = steer(y, x, np.full(50, 0.5), sr, fps)
    assert np.allclose(audio_position(half, sr, fps).pan[15], (before[15] + 0.6) / 2, atol=0.01)


def test_steer_gains_are_capped_and_silence_is_left():
    g = frame_gains(np.array([[1.0, 1e-9, 0.0], [1e-6, 1.0, 0.0]]), np.array([1.0, -1.0, 0.5]), np.ones(3),
                    max_gain_db=12.0)
    assert g.max() <= 10 ** (12 / 20) + 1e-9
    assert g[:, 2].tolist() == [1.0, 1.0]  # a silent frame has no position to move


def test_a_sounding_run_trains_and_validates(tmp_path):
    """Two steps through the shared loop on a tiny pool of world clips: log, validation columns and export."""
    import csv

    from foley.train.loop import LoopConfig
    from foley.train.sounding import SoundingTask, SoundingTaskConfig, make_pool, train

    pool = make_pool(3, "train", 0, 1.0, 32, progress=False)
    assert pool.frames.shape == (3, 25, 3, 32, 32) and pool.x.shape == (3, 25)
    tc = SoundingTaskConfig(clips=3, val_clips=3, seconds=1.0, crop=8, workers=1)
    task = SoundingTask(tc, SMALL, pool=pool, val=pool, folder=tmp_path)
    path = train(task, LoopConfig(steps=2, batch=2, warmup=1, val_every=2, save_every=1), tmp_path / "run")
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert rows[-1]["step"] == "2" and 0 <= float(rows[-1]["val_acc"]) <= 1
    assert load_sounding(path).cfg == SMALL
    from foley.train.sounding import export_run

    again = export_run(tmp_path / "run" / "last.pt", tmp_path / "again.pt")  # a stopped run's EMA, shippable
    frames = pool.frames[:1]
    assert torch.allclose(again.locate(frames).x, load_sounding(path).locate(frames).x)


def test_batches_mirror_frames_and_x_together():
    from foley.train.sounding import Pool, batch_at

    frames = torch.zeros(1, 10, 3, 8, 8, dtype=torch.uint8)
    frames[..., :2] = 255  # a bar at the left edge
    pool = Pool(frames, torch.full((1, 10), -0.8), torch.zeros(1, 10), torch.ones(1, dtype=torch.long))
    seen = set()
    for step in range(20):
        b = batch_at(pool, step, 0, 1, 10, 0)
        left = bool(b.frames[0, 0, 0, 0, 0])
        assert (float(b.x[0, 0]) < 0) == left  # the bar and the x stay on the same side
        seen.add(left)
    assert seen == {True, False}


def test_a_camera_move_carries_the_object_and_its_x_together():
    """A bright column at x = 0.5, zoomed 1.5x and shifted by -0.25: the picture's column and the new x agree."""
    from foley.train.sounding import camera_move

    frames = torch.zeros(3, 3, 32, 32, dtype=torch.uint8)
    frames[..., 23:25] = 255  # pixel centres 23.5 -> x = 23.5 / 16 - 1 ~ 0.47
    x = torch.full((3,), 23.5 / 16 - 1)
    out, x2 = camera_move(frames, x, np.array([1.0, 1.5]), np.array([[0.0, 0.0], [-0.25, 0.0]]))
    assert torch.equal(out[0], frames[0]) and math.isclose(float(x2[0]), float(x[0]), abs_tol=1e-6)
    cols = out[-1, 0].float().mean(0)  # (32,) brightness per column
    seen = float((cols * (torch.arange(32) + 0.5)).sum() / cols.sum()) / 16 - 1
    assert math.isclose(float(x2[-1]), 1.5 * float(x[0]) - 0.25, abs_tol=1e-6)
    assert abs(seen - float(x2[-1])) < 0.05


def test_bad_detector_sizes_are_one_line_errors(tmp_path, capsys):
    from foley.cli import main

    for bad in (["--channels", "10,20"], ["--channels", "a,b"], ["--channels", "16,32,48,64,80,96,112"],
                ["--size", "0"], ["--size", "-64"], ["--hidden", "0"], ["--warp", "-1"], ["--warp", "nan"]):
        code = main(["train", "sounding", *bad, "--out", str(tmp_path / "run")])
        err = capsys.readouterr().err
        assert code != 0 and bad[0] in err and "Traceback" not in err, (bad, err)
    assert not (tmp_path / "run").exists()


def test_a_pool_made_by_two_workers_is_the_one_made_in_process():
    from foley.train.sounding import make_pool

    a, b = (make_pool(4, "train", 0, 1.0, 32, workers=w, progress=False) for w in (2, 1))
    assert torch.equal(a.frames, b.frames) and torch.equal(a.objects, b.objects)
    assert torch.equal(a.x.isnan(), b.x.isnan()) and torch.allclose(a.x.nan_to_num(), b.x.nan_to_num())
