"""Command-line parsers of the CT segmentation: ``segment``, ``train segmentation``, ``evaluate segmentation``.

Each ``add_*_parser`` adds one parser to the given sub-parsers and sets ``func(args) -> int`` (exit code:
0 on success, 1 with a one-paragraph plain-words error on stderr otherwise). With the environment
variable ``SPINEAI_PROGRESS=lines`` progress is printed as ``PROGRESS <percent> <message>`` lines on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli_support import guarded as _guarded

_RAW = argparse.RawDescriptionHelpFormatter


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace("x", ",").replace(" ", ",").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of integers") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"'{text}' must list positive integers, e.g. 32,64,64")
    return values


def _patch(text: str) -> tuple[int, int, int]:
    values = _int_tuple(text)
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"patch size '{text}' needs three numbers (z,y,x), e.g. 32,64,64")
    return values  # type: ignore[return-value]


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in [0, 1]")
    return value


# -------------------------------------------------------------------------------------------- segment
def _add_inference_options(p: argparse.ArgumentParser) -> None:
    """Options of the network's inference shared by ``segment`` and ``evaluate segmentation``."""
    p.add_argument(
        "--no-weight-correction",
        action="store_true",
        help="raw softmax, as the paper (default: divided by the class weights the model was trained with, "
        "recorded in its card, so thin roots are not drawn too thick)",
    )
    p.add_argument(
        "--mirror-tta",
        action="store_true",
        help="left-right test-time augmentation: also segment the mirror image and average (slightly better "
        "nerve roots, twice the inference time)",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "float32", "bf16"),  # inference.PRECISIONS, without importing torch for --help
        default="auto",
        help="network precision (default auto: bf16 autocast on CUDA, float32 on the CPU)",
    )


