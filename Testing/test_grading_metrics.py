"""Grading metrics against hand-computed values: confusion matrix, accuracies, kappas, Gwet's AC1."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spineai.errors import InputError
from spineai.grading.metrics import confusion, grading_metrics, gwet_ac1, gwet_ac1_from_table

# three grades, six discs: reference vs model
Y_TRUE = [1, 1, 2, 2, 3, 3]
Y_PRED = [1, 2, 2, 2, 3, 1]


def test_confusion_matrix_rows_are_reference_grades():
    cm = confusion(Y_TRUE, Y_PRED, [1, 2, 3])
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # a grade nobody used still gets its row and column
    assert confusion([1, 2], [1, 2], [1, 2, 3, 4]).shape == (4, 4)


def test_accuracy_balanced_accuracy_and_kappas_by_hand():
    m = grading_metrics(Y_TRUE, Y_PRED, [1, 2, 3])
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    # recalls 1/2, 2/2, 1/2
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)
    # po = 4/6; reference marginals 1/3 each; model marginals 2/6, 3/6, 1/6 -> pe = 1/3
    assert m["kappa"] == pytest.approx((4 / 6 - 1 / 3) / (1 - 1 / 3))
    # linear disagreement weights |i-j|: observed 3/6, expected 5/6 -> 1 - 0.5 / (5/6) = 0.4
    assert m["kappa_linear"] == pytest.approx(0.4)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["reference_counts"] == {"1": 2, "2": 2, "3": 2}


def test_gwet_ac1_three_grades_by_hand():
    r = gwet_ac1(Y_TRUE, Y_PRED, [1, 2, 3])
    # pa = 4/6; pi = (4/12, 5/12, 3/12); pe = sum pi (1 - pi) / (q - 1) = 47/144
    assert r.pa == pytest.approx(4 / 6)
    assert r.pe == pytest.approx(47 / 144)
    assert r.ac1 == pytest.approx(49 / 97)
    assert r.n == 6


def test_gwet_ac1_paradox_table_with_standard_error_by_hand():
    # Gwet's (2008) high-agreement example: kappa is about -0.02 while raters agree on 94.4% of subjects
    table = np.array([[118, 5], [2, 0]])
    r = gwet_ac1_from_table(table)
    n = 125.0
    pa = 118 / n
    pi1 = (123 / n + 120 / n) / 2  # 0.972
    pi2 = 1 - pi1
    pe = (pi1 * (1 - pi1) + pi2 * (1 - pi2)) / (2 - 1)
    ac1 = (pa - pe) / (1 - pe)
    assert r.ac1 == pytest.approx(ac1)
    assert r.ac1 == pytest.approx(0.9408, abs=5e-5)
    # variance: terms w_kl - 2 (1 - AC1) (1 - (pi_k + pi_l) / 2) / (q - 1), weighted by p_kl
    g = 1 - ac1
    t11 = 1 - 2 * g * (1 - pi1)
    t12 = -2 * g * (1 - (pi1 + pi2) / 2)
    t22 = 1 - 2 * g * (1 - pi2)
    s = (118 * t11**2 + 5 * t12**2 + 2 * t12**2 + 0 * t22**2) / n
    var = (s - (pa - 2 * g * pe) ** 2) / (n * (1 - pe) ** 2)
    assert r.se == pytest.approx(math.sqrt(var))
    from scipy import stats

    half = stats.t.ppf(0.975, n - 1) * math.sqrt(var)
    assert r.ci_low == pytest.approx(ac1 - half)
    assert r.ci_high == pytest.approx(min(1.0, ac1 + half))
    # the kappa of the same table is about zero: the two statistics disagree here by design
    y_true = [0] * 123 + [1] * 2
    y_pred = [0] * 118 + [1] * 5 + [0] * 2
    m = grading_metrics(y_true, y_pred, [0, 1])
    assert m["kappa"] == pytest.approx(-0.0234, abs=5e-4)
    assert m["ac1"]["ac1"] == pytest.approx(ac1)


def test_perfect_agreement_and_degenerate_cases():
    m = grading_metrics([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    assert m["accuracy"] == 1.0 and m["kappa"] == pytest.approx(1.0) and m["ac1"]["ac1"] == pytest.approx(1.0)
    # both raters used one grade only: kappa is undefined (None), AC1 still defined
    m = grading_metrics([0, 0, 0], [0, 0, 0], [0, 1])
    assert m["kappa"] is None
    assert m["ac1"]["ac1"] == pytest.approx(1.0)
    assert grading_metrics([], [], [0, 1])["n"] == 0


def test_dichotomous_pfirrmann_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.integers(1, 6, size=60)
    probs = rng.dirichlet(np.ones(5), size=60)
    probs[y >= 4, 3:] += 0.5  # make the score informative
    probs /= probs.sum(axis=1, keepdims=True)
    pred = probs.argmax(axis=1) + 1
    m = grading_metrics(y, pred, [1, 2, 3, 4, 5], probabilities=probs, positive_grades=[4, 5])
    d = m["dichotomous"]
    assert d["positive_grades"] == [4, 5]
    assert d["n_positive"] == int((y >= 4).sum())
    assert d["auc"]["auc"] == pytest.approx(roc_auc_score(y >= 4, probs[:, 3] + probs[:, 4]))
    assert d["auc"]["ci_low"] <= d["auc"]["auc"] <= d["auc"]["ci_high"]


def test_bad_inputs_are_refused():
    with pytest.raises(InputError, match="not among the possible grades"):
        grading_metrics([1, 7], [1, 1], [1, 2, 3])
    with pytest.raises(InputError, match="predicted grades"):
        grading_metrics([1, 2], [1], [1, 2])
    with pytest.raises(InputError, match="square table"):
        gwet_ac1_from_table(np.ones((2, 3)))
