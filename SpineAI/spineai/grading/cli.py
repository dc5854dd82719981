"""Command-line parsers of the MRI gradings.

* ``add_grade_parser(subparsers)`` adds ``grade`` with the tasks ``sagittal`` (per-disc gradings of a
  sagittal T2 slice), ``axial`` (LDH, LCCS, LNRC of an axial slice) and ``stenosis`` (five regions
  detected and graded) to the top-level sub-parsers. It also adds the training tasks ``grading-axial``
  and ``stenosis`` to an existing ``train`` command (:func:`add_train_parser` does the same when called
  with the sub-parsers of ``train``; adding twice is harmless).
* ``add_evaluate_parser(evaluate_subparsers)`` adds ``sagittal``, ``grading-axial`` and ``stenosis`` to the
  sub-parsers of ``evaluate``.

Each command's ``func(args)`` returns the exit code: 0 on success, 1 with a one-paragraph error on
stderr otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..cli_support import guarded as _guarded
from ..outputs import check_output_dir
from .tasks import TASK_KEYS

__all__ = ["add_evaluate_parser", "add_grade_parser", "add_train_parser"]

_RAW = argparse.RawDescriptionHelpFormatter


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
    """Add ``spineai grade`` with its tasks ``sagittal``, ``axial`` and ``stenosis`` (and the training tasks
    ``grading-axial`` and ``stenosis`` to an existing ``spineai train``)."""
    grade = subparsers.add_parser(
        "grade",
        help="grade lumbar MRI (sagittal per-disc gradings; axial LDH/LCCS/LNRC; stenosis) with Grad-CAM",
        description="Grade lumbar spine MRI. Choose the task:\n\n"
        "example:\n  spineai grade sagittal scan_t2.png -o graded\n  spineai grade axial l45_axial.nii.gz -o graded"
        "\n  spineai grade stenosis l45_axial.nii.gz -o regions",
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
    _add_grade_axial(tasks)
    _add_grade_stenosis(tasks)
    _attach_train_tasks(subparsers)
    return grade


def _run_grade(args: argparse.Namespace) -> int:
    import json

    from ..errors import InputError
    from .sagittal import grade_sagittal

    image = Path(args.image)
    if not image.exists():
        raise InputError(f"The image '{image}' does not exist.", "check the path of the slice or volume")
    out = Path(args.out) if args.out is not None else image.parent / f"{image.name.split('.')[0]}-graded"
    check_output_dir(out, args.overwrite)
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
    """Add ``sagittal``, ``grading-axial`` and ``stenosis`` to the sub-parsers of ``spineai evaluate``."""
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
    _add_evaluate_axial(evaluate_subparsers)
    _add_evaluate_stenosis(evaluate_subparsers)
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


# ------------------------------------------------------------------------------------ axial gradings
def _axial_gradings(text: str) -> list[str]:
    from .axial.grades import AXIAL_TASK_KEYS

    value = text.strip().lower()
    if value in ("none", ""):
        return []
    if value == "all":
        return list(AXIAL_TASK_KEYS)
    keys = [k.strip() for k in value.split(",") if k.strip()]
    unknown = [k for k in keys if k not in AXIAL_TASK_KEYS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown grading(s) {unknown}; choose from {', '.join(AXIAL_TASK_KEYS)}, all or none"
        )
    return keys


def _box(text: str) -> list[float]:
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not (values[2] > values[0] and values[3] > values[1]):
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a box 'x0,y0,x1,y1' (pixel indices, x0 < x1, y0 < y1)"
        )
    return values


def _default_out(image: Path, suffix: str) -> Path:
    return image.parent / f"{image.name.split('.')[0]}-{suffix}"


def _add_grade_axial(tasks: argparse._SubParsersAction) -> None:
    p = tasks.add_parser(
        "axial",
        help="LDH, LCCS and LNRC of an axial T2 slice at a disc level (multi-task ResNet, Grad-CAM)",
        description=(
            "Grade an axial T2-weighted slice through a lumbar disc with the multi-task classifier (a ResNet\\n"
            "backbone and three heads): lumbar disc herniation (LDH 0-3, against the intra-facet line),\\n"
            "central canal stenosis (LCCS 0-3, from the cauda equina and CSF) and nerve-root compromise\\n"
            "(LNRC 0-3: contact, dorsal deviation, compression; the worse side), each with its probabilities\\n"
            "and the dichotomous grading 0-1 vs 2-3.\\n"
            "IMAGE is a picture (PNG/JPG, displayed radiologically: anterior up, patient's right on the left)\\n"
            "or a 2D/3D NIfTI/NRRD/MHA/DICOM; of a 3D axial series the middle slice is graded (the output says\\n"
            "which; --slice picks another). --roi grades a box of the slice instead of the whole slice.\\n\\n"
            "Writes OUTDIR/grades.json, OUTDIR/gradcam_<grading>.nii.gz (Grad-CAM on the input's geometry,\\n"
            "to overlay in 3D Slicer) and OUTDIR/gradcam_<grading>.png.\\n\\n"
            "example:\\n"
            "  spineai grade axial l45_axial.nii.gz -o graded-l45\\n"
            "  spineai grade axial study/ax_t2/ -o out --slice 7 --gradcam ldh\\n\\n"
            "Refused with an explanation: CT, sagittal or coronal series, pictures showing a column of\\n"
            "discs (sagittal slices). The shipped weights are a demo trained on synthetic phantoms: research\\n"
            "use only; not for clinical decisions."
        ),
        formatter_class=_RAW,
    )
    p.add_argument("image", type=Path, help="axial T2 slice (PNG/JPG/...), 2D image, or axial series/volume")
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        help="output folder (new or empty); default: IMAGE's name + '-axial'",
    )
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="model weights (.safetensors with its .json card); default: shipped demo",
    )
    p.add_argument(
        "--gradcam",
        type=_axial_gradings,
        default=["ldh", "lccs", "lnrc"],
        help="gradings to explain: comma-separated ldh,lccs,lnrc, 'all' or 'none' (default all)",
    )
    p.add_argument(
        "--slice",
        type=int,
        default=None,
        dest="slice_index",
        help="for a volume: axial slice index (default: middle)",
    )
    p.add_argument(
        "--roi", type=_box, default=None, help="grade only this box: 'x0,y0,x1,y1' in pixel indices"
    )
    p.add_argument("--overwrite", action="store_true", help="replace files in an existing OUTDIR")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.set_defaults(func=_guarded("grade axial", _run_grade_axial))


def _run_grade_axial(args: argparse.Namespace) -> int:
    import json

    from ..errors import InputError
    from .axial.grades import AXIAL_TASKS
    from .axial.predict import grade_axial

    image = Path(args.image)
    if not image.exists():
        raise InputError(f"The image '{image}' does not exist.", "check the path of the slice or series")
    out = Path(args.out) if args.out is not None else _default_out(image, "axial")
    check_output_dir(out, args.overwrite)
    result = grade_axial(
        image, weights=args.weights, gradcam=args.gradcam, slice_index=args.slice_index, roi=args.roi
    )
    written = result.write(out, overwrite=args.overwrite)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    for note in result.notes:
        print(f"note: {note}")
    print(f"{'grading':<40}{'grade':>6}  meaning{'':<30}P(2-3)")
    for task in AXIAL_TASKS:
        g = result.grades[task.key]
        print(
            f"{task.title:<40}{g:>6}  {task.grade_names[g]:<37}{result.dichotomous[task.key]['p_grade_2_or_3']:.2f}"
        )
    print(f"results: {written['grades_json'].parent}  (research use only; not for clinical decisions)")
    return 0


def _add_grade_stenosis(tasks: argparse._SubParsersAction) -> None:
    p = tasks.add_parser(
        "stenosis",
        help="detect and grade central canal, lateral recess and foraminal stenosis on an axial slice",
        description=(
            "Two-stage stenosis model on an axial T2-weighted slice through a lumbar disc: stage 1 detects\\n"
            "five regions as boxes (central canal, left and right lateral recess, left and right neural\\n"
            "foramen; left = the patient's left); stage 2 grades each region's crop normal / mild / moderate /\\n"
            "severe, with the dichotomous grading normal-mild vs moderate-severe.\\n"
            "IMAGE as for 'spineai grade axial' (of a 3D axial series the middle slice; --slice picks another).\\n\\n"
            "Writes OUTDIR/stenosis.tsv and stenosis.json (one row per region: box in pixel indices and mm,\\n"
            "detection confidence, grade, probabilities), OUTDIR/gradcam_stenosis.nii.gz (Grad-CAM of every\\n"
            "region on the input's geometry) and OUTDIR/gradcam_stenosis.png (boxes, grades and map).\\n\\n"
            "example:\\n"
            "  spineai grade stenosis l45_axial.nii.gz -o regions-l45\\n\\n"
            "Refused: CT, sagittal or coronal input, slices on which no spinal canal is recognised. The shipped\\n"
            "weights are a demo trained on synthetic phantoms: research use only; not for clinical decisions."
        ),
        formatter_class=_RAW,
    )
    p.add_argument("image", type=Path, help="axial T2 slice (PNG/JPG/...), 2D image, or axial series/volume")
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        help="output folder (new or empty); default: IMAGE's name + '-stenosis'",
    )
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="model weights (.safetensors with its .json card); default: shipped demo",
    )
    p.add_argument("--no-gradcam", action="store_true", help="skip the Grad-CAM maps")
    p.add_argument(
        "--slice",
        type=int,
        default=None,
        dest="slice_index",
        help="for a volume: axial slice index (default: middle)",
    )
    p.add_argument(
        "--min-confidence",
        type=float,
        default=0.2,
        help="refuse the slice when the central canal's detection confidence is below this (default 0.2)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace files in an existing OUTDIR")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.set_defaults(func=_guarded("grade stenosis", _run_grade_stenosis))


def _run_grade_stenosis(args: argparse.Namespace) -> int:
    import json

    from ..errors import InputError
    from .axial.grades import STENOSIS_NAMES
    from .stenosis.predict import grade_stenosis

    image = Path(args.image)
    if not image.exists():
        raise InputError(f"The image '{image}' does not exist.", "check the path of the slice or series")
    out = Path(args.out) if args.out is not None else _default_out(image, "stenosis")
    check_output_dir(out, args.overwrite)
    result = grade_stenosis(
        image,
        weights=args.weights,
        gradcam=not args.no_gradcam,
        slice_index=args.slice_index,
        min_confidence=args.min_confidence,
    )
    written = result.write(out, overwrite=args.overwrite)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    for note in result.notes:
        print(f"note: {note}")
    print(f"{'region':<24}{'grade':<10}{'P(mod-sev)':>11}{'confidence':>12}")
    for r in result.regions:
        print(f"{r.region:<24}{STENOSIS_NAMES[r.grade]:<10}{r.p_moderate_severe:>11.2f}{r.confidence:>12.2f}")
    print(f"results: {written['table_tsv'].parent}  (research use only; not for clinical decisions)")
    return 0


# ----------------------------------------------------------------------------------------------- train
def _train_subparsers(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction | None:
    """The sub-parsers of an existing top-level ``train`` command, if there is one."""
    train = subparsers.choices.get("train")
    if train is None:
        return None
    for action in train._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _attach_train_tasks(subparsers: argparse._SubParsersAction) -> None:
    train_sub = _train_subparsers(subparsers)
    if train_sub is not None:
        add_train_parser(train_sub)


def add_train_parser(train_subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add ``grading-axial`` and ``stenosis`` to the sub-parsers of ``spineai train`` (once)."""
    if "grading-axial" not in train_subparsers.choices:
        _add_train_axial(train_subparsers)
    if "stenosis" not in train_subparsers.choices:
        _add_train_stenosis(train_subparsers)
    return train_subparsers


