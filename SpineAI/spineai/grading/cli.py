"""Command-line parsers of the sagittal grading: ``grade sagittal`` and ``evaluate sagittal``.

``add_grade_parser(subparsers)`` adds ``grade`` (with the task ``sagittal``) to the top-level
sub-parsers; ``add_evaluate_parser(evaluate_subparsers)`` adds ``sagittal`` to the sub-parsers of
``evaluate``. Each command's ``func(args)`` returns the exit code: 0 on success, 1 with a
one-paragraph error on stderr otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from ..errors import SpineAIError
from .tasks import TASK_KEYS

__all__ = ["add_evaluate_parser", "add_grade_parser"]

_RAW = argparse.RawDescriptionHelpFormatter
_EXPECTED = (SpineAIError, FileExistsError, FileNotFoundError, ValueError, PermissionError)


def _guarded(command: str, run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def func(args: argparse.Namespace) -> int:
        try:
            return int(run(args) or 0)
        except _EXPECTED as exc:
            if getattr(args, "debug", False) or os.environ.get("SPINEAI_DEBUG"):
                traceback.print_exc()
            print(f"spineai {command}: error: {exc}", file=sys.stderr)
            return 1

    return func


def _gradings(text: str) -> list[str]:
    if text.strip().lower() in ("none", ""):
        return []
    if text.strip().lower() == "all":
        return list(TASK_KEYS)
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in TASK_KEYS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown grading(s) {unknown}; choose from {', '.join(TASK_KEYS)}, all or none"
        )
    return keys


# ---------------------------------------------------------------------------------------------- grade
def add_grade_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``spineai grade`` with its task ``sagittal``."""
    grade = subparsers.add_parser(
        "grade",
        help="grade lumbar MRI (per-disc gradings with Grad-CAM)",
        description="Grade lumbar spine MRI. Choose the task:\n\n"
        "example:\n  spineai grade sagittal scan_t2.png -o graded",
        formatter_class=_RAW,
    )
    tasks = grade.add_subparsers(dest="grade_task", metavar="<task>")
    grade.set_defaults(func=lambda a, _p=grade: (_p.print_help(), 2)[1])
    p = tasks.add_parser(
        "sagittal",
        help="per-disc gradings of a sagittal T2 slice (Pfirrmann, Modic, endplates, listhesis, herniation, ...)",
        description=(
            "Find every disc on a mid-sagittal T2-weighted slice of the lumbar spine, name it by level (L5-S1\n"
            "upwards: the lowest disc above the sacrum is L5-S1) and grade it: Modic change, upper and lower\n"
            "endplate change, spondylolisthesis, disc herniation, narrowing and bulging, Pfirrmann grade.\n"
            "IMAGE is a picture (PNG/JPG) or a 2D/3D NIfTI/NRRD/MHA/DICOM; of a 3D sagittal volume the\n"
            "mid-sagittal slice is graded (the output says which). A picture is graded upright; with the\n"
            "default --orientation auto an upside-down or mirrored picture is recognised and turned.\n\n"
            "Writes OUTDIR/grades.tsv and grades.json (one row per disc: level, position, every grade and its\n"
            "probabilities), OUTDIR/gradcam_<grading>.nii.gz (Grad-CAM on the input's geometry, to overlay in\n"
            "3D Slicer) and OUTDIR/gradcam_<grading>.png (overlay picture).\n\n"
            "example:\n"
            "  spineai grade sagittal scans/12_t2.png -o graded-12\n"
            "  spineai grade sagittal study/t2_sag.nii.gz -o out --gradcam pfirrmann,modic\n\n"
            "Refused with an explanation: CT, axial or coronal series, pictures with no disc column, slices\n"
            "without L5/S1. Research use only; not for clinical decisions."
        ),
        formatter_class=_RAW,
    )
    p.add_argument("image", type=Path, help="sagittal T2 slice (PNG/JPG/...) or sagittal T2 volume")
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        help="output folder (new or empty); default: IMAGE's name + '-graded'",
    )
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="model weights (.safetensors with its .json card); default: shipped",
    )
    p.add_argument(
        "--gradcam",
        type=_gradings,
        default=["pfirrmann"],
        help=f"gradings to explain with Grad-CAM, comma-separated ({', '.join(TASK_KEYS)}), 'all' or 'none' "
        "(default pfirrmann)",
    )
    p.add_argument(
        "--orientation",
        choices=("auto", "as_is", "flip_vertical", "flip_horizontal", "rotate_180"),
        default="auto",
        help="how to make a picture upright (default auto); volumes use their geometry",
    )
    p.add_argument(
        "--slice",
        type=int,
        default=None,
        dest="slice_index",
        help="for a volume: sagittal slice index along left-right (default: the middle one)",
    )
    p.add_argument(
        "--allow-missing-l5s1",
        action="store_true",
        help="grade even when L5/S1 is not recognised, counting levels from the lowest disc found",
    )
    p.add_argument("--overwrite", action="store_true", help="replace files in an existing OUTDIR")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.set_defaults(func=_guarded("grade sagittal", _run_grade))
    return grade


