"""Evaluation of the axial grader with the paper's metrics: :func:`axial_metrics`, :func:`evaluate_axial`.

Per grading (LDH, LCCS, LNRC), against the reference grades:

* four-grade figures from :func:`~spineai.grading.metrics.grading_metrics`: accuracy, balanced accuracy,
  Cohen's kappa (unweighted and linear-weighted), Gwet's AC1 ("Gwet's kappa", the paper's agreement
  statistic) with its 95 % CI, the confusion matrix (rows = reference, columns = model);
* per grade, one grade against the others: precision, sensitivity (recall), specificity, F1 and support;
  their unweighted (macro) and support-weighted means, as the paper's summary rows;
* the dichotomous grading 0-1 vs 2-3: ROC of the score P(2) + P(3) (curve points, AUC with DeLong's
  95 % CI), and at the model's own call (grade 2 or 3) sensitivity, specificity, accuracy and Gwet's AC1.

The paper's internal-test figures (seed 004) are reported beside ours for orientation; they come from
real MRI of other patients, so they are not a head-to-head comparison.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...errors import InputError
from ..metrics import grading_metrics, gwet_ac1_from_table
from .grades import AXIAL_TASK_KEYS, DICHOTOMOUS_POSITIVE, GRADES, axial_task

__all__ = ["PAPER_REFERENCE", "axial_metrics", "evaluate_axial", "per_grade_statistics", "summary_lines"]

#: seed 004's internal test set (15 % of 15,254 slices): accuracy, Gwet's kappa, dichotomous AUC, time
PAPER_REFERENCE: dict[str, Any] = {
    "source": "multi-task ResNet-50, internal test set of the paper (seed 004); real MRI, other readers",
    "accuracy": {"ldh": 0.842, "lccs": 0.870, "lnrc": 0.812},
    "gwet_kappa": {"ldh": 0.80, "lccs": 0.86, "lnrc": 0.78},
    "dichotomous_auc": {"ldh": 0.97, "lccs": 0.98, "lnrc": 0.95},
    "ms_per_image": 11,
}


def _ratio(a: float, b: float) -> float | None:
    return float(a) / float(b) if b else None


def per_grade_statistics(cm: np.ndarray, labels: Sequence[int] = GRADES) -> dict[str, Any]:
    """One-vs-rest precision, sensitivity, specificity, F1 and support of every grade, with macro and
    support-weighted means, from a confusion matrix (rows = reference, columns = model)."""
    cm = np.asarray(cm, dtype=np.float64)
    n = cm.sum()
    rows = []
    for k, g in enumerate(labels):
        tp = cm[k, k]
        fn = cm[k].sum() - tp
        fp = cm[:, k].sum() - tp
        tn = n - tp - fn - fp
        precision = _ratio(tp, tp + fp)
        sensitivity = _ratio(tp, tp + fn)
        specificity = _ratio(tn, tn + fp)
        f1 = (
            None
            if precision is None or sensitivity is None or precision + sensitivity == 0
            else 2 * precision * sensitivity / (precision + sensitivity)
        )
        rows.append(
            {
                "grade": int(g),
                "precision": precision,
                "sensitivity": sensitivity,
                "specificity": specificity,
                "f1": f1,
                "support": int(cm[k].sum()),
            }
        )
    summary: dict[str, Any] = {}
    support = np.array([r["support"] for r in rows], dtype=np.float64)
    for name in ("precision", "sensitivity", "specificity", "f1"):
        values = [(r[name], r["support"]) for r in rows if r[name] is not None and r["support"] > 0]
        summary[f"macro_{name}"] = float(np.mean([v for v, _ in values])) if values else None
        summary[f"weighted_{name}"] = (
            float(sum(v * s for v, s in values) / sum(s for _, s in values))
            if values and support.sum()
            else None
        )
    return {"per_grade": rows, **summary}


def axial_metrics(
    y_true: Mapping[str, Sequence[int]],
    y_pred: Mapping[str, Sequence[int]],
    probabilities: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """All figures of the three gradings (see the module docstring).

    Args:
        y_true: ``{task: reference grades (n,)}``; grades outside 0-3 are refused.
        y_pred: ``{task: model grades (n,)}``.
        probabilities: ``{task: (n, 4)}`` model probabilities (for the ROC); optional.

    Returns:
        ``{task: figures}`` for each task present in ``y_true``.
    """
    from ...stats import roc_points

    out: dict[str, Any] = {}
    for key in AXIAL_TASK_KEYS:
        if key not in y_true:
            continue
        t = np.asarray(y_true[key], dtype=np.int64)
        p = np.asarray(y_pred[key], dtype=np.int64)
        probs = None if probabilities is None or key not in probabilities else np.asarray(probabilities[key])
        m = grading_metrics(t, p, GRADES, probabilities=probs, positive_grades=DICHOTOMOUS_POSITIVE)
        m["title"] = axial_task(key).title
        if t.size:
            m.update(per_grade_statistics(np.asarray(m["confusion_matrix"])))
            dich = m.setdefault("dichotomous", {})
            pos_t = np.isin(t, DICHOTOMOUS_POSITIVE).astype(int)
            pos_p = np.isin(p, DICHOTOMOUS_POSITIVE).astype(int)
            table = np.array(
                [[np.sum((pos_t == a) & (pos_p == b)) for b in (0, 1)] for a in (0, 1)], dtype=np.float64
            )
            tp, fn, fp, tn = table[1, 1], table[1, 0], table[0, 1], table[0, 0]
            dich.update(
                {
                    "confusion_matrix": table.astype(int).tolist(),
                    "sensitivity": _ratio(tp, tp + fn),
                    "specificity": _ratio(tn, tn + fp),
                    "accuracy": _ratio(tp + tn, table.sum()),
                    "ac1": gwet_ac1_from_table(table).to_dict() if table.sum() >= 2 else None,
                }
            )
            if probs is not None and 0 < pos_t.sum() < pos_t.size:
                fpr, tpr, thr = roc_points(pos_t, probs[:, list(DICHOTOMOUS_POSITIVE)].sum(axis=1))
                keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 201)).round().astype(int))
                dich["roc"] = {
                    "fpr": fpr[keep].tolist(),
                    "tpr": tpr[keep].tolist(),
                    "thresholds": [float(v) if np.isfinite(v) else None for v in thr[keep]],
                }
        out[key] = m
    return out


def evaluate_axial(
    data: str | os.PathLike,
    *,
    weights: str | os.PathLike | None = None,
    split: str = "all",
    progress: bool | None = None,
    batch_size: int = 32,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Grade every image of a manifest folder and compare with its grades.

    Args:
        data: folder with ``manifest.csv`` (image, ldh, lccs, lnrc; see :mod:`.data`) or the CSV.
        weights: model weights; ``None``: the shipped demo model.
        split: ``"all"`` rows, or only those whose ``split`` column is ``train``/``val``/``test``.
        progress: progress bar (``None``: when interactive).
        batch_size: images per forward pass.
        threads: PyTorch threads (restored afterwards).

    Returns:
        A JSON-ready report: ``metrics`` per grading (:func:`axial_metrics`), per-image rows, the model,
        ``reference_paper`` (:data:`PAPER_REFERENCE`).
    """
    from ..model import torch_threads
    from .data import read_manifest
    from .model import load_axial_model
    from .train import predict_probabilities, prepare_arrays

    if split not in ("all", "train", "val", "test"):
        raise InputError(f"Unknown split '{split}'.", "use all, train, val or test")
    manifest = read_manifest(data, need="grades")
    records = [r for r in manifest.records if split == "all" or r.split == split]
    if not records:
        raise InputError(
            f"No row of '{manifest.path}' has split '{split}'.",
            "use --split all, or fill the manifest's split column",
        )
    net, card = load_axial_model(weights)
    size = int(net.config["input_size"])
    with torch_threads(threads):
        x, y = prepare_arrays(records, size, progress=progress)
        probs = predict_probabilities(net, x, batch_size=batch_size)
    truth: dict[str, list[int]] = {}
    pred: dict[str, list[int]] = {}
    prob: dict[str, np.ndarray] = {}
    for j, key in enumerate(AXIAL_TASK_KEYS):
        known = y[:, j] >= 0
        truth[key] = y[known, j].tolist()
        pred[key] = np.argmax(probs[key][known], axis=1).tolist()
        prob[key] = probs[key][known]
    rows = []
    for i, rec in enumerate(records):
        row: dict[str, Any] = {"line": rec.line, "image": str(rec.image), "patient": rec.patient}
        for j, key in enumerate(AXIAL_TASK_KEYS):
            row[f"{key}_reference"] = None if y[i, j] < 0 else int(y[i, j])
            row[f"{key}_predicted"] = int(np.argmax(probs[key][i]))
            row[f"{key}_p23"] = float(probs[key][i, 2] + probs[key][i, 3])
        rows.append(row)
    return {
        "data": str(manifest.path),
        "split": split,
        "images": len(records),
        "model": {
            "name": card.name,
            "version": card.version,
            "sha256": card.sha256,
            "config": dict(net.config),
        },
        "metrics": axial_metrics(truth, pred, prob),
        "reference_paper": PAPER_REFERENCE,
        "per_image": rows,
        "intended_use": card.intended_use,
    }


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """A short human-readable summary of an evaluation report (or of a card's metrics)."""

    def f(v: Any) -> str:
        return "n/a" if v is None else f"{v:.2f}"

    lines = [f"{report.get('images', '?')} images ({report.get('split', 'all')})"]
    for key, m in report["metrics"].items():
        if not m.get("n"):
            continue
        ac1 = m.get("ac1") or {}
        dich = m.get("dichotomous") or {}
        auc = (dich.get("auc") or {}).get("auc")
        lines.append(
            f"  {key.upper():<5} acc {f(m.get('accuracy'))}  precision {f(m.get('weighted_precision'))}  "
            f"sens {f(m.get('macro_sensitivity'))}  spec {f(m.get('macro_specificity'))}  F1 {f(m.get('weighted_f1'))}  "
            f"kappa {f(m.get('kappa'))}  Gwet AC1 {f(ac1.get('ac1'))} [{f(ac1.get('ci_low'))}, {f(ac1.get('ci_high'))}]  "
            f"AUC(0-1 vs 2-3) {f(auc)}"
        )
    ref = report.get("reference_paper")
    if ref:
        lines.append(
            "  paper (internal test, real MRI): accuracy "
            + "/".join(f"{ref['accuracy'][k]:.2f}" for k in AXIAL_TASK_KEYS)
            + ", Gwet kappa "
            + "/".join(f"{ref['gwet_kappa'][k]:.2f}" for k in AXIAL_TASK_KEYS)
            + ", AUC "
            + "/".join(f"{ref['dichotomous_auc'][k]:.2f}" for k in AXIAL_TASK_KEYS)
            + " (LDH/LCCS/LNRC)"
        )
    return lines
