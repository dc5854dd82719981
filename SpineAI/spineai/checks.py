"""Input checks before a model or a measurement runs: Hounsfield units, field of view, slice geometry, orientation.

Every check returns a :class:`CheckResult` saying what was found, in plain words, and what to do; none of
them changes the input. :func:`run_input_checks` runs those that apply; :func:`require` turns failed checks
into one :class:`~spineai.errors.InputError`. Coordinates are LPS (SimpleITK's physical frame: +x patient
left, +y posterior, +z superior), mm.

* :func:`check_hounsfield`: is the CT in Hounsfield units? Air near -1000 HU, soft tissue near 0..100 HU and
  bone above 300 HU. Stored DICOM values without their rescale (``Rescale Slope``/``Intercept``, which
  SimpleITK applies when it reads a DICOM series) start at 0 with soft tissue near 1000..1100; normalised
  or MR intensities have neither.
* :func:`check_field_of_view`: does the label map hold the vertebrae and disc of every level asked for, whole
  (not cut by the image's cranial or caudal end)?
* :func:`read_dicom_regular`: a DICOM series whose slices are unevenly spaced (missing or duplicated slices,
  variable reconstruction increment) or sheared (gantry tilt: slice positions not along the slice normal)
  is resampled (linearly) onto a regular orthogonal grid, with a message.
* :func:`check_orientation`: does the direction matrix agree with the anatomy? The vertebral bodies must lie
  anterior (-y) of the canal and posterior elements, and the sacrum below (-z) the lumbar vertebrae. A
  flipped left-right axis cannot be seen on the spine alone (it is symmetric) and is not checked.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from .errors import InputError

#: Hounsfield thresholds (HU)
AIR_HU = -900.0
BONE_HU = 300.0
#: relative tolerance of slice gaps (fraction of the median gap) and of the in-plane drift (mm)
GAP_TOLERANCE = 0.01
SHEAR_TOLERANCE_MM = 0.05


@dataclass
class CheckResult:
    """Outcome of one input check.

    Attributes:
        name: ``"hounsfield"``, ``"field_of_view"``, ``"slice_geometry"``, ``"orientation"``.
        status: ``"ok"``, ``"warning"`` (usable, but read the message; e.g. the series was resampled) or
            ``"error"`` (the input must be fixed first).
        message: what was found.
        fix: what to do (``None`` when nothing is needed).
        details: measured values behind the verdict.
    """

    name: str
    status: str
    message: str
    fix: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status != "error"

    def to_dict(self) -> dict[str, Any]:
        return dict(
            name=self.name, status=self.status, message=self.message, fix=self.fix, details=self.details
        )


# ========================================================================================== Hounsfield
def check_hounsfield(image: sitk.Image, name: str = "CT") -> CheckResult:
    """Whether ``image`` holds Hounsfield units (see the module docstring).

    Args:
        image: the CT (any pixel type).
        name: what it is, for the message.
    """
    arr = np.asarray(sitk.GetArrayViewFromImage(image), dtype=np.float32).ravel()
    step = max(1, arr.size // 2_000_000)
    v = arr[::step]
    p = {q: float(np.percentile(v, q)) for q in (0.5, 5, 50, 95, 99.5)}
    air = float(np.mean(v < AIR_HU))
    soft = float(np.mean((v > -200) & (v < 200)))
    bone = float(np.mean(v > BONE_HU))
    details = dict(
        min=float(v.min()),
        max=float(v.max()),
        percentiles=p,
        air_fraction=round(air, 4),
        soft_tissue_fraction=round(soft, 4),
        bone_fraction=round(bone, 4),
    )
    if v.min() >= -10 and np.mean((v > 900) & (v < 1200)) > 0.1:
        return CheckResult(
            "hounsfield",
            "error",
            f"The {name} is not in Hounsfield units: its values start at {v.min():.0f} and soft tissue lies near "
            f"{p[50]:.0f}, as stored DICOM pixel values do before the rescale intercept (usually -1024) is applied.",
            "read the DICOM series with spineai (SimpleITK applies Rescale Slope and Intercept), or subtract the "
            "intercept (HU = slope x stored + intercept) before saving the volume",
            details,
        )
    if v.max() - v.min() < 50 or (v.min() >= -10 and p[99.5] < 300):
        return CheckResult(
            "hounsfield",
            "error",
            f"The {name} does not look like a CT in Hounsfield units (values {v.min():.3g}..{v.max():.3g}, no air "
            "near -1000 and no bone): it may be normalised, an MR image, or a label map.",
            "pass the original CT in Hounsfield units (NIfTI/NRRD exported from the scanner's DICOM)",
            details,
        )
    if air < 0.001 and v.min() > AIR_HU:
        if bone > 0.002 and soft > 0.1:
            return CheckResult(
                "hounsfield",
                "warning",
                f"The {name} has no air (minimum {v.min():.0f}): Hounsfield units cannot be confirmed, but soft "
                "tissue and bone look like HU.",
                None,
                details,
            )
        return CheckResult(
            "hounsfield",
            "error",
            f"The {name} has no air (minimum {v.min():.0f}) and no clear soft-tissue and bone values: it does not "
            "look like a CT in Hounsfield units.",
            "pass the original CT in Hounsfield units",
            details,
        )
    if bone < 0.0005:
        return CheckResult(
            "hounsfield",
            "warning",
            f"The {name} has air but almost no bone (> {BONE_HU:.0f} HU in {bone * 100:.2f} % of voxels): check the "
            "window, the field of view or the modality.",
            None,
            details,
        )
    return CheckResult(
        "hounsfield",
        "ok",
        f"The {name} is in Hounsfield units (air {p[0.5]:.0f}, median {p[50]:.0f}, bone up to {p[99.5]:.0f} HU).",
        None,
        details,
    )


# ======================================================================================= field of view
def check_field_of_view(labelmap: Any, levels: Sequence[str] = ("L4-L5", "L5-S1")) -> CheckResult:
    """Whether the label map holds, whole, the two vertebrae and the disc of every level in ``levels``.

    A vertebra that reaches the image's cranial end (the upper one) or caudal end (the lower one) is
    *partial*: its level is reported as not covered (the sacrum may reach the caudal end: it always extends
    below a lumbar field of view). Works on any canonical label map (names as given).
    """
    from .anatomy import disc_name
    from .levels.labelling import load_canonical
    from .planning.triangles import _touches_end, parse_level
    from .planning.volume import LabelVolume

    vol = LabelVolume(load_canonical(labelmap))
    covered, missing = [], {}
    for level in levels:
        lv, upper, lower = parse_level(level)
        problems = [n for n in (upper, lower, disc_name(upper, lower)) if vol.count(n) == 0]
        for n, caudal in ((upper, False), (lower, True)):
            if n == "S1":  # the sacrum continues below any lumbar field of view; its top is what counts
                continue
            if n not in problems and _touches_end(vol, n, caudal=caudal):
                problems.append(f"{n} (cut by the {'caudal' if caudal else 'cranial'} end of the image)")
        if problems:
            missing[lv] = problems
        else:
            covered.append(lv)
    details = dict(covered=covered, not_covered=missing)
    if missing:
        text = "; ".join(f"{lv}: {', '.join(p)}" for lv, p in missing.items())
        return CheckResult(
            "field_of_view",
            "error",
            f"The field of view does not cover every level asked for ({text}). Covered: {', '.join(covered) or 'none'}.",
            "reconstruct or rescan with a field of view reaching one vertebra beyond each level, or ask only for "
            f"the covered levels ({', '.join(covered) or 'none'})",
            details,
        )
    return CheckResult(
        "field_of_view", "ok", f"Every level asked for is in view ({', '.join(covered)}).", None, details
    )


# ====================================================================================== slice geometry
def _series_files(folder: Path) -> list[str]:
    try:
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    except RuntimeError:
        ids = ()
    best: list[str] = []
    for sid in ids:
        files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid))
        if len(files) > len(best):
            best = files
    return best


def _slice_geometry(files: Iterable[str]) -> list[dict[str, Any]]:
    out = []
    for f in files:
        r = sitk.ImageFileReader()
        r.SetFileName(f)
        r.ReadImageInformation()
        keys = set(r.GetMetaDataKeys())
        if "0020|0032" not in keys or "0020|0037" not in keys:
            raise InputError(
                f"The DICOM file '{f}' has no Image Position or Orientation (Patient).",
                "export the series again with its geometry tags, or convert it with 3D Slicer or dcm2niix",
            )
        ipp = np.array([float(x) for x in r.GetMetaData("0020|0032").split("\\")])
        iop = np.array([float(x) for x in r.GetMetaData("0020|0037").split("\\")])
        out.append(dict(file=f, ipp=ipp, row=iop[:3], col=iop[3:], spacing=r.GetSpacing()[:2]))
    return out


def read_dicom_regular(folder: str | os.PathLike, name: str = "CT") -> tuple[sitk.Image, CheckResult]:
    """Read the largest DICOM series in ``folder`` onto a regular, orthogonal grid (HU for CT).

    Slices are ordered along the normal of their plane (``row x column`` of Image Orientation Patient). When
    their gaps along it differ (by more than 1 % of the median gap) or their positions drift within the plane
    (gantry tilt: by more than 0.05 mm), every output slice is interpolated linearly between the two input
    slices around it, each sampled (bilinearly) where the output grid crosses it; the output grid has the
    slices' in-plane axes and spacing, the normal as third axis and the median gap as slice spacing.

    Returns:
        ``(image, result)``: the volume (float32 after resampling; as read otherwise) and a
        :class:`CheckResult` (``ok``, or ``warning`` saying what was resampled).

    Raises:
        InputError: no DICOM series in the folder, or slices without geometry tags.
    """
    from scipy.ndimage import map_coordinates

    folder = Path(folder)
    files = _series_files(folder)
    if not files:
        raise InputError(
            f"The {name} folder '{folder}' contains no readable DICOM series.",
            "point to the folder that directly holds the slice files of one series",
        )
    geo = _slice_geometry(files)
    row, col = geo[0]["row"], geo[0]["col"]
    normal = np.cross(row, col)
    d = np.array([float((g["ipp"] - geo[0]["ipp"]) @ normal) for g in geo])
    order = np.argsort(d)
    geo = [geo[i] for i in order]
    d = d[order] - d[order][0]
    p0 = geo[0]["ipp"]
    drift = np.array([(g["ipp"] - p0) - float((g["ipp"] - p0) @ normal) * normal for g in geo])
    gaps = np.diff(d) if len(d) > 1 else np.array([1.0])
    median = float(np.median(gaps))
    irregular = len(d) > 2 and float(np.max(np.abs(gaps - median))) > GAP_TOLERANCE * median + 0.01
    drift_mm = float(np.max(np.linalg.norm(drift - drift[0], axis=1))) if len(d) > 1 else 0.0
    tilted = drift_mm > SHEAR_TOLERANCE_MM
    tilt_deg = float(np.degrees(np.arctan2(drift_mm, d[-1]))) if tilted and d[-1] > 0 else 0.0
    details = dict(
        slices=len(d),
        median_gap_mm=round(median, 4),
        min_gap_mm=round(float(gaps.min()), 4),
        max_gap_mm=round(float(gaps.max()), 4),
        in_plane_drift_mm=round(drift_mm, 3),
        tilt_deg=round(tilt_deg, 2),
    )
    if not irregular and not tilted:
        from . import io

        img = io.read_image(folder, dims=3, name=name)
        return img, CheckResult(
            "slice_geometry", "ok", f"The {len(d)} slices are evenly spaced ({median:.3g} mm).", None, details
        )
    if median <= 0:
        raise InputError(
            f"The DICOM series in '{folder}' has duplicated slice positions.", "export the series again"
        )
    slices = []
    for g in geo:  # SimpleITK applies Rescale Slope and Intercept: HU for CT
        a = sitk.GetArrayFromImage(sitk.ReadImage(g["file"])).astype(np.float32)
        slices.append(a.reshape(a.shape[-2:]))
    ny, nx = slices[0].shape
    px, py = (float(s) for s in geo[0]["spacing"])
    n_out = int(np.floor(d[-1] / median + 1e-6)) + 1
    fill = float(min(s.min() for s in slices))
    out = np.empty((n_out, ny, nx), dtype=np.float32)
    jj, ii = np.mgrid[0:ny, 0:nx].astype(np.float32)
    for k in range(n_out):
        z = k * median
        s = int(np.clip(np.searchsorted(d, z, side="right") - 1, 0, len(d) - 2)) if len(d) > 1 else 0
        w = 0.0 if len(d) == 1 else float(np.clip((z - d[s]) / max(d[s + 1] - d[s], 1e-9), 0.0, 1.0))
        acc = np.zeros((ny, nx), dtype=np.float32)
        for idx, weight in ((s, 1.0 - w), (min(s + 1, len(d) - 1), w)):
            if weight <= 0:
                continue
            shift = drift[idx]
            ci = ii - float(shift @ row) / px
            cj = jj - float(shift @ col) / py
            acc += weight * map_coordinates(slices[idx], [cj, ci], order=1, mode="constant", cval=fill)
        out[k] = acc
    img = sitk.GetImageFromArray(out)
    img.SetSpacing((px, py, median))
    img.SetOrigin(tuple(float(v) for v in p0))
    img.SetDirection(tuple(float(v) for v in np.column_stack([row, col, normal]).ravel()))
    what = []
    if irregular:
        what.append(f"unevenly spaced slices (gaps {gaps.min():.3g}..{gaps.max():.3g} mm)")
    if tilted:
        what.append(
            f"a gantry tilt of {tilt_deg:.1f} degrees (slices drift {drift_mm:.1f} mm in their plane)"
        )
    result = CheckResult(
        "slice_geometry",
        "warning",
        f"The DICOM series has {' and '.join(what)}: it was resampled linearly onto a regular grid of {n_out} "
        f"slices every {median:.3g} mm, orthogonal to the slices.",
        "nothing to do; to avoid the interpolation, reconstruct the series with a constant increment and no tilt",
        details,
    )
    return img, result


# ========================================================================================= orientation
def check_orientation(labelmap: Any) -> CheckResult:
    """Whether the label map's direction matrix agrees with the anatomy (see the module docstring).

    Antero-posterior: each vertebra's voxels are concentrated in its body, so its centroid lies anterior of the
    middle of its antero-posterior (LPS y) extent; with a dural sac label, the sac lies posterior of the
    vertebral bodies. Cranio-caudal: the sacrum (the largest bone, or the ``S1`` label) lies below the other
    vertebrae in LPS z.
    """
    from .anatomy import BY_NAME
    from .levels.instances import extract_instances, order_along_spine
    from .levels.labelling import _grid_of, load_canonical

    image = load_canonical(labelmap)
    arr = np.asarray(sitk.GetArrayViewFromImage(image))
    grid = _grid_of(image)
    inst, _ = extract_instances(arr, grid)
    mobile = [i for i in inst if i.input_name != "S1"]
    if len(inst) < 2 or not mobile:
        return CheckResult(
            "orientation",
            "warning",
            "Too few vertebrae to check the orientation against the anatomy.",
            None,
            {},
        )
    votes = []
    for i in mobile:
        y = i.points[:, 1]
        votes.append(float(i.centroid[1] - 0.5 * (y.min() + y.max())))
    ap = float(np.median(votes))
    details: dict[str, Any] = dict(centroid_offset_from_ap_middle_mm=round(ap, 2))
    sac = np.flatnonzero(arr.ravel() == BY_NAME["dural_sac"].label)
    if sac.size:
        sac_y = float(grid.points(sac)[:, 1].mean())
        ap_sac = sac_y - float(np.mean([i.centroid[1] for i in mobile]))
        details["dural_sac_minus_vertebrae_y_mm"] = round(ap_sac, 2)
    problems = []
    if ap > 0 and details.get("dural_sac_minus_vertebrae_y_mm", 1.0) < 0:
        problems.append(
            "the vertebral bodies lie posterior (+y) of the canal and posterior elements: the anterior-posterior "
            "axis of the direction matrix is flipped"
        )
    elif ap > 0 and "dural_sac_minus_vertebrae_y_mm" not in details:
        problems.append(
            "the vertebrae's mass lies toward +y (posterior in LPS), where their bodies cannot be: the "
            "anterior-posterior axis of the direction matrix looks flipped"
        )
    long_axis = order_along_spine(inst)
    details["long_axis_lps"] = np.round(long_axis, 3).tolist()
    named_s1 = [i for i in inst if i.input_name == "S1"]
    sacrum = named_s1[0] if named_s1 else max(inst, key=lambda i: i.volume_ml)
    others = [i for i in inst if i is not sacrum]
    if others and (named_s1 or sacrum.volume_ml > 1.5 * float(np.median([o.volume_ml for o in others]))):
        dz = float(sacrum.centroid[2] - np.mean([o.centroid[2] for o in others]))
        details["sacrum_minus_vertebrae_z_mm"] = round(dz, 2)
        if dz > 0:
            problems.append(
                "the sacrum lies above (+z, superior in LPS) the lumbar vertebrae: the cranio-caudal axis of the "
                "direction matrix is flipped"
            )
    if problems:
        return CheckResult(
            "orientation",
            "error",
            "The image orientation contradicts the anatomy: " + "; ".join(problems) + ".",
            "fix the direction matrix of the file (re-export it from the DICOM series, or correct the orientation "
            "in 3D Slicer's Transforms module and harden it), then run again",
            details,
        )
    return CheckResult(
        "orientation",
        "ok",
        "The orientation agrees with the anatomy (vertebral bodies anterior, sacrum caudal).",
        None,
        details,
    )


# ============================================================================================== driver
def run_input_checks(
    ct: Any = None, labelmap: Any = None, levels: Sequence[str] | None = None
) -> list[CheckResult]:
    """Run every check that applies: Hounsfield units (with a CT), the DICOM slice geometry (a DICOM folder),
    the orientation (with a label map) and the field of view (with a label map and ``levels``).

    Args:
        ct: CT path (file or DICOM folder) or ``sitk.Image``.
        labelmap: canonical label map (path, :class:`spineai.io.LabelMap` or ``sitk.Image``).
        levels: levels that must be in view (``"L5-S1"``).
    """
    from . import io

    results: list[CheckResult] = []
    if ct is not None:
        image = ct
        if isinstance(ct, (str, os.PathLike)):
            if Path(ct).is_dir():
                image, geometry = read_dicom_regular(ct)
                results.append(geometry)
            else:
                image = io.read_image(ct, dims=3, name="CT")
        results.append(check_hounsfield(image))
    if labelmap is not None:
        results.append(check_orientation(labelmap))
        if levels:
            results.append(check_field_of_view(labelmap, levels))
    return results


def require(results: Iterable[CheckResult]) -> None:
    """Raise one :class:`InputError` listing every failed check (``status == "error"``) and its fix."""
    failed = [r for r in results if r.status == "error"]
    if failed:
        raise InputError(" ".join(r.message for r in failed), "; ".join(r.fix or "" for r in failed))
