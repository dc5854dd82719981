"""How well one disc space can be read on a synthetic lateral radiograph when its position is known.

A control for the radiograph herniation demo: the whole-image EfficientNet trained from scratch stays at
chance on the synthetic cohort (docs/radiograph.md). This probe asks whether the information is readable
locally: it crops 48 x 48 pixels (72 mm) around each disc of the lateral DRR, at the disc centre the phantom
knows (``truth.json``: ``disc_centres_lps_mm`` projected with the view's geometry: image column along LPS
+y, row along -z), and trains one small CNN (three 3x3 convolution blocks, 24 k parameters) on the crops of
all five levels, with a held-out set of patients (never in training). It reports the per-level AUC on
the held-out patients. It is a measurement, not a shipped model: a user's radiograph carries no disc
positions, so a product needs a disc locator first: the shipped disc-crops model adds one
(``spineai.radiograph.discs``, ``benchmarks/train_radiograph_discs_demo.py``).

    python benchmarks/probe_radiograph_disc_crops.py --cohort radiograph-demo2/cv
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from spineai.radiograph.network import LEVELS

CROP_PX = 48


def disc_crops(cohort: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(crops (N, 1, 48, 48) standardised, labels (N,), patient seeds (N,), level index (N,))``."""
    from PIL import Image

    crops, labels, patients, levels = [], [], [], []
    for truth_file in sorted((cohort / "patients").glob("*/truth.json")):
        truth = json.loads(truth_file.read_text())
        image = np.asarray(Image.open(truth_file.with_name("lateral.png")), dtype=np.float32) / 255.0
        geometry = truth["image"]
        centre, pixel, side = (
            np.asarray(geometry["centre_lps_mm"]),
            geometry["pixel_mm"],
            geometry["image_px"],
        )
        padded = np.pad(image, CROP_PX // 2, mode="edge")
        for k, level in enumerate(LEVELS):
            disc = np.asarray(truth["disc_centres_lps_mm"][level])
            col = int(round((disc[1] - centre[1]) / pixel + side / 2))  # anterior on the image's left
            row = int(round(side / 2 - (disc[2] - centre[2]) / pixel))  # head up
            crops.append(padded[row : row + CROP_PX, col : col + CROP_PX])
            labels.append(truth["levels"][level]["hnp"])
            patients.append(truth["seed"])
            levels.append(k)
    x = np.asarray(crops, dtype=np.float32)[:, None]
    x = (x - x.mean(axis=(2, 3), keepdims=True)) / (x.std(axis=(2, 3), keepdims=True) + 1e-3)
    return x, np.asarray(labels, dtype=np.float32), np.asarray(patients), np.asarray(levels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cohort", type=Path, required=True, help="folder written by write_radiograph_cohort"
    )
    parser.add_argument("--test-patients", type=int, default=100, help="held-out patients (100)")
    parser.add_argument("--epochs", type=int, default=15, help="training epochs (15)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    from sklearn.metrics import roc_auc_score

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x, y, patients, levels = disc_crops(args.cohort)
    held_out = np.isin(patients, rng.choice(np.unique(patients), args.test_patients, replace=False))
    net = torch.nn.Sequential(
        *[
            layer
            for c_in, c_out in ((1, 16), (16, 32), (32, 64))
            for layer in (
                torch.nn.Conv2d(c_in, c_out, 3, padding=1),
                torch.nn.BatchNorm2d(c_out),
                torch.nn.ReLU(),
                torch.nn.MaxPool2d(2) if c_out < 64 else torch.nn.AdaptiveAvgPool2d(1),
            )
        ],
        torch.nn.Flatten(),
        torch.nn.Linear(64, 1),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    bce = torch.nn.BCEWithLogitsLoss()
    train = np.nonzero(~held_out)[0]
    started = time.time()
    for _epoch in range(args.epochs):
        net.train()
        order = rng.permutation(train)
        for i in range(0, len(order), 32):
            batch = order[i : i + 32]
            loss = bce(net(torch.from_numpy(x[batch]))[:, 0], torch.from_numpy(y[batch]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        p = torch.sigmoid(net(torch.from_numpy(x[held_out]))[:, 0]).numpy()
    aucs = {
        lv: float(roc_auc_score(y[held_out][levels[held_out] == k], p[levels[held_out] == k]))
        for k, lv in enumerate(LEVELS)
    }
    print(
        f"{int(held_out.sum()) // len(LEVELS)} held-out patients, {len(train)} training crops, "
        f"{args.epochs} epochs in {time.time() - started:.0f} s"
    )
    print("per-level AUC: " + ", ".join(f"{lv} {a:.3f}" for lv, a in aucs.items()))
    print(f"mean per-level AUC {np.mean(list(aucs.values())):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
