"""Shared statistics: DeLong AUC variance and CI, Youden threshold, metrics at a threshold, grouped folds, bootstrap.

Reference example: the ``aSAH`` data set shipped with the R package pROC (Turck et al. 2010; Robin et al.,
BMC Bioinformatics 2011;12:77): 113 patients after aneurysmal subarachnoid haemorrhage, outcome Poor (41)
or Good (72), biomarker S100B and the WFNS grade. pROC's documented example prints for
``roc(aSAH$outcome, aSAH$s100b)``: "Area under the curve: 0.7314", "95% CI: 0.6301-0.8326 (DeLong)", and for
``roc.test(roc(aSAH$outcome, aSAH$s100b), roc(aSAH$outcome, aSAH$wfns))`` (DeLong, paired): Z = -2.209,
p-value = 0.02718. Its "best" (Youden) threshold for S100B has specificity 0.806 and sensitivity 0.634.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from spineai.errors import InputError
from spineai.stats import (
    binary_metrics,
    bootstrap_ci,
    delong_auc_variance,
    delong_ci,
    delong_covariance,
    delong_paired_test,
    grouped_kfold,
    youden_threshold,
)

# pROC::aSAH, in the package's row order: outcome (1 = Poor), s100b, wfns
ASAH_POOR = [
    0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0,
    0, 0, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0,
    0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0,
    0,
]  # fmt: skip
ASAH_S100B = [
    0.13, 0.14, 0.1, 0.04, 0.13, 0.1, 0.47, 0.16, 0.18, 0.1, 0.12, 0.1, 0.44, 0.71,
    0.04, 0.08, 0.49, 0.04, 0.07, 0.33, 0.09, 0.09, 0.07, 0.11, 0.07, 0.17, 0.07, 0.11,
    0.13, 0.19, 0.05, 0.16, 0.41, 0.14, 0.34, 0.35, 0.48, 0.09, 0.96, 0.25, 0.5, 0.46,
    0.16, 0.07, 0.43, 0.45, 0.11, 0.08, 0.09, 0.86, 0.52, 0.08, 0.06, 0.13, 2.07, 0.1,
    0.14, 0.15, 0.07, 0.06, 0.77, 0.05, 0.09, 0.3, 0.03, 0.09, 0.04, 0.23, 0.7, 0.09,
    0.27, 0.71, 0.08, 0.26, 0.08, 0.16, 0.09, 0.13, 0.1, 0.08, 0.11, 0.33, 0.11, 0.28,
    0.07, 0.1, 0.32, 0.22, 0.07, 0.05, 0.24, 0.38, 0.1, 0.15, 0.08, 0.14, 0.1, 0.07,
    0.04, 0.19, 0.56, 0.14, 0.58, 0.32, 0.82, 0.74, 0.15, 0.47, 0.17, 0.44, 0.15, 0.5,
    0.48,
]  # fmt: skip
ASAH_WFNS = [
    1, 1, 1, 1, 3, 2, 5, 4, 1, 2, 5, 2, 5, 5, 1, 2, 5, 2, 2, 5, 2, 1, 1, 1, 1, 2, 1, 2,
    1, 1, 3, 4, 2, 1, 4, 5, 4, 1, 4, 2, 5, 5, 1, 1, 2, 4, 1, 1, 2, 5, 5, 2, 1, 2, 5, 1,
    2, 2, 2, 1, 5, 1, 1, 2, 5, 2, 1, 4, 5, 2, 4, 4, 1, 4, 1, 2, 1, 4, 2, 1, 2, 3, 2, 4,
    2, 1, 4, 5, 1, 1, 5, 4, 2, 2, 1, 1, 1, 3, 1, 2, 5, 2, 2, 5, 5, 5, 2, 4, 4, 5, 1, 1,
    1,
]  # fmt: skip


def _delong_by_definition(y, s):
    """DeLong's variance from its definition, with the m x n comparison matrix (independent of the code)."""
    y = np.asarray(y)
    s = np.asarray(s, dtype=float)
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), np.var(v10, ddof=1) / len(pos) + np.var(v01, ddof=1) / len(neg)


