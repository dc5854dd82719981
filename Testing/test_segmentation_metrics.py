"""Metrics on hand-made masks with known values; aggregation like the paper's Table 2; evaluation JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_segmentation_fixtures import (
    TINY_CLASSES,
    single_torch_thread,  # noqa: F401
    tiny_weights,
    write_dataset,
)

from spineai import anatomy
from spineai.segmentation.metrics import (
    EVALUATION_SCHEMA,
    METRIC_NAMES,
    aggregate,
    evaluate_segmentation,
    format_table,
    label_map_scores,
    mask_scores,
    three_class_scores,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _cube(shape=(30, 30, 30), lo=(10, 10, 10), size=10) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[lo[0] : lo[0] + size, lo[1] : lo[1] + size, lo[2] : lo[2] + size] = True
    return m


def test_shifted_cube_has_known_overlap_and_distances():
    true = _cube()
    pred = _cube(lo=(10, 10, 12))  # shifted 2 voxels along x
    s = mask_scores(pred, true, (1.0, 1.0, 1.0))
    assert s["dice"] == pytest.approx(0.8)  # 2 * 800 / 2000
    assert s["iou"] == pytest.approx(800 / 1200)
    assert s["pixel_accuracy"] == pytest.approx(0.8)  # true predicted / true voxels
    assert s["hd95_mm"] == pytest.approx(2.0)
    assert 0.0 < s["msd_mm"] < 2.0
    assert s["status"] == "scored" and s["true_voxels"] == 1000 and s["predicted_voxels"] == 1000


def test_distances_use_the_voxel_spacing_in_array_order():
    true = _cube()
    pred = _cube(lo=(10, 10, 12))  # 2 voxels along array axis 2 (x)
    s = mask_scores(pred, true, spacing_zyx=(3.0, 2.0, 0.5))
    assert s["hd95_mm"] == pytest.approx(1.0)  # 2 x 0.5 mm
    scores = label_map_scores(
        pred.astype(np.uint8) * 6, true.astype(np.uint8) * 6, {"L5": 6}, spacing_xyz=(0.5, 2.0, 3.0)
    )  # SimpleITK order
    assert scores["L5"]["hd95_mm"] == pytest.approx(1.0)


def test_pixel_accuracy_differs_from_dice_for_over_segmentation():
    true = _cube(size=10)
    pred = _cube(lo=(9, 9, 9), size=12)  # contains the truth
    s = mask_scores(pred, true, distances=False)
    assert s["pixel_accuracy"] == 1.0
    assert s["dice"] == pytest.approx(2 * 1000 / (1728 + 1000))
    assert s["hd95_mm"] is None  # not asked for


def test_empty_cases_have_explicit_status():
    empty = np.zeros((10, 10, 10), bool)
    some = _cube((10, 10, 10), (2, 2, 2), 3)
    assert mask_scores(empty, empty)["status"] == "absent"
    missed = mask_scores(empty, some)
    assert missed["status"] == "missed" and missed["dice"] == 0 and missed["pixel_accuracy"] == 0
    assert missed["hd95_mm"] is None
    fp = mask_scores(some, empty)
    assert fp["status"] == "false_positive" and fp["dice"] == 0 and fp["pixel_accuracy"] is None


def test_aggregate_gives_mean_sd_range_and_counts():
    cases = [
        {"bone": {"dice": 0.90, "iou": 0.8, "pixel_accuracy": 0.9, "hd95_mm": 1.0, "msd_mm": 0.5}},
        {"bone": {"dice": 0.96, "iou": 0.9, "pixel_accuracy": 1.0, "hd95_mm": None, "msd_mm": 0.7}},
        {"bone": {"dice": 0.93, "iou": 0.85, "pixel_accuracy": 0.95, "hd95_mm": 3.0, "msd_mm": 0.6}},
    ]
    summary = aggregate(cases)
    dice = summary["bone"]["dice"]
    assert dice["mean"] == pytest.approx(0.93)
    assert dice["sd"] == pytest.approx(np.std([0.90, 0.96, 0.93], ddof=1))
    assert (dice["min"], dice["max"], dice["n"]) == (0.90, 0.96, 3)
    assert summary["bone"]["hd95_mm"]["n"] == 2 and summary["bone"]["hd95_mm"]["mean"] == pytest.approx(2.0)
    assert set(summary["bone"]) == set(METRIC_NAMES)
    single = aggregate(cases[:1])["bone"]["dice"]
    assert single["sd"] is None and single["n"] == 1
    table = format_table(summary)
    assert "93.0 +- 3.0 (90.0-96.0)" in table


def test_three_class_scores_merge_bones_and_nerves():
    l5, s1 = anatomy.structure("L5").label, anatomy.structure("S1").label
    root, sac = anatomy.structure("root_L5_left").label, anatomy.structure("dural_sac").label
    disc = anatomy.structure("disc_L5_S1").label
    true = np.zeros((20, 20, 20), np.uint8)
    true[2:8, 2:8, 2:8] = l5
    true[10:16, 2:8, 2:8] = s1
    true[2:6, 12:16, 12:16] = root
    true[10:14, 12:16, 12:16] = sac
    pred = true.copy()
    pred[10:16, 2:8, 2:8] = l5  # wrong vertebra name: still bone
    pred[10:14, 12:16, 12:16] = root  # sac called root: still nerve
    pred[17:19, 17:19, 17:19] = disc  # discs are background in the paper's classes
    scores = three_class_scores(pred, true, (1.0, 1.0, 1.0))
    assert scores["bone"]["dice"] == 1.0 and scores["nerve"]["dice"] == 1.0
    per_structure = label_map_scores(pred, true, {"S1": s1, "dural_sac": sac}, distances=False)
    assert per_structure["S1"]["status"] == "missed" and per_structure["dural_sac"]["dice"] == 0


def test_evaluate_writes_a_stable_json_report(tmp_path: Path):
    data = write_dataset(tmp_path / "data", seeds=(0, 1))
    weights = tiny_weights(tmp_path)
    out = tmp_path / "eval.json"
    report = evaluate_segmentation(data, weights=weights, device="cpu", json_out=out, distances=False)
    saved = json.loads(out.read_text())
    assert saved["schema"] == EVALUATION_SCHEMA == report["schema"]
    assert set(saved) == {
        "schema",
        "model",
        "data",
        "mode",
        "class_weight_correction",
        "mirror_tta",
        "precision",
        "postprocess",
        "cases",
        "summary",
        "paper_reference",
    }
    assert [c["case"] for c in saved["cases"]] == ["case00", "case01"]
    assert set(saved["cases"][0]["structures"]) == set(TINY_CLASSES[1:])
    assert set(saved["cases"][0]["three_class"]) == {"bone", "nerve"}
    assert set(saved["summary"]) == {"structures", "three_class"}
    assert saved["summary"]["three_class"]["bone"]["dice"]["n"] >= 0
    assert saved["model"]["class_names"] == list(TINY_CLASSES)
    assert saved["paper_reference"]["nerve"]["dice"] == pytest.approx(0.9051)
    from spineai.errors import OutputExistsError

    with pytest.raises(OutputExistsError):
        evaluate_segmentation(data, weights=weights, device="cpu", json_out=out, distances=False)