_MANIFEST_HELP = (
    "Folder: DIR/manifest.csv, one row per image: image (path relative to DIR; PNG/JPG or 2D/3D\\n"
    "NIfTI/NRRD/MHA/DICOM), ldh, lccs, lnrc (grades 0-3), optional patient (rows of a patient stay in one\\n"
    "split) and split (train/val/test). A missing image or a value that is not a grade names the row.\\n"
)
_REGION_HELP = (
    "Folder: DIR/manifest.csv, one row per image: image, and per region (central_canal,\\n"
    "lateral_recess_left, lateral_recess_right, foramen_left, foramen_right; left = the patient's left) its\\n"
    "grade (0-3 or normal/mild/moderate/severe) and box <region>_x0,_y0,_x1,_y1 in pixel indices (x =\\n"
    "column); optional patient and split. Blank cells leave a region out.\\n"
)


def _add_train_axial(train_sub: argparse._SubParsersAction) -> None:
    from .axial.config import PAPER_CONFIG

    p = train_sub.add_parser(
        "grading-axial",
        help="train the multi-task axial grader (LDH, LCCS, LNRC) on a folder of graded slices",
        description=(
            "Train the multi-task axial grader (seed 004): a MONAI ResNet (default ResNet-50, 2048-d feature)\\n"
            "with three heads, cross-entropy, Adam (lr 1e-3, weight decay 1e-4), batch 16, 100 epochs, random\\n"
            "rotation +-15 degrees and random crop. Every setting can be changed; --depth 10 --widen 0.125\\n"
            "--input-size 128 trains a small network in minutes on a CPU. The patients are split (seeded)\\n"
            "into training and validation; the epoch with the best validation accuracy is kept and its\\n"
            "figures go into the model card.\\n\\n"
            + _MANIFEST_HELP
            + "\\nWrites OUT/<name>.safetensors and OUT/<name>.json (model card with SHA-256); grade with\\n"
            "'spineai grade axial IMAGE --weights OUT/<name>.safetensors'.\\n\\n"
            "example:\\n"
            "  spineai train grading-axial --data site_axial --out models\\n"
            "  spineai train grading-axial --data phantoms --out models --depth 10 --widen 0.125 --input-size 128 --epochs 20"
        ),
        formatter_class=_RAW,
    )
    p.add_argument("--data", type=Path, required=True, help="folder with manifest.csv (or the CSV)")
    p.add_argument("--out", type=Path, required=True, help="output folder for the weights and card")
    p.add_argument("--name", default="axial_grader", help="model name and file stem (default axial_grader)")
    p.add_argument("--epochs", type=int, default=100, help="epochs (default 100)")
    p.add_argument("--batch-size", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--lr", type=float, default=1e-3, help="initial learning rate (default 1e-3)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="Adam weight decay (default 1e-4)")
    p.add_argument(
        "--lr-schedule",
        choices=("cosine", "constant"),
        default="cosine",
        help="learning-rate schedule (default cosine)",
    )
    p.add_argument(
        "--rotation", type=float, default=15.0, help="random rotation range +- degrees (default 15)"
    )
    p.add_argument(
        "--crop",
        type=float,
        default=0.8,
        help="smallest random-crop side as a fraction of the image (default 0.8)",
    )
    p.add_argument(
        "--depth",
        type=int,
        default=PAPER_CONFIG["depth"],
        choices=(10, 18, 34, 50, 101, 152),
        help="ResNet depth (default 50)",
    )
    p.add_argument(
        "--widen", type=float, default=PAPER_CONFIG["widen_factor"], help="ResNet width factor (default 1.0)"
    )
    p.add_argument(
        "--input-size",
        type=int,
        default=PAPER_CONFIG["input_size"],
        help="network input side in pixels (default 224)",
    )
    p.add_argument("--no-max-pool", action="store_true", help="drop the stem's max-pool (finer Grad-CAM)")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout before the heads (default 0)")
    p.add_argument(
        "--val-fraction", type=float, default=0.15, help="share of patients for validation (default 0.15)"
    )
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1)")
    p.add_argument(
        "--max-minutes", type=float, default=None, help="stop after this many minutes (at an epoch's end)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing weights and card")
    p.set_defaults(func=_guarded("train grading-axial", _run_train_axial))


