"""Kambin's and the safe triangle measured automatically from a canonical label map (LPS, mm).

:func:`measure_triangles` derives, for each requested level (``"L4-L5"``, ``"L5-S1"``) and side, the parts
that bound the two triangles (:mod:`spineai.planning.parts`), builds the triangles in the reference view
(their **true area**) and in a requested C-arm view (by default the standard 25 degree ipsilateral
oblique), and measures the **accessible window** under that view (:mod:`spineai.planning.window`).

It needs only the label map (any canonical one, e.g. corrected by hand in Slicer's Segment Editor): per
foramen ``U-Lo`` and side, the vertebrae ``U`` and ``Lo``, the disc ``disc_U_Lo``, the exiting root
``root_U_<side>`` and the traversing root ``root_Lo_<side>``. A foramen that cannot be measured gets a
status and a message naming what is missing; the others are measured anyway.

Statuses: ``ok``; ``missing_structures`` (a needed structure is not labelled, or its parts cannot be
found); ``root_not_in_foramen`` (the exiting root does not run out through the foramen);
``outside_field_of_view`` (the level is not, or not completely, inside the image); ``failed`` (any other
problem, with the reason).

C-arm angles: ``oblique_deg`` (ipsilateral, 0..45) and ``tilt_deg`` (positive = cranial) follow
:mod:`spineai.carm` for a prone patient, and are taken **in the level's frame**: the C-arm squared to the
inferior endplate of the upper vertebra (tilt 0 = beam parallel to that endplate, the first step of the
transforaminal protocol). The same view is also given in the patient (scanner LPS) frame.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from .. import carm
from ..anatomy import BY_NAME, SIDES, SPINE_ORDER, disc_name, vertebra_above
from ..errors import InputError
from .construct import KINDS, TriangleInView, level_angles, level_view, reference_view, triangles_in_view
from .parts import ForamenParts, PartError, foramen_parts, unit
from .volume import LabelVolume
from .window import Occluders, Window, accessible_window, body_frames

#: sub-triangles per edge when a window is reported (n x n rays)
REPORT_SAMPLES = 16
KIND_TITLES = {"kambin": "Kambin", "safe": "Safe"}


def _r(a: Any, nd: int = 4) -> Any:
    return np.round(np.asarray(a, dtype=float), nd).tolist()


# =============================================================================================== results
@dataclass
class ViewAssessment:
    """One triangle seen along one C-arm view.

    Attributes:
        name: ``"reference"``, ``"standard"``, ``"requested"`` or ``"best"``.
        oblique_deg, tilt_deg: C-arm angles in the level's frame (see the module docstring).
        patient_oblique_deg, patient_tilt_deg: the same view in the patient (LPS) frame.
        direction_lps: unit view direction, skin -> target.
        vertices_lps_mm: (3, 3) triangle vertices in this view (plane through ``M``).
        area_mm2: the triangle's area in this view.
        degenerate: the triangle does not close in this view.
        window: accessible window.
    """

    name: str
    oblique_deg: float
    tilt_deg: float
    patient_oblique_deg: float
    patient_tilt_deg: float
    direction_lps: np.ndarray
    vertices_lps_mm: np.ndarray
    area_mm2: float
    degenerate: bool
    window: Window
    triangle: TriangleInView = field(repr=False)

    @property
    def window_mm2(self) -> float:
        return self.window.window_mm2

    @property
    def usable(self) -> bool:
        return self.window.usable

    def to_dict(self) -> dict[str, Any]:
        return dict(
            name=self.name,
            oblique_deg=round(self.oblique_deg, 2),
            tilt_deg=round(self.tilt_deg, 2),
            frame="level (C-arm squared to the inferior endplate of the upper vertebra)",
            patient_oblique_deg=round(self.patient_oblique_deg, 2),
            patient_tilt_deg=round(self.patient_tilt_deg, 2),
            direction_lps=_r(self.direction_lps, 6),
            vertices_lps_mm=_r(self.vertices_lps_mm, 3),
            area_mm2=round(self.area_mm2, 3),
            degenerate=bool(self.degenerate),
            **{k: v for k, v in self.window.to_dict().items() if k != "area_mm2"},
        )


@dataclass
class TriangleMeasurement:
    """One triangle of one foramen.

    Attributes:
        level, side, kind: ``"L5-S1"``, ``"left"``, ``"kambin"``/``"safe"``.
        vertex_names: names of the three vertices.
        vertices_lps_mm: (3, 3) vertices in the reference view (LPS, mm).
        area_mm2: true area (reference view, mm2).
        degenerate: the triangle does not close in the reference view.
        plane_point_lps / plane_normal_lps: the plane of the vertices (through ``M``, normal = view).
        image_axes_lps: ``{"lateral", "up"}`` of the reference view.
        edges: the three supporting lines (structure, border, direction, value).
        view: the triangle under the requested view (standard oblique by default).
        standard_view / best_view: filled by the view search (:func:`spineai.planning.views.search_views`).
        usable_view: whether some view in the searched range gives a usable window.
        blocked_reason: why no view gives a usable window (``None`` when one does).
    """

    level: str
    side: str
    kind: str
    vertex_names: tuple[str, ...]
    vertices_lps_mm: np.ndarray
    area_mm2: float
    degenerate: bool
    plane_point_lps: np.ndarray
    plane_normal_lps: np.ndarray
    image_axes_lps: dict[str, np.ndarray]
    edges: list[dict[str, Any]]
    reference: TriangleInView = field(repr=False)
    view: ViewAssessment | None = None
    standard_view: ViewAssessment | None = None
    best_view: ViewAssessment | None = None
    usable_view: bool | None = None
    blocked_reason: str | None = None

    @property
    def name(self) -> str:
        """Display name, e.g. ``"Kambin L5-S1 left"``."""
        return f"{KIND_TITLES[self.kind]} {self.level} {self.side}"

    def to_dict(self) -> dict[str, Any]:
        return dict(
            name=self.name,
            level=self.level,
            side=self.side,
            kind=self.kind,
            view_of_true_area="reference (posteroanterior, squared to the lower vertebra)",
            vertex_names=list(self.vertex_names),
            vertices_lps_mm=_r(self.vertices_lps_mm, 3),
            area_mm2=round(self.area_mm2, 3),
            degenerate=bool(self.degenerate),
            plane_point_lps=_r(self.plane_point_lps, 3),
            plane_normal_lps=_r(self.plane_normal_lps, 6),
            image_axes_lps={k: _r(v, 6) for k, v in self.image_axes_lps.items()},
            edges=self.edges,
            view=self.view.to_dict() if self.view else None,
            standard_view=self.standard_view.to_dict() if self.standard_view else None,
            best_view=self.best_view.to_dict() if self.best_view else None,
            usable_view=self.usable_view,
            blocked_reason=self.blocked_reason,
        )


@dataclass
class ForamenMeasurement:
    """Both triangles of one foramen (level and side), or why they could not be measured.

    Attributes:
        level, side: ``"L5-S1"``, ``"left"``.
        status: ``ok``, ``missing_structures``, ``root_not_in_foramen``, ``outside_field_of_view``, ``failed``.
        message: what went wrong (empty when ``ok``).
        triangles: ``{"kambin": ..., "safe": ...}`` when ``ok``.
        notes: remarks (e.g. no articular process found: the traversing root alone gave the height).
        exiting_root_radius_mm / foraminal_segment_lps_mm: the exiting root's straight segment.
        paths: needle paths per triangle kind (filled by :func:`spineai.planning.needle.plan_paths`).
        recommended: the triangle kind whose path is recommended, and ``recommendation`` why.
    """

    level: str
    side: str
    status: str
    message: str = ""
    triangles: dict[str, TriangleMeasurement] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    parts: ForamenParts | None = field(default=None, repr=False)
    paths: dict[str, Any] = field(default_factory=dict)
    recommended: str | None = None
    recommendation: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(
            level=self.level, side=self.side, status=self.status, message=self.message, notes=list(self.notes)
        )
        if self.parts is not None:
            seg = self.parts.exiting
            out["exiting_root"] = dict(
                name=self.parts.exiting_root,
                radius_mm=round(seg.radius, 3),
                foraminal_segment_lps_mm=_r([seg.a, seg.b], 3),
                straightness_mm=round(seg.straightness_mm, 3),
            )
            out["traversing_root"] = self.parts.traversing_root
        out["triangles"] = {k: t.to_dict() for k, t in self.triangles.items()}
        out["paths"] = {k: p.to_dict() for k, p in self.paths.items()}
        out["recommended"] = self.recommended
        out["recommendation"] = self.recommendation
        return out


@dataclass
class TriangleMeasurements:
    """Result of :func:`measure_triangles`: one :class:`ForamenMeasurement` per requested level and side.

    Attributes:
        foramina: in the order requested (levels, then sides).
        warnings: one line per foramen that could not be measured, and other remarks.
        spacing_mm: voxel size of the label map (x, y, z).
        skin_source: where needle entry points come from (set by the path planner).
    """

    foramina: list[ForamenMeasurement]
    warnings: list[str]
    spacing_mm: tuple[float, float, float]
    volume: LabelVolume = field(repr=False)
    occluders: Occluders | None = field(default=None, repr=False)
    ct: sitk.Image | None = field(default=None, repr=False)
    skin_source: str = ""

    def get(self, level: str, side: str) -> ForamenMeasurement:
        """The foramen ``level``/``side``.

        Raises:
            KeyError: when it was not requested.
        """
        for f in self.foramina:
            if f.level == level and f.side == side:
                return f
        raise KeyError(f"{level} {side}")

    def triangles(self) -> list[TriangleMeasurement]:
        """Every measured triangle (foramina with status ``ok``)."""
        return [t for f in self.foramina for t in f.triangles.values()]

    @property
    def measured(self) -> list[ForamenMeasurement]:
        return [f for f in self.foramina if f.ok]

    def to_dict(self) -> dict[str, Any]:
        return dict(
            format="spineai-triangle-measurements",
            version=1,
            frame="LPS",
            units="mm",
            spacing_mm=list(self.spacing_mm),
            skin_source=self.skin_source,
            conventions=dict(
                true_area="area in the reference view (posteroanterior, squared to the lower vertebra)",
                carm_angles="oblique (ipsilateral, degrees) and tilt (positive = cranial, degrees) of a C-arm "
                "squared to the inferior endplate of the upper vertebra; patient_* = the same view "
                "in the patient's LPS frame (spineai.carm)",
                window="part of the triangle a straight needle along the view reaches from the skin without "
                "crossing bone or nerve (mm2)",
            ),
            warnings=list(self.warnings),
            foramina=[f.to_dict() for f in self.foramina],
        )


# ============================================================================================ inputs
def load_labels(labels: Any) -> sitk.Image:
    """A canonical label image from a path, an :class:`spineai.io.LabelMap` or a ``sitk.Image``.

    A ``sitk.Image`` is taken to hold canonical label values already.

    Raises:
        InputError: unreadable file, not a label map, or values that are not canonical labels.
    """
    from .. import io

    if isinstance(labels, (str, os.PathLike)):
        labels = io.read_labelmap(labels)
    if isinstance(labels, io.LabelMap):
        return labels.canonical().image
    if isinstance(labels, sitk.Image):
        if labels.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(
                "The label map has more than one value per voxel.", "pass a scalar integer label map"
            )
        if labels.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
            arr = sitk.GetArrayViewFromImage(labels)
            if not np.all(arr == np.rint(arr)):
                raise InputError(
                    "The label map holds fractional values; it looks like an image, not labels.",
                    "pass the segmentation (integer labels), not the CT",
                )
            labels = sitk.Cast(labels, sitk.sitkUInt16)
        values = np.unique(sitk.GetArrayViewFromImage(labels))
        from ..anatomy import BY_LABEL

        unknown = [int(v) for v in values if v != 0 and int(v) not in BY_LABEL]
        if unknown:
            raise InputError(
                f"Label values {unknown[:12]} are not canonical SpineAI labels.",
                "read the file with spineai.io.read_labelmap (it converts other conventions), or pass a LabelMap",
            )
        return labels
    raise InputError(
        f"Cannot use {type(labels).__name__} as a label map.",
        "pass a file path, a spineai.io.LabelMap or a SimpleITK image",
    )


def parse_level(level: str) -> tuple[str, str, str]:
    """``"L5-S1"`` (also ``"L5/S1"``, ``"l5s1"``) -> ``("L5-S1", "L5", "S1")``.

    Raises:
        InputError: not two vertebra names, or not adjacent vertebrae.
    """
    text = str(level).strip().upper().replace("/", "-").replace("_", "-").replace(" ", "")
    if "-" not in text:
        for i in range(2, len(text)):
            if text[:i] in SPINE_ORDER and text[i:] in SPINE_ORDER:
                text = f"{text[:i]}-{text[i:]}"
                break
    parts = text.split("-")
    fix = "name a level by its two vertebrae, e.g. L4-L5 or L5-S1"
    if len(parts) != 2 or any(p not in SPINE_ORDER for p in parts):
        raise InputError(f"'{level}' is not a spinal level.", fix)
    upper, lower = parts
    if SPINE_ORDER.index(lower) <= SPINE_ORDER.index(upper):
        raise InputError(f"Level '{level}': {lower} is not below {upper}.", fix)
    return f"{upper}-{lower}", upper, lower


def _check_sides(sides: Sequence[str]) -> list[str]:
    out = []
    for s in sides:
        if s not in SIDES:
            raise InputError(
                f"Side '{s}' is not 'left' or 'right'.", "use --sides left right (the patient's sides)"
            )
        if s not in out:
            out.append(s)
    if not out:
        raise InputError("No side was requested.", "ask for 'left', 'right' or both")
    return out


def _touches_end(vol: LabelVolume, name: str, caudal: bool) -> bool:
    """Whether structure ``name`` reaches the image's caudal (or cranial) end."""
    ijk = vol.ijk(name)
    if len(ijk) == 0:
        return False
    z_of_axis = vol.direction[2, :]  # LPS z component of each index axis
    axis = int(np.argmax(np.abs(z_of_axis)))
    towards_caudal_is_low_index = z_of_axis[axis] > 0
    at_low = bool(ijk[:, axis].min() == 0)
    at_high = bool(ijk[:, axis].max() == vol.shape_xyz[axis] - 1)
    if caudal:
        return at_low if towards_caudal_is_low_index else at_high
    return at_high if towards_caudal_is_low_index else at_low


