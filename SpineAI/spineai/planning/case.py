"""One case from label map to plan: triangles, view search, needle paths and every output file.

Outputs of :func:`write_case_outputs` (all written atomically; an existing file is never replaced unless
``overwrite``):

* ``measurements.json``: everything (:meth:`TriangleMeasurements.to_dict`), LPS mm;
* ``measurements.tsv``: one row per level, side and triangle (:mod:`spineai.planning.tables`);
* ``planning.mrk.json``: 3D Slicer markups, triangles and needle paths (:mod:`spineai.planning.markups`);
* ``carm_<level>_<side>.png``: the C-arm view at the planned angles (DRR) with the triangles and the
  needle, and the needle in profile (:mod:`spineai.planning.drr`);
* ``render3d.png``: bones, roots, triangles and needles in 3D (:mod:`spineai.planning.render3d`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..outputs import check_writable, prepare_output_dir, write_json
from ..progress import report, track
from .needle import plan_paths
from .triangles import TriangleMeasurements, measure_triangles
from .views import search_views


def plan_case(
    labels: Any,
    ct: Any = None,
    levels: Sequence[str] = ("L4-L5", "L5-S1"),
    sides: Sequence[str] = ("left", "right"),
) -> TriangleMeasurements:
    """Measure the triangles, search the best C-arm view of each and plan the needle paths.

    Args:
        labels: canonical label map (path, :class:`spineai.io.LabelMap` or ``sitk.Image``).
        ct: optional CT on the same grid (path or ``sitk.Image``, HU): gives the skin and the DRRs.
        levels, sides: what to measure.

    Returns:
        :class:`~spineai.planning.triangles.TriangleMeasurements` with views, paths and recommendations.
    """
    report(5.0, "measuring triangles")
    result = measure_triangles(labels, ct=ct, levels=levels, sides=sides)
    report(35.0, "searching C-arm views")
    search_views(result)
    report(75.0, "planning needle paths")
    plan_paths(result)
    return result


def output_names(result: TriangleMeasurements) -> list[str]:
    """File names :func:`write_case_outputs` writes for ``result`` (with images)."""
    names = ["measurements.json", "measurements.tsv", "planning.mrk.json", "render3d.png"]
    names += [f"carm_{fm.level}_{fm.side}.png" for fm in result.measured]
    return names


def write_case_outputs(
    result: TriangleMeasurements, out_dir: str | os.PathLike, overwrite: bool = False, images: bool = True
) -> dict[str, Path]:
    """Write every output of a planned case into ``out_dir`` (see the module docstring).

    Args:
        result: output of :func:`plan_case`.
        out_dir: folder, new or empty unless ``overwrite``.
        overwrite: replace existing files of the same names (nothing else in the folder is touched).
        images: also render the C-arm PNGs and the 3D rendering (seconds per picture).

    Returns:
        name -> path of every file written.

    Raises:
        OutputExistsError: ``out_dir`` is not empty (or a file exists) and ``overwrite`` is False.
    """
    from .markups import write_markups
    from .tables import write_table

    out = prepare_output_dir(out_dir, overwrite=overwrite)
    names = output_names(result) if images else output_names(result)[:3]
    for n in names:  # refuse before writing anything
        check_writable(out / n, overwrite)
    written: dict[str, Path] = {}
    written["measurements.json"] = write_json(
        out / "measurements.json", result.to_dict(), overwrite=overwrite
    )
    written["measurements.tsv"] = write_table(result, out / "measurements.tsv", overwrite=overwrite)
    written["planning.mrk.json"] = write_markups(result, out / "planning.mrk.json", overwrite=overwrite)
    if images and result.measured:
        from .drr import render_carm_png
        from .render3d import render_case_png

        for fm in track(result.measured, desc="C-arm pictures"):
            name = f"carm_{fm.level}_{fm.side}.png"
            written[name] = render_carm_png(result, fm, out / name, overwrite=overwrite)
        path, renderer = render_case_png(result, out / "render3d.png", overwrite=overwrite)
        written["render3d.png"] = path
        if renderer != "vtk":
            result.warnings.append("3D rendering drawn with matplotlib (VTK off-screen rendering failed)")
    report(100.0, "done")
    return written
