"""Evaluation of the sagittal grader on a folder of graded slices: :func:`evaluate_sagittal`.

Each patient's slice is graded exactly as ``spineai grade sagittal`` grades it (automatic orientation
for pictures, the locator naming the levels); predicted discs are matched to the reference rows by IVD
number. Every grading gets accuracy, balanced accuracy, Cohen's kappa (unweighted and linear-weighted),
Gwet's AC1 with its 95 % CI and the confusion matrix (:func:`~spineai.grading.metrics.grading_metrics`);
Pfirrmann is also dichotomised (1-3 vs 4-5, AUC of P(4) + P(5) with DeLong's CI), Modic as none vs any
type, and every binary grading gets its AUC. Discs of the reference that were not graded (slice refused,
disc not found) count in ``coverage``, not in the figures.

With ``disc_crops/`` in the folder, the locator is also scored against the crop positions: a reference
disc is found when a predicted centre lies within half the local reference disc spacing; the error is
the distance in mm (pixel spacing from ``overview.csv``) and the level naming is checked where the crops
include L5/S1 (at least as many crops as graded discs) and the stored orientation is known.

SpineNet's external figures are reported beside ours for orientation (different data and readers, so
not a head-to-head comparison).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..progress import track
from .datasets import (
    PatientSplit,
    SagittalCase,
    crop_files,
    read_sagittal_folder,
    read_slice_array,
    recover_disc_boxes,
)
from .metrics import grading_metrics
from .model import load_grading_model
from .tasks import GRADING_TASKS

__all__ = ["SPINENET_REFERENCE", "evaluate_sagittal", "localisation_against_crops"]

#: SpineNet's published external-validation figures, reported beside ours
SPINENET_REFERENCE = {
    "source": "SpineNet, external validation (published figures)",
    "pfirrmann": {"balanced_accuracy": 0.78, "kappa": 0.68},
    "modic": {"balanced_accuracy": 0.86},
}
_DICHOTOMY = {"pfirrmann": [4, 5], "modic": [1, 2, 3]}


def _split_patients(card_extra: dict[str, Any], split: str, available: Sequence[str]) -> list[str]:
    if split == "all":
        return list(available)
    if "split" not in card_extra:
        raise InputError(
            f"The model's card records no patient split, so '--split {split}' cannot be chosen.",
            "use --split all (every patient of the folder), or weights whose card lists its split",
        )
    wanted = set(PatientSplit.from_dict(card_extra["split"]).of(split))
    return [p for p in available if p in wanted]


def localisation_against_crops(
    case: SagittalCase,
    root: Path,
    predicted_index: Sequence[Sequence[float]],
    predicted_ivd: Sequence[int],
    stored_orientation: str,
) -> dict[str, Any] | None:
    """Locator errors of one slice against its disc crops (``None`` when it has no exact crop matches).

    Args:
        case: the graded case.
        root: the data folder (holding ``disc_crops/``).
        predicted_index: predicted disc centres as picture indices ``(x, y)`` = (column, row) as stored.
        predicted_ivd: predicted IVD numbers.
        stored_orientation: ``"caudal_top"``, ``"upright"`` or ``"unknown"`` (naming not checked).
    """
    files = crop_files(root, case.patient)
    if not files:
        return None
    scan = read_slice_array(case.scan_path)
    boxes = recover_disc_boxes(scan, files)
    if not boxes or any(b.ncc < 0.95 for b in boxes):
        return None
    ref = np.array([b.centre_rc for b in boxes])
    caudal_first = np.argsort(ref[:, 0]) if stored_orientation == "caudal_top" else np.argsort(-ref[:, 0])
    ref = ref[caudal_first]
    naming_known = stored_orientation in ("caudal_top", "upright") and len(boxes) >= len(case.gradings)
    pred = np.array([[p[1], p[0]] for p in predicted_index], dtype=np.float64).reshape(-1, 2)
    spacing_mm = float(case.pixel_spacing_mm[0]) if case.pixel_spacing_mm else None
    rows = []
    for k, r in enumerate(ref):
        neighbours = [np.linalg.norm(ref[j] - r) for j in (k - 1, k + 1) if 0 <= j < len(ref)]
        tolerance = 0.5 * float(np.mean(neighbours)) if neighbours else np.inf
        if len(pred):
            dist = np.linalg.norm(pred - r, axis=1)
            j = int(np.argmin(dist))
            found = bool(dist[j] <= tolerance)
            rows.append(
                {
                    "reference_ivd": k + 1 if naming_known else None,
                    "found": found,
                    "error_px": float(dist[j]),
                    "error_mm": float(dist[j] * spacing_mm) if spacing_mm else None,
                    "predicted_ivd": int(predicted_ivd[j]) if found else None,
                }
            )
        else:
            rows.append(
                {
                    "reference_ivd": k + 1 if naming_known else None,
                    "found": False,
                    "error_px": None,
                    "error_mm": None,
                    "predicted_ivd": None,
                }
            )
    return {"patient": case.patient, "discs": rows}


def _summarise_localisation(per_case: list[dict[str, Any]]) -> dict[str, Any]:
    discs = [d for c in per_case for d in c["discs"]]
    found = [d for d in discs if d["found"]]
    errors_mm = np.array([d["error_mm"] for d in found if d["error_mm"] is not None], dtype=np.float64)
    named = [d for d in found if d["reference_ivd"] is not None]
    return {
        "patients": len(per_case),
        "reference_discs": len(discs),
        "found": len(found),
        "detection_rate": len(found) / len(discs) if discs else None,
        "error_mm_median": float(np.median(errors_mm)) if errors_mm.size else None,
        "error_mm_mean": float(np.mean(errors_mm)) if errors_mm.size else None,
        "error_mm_p90": float(np.percentile(errors_mm, 90)) if errors_mm.size else None,
        "level_naming_checked": len(named),
        "level_naming_accuracy": (
            float(np.mean([d["predicted_ivd"] == d["reference_ivd"] for d in named])) if named else None
        ),
    }


def evaluate_sagittal(
    data_dir: str | os.PathLike,
    *,
    weights: str | os.PathLike | None = None,
    split: str = "test",
    strict: bool = False,
    stored_orientation: str = "unknown",
    localisation: bool = True,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Grade every patient of a SPIDER-like folder and compare with its gradings.

    Args:
        data_dir: folder with ``scans/``, ``radiological_gradings.csv`` (and optionally ``overview.csv``,
            ``disc_crops/``).
        weights: model weights; ``None``: the shipped model.
        split: ``"test"`` / ``"val"`` / ``"train"`` (patients of the model card's split present in the
            folder) or ``"all"``.
        strict: a graded patient without a scan is an error (default: left out and listed).
        stored_orientation: how the folder stores its slices, used only to number the crop positions
            for the level-naming check (``"caudal_top"`` for the public SPIDER export).
        localisation: score the locator against ``disc_crops/`` when present.
        progress: progress bar (``None``: when interactive).

    Returns:
        A JSON-ready report (see the module docstring).
    """
    from .sagittal import grade_sagittal

    if split not in ("test", "val", "train", "all"):
        raise InputError(f"Unknown split '{split}'.", "use test, val, train or all")
    folder = read_sagittal_folder(data_dir, strict=strict, stored_orientation=stored_orientation)
    model, card = load_grading_model(weights)
    by_patient = folder.by_patient()
    patients = _split_patients(card.extra or {}, split, list(by_patient))
    if not patients:
        raise InputError(
            f"No patient of the '{split}' split of the model's card is in '{folder.root}'.",
            "evaluate the folder the model was split on, or use --split all",
        )
    truth: dict[str, list[int]] = {t.key: [] for t in GRADING_TASKS}
    pred: dict[str, list[int]] = {t.key: [] for t in GRADING_TASKS}
    prob: dict[str, list[list[float]]] = {t.key: [] for t in GRADING_TASKS}
    failures, per_disc, loc_cases = [], [], []
    orientations: dict[str, int] = {}
    n_reference = 0
    unmatched_predictions = 0
    for patient in track(
        patients, desc="grading sagittal slices", disable=None if progress is None else not progress
    ):
        case = by_patient[patient]
        n_reference += len(case.gradings)
        try:
            result = grade_sagittal(case.scan_path, weights=weights, gradcam=None)
        except InputError as exc:
            failures.append(
                {"patient": patient, "scan": str(case.scan_path), "error": str(exc).splitlines()[0]}
            )
            continue
        orientations[result.orientation] = orientations.get(result.orientation, 0) + 1
        for disc in result.discs:
            reference = case.gradings.get(disc.ivd)
            if reference is None:
                unmatched_predictions += 1
                continue
            row = {"patient": patient, "ivd": disc.ivd, "level": disc.level}
            for task in GRADING_TASKS:
                truth[task.key].append(reference[task.key])
                pred[task.key].append(disc.grades[task.key])
                prob[task.key].append([disc.probabilities[task.key][str(g)] for g in task.grades])
                row[f"{task.key}_reference"] = reference[task.key]
                row[f"{task.key}_predicted"] = disc.grades[task.key]
            per_disc.append(row)
        if localisation and result.input_kind == "picture":
            entry = localisation_against_crops(
                case,
                folder.root,
                [d.centre_index for d in result.discs],
                [d.ivd for d in result.discs],
                stored_orientation,
            )
            if entry is not None:
                loc_cases.append(entry)
    gradings = {}
    for task in GRADING_TASKS:
        positive = _DICHOTOMY.get(task.key, [1] if task.grades == (0, 1) else None)
        gradings[task.key] = grading_metrics(
            truth[task.key],
            pred[task.key],
            task.grades,
            probabilities=np.asarray(prob[task.key]) if prob[task.key] else None,
            positive_grades=positive,
        )
        gradings[task.key]["title"] = task.title
    matched = len(per_disc)
    report: dict[str, Any] = {
        "data": str(folder.root),
        "split": split,
        "patients": len(patients),
        "patients_graded": len(patients) - len(failures),
        "model": {"name": card.name, "version": card.version, "sha256": card.sha256},
        "reference_discs": n_reference,
        "matched_discs": matched,
        "coverage": matched / n_reference if n_reference else None,
        "predicted_discs_without_reference": unmatched_predictions,
        "orientation_applied": orientations,
        "gradings": gradings,
        "reference_spinenet": SPINENET_REFERENCE,
        "failures": failures,
        "skipped": folder.skipped,
        "per_disc": per_disc,
        "intended_use": card.intended_use,
    }
    if loc_cases:
        report["localisation"] = {**_summarise_localisation(loc_cases), "per_patient": loc_cases}
    return report


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A short human-readable summary of an evaluation report."""
    lines = [
        f"{report['patients_graded']}/{report['patients']} patients graded, {report['matched_discs']}/"
        f"{report['reference_discs']} reference discs matched (split: {report['split']})",
    ]
    for m in report["gradings"].values():
        if not m.get("n"):
            continue
        ac1 = m.get("ac1") or {}

        def f(v: Any) -> str:
            return "n/a" if v is None else f"{v:.2f}"

        extra = ""
        dich = m.get("dichotomous") or {}
        if dich.get("auc"):
            extra = f", AUC({'/'.join(map(str, dich['positive_grades']))}) {dich['auc']['auc']:.2f}"
        lines.append(
            f"  {m['title']:<40} acc {f(m.get('accuracy'))}  bal.acc {f(m.get('balanced_accuracy'))}  "
            f"kappa {f(m.get('kappa'))}  lin.kappa {f(m.get('kappa_linear'))}  "
            f"AC1 {f(ac1.get('ac1'))} [{f(ac1.get('ci_low'))}, {f(ac1.get('ci_high'))}]{extra}"
        )
    ref = report.get("reference_spinenet", {})
    if ref:
        lines.append(
            f"  SpineNet (external, for orientation): Pfirrmann bal.acc {ref['pfirrmann']['balanced_accuracy']:.2f}, "
            f"kappa {ref['pfirrmann']['kappa']:.2f}; Modic bal.acc {ref['modic']['balanced_accuracy']:.2f}"
        )
    loc = report.get("localisation")
    if loc:

        def g(v: Any, fmt: str = "{:.1f}") -> str:
            return "n/a" if v is None else fmt.format(v)

        lines.append(
            f"  locator: {loc['found']}/{loc['reference_discs']} crop discs found, median error "
            f"{g(loc['error_mm_median'])} mm, level naming {g(loc['level_naming_accuracy'], '{:.2f}')}"
        )
    return lines
