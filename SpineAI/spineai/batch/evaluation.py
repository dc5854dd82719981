"""Scores of a case against ground truth given in the manifest (``reference`` and ``truth`` columns).

* ``reference``: a reference label map. The segmentation the case used (the model's, or the one given)
  is scored per structure and on the paper's bone / nerve classes (Dice, IoU, pixel accuracy), with
  :mod:`spineai.segmentation.metrics`.
* ``truth``: reference triangle areas (mm2): a phantom's ``truth.json`` (``triangles.<level>.<side>.
  <kind>.area_mm2``) or the short form ``{"L5-S1": {"left": {"kambin": 35.2, "safe": 8.1}}}``. Each
  measured triangle gets ``truth_area_mm2`` and ``area_error_mm2`` (measured - truth).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["add_truth_areas", "read_truth_areas", "segmentation_scores"]


def read_truth_areas(path: str | Path) -> dict[tuple[str, str, str], float]:
    """``{(level, side, kind): area_mm2}`` from a truth JSON file (see the module docstring).

    Raises:
        InputError: unreadable JSON, or no triangle area in it.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(
            f"Truth file '{p}' cannot be read as JSON ({exc}).",
            'give a truth.json of a phantom or {"L5-S1": {"left": {"kambin": 35.2}}}',
        ) from None
    tree = data.get("triangles", data) if isinstance(data, Mapping) else {}
    out: dict[tuple[str, str, str], float] = {}
    if isinstance(tree, Mapping):
        for level, sides in tree.items():
            if not isinstance(sides, Mapping):
                continue
            for side, kinds in sides.items():
                if not isinstance(kinds, Mapping):
                    continue
                for kind, value in kinds.items():
                    area = value.get("area_mm2") if isinstance(value, Mapping) else value
                    if isinstance(area, (int, float)) and not isinstance(area, bool):
                        out[(str(level), str(side), str(kind))] = float(area)
    if not out:
        raise InputError(
            f"Truth file '{p}' holds no triangle area.",
            "give triangles as {level: {side: {kind: area_mm2}}} (or a phantom's truth.json)",
        )
    return out


def add_truth_areas(rows: Sequence[dict[str, Any]], truth: Mapping[tuple[str, str, str], float]) -> None:
    """Add ``truth_area_mm2`` and ``area_error_mm2`` (measured - truth, mm2) to each triangle row in place."""
    for row in rows:
        t = truth.get((row.get("level"), row.get("side"), row.get("triangle")))  # type: ignore[arg-type]
        row["truth_area_mm2"] = t
        area = row.get("area_mm2")
        row["area_error_mm2"] = None if t is None or area is None else float(area) - float(t)


def segmentation_scores(labels: Any, reference: Any) -> dict[str, Any]:
    """Dice, IoU and pixel accuracy of ``labels`` against ``reference`` (both canonical).

    Args:
        labels: the segmentation used (``sitk.Image`` of canonical values, or anything
            :func:`spineai.api.load_segmentation` reads).
        reference: the reference label map (path or as ``labels``); resampled (nearest neighbour) onto
            the grid of ``labels`` when the grids differ.

    Returns:
        ``{"structures": {name: {dice, iou, pixel_accuracy, status}}, "bone": {...}, "nerve": {...}}``.
    """
    import numpy as np
    import SimpleITK as sitk

    from .. import anatomy, io
    from ..api import load_segmentation
    from ..segmentation.metrics import label_map_scores, three_class_scores

    pred = labels if isinstance(labels, sitk.Image) else load_segmentation(labels).image
    ref = load_segmentation(reference).image
    same = (
        pred.GetSize() == ref.GetSize()
        and np.allclose(pred.GetSpacing(), ref.GetSpacing(), atol=1e-4)
        and np.allclose(pred.GetOrigin(), ref.GetOrigin(), atol=1e-3)
        and np.allclose(pred.GetDirection(), ref.GetDirection(), atol=1e-5)
    )
    if not same:
        ref = io.resample_like(ref, pred, is_label=True)
    p = sitk.GetArrayFromImage(pred)
    t = sitk.GetArrayFromImage(ref)
    present = sorted((set(np.unique(p).tolist()) | set(np.unique(t).tolist())) - {0})
    names = {anatomy.BY_LABEL[v].name: int(v) for v in present if int(v) in anatomy.BY_LABEL}
    keep = ("dice", "iou", "pixel_accuracy", "status")
    per = label_map_scores(p, t, names, pred.GetSpacing(), distances=False)
    three = three_class_scores(p, t, pred.GetSpacing(), distances=False)
    out: dict[str, Any] = {"structures": {n: {k: s[k] for k in keep} for n, s in per.items()}}
    for group in ("bone", "nerve"):
        if group in three:
            out[group] = {k: three[group][k] for k in keep}
    return out
