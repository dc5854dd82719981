"""Train the shipped demo CT segmentation model on synthetic phantoms and install it with its model card.

Steps (each resumable: re-running the same command continues where it stopped):

1. generate phantom CTs with ``spineai.phantom`` into ``WORK/phantoms/train`` (seeds 1000.., the paper's
   32 training + 8 validation cases by default) and ``WORK/phantoms/test`` (seeds 2000.., 10 cases);
2. train the default network (16-32-64-128-256) with the paper's recipe (``spineai train segmentation``
   defaults) into ``WORK/run``; the output classes are the canonical CT classes the phantoms contain;
3. evaluate the best weights on the test phantoms (``WORK/test_evaluation.json``);
4. with ``--install``: write ``spineai/resources/models/spinect_ct_demo.safetensors`` + ``.json`` (fp16,
   SHA-256 in the card, test figures in ``metrics``).

Commands used for the shipped weights (docs/segmentation.md): version 1 on the CPU (about 2 s per iteration
on 2 cores, 2.2 h)::

    python benchmarks/train_demo_segmentation.py --work demo-training --iterations 4000 --install

and version 2 from it on a GPU, in runs of at most 8 minutes (each repetition resumes), then installed::

    python benchmarks/train_demo_segmentation.py --work demo-gpu --train-cases 240 --val-cases 12 \
        --iterations 100000 --val-every 500 --val-cases-per-round 4 --device cuda --batch-size 8 \
        --anisotropic-share 0.2 --workers 15 --max-minutes 8 --skip-evaluation --init-weights spinect_ct_demo
    python benchmarks/train_demo_segmentation.py --work demo-gpu --evaluate-only --install

Research use only: weights trained on phantoms are a demonstration, not a clinical model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODEL_NAME = "spinect_ct_demo"


def training_overrides(seed: int, anisotropic_share: float) -> dict:
    """Phantom overrides of one training seed: a share of the cases get thick-slice anisotropic spacing
    (in-plane 0.6-0.9 mm, slices 2-3 mm), as the hard test set has; the draw depends on the seed only."""
    rng = np.random.default_rng([int(seed), 0xA115])
    if rng.uniform() >= anisotropic_share:
        return {}
    in_plane = float(rng.uniform(0.6, 0.9))
    return {"spacing_mm": (in_plane, in_plane, float(rng.uniform(2.0, 3.0)))}


def _write_case(job: tuple[Path, int, dict]) -> None:
    from spineai.phantom import generate_ct_phantom, write_phantom_case

    case_dir, seed, overrides = job
    write_phantom_case(generate_ct_phantom(seed, progress=False, **overrides), case_dir, overwrite=True)


def _generate(folder: Path, seeds: range, workers: int = 1, anisotropic_share: float = 0.0) -> None:
    from concurrent.futures import ProcessPoolExecutor

    from spineai.progress import track

    folder.mkdir(parents=True, exist_ok=True)
    jobs = [
        (folder / f"case_{seed:04d}", seed, training_overrides(seed, anisotropic_share))
        for seed in seeds
        if not (folder / f"case_{seed:04d}" / "labels.json").is_file()  # already written (resumed run)
    ]
    if workers <= 1:
        for job in track(jobs, desc=f"phantoms in {folder.name}"):
            _write_case(job)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for _ in track(pool.map(_write_case, jobs), total=len(jobs), desc=f"phantoms in {folder.name}"):
            pass


def _classes_present(folder: Path) -> tuple[str, ...]:
    """Background + the canonical CT classes found in the phantoms' label maps (in CT_CLASS_NAMES order)."""
    from spineai import io
    from spineai.segmentation.data import CT_CLASS_NAMES

    present: set[str] = set()
    for case in sorted(folder.iterdir())[:5]:
        present |= set(io.read_labelmap(case / "labels.nii.gz").canonical().structures_present())
    return ("background", *[n for n in CT_CLASS_NAMES[1:] if n in present])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True, help="working folder (phantoms, run, evaluation)")
    parser.add_argument("--train-cases", type=int, default=40, help="training + validation phantoms (40)")
    parser.add_argument("--val-cases", type=int, default=8, help="of which held out for validation (8)")
    parser.add_argument(
        "--test-cases", type=int, default=10, help="test phantoms for the card's figures (10)"
    )
    parser.add_argument("--iterations", type=int, default=6000, help="training iterations (6000)")
    parser.add_argument("--val-every", type=int, default=250, help="iterations between validations (250)")
    parser.add_argument(
        "--val-cases-per-round", type=int, default=3, help="validation cases per validation (3)"
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--batch-size", type=int, default=4, help="patches per iteration (4, the paper's)")
    parser.add_argument(
        "--anisotropic-share",
        type=float,
        default=0.0,
        help="share of training phantoms with thick-slice anisotropic spacing (0)",
    )
    parser.add_argument("--workers", type=int, default=1, help="processes generating phantoms (1)")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop training after this long")
    parser.add_argument("--init-weights", default=None, help="start from these weights (file or model name)")
    parser.add_argument(
        "--skip-evaluation", action="store_true", help="train only (evaluate the test phantoms later)"
    )
    parser.add_argument(
        "--trained-on", default=None, help="hardware and wall time of the training, for the model card"
    )
    parser.add_argument(
        "--evaluate-only",
        action="store_true",
        help="no training: evaluate (and with --install install) the best weights already in WORK/run, "
        "e.g. copied back from a GPU machine",
    )
    parser.add_argument("--install", action="store_true", help="copy the best weights into the package")
    args = parser.parse_args(argv)

    from spineai.segmentation.train import TrainConfig, train_segmentation
    from spineai.weights import load_card

    train_dir, test_dir = args.work / "phantoms" / "train", args.work / "phantoms" / "test"
    run = args.work / "run"
    if args.evaluate_only:
        _generate(test_dir, range(2000, 2000 + args.test_cases), args.workers)
        return _evaluate_and_install(args, run, test_dir, load_card(run / "model.safetensors").training_data)
    _generate(train_dir, range(1000, 1000 + args.train_cases), args.workers, args.anisotropic_share)
    if not args.skip_evaluation:
        _generate(test_dir, range(2000, 2000 + args.test_cases), args.workers)
    classes = _classes_present(train_dir)
    val_ids = tuple(
        f"case_{s:04d}" for s in range(1000 + args.train_cases - args.val_cases, 1000 + args.train_cases)
    )
    description = (
        f"{args.train_cases - args.val_cases} training and {args.val_cases} validation synthetic lumbosacral CT "
        f"phantoms (spineai.phantom seeds 1000-{999 + args.train_cases}"
        + (
            f", {args.anisotropic_share:.0%} with thick-slice anisotropic spacing"
            if args.anisotropic_share
            else ""
        )
        + "); no patient data"
    )
    config = TrainConfig(
        class_names=classes,
        iterations=args.iterations,
        val_every=args.val_every,
        val_cases=val_ids,
        val_cases_per_round=args.val_cases_per_round,
        device=args.device,
        model_name=MODEL_NAME,
        batch_size=args.batch_size,
        init_weights=args.init_weights,
        max_minutes=args.max_minutes,
        prepare_workers=max(1, args.workers),
    )
    resume = (run / "checkpoints" / "last_state.json").is_file()
    result = train_segmentation(train_dir, run, config, resume=resume, training_data=description)
    print(
        f"stopped at iteration {result.iterations_done}; best validation mean Dice "
        f"{result.best_mean_dice:.4f} at iteration {result.best_iteration}"
    )
    if args.skip_evaluation:
        return 0
    return _evaluate_and_install(args, run, test_dir, description)


def _evaluate_and_install(args: argparse.Namespace, run: Path, test_dir: Path, description: object) -> int:
    """Evaluate ``run/model.safetensors`` on the test phantoms; with ``--install`` copy it into the package."""
    from spineai.segmentation.metrics import evaluate_segmentation, format_table
    from spineai.weights import MODELS_DIR, load_card, load_state_dict, save_weights

    report = evaluate_segmentation(
        test_dir,
        weights=run / "model.safetensors",
        device=args.device,
        json_out=args.work / "test_evaluation.json",
        overwrite=True,
    )
    print(format_table(report["summary"]["structures"]))
    print(format_table(report["summary"]["three_class"]))
    if not args.install:
        return 0
    card = load_card(run / "model.safetensors")
    state = load_state_dict(run / "model.safetensors", card)
    summary = report["summary"]
    card.name = MODEL_NAME
    card.version = "2.0"
    card.training_data = description
    # the iteration of the installed weights (a run stopped by --max-minutes never reaches "iterations")
    best = card.metrics.get("best_validation", {}).get("iteration")
    card.training_recipe = {**card.training_recipe, "weights_from_iteration": best}
    if args.trained_on:
        card.training_recipe = {**card.training_recipe, "trained_on": args.trained_on}
    card.metrics = {
        **card.metrics,
        "phantom_test": {
            "cases": len(report["cases"]),
            "seeds": f"2000-{1999 + args.test_cases}",
            "mode": report["mode"],
            "dice_mean": {n: s["dice"]["mean"] for n, s in summary["structures"].items()},
            "three_class": {
                n: {m: s[m]["mean"] for m in ("dice", "iou", "pixel_accuracy")}
                for n, s in summary["three_class"].items()
            },
            "mean_seconds_per_case": float(np.mean([c["seconds"] for c in report["cases"]])),
        },
        "note": "figures on synthetic phantoms only; they say nothing about patient CT",
    }
    weights, card_file = save_weights(state, MODELS_DIR / f"{MODEL_NAME}.safetensors", card, overwrite=True)
    print(f"installed {weights} and {card_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
