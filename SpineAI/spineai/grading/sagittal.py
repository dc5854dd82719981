"""Per-disc grading of a sagittal lumbar T2 MRI slice: :func:`grade_sagittal`.

Pipeline
--------
1. **Input**: a 2D picture (PNG/JPG/BMP, 2D DICOM/NIfTI/NRRD) or a 3D sagittal T2 volume, from which the
   mid-sagittal slice (the middle slice along the patient's left-right axis, after reorientation to
   LPS) is graded, which the result's notes say. Refused with an :class:`~spineai.errors.InputError`: CT
   (Hounsfield statistics), an axial or coronal series (its thick slice axis is not left-right), a slice
   too small or implausibly stretched, a slice on which no column of discs is found (e.g. an axial
   picture), and a slice without a recognisable L5/S1 (levels cannot be named).
2. **Working slice**: upright (superior at the top), anterior on the left, square pixels (resampled to
   the finer pixel size when the slice's pixels are not square). Volumes are put upright from their
   geometry. A picture has no geometry; with ``orientation="auto"`` the locator is run on the picture
   and on its three flips (upside down, mirrored, both) and the version whose L5/S1 is recognised best
   is graded (the public SPIDER PNG export, for one, is stored upside down); the notes say when a flip
   was applied.
3. **Discs**: the locator (:mod:`~spineai.grading.disc_detection`) finds and names every disc (IVD 1 =
   L5/S1 upwards), or disc centres given by hand (``disc_points``) are used.
4. **Grades**: the classifier (:mod:`~spineai.grading.classifier`) reads each disc's patch and gives
   the eight gradings with their probabilities (averaged over the patch and six slightly shifted or
   scaled copies of it, :data:`TEST_TIME_VARIANTS`).
5. **Grad-CAM** (:mod:`~spineai.grading.gradcam`) per requested grading, pasted back onto the input's
   own geometry (a 2D image for a picture, a volume with the map on the graded slice for a volume).

Coordinates: ``centre_index`` is the continuous pixel/voxel index ``(i, j[, k])`` of the input image
(SimpleITK order); ``centre_mm`` the physical point (LPS mm for volumes; the picture's own x, y for 2D).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from ..errors import InputError
from ..weights import INTENDED_USE
from .checks import ct_problem, slice_shape_problem
from .classifier import PatchFrame, SagittalGraderNet, head_offsets, patch_frame, sample_patch
from .disc_detection import (
    DiscLocalisation,
    column_score,
    decode_heatmaps,
    locator_input,
    name_levels,
    normalise_slice,
)
from .model import SagittalGradingModel, load_grading_model, torch_threads
from .tasks import GRADING_TASKS, task_by_key

__all__ = [
    "ORIENTATIONS",
    "DiscGrade",
    "SagittalGradingResult",
    "grade_sagittal",
]

#: operations applied to a picture to make it upright (``"auto"`` chooses one)
ORIENTATIONS = ("auto", "as_is", "flip_vertical", "flip_horizontal", "rotate_180")
_FLIPS = ("as_is", "flip_vertical", "flip_horizontal", "rotate_180")


# ------------------------------------------------------------------------------------- working slice
@dataclass
class _AxisMap:
    """``source = a * working + b`` along one axis (pixels)."""

    a: float = 1.0
    b: float = 0.0

    def then_flip(self, n: int) -> _AxisMap:
        # new working w' = n - 1 - w  ->  source = a (n - 1 - w') + b
        return _AxisMap(-self.a, self.a * (n - 1) + self.b)


@dataclass
class _WorkingSlice:
    array: np.ndarray  # raw values, upright, square pixels
    pixel_mm: float
    rows: _AxisMap
    cols: _AxisMap
    source_shape: tuple[int, int]
    image: sitk.Image  # the input as given
    lps: sitk.Image | None = None  # volume reoriented to LPS
    slice_x: int | None = None  # graded sagittal slice (x index of ``lps``)
    notes: list[str] = field(default_factory=list)

    def flipped(self, how: str) -> _WorkingSlice:
        arr, rows, cols = self.array, self.rows, self.cols
        if how in ("flip_vertical", "rotate_180"):
            arr, rows = arr[::-1], rows.then_flip(arr.shape[0])
        if how in ("flip_horizontal", "rotate_180"):
            arr, cols = arr[:, ::-1], cols.then_flip(arr.shape[1])
        return _WorkingSlice(
            np.ascontiguousarray(arr),
            self.pixel_mm,
            rows,
            cols,
            self.source_shape,
            self.image,
            self.lps,
            self.slice_x,
            list(self.notes),
        )

    def to_source(self, rc: np.ndarray) -> np.ndarray:
        p = np.asarray(rc, dtype=np.float64)
        return np.stack(
            [self.rows.a * p[..., 0] + self.rows.b, self.cols.a * p[..., 1] + self.cols.b], axis=-1
        )

    def to_working(self, rc: np.ndarray) -> np.ndarray:
        p = np.asarray(rc, dtype=np.float64)
        return np.stack(
            [(p[..., 0] - self.rows.b) / self.rows.a, (p[..., 1] - self.cols.b) / self.cols.a], axis=-1
        )

    def source_map(self, working_map: np.ndarray) -> np.ndarray:
        """A working-slice map resampled onto the source slice's pixel grid (bilinear, 0 outside)."""
        from scipy import ndimage

        sr = (np.arange(self.source_shape[0]) - self.rows.b) / self.rows.a
        sc = (np.arange(self.source_shape[1]) - self.cols.b) / self.cols.a
        grid = np.meshgrid(sr, sc, indexing="ij")
        return ndimage.map_coordinates(working_map, grid, order=1, mode="constant", cval=0.0).astype(
            np.float32
        )

    def source_index(self, rc_source: np.ndarray) -> list[float]:
        """Continuous index of the *input image* (SimpleITK order) of a source-slice (row, col)."""
        r, c = float(rc_source[0]), float(rc_source[1])
        if self.lps is None:
            return [c, r]
        # source rows = z (LPS), cols = y (LPS)
        point = self.lps.TransformContinuousIndexToPhysicalPoint((float(self.slice_x), c, r))
        return [float(v) for v in self.image.TransformPhysicalPointToContinuousIndex(point)]

    def physical(self, rc_source: np.ndarray) -> list[float]:
        r, c = float(rc_source[0]), float(rc_source[1])
        if self.lps is None:
            return [float(v) for v in self.image.TransformContinuousIndexToPhysicalPoint((c, r))]
        return [
            float(v) for v in self.lps.TransformContinuousIndexToPhysicalPoint((float(self.slice_x), c, r))
        ]

    def working_from_physical(self, point: Sequence[float]) -> np.ndarray:
        if self.lps is None:
            if len(point) != 2:
                raise InputError(
                    f"Disc point {tuple(point)} has {len(point)} coordinates; a 2D picture needs (x, y) in mm.",
                    "give each disc centre as two physical coordinates of the picture",
                )
            c, r = self.image.TransformPhysicalPointToContinuousIndex([float(v) for v in point])
        else:
            if len(point) != 3:
                raise InputError(
                    f"Disc point {tuple(point)} has {len(point)} coordinates; a volume needs LPS (x, y, z) in mm.",
                    "give each disc centre as an LPS point in mm (Slicer shows RAS: negate x and y)",
                )
            _, c, r = self.lps.TransformPhysicalPointToContinuousIndex([float(v) for v in point])
        return self.to_working(np.array([r, c]))


