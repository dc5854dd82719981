"""Command-line parser of the HTML reports: ``spineai report``.

``add_report_parser(subparsers)`` adds ``report`` to the top-level sub-parsers; its ``func(args)`` returns
0 on success, 1 with a one-paragraph error on stderr otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from ..cli_support import EXPECTED_ERRORS as _EXPECTED

__all__ = ["add_report_parser"]


def add_report_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``spineai report``."""
    p = subparsers.add_parser(
        "report",
        help="self-contained HTML report of a case folder or a cohort (pictures and numbers)",
        description=(
            "Write a self-contained HTML report (pictures embedded as PNG, no external files).\n\n"
            "FOLDER is either one case (a 'spineai batch' case folder, or the output folder of 'spineai\n"
            "measure', 'segment', 'levels', 'grade sagittal' or 'outcome'): the report shows its C-arm views\n"
            "with the triangles and needle, the 3D rendering, the segmentation overlaid on CT slices (drawn\n"
            "when missing and the CT is known), Grad-CAM overlays, and the tables of areas, windows, needle\n"
            "paths, grades and outcome, the level labels (each vertebra's confidence and flags, the\n"
            "Castellvi type; a red banner and marked triangle rows when the numbering is flagged) and the\n"
            "input checks; or a cohort ('spineai batch' --out folder, with cohort.json): a summary with the\n"
            "distribution of triangle areas per level and side beside the paper's figures, the cases with\n"
            "flagged level labels, input-check warnings, failures, evaluation against ground truth when\n"
            "given, and one report per case.\n\n"
            "Research use only; not for clinical decisions."
        ),
        epilog=(
            "examples:\n"
            "  spineai report cohort-out                 # cohort-out/report.html + one per case\n"
            "  spineai report cohort-out/cases/case_01 -o case_01.html"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", type=Path, help="a case folder, or a cohort folder (holding cohort.json)")
    p.add_argument(
        "-o", "--out", type=Path, default=None, help="HTML file to write (default FOLDER/report.html)"
    )
    p.add_argument("--no-case-reports", action="store_true", help="cohort: only the summary page")
    p.add_argument("--overwrite", action="store_true", help="replace existing report files")
    p.set_defaults(func=_run_report)
    return p


def _run_report(args: argparse.Namespace) -> int:
    from . import write_report

    try:
        path = write_report(
            args.folder, out=args.out, overwrite=args.overwrite, case_reports=not args.no_case_reports
        )
    except _EXPECTED as exc:
        if getattr(args, "debug", False) or os.environ.get("SPINEAI_DEBUG"):
            traceback.print_exc()
        print(f"spineai report: error: {exc}", file=sys.stderr)
        return 1
    print(f"report: {path.resolve()}")
    print("Research use only; not for clinical decisions.")
    return 0
