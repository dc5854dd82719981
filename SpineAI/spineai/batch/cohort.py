"""A cohort: the cases of a batch run, from a folder of images or a CSV manifest.

**Folder**: every NIfTI / NRRD / MetaImage file (``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha``,
``.mhd``) and every DICOM series folder found recursively is one case (for runs of MRI steps only, PNG /
JPEG / BMP pictures too). Label maps are skipped: Slicer
segmentations (``.seg.nrrd``), files with a label sidecar (``labels.nii.gz`` + ``labels.json``) and files
whose name says they are labels (``label``, ``seg``, ``mask``, ``msk`` in the name). The case id is the
relative folder of a file that is alone in its folder, else its relative path without extension
(separators become ``_``).

**Manifest** (``.csv``, or ``.tsv`` tab-separated): one row per case with the columns

* ``case_id`` (required, unique; becomes the folder ``cases/<case_id>``),
* ``image`` (required): the CT (or, for an MRI-only run, the sagittal T2),
* ``segmentation`` (optional): a label map measured instead of segmenting (canonical labels with their
  sidecar, or a ``.seg.nrrd``),
* ``mri`` (optional): sagittal T2 for ``grade-sagittal`` / ``outcome``,
* ``axial`` (optional): axial T2 slice or series for ``grade-axial`` / ``stenosis``,
* ``radiograph`` (optional): lumbar radiograph for ``radiograph``,
* ``reference`` (optional): a reference label map; the segmentation used is scored against it (Dice),
* ``truth`` (optional): reference triangle areas as JSON (``truth.json`` of a phantom, or
  ``{"L5-S1": {"left": {"kambin": 35.2, "safe": 8.1}}}``),
* ``level_override`` (optional, not a path): renumbering of the case's vertebrae for the ``levels`` step,
  as ``spineai levels --override`` takes it (``lowest=L6``, ``shift=+1``, ``shift=-1``),
* any other column: metadata carried into the result tables (age, sex, site, ...).

Relative paths are taken from the manifest's folder. Empty optional cells mean "not given". When a run has
no CT step and needs only one of ``mri`` / ``axial`` / ``radiograph``, a case without that column reads
``image`` instead.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["Case", "Cohort", "find_cases", "read_cohort", "read_manifest"]

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
DICOM_SUFFIXES = (".dcm", ".ima", ".dicom")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
REQUIRED_COLUMNS = ("case_id", "image")
PATH_COLUMNS = ("image", "segmentation", "mri", "axial", "radiograph", "reference", "truth")
#: columns added after the first cohorts were run: they enter the fingerprint and the inputs hash only when
#: given, so the cases and cohorts of earlier runs keep theirs (and are not run again)
LATER_COLUMNS = ("axial", "radiograph", "level_override")
#: columns that are neither paths nor metadata
OPTION_COLUMNS = ("level_override",)
_LABEL_WORDS = re.compile(r"(^|[^a-z])(labels?|seg|segmentation|mask|msk)([^a-z]|$)")
_BAD_ID = re.compile(r"[/\\\x00-\x1f]")
#: at most this many problems are listed in one error message
_LIST_AT_MOST = 12


@dataclass
class Case:
    """One case of a cohort (paths absolute).

    Attributes:
        case_id: unique id, also its folder name under ``cases/``.
        image: the CT (or, for runs without CT steps, the MRI or radiograph): file or DICOM folder.
        segmentation: label map to measure instead of segmenting, or ``None``.
        mri: sagittal T2 for the MRI steps (``None``: ``image`` in runs without CT steps).
        axial: axial T2 for ``grade-axial`` / ``stenosis`` (``None``: as ``mri``).
        radiograph: radiograph for ``radiograph`` (``None``: as ``mri``).
        reference: reference label map for scoring the segmentation, or ``None``.
        truth: reference triangle areas (JSON), or ``None``.
        level_override: renumbering for the ``levels`` step (``"lowest=L6"``, ``"shift=+1"``), or ``None``.
        metadata: the manifest's other columns, as text.
    """

    case_id: str
    image: Path
    segmentation: Path | None = None
    mri: Path | None = None
    reference: Path | None = None
    truth: Path | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    axial: Path | None = None
    radiograph: Path | None = None
    level_override: str | None = None

    def inputs(self) -> dict[str, str | None]:
        """Input paths by column name (``None`` where not given), and the level override when given."""
        out = {c: (None if getattr(self, c) is None else str(getattr(self, c))) for c in PATH_COLUMNS}
        if self.level_override is not None:
            out["level_override"] = self.level_override
        return out

    def fingerprint(self) -> str:
        """SHA-256 over the inputs' paths, sizes and modification times (and the level override): changes
        when an input changes."""
        h = hashlib.sha256()
        for column in PATH_COLUMNS:
            p = getattr(self, column)
            if p is None and column in LATER_COLUMNS:
                continue
            h.update(f"{column}\0{p}\0".encode())
            if p is None:
                continue
            for f in _files_of(p):
                try:
                    st = f.stat()
                except OSError:
                    h.update(f"{f}\0missing\0".encode())
                    continue
                h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        if self.level_override is not None:
            h.update(f"level_override\0{self.level_override}\0".encode())
        return h.hexdigest()


def _files_of(p: Path) -> list[Path]:
    if p.is_dir():
        return sorted(f for f in p.rglob("*") if f.is_file())
    return [p]


@dataclass
class Cohort:
    """The cases of a batch run and where they came from.

    Attributes:
        cases: the cases, in manifest (or sorted folder) order.
        source: the folder or manifest file (absolute).
        kind: ``"folder"`` or ``"manifest"``.
        metadata_columns: the manifest's extra columns, in order.
    """

    cases: list[Case]
    source: Path
    kind: str
    metadata_columns: list[str] = field(default_factory=list)

    def inputs_hash(self) -> str:
        """SHA-256 of the case ids and input paths (what the cohort *is*, not the files' contents)."""
        h = hashlib.sha256()
        for c in self.cases:
            h.update(c.case_id.encode() + b"\0")
            for column in PATH_COLUMNS:
                if getattr(c, column) is None and column in LATER_COLUMNS:
                    continue
                h.update(f"{column}={getattr(c, column)}\0".encode())
            h.update(b"\n")
        return h.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "kind": self.kind,
            "cases": len(self.cases),
            "metadata_columns": list(self.metadata_columns),
            "inputs_hash": self.inputs_hash(),
        }


