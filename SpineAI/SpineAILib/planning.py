"""The engine's triangle measurements and needle plans, made ready for Slicer nodes.

``spineai measure`` and ``spineai plan`` write (see ``spineai.planning.case``):

- ``planning.mrk.json``: Slicer markups in **LPS** (``coordinateSystem: "LPS"``): per level and side a
  ``ClosedCurve`` per triangle (``"Kambin L5-S1 left"``, its true area), the same triangle seen in its best
  C-arm view (``"... (C-arm view)"``), a ``Line`` per needle path (``"Needle L5-S1 left (safe)"``, entry ->
  target) and a ``Fiducial`` list with the entry and target points (``"Entry/target L5-S1 left (safe)"``);
- ``measurements.json``: everything, LPS mm, including each triangle's best view direction (skin -> target);
- ``measurements.tsv``: one row per level, side and triangle (areas mm2, angles degrees, clearances mm).

This module turns them into what the Slicer module needs, without Slicer: control points in **RAS** (Slicer's
world frame: x and y change sign), one :class:`MarkupSpec` per node, the C-arm views of the measured
triangles, and the 3D camera that looks along a view (:func:`carm_camera_pose`).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .frames import lps_to_ras, lps_to_ras_vectors

#: markup type in the file -> Slicer node class
NODE_CLASSES: dict[str, str] = {
    "Fiducial": "vtkMRMLMarkupsFiducialNode",
    "Line": "vtkMRMLMarkupsLineNode",
    "Angle": "vtkMRMLMarkupsAngleNode",
    "Curve": "vtkMRMLMarkupsCurveNode",
    "ClosedCurve": "vtkMRMLMarkupsClosedCurveNode",
}
#: default distance of the 3D camera from its focal point along the view (mm): the lumbosacral region fills
#: the view at Slicer's default 30 degree view angle
DEFAULT_CAMERA_DISTANCE_MM = 350.0

_NAME_RE = re.compile(
    r"^(?P<what>Kambin|Safe|Needle|Entry/target)\s+(?P<level>[TLS]\d{1,2}-[TLS]\d{1,2})\s+(?P<side>left|right)"
    r"(?:\s+\((?P<kind>kambin|safe)\))?(?P<view>\s+\(C-arm view\))?$"
)


@dataclass(frozen=True)
class MarkupSpec:
    """One markups node to create.

    Attributes:
        markup_type: ``"ClosedCurve"``, ``"Line"``, ``"Fiducial"``, ... (the file's ``type``).
        name: node name, as the engine wrote it.
        points_ras: control points, shape ``(N, 3)``, mm, RAS.
        point_labels: one label per control point (``"apex"``, ``"entry"``, ...).
        point_descriptions: one description per control point.
        colour: display colour, 0..1 per channel.
        description: what the markup shows (view angles, needle length, ...).
        measurements: ``{name: (value, unit)}`` the engine computed (e.g. ``"area": (43.6, "mm2")``).
        role: ``"triangle"``, ``"triangle_view"``, ``"needle"``, ``"entry_target"`` or ``"other"``.
        triangle: ``"kambin"`` or ``"safe"`` ("" when not about one triangle).
        level: e.g. ``"L5-S1"`` ("" when the name does not say).
        side: ``"left"`` or ``"right"`` ("" when the name does not say).
    """

    markup_type: str
    name: str
    points_ras: np.ndarray
    point_labels: tuple[str, ...]
    point_descriptions: tuple[str, ...]
    colour: tuple[float, float, float]
    description: str = ""
    measurements: dict[str, tuple[float, str]] = field(default_factory=dict)
    role: str = "other"
    triangle: str = ""
    level: str = ""
    side: str = ""

    @property
    def node_class(self) -> str:
        """The Slicer node class to create (``vtkMRMLMarkupsClosedCurveNode`` for a triangle)."""
        return NODE_CLASSES[self.markup_type]


def _fail(source: str, where: str, what: str) -> None:
    raise ValueError(
        f"{source}, {where}: {what}. The file must be the planning.mrk.json written by 'spineai measure' or "
        "'spineai plan'; run the command again."
    )


def _classify(name: str) -> tuple[str, str, str, str]:
    """``(role, triangle, level, side)`` from an engine markup name."""
    m = _NAME_RE.match(name.strip())
    if not m:
        return "other", "", "", ""
    what = m.group("what")
    if what in ("Kambin", "Safe"):
        return (
            ("triangle_view" if m.group("view") else "triangle"),
            what.lower(),
            m.group("level"),
            m.group("side"),
        )
    role = "needle" if what == "Needle" else "entry_target"
    return role, m.group("kind") or "", m.group("level"), m.group("side")


def parse_markups(data: Mapping[str, Any], source: str = "planning.mrk.json") -> list[MarkupSpec]:
    """Every markup of a Slicer markups document as a :class:`MarkupSpec` with RAS control points.

    Args:
        data: the decoded ``.mrk.json``.
        source: where it came from, for error messages.

    Raises:
        ValueError: naming the markup and what is wrong (unknown type, a point that is not three finite
            numbers, a coordinate system other than LPS/RAS, units other than mm).
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("markups"), list):
        _fail(source, "document", "has no 'markups' list")
    specs = []
    for i, m in enumerate(data["markups"]):
        where = f"markups[{i}]"
        if not isinstance(m, Mapping):
            _fail(source, where, "is not an object")
        kind = m.get("type")
        if kind not in NODE_CLASSES:
            _fail(source, where, f"type {kind!r} is not one of {', '.join(NODE_CLASSES)}")
        name = str(m.get("name") or f"{kind} {i + 1}")
        frame = m.get("coordinateSystem", "LPS")
        if frame not in ("LPS", "RAS"):
            _fail(source, where, f"coordinateSystem {frame!r} is not LPS or RAS")
        if m.get("coordinateUnits", "mm") != "mm":
            _fail(source, where, f"coordinateUnits {m.get('coordinateUnits')!r} is not mm")
        points = m.get("controlPoints", [])
        if not isinstance(points, list) or not points:
            _fail(source, where, "has no control points")
        positions, labels, descriptions = [], [], []
        for j, cp in enumerate(points):
            pos = cp.get("position") if isinstance(cp, Mapping) else None
            if (
                not isinstance(pos, list)
                or len(pos) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pos)
                or not all(math.isfinite(v) for v in pos)
            ):
                _fail(source, f"{where}.controlPoints[{j}]", "position is not three finite numbers (mm)")
            positions.append([float(v) for v in pos])
            labels.append(str(cp.get("label") or f"{j + 1}"))
            descriptions.append(str(cp.get("description") or ""))
        arr = np.asarray(positions, dtype=float)
        ras = lps_to_ras(arr) if frame == "LPS" else arr
        colour = (m.get("display") or {}).get("color", (1.0, 1.0, 0.0))
        measurements = {}
        for me in m.get("measurements") or []:
            if isinstance(me, Mapping) and isinstance(me.get("value"), (int, float)):
                measurements[str(me.get("name"))] = (float(me["value"]), str(me.get("units") or ""))
        role, triangle, level, side = _classify(name)
        specs.append(
            MarkupSpec(
                markup_type=str(kind),
                name=name,
                points_ras=np.atleast_2d(ras),
                point_labels=tuple(labels),
                point_descriptions=tuple(descriptions),
                colour=(float(colour[0]), float(colour[1]), float(colour[2])),
                description=str(m.get("description") or ""),
                measurements=measurements,
                role=role,
                triangle=triangle,
                level=level,
                side=side,
            )
        )
    return specs


