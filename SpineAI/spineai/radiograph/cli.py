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
            "probability of a herniated disc at L1-L2, L2-L3, L3-L4, L4-L5 and L5-S1, with a Grad-CAM heat map of\n"
            "one level on the radiograph's own grid. The shipped model finds the five discs (a heat-map locator),\n"
            "reads a 72 mm crop around each (a small CNN; bagging ensemble of four cross-validation folds) and\n"
            "reports the located disc centres; this departs from the seed paper's whole-image EfficientNet, which\n"
            "stayed at chance when trained from scratch here (models of that design still load with --weights).\n"
            "Writes OUTDIR/radiograph.json (probabilities, located discs), OUTDIR/gradcam_<level>.nrrd (load it\n"
            "in 3D Slicer over the radiograph) and OUTDIR/gradcam_overlay.png (heat map and located discs).\n"
            "Colour photographs, volumes (CT, MR) and radiographs of other regions are refused.\n\n"
            "example:\n  spineai radiograph lumbar_lateral.png -o case01-radiograph\n"
            "  spineai radiograph lumbar_ap.png --pixel-mm 0.15 -o out --gradcam-level L4-L5\n"
            "  spineai radiograph whole_spine_ap.jpg --boxes whole_spine_ap.txt -o out\n\n"
            "The shipped model is trained on SYNTHETIC radiographs (DRRs of phantoms): a demonstration, not a\n"
            "clinical estimate. Herniation itself is not visible on radiographs (the paper reached AUC 0.63-0.72).\n"
            "Research use only; not for clinical decisions."
        ),
        formatter_class=_RAW,
        epilog="example:\n  spineai radiograph lumbar_lateral.png -o case01-radiograph",
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
    p.add_argument(
        "--pixel-mm",
        type=float,
        default=None,
        help="pixel size in mm of a PNG/JPEG export (default: the DICOM spacing, else estimated from the discs)",
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
        pixel_mm=args.pixel_mm,
    )
    discs = {d["level"]: d for d in result.discs or []}
    for lv, prob in result.probabilities.items():
        call = "herniation" if result.predicted[lv] else "no herniation"
        where = ""
        if lv in discs:
            d = discs[lv]
            conf = "" if d.get("confidence") is None else f", confidence {d['confidence']:.2f}"
            where = f"  [disc at x {d['column']:.0f}, y {d['row']:.0f} px{conf}]"
        print(f"{lv:6s} P = {prob:.3f} (threshold {result.thresholds[lv]:.3f}) -> {call}{where}")
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
    from .reader import DiscCropsTrainConfig
    from .train import DESIGNS, RadiographTrainConfig

    d = RadiographTrainConfig()
    dc = DiscCropsTrainConfig()
    p = train_subparsers.add_parser(
        "radiograph",
        help="train the radiograph herniation model on your own radiographs",
        description=(
            "Train the per-level herniation model on a site's radiographs with four-fold cross-validation grouped\n"
            "by patient and build the bagging ensemble of the folds. --data is a manifest CSV (columns patient_id,\n"
            "image, view, age, hnp_L1_2, hnp_L2_3, hnp_L3_4, hnp_L4_5, hnp_L5_S1; labels from MRI; optional\n"
            "pixel_mm and disc_L1_L2_x, disc_L1_L2_y .. disc_L5_S1_y disc centres in pixels) or a folder holding\n"
            "manifest.csv.\n\n"
            "--design disc-crops (default): the product's design. The discs are found by the shipped model's locator\n"
            "(or --locator MODEL, or a new locator trained on the manifest's disc positions with --locator-epochs N);\n"
            "a small CNN is trained on 72 mm crops at the given (else located) disc centres, jittered by\n"
            "--jitter-mm, and validated on crops at the located centres. It is the default because the measured\n"
            "whole-image network, trained from scratch, stayed at chance on 400 synthetic patients while the disc\n"
            "crops did not (docs/radiograph.md).\n"
            "--design whole-image: the seed paper's EfficientNet (B5 at 456 px, CLAHE, no flips or rotations, BCE\n"
            "per level, Adam 3e-5 with cosine warm restarts; --age-task adds age regression); it needs\n"
            "ImageNet-scale data or pretrained weights to learn. Re-running the same command resumes after the last\n"
            "finished fold.\n"
            "Writes OUT/model.safetensors + model.json (thresholds, per-fold figures), cv_patients.csv, train.log.\n\n"
            "example:\n  spineai train radiograph --data site/manifest.csv --out run1\n"
            "  spineai train radiograph --data site/with_discs.csv --out run2 --locator-epochs 10\n"
            "  spineai train radiograph --data site/manifest.csv --out run3 --design whole-image --epochs 20\n"
            "  spineai train radiograph --data phantoms/ --out demo --design whole-image --model efficientnet-b0 "
            "--width 0.5 --size 128 --lr 1e-3"
        ),
        formatter_class=_RAW,
        epilog="example:\n  spineai train radiograph --data site/manifest.csv --out run1",
    )
    p.add_argument("--data", required=True, type=Path, help="manifest CSV or folder with manifest.csv")
    p.add_argument("--out", required=True, type=Path, help="run folder (new, empty, or a run to resume)")
    p.add_argument(
        "--design",
        choices=DESIGNS,
        default="disc-crops",
        help="disc-crops (default) or whole-image (the paper's)",
    )
    p.add_argument("--folds", type=int, default=d.folds, help=f"cross-validation folds ({d.folds})")
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"epochs per fold (disc-crops {dc.epochs}, whole-image {d.epochs})",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"crops/images per step (disc-crops {dc.batch_size}, whole-image {d.batch_size})",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"Adam learning rate (disc-crops {dc.learning_rate:g}, whole-image {d.learning_rate:g})",
    )
    g = p.add_argument_group("disc-crops design")
    g.add_argument(
        "--locator",
        type=Path,
        default=None,
        help="disc locator: a disc-crops model (default: the shipped one)",
    )
    g.add_argument(
        "--locator-epochs",
        type=int,
        default=0,
        help="train a new locator on the manifest's disc positions for this many epochs (0: use --locator)",
    )
    g.add_argument(
        "--jitter-mm",
        type=float,
        default=dc.jitter_mm,
        help=f"training-crop jitter, mm per axis ({dc.jitter_mm:g})",
    )
    g.add_argument(
        "--level-mode",
        choices=("outputs", "input"),
        default=dc.level_mode,
        help="level as five outputs (default) or as five input planes",
    )
    w = p.add_argument_group("whole-image design")
    w.add_argument("--model", default=d.model_name, help=f"MONAI EfficientNet name ({d.model_name})")
    w.add_argument("--width", type=float, default=d.width_multiplier, help="channel-width factor (1)")
    w.add_argument(
        "--size", type=int, default=d.image_size, help=f"square input size in pixels ({d.image_size})"
    )
    w.add_argument("--age-task", action="store_true", help="add age regression as a second task")
    w.add_argument(
        "--augment",
        action="store_true",
        help="random zoom, shift and contrast of training images (never flips or rotations)",
    )
    p.add_argument(
        "--skip-bad-rows", action="store_true", help="leave out bad manifest rows instead of failing"
    )
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (0)")
    p.add_argument("--device", default=d.device, help="cpu, cuda or auto (whole-image design)")
    p.add_argument("--threads", type=int, default=d.num_threads, help="CPU threads (1)")
    p.add_argument(
        "--model-name", default=d.model_card_name, help=f"name in the model card ({d.model_card_name})"
    )
    p.add_argument("--overwrite", action="store_true", help="replace a run of other settings in --out")
    p.set_defaults(func=_guarded("train radiograph", _run_train))
    return p