def test_asah_data_are_complete():
    assert len(ASAH_POOR) == len(ASAH_S100B) == len(ASAH_WFNS) == 113
    assert sum(ASAH_POOR) == 41


def test_delong_ci_reproduces_proc_published_example():
    ci = delong_ci(ASAH_POOR, ASAH_S100B)
    assert round(ci.auc, 4) == 0.7314
    assert (round(ci.ci_low, 4), round(ci.ci_high, 4)) == (0.6301, 0.8326)
    assert ci.n_positive == 41 and ci.n_negative == 72 and ci.method == "DeLong"
    assert ci.text(4) == "0.7314 (95% CI 0.6301-0.8326, DeLong)"
    assert ci.auc == pytest.approx(roc_auc_score(ASAH_POOR, ASAH_S100B), abs=1e-12)


def test_delong_paired_test_reproduces_proc_roc_test():
    result = delong_paired_test(ASAH_POOR, ASAH_S100B, ASAH_WFNS)
    assert round(result["z"], 3) == -2.209
    assert round(result["p_value"], 5) == 0.02718
    assert result["auc_b"] == pytest.approx(roc_auc_score(ASAH_POOR, ASAH_WFNS), abs=1e-12)


def test_delong_variance_hand_worked_example():
    # positives 0.9, 0.8, 0.4; negatives 0.7, 0.4, 0.2 (one tie).
    # V10 = (1, 1, 1/2), V01 = (2/3, 5/6, 1), AUC = 7.5 / 9;
    # S10 = 1/12, S01 = 1/36, var = S10/3 + S01/3 = 1/27.
    auc, var = delong_auc_variance([1, 1, 1, 0, 0, 0], [0.9, 0.8, 0.4, 0.7, 0.4, 0.2])
    assert auc == pytest.approx(7.5 / 9.0, abs=1e-15)
    assert var == pytest.approx(1.0 / 27.0, rel=1e-12)


@pytest.mark.parametrize("marker", [ASAH_S100B, ASAH_WFNS])
def test_fast_delong_equals_the_definition_with_ties(marker):
    auc, var = delong_auc_variance(ASAH_POOR, marker)
    ref_auc, ref_var = _delong_by_definition(ASAH_POOR, marker)
    assert auc == pytest.approx(ref_auc, abs=1e-12)
    assert var == pytest.approx(ref_var, rel=1e-10)


def test_covariance_matrix_is_symmetric_with_the_variances_on_its_diagonal():
    aucs, cov = delong_covariance(ASAH_POOR, [ASAH_S100B, ASAH_WFNS])
    assert cov.shape == (2, 2) and cov[0, 1] == pytest.approx(cov[1, 0])
    assert cov[0, 0] == pytest.approx(delong_auc_variance(ASAH_POOR, ASAH_S100B)[1])


