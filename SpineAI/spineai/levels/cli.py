"""Command-line parsers of the level labelling and the morphometry: ``spineai levels`` and ``spineai morphometry``.

Each ``add_*_parser`` adds one parser to the given sub-parsers and sets ``func(args) -> int`` (exit code 0
on success, 1 with a plain-words error on stderr). Nothing existing in the output folder is replaced
without ``--overwrite``.
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
            "pass a label map: labels.nii.gz with its labels.json sidecar, or a .seg.nrrd",
        )
    return io.read_labelmap(path, mapping=convention)


# --------------------------------------------------------------------------------------------- levels
def add_levels_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``spineai levels``."""
    p = subparsers.add_parser(
        "levels",
        help="number the vertebrae from the sacrum upward, flag transitional anatomy (Castellvi), relabel",
        description=(
            "Number the vertebrae of a segmentation from the sacrum (and the last rib-bearing vertebra, when\n"
            "the CT shows it) upward, whatever names the segmentation gave them; rename the discs and nerve\n"
            "roots to match; flag a transitional lumbosacral vertebra with its Castellvi type per side, an\n"
            "L6 (VerSe label 25) or a lumbarised S1; give each level a confidence and the evidence. Writes\n"
            "OUTDIR/labels.seg.nrrd, OUTDIR/labels.nii.gz (+ labels.json), OUTDIR/levels.json and\n"
            "OUTDIR/levels.tsv; with --measure also OUTDIR/measurements.json (Kambin's and the safe triangle)\n"
            "and OUTDIR/morphometry.json, named by the new levels. Coordinates are LPS, mm.\n\n"
            "Overrides: --override lowest=L6 (the lowest mobile vertebra is L6), --override shift=+1 (every\n"
            "vertebra one level lower; -1 one level higher). Research use only; not for clinical decisions."
        ),
        epilog=(
            "example:\n  spineai levels case01-seg/labels.nii.gz --ct case01/ct.nii.gz -o case01-levels\n"
            "  spineai levels seg.seg.nrrd -o out --override lowest=L6 --measure"
        ),
        formatter_class=_RAW,
    )
    p.add_argument(
        "segmentation", type=Path, help="label map (.nii.gz with labels.json sidecar, or .seg.nrrd)"
    )
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder (new or empty)")
    p.add_argument(
        "--ct", type=Path, default=None, help="the CT of the segmentation (ribs, unlabelled sacrum)"
    )
    p.add_argument("--override", default=None, metavar="RULE", help="'lowest=L6', 'shift=+1' or 'shift=-1'")
    p.add_argument(
        "--label-convention",
        default=None,
        help="convention of a label file without sidecar: canonical, verse, totalseg_v2, tptbox_vertebra, ...",
    )
    p.add_argument(
        "--measure",
        action="store_true",
        help="also measure the triangles and the morphometry on the new labels",
    )
    p.add_argument("--overwrite", action="store_true", help="replace files in an existing OUTDIR")
    p.set_defaults(func=_guarded("levels", _run_levels))
    return p


def _run_levels(args: argparse.Namespace) -> int:
    from .labelling import label_levels
    from .outputs import remeasure, write_levels_outputs

    out = Path(args.out)
    check_output_dir(out, args.overwrite)
    labels = _read_labels(args.segmentation, args.label_convention)
    result = label_levels(labels, ct=args.ct, override=args.override)
    triangles = morph = None
    if args.measure:
        from .morphometry import measure_morphometry

        triangles = remeasure(result)
        morph = measure_morphometry(result.labelmap)
    written = write_levels_outputs(
        result, out, overwrite=args.overwrite, triangles=triangles, morphometry=morph
    )
    print(f"Levels of {args.segmentation} -> {out.resolve()}")
    for v in result.vertebrae:
        extra = f"  [{', '.join(v.flags)}]" if v.flags else ""
        print(f"  {v.name:<4} (input '{v.input_name}')  confidence {v.confidence:.2f}{extra}")
    tr = result.transitional
    if tr.get("vertebra"):
        sides = ", ".join(f"{s} {e['type']}" for s, e in tr.get("castellvi", {}).items())
        print(f"  lumbosacral junction: {tr['vertebra']}, Castellvi {tr.get('castellvi_type')} ({sides})")
    for line in result.evidence:
        print(f"  evidence: {line}")
    for name, path in written.items():
        print(f"  {name:<18} {path}")
    for w in result.warnings:
        print(f"spineai: warning: {w}", file=sys.stderr)
    print("Research use only; not for clinical decisions.")
    return 0


# ---------------------------------------------------------------------------------------- morphometry
def add_morphometry_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``spineai morphometry``."""
    p = subparsers.add_parser(
        "morphometry",
        help="disc heights, canal area and diameter, foramina and lateral recesses per level",
        description=(
            "Measure, at every level whose disc and two vertebrae are labelled: disc height (anterior,\n"
            "middle, posterior), spinal canal (dural sac) cross-sectional area and antero-posterior diameter\n"
            "in the disc mid-plane, foraminal height, width and area per side, and lateral recess depth per\n"
            "side (mm, mm2; constructions in docs/morphometry.md). Names are used as given: run 'spineai\n"
            "levels' first when the numbering may be wrong. Writes OUTDIR/morphometry.json and .tsv.\n"
            "Research use only; not for clinical decisions."
        ),
        epilog=(
            "example:\n  spineai morphometry case01-levels/labels.nii.gz -o case01-morphometry\n"
            "  spineai morphometry seg.seg.nrrd -o out --levels L4-L5 L5-S1"
        ),
        formatter_class=_RAW,
    )
    p.add_argument(
        "segmentation", type=Path, help="label map (.nii.gz with labels.json sidecar, or .seg.nrrd)"
    )
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder (new or empty)")
    p.add_argument(
        "--levels", nargs="+", default=None, metavar="LEVEL", help="levels (default: every labelled one)"
    )
    p.add_argument("--label-convention", default=None, help="convention of a label file without sidecar")
    p.add_argument("--overwrite", action="store_true", help="replace files in an existing OUTDIR")
    p.set_defaults(func=_guarded("morphometry", _run_morphometry))
    return p


def _run_morphometry(args: argparse.Namespace) -> int:
    from .morphometry import measure_morphometry, write_morphometry

    out = Path(args.out)
    check_output_dir(out, args.overwrite)
    labels = _read_labels(args.segmentation, args.label_convention)
    result = measure_morphometry(labels, levels=args.levels)
    written = write_morphometry(result, out, overwrite=args.overwrite)
    print(f"Morphometry of {args.segmentation} -> {out.resolve()}")
    for m in result.levels:
        d = m.disc_height_mm
        line = f"  {m.level}: "
        if d:
            line += f"disc {d['anterior']:.1f}/{d['middle']:.1f}/{d['posterior']:.1f} mm"
        if m.canal_area_mm2 is not None:
            line += f", canal {m.canal_area_mm2:.0f} mm2 ({m.canal_ap_mm:.1f} mm AP)"
        for side in ("left", "right"):
            f = m.foramen.get(side, {})
            if f.get("status") == "ok":
                line += (
                    f", {side} foramen {f['height_mm']:.1f} x {f['width_mm']:.1f} mm, {f['area_mm2']:.0f} mm2"
                )
        print(line)
    for name, path in written.items():
        print(f"  {name:<18} {path}")
    for w in result.warnings:
        print(f"spineai: warning: {w}", file=sys.stderr)
    print("Research use only; not for clinical decisions.")
    return 0
