"""Train the shipped two-stage stenosis demo (``stenosis_demo``) on synthetic axial T2 phantoms.

Usage (from the repository root; about 8 minutes of single-thread training; reuses the phantom folders
written by ``train_axial_demo.py`` when ``--work`` is the same)::

    .venv/bin/python benchmarks/train_stenosis_demo.py --work /tmp/spineai-axial-phantoms \
        --out SpineAI/spineai/resources/models --overwrite

Steps:

1. Write (or reuse) the phantom folders (training seeds with 15 % held out for validation; a test folder
   of other seeds), each image with its five region boxes and stenosis grades in ``manifest.csv``.
2. Stage 1, the region detector (U-Net 8-16-32-64 heat maps + box sizes, 96 x 96 input, batch 8, AdamW
   2e-3 with cosine decay, rotation/scale/shift augmentation), stopped at ``--detector-minutes``.
3. Stage 2, the region classifier (ResNet-10 at 1/8 width on 64 x 64 crops, right-side regions
   mirrored, jittered crops each epoch), stopped at ``--classifier-minutes``.
4. Evaluate the saved weights on the held-out test seeds with ``evaluate_stenosis`` (box IoU, centre
   error, four-grade and dichotomous kappa and recall per region) and write the weights (fp16
   safetensors) and the card with those figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "SpineAI"))
sys.path.insert(0, str(REPO / "benchmarks"))

from train_axial_demo import phantom_folders  # noqa: E402

from spineai.grading.axial.phantom import PHANTOM_VERSION  # noqa: E402
from spineai.grading.stenosis.classifier import GRADER_DEFAULTS  # noqa: E402
from spineai.grading.stenosis.detector import DETECTOR_DEFAULTS  # noqa: E402
from spineai.grading.stenosis.evaluate import evaluate_stenosis, summary_lines  # noqa: E402
from spineai.grading.stenosis.model import MODEL_NAME  # noqa: E402
from spineai.grading.stenosis.train import (  # noqa: E402
    DetectorTrainConfig,
    RoiGraderTrainConfig,
    train_stenosis_from_folder,
)
from spineai.weights import load_card, load_state_dict, save_weights  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "spineai-axial-phantoms")
    parser.add_argument("--out", type=Path, default=REPO / "SpineAI" / "spineai" / "resources" / "models")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--train-seed", type=int, default=10_000)
    parser.add_argument("--test-seed", type=int, default=900_000)
    parser.add_argument("--detector-iterations", type=int, default=2500)
    parser.add_argument("--detector-minutes", type=float, default=4.5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--classifier-minutes", type=float, default=4.0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    train_dir, test_dir = phantom_folders(
        args.work, args.n_train, args.n_test, args.train_seed, args.test_seed
    )
    det_cfg = DetectorTrainConfig(
        iterations=args.detector_iterations,
        batch_size=8,
        val_every=100,
        max_minutes=args.detector_minutes,
        architecture=dict(DETECTOR_DEFAULTS),
        threads=1,
    )
    cls_cfg = RoiGraderTrainConfig(
        epochs=args.epochs, max_minutes=args.classifier_minutes, architecture=dict(GRADER_DEFAULTS), threads=1
    )
    with tempfile.TemporaryDirectory() as tmp:
        trained = train_stenosis_from_folder(train_dir, tmp, det_cfg, cls_cfg, name=MODEL_NAME, log=print)
        report = evaluate_stenosis(test_dir, weights=trained["weights"])
        for line in summary_lines(report):
            print(line)
        card = load_card(trained["card"])
        state = load_state_dict(trained["weights"], card)
    det_hist = trained["history"]["detector"]
    cls_hist = trained["history"]["classifier"]
    card.training_data = {
        "dataset": f"synthetic axial T2 phantoms ({PHANTOM_VERSION}, spineai.grading.axial.phantom); no patient data",
        "train_seeds": [args.train_seed, args.train_seed + args.n_train - 1],
        "cases": args.n_train,
        "validation": "15 % of the training seeds (by case) chose the detector iteration and classifier epoch",
        "test_seeds": [args.test_seed, args.test_seed + args.n_test - 1],
        "regions": "central canal (Lee), lateral recess (after Bartynski and Lin), neural foramen (Lee), "
        "grades drawn near-uniformly by the phantom",
    }
    card.training_recipe = {
        **card.training_recipe,
        "command": "benchmarks/train_stenosis_demo.py",
        "detector_minutes": det_hist["wall_minutes"],
        "classifier_minutes": cls_hist["wall_minutes"],
        "threads": 1,
    }
    card.metrics = {
        **card.metrics,
        "test": {
            "data": f"{args.n_test} held-out phantom seeds {args.test_seed}..{args.test_seed + args.n_test - 1}",
            "images": report["images"],
            "metrics": report["metrics"],
            "reference_hallinan": report["reference_hallinan"],
        },
    }
    card.extra = {
        **card.extra,
        "network": "stage 1: MONAI UNet 8-16-32-64 (one residual unit per level, instance norm), 96 x 96 input, "
        "5 heat maps + 10 box-size maps; stage 2: MONAI resnet10 at widen_factor 0.125, no max-pool, 64 x 64 crops",
        "research_use_only": True,
    }
    card.version = "1.0-demo"
    args.out.mkdir(parents=True, exist_ok=True)
    weights, card_path = save_weights(
        state, args.out / f"{MODEL_NAME}.safetensors", card, overwrite=args.overwrite
    )
    print(
        f"weights: {weights}\ncard: {card_path}\ndetector {det_hist['wall_minutes']:.1f} min (best iteration "
        f"{det_hist['best_iteration']}), classifier {cls_hist['wall_minutes']:.1f} min (best epoch {cls_hist['best_epoch']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
