"""FD, MMD, paired KL, Inception Score and cosine against values worked out by hand."""
import math

import numpy as np
import pytest

from foley.metrics.distribution import cosine, frechet, inception_score, kl_paired, mmd


def test_frechet_of_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(0)
    d = 4
    a = rng.standard_normal((20000, d))
    b = 2 * rng.standard_normal((20000, d)) + 1.5  # cov 4I, mean 1.5
    # ||mu||^2 + tr(I + 4I - 2 * 2I) = 4 * 1.5^2 + 4
    assert frechet(a, b) == pytest.approx(4 * 2.25 + 4, rel=0.03)
    assert frechet(a, a) == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError):
        frechet(a[:1], b)


def test_mmd_is_near_zero_for_one_distribution_and_grows_with_the_shift():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((400, 8)), rng.standard_normal((400, 8))
    same, near, far = mmd(a, b), mmd(a, b + 0.3), mmd(a, b + 1.0)
    assert abs(same) < 0.02
    assert far > near > 5 * abs(same)


def test_kl_paired_and_inception_score_values():
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    q = np.array([[0.5, 0.5], [0.5, 0.5]])
    assert kl_paired(p, q) == pytest.approx([math.log(2), 0.0], abs=1e-6)
    eye = np.eye(5)
    assert inception_score(np.repeat(eye, 3, axis=0)) == pytest.approx(5.0, rel=1e-4)  # confident, all classes
    assert inception_score(np.tile(eye[:1], (10, 1))) == pytest.approx(1.0, abs=1e-4)  # one class only
    assert inception_score(np.full((10, 5), 0.2)) == pytest.approx(1.0, abs=1e-6)  # never confident


def test_cosine_of_rows():
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [-1.0, -1.0]])
    assert cosine(a, b) == pytest.approx([1.0, -1.0])
