"""Agreement and accuracy metrics of per-disc gradings (model against reference reader).

What comes from where
---------------------
* Confusion matrix, accuracy, balanced accuracy (mean recall over the grades present in the reference),
  Cohen's kappa unweighted and linear-weighted: scikit-learn (:func:`sklearn.metrics.confusion_matrix`,
  :func:`~sklearn.metrics.balanced_accuracy_score`, :func:`~sklearn.metrics.cohen_kappa_score`).
* Gwet's AC1 for two raters with its standard error (Gwet, Br J Math Stat Psychol 2008;61:29-48), from
  the q x q contingency table ``p_kl`` (proportions, rows = reference, columns = model)::

      pa  = sum_k p_kk                                  observed agreement
      pi_k = (p_k. + p_.k) / 2                          mean marginal of grade k
      pe  = sum_k pi_k (1 - pi_k) / (q - 1)             chance agreement
      AC1 = (pa - pe) / (1 - pe)
      var = (1 - f) / (n (1 - pe)^2) * ( sum_kl p_kl [w_kl - 2 (1 - AC1) (1 - (pi_k + pi_l) / 2) / (q - 1)]^2
                                         - (pa - 2 (1 - AC1) pe)^2 )

  with ``w_kl`` the identity (1 on the diagonal), ``n`` the number of discs and ``f = 0`` (no
  finite-population correction). The 95 % interval is ``AC1 +- t(0.975, n - 1) * se`` (as the R package
  irrCAC's ``gwet.ac1.table``), clipped to [-1, 1]. ``q`` is the number of possible grades (all of them,
  including grades nobody used).
* AUC of a dichotomised grading (e.g. Pfirrmann 1-3 vs 4-5 scored by P(4) + P(5)) with DeLong's 95 %
  interval: :func:`spineai.stats.delong_ci`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = [
    "AC1Result",
    "confusion",
    "dichotomous_auc",
    "gwet_ac1",
    "gwet_ac1_from_table",
    "grading_metrics",
]


def _labels_arrays(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(y_pred).astype(np.int64).ravel()
    if t.shape != p.shape:
        raise InputError(
            f"{t.size} reference grades but {p.size} predicted grades.",
            "pass one predicted grade per reference grade",
        )
    known = set(int(v) for v in labels)
    bad = sorted(set(t.tolist()) - known) + sorted(set(p.tolist()) - known)
    if bad:
        raise InputError(
            f"Grade value(s) {sorted(set(bad))} are not among the possible grades {sorted(known)}.",
            "pass the full list of possible grades as labels",
        )
    return t, p


def confusion(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[int]) -> np.ndarray:
    """Confusion matrix ``(q, q)``: rows = reference grade, columns = predicted grade, in ``labels`` order."""
    from sklearn.metrics import confusion_matrix

    t, p = _labels_arrays(y_true, y_pred, labels)
    return confusion_matrix(t, p, labels=list(labels))


@dataclass(frozen=True)
class AC1Result:
    """Gwet's AC1 with its standard error and confidence interval."""

    ac1: float
    se: float
    ci_low: float
    ci_high: float
    level: float
    pa: float
    pe: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def gwet_ac1_from_table(table: np.ndarray, level: float = 0.95) -> AC1Result:
    """Gwet's AC1 of two raters from their ``q x q`` table of counts (formula in the module docstring)."""
    from scipy import stats

    counts = np.asarray(table, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] < 2:
        raise InputError(
            f"A square table of at least 2 x 2 counts is needed, got shape {counts.shape}.",
            "pass a q x q table",
        )
    n = float(counts.sum())
    if n < 2:
        raise InputError(f"Gwet's AC1 needs at least 2 rated discs, got {int(n)}.", "evaluate more discs")
    q = counts.shape[0]
    p = counts / n
    pa = float(np.trace(p))
    pi = (p.sum(axis=1) + p.sum(axis=0)) / 2.0
    pe = float(np.sum(pi * (1.0 - pi)) / (q - 1))
    ac1 = (pa - pe) / (1.0 - pe)
    w = np.eye(q)
    term = w - 2.0 * (1.0 - ac1) * (1.0 - (pi[:, None] + pi[None, :]) / 2.0) / (q - 1)
    var = (float(np.sum(p * term**2)) - (pa - 2.0 * (1.0 - ac1) * pe) ** 2) / (n * (1.0 - pe) ** 2)
    se = math.sqrt(max(var, 0.0))
    t = float(stats.t.ppf(0.5 + level / 2.0, n - 1))
    return AC1Result(
        ac1=float(ac1),
        se=se,
        ci_low=max(-1.0, ac1 - t * se),
        ci_high=min(1.0, ac1 + t * se),
        level=level,
        pa=pa,
        pe=pe,
        n=int(n),
    )