def _run_train_axial(args: argparse.Namespace) -> int:
    from .axial.evaluate import summary_lines
    from .axial.train import AxialTrainConfig, train_axial_from_folder

    cfg = AxialTrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        lr_schedule=args.lr_schedule,
        rotation_deg=args.rotation,
        crop_scale=(args.crop, 1.0),
        seed=args.seed,
        threads=args.threads,
        max_minutes=args.max_minutes,
        architecture={
            "depth": args.depth,
            "widen_factor": args.widen,
            "conv1_stride": 2,
            "no_max_pool": bool(args.no_max_pool),
            "dropout": args.dropout,
            "input_size": args.input_size,
        },
    )
    out = train_axial_from_folder(
        args.data,
        args.out,
        cfg,
        name=args.name,
        val_fraction=args.val_fraction,
        overwrite=args.overwrite,
        log=print,
    )
    if out["metrics"]:
        val = out["metrics"]["validation"]
        for line in summary_lines(
            {"images": val["images"], "split": "validation", "metrics": val["metrics"]}
        ):
            print(line)
    print(f"weights: {out['weights']}\\ncard: {out['card']}")
    return 0


def _add_train_stenosis(train_sub: argparse._SubParsersAction) -> None:
    p = train_sub.add_parser(
        "stenosis",
        help="train the two-stage stenosis model (region detector + region classifier)",
        description=(
            "Train the two-stage stenosis model: stage 1, a U-Net heat-map detector of the five regions as\\n"
            "boxes; stage 2, a ResNet classifier of each region's crop (normal/mild/moderate/severe). The\\n"
            "patients are split (seeded) into training and validation; both stages keep their best\\n"
            "validation state and the end-to-end validation figures go into the model card.\\n\\n"
            + _REGION_HELP
            + "\\nWrites OUT/<name>.safetensors and OUT/<name>.json.\\n\\n"
            "example:\\n"
            "  spineai train stenosis --data site_axial --out models --detector-iterations 3000 --epochs 40"
        ),
        formatter_class=_RAW,
    )
    p.add_argument("--data", type=Path, required=True, help="folder with manifest.csv (or the CSV)")
    p.add_argument("--out", type=Path, required=True, help="output folder for the weights and card")
    p.add_argument("--name", default="stenosis", help="model name and file stem (default stenosis)")
    p.add_argument("--detector-iterations", type=int, default=1500, help="detector iterations (default 1500)")
    p.add_argument("--detector-size", type=int, default=96, help="detector input side in pixels (default 96)")
    p.add_argument("--epochs", type=int, default=30, help="classifier epochs (default 30)")
    p.add_argument("--batch-size", type=int, default=32, help="classifier batch size (default 32)")
    p.add_argument("--lr", type=float, default=1e-3, help="classifier learning rate (default 1e-3)")
    p.add_argument("--crop-size", type=int, default=64, help="classifier crop side in pixels (default 64)")
    p.add_argument(
        "--depth", type=int, default=10, choices=(10, 18, 34, 50), help="classifier ResNet depth (default 10)"
    )
    p.add_argument(
        "--widen", type=float, default=0.125, help="classifier ResNet width factor (default 0.125)"
    )
    p.add_argument(
        "--val-fraction", type=float, default=0.15, help="share of patients for validation (default 0.15)"
    )
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1)")
    p.add_argument("--max-minutes", type=float, default=None, help="time limit per stage in minutes")
    p.add_argument("--overwrite", action="store_true", help="replace existing weights and card")
    p.set_defaults(func=_guarded("train stenosis", _run_train_stenosis))


