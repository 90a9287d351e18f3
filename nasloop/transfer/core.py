"""The few-shot latency model: per-cell factors shared by every device, one small
embedding per device.

``log L(cell, device) = b_device + F[cell] . w_device``. Pretraining completes the
(cells x devices) matrix of log latencies of many tables (missing cells imputed by a
low-rank fit) and keeps its top singular directions as cell factors ``F``; the devices'
own weights give a prior over ``w``. Adapting to a new device is Bayesian linear
regression of its few measured log latencies on ``F`` under that prior, so 5 cells give
the "typical device" and more cells pull it towards the target. The prior is a mixture:
one component per pretraining device (centred on its own weights) and the population's
Gaussian, each weighted by how well it explains the measured cells, so a device like one
seen before borrows that device's weights, and one like none falls back on the population.
Whether a device pays for
dead ops, and how additive it is, is just one more direction in ``F``: nothing here
knows a device's name.

A second, simpler view rides along: ridge regression of the device's log latencies on the
top principal components of the (unstandardised) pretraining matrix, the penalty chosen by
leave-one-out on the same few cells. It is the "regress on the other tables" baseline,
kept lossy (a few components, not the tables). The two views err differently; from 10
cells on, their average in log space ranks on average at least as well as either (leave
one family out: docs/results.md), though not on every device.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..space import NUM_CELLS, all_archs, connected_indices

#: prior noise = this x the median residual variance of the pretraining devices: a new
#: device is less well explained than the ones the factors were fitted on (chosen on
#: leave-one-family-out: docs/results.md, "Few-shot: transfer")
NOISE_SCALE = 3.0
#: principal components of the pretraining matrix the ridge view regresses on (12 kept
#: nearly all of the full-matrix ridge's gain on leave-one-family-out; 8 kept less)
TABLE_RANK = 12
#: the ridge view's alphas, chosen per device by leave-one-out on its own cells
RIDGE_ALPHAS = np.logspace(-3, 3, 13)
#: each pretraining device's component of the mixture prior has this x the population's
#: covariance (0.1 / 0.25 / 0.5 within 0.001 of mean Spearman on leave-one-family-out;
#: benchmarks/transfer_mixture.py, docs/results.md)
MIXTURE_SPREAD = 0.25
PRIORS = ("mixture", "population")


@dataclass
class FactorModel:
    """What pretraining keeps: cell factors, the prior over device weights, the noise."""

    factors: np.ndarray      # (15625, r) float64: F
    prior_mean: np.ndarray   # (r,): mean device weight
    prior_cov: np.ndarray    # (r, r): covariance of device weights (shrunk)
    noise_var: float         # residual variance of log latency on a pretraining device
    offset_mean: float       # mean of b over pretraining devices
    offset_var: float        # variance of b over pretraining devices
    #: (15625, q) principal components of the centred log-ms matrix (the ridge view); None
    #: in a model saved before the ridge view existed
    table_factors: np.ndarray | None = None
    #: (devices, r) each pretraining device's own weights: the mixture prior's component
    #: means; None in a model saved before the mixture prior existed (population prior only)
    device_weights: np.ndarray | None = None

    @property
    def rank(self) -> int:
        return int(self.factors.shape[1])


@lru_cache(maxsize=1)
def _rich_all() -> np.ndarray:
    from ..predictors.features import rich

    f = rich(list(all_archs()))
    return (f - f.mean(0)) / np.maximum(f.std(0), 1e-9)


def complete_log_matrix(logl: np.ndarray, rank: int, iters: int = 30) -> np.ndarray:
    """Fill NaNs of a (cells x devices) log-latency matrix by iterated low-rank SVD.

    Start: a ridge fit of each device on the cells' op features (so a cell no table
    measured, e.g. a disconnected cell absent from every BRP-NAS table, still gets a value).
    """
    z = logl.copy()
    miss = np.isnan(z)
    if miss.any():
        feats = np.concatenate([_rich_all(), np.ones((NUM_CELLS, 1))], axis=1)
        for d in np.flatnonzero(miss.any(0)):
            obs = ~miss[:, d]
            a = feats[obs]
            coef = np.linalg.solve(a.T @ a + 1e-1 * np.eye(a.shape[1]), a.T @ z[obs, d])
            z[miss[:, d], d] = feats[miss[:, d]] @ coef
        for _ in range(iters):
            mu = z.mean(0)
            u, s, vt = np.linalg.svd(z - mu, full_matrices=False)
            low = (u[:, :rank] * s[:rank]) @ vt[:rank] + mu
            z[miss] = low[miss]
    return z


def cell_features() -> np.ndarray:
    """Additive op features of every cell: one-hot ops (a device that pays for dead ops)
    and one-hot ops on live edges only (a device that skips them), centred."""
    return _cell_features_cached().copy()


@lru_cache(maxsize=1)
def _cell_features_cached() -> np.ndarray:
    from ..predictors.features import onehot

    archs = list(all_archs())
    oh = onehot(archs)
    live = np.array([[1.0 if lv else 0.0 for lv in a.live_edges() for _ in range(5)] for a in archs])
    g = np.concatenate([oh, (oh * live).reshape(len(archs), 6, 5)[:, :, 1:].reshape(len(archs), 24)],
                       axis=1)
    return g - g.mean(0)


def pretrain_factors(logl: np.ndarray, rank: int = 8, shrink: float = 0.1,
                     additive: bool = True, ridge: float = 1.0,
                     table_rank: int = TABLE_RANK) -> FactorModel:
    """Cell factors and a device prior from a (15625 x devices) matrix of log ms (NaN = missing).

    The columns are standardised before the SVD so that each table weighs the same
    whatever its spread. With ``additive`` the op features of :func:`cell_features` join
    the SVD factors as further columns: a new device's own additive costs can then be
    learnt once it has enough cells, under a prior taken from the pretraining devices.
    Each pretraining device's weights are its ridge fit on all columns (in log-ms units);
    their mean and (shrunk) covariance are the prior. ``table_rank`` components of the
    centred, unstandardised matrix are kept for the ridge view (0: none).
    """
    if logl.shape[0] != NUM_CELLS or logl.shape[1] < 2:
        raise ValueError("pretraining needs a (15625 x devices) matrix with >= 2 devices")
    z = complete_log_matrix(logl, rank)
    mu, sd = z.mean(0), z.std(0)
    zs = (z - mu) / sd
    u, s, vt = np.linalg.svd(zs, full_matrices=False)
    r = min(rank, len(s))
    factors = u[:, :r] * s[:r] / np.sqrt(NUM_CELLS)       # unit-ish scale per column
    if additive:
        factors = np.concatenate([factors, cell_features()], axis=1)
    obs = ~np.isnan(logl)
    k = factors.shape[1]
    weights = np.zeros((z.shape[1], k))
    noise = []
    for d in range(z.shape[1]):
        f, t = factors[obs[:, d]], z[obs[:, d], d] - z[obs[:, d], d].mean()
        reg = ridge * np.eye(k)
        reg[:r, :r] = 0.0 if not additive else 1e-6 * np.eye(r)
        weights[d] = np.linalg.solve(f.T @ f + reg + 1e-9 * np.eye(k), f.T @ t)
        noise.append(float(np.mean((t - f @ weights[d]) ** 2)))
    w_mean = weights.mean(0)
    cov = np.atleast_2d(np.cov(weights.T, ddof=1)) if weights.shape[0] > 2 else np.eye(k)
    diag = np.diag(np.diag(cov))
    cov = (1 - shrink) * cov + shrink * diag + 1e-8 * np.eye(k)
    table = None
    if table_rank > 0:
        u2, s2, _ = np.linalg.svd(z - mu, full_matrices=False)
        q = min(table_rank, len(s2))
        table = u2[:, :q] * s2[:q]                         # in log-ms units, like the tables
    return FactorModel(factors, w_mean, cov, max(float(np.median(noise)), 1e-6), float(mu.mean()),
                       float(mu.var(ddof=1)) if len(mu) > 1 else 1.0, table, weights)


def _design(model: FactorModel, idx: np.ndarray) -> np.ndarray:
    """Rows ``[1, F[cell]]``: the regressors of ``(b, w)`` for the cells ``idx``."""
    return np.concatenate([np.ones((len(idx), 1)), model.factors[idx]], axis=1)


def _prior_precision(model: FactorModel, cov: np.ndarray) -> np.ndarray:
    """Precision of ``(b, w)``: a broad offset prior (100x the spread of pretraining
    offsets, so a device ten times slower than any seen costs nothing) and ``cov`` on w."""
    r = model.rank
    prec = np.zeros((r + 1, r + 1))
    prec[0, 0] = 1.0 / (100.0 * max(model.offset_var, 1.0))
    prec[1:, 1:] = np.linalg.inv(cov)
    return prec


def _posteriors(model: FactorModel, x: np.ndarray, log_y: np.ndarray, s2: float,
                cov: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means of ``(b, w)`` and log marginal likelihoods of ``log_y`` (up to a
    constant shared by every prior) under Gaussian priors N(mean_j, cov), one per row of
    ``means`` (offset included). Parameter-space form: the cost does not grow with cells."""
    prec = _prior_precision(model, cov)
    a = prec + x.T @ x / s2
    chol = np.linalg.cholesky(a)
    solve = lambda v: np.linalg.solve(chol.T, np.linalg.solve(chol, v))  # noqa: E731
    theta = solve(prec @ means.T + (x.T @ log_y / s2)[:, None]).T
    resid = log_y[None, :] - means @ x.T                      # (components, cells)
    u = resid @ x / s2
    quad = np.sum(resid ** 2, axis=1) / s2 - np.sum(u * solve(u.T).T, axis=1)
    sign, logdet_prec = np.linalg.slogdet(prec)
    if sign <= 0:
        raise np.linalg.LinAlgError("the prior covariance is not positive definite")
    logdet = 2 * np.sum(np.log(np.diag(chol))) - logdet_prec  # log|S| - n log s2
    return theta, -0.5 * (quad + logdet)