def add_segment_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``spineai segment``."""
    p = subparsers.add_parser(
        "segment",
        help="segment lumbosacral bones, discs, dural sac and nerve roots on CT",
        description=(
            "Segment a lumbosacral CT (L3..S1, ilium, discs, dural sac, nerve roots) with the SPINECT 3D U-Net\n"
            "and write OUTDIR/segmentation.seg.nrrd (opens in 3D Slicer as named, coloured segments),\n"
            "OUTDIR/labels.nii.gz + labels.json, OUTDIR/segmentation.json and smoothed surface models\n"
            "OUTDIR/surfaces/<structure>.vtp (LPS, mm).\n\n"
            "example:\n  spineai segment case01/ct.nii.gz -o case01-seg --device cpu\n"
            "  spineai segment dicom_folder/ -o out --mode paper --weights run/model.safetensors\n"
            "  spineai segment case01/ct.nii.gz -o case01-seg --mirror-tta   # slower, slightly better roots\n\n"
            "Modes: fast (default; crops to the bony region, large Gaussian-blended windows) or paper (the\n"
            "paper's combined algorithm: 32x64x64 tiles, summed softmax, argmax).\n"
            "Research use only; not for clinical decisions."
        ),
        formatter_class=_RAW,
    )
    p.add_argument("input", type=Path, help="CT file (.nii.gz, .nrrd, .mha) or DICOM series folder, in HU")
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder (new or empty)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: cuda when available)")
    p.add_argument("--mode", choices=("fast", "paper"), default="fast", help="inference mode (default fast)")
    p.add_argument(
        "--no-postprocess",
        action="store_true",
        help="raw network output (default: largest component per structure, vertebrae named by their discs)",
    )
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="model weights (.safetensors with its .json card); default: the shipped model",
    )
    _add_inference_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace files in an existing OUTDIR")
    p.add_argument("--stl", action="store_true", help="also write surfaces as .stl")
    p.add_argument("--no-surfaces", action="store_true", help="skip the surface models")
    p.add_argument(
        "--require-levels",
        nargs="+",
        default=None,
        metavar="LEVEL",
        help="fail unless these vertebrae/levels are in view, e.g. L5 S1 or L5-S1",
    )
    p.set_defaults(func=_guarded("segment", _run_segment))
    return p


def _run_segment(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..outputs import check_output_dir
    from .inference import segment

    out = Path(args.out)
    if not Path(args.input).exists():
        raise InputError(
            f"Input '{args.input}' does not exist.", "check the path of the CT file or DICOM folder"
        )
    check_output_dir(out, args.overwrite)  # refuse before the slow part, without creating anything
    result = segment(
        args.input,
        weights=args.weights,
        device=args.device,
        mode=args.mode,
        postprocess=not args.no_postprocess,
        require_levels=args.require_levels,
        class_weight_correction=not args.no_weight_correction,
        mirror_tta=args.mirror_tta,
        precision=args.precision,
    )
    formats = ("vtp", "stl") if args.stl else ("vtp",)
    written = result.save(
        out, overwrite=args.overwrite, surfaces=not args.no_surfaces, surface_formats=formats
    )
    print(f"Segmentation of {args.input} -> {Path(args.out).resolve()}")
    for name in ("segmentation", "labels", "labels_json", "summary"):
        print(f"  {name:<13} {written[name]}")
    n_surfaces = sum(1 for k in written if k.startswith("surface "))
    if n_surfaces:
        print(f"  surfaces      {n_surfaces} files in {Path(args.out) / 'surfaces'}")
    print("Structures (mm3): " + ", ".join(f"{n} {result.volumes_mm3[n]:.0f}" for n in result.structures))
    print(f"Time: {result.timings_s['total']:.1f} s ({result.mode} mode, {result.model.get('device')})")
    for warning in result.warnings:
        print(f"spineai segment: warning: {warning}", file=sys.stderr)
    print("Research use only; not for clinical decisions.")
    return 0


# ---------------------------------------------------------------------------------------------- train
def add_train_parser(train_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``spineai train segmentation``."""
    from .config import DEFAULT_FEATURES, PAPER_FEATURES, TrainConfig
    from .data import CT_CLASS_NAMES

    d = TrainConfig()
    p = train_subparsers.add_parser(
        "segmentation",
        help="train the CT segmentation network on your own cases",
        description=(
            "Train the SPINECT 3D U-Net on a folder of CT/label pairs: DIR/<case>/ct.nii.gz + labels.nii.gz\n"
            "(+ labels.json, or --label-convention), or the nnU-Net layout imagesTr/ + labelsTr/.\n"
            "Defaults follow the paper: 1 mm, random 32x64x64 patches, batch 4, Adam 5e-4, He init, weighted\n"
            "cross-entropy, noise and left-right flips (with left/right label swap), validation every 100\n"
            "iterations keeping the best mean Dice. Writes OUT/model.safetensors + model.json, checkpoints,\n"
            "train.log, metrics.tsv and metrics.json; --resume continues an interrupted run.\n\n"
            "example:\n  spineai train segmentation --data phantoms --out run1 --iterations 4000\n"
            "  spineai train segmentation --data phantoms --out run1 --resume\n"
            "  spineai train segmentation --data site_cases --out run2 --init-weights spinect_ct_demo "
            "--iterations 2000 --max-minutes 60"
        ),
        formatter_class=_RAW,
    )
    p.add_argument("--data", required=True, type=Path, help="folder of cases")
    p.add_argument(
        "--out", required=True, type=Path, help="run folder (new or empty; with --resume: the old run)"
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start a new run in a non-empty --out")
    p.add_argument(
        "--label-convention",
        default=None,
        help="convention of label files without sidecar: canonical, verse, totalseg_v2, ... or a JSON "
        "sidecar file",
    )
    p.add_argument(
        "--classes",
        nargs="+",
        default=None,
        metavar="NAME",
        help=f"output classes after background (default: {' '.join(CT_CLASS_NAMES[1:])})",
    )
    p.add_argument(
        "--iterations", type=int, default=None, help=f"training iterations (default {d.iterations})"
    )
    p.add_argument(
        "--batch-size", type=int, default=d.batch_size, help=f"patches per iteration ({d.batch_size})"
    )
    p.add_argument(
        "--lr", type=float, default=d.learning_rate, help=f"Adam learning rate ({d.learning_rate})"
    )
    p.add_argument(
        "--patch-size", type=_patch, default=d.patch_size, help="patch z,y,x in 1 mm voxels (32,64,64)"
    )
    width = p.add_mutually_exclusive_group()
    width.add_argument(
        "--features",
        type=_int_tuple,
        default=DEFAULT_FEATURES,
        help=f"U-Net widths per level (default {','.join(map(str, DEFAULT_FEATURES))})",
    )
    width.add_argument(
        "--paper-width",
        action="store_const",
        dest="features",
        const=PAPER_FEATURES,
        help=f"the paper's widths {','.join(map(str, PAPER_FEATURES))}",
    )
    p.add_argument("--norm", choices=("batch", "instance"), default=d.norm, help="normalisation (batch)")
    p.add_argument(
        "--val-every", type=int, default=d.val_every, help=f"iterations between validations ({d.val_every})"
    )
    p.add_argument(
        "--val-cases-per-round",
        type=int,
        default=d.val_cases_per_round,
        help=f"validation cases drawn per validation ({d.val_cases_per_round})",
    )
    p.add_argument(
        "--val-fraction", type=float, default=d.val_fraction, help=f"held-out share ({d.val_fraction})"
    )
    p.add_argument("--val-cases", nargs="+", default=(), metavar="CASE", help="explicit validation case ids")
    p.add_argument(
        "--val-overlap", type=float, default=d.val_overlap, help="validation window overlap (0: tiles)"
    )
    p.add_argument(
        "--sampling",
        choices=("class-balanced", "uniform"),
        default=d.sampling,
        help="patch centres (class-balanced oversamples small structures)",
    )
    p.add_argument(
        "--class-weighting",
        choices=("inverse", "sqrt-inverse", "none"),
        default=d.class_weighting,
        help="cross-entropy class weights (inverse frequency)",
    )
    p.add_argument(
        "--max-class-weight-ratio",
        type=float,
        default=d.max_class_weight_ratio,
        help=f"cap of largest/smallest class weight ({d.max_class_weight_ratio:g})",
    )
    p.add_argument(
        "--noise-prob", type=_probability, default=d.noise_prob, help=f"noise probability ({d.noise_prob})"
    )
    p.add_argument(
        "--noise-std", type=float, default=d.noise_std, help=f"noise SD, standardised units ({d.noise_std})"
    )
    p.add_argument(
        "--flip-lr-prob",
        type=_probability,
        default=d.flip_lr_prob,
        help=f"left-right flip probability, labels swapped ({d.flip_lr_prob})",
    )
    p.add_argument(
        "--flip-ap-prob",
        type=_probability,
        default=d.flip_ap_prob,
        help=f"antero-posterior flip probability ({d.flip_ap_prob})",
    )
    p.add_argument(
        "--crop-margin-mm",
        type=float,
        default=d.crop_margin_mm,
        help=f"margin around the labels ({d.crop_margin_mm:g} mm)",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (0)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: cuda when available)")
    p.add_argument("--model-name", default=d.model_name, help=f"name in the model card ({d.model_name})")
    p.add_argument("--training-data", default=None, help="description of the data for the model card")
    p.add_argument(
        "--init-weights",
        default=None,
        help="start from these weights (a .safetensors with its card, or a shipped model name; same "
        "classes and widths), e.g. fine-tune the shipped model on your cases: --init-weights spinect_ct_demo",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop at the first validation after this many minutes; --resume continues later",
    )
    p.add_argument(
        "--prepare-workers",
        type=int,
        default=d.prepare_workers,
        help=f"threads preparing the cases before training ({d.prepare_workers})",
    )
    p.set_defaults(func=_guarded("train segmentation", _run_train))
    return p


def _run_train(args: argparse.Namespace) -> int:
    from .data import CT_CLASS_NAMES
    from .train import TrainConfig, train_segmentation

    classes = ("background", *args.classes) if args.classes else CT_CLASS_NAMES
    defaults = TrainConfig()
    config = TrainConfig(
        class_names=tuple(classes),
        features=tuple(args.features),
        norm=args.norm,
        patch_size=tuple(args.patch_size),
        batch_size=args.batch_size,
        learning_rate=args.lr,
        iterations=args.iterations if args.iterations is not None else defaults.iterations,
        val_every=args.val_every,
        val_cases_per_round=args.val_cases_per_round,
        val_fraction=args.val_fraction,
        val_cases=tuple(args.val_cases),
        val_overlap=args.val_overlap,
        sampling=args.sampling,
        class_weighting=args.class_weighting,
        max_class_weight_ratio=args.max_class_weight_ratio,
        noise_prob=args.noise_prob,
        noise_std=args.noise_std,
        flip_lr_prob=args.flip_lr_prob,
        flip_ap_prob=args.flip_ap_prob,
        crop_margin_mm=args.crop_margin_mm,
        seed=args.seed,
        device=args.device,
        label_convention=args.label_convention,
        model_name=args.model_name,
        init_weights=str(args.init_weights) if args.init_weights is not None else None,
        max_minutes=args.max_minutes,
        prepare_workers=args.prepare_workers,
    )
    if args.resume and args.iterations is None:
        import json

        state = Path(args.out) / "checkpoints" / "last_state.json"
        if state.is_file():
            config.iterations = int(json.loads(state.read_text(encoding="utf-8"))["config"]["iterations"])
    result = train_segmentation(
        args.data,
        args.out,
        config,
        resume=args.resume,
        overwrite=args.overwrite,
        training_data=args.training_data,
    )
    print(
        f"Training finished at iteration {result.iterations_done}: best validation mean Dice "
        f"{result.best_mean_dice:.4f} at iteration {result.best_iteration}."
    )
    if result.weights_path is not None:
        print(f"  weights  {result.weights_path}\n  card     {result.card_path}")
    print(f"  log      {Path(args.out) / 'train.log'}\n  metrics  {Path(args.out) / 'metrics.tsv'}")
    return 0


# ------------------------------------------------------------------------------------------- evaluate
def add_evaluate_parser(evaluate_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``spineai evaluate segmentation``."""
    p = evaluate_subparsers.add_parser(
        "segmentation",
        help="score the CT segmentation against labelled cases (Dice, IoU, pixel accuracy, HD95, MSD)",
        description=(
            "Segment every case of a data folder and compare with its labels: Dice, IoU, the paper's pixel\n"
            "accuracy (true predicted / true voxels), HD95 and mean surface distance (mm) per structure and\n"
            "per case, aggregated as mean +- SD (range) like the paper's Table 2, plus the paper's bone/nerve\n"
            "figures. Same data layouts as 'spineai train segmentation'.\n\n"
            "example:\n  spineai evaluate segmentation --data test_cases --weights run1/model.safetensors "
            "--json eval.json"
        ),
        formatter_class=_RAW,
    )
    p.add_argument("--data", required=True, type=Path, help="folder of labelled cases")
    p.add_argument("--weights", type=Path, default=None, help="model weights (default: the shipped model)")
    p.add_argument("--json", type=Path, default=None, dest="json_out", help="write the full report here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.add_argument("--mode", choices=("fast", "paper"), default="fast", help="inference mode (fast)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--no-postprocess", action="store_true", help="score the raw network output")
    _add_inference_options(p)
    p.add_argument("--no-distances", action="store_true", help="skip HD95 and mean surface distance (faster)")
    p.add_argument("--label-convention", default=None, help="convention of label files without sidecar")
    p.set_defaults(func=_guarded("evaluate segmentation", _run_evaluate))
    return p


def _run_evaluate(args: argparse.Namespace) -> int:
    from .metrics import evaluate_segmentation, format_table

    report = evaluate_segmentation(
        args.data,
        weights=args.weights,
        device=args.device,
        mode=args.mode,
        postprocess=not args.no_postprocess,
        label_convention=args.label_convention,
        distances=not args.no_distances,
        json_out=args.json_out,
        overwrite=args.overwrite,
        class_weight_correction=not args.no_weight_correction,
        mirror_tta=args.mirror_tta,
        precision=args.precision,
    )
    print(f"{len(report['cases'])} case(s), model {report['model']['name']} ({report['mode']} mode)\n")
    print("Per structure (Dice, IoU, pixel accuracy in %):")
    print(format_table(report["summary"]["structures"]))
    print("\nThe paper's classes (bone, nerve):")
    print(format_table(report["summary"]["three_class"]))
    if args.json_out is not None:
        print(f"\nReport: {args.json_out}")
    return 0
