"""3D Slicer markups (``.mrk.json``) of the triangles and needle paths, in LPS.

The file follows Slicer's markups schema v1.0.3
(``Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json`` in Slicer's source): an
``@schema`` string and a ``markups`` array; each markup has a ``type`` (``ClosedCurve`` for a triangle,
``Line`` for a needle path, ``Fiducial`` for its entry and target points), a ``name``,
``coordinateSystem: "LPS"`` (allowed by the schema; Slicer converts to its RAS world on loading),
``coordinateUnits: "mm"``, ``controlPoints`` with 3-number ``position`` arrays and ``positionStatus``
``"defined"``, a ``display`` block (colours in 0..1) and, for triangles, an area ``measurement``
(``mm2``; named ``area`` like the closed curve's own area measurement, which Slicer recomputes from the
points and which agrees, the triangle being flat). Slicer loads every markup of the file as its own node,
named by ``name`` (``vtkSlicerMarkupsLogic::LoadMarkups``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..outputs import write_json
from .triangles import TriangleMeasurements

SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/"
    "markups-schema-v1.0.3.json#"
)
MARKUP_TYPES = ("Fiducial", "Line", "Angle", "Curve", "ClosedCurve", "Plane", "ROI")
GLYPH_TYPES = (
    "Vertex2D",
    "Dash2D",
    "Cross2D",
    "ThickCross2D",
    "Triangle2D",
    "Square2D",
    "Circle2D",
    "Diamond2D",
    "Arrow2D",
    "ThickArrow2D",
    "HookedArrow2D",
    "StarBurst2D",
    "Sphere3D",
    "Diamond3D",
)
POSITION_STATUS = ("undefined", "preview", "defined")
COLOURS = {
    "kambin": (0.2, 0.8, 0.3),
    "safe": (0.2, 0.55, 1.0),
    "needle": (1.0, 0.25, 0.2),
    "kambin_view": (0.55, 0.95, 0.6),
    "safe_view": (0.55, 0.8, 1.0),
}


def _point(label: str, pos: np.ndarray, description: str = "") -> dict[str, Any]:
    return {
        "id": label,
        "label": label,
        "description": description,
        "associatedNodeID": "",
        "position": [round(float(x), 4) for x in pos],
        "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
        "selected": True,
        "locked": True,
        "visibility": True,
        "positionStatus": "defined",
    }


def _display(
    colour: tuple[float, float, float], glyph: str = "Sphere3D", labels: bool = True
) -> dict[str, Any]:
    return {
        "visibility": True,
        "opacity": 1.0,
        "color": list(colour),
        "selectedColor": list(colour),
        "activeColor": [0.4, 1.0, 0.0],
        "propertiesLabelVisibility": True,
        "pointLabelsVisibility": labels,
        "textScale": 3.0,
        "glyphType": glyph,
        "glyphScale": 1.5,
        "glyphSize": 5.0,
        "useGlyphScale": True,
        "sliceProjection": False,
        "lineThickness": 0.2,
        "snapMode": "unconstrained",
    }


def _markup(
    kind: str,
    name: str,
    points: list[dict[str, Any]],
    colour: tuple[float, float, float],
    measurements: list[dict[str, Any]] | None = None,
    description: str = "",
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": kind,
        "name": name,
        "coordinateSystem": "LPS",
        "coordinateUnits": "mm",
        "locked": True,
        "fixedNumberOfControlPoints": True,
        "labelFormat": "%N-%d",
        "controlPoints": points,
        "measurements": measurements or [],
        "display": _display(colour, labels=kind != "ClosedCurve"),
    }
    if description:
        out["description"] = description
    return out


def _area(value: float, description: str) -> dict[str, Any]:
    return {
        "name": "area",
        "enabled": True,
        "value": round(float(value), 4),
        "units": "mm2",
        "description": description,
        "printFormat": "%-#4.4g%s",
    }


def build_markups(result: TriangleMeasurements, include_view_triangles: bool = True) -> dict[str, Any]:
    """The markups JSON (a dict) of every measured triangle and planned path.

    Per foramen: a ``ClosedCurve`` per triangle in the reference view (``"Kambin L5-S1 left"``, with its
    true area), optionally the same triangle in its best C-arm view (``"Kambin L5-S1 left (C-arm view)"``,
    with its area there and its accessible window), and per needle path a ``Line`` (``"Needle L5-S1 left (safe)"``, entry ->
    target) and a ``Fiducial`` list with the two points (``"Entry/target L5-S1 left (safe)"``).
    """
    markups: list[dict[str, Any]] = []
    for fm in result.measured:
        for kind, tri in fm.triangles.items():
            pts = [_point(n, p) for n, p in zip(tri.vertex_names, tri.vertices_lps_mm, strict=True)]
            markups.append(
                _markup(
                    "ClosedCurve",
                    tri.name,
                    pts,
                    COLOURS[kind],
                    [_area(tri.area_mm2, "true area (reference posteroanterior view)")],
                )
            )
            best = tri.best_view or tri.view
            if include_view_triangles and best is not None and not best.degenerate:
                pts = [_point(n, p) for n, p in zip(tri.vertex_names, best.vertices_lps_mm, strict=True)]
                desc = (
                    f"oblique {best.oblique_deg:.1f} deg, tilt {best.tilt_deg:+.1f} deg (level frame); "
                    f"accessible window {best.window_mm2:.1f} mm2"
                )
                markups.append(
                    _markup(
                        "ClosedCurve",
                        f"{tri.name} (C-arm view)",
                        pts,
                        COLOURS[f"{kind}_view"],
                        [
                            _area(best.area_mm2, "triangle area in this C-arm view"),
                            {
                                "name": "accessible window",
                                "enabled": True,
                                "value": round(float(best.window_mm2), 4),
                                "units": "mm2",
                                "description": "part a straight needle along the view reaches",
                            },
                        ],
                        desc,
                    )
                )
        for _kind, path in fm.paths.items():
            line = [
                _point("entry", path.entry_lps, "skin entry"),
                _point("target", path.target_lps, "needle tip"),
            ]
            recommended = " recommended" if fm.recommended == path.kind else ""
            desc = (
                f"{path.length_mm:.1f} mm; oblique {path.oblique_deg:.1f}, tilt {path.tilt_deg:+.1f} deg; "
                f"{'safe' if path.safe else 'blocked'}{recommended}"
            )
            markups.append(
                _markup(
                    "Line",
                    path.name,
                    line,
                    COLOURS["needle"],
                    [{"name": "length", "enabled": True, "value": round(path.length_mm, 3), "units": "mm"}],
                    desc,
                )
            )
            fid_name = path.name.replace("Needle", "Entry/target")
            markups.append(
                _markup(
                    "Fiducial",
                    fid_name,
                    [
                        _point("entry", path.entry_lps, "skin entry"),
                        _point("target", path.target_lps, "needle tip"),
                    ],
                    COLOURS["needle"],
                    description=desc,
                )
            )
    return {"@schema": SCHEMA, "markups": markups}


def write_markups(result: TriangleMeasurements, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write :func:`build_markups` to ``path`` (``.mrk.json``), atomically; validated first."""
    data = build_markups(result)
    validate_markups(data)
    return write_json(path, data, overwrite=overwrite)