# ============================================================================================ manifest
def _check_case_ids(ids: list[tuple[int, str]], where: str) -> None:
    bad = [(row, cid) for row, cid in ids if not cid or cid.startswith(".") or _BAD_ID.search(cid)]
    if bad:
        listed = "; ".join(f"row {r}: {cid!r}" for r, cid in bad[:_LIST_AT_MOST])
        raise InputError(
            f"{where} has case ids that cannot be folder names ({listed}).",
            "use non-empty ids without '/', '\\' or control characters, not starting with '.'",
        )
    seen: dict[str, list[int]] = {}
    for row, cid in ids:
        seen.setdefault(cid, []).append(row)
    dups = {cid: rows for cid, rows in seen.items() if len(rows) > 1}
    if dups:
        listed = "; ".join(
            f"{cid!r} on rows {', '.join(map(str, rows))}" for cid, rows in list(dups.items())[:12]
        )
        raise InputError(
            f"{where} has duplicate case ids: {listed}.",
            "give every case its own case_id (each becomes its own output folder)",
        )


def read_manifest(path: str | os.PathLike) -> Cohort:
    """Read and check a CSV (or TSV) manifest; every problem found is listed in one :class:`InputError`.

    Raises:
        InputError: unreadable or empty file, missing required columns, duplicate or unusable case ids,
            empty ``image`` cells, paths that do not exist.
    """
    p = Path(path).resolve()
    if not p.is_file():
        raise InputError(f"Manifest '{p}' does not exist.", "check the path of the CSV file")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"Manifest '{p}' cannot be read as UTF-8 text ({exc}).", "save it as a UTF-8 CSV file"
        ) from None
    delimiter = "\t" if p.suffix.lower() in (".tsv", ".tab") else ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InputError(
            f"Manifest '{p.name}' lacks the column(s) {', '.join(missing)} (its header is: "
            f"{', '.join(header) or 'empty'}).",
            "the first line must name the columns: "
            "case_id,image[,segmentation,mri,axial,radiograph,reference,truth,level_override,...]"
            + (
                "; for a tab-separated file use the .tsv extension"
                if delimiter == "," and "\t" in text
                else ""
            ),
        )
    dup_cols = sorted({h for h in header if header.count(h) > 1})
    if dup_cols:
        raise InputError(
            f"Manifest '{p.name}' repeats the column(s) {', '.join(dup_cols)}.", "name each column once"
        )
    rows = []
    for i, raw in enumerate(reader, start=2):  # row numbers as a spreadsheet shows them (header = 1)
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue
        rows.append((i, row))
    if not rows:
        raise InputError(f"Manifest '{p.name}' has no cases (only a header).", "add one row per case")
    _check_case_ids([(i, r["case_id"]) for i, r in rows], f"Manifest '{p.name}'")
    problems: list[str] = []
    cases: list[Case] = []
    extra = [c for c in header if c not in (*REQUIRED_COLUMNS, *PATH_COLUMNS, *OPTION_COLUMNS)]
    for i, row in rows:
        override = row.get("level_override", "") or None
        if override is not None:
            from ..levels.override import parse_override

            try:
                parse_override(override)
            except InputError as exc:
                problems.append(f"row {i} ({row['case_id']}): level_override: {exc.problem} ({exc.fix})")
        paths: dict[str, Path | None] = {}
        for column in PATH_COLUMNS:
            value = row.get(column, "")
            if not value:
                if column == "image":
                    problems.append(f"row {i} ({row['case_id']}): the image cell is empty")
                paths[column] = None
                continue
            q = Path(value).expanduser()
            q = (q if q.is_absolute() else p.parent / q).resolve()
            if not q.exists():
                problems.append(f"row {i} ({row['case_id']}): {column} '{value}' does not exist")
            paths[column] = q
        cases.append(
            Case(
                case_id=row["case_id"],
                image=paths["image"],  # type: ignore[arg-type]
                segmentation=paths["segmentation"],
                mri=paths["mri"],
                reference=paths["reference"],
                truth=paths["truth"],
                metadata={c: row.get(c, "") for c in extra},
                axial=paths["axial"],
                radiograph=paths["radiograph"],
                level_override=override,
            )
        )
    if problems:
        more = f" (and {len(problems) - _LIST_AT_MOST} more)" if len(problems) > _LIST_AT_MOST else ""
        raise InputError(
            f"Manifest '{p.name}' names inputs that are missing or not understood:\n    "
            + "\n    ".join(problems[:_LIST_AT_MOST])
            + more,
            f"correct the paths (relative paths are taken from {p.parent}), or remove those rows",
        )
    return Cohort(cases=cases, source=p, kind="manifest", metadata_columns=extra)


