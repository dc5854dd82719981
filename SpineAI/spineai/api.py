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

Input checks (:mod:`spineai.checks`) run on their own: :func:`segment` refuses a CT that is not in
Hounsfield units before the model runs, reads a DICOM folder onto a regular grid (gantry tilt, uneven
slices) and checks the orientation of its result; :func:`measure_triangles` / :func:`plan_injection`
check the orientation and the field of view of the levels asked. What they found is in each result's
``checks`` (``CheckResult.to_dict()``); what needs attention is also in its ``warnings``.

Adding a capability means one function here that wraps its engine module and returns a :class:`Result`
subclass; naming it in :data:`CASE_STEPS` with one branch in :func:`run_case` makes it a step of cohort
runs (``spineai batch --steps``) too.

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

from .errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import SimpleITK as sitk

__all__ = [
    "CASE_STEPS",
    "DEFAULT_STEPS",
    "AxialGrade",
    "AxialGradeOutput",
    "CaseOutput",
    "GradeOutput",
    "MeasureOutput",
    "OutcomeOutput",
    "RadiographDisc",
    "RadiographLevel",
    "RadiographOutput",
    "Result",
    "SegmentOutput",
    "StenosisOutput",
    "StenosisRegion",
    "TriangleRow",
    "grade_axial",
    "grade_sagittal",
    "grade_stenosis",
    "load_image",
    "load_segmentation",
    "measure_triangles",
    "plan_injection",
    "predict_outcome",
    "read_radiograph",
    "run_case",
    "segment",
]