# ------------------------------------------------------------------------------------------- validation
def _fail(where: str, what: str) -> None:
    raise InputError(
        f"Markups JSON {where}: {what}.", "write markups with spineai.planning.markups.build_markups"
    )


def _vector(v: Any, n: int, where: str, lo: float | None = None, hi: float | None = None) -> None:
    if (
        not isinstance(v, list)
        or len(v) != n
        or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
    ):
        _fail(where, f"must be a list of {n} numbers")
    if lo is not None and any(x < lo or x > hi for x in v):  # type: ignore[operator]
        _fail(where, f"values must lie in {lo}..{hi}")


def validate_markups(data: Any) -> None:
    """Check a markups document against the rules of Slicer's schema v1.0.3 (the parts used here).

    Checked: ``@schema`` (Slicer accepts ``markups-schema-v1.<minor>.<patch>.json``), ``markups`` array;
    per markup: ``type`` in the schema's enum, ``name`` string, ``coordinateSystem`` LPS/RAS,
    ``coordinateUnits`` ``mm``/``um`` or a 3-string code, booleans, ``controlPoints`` objects with
    3-number positions, 9-number orientations and a valid ``positionStatus``; ``display`` colours in 0..1,
    opacity in 0..1, a valid ``glyphType`` and ``snapMode``; ``measurements`` objects with string names
    and numeric values.

    Raises:
        InputError: naming the first rule broken.
    """
    import re

    if not isinstance(data, dict):
        _fail("document", "is not an object")
    for key in ("@schema", "markups"):
        if key not in data:
            _fail("document", f"has no '{key}'")
    if not isinstance(data["@schema"], str) or not re.search(
        r"markups-schema-v1\.[0-9]+\.[0-9]+\.json#*$", data["@schema"].lower()
    ):
        _fail("@schema", "is not a markups-schema-v1.x.y.json URL")
    if not isinstance(data["markups"], list):
        _fail("markups", "is not an array")
    for i, m in enumerate(data["markups"]):
        w = f"markups[{i}]"
        if not isinstance(m, dict) or "type" not in m:
            _fail(w, "has no 'type'")
        if m["type"] not in MARKUP_TYPES:
            _fail(f"{w}.type", f"'{m['type']}' is not one of {', '.join(MARKUP_TYPES)}")
        if "name" in m and not isinstance(m["name"], str):
            _fail(f"{w}.name", "is not a string")
        if m.get("coordinateSystem", "LPS") not in ("LPS", "RAS"):
            _fail(f"{w}.coordinateSystem", "must be LPS or RAS")
        units = m.get("coordinateUnits", "mm")
        if not (
            units in ("mm", "um")
            or (isinstance(units, list) and len(units) == 3 and all(isinstance(u, str) for u in units))
        ):
            _fail(f"{w}.coordinateUnits", "must be 'mm', 'um' or a 3-string code")
        for key in ("locked", "fixedNumberOfControlPoints"):
            if key in m and not isinstance(m[key], bool):
                _fail(f"{w}.{key}", "is not a boolean")
        cps = m.get("controlPoints", [])
        if not isinstance(cps, list):
            _fail(f"{w}.controlPoints", "is not an array")
        for j, cp in enumerate(cps):
            wc = f"{w}.controlPoints[{j}]"
            if not isinstance(cp, dict):
                _fail(wc, "is not an object")
            if "position" in cp:
                _vector(cp["position"], 3, f"{wc}.position")
            if "orientation" in cp:
                _vector(cp["orientation"], 9, f"{wc}.orientation")
            if cp.get("positionStatus", "defined") not in POSITION_STATUS:
                _fail(f"{wc}.positionStatus", f"must be one of {', '.join(POSITION_STATUS)}")
            for key in ("id", "label", "description", "associatedNodeID"):
                if key in cp and not isinstance(cp[key], str):
                    _fail(f"{wc}.{key}", "is not a string")
            for key in ("selected", "locked", "visibility"):
                if key in cp and not isinstance(cp[key], bool):
                    _fail(f"{wc}.{key}", "is not a boolean")
        disp = m.get("display", {})
        if not isinstance(disp, dict):
            _fail(f"{w}.display", "is not an object")
        for key in ("color", "selectedColor", "activeColor", "sliceProjectionColor"):
            if key in disp:
                _vector(disp[key], 3, f"{w}.display.{key}", 0.0, 1.0)
        for key in ("opacity", "sliceProjectionOpacity"):
            if key in disp and not 0.0 <= float(disp[key]) <= 1.0:
                _fail(f"{w}.display.{key}", "must lie in 0..1")
        if "glyphType" in disp and disp["glyphType"] not in GLYPH_TYPES:
            _fail(f"{w}.display.glyphType", f"'{disp['glyphType']}' is not a glyph type of the schema")
        if "snapMode" in disp and disp["snapMode"] not in ("unconstrained", "toVisibleSurface"):
            _fail(f"{w}.display.snapMode", "must be 'unconstrained' or 'toVisibleSurface'")
        for key in ("textScale", "glyphScale", "glyphSize", "lineThickness"):
            if key in disp and (not isinstance(disp[key], (int, float)) or disp[key] < 0):
                _fail(f"{w}.display.{key}", "must be a number >= 0")
        meas = m.get("measurements", [])
        if not isinstance(meas, list):
            _fail(f"{w}.measurements", "is not an array")
        for j, me in enumerate(meas):
            if not isinstance(me, dict) or not isinstance(me.get("name", ""), str):
                _fail(f"{w}.measurements[{j}]", "needs a string 'name'")
            if "value" in me and (not isinstance(me["value"], (int, float)) or isinstance(me["value"], bool)):
                _fail(f"{w}.measurements[{j}].value", "is not a number")
            if "enabled" in me and not isinstance(me["enabled"], bool):
                _fail(f"{w}.measurements[{j}].enabled", "is not a boolean")