def _run_train(args: argparse.Namespace) -> int:
    from .network import LEVELS
    from .reader import DiscCropsTrainConfig
    from .train import RadiographTrainConfig, train_radiograph, train_radiograph_discs

    if args.design == "disc-crops":
        dc = DiscCropsTrainConfig()
        cfg = DiscCropsTrainConfig(
            folds=args.folds,
            epochs=args.epochs or dc.epochs,
            batch_size=args.batch_size or dc.batch_size,
            learning_rate=args.lr or dc.learning_rate,
            jitter_mm=args.jitter_mm,
            level_mode=args.level_mode,
            seed=args.seed,
            num_threads=args.threads,
            model_card_name=args.model_name,
        )
        summary, problems = train_radiograph_discs(
            args.data,
            args.out,
            cfg,
            locator=args.locator,
            locator_epochs=args.locator_epochs,
            skip_bad_rows=args.skip_bad_rows,
            overwrite=args.overwrite,
        )
        cv, weights, card = (
            summary["cross_validation"]["per_level"],
            summary["weights_path"],
            summary["card_path"],
        )
        print(f"disc locator: {summary['locator']}")
    else:
        d = RadiographTrainConfig()
        wcfg = RadiographTrainConfig(
            model_name=args.model,
            width_multiplier=args.width,
            image_size=args.size,
            folds=args.folds,
            epochs=args.epochs or d.epochs,
            batch_size=args.batch_size or d.batch_size,
            learning_rate=args.lr or d.learning_rate,
            age_task=args.age_task,
            augment=args.augment,
            seed=args.seed,
            device=args.device,
            num_threads=args.threads,
            model_card_name=args.model_name,
        )
        result, problems = train_radiograph(
            args.data, args.out, wcfg, skip_bad_rows=args.skip_bad_rows, overwrite=args.overwrite
        )
        cv, weights, card = result.cross_validation["per_level"], result.weights_path, result.card_path
    for line in problems:
        print(f"spineai train radiograph: skipped {line}", file=sys.stderr)
    print("Out-of-fold patient figures (ensemble thresholds):")
    for lv in LEVELS:
        e = cv[lv]
        auc = "n/a" if e["auc"] is None else f"{e['auc']['auc']:.3f}"
        print(f"  {lv:6s} AUC {auc}  threshold {e['threshold']:.3f}  positives {e['n_positive']}")
    print(f"  weights  {weights}\n  card     {card}")
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
            "  spineai evaluate radiograph --data phantoms-test/ --json demo-eval.json\n\n"
            "A disc-crops model locates the discs of every image (or reads the manifest's pixel_mm) and reports\n"
            "the locator's median confidence and, where the manifest gives disc positions, its error."
        ),
        formatter_class=_RAW,
        epilog="example:\n  spineai evaluate radiograph --data site/test.csv --weights run1/model.safetensors",
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
    located = report.get("located_discs")
    if located and located.get("median_confidence"):
        conf = ", ".join(f"{lv} {v:.2f}" for lv, v in located["median_confidence"].items())
        print(f"disc locator: median confidence {conf}; images out of order {located['images_out_of_order']}")
        if located.get("median_error_px_vs_given"):
            err = ", ".join(f"{lv} {v:.1f}" for lv, v in located["median_error_px_vs_given"].items())
            print(f"disc locator: median distance to the manifest's disc positions (pixels) {err}")
    for line in report["excluded"]:
        print(f"spineai evaluate radiograph: excluded {line}", file=sys.stderr)
    if args.json_out is not None:
        print(f"Report: {args.json_out}")
    return 0
