"""One-call Python API: each capability of the engine as one function taking an image and returning a result.

>>> import spineai                                                    # doctest: +SKIP
>>> seg = spineai.segment("case01/ct.nii.gz", "case01-seg")           # doctest: +SKIP
>>> tri = spineai.plan_injection(seg.labels, "case01/ct.nii.gz")      # doctest: +SKIP
>>> tri.get("L5-S1", "left", "kambin").area_mm2                       # doctest: +SKIP
>>> case = spineai.run_case("case01/ct.nii.gz", "case01-out")         # doctest: +SKIP

Every function accepts a **file path** (NIfTI, NRRD, MHA, a DICOM series folder; pictures for the sagittal
grader), a **SimpleITK image**, or a **numpy array** with its geometry given as keyword arguments:

* ``spacing_mm``: voxel size ``(x, y, z)`` in mm (required for arrays: a wrong spacing silently changes
  every area and distance);
* ``origin_mm``: LPS position (mm) of the centre of voxel ``[0, 0, 0]`` (default zeros);
* ``direction``: LPS unit vectors of the voxel axes x, y, z as the columns of a 3 x 3 matrix (default
  identity, i.e. x -> patient's left, y -> posterior, z -> superior).

Arrays are indexed ``[z, y, x]`` (SimpleITK's ``GetArrayFromImage`` order). A label array handed to
:func:`measure_triangles` / :func:`plan_injection` together with a CT image takes the CT's geometry when
none is given. All coordinates are LPS (mm), areas mm2, angles degrees (see ``docs/conventions.md``).

Each function returns a dataclass with ``to_dict()`` / ``to_json()``; given ``output`` (a folder, new or
empty unless ``overwrite=True``) it also writes the same files as the matching ``spineai`` command.
Adding a capability (axial grading, radiograph reading) means one function here that wraps its engine
module and returns a :class:`Result` subclass; naming it in :data:`CASE_STEPS` with one branch in
:func:`run_case` makes it a step of cohort runs (``spineai batch --steps``) too.

Research use only; not for clinical decisions.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError, OutputExistsError

if TYPE_CHECKING:
    import numpy as np
    import SimpleITK as sitk

__all__ = [
    "CASE_STEPS",
    "CaseOutput",
    "GradeOutput",
    "MeasureOutput",
    "OutcomeOutput",
    "Result",
    "SegmentOutput",
    "TriangleRow",
    "grade_sagittal",
    "load_image",
    "load_segmentation",
    "measure_triangles",
    "plan_injection",
    "predict_outcome",
    "run_case",
    "segment",
]

#: steps :func:`run_case` knows, in the order they run
CASE_STEPS: tuple[str, ...] = ("segment", "measure", "plan", "grade-sagittal", "outcome")
#: steps that read the CT (the others read the sagittal T2 MRI)
CT_STEPS: tuple[str, ...] = ("segment", "measure", "plan")
MRI_STEPS: tuple[str, ...] = ("grade-sagittal", "outcome")
DEFAULT_LEVELS: tuple[str, ...] = ("L4-L5", "L5-S1")
DEFAULT_SIDES: tuple[str, ...] = ("left", "right")
#: dataclass field metadata marking values left out of ``to_dict`` (images, engine objects)
_NOT_JSON = {"json": False}


# ============================================================================================ results
def _jsonable(value: Any) -> Any:
    """``value`` made of JSON types (paths as strings, numpy scalars as numbers, results as dicts)."""
    import numpy as np

    if isinstance(value, Result):
        return value.to_dict()
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return _jsonable(value.to_dict())
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class Result:
    """Base of every API result: ``to_dict()`` (JSON types only) and ``to_json()``.

    Fields declared with ``metadata={"json": False}`` (images, engine objects) are left out.
    """

    def to_dict(self) -> dict[str, Any]:
        """The result as a dictionary of JSON types (paths as strings)."""
        out: dict[str, Any] = {"result": type(self).__name__}
        for f in fields(self):  # type: ignore[arg-type]
            if f.metadata.get("json", True):
                out[f.name] = _jsonable(getattr(self, f.name))
        return out

    def to_json(
        self, path: str | os.PathLike | None = None, *, indent: int = 2, overwrite: bool = False
    ) -> str:
        """The result as JSON text; also written atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent) + "\n"
        if path is not None:
            from .outputs import write_text

            write_text(path, text, overwrite=overwrite)
        return text


@dataclass
class SegmentOutput(Result):
    """What :func:`segment` found.

    Attributes:
        structures: canonical names of the structures found (>= 100 mm3), cranial to caudal.
        volumes_mm3: volume of each found structure (mm3).
        warnings: plain-words warnings (e.g. S1 not in the field of view).
        model: name, version, weights file and SHA-256 of the model used.
        mode: ``"fast"`` or ``"paper"`` (the paper's non-overlapping summed-probability windows).
        timings_s: seconds per step.
        output_dir: folder the files were written to (``None`` when nothing was written).
        files: name -> path of every file written.
        labels: canonical label map (uint8) on the input's own grid, LPS (not in ``to_dict``).
        engine: the engine's :class:`~spineai.segmentation.inference.SegmentationResult` (not in ``to_dict``).
    """

    structures: list[str]
    volumes_mm3: dict[str, float]
    warnings: list[str]
    model: dict[str, Any]
    mode: str
    timings_s: dict[str, float]
    output_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    labels: sitk.Image | None = field(default=None, repr=False, metadata=_NOT_JSON)
    engine: Any = field(default=None, repr=False, metadata=_NOT_JSON)


