"""Folders of graded sagittal T2 slices laid out like SPIDER, disc positions from crops, patient splits.

Folder layout (the public SPIDER subset in ``../shared/data/spider_sagittal_t2`` has it)::

    DIR/scans/<patient>_t2.png               one mid-sagittal T2 slice per patient (PNG/JPG, or NIfTI/NRRD)
    DIR/radiological_gradings.csv            Patient, IVD label, Modic, UP endplate, LOW endplate,
                                             Spondylolisthesis, Disc herniation, Disc narrowing,
                                             Disc bulging, Pfirrman grade
    DIR/overview.csv                         optional: new_file_name (<patient>_t2), PixelSpacing, subset
    DIR/disc_crops/<patient>_t2_disc_<k>.png optional: crops of single discs cut from the scans

IVD label 1 is L5/S1 and labels count upwards (see :mod:`spineai.grading.tasks`).

Facts about the public SPIDER export (checked on the data, see ``docs/grading_sagittal.md``):

* the PNG slices are stored **upside down** (caudal end at the top of the picture): the sacrum, the
  wedge-shaped L5/S1 disc and the end of the thecal sac are at the top, the lung bases at the bottom;
  :data:`SPIDER_SCAN_ORIENTATION` records it and :func:`upright_slice` undoes it;
* each crop is an exact, vertically flipped copy of a window of its scan, framed by a uniform 5-pixel
  border; :func:`recover_disc_boxes` finds the window by normalised cross-correlation
  (:func:`skimage.feature.match_template`; matches score > 0.99 on 52 of the 54 usable scans with crops);
* the crop number ``k`` counts from the **cranial** end, not from L5/S1: nucleus brightness correlates
  with the graded Pfirrmann grade at Spearman rho = -0.77 when the crops are numbered from the caudal
  end and only -0.34 with ``k`` taken as the IVD label. Disc positions are therefore numbered here
  by their anatomical order (IVD 1 = the most caudal crop).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .checks import slice_shape_problem
from .tasks import GRADING_TASKS

__all__ = [
    "SCAN_SUFFIXES",
    "SPIDER_SCAN_ORIENTATION",
    "DiscBox",
    "PatientSplit",
    "SagittalCase",
    "SagittalFolder",
    "find_scan",
    "patient_split",
    "read_gradings_csv",
    "read_overview_csv",
    "read_sagittal_folder",
    "read_slice_array",
    "recover_disc_boxes",
    "upright_slice",
]

#: how the public SPIDER PNG export stores its slices
SPIDER_SCAN_ORIENTATION = "caudal_top"
#: scan file endings looked for, in order
SCAN_SUFFIXES = (".png", ".jpg", ".jpeg", ".nii.gz", ".nii", ".nrrd", ".mha")
_ORIENTATIONS = ("upright", "caudal_top", "unknown")
_BORDER_MAX_PX = 12
_MIN_NCC = 0.95


# ----------------------------------------------------------------------------------------------- CSVs
def _int_value(text: str | None) -> int | None:
    if text is None:
        return None
    t = text.strip()
    if not t:
        return None
    try:
        f = float(t)
    except ValueError:
        return None
    return int(f) if f.is_integer() else None


def read_gradings_csv(path: str | os.PathLike) -> tuple[dict[str, dict[int, dict[str, int]]], list[str]]:
    """Read ``radiological_gradings.csv``.

    Args:
        path: the CSV file.

    Returns:
        ``(gradings, notes)``: ``gradings[patient][ivd][task_key] = grade`` and notes about rows that
        were left out (IVD labels below 1, which name no disc level), each naming its line.

    Raises:
        InputError: missing file or column, a non-integer patient/IVD value, an unknown grade (naming
            the line, patient, IVD and column), or a disc graded twice.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"The gradings table '{p}' does not exist.",
            "put radiological_gradings.csv (Patient, IVD label and one column per grading) in the data folder",
        )
    with p.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        needed = ["Patient", "IVD label"] + [t.column for t in GRADING_TASKS]
        missing = [c for c in needed if c not in header]
        if missing:
            raise InputError(
                f"The gradings table '{p}' lacks the column(s) {', '.join(repr(c) for c in missing)}.",
                f"use SPIDER's column names: {', '.join(needed)}",
            )
        gradings: dict[str, dict[int, dict[str, int]]] = {}
        notes: list[str] = []
        for line, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): v for k, v in raw.items()}
            patient = (row.get("Patient") or "").strip()
            ivd = _int_value(row.get("IVD label"))
            if not patient or ivd is None:
                raise InputError(
                    f"{p.name} line {line}: Patient '{patient}' / IVD label '{row.get('IVD label')}' is not a "
                    "patient identifier and an integer disc number.",
                    "fill in both columns (IVD label 1 = L5/S1, counting upwards)",
                )
            if patient.endswith(".0") and patient[:-2].isdigit():
                patient = patient[:-2]
            if ivd < 1:
                notes.append(
                    f"{p.name} line {line}: patient {patient} IVD label {ivd} names no disc level; left out"
                )
                continue
            grades: dict[str, int] = {}
            for task in GRADING_TASKS:
                value = _int_value(row.get(task.column))
                if value is None or value not in task.grades:
                    raise InputError(
                        f"{p.name} line {line}: patient {patient}, IVD {ivd}: column '{task.column}' has the value "
                        f"'{row.get(task.column)}', which is not a known grade ({', '.join(map(str, task.grades))}).",
                        "correct the value in the table (SPIDER's grading scheme)",
                    )
                grades[task.key] = value
            per_patient = gradings.setdefault(patient, {})
            if ivd in per_patient:
                raise InputError(
                    f"{p.name} line {line}: patient {patient} IVD {ivd} is graded twice.",
                    "keep one row per patient and disc",
                )
            per_patient[ivd] = grades
    if not gradings:
        raise InputError(f"The gradings table '{p}' has no rows.", "add one row per patient and disc")
    return gradings, notes


