"""The ``spineai`` command line: one subcommand per job.

Every subcommand is a thin layer over the Python API; ``spineai <command> --help`` shows an example.
Capabilities register their subcommands here only when their engine module exists, so the menu never
offers something the engine cannot do.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import SpineAIError

EPILOG_MAIN = """\
examples:
  spineai demo                              # phantom -> pictures and results in ./spineai-demo
  spineai phantom -o phantoms --count 5     # five synthetic lumbosacral CT cases with truth.json
  spineai <command> --help                  # each command's options and an example

Research use only; not for clinical decisions. SpineAI sends nothing anywhere.
"""


def _raw(description: str) -> dict:
    return {"description": description, "formatter_class": argparse.RawDescriptionHelpFormatter}


def _spacing(text: str) -> tuple[float, float, float]:
    parts = [float(p) for p in text.replace(",", " ").split()]
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3 or any(p <= 0 or p > 10 for p in parts):
        raise argparse.ArgumentTypeError(
            f"spacing '{text}' must be one or three numbers in (0, 10] mm, e.g. 1 or '0.7,0.7,3'"
        )
    return (parts[0], parts[1], parts[2])


# --------------------------------------------------------------------------------------------- phantom
def _add_phantom(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "phantom",
        help="generate synthetic lumbosacral CT cases with exact ground truth",
        **_raw(
            "Generate synthetic lumbosacral CT phantoms (L3..S1, ilium, discs, dural sac, nerve roots) in\n"
            "Hounsfield units, each with its canonical label map and a truth.json holding the generative\n"
            "parameters and the ground-truth Kambin and safe triangles (LPS, mm).\n\n"
            "example:\n  spineai phantom -o phantoms --seed 100 --count 10 --spacing 0.7,0.7,3\n\n"
            "Each case goes to OUT/case_<seed>/ (one folder per seed; with --count 1, to OUT itself)."
        ),
    )
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder (must be new or empty)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first case (default 0)")
    p.add_argument("--count", type=int, default=1, help="number of cases, seeds seed..seed+count-1")
    p.add_argument("--spacing", type=_spacing, default=None, help="voxel spacing in mm: '1' or '0.7,0.7,3'")
    p.add_argument("--overwrite", action="store_true", help="replace existing files in OUT")
    p.set_defaults(func=_run_phantom)


def _run_phantom(args: argparse.Namespace) -> int:
    from .outputs import prepare_output_dir
    from .phantom import generate_ct_phantom, write_phantom_case
    from .progress import track

    if args.count < 1:
        raise SystemExit("--count must be at least 1")
    out = prepare_output_dir(args.out, overwrite=args.overwrite)
    overrides = {} if args.spacing is None else {"spacing_mm": args.spacing}
    seeds = range(args.seed, args.seed + args.count)
    for seed in track(seeds, desc="phantom cases"):
        folder = out if args.count == 1 else out / f"case_{seed:04d}"
        case = generate_ct_phantom(seed, **overrides)
        write_phantom_case(case, folder, overwrite=args.overwrite)
        print(f"case {seed}: {folder}")
    return 0


# ------------------------------------------------------------------------------------------------ demo
def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on a generated phantom",
        **_raw(
            "Generate a lumbosacral CT phantom and run every capability the engine has on it, writing the\n"
            "results and pictures into a new folder, then print where they are.\n\n"
            "example:\n  spineai demo --out my-demo --seed 3"
        ),
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default: a new ./spineai-demo[-N])")
    p.add_argument("--seed", type=int, default=7, help="phantom seed (default 7)")
    p.add_argument("--overwrite", action="store_true", help="replace files in an existing --out folder")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    summary = run_demo(out=args.out, seed=args.seed, overwrite=args.overwrite)
    print(summary.text())
    return 0


# -------------------------------------------------------------------------------------- capabilities
#: (engine module, registration function name, parent command or None for top level)
_CAPABILITY_PARSERS: tuple[tuple[str, str, str | None], ...] = (
    ("spineai.segmentation.cli", "add_segment_parser", None),
    ("spineai.segmentation.cli", "add_train_parser", "train"),
    ("spineai.segmentation.cli", "add_evaluate_parser", "evaluate"),
    ("spineai.planning.cli", "add_measure_parser", None),
    ("spineai.planning.cli", "add_plan_parser", None),
    ("spineai.planning.cli", "add_evaluate_parser", "evaluate"),
    ("spineai.grading.cli", "add_grade_parser", None),
    ("spineai.grading.cli", "add_train_parser", "train"),
    ("spineai.grading.cli", "add_evaluate_parser", "evaluate"),
    ("spineai.outcome.cli", "add_outcome_parser", None),
    ("spineai.outcome.cli", "add_train_parser", "train"),
    ("spineai.outcome.cli", "add_evaluate_parser", "evaluate"),
    ("spineai.radiograph.cli", "add_radiograph_parser", None),
    ("spineai.radiograph.cli", "add_train_parser", "train"),
    ("spineai.radiograph.cli", "add_evaluate_parser", "evaluate"),
    ("spineai.levels.cli", "add_levels_parser", None),
    ("spineai.levels.cli", "add_morphometry_parser", None),
    ("spineai.batch.cli", "add_batch_parser", None),
    ("spineai.reports.cli", "add_report_parser", None),
)


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def build_parser() -> argparse.ArgumentParser:
    """The full ``spineai`` argument parser (capabilities present in this installation only)."""
    parser = argparse.ArgumentParser(
        prog="spineai",
        **_raw(
            "SpineAI: lumbosacral CT segmentation, Kambin's and safe triangle measurement, tESI planning\n"
            "and lumbar spine grading. Engine of the SpineAI 3D Slicer extension."
        ),
        epilog=EPILOG_MAIN,
    )
    parser.add_argument("--version", action="version", version=f"spineai {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    _add_demo(sub)
    _add_phantom(sub)

    parents: dict[str, argparse._SubParsersAction] = {}
    for module_name, function_name, parent in _CAPABILITY_PARSERS:
        if not _module_exists(module_name):
            continue
        module = importlib.import_module(module_name)
        register = getattr(module, function_name, None)
        if register is None:
            continue
        if parent is None:
            register(sub)
            continue
        if parent not in parents:
            pp = sub.add_parser(
                parent,
                help=f"{parent} a model (see 'spineai {parent} --help')",
                **_raw(f"{parent.capitalize()} a model. Choose the task:"),
            )
            parents[parent] = pp.add_subparsers(dest=f"{parent}_task", metavar="<task>")
            pp.set_defaults(func=lambda a, _p=pp: (_p.print_help(), 2)[1])
        register(parents[parent])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (SpineAIError, FileExistsError, FileNotFoundError, ValueError) as exc:
        if args.debug or os.environ.get("SPINEAI_DEBUG"):
            traceback.print_exc()
        print(f"spineai {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"spineai {args.command}: interrupted; finished outputs are kept, partial ones removed.",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