def _to_square_pixels(
    arr: np.ndarray, spacing_rc: tuple[float, float]
) -> tuple[np.ndarray, float, _AxisMap, _AxisMap]:
    from scipy import ndimage

    sr, sc = float(spacing_rc[0]), float(spacing_rc[1])
    if abs(sr / sc - 1.0) <= 0.05:
        return arr, float(min(sr, sc)), _AxisMap(), _AxisMap()
    target = min(sr, sc)
    zr, zc = sr / target, sc / target
    out = ndimage.zoom(arr, (zr, zc), order=1, mode="nearest", grid_mode=True)
    zr = out.shape[0] / arr.shape[0]
    zc = out.shape[1] / arr.shape[1]
    # grid_mode: working w = (s + 0.5) z - 0.5  ->  s = (w + 0.5) / z - 0.5
    return out, target, _AxisMap(1.0 / zr, 0.5 / zr - 0.5), _AxisMap(1.0 / zc, 0.5 / zc - 0.5)


def _read_input(image: str | os.PathLike | sitk.Image | np.ndarray) -> tuple[sitk.Image, str | None]:
    from ..io import image_from_array, read_image, validate_image

    if isinstance(image, sitk.Image):
        return validate_image(image, name="sagittal MRI"), None
    if isinstance(image, np.ndarray):
        if image.ndim != 2:
            raise InputError(
                f"A numpy array of shape {image.shape} was given; arrays must be one 2D slice (rows, cols).",
                "pass a volume as a file or SimpleITK image so its geometry is known",
            )
        return image_from_array(image.astype(np.float32), name="sagittal slice"), None
    return read_image(image, dims=None, name="sagittal MRI"), str(image)