def read_markups(path: str | os.PathLike) -> list[MarkupSpec]:
    """:func:`parse_markups` of a ``.mrk.json`` file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"Markups file '{p}' does not exist; check the engine log.")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"Markups file '{p}' is not valid JSON ({exc}).") from None
    return parse_markups(data, source=str(p))


# ------------------------------------------------------------------------------------------ measurements
def read_measurements(path: str | os.PathLike) -> dict[str, Any]:
    """The engine's ``measurements.json`` (format ``spineai-triangle-measurements``, LPS mm).

    Raises:
        ValueError: missing file, invalid JSON, another format or frame.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"Measurements '{p}' do not exist; check the engine log.")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"Measurements '{p}' are not valid JSON ({exc}).") from None
    if not isinstance(data, dict) or data.get("format") != "spineai-triangle-measurements":
        raise ValueError(f"'{p}' is not a SpineAI triangle measurement file; run 'spineai measure' again.")
    if data.get("frame", "LPS") != "LPS" or not isinstance(data.get("foramina"), list):
        raise ValueError(
            f"'{p}' has an unexpected layout (frame {data.get('frame')!r}); update the extension."
        )
    return data


@dataclass(frozen=True)
class CarmView:
    """The C-arm view that opens one triangle most (or the view a plan was made at).

    Attributes:
        level, side, triangle: e.g. ``"L5-S1"``, ``"left"``, ``"safe"``.
        oblique_deg, tilt_deg: angles in the level's frame (C-arm squared to the upper vertebra's inferior
            endplate): ipsilateral oblique 0..45, tilt positive = cranial; what ``spineai plan`` takes.
        patient_oblique_deg, patient_tilt_deg: the same view in the patient's LPS frame.
        direction_lps: unit line of sight from the skin toward the target (= needle direction), LPS.
        target_lps: the needle target when a path was planned, else the triangle's centroid, mm, LPS.
        window_mm2: accessible part of the triangle in this view, mm2.
        usable: the engine judged the window large enough for a needle.
        recommended: this triangle is the engine's recommended approach at this level and side.
    """

    level: str
    side: str
    triangle: str
    oblique_deg: float
    tilt_deg: float
    patient_oblique_deg: float
    patient_tilt_deg: float
    direction_lps: tuple[float, float, float]
    target_lps: tuple[float, float, float]
    window_mm2: float
    usable: bool
    recommended: bool

    @property
    def label(self) -> str:
        """One line for a list: ``"L5-S1 left, safe triangle: oblique 45, tilt +26 (window 79 mm2)"``."""
        star = ", recommended" if self.recommended else ""
        unusable = "" if self.usable else ", window too small"
        return (
            f"{self.level} {self.side}, {self.triangle} triangle: oblique {self.oblique_deg:.0f}, "
            f"tilt {self.tilt_deg:+.0f} (window {self.window_mm2:.0f} mm2{unusable}{star})"
        )