def adapt(model: FactorModel, idx: np.ndarray, log_y: np.ndarray, *,
          noise_scale: float = NOISE_SCALE, prior: str = "mixture"
          ) -> tuple[float, np.ndarray]:
    """Posterior mean of ``(b, w)`` given log latencies ``log_y`` of cells ``idx``."""
    b, w, _ = adapt_mixture(model, idx, log_y, noise_scale=noise_scale, prior=prior)
    return b, w


def adapt_mixture(model: FactorModel, idx: np.ndarray, log_y: np.ndarray, *,
                  noise_scale: float = NOISE_SCALE, prior: str = "mixture"
                  ) -> tuple[float, np.ndarray, np.ndarray]:
    """:func:`adapt`, and the posterior weight of each pretraining device's component.

    ``prior="population"`` (or a model without its devices' weights): one Gaussian prior,
    the mean and covariance of the pretraining devices' weights. ``"mixture"``: one
    component per pretraining device, N(its weights, MIXTURE_SPREAD x that covariance),
    plus the population's, equally likely a priori (so the population holds 1 / (devices + 1)
    before any cell is seen: a device like none of them still has a fallback whose weight
    grows as the cells disagree with every device); each is weighted by its marginal
    likelihood of the cells. Predictions are linear in ``(b, w)``, so the weighted mean of
    the components' posterior means is the mixture's posterior-mean prediction. The third
    value holds the devices' weights (empty without a mixture); the population's is the rest.
    """
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")
    x = _design(model, idx)
    s2 = model.noise_var * noise_scale
    pop_mean = np.concatenate([[model.offset_mean], model.prior_mean])[None, :]
    theta, ll = _posteriors(model, x, log_y, s2, model.prior_cov, pop_mean)
    if prior == "population" or model.device_weights is None:
        return float(theta[0, 0]), theta[0, 1:], np.zeros(0)
    dev_means = np.concatenate([np.full((len(model.device_weights), 1), model.offset_mean),
                                model.device_weights], axis=1)
    t_dev, ll_dev = _posteriors(model, x, log_y, s2, MIXTURE_SPREAD * model.prior_cov, dev_means)
    thetas, lls = np.concatenate([t_dev, theta]), np.concatenate([ll_dev, ll])
    resp = np.exp(lls - lls.max())
    resp /= resp.sum()
    mean = resp @ thetas
    return float(mean[0]), mean[1:], resp[:-1]


