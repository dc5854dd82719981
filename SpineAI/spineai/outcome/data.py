"""Outcome data: a site's manifest CSV or a folder of phantom cases -> labelled ROI arrays.

Manifest CSV (UTF-8, comma-separated, header row; column names case-insensitive):

======================  ==========================================================================
``case_id``             unique case name (required)
``image``               sagittal T2 volume (NIfTI/NRRD/MHA file or DICOM folder), absolute or relative
                        to the manifest's folder (required)
``label``               ``1``/``good`` (>= 50 % NRS-11 reduction at 2 months) or ``0``/``poor``
``nrs_pre``             NRS-11 before the injection (0-10), with ``nrs_post``
``nrs_post``            NRS-11 2 months after; the label is ``(pre - post) / pre >= 0.5``
``patient_id``          optional; cases of one patient never fall in different folds (default: case id)
``roi_x0`` .. ``roi_z1``  optional hand-given ROI box (LPS mm) instead of the localiser
======================  ==========================================================================

Every row needs ``label`` or both NRS columns (when both are given they must agree). Rows that break a
rule are named (row number, case id, reason) in one :class:`~spineai.errors.InputError`, or skipped with
``skip_bad_rows=True``.

A folder is read through ``DIR/manifest.csv`` when present; otherwise every sub-folder holding
``t2_sagittal.nii.gz`` and a phantom ``truth.json`` (as written by
:func:`spineai.outcome.mri_phantom.write_sagittal_case`) is a case labelled from its truth.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = [
    "COHORT_RENDER",
    "OutcomeCase",
    "RoiSet",
    "label_from_nrs",
    "load_cases",
    "read_manifest",
    "rois_for_cases",
    "synthetic_rois",
]

_ROI_COLUMNS = ("roi_x0", "roi_y0", "roi_z0", "roi_x1", "roi_y1", "roi_z1")
_GOOD = {"1", "good", "yes", "true"}
_POOR = {"0", "poor", "no", "false"}


def label_from_nrs(nrs_pre: float, nrs_post: float) -> int:
    """1 (good outcome) when NRS-11 fell by at least 50 % (Kim et al. 2022), else 0."""
    for v, what in ((nrs_pre, "NRS-11 before"), (nrs_post, "NRS-11 after")):
        if not (math.isfinite(v) and 0.0 <= v <= 10.0):
            raise InputError(f"{what} = {v} is not on the 0-10 scale.", "give NRS-11 scores from 0 to 10")
    if nrs_pre <= 0:
        raise InputError(
            "NRS-11 before the injection is 0: a percentage reduction is undefined.",
            "exclude the case or give the label directly",
        )
    return int((nrs_pre - nrs_post) / nrs_pre >= 0.5)


@dataclass
class OutcomeCase:
    """One labelled case.

    Attributes:
        case_id: unique name.
        image: path of the sagittal T2 volume.
        label: 1 good, 0 poor.
        patient_id: grouping key for folds.
        nrs_pre, nrs_post: NRS-11 scores when given.
        roi_bounds_mm: hand-given ROI box (x0, y0, z0, x1, y1, z1) LPS mm, or ``None``.
        truth: a phantom's truth dict (``None`` for real cases).
    """

    case_id: str
    image: Path
    label: int
    patient_id: str
    nrs_pre: float | None = None
    nrs_post: float | None = None
    roi_bounds_mm: tuple[float, ...] | None = None
    truth: dict[str, Any] | None = field(default=None, repr=False)


def _cell(row: dict[str, str], key: str) -> str:
    return (row.get(key) or "").strip()


def read_manifest(
    path: str | os.PathLike, *, skip_bad_rows: bool = False
) -> tuple[list[OutcomeCase], list[str]]:
    """Read and check a manifest CSV.

    Returns:
        ``(cases, problems)``: the good cases and one line per skipped row (empty unless ``skip_bad_rows``).

    Raises:
        InputError: unreadable file, missing columns, or (without ``skip_bad_rows``) any bad row, all named.
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
    missing = [c for c in ("case_id", "image") if c not in header]
    has_label = "label" in header
    has_nrs = "nrs_pre" in header and "nrs_post" in header
    if missing or not (has_label or has_nrs):
        need = missing + ([] if (has_label or has_nrs) else ["label (or nrs_pre and nrs_post)"])
        raise InputError(
            f"Manifest '{p}' lacks the column(s) {', '.join(need)} (found: {', '.join(header) or 'none'}).",
            "add a header row with case_id, image and label (1 good / 0 poor) or nrs_pre and nrs_post",
        )
    cases: list[OutcomeCase] = []
    problems: list[str] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=2):  # row 1 is the header
        case_id = _cell(row, "case_id")
        where = f"row {number} (case '{case_id or '?'}')"
        try:
            if not case_id:
                raise ValueError("empty case_id")
            if case_id in seen:
                raise ValueError("duplicate case_id")
            image_text = _cell(row, "image")
            if not image_text:
                raise ValueError("empty image path")
            image = Path(image_text)
            if not image.is_absolute():
                image = (p.parent / image).resolve()
            if not image.exists():
                raise ValueError(f"image '{image}' does not exist")
            label: int | None = None
            text = _cell(row, "label").lower() if has_label else ""
            if text:
                if text in _GOOD:
                    label = 1
                elif text in _POOR:
                    label = 0
                else:
                    raise ValueError(f"label '{text}' is not 1/good or 0/poor")
            pre_t, post_t = (_cell(row, "nrs_pre"), _cell(row, "nrs_post")) if has_nrs else ("", "")
            pre = post = None
            if pre_t or post_t:
                try:
                    pre, post = float(pre_t), float(post_t)
                except ValueError:
                    raise ValueError(f"NRS-11 '{pre_t}' / '{post_t}' are not both numbers") from None
                try:
                    from_nrs = label_from_nrs(pre, post)
                except InputError as exc:
                    raise ValueError(exc.problem) from None
                if label is not None and label != from_nrs:
                    raise ValueError(
                        f"label {label} contradicts NRS-11 {pre:g} -> {post:g} "
                        f"({100 * (pre - post) / pre:.0f}% reduction)"
                    )
                label = from_nrs
            if label is None:
                raise ValueError("no label and no NRS-11 pair")
            roi = None
            roi_cells = [_cell(row, c) for c in _ROI_COLUMNS]
            if any(roi_cells):
                try:
                    roi = tuple(float(v) for v in roi_cells)
                except ValueError:
                    raise ValueError("roi_x0..roi_z1 must all be numbers (LPS mm)") from None
            cases.append(
                OutcomeCase(
                    case_id=case_id,
                    image=image,
                    label=label,
                    patient_id=_cell(row, "patient_id") or case_id,
                    nrs_pre=pre,
                    nrs_post=post,
                    roi_bounds_mm=roi,
                )
            )
            seen.add(case_id)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    if problems and not skip_bad_rows:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InputError(
            f"Manifest '{p}' has {len(problems)} bad row(s):\n  {shown}{more}",
            "correct those rows, or pass --skip-bad-rows (skip_bad_rows=True) to leave them out",
        )
    if not cases:
        raise InputError(f"Manifest '{p}' holds no usable case.", "add rows with case_id, image and a label")
    return cases, problems


