"""Command-line parsers of the tESI outcome model: ``outcome``, ``train outcome``, ``evaluate outcome``.

Each ``add_*_parser`` adds one parser to the given sub-parsers and sets ``func(args) -> int`` (exit code: 0 on
success, 1 with a plain-words error on stderr for bad input, missing files or refused overwrites).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli_support import guarded as _guarded

__all__ = ["add_evaluate_parser", "add_outcome_parser", "add_train_parser"]

_RAW = argparse.RawDescriptionHelpFormatter


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in [0, 1]")
    return value


# ---------------------------------------------------------------------------------------------- outcome
def add_outcome_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``spineai outcome``."""
    p = subparsers.add_parser(
        "outcome",
        help="predict the outcome of a transforaminal epidural steroid injection from sagittal T2 MRI",
        description=(
            "Predict the probability of a good outcome (>= 50% NRS-11 reduction 2 months after a\n"
            "transforaminal epidural steroid injection) from a lumbar sagittal T2 MRI with the 3D CNN of Kim et\n"
            "al. (Pain Physician 2022), and explain it with a Grad-CAM heat map on the input's own grid.\n"
            "Writes OUTDIR/outcome.json, OUTDIR/gradcam.nii.gz (load it in 3D Slicer over the MRI as a colour\n"
            "overlay) and OUTDIR/gradcam_overlay.png.\n\n"
            "example:\n  spineai outcome sag_t2.nii.gz -o case01-outcome\n"
            "  spineai outcome dicom_sag_t2/ -o out --roi-mm -24 -60 -120 24 60 40 --gradcam-class poor\n\n"
            "The shipped model is trained on SYNTHETIC phantoms: a demonstration, not a clinical estimate.\n"
            "Research use only; not for clinical decisions."
        ),
        formatter_class=_RAW,
    )
    p.add_argument(
        "image", type=Path, help="sagittal T2 volume (.nii.gz, .nrrd, .mha) or DICOM series folder"
    )
    p.add_argument(
        "-o", "--out", type=Path, default=None, help="output folder (new or empty); default: print only"
    )
    p.add_argument("--weights", type=Path, default=None, help="site weights (.safetensors + .json card)")
    p.add_argument(
        "--roi-mm",
        type=float,
        nargs=6,
        default=None,
        metavar=("X0", "Y0", "Z0", "X1", "Y1", "Z1"),
        help="ROI box by hand (LPS mm) instead of the automatic disc localiser",
    )
    p.add_argument(
        "--threshold",
        type=_probability,
        default=None,
        help="decision threshold on P(good) (default: the model card's validation Youden threshold)",
    )
    p.add_argument(
        "--gradcam-class",
        choices=("predicted", "poor", "good"),
        default="predicted",
        help="class the heat map explains (default: the predicted one)",
    )
    p.add_argument("--no-gradcam", action="store_true", help="skip the heat map")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--overwrite", action="store_true", help="replace files in an existing OUTDIR")
    p.set_defaults(func=_guarded("outcome", _run_outcome))
    return p


def _run_outcome(args: argparse.Namespace) -> int:
    import json

    from ..outputs import check_output_dir
    from .predict import predict_outcome

    if args.out is not None:
        check_output_dir(args.out, args.overwrite)
    result = predict_outcome(
        args.image,
        weights=args.weights,
        roi_bounds_mm=args.roi_mm,
        gradcam=not args.no_gradcam,
        gradcam_class=args.gradcam_class,
        threshold=args.threshold,
        device=args.device,
    )
    verdict = "good" if result.predicted_good else "poor"
    print(
        f"P(good outcome) = {result.probability_good:.3f} -> {verdict} outcome predicted "
        f"(threshold {result.threshold:.3f}, model {result.model['name']})"
    )
    if args.out is not None:
        written = result.save(args.out, overwrite=args.overwrite)
        for name, path in written.items():
            print(f"  {name:<8} {path}")
    else:
        print(json.dumps(result.to_dict(), indent=1))
    for warning in result.warnings:
        print(f"spineai outcome: warning: {warning}", file=sys.stderr)
    print("Research use only; not for clinical decisions.")
    return 0


