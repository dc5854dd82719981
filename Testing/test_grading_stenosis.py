"""Stenosis model: detector targets and decoding, crop geometry (mirroring, pasting back), IoU, a few
training steps of each stage, metrics on a hand-computed fixture, the manifest's region columns.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from spineai.errors import InputError
from spineai.grading.axial.data import read_manifest
from spineai.grading.axial.grades import REGIONS
from spineai.grading.axial.phantom import generate_axial_t2, write_axial_dataset
from spineai.grading.stenosis.classifier import (
    RoiGraderNet,
    crop_frame,
    head_index,
    paste_crop_maps,
    sample_crop,
)
from spineai.grading.stenosis.detector import RoiDetectorNet, decode_boxes, detector_targets
from spineai.grading.stenosis.evaluate import stenosis_metrics
from spineai.grading.stenosis.train import (
    DetectorTrainConfig,
    RoiGraderTrainConfig,
    box_iou,
    prepare_samples,
    region_crops,
    train_detector,
    train_roi_grader,
)

TINY_DETECTOR = {"size": 48, "channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0}
TINY_GRADER = {
    "depth": 10,
    "widen_factor": 0.125,
    "conv1_stride": 2,
    "no_max_pool": True,
    "dropout": 0.0,
    "crop_size": 32,
}


def test_targets_decode_back_to_the_boxes():
    size = 64
    boxes = np.array(
        [[20, 25, 34, 39], [22, 40, 30, 46], [22, 18, 30, 24], [15, 50, 27, 60], [15, 4, 27, 14]], dtype=float
    )
    heat, sizes, known = detector_targets(boxes, size)
    assert known.tolist() == [1, 1, 1, 1, 1]
    logits = np.log(np.clip(heat, 1e-6, 1 - 1e-6) / (1 - np.clip(heat, 1e-6, 1 - 1e-6)))
    decoded = decode_boxes(np.concatenate([logits, sizes]))
    assert [d.region for d in decoded] == [r.key for r in REGIONS]
    for d, box in zip(decoded, boxes, strict=True):
        assert d.box() == pytest.approx(tuple(box), abs=0.05)
        assert d.confidence > 0.9
    unknown = boxes.copy()
    unknown[2] = np.nan
    assert detector_targets(unknown, size)[2].tolist() == [1, 1, 0, 1, 1]


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (0, 5, 10, 15)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 1, 1), (5, 5, 6, 6)) == 0.0


def test_right_side_crops_are_mirrored_and_paste_back_in_place():
    working = np.zeros((100, 100), dtype=np.float32)
    working[40:60, 70:75] = 1.0  # a bar on the lateral (left-of-patient: right-of-image) side of a box
    box = (40.0, 55.0, 60.0, 75.0)
    left = sample_crop(working, crop_frame(box, "foramen", "left", 32))
    right = sample_crop(working, crop_frame(box, "foramen", "right", 32))
    assert np.allclose(left, right[:, ::-1], atol=1e-5)
    assert left[:, 24:].sum() > left[:, :8].sum()  # the bar stays on the crop's right for a left region
    frame = crop_frame(box, "foramen", "right", 32)
    pasted = paste_crop_maps([right], [frame], working.shape)
    # the map of the mirrored crop lands back on the bar
    assert pasted[45:55, 70:75].mean() > 0.8 and pasted[45:55, 56:60].mean() < 0.1


def test_head_index_and_kind_logits():
    assert head_index("central_canal", 0) == 0 and head_index("foramen", 3) == 11
    logits = torch.arange(24, dtype=torch.float32).reshape(2, 12)
    picked = RoiGraderNet.kind_logits(logits, ["lateral_recess", "foramen"])
    assert picked.tolist() == [[4, 5, 6, 7], [20, 21, 22, 23]]


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sten")
    write_axial_dataset(folder, range(6), progress=False, fov_mm=100.0, spacing_mm=0.8)
    return prepare_samples(
        read_manifest(folder, need="regions").records, TINY_DETECTOR["size"], progress=False
    )


def test_samples_carry_reference_boxes_in_working_pixels(samples):
    s = samples[0]
    assert s.boxes.shape == (5, 4) and np.isfinite(s.boxes).all()
    assert s.pixel_mm == pytest.approx(0.8)
    # the left foramen lies at larger columns (patient's left) than the central canal
    centre = (s.boxes[:, 1] + s.boxes[:, 3]) / 2
    assert centre[3] > centre[0] > centre[4]
    x, kinds, y = region_crops(samples, 32)
    assert x.shape == (30, 1, 32, 32) and kinds.count("foramen") == 12 and y.max() <= 3


def test_a_few_detector_steps_make_the_loss_fall(samples):
    cfg = DetectorTrainConfig(
        iterations=40, batch_size=4, learning_rate=5e-3, val_every=10, architecture=dict(TINY_DETECTOR)
    )
    net, history = train_detector(samples, samples[:2], cfg, progress=False)
    losses = [c["loss"] for c in history["checks"]]
    assert losses[-1] < 0.6 * losses[0]
    assert isinstance(net, RoiDetectorNet) and not net.training


def test_a_few_classifier_epochs_make_the_loss_fall(samples):
    cfg = RoiGraderTrainConfig(
        epochs=8,
        batch_size=8,
        learning_rate=3e-3,
        jitter_shift=0.0,
        jitter_scale=(1.0, 1.0),
        gamma=(1.0, 1.0),
        architecture=dict(TINY_GRADER),
    )
    net, history = train_roi_grader(samples, samples[:2], cfg, progress=False)
    losses = [e["loss"] for e in history["epochs"]]
    assert np.mean(losses[-2:]) < 0.75 * np.mean(losses[:2])
    assert history["train_crops_per_epoch"] == 30


def test_metrics_match_a_hand_computed_fixture():
    rows = []
    # central canal: reference 0, 1, 2, 3; predicted 0, 1, 3, 1; IoU 1.0, 0.6, 0.4, 0.8
    for ref, pred, iou in ((0, 0, 1.0), (1, 1, 0.6), (2, 3, 0.4), (3, 1, 0.8)):
        probs = [0.0] * 4
        probs[pred] = 1.0
        rows.append(
            {
                "region": "central_canal",
                "reference_grade": ref,
                "predicted_grade": pred,
                "probabilities": probs,
                "iou": iou,
                "centre_error_px": 2.0,
                "centre_error_mm": 1.0,
            }
        )
    m = stenosis_metrics(rows)["regions"]["central_canal"]
    assert m["detection"]["mean_iou"] == pytest.approx(0.7)
    assert m["detection"]["recall_iou_0.5"] == 0.75 and m["detection"]["mean_centre_error_mm"] == 1.0
    g = m["grading"]
    assert g["confusion_matrix"] == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]]
    assert g["accuracy"] == 0.5
    d = g["dichotomous"]
    # dichotomous reference 0, 0, 1, 1; predicted 0, 0, 1, 0: recall 1/2, specificity 1, kappa 0.5
    assert d["recall"] == 0.5 and d["specificity"] == 1.0 and d["kappa"] == pytest.approx(0.5)
    assert d["confusion_matrix"] == [[2, 0], [1, 1]]
    assert stenosis_metrics(rows)["kinds"]["foramen"] == {}


def test_region_columns_are_checked(tmp_path):
    folder = tmp_path / "d"
    (folder / "images").mkdir(parents=True)
    sitk.WriteImage(generate_axial_t2(1).image, str(folder / "images" / "a.nii.gz"))
    header = [
        "image",
        "central_canal",
        "central_canal_x0",
        "central_canal_y0",
        "central_canal_x1",
        "central_canal_y1",
    ]
    with (folder / "manifest.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerow(["images/a.nii.gz", "moderate", 10, 10, 40, 30])
        w.writerow(["images/a.nii.gz", "", "", "", "", ""])
    m = read_manifest(folder, need="regions")
    assert m.records[0].regions["central_canal"] == {"grade": 2, "box": [10.0, 10.0, 40.0, 30.0]}
    assert m.records[1].regions["central_canal"] == {"grade": None, "box": None}
    with pytest.raises(InputError, match="lacks the column"):
        read_manifest(folder, need="grades")
    with (folder / "manifest.csv").open("a", newline="") as fh:
        csv.writer(fh).writerow(["images/a.nii.gz", "2", 40, 10, 10, 30])
    with pytest.raises(InputError, match=r"line 4: the box of 'central_canal'.*inverted"):
        read_manifest(folder, need="regions")
