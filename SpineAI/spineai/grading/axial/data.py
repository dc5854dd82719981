"""Folders of axial slices with a CSV manifest: reading, checking, splitting and preparing network inputs.

Manifest (``manifest.csv`` in the folder, or any CSV path), one row per image, comma-separated, header
required:

* ``image``: the image file, relative to the manifest's folder (or absolute): PNG/JPG or a 2D/3D
  NIfTI/NRRD/MHA/DICOM (of a 3D volume the middle axial slice, or the slice in an optional ``slice``
  column, is used);
* ``ldh``, ``lccs``, ``lnrc``: grades 0-3 (the axial grader; a blank cell leaves that grading out);
* for the stenosis model, per region (``central_canal``, ``lateral_recess_left``, ``lateral_recess_right``,
  ``foramen_left``, ``foramen_right``): the grade (0-3 or normal/mild/moderate/severe) in a column named
  like the region, and its box in ``<region>_x0, _y0, _x1, _y1`` as continuous pixel indices of the image
  as stored (x = column, y = row; SimpleITK index order); blank cells leave the region out;
* optional ``patient`` (rows of one patient always stay in the same split) and ``split``
  (``train``/``val``/``test``, overriding the seeded split);
* optional ``roi_x0, roi_y0, roi_x1, roi_y1``: a region of interest (pixel indices, as the region boxes)
  that the axial grader reads instead of the whole slice, in training and evaluation alike (the paper
  graded such boxes); blank cells mean the whole slice.

A missing image file or a value that is not a grade is an :class:`~spineai.errors.InputError` naming the
manifest line, the column and the value.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from .grades import AXIAL_TASK_KEYS, REGIONS, parse_grade

__all__ = [
    "AxialRecord",
    "Manifest",
    "read_manifest",
    "split_records",
]

_SPLITS = ("train", "val", "test")


@dataclass
class AxialRecord:
    """One manifest row.

    Attributes:
        line: line number in the manifest (header = 1).
        image: the image path.
        patient: patient identifier (the row's image name when the manifest has no ``patient`` column).
        grades: ``{ldh|lccs|lnrc: grade or None}``.
        regions: ``{region: {"grade": int | None, "box": [x0, y0, x1, y1] | None}}`` (input pixel indices).
        split: the manifest's ``split`` value, if any.
        slice_index: the ``slice`` value, if any.
        roi: the ``roi_*`` box ``[x0, y0, x1, y1]`` (input pixel indices), if any.
    """

    line: int
    image: Path
    patient: str
    grades: dict[str, int | None]
    regions: dict[str, dict[str, Any]] = field(default_factory=dict)
    split: str | None = None
    slice_index: int | None = None
    roi: list[float] | None = None


@dataclass
class Manifest:
    """A read manifest: its path, rows and which annotations it has."""

    path: Path
    records: list[AxialRecord]
    has_grades: bool
    has_regions: bool


def _manifest_path(data: str | os.PathLike) -> Path:
    p = Path(data)
    if p.is_dir():
        p = p / "manifest.csv"
    if not p.is_file():
        raise InputError(
            f"No manifest at '{p}'.",
            "pass a folder holding manifest.csv (or the CSV itself) with columns image,ldh,lccs,lnrc "
            "(and the region columns for the stenosis model); 'spineai.grading.axial.write_axial_dataset' "
            "writes an example",
        )
    return p


def read_manifest(data: str | os.PathLike, *, need: str = "grades", check_files: bool = True) -> Manifest:
    """Read and check a manifest.

    Args:
        data: the folder holding ``manifest.csv``, or the CSV file.
        need: ``"grades"`` (the axial grader needs the ``ldh, lccs, lnrc`` columns), ``"regions"``
            (the stenosis model needs the region columns) or ``"any"``.
        check_files: refuse rows whose image file does not exist.

    Raises:
        InputError: no manifest, missing columns, a missing image file or an invalid cell (named by line,
            column and value), no rows.
    """
    path = _manifest_path(data)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        rows = list(reader)
    if "image" not in header:
        raise InputError(
            f"The manifest '{path}' has no 'image' column (columns: {header}).", "add an image column"
        )
    has_grades = all(k in header for k in AXIAL_TASK_KEYS)
    region_cols = [r.key for r in REGIONS if r.key in header]
    has_regions = bool(region_cols)
    if need == "grades" and not has_grades:
        missing = [k for k in AXIAL_TASK_KEYS if k not in header]
        raise InputError(
            f"The manifest '{path}' lacks the column(s) {', '.join(missing)} that the axial grader learns from.",
            "add the columns ldh, lccs and lnrc (grades 0-3) to the manifest",
        )
    if need == "regions" and not has_regions:
        raise InputError(
            f"The manifest '{path}' has none of the region columns {', '.join(r.key for r in REGIONS)}.",
            "add, per region, its grade and box columns (<region>, <region>_x0, _y0, _x1, _y1)",
        )
    for r in region_cols:
        missing = [f"{r}_{c}" for c in ("x0", "y0", "x1", "y1") if f"{r}_{c}" not in header]
        if missing:
            raise InputError(
                f"The manifest '{path}' has the region column '{r}' but not {', '.join(missing)}.",
                "give each region's box as four columns <region>_x0, _y0, _x1, _y1 (pixel indices)",
            )
    records: list[AxialRecord] = []
    for n, raw in enumerate(rows, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        name = row.get("image", "")
        if not name:
            raise InputError(
                f"{path.name} line {n}: the image cell is empty.", "name the image file of every row"
            )
        image = Path(name) if Path(name).is_absolute() else path.parent / name
        if check_files and not image.exists():
            raise InputError(
                f"{path.name} line {n}: the image '{name}' does not exist (looked for {image}).",
                "fix the file name in the manifest, or copy the image into the folder",
            )
        grades: dict[str, int | None] = {}
        for key in AXIAL_TASK_KEYS:
            if key in row:
                grades[key] = _cell_grade(path, n, key, row[key])
        regions: dict[str, dict[str, Any]] = {}
        for r in region_cols:
            grade = _cell_grade(path, n, r, row.get(r, ""))
            box = _box_cells(path, n, r, [row.get(f"{r}_{c}", "") for c in ("x0", "y0", "x1", "y1")])
            regions[r] = {"grade": grade, "box": box}
        split = row.get("split") or None
        if split is not None and split not in _SPLITS:
            raise InputError(
                f"{path.name} line {n}: split '{split}' is not one of {', '.join(_SPLITS)}.",
                "use train, val or test, or leave it blank",
            )
        slice_cell = row.get("slice") or None
        slice_index = None
        if slice_cell is not None:
            try:
                slice_index = int(slice_cell)
            except ValueError:
                raise InputError(
                    f"{path.name} line {n}: slice '{slice_cell}' is not a whole number.",
                    "give the axial slice index",
                ) from None
        roi = _box_cells(path, n, "roi", [row.get(f"roi_{c}", "") for c in ("x0", "y0", "x1", "y1")])
        records.append(
            AxialRecord(
                line=n,
                image=image,
                patient=row.get("patient") or name,
                grades=grades,
                regions=regions,
                split=split,
                slice_index=slice_index,
                roi=roi,
            )
        )
    if not records:
        raise InputError(f"The manifest '{path}' has no rows.", "add one row per image")
    return Manifest(path=path, records=records, has_grades=has_grades, has_regions=has_regions)


def _box_cells(path: Path, line: int, name: str, cells: list[str]) -> list[float] | None:
    if not any(cells):
        return None
    try:
        box = [float(v) for v in cells]
    except ValueError:
        raise InputError(
            f"{path.name} line {line}: the box of '{name}' ({', '.join(cells)}) is not four numbers.",
            "give x0, y0, x1, y1 as pixel indices (x = column, y = row), or leave all four blank",
        ) from None
    if not all(np.isfinite(box)) or not (box[2] > box[0] and box[3] > box[1]):
        raise InputError(
            f"{path.name} line {line}: the box of '{name}' {box} is empty or inverted.",
            "give x0 < x1 and y0 < y1 (pixel indices)",
        )
    return box


def _cell_grade(path: Path, line: int, column: str, value: str) -> int | None:
    try:
        return parse_grade(value)
    except ValueError:
        raise InputError(
            f"{path.name} line {line}: column '{column}' has the value '{value}', which is not a grade.",
            "use 0, 1, 2 or 3 (regions also accept normal, mild, moderate, severe), or leave the cell blank",
        ) from None


def split_records(
    records: Sequence[AxialRecord],
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.0,
    seed: int = 2024,
) -> dict[str, list[AxialRecord]]:
    """Split rows by patient (seeded); rows with a ``split`` value keep it.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``; no patient is in two of them.
    """
    fixed = {s: [r for r in records if r.split == s] for s in _SPLITS}
    free = [r for r in records if r.split is None]
    patients = sorted({r.patient for r in free})
    rng = np.random.default_rng(seed)
    order = [patients[i] for i in rng.permutation(len(patients))]
    n_val = int(round(val_fraction * len(order)))
    n_test = int(round(test_fraction * len(order)))
    if len(order) >= 3 and val_fraction > 0:
        n_val = max(n_val, 1)
    val_p = set(order[:n_val])
    test_p = set(order[n_val : n_val + n_test])
    out = {s: list(fixed[s]) for s in _SPLITS}
    for r in free:
        out["val" if r.patient in val_p else "test" if r.patient in test_p else "train"].append(r)
    # a patient given a split on some rows takes all its rows there
    owner = {}
    for s in _SPLITS:
        for r in fixed[s]:
            owner.setdefault(r.patient, s)
    for s in _SPLITS:
        moved = [r for r in out[s] if owner.get(r.patient, s) != s]
        out[s] = [r for r in out[s] if owner.get(r.patient, s) == s]
        for r in moved:
            out[owner[r.patient]].append(r)
    return out
