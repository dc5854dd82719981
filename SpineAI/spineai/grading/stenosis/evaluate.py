"""Evaluation of the two-stage stenosis model: :func:`stenosis_metrics`, :func:`evaluate_stenosis`.

Per region (central canal, left/right lateral recess, left/right foramen) and pooled per region kind:

* detection against the reference box: intersection over union (mean, median), centre error (pixels and,
  where the pixel size is known, mm), and the detection recall = share of reference boxes found with
  IoU >= 0.5 (also reported at 0.3);
* grading of the detected region's crop against the reference grade: four-grade accuracy, Cohen's kappa
  (unweighted and linear-weighted), Gwet's AC1 with CI and the confusion matrix
  (:func:`~spineai.grading.metrics.grading_metrics`); the dichotomous grading normal/mild vs
  moderate/severe: kappa, recall (sensitivity) of moderate/severe, specificity and AUC with DeLong's CI.

Hallinan et al.'s published figures (internal test, via seed 001) are reported beside ours for
orientation (real MRI, other readers: not a head-to-head comparison).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...errors import InputError
from ..axial.grades import DICHOTOMOUS_POSITIVE, GRADES, REGION_KINDS, REGIONS
from ..metrics import grading_metrics

__all__ = ["HALLINAN_REFERENCE", "evaluate_stenosis", "stenosis_metrics", "summary_lines"]

#: Hallinan et al. (Radiology 2021), internal test set, as summarised by seed 001
HALLINAN_REFERENCE: dict[str, Any] = {
    "source": "Hallinan et al., Radiology 2021, internal test (as summarised in seed 001); real MRI, other readers",
    "dichotomous_kappa": {"central_canal": 0.96, "lateral_recess": 0.92, "foramen": 0.89},
    "four_grade_kappa_central_canal": 0.82,
    "recall": {"central_canal": 0.99, "foramen": 0.85},
}


def _binary_figures(t: np.ndarray, p: np.ndarray, scores: np.ndarray | None) -> dict[str, Any]:
    from sklearn.metrics import cohen_kappa_score

    from ..metrics import dichotomous_auc

    pos_t = np.isin(t, DICHOTOMOUS_POSITIVE).astype(int)
    pos_p = np.isin(p, DICHOTOMOUS_POSITIVE).astype(int)
    tp = int(np.sum((pos_t == 1) & (pos_p == 1)))
    fn = int(np.sum((pos_t == 1) & (pos_p == 0)))
    fp = int(np.sum((pos_t == 0) & (pos_p == 1)))
    tn = int(np.sum((pos_t == 0) & (pos_p == 0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kappa = cohen_kappa_score(pos_t, pos_p, labels=[0, 1]) if t.size else float("nan")
    return {
        "n_positive": int(pos_t.sum()),
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "kappa": float(kappa) if math.isfinite(kappa) else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "specificity": tn / (tn + fp) if tn + fp else None,
        "accuracy": (tp + tn) / t.size if t.size else None,
        "auc": dichotomous_auc(pos_t, scores) if scores is not None else None,
    }


def stenosis_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Figures from per-region rows.

    Args:
        rows: dicts with ``region``, ``reference_grade`` (or -1/None), ``predicted_grade``,
            ``probabilities`` (4), ``iou`` and ``centre_error_px`` (``None`` without a reference box) and
            ``centre_error_mm`` (``None`` when unknown).

    Returns:
        ``{"regions": {region: figures}, "kinds": {kind: pooled figures}}``.
    """

    def figures(sel: list[Mapping[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        det = [r for r in sel if r.get("iou") is not None]
        if det:
            iou = np.array([r["iou"] for r in det], dtype=np.float64)
            err = np.array([r["centre_error_px"] for r in det], dtype=np.float64)
            err_mm = np.array(
                [r["centre_error_mm"] for r in det if r.get("centre_error_mm") is not None], dtype=np.float64
            )
            out["detection"] = {
                "n": int(iou.size),
                "mean_iou": float(iou.mean()),
                "median_iou": float(np.median(iou)),
                "recall_iou_0.5": float(np.mean(iou >= 0.5)),
                "recall_iou_0.3": float(np.mean(iou >= 0.3)),
                "mean_centre_error_px": float(err.mean()),
                "mean_centre_error_mm": float(err_mm.mean()) if err_mm.size else None,
                "median_centre_error_mm": float(np.median(err_mm)) if err_mm.size else None,
            }
        graded = [r for r in sel if r.get("reference_grade") is not None and int(r["reference_grade"]) >= 0]
        if graded:
            t = np.array([int(r["reference_grade"]) for r in graded])
            p = np.array([int(r["predicted_grade"]) for r in graded])
            probs = np.array([list(r["probabilities"]) for r in graded], dtype=np.float64)
            m = grading_metrics(t, p, GRADES, probabilities=probs, positive_grades=DICHOTOMOUS_POSITIVE)
            m["dichotomous"] = {
                **m.get("dichotomous", {}),
                **_binary_figures(t, p, probs[:, list(DICHOTOMOUS_POSITIVE)].sum(axis=1)),
            }
            out["grading"] = m
        return out

    regions = {r.key: figures([row for row in rows if row["region"] == r.key]) for r in REGIONS}
    kinds = {
        kind: figures(
            [row for row in rows if any(r.key == row["region"] and r.kind == kind for r in REGIONS)]
        )
        for kind in REGION_KINDS
    }
    return {"regions": regions, "kinds": kinds}


def evaluate_stenosis(
    data: str | os.PathLike,
    *,
    weights: str | os.PathLike | None = None,
    split: str = "all",
    progress: bool | None = None,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Run both stages on every image of a manifest folder and compare with its boxes and grades.

    Args:
        data: folder with ``manifest.csv`` holding the region columns (see :mod:`spineai.grading.axial.data`).
        weights: model weights; ``None``: the shipped demo model.
        split: ``"all"`` rows, or those whose ``split`` column is ``train``/``val``/``test``.
        progress: progress bar (``None``: when interactive).
        threads: PyTorch threads (restored afterwards).

    Returns:
        A JSON-ready report: ``metrics`` (:func:`stenosis_metrics`), per-region rows, the model and
        ``reference_hallinan``.
    """
    from ...progress import track
    from ..axial.data import read_manifest
    from ..model import torch_threads
    from .model import load_stenosis_model
    from .predict import predict_regions
    from .train import box_iou, prepare_samples

    if split not in ("all", "train", "val", "test"):
        raise InputError(f"Unknown split '{split}'.", "use all, train, val or test")
    manifest = read_manifest(data, need="regions")
    records = [r for r in manifest.records if split == "all" or r.split == split]
    if not records:
        raise InputError(
            f"No row of '{manifest.path}' has split '{split}'.",
            "use --split all, or fill the manifest's split column",
        )
    model, card = load_stenosis_model(weights)
    rows: list[dict[str, Any]] = []
    with torch_threads(threads):
        samples = prepare_samples(records, int(model.detector.config["size"]), progress=progress)
        for rec, s in zip(
            records,
            track(samples, desc="grading stenosis", disable=None if progress is None else not progress),
            strict=True,
        ):
            boxes, conf, probs, _frames = predict_regions(
                model,
                s.working.astype(np.float32) / 255.0,
                s.detector_input.astype(np.float32) / 255.0,
                s.geometry,
            )
            for k, region in enumerate(REGIONS):
                ref = s.boxes[k]
                has_box = bool(np.all(np.isfinite(ref)))
                err_px = None
                if has_box:
                    err_px = math.hypot(
                        (boxes[k][0] + boxes[k][2]) / 2 - (ref[0] + ref[2]) / 2,
                        (boxes[k][1] + boxes[k][3]) / 2 - (ref[1] + ref[3]) / 2,
                    )
                rows.append(
                    {
                        "line": rec.line,
                        "image": str(rec.image),
                        "region": region.key,
                        "reference_grade": int(s.grades[k]) if s.grades[k] >= 0 else None,
                        "predicted_grade": int(np.argmax(probs[k])),
                        "probabilities": [float(v) for v in probs[k]],
                        "confidence": float(conf[k]),
                        "iou": box_iou(boxes[k], ref) if has_box else None,
                        "centre_error_px": err_px,
                        "centre_error_mm": None
                        if err_px is None or s.pixel_mm is None
                        else err_px * s.pixel_mm,
                    }
                )
    return {
        "data": str(manifest.path),
        "split": split,
        "images": len(records),
        "model": {"name": card.name, "version": card.version, "sha256": card.sha256},
        "metrics": stenosis_metrics(rows),
        "reference_hallinan": HALLINAN_REFERENCE,
        "per_region": rows,
        "intended_use": card.intended_use,
    }


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """A short human-readable summary of an evaluation report."""

    def f(v: Any, fmt: str = "{:.2f}") -> str:
        return "n/a" if v is None else fmt.format(v)

    lines = [f"{report.get('images', '?')} images ({report.get('split', 'all')})"]
    for key, m in report["metrics"]["regions"].items():
        det = m.get("detection") or {}
        g = m.get("grading") or {}
        d = g.get("dichotomous") or {}
        lines.append(
            f"  {key:<21} IoU {f(det.get('mean_iou'))}  recall@0.5 {f(det.get('recall_iou_0.5'))}  "
            f"centre err {f(det.get('mean_centre_error_mm'), '{:.1f}')} mm  | acc {f(g.get('accuracy'))}  "
            f"kappa {f(g.get('kappa'))}  lin.kappa {f(g.get('kappa_linear'))}  | 0-1 vs 2-3: kappa {f(d.get('kappa'))}  "
            f"recall {f(d.get('recall'))}"
        )
    ref = report.get("reference_hallinan")
    if ref:
        k = ref["dichotomous_kappa"]
        lines.append(
            f"  Hallinan et al. (internal test, real MRI): dichotomous kappa central {k['central_canal']:.2f}, "
            f"lateral recess {k['lateral_recess']:.2f}, foramen {k['foramen']:.2f}"
        )
    return lines
