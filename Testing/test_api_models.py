"""API functions of the axial grader, the stenosis model and the radiograph model: the numbers and files of
the matching ``spineai`` commands, in-memory inputs, and ``run_case`` steps ``grade-axial``, ``stenosis``,
``radiograph``.

Inputs are phantoms (:mod:`spineai.grading.axial.phantom`, :mod:`spineai.radiograph.phantom`). The axial
models are the shipped demo weights. The radiograph tests use both the shipped disc-crops model
(``radiograph_hnp_demo``, the default: located discs in pixels and mm, ``pixel_mm``, ``disc_centres``) and a
tiny random whole-image EfficientNet ensemble saved here (as ``Testing/test_radiograph_predict.py`` does)
with level heads set to give distinct probabilities, for the explicit ``weights=`` path and the age head.
The refusal when no radiograph model is installed is tested by pointing the models folder at an empty one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

import spineai
from spineai import api, cli
from spineai.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def axial_case(tmp_path_factory) -> dict[str, Path]:
    from spineai.grading.axial.phantom import generate_axial_t2, write_axial_case

    return write_axial_case(generate_axial_t2(5), tmp_path_factory.mktemp("axial") / "case")


@pytest.fixture(scope="module")
def radiograph_weights(tmp_path_factory) -> Path:
    return tiny_radiograph_weights(tmp_path_factory.mktemp("radiograph_w"))


@pytest.fixture(scope="module")
def radiograph_png(tmp_path_factory) -> Path:
    return radiograph_picture(tmp_path_factory.mktemp("radiograph"))


def tiny_radiograph_weights(folder: Path) -> Path:
    """A tiny random radiograph ensemble (two EfficientNet-B0 members at quarter width, 64 px) saved in
    ``folder`` with its card (thresholds 0.2 .. 0.6 for L1-L2 .. L5-S1)."""
    from spineai.radiograph.network import ARCHITECTURE, LEVELS, TASK, RadiographEnsemble
    from spineai.weights import save_weights

    torch.manual_seed(0)
    ens = RadiographEnsemble(
        n_members=2, model_name="efficientnet-b0", width_multiplier=0.25, age_task=True, image_size=64
    ).eval()
    with torch.no_grad():  # level heads that tell the levels apart (a fresh head answers 0.5 everywhere)
        for k, member in enumerate(ens.members):
            member.backbone._fc.weight.normal_(0.0, 3.0, generator=torch.Generator().manual_seed(k))
            member.backbone._fc.bias.copy_(torch.tensor([-1.5, -0.5, 0.0, 0.5, 1.5]))
    card = {
        "name": "tiny_radiograph",
        "task": TASK,
        "architecture": ARCHITECTURE,
        "config": ens.config,
        "class_names": list(LEVELS),
        "training_data": "unit test (random weights)",
        "extra": {"thresholds": dict(zip(LEVELS, [0.2, 0.3, 0.4, 0.5, 0.6], strict=True))},
    }
    path, _ = save_weights(ens, folder / "tiny.safetensors", card)
    return path


def radiograph_picture(folder: Path) -> Path:
    """The lateral view of radiograph phantom 3 (128 px) as ``folder/lateral.png``."""
    from PIL import Image

    from spineai.radiograph.phantom import render_radiograph_patient

    phantom = render_radiograph_patient(3, views=("lateral",), image_px=128)
    path = folder / "lateral.png"
    Image.fromarray(phantom.images["lateral"]).save(path)
    return path


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------------------- axial
def test_grade_axial_gives_the_numbers_and_files_of_spineai_grade_axial(axial_case, tmp_path, capsys):
    result = spineai.grade_axial(axial_case["image"], tmp_path / "api", gradcam=["ldh"])
    argv = ["grade", "axial", str(axial_case["image"]), "-o", str(tmp_path / "cli"), "--gradcam", "ldh"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert (
        _files(tmp_path / "api")
        == _files(tmp_path / "cli")
        == [
            "gradcam_ldh.nii.gz",
            "gradcam_ldh.png",
            "grades.json",
        ]
    )
    saved = json.loads((tmp_path / "cli" / "grades.json").read_text())
    assert json.loads((tmp_path / "api" / "grades.json").read_text()) == saved
    assert result.grades() == saved["grades"] and [g.grading for g in result.gradings] == [
        "ldh",
        "lccs",
        "lnrc",
    ]
    for g in result.gradings:
        assert g.probabilities == pytest.approx(saved["probabilities"][g.grading], abs=1e-6)
        assert sum(g.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert g.p_grade_2_or_3 == pytest.approx(g.probabilities["2"] + g.probabilities["3"], abs=1e-6)
        assert g.grade == int(max(g.probabilities, key=g.probabilities.get))
    assert result.gradcam_files == {"ldh": tmp_path / "api" / "gradcam_ldh.nii.gz"}
    heat = result.heatmaps["ldh"]
    assert heat.GetSize() == sitk.ReadImage(str(axial_case["image"])).GetSize()
    data = json.loads(result.to_json())
    assert (
        data["result"] == "AxialGradeOutput"
        and "heatmaps" not in data
        and data["gradings"][0]["grading"] == "ldh"
    )


def test_grade_axial_reads_images_and_arrays_alike(axial_case):
    image = sitk.ReadImage(str(axial_case["image"]))
    from_file = spineai.grade_axial(axial_case["image"], gradcam=None)
    from_image = spineai.grade_axial(image, gradcam=None)
    from_array = spineai.grade_axial(
        sitk.GetArrayFromImage(image),
        gradcam=None,
        spacing_mm=image.GetSpacing(),
        origin_mm=image.GetOrigin(),
    )
    for other in (from_image, from_array):
        assert other.grades() == from_file.grades()
        for a, b in zip(other.gradings, from_file.gradings, strict=True):
            assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
    with pytest.raises(InputError, match="does not exist"):
        spineai.grade_axial(axial_case["image"].parent / "missing.nii.gz")


# ------------------------------------------------------------------------------------------ stenosis
def test_grade_stenosis_gives_the_numbers_and_files_of_spineai_grade_stenosis(axial_case, tmp_path, capsys):
    result = spineai.grade_stenosis(axial_case["image"], tmp_path / "api")
    assert cli.main(["grade", "stenosis", str(axial_case["image"]), "-o", str(tmp_path / "cli")]) == 0, (
        capsys.readouterr().err
    )
    assert (
        _files(tmp_path / "api")
        == _files(tmp_path / "cli")
        == [
            "gradcam_stenosis.nii.gz",
            "gradcam_stenosis.png",
            "stenosis.json",
            "stenosis.tsv",
        ]
    )
    assert (tmp_path / "api" / "stenosis.tsv").read_text() == (tmp_path / "cli" / "stenosis.tsv").read_text()
    saved = json.loads((tmp_path / "cli" / "stenosis.json").read_text())["regions"]
    assert [r.region for r in result.regions] == [r["region"] for r in saved]
    image = sitk.ReadImage(str(axial_case["image"]))
    for region, row in zip(result.regions, saved, strict=True):
        assert region.grade == row["grade"] and region.probabilities == pytest.approx(row["probabilities"])
        assert region.box_index_px == pytest.approx(row["box_index"]) and region.box_lps_mm == pytest.approx(
            row["box_mm"]
        )
        # the box in mm is the box in pixels mapped through the image's geometry
        corner = image.TransformContinuousIndexToPhysicalPoint(region.box_index_px[:2])
        assert region.box_lps_mm[:2] == pytest.approx(list(corner), abs=1e-3)
    assert result.get("foramen_left").region == "foramen_left" and result.gradcam_file is not None
    with pytest.raises(InputError, match="No region"):
        result.get("foramen_middle")


# ---------------------------------------------------------------------------------------- radiograph
def test_read_radiograph_gives_the_numbers_and_files_of_spineai_radiograph(
    radiograph_weights, radiograph_png, tmp_path, capsys
):
    result = spineai.read_radiograph(radiograph_png, tmp_path / "api", weights=radiograph_weights, age=58)
    argv = [
        "radiograph",
        str(radiograph_png),
        "--weights",
        str(radiograph_weights),
        "-o",
        str(tmp_path / "cli"),
    ]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert _files(tmp_path / "api") == _files(tmp_path / "cli")
    assert "radiograph.json" in _files(tmp_path / "api") and "gradcam_overlay.png" in _files(tmp_path / "api")
    saved = json.loads((tmp_path / "cli" / "radiograph.json").read_text())
    assert [lv.level for lv in result.levels] == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    assert result.probabilities() == pytest.approx(saved["probabilities"], abs=1e-6)
    assert len({round(p, 4) for p in result.probabilities().values()}) > 1  # the levels differ
    for lv in result.levels:
        assert lv.threshold == saved["thresholds"][lv.level]
        assert lv.herniation == (lv.probability >= lv.threshold) == saved["predicted_herniation"][lv.level]
    assert result.positive_levels() == saved["levels_called_positive"]
    assert result.age_years == 58.0 and result.age_estimate_years == pytest.approx(
        saved["age_estimate_years"]
    )
    assert result.age_error_years == pytest.approx(result.age_estimate_years - 58.0)
    # a numpy array with its pixel size gives the same numbers as the file (PNG: 1 mm pixels)
    from PIL import Image

    pixels = np.asarray(Image.open(radiograph_png), dtype=np.float32)
    from_array = spineai.read_radiograph(
        pixels, weights=radiograph_weights, spacing_mm=(1.0, 1.0), gradcam=False
    )
    assert from_array.probabilities() == pytest.approx(result.probabilities(), abs=1e-5)
    with pytest.raises(InputError, match="not an age"):
        spineai.read_radiograph(radiograph_png, weights=radiograph_weights, age=-3)
    assert result.design == "whole-image" and result.discs is None and saved["design"] == "whole-image"
    with pytest.raises(InputError, match="no disc positions"):
        result.disc("L4-L5")


def test_read_radiograph_uses_the_shipped_disc_crops_model_by_default(radiograph_png, tmp_path, capsys):
    from PIL import Image

    from spineai.radiograph.predict import DEFAULT_MODEL
    from spineai.weights import list_models

    if not any(card.name == DEFAULT_MODEL for card in list_models()):
        pytest.skip(f"the shipped radiograph model {DEFAULT_MODEL} is not installed")
    assert api.resolve_radiograph_weights(None) is None  # None means the shipped model
    pixel_mm = 240.0 / 128  # radiograph_picture: the 240 mm field at 128 px
    result = spineai.read_radiograph(radiograph_png, tmp_path / "api", pixel_mm=pixel_mm)
    assert result.design == "disc-crops" and result.model["name"] == DEFAULT_MODEL
    assert any("synthetic radiographs" in w for w in result.warnings)
    assert [d.level for d in result.discs] == [lv.level for lv in result.levels]
    rows = [d.row for d in result.discs]
    assert rows == sorted(rows) and all(0 <= d.row < 128 and 0 <= d.column < 128 for d in result.discs)
    for d in result.discs:  # a PNG carries no geometry: pixels only, the crop sized from the given pixel
        assert d.source == "located" and 0.0 <= d.confidence <= 1.0 and d.x_mm is None and d.y_mm is None
        assert d.pixel_mm == pytest.approx(pixel_mm) and d.scale_source == "given"
        x0, y0, x1, y1 = d.crop_pixels_x0_y0_x1_y1
        assert x1 - x0 == pytest.approx(y1 - y0) and (x0 + x1) / 2 == pytest.approx(d.column)
        assert (x1 - x0) * pixel_mm == pytest.approx(72.0, rel=0.05)  # 48 crop pixels of 1.5 mm
    # discs 35 mm apart on a 1.875 mm grid are about 19 px apart: the located ones are spine-like
    assert 12 < float(np.median(np.diff(rows))) < 26
    saved = json.loads((tmp_path / "api" / "radiograph.json").read_text())
    assert saved["design"] == "disc-crops" and saved["discs"][3]["row"] == pytest.approx(
        result.disc("L4-L5").row
    )
    assert result.to_dict()["discs"][0]["level"] == "L1-L2"
    # the command line with --pixel-mm gives the same numbers
    argv = ["radiograph", str(radiograph_png), "--pixel-mm", str(pixel_mm), "-o", str(tmp_path / "cli")]
    assert cli.main(argv) == 0, capsys.readouterr().err
    from_cli = json.loads((tmp_path / "cli" / "radiograph.json").read_text())
    assert from_cli["probabilities"] == pytest.approx(result.probabilities(), abs=1e-6)
    # disc centres given (x = column, y = row) are read as they are, without the locator
    centres = [[d.column, d.row] for d in result.discs]
    given = spineai.read_radiograph(radiograph_png, pixel_mm=pixel_mm, disc_centres=centres, gradcam=False)
    assert all(d.source == "given" and d.confidence is None for d in given.discs)
    assert np.allclose([[d.column, d.row] for d in given.discs], centres)
    assert given.probabilities() == pytest.approx(result.probabilities(), abs=1e-4)
    moved = spineai.read_radiograph(
        radiograph_png, pixel_mm=pixel_mm, disc_centres=np.asarray(centres) + [0.0, 30.0], gradcam=False
    )
    assert moved.probabilities() != pytest.approx(result.probabilities(), abs=1e-3)
    with pytest.raises(InputError, match="five finite"):
        spineai.read_radiograph(radiograph_png, disc_centres=centres[:4])
    with pytest.raises(InputError, match="not a pixel size"):
        spineai.read_radiograph(radiograph_png, pixel_mm=-1.0)
    # an array with its geometry: the crops are sized from its spacing and the discs are given in mm too
    pixels = np.asarray(Image.open(radiograph_png), dtype=np.float32)
    placed = spineai.read_radiograph(
        pixels, spacing_mm=(pixel_mm, pixel_mm), origin_mm=(-100.0, 40.0), gradcam=False
    )
    assert placed.probabilities() == pytest.approx(result.probabilities(), abs=1e-4)
    for d in placed.discs:
        assert d.x_mm == pytest.approx(-100.0 + d.column * pixel_mm)
        assert d.y_mm == pytest.approx(40.0 + d.row * pixel_mm)


def test_no_radiograph_model_means_a_clear_refusal(radiograph_png, tmp_path, monkeypatch):
    from spineai import weights

    monkeypatch.setattr(weights, "MODELS_DIR", tmp_path / "no_models")  # the shipped files are missing
    (tmp_path / "no_models").mkdir()
    with pytest.raises(InputError, match="No radiograph model is installed") as err:
        spineai.read_radiograph(radiograph_png, tmp_path / "out")
    assert "radiograph_hnp_demo" in str(err.value) and "reinstall" in str(err.value)
    assert "spineai train radiograph" in str(err.value) and "weights=" in str(err.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="No radiograph model is installed"):
        spineai.run_case(None, tmp_path / "case", radiograph=radiograph_png, steps=["radiograph"])
    assert not (tmp_path / "case").exists()


# ------------------------------------------------------------------------------------------- run_case
def test_run_case_runs_the_axial_and_radiograph_steps(
    axial_case, radiograph_weights, radiograph_png, tmp_path
):
    steps: list[str] = []
    case = spineai.run_case(
        None,
        tmp_path / "case",
        axial=axial_case["image"],
        radiograph=radiograph_png,
        steps=["radiograph", "stenosis", "grade-axial"],
        radiograph_weights=radiograph_weights,
        on_step=steps.append,
    )
    assert case.steps_done == ["grade-axial", "stenosis", "radiograph"] == steps
    assert _files(tmp_path / "case") == ["case.json", "grading_axial", "radiograph", "stenosis"]
    direct = spineai.grade_stenosis(axial_case["image"], gradcam=False)
    assert case.stenosis.grades() == direct.grades()
    assert case.axial.grades() == spineai.grade_axial(axial_case["image"], gradcam=None).grades()
    saved = json.loads((tmp_path / "case" / "case.json").read_text())
    assert saved["inputs"]["axial"] == str(axial_case["image"]) and saved["levels"] is None
    assert (
        saved["radiograph"]["levels"][0]["level"] == "L1-L2" and saved["stenosis"]["regions"][0]["box_lps_mm"]
    )
    assert saved["axial"]["gradings"][2]["grading"] == "lnrc"
    assert any(w.startswith("radiograph: ") for w in case.warnings)  # e.g. no body part in a PNG
    with pytest.raises(InputError, match="need an axial T2"):
        spineai.run_case(None, tmp_path / "no_axial", steps=["stenosis"])
    assert api.STEP_INPUTS["stenosis"] == "axial" and "radiograph" in api.CASE_STEPS
