"""The HTML report of one case folder: its pictures and its numbers, in one self-contained file.

A case folder is what :func:`spineai.api.run_case` or a batch run writes (``segmentation/``,
``planning/``, ``grading/``, ``outcome/``, ``case.json``, ``record.json``), or the output folder of one
command (``spineai measure``, ``spineai segment``, ``spineai grade sagittal``, ``spineai outcome``).
The report shows what it finds:

* **pictures** (embedded PNG): the C-arm views (``carm_<level>_<side>.png``: DRR at the planned angles
  with both triangles and the needle), the 3D rendering (``render3d.png``), the segmentation overlaid on
  axial, coronal and sagittal slices (``segmentation_overlay.png``, drawn with matplotlib from the CT and
  the label map when the folder has none), the Grad-CAM overlays (``gradcam_*.png``,
  ``gradcam_overlay.png``) and any other PNG;
* **numbers**: the case's status (``record.json``), the triangle table (``measurements.tsv``), the
  segmented structures and volumes (``segmentation.json``), the per-disc grades (``grades.tsv``), the
  outcome prediction (``outcome.json``) and the scores against ground truth (``record.json``);
* **level labels** (``case.json["levels"]``, or the ``levels.json`` of ``spineai levels``): near the top,
  the vertebrae with their confidence and trusted flag, the anchor of the numbering and the Castellvi type
  per side; a flagged case (low confidence, transitional anatomy, or a failed numbering) opens with a red
  banner, and every triangle row whose level involves a doubtful vertebra carries a mark;
* **input checks** (``case.json["checks"]``): each warning and error with its fix.
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..outputs import write_text
from .html import esc, page, png_img, read_table, table
from .levels import (
    LevelLabels,
    checks_banner_html,
    checks_section_html,
    levels_banner_html,
    levels_section_html,
    read_checks,
    read_levels,
)

__all__ = [
    "OVERLAY_NAME",
    "REPORT_NAME",
    "case_level_labels",
    "case_report_html",
    "find_case_files",
    "write_case_report",
]

REPORT_NAME = "report.html"
OVERLAY_NAME = "segmentation_overlay.png"
#: (section title, file name pattern) in display order; a picture goes to the first section it matches
PICTURE_SECTIONS = (
    ("C-arm views at the planned angles (DRR, triangles, needle)", "carm_*.png"),
    ("3D rendering (bones, roots, triangles, needle paths)", "render3d.png"),
    ("Segmentation overlay (axial, coronal, sagittal)", OVERLAY_NAME),
    ("Grad-CAM overlays", "gradcam*.png"),
    ("Other pictures", "*.png"),
)
TRIANGLE_COLUMNS = (
    "level",
    "side",
    "triangle",
    "status",
    "area_mm2",
    "standard_window_mm2",
    "best_oblique_deg",
    "best_tilt_deg",
    "best_window_mm2",
    "usable_view",
    "path_length_mm",
    "min_distance_nerve_mm",
    "min_distance_bone_mm",
    "path_safe",
    "recommended",
)
TRIANGLE_HEADERS = {
    "level_check": "level labels",
    "area_mm2": "area (mm2)",
    "standard_window_mm2": "window at 25 deg oblique (mm2)",
    "best_oblique_deg": "best oblique (deg)",
    "best_tilt_deg": "best tilt (deg)",
    "best_window_mm2": "best window (mm2)",
    "usable_view": "usable view",
    "path_length_mm": "needle (mm)",
    "min_distance_nerve_mm": "to nerve (mm)",
    "min_distance_bone_mm": "to bone (mm)",
    "path_safe": "path safe",
}
_SKIP_DIRS = ("superseded", "surfaces")


def _walk(case_dir: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(case_dir):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        out.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return out


def find_case_files(case_dir: str | os.PathLike) -> dict[str, Any]:
    """The report's sources in ``case_dir``: ``{"pictures": [(section, path)], "measurements": path, ...}``."""
    root = Path(case_dir)
    files = _walk(root)
    found: dict[str, Any] = {"pictures": []}
    for name, key in (
        ("measurements.tsv", "measurements"),
        ("segmentation.json", "segmentation"),
        ("grades.tsv", "grades"),
        ("outcome.json", "outcome"),
        ("record.json", "record"),
        ("case.json", "case"),
        ("levels.json", "levels"),
        ("labels.nii.gz", "labels"),
    ):
        match = [f for f in files if f.name == name]
        if match:
            found[key] = min(match, key=lambda f: len(f.relative_to(root).parts))
    for f in files:
        if f.suffix.lower() != ".png":
            continue
        for title, pattern in PICTURE_SECTIONS:
            if fnmatch.fnmatch(f.name, pattern):
                found["pictures"].append((title, f))
                break
    return found