def adapt_tables(model: FactorModel, idx: np.ndarray, log_y: np.ndarray
                 ) -> tuple[float, np.ndarray] | None:
    """The ridge view: intercept and weights of ``log_y`` on the model's table components.

    The penalty is chosen by (efficient) leave-one-out over :data:`RIDGE_ALPHAS`. ``None``
    when the model has no table components or fewer than 3 cells are given (leave-one-out
    needs some to leave out).
    """
    if model.table_factors is None or len(idx) < 3:
        return None
    from sklearn.linear_model import RidgeCV

    r = RidgeCV(alphas=RIDGE_ALPHAS).fit(model.table_factors[idx], log_y)
    return float(r.intercept_), np.asarray(r.coef_, dtype=np.float64)


def predict_log(model: FactorModel, b: float, w: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
    f = model.factors if idx is None else model.factors[idx]
    return b + f @ w


#: how :func:`select_cells` scores a design: "average" (I-optimal: the mean posterior
#: variance of every connected cell's prediction) or "volume" (D-optimal: log det of the
#: posterior precision). Leave one family out, informative cells, K = 10 / 20 / 30 / 50 /
#: 100: "average" ranked as well or better (mean Spearman +0.009 / +0.000 / +0.001 /
#: +0.002 / +0.002) and fitted the bulk better (acc_10 +5.6 / +1.6 / +3.6 / +3.0 / +2.5):
#: docs/results.md, "Session 15: cells chosen for the average prediction"
CRITERIA = ("average", "volume")


def select_cells(model: FactorModel, k: int, candidates: np.ndarray, *,
                 noise_scale: float = NOISE_SCALE, criterion: str = "average") -> np.ndarray:
    """Greedy Bayesian design: the ``k`` candidate cells that most shrink the posterior.

    ``criterion="average"`` (I-optimal) takes, at each step, the cell whose measurement
    most lowers the posterior variance of the predictions averaged over every connected
    cell of the space: what a search needs is the whole space predicted well, and D-optimal
    cells sit at the extremes, which fit the bulk of the space worse (the acc_10 gap).
    ``"volume"`` (D-optimal) takes the cell whose prediction is most uncertain (largest
    ``x' A^-1 x``), which maximises the gain in ``log det A``.

    The design uses the population prior, not the mixture: the cells are chosen before the
    device is seen, and the mixture's weights depend on the cells' latencies.
    Deterministic: ties go to the lower cell index. Each step is a rank-one update.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    cand = np.asarray(candidates, dtype=np.int64)
    k = min(int(k), len(cand))
    x = _design(model, cand)
    s2 = model.noise_var * noise_scale
    cov = np.linalg.inv(_prior_precision(model, model.prior_cov))  # the population prior
    p = x @ cov                        # row i: cov x_i
    v = np.sum(p * x, axis=1)          # prior predictive variance of each candidate
    q = m = None
    if criterion == "average":
        tgt = model.factors[connected_indices()]
        xt_sum = np.concatenate([[len(tgt)], tgt.sum(0)])
        m = np.empty((x.shape[1], x.shape[1]))   # second moment of [1, F] over the space
        m[0], m[:, 0] = xt_sum, xt_sum
        m[1:, 1:] = tgt.T @ tgt
        m /= len(tgt)
        q = p @ m                      # row i: M cov x_i
    chosen: list[int] = []
    for _ in range(k):
        # the drop in the space's mean variance from measuring cell i: x_i' cov M cov x_i / (s2 + v_i)
        score = v.copy() if q is None else np.sum(q * p, axis=1) / (s2 + v)
        score[chosen] = -np.inf
        j = int(np.argmax(score))
        chosen.append(j)
        cx = p[j].copy()
        denom = s2 + v[j]
        proj = p @ x[j]                # x_i' cov x_j for every candidate
        v = v - proj ** 2 / denom
        p -= np.outer(proj, cx) / denom
        if q is not None:
            q -= np.outer(proj, m @ cx) / denom
    return cand[np.array(chosen, dtype=np.int64)]
