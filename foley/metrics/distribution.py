"""Distribution metrics of generated audio against references, on any embedding and class posteriors.

Fréchet distance (Heusel et al. 2017, as FAD/FD-PaSST), MMD with KID's cubic polynomial kernel
(Bińkowski et al. 2018, unbiased), paired KL(reference || generated) of class posteriors (av-benchmark's
KL), Inception Score (Salimans et al. 2016), and the CLAP score (mean text-audio cosine).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import linalg

EPS = 1e-8


def _rows(x: np.ndarray, what: str, least: int = 2) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < least:
        raise ValueError(f"{what}: need at least {least} rows of features, got shape {x.shape}")
    return x


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2) of Gaussians fitted to (N, D) and (M, D) features."""
    a, b = _rows(a, "frechet"), _rows(b, "frechet")
    mu, nu = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # fewer clips than dimensions make singular covariances: handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sa @ sb)
    if not np.isfinite(covmean).all():  # near-singular product: regularise as pytorch-fid does
        off = np.eye(sa.shape[0]) * 1e-6
        covmean = linalg.sqrtm((sa + off) @ (sb + off))
    covmean = np.real(covmean)
    return float(max(0.0, ((mu - nu) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * np.trace(covmean)))


def mmd(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD^2 with the kernel k(x, y) = (x.y / D + 1)^3 (KID's), on (N, D) and (M, D) features."""
    a, b = _rows(a, "mmd"), _rows(b, "mmd")
    d = a.shape[1]
    k = lambda x, y: (x @ y.T / d + 1.0) ** 3  # noqa: E731
    kaa, kbb, kab = k(a, a), k(b, b), k(a, b)
    n, m = len(a), len(b)
    return float((kaa.sum() - np.trace(kaa)) / (n * (n - 1)) + (kbb.sum() - np.trace(kbb)) / (m * (m - 1))
                 - 2 * kab.mean())


def kl_paired(p_ref: np.ndarray, p_gen: np.ndarray) -> np.ndarray:
    """(N,) KL(p_ref || p_gen) of each pair of (N, C) class posteriors, in nats."""
    p, q = np.clip(np.asarray(p_ref, np.float64), EPS, 1), np.clip(np.asarray(p_gen, np.float64), EPS, 1)
    p, q = p / p.sum(1, keepdims=True), q / q.sum(1, keepdims=True)
    return (p * (np.log(p) - np.log(q))).sum(1)


def inception_score(p: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))) of (N, C) posteriors: high when each clip is confidently one of many classes."""
    p = np.clip(np.asarray(p, np.float64), EPS, 1)
    p = p / p.sum(1, keepdims=True)
    marginal = p.mean(0, keepdims=True)
    return float(math.exp((p * (np.log(p) - np.log(marginal))).sum(1).mean()))


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) cosine of each row pair of (N, D) arrays (the CLAP score of audio and caption embeddings)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + EPS)