def _absent_status(
    vol: LabelVolume, level: str, upper: str, lower: str, missing: list[str]
) -> tuple[str, str]:
    """Status and message of a foramen whose structures are partly absent.

    A missing vertebra is outside the field of view when nothing of the level is labelled, or when the
    vertebra next to it reaches the image's end on its side (cranial for a missing upper vertebra,
    caudal for a missing lower one).
    """
    vert_missing = [v for v in (upper, lower) if v in missing]
    if vert_missing:
        present = [v for v in (upper, lower) if v not in missing]
        if not present:
            return (
                "outside_field_of_view",
                f"{level} is outside the field of view: {' and '.join(vert_missing)} "
                f"{'is' if len(vert_missing) == 1 else 'are'} not in the label map",
            )
        other = present[0]
        caudal = vert_missing[0] == lower  # the missing vertebra lies below the present one
        if _touches_end(vol, other, caudal=caudal):
            return (
                "outside_field_of_view",
                f"{level} is outside the field of view: {vert_missing[0]} is not in the label map and {other} "
                f"reaches the {'caudal' if caudal else 'cranial'} end of the image",
            )
    return "missing_structures", f"{level}: the label map has no {', '.join(missing)}"


# ======================================================================================== measurement
def view_assessment(
    parts: ForamenParts, view_lps: np.ndarray, occluders: Occluders, name: str, n: int = REPORT_SAMPLES
) -> dict[str, ViewAssessment]:
    """Both triangles of a foramen under ``view_lps`` with their accessible windows."""
    v = unit(view_lps)
    tris = triangles_in_view(parts, v)
    ob, ti = level_angles(parts, v)
    pob, pti = carm.angles_from_direction(v, parts.side)
    out = {}
    for kind in KINDS:
        tri = tris[kind]
        win = accessible_window(tri, occluders, n=n)
        out[kind] = ViewAssessment(
            name=name,
            oblique_deg=ob,
            tilt_deg=ti,
            patient_oblique_deg=pob,
            patient_tilt_deg=pti,
            direction_lps=v,
            vertices_lps_mm=tri.vertices_lps,
            area_mm2=tri.area_mm2,
            degenerate=tri.degenerate,
            window=win,
            triangle=tri,
        )
    return out