def _run_train_stenosis(args: argparse.Namespace) -> int:
    from .stenosis.classifier import GRADER_DEFAULTS
    from .stenosis.detector import DETECTOR_DEFAULTS
    from .stenosis.evaluate import summary_lines
    from .stenosis.train import DetectorTrainConfig, RoiGraderTrainConfig, train_stenosis_from_folder

    det = DetectorTrainConfig(
        iterations=args.detector_iterations,
        seed=args.seed,
        threads=args.threads,
        max_minutes=args.max_minutes,
        architecture={**DETECTOR_DEFAULTS, "size": args.detector_size},
    )
    cls = RoiGraderTrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        seed=args.seed,
        threads=args.threads,
        max_minutes=args.max_minutes,
        architecture={
            **GRADER_DEFAULTS,
            "depth": args.depth,
            "widen_factor": args.widen,
            "crop_size": args.crop_size,
        },
    )
    out = train_stenosis_from_folder(
        args.data,
        args.out,
        det,
        cls,
        name=args.name,
        val_fraction=args.val_fraction,
        overwrite=args.overwrite,
        log=print,
    )
    if out["metrics"]:
        val = out["metrics"]["validation"]
        for line in summary_lines(
            {"images": val["images"], "split": "validation", "metrics": val["metrics"]}
        ):
            print(line)
    print(f"weights: {out['weights']}\\ncard: {out['card']}")
    return 0


