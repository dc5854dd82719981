"""Axial grader with the shipped demo weights: the card, grading phantoms, Grad-CAM location, output files,
volumes and ROIs, refusals, and the command line (grade, train, evaluate).
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from spineai.cli import main
from spineai.errors import InputError
from spineai.grading.axial.model import DEMO_CONFIG, MODEL_NAME, TASK, load_axial_model
from spineai.grading.axial.phantom import generate_axial_t2, write_axial_dataset
from spineai.grading.axial.predict import grade_axial
from spineai.weights import INTENDED_USE, MODELS_DIR, load_card, verify_weights


def test_shipped_card_says_what_the_demo_is():
    card = load_card(MODELS_DIR / f"{MODEL_NAME}.json")
    verify_weights(MODELS_DIR / card.weights_file, card)
    assert card.task == TASK and card.intended_use == INTENDED_USE
    assert card.config == DEMO_CONFIG
    assert "synthetic" in card.training_data["dataset"] and "no patient data" in card.training_data["dataset"]
    test = card.metrics["test"]
    assert test["images"] >= 100 and set(test["metrics"]) == {"ldh", "lccs", "lnrc"}
    assert card.extra["weights_dtype"] == "float16"
    assert (MODELS_DIR / card.weights_file).stat().st_size < 5_000_000


def test_demo_grades_held_out_phantoms_better_than_chance():
    correct, total = 0, 0
    for seed in range(700_000, 700_012):
        case = generate_axial_t2(seed)
        result = grade_axial(case.image, gradcam=None)
        for key in ("ldh", "lccs", "lnrc"):
            correct += int(result.grades[key] == case.truth["grades"][key])
            total += 1
    assert correct / total > 0.55  # chance is 0.25 per grading; the card reports 0.93 / 0.73 / 0.50


def _box_mean(heat: np.ndarray, box, margin: int = 0) -> float:
    i0, j0, i1, j1 = (int(round(v)) for v in box)
    return float(heat[max(j0 - margin, 0) : j1 + margin + 1, max(i0 - margin, 0) : i1 + margin + 1].mean())


def test_gradcam_is_not_constant_and_sits_on_the_canal():
    case = generate_axial_t2(31, ldh=3, lccs=3, herniation_position="central")
    result = grade_axial(case.image)
    assert set(result.heatmaps) == {"ldh", "lccs", "lnrc"}
    for image in result.heatmaps.values():
        heat = sitk.GetArrayFromImage(image)
        assert image.GetSize() == case.image.GetSize() and image.GetOrigin() == case.image.GetOrigin()
        assert heat.std() > 0.01 and heat.max() == pytest.approx(1.0, abs=0.05)
    heat = sitk.GetArrayFromImage(result.heatmaps["ldh"])
    canal = case.truth["stenosis"]["central_canal"]["box_index"]
    margin = int(10 / case.image.GetSpacing()[0])  # 10 mm around the canal box
    assert _box_mean(heat, canal, margin) > 1.5 * heat.mean()
    peak = result.gradcam_peak_index["ldh"]
    i0, j0, i1, j1 = canal
    assert i0 - margin <= peak[0] <= i1 + margin and j0 - margin <= peak[1] <= j1 + margin


def test_result_files_and_json(tmp_path):
    case = generate_axial_t2(12)
    result = grade_axial(case.image, gradcam=["lccs"])
    written = result.write(tmp_path / "out")
    assert set(written) == {"grades_json", "gradcam_lccs", "overlay_lccs"}
    data = json.loads((tmp_path / "out" / "grades.json").read_text())
    assert set(data["grades"]) == {"ldh", "lccs", "lnrc"}
    for key, probs in data["probabilities"].items():
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert data["dichotomous"][key]["p_grade_2_or_3"] == pytest.approx(probs["2"] + probs["3"], abs=1e-6)
    assert data["intended_use"] == INTENDED_USE
    heat = sitk.ReadImage(str(written["gradcam_lccs"]))
    assert heat.GetSize() == case.image.GetSize()
    assert written["overlay_lccs"].stat().st_size > 1000
    with pytest.raises(FileExistsError):
        result.write(tmp_path / "out")


def test_volume_and_roi(tmp_path):
    case = generate_axial_t2(14, slab_slices=3)
    result = grade_axial(case.image, gradcam=["ldh"])
    assert result.input_kind == "volume" and result.graded_slice == 1
    assert any("middle axial slice 1 of 3" in n for n in result.notes)
    vol = sitk.GetArrayFromImage(result.heatmaps["ldh"])
    assert vol[1].max() > 0 and vol[0].max() == 0 and vol[2].max() == 0
    flat = generate_axial_t2(14)
    box = flat.truth["stenosis"]["central_canal"]["box_index"]
    roi = [box[0] - 20, box[1] - 20, box[2] + 20, box[3] + 20]
    cropped = grade_axial(flat.image, gradcam=["ldh"], roi=roi)
    assert cropped.roi_index == roi and any("region of interest" in n for n in cropped.notes)
    heat = sitk.GetArrayFromImage(cropped.heatmaps["ldh"])
    rows, cols = np.nonzero(heat)
    assert cols.min() >= roi[0] - 1 and cols.max() <= roi[2] + 1 and rows.min() >= roi[1] - 1
    with pytest.raises(InputError, match="not a box"):
        grade_axial(flat.image, roi=[10, 10, 5, 50])
    with pytest.raises(InputError, match="Unknown grading"):
        grade_axial(flat.image, gradcam=["pfirrmann"])


def test_sagittal_picture_is_refused_by_grade_axial():
    from spineai.grading.synthetic import synthetic_sagittal_slice

    with pytest.raises(InputError, match="sagittal"):
        grade_axial(synthetic_sagittal_slice(3).image.astype(np.float32))


def test_cli_grade_axial(tmp_path, capsys):
    case = generate_axial_t2(21)
    image = tmp_path / "ax.nii.gz"
    sitk.WriteImage(case.image, str(image))
    assert main(["grade", "axial", str(image), "-o", str(tmp_path / "g"), "--gradcam", "ldh"]) == 0
    out = capsys.readouterr().out
    assert "Lumbar disc herniation" in out and "research use only" in out
    assert (tmp_path / "g" / "gradcam_ldh.nii.gz").is_file() and not (
        tmp_path / "g" / "gradcam_lnrc.nii.gz"
    ).exists()
    assert main(["grade", "axial", str(image), "-o", str(tmp_path / "g")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["grade", "axial", str(tmp_path / "none.nii.gz")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_cli_train_then_evaluate_on_a_tiny_folder(tmp_path, capsys):
    data = tmp_path / "data"
    write_axial_dataset(data, range(10), progress=False, fov_mm=100.0, spacing_mm=0.8)
    args = [
        "train", "grading-axial", "--data", str(data), "--out", str(tmp_path / "m"), "--epochs", "2",
        "--depth", "10", "--widen", "0.125", "--input-size", "64", "--no-max-pool", "--batch-size", "4",
        "--val-fraction", "0.3",
    ]  # fmt: skip
    assert main(args) == 0
    weights = tmp_path / "m" / "axial_grader.safetensors"
    card = load_card(weights)
    assert card.config["input_size"] == 64 and card.metrics["validation"]["images"] == 3
    net, _ = load_axial_model(weights)
    assert net.config["depth"] == 10
    capsys.readouterr()
    report_path = tmp_path / "eval.json"
    assert (
        main(
            [
                "evaluate",
                "grading-axial",
                "--data",
                str(data),
                "--weights",
                str(weights),
                "--json",
                str(report_path),
            ]
        )
        == 0
    )
    report = json.loads(report_path.read_text())
    assert report["images"] == 10 and sum(map(sum, report["metrics"]["ldh"]["confusion_matrix"])) == 10
    assert "Gwet AC1" in capsys.readouterr().out
    with (data / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    rows[1]["lnrc"] = "4"
    with (data / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert main(["evaluate", "grading-axial", "--data", str(data), "--json", str(tmp_path / "e2.json")]) == 1
    assert "line 3: column 'lnrc' has the value '4'" in capsys.readouterr().err