def _run_grade(args: argparse.Namespace) -> int:
    import json

    from ..errors import InputError, OutputExistsError
    from .sagittal import grade_sagittal

    image = Path(args.image)
    if not image.exists():
        raise InputError(f"The image '{image}' does not exist.", "check the path of the slice or volume")
    out = Path(args.out) if args.out is not None else image.parent / f"{image.name.split('.')[0]}-graded"
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
        raise OutputExistsError(out)
    result = grade_sagittal(
        image,
        weights=args.weights,
        orientation=args.orientation,
        gradcam=args.gradcam,
        require_l5s1=not args.allow_missing_l5s1,
        slice_index=args.slice_index,
    )
    written = result.write(out, overwrite=args.overwrite)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    for note in result.notes:
        print(f"note: {note}")
    header = f"{'level':<8}{'Pfirrmann':>10}{'Modic':>7}{'UP':>4}{'LOW':>5}{'listh':>6}{'hern':>6}{'narr':>6}{'bulg':>6}"
    print(header)
    for d in result.discs:
        g = d.grades
        print(
            f"{d.level:<8}{g['pfirrmann']:>10}{g['modic']:>7}{g['up_endplate']:>4}{g['low_endplate']:>5}"
            f"{g['spondylolisthesis']:>6}{g['herniation']:>6}{g['narrowing']:>6}{g['bulging']:>6}"
        )
    print(f"results: {written['table_tsv'].parent}  (research use only; not for clinical decisions)")
    return 0


# ------------------------------------------------------------------------------------------- evaluate
def add_evaluate_parser(evaluate_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``sagittal`` to the sub-parsers of ``spineai evaluate``."""
    p = evaluate_subparsers.add_parser(
        "sagittal",
        help="evaluate the sagittal grader on a folder of graded slices (SPIDER layout)",
        description=(
            "Grade every patient of a folder laid out like SPIDER's public export and compare with its\n"
            "radiological gradings: per grading accuracy, balanced accuracy, Cohen's kappa (unweighted and\n"
            "linear-weighted), Gwet's AC1 with 95% CI and the confusion matrix; Pfirrmann also dichotomised\n"
            "(1-3 vs 4-5, AUC with DeLong CI). SpineNet's external figures are printed beside them.\n\n"
            "Folder: DIR/scans/<patient>_t2.png, DIR/radiological_gradings.csv (Patient, IVD label 1 = L5/S1,\n"
            "Modic, UP endplate, LOW endplate, Spondylolisthesis, Disc herniation, Disc narrowing, Disc bulging,\n"
            "Pfirrman grade), optionally DIR/overview.csv (PixelSpacing) and DIR/disc_crops/ (locator check).\n\n"
            "example:\n"
            "  spineai evaluate sagittal --data ../shared/data/spider_sagittal_t2 --json eval.json --split test\n\n"
            "--split test/val/train takes the patients of the model card's own split (held-out patients),\n"
            "--split all every patient in the folder."
        ),
        formatter_class=_RAW,
    )
    p.add_argument("--data", type=Path, required=True, help="the data folder")
    p.add_argument("--json", type=Path, required=True, help="report file to write (JSON)")
    p.add_argument(
        "--split",
        choices=("test", "val", "train", "all"),
        default="test",
        help="patients to evaluate (default test: the card's held-out patients)",
    )
    p.add_argument("--weights", type=Path, default=None, help="model weights (default: shipped)")
    p.add_argument(
        "--stored-orientation",
        choices=("unknown", "upright", "caudal_top"),
        default="unknown",
        help="how the folder stores its slices, for the crop level-naming check only "
        "(the public SPIDER export: caudal_top); grading always decides by itself",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail when a graded patient has no scan (default: list and skip)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=_guarded("evaluate sagittal", _run_evaluate))
    return p


def _run_evaluate(args: argparse.Namespace) -> int:
    from ..outputs import check_writable, write_json
    from .evaluation import evaluate_sagittal, summary_lines

    check_writable(args.json, args.overwrite)
    report = evaluate_sagittal(
        args.data,
        weights=args.weights,
        split=args.split,
        strict=args.strict,
        stored_orientation=args.stored_orientation,
    )
    write_json(args.json, report, overwrite=args.overwrite)
    for line in summary_lines(report):
        print(line)
    for failure in report["failures"]:
        print(f"not graded: patient {failure['patient']}: {failure['error']}", file=sys.stderr)
    print(f"report: {args.json}")
    return 0