def gwet_ac1(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[int], level: float = 0.95
) -> AC1Result:
    """Gwet's AC1 between reference and model grades (``labels``: every possible grade)."""
    return gwet_ac1_from_table(confusion(y_true, y_pred, labels), level)


def dichotomous_auc(y_true: Sequence[int], scores: Sequence[float]) -> dict[str, Any] | None:
    """AUC with DeLong's 95 % CI of 0/1 ``y_true``; ``None`` with fewer than 2 cases of either class."""
    from ..stats import delong_ci

    y = np.asarray(y_true).astype(int)
    if y.size == 0 or min(int(y.sum()), int(y.size - y.sum())) < 2:
        return None
    return delong_ci(y, np.asarray(scores, dtype=np.float64)).to_dict()


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def grading_metrics(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    labels: Sequence[int],
    probabilities: np.ndarray | None = None,
    positive_grades: Sequence[int] | None = None,
) -> dict[str, Any]:
    """All figures of one grading.

    Args:
        y_true: reference grades ``(n,)``.
        y_pred: model grades ``(n,)``.
        labels: every possible grade, in order.
        probabilities: model probabilities ``(n, q)`` in ``labels`` order (for the dichotomous AUC).
        positive_grades: grades counted as positive when dichotomising (e.g. ``[4, 5]`` for Pfirrmann).

    Returns:
        ``n``, ``accuracy``, ``balanced_accuracy``, ``kappa``, ``kappa_linear``, ``ac1`` (dict), ``labels``,
        ``confusion_matrix`` (rows = reference), ``reference_counts`` and, with ``positive_grades``, a
        ``dichotomous`` entry (positive grades, balanced accuracy, AUC with DeLong CI). Undefined values
        (e.g. kappa when both raters used one grade only) are ``None``.
    """
    from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score

    t, p = _labels_arrays(y_true, y_pred, labels)
    out: dict[str, Any] = {"n": int(t.size), "labels": [int(v) for v in labels]}
    if t.size == 0:
        return out
    cm = confusion(t, p, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["accuracy"] = float(np.mean(t == p))
        out["balanced_accuracy"] = _finite(balanced_accuracy_score(t, p))
        out["kappa"] = _finite(cohen_kappa_score(t, p, labels=list(labels)))
        out["kappa_linear"] = _finite(cohen_kappa_score(t, p, labels=list(labels), weights="linear"))
    out["ac1"] = gwet_ac1_from_table(cm).to_dict() if t.size >= 2 else None
    out["confusion_matrix"] = cm.tolist()
    out["reference_counts"] = {str(int(v)): int(c) for v, c in zip(labels, cm.sum(axis=1), strict=True)}
    if positive_grades is not None:
        pos = np.isin(t, list(positive_grades)).astype(int)
        pred_pos = np.isin(p, list(positive_grades)).astype(int)
        entry: dict[str, Any] = {
            "positive_grades": [int(g) for g in positive_grades],
            "n_positive": int(pos.sum()),
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            entry["balanced_accuracy"] = _finite(balanced_accuracy_score(pos, pred_pos))
        if probabilities is not None:
            probs = np.asarray(probabilities, dtype=np.float64)
            cols = [list(labels).index(g) for g in positive_grades]
            entry["auc"] = dichotomous_auc(pos, probs[:, cols].sum(axis=1))
        out["dichotomous"] = entry
    return out
