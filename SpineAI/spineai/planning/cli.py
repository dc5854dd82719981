"""Command-line parsers of the triangle measurement and injection planning: ``measure`` and ``plan``.

Each ``add_*_parser`` adds one parser to the given sub-parsers and sets ``func(args) -> int`` (exit code:
0 when at least one foramen was measured, 1 with a plain-words error on stderr otherwise). With the
environment variable ``SPINEAI_PROGRESS=lines`` progress is printed as ``PROGRESS <percent> <message>``
lines on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli_support import guarded as _guarded
from ..outputs import check_output_dir

_RAW = argparse.RawDescriptionHelpFormatter


def _read_labels(path: Path, convention: str | None):
    from .. import io
    from ..errors import InputError

    if not Path(path).exists():
        raise InputError(
            f"Segmentation '{path}' does not exist.",
            "pass the label map written by 'spineai segment' (labels.nii.gz or segmentation.seg.nrrd)",
        )
    return io.read_labelmap(path, mapping=convention)


def _print_summary(result, written) -> int:
    for fm in result.foramina:
        if not fm.ok:
            print(f"  {fm.level} {fm.side}: not measured ({fm.status}): {fm.message}")
            continue
        k, s = fm.triangles["kambin"], fm.triangles["safe"]
        line = f"  {fm.level} {fm.side}: Kambin {k.area_mm2:.1f} mm2, safe {s.area_mm2:.1f} mm2"
        for tri in (k, s):
            b = tri.best_view
            if b is not None:
                line += (
                    f"; {tri.kind} best view oblique {b.oblique_deg:.0f} tilt {b.tilt_deg:+.0f} -> "
                    f"{b.window_mm2:.0f} mm2{'' if b.usable else ' (NOT usable)'}"
                )
        print(line)
        if fm.recommended:
            p = fm.paths[fm.recommended]
            print(
                f"      needle ({fm.recommended}): {p.length_mm:.0f} mm"
                f"{'' if p.reaches_with_standard_needle else ' (longer than a 90 mm needle)'}, "
                f"{p.min_distance_nerve_mm:.1f} mm from nerve, {p.min_distance_bone_mm:.1f} mm from bone"
            )
        else:
            print(f"      {fm.recommendation}")
    for name, path in written.items():
        print(f"  {name:<22} {path}")
    for w in result.warnings:
        print(f"spineai: warning: {w}", file=sys.stderr)
    print("Research use only; not for clinical decisions.")
    return 0 if result.measured else 1


# -------------------------------------------------------------------------------------------- measure
def add_measure_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``spineai measure``."""
    p = subparsers.add_parser(
        "measure",
        help="measure Kambin's and the safe triangle, find the best C-arm view and plan the needle",
        description=(
            "Measure Kambin's triangle and the safe triangle at each level and side from a segmentation\n"
            "(canonical labels: vertebrae, discs, nerve roots), search the C-arm view (oblique 0-45, tilt\n"
            "-30..+30 degrees) that opens each triangle most, and plan a straight needle path. Writes\n"
            "OUTDIR/measurements.json and .tsv, OUTDIR/planning.mrk.json (3D Slicer markups), one\n"
            "OUTDIR/carm_<level>_<side>.png per foramen (radiograph at the planned angles) and\n"
            "OUTDIR/render3d.png. Coordinates are LPS, mm.\n\n"
            "example:\n  spineai measure case01-seg/labels.nii.gz --ct case01/ct.nii.gz -o case01-plan\n"
            "  spineai measure seg.seg.nrrd -o out --levels L5-S1 --sides left\n\n"
            "Research use only; not for clinical decisions."
        ),
        formatter_class=_RAW,
    )
    p.add_argument(
        "segmentation", type=Path, help="label map (.nii.gz with labels.json sidecar, or .seg.nrrd)"
    )
    p.add_argument(
        "--ct", type=Path, default=None, help="the CT the segmentation was made from (skin, radiographs)"
    )
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder (new or empty)")
    p.add_argument(
        "--levels",
        nargs="+",
        default=["L4-L5", "L5-S1"],
        metavar="LEVEL",
        help="levels to measure (default: L4-L5 L5-S1)",
    )
    p.add_argument(
        "--sides",
        nargs="+",
        default=["left", "right"],
        choices=("left", "right"),
        help="patient sides (default: both)",
    )
    p.add_argument(
        "--label-convention",
        default=None,
        help="convention of a label file without sidecar: canonical, verse, totalseg_v2, ...",
    )
    p.add_argument("--no-images", action="store_true", help="skip the radiograph and 3D pictures")
    p.add_argument("--overwrite", action="store_true", help="replace files in an existing OUTDIR")
    p.set_defaults(func=_guarded("measure", _run_measure))
    return p


def _run_measure(args: argparse.Namespace) -> int:
    from .case import plan_case, write_case_outputs

    out = Path(args.out)
    check_output_dir(out, args.overwrite)
    labels = _read_labels(args.segmentation, args.label_convention)
    result = plan_case(labels, ct=args.ct, levels=args.levels, sides=args.sides)
    written = write_case_outputs(result, out, overwrite=args.overwrite, images=not args.no_images)
    print(f"Triangles of {args.segmentation} -> {out.resolve()}")
    return _print_summary(result, written)