def test_delong_refuses_one_class_and_bad_labels():
    with pytest.raises(InputError, match="both classes"):
        delong_ci([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(InputError, match="other than 0 and 1"):
        delong_ci([0, 2, 1, 0], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(InputError, match="one score per"):
        delong_ci([0, 1, 1, 0], [0.1, 0.2, 0.3])
    with pytest.raises(InputError, match="NaN"):
        delong_ci([0, 1, 1, 0], [0.1, float("nan"), 0.3, 0.2])


def test_youden_threshold_is_procs_best_point():
    choice = youden_threshold(ASAH_POOR, ASAH_S100B)
    # pROC reports the midpoint 0.205 between observed values; scikit-learn's curve uses the observed 0.22
    assert choice.threshold == pytest.approx(0.22)
    assert round(choice.specificity, 3) == 0.806 and round(choice.sensitivity, 3) == 0.634
    m = binary_metrics(ASAH_POOR, ASAH_S100B, choice.threshold)
    assert m.sensitivity == pytest.approx(choice.sensitivity) and m.specificity == pytest.approx(
        choice.specificity
    )
    # no threshold does better
    for t in np.unique(ASAH_S100B):
        mt = binary_metrics(ASAH_POOR, ASAH_S100B, t)
        assert mt.sensitivity + mt.specificity - 1 <= choice.youden_j + 1e-12


def test_binary_metrics_counts_by_hand():
    y = [1, 1, 1, 0, 0, 0, 0]
    s = [0.9, 0.6, 0.2, 0.7, 0.3, 0.1, 0.6]
    m = binary_metrics(y, s, 0.6)  # called positive: 0.9, 0.6, 0.7, 0.6 (>=)
    assert (m.tp, m.fp, m.tn, m.fn) == (2, 2, 2, 1)
    assert m.sensitivity == pytest.approx(2 / 3) and m.specificity == pytest.approx(0.5)
    assert (
        m.accuracy == pytest.approx(4 / 7) and m.ppv == pytest.approx(0.5) and m.npv == pytest.approx(2 / 3)
    )
    none_called = binary_metrics(y, s, 2.0)
    assert math.isnan(none_called.ppv) and none_called.to_dict()["ppv"] is None


def test_grouped_folds_never_split_a_patient():
    rng = np.random.default_rng(4)
    patients = np.repeat(np.arange(40), rng.integers(1, 5, 40))  # 1-4 images per patient
    y = (rng.random(patients.size) < 0.4).astype(int)
    for labels in (None, y):
        folds = grouped_kfold(patients, n_splits=5, y=labels, seed=3)
        assert len(folds) == 5
        seen = np.zeros(patients.size, dtype=int)
        for train, val in folds:
            assert not set(patients[train]) & set(patients[val])
            seen[val] += 1
        assert np.all(seen == 1)


def test_stratified_grouped_folds_keep_the_class_balance_and_follow_the_seed():
    rng = np.random.default_rng(0)
    patients = np.arange(200)
    y = (rng.random(200) < 0.3).astype(int)
    folds = grouped_kfold(patients, 5, y=y, seed=1)
    for _, val in folds:
        assert abs(y[val].mean() - y.mean()) < 0.06
    again = grouped_kfold(patients, 5, y=y, seed=1)
    other = grouped_kfold(patients, 5, y=y, seed=2)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, other, strict=True))


def test_grouped_folds_refuse_more_folds_than_patients():
    with pytest.raises(InputError, match="patient"):
        grouped_kfold(["a", "a", "b"], n_splits=3)


def test_bootstrap_is_seeded_and_brackets_the_delong_interval():
    a = bootstrap_ci(roc_auc_score, np.array(ASAH_POOR), np.array(ASAH_S100B), n_resamples=1000, seed=7)
    b = bootstrap_ci(roc_auc_score, np.array(ASAH_POOR), np.array(ASAH_S100B), n_resamples=1000, seed=7)
    c = bootstrap_ci(roc_auc_score, np.array(ASAH_POOR), np.array(ASAH_S100B), n_resamples=200, seed=8)
    assert a == b and (c.ci_low, c.ci_high) != (a.ci_low, a.ci_high)
    assert a.estimate == pytest.approx(0.7314, abs=1e-4)
    assert a.ci_low < a.estimate < a.ci_high
    # percentile bootstrap and DeLong agree to a few hundredths on 113 cases
    assert a.ci_low == pytest.approx(0.6301, abs=0.03) and a.ci_high == pytest.approx(0.8326, abs=0.03)


def test_cluster_bootstrap_is_wider_when_cases_repeat_a_patient():
    y = np.array(ASAH_POOR * 3)
    s = np.array(ASAH_S100B * 3)
    groups = np.tile(np.arange(113), 3)  # each patient imaged three times
    naive = bootstrap_ci(roc_auc_score, y, s, n_resamples=300, seed=1)
    clustered = bootstrap_ci(roc_auc_score, y, s, n_resamples=300, seed=1, groups=groups)
    assert (clustered.ci_high - clustered.ci_low) > 1.4 * (naive.ci_high - naive.ci_low)
