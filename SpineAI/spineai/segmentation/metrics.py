"""Segmentation metrics: the paper's Dice, IoU and pixel accuracy, plus HD95 and mean surface distance.

Definitions (per structure, predicted mask P, true mask T, counted in voxels):

- ``dice`` = 2 |P and T| / (|P| + |T|)
- ``iou`` = |P and T| / |P or T|
- ``pixel_accuracy`` = |P and T| / |T| (the paper's "true predicted voxels / true voxels", i.e. sensitivity)
- ``hd95_mm``: 95th percentile Hausdorff distance between the surfaces of P and T (mm, symmetric: the
  larger of the two directed 95th percentiles), MONAI ``compute_hausdorff_distance`` with the voxel spacing
- ``msd_mm``: mean symmetric surface distance (mm), MONAI ``compute_average_surface_distance``
  (``symmetric=True``) with the voxel spacing

Edge cases: a structure absent from both masks is not scored (all values ``None``, ``"status": "absent"``);
present only in the truth: Dice, IoU and pixel accuracy 0, distances ``None`` (``"missed"``); present only
in the prediction: Dice and IoU 0, pixel accuracy and distances ``None`` (``"false_positive"``). ``None``
values are left out of the aggregates, whose ``n`` says how many cases each figure rests on.

Aggregates follow the paper's Table 2: mean, sample standard deviation (ddof = 1; ``None`` for n < 2) and
range (min, max) per structure and metric over the cases.

The JSON written by :func:`evaluate_segmentation` (``spineai evaluate segmentation --json OUT``) has the
schema ``spineai.segmentation.evaluation/1``::

    {
      "schema": "spineai.segmentation.evaluation/1",
      "model": {"name", "version", "weights", "sha256", "class_names"},
      "class_weight_correction": bool, "mirror_tta": bool, "precision": "float32|bf16",
      "data": "<folder>", "mode": "fast|paper", "postprocess": true,
      "cases": [{"case": "<id>", "seconds": 1.2,
                 "structures": {"<name>": {"dice", "iou", "pixel_accuracy", "hd95_mm", "msd_mm",
                                           "true_voxels", "predicted_voxels", "status"}},
                 "three_class": {"bone": {...}, "nerve": {...}}}],
      "summary": {"structures": {"<name>": {"dice": {"mean", "sd", "min", "max", "n"}, ...}},
                  "three_class": {"bone": {...}, "nerve": {...}}},
      "paper_reference": {"bone": {"dice": 0.9454, ...}, "nerve": {...}}
    }
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: metrics reported per structure, in this order
METRIC_NAMES: tuple[str, ...] = ("dice", "iou", "pixel_accuracy", "hd95_mm", "msd_mm")
EVALUATION_SCHEMA = "spineai.segmentation.evaluation/1"
#: SPINECT paper, Table 2 (10 local test cases), as fractions
PAPER_TABLE2: dict[str, dict[str, float]] = {
    "bone": {"pixel_accuracy": 0.9405, "iou": 0.8973, "dice": 0.9454},
    "nerve": {"pixel_accuracy": 0.9143, "iou": 0.8271, "dice": 0.9051},
}


def _bbox(mask: np.ndarray) -> tuple[slice, ...] | None:
    if not mask.any():
        return None
    slices = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        slices.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(slices)


def _surface_distances(
    pred: np.ndarray, true: np.ndarray, spacing_zyx: Sequence[float]
) -> tuple[float, float]:
    """(HD95, MSD) in mm between two non-empty boolean masks, computed on their joint bounding box."""
    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    box = _bbox(pred | true)
    assert box is not None
    box = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in box)
    p = torch.from_numpy(np.ascontiguousarray(pred[box]))[None, None].float()
    t = torch.from_numpy(np.ascontiguousarray(true[box]))[None, None].float()
    spacing = [float(s) for s in spacing_zyx]
    with warnings.catch_warnings():  # MONAI warns about its own internal use of a deprecated argument
        warnings.simplefilter("ignore", FutureWarning)
        hd95 = compute_hausdorff_distance(p, t, include_background=True, percentile=95, spacing=spacing)
        msd = compute_average_surface_distance(p, t, include_background=True, symmetric=True, spacing=spacing)
    return float(hd95.reshape(-1)[0]), float(msd.reshape(-1)[0])


def mask_scores(
    pred: np.ndarray, true: np.ndarray, spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0), distances: bool = True
) -> dict[str, Any]:
    """Scores of one structure: predicted and true boolean masks of the same shape ``(z, y, x)``.

    Args:
        pred: predicted mask.
        true: reference mask.
        spacing_zyx: voxel spacing in mm in array axis order (z, y, x).
        distances: also compute HD95 and MSD (slower).

    Returns:
        dict with ``dice``, ``iou``, ``pixel_accuracy``, ``hd95_mm``, ``msd_mm`` (``None`` where undefined),
        ``true_voxels``, ``predicted_voxels`` and ``status`` (``scored``, ``absent``, ``missed``,
        ``false_positive``).
    """
    pred = np.asarray(pred, dtype=bool)
    true = np.asarray(true, dtype=bool)
    if pred.shape != true.shape:
        raise ValueError(f"prediction {pred.shape} and truth {true.shape} differ in shape")
    n_pred, n_true = int(pred.sum()), int(true.sum())
    n_both = int(np.logical_and(pred, true).sum())
    out: dict[str, Any] = dict.fromkeys(METRIC_NAMES)
    out.update(true_voxels=n_true, predicted_voxels=n_pred)
    if n_true == 0 and n_pred == 0:
        out["status"] = "absent"
        return out
    out["dice"] = 2.0 * n_both / (n_pred + n_true)
    out["iou"] = n_both / (n_pred + n_true - n_both)
    if n_true == 0:
        out["status"] = "false_positive"
        return out
    out["pixel_accuracy"] = n_both / n_true
    if n_pred == 0:
        out["status"] = "missed"
        return out
    out["status"] = "scored"
    if distances:
        out["hd95_mm"], out["msd_mm"] = _surface_distances(pred, true, spacing_zyx)
    return out


def label_map_scores(
    pred: np.ndarray,
    true: np.ndarray,
    structures: Mapping[str, int],
    spacing_xyz: Sequence[float] = (1.0, 1.0, 1.0),
    distances: bool = True,
) -> dict[str, dict[str, Any]]:
    """Scores of every structure of two label arrays ``(z, y, x)`` sharing one geometry.

    Args:
        pred: predicted label values.
        true: reference label values (same convention as ``pred``).
        structures: structure name -> label value to score.
        spacing_xyz: voxel spacing in mm as SimpleITK reports it (x, y, z).
        distances: also compute HD95 and MSD.
    """
    if pred.shape != true.shape:
        raise ValueError(f"prediction {pred.shape} and truth {true.shape} differ in shape")
    spacing_zyx = tuple(float(s) for s in spacing_xyz)[::-1]
    return {
        name: mask_scores(pred == value, true == value, spacing_zyx, distances=distances)
        for name, value in structures.items()
    }


def image_scores(
    pred, true, structures: Mapping[str, int], distances: bool = True
) -> dict[str, dict[str, Any]]:
    """:func:`label_map_scores` for two SimpleITK label images of the same geometry."""
    import SimpleITK as sitk

    if pred.GetSize() != true.GetSize() or not np.allclose(pred.GetSpacing(), true.GetSpacing(), atol=1e-4):
        raise ValueError(
            f"prediction (size {pred.GetSize()}, spacing {pred.GetSpacing()}) and truth (size {true.GetSize()}, "
            f"spacing {true.GetSpacing()}) do not share one geometry; resample one onto the other first"
        )
    return label_map_scores(
        sitk.GetArrayViewFromImage(pred),
        sitk.GetArrayViewFromImage(true),
        structures,
        pred.GetSpacing(),
        distances,
    )


def _summary(values: Iterable[float | None]) -> dict[str, Any]:
    vals = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = int(vals.size)
    if n == 0:
        return {"mean": None, "sd": None, "min": None, "max": None, "n": 0}
    return {
        "mean": float(vals.mean()),
        "sd": float(vals.std(ddof=1)) if n >= 2 else None,
        "min": float(vals.min()),
        "max": float(vals.max()),
        "n": n,
    }


def aggregate(per_case: Sequence[Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Mean, SD (ddof 1), min, max and n of every metric per structure over cases (Table 2 style).

    Args:
        per_case: one dict per case: structure -> scores (as from :func:`label_map_scores`).
    """
    names: list[str] = []
    for case in per_case:
        names.extend(n for n in case if n not in names)
    return {
        name: {
            metric: _summary(case[name].get(metric) for case in per_case if name in case)
            for metric in METRIC_NAMES
        }
        for name in names
    }