def resolve_view(parts: ForamenParts, view: Any) -> tuple[np.ndarray, str]:
    """LPS direction and name of a requested view.

    Args:
        view: ``None``/``"standard"`` (25 degree oblique, no tilt), ``"reference"``, ``(oblique_deg,
            tilt_deg)`` in the level's frame, or an LPS direction (3,) from the skin toward the target.

    Raises:
        InputError: anything else.
    """
    if view is None or (isinstance(view, str) and view == "standard"):
        return level_view(parts, carm.STANDARD_OBLIQUE_DEG, 0.0), "standard"
    if isinstance(view, str) and view == "reference":
        return reference_view(parts), "reference"
    arr = np.asarray(view, dtype=float) if not isinstance(view, str) else np.zeros(0)
    if arr.shape == (2,):
        return level_view(parts, float(arr[0]), float(arr[1])), "requested"
    if arr.shape == (3,) and np.all(np.isfinite(arr)) and np.linalg.norm(arr) > 0:
        return unit(arr), "requested"
    raise InputError(
        f"View {view!r} is not understood.",
        "pass None or 'standard', 'reference', (oblique_deg, tilt_deg) or an LPS direction (x, y, z)",
    )


def _triangle_record(parts: ForamenParts, tri: TriangleInView) -> TriangleMeasurement:
    return TriangleMeasurement(
        level=parts.level,
        side=parts.side,
        kind=tri.kind,
        vertex_names=tri.vertex_names,
        vertices_lps_mm=tri.vertices_lps,
        area_mm2=tri.area_mm2,
        degenerate=tri.degenerate,
        plane_point_lps=tri.origin,
        plane_normal_lps=tri.view,
        image_axes_lps={"lateral": tri.lateral, "up": tri.up},
        edges=[e.to_dict() for e in tri.edges],
        reference=tri,
    )