def load_cases(
    data: str | os.PathLike, *, skip_bad_rows: bool = False
) -> tuple[list[OutcomeCase], list[str]]:
    """Cases from a manifest CSV, a folder with ``manifest.csv``, or a folder of phantom cases."""
    p = Path(data)
    if p.is_file():
        return read_manifest(p, skip_bad_rows=skip_bad_rows)
    if not p.is_dir():
        raise InputError(f"Outcome data '{p}' does not exist.", "pass a manifest CSV or a folder of cases")
    if (p / "manifest.csv").is_file():
        return read_manifest(p / "manifest.csv", skip_bad_rows=skip_bad_rows)
    cases = []
    for sub in sorted(q for q in p.iterdir() if q.is_dir()):
        image, truth_file = sub / "t2_sagittal.nii.gz", sub / "truth.json"
        if image.is_file() and truth_file.is_file():
            truth = json.loads(truth_file.read_text(encoding="utf-8"))
            cases.append(
                OutcomeCase(
                    case_id=sub.name,
                    image=image,
                    label=int(truth["outcome"]["label"]),
                    patient_id=sub.name,
                    truth=truth,
                )
            )
    if not cases:
        raise InputError(
            f"Folder '{p}' has no manifest.csv and no phantom cases (sub-folders with t2_sagittal.nii.gz and "
            "truth.json).",
            "write a manifest CSV (case_id,image,label or nrs_pre,nrs_post) and pass it with --data",
        )
    return cases, []


