"""Command-line parsers of the radiograph herniation model: ``radiograph``, ``train radiograph``, ``evaluate radiograph``.

Each ``add_*_parser`` adds one parser to the given sub-parsers and sets ``func(args) -> int`` (exit code: 0 on
success, 1 with a plain-words error on stderr for bad input, missing files or refused overwrites).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli_support import guarded as _guarded

__all__ = ["add_evaluate_parser", "add_radiograph_parser", "add_train_parser"]

_RAW = argparse.RawDescriptionHelpFormatter
_LEVEL_CHOICES = ("max", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")


def _thresholds(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a list of numbers") from None
    if len(values) == 1:
        values = values * 5
    if len(values) != 5 or any(not 0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(
            f"'{text}': give one probability or five (L1-L2 .. L5-S1), each in [0, 1]"
        )
    return values


# ------------------------------------------------------------------------------------------- radiograph
def add_radiograph_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``spineai radiograph``."""
    p = subparsers.add_parser(
        "radiograph",
        help="probability of a herniated disc at each lumbar level from a plain radiograph",
        description=(
            "Predict, from one lumbar radiograph (AP, lateral or oblique; PNG/JPEG export or 2D DICOM), the\n"
            "probability of a herniated disc at L1-L2, L2-L3, L3-L4, L4-L5 and L5-S1 (EfficientNet, CLAHE, bagging\n"
            "ensemble of four cross-validation folds, after the seed paper), with a Grad-CAM heat map of one level\n"
            "on the radiograph's own grid. Writes OUTDIR/radiograph.json, OUTDIR/gradcam_<level>.nrrd (load it in\n"
            "3D Slicer over the radiograph) and OUTDIR/gradcam_overlay.png. Colour photographs, volumes (CT, MR)\n"
            "and radiographs of other regions are refused.\n\n"
            "example:\n  spineai radiograph lumbar_lateral.png -o case01-radiograph\n"
            "  spineai radiograph whole_spine_ap.jpg --boxes whole_spine_ap.txt -o out --gradcam-level L4-L5\n\n"
            "The shipped model is trained on SYNTHETIC radiographs (DRRs of phantoms): a demonstration, not a\n"
            "clinical estimate. Herniation itself is not visible on radiographs (the paper reached AUC 0.63-0.72).\n"
            "Research use only; not for clinical decisions."
        ),
        formatter_class=_RAW,
    )
    p.add_argument("image", type=Path, help="radiograph (.png, .jpg, .bmp, .tif or a 2D DICOM file)")
    p.add_argument(
        "-o", "--out", type=Path, default=None, help="output folder (new or empty); default: print only"
    )
    p.add_argument("--weights", type=Path, default=None, help="site weights (.safetensors + .json card)")
    p.add_argument(
        "--boxes",
        type=Path,
        default=None,
        help="vertebra boxes (YOLO .txt): crop to the five lowest (L1..L5) before predicting",
    )
    p.add_argument(
        "--gradcam-level",
        choices=_LEVEL_CHOICES,
        default="max",
        help="level the heat map explains (default: the most probable)",
    )
    p.add_argument("--no-gradcam", action="store_true", help="skip the heat map")
    p.add_argument(
        "--thresholds",
        type=_thresholds,
        default=None,
        help="decision thresholds: one, or five for L1-L2..L5-S1 (default: the model card's)",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--overwrite", action="store_true", help="replace files in an existing OUTDIR")
    p.set_defaults(func=_guarded("radiograph", _run_radiograph))
    return p


def _run_radiograph(args: argparse.Namespace) -> int:
    import json

    from ..outputs import check_output_dir
    from .predict import read_radiograph

    if args.out is not None:
        check_output_dir(args.out, args.overwrite)
    result = read_radiograph(
        args.image,
        weights=args.weights,
        boxes=args.boxes,
        gradcam=not args.no_gradcam,
        gradcam_level=args.gradcam_level,
        thresholds=args.thresholds,
        device=args.device,
    )
    for lv, prob in result.probabilities.items():
        call = "herniation" if result.predicted[lv] else "no herniation"
        print(f"{lv:6s} P = {prob:.3f} (threshold {result.thresholds[lv]:.3f}) -> {call}")
    if result.age_estimate_years is not None:
        print(f"estimated age {result.age_estimate_years:.0f} years")
    if args.out is not None:
        for name, path in result.save(args.out, overwrite=args.overwrite).items():
            print(f"  {name:<8} {path}")
    else:
        print(json.dumps(result.to_dict(), indent=1))
    for warning in result.warnings:
        print(f"spineai radiograph: warning: {warning}", file=sys.stderr)
    print("Research use only; not for clinical decisions.")
    return 0


# ------------------------------------------------------------------------------------------------ train
def add_train_parser(train_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``spineai train radiograph``."""
    from .train import RadiographTrainConfig

    d = RadiographTrainConfig()
    p = train_subparsers.add_parser(
        "radiograph",
        help="train the radiograph herniation ensemble on your own radiographs",
        description=(
            "Train the per-level herniation model on a site's radiographs with four-fold cross-validation grouped\n"
            "by patient and build the bagging ensemble of the folds. --data is a manifest CSV (columns patient_id,\n"
            "image, view, age, hnp_L1_2, hnp_L2_3, hnp_L3_4, hnp_L4_5, hnp_L5_S1; labels from MRI) or a folder\n"
            "holding manifest.csv. Defaults follow the seed paper: EfficientNet-B5 at 456 px, CLAHE, no flips or\n"
            "rotations, BCE per level, Adam 3e-5 with cosine warm restarts; --age-task adds age regression.\n"
            "Writes OUT/model.safetensors + model.json (thresholds, per-fold figures), fold_<k>.* (resume),\n"
            "cv_patients.csv, history.tsv, train.log. Re-running the same command resumes after the last fold.\n\n"
            "example:\n  spineai train radiograph --data site/manifest.csv --out run1 --epochs 20\n"
            "  spineai train radiograph --data phantoms/ --out demo --model efficientnet-b0 --width 0.5 --size 128 "
            "--lr 1e-3"
        ),
        formatter_class=_RAW,
    )
    p.add_argument("--data", required=True, type=Path, help="manifest CSV or folder with manifest.csv")
    p.add_argument("--out", required=True, type=Path, help="run folder (new, empty, or a run to resume)")
    p.add_argument("--model", default=d.model_name, help=f"MONAI EfficientNet name ({d.model_name})")
    p.add_argument("--width", type=float, default=d.width_multiplier, help="channel-width factor (1)")
    p.add_argument(
        "--size", type=int, default=d.image_size, help=f"square input size in pixels ({d.image_size})"
    )
    p.add_argument("--folds", type=int, default=d.folds, help=f"cross-validation folds ({d.folds})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs per fold ({d.epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"images per step ({d.batch_size})")
    p.add_argument(
        "--lr", type=float, default=d.learning_rate, help=f"Adam learning rate ({d.learning_rate:g})"
    )
    p.add_argument("--age-task", action="store_true", help="add age regression as a second task")
    p.add_argument(
        "--augment",
        action="store_true",
        help="random zoom, shift and contrast of training images (never flips or rotations)",
    )
    p.add_argument(
        "--skip-bad-rows", action="store_true", help="leave out bad manifest rows instead of failing"
    )
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (0)")
    p.add_argument("--device", default=d.device, help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=d.num_threads, help="CPU threads (1)")
    p.add_argument(
        "--model-name", default=d.model_card_name, help=f"name in the model card ({d.model_card_name})"
    )
    p.add_argument("--overwrite", action="store_true", help="replace a run of other settings in --out")
    p.set_defaults(func=_guarded("train radiograph", _run_train))
    return p


def _run_train(args: argparse.Namespace) -> int:
    from .network import LEVELS
    from .train import RadiographTrainConfig, train_radiograph

    cfg = RadiographTrainConfig(
        model_name=args.model,
        width_multiplier=args.width,
        image_size=args.size,
        folds=args.folds,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        age_task=args.age_task,
        augment=args.augment,
        seed=args.seed,
        device=args.device,
        num_threads=args.threads,
        model_card_name=args.model_name,
    )
    result, problems = train_radiograph(
        args.data, args.out, cfg, skip_bad_rows=args.skip_bad_rows, overwrite=args.overwrite
    )
    for line in problems:
        print(f"spineai train radiograph: skipped {line}", file=sys.stderr)
    cv = result.cross_validation["per_level"]
    print("Out-of-fold patient figures (ensemble thresholds):")
    for lv in LEVELS:
        e = cv[lv]
        auc = "n/a" if e["auc"] is None else f"{e['auc']['auc']:.3f}"
        print(f"  {lv:6s} AUC {auc}  threshold {e['threshold']:.3f}  positives {e['n_positive']}")
    print(f"  weights  {result.weights_path}\n  card     {result.card_path}")
    print("Research use only; not for clinical decisions.")
    return 0


# --------------------------------------------------------------------------------------------- evaluate
def add_evaluate_parser(evaluate_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``spineai evaluate radiograph``."""
    p = evaluate_subparsers.add_parser(
        "radiograph",
        help="score the radiograph herniation model per level on labelled patients",
        description=(
            "Predict every image of a manifest (columns as for 'spineai train radiograph'), average the\n"
            "probabilities per patient and report per level the AUC (DeLong 95% CI), precision, recall, F1 and\n"
            "accuracy at the model card's thresholds (or --thresholds), the 'any herniation' AUC, and the seed\n"
            "paper's test figures beside them.\n\n"
            "example:\n  spineai evaluate radiograph --data site/test.csv --weights run1/model.safetensors "
            "--json eval.json\n"
            "  spineai evaluate radiograph --data phantoms-test/ --json demo-eval.json"
        ),
        formatter_class=_RAW,
    )
    p.add_argument("--data", required=True, type=Path, help="manifest CSV or folder with manifest.csv")
    p.add_argument(
        "--weights", type=Path, default=None, help="ensemble weights (default: the shipped demo model)"
    )
    p.add_argument(
        "--json", dest="json_out", type=Path, default=None, help="write the report to this JSON file"
    )
    p.add_argument("--thresholds", type=_thresholds, default=None, help="one or five decision thresholds")
    p.add_argument(
        "--skip-bad-rows", action="store_true", help="leave out bad manifest rows instead of failing"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=_guarded("evaluate radiograph", _run_evaluate))
    return p


def _run_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_radiograph
    from .network import LEVELS

    report = evaluate_radiograph(
        args.data,
        weights=args.weights,
        json_out=args.json_out,
        thresholds=args.thresholds,
        skip_bad_rows=args.skip_bad_rows,
        overwrite=args.overwrite,
        device=args.device,
    )

    def num(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f}"

    print(
        f"{report['n_patients']} patient(s), {report['n_images']} image(s), model {report['model']['name']}"
    )
    print("level   AUC (95% CI)          precision recall  F1    | paper AUC")
    for lv in LEVELS:
        e = report["per_level"][lv]
        a = e["auc"]
        auc = (
            "n/a"
            if a is None
            else (
                f"{a['auc']:.3f}"
                + (f" ({a['ci_low']:.2f}-{a['ci_high']:.2f})" if a.get("ci_low") is not None else "")
            )
        )
        print(
            f"{lv:7s} {auc:21s} {num(e['precision']):9s} {num(e['recall']):7s} {num(e['f1']):5s} | "
            f"{report['paper']['per_level'][lv]['auc']:.2f}"
        )
    anyh = report["any_hnp"]["auc"]
    print(f"any herniation: AUC {'n/a' if anyh is None else format(anyh['auc'], '.3f')} (paper 0.73)")
    for line in report["excluded"]:
        print(f"spineai evaluate radiograph: excluded {line}", file=sys.stderr)
    if args.json_out is not None:
        print(f"Report: {args.json_out}")
    return 0