def measure_triangles(
    labels: Any,
    ct: Any = None,
    levels: Sequence[str] = ("L4-L5", "L5-S1"),
    sides: Sequence[str] = ("left", "right"),
    view: Any = None,
) -> TriangleMeasurements:
    """Measure Kambin's and the safe triangle on a canonical label map (LPS, mm).

    Args:
        labels: canonical label map: file path (with its sidecar, or a ``.seg.nrrd``),
            :class:`spineai.io.LabelMap` or ``sitk.Image`` of canonical values.
        ct: optional CT on the same grid (path or ``sitk.Image``, HU); kept for the needle planner (skin)
            and the radiograph renderings.
        levels: levels to measure, e.g. ``("L4-L5", "L5-S1")``.
        sides: ``"left"`` and/or ``"right"`` (the patient's sides).
        view: view under which the accessible window is measured: ``None`` (standard 25 degree oblique,
            no tilt), ``"reference"``, ``(oblique_deg, tilt_deg)`` in the level's frame, or an LPS direction.

    Returns:
        :class:`TriangleMeasurements` with one entry per level and side; foramina that cannot be measured
        carry a status and a message instead of triangles (and a line in ``warnings``).

    Raises:
        InputError: unreadable or non-canonical label map, a CT on another grid, unknown level or side
            names, or a view that is not understood.
    """
    image = load_labels(labels)
    vol = LabelVolume(image)
    from .. import io

    ct_img = io.ct_on_label_grid(ct, image, resample=False)
    parsed = [parse_level(lv) for lv in levels]
    side_list = _check_sides(sides)
    for level, upper, lower in parsed:
        unknown = [
            n
            for n in (disc_name(upper, lower), f"root_{upper}_left", f"root_{lower}_left")
            if n not in BY_NAME
        ]
        if unknown:
            supported = [
                f"{u}-{lo}"
                for u, lo in zip(SPINE_ORDER, SPINE_ORDER[1:], strict=False)
                if all(n in BY_NAME for n in (disc_name(u, lo), f"root_{u}_left", f"root_{lo}_left"))
            ]
            raise InputError(
                f"Triangles cannot be measured at {level}: SpineAI has no {', '.join(unknown)} structure.",
                f"measure one of {', '.join(supported)}",
            )
    results: list[ForamenMeasurement] = []
    warn: list[str] = []
    caches: dict[str, dict] = {}
    for level, upper, lower in parsed:
        disc_above = None
        above = vertebra_above(upper)
        if above is not None:
            disc_above = disc_name(above, upper)
            if disc_above not in BY_NAME:
                disc_above = None
        for side in side_list:
            fm = ForamenMeasurement(level=level, side=side, status="ok")
            needed = [upper, lower, disc_name(upper, lower), f"root_{upper}_{side}", f"root_{lower}_{side}"]
            missing = [n for n in needed if vol.count(n) == 0]
            if missing:
                fm.status, fm.message = _absent_status(vol, level, upper, lower, missing)
                if fm.status == "missing_structures":
                    fm.message = f"{level} {side}: the label map has no {', '.join(missing)}"
            if fm.ok:
                try:
                    fm.parts = foramen_parts(
                        vol, upper, lower, side, disc_above=disc_above, cache=caches.setdefault(level, {})
                    )
                    fm.notes.extend(fm.parts.notes)
                except PartError as exc:
                    fm.status, fm.message = exc.status, str(exc)
                except (ValueError, np.linalg.LinAlgError) as exc:  # degenerate geometry of a corrupt map
                    fm.status, fm.message = "failed", f"{level} {side}: {exc}"
            results.append(fm)
    good = [f for f in results if f.ok]
    occluders = Occluders(vol, body_frames([f.parts for f in good])) if good else None
    for fm in good:
        parts = fm.parts
        assert parts is not None
        ref = triangles_in_view(parts, reference_view(parts))
        corners = np.vstack([t.vertices_lps for t in ref.values()])
        if not np.all(vol.contains(corners)):
            fm.status = "outside_field_of_view"
            fm.message = f"{fm.level} {fm.side}: the triangles reach beyond the edge of the image"
            continue
        for kind in KINDS:
            fm.triangles[kind] = _triangle_record(parts, ref[kind])
        v, name = resolve_view(parts, view)
        assessed = view_assessment(parts, v, occluders, name)
        for kind in KINDS:
            fm.triangles[kind].view = assessed[kind]
            if ref[kind].degenerate:
                fm.notes.append(
                    f"{KIND_TITLES[kind]} triangle is degenerate in the reference view (the exiting "
                    "root touches the " + ("endplate" if kind == "kambin" else "pedicle") + ")"
                )
    for fm in results:
        if not fm.ok:
            warn.append(f"{fm.level} {fm.side} not measured ({fm.status}): {fm.message}")
    if warn and not any(f.ok for f in results):
        warnings.warn("no level could be measured: " + "; ".join(warn), stacklevel=2)
    return TriangleMeasurements(
        foramina=results,
        warnings=warn,
        spacing_mm=tuple(vol.spacing.tolist()),
        volume=vol,
        occluders=occluders,
        ct=ct_img,
    )