def _axis_letter(vec: Sequence[float]) -> str:
    return "xyz"[int(np.argmax(np.abs(np.asarray(vec, dtype=float))))]


def _working_slice(img: sitk.Image, slice_index: int | None) -> _WorkingSlice:
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"The image has {img.GetNumberOfComponentsPerPixel()} values per pixel.",
            "pass a single-channel grey image",
        )
    if img.GetDimension() == 2:
        arr = sitk.GetArrayFromImage(img).astype(np.float32)  # rows = y index, cols = x index
        problem = ct_problem(arr)
        if problem:
            raise InputError(
                f"Cannot grade this picture: {problem}.", "pass a sagittal T2-weighted MRI slice"
            )
        spacing = (float(img.GetSpacing()[1]), float(img.GetSpacing()[0]))
        problem = slice_shape_problem(arr.shape[0], arr.shape[1], spacing)
        if problem:
            raise InputError(
                f"Cannot grade this picture: {problem}.",
                "pass a mid-sagittal T2-weighted slice with square pixels (or the sagittal volume with its geometry)",
            )
        work, pixel, rows, cols = _to_square_pixels(arr, spacing)
        return _WorkingSlice(work, pixel, rows, cols, arr.shape, img)
    # ---- volume
    values = sitk.GetArrayViewFromImage(img)
    problem = ct_problem(np.asarray(values[:: max(1, values.shape[0] // 16)]))
    if problem:
        raise InputError(
            f"Cannot grade this volume: {problem}.",
            "load the lumbar sagittal T2-weighted MRI series instead (CT is read by 'spineai segment')",
        )
    spacing = np.asarray(img.GetSpacing(), dtype=float)
    direction = np.asarray(img.GetDirection(), dtype=float).reshape(3, 3)
    thick = int(np.argmax(spacing))
    if spacing[thick] > 1.25 * float(np.min(spacing)):
        axis = _axis_letter(direction[:, thick])
        if axis != "x":
            plane = "an axial" if axis == "z" else "a coronal"
            raise InputError(
                f"The volume is {plane} series (its {spacing[thick]:.1f} mm slice axis runs "
                f"{'superior-inferior' if axis == 'z' else 'antero-posterior'}); the grader reads sagittal slices.",
                "load the sagittal T2 series of the same study (slices stacked from the patient's left to right)",
            )
    lps = sitk.DICOMOrient(sitk.Cast(img, sitk.sitkFloat32), "LPS")
    arr = sitk.GetArrayFromImage(lps)  # [z, y, x]
    n_x = arr.shape[2]
    x = n_x // 2 if slice_index is None else int(slice_index)
    if not 0 <= x < n_x:
        raise InputError(
            f"Sagittal slice {x} is outside 0..{n_x - 1}.", "pass a slice index inside the volume"
        )
    source = arr[:, :, x]  # rows = z (inferior -> superior), cols = y (anterior -> posterior)
    sy, sz = float(lps.GetSpacing()[1]), float(lps.GetSpacing()[2])
    problem = slice_shape_problem(source.shape[0], source.shape[1], (sz, sy))
    if problem:
        raise InputError(
            f"Cannot grade sagittal slice {x} of this volume: {problem}.",
            "load the complete sagittal T2 series of the lumbar spine",
        )
    work, pixel, rows, cols = _to_square_pixels(source, (sz, sy))
    ws = _WorkingSlice(work, pixel, rows, cols, source.shape, img, lps, x)
    ws = ws.flipped("flip_vertical")  # superior at the top
    centre_x = lps.TransformContinuousIndexToPhysicalPoint((float(x), 0.0, 0.0))[0]
    ws.notes.append(
        f"graded the {'mid-' if slice_index is None else ''}sagittal slice {x} of {n_x} along the patient's "
        f"left-right axis (LPS x = {centre_x:.1f} mm)"
    )
    return ws


# -------------------------------------------------------------------------------------------- result
@dataclass
class DiscGrade:
    """Grades of one disc.

    Attributes:
        ivd: IVD number (1 = L5/S1, counting upwards).
        level: e.g. ``"L5-S1"``.
        structure: canonical name, e.g. ``"disc_L5_S1"``.
        centre_index: continuous index of the disc centre in the input image (SimpleITK order i, j[, k]).
        centre_mm: physical position of the centre (LPS mm for a volume; the picture's x, y otherwise).
        confidence: locator heat at the centre (0..1); ``None`` for a centre given by hand.
        grades: ``{grading: grade}``.
        probabilities: ``{grading: {grade: probability}}``.
        patch_corners_index: the patch rectangle's four corners as input-image indices.
        gradcam_peak_index: ``{grading: index of the Grad-CAM maximum}`` for the gradings explained.
    """

    ivd: int
    level: str
    structure: str
    centre_index: list[float]
    centre_mm: list[float]
    confidence: float | None
    grades: dict[str, int]
    probabilities: dict[str, dict[str, float]]
    patch_corners_index: list[list[float]]
    gradcam_peak_index: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "ivd": self.ivd,
            "level": self.level,
            "structure": self.structure,
            "centre_index": self.centre_index,
            "centre_mm": self.centre_mm,
            "confidence": self.confidence,
            "grades": dict(self.grades),
            "probabilities": {k: dict(v) for k, v in self.probabilities.items()},
            "patch_corners_index": self.patch_corners_index,
            "gradcam_peak_index": dict(self.gradcam_peak_index),
        }


@dataclass
class SagittalGradingResult:
    """Everything :func:`grade_sagittal` found (``to_dict`` is JSON-ready; the heat maps are images).

    Attributes:
        source: the input file, if one was given.
        input_kind: ``"picture"`` (2D) or ``"volume"`` (3D).
        input_size: size of the input image (SimpleITK order).
        orientation: flip applied to make a picture upright (``"as_is"`` when none).
        graded_slice: for a volume, the index of the graded sagittal slice along LPS x.
        l5s1_found: whether L5/S1 was recognised (otherwise levels were counted from the lowest disc).
        discs: per-disc grades, caudal first.
        notes: what was decided on the way, in words.
        model: name, version, SHA-256 and file of the weights used.
        gradcam_gradings: gradings explained by Grad-CAM.
        heatmaps: ``{grading: Grad-CAM image on the input's geometry}`` (float32, 0..1).
    """

    source: str | None
    input_kind: str
    input_size: list[int]
    orientation: str
    graded_slice: int | None
    l5s1_found: bool
    discs: list[DiscGrade]
    notes: list[str]
    model: dict[str, Any]
    gradcam_gradings: list[str]
    heatmaps: dict[str, sitk.Image] = field(default_factory=dict, repr=False)
    _overlay: dict[str, Any] = field(default_factory=dict, repr=False)
    intended_use: str = INTENDED_USE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without the heat-map images)."""
        return {
            "source": self.source,
            "input_kind": self.input_kind,
            "input_size": list(self.input_size),
            "orientation": self.orientation,
            "graded_slice": self.graded_slice,
            "l5s1_found": self.l5s1_found,
            "discs": [d.to_dict() for d in self.discs],
            "notes": list(self.notes),
            "model": dict(self.model),
            "gradcam_gradings": list(self.gradcam_gradings),
            "gradings": {
                t.key: {"title": t.title, "grades": list(t.grades), "grade_names": list(t.grade_names)}
                for t in GRADING_TASKS
            },
            "intended_use": self.intended_use,
        }

    def table_rows(self) -> list[dict[str, Any]]:
        """One flat row per disc: level, position, each grade and each grade's probability."""
        rows = []
        for d in self.discs:
            row: dict[str, Any] = {"ivd": d.ivd, "level": d.level, "structure": d.structure}
            for axis, v in zip("ijk", d.centre_index, strict=False):
                row[f"index_{axis}"] = round(v, 2)
            for axis, v in zip("xyz", d.centre_mm, strict=False):
                row[f"{axis}_mm"] = round(v, 2)
            row["confidence"] = None if d.confidence is None else round(d.confidence, 4)
            for task in GRADING_TASKS:
                row[task.key] = d.grades[task.key]
                for g in task.grades:
                    row[f"p_{task.key}_{g}"] = round(d.probabilities[task.key][str(g)], 4)
            rows.append(row)
        return rows

    def write(self, out_dir: str | os.PathLike, overwrite: bool = False) -> dict[str, Path]:
        """Write ``grades.tsv``, ``grades.json`` and per explained grading ``gradcam_<grading>.nii.gz``
        (on the input's geometry) and ``gradcam_<grading>.png`` (overlay) into ``out_dir``.

        Returns:
            ``{name: path}`` of the files written.
        """
        from .outputs import write_grading_outputs

        return write_grading_outputs(self, out_dir, overwrite=overwrite)


# ----------------------------------------------------------------------------------------- inference
def _locate(
    model: SagittalGradingModel, candidates: dict[str, _WorkingSlice]
) -> dict[str, tuple[np.ndarray, Any]]:
    size = int(model.locator.config["size"])
    inputs, geos = [], []
    for ws in candidates.values():
        x, geo = locator_input(normalise_slice(ws.array), size)
        inputs.append(x[None])
        geos.append(geo)
    with torch.no_grad():
        heat = torch.sigmoid(model.locator(torch.from_numpy(np.stack(inputs)))).numpy()
    return {name: (heat[i], geos[i]) for i, name in enumerate(candidates)}


def _choose_orientation(
    model: SagittalGradingModel, base: _WorkingSlice, orientation: str, l5s1_threshold: float
) -> tuple[str, _WorkingSlice, np.ndarray, Any, list[str]]:
    notes: list[str] = []
    if orientation != "auto" or base.lps is not None:
        name = "as_is" if orientation == "auto" else orientation
        ws = base.flipped(name) if name != "as_is" else base
        heat, geo = _locate(model, {name: ws})[name]
        return name, ws, heat, geo, notes
    candidates = {name: (base.flipped(name) if name != "as_is" else base) for name in _FLIPS}
    located = _locate(model, candidates)
    scores = {name: column_score(h) for name, (h, _) in located.items()}
    best = max(_FLIPS, key=lambda n: (scores[n], n == "as_is"))
    if scores[best] < l5s1_threshold:
        best = "as_is"
    elif best != "as_is":
        what = {
            "flip_vertical": "upside down (caudal end at the top)",
            "flip_horizontal": "mirrored (anterior on the right)",
            "rotate_180": "rotated by 180 degrees",
        }[best]
        notes.append(f"the picture appeared {what}; it was graded after undoing that ({best})")
    heat, geo = located[best]
    return best, candidates[best], heat, geo, notes


def _given_discs(ws: _WorkingSlice, points: Sequence[Sequence[float]], lowest_ivd: int) -> DiscLocalisation:
    pts = np.array([ws.working_from_physical(p) for p in points], dtype=np.float64).reshape(-1, 2)
    if len(pts) < 2:
        raise InputError(
            f"{len(pts)} disc centre given; at least two are needed (the patch size follows the disc spacing).",
            "give the centres of two or more neighbouring discs",
        )
    loc = name_levels(pts, np.zeros(len(pts)), np.full(len(pts), np.nan), lowest_ivd=lowest_ivd, min_discs=2)
    loc.notes.append(f"disc centres given by hand; the lowest is IVD {lowest_ivd}")
    return loc


def grade_sagittal(
    image: str | os.PathLike | sitk.Image | np.ndarray,
    *,
    weights: str | os.PathLike | None = None,
    orientation: str = "auto",
    gradcam: Sequence[str] | None = ("pfirrmann",),
    require_l5s1: bool = True,
    disc_points: Sequence[Sequence[float]] | None = None,
    lowest_ivd: int = 1,
    slice_index: int | None = None,
    l5s1_threshold: float = 0.3,
    threads: int | None = 1,
) -> SagittalGradingResult:
    """Grade every lumbar disc of a sagittal T2 slice (or a volume's mid-sagittal slice).

    Args:
        image: a file (PNG/JPG/BMP, NIfTI, NRRD, MHA, DICOM), a ``SimpleITK.Image`` (2D or 3D) or a 2D
            numpy array ``(rows, cols)`` (upright picture convention).
        weights: model weights (``.safetensors`` with its card); ``None``: the shipped model.
        orientation: for pictures, ``"auto"`` (try the four flips, keep the one whose L5/S1 is clearest) or
            one of ``"as_is"``, ``"flip_vertical"``, ``"flip_horizontal"``, ``"rotate_180"``; volumes are
            put upright from their geometry (``"auto"`` = ``"as_is"``).
        gradcam: gradings to explain with Grad-CAM (keys of :data:`~spineai.grading.tasks.TASK_KEYS`);
            ``None`` or empty for none.
        require_l5s1: refuse a slice on which L5/S1 is not recognised (levels could not be named).
        disc_points: disc centres given by hand as physical points (2D: x, y mm of the picture; volume:
            LPS x, y, z mm), instead of the locator.
        lowest_ivd: IVD number of the lowest hand-given disc (1 = L5/S1).
        slice_index: for a volume, the sagittal slice (LPS x index) to grade; default the middle one.
        l5s1_threshold: smallest L5/S1 heat that recognises L5/S1.
        threads: PyTorch threads while grading (restored afterwards); ``None`` leaves the setting alone.

    Returns:
        A :class:`SagittalGradingResult`.

    Raises:
        InputError: see the module docstring (CT, axial/coronal series, no disc column, no L5/S1, ...).
        WeightsError: missing or tampered weights.
    """
    if orientation not in ORIENTATIONS:
        raise InputError(f"Unknown orientation '{orientation}'.", f"use one of {', '.join(ORIENTATIONS)}")
    tasks = [task_by_key(k).key for k in (gradcam or [])] if gradcam else []
    model, card = load_grading_model(weights)
    with torch_threads(threads):
        return _grade(
            model,
            card,
            image,
            orientation,
            tasks,
            require_l5s1,
            disc_points,
            lowest_ivd,
            slice_index,
            l5s1_threshold,
        )


def _grade(
    model: SagittalGradingModel,
    card: Any,
    image: str | os.PathLike | sitk.Image | np.ndarray,
    orientation: str,
    tasks: list[str],
    require_l5s1: bool,
    disc_points: Sequence[Sequence[float]] | None,
    lowest_ivd: int,
    slice_index: int | None,
    l5s1_threshold: float,
) -> SagittalGradingResult:
    img, source = _read_input(image)
    base = _working_slice(img, slice_index)
    notes = list(base.notes)
    if disc_points is not None:
        name = "as_is" if orientation == "auto" else orientation
        ws = base.flipped(name) if name != "as_is" else base
        loc = _given_discs(ws, disc_points, lowest_ivd)
    else:
        name, ws, heat, geo, orient_notes = _choose_orientation(model, base, orientation, l5s1_threshold)
        notes += orient_notes
        loc = decode_heatmaps(heat, geo, l5s1_threshold=l5s1_threshold, require_l5s1=require_l5s1)
    notes += loc.notes
    if not loc.discs:
        raise InputError(
            "No disc could be named on the slice.", "pass a sagittal lumbar T2 slice showing L5/S1 upwards"
        )
    normalised = normalise_slice(ws.array)
    frames: list[PatchFrame] = [patch_frame((d.row, d.col), d.axis_rc, d.spacing_px) for d in loc.discs]
    patches = np.stack([sample_patch(normalised, f)[None] for f in frames]).astype(np.float32)
    probs = _disc_probabilities(model.grader, normalised, loc.discs, patches)

    discs: list[DiscGrade] = []
    for i, (d, frame) in enumerate(zip(loc.discs, frames, strict=True)):
        centre_src = ws.to_source(np.array([d.row, d.col]))
        corners = [ws.source_index(ws.to_source(c)) for c in frame.corners()]
        grades, probabilities = {}, {}
        for task in GRADING_TASKS:
            p = probs[task.key][i]
            grades[task.key] = int(task.grades[int(np.argmax(p))])
            probabilities[task.key] = {str(g): float(v) for g, v in zip(task.grades, p, strict=True)}
        discs.append(
            DiscGrade(
                ivd=d.ivd,
                level=d.level,
                structure=d.structure,
                centre_index=ws.source_index(centre_src),
                centre_mm=ws.physical(centre_src),
                confidence=None if not np.isfinite(d.confidence) else float(d.confidence),
                grades=grades,
                probabilities=probabilities,
                patch_corners_index=corners,
            )
        )

    heatmaps: dict[str, sitk.Image] = {}
    working_maps: dict[str, np.ndarray] = {}
    if tasks:
        from .gradcam import disc_gradcams, paste_patch_maps

        offsets = head_offsets()
        for key in tasks:
            task = task_by_key(key)
            start = offsets[key][0]
            idx = [start + task.index_of(d.grades[key]) for d in discs]
            maps = disc_gradcams(model.grader, patches, idx)
            for d, m, frame in zip(discs, maps, frames, strict=True):
                peak = np.unravel_index(int(np.argmax(m)), m.shape)
                down = -np.asarray(frame.axis_rc)
                across = np.asarray(frame.across_rc)
                offs = (peak[0] - (m.shape[0] - 1) / 2) * frame.step_rc[0] * down + (
                    (peak[1] - (m.shape[1] - 1) / 2) * frame.step_rc[1] * across
                )
                d.gradcam_peak_index[key] = ws.source_index(ws.to_source(np.asarray(frame.centre_rc) + offs))
            working = paste_patch_maps(maps, frames, ws.array.shape)
            working_maps[key] = working
            heatmaps[key] = _map_on_input(ws, working)

    result = SagittalGradingResult(
        source=source,
        input_kind="picture" if img.GetDimension() == 2 else "volume",
        input_size=[int(s) for s in img.GetSize()],
        orientation=name,
        graded_slice=ws.slice_x,
        l5s1_found=loc.l5s1_found,
        discs=discs,
        notes=notes,
        model={
            "name": card.name,
            "version": card.version,
            "sha256": card.sha256,
            "weights_file": card.weights_file,
        },
        gradcam_gradings=tasks,
        heatmaps=heatmaps,
    )
    result._overlay = {
        "slice": normalised,
        "maps": working_maps,
        "centres": [(d.row, d.col) for d in loc.discs],
        "corners": [f.corners() for f in frames],
        "labels": [d.level for d in loc.discs],
    }
    return result


#: patch variants averaged at inference (shift along, shift across in disc spacings; scale)
TEST_TIME_VARIANTS = (
    (0.0, 0.0, 1.0),
    (0.05, 0.0, 1.0),
    (-0.05, 0.0, 1.0),
    (0.0, 0.05, 1.0),
    (0.0, -0.05, 1.0),
    (0.0, 0.0, 0.93),
    (0.0, 0.0, 1.07),
)


def _disc_probabilities(
    grader: SagittalGraderNet, normalised: np.ndarray, discs: Sequence[Any], patches: np.ndarray
) -> dict[str, np.ndarray]:
    """Class probabilities per grading ``{key: (n_discs, n_classes)}``, averaged over the patch itself and
    slightly shifted and scaled copies (:data:`TEST_TIME_VARIANTS`, the jitter the classifier was trained with)."""
    batch = [patches]
    for along, across, scale in TEST_TIME_VARIANTS[1:]:
        frames = [
            patch_frame((d.row, d.col), d.axis_rc, d.spacing_px, scale=scale, shift_spacings=(along, across))
            for d in discs
        ]
        batch.append(np.stack([sample_patch(normalised, f)[None] for f in frames]).astype(np.float32))
    x = torch.from_numpy(np.concatenate(batch))
    with torch.no_grad():
        logits = grader(x)
    n = len(discs)
    return {
        k: torch.softmax(v, dim=1).numpy().reshape(len(batch), n, -1).mean(axis=0)
        for k, v in SagittalGraderNet.split(logits).items()
    }


def _map_on_input(ws: _WorkingSlice, working_map: np.ndarray) -> sitk.Image:
    """A working-slice map as an image on the input's geometry (volume: on the graded slice)."""
    source = ws.source_map(working_map)
    if ws.lps is None:
        out = sitk.GetImageFromArray(source.astype(np.float32))
        out.CopyInformation(ws.image)
        return out
    vol = np.zeros(sitk.GetArrayViewFromImage(ws.lps).shape, dtype=np.float32)
    vol[:, :, ws.slice_x] = source
    lps_map = sitk.GetImageFromArray(vol)
    lps_map.CopyInformation(ws.lps)
    code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(ws.image.GetDirection())
    out = sitk.DICOMOrient(lps_map, code)
    out.CopyInformation(ws.image)
    return out
