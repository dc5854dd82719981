"""The cohort's tables, rebuilt from the case records after every run (so finished cases are never lost).

* ``results.tsv`` / ``results.csv``: one row per case, level, side and triangle: ``case_id``, the
  manifest's metadata columns, then the columns of ``measurements.tsv``
  (:data:`spineai.planning.tables.COLUMNS`: areas mm2, C-arm angles degrees, needle path mm), then
  ``truth_area_mm2`` and ``area_error_mm2`` when a ``truth`` column was given;
* ``cases.tsv``: one row per case: status, steps done, attempts, times, and per-case results
  (structures found, foramina measured, outcome probability, Dice against a reference, custom steps);
* ``failures.tsv``: one row per failed (or never finished) case: the step, the error and its message;
* ``grades.tsv``: one row per case and disc (``grade-sagittal``), the columns of ``grades.tsv``.

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

__all__ = ["CASE_COLUMNS", "FAILURE_COLUMNS", "collect_rows", "write_tables"]

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
    "foramina_measured",
    "foramina_requested",
    "discs_graded",
    "outcome_probability_good",
    "outcome_predicted_good",
    "dice_bone",
    "dice_nerve",
    "dice_mean_structures",
    "error",
)
FAILURE_COLUMNS = ("case_id", "status", "step", "error_type", "error", "attempts", "finished", "image")
TRUTH_COLUMNS = ("truth_area_mm2", "area_error_mm2")


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
        "result_columns": [...], "case_columns": [...], "grade_columns": [...]}``.
    """
    from ..planning.tables import COLUMNS as TRIANGLE_COLUMNS

    meta = list(cohort.metadata_columns)
    results: list[dict[str, Any]] = []
    cases: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    grades: list[dict[str, Any]] = []
    records: dict[str, dict[str, Any] | None] = {}
    grade_columns: list[str] = []
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
            results.append({**base, **tri})
        for disc in results_block.get("grades") or []:
            for key in disc:
                if key not in grade_columns:
                    grade_columns.append(key)
            grades.append({**base, **disc})
    result_columns = ["case_id", *meta, *TRIANGLE_COLUMNS, *(TRUTH_COLUMNS if any_truth else ())]
    case_columns = ["case_id", *meta, *CASE_COLUMNS[1:], *custom_columns]
    return {
        "results": results,
        "cases": cases,
        "failures": failures,
        "grades": grades,
        "records": records,
        "result_columns": result_columns,
        "case_columns": case_columns,
        "failure_columns": ["case_id", *meta, *FAILURE_COLUMNS[1:]],
        "grade_columns": ["case_id", *meta, *grade_columns],
    }


def write_tables(out: Path, cohort: Cohort) -> dict[str, Path]:
    """Write ``results.tsv``/``.csv``, ``cases.tsv``, ``failures.tsv`` (and ``grades.tsv``) into ``out``.

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
    if rows["grades"]:
        written["grades.tsv"] = write_text(
            out / "grades.tsv", _text(rows["grade_columns"], rows["grades"], "\t"), overwrite=True
        )
    return written