def _vec3(value: Any, what: str) -> tuple[float, float, float]:
    arr = np.asarray(value, dtype=float).reshape(-1)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} is not three finite numbers: {value!r}.")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


def carm_views(measurements: Mapping[str, Any]) -> list[CarmView]:
    """The best C-arm view of every measured triangle (for a plan: the planned view), recommended first.

    Args:
        measurements: decoded ``measurements.json``.
    """
    views = []
    for fm in measurements.get("foramina", []):
        if fm.get("status") != "ok":
            continue
        for kind, tri in (fm.get("triangles") or {}).items():
            best = tri.get("best_view") or tri.get("view")
            if not best or best.get("direction_lps") is None:
                continue
            path = (fm.get("paths") or {}).get(kind)
            if path and path.get("target_lps") is not None:
                target = _vec3(path["target_lps"], f"target of {tri.get('name', kind)}")
            else:
                target = _vec3(np.mean(np.asarray(tri["vertices_lps_mm"], dtype=float), axis=0), "centroid")
            direction = np.asarray(_vec3(best["direction_lps"], f"view of {tri.get('name', kind)}"))
            norm = float(np.linalg.norm(direction))
            if norm <= 0:
                continue
            views.append(
                CarmView(
                    level=str(fm["level"]),
                    side=str(fm["side"]),
                    triangle=str(kind),
                    oblique_deg=float(best["oblique_deg"]),
                    tilt_deg=float(best["tilt_deg"]),
                    patient_oblique_deg=float(best.get("patient_oblique_deg", best["oblique_deg"])),
                    patient_tilt_deg=float(best.get("patient_tilt_deg", best["tilt_deg"])),
                    direction_lps=_vec3(direction / norm, "direction"),
                    target_lps=target,
                    window_mm2=float(best.get("window_mm2", 0.0)),
                    usable=bool(best.get("usable", False)),
                    recommended=fm.get("recommended") == kind,
                )
            )
    views.sort(key=lambda v: (not v.recommended, not v.usable, -v.window_mm2))
    return views


def find_view(
    views: Sequence[CarmView], level: str, side: str, triangle: str | None = None
) -> CarmView | None:
    """The view of ``level``/``side`` (and ``triangle`` when given; else the recommended or widest one)."""
    for v in views:  # views are sorted recommended first, then by window
        if v.level == level and v.side == side and (triangle is None or v.triangle == triangle):
            return v
    return None