# ------------------------------------------------------------------------------------------------ train
def add_train_parser(train_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``spineai train outcome``."""
    from .train import OutcomeTrainConfig

    d = OutcomeTrainConfig()
    p = train_subparsers.add_parser(
        "outcome",
        help="train the tESI outcome CNN on your own sagittal T2 cases",
        description=(
            "Train the outcome 3D CNN on a site's cases. --data is a manifest CSV (columns case_id, image, and\n"
            "label 1/good 0/poor or nrs_pre and nrs_post, optional patient_id and roi_x0..roi_z1 in LPS mm), a\n"
            "folder holding manifest.csv, or a folder of phantom cases (spineai.outcome.mri_phantom). Bad\n"
            "manifest rows are named (row, case, reason). Defaults follow Kim et al. 2022: Adam 1e-4, batch 4,\n"
            "dropout 0.1, rotations -20/-10/-5/5/10/20 degrees; 20% patient-grouped validation split, best\n"
            "epoch by validation AUC, Youden threshold stored in the card. Writes OUT/model.safetensors +\n"
            "model.json, history.tsv, train.log, validation.json.\n\n"
            "example:\n  spineai train outcome --data site/manifest.csv --out run1 --epochs 30\n"
            "  spineai train outcome --data phantoms/ --out run2 --roi truth"
        ),
        formatter_class=_RAW,
    )
    p.add_argument("--data", required=True, type=Path, help="manifest CSV or folder of cases")
    p.add_argument("--out", required=True, type=Path, help="run folder (new or empty)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs ({d.epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"cases per step ({d.batch_size})")
    p.add_argument(
        "--lr", type=float, default=d.learning_rate, help=f"Adam learning rate ({d.learning_rate:g})"
    )
    p.add_argument(
        "--rotation-prob",
        type=_probability,
        default=d.rotation_prob,
        help=f"share of samples rotated by a paper angle ({d.rotation_prob})",
    )
    p.add_argument(
        "--val-fraction", type=float, default=d.val_fraction, help=f"validation share ({d.val_fraction})"
    )
    p.add_argument(
        "--roi",
        choices=("auto", "truth"),
        default="auto",
        help="ROI from the disc localiser (auto) or from phantom truth",
    )
    p.add_argument(
        "--skip-bad-rows", action="store_true", help="leave out bad manifest rows instead of failing"
    )
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (0)")
    p.add_argument("--device", default=d.device, help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=d.num_threads, help="CPU threads (1)")
    p.add_argument("--model-name", default=d.model_name, help=f"name in the model card ({d.model_name})")
    p.add_argument("--overwrite", action="store_true", help="start a new run in a non-empty --out")
    p.set_defaults(func=_guarded("train outcome", _run_train))
    return p


def _run_train(args: argparse.Namespace) -> int:
    from .train import OutcomeTrainConfig, train_outcome_from_data

    cfg = OutcomeTrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        rotation_prob=args.rotation_prob,
        val_fraction=args.val_fraction,
        seed=args.seed,
        device=args.device,
        num_threads=args.threads,
        model_name=args.model_name,
    )
    result, problems = train_outcome_from_data(
        args.data, args.out, cfg, roi=args.roi, skip_bad_rows=args.skip_bad_rows, overwrite=args.overwrite
    )
    for line in problems:
        print(f"spineai train outcome: skipped {line}", file=sys.stderr)
    print(
        f"Best validation AUC {result.best_val_auc:.3f} at epoch {result.best_epoch}; "
        f"Youden threshold {result.threshold:.3f}."
    )
    print(f"  weights  {result.weights_path}\n  card     {result.card_path}")
    print("Research use only; not for clinical decisions.")
    return 0


# --------------------------------------------------------------------------------------------- evaluate
def add_evaluate_parser(evaluate_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``spineai evaluate outcome``."""
    p = evaluate_subparsers.add_parser(
        "outcome",
        help="score the tESI outcome model on labelled cases (AUC with DeLong CI, accuracy, ROC)",
        description=(
            "Predict every case of a manifest CSV (or phantom folder) and report the AUC with its DeLong 95%\n"
            "confidence interval (as Kim et al. 2022), accuracy, sensitivity, specificity, PPV and NPV at the\n"
            "threshold (default: the model card's validation Youden threshold; --threshold to choose one), and\n"
            "write OUT/evaluation.json, OUT/predictions.csv and OUT/roc.png.\n\n"
            "example:\n  spineai evaluate outcome --data site/test.csv --weights run1/model.safetensors --out eval1\n"
            "  spineai evaluate outcome --data phantoms/ --out eval-demo --threshold 0.5"
        ),
        formatter_class=_RAW,
    )
    p.add_argument("--data", required=True, type=Path, help="manifest CSV or folder of cases")
    p.add_argument(
        "--weights", type=Path, default=None, help="model weights (default: the shipped demo model)"
    )
    p.add_argument("--out", type=Path, default=None, help="report folder (new or empty)")
    p.add_argument("--threshold", type=_probability, default=None, help="decision threshold on P(good)")
    p.add_argument("--roi", choices=("auto", "truth"), default="auto", help="ROI source (auto: localiser)")
    p.add_argument(
        "--skip-bad-rows", action="store_true", help="leave out bad manifest rows instead of failing"
    )
    p.add_argument("--overwrite", action="store_true", help="replace files in an existing --out")
    p.set_defaults(func=_guarded("evaluate outcome", _run_evaluate))
    return p


def _run_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_outcome

    report = evaluate_outcome(
        args.data,
        weights=args.weights,
        threshold=args.threshold,
        out=args.out,
        roi=args.roi,
        skip_bad_rows=args.skip_bad_rows,
        overwrite=args.overwrite,
    )
    auc, m = report["auc"], report["at_threshold"]

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.1f}%"

    print(
        f"{report['n']} case(s) ({report['n_good']} good, {report['n_poor']} poor), model {report['model']['name']}"
    )
    print(f"AUC {auc['auc']:.3f} (95% CI {auc['ci_low']:.3f}-{auc['ci_high']:.3f}, DeLong)")
    print(
        f"At threshold {report['threshold']['value']:.3f} ({report['threshold']['source']}): accuracy "
        f"{pct(m['accuracy'])}, sensitivity {pct(m['sensitivity'])}, specificity {pct(m['specificity'])}"
    )
    for line in report["excluded"]:
        print(f"spineai evaluate outcome: excluded {line}", file=sys.stderr)
    if args.out is not None:
        print(f"Report: {Path(args.out) / 'evaluation.json'}, ROC: {Path(args.out) / 'roc.png'}")
    return 0