@dataclass(frozen=True)
class OverviewRow:
    """Per-scan metadata from ``overview.csv``: pixel spacing (row, column) in mm and SPIDER subset."""

    pixel_spacing_mm: tuple[float, float] | None
    subset: str | None


def _parse_spacing(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    values = [float(v) for v in re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", text)]
    if len(values) < 2 or not all(0.0 < v <= 10.0 for v in values[:2]):
        return None
    return (values[0], values[1])


def read_overview_csv(path: str | os.PathLike) -> dict[str, OverviewRow]:
    """Read ``overview.csv`` into ``{scan stem: OverviewRow}`` (stem as in ``new_file_name``, e.g. ``"12_t2"``)."""
    p = Path(path)
    if not p.is_file():
        return {}
    with p.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if "new_file_name" not in (reader.fieldnames or []):
            raise InputError(
                f"The overview table '{p}' has no 'new_file_name' column.",
                "name each scan in a 'new_file_name' column (e.g. 12_t2) with its PixelSpacing, or remove the file",
            )
        out = {}
        for row in reader:
            stem = (row.get("new_file_name") or "").strip()
            if stem:
                out[stem] = OverviewRow(
                    _parse_spacing(row.get("PixelSpacing")), (row.get("subset") or "").strip() or None
                )
    return out


# ------------------------------------------------------------------------------------------- folders
@dataclass
class SagittalCase:
    """One graded patient of a folder.

    Attributes:
        patient: patient identifier as in the gradings table.
        scan_path: the slice (or volume) file.
        gradings: ``{ivd: {task_key: grade}}``.
        pixel_spacing_mm: (row, column) pixel size from ``overview.csv``, or ``None``.
        subset: SPIDER's own training/validation assignment, if given.
    """

    patient: str
    scan_path: Path
    gradings: dict[int, dict[str, int]]
    pixel_spacing_mm: tuple[float, float] | None = None
    subset: str | None = None


@dataclass
class SagittalFolder:
    """A folder of graded slices: the cases found and what was left out (each with its reason)."""

    root: Path
    cases: list[SagittalCase]
    stored_orientation: str = "unknown"
    skipped: list[str] = field(default_factory=list)

    def by_patient(self) -> dict[str, SagittalCase]:
        """Cases keyed by patient identifier."""
        return {c.patient: c for c in self.cases}


def find_scan(scans_dir: Path, patient: str) -> Path | None:
    """The scan of ``patient`` in ``scans_dir``: ``<patient>_t2.<ext>`` or ``<patient>.<ext>``."""
    for stem in (f"{patient}_t2", patient):
        for suffix in SCAN_SUFFIXES:
            candidate = scans_dir / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def read_sagittal_folder(
    root: str | os.PathLike, *, strict: bool = False, stored_orientation: str = "unknown"
) -> SagittalFolder:
    """Read a folder laid out like SPIDER (see the module docstring).

    Args:
        root: the folder.
        strict: refuse (``InputError`` naming the gradings row) a graded patient whose scan is missing;
            by default such patients are left out and listed in ``skipped``.
        stored_orientation: how the slices are stored: ``"upright"`` (superior at the top),
            ``"caudal_top"`` (the public SPIDER PNG export) or ``"unknown"`` (the grader decides).

    Raises:
        InputError: no ``scans/`` folder, a bad gradings table, no usable case, or (``strict``) a missing scan.
    """
    if stored_orientation not in _ORIENTATIONS:
        raise InputError(
            f"Unknown stored orientation '{stored_orientation}'.", f"use one of {', '.join(_ORIENTATIONS)}"
        )
    base = Path(root)
    if not base.is_dir():
        raise InputError(
            f"The data folder '{base}' does not exist.", "pass the folder that holds scans/ and the CSVs"
        )
    scans_dir = base / "scans"
    if not scans_dir.is_dir():
        raise InputError(
            f"The data folder '{base}' has no scans/ sub-folder.",
            "put one slice per patient in DIR/scans/<patient>_t2.png (layout of SPIDER's public export)",
        )
    gradings, notes = read_gradings_csv(base / "radiological_gradings.csv")
    overview = read_overview_csv(base / "overview.csv")
    first_line = _first_lines(base / "radiological_gradings.csv")
    cases: list[SagittalCase] = []
    skipped = list(notes)
    for patient in sorted(gradings, key=_natural_key):
        scan = find_scan(scans_dir, patient)
        if scan is None:
            message = (
                f"radiological_gradings.csv line {first_line.get(patient, '?')}: patient {patient} has no scan "
                f"(looked for scans/{patient}_t2.png and other image types)"
            )
            if strict:
                raise InputError(message + ".", "add the scan or remove the patient's rows from the table")
            skipped.append(message + "; left out")
            continue
        meta = overview.get(f"{patient}_t2") or overview.get(patient)
        cases.append(
            SagittalCase(
                patient=patient,
                scan_path=scan,
                gradings=gradings[patient],
                pixel_spacing_mm=meta.pixel_spacing_mm if meta else None,
                subset=meta.subset if meta else None,
            )
        )
    if not cases:
        raise InputError(
            f"No graded patient of '{base}' has a scan in scans/.",
            "name the scans <patient>_t2.png with the Patient values of radiological_gradings.csv",
        )
    return SagittalFolder(root=base, cases=cases, stored_orientation=stored_orientation, skipped=skipped)


def _first_lines(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            patient = (row.get("Patient") or "").strip()
            if patient.endswith(".0") and patient[:-2].isdigit():
                patient = patient[:-2]
            out.setdefault(patient, line)
    return out


def _natural_key(text: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


def read_slice_array(path: str | os.PathLike) -> np.ndarray:
    """A 2D picture as a float32 array ``(rows, cols)`` as stored (grey; colour converted by :func:`spineai.io.read_image`)."""
    import SimpleITK as sitk

    from ..io import read_image

    return sitk.GetArrayFromImage(read_image(path, dims=2, name="sagittal slice")).astype(np.float32)


def upright_slice(array: np.ndarray, stored_orientation: str) -> np.ndarray:
    """The slice with superior at the top: flips a ``"caudal_top"`` slice vertically, else returns it."""
    return np.ascontiguousarray(array[::-1]) if stored_orientation == "caudal_top" else array


# ------------------------------------------------------------------------------------ disc crops
@dataclass(frozen=True)
class DiscBox:
    """A disc window recovered in its scan (pixel coordinates of the slice *as stored*).

    Attributes:
        crop: the crop file name.
        row, col: top-left corner of the window in the stored scan.
        height, width: window size in pixels (the crop without its border).
        ncc: normalised cross-correlation of the match (1 = identical pixels).
        flipped: whether the crop is the vertical mirror image of the window.
    """

    crop: str
    row: int
    col: int
    height: int
    width: int
    ncc: float
    flipped: bool

    @property
    def centre_rc(self) -> tuple[float, float]:
        """Window centre (row, column) in the stored scan, pixels."""
        return (self.row + (self.height - 1) / 2.0, self.col + (self.width - 1) / 2.0)


def _strip_border(crop: np.ndarray) -> np.ndarray:
    """Remove a uniform frame (same value on all four sides, up to 12 px) around a crop."""
    value = crop[0, 0]
    n = 0
    while (
        n < _BORDER_MAX_PX
        and crop.shape[0] > 2 * (n + 1)
        and crop.shape[1] > 2 * (n + 1)
        and np.all(crop[n, :] == value)
        and np.all(crop[-1 - n, :] == value)
        and np.all(crop[:, n] == value)
        and np.all(crop[:, -1 - n] == value)
    ):
        n += 1
    return crop[n : crop.shape[0] - n, n : crop.shape[1] - n] if n else crop


def recover_disc_boxes(scan: np.ndarray, crop_paths: Iterable[str | os.PathLike]) -> list[DiscBox]:
    """Find where each crop was cut from ``scan`` (normalised cross-correlation, both vertical senses).

    Args:
        scan: the slice as stored, ``(rows, cols)``.
        crop_paths: crop files of this scan.

    Returns:
        One :class:`DiscBox` per crop that fits inside the scan (best of as-is and vertically flipped).
    """
    from skimage.feature import match_template

    s = np.asarray(scan, dtype=np.float32)
    boxes = []
    for path in crop_paths:
        crop = _strip_border(read_slice_array(path))
        if crop.shape[0] >= s.shape[0] or crop.shape[1] >= s.shape[1] or crop.std() == 0:
            continue
        best = None
        for flipped in (True, False):
            template = crop[::-1] if flipped else crop
            score = match_template(s, template)
            idx = np.unravel_index(int(np.argmax(score)), score.shape)
            value = float(score[idx])
            if best is None or value > best[0]:
                best = (value, int(idx[0]), int(idx[1]), flipped)
        assert best is not None
        boxes.append(
            DiscBox(
                crop=Path(path).name,
                row=best[1],
                col=best[2],
                height=int(crop.shape[0]),
                width=int(crop.shape[1]),
                ncc=round(best[0], 5),
                flipped=best[3],
            )
        )
    return boxes


def crop_files(root: str | os.PathLike, patient: str) -> list[Path]:
    """Crop files of ``patient`` in ``root/disc_crops`` (sorted by their number)."""
    folder = Path(root) / "disc_crops"
    if not folder.is_dir():
        return []
    files = list(folder.glob(f"{patient}_t2_disc_*.png"))
    return sorted(files, key=lambda f: _natural_key(f.stem))


def disc_centres_upright(boxes: Sequence[DiscBox], scan_rows: int, stored_orientation: str) -> np.ndarray:
    """Disc centres ``(n, 2)`` (row, col) in the *upright* slice, ordered caudal first (index 0 = IVD 1).

    Requires every box to be an exact match (NCC >= 0.95); otherwise returns an empty array.
    """
    if not boxes or any(b.ncc < _MIN_NCC for b in boxes):
        return np.zeros((0, 2), dtype=np.float64)
    centres = np.array([b.centre_rc for b in boxes], dtype=np.float64)
    if stored_orientation == "caudal_top":
        centres[:, 0] = (scan_rows - 1) - centres[:, 0]
    order = np.argsort(-centres[:, 0])  # upright: caudal = larger row
    return centres[order]


def scan_is_usable(shape: tuple[int, int], spacing_rc_mm: tuple[float, float] | None = None) -> str | None:
    """Why a stored slice of this shape cannot be graded (see :func:`~spineai.grading.checks.slice_shape_problem`)."""
    return slice_shape_problem(int(shape[0]), int(shape[1]), spacing_rc_mm or (1.0, 1.0))


# ------------------------------------------------------------------------------------------ splits
@dataclass(frozen=True)
class PatientSplit:
    """A split of patients into training, validation and test sets (no patient in two sets)."""

    seed: int
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict (written into the model card)."""
        return {"seed": self.seed, "train": list(self.train), "val": list(self.val), "test": list(self.test)}

    @classmethod
    def from_dict(cls, data: dict) -> PatientSplit:
        """Inverse of :meth:`to_dict`."""
        return cls(
            seed=int(data["seed"]),
            train=tuple(map(str, data["train"])),
            val=tuple(map(str, data["val"])),
            test=tuple(map(str, data["test"])),
        )

    def of(self, name: str) -> tuple[str, ...]:
        """Patients of the split ``"train"``, ``"val"`` or ``"test"``."""
        if name not in ("train", "val", "test"):
            raise InputError(f"Unknown split '{name}'.", "use train, val or test")
        return getattr(self, name)


def patient_split(
    patients: Sequence[str],
    seed: int,
    fractions: tuple[float, float, float] = (0.65, 0.1, 0.25),
    strata: dict[str, str] | None = None,
) -> PatientSplit:
    """Split patients at random (seeded), stratified by an optional per-patient key.

    Args:
        patients: patient identifiers (each once).
        seed: random seed (the same seed and patients give the same split).
        fractions: training, validation, test fractions (sum 1).
        strata: optional ``{patient: stratum}``; each stratum is split in the same proportions.
    """
    if len(set(patients)) != len(patients):
        raise InputError("Patient identifiers passed to the split are not unique.", "pass each patient once")
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise InputError(
            f"Split fractions {fractions} do not sum to 1.", "pass three non-negative fractions summing to 1"
        )
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = {}
    for p in sorted(patients, key=_natural_key):
        groups.setdefault((strata or {}).get(p, ""), []).append(p)
    train: list[str] = []
    val: list[str] = []
    test: list[str] = []
    for key in sorted(groups):
        members = list(groups[key])
        rng.shuffle(members)
        n = len(members)
        n_test = int(round(fractions[2] * n))
        n_val = int(round(fractions[1] * n))
        test += members[:n_test]
        val += members[n_test : n_test + n_val]
        train += members[n_test + n_val :]
    return PatientSplit(
        seed=seed,
        train=tuple(sorted(train, key=_natural_key)),
        val=tuple(sorted(val, key=_natural_key)),
        test=tuple(sorted(test, key=_natural_key)),
    )