# ----------------------------------------------------------------------------------------------- plan
def add_plan_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``spineai plan``."""
    p = subparsers.add_parser(
        "plan",
        help="evaluate one C-arm view: triangles, accessible windows and the needle path along it",
        description=(
            "Evaluate a C-arm view you choose for one level and side: Kambin's and the safe triangle as\n"
            "seen at that view, their accessible windows, what hides them, and the coaxial needle path\n"
            "to each (length, angles, clearances). Angles are in the level's frame (C-arm squared to the\n"
            "inferior endplate of the upper vertebra): --oblique toward the side (0-45), --tilt positive\n"
            "= cranial. Writes the same files as 'spineai measure' for that foramen.\n\n"
            "example:\n  spineai plan case01-seg/labels.nii.gz --ct case01/ct.nii.gz -o plan-l5s1 \\\n"
            "      --level L5-S1 --side left --oblique 20 --tilt 10\n\n"
            "Research use only; not for clinical decisions."
        ),
        formatter_class=_RAW,
    )
    p.add_argument(
        "segmentation", type=Path, help="label map (.nii.gz with labels.json sidecar, or .seg.nrrd)"
    )
    p.add_argument("--ct", type=Path, default=None, help="the CT the segmentation was made from")
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder (new or empty)")
    p.add_argument("--level", required=True, help="level, e.g. L5-S1")
    p.add_argument("--side", required=True, choices=("left", "right"), help="patient side")
    p.add_argument("--oblique", type=float, default=25.0, help="ipsilateral oblique, degrees (default 25)")
    p.add_argument(
        "--tilt", type=float, default=0.0, help="cranio-caudal tilt, degrees, + = cranial (default 0)"
    )
    p.add_argument("--label-convention", default=None, help="convention of a label file without sidecar")
    p.add_argument("--no-images", action="store_true", help="skip the radiograph and 3D pictures")
    p.add_argument("--overwrite", action="store_true", help="replace files in an existing OUTDIR")
    p.set_defaults(func=_guarded("plan", _run_plan))
    return p


def _run_plan(args: argparse.Namespace) -> int:
    from .. import carm
    from .case import write_case_outputs
    from .needle import plan_paths
    from .triangles import measure_triangles
    from .views import describe_blocked

    carm.view_direction_lps(args.oblique, args.tilt, args.side)  # validates the angles
    out = Path(args.out)
    check_output_dir(out, args.overwrite)
    labels = _read_labels(args.segmentation, args.label_convention)
    result = measure_triangles(
        labels, ct=args.ct, levels=[args.level], sides=[args.side], view=(args.oblique, args.tilt)
    )
    for fm in result.measured:
        for tri in fm.triangles.values():
            tri.best_view = tri.view
            tri.usable_view = bool(tri.view.usable) if tri.view is not None else False
            if not tri.usable_view and tri.view is not None:
                tri.blocked_reason = describe_blocked(tri.kind, fm.level, fm.side, tri.view).replace(
                    "no C-arm view (oblique 0-45, tilt -30..30) gives", "this view does not give"
                )
    plan_paths(result)
    written = write_case_outputs(result, out, overwrite=args.overwrite, images=not args.no_images)
    print(
        f"Plan of {args.level} {args.side} at oblique {args.oblique:g}, tilt {args.tilt:+g} -> {out.resolve()}"
    )
    return _print_summary(result, written)


# --------------------------------------------------------------------------------- evaluate triangles
def add_evaluate_parser(evaluate_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``spineai evaluate triangles`` (triangle areas on a model's segmentation vs reference masks)."""
    p = evaluate_subparsers.add_parser(
        "triangles",
        help="triangle areas on the model's segmentation vs on reference masks (paired t-test, ICC)",
        description=(
            "The paper's validation, automated: segment every CT of DATA with the model, measure Kambin's\n"
            "and the safe triangle on the segmentation and on the case's reference label map, and report\n"
            "per triangle kind mean +- SD of both (mm2), the paired t-test, ICC(2,1) with its 95% CI and\n"
            "Bland-Altman limits, beside the paper's figures (P = .30 / .79, ICC 0.98 / 0.96).\n"
            "DATA holds cases as 'spineai evaluate segmentation' reads them (e.g. 'spineai phantom' folders).\n\n"
            "example:\n  spineai evaluate triangles --data phantoms/test --json triangle_agreement.json\n\n"
            "Research use only; not for clinical decisions."
        ),
        formatter_class=_RAW,
    )
    p.add_argument("--data", required=True, type=Path, help="folder of cases (CT + reference label map)")
    p.add_argument("--weights", type=Path, default=None, help="segmentation weights (default: shipped model)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--label-convention", default=None, help="convention of label files without sidecar")
    p.add_argument("--levels", nargs="+", default=["L4-L5", "L5-S1"], help="levels (default L4-L5 L5-S1)")
    p.add_argument("--json", type=Path, default=None, help="write the full report (pairs, statistics) here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.add_argument(
        "--mirror-tta",
        action="store_true",
        help="segment with left-right test-time augmentation (as 'spineai segment --mirror-tta')",
    )
    p.set_defaults(func=_guarded("evaluate triangles", _run_evaluate))
    return p


def _run_evaluate(args: argparse.Namespace) -> int:
    from .agreement import evaluate_triangle_agreement, format_agreement

    report = evaluate_triangle_agreement(
        args.data,
        weights=args.weights,
        device=args.device,
        label_convention=args.label_convention,
        levels=args.levels,
        json_out=args.json,
        overwrite=args.overwrite,
        mirror_tta=args.mirror_tta,
    )
    print(format_agreement(report["summary"]))
    for case in report["cases"]:
        for line in case["unpaired"]:
            print(f"  {case['case']}: not paired: {line}")
    if args.json is not None:
        print(f"report written to {Path(args.json).resolve()}")
    return 0 if report["pairs"] else 1