# ============================================================================================== folder
def _image_suffix(name: str) -> str | None:
    low = name.lower()
    if low.endswith((".seg.nrrd", ".seg.nhdr")):
        return None
    for s in IMAGE_SUFFIXES:
        if low.endswith(s):
            return s
    return None


def _picture_suffix(name: str) -> str | None:
    low = name.lower()
    return next((s for s in PICTURE_SUFFIXES if low.endswith(s)), None)


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    if path.suffix:
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _looks_like_labels(path: Path, suffix: str) -> bool:
    from ..io import sidecar_path

    stem = path.name[: -len(suffix)].lower()
    return bool(_LABEL_WORDS.search(stem)) or sidecar_path(path).is_file()


def _clean_id(parts: list[str]) -> str:
    text = "_".join(p for p in parts if p)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "case"


def find_cases(folder: str | os.PathLike, pictures: bool = False) -> Cohort:
    """Every image file and DICOM series folder under ``folder`` as a case (see the module docstring).

    Args:
        folder: the folder, searched recursively (hidden folders skipped).
        pictures: also take PNG / JPEG / BMP pictures (sagittal T2 slices for the MRI steps).

    Raises:
        InputError: the folder does not exist or holds no image.
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise InputError(f"Input folder '{root}' does not exist.", "check the path")
    found: list[tuple[Path, bool]] = []  # (path, is DICOM folder)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(dirpath)
        if any(_is_dicom(here / f) for f in filenames if not f.startswith(".")):
            found.append((here, True))
        for f in sorted(filenames):
            suffix = _image_suffix(f) or (_picture_suffix(f) if pictures else None)
            if suffix is None or f.startswith("."):
                continue
            if _looks_like_labels(here / f, suffix):
                continue
            found.append((here / f, False))
    if not found:
        raise InputError(
            f"No images were found in '{root}' (looked for {', '.join(IMAGE_SUFFIXES)} files and DICOM series, "
            "skipping label maps).",
            "point --input at the folder holding the CTs, or list the cases in a CSV manifest",
        )
    per_folder: dict[Path, int] = {}
    for path, is_dicom in found:
        per_folder[path if is_dicom else path.parent] = (
            per_folder.get(path if is_dicom else path.parent, 0) + 1
        )
    cases: list[Case] = []
    used: set[str] = set()
    for path, is_dicom in found:
        rel = path.relative_to(root)
        if is_dicom:
            parts = list(rel.parts) or [root.name]
        else:
            suffix = _image_suffix(path.name) or _picture_suffix(path.name) or ""
            stem = path.name[: -len(suffix)]
            alone = per_folder[path.parent] == 1 and path.parent != root
            parts = list(rel.parent.parts) if alone else [*rel.parent.parts, stem]
        cid = base = _clean_id(parts)
        n = 2
        while cid in used:
            cid, n = f"{base}-{n}", n + 1
        used.add(cid)
        cases.append(Case(case_id=cid, image=path))
    return Cohort(cases=cases, source=root, kind="folder")


def read_cohort(source: str | os.PathLike, pictures: bool = False) -> Cohort:
    """A cohort from a folder (searched recursively) or a ``.csv`` / ``.tsv`` manifest.

    ``pictures``: a folder's PNG / JPEG / BMP files are cases too (MRI-only runs on exported slices).

    Raises:
        InputError: see :func:`read_manifest` and :func:`find_cases`; anything else as ``source``.
    """
    p = Path(source)
    if p.is_dir():
        return find_cases(p, pictures=pictures)
    if p.suffix.lower() in (".csv", ".tsv", ".tab"):
        return read_manifest(p)
    if not p.exists():
        raise InputError(f"Input '{p}' does not exist.", "give a folder of images or a CSV manifest")
    raise InputError(
        f"Input '{p}' is neither a folder nor a CSV manifest.",
        "give a folder of images (searched recursively) or a .csv manifest with columns case_id,image[,...]",
    )
