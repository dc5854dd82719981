"""Rows and columns of the tables the SpineAI modules show.

- Structure table (Segmentation module, a ``vtkMRMLTableNode``): one row per structure of a label map with
  its voxel count, volume (mm3) and extent along the patient's axes; structures the model should find but
  did not are listed with zero volume so a missing L5 or S1 is obvious.
- Model table (hub and Grading module, a ``QTableWidget``): one row per installed model card.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from typing import Any

import numpy as np

from .labels import SegmentSpec

#: (column name, unit) of the structure table
STRUCTURE_TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Structure", ""),
    ("Label", ""),
    ("Voxels", ""),
    ("Volume", "mm3"),
    ("Cranio-caudal extent", "mm"),
)


def structure_rows(
    labels: np.ndarray,
    ijk_to_ras: Sequence[Sequence[float]] | np.ndarray,
    specs: Iterable[SegmentSpec],
) -> list[dict[str, Any]]:
    """One row per structure in ``specs``: voxel count, volume and cranio-caudal extent.

    Args:
        labels: integer label array indexed ``[k, j, i]`` (``arrayFromVolume`` / ``GetArrayFromImage``).
        ijk_to_ras: the label map's 4x4 IJKToRAS matrix (mm); only its third row (S) and the voxel volume
            (|det| of the 3x3 part) matter, so an LPS index-to-physical matrix gives the same numbers.
        specs: the structures to report (e.g. the sidecar's), in display order.

    Returns:
        dicts keyed by the names in :data:`STRUCTURE_TABLE_COLUMNS`. The cranio-caudal extent is the
        distance along the patient's superior axis between the structure's outermost voxel faces
        (0 for an absent structure), so it is right for axial, sagittal and oblique grids alike.
    """
    arr = np.asarray(labels)
    if arr.ndim != 3:
        raise ValueError(f"Label array must be 3D [k, j, i], got shape {arr.shape}.")
    m = np.asarray(ijk_to_ras, dtype=float)
    if m.shape != (4, 4):
        raise ValueError(f"IJKToRAS must be a 4x4 matrix, got shape {m.shape}.")
    voxel_mm3 = abs(float(np.linalg.det(m[:3, :3])))
    if voxel_mm3 <= 0:
        raise ValueError("IJKToRAS has a zero-volume voxel; the label map geometry is broken.")
    superior = m[2, :3]  # mm of superior travel per step along i, j, k
    voxel_height = float(np.abs(superior).sum())
    values, counts = np.unique(arr, return_counts=True)
    count_of = dict(zip(values.tolist(), counts.tolist(), strict=True))
    rows = []
    for spec in specs:
        n = int(count_of.get(spec.label, 0))
        extent = 0.0
        if n:
            k, j, i = np.nonzero(arr == spec.label)
            s = superior[0] * i + superior[1] * j + superior[2] * k
            extent = float(s.max() - s.min()) + voxel_height
        rows.append(
            {
                "Structure": spec.name,
                "Label": spec.label,
                "Voxels": n,
                "Volume": round(n * voxel_mm3, 3),
                "Cranio-caudal extent": round(extent, 3),
            }
        )
    return rows


def missing_structures(rows: Iterable[Mapping[str, Any]], required: Iterable[str]) -> list[str]:
    """Names in ``required`` whose row is absent or has no voxels (e.g. ``["L5", "S1"]`` for triangles)."""
    present = {r["Structure"] for r in rows if r.get("Voxels", 0) > 0}
    return [name for name in required if name not in present]


# ------------------------------------------------------------------------------------------ model cards
#: columns of the model table
MODEL_TABLE_COLUMNS: tuple[str, ...] = (
    "Model",
    "Task",
    "Source",
    "Training data",
    "Figures",
    "Weights",
    "Intended use",
)


def card_dict(card: Any) -> dict[str, Any]:
    """A model card as a plain dict, whether the engine returns dicts, dataclasses or objects."""
    if isinstance(card, Mapping):
        return dict(card)
    to_dict = getattr(card, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    if is_dataclass(card) and not isinstance(card, type):
        return asdict(card)
    return {k: v for k, v in vars(card).items() if not k.startswith("_")}


def _unpack(item: Any) -> tuple[dict[str, Any], str, str]:
    """``(card dict, weights status, source)`` of a card or an ``InstalledModel``."""
    if hasattr(item, "card") and hasattr(item, "status"):
        return card_dict(item.card), str(item.status), str(getattr(item, "source", ""))
    d = card_dict(item)
    return d, _text(d.get("status")), _text(d.get("source"))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def format_figures(figures: Any) -> str:
    """Measured figures as one readable line, e.g. ``"dice_bone: 0.94; dice_nerve: 0.9"``."""
    return _text(figures)


def model_rows(models: Iterable[Any]) -> list[dict[str, str]]:
    """Rows of the model table, one per model, keyed by :data:`MODEL_TABLE_COLUMNS`.

    Args:
        models: ``InstalledModel`` objects (card + weights status + source), or bare model cards
            (dicts, dataclasses or objects) from ``spineai.weights.list_models()``.
    """
    rows = []
    for item in models:
        d, status, source = _unpack(item)
        rows.append(
            {
                "Model": _text(d.get("name")) + (f" {d['version']}" if d.get("version") else ""),
                "Task": _text(d.get("task")),
                "Source": source,
                "Training data": _text(d.get("training_data")),
                "Figures": format_figures(d.get("metrics") if d.get("metrics") else d.get("figures")),
                "Weights": status,
                "Intended use": _text(d.get("intended_use")),
            }
        )
    return rows


#: grading families shown by the Grading module: (key, title, words one of which the task name contains)
GRADING_FAMILIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("outcome", "tESI outcome (sagittal T2)", ("outcome",)),
    ("axial", "Axial MRI grading (LDH, LCCS, LNRC)", ("axial", "ldh", "lccs", "lnrc")),
    ("radiograph", "Herniation from radiographs", ("radiograph", "xray", "x-ray")),
    ("stenosis", "Stenosis detection and grading", ("stenosis",)),
    ("sagittal", "Sagittal MRI disc grading", ("pfirrmann", "sagittal_grading", "disc_grading")),
)

#: keys accepted as a family filter
GRADING_FILTERS: tuple[str, ...] = ("all",) + tuple(key for key, _t, _w in GRADING_FAMILIES)


def grading_family(task: str) -> str | None:
    """The grading family key of a model task name, or ``None`` for a non-grading task (segmentation)."""
    t = (task or "").lower()
    for key, _title, words in GRADING_FAMILIES:
        if any(w in t for w in words):
            return key
    return None


def grading_models(models: Iterable[Any], family: str = "all") -> list[Any]:
    """The grading models (optionally of one family) among cards or ``InstalledModel`` objects."""
    if family not in GRADING_FILTERS:
        raise ValueError(f"Unknown grading family '{family}'; use one of {', '.join(GRADING_FILTERS)}.")
    out = []
    for item in models:
        d, _status, _source = _unpack(item)
        fam = grading_family(str(d.get("task", "")))
        if fam is not None and (family == "all" or fam == family):
            out.append(item)
    return out
