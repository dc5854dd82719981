"""Train the seed paper's whole-image radiograph ensemble on phantom DRRs (the control of the shipped design).

The shipped radiograph model is the disc-crops design (``benchmarks/train_radiograph_discs_demo.py``): this
whole-image recipe, trained from scratch on the CPU, stayed at chance on held-out phantoms (docs/radiograph.md),
and its ``--install`` writes ``radiograph_demo``, which ``spineai radiograph`` does not load by default (pass it
with ``--weights``). This script also renders the synthetic cohorts both recipes read.

Steps (resumable: re-running the same command reuses every finished stage):

1. render the synthetic radiograph cohorts (``spineai.radiograph.phantom``: DRRs of the CT phantom of
   L1..S1 with degenerated, herniated discs; AP, lateral and both oblique views, 160 px over 240 mm):
   cross-validation patients with seeds ``0 .. N-1`` into ``WORK/cv``, held-out test patients with seeds
   ``100_000 ..`` into ``WORK/test`` (never used in training, model selection or thresholds). Finished
   patients are kept and not rendered again;
2. four-fold cross-validation grouped by patient on the ``cv`` cohort (``spineai.radiograph.train``):
   each fold trains an EfficientNet-B0 at half width (MONAI ``EfficientNet`` with B0's blocks) on 128 px
   inputs on one CPU thread (Adam 1e-3, cosine warm restarts, batch 8, batch-norm momentum 0.1), keeps its best epoch by the mean per-level AUC of its validation patients and
   picks per-level Youden thresholds there; the four fold models form the bagging ensemble. Finished folds
   are reused (``WORK/run/fold_<k>.*``);
3. evaluate the ensemble, loaded from its fp16 file as shipped, on the test patients: per level
   precision, recall, F1 and AUC (DeLong 95 % CI) on patient-mean probabilities at the ensemble
   thresholds, beside the seed paper's test figures;
4. with ``--install``: write ``spineai/resources/models/radiograph_demo.safetensors`` + ``radiograph_demo.json``.

Why the demo differs from the paper (EfficientNet-B5, ImageNet weights, 456 px, 162,257 images): B5 at
456 px needs a GPU for days; four fold models of full-width B0 would weigh 32 MB in fp16. Half-width B0
at 128 px trains in minutes on one CPU thread and the ensemble weighs under 10 MB. ``spineai train
radiograph`` defaults to the paper's B5 at 456 px for a site's own data.

Command used for the shipped weights (CPU, one thread)::

    python benchmarks/train_radiograph_demo.py --work radiograph-demo --cv-patients 64 --test-patients 32 \\
        --epochs 8 --install

Research use only: weights trained on synthetic radiographs are a demonstration, not a clinical model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "SpineAI"))

MODEL_NAME = "radiograph_demo"
TEST_SEED0 = 100_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True, help="working folder (cohorts, run)")
    parser.add_argument("--cv-patients", type=int, default=64, help="cross-validation patients (64)")
    parser.add_argument("--test-patients", type=int, default=32, help="held-out test patients (32)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per fold (8)")
    parser.add_argument("--size", type=int, default=128, help="network input in pixels (128)")
    parser.add_argument("--width", type=float, default=0.5, help="EfficientNet-B0 width factor (0.5)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (1e-3)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (0)")
    parser.add_argument(
        "--augment", action="store_true", help="zoom, shift and contrast jitter (no flips or rotations)"
    )
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for training (1)")
    parser.add_argument(
        "--restart-epochs",
        type=int,
        default=None,
        help="epochs of the first cosine cycle (default half of --epochs)",
    )
    parser.add_argument("--install", action="store_true", help="write the shipped weights and card")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from spineai.outputs import write_json
    from spineai.radiograph.data import load_radiograph_data, prepare_arrays
    from spineai.radiograph.evaluate import PAPER_FIGURES, evaluate_radiograph
    from spineai.radiograph.phantom import DEMO_PREVALENCE, PAPER_PREVALENCE, VIEWS, write_radiograph_cohort
    from spineai.radiograph.train import RadiographTrainConfig, train_radiograph_arrays
    from spineai.weights import MODELS_DIR, load_card, save_weights

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    cohorts = {}
    for name, seed0, n in (("cv", 0, args.cv_patients), ("test", TEST_SEED0, args.test_patients)):
        manifest = work / name / "manifest.csv"
        if not manifest.is_file():
            write_radiograph_cohort(work / name, range(seed0, seed0 + n))
        cohorts[name] = manifest
    render_seconds = time.time() - t0
    print(f"cohorts ready in {render_seconds:.0f} s", flush=True)

    records, _ = load_radiograph_data(cohorts["cv"])
    arrays = prepare_arrays(records, args.size)
    cfg = RadiographTrainConfig(
        model_name="efficientnet-b0",
        width_multiplier=args.width,
        image_size=args.size,
        folds=4,
        epochs=args.epochs,
        batch_size=8,
        bn_momentum=0.1,
        learning_rate=args.lr,
        restart_epochs=args.restart_epochs or max(1, args.epochs // 2),
        seed=args.seed,
        augment=args.augment,
        num_threads=args.threads,
        model_card_name=MODEL_NAME,
    )
    command = (
        f"python benchmarks/train_radiograph_demo.py --work {work.name} --cv-patients {args.cv_patients} "
        f"--test-patients {args.test_patients} --epochs {args.epochs}"
        + (f" --size {args.size}" if args.size != 128 else "")
        + (f" --width {args.width:g}" if args.width != 0.5 else "")
        + (f" --lr {args.lr:g}" if args.lr != 1e-3 else "")
        + (f" --seed {args.seed}" if args.seed else "")
        + (" --augment" if args.augment else "")
        + (f" --restart-epochs {args.restart_epochs}" if args.restart_epochs else "")
        + (f" --threads {args.threads}" if args.threads != 1 else "")
        + " --install"
    )
    result = train_radiograph_arrays(arrays, cfg, work / "run", training_data="synthetic")
    train_seconds = float(sum(f["history"][-1]["seconds"] for f in result.folds if f.get("history")))
    print(
        f"cross-validation done ({train_seconds:.0f} s of training); thresholds {result.thresholds}",
        flush=True,
    )

    test = evaluate_radiograph(
        cohorts["test"],
        weights=work / "run" / "model.safetensors",
        json_out=work / "test_evaluation.json",
        overwrite=True,
    )
    summary = {
        lv: (None if e["auc"] is None else round(e["auc"]["auc"], 3)) for lv, e in test["per_level"].items()
    }
    any_auc = test["any_hnp"]["auc"]
    print(
        f"test (n={test['n_patients']} patients): per-level AUC {summary}; mean {test['mean_auc']:.3f}; "
        f"any herniation {any_auc['auc'] if any_auc else float('nan'):.3f}",
        flush=True,
    )
    metrics = {
        "test": {
            "data": f"synthetic radiographs (DRRs), patients seeds {TEST_SEED0}..{TEST_SEED0 + args.test_patients - 1}, "
            "never seen in training, model selection or thresholds; patient-mean probabilities",
            **{
                k: test[k]
                for k in (
                    "n_patients",
                    "n_images",
                    "per_level",
                    "mean_auc",
                    "any_hnp",
                    "accuracy_all_levels",
                    "threshold_source",
                )
            },
        },
        "paper": PAPER_FIGURES,
        "summary": f"synthetic test patients (n={test['n_patients']}): mean per-level AUC {test['mean_auc']:.3f}, "
        f"per level {summary}; paper (real patients) 0.68/0.68/0.63/0.67/0.72",
    }
    write_json(work / "test_metrics.json", metrics, overwrite=True)
    if args.install:
        run_card = load_card(work / "run" / "model.json").to_dict()
        card = {
            k: run_card[k]
            for k in ("name", "task", "architecture", "config", "class_names", "input", "training_recipe")
        }
        card["metrics"] = {**run_card["metrics"], **metrics}
        card["training_data"] = {
            "kind": "SYNTHETIC",
            "statement": "Trained on SYNTHETIC radiographs only: digitally reconstructed radiographs of the SpineAI "
            "CT phantom (spineai.radiograph.phantom) whose herniated discs carry radiographic surrogates of "
            "degeneration (disc-height loss, endplate sclerosis, osteophytes); the herniation itself is invisible "
            "on radiographs, as in patients. No patient data. A demonstration that the pipeline runs, not a "
            "clinical model. Research use only.",
            "cohort": f"cross-validation patients seeds 0..{args.cv_patients - 1} ({len(arrays.x)} images, views "
            f"{', '.join(VIEWS)}); test patients seeds {TEST_SEED0}..{TEST_SEED0 + args.test_patients - 1}",
            "prevalence": {"demo": DEMO_PREVALENCE, "paper_training_folds": PAPER_PREVALENCE},
        }
        card["extra"] = {
            **run_card["extra"],
            "training_command": command,
            "training_seconds_cpu": round(train_seconds, 1),
            "training_cpu_threads": args.threads,
            "render_seconds": round(render_seconds, 1),
            "why_not_the_papers_network": "The paper used ImageNet-pretrained EfficientNet-B5 at 456 px on 162,257 "
            "images (2 days 18 h on an RTX 3090). This demo trains from scratch (nothing is downloaded) on the CPU "
            "in minutes: EfficientNet-B0 blocks at half width on 128 px inputs, so that four fold models "
            "weigh under 10 MB in fp16. 'spineai train radiograph' defaults to B5 at 456 px.",
        }
        card["version"] = "1.0"
        ensemble = result.model
        weights, card_path = save_weights(
            ensemble, MODELS_DIR / f"{MODEL_NAME}.safetensors", card, overwrite=True
        )
        print(f"installed {weights} ({weights.stat().st_size / 1e6:.1f} MB) and {card_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
