"""Rows and columns of the tables the SpineAI modules show.

- Structure table (Segmentation module, a ``vtkMRMLTableNode``): one row per structure of a label map with
  its voxel count, volume (mm3) and extent along the patient's axes; structures the model should find but
  did not are listed with zero volume so a missing L5 or S1 is obvious.
- Model table (hub and Grading module, a ``QTableWidget``): one row per installed model card, and the full
  card of one model (:func:`card_details`).
- Result tables (``vtkMRMLTableNode``): the engine's ``.tsv`` files (triangle measurements, disc grades) and
  JSON summaries (outcome) as typed columns with units (:class:`TableData`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
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
#: (the first family whose word the task contains wins: "axial_stenosis" is a stenosis model)
GRADING_FAMILIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("outcome", "tESI outcome (sagittal T2)", ("outcome",)),
    ("stenosis", "Stenosis detection and grading", ("stenosis",)),
    ("radiograph", "Herniation from radiographs", ("radiograph", "xray", "x-ray")),
    ("axial", "Axial MRI grading (LDH, LCCS, LNRC)", ("axial", "ldh", "lccs", "lnrc")),
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


# ------------------------------------------------------------------------------ result tables (TSV/JSON)
#: column-name endings and the unit they mean (the engine names columns by unit: ``area_mm2``, ``tilt_deg``)
UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_mm3", "mm3"),
    ("_mm2", "mm2"),
    ("_mm", "mm"),
    ("_deg", "degrees"),
    ("_s", "s"),
)


def unit_of_column(name: str) -> str:
    """The unit a column name states by its ending (``"area_mm2"`` -> ``"mm2"``), "" when none."""
    for suffix, unit in UNIT_SUFFIXES:
        if name.endswith(suffix):
            return unit
    return ""


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a result table: its name, whether it holds numbers, and its unit ("" when none)."""

    name: str
    numeric: bool
    unit: str = ""


@dataclass(frozen=True)
class TableData:
    """A result table ready for a ``vtkMRMLTableNode``: numeric columns hold floats (NaN for an empty
    cell), the others strings."""

    columns: tuple[ColumnSpec, ...]
    rows: tuple[dict[str, Any], ...]

    def column(self, name: str) -> list[Any]:
        """The values of one column, top to bottom."""
        if name not in {c.name for c in self.columns}:
            raise KeyError(f"No column '{name}'; the table has {', '.join(c.name for c in self.columns)}.")
        return [row[name] for row in self.rows]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value


def table_from_records(
    records: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> TableData:
    """A :class:`TableData` from dict rows (column order: ``columns``, else first appearance).

    A column is numeric when every non-empty cell is a number (``bool`` and ``"yes"/"no"`` stay text) and
    at least one cell is filled; its empty cells become NaN. Units come from the column names.
    """
    names: list[str] = list(columns) if columns is not None else []
    if columns is None:
        for record in records:
            for key in record:
                if key not in names:
                    names.append(str(key))
    specs = []
    for name in names:
        cells = [r.get(name) for r in records]
        filled = [c for c in cells if c is not None and str(c).strip() != ""]
        numeric = bool(filled) and all(
            not isinstance(c, bool) and _number(str(c)) is not None for c in filled
        )
        specs.append(ColumnSpec(name, numeric, unit_of_column(name)))
    rows = []
    for record in records:
        row: dict[str, Any] = {}
        for spec in specs:
            value = record.get(spec.name)
            empty = value is None or str(value).strip() == ""
            if spec.numeric:
                row[spec.name] = float("nan") if empty else float(str(value))
            else:
                row[spec.name] = "" if empty else _text(value)
        rows.append(row)
    return TableData(tuple(specs), tuple(rows))


def parse_tsv(text: str, source: str = "table") -> TableData:
    """A tab-separated table with a header line (the engine's ``.tsv`` files) as :class:`TableData`.

    Raises:
        ValueError: empty text, or a row with more cells than the header.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f"{source} is empty; the engine writes a header line and one row per result.")
    header = lines[0].split("\t")
    records = []
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) > len(header):
            raise ValueError(f"{source}, line {number}: {len(cells)} cells for {len(header)} columns.")
        cells += [""] * (len(header) - len(cells))
        records.append(dict(zip(header, cells, strict=True)))
    return table_from_records(records, header)


def read_tsv(path: str | os.PathLike) -> TableData:
    """:func:`parse_tsv` of a file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"Table '{p}' does not exist; check the engine log.")
    return parse_tsv(p.read_text(encoding="utf-8"), source=str(p))


def flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested JSON as ``(dotted key, value)`` pairs; lists of plain values stay one value.

    ``{"model": {"name": "x"}, "roi": {"lower": [1, 2]}}`` -> ``[("model.name", "x"), ("roi.lower", [1, 2])]``.
    """
    out: list[tuple[str, Any]] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            out.extend(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, (list, tuple)) and any(isinstance(v, (Mapping, list, tuple)) for v in data):
        for i, value in enumerate(data):
            out.extend(flatten(value, f"{prefix}[{i}]"))
    else:
        out.append((prefix, data))
    return out


def key_value_table(data: Mapping[str, Any], skip: Iterable[str] = ()) -> TableData:
    """A two-column table (``Item``, ``Value``) of a JSON summary such as the engine's ``outcome.json``.

    Args:
        data: the decoded JSON.
        skip: top-level keys to leave out (e.g. ``"files"``).
    """
    skipped = set(skip)
    rows = []
    for key, value in flatten({k: v for k, v in data.items() if k not in skipped}):
        unit = unit_of_column(key.rsplit(".", 1)[-1])
        rows.append({"Item": key + (f" ({unit})" if unit else ""), "Value": _text(value)})
    return TableData((ColumnSpec("Item", False), ColumnSpec("Value", False)), tuple(rows))


# ------------------------------------------------------------------------------------ model card detail
def card_details(item: Any) -> list[tuple[str, str]]:
    """``(field, text)`` lines of one model card for the hub's detail view.

    Args:
        item: an ``InstalledModel`` (card + weights status + source) or a bare card.

    Returns:
        name, version, task, architecture, source, training data, figures, weights file, SHA-256, size,
        checksum status, created, intended use (fields the card lacks are "not stated").
    """
    d, status, source = _unpack(item)
    size = d.get("size_bytes")
    rows = [
        ("Model", _text(d.get("name"))),
        ("Version", _text(d.get("version"))),
        ("Task", _text(d.get("task"))),
        ("Architecture", _text(d.get("architecture"))),
        ("Source", source),
        ("Training data", _text(d.get("training_data"))),
        ("Figures", format_figures(d.get("metrics") if d.get("metrics") else d.get("figures"))),
        ("Weights file", _text(d.get("weights_file"))),
        ("SHA-256", _text(d.get("sha256"))),
        ("Size", f"{int(size) / 1e6:.1f} MB" if isinstance(size, (int, float)) and size else ""),
        ("Checksum", status),
        ("Created", _text(d.get("created"))),
        ("Intended use", _text(d.get("intended_use"))),
    ]
    return [(k, v if v else "not stated") for k, v in rows]