def format_table(summary: Mapping[str, Mapping[str, Mapping[str, Any]]], percent: bool = True) -> str:
    """Plain-text table of an aggregate: ``mean +- sd (min-max)`` per structure, like the paper's Table 2."""

    def cell(s: Mapping[str, Any], scale: float, digits: int) -> str:
        if not s or s.get("mean") is None:
            return "-"
        sd = "" if s["sd"] is None else f" +- {s['sd'] * scale:.{digits}f}"
        return f"{s['mean'] * scale:.{digits}f}{sd} ({s['min'] * scale:.{digits}f}-{s['max'] * scale:.{digits}f})"

    scale = 100.0 if percent else 1.0
    header = ["structure", "n", "Dice", "IoU", "pixel accuracy", "HD95 mm", "MSD mm"]
    rows = [header]
    for name, metrics in summary.items():
        rows.append(
            [
                name,
                str(metrics["dice"]["n"]),
                cell(metrics["dice"], scale, 1),
                cell(metrics["iou"], scale, 1),
                cell(metrics["pixel_accuracy"], scale, 1),
                cell(metrics["hd95_mm"], 1.0, 2),
                cell(metrics["msd_mm"], 1.0, 2),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def three_class_scores(
    pred: np.ndarray, true: np.ndarray, spacing_xyz: Sequence[float], distances: bool = True
) -> dict[str, dict[str, Any]]:
    """The paper's bone / nerve scores of two canonical label arrays (via ``anatomy.to_three_class``)."""
    from .. import anatomy

    p = np.asarray(anatomy.to_three_class(pred))
    t = np.asarray(anatomy.to_three_class(true))
    values = _three_class_values()
    return label_map_scores(p, t, values, spacing_xyz, distances)


def _three_class_values() -> dict[str, int]:
    """Values of ``bone`` and ``nerve`` in the output of ``anatomy.to_three_class`` (the paper's 0/1/2)."""
    return {"bone": 1, "nerve": 2}


def evaluate_segmentation(
    data_dir: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    device: str | None = "auto",
    mode: str = "fast",
    postprocess: bool = True,
    label_convention: str | None = None,
    distances: bool = True,
    json_out: str | os.PathLike | None = None,
    overwrite: bool = False,
    class_weight_correction: bool = True,
    mirror_tta: bool = False,
    precision: str = "auto",
) -> dict[str, Any]:
    """Segment every case of ``data_dir`` and score it against its labels (schema in the module docstring).

    ``mode``, ``postprocess``, ``class_weight_correction``, ``mirror_tta`` and ``precision`` are those of
    :func:`~spineai.segmentation.inference.segment`.

    Each case is scored on its own CT's grid: the prediction (already resampled onto the input grid) is
    compared with the case's label map converted to canonical values and resampled (nearest neighbour)
    onto the same grid. Structures are the model's classes; labelled structures the model does not predict
    (e.g. L1 and L2 of a VerSe mask) count as background. The bone/nerve figures use
    ``anatomy.to_three_class`` on both.
    """
    import SimpleITK as sitk

    from .. import anatomy, io
    from ..outputs import check_writable, write_json
    from ..progress import track
    from .data import find_cases, read_canonical_labels
    from .inference import load_segmentation_model, segment

    if json_out is not None:
        check_writable(json_out, overwrite)
    cases = find_cases(data_dir, label_convention)
    loaded = load_segmentation_model(weights, device)
    structures = {n: anatomy.structure(n).label for n in loaded.class_names[1:]}
    results = []
    used_precision = precision
    for case in track(cases, desc="evaluating cases"):
        t0 = time.perf_counter()
        result = segment(
            case.image,
            mode=mode,
            postprocess=postprocess,
            model=loaded,
            class_weight_correction=class_weight_correction,
            mirror_tta=mirror_tta,
            precision=precision,
        )
        used_precision = result.model.get("precision")
        truth = read_canonical_labels(case.labels, case.mapping)
        truth = io.resample_like(truth, result.labels, is_label=True)
        pred_arr = sitk.GetArrayViewFromImage(result.labels)
        true_arr = sitk.GetArrayViewFromImage(truth)
        # structures the model does not predict (e.g. L1, L2 in a VerSe mask) are background for scoring
        true_arr = np.where(np.isin(true_arr, list(structures.values())), true_arr, 0).astype(np.uint8)
        spacing = result.labels.GetSpacing()
        results.append(
            {
                "case": case.case_id,
                "seconds": round(time.perf_counter() - t0, 2),
                "structures": label_map_scores(pred_arr, true_arr, structures, spacing, distances),
                "three_class": three_class_scores(pred_arr, true_arr, spacing, distances),
            }
        )
    card = loaded.card
    report = {
        "schema": EVALUATION_SCHEMA,
        "model": {
            "name": card.name,
            "version": card.version,
            "weights": str(loaded.weights_path),
            "sha256": card.sha256,
            "class_names": list(loaded.class_names),
        },
        "data": str(Path(data_dir)),
        "mode": mode,
        "postprocess": postprocess,
        "class_weight_correction": loaded.logit_offsets(class_weight_correction) is not None,
        "mirror_tta": bool(mirror_tta),
        "precision": used_precision if results else precision,
        "cases": results,
        "summary": {
            "structures": aggregate([r["structures"] for r in results]),
            "three_class": aggregate([r["three_class"] for r in results]),
        },
        "paper_reference": PAPER_TABLE2,
    }
    if json_out is not None:
        write_json(json_out, report, overwrite=overwrite)
    return report
