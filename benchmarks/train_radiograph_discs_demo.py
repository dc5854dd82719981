"""Train the shipped disc-crops radiograph model (disc locator + per-level reader) on phantom DRRs.

Steps (each finished stage is reused when the command is run again):

1. read the synthetic cohorts written by ``benchmarks/train_radiograph_demo.py`` (``WORK/cv``: cross-validation
   patients, ``WORK/test``: held-out patients, never used for training, model selection or thresholds) and
   project every patient's disc centres (``truth.json``) onto its four views
   (:func:`spineai.radiograph.discs.project_disc_centres`);
2. train the **disc locator** (MONAI UNet, 128 px, Gaussian heat maps at the projected centres, zoom/shift/
   rotation augmentation) on all cross-validation images; report its localisation error (mm) per view on
   the held-out patients;
3. train the **per-level reader** with four-fold cross-validation grouped by patient on crops at the true
   disc centres jittered by ``--jitter-mm`` (about the locator's error), each fold validated on crops at the
   located centres; the folds form the bagging ensemble (``spineai.radiograph.reader``);
4. evaluate the ensemble, loaded from its fp16 file, on the held-out patients exactly as a user's PNG is
   read (``evaluate_radiograph``: locate, estimate the scale from the located discs, crop, read; patient
   mean over the four views) with per-level precision, recall, F1 and AUC (DeLong 95 % CI);
5. check the locator on the real AP radiographs of ``../shared/data/xray_ap_vertebra_boxes`` (lumbar crop
   from the five lowest vertebra boxes; approximate disc centres = midpoints between consecutive boxes);
6. with ``--install``, when every held-out per-level AUC is above 0.6 and their mean above 0.7: write
   ``spineai/resources/models/radiograph_hnp_demo.safetensors`` + ``.json``.

Command used for the shipped weights (CPU, one thread)::

    python benchmarks/train_radiograph_discs_demo.py --work /work/radiograph-demo2 --install

Research use only: weights trained on synthetic radiographs are a demonstration, not a clinical model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "SpineAI"))

MODEL_NAME = "radiograph_hnp_demo"
REAL_AP = REPO.parent / "shared" / "data" / "xray_ap_vertebra_boxes"


def read_cohort(folder: Path) -> dict:
    """Images, true disc centres (pixels), labels, patients and views of a rendered cohort."""
    from PIL import Image

    from spineai.radiograph.discs import project_disc_centres
    from spineai.radiograph.network import LEVELS

    out: dict = {"images": [], "centres": [], "labels": [], "patients": [], "views": [], "pixel_mm": []}
    for truth_file in sorted((folder / "patients").glob("*/truth.json")):
        truth = json.loads(truth_file.read_text(encoding="utf-8"))
        geometry = truth["image"]
        for view in geometry["views"]:
            img = np.asarray(Image.open(truth_file.with_name(f"{view}.png")), dtype=np.float32)
            out["images"].append(img)
            out["centres"].append(
                project_disc_centres(
                    truth["disc_centres_lps_mm"],
                    view,
                    geometry["centre_lps_mm"],
                    geometry["pixel_mm"],
                    geometry["image_px"],
                )
            )
            out["labels"].append([int(truth["levels"][lv]["hnp"]) for lv in LEVELS])
            out["patients"].append(truth_file.parent.name)
            out["views"].append(view)
            out["pixel_mm"].append(geometry["pixel_mm"])
    for key in ("centres", "labels", "pixel_mm"):
        out[key] = np.asarray(out[key])
    return out


def locator_inputs(images: list, size: int) -> tuple[np.ndarray, list]:
    from spineai.radiograph.image import prepare_input

    prepared = [prepare_input(img, size) for img in images]
    return np.stack([p[0] for p in prepared]).astype(np.float32), [p[1] for p in prepared]


def locator_error_mm(locator, cohort: dict) -> dict:
    """Median / 90th percentile distance (mm) of located from true centres, per view and level."""
    from spineai.radiograph.discs import locate_discs
    from spineai.radiograph.image import prepare_input
    from spineai.radiograph.network import LEVELS

    size = int(locator.config["image_size"])
    errors, in_order, enforced = [], [], []
    for img, centres, px in zip(cohort["images"], cohort["centres"], cohort["pixel_mm"], strict=True):
        x, box = prepare_input(img, size)
        found = locate_discs(locator, x, box)
        errors.append(np.linalg.norm(found.input_rc - centres, axis=1) * px)
        in_order.append(found.in_order)
        enforced.append(found.order_enforced)
    errors = np.asarray(errors)
    views = np.asarray(cohort["views"])
    report = {
        "all": _err(errors),
        "images_in_order": float(np.mean(in_order)),
        "order_enforced": float(np.mean(enforced)),
    }
    for view in sorted(set(views)):
        report[view] = _err(errors[views == view])
        report[view]["per_level_median_mm"] = dict(
            zip(LEVELS, np.round(np.median(errors[views == view], axis=0), 2).tolist(), strict=True)
        )
    return report


def _err(e: np.ndarray) -> dict:
    return {
        "median_mm": round(float(np.median(e)), 2),
        "mean_mm": round(float(np.mean(e)), 2),
        "p90_mm": round(float(np.percentile(e, 90)), 2),
        "n_discs": int(e.size),
    }


def real_ap_check(locator) -> dict | None:
    """Located discs on the real AP radiographs vs midpoints between consecutive lumbar vertebra boxes."""
    from PIL import Image

    from spineai.radiograph.discs import locate_discs
    from spineai.radiograph.image import lumbar_crop_from_boxes, prepare_input, read_yolo_boxes

    if not (REAL_AP / "images").is_dir():
        return None
    size = int(locator.config["image_size"])
    rel, px_err, level_ok, conf = [], [], [], []
    for image in sorted((REAL_AP / "images").glob("*.jpg")):
        labels = REAL_AP / "labels" / f"{image.stem}.txt"
        if not labels.is_file():
            continue
        arr = np.asarray(Image.open(image).convert("L"), dtype=np.float32)
        h, w = arr.shape
        boxes = read_yolo_boxes(labels, w, h)
        if len(boxes) < 6:
            continue
        x0, y0, x1, y1 = lumbar_crop_from_boxes(boxes, w, h)
        lumbar = boxes[-5:]
        centres = np.c_[
            0.5 * (lumbar[:, 1] + lumbar[:, 3]), 0.5 * (lumbar[:, 0] + lumbar[:, 2])
        ]  # (row, col)
        gaps = 0.5 * (centres[1:] + centres[:-1])  # L1-L2 .. L4-L5 (midpoints between vertebra centres)
        below = lumbar[-1, 3] + 0.5 * np.mean(lumbar[1:, 1] - lumbar[:-1, 3])  # L5-S1 just below L5
        approx = np.vstack([gaps, [below, centres[-1, 1]]])
        spacing = float(np.mean(np.diff(centres[:, 0])))  # one vertebra + disc, pixels
        x, box = prepare_input(arr[y0:y1, x0:x1], size)
        found = locate_discs(locator, x, box)
        located = found.input_rc + [y0, x0]
        d = np.linalg.norm(located - approx, axis=1)
        px_err.append(d)
        rel.append(d / spacing)
        level_ok.append(np.argmin(np.abs(located[:, None, 0] - approx[None, :, 0]), axis=1) == np.arange(5))
        conf.append(found.confidence)
    if not rel:
        return None
    rel, px_err = np.asarray(rel), np.asarray(px_err)
    return {
        "n_images": len(rel),
        "reference": "midpoints between consecutive lumbar vertebra boxes (the five lowest boxes taken as L1..L5; "
        "L5-S1 half a disc below the L5 box): approximate",
        "median_error_px": round(float(np.median(px_err)), 1),
        "median_error_vertebral_spacings": round(float(np.median(rel)), 2),
        "median_error_mm_if_35mm_spacing": round(float(np.median(rel) * 35.0), 1),
        "share_within_half_a_spacing": round(float(np.mean(rel < 0.5)), 3),
        "share_nearest_to_its_own_level": round(float(np.mean(level_ok)), 3),
        "median_confidence": round(float(np.median(conf)), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True, help="folder holding cv/ and test/ cohorts")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default WORK/run_discs)")
    parser.add_argument("--locator-epochs", type=int, default=8, help="locator epochs (8)")
    parser.add_argument("--epochs", type=int, default=12, help="reader epochs per fold (12)")
    parser.add_argument("--jitter-mm", type=float, default=2.0, help="training-crop jitter (mm, per axis; 2)")
    parser.add_argument("--level-mode", choices=("outputs", "input"), default="outputs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--install", action="store_true", help="install the weights when clearly above chance"
    )
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from spineai.outputs import write_json
    from spineai.radiograph.discs import LocatorTrainConfig, input_to_grid, train_disc_locator
    from spineai.radiograph.evaluate import PAPER_FIGURES, evaluate_radiograph
    from spineai.radiograph.network import LEVELS
    from spineai.radiograph.reader import (
        DiscCropsTrainConfig,
        disc_model_card,
        load_locator,
        prepare_disc_images,
        save_locator,
        train_disc_reader,
    )
    from spineai.weights import MODELS_DIR, load_card, save_weights

    out = args.out or args.work / "run_discs"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    cv, test = read_cohort(args.work / "cv"), read_cohort(args.work / "test")
    print(
        f"cohorts read: {len(cv['images'])} cv / {len(test['images'])} test images ({time.time() - t0:.0f} s)"
    )

    # -- 1. locator
    loc_cfg = LocatorTrainConfig(epochs=args.locator_epochs, seed=args.seed, num_threads=args.threads)
    locator_file = out / "locator.safetensors"
    if locator_file.is_file():
        locator = load_locator(locator_file)
        loc_history = json.loads((out / "locator_history.json").read_text())
    else:
        x, boxes = locator_inputs(cv["images"], loc_cfg.image_size)
        grid = np.stack([input_to_grid(c, b) for c, b in zip(cv["centres"], boxes, strict=True)])
        locator, loc_history = train_disc_locator(x, grid, loc_cfg)
        save_locator(locator, locator_file)
        write_json(out / "locator_history.json", loc_history, overwrite=True)
    loc_seconds = float(loc_history[-1]["seconds"])
    loc_test = locator_error_mm(locator, test)
    print(f"locator ({loc_seconds:.0f} s): held-out error {json.dumps(loc_test)}", flush=True)
    real = real_ap_check(locator)
    print(f"real AP radiographs: {json.dumps(real)}", flush=True)

    # -- 2. reader
    cfg = DiscCropsTrainConfig(
        epochs=args.epochs,
        jitter_mm=args.jitter_mm,
        level_mode=args.level_mode,
        seed=args.seed,
        num_threads=args.threads,
        model_card_name=MODEL_NAME,
    )
    t1 = time.time()
    data = prepare_disc_images(
        cv["images"], locator, cv["labels"], cv["patients"], cv["views"], true_rc=cv["centres"]
    )
    log: list[str] = []
    ens, summary = train_disc_reader(data, locator, cfg, log=log)
    reader_seconds = time.time() - t1
    (out / "train.log").write_text("\n".join(log) + "\n", encoding="utf-8")
    print(
        f"reader cross-validation ({reader_seconds:.0f} s): out-of-fold mean AUC "
        f"{summary['cross_validation']['mean_auc']:.3f}",
        flush=True,
    )
    locator_info = {
        **{k: v for k, v in loc_cfg.__dict__.items()},
        "training_images": len(cv["images"]),
        "training_seconds_cpu": round(loc_seconds, 1),
        "held_out_error": loc_test,
        "real_ap_check": real,
    }
    training_data = {
        "kind": "SYNTHETIC",
        "statement": "Trained on SYNTHETIC radiographs only: digitally reconstructed radiographs (DRRs) of the "
        "SpineAI CT phantom (spineai.radiograph.phantom) whose herniated discs carry radiographic surrogates of "
        "degeneration (disc-height loss, endplate sclerosis, osteophytes); the herniation itself is invisible on "
        "radiographs, as in patients. No patient data. A demonstration that the pipeline runs, not a clinical "
        "model. Research use only; not for clinical decisions.",
        "cohort": f"{len(set(cv['patients']))} cross-validation patients ({len(cv['images'])} images: AP, lateral, "
        f"both obliques; 160 px of 1.5 mm); {len(set(test['patients']))} held-out test patients",
    }
    card = disc_model_card(
        ens,
        summary,
        cfg,
        n_images=len(cv["images"]),
        n_patients=len(set(cv["patients"])),
        training_data=training_data,
        locator_info=locator_info,
    )
    weights, _card_path = save_weights(ens, out / "model.safetensors", card, overwrite=True)

    # -- 3. held-out evaluation exactly as a user's PNG is read
    report = evaluate_radiograph(
        args.work / "test", weights=weights, json_out=out / "test_evaluation.json", overwrite=True
    )
    per_level = {lv: round(report["per_level"][lv]["auc"]["auc"], 3) for lv in LEVELS}
    any_auc = report["any_hnp"]["auc"]["auc"] if report["any_hnp"]["auc"] else float("nan")
    print(
        f"held-out test (n={report['n_patients']}): per-level AUC {per_level}; mean {report['mean_auc']:.3f}; "
        f"any herniation {any_auc:.3f}",
        flush=True,
    )
    for lv in LEVELS:
        e = report["per_level"][lv]
        a = e["auc"]
        ci = f" ({a['ci_low']:.2f}-{a['ci_high']:.2f})" if a.get("ci_low") is not None else ""
        print(
            f"  {lv}: pos {e['n_positive']:3d} AUC {a['auc']:.3f}{ci} precision {e['precision']} "
            f"recall {e['recall']} F1 {e['f1']}"
        )
    command = (
        f"python benchmarks/train_radiograph_discs_demo.py --work {args.work} --locator-epochs {args.locator_epochs} "
        f"--epochs {args.epochs} --jitter-mm {args.jitter_mm:g} --level-mode {args.level_mode} --install"
    )
    metrics = {
        "test": {
            "data": f"synthetic radiographs (DRRs) of {report['n_patients']} held-out patients (seeds 100000..), "
            "never seen in training, model selection or thresholds; read as PNG files (locator, scale estimated "
            "from the located discs); patient-mean probabilities over four views",
            **{
                k: report[k]
                for k in (
                    "n_patients",
                    "n_images",
                    "per_level",
                    "mean_auc",
                    "any_hnp",
                    "accuracy_all_levels",
                    "located_discs",
                )
            },
        },
        "locator_held_out_error": loc_test,
        "locator_real_ap_check": real,
        "paper": PAPER_FIGURES,
        "summary": f"held-out synthetic patients (n={report['n_patients']}): mean per-level AUC "
        f"{report['mean_auc']:.3f}, per level {per_level}; paper (real patients) 0.68/0.68/0.63/0.67/0.72",
    }
    write_json(out / "test_metrics.json", metrics, overwrite=True)
    clear = report["mean_auc"] > 0.7 and min(per_level.values()) > 0.6
    if args.install and clear:
        run_card = load_card(weights).to_dict()
        keep = (
            "name",
            "task",
            "architecture",
            "config",
            "class_names",
            "input",
            "training_recipe",
            "training_data",
        )
        final = {k: run_card[k] for k in keep}
        final["metrics"] = {**run_card["metrics"], **metrics}
        final["extra"] = {
            **run_card["extra"],
            "training_command": command,
            "training_seconds_cpu": {
                "locator": round(loc_seconds, 1),
                "reader_4_folds": round(reader_seconds, 1),
            },
            "training_cpu_threads": args.threads,
        }
        final["version"] = "2.0"
        path, card_path = save_weights(ens, MODELS_DIR / f"{MODEL_NAME}.safetensors", final, overwrite=True)
        print(f"installed {path} ({path.stat().st_size / 1e6:.2f} MB) and {card_path}")
    elif args.install:
        print("not installed: the held-out AUCs are not clearly above chance")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
