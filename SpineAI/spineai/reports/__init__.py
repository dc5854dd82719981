"""Self-contained HTML reports of a case folder or a cohort (pictures embedded as base64 PNG).

- :func:`write_report` (either, by what the folder holds), :func:`write_case_report` (``case.py``),
  :func:`write_cohort_report` (``cohort.py``). See ``docs/reports.md``.
- :mod:`.levels`: the level labels (confidence, flags, Castellvi, the banner of a flagged case, the mark of
  a level in doubt) and the input checks, read from ``case.json`` without failing on older cases.
- :mod:`.check`: whether a page is self-contained (embedded PNG pictures that decode, nothing fetched), as
  ``benchmarks/check_report_render.py`` checks it in headless Chromium.

Research use only; not for clinical decisions.
"""

from __future__ import annotations

import os
from pathlib import Path

from .case import case_report_html, write_case_report
from .cohort import cohort_report_html, write_cohort_report

__all__ = [
    "case_report_html",
    "cohort_report_html",
    "write_case_report",
    "write_cohort_report",
    "write_report",
]


def write_report(
    folder: str | os.PathLike,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    case_reports: bool = True,
) -> Path:
    """Report of a cohort (a folder with ``cohort.json``: summary + per-case reports) or of one case folder.

    Args:
        folder: a ``spineai batch`` output folder, or one case folder (any command's output folder).
        out: the HTML file (default ``folder/report.html``).
        overwrite: replace existing reports.
        case_reports: for a cohort, also write ``cases/<case_id>/report.html``.

    Returns:
        the path of the report written (the cohort summary for a cohort).
    """
    root = Path(folder)
    if (root / "cohort.json").is_file():
        return write_cohort_report(root, out=out, overwrite=overwrite, case_reports=case_reports)
    return write_case_report(root, out=out, overwrite=overwrite)