@dataclass(frozen=True)
class CameraPose:
    """A 3D camera in Slicer's RAS world (``vtkMRMLCameraNode.SetPosition/SetFocalPoint/SetViewUp``).

    Attributes:
        position: where the camera is, mm, RAS.
        focal_point: what it looks at, mm, RAS.
        view_up: unit vector shown upward on screen, RAS.
    """

    position: tuple[float, float, float]
    focal_point: tuple[float, float, float]
    view_up: tuple[float, float, float]

    @property
    def direction_of_projection(self) -> np.ndarray:
        """Unit vector from the position to the focal point, RAS."""
        d = np.asarray(self.focal_point) - np.asarray(self.position)
        return d / np.linalg.norm(d)


def carm_camera_pose(
    target_lps: Sequence[float],
    direction_lps: Sequence[float],
    distance_mm: float = DEFAULT_CAMERA_DISTANCE_MM,
    up_lps: Sequence[float] = (0.0, 0.0, 1.0),
) -> CameraPose:
    """The 3D camera that sees the target as the C-arm does: looking along the view direction.

    The engine's view direction runs from the skin toward the target (LPS); the camera's direction of
    projection is the same line, so it sits ``distance_mm`` behind the target on the skin side:
    ``position = focal point - distance * direction`` (in RAS, after converting both). Up on screen is the
    patient's superior direction (``up_lps``) made perpendicular to the view, as on a C-arm image.

    Args:
        target_lps: focal point, mm, LPS.
        direction_lps: view direction (need not be unit length), LPS.
        distance_mm: camera distance from the focal point, mm (> 0).
        up_lps: the direction to show upward, LPS (default superior).

    Raises:
        ValueError: zero or non-finite direction, non-positive distance, or ``up_lps`` along the view.
    """
    focal = lps_to_ras(np.asarray(target_lps, dtype=float))
    direction = lps_to_ras_vectors(np.asarray(direction_lps, dtype=float))
    norm = float(np.linalg.norm(direction))
    if not math.isfinite(norm) or norm <= 1e-9:
        raise ValueError(f"View direction {list(direction_lps)} has no length; it cannot orient the camera.")
    direction = direction / norm
    distance = float(distance_mm)
    if not math.isfinite(distance) or distance <= 0:
        raise ValueError(f"Camera distance must be a positive number of mm, got {distance_mm!r}.")
    up = lps_to_ras_vectors(np.asarray(up_lps, dtype=float))
    up = up - float(np.dot(up, direction)) * direction
    up_norm = float(np.linalg.norm(up))
    if up_norm <= 1e-6:
        raise ValueError("The 'up' direction lies along the view direction; choose another up vector.")
    up = up / up_norm
    position = focal - distance * direction
    return CameraPose(
        position=tuple(float(v) for v in position),  # type: ignore[arg-type]
        focal_point=tuple(float(v) for v in focal),  # type: ignore[arg-type]
        view_up=tuple(float(v) for v in up),  # type: ignore[arg-type]
    )


def summary_lines(measurements: Mapping[str, Any]) -> list[str]:
    """One plain line per level and side: triangle areas, and the recommended needle path's clearances.

    Example: ``"L5-S1 left: Kambin 43.6 mm2, safe 16.6 mm2; needle (safe) 91 mm, 3.6 mm from nerve, 4.0 mm
    from bone"``; a foramen the engine could not measure gives its reason.
    """
    lines = []
    for fm in measurements.get("foramina", []):
        head = f"{fm.get('level')} {fm.get('side')}"
        if fm.get("status") != "ok":
            lines.append(f"{head}: not measured ({fm.get('message') or fm.get('status')})")
            continue
        tris = fm.get("triangles") or {}
        areas = ", ".join(
            f"{'Kambin' if k == 'kambin' else 'safe'} {float(t['area_mm2']):.1f} mm2" for k, t in tris.items()
        )
        line = f"{head}: {areas}"
        rec = fm.get("recommended")
        path = (fm.get("paths") or {}).get(rec) if rec else None
        if path:
            line += (
                f"; needle ({rec}) {float(path['length_mm']):.0f} mm, "
                f"{float(path['min_distance_nerve_mm']):.1f} mm from nerve, "
                f"{float(path['min_distance_bone_mm']):.1f} mm from bone"
            )
        elif fm.get("recommendation"):
            line += f"; {fm['recommendation']}"
        lines.append(line)
    return lines
