"""Radiograph data: a manifest CSV of images with per-level herniation labels -> network-ready arrays.

Manifest CSV (UTF-8, comma-separated, header row; column names case-insensitive):

=========================  ====================================================================================
``patient_id``             patient (required): images of one patient are averaged and never split across folds
``image``                  radiograph file (PNG/JPEG/BMP/TIFF or 2D DICOM), absolute or relative to the CSV
``view``                   optional: ``ap``, ``lateral``, ``oblique_left``, ``oblique_right``, ``flexion``, ...
``age``                    optional age in years (needed for the age task)
``hnp_L1_2`` .. ``hnp_L5_S1``  herniation at L1-L2 .. L5-S1 on MRI: ``1``/``0`` (also yes/no, true/false)
``pixel_mm``               optional pixel size of the image (mm), for a PNG/JPEG export (disc-crops design)
``disc_L1_L2_x``, ``_y``   optional disc centres (column ``x``, row ``y``, pixels of the image) for L1-L2 ..
  .. ``disc_L5_S1_y``      L5-S1 (disc-crops design): all ten or none; without them the disc locator finds them
=========================  ====================================================================================

Rows that break a rule are named (row number, patient, reason) in one :class:`~spineai.errors.InputError`,
or skipped with ``skip_bad_rows=True``. A folder is read through ``DIR/manifest.csv``.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .network import LEVEL_COLUMNS, LEVELS

#: optional manifest columns of the disc centres: disc_L1_L2_x, disc_L1_L2_y, ..., disc_L5_S1_y (pixels)
DISC_COLUMNS: tuple[str, ...] = tuple(
    f"disc_{lv.replace('-', '_')}_{axis}".lower() for lv in LEVELS for axis in ("x", "y")
)

__all__ = [
    "DISC_COLUMNS",
    "RadiographArrays",
    "RadiographRecord",
    "load_radiograph_data",
    "prepare_arrays",
    "read_radiograph_manifest",
]

_YES = {"1", "yes", "true", "y"}
_NO = {"0", "no", "false", "n"}


@dataclass
class RadiographRecord:
    """One image of the manifest.

    Attributes:
        patient_id: grouping key.
        image: path of the radiograph.
        view: view name ("" when not given).
        age: age in years (NaN when not given).
        labels: ``(5,)`` int herniation labels L1-L2 .. L5-S1 (-1 when the manifest has no labels).
        row: manifest row number (for messages).
        pixel_mm: pixel size of the image (mm), NaN when not given.
        disc_xy: ``(5, 2)`` disc centres ``(x = column, y = row)`` in pixels, L1-L2 first, or ``None``.
    """

    patient_id: str
    image: Path
    view: str
    age: float
    labels: np.ndarray
    row: int = 0
    pixel_mm: float = float("nan")
    disc_xy: np.ndarray | None = None


def _cell(row: dict[str, str], key: str) -> str:
    return (row.get(key) or "").strip()


def read_radiograph_manifest(
    path: str | os.PathLike, *, skip_bad_rows: bool = False, require_labels: bool = True
) -> tuple[list[RadiographRecord], list[str]]:
    """Read and check a manifest CSV.

    Args:
        path: the CSV file.
        skip_bad_rows: leave out bad rows (listed in the returned problems) instead of failing.
        require_labels: the five ``hnp_*`` columns must be present and filled (training, evaluation).

    Returns:
        ``(records, problems)``.

    Raises:
        InputError: unreadable file, missing columns, or (without ``skip_bad_rows``) any bad row.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"Manifest '{p}' does not exist.", "check the path of the CSV file")
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            rows = [
                {(k or "").strip().lower(): (v if isinstance(v, str) else "") for k, v in r.items()}
                for r in reader
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(
            f"Manifest '{p}' cannot be read as a CSV file ({exc}).",
            "save it as UTF-8 comma-separated values with a header row",
        ) from None
    level_cols = [c.lower() for c in LEVEL_COLUMNS]
    need = ["patient_id", "image"] + (level_cols if require_labels else [])
    missing = [c for c in need if c not in header]
    if missing:
        raise InputError(
            f"Manifest '{p}' lacks the column(s) {', '.join(missing)} (found: {', '.join(header) or 'none'}).",
            "add a header row: patient_id,image,view,age," + ",".join(LEVEL_COLUMNS),
        )
    has_labels = all(c in header for c in level_cols)
    records: list[RadiographRecord] = []
    problems: list[str] = []
    for number, row in enumerate(rows, start=2):
        pid = _cell(row, "patient_id")
        try:
            if not pid:
                raise ValueError("empty patient_id")
            image_text = _cell(row, "image")
            if not image_text:
                raise ValueError("empty image path")
            image = Path(image_text)
            if not image.is_absolute():
                image = (p.parent / image).resolve()
            if not image.exists():
                raise ValueError(f"image '{image}' does not exist")
            age = float("nan")
            if _cell(row, "age"):
                try:
                    age = float(_cell(row, "age"))
                except ValueError:
                    raise ValueError(f"age '{_cell(row, 'age')}' is not a number") from None
                if not (math.isfinite(age) and 0.0 <= age <= 120.0):
                    raise ValueError(f"age {age:g} is not 0-120 years")
            labels = np.full(len(LEVEL_COLUMNS), -1, dtype=np.int64)
            if has_labels:
                for k, col in enumerate(level_cols):
                    text = _cell(row, col).lower()
                    if text in _YES:
                        labels[k] = 1
                    elif text in _NO:
                        labels[k] = 0
                    elif text or require_labels:
                        raise ValueError(f"{LEVEL_COLUMNS[k]} '{text}' is not 1/0")
            pixel_mm = float("nan")
            if _cell(row, "pixel_mm"):
                try:
                    pixel_mm = float(_cell(row, "pixel_mm"))
                except ValueError:
                    raise ValueError(f"pixel_mm '{_cell(row, 'pixel_mm')}' is not a number") from None
                if not (math.isfinite(pixel_mm) and 0.01 <= pixel_mm <= 10.0):
                    raise ValueError(f"pixel_mm {pixel_mm:g} is not a pixel size of 0.01-10 mm")
            disc_cells = [_cell(row, c) for c in DISC_COLUMNS]
            disc_xy = None
            if any(disc_cells):
                if not all(disc_cells):
                    raise ValueError("disc positions must be given for all five discs (ten columns) or none")
                try:
                    disc_xy = np.asarray([float(v) for v in disc_cells], dtype=float).reshape(
                        len(LEVEL_COLUMNS), 2
                    )
                except ValueError:
                    raise ValueError("a disc position is not a number") from None
                if not np.all(np.isfinite(disc_xy)) or np.any(disc_xy < 0):
                    raise ValueError("disc positions must be non-negative pixel coordinates")
            records.append(
                RadiographRecord(
                    patient_id=pid,
                    image=image,
                    view=_cell(row, "view").lower(),
                    age=age,
                    labels=labels,
                    row=number,
                    pixel_mm=pixel_mm,
                    disc_xy=disc_xy,
                )
            )
        except ValueError as exc:
            problems.append(f"row {number} (patient '{pid or '?'}'): {exc}")
    if problems and not skip_bad_rows:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InputError(
            f"Manifest '{p}' has {len(problems)} bad row(s):\n  {shown}{more}",
            "correct those rows, or pass --skip-bad-rows (skip_bad_rows=True) to leave them out",
        )
    if not records:
        raise InputError(
            f"Manifest '{p}' holds no usable image.", "add rows with patient_id, image and labels"
        )
    return records, problems


def load_radiograph_data(
    data: str | os.PathLike, *, skip_bad_rows: bool = False, require_labels: bool = True
) -> tuple[list[RadiographRecord], list[str]]:
    """Records from a manifest CSV or a folder holding ``manifest.csv``."""
    p = Path(data)
    if p.is_dir():
        if not (p / "manifest.csv").is_file():
            raise InputError(
                f"Folder '{p}' has no manifest.csv.",
                "write a manifest (patient_id,image,view,age,"
                + ",".join(LEVEL_COLUMNS)
                + ") or pass the CSV itself with --data",
            )
        p = p / "manifest.csv"
    return read_radiograph_manifest(p, skip_bad_rows=skip_bad_rows, require_labels=require_labels)


@dataclass
class RadiographArrays:
    """Network-ready images of a set of records.

    Attributes:
        x: float16 ``(N, size, size)`` (see :func:`~spineai.radiograph.image.prepare_input`).
        labels: int ``(N, 5)``; ages ``(N,)`` (NaN unknown); patients, views: per image.
        records: the records kept; failed: ``"row: reason"`` of images that could not be read.
    """

    x: np.ndarray
    labels: np.ndarray
    ages: np.ndarray
    patients: list[str]
    views: list[str]
    records: list[RadiographRecord]
    failed: list[str] = field(default_factory=list)


def prepare_arrays(records: Sequence[RadiographRecord], size: int) -> RadiographArrays:
    """Load, check and preprocess every record's image; unreadable or refused images are listed and left out."""
    from ..errors import SpineAIError
    from ..progress import track
    from .image import load_radiograph, prepare_input

    xs, kept, failed = [], [], []
    for rec in track(list(records), desc="radiographs"):
        try:
            loaded = load_radiograph(rec.image)
            arr, _box = prepare_input(loaded.image, size)
        except SpineAIError as exc:
            failed.append(f"row {rec.row} ({rec.image.name}): {str(exc).splitlines()[0]}")
            continue
        xs.append(arr.astype(np.float16))
        kept.append(rec)
    x = np.stack(xs) if xs else np.zeros((0, size, size), dtype=np.float16)
    return RadiographArrays(
        x=x,
        labels=np.stack([r.labels for r in kept])
        if kept
        else np.zeros((0, len(LEVEL_COLUMNS)), dtype=np.int64),
        ages=np.asarray([r.age for r in kept], dtype=float),
        patients=[r.patient_id for r in kept],
        views=[r.view for r in kept],
        records=kept,
        failed=failed,
    )
