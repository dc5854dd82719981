"""The cohort's tables, rebuilt from the case records after every run (so finished cases are never lost).

* ``results.tsv`` / ``results.csv``: one row per case, level, side and triangle: ``case_id``, the
  manifest's metadata columns, then the columns of ``measurements.tsv``
  (:data:`spineai.planning.tables.COLUMNS`: areas mm2, C-arm angles degrees, needle path mm), then the
  level columns :data:`LEVEL_COLUMNS` (``level_confidence`` with 3 decimals, ``level_trusted``,
  ``levels_flagged``, ``castellvi``; empty without the ``levels`` step), then ``truth_area_mm2`` and
  ``area_error_mm2`` when a ``truth`` column was given;
* ``cases.tsv``: one row per case: status, steps done, attempts, times, and per-case results
  (structures found, numbering, foramina measured, MRI and radiograph summaries, outcome probability,
  Dice against a reference, custom steps);
* ``failures.tsv``: one row per failed (or never finished) case: the step, the error and its message;
* ``levels.tsv``: one row per case and vertebra (``levels`` step): the columns of ``levels/levels.tsv``;
* ``grades.tsv``: one row per case and disc (``grade-sagittal``), the columns of ``grades.tsv``;
* ``grading_axial.tsv``: one row per case and grading (``grade-axial``: LDH, LCCS, LNRC);
* ``stenosis.tsv``: one row per case and region (``stenosis``), the columns of ``stenosis/stenosis.tsv``
  (box in input pixel indices) and the box in LPS mm;
* ``radiograph.tsv``: one row per case and level (``radiograph``): probability, threshold, call.

Records written before a table or column existed are read as they are: their cells stay empty.
Cells: numbers with up to 4 decimals, booleans ``yes``/``no``, empty where a value does not apply.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..outputs import write_text
from .cohort import Cohort
from .record import read_record

__all__ = ["CASE_COLUMNS", "FAILURE_COLUMNS", "LEVEL_COLUMNS", "STEP_TABLES", "collect_rows", "write_tables"]

CASE_COLUMNS = (
    "case_id",
    "status",
    "steps_done",
    "attempts",
    "started",
    "finished",
    "duration_s",
    "segmentation_source",
    "structures_found",
    "checks_flagged",
    "vertebrae_numbered",
    "levels_anchor",
    "levels_flagged",
    "transitional",
    "castellvi",
    "levels_error",
    "foramina_measured",
    "foramina_requested",
    "discs_graded",
    "outcome_probability_good",
    "outcome_predicted_good",
    "axial_ldh",
    "axial_lccs",
    "axial_lnrc",
    "stenosis_moderate_severe",
    "radiograph_positive_levels",
    "dice_bone",
    "dice_nerve",
    "dice_mean_structures",
    "error",
)
FAILURE_COLUMNS = ("case_id", "status", "step", "error_type", "error", "attempts", "finished", "image")
TRUTH_COLUMNS = ("truth_area_mm2", "area_error_mm2")
#: columns of the vertebra numbering on every triangle row of ``results.tsv``
LEVEL_COLUMNS = ("level_confidence", "level_trusted", "levels_flagged", "castellvi")
#: per-step tables: file name -> key of the record's ``results`` holding its rows
STEP_TABLES = {
    "levels.tsv": "levels",
    "grades.tsv": "grades",
    "grading_axial.tsv": "grading_axial",
    "stenosis.tsv": "stenosis",
    "radiograph.tsv": "radiograph",
}


def cell(value: Any) -> str:
    """One table cell as text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        text = f"{value:.4f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v) for v in value)
    return str(value).replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _text(columns: Sequence[str], rows: Iterable[dict[str, Any]], delimiter: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def collect_rows(out: Path, cohort: Cohort) -> dict[str, Any]:
    """Rows of every table from the records of ``cohort``'s cases under ``out/cases``.

    Returns:
        ``{"results": [...], "cases": [...], "failures": [...], "grades": [...], "records": {id: record},
        "result_columns": [...], "case_columns": [...], "grade_columns": [...], "step_tables": {file name:
        (columns, rows)}}`` (``grades`` and ``grade_columns`` repeat ``grades.tsv`` of ``step_tables``).
    """
    from ..levels.outputs import TSV_COLUMNS as LEVEL_TSV_COLUMNS
    from ..planning.tables import COLUMNS as TRIANGLE_COLUMNS

    meta = list(cohort.metadata_columns)
    results: list[dict[str, Any]] = []
    cases: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    records: dict[str, dict[str, Any] | None] = {}
    step_rows: dict[str, list[dict[str, Any]]] = {name: [] for name in STEP_TABLES}
    step_columns: dict[str, list[str]] = {name: [] for name in STEP_TABLES}
    step_columns["levels.tsv"] = list(LEVEL_TSV_COLUMNS)
    custom_columns: list[str] = []
    any_truth = False
    for case in cohort.cases:
        rec = read_record(out / "cases" / case.case_id)
        records[case.case_id] = rec
        base = {"case_id": case.case_id, **{m: case.metadata.get(m, "") for m in meta}}
        if rec is None:
            cases.append({**base, "status": "not run"})
            failures.append({**base, "status": "not run", "image": str(case.image)})
            continue
        error = rec.get("error") or {}
        results_block = rec.get("results") or {}
        summary = results_block.get("case") or {}
        row = {
            **base,
            **summary,
            "status": rec.get("status"),
            "steps_done": ",".join(rec.get("steps_done") or []),
            "attempts": rec.get("attempts"),
            "started": rec.get("started"),
            "finished": rec.get("finished"),
            "duration_s": rec.get("duration_s"),
            "error": error.get("message"),
        }
        for step, values in (rec.get("custom") or {}).items():
            for key, value in values.items():
                if isinstance(value, (str, int, float, bool)) or value is None:
                    column = f"{step}_{key}"
                    row[column] = value
                    if column not in custom_columns:
                        custom_columns.append(column)
        cases.append(row)
        if rec.get("status") != "done":
            failures.append(
                {
                    **base,
                    "status": rec.get("status"),
                    "step": error.get("step") or rec.get("current_step"),
                    "error_type": error.get("type"),
                    "error": error.get("message")
                    or (
                        "interrupted before it finished"
                        if rec.get("status") in ("running", "interrupted")
                        else ""
                    ),
                    "attempts": rec.get("attempts"),
                    "finished": rec.get("finished"),
                    "image": str(case.image),
                }
            )
            continue
        for tri in results_block.get("triangles") or []:
            any_truth = any_truth or "truth_area_mm2" in tri
            row = {**base, **tri}
            confidence = row.get("level_confidence")
            if isinstance(confidence, (int, float)) and not isinstance(confidence, bool):
                row["level_confidence"] = f"{confidence:.3f}"
            results.append(row)
        for name, key in STEP_TABLES.items():
            for item in results_block.get(key) or []:
                for column in item:
                    if column not in step_columns[name]:
                        step_columns[name].append(column)
                step_rows[name].append({**base, **item})
    result_columns = [
        "case_id",
        *meta,
        *TRIANGLE_COLUMNS,
        *LEVEL_COLUMNS,
        *(TRUTH_COLUMNS if any_truth else ()),
    ]
    case_columns = ["case_id", *meta, *CASE_COLUMNS[1:], *custom_columns]
    step_tables = {name: (["case_id", *meta, *step_columns[name]], step_rows[name]) for name in STEP_TABLES}
    return {
        "results": results,
        "cases": cases,
        "failures": failures,
        "grades": step_rows["grades.tsv"],
        "records": records,
        "result_columns": result_columns,
        "case_columns": case_columns,
        "failure_columns": ["case_id", *meta, *FAILURE_COLUMNS[1:]],
        "grade_columns": step_tables["grades.tsv"][0],
        "step_tables": step_tables,
    }


def write_tables(out: Path, cohort: Cohort) -> dict[str, Path]:
    """Write ``results.tsv``/``.csv``, ``cases.tsv``, ``failures.tsv`` and, where a case has rows for them,
    ``levels.tsv``, ``grades.tsv``, ``grading_axial.tsv``, ``stenosis.tsv``, ``radiograph.tsv`` into ``out``.

    The tables are derived from the case records and replaced on every run.

    Returns:
        name -> path of the tables written.
    """
    rows = collect_rows(out, cohort)
    written: dict[str, Path] = {}
    written["results.tsv"] = write_text(
        out / "results.tsv", _text(rows["result_columns"], rows["results"], "\t"), overwrite=True
    )
    written["results.csv"] = write_text(
        out / "results.csv", _text(rows["result_columns"], rows["results"], ","), overwrite=True
    )
    written["cases.tsv"] = write_text(
        out / "cases.tsv", _text(rows["case_columns"], rows["cases"], "\t"), overwrite=True
    )
    written["failures.tsv"] = write_text(
        out / "failures.tsv", _text(rows["failure_columns"], rows["failures"], "\t"), overwrite=True
    )
    for name, (columns, table) in rows["step_tables"].items():
        if table:
            written[name] = write_text(out / name, _text(columns, table, "\t"), overwrite=True)
    return written
