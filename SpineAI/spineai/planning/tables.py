"""Measurement table: one row per level, side and triangle (tab-separated, opens in Slicer and spreadsheets).

Columns (areas mm2, lengths mm, angles degrees; C-arm angles in the level's frame, ``patient_*`` in the
patient's LPS frame; empty cells where a value does not apply):

``level side triangle status area_mm2 degenerate standard_window_mm2 standard_visible_fraction
standard_usable standard_blocked_by best_oblique_deg best_tilt_deg best_patient_oblique_deg
best_patient_tilt_deg best_area_mm2 best_window_mm2 usable_view blocked_reason path_length_mm
reaches_90mm_needle angle_to_axial_deg angle_to_sagittal_deg min_distance_nerve_mm min_distance_bone_mm
crossed path_safe recommended message``
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..outputs import write_text
from .triangles import KINDS, TriangleMeasurements

COLUMNS = (
    "level",
    "side",
    "triangle",
    "status",
    "area_mm2",
    "degenerate",
    "standard_window_mm2",
    "standard_visible_fraction",
    "standard_usable",
    "standard_blocked_by",
    "best_oblique_deg",
    "best_tilt_deg",
    "best_patient_oblique_deg",
    "best_patient_tilt_deg",
    "best_area_mm2",
    "best_window_mm2",
    "usable_view",
    "blocked_reason",
    "path_length_mm",
    "reaches_90mm_needle",
    "angle_to_axial_deg",
    "angle_to_sagittal_deg",
    "min_distance_nerve_mm",
    "min_distance_bone_mm",
    "crossed",
    "path_safe",
    "recommended",
    "message",
)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v).replace("\t", " ").replace("\n", " ")


def table_rows(result: TriangleMeasurements) -> list[dict[str, Any]]:
    """The table as a list of dictionaries (keys = :data:`COLUMNS`)."""
    rows: list[dict[str, Any]] = []
    for fm in result.foramina:
        for kind in KINDS:
            row: dict[str, Any] = {c: None for c in COLUMNS}
            row.update(level=fm.level, side=fm.side, triangle=kind, status=fm.status, message=fm.message)
            tri = fm.triangles.get(kind)
            if tri is not None:
                row.update(
                    area_mm2=tri.area_mm2,
                    degenerate=tri.degenerate,
                    usable_view=tri.usable_view,
                    blocked_reason=tri.blocked_reason,
                )
                std = tri.standard_view or tri.view
                if std is not None:
                    row.update(
                        standard_window_mm2=std.window_mm2,
                        standard_visible_fraction=std.window.visible_fraction,
                        standard_usable=std.usable,
                        standard_blocked_by=", ".join(
                            f"{k} {v:.0%}" for k, v in std.window.blocked_by.items()
                        ),
                    )
                best = tri.best_view
                if best is not None:
                    row.update(
                        best_oblique_deg=best.oblique_deg,
                        best_tilt_deg=best.tilt_deg,
                        best_patient_oblique_deg=best.patient_oblique_deg,
                        best_patient_tilt_deg=best.patient_tilt_deg,
                        best_area_mm2=best.area_mm2,
                        best_window_mm2=best.window_mm2,
                    )
            path = fm.paths.get(kind)
            if path is not None:
                row.update(
                    path_length_mm=path.length_mm,
                    reaches_90mm_needle=path.reaches_with_standard_needle,
                    angle_to_axial_deg=path.angle_to_axial_deg,
                    angle_to_sagittal_deg=path.angle_to_sagittal_deg,
                    min_distance_nerve_mm=path.min_distance_nerve_mm,
                    min_distance_bone_mm=path.min_distance_bone_mm,
                    crossed=", ".join(path.crossed),
                    path_safe=path.safe,
                    recommended=fm.recommended == kind,
                )
            rows.append(row)
    return rows


def table_text(result: TriangleMeasurements) -> str:
    """The table as tab-separated text with a header line."""
    lines = ["\t".join(COLUMNS)]
    for row in table_rows(result):
        lines.append("\t".join(_fmt(row[c]) for c in COLUMNS))
    return "\n".join(lines) + "\n"


def write_table(result: TriangleMeasurements, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write :func:`table_text` to ``path`` (``.tsv``) atomically."""
    return write_text(path, table_text(result), overwrite=overwrite)