@dataclass
class RoiSet:
    """ROI arrays of a set of cases.

    Attributes:
        x: float16 ``(N, 13, 100, 40)``.
        y: int64 ``(N,)`` labels.
        case_ids, groups: per case.
        failed: ``"case: reason"`` for cases whose ROI could not be extracted.
        p_good: true probabilities (phantoms only, else NaN).
    """

    x: np.ndarray
    y: np.ndarray
    case_ids: list[str]
    groups: list[str]
    failed: list[str] = field(default_factory=list)
    p_good: np.ndarray | None = None


def rois_for_cases(cases: Sequence[OutcomeCase], *, roi: str = "auto") -> RoiSet:
    """Read each image and extract its ROI (``roi="auto"``: localiser; ``"truth"``: phantom truth).

    A case whose image is unreadable or whose discs cannot be found is listed in ``failed`` and left out.
    """
    from ..errors import SpineAIError
    from ..io import read_image
    from ..progress import track
    from .roi import ROI_SHAPE, extract_roi, roi_box_from_truth

    if roi not in ("auto", "truth"):
        raise InputError(f"Unknown ROI mode '{roi}'.", "use 'auto' (localiser) or 'truth' (phantoms)")
    xs, ys, ids, groups, failed, pg = [], [], [], [], [], []
    for case in track(cases, desc="ROI extraction"):
        try:
            image = read_image(case.image, name=f"MRI of case {case.case_id}")
            if case.roi_bounds_mm is not None:
                result = extract_roi(image, bounds_mm=case.roi_bounds_mm)
            elif roi == "truth":
                if case.truth is None:
                    raise InputError(f"case {case.case_id} has no phantom truth", "use roi='auto'")
                result = extract_roi(image, box=roi_box_from_truth(case.truth))
            else:
                result = extract_roi(image)
        except SpineAIError as exc:
            failed.append(f"{case.case_id}: {str(exc).splitlines()[0]}")
            continue
        xs.append(result.array.astype(np.float16))
        ys.append(case.label)
        ids.append(case.case_id)
        groups.append(case.patient_id)
        pg.append(float(case.truth["outcome"]["p_good"]) if case.truth else float("nan"))
    x = np.stack(xs) if xs else np.zeros((0, *ROI_SHAPE), dtype=np.float16)
    return RoiSet(
        x=x,
        y=np.asarray(ys, dtype=np.int64),
        case_ids=ids,
        groups=groups,
        failed=failed,
        p_good=np.asarray(pg, dtype=float),
    )


#: rendering settings of the synthetic training cohort (coarser than the default phantom: the ROI samples
#: 1.5 mm x ~3 mm anyway)
COHORT_RENDER = {"spacing_mm": (4.0, 1.5, 1.5), "n_slices": 15, "slice_subsamples": 2}


def synthetic_rois(
    seeds: Sequence[int], *, roi: str = "auto", render: dict[str, Any] | None = None
) -> RoiSet:
    """Render phantoms ``seeds`` (cohort generative model) and extract their ROIs, without writing files.

    Args:
        seeds: case seeds.
        roi: ``"auto"`` (the intensity localiser, as for real images) or ``"truth"``.
        render: options of :func:`~spineai.outcome.mri_phantom.render_sagittal_t2` (default
            :data:`COHORT_RENDER`).
    """
    from ..errors import SpineAIError
    from ..progress import track
    from .mri_phantom import generate_sagittal_t2
    from .roi import ROI_SHAPE, extract_roi, roi_box_from_truth

    opts = dict(COHORT_RENDER if render is None else render)
    xs, ys, ids, pg, failed = [], [], [], [], []
    for seed in track(list(seeds), desc="synthetic cohort"):
        case = generate_sagittal_t2(int(seed), **opts)
        try:
            box = roi_box_from_truth(case.truth) if roi == "truth" else None
            result = extract_roi(case.image, box=box)
        except SpineAIError as exc:
            failed.append(f"seed {seed}: {str(exc).splitlines()[0]}")
            continue
        xs.append(result.array.astype(np.float16))
        ys.append(int(case.truth["outcome"]["label"]))
        ids.append(f"seed_{int(seed)}")
        pg.append(float(case.truth["outcome"]["p_good"]))
    x = np.stack(xs) if xs else np.zeros((0, *ROI_SHAPE), dtype=np.float16)
    return RoiSet(
        x=x,
        y=np.asarray(ys, dtype=np.int64),
        case_ids=ids,
        groups=list(ids),
        failed=failed,
        p_good=np.asarray(pg, dtype=float),
    )
