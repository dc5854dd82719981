"""Kambin's and the safe triangle from label maps, the best C-arm view and the needle path (LPS, mm).

>>> from spineai.planning import plan_case, write_case_outputs  # doctest: +SKIP
>>> result = plan_case("case01-seg/labels.nii.gz", ct="case01/ct.nii.gz", levels=["L5-S1"])  # doctest: +SKIP
>>> result.get("L5-S1", "left").triangles["safe"].area_mm2  # doctest: +SKIP

Modules: :mod:`~spineai.planning.parts` (borders derived from the label map), :mod:`~.construct` (the
triangles in any view), :mod:`~.window` (accessible window by ray casting), :mod:`~.triangles`
(:func:`measure_triangles`), :mod:`~.views` (C-arm view search), :mod:`~.needle` (needle paths),
:mod:`~.markups`, :mod:`~.tables`, :mod:`~.drr`, :mod:`~.render3d` (outputs), :mod:`~.case` and
:mod:`~.cli`. See ``docs/planning.md``.
"""

from __future__ import annotations

from .case import plan_case, write_case_outputs
from .construct import level_angles, level_view, reference_view, triangles_in_view
from .markups import build_markups, validate_markups, write_markups
from .needle import NEEDLE_LENGTH_MM, NeedlePath, plan_paths
from .tables import table_rows, write_table
from .triangles import (
    ForamenMeasurement,
    TriangleMeasurement,
    TriangleMeasurements,
    ViewAssessment,
    measure_triangles,
    parse_level,
)
from .views import search_views
from .window import NEEDLE_DIAMETER_MM, USABLE_WINDOW_MM2, Window

__all__ = [
    "NEEDLE_DIAMETER_MM",
    "NEEDLE_LENGTH_MM",
    "USABLE_WINDOW_MM2",
    "ForamenMeasurement",
    "NeedlePath",
    "TriangleMeasurement",
    "TriangleMeasurements",
    "ViewAssessment",
    "Window",
    "build_markups",
    "level_angles",
    "level_view",
    "measure_triangles",
    "parse_level",
    "plan_case",
    "plan_paths",
    "reference_view",
    "search_views",
    "table_rows",
    "triangles_in_view",
    "validate_markups",
    "write_case_outputs",
    "write_markups",
    "write_table",
]
