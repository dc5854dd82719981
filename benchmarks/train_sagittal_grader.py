"""Train the sagittal grader (disc locator + multi-task disc classifier) on SPIDER and write its model card.

Usage (from the repository root; a few minutes on one CPU thread)::

    .venv/bin/python benchmarks/train_sagittal_grader.py \
        --data ../shared/data/spider_sagittal_t2 --out SpineAI/spineai/resources/models --overwrite

Steps:

1. Read the folder (its PNG slices are stored upside down: ``stored_orientation="caudal_top"``), leave
   out slices that cannot be graded (too thin, implausibly stretched) and recover every disc crop's
   position in its scan (normalised cross-correlation). The crops give exact disc centres for part of
   the patients; they are numbered from the caudal end (IVD 1 = L5/S1).
2. Split the usable patients once, seeded, 65/10/25 % into train/val/test, stratified by whether they
   have crops (so the locator can be scored on held-out patients too). The split goes into the card.
3. Train the locator on the training patients with crops; then run it on the other training patients
   and keep its discs as extra targets where it found L5/S1 and exactly the graded levels
   with confident, regularly spaced discs (pseudo-labels), and fine-tune on both.
4. Train the classifier on patches of the training patients' discs (crop centres where known, else the
   locator's), choosing the epoch by the validation patients' mean balanced accuracy.
5. Save the weights (fp16 safetensors), grade the validation and test patients with the saved weights
   exactly as ``spineai evaluate sagittal`` does, and write the card with those figures.

``--remeasure WEIGHTS`` skips training and renews the figures of existing weights (after a change of the
inference code), writing the same tensors with the renewed card to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "SpineAI"))

from spineai.errors import InputError  # noqa: E402
from spineai.grading.datasets import (  # noqa: E402
    crop_files,
    disc_centres_upright,
    patient_split,
    read_sagittal_folder,
    read_slice_array,
    recover_disc_boxes,
    scan_is_usable,
    upright_slice,
)
from spineai.grading.disc_detection import (  # noqa: E402
    decode_heatmaps,
    locator_input,
    name_levels,
    normalise_slice,
)
from spineai.grading.evaluation import SPINENET_REFERENCE, evaluate_sagittal  # noqa: E402
from spineai.grading.model import ARCHITECTURE, MODEL_NAME, TASK, SagittalGradingModel, class_names  # noqa: E402
from spineai.grading.train import (  # noqa: E402
    GraderTrainConfig,
    LocatorTrainConfig,
    PatchSample,
    train_grader,
    train_locator,
)
from spineai.weights import save_weights  # noqa: E402

STORED = "caudal_top"
MAX_TRAIN_ASPECT = 2.0  # slices more stretched than this are graded at test time but not trained on


def _aspect(shape: tuple[int, int]) -> float:
    return max(shape) / min(shape)


def _prepare(data: Path) -> tuple[object, dict[str, dict]]:
    folder = read_sagittal_folder(data, stored_orientation=STORED)
    cases: dict[str, dict] = {}
    for case in folder.cases:
        raw = read_slice_array(case.scan_path)
        entry: dict = {"case": case, "shape": raw.shape, "problem": scan_is_usable(raw.shape)}
        if entry["problem"] is None:
            entry["slice"] = normalise_slice(upright_slice(raw, STORED))
            files = crop_files(folder.root, case.patient)
            if files:
                centres = disc_centres_upright(recover_disc_boxes(raw, files), raw.shape[0], STORED)
                if len(centres):
                    entry["crops"] = centres
                    entry["crops_include_l5s1"] = len(files) >= len(case.gradings)
        cases[case.patient] = entry
    return folder, cases


def _locate(model: SagittalGradingModel, slice_: np.ndarray) -> object | None:
    x, geo = locator_input(slice_, int(model.locator.config["size"]))
    with torch.no_grad():
        heat = torch.sigmoid(model.locator(torch.from_numpy(x)[None, None]))[0].numpy()
    try:
        return decode_heatmaps(heat, geo, require_l5s1=False)
    except InputError:
        return None


def _samples_from_discs(index: int, patient: str, discs: list, gradings: dict) -> list[PatchSample]:
    out = []
    for d in discs:
        if d.ivd in gradings:
            out.append(
                PatchSample(
                    index, (d.row, d.col), d.axis_rc, d.spacing_px, dict(gradings[d.ivd]), patient, d.ivd
                )
            )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "spider_sagittal_t2")
    ap.add_argument("--out", type=Path, default=REPO / "SpineAI" / "spineai" / "resources" / "models")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--locator-iterations", type=int, default=1200)
    ap.add_argument("--finetune-iterations", type=int, default=500)
    ap.add_argument("--grader-epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument(
        "--remeasure",
        type=Path,
        default=None,
        metavar="WEIGHTS",
        help="no training: re-measure the figures of these weights and write them with a renewed card",
    )
    args = ap.parse_args(argv)
    if args.remeasure is not None:
        return remeasure(args.remeasure, args.data, args.out, args.overwrite)
    t0 = time.time()
    torch.manual_seed(args.seed)

    folder, cases = _prepare(args.data)
    usable = sorted((p for p, e in cases.items() if e["problem"] is None), key=lambda s: (len(s), s))
    excluded = {p: e["problem"] for p, e in cases.items() if e["problem"] is not None}
    strata = {p: ("crops" if "crops" in cases[p] else "no_crops") for p in usable}
    split = patient_split(usable, seed=args.seed, strata=strata)
    print(
        f"{len(usable)} usable patients ({len(excluded)} slices refused); split "
        f"{len(split.train)}/{len(split.val)}/{len(split.test)}",
        flush=True,
    )

    def trainable(p: str) -> bool:
        return _aspect(cases[p]["shape"]) <= MAX_TRAIN_ASPECT

    # ---- locator, stage 1: crop positions
    loc_patients = [p for p in split.train if "crops" in cases[p] and trainable(p)]
    slices = [cases[p]["slice"] for p in loc_patients]
    discs = [cases[p]["crops"] for p in loc_patients]
    known = [bool(cases[p]["crops_include_l5s1"]) for p in loc_patients]
    loc_cfg = LocatorTrainConfig(
        iterations=args.locator_iterations, learning_rate=2e-3, seed=args.seed, threads=args.threads
    )
    locator, loc_hist = train_locator(slices, discs, known, loc_cfg, progress=False)
    print(
        f"locator stage 1 on {len(loc_patients)} slices: loss {np.mean(loc_hist['loss'][:20]):.2f} -> "
        f"{np.mean(loc_hist['loss'][-50:]):.2f} ({time.time() - t0:.0f} s)",
        flush=True,
    )
    model = SagittalGradingModel()
    model.locator.load_state_dict(locator.state_dict())
    model.eval()

    # ---- pseudo-labels on the other training slices, then fine-tuning
    pseudo = []
    for p in split.train:
        if p in loc_patients or not trainable(p):
            continue
        loc = _locate(model, cases[p]["slice"])
        graded = set(cases[p]["case"].gradings)
        if loc is None or not loc.l5s1_found:
            continue
        found = [d for d in loc.discs if d.ivd <= max(graded)]
        gaps = np.diff([d.row for d in loc.discs])
        regular = len(gaps) > 0 and bool(np.all(np.abs(gaps) > 0.6 * np.median(np.abs(gaps))))
        confident = all(d.confidence >= 0.5 for d in found)
        if regular and confident and sorted(d.ivd for d in found) == sorted(graded):
            pseudo.append((p, np.array([[d.row, d.col] for d in loc.discs])))
    print(
        f"pseudo-labels accepted on {len(pseudo)} of "
        f"{sum(1 for p in split.train if p not in loc_patients and trainable(p))} other training slices",
        flush=True,
    )
    ft_cfg = LocatorTrainConfig(
        iterations=args.finetune_iterations, learning_rate=1e-3, seed=args.seed + 1, threads=args.threads
    )
    ft_slices = slices + [cases[p]["slice"] for p, _ in pseudo]
    ft_discs = discs + [d for _, d in pseudo]
    ft_known = known + [True] * len(pseudo)
    locator_ft, _ = train_locator(
        ft_slices, ft_discs, ft_known, ft_cfg, progress=False, initial_state=locator.state_dict()
    )
    model.locator.load_state_dict(locator_ft.state_dict())
    model.eval()
    print(f"locator fine-tuned on {len(ft_slices)} slices ({time.time() - t0:.0f} s)", flush=True)

    # ---- classifier samples
    grader_slices: list[np.ndarray] = []
    train_samples: list[PatchSample] = []
    val_samples: list[PatchSample] = []
    source_counts = {"crops": 0, "locator": 0, "none": 0}
    for p in list(split.train) + list(split.val):
        e = cases[p]
        if not trainable(p):
            continue
        gradings = e["case"].gradings
        if p in split.train and "crops" in e and e["crops_include_l5s1"]:
            c = e["crops"]
            loc = name_levels(c, np.zeros(len(c)), np.ones(len(c)), lowest_ivd=1, min_discs=2)
            source_counts["crops"] += 1
        else:
            loc = _locate(model, e["slice"])
            if loc is None or not loc.l5s1_found:
                source_counts["none"] += 1
                continue
            source_counts["locator"] += 1
        grader_slices.append(e["slice"])
        samples = _samples_from_discs(len(grader_slices) - 1, p, loc.discs, gradings)
        (train_samples if p in split.train else val_samples).extend(samples)
    print(
        f"classifier: {len(train_samples)} training discs, {len(val_samples)} validation discs "
        f"(disc positions: {source_counts})",
        flush=True,
    )
    g_cfg = GraderTrainConfig(epochs=args.grader_epochs, seed=args.seed, threads=args.threads)
    grader, g_hist = train_grader(
        grader_slices, train_samples, g_cfg, val_samples=val_samples, progress=False
    )
    model.grader.load_state_dict(grader.state_dict())
    model.eval()
    print(
        f"classifier trained: loss {g_hist['loss'][0]:.2f} -> {g_hist['loss'][-1]:.2f}, best epoch "
        f"{g_hist.get('best_epoch')} (val mean balanced accuracy "
        f"{max(g_hist['val_mean_balanced_accuracy'] or [float('nan')]):.3f}) ({time.time() - t0:.0f} s)",
        flush=True,
    )

    # ---- card, evaluation with the saved fp16 weights, final card
    card = {
        "name": MODEL_NAME,
        "version": "1.0",
        "task": TASK,
        "architecture": ARCHITECTURE,
        "config": model.config,
        "class_names": class_names(),
        "input": {
            "modality": "MRI, T2-weighted (fast/turbo spin echo), sagittal",
            "slice": "one mid-sagittal slice (the middle left-right slice of a volume)",
            "orientation": "graded upright (superior at the top, anterior on the left); pictures are "
            "auto-oriented, volumes reoriented from their geometry",
            "intensity": "per-slice linear scaling of the 0.5th-99.5th percentiles to [0, 1]",
            "locator_input": "slice scaled to fit 128 x 128 pixels, aspect kept, zero padded",
            "patch": "64 x 96 px; 1.0 x 1.6 local disc spacings along x across the spine, 0.1 spacing posterior",
            "pixel_spacing": "not needed (sizes follow the disc spacing)",
        },
        "training_data": {
            "dataset": "SPIDER lumbar spine MRI (van der Graaf et al., Scientific Data 2024), public subset: one "
            "mid-sagittal T2 slice per patient (PNG, 8-bit) with per-disc radiological gradings "
            "and disc crops, as prepared in the public medvisor repository",
            "licence": "CC BY 4.0",
            "patients_in_folder": len(cases),
            "patients_usable": len(usable),
            "slices_refused": excluded,
            "stored_orientation": "the PNG slices are stored upside down (caudal end at the top)",
        },
        "training_recipe": {
            "split": "by patient, seeded, stratified by having disc crops; 65/10/25 % train/val/test",
            "locator": {
                **loc_cfg.to_dict(),
                "slices": len(loc_patients),
                "loss": "foreground-weighted squared error of the heat maps",
            },
            "locator_finetune": {
                **ft_cfg.to_dict(),
                "slices": len(ft_slices),
                "pseudo_labelled": len(pseudo),
            },
            "grader": {
                **g_cfg.to_dict(),
                "train_discs": len(train_samples),
                "val_discs": len(val_samples),
                "best_epoch": g_hist.get("best_epoch"),
                "disc_positions": source_counts,
                "loss": "sum of class-weighted (1/sqrt frequency) cross-entropies of the 8 heads",
            },
            "max_training_aspect": MAX_TRAIN_ASPECT,
            "threads": args.threads,
            "wall_time_s": round(time.time() - t0, 1),
            "parameters": int(sum(p.numel() for p in model.parameters())),
        },
        "metrics": {},
        "extra": {"split": split.to_dict(), "spinenet_reference": SPINENET_REFERENCE},
    }
    with tempfile.TemporaryDirectory() as tmp:
        weights_tmp, _ = save_weights(model, Path(tmp) / f"{MODEL_NAME}.safetensors", card)
        card["metrics"] = _measure(args.data, weights_tmp)
    card["training_recipe"]["wall_time_s"] = round(time.time() - t0, 1)
    w, c = save_weights(model, args.out / f"{MODEL_NAME}.safetensors", card, overwrite=args.overwrite)
    print(f"wrote {w} and {c} ({time.time() - t0:.0f} s)")
    return 0


def _measure(data: Path, weights: Path) -> dict:
    """Validation and test figures of saved weights, as ``spineai evaluate sagittal`` computes them."""
    metrics: dict = {}
    for name in ("val", "test"):
        report = evaluate_sagittal(
            data, weights=weights, split=name, stored_orientation=STORED, progress=False
        )
        report.pop("per_disc", None)
        if "localisation" in report:
            report["localisation"].pop("per_patient", None)
        for key in ("data", "skipped", "reference_spinenet", "intended_use", "model"):
            report.pop(key, None)
        for failure in report["failures"]:  # no machine-specific paths in the card
            failure["scan"] = Path(failure["scan"]).name
        metrics[name] = report
        pf = report["gradings"]["pfirrmann"]
        print(
            f"{name}: Pfirrmann bal.acc {pf.get('balanced_accuracy')}, kappa {pf.get('kappa')}, "
            f"coverage {report['coverage']:.2f}",
            flush=True,
        )
    metrics["measured_on"] = (
        "the saved fp16 weights, patients of the split in the training folder, graded as "
        "'spineai evaluate sagittal --split <val|test> --stored-orientation caudal_top' grades them"
    )
    return metrics


def remeasure(weights: Path, data: Path, out: Path, overwrite: bool) -> int:
    """Re-measure the card figures of existing weights with the current code and write weights + card to ``out``.

    The fp16 tensors are written back unchanged and the card gets the renewed figures (and the SHA-256 of
    the new file, whose header may list its metadata in another order).
    """
    from spineai.grading.model import load_grading_model

    model, card = load_grading_model(weights)
    new = card.to_dict()
    new["metrics"] = _measure(data, weights)
    w, c = save_weights(model, out / f"{MODEL_NAME}.safetensors", new, overwrite=overwrite)
    print(f"wrote {w} and {c}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
