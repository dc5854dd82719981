"""Scoring of the radiograph herniation model, per level and per patient, as the seed paper reports it.

Image probabilities are averaged per patient (the paper's "average value of the predicted probability for
each patient"); each level is then scored on patients: AUC (with DeLong's 95 % CI where each class has at
least two patients), and precision, recall (sensitivity), F1 and accuracy at the level's threshold (the
model card's, i.e. the mean of the folds' Youden-optimal thresholds, unless one is given). The paper's
baseline task, "any herniation", is scored with the patient's largest level probability.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .network import LEVELS

__all__ = [
    "PAPER_FIGURES",
    "evaluate_radiograph",
    "level_report",
    "patient_means",
    "predict_records_discs",
    "threshold_metrics",
]

#: the seed paper's held-out test figures (Table 5) and its overall AUC
PAPER_FIGURES: dict[str, Any] = {
    "source": "lumbar HNP from radiographs, EfficientNet-B5, 3512 test patients (seed paper, Table 5)",
    "auc_overall": 0.73,
    "per_level": {
        "L1-L2": {"precision": 0.05, "recall": 0.60, "f1": 0.09, "auc": 0.68},
        "L2-L3": {"precision": 0.09, "recall": 0.65, "f1": 0.15, "auc": 0.68},
        "L3-L4": {"precision": 0.18, "recall": 0.38, "f1": 0.24, "auc": 0.63},
        "L4-L5": {"precision": 0.41, "recall": 0.47, "f1": 0.43, "auc": 0.67},
        "L5-S1": {"precision": 0.36, "recall": 0.55, "f1": 0.43, "auc": 0.72},
    },
    "accuracy": 0.691,
}


def patient_means(
    probabilities: np.ndarray, patients: Sequence[str], labels: np.ndarray | None = None
) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """Mean image probability per patient.

    Args:
        probabilities: ``(N, 5)`` per image.
        patients: patient id per image.
        labels: ``(N, 5)`` per image (must agree within a patient), or ``None``.

    Returns:
        ``(patient ids (first-seen order), P (n_patients, 5), Y (n_patients, 5) or None)``.

    Raises:
        InputError: one patient's images carry different labels.
    """
    p = np.asarray(probabilities, dtype=float)
    order: dict[str, list[int]] = {}
    for i, pid in enumerate(patients):
        order.setdefault(str(pid), []).append(i)
    ids = list(order)
    pm = np.stack([p[idx].mean(axis=0) for idx in order.values()]) if ids else np.zeros((0, p.shape[1]))
    ym = None
    if labels is not None:
        y = np.asarray(labels)
        rows = []
        for pid, idx in order.items():
            if np.any(y[idx] != y[idx[0]]):
                raise InputError(
                    f"The images of patient '{pid}' carry different herniation labels.",
                    "labels come from the patient's MRI: give every image of a patient the same labels",
                )
            rows.append(y[idx[0]])
        ym = np.stack(rows) if rows else np.zeros((0, y.shape[1]), dtype=np.int64)
    return ids, pm, ym


def _nan_to_none(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def threshold_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """Precision, recall, F1, accuracy and counts at ``threshold`` (positive when ``p >= threshold``)."""
    from ..stats import binary_metrics

    m = binary_metrics(y, p, threshold)
    f1 = 2 * m.tp / (2 * m.tp + m.fp + m.fn) if (2 * m.tp + m.fp + m.fn) else float("nan")
    return {
        "threshold": float(threshold),
        "precision": _nan_to_none(m.ppv),
        "recall": _nan_to_none(m.sensitivity),
        "f1": _nan_to_none(f1),
        "specificity": _nan_to_none(m.specificity),
        "accuracy": _nan_to_none(m.accuracy),
        "tp": m.tp,
        "fp": m.fp,
        "tn": m.tn,
        "fn": m.fn,
    }


def _auc(y: np.ndarray, p: np.ndarray) -> dict[str, Any] | None:
    from sklearn.metrics import roc_auc_score

    from ..stats import delong_ci

    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        return None
    if n_pos >= 2 and n_neg >= 2:
        return delong_ci(y, p).to_dict()
    return {
        "auc": float(roc_auc_score(y, p)),
        "se": None,
        "ci_low": None,
        "ci_high": None,
        "level": 0.95,
        "n_positive": n_pos,
        "n_negative": n_neg,
        "method": "no interval (fewer than 2 cases of a class)",
    }


def level_report(y: np.ndarray, p: np.ndarray, thresholds: Sequence[float]) -> dict[str, Any]:
    """Per-level and overall patient-level figures.

    Args:
        y: ``(P, 5)`` 0/1 labels per patient; p: ``(P, 5)`` probabilities; thresholds: one per level.

    Returns:
        ``{"per_level": {level: {...}}, "mean_auc", "any_hnp": {...}, "accuracy_all_levels"}``.
    """
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    per_level = {}
    aucs = []
    correct = np.zeros(y.shape, dtype=bool)
    for k, lv in enumerate(LEVELS):
        entry: dict[str, Any] = {"n_positive": int(y[:, k].sum()), "n_negative": int(len(y) - y[:, k].sum())}
        entry["auc"] = _auc(y[:, k], p[:, k])
        if entry["auc"] is not None:
            aucs.append(entry["auc"]["auc"])
        entry.update(threshold_metrics(y[:, k], p[:, k], float(thresholds[k])))
        correct[:, k] = (p[:, k] >= float(thresholds[k])) == (y[:, k] == 1)
        per_level[lv] = entry
    any_y = (y.max(axis=1) > 0).astype(int)
    any_p = p.max(axis=1)
    return {
        "n_patients": int(len(y)),
        "per_level": per_level,
        "mean_auc": float(np.mean(aucs)) if aucs else None,
        "any_hnp": {
            "n_positive": int(any_y.sum()),
            "auc": _auc(any_y, any_p),
            "score": "the patient's largest level probability",
        },
        "accuracy_all_levels": float(correct.mean()) if correct.size else None,
    }


def predict_records_discs(
    model: Any, records: Sequence[Any]
) -> tuple[np.ndarray, list[str], np.ndarray, list[str], dict[str, Any]]:
    """Disc-crops model on every record: ``(probabilities (N, 5), patients, labels (N, 5), failed, discs)``.

    Each image is read and checked (:func:`~spineai.radiograph.image.load_radiograph`), its discs are
    located (or taken from the record's ``disc_xy``), cropped at the record's ``pixel_mm``, the image's
    DICOM spacing, or the scale estimated from the discs, and read by the ensemble. ``discs`` summarises the
    locator: median confidence per level, images whose discs came out of order, and, where the record gives
    disc positions, the median distance (pixels) between located and given centres.
    """
    from ..errors import SpineAIError
    from ..progress import track
    from .image import load_radiograph
    from .reader import read_disc_levels

    probs, patients, labels, failed, conf, out_of_order, dist = [], [], [], [], [], 0, []
    for rec in track(list(records), desc="radiographs (disc crops)"):
        try:
            loaded = load_radiograph(rec.image)
            px = getattr(rec, "pixel_mm", float("nan"))
            src = "given"
            if not np.isfinite(px) and loaded.info.get("pixel_spacing_known"):
                sp = loaded.image.GetSpacing()
                px, src = float(np.sqrt(sp[0] * sp[1])), "image spacing"
            reading = read_disc_levels(
                model.ensemble, loaded.image, pixel_mm=px if np.isfinite(px) else None, pixel_mm_source=src
            )
        except SpineAIError as exc:
            failed.append(f"row {rec.row} ({rec.image.name}): {str(exc).splitlines()[0]}")
            continue
        probs.append(reading.probabilities)
        patients.append(rec.patient_id)
        labels.append(rec.labels)
        if reading.located is not None:
            conf.append(reading.located.confidence)
            out_of_order += int(not reading.located.in_order)
            given = getattr(rec, "disc_xy", None)
            if given is not None and np.all(np.isfinite(given)):
                dist.append(np.linalg.norm(reading.located.input_rc - np.asarray(given)[:, ::-1], axis=1))
    summary = {
        "median_confidence": dict(zip(LEVELS, np.median(conf, axis=0).tolist(), strict=True))
        if conf
        else None,
        "images_out_of_order": int(out_of_order),
        "median_error_px_vs_given": dict(zip(LEVELS, np.median(dist, axis=0).tolist(), strict=True))
        if dist
        else None,
    }
    p = np.asarray(probs).reshape(-1, len(LEVELS))
    y = np.asarray(labels).reshape(-1, len(LEVELS))
    return p, patients, y, failed, summary


def evaluate_radiograph(
    data: str | os.PathLike,
    *,
    weights: str | os.PathLike | None = None,
    json_out: str | os.PathLike | None = None,
    thresholds: Sequence[float] | None = None,
    skip_bad_rows: bool = False,
    overwrite: bool = False,
    device: str = "cpu",
) -> dict[str, Any]:
    """Predict every image of a manifest and score the model per level on patients.

    Args:
        data: manifest CSV or folder with ``manifest.csv`` (see :mod:`spineai.radiograph.data`).
        weights: ensemble weights (default: the shipped demo model).
        json_out: write the report here (refuses to overwrite unless ``overwrite``).
        thresholds: five thresholds (default: the model card's).
        skip_bad_rows: leave out bad manifest rows instead of failing.
        overwrite: replace ``json_out``.
        device: ``"cpu"`` or ``"cuda"``.

    Returns:
        The report: per-level figures, the paper's beside them, the patients' probabilities.
    """
    from ..outputs import check_writable, write_json
    from .data import load_radiograph_data, prepare_arrays
    from .predict import load_radiograph_model, predict_arrays

    if json_out is not None:
        check_writable(Path(json_out), overwrite)
    model = load_radiograph_model(weights, device=device)
    records, problems = load_radiograph_data(data, skip_bad_rows=skip_bad_rows)
    discs_summary = None
    if model.design == "disc-crops":
        probs, patients, labels, failed, discs_summary = predict_records_discs(model, records)
        n_images = len(probs)
    else:
        arrays = prepare_arrays(records, model.image_size)
        failed, patients, labels, n_images = arrays.failed, arrays.patients, arrays.labels, len(arrays.x)
        probs = predict_arrays(model, arrays.x, device=device) if n_images else np.zeros((0, len(LEVELS)))
    problems = problems + [f"unreadable: {f}" for f in failed]
    if n_images == 0:
        raise InputError(f"No usable image in '{data}'.", "check the manifest's image paths")
    ids, pm, ym = patient_means(probs, patients, labels)
    thr = list(model.thresholds) if thresholds is None else [float(t) for t in thresholds]
    if len(thr) != len(LEVELS):
        raise InputError(
            f"{len(thr)} thresholds given; one per level ({len(LEVELS)}) is needed.",
            "pass five thresholds, L1-L2 to L5-S1",
        )
    report = level_report(ym, pm, thr)
    report.update(
        {
            "data": str(data),
            "n_images": int(n_images),
            "design": model.design,
            "located_discs": discs_summary,
            "threshold_source": "model card (mean of the folds' Youden thresholds)"
            if thresholds is None
            else "given",
            "model": model.summary(),
            "excluded": problems,
            "paper": PAPER_FIGURES,
            "patients": [
                {
                    "patient_id": pid,
                    **{lv: float(pm[i, k]) for k, lv in enumerate(LEVELS)},
                    "labels": [int(v) for v in ym[i]],
                }
                for i, pid in enumerate(ids)
            ],
            "intended_use": "Research use only; not for clinical decisions.",
        }
    )
    if json_out is not None:
        write_json(Path(json_out), report, overwrite=overwrite)
    return report
