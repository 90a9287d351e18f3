"""Accuracy metrics of latency predictions (the paper's plus rank and error statistics)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from .space import Arch, network_ids


def latency_metrics(true_ms: np.ndarray, pred_ms: np.ndarray) -> dict[str, float]:
    """% within 1/5/10 % relative error, Spearman, Kendall tau, MAPE, RMSE, error percentiles."""
    t = np.asarray(true_ms, dtype=np.float64)
    p = np.asarray(pred_ms, dtype=np.float64)
    rel = np.abs(p - t) / t * 100.0
    return {
        "acc_1": float(np.mean(rel <= 1) * 100), "acc_5": float(np.mean(rel <= 5) * 100),
        "acc_10": float(np.mean(rel <= 10) * 100),
        "spearman": float(stats.spearmanr(t, p).statistic) if len(t) > 1 else float("nan"),
        "kendall": float(stats.kendalltau(t, p).statistic) if len(t) > 1 else float("nan"),
        "mape": float(np.mean(rel)), "rmse_ms": float(np.sqrt(np.mean((p - t) ** 2))),
        "err_p50": float(np.percentile(rel, 50)), "err_p90": float(np.percentile(rel, 90)),
        "err_p99": float(np.percentile(rel, 99)),
    }


def within(true_ms: np.ndarray, pred_ms: np.ndarray, bound: float) -> np.ndarray:
    """Which predictions are within ``bound`` (relative, 0.1 = 10 %) of the truth: a mask."""
    return np.abs(np.asarray(pred_ms, dtype=np.float64) / np.asarray(true_ms) - 1) <= bound


def _log_errors(true_ms: np.ndarray, pred_ms: np.ndarray) -> np.ndarray:
    """|log(pred / true)| per cell; a non-positive or missing prediction counts as a 100x miss."""
    p = np.asarray(pred_ms, dtype=np.float64)
    safe = np.where(np.isfinite(p) & (p > 0), p, np.asarray(true_ms) * 1e-2)
    return np.abs(np.log(safe) - np.log(true_ms))


def log_loss(true_ms: np.ndarray, pred_ms: np.ndarray) -> float:
    """Mean absolute log error; non-positive predictions count as a 100x miss."""
    return float(np.mean(_log_errors(true_ms, pred_ms)))


def class_log_loss(archs: Sequence[Arch], true_ms: np.ndarray, pred_ms: np.ndarray) -> float:
    """:func:`log_loss` with each isomorphism class (canonical key) counted once: the
    mean over classes of their cells' mean error. A validation set drawn in whole classes
    (the grouped split) can hold one class of 30 cells among 26-62 classes; per cell, that
    one network would weigh a third of the score."""
    err = _log_errors(true_ms, pred_ms)
    _, inv = np.unique(network_ids(archs), return_inverse=True)
    return float(np.mean(np.bincount(inv, weights=err) / np.bincount(inv)))


METRIC_KEYS = ("acc_1", "acc_5", "acc_10", "spearman", "kendall", "mape", "rmse_ms",
               "err_p50", "err_p90", "err_p99")