@dataclass
class TriangleRow:
    """One triangle of one foramen: a row of ``measurements.tsv`` (and of a cohort's ``results.tsv``).

    Areas are mm2, lengths mm, angles degrees; C-arm angles ``best_oblique_deg`` / ``best_tilt_deg`` are in
    the level's frame (C-arm squared to the inferior endplate of the upper vertebra), ``best_patient_*``
    the same view in the patient's LPS frame. ``None`` where a value does not apply (foramen not
    measured, no view search, no needle plan).

    Attributes:
        level, side, triangle: e.g. ``"L5-S1"``, ``"left"`` (patient's side), ``"kambin"`` / ``"safe"``.
        status: ``ok`` or why the foramen was not measured (``missing_structures``, ...).
        area_mm2: true area (reference view).
        standard_window_mm2: accessible window at the standard 25 degree oblique (or the requested view).
        best_window_mm2: accessible window at the best view found by the search.
        path_length_mm: skin-to-target needle length; ``min_distance_nerve_mm`` / ``min_distance_bone_mm``
            its clearances.
        extra: columns the engine's table has beyond these fields.
    """

    level: str
    side: str
    triangle: str
    status: str
    area_mm2: float | None = None
    degenerate: bool | None = None
    standard_window_mm2: float | None = None
    standard_visible_fraction: float | None = None
    standard_usable: bool | None = None
    standard_blocked_by: str | None = None
    best_oblique_deg: float | None = None
    best_tilt_deg: float | None = None
    best_patient_oblique_deg: float | None = None
    best_patient_tilt_deg: float | None = None
    best_area_mm2: float | None = None
    best_window_mm2: float | None = None
    usable_view: bool | None = None
    blocked_reason: str | None = None
    path_length_mm: float | None = None
    reaches_90mm_needle: bool | None = None
    angle_to_axial_deg: float | None = None
    angle_to_sagittal_deg: float | None = None
    min_distance_nerve_mm: float | None = None
    min_distance_bone_mm: float | None = None
    crossed: str | None = None
    path_safe: bool | None = None
    recommended: bool | None = None
    message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TriangleRow:
        """From a row of :func:`spineai.planning.tables.table_rows`."""
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in row.items() if k in names}
        return cls(**known, extra={k: v for k, v in row.items() if k not in names})


@dataclass
class MeasureOutput(Result):
    """Kambin's and the safe triangle of every requested foramen (:func:`measure_triangles`,
    :func:`plan_injection`).

    Attributes:
        planned: the best C-arm view was searched and needle paths planned (``plan_injection``).
        view: the view the windows were measured under (``"standard 25 deg oblique"``, ``"best (searched)"``
            or ``"oblique X, tilt Y"``).
        triangles: one :class:`TriangleRow` per level, side and triangle.
        warnings: foramina that could not be measured, and why.
        skin_source: where the skin for the needle paths came from (CT, or the label map's hull).
        output_dir, files: what was written.
        measurements: the engine's :class:`~spineai.planning.triangles.TriangleMeasurements` (full detail:
            vertices, edges, windows; not in ``to_dict``, see its own ``to_dict``).
    """

    planned: bool
    view: str
    triangles: list[TriangleRow]
    warnings: list[str]
    skin_source: str = ""
    output_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    measurements: Any = field(default=None, repr=False, metadata=_NOT_JSON)

    def get(self, level: str, side: str, triangle: str) -> TriangleRow:
        """The row of ``level`` (``"L5-S1"``), ``side`` and ``triangle`` (``"kambin"``/``"safe"``)."""
        for row in self.triangles:
            if (row.level, row.side, row.triangle) == (level, side, triangle):
                return row
        have = sorted({f"{r.level} {r.side}" for r in self.triangles})
        raise InputError(
            f"No {triangle} triangle at {level} {side} in this result (it has: {', '.join(have) or 'none'}).",
            "ask for a measured level and side, or measure that level (levels=..., sides=...)",
        )

    def areas_mm2(self) -> dict[tuple[str, str, str], float]:
        """``{(level, side, triangle): true area in mm2}`` of every measured triangle."""
        return {(r.level, r.side, r.triangle): r.area_mm2 for r in self.triangles if r.area_mm2 is not None}


@dataclass
class GradeOutput(Result):
    """Per-disc grades of a sagittal T2 slice (:func:`grade_sagittal`).

    Attributes:
        discs: per-disc grades (:class:`~spineai.grading.sagittal.DiscGrade`), caudal first.
        input_kind: ``"picture"`` (2D) or ``"volume"`` (3D, its mid-sagittal slice graded).
        graded_slice: for a volume, the graded slice index along LPS x.
        l5s1_found: whether L5/S1 was recognised (levels named from it).
        notes: decisions taken on the way (flips, slice choice), in words.
        model: name, version, SHA-256 of the grader.
        gradcam_gradings: gradings explained by Grad-CAM.
        output_dir, files: what was written.
        heatmaps: ``{grading: Grad-CAM map on the input's geometry}`` (not in ``to_dict``).
        engine: the engine's :class:`~spineai.grading.sagittal.SagittalGradingResult` (not in ``to_dict``).
    """

    discs: list[Any]
    input_kind: str
    graded_slice: int | None
    l5s1_found: bool
    notes: list[str]
    model: dict[str, Any]
    gradcam_gradings: list[str]
    output_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    heatmaps: dict[str, Any] = field(default_factory=dict, repr=False, metadata=_NOT_JSON)
    engine: Any = field(default=None, repr=False, metadata=_NOT_JSON)

    def grades(self) -> dict[str, dict[str, int]]:
        """``{level: {grading: grade}}``, e.g. ``{"L5-S1": {"pfirrmann": 4, ...}}``."""
        return {d.level: dict(d.grades) for d in self.discs}


