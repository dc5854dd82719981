"""Stenosis model with the shipped demo weights: the card, detection and grading of phantoms, Grad-CAM in
the regions, output files, refusals, and the command line (grade, train, evaluate).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from spineai.cli import main
from spineai.errors import InputError
from spineai.grading.axial.grades import REGIONS
from spineai.grading.axial.phantom import generate_axial_t2, write_axial_dataset
from spineai.grading.stenosis.model import MODEL_NAME, TASK, load_stenosis_model
from spineai.grading.stenosis.predict import grade_stenosis
from spineai.grading.stenosis.train import box_iou
from spineai.weights import INTENDED_USE, MODELS_DIR, load_card, verify_weights


def test_shipped_card_says_what_the_demo_is():
    card = load_card(MODELS_DIR / f"{MODEL_NAME}.json")
    verify_weights(MODELS_DIR / card.weights_file, card)
    assert card.task == TASK and card.intended_use == INTENDED_USE
    assert "synthetic" in card.training_data["dataset"]
    test = card.metrics["test"]["metrics"]
    assert set(test["regions"]) == {r.key for r in REGIONS}
    assert test["regions"]["central_canal"]["detection"]["recall_iou_0.5"] > 0.8


def _rc_box(index_box):
    i0, j0, i1, j1 = index_box
    return (j0, i0, j1, i1)


def test_regions_are_found_where_the_phantom_put_them():
    case = generate_axial_t2(44)
    result = grade_stenosis(case.image)
    assert [r.region for r in result.regions] == [r.key for r in REGIONS]
    for r in result.regions:
        truth = case.truth["stenosis"][r.region]
        assert box_iou(_rc_box(r.box_index), _rc_box(truth["box_index"])) > 0.3, r.region
        assert sum(r.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert r.moderate_or_severe == (r.grade >= 2)
    x = {r.region: (r.box_mm[0] + r.box_mm[2]) / 2 for r in result.regions}
    assert (
        x["foramen_left"]
        > x["lateral_recess_left"]
        > x["central_canal"]
        > x["lateral_recess_right"]
        > x["foramen_right"]
    )


def test_demo_grades_held_out_phantoms_better_than_chance():
    correct = total = 0
    for seed in range(710_000, 710_008):
        case = generate_axial_t2(seed)
        result = grade_stenosis(case.image, gradcam=False)
        for r in result.regions:
            correct += int(r.grade == case.truth["stenosis"][r.region]["grade"])
            total += 1
    assert correct / total > 0.8  # chance is 0.25; the card reports 0.93-0.98 per region


def test_gradcam_lies_in_the_regions_and_files_are_written(tmp_path):
    case = generate_axial_t2(45, foramen_left=3, foramen_right=0)
    result = grade_stenosis(case.image)
    heat = sitk.GetArrayFromImage(result.heatmap)
    assert result.heatmap.GetSize() == case.image.GetSize()
    assert heat.std() > 0.01
    region = result.region("foramen_left")
    i0, j0, i1, j1 = region.box_index
    w, h = i1 - i0, j1 - j0
    pi, pj = region.gradcam_peak_index
    # the peak of the region's map lies in its crop (the box with context)
    assert i0 - w <= pi <= i1 + w and j0 - h <= pj <= j1 + h
    # away from every region the map is zero
    assert heat[:5].max() == 0 and heat[-5:].max() == 0
    written = result.write(tmp_path / "o")
    assert {"table_tsv", "table_json", "gradcam", "overlay"} <= set(written)
    data = json.loads((tmp_path / "o" / "stenosis.json").read_text())
    assert len(data["regions"]) == 5 and data["intended_use"] == INTENDED_USE
    rows = (tmp_path / "o" / "stenosis.tsv").read_text().splitlines()
    assert len(rows) == 6 and rows[0].startswith("region\tgrade")


def test_slice_without_a_canal_is_refused():
    noise = np.random.default_rng(0).uniform(0, 100, (160, 160)).astype(np.float32)
    with pytest.raises(InputError, match="No spinal canal"):
        grade_stenosis(sitk.GetImageFromArray(noise), min_confidence=0.5)


def test_cli_grade_train_evaluate(tmp_path, capsys):
    case = generate_axial_t2(46)
    image = tmp_path / "ax.nii.gz"
    sitk.WriteImage(case.image, str(image))
    assert main(["grade", "stenosis", str(image), "-o", str(tmp_path / "g"), "--no-gradcam"]) == 0
    out = capsys.readouterr().out
    assert "foramen_left" in out and not (tmp_path / "g" / "gradcam_stenosis.nii.gz").exists()
    data = tmp_path / "data"
    write_axial_dataset(data, range(8), progress=False, fov_mm=100.0, spacing_mm=0.8)
    args = [
        "train", "stenosis", "--data", str(data), "--out", str(tmp_path / "m"), "--detector-iterations", "4",
        "--detector-size", "48", "--epochs", "1", "--crop-size", "32", "--val-fraction", "0.25",
    ]  # fmt: skip
    assert main(args) == 0
    weights = tmp_path / "m" / "stenosis.safetensors"
    model, card = load_stenosis_model(weights)
    assert model.detector.config["size"] == 48 and card.metrics["validation"]["images"] == 2
    report = tmp_path / "e.json"
    assert (
        main(["evaluate", "stenosis", "--data", str(data), "--weights", str(weights), "--json", str(report)])
        == 0
    )
    r = json.loads(report.read_text())
    assert r["images"] == 8 and len(r["per_region"]) == 40
    assert r["metrics"]["regions"]["foramen_left"]["grading"]["n"] == 8
