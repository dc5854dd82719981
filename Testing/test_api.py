"""The one-call Python API (``spineai.api``): same numbers as the command line, in-memory inputs, results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_segmentation_fixtures import single_torch_thread, synthetic_case, tiny_weights  # noqa: F401

import spineai
from spineai import api, cli
from spineai.errors import InputError, OutputExistsError

PHANTOM_SPACING_MM = (2.0, 2.0, 2.0)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> dict[str, Path]:
    """A coarse phantom case on disk: ct.nii.gz, labels.nii.gz (+ sidecar), truth.json."""
    from spineai.phantom import generate_ct_phantom, write_phantom_case

    folder = tmp_path_factory.mktemp("api_phantom") / "case"
    return write_phantom_case(generate_ct_phantom(3, spacing_mm=PHANTOM_SPACING_MM, progress=False), folder)


def _tsv(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


# ------------------------------------------------------------------------------------- API vs CLI
def test_plan_injection_gives_the_numbers_of_spineai_measure(phantom, tmp_path, capsys):
    result = api.plan_injection(phantom["labels"], phantom["ct"], tmp_path / "api", images=False)
    code = cli.main(
        [
            "measure",
            str(phantom["labels"]),
            "--ct",
            str(phantom["ct"]),
            "-o",
            str(tmp_path / "cli"),
            "--no-images",
        ]
    )
    assert code == 0, capsys.readouterr().err
    api_text = (tmp_path / "api" / "measurements.tsv").read_text()
    cli_text = (tmp_path / "cli" / "measurements.tsv").read_text()
    assert api_text == cli_text
    rows = _tsv(tmp_path / "cli" / "measurements.tsv")
    assert len(result.triangles) == len(rows) == 8  # 2 levels x 2 sides x 2 triangles
    measured = [r for r in result.triangles if r.status == "ok"]
    assert len(measured) >= 4
    for row, cli_row in zip(result.triangles, rows, strict=True):
        assert (row.level, row.side, row.triangle) == (cli_row["level"], cli_row["side"], cli_row["triangle"])
        if row.status == "ok":
            assert row.area_mm2 == pytest.approx(float(cli_row["area_mm2"]), abs=0.006)
            assert row.best_oblique_deg == pytest.approx(float(cli_row["best_oblique_deg"]), abs=0.006)
            assert row.path_length_mm == pytest.approx(float(cli_row["path_length_mm"]), abs=0.006)
    assert result.planned and result.files["measurements.tsv"] == tmp_path / "api" / "measurements.tsv"
    # the triangle areas of the phantom's truth are recovered from its exact label map
    truth = json.loads(phantom["truth"].read_text())["triangles"]
    row = result.get("L5-S1", "left", "kambin")
    if row.status == "ok":
        assert row.area_mm2 == pytest.approx(truth["L5-S1"]["left"]["kambin"]["area_mm2"], rel=0.35)


def test_measure_triangles_has_the_same_true_areas_without_view_search(phantom):
    planned = api.plan_injection(phantom["labels"], phantom["ct"])
    measured = api.measure_triangles(phantom["labels"], phantom["ct"])
    assert not measured.planned and measured.output_dir is None and measured.files == {}
    assert measured.areas_mm2() == pytest.approx(planned.areas_mm2())
    for row in measured.triangles:
        assert row.best_window_mm2 is None and row.path_length_mm is None
        if row.status == "ok":
            assert row.standard_window_mm2 is not None
    with pytest.raises(InputError, match="No kambin triangle at L3-L4"):
        measured.get("L3-L4", "left", "kambin")


def test_plan_at_a_chosen_view_matches_spineai_plan(phantom, tmp_path, capsys):
    result = api.plan_injection(
        phantom["labels"],
        phantom["ct"],
        tmp_path / "api",
        levels=["L5-S1"],
        sides=["left"],
        view=(20, 10),
        images=False,
    )
    argv = ["plan", str(phantom["labels"]), "--ct", str(phantom["ct"]), "-o", str(tmp_path / "cli")]
    argv += ["--level", "L5-S1", "--side", "left", "--oblique", "20", "--tilt", "10", "--no-images"]
    assert cli.main(argv) in (0, 1), capsys.readouterr().err
    assert (tmp_path / "api" / "measurements.tsv").read_text() == (
        tmp_path / "cli" / "measurements.tsv"
    ).read_text()
    assert result.view == "oblique 20, tilt +10"
    for row in result.triangles:
        if row.status == "ok":
            assert row.best_oblique_deg == pytest.approx(20.0) and row.best_tilt_deg == pytest.approx(10.0)


# --------------------------------------------------------------------------------- in-memory inputs
def test_numpy_and_sitk_inputs_give_the_numbers_of_files(phantom):
    ct = sitk.ReadImage(str(phantom["ct"]))
    labels = spineai.load_segmentation(phantom["labels"]).image
    from_files = api.measure_triangles(phantom["labels"], phantom["ct"], levels=["L5-S1"])
    from_images = api.measure_triangles(labels, ct, levels=["L5-S1"])
    ct_array = sitk.GetArrayFromImage(ct)
    label_array = sitk.GetArrayFromImage(labels)
    geometry = {"spacing_mm": ct.GetSpacing(), "origin_mm": ct.GetOrigin(), "direction": ct.GetDirection()}
    ct_from_array = api.load_image(ct_array, **geometry)
    # a label array without geometry takes the CT's
    from_arrays = api.measure_triangles(label_array, ct_from_array, levels=["L5-S1"])
    # ... or its own
    from_label_array = api.measure_triangles(label_array, levels=["L5-S1"], **geometry)
    reference = from_files.areas_mm2()
    assert reference
    for other in (from_images, from_arrays, from_label_array):
        assert other.areas_mm2() == pytest.approx(reference)


def test_in_memory_inputs_are_checked(phantom):
    ct = sitk.ReadImage(str(phantom["ct"]))
    array = sitk.GetArrayFromImage(ct)
    with pytest.raises(InputError, match="without spacing_mm"):
        api.load_image(array)
    with pytest.raises(InputError, match="not a numpy array"):
        api.load_image(ct, spacing_mm=(1, 1, 1))
    with pytest.raises(InputError, match="does not match the CT"):
        api.load_segmentation(np.zeros((3, 4, 5), np.uint8), like=ct)
    with pytest.raises(InputError, match="fractional"):
        api.load_segmentation(np.full((3, 4, 5), 0.5), spacing_mm=1.0)
    with pytest.raises(InputError, match="not canonical|not in the"):
        api.load_segmentation(np.full((3, 4, 5), 250, np.uint8), spacing_mm=1.0)
    with pytest.raises(InputError, match="does not exist"):
        api.measure_triangles(phantom["labels"].parent / "nothing.nii.gz")


# ------------------------------------------------------------------------------------ segmentation
def test_segment_with_site_weights_writes_files_and_accepts_arrays(tmp_path, single_torch_thread):  # noqa: F811
    weights = tiny_weights(tmp_path)
    image, _ = synthetic_case(1, shape_zyx=(24, 40, 40))
    out = tmp_path / "seg"
    result = spineai.segment(image, out, weights=weights, device="cpu", surfaces=False)
    assert result.labels.GetSize() == image.GetSize() and result.labels.GetOrigin() == image.GetOrigin()
    assert {"segmentation", "labels", "labels_json", "summary"} <= set(result.files)
    assert (out / "segmentation.seg.nrrd").is_file() and (out / "labels.nii.gz").is_file()
    data = json.loads(result.to_json())
    assert data["result"] == "SegmentOutput" and data["mode"] == "fast" and "labels" not in data
    assert data["model"]["name"] == "tiny_test_model"
    # the same CT as a numpy array (z, y, x) with its geometry gives the same labels
    array_result = spineai.segment(
        sitk.GetArrayFromImage(image),
        weights=weights,
        device="cpu",
        spacing_mm=image.GetSpacing(),
        origin_mm=image.GetOrigin(),
    )
    assert np.array_equal(sitk.GetArrayFromImage(array_result.labels), sitk.GetArrayFromImage(result.labels))
    # an occupied output folder is refused before any work
    with pytest.raises(OutputExistsError):
        spineai.segment(image, out, weights=weights, device="cpu")
    # an MRI-like image is refused with the reason
    mri = sitk.Abs(sitk.Cast(image, sitk.sitkFloat32)) + 1000.0
    with pytest.raises(InputError, match="Hounsfield"):
        spineai.segment(mri, weights=weights, device="cpu")


def test_run_case_uses_a_given_segmentation_instead_of_segmenting(phantom, tmp_path):
    steps_seen: list[str] = []
    case = spineai.run_case(
        phantom["ct"],
        tmp_path / "case",
        segmentation=phantom["labels"],
        images=False,
        on_step=steps_seen.append,
    )
    # by default the levels are numbered first (segment is skipped: a segmentation was given)
    assert case.steps == ["levels", "measure", "plan"] and case.steps_done == case.steps == steps_seen
    assert case.segmentation is None and case.segmentation_source == "given"
    assert (tmp_path / "case" / "planning" / "measurements.tsv").is_file()
    assert (tmp_path / "case" / "levels" / "levels.json").is_file()
    saved = json.loads((tmp_path / "case" / "case.json").read_text())
    assert (
        saved["steps_done"] == ["levels", "measure", "plan"] and saved["levels"]["format"] == "spineai-levels"
    )
    assert saved["triangles"]["triangles"][0]["area_mm2"] == pytest.approx(
        case.triangles.triangles[0].area_mm2
    )
    # numbers equal a direct plan of the same label map
    direct = api.plan_injection(phantom["labels"], phantom["ct"])
    assert case.triangles.areas_mm2() == pytest.approx(direct.areas_mm2())
    with pytest.raises(OutputExistsError):
        spineai.run_case(phantom["ct"], tmp_path / "case", segmentation=phantom["labels"])


def test_run_case_segments_then_measures(tmp_path, single_torch_thread):  # noqa: F811
    weights = tiny_weights(tmp_path)
    image, _ = synthetic_case(2, shape_zyx=(24, 40, 40))
    case = spineai.run_case(
        image,
        tmp_path / "case",
        steps=("segment", "measure"),
        weights=weights,
        device="cpu",
        images=False,
        surfaces=False,
        levels=["L5-S1"],
    )
    assert case.steps_done == ["segment", "levels", "measure"] and case.segmentation_source == "model"
    assert (tmp_path / "case" / "segmentation" / "labels.nii.gz").is_file()
    assert case.triangles is not None and len(case.triangles.triangles) == 4  # L5-S1, 2 sides, 2 triangles
    assert json.loads(case.to_json())["inputs"]["ct"].startswith("in-memory")


def test_run_case_refuses_unknown_steps_and_missing_inputs(tmp_path):
    with pytest.raises(InputError, match="Unknown step"):
        spineai.run_case(None, tmp_path / "a", steps=["segment", "radiograph-magic"])
    with pytest.raises(InputError, match="sagittal T2"):
        spineai.run_case(None, tmp_path / "b", steps=["grade-sagittal"])
    with pytest.raises(InputError, match="needs a CT"):
        spineai.run_case(None, tmp_path / "c", steps=["segment"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# --------------------------------------------------------------------------------------------- MRI
def test_grade_sagittal_wraps_the_engine(tmp_path):
    from spineai.grading import grade_sagittal as engine_grade
    from spineai.grading.synthetic import synthetic_sagittal_slice

    s = synthetic_sagittal_slice(11)
    img = sitk.GetImageFromArray(s.image.astype(np.float32))
    img.SetSpacing((0.8, 0.8))
    points = [list(img.TransformContinuousIndexToPhysicalPoint((float(c), float(r)))) for r, c in s.discs_rc]
    result = spineai.grade_sagittal(img, tmp_path / "g", disc_points=points)
    engine = engine_grade(img, disc_points=points)
    assert result.grades() == {d.level: d.grades for d in engine.discs}
    assert list(result.grades())[0] == "L5-S1"
    assert (tmp_path / "g" / "grades.tsv").is_file() and (tmp_path / "g" / "gradcam_pfirrmann.png").is_file()
    data = json.loads(result.to_json())
    assert data["discs"][0]["level"] == "L5-S1" and "heatmaps" not in data
    # a 2D numpy picture works the same
    from_array = spineai.grade_sagittal(
        s.image.astype(np.float32), disc_points=[[p[0] / 0.8, p[1] / 0.8] for p in points]
    )
    assert from_array.grades() == result.grades()


def test_predict_outcome_wraps_the_engine(tmp_path):
    import torch

    from spineai.outcome.mri_phantom import generate_sagittal_t2
    from spineai.outcome.network import ARCHITECTURE, TASK, build_network
    from spineai.outcome.predict import predict_outcome as engine_predict
    from spineai.weights import save_weights

    torch.manual_seed(0)
    net = build_network({"features": [4, 4, 8, 8]})
    weights, _ = save_weights(
        net,
        tmp_path / "outcome.safetensors",
        {
            "name": "random_outcome",
            "task": TASK,
            "architecture": ARCHITECTURE,
            "config": {"features": [4, 4, 8, 8]},
            "training_data": "none (random initialisation, for tests)",
        },
    )
    case = generate_sagittal_t2(3, spacing_mm=(4.0, 1.5, 1.5), slice_subsamples=2, noise=False)
    result = spineai.predict_outcome(case.image, tmp_path / "o", weights=weights)
    engine = engine_predict(case.image, weights=weights)
    assert 0.0 <= result.probability_good <= 1.0
    assert result.probability_good == pytest.approx(engine.probability_good, abs=1e-6)
    assert result.predicted_good == (result.probability_good >= result.threshold)
    assert (tmp_path / "o" / "outcome.json").is_file() and result.heatmap is not None
    assert json.loads(result.to_json())["probability_good"] == pytest.approx(result.probability_good)


# ------------------------------------------------------------------------------------------ package
def test_import_spineai_stays_cheap_and_exposes_the_api():
    code = (
        "import sys, spineai; heavy = [m for m in ('torch', 'SimpleITK', 'monai', 'vtk') if m in sys.modules]; "
        "print(heavy); assert not heavy, heavy; from spineai import api; assert spineai.segment is api.segment; "
        "assert spineai.run_case is api.run_case; assert callable(spineai.run_batch)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    with pytest.raises(AttributeError):
        spineai.no_such_function  # noqa: B018
