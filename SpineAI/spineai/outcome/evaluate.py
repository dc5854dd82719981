"""Evaluation of an outcome model on labelled cases: AUC with DeLong CI, metrics at a threshold, ROC curve."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..outputs import atomic_path, prepare_output_dir, write_json, write_text

__all__ = ["evaluate_outcome", "evaluate_predictions", "roc_png"]


def evaluate_predictions(y: Any, p: Any, threshold: float, threshold_source: str = "given") -> dict[str, Any]:
    """AUC (DeLong 95 % CI), accuracy, sensitivity, specificity, PPV, NPV at ``threshold`` and the Youden
    threshold of these data (reported, not used: choosing it on the test set would flatter the figures)."""
    from ..stats import binary_metrics, delong_ci, youden_threshold

    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    return {
        "n": int(y.size),
        "n_good": int(y.sum()),
        "n_poor": int(y.size - y.sum()),
        "auc": delong_ci(y, p).to_dict(),
        "threshold": {"value": float(threshold), "source": threshold_source},
        "at_threshold": binary_metrics(y, p, threshold).to_dict(),
        "youden_on_these_data": youden_threshold(y, p).to_dict(),
    }


def roc_png(
    path: str | os.PathLike,
    y: Any,
    p: Any,
    title: str,
    overwrite: bool = False,
    threshold: float | None = None,
) -> Path:
    """ROC curve (scikit-learn's points) as a PNG, with the operating point at ``threshold`` marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..stats import binary_metrics, roc_points

    fpr, tpr, _ = roc_points(y, p)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, lw=1.8, label="model")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="chance")
    if threshold is not None:
        m = binary_metrics(y, p, threshold)
        ax.plot(1 - m.specificity, m.sensitivity, "o", label=f"threshold {threshold:.2f}")
    ax.set_xlabel("1 - specificity (poor outcomes called good)")
    ax.set_ylabel("sensitivity (good outcomes called good)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right")
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out, overwrite) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out


def evaluate_outcome(
    data: str | os.PathLike,
    *,
    weights: str | os.PathLike | None = None,
    threshold: float | None = None,
    out: str | os.PathLike | None = None,
    roi: str = "auto",
    skip_bad_rows: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Predict every case of a manifest or phantom folder and score the model.

    Args:
        data: manifest CSV or folder (see :mod:`spineai.outcome.data`).
        weights: model weights (default: the shipped demo model).
        threshold: decision threshold (default: the card's validation Youden threshold).
        out: folder for ``evaluation.json``, ``predictions.csv`` and ``roc.png``.
        roi: ``"auto"`` (localiser) or ``"truth"`` (phantoms).
        skip_bad_rows: leave out bad manifest rows instead of failing.
        overwrite: replace files in ``out``.

    Returns:
        The report (also written to ``out/evaluation.json``).
    """
    import torch

    from .data import load_cases, rois_for_cases
    from .predict import load_outcome_model
    from .train import _predict

    folder = None
    if out is not None:
        o = Path(out)
        if o.exists() and (not o.is_dir() or any(o.iterdir())) and not overwrite:
            from ..errors import OutputExistsError

            raise OutputExistsError(o)
    model = load_outcome_model(weights)
    cases, problems = load_cases(data, skip_bad_rows=skip_bad_rows)
    rois = rois_for_cases(cases, roi=roi)
    problems = problems + [f"ROI failed: {f}" for f in rois.failed]
    if len(np.unique(rois.y)) < 2:
        raise InputError(
            f"The evaluation data hold {len(rois.y)} usable case(s) of a single outcome class.",
            "evaluate on cases with both good and poor outcomes",
        )
    p = _predict(model.network, rois.x, torch.device("cpu"))
    thr = model.threshold if threshold is None else float(threshold)
    report = evaluate_predictions(
        rois.y, p, thr, "model card (validation Youden)" if threshold is None else "given"
    )
    report["model"] = model.summary()
    report["data"] = str(data)
    report["excluded"] = problems
    report["cases"] = [
        {"case_id": c, "label": int(t), "probability_good": float(q)}
        for c, t, q in zip(rois.case_ids, rois.y, p, strict=True)
    ]
    if out is not None:
        folder = prepare_output_dir(out, overwrite=overwrite)
        write_json(folder / "evaluation.json", report, overwrite=overwrite)
        write_text(
            folder / "predictions.csv",
            "case_id,label,probability_good\n"
            + "".join(f"{c['case_id']},{c['label']},{c['probability_good']:.6f}\n" for c in report["cases"]),
            overwrite=overwrite,
        )
        auc = report["auc"]
        roc_png(
            folder / "roc.png",
            rois.y,
            p,
            f"AUC {auc['auc']:.3f} (95% CI {auc['ci_low']:.3f}-{auc['ci_high']:.3f}, DeLong), n={len(p)}",
            overwrite=overwrite,
            threshold=thr,
        )
    return report