#: steps :func:`run_case` knows, in the order they run
CASE_STEPS: tuple[str, ...] = (
    "segment",
    "levels",
    "measure",
    "plan",
    "grade-sagittal",
    "outcome",
    "grade-axial",
    "stenosis",
    "radiograph",
)
#: steps run when none are named: segment, number the levels, measure and plan
DEFAULT_STEPS: tuple[str, ...] = ("segment", "levels", "measure", "plan")
#: steps that read the CT or its segmentation
CT_STEPS: tuple[str, ...] = ("segment", "levels", "measure", "plan")
#: steps that read the sagittal T2 MRI (``mri=``)
MRI_STEPS: tuple[str, ...] = ("grade-sagittal", "outcome")
#: steps that read an axial T2 MRI slice or series (``axial=``)
AXIAL_STEPS: tuple[str, ...] = ("grade-axial", "stenosis")
#: steps that read a plain radiograph (``radiograph=``)
RADIOGRAPH_STEPS: tuple[str, ...] = ("radiograph",)
#: the input (argument of :func:`run_case`, column of a batch manifest) each non-CT step reads
STEP_INPUTS: dict[str, str] = {
    **{s: "mri" for s in MRI_STEPS},
    **{s: "axial" for s in AXIAL_STEPS},
    **{s: "radiograph" for s in RADIOGRAPH_STEPS},
}
#: what each of those inputs is, for messages
INPUT_TITLES: dict[str, str] = {
    "mri": "a sagittal T2 MRI",
    "axial": "an axial T2 MRI slice or series",
    "radiograph": "a lumbar radiograph",
}
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
        warnings: plain-words warnings (the input checks' first: an orientation that contradicts the
            anatomy, a resampled DICOM series; then the engine's, e.g. S1 not in the field of view).
        model: name, version, weights file and SHA-256 of the model used.
        mode: ``"fast"`` or ``"paper"`` (the paper's non-overlapping summed-probability windows).
        timings_s: seconds per step.
        output_dir: folder the files were written to (``None`` when nothing was written).
        files: name -> path of every file written.
        checks: the input checks run (:meth:`spineai.checks.CheckResult.to_dict`): ``slice_geometry`` (a
            DICOM folder), ``hounsfield`` (before the model), ``orientation`` (of the result).
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
    checks: list[dict[str, Any]] = field(default_factory=list)
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
        warnings: foramina that could not be measured, and why; an orientation that contradicts the
            anatomy; levels only partly in the field of view (measured, but to be checked).
        skin_source: where the skin for the needle paths came from (CT, or the label map's hull).
        output_dir, files: what was written.
        checks: the input checks run on the label map (:meth:`spineai.checks.CheckResult.to_dict`):
            ``orientation`` and ``field_of_view`` (of the levels asked). A failed check is reported with
            status ``warning`` here: the other levels are measured all the same.
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
    checks: list[dict[str, Any]] = field(default_factory=list)
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
class AxialGrade:
    """One grading of an axial T2 slice (:func:`grade_axial`).

    Attributes:
        grading: ``"ldh"`` (disc herniation), ``"lccs"`` (central canal stenosis) or ``"lnrc"`` (nerve-root
            compromise).
        title: its name in words.
        grade: 0..3, the most probable grade; ``grade_name`` its meaning.
        probabilities: ``{"0": p, "1": p, "2": p, "3": p}`` (sum 1).
        p_grade_2_or_3: the dichotomous score P(2) + P(3); ``grade_2_or_3``: whether the grade is 2 or 3.
        gradcam_peak_index: input index ``(x, y[, z])`` of the Grad-CAM maximum (explained gradings only).
    """

    grading: str
    title: str
    grade: int
    grade_name: str
    probabilities: dict[str, float]
    p_grade_2_or_3: float
    grade_2_or_3: bool
    gradcam_peak_index: list[float] | None = None


@dataclass
class AxialGradeOutput(Result):
    """LDH, LCCS and LNRC of one axial T2 slice at a disc level (:func:`grade_axial`).

    Attributes:
        gradings: one :class:`AxialGrade` per grading (``ldh``, ``lccs``, ``lnrc``).
        input_kind: ``"picture"``, ``"slice"`` or ``"volume"``; ``input_size``: its size (SimpleITK order).
        graded_slice: for a volume, the graded axial slice (index along LPS z after reorientation).
        roi_index: the graded box ``[x0, y0, x1, y1]`` in input pixel indices (x = column), or ``None``.
        notes: decisions taken on the way (slice choice, crop), in words.
        model: name, version, SHA-256, weights file and configuration of the grader.
        gradcam_files: grading -> ``gradcam_<grading>.nii.gz`` written (empty when nothing was written).
        output_dir, files: what was written.
        heatmaps: ``{grading: Grad-CAM map on the input's geometry, 0..1}`` (not in ``to_dict``).
        engine: the engine's :class:`~spineai.grading.axial.AxialGradingResult` (not in ``to_dict``).
    """

    gradings: list[AxialGrade]
    input_kind: str
    input_size: list[int]
    graded_slice: int | None
    roi_index: list[float] | None
    notes: list[str]
    model: dict[str, Any]
    gradcam_files: dict[str, Path] = field(default_factory=dict)
    output_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    heatmaps: dict[str, Any] = field(default_factory=dict, repr=False, metadata=_NOT_JSON)
    engine: Any = field(default=None, repr=False, metadata=_NOT_JSON)

    def grades(self) -> dict[str, int]:
        """``{grading: grade}``, e.g. ``{"ldh": 2, "lccs": 1, "lnrc": 0}``."""
        return {g.grading: g.grade for g in self.gradings}

    def get(self, grading: str) -> AxialGrade:
        """The :class:`AxialGrade` of ``grading`` (``"ldh"``, ``"lccs"`` or ``"lnrc"``)."""
        return _one_named(self.gradings, "grading", grading)


def _one_named(items: list[Any], key: str, name: str) -> Any:
    """The item of ``items`` whose attribute ``key`` is ``name``; an :class:`InputError` naming the choices."""
    for item in items:
        if getattr(item, key) == name:
            return item
    choices = ", ".join(str(getattr(i, key)) for i in items)
    raise InputError(f"No {key} '{name}' in this result.", f"ask for one of {choices}")


@dataclass
class StenosisRegion:
    """One detected and graded region of an axial slice (:func:`grade_stenosis`).

    Attributes:
        region: ``central_canal``, ``lateral_recess_left``, ``lateral_recess_right``, ``foramen_left``,
            ``foramen_right`` (left = the patient's left); ``title`` in words.
        box_index_px: the box ``[x0, y0, x1, y1]`` in **input pixel indices** (x = column, y = row).
        box_lps_mm: the same box's corners ``[x0, y0, x1, y1]`` in **LPS millimetres** (a picture without
            geometry: its own pixel grid, 1 mm per pixel).
        detection_confidence: the detector's peak heat, 0..1.
        grade: 0 normal, 1 mild, 2 moderate, 3 severe; ``grade_name`` in words.
        probabilities: ``{"0": p, ..., "3": p}`` (the mean over the test-time crop variants).
        p_moderate_severe: P(2) + P(3); ``moderate_or_severe``: the dichotomous grading.
        gradcam_peak_index: input index of the region's Grad-CAM maximum (with Grad-CAM).
    """

    region: str
    title: str
    box_index_px: list[float]
    box_lps_mm: list[float]
    detection_confidence: float
    grade: int
    grade_name: str
    probabilities: dict[str, float]
    p_moderate_severe: float
    moderate_or_severe: bool
    gradcam_peak_index: list[float] | None = None


@dataclass
class StenosisOutput(Result):
    """Central canal, lateral recess and foraminal stenosis of one axial slice (:func:`grade_stenosis`).

    Attributes:
        regions: the five :class:`StenosisRegion`, central canal first.
        input_kind, input_size, graded_slice: the input, as in :class:`AxialGradeOutput`.
        notes: decisions and low-confidence detections, in words.
        model: name, version, SHA-256 and weights file of the two-stage model.
        gradcam_file: ``gradcam_stenosis.nii.gz`` when written.
        output_dir, files: what was written.
        heatmap: Grad-CAM of every region's grade on the input's geometry, 0..1 (not in ``to_dict``).
        engine: the engine's :class:`~spineai.grading.stenosis.StenosisResult` (not in ``to_dict``).
    """

    regions: list[StenosisRegion]
    input_kind: str
    input_size: list[int]
    graded_slice: int | None
    notes: list[str]
    model: dict[str, Any]
    gradcam_file: Path | None = None
    output_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    heatmap: Any = field(default=None, repr=False, metadata=_NOT_JSON)
    engine: Any = field(default=None, repr=False, metadata=_NOT_JSON)

    def grades(self) -> dict[str, int]:
        """``{region: grade}``."""
        return {r.region: r.grade for r in self.regions}

    def get(self, region: str) -> StenosisRegion:
        """The :class:`StenosisRegion` named ``region`` (e.g. ``"foramen_left"``)."""
        return _one_named(self.regions, "region", region)


@dataclass
class RadiographLevel:
    """One disc level of a radiograph reading (:func:`read_radiograph`).

    Attributes:
        level: ``"L1-L2"`` .. ``"L5-S1"``.
        probability: the ensemble's probability of a herniated disc at the level, 0..1.
        threshold: the model's decision threshold at the level.
        herniation: the call, ``probability >= threshold``.
    """

    level: str
    probability: float
    threshold: float
    herniation: bool


@dataclass
class RadiographDisc:
    """Where a disc-crops model read one disc of a radiograph (:func:`read_radiograph`).

    Attributes:
        level: ``"L1-L2"`` .. ``"L5-S1"``.
        row, column: the disc centre in pixels of the input image (row 0 at the top, column 0 at the left;
            sub-pixel), also when vertebra boxes cropped the image first.
        x_mm, y_mm: the same point in the image's physical frame (mm: the input's origin, spacing and
            direction applied to ``(column, row)``) when the pixel spacing is known (a DICOM or another file
            that carries it, or an array given with ``spacing_mm``), else ``None`` (a PNG/JPEG; an in-memory
            ``sitk.Image``, whose spacing may be a reader's default of 1 mm).
        confidence: the disc locator's probability mass within 2 sigma of the centre, 0..1 (below 0.2:
            unsure, a warning says so); ``None`` when the centre was given (``disc_centres=``).
        source: ``"located"`` (found by the model's disc locator) or ``"given"``.
        crop_pixels_x0_y0_x1_y1: the square the reader read around the centre, in pixels of the input.
        pixel_mm: the pixel size (mm) used to size that crop; ``scale_source``: where it came from
            (``"given"`` for ``pixel_mm=``, ``"image spacing"``, or estimated from the disc spacing).
    """

    level: str
    row: float
    column: float
    x_mm: float | None
    y_mm: float | None
    confidence: float | None
    source: str
    crop_pixels_x0_y0_x1_y1: list[float]
    pixel_mm: float | None
    scale_source: str | None


@dataclass
class RadiographOutput(Result):
    """Per-level herniation probabilities from one lumbar radiograph (:func:`read_radiograph`).

    Attributes:
        levels: one :class:`RadiographLevel` per level, L1-L2 first.
        design: ``"disc-crops"`` (the shipped model: a disc locator, then a reader of a crop around each disc)
            or ``"whole-image"`` (the seed paper's EfficientNet on the whole radiograph).
        discs: disc-crops design: one :class:`RadiographDisc` per level, L1-L2 first (the located or given
            centres, in pixels and, when the pixel spacing is known, in mm); ``None`` for the whole-image
            design.
        gradcam_level: the level the Grad-CAM map explains, or ``None``.
        age_estimate_years: the model's age estimate (models trained with the age task), else ``None``.
        age_years: the patient's age as given (``age=``), else ``None``; ``age_error_years``: estimate
            minus given age (years) when both are known.
        crop: the lumbar crop (pixels ``x0, y0, x1, y1``) when vertebra boxes were given, else ``None``.
        warnings: what to check (e.g. a model trained on synthetic radiographs only).
        model: name, weights, SHA-256, thresholds and training-data statement.
        input: path, size (pixels), spacing (mm) and reading details of the radiograph.
        output_dir, files: what was written.
        heatmap: Grad-CAM on the radiograph's own pixel grid, 0..1 (not in ``to_dict``).
        engine: the engine's :class:`~spineai.radiograph.predict.RadiographResult` (not in ``to_dict``).
    """

    levels: list[RadiographLevel]
    design: str
    discs: list[RadiographDisc] | None
    gradcam_level: str | None
    age_estimate_years: float | None
    age_years: float | None
    age_error_years: float | None
    crop: dict[str, Any] | None
    warnings: list[str]
    model: dict[str, Any]
    input: dict[str, Any]
    output_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    heatmap: Any = field(default=None, repr=False, metadata=_NOT_JSON)
    engine: Any = field(default=None, repr=False, metadata=_NOT_JSON)

    def probabilities(self) -> dict[str, float]:
        """``{level: probability of a herniation}``."""
        return {lv.level: lv.probability for lv in self.levels}

    def positive_levels(self) -> list[str]:
        """Levels called positive (probability at or above the threshold), cranial first."""
        return [lv.level for lv in self.levels if lv.herniation]

    def disc(self, level: str) -> RadiographDisc:
        """The :class:`RadiographDisc` of ``level`` (e.g. ``"L4-L5"``); an :class:`InputError` for a
        whole-image model, which locates no discs."""
        if self.discs is None:
            raise InputError(
                f"This reading has no disc positions: the {self.design} model reads the whole image.",
                "use a disc-crops model (the shipped one: weights=None) to get the located discs",
            )
        return _one_named(self.discs, "level", level)


@dataclass
class CaseOutput(Result):
    """Everything :func:`run_case` did for one case (also written as ``<output>/case.json``).

    Attributes:
        output_dir: the case folder.
        steps: steps requested, in run order.
        steps_done: steps finished (``segment`` is absent when a segmentation was given).
        segmentation_source: ``"model"`` (segmented here), ``"given"`` (``segmentation=`` argument) or ``None``.
        inputs: the inputs (paths, or ``"in-memory <type>"``) and the ``level_override`` given.
        segmentation: the ``segment`` step's result.
        levels: the ``levels`` step's numbering, :meth:`spineai.levels.LevelResult.to_dict` (format
            ``"spineai-levels"``: names, confidence, flags, Castellvi type, evidence), or
            ``{"flagged": True, "error": "<message>"}`` when the vertebrae could not be numbered (the
            case then went on with the segmentation's own names); ``None`` when the step did not run.
        triangles, grades, outcome, axial, stenosis, radiograph: each step's result (``None`` when not run).
        checks: every input check run, :meth:`spineai.checks.CheckResult.to_dict` with the ``step`` it
            belongs to (``input``, ``segment``, ``measure``).
        warnings: every step's warnings.
        timings_s: seconds per step and in total.
        level_result: the :class:`spineai.levels.LevelResult` (relabelled map and all; not in ``to_dict``).
    """

    output_dir: Path
    steps: list[str]
    steps_done: list[str]
    segmentation_source: str | None
    inputs: dict[str, Any]
    segmentation: SegmentOutput | None = None
    levels: dict[str, Any] | None = None
    triangles: MeasureOutput | None = None
    grades: GradeOutput | None = None
    outcome: OutcomeOutput | None = None
    axial: AxialGradeOutput | None = None
    stenosis: StenosisOutput | None = None
    radiograph: RadiographOutput | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    level_result: Any = field(default=None, repr=False, metadata=_NOT_JSON)


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
    from .outputs import check_output_dir

    return check_output_dir(output, overwrite)


# ====================================================================================== input checks
#: what leads an orientation warning (it changes sides and angles: it must not be missed)
ORIENTATION_WARNING = "CHECK THE ORIENTATION"


def _load_ct(
    image: Any,
    spacing_mm: Any,
    origin_mm: Any,
    direction: Any,
    checks: list[Any],
) -> sitk.Image:
    """The CT as an image; a DICOM folder is read onto a regular grid (:func:`spineai.checks.read_dicom_regular`:
    uneven slices or a gantry tilt are resampled) and its ``slice_geometry`` check appended to ``checks``."""
    if isinstance(image, (str, os.PathLike)) and Path(image).is_dir():
        if any(v is not None for v in (spacing_mm, origin_mm, direction)):
            load_image(image, spacing_mm=spacing_mm, name="CT")  # raises the explanation
        from .checks import read_dicom_regular

        img, geometry = read_dicom_regular(image, name="CT")
        checks.append(geometry)
        return img
    return load_image(image, spacing_mm=spacing_mm, origin_mm=origin_mm, direction=direction, name="CT")


def _as_warning(check: Any) -> Any:
    """``check`` with status ``warning`` where it was ``error`` (the run goes on; the message stays)."""
    import dataclasses

    return dataclasses.replace(check, status="warning") if check.status == "error" else check


def _orientation_check(labels: Any) -> Any:
    """:func:`spineai.checks.check_orientation` of a label map, a mismatch reported as a warning."""
    from .checks import CheckResult, check_orientation

    try:
        result = check_orientation(labels)
    except InputError as exc:  # e.g. no vertebra in the map: nothing to check the orientation against
        return CheckResult("orientation", "warning", f"The orientation could not be checked: {exc.problem}")
    if result.status == "error":
        result = _as_warning(result)
        result.details["contradicts_anatomy"] = True
    return result


def _check_warnings(checks: Sequence[Any]) -> list[str]:
    """Plain-words warnings of the checks that are not ``ok``; an orientation mismatch first, in capitals."""
    loud, quiet = [], []
    for c in checks:
        if c.status == "ok":
            continue
        text = c.message + (f" Fix: {c.fix}" if c.fix else "")
        if c.name == "orientation" and c.details.get("contradicts_anatomy"):
            loud.append(f"{ORIENTATION_WARNING}: {text}")
        else:
            quiet.append(text)
    return loud + quiet


def _label_checks(labels: Any, levels: Sequence[str], measured: Any) -> tuple[list[Any], list[str]]:
    """Orientation and field of view of a label map about to be measured: ``(checks, warnings)``.

    A level out of view is a warning, not an error (the other levels are measured). A level whose every
    foramen the planner already reports as not measured (``outside_field_of_view``, missing structures)
    gets no second message; a level measured on some side although a vertebra is cut by the image's end
    gets one.
    """
    from .checks import check_field_of_view

    orientation = _orientation_check(labels)
    checks = [orientation]
    warnings = _check_warnings([orientation])
    fov = _as_warning(check_field_of_view(labels, levels))
    checks.append(fov)
    measured_levels = {fm.level for fm in measured.foramina if fm.ok}
    reported = {fm.level for fm in measured.foramina} - measured_levels
    for level, problems in fov.details.get("not_covered", {}).items():
        if level in reported:
            continue
        warnings.append(
            f"{level} is not wholly in the field of view ({'; '.join(problems)}): it was measured, but check "
            "it; a field of view reaching one vertebra beyond the level avoids this"
        )
    return checks, warnings


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
    class_weight_correction: bool = True,
    mirror_tta: bool = False,
    precision: str = "auto",
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
        postprocess: keep the largest connected component of each structure and name each lumbar
            vertebra by the discs above and below it.
        require_levels: vertebrae or levels that must be found (e.g. ``("L5", "S1")``).
        surfaces: also write smoothed surface models (LPS, mm).
        class_weight_correction: divide the network's probabilities by the class weights of its training
            loss (recorded in its card), so thin roots are not drawn too thick; ``False``: the raw softmax,
            as the paper.
        mirror_tta: left-right test-time augmentation (the CT and its mirror image, averaged): slightly
            better nerve roots at twice the inference time.
        precision: ``"auto"`` (bf16 autocast on CUDA, float32 on the CPU), ``"float32"`` or ``"bf16"``.
        overwrite: write into a non-empty ``output`` folder, replacing files of the same names.
        spacing_mm, origin_mm, direction: geometry of an array input (see the module docstring).

    Returns:
        :class:`SegmentOutput` (``.labels`` is the canonical label map on the input's grid).

    Checks (in ``checks``, see :mod:`spineai.checks`): a DICOM folder is read onto a regular grid (uneven
    slices or a gantry tilt are resampled, with a warning); the CT must be in Hounsfield units (refused
    before the model otherwise: a CT stored without its rescale intercept, an MR or normalised image);
    the result's orientation must agree with the anatomy (vertebral bodies anterior, sacrum caudal; a
    mismatch is the first warning, starting with ``CHECK THE ORIENTATION``).

    Raises:
        InputError: not a CT in Hounsfield units, 2D, implausible spacing, NaNs, too small, required levels
            missing.
        WeightsError: missing, tampered or mismatched weights.
        OutputExistsError: ``output`` holds files and ``overwrite`` is False.
    """
    from .checks import check_hounsfield, require
    from .segmentation.inference import segment as engine_segment

    out = _check_output(output, overwrite)
    checks: list[Any] = []
    ct = _load_ct(image, spacing_mm, origin_mm, direction, checks)
    hounsfield = check_hounsfield(ct)
    checks.append(hounsfield)
    require([hounsfield])  # a CT not in HU is refused before the model runs
    model = _segmentation_model(weights, device)
    result = engine_segment(
        ct,
        mode="fast" if fast else "paper",
        postprocess=postprocess,
        require_levels=require_levels,
        model=model,
        class_weight_correction=class_weight_correction,
        mirror_tta=mirror_tta,
        precision=precision,
    )
    checks.append(_orientation_check(result.labels))
    files = result.save(out, overwrite=overwrite, surfaces=surfaces) if out is not None else {}
    return SegmentOutput(
        structures=list(result.structures),
        volumes_mm3={k: float(v) for k, v in result.volumes_mm3.items()},
        warnings=_check_warnings(checks) + list(result.warnings),
        model=dict(result.model),
        mode=result.mode,
        timings_s=dict(result.timings_s),
        output_dir=out,
        files=dict(files),
        checks=[c.to_dict() for c in checks],
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


def _measure_output(
    result: Any,
    planned: bool,
    view: str,
    out: Path | None,
    files: dict,
    labels: Any,
    levels: Sequence[str],
) -> MeasureOutput:
    from .planning.tables import table_rows

    checks, check_warnings = _label_checks(labels, levels, result)
    loud = [w for w in check_warnings if w.startswith(ORIENTATION_WARNING)]
    rest = [w for w in check_warnings if not w.startswith(ORIENTATION_WARNING)]
    return MeasureOutput(
        planned=planned,
        view=view,
        triangles=[TriangleRow.from_row(r) for r in table_rows(result)],
        warnings=loud + list(result.warnings) + rest,
        skin_source=str(result.skin_source),
        output_dir=out,
        files=dict(files),
        checks=[c.to_dict() for c in checks],
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
    measures, searches and plans in one go). The true areas are the same in both. The label map's
    orientation and the field of view of ``levels`` are checked (``checks``); a level out of view is a
    warning and the other levels are measured.

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
    return _measure_output(
        result, planned=False, view=what, out=out, files=files, labels=labels, levels=levels
    )


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
    return _measure_output(
        result, planned=True, view=what, out=out, files=files, labels=labels, levels=levels
    )


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


# ====================================================================================== axial MRI
def _axial_source(image: Any, spacing_mm: Any, origin_mm: Any, direction: Any, name: str) -> Any:
    """What the axial engines read: the input as is, or an image built from an array and its geometry."""
    import numpy as np

    if isinstance(image, np.ndarray) and (image.ndim == 3 or spacing_mm is not None):
        return load_image(
            image, spacing_mm=spacing_mm, origin_mm=origin_mm, direction=direction, dims=None, name=name
        )
    if not isinstance(image, np.ndarray) and any(v is not None for v in (spacing_mm, origin_mm, direction)):
        load_image(image, spacing_mm=spacing_mm, dims=None, name=name)  # raises the explanation
    if isinstance(image, (str, os.PathLike)) and not Path(image).exists():
        raise InputError(f"The {name} '{image}' does not exist.", "check the path of the slice or series")
    return image


def grade_axial(
    image: str | os.PathLike | sitk.Image | np.ndarray,
    output: str | os.PathLike | None = None,
    *,
    weights: str | os.PathLike | None = None,
    gradcam: Sequence[str] | None = ("ldh", "lccs", "lnrc"),
    slice_index: int | None = None,
    roi: Sequence[float] | None = None,
    overwrite: bool = False,
    spacing_mm: float | Sequence[float] | None = None,
    origin_mm: Sequence[float] | None = None,
    direction: Sequence[float] | np.ndarray | None = None,
) -> AxialGradeOutput:
    """LDH, LCCS and LNRC of an axial T2 slice at a lumbar disc level (``spineai grade axial``).

    Args:
        image: picture (PNG/JPG, displayed radiologically: anterior up, the patient's right on the left),
            2D/3D file or DICOM folder, ``sitk.Image``, or array: 2D ``[rows, cols]`` (a picture; geometry
            optional) or 3D ``[z, y, x]`` with ``spacing_mm``. Of a 3D axial series the middle slice is
            graded unless ``slice_index`` says otherwise.
        output: folder for ``grades.json``, ``gradcam_<grading>.nii.gz`` (the input's geometry) and
            ``gradcam_<grading>.png``; ``None`` writes nothing.
        weights: grader weights (``None``: the shipped demo model, trained on synthetic phantoms).
        gradcam: gradings to explain (``"ldh"``, ``"lccs"``, ``"lnrc"``); ``None`` or empty for none.
        slice_index: for a volume, the axial slice (index along LPS z after reorientation).
        roi: grade only this box ``[x0, y0, x1, y1]`` (input pixel indices, x = column).
        overwrite: write into a non-empty ``output`` folder.
        spacing_mm, origin_mm, direction: geometry of an array input.

    Returns:
        :class:`AxialGradeOutput`.

    Raises:
        InputError: CT, sagittal or coronal input, too small or stretched slices, an empty ROI, unknown
            gradings.
    """
    from .grading.axial.grades import axial_task
    from .grading.axial.predict import grade_axial as engine_grade

    out = _check_output(output, overwrite)
    source = _axial_source(image, spacing_mm, origin_mm, direction, "axial MRI")
    result = engine_grade(
        source, weights=weights, gradcam=list(gradcam or []), slice_index=slice_index, roi=roi
    )
    files = result.write(out, overwrite=overwrite) if out is not None else {}
    gradings = []
    for key, grade in result.grades.items():
        task = axial_task(key)
        gradings.append(
            AxialGrade(
                grading=key,
                title=task.title,
                grade=int(grade),
                grade_name=task.grade_names[grade],
                probabilities=dict(result.probabilities[key]),
                p_grade_2_or_3=float(result.dichotomous[key]["p_grade_2_or_3"]),
                grade_2_or_3=bool(result.dichotomous[key]["grade_2_or_3"]),
                gradcam_peak_index=result.gradcam_peak_index.get(key),
            )
        )
    return AxialGradeOutput(
        gradings=gradings,
        input_kind=result.input_kind,
        input_size=list(result.input_size),
        graded_slice=result.graded_slice,
        roi_index=result.roi_index,
        notes=list(result.notes),
        model=_jsonable(result.model),
        gradcam_files={k: files[f"gradcam_{k}"] for k in result.heatmaps if f"gradcam_{k}" in files},
        output_dir=out,
        files=dict(files),
        heatmaps=dict(result.heatmaps),
        engine=result,
    )


def grade_stenosis(
    image: str | os.PathLike | sitk.Image | np.ndarray,
    output: str | os.PathLike | None = None,
    *,
    weights: str | os.PathLike | None = None,
    gradcam: bool = True,
    slice_index: int | None = None,
    min_confidence: float = 0.2,
    overwrite: bool = False,
    spacing_mm: float | Sequence[float] | None = None,
    origin_mm: Sequence[float] | None = None,
    direction: Sequence[float] | np.ndarray | None = None,
) -> StenosisOutput:
    """Detect and grade central canal, lateral recess and foraminal stenosis on an axial slice
    (``spineai grade stenosis``).

    Args:
        image: as for :func:`grade_axial`.
        output: folder for ``stenosis.tsv``, ``stenosis.json``, ``gradcam_stenosis.nii.gz`` and
            ``gradcam_stenosis.png``; ``None`` writes nothing.
        weights: two-stage model weights (``None``: the shipped demo model, trained on synthetic phantoms).
        gradcam: compute the Grad-CAM map of every region's grade.
        slice_index: for a volume, the axial slice.
        min_confidence: refuse the slice when the central canal's detection confidence is below this.
        overwrite: write into a non-empty ``output`` folder.
        spacing_mm, origin_mm, direction: geometry of an array input.

    Returns:
        :class:`StenosisOutput` (boxes in input pixel indices and in LPS mm).

    Raises:
        InputError: CT, sagittal or coronal input, too small a slice, no spinal canal recognised.
    """
    from .grading.axial.grades import STENOSIS_NAMES
    from .grading.stenosis.predict import grade_stenosis as engine_grade

    out = _check_output(output, overwrite)
    source = _axial_source(image, spacing_mm, origin_mm, direction, "axial MRI")
    result = engine_grade(
        source, weights=weights, gradcam=gradcam, slice_index=slice_index, min_confidence=min_confidence
    )
    files = result.write(out, overwrite=overwrite) if out is not None else {}
    regions = [
        StenosisRegion(
            region=r.region,
            title=r.title,
            box_index_px=[float(v) for v in r.box_index],
            box_lps_mm=[float(v) for v in r.box_mm],
            detection_confidence=float(r.confidence),
            grade=int(r.grade),
            grade_name=STENOSIS_NAMES[r.grade],
            probabilities=dict(r.probabilities),
            p_moderate_severe=float(r.p_moderate_severe),
            moderate_or_severe=bool(r.moderate_or_severe),
            gradcam_peak_index=r.gradcam_peak_index,
        )
        for r in result.regions
    ]
    return StenosisOutput(
        regions=regions,
        input_kind=result.input_kind,
        input_size=list(result.input_size),
        graded_slice=result.graded_slice,
        notes=list(result.notes),
        model=dict(result.model),
        gradcam_file=files.get("gradcam"),
        output_dir=out,
        files=dict(files),
        heatmap=result.heatmap,
        engine=result,
    )


# ====================================================================================== radiograph
def resolve_radiograph_weights(weights: Any = None) -> Any:
    """``weights`` itself, or ``None`` (the shipped model) when ``weights`` is ``None`` and the shipped model is
    installed.

    SpineAI ships a radiograph model, ``radiograph_hnp_demo`` (disc-crops design: a disc locator and a
    per-level crop reader), trained on synthetic radiographs (DRRs of CT phantoms) only: research use, not
    for clinical decisions. It is used whenever no ``weights`` are given.

    Raises:
        InputError: ``weights`` is ``None`` and the shipped model's files are missing from
            ``spineai/resources/models`` (a damaged installation): the message says how to restore them or
            pass a model of one's own.
    """
    if weights is not None:
        return weights
    from .radiograph.predict import DEFAULT_MODEL
    from .weights import list_models

    if any(card.name == DEFAULT_MODEL for card in list_models()):
        return None
    raise InputError(
        f"No radiograph model is installed: the shipped model '{DEFAULT_MODEL}' (.safetensors + .json) is "
        "missing from spineai/resources/models, so no herniation probability can be given without a model "
        "passed explicitly.",
        "reinstall SpineAI to restore the shipped model (trained on synthetic radiographs only: research use), "
        "or train one on your own radiographs with per-level herniation labels from MRI ('spineai train "
        "radiograph --data site/manifest.csv --out run1', see docs/radiograph.md) and pass "
        "weights='run1/model.safetensors' (command line: --weights run1/model.safetensors)",
    )


def read_radiograph(
    image: str | os.PathLike | sitk.Image | np.ndarray,
    output: str | os.PathLike | None = None,
    *,
    weights: Any = None,
    age: float | None = None,
    boxes: str | os.PathLike | np.ndarray | None = None,
    gradcam: bool = True,
    gradcam_level: str = "max",
    thresholds: Sequence[float] | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    spacing_mm: float | Sequence[float] | None = None,
    origin_mm: Sequence[float] | None = None,
    direction: Sequence[float] | np.ndarray | None = None,
    pixel_mm: float | None = None,
    disc_centres: Sequence[Sequence[float]] | np.ndarray | None = None,
) -> RadiographOutput:
    """Probability of a herniated disc at L1-L2 .. L5-S1 from one lumbar radiograph (``spineai radiograph``).

    Args:
        image: radiograph file (PNG/JPEG/BMP/TIFF, 2D DICOM), 2D ``sitk.Image``, or array ``[rows, cols]``
            (row 0 at the top; ``spacing_mm=(column, row)`` in mm when known).
        output: folder for ``radiograph.json``, ``gradcam_<level>.nrrd`` (the radiograph's own grid) and
            ``gradcam_overlay.png``; ``None`` writes nothing.
        weights: ``None`` (default) for the shipped model ``radiograph_hnp_demo`` (disc-crops design: a disc
            locator finds the five discs, a small reader reads a 72 mm crop around each; trained on synthetic
            radiographs only, research use), or another model: a ``.safetensors`` path with its card
            (``spineai train radiograph``, either design) or a loaded
            :class:`~spineai.radiograph.predict.RadiographModel`.
        age: the patient's age (years), when known: reported beside the model's age estimate (models
            trained with the age task) and their difference. The herniation call does not use it.
        boxes: vertebra boxes (YOLO ``.txt`` or an ``(n, 4)`` pixel array ``x0, y0, x1, y1``): the image
            is cropped to the five lowest (L1..L5) first.
        gradcam: compute the heat map; ``gradcam_level``: ``"max"`` (the most probable level) or a level.
        thresholds: five decision thresholds (default: the model card's).
        device: ``"cpu"`` or ``"cuda"`` (the disc-crops design runs on the CPU).
        overwrite: write into a non-empty ``output`` folder.
        spacing_mm, origin_mm, direction: geometry of an array input.
        pixel_mm: disc-crops design: the pixel size (mm, 0.01-10) of a picture that does not carry it (a
            PNG/JPEG export), used to size the 72 mm crops; by default the image's spacing when known (a DICOM,
            an array with ``spacing_mm``: the geometric mean of its two spacings), else estimated from the
            located discs (taken 35 mm apart, with a warning). ``--pixel-mm`` on the command line.
        disc_centres: disc-crops design: the five disc centres to read instead of the located ones,
            ``(5, 2)`` as ``(x = column, y = row)`` in pixels of ``image`` (before any ``boxes`` crop), L1-L2
            first. A whole-image model ignores them (with a warning).

    Returns:
        :class:`RadiographOutput` (``discs``: where each disc was read; ``design``: the model's design).

    Raises:
        InputError: the shipped model's files are missing and no ``weights`` were given; a volume, a colour
            photograph, another body region, fewer than five vertebra boxes, an unknown level, a negative age,
            a pixel size that is not one, disc centres that are not five finite ``(x, y)`` pairs.
        WeightsError: tampered or mismatched weights.
    """
    import numpy as np

    from .radiograph.predict import read_radiograph as engine_read

    if age is not None and (not np.isfinite(float(age)) or float(age) < 0):
        raise InputError(f"age={age!r} is not an age in years.", "pass the age in years (or leave it out)")
    out = _check_output(output, overwrite)
    model = resolve_radiograph_weights(weights)
    source: Any = image
    spacing_given = isinstance(image, np.ndarray) and spacing_mm is not None
    if spacing_given:
        source = load_image(
            image, spacing_mm=spacing_mm, origin_mm=origin_mm, direction=direction, dims=2, name="radiograph"
        )
        known_mm = float(np.sqrt(np.prod(source.GetSpacing())))
        if pixel_mm is None and 0.01 <= known_mm <= 10.0:  # the array's pixel size sizes the disc crops
            pixel_mm = known_mm
    elif not isinstance(image, np.ndarray) and any(v is not None for v in (spacing_mm, origin_mm, direction)):
        load_image(image, spacing_mm=spacing_mm, dims=None, name="radiograph")  # raises the explanation
    result = engine_read(
        source,
        weights=model,
        boxes=boxes,
        gradcam=gradcam,
        gradcam_level=gradcam_level,
        thresholds=thresholds,
        device=device,
        pixel_mm=pixel_mm,
        disc_centres=None if disc_centres is None else np.asarray(disc_centres, dtype=float),
    )
    if spacing_given and result.discs and result.image is not None:
        for d in result.discs:  # the array's geometry was given: the disc centres in mm too
            if d.get("x_mm") is None:
                x_mm, y_mm = result.image.TransformContinuousIndexToPhysicalPoint((d["column"], d["row"]))
                d.update({"x_mm": float(x_mm), "y_mm": float(y_mm)})
    files = result.save(out, overwrite=overwrite) if out is not None else {}
    estimate = result.age_estimate_years
    return RadiographOutput(
        levels=[
            RadiographLevel(
                level=lv,
                probability=float(p),
                threshold=float(result.thresholds[lv]),
                herniation=bool(result.predicted[lv]),
            )
            for lv, p in result.probabilities.items()
        ],
        design=str(result.design),
        discs=None if result.discs is None else [_radiograph_disc(d) for d in result.discs],
        gradcam_level=result.gradcam_level,
        age_estimate_years=None if estimate is None else float(estimate),
        age_years=None if age is None else float(age),
        age_error_years=None if estimate is None or age is None else float(estimate) - float(age),
        crop=_jsonable(result.crop),
        warnings=list(result.warnings),
        model=_jsonable(result.model),
        input=_jsonable(result.input),
        output_dir=out,
        files=dict(files),
        heatmap=result.heatmap,
        engine=result,
    )


def _radiograph_disc(entry: Mapping[str, Any]) -> RadiographDisc:
    """One entry of the engine's ``RadiographResult.discs`` as a :class:`RadiographDisc`."""

    def number(key: str) -> float | None:
        value = entry.get(key)
        return None if value is None else float(value)

    return RadiographDisc(
        level=str(entry["level"]),
        row=float(entry["row"]),
        column=float(entry["column"]),
        x_mm=number("x_mm"),
        y_mm=number("y_mm"),
        confidence=number("confidence"),
        source=str(entry.get("source", "located")),
        crop_pixels_x0_y0_x1_y1=[float(v) for v in entry.get("crop_pixels_x0_y0_x1_y1", [])],
        pixel_mm=number("pixel_mm"),
        scale_source=None if entry.get("scale_source") is None else str(entry["scale_source"]),
    )


# ============================================================================================ case
def check_steps(steps: Iterable[str]) -> list[str]:
    """Known step names in run order; raises :class:`InputError`.

    ``"plan"`` implies ``"measure"``, and ``"measure"`` implies ``"levels"``: triangles are named by level, so
    the numbering is always verified (and flagged when doubtful) before anything is measured.
    """
    wanted = [str(s).strip().lower().replace("_", "-") for s in steps if str(s).strip()]
    unknown = [s for s in wanted if s not in CASE_STEPS]
    if unknown:
        raise InputError(f"Unknown step(s) {', '.join(unknown)}.", f"choose from {', '.join(CASE_STEPS)}")
    if not wanted:
        raise InputError("No step was requested.", f"choose one or more of {', '.join(CASE_STEPS)}")
    if "plan" in wanted and "measure" not in wanted:
        wanted.append("measure")
    if "measure" in wanted and "levels" not in wanted:
        wanted.append("levels")
    return [s for s in CASE_STEPS if s in wanted]


def _level_columns(level_result: Any) -> list[str]:
    """The levels to measure when none were named: the two lowest disc levels of the numbering."""
    if level_result is None:
        return list(DEFAULT_LEVELS)
    from .levels import triangle_levels

    return list(triangle_levels(level_result)) or list(DEFAULT_LEVELS)


def run_case(
    ct: str | os.PathLike | sitk.Image | np.ndarray | None,
    output: str | os.PathLike,
    *,
    segmentation: Any = None,
    mri: str | os.PathLike | sitk.Image | None = None,
    axial: str | os.PathLike | sitk.Image | np.ndarray | None = None,
    radiograph: str | os.PathLike | sitk.Image | np.ndarray | None = None,
    steps: Sequence[str] = DEFAULT_STEPS,
    level_override: str | Mapping[str, Any] | None = None,
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    fast: bool = True,
    levels: Sequence[str] | None = None,
    sides: Sequence[str] = DEFAULT_SIDES,
    images: bool = True,
    surfaces: bool = True,
    grading_weights: str | os.PathLike | None = None,
    outcome_weights: str | os.PathLike | None = None,
    axial_weights: str | os.PathLike | None = None,
    stenosis_weights: str | os.PathLike | None = None,
    radiograph_weights: str | os.PathLike | None = None,
    label_convention: str | None = None,
    overwrite: bool = False,
    on_step: Callable[[str], None] | None = None,
    spacing_mm: float | Sequence[float] | None = None,
    origin_mm: Sequence[float] | None = None,
    direction: Sequence[float] | np.ndarray | None = None,
) -> CaseOutput:
    """The whole workflow of one case into one folder: segment, number the levels, measure, plan (and the
    MRI and radiograph steps).

    Folder layout: ``segmentation/`` (``spineai segment`` files), ``levels/`` (``spineai levels`` files: the
    relabelled segmentation, ``levels.json``, ``levels.tsv``), ``planning/`` (``spineai measure`` files),
    ``grading/`` (``spineai grade sagittal``), ``outcome/`` (``spineai outcome``), ``grading_axial/``
    (``spineai grade axial``), ``stenosis/`` (``spineai grade stenosis``), ``radiograph/``
    (``spineai radiograph``) and ``case.json`` (:meth:`CaseOutput.to_dict`).

    The ``levels`` step numbers the vertebrae of the segmentation from the sacrum (and the last rib, with the
    CT) upward (:func:`spineai.levels.label_levels`, with ``level_override`` when given); ``measure`` and
    ``plan`` then use the **relabelled** map, so every level named in the outputs is the verified one.
    When the vertebrae cannot be numbered (no sacrum and no rib in view, ...), the case goes on with the
    segmentation's own names, ``levels`` is ``{"flagged": True, "error": message}`` and a warning says so.
    Without the ``levels`` step the segmentation's names are used as they are.

    Args:
        ct: the CT (file, DICOM folder, image or array ``[z, y, x]`` with geometry); may be ``None`` when
            only MRI / radiograph steps run, or when ``segmentation`` is given (then no radiographs are
            drawn and no ribs are looked for).
        output: the case folder (new or empty unless ``overwrite``).
        segmentation: a label map to number and measure instead of segmenting (e.g. one corrected by an
            annotator); the ``segment`` step is then skipped.
        mri: sagittal T2 (file or image) for ``grade-sagittal`` and ``outcome``.
        axial: axial T2 slice or series for ``grade-axial`` and ``stenosis``.
        radiograph: lumbar radiograph for ``radiograph``.
        steps: any of :data:`CASE_STEPS` (default :data:`DEFAULT_STEPS`: ``segment``, ``levels``,
            ``measure``, ``plan``). ``plan`` implies ``measure`` and ``measure`` implies ``levels``; ``measure`` with ``plan`` runs the view
            search and needle planning once.
        level_override: renumbering given by the user, as for ``spineai levels --override``: ``"lowest=L6"``
            (the lowest mobile vertebra is L6) or ``"shift=+1"`` / ``"shift=-1"`` (or the same as a dict).
        weights, device, fast, surfaces: for ``segment`` (see :func:`segment`).
        levels: levels to measure; ``None``: the two lowest disc levels of the numbering (``L4-L5``,
            ``L5-S1`` for five lumbar vertebrae; ``L5-L6``, ``L6-S1`` with an L6), or ``L4-L5``, ``L5-S1``
            without numbering.
        sides, images: for ``measure`` / ``plan``.
        grading_weights, outcome_weights, axial_weights, stenosis_weights: weights of the MRI models
            (``None``: the shipped demo models).
        radiograph_weights: the radiograph model for ``radiograph`` (``None``: the shipped disc-crops model
            ``radiograph_hnp_demo``, trained on synthetic radiographs only).
        label_convention: naming of a given segmentation's values without a sidecar.
        overwrite: write into a non-empty ``output`` folder, replacing files of the same names.
        on_step: called with each step's name when it has finished (cohort runs record progress with it).
        spacing_mm, origin_mm, direction: geometry of an array CT.

    Returns:
        :class:`CaseOutput`.

    Raises:
        InputError: a step needs an input that was not given, an override that is not understood, or any
            input problem of the steps (a CT not in Hounsfield units, ...).
    """
    from .levels import parse_override

    wanted = check_steps(steps)
    parse_override(level_override)  # a mistyped override is refused before anything runs
    out = _check_output(output, overwrite)
    assert out is not None
    if segmentation is not None:
        wanted = [s for s in wanted if s != "segment"]
    if "segment" in wanted and ct is None:
        raise InputError("The segment step needs a CT, but ct is None.", "pass the CT, or a segmentation=")
    labelled = [s for s in wanted if s in ("levels", "measure", "plan")]
    if labelled and ct is None and segmentation is None and "segment" not in wanted:
        raise InputError(
            f"The step(s) {', '.join(labelled)} need a segmentation or a CT to segment, but neither was given.",
            "pass ct= (and the segment step) or segmentation=",
        )
    given = {"mri": mri, "axial": axial, "radiograph": radiograph}
    for kind, value in given.items():
        needing = [s for s in wanted if STEP_INPUTS.get(s) == kind]
        if needing and value is None:
            raise InputError(
                f"The step(s) {', '.join(needing)} need {INPUT_TITLES[kind]}, but {kind} is None.",
                f"pass {kind}= ({INPUT_TITLES[kind]}), or drop those steps",
            )
    if "radiograph" in wanted:
        radiograph_weights = resolve_radiograph_weights(radiograph_weights)  # refused before any step runs
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
            "axial": _describe_input(axial),
            "radiograph": _describe_input(radiograph),
            "level_override": _jsonable(level_override),
        },
        warnings=warnings,
        timings_s=timings,
    )

    def finished(step: str, t0: float) -> None:
        timings[step] = round(time.perf_counter() - t0, 3)
        done.append(step)
        if on_step is not None:
            on_step(step)

    def add_checks(step: str, checks: Sequence[Mapping[str, Any]]) -> None:
        case.checks.extend({"step": step, **dict(c)} for c in checks)

    ct_img = None
    if ct is not None and any(s in wanted for s in CT_STEPS):
        input_checks: list[Any] = []
        ct_img = _load_ct(ct, spacing_mm, origin_mm, direction, input_checks)
        add_checks("input", [c.to_dict() for c in input_checks])
        warnings += _check_warnings(input_checks)
    labels = segmentation
    convention = label_convention if segmentation is not None else None
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
        convention = None
        warnings += case.segmentation.warnings
        add_checks("segment", case.segmentation.checks)
        finished("segment", t0)
    if "levels" in wanted:
        t0 = time.perf_counter()
        labels = load_segmentation(labels, like=ct_img, label_convention=convention)
        convention = None
        case.level_result, case.levels, level_warnings = _number_levels(
            labels, ct_img, level_override, out / "levels", overwrite
        )
        if case.level_result is not None:
            labels = case.level_result.labelmap
        warnings += level_warnings
        finished("levels", t0)
    if "measure" in wanted:
        t0 = time.perf_counter()
        planner = plan_injection if "plan" in wanted else measure_triangles
        case.triangles = planner(
            labels,
            ct_img,
            out / "planning",
            levels=list(levels) if levels is not None else _level_columns(case.level_result),
            sides=sides,
            images=images,
            overwrite=overwrite,
            label_convention=convention,
        )
        warnings += case.triangles.warnings
        add_checks("measure", case.triangles.checks)
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
    if "grade-axial" in wanted:
        t0 = time.perf_counter()
        case.axial = grade_axial(axial, out / "grading_axial", weights=axial_weights, overwrite=overwrite)
        warnings += [f"axial grading: {n}" for n in case.axial.notes]
        finished("grade-axial", t0)
    if "stenosis" in wanted:
        t0 = time.perf_counter()
        case.stenosis = grade_stenosis(axial, out / "stenosis", weights=stenosis_weights, overwrite=overwrite)
        warnings += [f"stenosis: {n}" for n in case.stenosis.notes]
        finished("stenosis", t0)
    if "radiograph" in wanted:
        t0 = time.perf_counter()
        case.radiograph = read_radiograph(
            radiograph, out / "radiograph", weights=radiograph_weights, overwrite=overwrite
        )
        warnings += [f"radiograph: {w}" for w in case.radiograph.warnings]
        finished("radiograph", t0)
    timings["total"] = round(time.perf_counter() - t_start, 3)
    case.to_json(out / "case.json", overwrite=True)
    return case


def _number_levels(
    labels: Any, ct: Any, override: Any, folder: Path, overwrite: bool
) -> tuple[Any, dict[str, Any], list[str]]:
    """The ``levels`` step: ``(LevelResult or None, case.json entry, warnings)``; writes ``folder``.

    A numbering that fails (:class:`InputError`: no sacrum and no rib, a single vertebra, an override that
    cannot apply) does not stop the case: the entry is ``{"flagged": True, "error": message}``.
    """
    from .levels import label_levels, write_levels_outputs

    try:
        result = label_levels(labels, ct=ct, override=override)
    except InputError as exc:
        return (
            None,
            {"flagged": True, "error": str(exc)},
            [
                f"levels: the vertebrae could not be numbered ({exc.problem}); the segmentation's own names "
                f"were measured, unverified. Fix: {exc.fix or 'check the segmentation'}"
            ],
        )
    write_levels_outputs(result, folder, overwrite=overwrite)
    warnings = [f"levels: {w}" for w in result.warnings]
    if result.flagged:
        untrusted = [v.name for v in result.vertebrae if not v.trusted]
        kind = result.transitional.get("kind")
        why = []
        if kind:
            why.append(f"transitional lumbosacral junction ({kind.replace('_', ' ')})")
        if untrusted:
            why.append(f"low confidence at {', '.join(untrusted)}")
        warnings.insert(0, f"levels: the numbering is flagged for review: {'; '.join(why)}")
    return result, result.to_dict(), warnings
