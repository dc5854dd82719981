"""Radiograph prediction: five probabilities, Grad-CAM on the input's grid, saved files, the CLI, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image

from spineai.cli import main
from spineai.errors import InputError
from spineai.radiograph.network import ARCHITECTURE, LEVELS, TASK, RadiographEnsemble
from spineai.radiograph.predict import load_radiograph_model, read_radiograph
from spineai.weights import save_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    torch.manual_seed(0)
    ens = RadiographEnsemble(
        n_members=2, model_name="efficientnet-b0", width_multiplier=0.25, age_task=True, image_size=64
    ).eval()
    card = {
        "name": "tiny_radiograph",
        "task": TASK,
        "architecture": ARCHITECTURE,
        "config": ens.config,
        "class_names": list(LEVELS),
        "training_data": "unit test (random weights)",
        "extra": {"thresholds": dict(zip(LEVELS, [0.1, 0.2, 0.3, 0.4, 0.5], strict=True))},
    }
    path, _ = save_weights(ens, tmp_path_factory.mktemp("w") / "tiny.safetensors", card)
    return path


@pytest.fixture()
def radiograph_png(tmp_path):
    rng = np.random.default_rng(0)
    img = np.full((180, 120), 70.0) + rng.normal(0, 5, (180, 120))
    for k in range(5):
        img[15 + 32 * k : 37 + 32 * k, 40:80] += 110
    path = tmp_path / "lumbar_ap.png"
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


def test_five_probabilities_and_a_heat_map_on_the_input_grid(tiny_weights, radiograph_png, tmp_path):
    model = load_radiograph_model(tiny_weights)
    assert model.thresholds == [0.1, 0.2, 0.3, 0.4, 0.5] and model.image_size == 64
    res = read_radiograph(radiograph_png, weights=model, gradcam_level="L4-L5")
    assert list(res.probabilities) == list(LEVELS)
    assert all(0.0 <= p <= 1.0 for p in res.probabilities.values())
    assert res.predicted == {lv: res.probabilities[lv] >= res.thresholds[lv] for lv in LEVELS}
    means = np.mean(res.member_probabilities, axis=0)
    assert np.allclose(means, [res.probabilities[lv] for lv in LEVELS], atol=1e-5)
    assert res.age_estimate_years is not None
    heat = res.heatmap
    assert heat.GetSize() == (120, 180) and heat.GetSpacing() == res.image.GetSpacing()
    h = sitk.GetArrayFromImage(heat)
    assert h.min() >= 0.0 and h.max() <= 1.0 + 1e-6 and res.gradcam_level == "L4-L5"
    written = res.save(tmp_path / "out")
    summary = json.loads(written["summary"].read_text())
    assert summary["gradcam_level"] == "L4-L5" and set(summary["probabilities"]) == set(LEVELS)
    back = sitk.ReadImage(str(written["gradcam"]))
    assert back.GetSize() == (120, 180) and written["overlay"].stat().st_size > 1000
    with pytest.raises(FileExistsError):
        res.save(tmp_path / "out")


def test_boxes_crop_and_heat_map_stays_inside_the_crop(tiny_weights, radiograph_png, tmp_path):
    boxes = np.array([[40, 15 + 32 * k, 80, 37 + 32 * k] for k in range(7)], dtype=float) * [1, 0.8, 1, 0.8]
    res = read_radiograph(radiograph_png, weights=tiny_weights, boxes=boxes)
    x0, y0, x1, y1 = res.crop["pixels_x0_y0_x1_y1"]
    h = sitk.GetArrayFromImage(res.heatmap)
    outside = h.copy()
    outside[y0:y1, x0:x1] = 0
    assert np.all(outside == 0) and y0 > 0
    with pytest.raises(InputError, match="not in view"):
        read_radiograph(radiograph_png, weights=tiny_weights, boxes=boxes[:2])


def test_wrong_inputs_are_refused(tiny_weights, tmp_path):
    photo = np.random.default_rng(2).integers(0, 255, (100, 100, 3), dtype=np.uint8)
    with pytest.raises(InputError, match="colour"):
        read_radiograph(photo, weights=tiny_weights)
    with pytest.raises(InputError, match="3D volume"):
        read_radiograph(sitk.Image(32, 32, 16, sitk.sitkInt16), weights=tiny_weights)
    with pytest.raises(InputError, match="gradcam_level"):
        read_radiograph(np.zeros((50, 50)), weights=tiny_weights, gradcam_level="L6-S1")


def test_cli_predicts_and_names_bad_input(tiny_weights, radiograph_png, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["radiograph", str(radiograph_png), "-o", str(out), "--weights", str(tiny_weights)]) == 0
    text = capsys.readouterr().out
    assert "L5-S1" in text and "Research use only" in text
    assert (out / "radiograph.json").is_file() and list(out.glob("gradcam_*.nrrd"))
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (60, 60, 3), dtype=np.uint8)).save(photo)
    assert main(["radiograph", str(photo), "--weights", str(tiny_weights)]) == 1
    assert "colour picture" in capsys.readouterr().err


def test_help_texts_carry_an_example(capsys):
    for argv in (
        ["radiograph", "--help"],
        ["train", "radiograph", "--help"],
        ["evaluate", "radiograph", "--help"],
    ):
        with pytest.raises(SystemExit):
            main(argv)
        assert "example:" in capsys.readouterr().out