def _load_json(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _inputs(found: dict[str, Any]) -> tuple[str | None, str | None]:
    """(CT path, label map path) of the case, from its record / case.json / segmentation folder."""
    record = _load_json(found.get("record"))
    case = _load_json(found.get("case"))
    ct = None
    inputs_case = case.get("inputs") or {}
    if isinstance(inputs_case.get("ct"), str) and not inputs_case["ct"].startswith("in-memory"):
        ct = inputs_case["ct"]
    inputs_rec = record.get("inputs") or {}
    if (
        ct is None
        and inputs_rec.get("image")
        and any(s in (record.get("steps") or []) for s in ("segment", "measure", "plan"))
    ):
        ct = inputs_rec["image"]
    labels = str(found["labels"]) if "labels" in found else None
    if labels is None:
        given = inputs_case.get("segmentation") or inputs_rec.get("segmentation")
        if isinstance(given, str) and not given.startswith("in-memory"):
            labels = given
    return ct, labels


def make_overlay(case_dir: str | os.PathLike, overwrite: bool = False) -> Path | None:
    """Draw ``segmentation_overlay.png`` (CT slices with the labels) into ``case_dir`` when the case has both.

    Returns:
        the picture's path, or ``None`` when the case has no CT or no label map.
    """
    import numpy as np

    from .. import io
    from ..api import load_image, load_segmentation
    from ..pictures import orthogonal_slices_png

    root = Path(case_dir)
    target = root / OVERLAY_NAME
    if target.exists() and not overwrite:
        return target
    found = find_case_files(root)
    ct_path, labels_path = _inputs(found)
    if ct_path is None or labels_path is None or not Path(ct_path).exists() or not Path(labels_path).exists():
        return None
    ct = load_image(ct_path, name="CT")
    labels = load_segmentation(labels_path).image
    same = ct.GetSize() == labels.GetSize() and np.allclose(ct.GetSpacing(), labels.GetSpacing(), atol=1e-4)
    if not same or not np.allclose(ct.GetOrigin(), labels.GetOrigin(), atol=1e-3):
        labels = io.resample_like(labels, ct, is_label=True)
    return orthogonal_slices_png(
        ct, target, labels=labels, title=f"{root.name}: segmentation on the CT", overwrite=overwrite
    )


def _status_section(record: dict[str, Any]) -> list[str]:
    if not record:
        return []
    rows = [
        {"field": "status", "value": record.get("status")},
        {"field": "steps done", "value": ", ".join(record.get("steps_done") or [])},
        {"field": "attempts", "value": record.get("attempts")},
        {"field": "started (UTC)", "value": record.get("started")},
        {"field": "finished (UTC)", "value": record.get("finished")},
        {"field": "duration (s)", "value": record.get("duration_s")},
    ]
    for k, v in (record.get("inputs") or {}).items():
        if v:
            rows.append({"field": f"input: {k}", "value": v})
    for k, v in (record.get("metadata") or {}).items():
        rows.append({"field": k, "value": v})
    out = ["<h2>Case</h2>", table(rows, ("field", "value"))]
    error = record.get("error")
    if error:
        out.append(
            f'<p class="bad">Failed at step {esc(error.get("step") or "start")}: '
            f"{esc(error.get('type'))}: {esc(error.get('message'))}</p>"
        )
    return out


def _evaluation_section(record: dict[str, Any]) -> list[str]:
    evaluation = record.get("evaluation") or {}
    out: list[str] = []
    seg = evaluation.get("segmentation")
    if seg:
        rows = [{"structure": k, **v} for k, v in (seg.get("structures") or {}).items()]
        rows += [{"structure": f"{g} (paper's 3-class)", **seg[g]} for g in ("bone", "nerve") if g in seg]
        out += [
            "<h2>Segmentation against the reference</h2>",
            table(
                rows,
                ("structure", "dice", "iou", "pixel_accuracy", "status"),
                fmt=dict.fromkeys(("dice", "iou", "pixel_accuracy"), ".3f"),
            ),
        ]
    tri = evaluation.get("triangles")
    if tri:
        mae = tri.get("mean_absolute_error_mm2")
        out.append(
            f"<p>Triangle areas against the truth file: {tri.get('compared', 0)} compared, mean absolute error "
            f"{'' if mae is None else f'{mae:.2f}'} mm2 (per triangle in the table above).</p>"
        )
    return out


def case_level_labels(found: dict[str, Any], case: dict[str, Any] | None = None) -> LevelLabels | None:
    """The case's level numbering: ``case.json["levels"]``, else a ``levels.json`` written by ``spineai levels``
    (``None`` when the case has neither, as older cases)."""
    case = _load_json(found.get("case")) if case is None else case
    if case.get("levels"):
        return read_levels(case["levels"])
    data = _load_json(found.get("levels"))
    return read_levels(data) if data.get("format") == "spineai-levels" else None


def _triangle_rows(rows: list[dict[str, str]], levels: LevelLabels | None) -> list[dict[str, str]]:
    """The triangle rows with a ``level_check`` mark (and the ``flagged`` row class) where the level is in doubt."""
    out = []
    for row in rows:
        concern = levels.concern(row.get("level", "")) if levels is not None else ""
        if not concern and str(row.get("level_trusted", "")).lower() == "no":
            concern = f"level not trusted (confidence {row.get('level_confidence') or '?'})"
        out.append(
            {
                **row,
                "level_check": f"⚠ check: {concern}" if concern else "",
                "_class": "flagged" if concern else "",
            }
        )
    return out


def case_report_html(case_dir: str | os.PathLike, make_missing_overlay: bool = True) -> str:
    """The HTML text of ``case_dir``'s report (see the module docstring)."""
    root = Path(case_dir)
    if not root.is_dir():
        raise InputError(
            f"Case folder '{root}' does not exist.", "give the folder of one case (or of a cohort)"
        )
    notes: list[str] = []
    if make_missing_overlay and not (root / OVERLAY_NAME).exists():
        try:
            make_overlay(root)
        except Exception as exc:  # a picture must not stop the report; say why it is missing
            notes.append(f"The segmentation overlay could not be drawn: {exc}")
    found = find_case_files(root)
    record = _load_json(found.get("record"))
    case = _load_json(found.get("case"))
    levels = case_level_labels(found, case)
    checks = read_checks(case.get("checks"))
    body: list[str] = [b for b in (levels_banner_html(levels), checks_banner_html(checks)) if b]
    body += _status_section(record)
    body += levels_section_html(levels)
    body += checks_section_html(checks)
    if case.get("warnings"):
        body.append(
            "<h3>Warnings</h3><ul>" + "".join(f"<li>{esc(w)}</li>" for w in case["warnings"]) + "</ul>"
        )

    if "measurements" in found:
        columns, rows = read_table(found["measurements"])
        cols = [c for c in TRIANGLE_COLUMNS if c in columns]
        rows = _triangle_rows(rows, levels)
        if any(r["level_check"] for r in rows):
            cols.insert(cols.index("level") + 1 if "level" in cols else 0, "level_check")
        flagged_note = (
            '<p class="bad">Rows marked ⚠ are named by a level whose labels are in doubt: check the level '
            "labels before acting on them.</p>"
            if any(r["_class"] for r in rows)
            else ""
        )
        body += [
            "<h2>Kambin's and the safe triangle</h2>",
            '<p class="note">True area in the reference view; windows = part reachable by a straight needle '
            "without crossing bone or nerve; C-arm angles in the level's frame (squared to the upper vertebra's "
            "inferior endplate). Paper (Fan et al. 2019, L5/S1): Kambin 37.8 +- 20.9 mm2, safe 8.69 +- 2.24 mm2.</p>",
            flagged_note,
            table(
                rows, cols, headers=TRIANGLE_HEADERS, row_class="_class", cell_class={"level_check": "mark"}
            ),
        ]
        messages = [r for r in rows if r.get("message")]
        if messages:
            body.append(
                "<ul>"
                + "".join(
                    f"<li>{esc(r['level'])} {esc(r['side'])} {esc(r['triangle'])}: {esc(r['message'])}</li>"
                    for r in messages
                )
                + "</ul>"
            )
    seg = _load_json(found.get("segmentation"))
    if seg.get("structures"):
        rows = [
            {"structure": k, "label": v.get("label"), "volume_mm3": v.get("volume_mm3")}
            for k, v in seg["structures"].items()
        ]
        model = seg.get("model") or {}
        body += [
            "<h2>Segmentation</h2>",
            f'<p class="note">Model {esc(model.get("name"))} {esc(model.get("version"))}, mode {esc(seg.get("mode"))}.</p>',
            table(rows, ("structure", "label", "volume_mm3"), headers={"volume_mm3": "volume (mm3)"}),
        ]
        if seg.get("warnings"):
            body.append("<ul>" + "".join(f"<li>{esc(w)}</li>" for w in seg["warnings"]) + "</ul>")
    if "grades" in found:
        columns, rows = read_table(found["grades"])
        cols = [
            c
            for c in columns
            if not c.startswith("p_") and not c.startswith("index_") and not c.endswith("_mm")
        ]
        body += ["<h2>Per-disc grades (sagittal T2)</h2>", table(rows, cols)]
    outcome = _load_json(found.get("outcome"))
    if outcome:
        p = outcome.get("probability_good_outcome")
        body += [
            "<h2>tESI outcome prediction</h2>",
            f"<p>Probability of a good outcome ({esc(outcome.get('outcome_definition'))}): "
            f"<b>{'' if p is None else f'{float(p):.2f}'}</b> (threshold {esc(outcome.get('threshold'))}: "
            f"{esc(outcome.get('predicted'))}).</p>",
        ]
        if outcome.get("warnings"):
            body.append("<ul>" + "".join(f"<li>{esc(w)}</li>" for w in outcome["warnings"]) + "</ul>")
    body += _evaluation_section(record)

    sections: dict[str, list[Path]] = {}
    for title, path in found["pictures"]:
        sections.setdefault(title, []).append(path)
    if sections:
        body.append("<h2>Pictures</h2>")
    for title, _pattern in PICTURE_SECTIONS:
        for i, path in enumerate(sections.get(title, [])):
            if i == 0:
                body.append(f"<h3>{esc(title)}</h3>")
            body.append(png_img(path, alt=path.stem, caption=str(path.relative_to(root))))
    for n in notes:
        body.append(f'<p class="note">{esc(n)}</p>')
    if not body:
        body.append('<p class="note">This folder holds no SpineAI results.</p>')
    return page(f"SpineAI case {root.name}", body, subtitle=str(root.resolve()))


def write_case_report(
    case_dir: str | os.PathLike, out: str | os.PathLike | None = None, overwrite: bool = False
) -> Path:
    """Write the case report (default ``case_dir/report.html``) atomically; returns its path.

    Raises:
        OutputExistsError: the report exists and ``overwrite`` is False.
    """
    target = Path(out) if out is not None else Path(case_dir) / REPORT_NAME
    if target.exists() and not overwrite:
        from ..errors import OutputExistsError

        raise OutputExistsError(target)
    return write_text(target, case_report_html(case_dir), overwrite=overwrite)
