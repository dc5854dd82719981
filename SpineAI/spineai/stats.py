"""Statistics shared by every model's evaluation: DeLong AUC intervals, thresholds, grouped folds, bootstrap.

Conventions
-----------
* ``y_true`` is binary (0/1 or bool); 1 is the *positive* class (for the outcome model: good outcome).
* ``y_score`` is any real-valued score, larger meaning more likely positive (a probability or a logit).
* A case is called positive when ``score >= threshold`` (scikit-learn's ``roc_curve`` convention).

What comes from where
---------------------
* ROC curve and AUC: :func:`sklearn.metrics.roc_curve`, :func:`sklearn.metrics.roc_auc_score`.
* DeLong variance of the AUC (DeLong, DeLong & Clarke-Pearson, Biometrics 1988;44:837-845), computed
  with the fast mid-rank algorithm of Sun & Xu (IEEE Signal Processing Letters 2014;21:1389-1393);
  mid-ranks from :func:`scipy.stats.rankdata`. The 95% interval is the normal (Wald) interval
  ``AUC +- z * sqrt(var)`` clipped to [0, 1], as pROC's ``ci.auc(method = "delong")`` computes it.
* Folds: :class:`sklearn.model_selection.GroupKFold` / ``StratifiedGroupKFold``, wrapped so that no
  patient can ever appear in two folds (checked, not assumed).
* Bootstrap: percentile intervals over seeded resamples (stratified by class, or by patient when
  ``groups`` is given).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as _scipy_stats

from .errors import InputError

__all__ = [
    "AucInterval",
    "BinaryMetrics",
    "BootstrapInterval",
    "ThresholdChoice",
    "binary_metrics",
    "bootstrap_ci",
    "delong_auc_variance",
    "delong_ci",
    "delong_covariance",
    "delong_paired_test",
    "grouped_kfold",
    "roc_points",
    "youden_threshold",
]


# ----------------------------------------------------------------------------------------------------
# input checks
def _binary_labels(y_true: Any, name: str = "y_true") -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise InputError(
            f"{name} has shape {y.shape}; a 1-D vector of 0/1 labels is needed.", "pass one label per case"
        )
    if y.dtype == bool:
        return y.astype(np.int64)
    try:
        yf = y.astype(float)
    except (TypeError, ValueError):
        raise InputError(
            f"{name} holds non-numeric values; labels must be 0/1.", "encode the positive class as 1"
        ) from None
    if not np.all(np.isin(yf, (0.0, 1.0))):
        bad = sorted({float(v) for v in yf[~np.isin(yf, (0.0, 1.0))]})[:5]
        raise InputError(
            f"{name} holds values other than 0 and 1 (e.g. {bad}).",
            "encode the positive class as 1, the other as 0",
        )
    return yf.astype(np.int64)


def _scores(y_score: Any, n: int, name: str = "y_score") -> np.ndarray:
    s = np.asarray(y_score, dtype=float)
    if s.ndim != 1 or s.shape[0] != n:
        raise InputError(
            f"{name} has shape {s.shape} but there are {n} labels.",
            "pass exactly one score per labelled case",
        )
    if not np.all(np.isfinite(s)):
        raise InputError(f"{name} contains NaN or infinite values.", "remove the cases without a valid score")
    return s


def _both_classes(y: np.ndarray, what: str) -> tuple[int, int]:
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise InputError(
            f"{what} needs both classes, but the labels hold {n_pos} positive and {n_neg} negative case(s).",
            "evaluate on a set that contains both good and poor outcomes (at least one of each; 30+ of each "
            "for a useful interval)",
        )
    return n_pos, n_neg


# ----------------------------------------------------------------------------------------------------
# DeLong
def _structural_components(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fast DeLong (Sun & Xu 2014) for one or more score vectors.

    Args:
        y: labels, shape (n,).
        scores: shape (k, n), one row per model.

    Returns:
        ``(auc (k,), v10 (k, m), v01 (k, n_neg))``: the AUCs and DeLong's structural components
        V10 (one per positive case: the share of negatives it outranks, ties counting 1/2) and V01 (one
        per negative case: the share of positives that outrank it).
    """
    pos = scores[:, y == 1]
    neg = scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    tx = _scipy_stats.rankdata(pos, axis=1)  # mid-ranks within positives
    ty = _scipy_stats.rankdata(neg, axis=1)  # mid-ranks within negatives
    tz = _scipy_stats.rankdata(np.concatenate([pos, neg], axis=1), axis=1)  # mid-ranks in the pooled set
    auc = (tz[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return auc, v10, v01


def delong_covariance(y_true: Any, scores: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their DeLong covariance matrix for several scores of the same cases.

    Args:
        y_true: labels, shape (n,).
        scores: k score vectors, each shape (n,).

    Returns:
        ``(auc, cov)``: shape (k,) and (k, k); ``cov = S10 / m + S01 / n`` with S10, S01 the sample
        covariances (ddof 1) of the structural components over the m positive and n negative cases.
    """
    y = _binary_labels(y_true)
    m, n = _both_classes(y, "DeLong's AUC variance")
    if m < 2 or n < 2:
        raise InputError(
            f"DeLong's variance needs at least 2 cases of each class ({m} positive, {n} negative).",
            "evaluate on more cases",
        )
    s = np.vstack([_scores(v, y.size) for v in scores])
    auc, v10, v01 = _structural_components(y, s)
    s10 = np.atleast_2d(np.cov(v10, ddof=1))
    s01 = np.atleast_2d(np.cov(v01, ddof=1))
    return auc, s10 / m + s01 / n


def delong_auc_variance(y_true: Any, y_score: Any) -> tuple[float, float]:
    """AUC and its DeLong variance.

    Returns:
        ``(auc, variance)``; the AUC equals :func:`sklearn.metrics.roc_auc_score` (ties count 1/2).
    """
    auc, cov = delong_covariance(y_true, [y_score])
    return float(auc[0]), float(cov[0, 0])


@dataclass(frozen=True)
class AucInterval:
    """An AUC with its DeLong standard error and confidence interval.

    Attributes:
        auc: area under the ROC curve (0..1).
        se: DeLong standard error.
        ci_low, ci_high: the interval ``auc -+ z * se`` clipped to [0, 1].
        level: confidence level, e.g. 0.95.
        n_positive, n_negative: cases of each class.
        method: ``"DeLong"``.
    """

    auc: float
    se: float
    ci_low: float
    ci_high: float
    level: float
    n_positive: int
    n_negative: int
    method: str = "DeLong"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    def text(self, digits: int = 3) -> str:
        """``"0.827 (95% CI 0.744-0.909, DeLong)"``."""
        f = f"{{:.{digits}f}}"
        return (
            f"{f.format(self.auc)} ({round(100 * self.level):d}% CI {f.format(self.ci_low)}-"
            f"{f.format(self.ci_high)}, {self.method})"
        )


def delong_ci(y_true: Any, y_score: Any, level: float = 0.95) -> AucInterval:
    """AUC with DeLong's confidence interval (pROC's ``ci.auc(method = "delong")``).

    Args:
        y_true: 0/1 labels, shape (n,).
        y_score: scores, shape (n,), larger = more likely positive.
        level: confidence level in (0, 1).
    """
    if not 0.0 < level < 1.0:
        raise InputError(f"Confidence level {level} is not in (0, 1).", "pass e.g. 0.95")
    y = _binary_labels(y_true)
    auc, var = delong_auc_variance(y, y_score)
    se = math.sqrt(max(var, 0.0))
    z = float(_scipy_stats.norm.ppf(0.5 + level / 2.0))
    return AucInterval(
        auc=auc,
        se=se,
        ci_low=max(0.0, auc - z * se),
        ci_high=min(1.0, auc + z * se),
        level=level,
        n_positive=int(y.sum()),
        n_negative=int(y.size - y.sum()),
    )


def delong_paired_test(y_true: Any, score_a: Any, score_b: Any) -> dict[str, float]:
    """DeLong's test of two correlated AUCs (two models scored on the same cases).

    Returns:
        ``{"auc_a", "auc_b", "difference", "se", "z", "p_value"}`` (two-sided p).
    """
    auc, cov = delong_covariance(y_true, [score_a, score_b])
    diff = float(auc[0] - auc[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    se = math.sqrt(max(var, 0.0))
    if se == 0.0:
        z, p = 0.0, 1.0
    else:
        z = diff / se
        p = float(2.0 * _scipy_stats.norm.sf(abs(z)))
    return {
        "auc_a": float(auc[0]),
        "auc_b": float(auc[1]),
        "difference": diff,
        "se": se,
        "z": z,
        "p_value": p,
    }


# ----------------------------------------------------------------------------------------------------
# thresholds and metrics at a threshold
@dataclass(frozen=True)
class BinaryMetrics:
    """Confusion counts and rates at one threshold (positive when ``score >= threshold``).

    Rates are ``nan`` where their denominator is 0 (e.g. PPV with no positive calls).
    """

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    sensitivity: float
    specificity: float
    accuracy: float
    ppv: float
    npv: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``nan`` becomes ``None``)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def _ratio(a: int, b: int) -> float:
    return float(a) / float(b) if b else float("nan")


def binary_metrics(y_true: Any, y_score: Any, threshold: float) -> BinaryMetrics:
    """Sensitivity, specificity, accuracy, PPV and NPV at ``threshold`` (positive if ``score >= threshold``)."""
    y = _binary_labels(y_true)
    s = _scores(y_score, y.size)
    if not math.isfinite(float(threshold)):
        raise InputError(
            f"Threshold {threshold} is not a finite number.", "pass a finite threshold, e.g. 0.5"
        )
    called = s >= float(threshold)
    tp = int(np.sum(called & (y == 1)))
    fp = int(np.sum(called & (y == 0)))
    tn = int(np.sum(~called & (y == 0)))
    fn = int(np.sum(~called & (y == 1)))
    return BinaryMetrics(
        threshold=float(threshold),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        sensitivity=_ratio(tp, tp + fn),
        specificity=_ratio(tn, tn + fp),
        accuracy=_ratio(tp + tn, y.size),
        ppv=_ratio(tp, tp + fp),
        npv=_ratio(tn, tn + fn),
    )


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold maximising Youden's J = sensitivity + specificity - 1 on the data it was chosen on."""

    threshold: float
    sensitivity: float
    specificity: float
    youden_j: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def roc_points(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve ``(fpr, tpr, thresholds)`` from :func:`sklearn.metrics.roc_curve` (all points kept)."""
    from sklearn.metrics import roc_curve

    y = _binary_labels(y_true)
    _both_classes(y, "A ROC curve")
    s = _scores(y_score, y.size)
    return roc_curve(y, s, drop_intermediate=False)


def youden_threshold(y_true: Any, y_score: Any) -> ThresholdChoice:
    """Youden-optimal threshold on scikit-learn's ROC curve.

    Among the curve's thresholds (every distinct score; the curve's artificial first point, threshold
    ``+inf``, is skipped) the one with the largest ``tpr - fpr``; ties go to the highest threshold (the
    first on the curve), so the choice is deterministic.
    """
    fpr, tpr, thresholds = roc_points(y_true, y_score)
    finite = np.isfinite(thresholds)
    j = np.where(finite, tpr - fpr, -np.inf)
    best = int(np.argmax(j))
    return ThresholdChoice(
        threshold=float(thresholds[best]),
        sensitivity=float(tpr[best]),
        specificity=float(1.0 - fpr[best]),
        youden_j=float(j[best]),
    )


# ----------------------------------------------------------------------------------------------------
# grouped folds
def grouped_kfold(
    groups: Any,
    n_splits: int = 5,
    y: Any | None = None,
    *,
    shuffle: bool = True,
    seed: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds in which every patient (group) lies in exactly one validation fold.

    Uses :class:`sklearn.model_selection.StratifiedGroupKFold` when ``y`` is given (class balance kept as
    far as the groups allow), else :class:`sklearn.model_selection.GroupKFold`. The result is checked:
    training and validation indices never share a group, and every case is validated exactly once.

    Args:
        groups: patient id per case (any hashable values), shape (n,).
        n_splits: number of folds (>= 2, <= number of patients).
        y: optional class label per case for stratification.
        shuffle: shuffle patients before assigning folds (StratifiedGroupKFold only; GroupKFold is
            deterministic by group size).
        seed: random seed of the shuffle.

    Returns:
        ``[(train_indices, validation_indices), ...]``, ``n_splits`` pairs of sorted int arrays.
    """
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    g = np.asarray(groups)
    if g.ndim != 1 or g.size == 0:
        raise InputError(
            "groups must be a non-empty 1-D vector (one patient id per case).", "pass one id per case"
        )
    unique = np.unique(g)
    if n_splits < 2:
        raise InputError(f"n_splits={n_splits}: at least 2 folds are needed.", "pass n_splits >= 2")
    if unique.size < n_splits:
        raise InputError(
            f"Only {unique.size} patient(s) for {n_splits} folds: every fold needs at least one patient.",
            f"use at most {unique.size} folds, or add patients",
        )
    x = np.zeros((g.size, 1))
    if y is not None:
        labels = _binary_labels(y, "y") if np.asarray(y).dtype != object else np.asarray(y)
        if labels.shape[0] != g.size:
            raise InputError(f"y has {labels.shape[0]} values for {g.size} cases.", "pass one label per case")
        splitter = StratifiedGroupKFold(
            n_splits=n_splits, shuffle=shuffle, random_state=seed if shuffle else None
        )
        splits = list(splitter.split(x, labels, g))
    else:
        splits = list(GroupKFold(n_splits=n_splits).split(x, None, g))
    seen = np.zeros(g.size, dtype=int)
    out = []
    for train_idx, val_idx in splits:
        shared = np.intersect1d(g[train_idx], g[val_idx])
        if shared.size:  # would be a scikit-learn bug; never hand out leaking folds
            raise RuntimeError(
                f"fold assignment put patient(s) {shared[:5].tolist()} in training and validation"
            )
        seen[val_idx] += 1
        out.append((np.sort(train_idx), np.sort(val_idx)))
    if not np.all(seen == 1):
        raise RuntimeError("fold assignment did not validate every case exactly once")
    return out


# ----------------------------------------------------------------------------------------------------
# bootstrap
@dataclass(frozen=True)
class BootstrapInterval:
    """Percentile bootstrap interval of a metric.

    Attributes:
        estimate: the metric on the full data.
        ci_low, ci_high: percentile interval.
        level: confidence level.
        n_resamples: resamples drawn; n_valid: those where the metric was finite.
        seed: random seed (same seed, same interval).
    """

    estimate: float
    ci_low: float
    ci_high: float
    level: float
    n_resamples: int
    n_valid: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def bootstrap_ci(
    metric: Callable[[np.ndarray, np.ndarray], float],
    y_true: Any,
    y_score: Any,
    *,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    stratified: bool = True,
    groups: Any | None = None,
) -> BootstrapInterval:
    """Seeded percentile bootstrap interval of ``metric(y_true, y_score)``.

    Args:
        metric: any function of (labels, scores) returning a number, e.g.
            ``sklearn.metrics.roc_auc_score`` or ``lambda y, s: binary_metrics(y, s, 0.5).accuracy``.
        y_true: labels, shape (n,).
        y_score: scores, shape (n,).
        n_resamples: resamples (>= 100).
        level: confidence level.
        seed: seed of :func:`numpy.random.default_rng`.
        stratified: resample positives and negatives separately (keeps both classes in every resample);
            ignored when ``groups`` is given.
        groups: patient id per case: whole patients are resampled (cluster bootstrap), so repeated
            images of a patient do not narrow the interval.
    """
    if n_resamples < 100:
        raise InputError(
            f"n_resamples={n_resamples} is too few for a percentile interval.", "use 1000 or more"
        )
    if not 0.0 < level < 1.0:
        raise InputError(f"Confidence level {level} is not in (0, 1).", "pass e.g. 0.95")
    y = np.asarray(y_true)
    s = np.asarray(y_score)
    if y.shape[0] != s.shape[0]:
        raise InputError(f"{y.shape[0]} labels but {s.shape[0]} scores.", "pass one score per labelled case")
    rng = np.random.default_rng(seed)
    estimate = float(metric(y, s))
    values = np.empty(n_resamples)
    if groups is not None:
        g = np.asarray(groups)
        unique, inverse = np.unique(g, return_inverse=True)
        members = [np.flatnonzero(inverse == k) for k in range(unique.size)]
    for b in range(n_resamples):
        if groups is not None:
            picked = rng.integers(0, unique.size, unique.size)
            idx = np.concatenate([members[k] for k in picked])
        elif stratified:
            parts = [
                rng.choice(np.flatnonzero(y == c), size=int(np.sum(y == c)), replace=True)
                for c in np.unique(y)
            ]
            idx = np.concatenate(parts)
        else:
            idx = rng.integers(0, y.shape[0], y.shape[0])
        try:
            values[b] = float(metric(y[idx], s[idx]))
        except ValueError:  # e.g. AUC of a one-class resample
            values[b] = np.nan
    valid = values[np.isfinite(values)]
    if valid.size < 0.5 * n_resamples:
        raise InputError(
            f"The metric was undefined in {n_resamples - valid.size} of {n_resamples} bootstrap resamples.",
            "use stratified=True, or more cases of each class",
        )
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(valid, [alpha, 1.0 - alpha])
    return BootstrapInterval(
        estimate=estimate,
        ci_low=float(low),
        ci_high=float(high),
        level=level,
        n_resamples=n_resamples,
        n_valid=int(valid.size),
        seed=seed,
    )