@dataclass
class OutcomeOutput(Result):
    """Probability of a good tESI outcome (>= 50 % NRS-11 reduction at 2 months) (:func:`predict_outcome`).

    Attributes:
        probability_good: probability of a good outcome, 0..1.
        threshold: decision threshold used.
        predicted_good: ``probability_good >= threshold``.
        gradcam_class: class the Grad-CAM map explains, or ``None``.
        roi: the region of interest (LPS mm box) and how it was found.
        warnings: what to check (e.g. a model trained on synthetic data only).
        model: name, weights, SHA-256 and training-data statement.
        output_dir, files: what was written.
        heatmap: Grad-CAM on the input's grid, 0..1 (not in ``to_dict``).
        engine: the engine's :class:`~spineai.outcome.predict.OutcomeResult` (not in ``to_dict``).
    """

    probability_good: float
    threshold: float
    predicted_good: bool
    gradcam_class: str | None
    roi: dict[str, Any]
    warnings: list[str]
    model: dict[str, Any]
    output_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    heatmap: Any = field(default=None, repr=False, metadata=_NOT_JSON)
    engine: Any = field(default=None, repr=False, metadata=_NOT_JSON)


@dataclass
class CaseOutput(Result):
    """Everything :func:`run_case` did for one case (also written as ``<output>/case.json``).

    Attributes:
        output_dir: the case folder.
        steps: steps requested, in run order.
        steps_done: steps finished (``segment`` is absent when a segmentation was given).
        segmentation_source: ``"model"`` (segmented here), ``"given"`` (``segmentation=`` argument) or ``None``.
        inputs: the inputs (paths, or ``"in-memory image"``).
        segmentation, triangles, grades, outcome: each step's result (``None`` when not run).
        warnings: every step's warnings.
        timings_s: seconds per step and in total.
    """

    output_dir: Path
    steps: list[str]
    steps_done: list[str]
    segmentation_source: str | None
    inputs: dict[str, str | None]
    segmentation: SegmentOutput | None = None
    triangles: MeasureOutput | None = None
    grades: GradeOutput | None = None
    outcome: OutcomeOutput | None = None
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)