# --------------------------------------------------------------------------------- evaluate (axial)
def _add_evaluate_axial(evaluate_subparsers: argparse._SubParsersAction) -> None:
    p = evaluate_subparsers.add_parser(
        "grading-axial",
        help="evaluate the axial grader (LDH, LCCS, LNRC) on a folder of graded slices",
        description=(
            "Grade every image of a folder with the axial grader and compare with its grades, with the\\n"
            "paper's metrics per grading: precision, accuracy, sensitivity, specificity and F1 (per grade and\\n"
            "averaged), confusion matrix, Cohen's kappa, Gwet's kappa (AC1) with 95% CI, and the ROC of the\\n"
            "dichotomous grading 0-1 vs 2-3 (AUC with DeLong CI). The paper's internal-test figures are\\n"
            "printed beside them.\\n\\n" + _MANIFEST_HELP + "\\nexample:\\n"
            "  spineai evaluate grading-axial --data test_axial --weights models/axial_grader.safetensors --json eval.json"
        ),
        formatter_class=_RAW,
    )
    _add_manifest_evaluation_options(p, "evaluate grading-axial", _run_evaluate_axial)


def _add_manifest_evaluation_options(
    p: argparse.ArgumentParser, command: str, run: Callable[[argparse.Namespace], int]
) -> None:
    """Options shared by the evaluations of a folder of graded slices (manifest.csv): data, report, model."""
    p.add_argument("--data", type=Path, required=True, help="folder with manifest.csv (or the CSV)")
    p.add_argument("--json", type=Path, required=True, help="report file to write (JSON)")
    p.add_argument("--weights", type=Path, default=None, help="model weights (default: shipped demo)")
    p.add_argument(
        "--split",
        choices=("all", "train", "val", "test"),
        default="all",
        help="rows to evaluate by the manifest's split column (default all)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=_guarded(command, run))


def _evaluate_manifest(
    args: argparse.Namespace,
    evaluate: Callable[..., dict[str, Any]],
    summary_lines: Callable[[dict[str, Any]], Iterable[str]],
) -> int:
    """Run ``evaluate(data, weights=, split=)``, write its report to ``--json`` and print its summary."""
    from ..outputs import check_writable, write_json

    check_writable(args.json, args.overwrite)
    report = evaluate(args.data, weights=args.weights, split=args.split)
    write_json(args.json, report, overwrite=args.overwrite)
    for line in summary_lines(report):
        print(line)
    print(f"report: {args.json}")
    return 0


def _run_evaluate_axial(args: argparse.Namespace) -> int:
    from .axial.evaluate import evaluate_axial, summary_lines

    return _evaluate_manifest(args, evaluate_axial, summary_lines)


def _add_evaluate_stenosis(evaluate_subparsers: argparse._SubParsersAction) -> None:
    p = evaluate_subparsers.add_parser(
        "stenosis",
        help="evaluate the two-stage stenosis model (detection and grading per region)",
        description=(
            "Run both stages of the stenosis model on every image of a folder and compare with its region\\n"
            "boxes and grades: per region and region kind, detection (box IoU, recall at IoU 0.5 and 0.3,\\n"
            "centre error in pixels and mm) and grading (four-grade accuracy, kappa, linear-weighted kappa,\\n"
            "Gwet's AC1, confusion matrix; dichotomous normal/mild vs moderate/severe kappa, recall,\\n"
            "specificity, AUC). Hallinan et al.'s figures are printed beside them.\\n\\n"
            + _REGION_HELP
            + "\\nexample:\\n"
            "  spineai evaluate stenosis --data test_axial --json stenosis_eval.json"
        ),
        formatter_class=_RAW,
    )
    _add_manifest_evaluation_options(p, "evaluate stenosis", _run_evaluate_stenosis)


def _run_evaluate_stenosis(args: argparse.Namespace) -> int:
    from .stenosis.evaluate import evaluate_stenosis, summary_lines

    return _evaluate_manifest(args, evaluate_stenosis, summary_lines)
