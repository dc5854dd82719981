"""Command-line parser of cohort runs: ``spineai batch``.

``add_batch_parser(subparsers)`` adds ``batch`` to the top-level sub-parsers; its ``func(args)`` returns
the exit code: 0 when every case finished, 3 when some cases failed (listed in ``failures.tsv``), 1 with a
one-paragraph error on stderr when the run could not start (bad manifest, occupied --out, unreachable
scheduler, ...).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from ..cli_support import EXPECTED_ERRORS as _EXPECTED
from ..errors import SpineAIError

__all__ = ["add_batch_parser"]

_RAW = argparse.RawDescriptionHelpFormatter
#: exit code when the run finished but some cases failed
EXIT_SOME_FAILED = 3


def _steps(text: str) -> list[str]:
    from ..api import check_steps

    try:
        return check_steps(p for p in text.replace(" ", ",").split(","))
    except SpineAIError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("\n", " ")) from None


def add_batch_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``spineai batch``."""
    p = subparsers.add_parser(
        "batch",
        help="run segment / levels / measure / plan (and MRI, radiograph steps) over a cohort, resumable",
        description=(
            "Run the SpineAI workflow over a cohort: a folder of CTs (NIfTI/NRRD/MHA files or DICOM series\n"
            "folders, found recursively) or a CSV manifest with the columns case_id,image and optionally\n"
            "segmentation (measured instead of segmenting: a corrected label map, or reference labels),\n"
            "mri (sagittal T2 for grade-sagittal/outcome), axial (axial T2 for grade-axial/stenosis),\n"
            "radiograph (for radiograph), level_override (e.g. lowest=L6, for the levels step), reference\n"
            "(label map to score against), truth (reference triangle areas, JSON) and any metadata columns,\n"
            "which are carried into the tables.\n\n"
            "The levels step numbers the vertebrae from the sacrum (and the last rib) upward and the\n"
            "measurements then use the verified names; results.tsv carries level_confidence, level_trusted,\n"
            "levels_flagged and castellvi on every triangle row, and levels.tsv one row per vertebra.\n\n"
            "Each case gets OUT/cases/<case_id>/ with its files and a record.json (status, steps done,\n"
            "timestamps, error). A re-run skips finished cases and redoes interrupted or failed ones; one bad\n"
            "case never stops the others. At the end OUT/results.tsv and .csv (one row per case, level, side\n"
            "and triangle: areas mm2, C-arm angles degrees, needle path mm), cases.tsv, failures.tsv, the\n"
            "tables of the steps run (levels.tsv, grades.tsv, grading_axial.tsv, stenosis.tsv,\n"
            "radiograph.tsv) and the HTML reports (OUT/report.html, OUT/cases/<case_id>/report.html) are\n"
            "written.\n\n"
            "Research use only; not for clinical decisions."
        ),
        epilog=(
            "examples:\n"
            "  spineai batch --input manifest.csv --out cohort-out --steps levels,measure,plan --workers 2\n"
            "  spineai batch --input ct_folder --out cohort-out --weights w.safetensors\n"
            "  spineai batch --input axial_folder --out axial-out --steps grade-axial,stenosis\n"
            "  spineai batch --input radiograph_folder --out xray-out --steps radiograph\n"
            "  spineai batch --input manifest.csv --out cohort-out --scheduler tcp://10.0.0.5:8786"
        ),
        formatter_class=_RAW,
    )
    p.add_argument("--input", required=True, type=Path, help="folder of images, or a .csv/.tsv manifest")
    p.add_argument("--out", required=True, type=Path, help="output folder of the cohort")
    p.add_argument(
        "--steps",
        type=_steps,
        default=["segment", "levels", "measure", "plan"],
        help="comma-separated: segment, levels, measure, plan, grade-sagittal, outcome, grade-axial, stenosis, "
        "radiograph (default segment,levels,measure,plan)",
    )
    p.add_argument(
        "--workers", type=int, default=1, help="local worker processes (default 1: in this process)"
    )
    p.add_argument(
        "--scheduler", default=None, help="Dask scheduler address tcp://host:port (one task per case)"
    )
    p.add_argument(
        "--scheduler-timeout",
        type=float,
        default=10.0,
        help="seconds to try to reach the scheduler (default 10)",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--resume",
        action="store_true",
        help="continue in an --out that holds another cohort (keep finished cases)",
    )
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="start over: move everything in --out into OUT/superseded/<time>/ first",
    )
    p.add_argument(
        "--weights", type=Path, default=None, help="CT segmentation weights (default: shipped model)"
    )
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--mode", choices=("fast", "paper"), default="fast", help="segmentation inference mode")
    p.add_argument(
        "--levels",
        nargs="+",
        default=None,
        metavar="LEVEL",
        help="levels to measure (default: the two lowest levels of each case's numbering, L4-L5 L5-S1 for "
        "five lumbar vertebrae; L4-L5 L5-S1 without the levels step)",
    )
    p.add_argument(
        "--sides",
        nargs="+",
        default=["left", "right"],
        choices=("left", "right"),
        help="sides (default both)",
    )
    p.add_argument("--label-convention", default=None, help="convention of segmentations without sidecar")
    p.add_argument("--grading-weights", type=Path, default=None, help="sagittal grader weights")
    p.add_argument("--outcome-weights", type=Path, default=None, help="outcome model weights")
    p.add_argument("--axial-weights", type=Path, default=None, help="axial grader weights (grade-axial)")
    p.add_argument("--stenosis-weights", type=Path, default=None, help="stenosis model weights")
    p.add_argument(
        "--radiograph-weights",
        type=Path,
        default=None,
        help="radiograph model weights (default: the shipped disc-crops model radiograph_hnp_demo, "
        "trained on synthetic radiographs only)",
    )
    p.add_argument("--no-images", action="store_true", help="skip the C-arm and 3D pictures (faster)")
    p.add_argument("--no-surfaces", action="store_true", help="skip the surface models of segmentations")
    p.add_argument("--no-report", action="store_true", help="skip the HTML reports")
    p.add_argument("--retries", type=int, default=1, help="retries after a crash or dead worker (default 1)")
    p.add_argument(
        "--threads", type=int, default=None, help="PyTorch threads per case (default: cores/workers)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_run_batch)
    return p


def _run_batch(args: argparse.Namespace) -> int:
    from .runner import run_batch

    try:
        summary = run_batch(
            args.input,
            args.out,
            steps=args.steps,
            workers=args.workers,
            scheduler=args.scheduler,
            resume=args.resume,
            overwrite=args.overwrite,
            weights=args.weights,
            device=args.device,
            fast=args.mode == "fast",
            levels=args.levels,
            sides=args.sides,
            images=not args.no_images,
            surfaces=not args.no_surfaces,
            grading_weights=args.grading_weights,
            outcome_weights=args.outcome_weights,
            axial_weights=args.axial_weights,
            stenosis_weights=args.stenosis_weights,
            radiograph_weights=args.radiograph_weights,
            label_convention=args.label_convention,
            retries=args.retries,
            report=not args.no_report,
            threads_per_worker=args.threads,
            scheduler_timeout_s=args.scheduler_timeout,
        )
    except _EXPECTED as exc:
        if getattr(args, "debug", False) or os.environ.get("SPINEAI_DEBUG"):
            traceback.print_exc()
        print(f"spineai batch: error: {exc}", file=sys.stderr)
        return 1
    print(summary.to_json() if args.json else summary.text())
    return 0 if summary.failed == 0 else EXIT_SOME_FAILED