# ============================================================================================= inputs
def _describe_input(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return str(Path(value))
    return f"in-memory {type(value).__name__}"


def load_image(
    image: str | os.PathLike | sitk.Image | np.ndarray,
    *,
    spacing_mm: float | Sequence[float] | None = None,
    origin_mm: Sequence[float] | None = None,
    direction: Sequence[float] | np.ndarray | None = None,
    dims: int | None = 3,
    name: str = "image",
) -> sitk.Image:
    """An image from a path, a ``SimpleITK.Image`` or a numpy array (geometry LPS, mm).

    Args:
        image: file or DICOM folder, ``sitk.Image``, or array indexed ``[z, y, x]`` (``[y, x]`` for 2D).
        spacing_mm: voxel size ``(x, y[, z])`` in mm; required for an array, refused otherwise.
        origin_mm: LPS position of voxel ``[0, 0, 0]`` (arrays only; default zeros).
        direction: voxel axes as LPS unit column vectors (arrays only; default identity).
        dims: required dimensionality (3, 2 or ``None`` for either).
        name: what the image is, for error messages (``"CT"``).

    Raises:
        InputError: missing or unreadable file, array without spacing, geometry given for a file or image.
    """
    import numpy as np
    import SimpleITK as sitk

    from . import io

    geometry_given = any(v is not None for v in (spacing_mm, origin_mm, direction))
    if isinstance(image, np.ndarray):
        if spacing_mm is None:
            raise InputError(
                f"The {name} was given as a numpy array of shape {image.shape} without spacing_mm.",
                "pass spacing_mm=(x, y, z) in mm (and origin_mm / direction if not zero / identity); "
                "the array is indexed [z, y, x]",
            )
        if dims is not None and image.ndim != dims:
            raise InputError(
                f"The {name} array has {image.ndim} dimensions (shape {image.shape}); {dims} are needed.",
                "pass a 3D volume indexed [z, y, x]" if dims == 3 else f"pass a {dims}D array",
            )
        return io.image_from_array(image, spacing_mm, origin_mm, direction, name=name)
    if geometry_given:
        raise InputError(
            f"spacing_mm / origin_mm / direction were given, but the {name} is not a numpy array "
            "(a file or SimpleITK image carries its own geometry).",
            "drop those arguments, or pass the voxel values as a numpy array",
        )
    if isinstance(image, sitk.Image):
        return io.validate_image(image, dims=dims, name=name)
    if isinstance(image, (str, os.PathLike)):
        return io.read_image(image, dims=dims, name=name)
    raise InputError(
        f"Cannot use a {type(image).__name__} as the {name}.",
        "pass a file path, a DICOM folder, a SimpleITK image or a numpy array with spacing_mm",
    )


def load_segmentation(
    segmentation: Any,
    *,
    like: sitk.Image | None = None,
    spacing_mm: float | Sequence[float] | None = None,
    origin_mm: Sequence[float] | None = None,
    direction: Sequence[float] | np.ndarray | None = None,
    label_convention: str | None = None,
) -> Any:
    """A canonical :class:`spineai.io.LabelMap` from a file, a LabelMap, a ``sitk.Image`` or a numpy array.

    Args:
        segmentation: label file (``.seg.nrrd``, or NIfTI/NRRD with its ``labels.json`` sidecar), a
            :class:`~spineai.io.LabelMap`, an :class:`SegmentOutput`, an integer ``sitk.Image``, or an integer
            array indexed ``[z, y, x]``.
        like: image whose geometry an array takes when no geometry is given (the CT).
        spacing_mm, origin_mm, direction: geometry of an array (LPS, mm), as in :func:`load_image`.
        label_convention: how the values are named when no sidecar says so: ``"canonical"`` (default for
            images and arrays), ``"verse"``, ``"totalseg_v2"``, ... (:data:`spineai.anatomy.MAPPINGS`).

    Raises:
        InputError: unreadable file, unknown label values, array without geometry.
    """
    import numpy as np
    import SimpleITK as sitk

    from . import io

    if isinstance(segmentation, SegmentOutput):
        segmentation = segmentation.labels
    if isinstance(segmentation, io.LabelMap):
        return segmentation.canonical()
    if isinstance(segmentation, (str, os.PathLike)):
        p = Path(segmentation)
        if not p.exists():
            raise InputError(
                f"Segmentation '{p}' does not exist.",
                "pass the label map written by 'spineai segment' (labels.nii.gz or segmentation.seg.nrrd)",
            )
        return io.read_labelmap(p, mapping=label_convention).canonical()
    if isinstance(segmentation, np.ndarray):
        arr = np.asarray(segmentation)
        if arr.dtype.kind == "f":
            if not np.all(arr == np.rint(arr)):
                raise InputError(
                    "The segmentation array holds fractional values; it looks like an image, not labels.",
                    "pass integer labels (argmax a probability map first)",
                )
            arr = arr.astype(np.int32)
        if arr.dtype.kind not in "iub" or (arr.size and arr.min() < 0):
            raise InputError(
                f"The segmentation array has type {arr.dtype} or negative values; labels must be non-negative "
                "integers.",
                "pass the label map as an unsigned integer array indexed [z, y, x]",
            )
        if spacing_mm is None and origin_mm is None and direction is None and like is not None:
            if tuple(like.GetSize()) != tuple(arr.shape[::-1]):
                raise InputError(
                    f"The segmentation array of shape {arr.shape} (z, y, x) does not match the CT's "
                    f"{tuple(like.GetSize())[::-1]}.",
                    "pass a label array on the CT's grid, or give its own spacing_mm / origin_mm / direction",
                )
            img = sitk.GetImageFromArray(arr.astype(np.uint16 if arr.max(initial=0) > 255 else np.uint8))
            img.CopyInformation(like)
        else:
            img = load_image(
                arr.astype(np.uint16 if arr.max(initial=0) > 255 else np.uint8),
                spacing_mm=spacing_mm,
                origin_mm=origin_mm,
                direction=direction,
                name="segmentation",
            )
        segmentation = img
    if isinstance(segmentation, sitk.Image):
        if segmentation.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
            arr = sitk.GetArrayViewFromImage(segmentation)
            if not np.all(arr == np.rint(arr)):
                raise InputError(
                    "The segmentation image holds fractional values; it looks like an image, not labels.",
                    "pass the label map (integer labels), not the CT",
                )
            segmentation = sitk.Cast(segmentation, sitk.sitkUInt16)
        labelmap = io.LabelMap(segmentation, io.resolve_mapping(label_convention or "canonical"))
        labelmap.validate()
        return labelmap.canonical()
    raise InputError(
        f"Cannot use a {type(segmentation).__name__} as a segmentation.",
        "pass a label file path, a spineai.io.LabelMap, a SimpleITK image or an integer numpy array",
    )


def _check_output(output: str | os.PathLike | None, overwrite: bool) -> Path | None:
    """Refuse a non-empty ``output`` folder before any work is done (unless ``overwrite``)."""
    if output is None:
        return None
    out = Path(output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise OutputExistsError(out)
    return out


# ========================================================================================== segment
@lru_cache(maxsize=2)
def _cached_model(weights_key: str | None, stamp: tuple[int, int], device: str) -> Any:
    from .segmentation.inference import load_segmentation_model

    return load_segmentation_model(weights_key, device)


def _segmentation_model(weights: str | os.PathLike | None, device: str) -> Any:
    """The verified CT model, kept loaded between calls while the weights file is unchanged."""
    from .segmentation.inference import default_weights_path, resolve_device

    dev = resolve_device(device)
    path = default_weights_path() if weights is None else Path(weights)
    stamp = (path.stat().st_mtime_ns, path.stat().st_size) if path.is_file() else (0, 0)
    return _cached_model(None if weights is None else str(path), stamp, dev)


def segment(
    image: str | os.PathLike | sitk.Image | np.ndarray,
    output: str | os.PathLike | None = None,
    *,
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    fast: bool = True,
    postprocess: bool = True,
    require_levels: Iterable[str] | None = None,
    surfaces: bool = True,
    overwrite: bool = False,
    spacing_mm: float | Sequence[float] | None = None,
    origin_mm: Sequence[float] | None = None,
    direction: Sequence[float] | np.ndarray | None = None,
) -> SegmentOutput:
    """Segment lumbosacral bones, discs, dural sac and nerve roots on a CT (``spineai segment``).

    Args:
        image: CT in Hounsfield units: file, DICOM folder, ``sitk.Image`` or array ``[z, y, x]`` (+ geometry).
        output: folder for ``segmentation.seg.nrrd``, ``labels.nii.gz`` + ``labels.json``,
            ``segmentation.json`` and ``surfaces/``; ``None`` writes nothing.
        weights: ``.safetensors`` weights with their card (``None``: the shipped model).
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        fast: the fast sliding window (cropped to the spine, few overlapping windows); ``False`` runs the
            paper's combined algorithm (non-overlapping 32 x 64 x 64 windows, summed probabilities).
        postprocess: keep the largest connected component of each structure.
        require_levels: vertebrae or levels that must be found (e.g. ``("L5", "S1")``).
        surfaces: also write smoothed surface models (LPS, mm).
        overwrite: write into a non-empty ``output`` folder, replacing files of the same names.
        spacing_mm, origin_mm, direction: geometry of an array input (see the module docstring).

    Returns:
        :class:`SegmentOutput` (``.labels`` is the canonical label map on the input's grid).

    Raises:
        InputError: not a CT, 2D, implausible spacing, NaNs, too small, required levels missing.
        WeightsError: missing, tampered or mismatched weights.
        OutputExistsError: ``output`` holds files and ``overwrite`` is False.
    """
    from .segmentation.inference import segment as engine_segment

    out = _check_output(output, overwrite)
    ct = load_image(image, spacing_mm=spacing_mm, origin_mm=origin_mm, direction=direction, name="CT")
    model = _segmentation_model(weights, device)
    result = engine_segment(
        ct,
        mode="fast" if fast else "paper",
        postprocess=postprocess,
        require_levels=require_levels,
        model=model,
    )
    files = result.save(out, overwrite=overwrite, surfaces=surfaces) if out is not None else {}
    return SegmentOutput(
        structures=list(result.structures),
        volumes_mm3={k: float(v) for k, v in result.volumes_mm3.items()},
        warnings=list(result.warnings),
        model=dict(result.model),
        mode=result.mode,
        timings_s=dict(result.timings_s),
        output_dir=out,
        files=dict(files),
        labels=result.labels,
        engine=result,
    )


# ======================================================================================= triangles
def _labels_and_ct(
    segmentation: Any,
    ct: Any,
    label_convention: str | None,
    spacing_mm: Any,
    origin_mm: Any,
    direction: Any,
) -> tuple[Any, Any]:
    ct_img = None if ct is None else load_image(ct, name="CT")
    labels = load_segmentation(
        segmentation,
        like=ct_img,
        spacing_mm=spacing_mm,
        origin_mm=origin_mm,
        direction=direction,
        label_convention=label_convention,
    )
    return labels, ct_img


def _measure_output(result: Any, planned: bool, view: str, out: Path | None, files: dict) -> MeasureOutput:
    from .planning.tables import table_rows

    return MeasureOutput(
        planned=planned,
        view=view,
        triangles=[TriangleRow.from_row(r) for r in table_rows(result)],
        warnings=list(result.warnings),
        skin_source=str(result.skin_source),
        output_dir=out,
        files=dict(files),
        measurements=result,
    )


def measure_triangles(
    segmentation: Any,
    ct: str | os.PathLike | sitk.Image | None = None,
    output: str | os.PathLike | None = None,
    *,
    levels: Sequence[str] = DEFAULT_LEVELS,
    sides: Sequence[str] = DEFAULT_SIDES,
    view: Any = None,
    images: bool = True,
    overwrite: bool = False,
    label_convention: str | None = None,
    spacing_mm: float | Sequence[float] | None = None,
    origin_mm: Sequence[float] | None = None,
    direction: Sequence[float] | np.ndarray | None = None,
) -> MeasureOutput:
    """Kambin's and the safe triangle of each level and side, and their accessible windows at one view.

    No view search and no needle planning: that is :func:`plan_injection` (and ``spineai measure``, which
    measures, searches and plans in one go). The true areas are the same in both.

    Args:
        segmentation: canonical label map (see :func:`load_segmentation`): e.g. a corrected one.
        ct: the CT the segmentation was made from (file or image, same grid); gives the radiographs.
        output: folder for ``measurements.json``/``.tsv``, ``planning.mrk.json`` and, with ``images``, the
            C-arm PNGs and ``render3d.png``; ``None`` writes nothing.
        levels: e.g. ``("L4-L5", "L5-S1")``.
        sides: patient sides, ``"left"`` / ``"right"``.
        view: the view for the windows: ``None`` (standard 25 degree ipsilateral oblique), ``"reference"``,
            or ``(oblique_deg, tilt_deg)`` in the level's frame.
        images: render the pictures when writing (seconds each).
        overwrite: write into a non-empty ``output`` folder.
        label_convention: naming of label values without a sidecar (default canonical).
        spacing_mm, origin_mm, direction: geometry of a label array (default: the CT's).

    Returns:
        :class:`MeasureOutput`.
    """
    from .planning.case import write_case_outputs
    from .planning.triangles import measure_triangles as engine_measure

    out = _check_output(output, overwrite)
    labels, ct_img = _labels_and_ct(segmentation, ct, label_convention, spacing_mm, origin_mm, direction)
    result = engine_measure(labels, ct=ct_img, levels=levels, sides=sides, view=view)
    files = write_case_outputs(result, out, overwrite=overwrite, images=images) if out is not None else {}
    what = "standard 25 deg oblique" if view is None else str(view if isinstance(view, str) else tuple(view))
    return _measure_output(result, planned=False, view=what, out=out, files=files)


def plan_injection(
    segmentation: Any,
    ct: str | os.PathLike | sitk.Image | None = None,
    output: str | os.PathLike | None = None,
    *,
    levels: Sequence[str] = DEFAULT_LEVELS,
    sides: Sequence[str] = DEFAULT_SIDES,
    view: tuple[float, float] | None = None,
    images: bool = True,
    overwrite: bool = False,
    label_convention: str | None = None,
    spacing_mm: float | Sequence[float] | None = None,
    origin_mm: Sequence[float] | None = None,
    direction: Sequence[float] | np.ndarray | None = None,
) -> MeasureOutput:
    """Measure the triangles, find the C-arm view that opens each most and plan the needle paths.

    With ``view=None`` this is ``spineai measure`` (view search over oblique 0-45, tilt -30..+30 degrees);
    with ``view=(oblique_deg, tilt_deg)`` it is ``spineai plan``: that one view is assessed and the needle
    planned along it.

    Args:
        segmentation: canonical label map (see :func:`load_segmentation`).
        ct: the CT the segmentation was made from (same grid): skin entry points and radiographs; without
            it the skin is approximated by the label map's hull.
        output: folder for the same files as ``spineai measure``; ``None`` writes nothing.
        levels, sides: foramina to plan.
        view: ``None`` (search the best view) or ``(oblique_deg, tilt_deg)`` in the level's frame.
        images: render the C-arm PNGs and the 3D picture when writing.
        overwrite, label_convention, spacing_mm, origin_mm, direction: as in :func:`measure_triangles`.

    Returns:
        :class:`MeasureOutput` with ``planned=True``: best views, windows and needle paths filled in.
    """
    from .planning.case import plan_case, write_case_outputs

    out = _check_output(output, overwrite)
    labels, ct_img = _labels_and_ct(segmentation, ct, label_convention, spacing_mm, origin_mm, direction)
    if view is None:
        result = plan_case(labels, ct=ct_img, levels=levels, sides=sides)
        what = "best (searched)"
    else:
        result = _plan_at_view(labels, ct_img, levels, sides, view)
        what = f"oblique {float(view[0]):g}, tilt {float(view[1]):+g}"
    files = write_case_outputs(result, out, overwrite=overwrite, images=images) if out is not None else {}
    return _measure_output(result, planned=True, view=what, out=out, files=files)


def _plan_at_view(labels: Any, ct: Any, levels: Sequence[str], sides: Sequence[str], view: Any) -> Any:
    """The triangles at one chosen C-arm view taken as the plan's view (what ``spineai plan`` does)."""
    from . import carm
    from .planning.needle import plan_paths
    from .planning.triangles import measure_triangles as engine_measure
    from .planning.views import describe_blocked

    try:
        oblique, tilt = (float(v) for v in view)
    except (TypeError, ValueError):
        raise InputError(
            f"view {view!r} is not understood.", "pass view=(oblique_deg, tilt_deg), or None to search"
        ) from None
    for side in sides:
        carm.view_direction_lps(oblique, tilt, side)  # validates the angles
    result = engine_measure(labels, ct=ct, levels=levels, sides=sides, view=(oblique, tilt))
    for fm in result.measured:
        for tri in fm.triangles.values():
            tri.best_view = tri.view
            tri.usable_view = bool(tri.view.usable) if tri.view is not None else False
            if not tri.usable_view and tri.view is not None:
                tri.blocked_reason = describe_blocked(tri.kind, fm.level, fm.side, tri.view).replace(
                    "no C-arm view (oblique 0-45, tilt -30..30) gives", "this view does not give"
                )
    plan_paths(result)
    return result


# ============================================================================================ MRI
def grade_sagittal(
    image: str | os.PathLike | sitk.Image | np.ndarray,
    output: str | os.PathLike | None = None,
    *,
    weights: str | os.PathLike | None = None,
    gradcam: Sequence[str] | None = ("pfirrmann",),
    orientation: str = "auto",
    require_l5s1: bool = True,
    disc_points: Sequence[Sequence[float]] | None = None,
    slice_index: int | None = None,
    overwrite: bool = False,
    spacing_mm: float | Sequence[float] | None = None,
    origin_mm: Sequence[float] | None = None,
    direction: Sequence[float] | np.ndarray | None = None,
) -> GradeOutput:
    """Grade every lumbar disc of a sagittal T2 slice or volume (``spineai grade sagittal``).

    Args:
        image: picture (PNG/JPG), 2D/3D file, ``sitk.Image``, or array: 2D ``[rows, cols]`` (an upright
            picture; geometry optional) or 3D ``[z, y, x]`` with ``spacing_mm``.
        output: folder for ``grades.tsv``/``.json`` and the Grad-CAM images; ``None`` writes nothing.
        weights: grader weights (``None``: the shipped model).
        gradcam: gradings to explain (``"pfirrmann"``, ``"modic"``, ...); ``None`` for none.
        orientation: how to make a picture upright (``"auto"`` tries the four flips).
        require_l5s1: refuse a slice whose L5/S1 is not recognised.
        disc_points: disc centres given by hand (physical points) instead of the locator.
        slice_index: for a volume, the sagittal slice to grade (default the middle one).
        overwrite: write into a non-empty ``output`` folder.
        spacing_mm, origin_mm, direction: geometry of an array input.

    Returns:
        :class:`GradeOutput`.
    """
    import numpy as np

    from .grading.sagittal import grade_sagittal as engine_grade

    out = _check_output(output, overwrite)
    source: Any = image
    if isinstance(image, np.ndarray) and (image.ndim == 3 or spacing_mm is not None):
        source = load_image(
            image, spacing_mm=spacing_mm, origin_mm=origin_mm, direction=direction, dims=None, name="MRI"
        )
    elif not isinstance(image, np.ndarray) and any(v is not None for v in (spacing_mm, origin_mm, direction)):
        load_image(image, spacing_mm=spacing_mm, dims=None, name="MRI")  # raises the explanation
    result = engine_grade(
        source,
        weights=weights,
        orientation=orientation,
        gradcam=gradcam,
        require_l5s1=require_l5s1,
        disc_points=disc_points,
        slice_index=slice_index,
    )
    files = result.write(out, overwrite=overwrite) if out is not None else {}
    return GradeOutput(
        discs=list(result.discs),
        input_kind=result.input_kind,
        graded_slice=result.graded_slice,
        l5s1_found=bool(result.l5s1_found),
        notes=list(result.notes),
        model=dict(result.model),
        gradcam_gradings=list(result.gradcam_gradings),
        output_dir=out,
        files=dict(files),
        heatmaps=dict(result.heatmaps),
        engine=result,
    )


def predict_outcome(
    image: str | os.PathLike | sitk.Image | np.ndarray,
    output: str | os.PathLike | None = None,
    *,
    weights: str | os.PathLike | None = None,
    gradcam: bool = True,
    gradcam_class: str = "predicted",
    threshold: float | None = None,
    roi_bounds_mm: Sequence[float] | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    spacing_mm: float | Sequence[float] | None = None,
    origin_mm: Sequence[float] | None = None,
    direction: Sequence[float] | np.ndarray | None = None,
) -> OutcomeOutput:
    """Probability of a good tESI outcome from a sagittal T2 volume, with Grad-CAM (``spineai outcome``).

    Args:
        image: sagittal T2 volume: file, DICOM folder, ``sitk.Image`` or array ``[z, y, x]`` (+ geometry).
        output: folder for ``outcome.json``, ``gradcam.nii.gz`` and ``gradcam_overlay.png``.
        weights: outcome model weights (``None``: the shipped demo model).
        gradcam: compute the heat map; ``gradcam_class``: ``"predicted"``, ``"good"`` or ``"poor"``.
        threshold: decision threshold (default: the model card's).
        roi_bounds_mm: hand-given ROI ``(x0, y0, z0, x1, y1, z1)`` (LPS mm) instead of the localiser.
        device: ``"cpu"`` or ``"cuda"``.
        overwrite: write into a non-empty ``output`` folder.
        spacing_mm, origin_mm, direction: geometry of an array input.

    Returns:
        :class:`OutcomeOutput`.
    """
    from .outcome.predict import predict_outcome as engine_predict

    out = _check_output(output, overwrite)
    mri = load_image(
        image, spacing_mm=spacing_mm, origin_mm=origin_mm, direction=direction, dims=None, name="MRI"
    )
    result = engine_predict(
        mri,
        weights=weights,
        roi_bounds_mm=roi_bounds_mm,
        gradcam=gradcam,
        gradcam_class=gradcam_class,
        threshold=threshold,
        device=device,
    )
    if isinstance(image, (str, os.PathLike)):
        result.input["path"] = str(image)
    files = result.save(out, overwrite=overwrite) if out is not None else {}
    return OutcomeOutput(
        probability_good=float(result.probability_good),
        threshold=float(result.threshold),
        predicted_good=bool(result.predicted_good),
        gradcam_class=result.gradcam_class,
        roi=_jsonable(result.roi),
        warnings=list(result.warnings),
        model=dict(result.model),
        output_dir=out,
        files=dict(files),
        heatmap=result.heatmap,
        engine=result,
    )


# ============================================================================================ case
def check_steps(steps: Iterable[str]) -> list[str]:
    """Known step names in run order (``"plan"`` implies ``"measure"``); raises :class:`InputError`."""
    wanted = [str(s).strip().lower().replace("_", "-") for s in steps if str(s).strip()]
    unknown = [s for s in wanted if s not in CASE_STEPS]
    if unknown:
        raise InputError(f"Unknown step(s) {', '.join(unknown)}.", f"choose from {', '.join(CASE_STEPS)}")
    if not wanted:
        raise InputError("No step was requested.", f"choose one or more of {', '.join(CASE_STEPS)}")
    if "plan" in wanted and "measure" not in wanted:
        wanted.append("measure")
    return [s for s in CASE_STEPS if s in wanted]


def run_case(
    ct: str | os.PathLike | sitk.Image | np.ndarray | None,
    output: str | os.PathLike,
    *,
    segmentation: Any = None,
    mri: str | os.PathLike | sitk.Image | None = None,
    steps: Sequence[str] = ("segment", "measure", "plan"),
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    fast: bool = True,
    levels: Sequence[str] = DEFAULT_LEVELS,
    sides: Sequence[str] = DEFAULT_SIDES,
    images: bool = True,
    surfaces: bool = True,
    grading_weights: str | os.PathLike | None = None,
    outcome_weights: str | os.PathLike | None = None,
    label_convention: str | None = None,
    overwrite: bool = False,
    on_step: Callable[[str], None] | None = None,
    spacing_mm: float | Sequence[float] | None = None,
    origin_mm: Sequence[float] | None = None,
    direction: Sequence[float] | np.ndarray | None = None,
) -> CaseOutput:
    """The whole workflow of one case into one folder: segment, measure, plan (and MRI steps).

    Folder layout: ``segmentation/`` (``spineai segment`` files), ``planning/`` (``spineai measure`` files),
    ``grading/`` (``spineai grade sagittal`` files), ``outcome/`` (``spineai outcome`` files) and
    ``case.json`` (:meth:`CaseOutput.to_dict`).

    Args:
        ct: the CT (file, DICOM folder, image or array ``[z, y, x]`` with geometry); may be ``None`` when
            only MRI steps run, or when ``segmentation`` is given (then no radiographs are drawn).
        output: the case folder (new or empty unless ``overwrite``).
        segmentation: a label map to measure instead of segmenting (e.g. one corrected by an annotator);
            the ``segment`` step is then skipped.
        mri: sagittal T2 (file or image) for ``grade-sagittal`` and ``outcome``.
        steps: any of ``segment``, ``measure``, ``plan``, ``grade-sagittal``, ``outcome`` (``plan`` implies
            ``measure``; ``measure`` with ``plan`` runs the view search and needle planning once).
        weights, device, fast, surfaces: for ``segment`` (see :func:`segment`).
        levels, sides, images: for ``measure`` / ``plan``.
        grading_weights, outcome_weights: weights of the MRI models (``None``: shipped).
        label_convention: naming of a given segmentation's values without a sidecar.
        overwrite: write into a non-empty ``output`` folder, replacing files of the same names.
        on_step: called with each step's name when it has finished (cohort runs record progress with it).
        spacing_mm, origin_mm, direction: geometry of an array CT.

    Returns:
        :class:`CaseOutput`.

    Raises:
        InputError: a step needs an input that was not given, or any input problem of the steps.
    """
    wanted = check_steps(steps)
    out = _check_output(output, overwrite)
    assert out is not None
    if segmentation is not None:
        wanted = [s for s in wanted if s != "segment"]
    if any(s in wanted for s in ("segment",)) and ct is None:
        raise InputError("The segment step needs a CT, but ct is None.", "pass the CT, or a segmentation=")
    if any(s in wanted for s in ("measure", "plan")) and ct is None and segmentation is None:
        if "segment" not in wanted:
            raise InputError(
                "Measuring needs a segmentation or a CT to segment, but neither was given.",
                "pass ct= (and the segment step) or segmentation=",
            )
    if any(s in wanted for s in MRI_STEPS) and mri is None:
        raise InputError(
            f"The step(s) {', '.join(s for s in wanted if s in MRI_STEPS)} need a sagittal T2 MRI, but mri is None.",
            "pass mri= (a sagittal T2 volume or slice), or drop those steps",
        )
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    done: list[str] = []
    timings: dict[str, float] = {}
    warnings: list[str] = []
    case = CaseOutput(
        output_dir=out,
        steps=list(wanted),
        steps_done=done,
        segmentation_source="given" if segmentation is not None else None,
        inputs={
            "ct": _describe_input(ct),
            "segmentation": _describe_input(segmentation),
            "mri": _describe_input(mri),
        },
        warnings=warnings,
        timings_s=timings,
    )

    def finished(step: str, t0: float) -> None:
        timings[step] = round(time.perf_counter() - t0, 3)
        done.append(step)
        if on_step is not None:
            on_step(step)

    ct_img = None
    if ct is not None and any(s in wanted for s in CT_STEPS):
        ct_img = load_image(ct, spacing_mm=spacing_mm, origin_mm=origin_mm, direction=direction, name="CT")
    labels = segmentation
    if "segment" in wanted:
        t0 = time.perf_counter()
        case.segmentation = segment(
            ct_img,
            out / "segmentation",
            weights=weights,
            device=device,
            fast=fast,
            surfaces=surfaces,
            overwrite=overwrite,
        )
        case.segmentation_source = "model"
        labels = case.segmentation.labels
        warnings += case.segmentation.warnings
        finished("segment", t0)
    if "measure" in wanted:
        t0 = time.perf_counter()
        planner = plan_injection if "plan" in wanted else measure_triangles
        case.triangles = planner(
            labels,
            ct_img,
            out / "planning",
            levels=levels,
            sides=sides,
            images=images,
            overwrite=overwrite,
            label_convention=label_convention if segmentation is not None else None,
        )
        warnings += case.triangles.warnings
        finished("measure", t0)
        if "plan" in wanted:  # planned in the same call; its time is part of "measure"
            done.append("plan")
            if on_step is not None:
                on_step("plan")
    if "grade-sagittal" in wanted:
        t0 = time.perf_counter()
        case.grades = grade_sagittal(mri, out / "grading", weights=grading_weights, overwrite=overwrite)
        warnings += [f"grading: {n}" for n in case.grades.notes]
        finished("grade-sagittal", t0)
    if "outcome" in wanted:
        t0 = time.perf_counter()
        case.outcome = predict_outcome(mri, out / "outcome", weights=outcome_weights, overwrite=overwrite)
        warnings += case.outcome.warnings
        finished("outcome", t0)
    timings["total"] = round(time.perf_counter() - t_start, 3)
    case.to_json(out / "case.json", overwrite=True)
    return case
