"""Onset detection and event matching: exact counts on hand-made clicks and event lists."""
import numpy as np
import pytest

from foley.metrics.sync import match, onsets

SR = 48000


def clicks(times, seconds=3.0, noise=0.003, seed=0):
    rng = np.random.default_rng(seed)
    x = noise * rng.standard_normal(int(seconds * SR))
    for t in times:
        a = int(t * SR)
        n = int(0.08 * SR)
        x[a:a + n] += np.exp(-np.arange(n) / (0.01 * SR)) * rng.standard_normal(n)
    return np.stack([x, x]).astype(np.float32)


def test_onsets_find_each_click_within_ten_ms_and_nothing_in_silence():
    times = [0.31, 0.9, 1.42, 2.05, 2.6]
    found = onsets(clicks(times), SR)
    assert len(found) == len(times)
    assert np.max(np.abs(found - times)) < 0.01
    assert onsets(np.zeros((2, SR)), SR).size == 0


def test_match_counts_precision_recall_and_offset():
    events = np.array([0.5, 1.0, 1.5, 2.0])
    det = np.array([0.52, 1.03, 1.2, 2.3])  # two hits (+20, +30 ms), two misses
    r = match(det, events)
    assert (r.matched, r.precision, r.recall) == (2, 0.5, 0.5)
    assert r.f1 == pytest.approx(0.5)
    assert r.offset_ms == pytest.approx(25.0)
    assert match(det, events, tol=0.5).matched == 4


def test_match_is_one_to_one_and_handles_empty_lists():
    r = match(np.array([0.99, 1.01]), np.array([1.0]))
    assert (r.matched, r.precision, r.recall) == (1, 0.5, 1.0)
    assert match(np.zeros(0), np.zeros(0)).f1 == 1.0  # nothing to find, nothing found
    assert match(np.array([1.0]), np.zeros(0)).f1 == 0.0
    assert match(np.zeros(0), np.array([1.0])).f1 == 0.0


def test_sync_separates_aligned_from_shifted_audio():
    times = np.arange(0.2, 2.8, 0.37)
    assert match(onsets(clicks(times), SR), times).f1 == 1.0
    assert match(onsets(clicks(times + 0.12), SR), times).f1 == 0.0
