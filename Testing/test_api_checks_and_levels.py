"""The API runs the input checks on its own, and ``run_case`` numbers the levels before it measures.

Input checks: a CT stored without its rescale intercept and an MR-like volume are refused before any model
runs; a DICOM folder with uneven slices is resampled with a warning; a direction matrix that puts the
vertebral bodies behind the canal gives a loud orientation warning; a level out of the field of view is
reported while the other level is still measured.

Levels step: ``run_case`` writes ``levels/`` as ``spineai levels`` does, and measures on the relabelled map
(scrambled names come back right; an override renames every output); a numbering that fails does not stop
the case. No CT weights ship with the engine: where a segmentation is needed, the CT model's inference is
replaced by the phantom's exact label map resampled onto the input (see ``exact_segmenter``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import spineai
from spineai import api, cli, io
from spineai.errors import InputError
from spineai.phantom import generate_ct_phantom, write_phantom_case
from spineai.phantom.scramble import scramble_level_labels

AP_FLIPPED = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)  # the header says the back is in front


@pytest.fixture(scope="module")
def phantom():
    return generate_ct_phantom(3, spacing_mm=2.0, progress=False)


@pytest.fixture(scope="module")
def phantom_files(phantom, tmp_path_factory) -> dict[str, Path]:
    return write_phantom_case(phantom, tmp_path_factory.mktemp("checks") / "case")


def exact_segmenter(monkeypatch, truth: sitk.Image) -> list[sitk.Image]:
    """Replace the CT model by ``truth`` resampled (nearest neighbour) onto each input CT; returns the CTs
    the stand-in was given (to check what reached the model)."""
    from spineai.segmentation import inference

    seen: list[sitk.Image] = []

    def segment_exactly(
        ct,
        mode="fast",
        postprocess=True,
        require_levels=None,
        model=None,
        class_weight_correction=True,
        mirror_tta=False,
        precision="auto",
    ):
        seen.append(ct)
        labels = sitk.Cast(io.resample_like(truth, ct, is_label=True), sitk.sitkUInt8)
        present = sorted({int(v) for v in np.unique(sitk.GetArrayViewFromImage(labels))} - {0})
        names = [io.anatomy.BY_LABEL[v].name for v in present]
        return inference.SegmentationResult(
            labels=labels,
            working_labels=labels,
            class_names=("background", *names),
            structures=names,
            volumes_mm3={n: 1000.0 for n in names},
            model={"name": "exact phantom labels"},
            mode=mode,
        )

    monkeypatch.setattr(api, "_segmentation_model", lambda weights, device: None)
    monkeypatch.setattr(inference, "segment", segment_exactly)
    return seen


# ----------------------------------------------------------------------------------- Hounsfield units
def test_ct_stored_without_its_rescale_is_refused_before_the_model(phantom, tmp_path):
    raw = sitk.Cast(phantom.image, sitk.sitkInt32) + 1024  # stored DICOM values, intercept not applied
    missing_weights = tmp_path / "not_there.safetensors"  # loading them would fail differently
    with pytest.raises(InputError, match="not in Hounsfield units") as err:
        spineai.segment(raw, tmp_path / "out", weights=missing_weights)
    assert "intercept" in str(err.value) and "Fix:" in str(err.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="Hounsfield"):  # run_case refuses it the same way
        spineai.run_case(raw, tmp_path / "case", weights=missing_weights)


def test_mr_like_volume_is_refused(phantom, tmp_path):
    # T2-like grey values (fluid bright, bone dark, no negative values) on the phantom's anatomy
    labels = sitk.GetArrayFromImage(phantom.labels)
    hu = sitk.GetArrayFromImage(phantom.image).astype(np.float32)
    t2 = np.clip((hu + 1000.0) * 0.12, 0, None)  # air 0, soft tissue ~ 125
    t2[labels == io.anatomy.BY_NAME["dural_sac"].label] = 240.0
    mr = sitk.GetImageFromArray(t2)
    mr.CopyInformation(phantom.image)
    with pytest.raises(InputError, match="does not look like a CT in Hounsfield units"):
        spineai.segment(mr, weights=tmp_path / "not_there.safetensors")


def test_segment_reports_its_checks_and_a_dicom_folder_is_regularised(phantom, tmp_path, monkeypatch):
    seen = exact_segmenter(monkeypatch, phantom.labels)
    folder = tmp_path / "dicom"
    keep = [k for k in range(phantom.image.GetSize()[2]) if k not in (20, 21, 40)]  # missing slices
    write_series(folder, phantom.image, keep)
    with pytest.raises(InputError, match="unevenly spaced"):
        io.read_image(folder, dims=3, name="CT")  # the plain reader refuses this series
    result = spineai.segment(folder, tmp_path / "seg", surfaces=False)
    by_name = {c["name"]: c for c in result.checks}
    assert list(by_name) == ["slice_geometry", "hounsfield", "orientation"]
    assert by_name["slice_geometry"]["status"] == "warning" and by_name["hounsfield"]["status"] == "ok"
    assert by_name["orientation"]["status"] == "ok"
    assert any("unevenly spaced" in w and "resampled" in w for w in result.warnings)
    regular = seen[-1]
    assert regular.GetSize()[2] == phantom.image.GetSize()[2] and regular.GetSpacing()[2] == pytest.approx(
        2.0
    )
    assert json.loads(result.to_json())["checks"][0]["name"] == "slice_geometry"
    assert (tmp_path / "seg" / "labels.nii.gz").is_file()


def test_segment_warns_loudly_when_the_orientation_contradicts_the_anatomy(phantom, monkeypatch):
    ct = sitk.Image(phantom.image)
    ct.SetDirection(AP_FLIPPED)
    truth = sitk.Image(phantom.labels)
    truth.SetDirection(AP_FLIPPED)
    exact_segmenter(monkeypatch, truth)
    result = spineai.segment(ct, surfaces=False)
    assert (
        result.warnings[0].startswith("CHECK THE ORIENTATION") and "anterior-posterior" in result.warnings[0]
    )
    orientation = [c for c in result.checks if c["name"] == "orientation"][0]
    assert orientation["status"] == "warning" and orientation["details"]["contradicts_anatomy"]


# ------------------------------------------------------------------------------ measure: label checks
def test_measure_checks_orientation_and_field_of_view(phantom):
    ok = api.measure_triangles(phantom.labels, levels=["L5-S1"])
    assert [(c["name"], c["status"]) for c in ok.checks] == [("orientation", "ok"), ("field_of_view", "ok")]
    flipped = sitk.Image(phantom.labels)
    flipped.SetDirection(AP_FLIPPED)
    with pytest.warns(UserWarning, match="no level could be measured"):  # a mirrored spine does not measure
        result = api.plan_injection(flipped, levels=["L5-S1"])
    assert result.warnings[0].startswith("CHECK THE ORIENTATION")
    assert {c["name"]: c["status"] for c in result.checks}["orientation"] == "warning"


def test_a_level_out_of_view_is_reported_and_the_other_level_is_measured():
    cut = generate_ct_phantom(
        2, spacing_mm=2.0, progress=False, fov_levels=("L4", "L5", "S1"), fov_mm=(180.0, 200.0, 80.0)
    )
    result = api.measure_triangles(cut.labels, cut.image)
    fov = [c for c in result.checks if c["name"] == "field_of_view"][0]
    assert fov["status"] == "warning" and list(fov["details"]["not_covered"]) == ["L4-L5"]
    assert [w for w in result.warnings if w.startswith("L4-L5 is not wholly in the field of view")]
    assert not [w for w in result.warnings if "L5-S1" in w]
    assert {r.status for r in result.triangles if r.level == "L5-S1"} == {"ok"}


def test_a_level_the_planner_already_reports_gets_no_second_message():
    cut = generate_ct_phantom(
        2, spacing_mm=2.0, progress=False, fov_levels=("L5", "S1"), fov_mm=(180, 200, 50)
    )
    result = api.measure_triangles(cut.labels)
    fov = [c for c in result.checks if c["name"] == "field_of_view"][0]
    assert set(fov["details"]["not_covered"]) == {"L4-L5", "L5-S1"}  # L4 and L5 cut by the cranial end
    assert {fm.status for fm in result.measurements.foramina if fm.level == "L4-L5"} != {"ok"}
    about = [w for w in result.warnings if w.startswith("L4-L5")]
    assert len(about) == 2 and all("not measured" in w for w in about)  # the planner's, left and right
    # L5-S1 was measured on a side although L5 is cut: that one is pointed out
    assert any(fm.ok for fm in result.measurements.foramina if fm.level == "L5-S1")
    assert [w for w in result.warnings if w.startswith("L5-S1 is not wholly in the field of view")]


# ----------------------------------------------------------------------------------- levels step
def test_run_case_numbers_the_levels_and_measures_with_the_verified_names(phantom, phantom_files, tmp_path):
    scrambled = scramble_level_labels(phantom.labels, 1)  # every vertebra, disc and root misnamed
    steps: list[str] = []
    case = spineai.run_case(
        phantom_files["ct"], tmp_path / "case", segmentation=scrambled, images=False, on_step=steps.append
    )
    assert case.steps == ["levels", "measure", "plan"] == case.steps_done == steps
    assert case.levels["format"] == "spineai-levels" and not case.levels["flagged"]
    assert [v["name"] for v in case.levels["vertebrae"]] == ["L3", "L4", "L5", "S1"]
    written = sorted(p.name for p in (tmp_path / "case" / "levels").iterdir())
    assert written == ["labels.json", "labels.nii.gz", "labels.seg.nrrd", "levels.json", "levels.tsv"]
    # the numbers are those of the correctly named map
    direct = api.plan_injection(phantom_files["labels"], phantom_files["ct"])
    assert case.triangles.areas_mm2() == pytest.approx(direct.areas_mm2())
    assert {r.level for r in case.triangles.triangles} == {"L4-L5", "L5-S1"}
    saved = json.loads((tmp_path / "case" / "case.json").read_text())
    assert saved["levels"]["vertebrae"][0]["name"] == "L3" and saved["checks"][0]["step"] == "measure"
    assert {c["name"] for c in saved["checks"]} == {"orientation", "field_of_view"}


def test_an_override_renames_every_output_as_spineai_levels_does(phantom_files, tmp_path, capsys):
    case = spineai.run_case(
        phantom_files["ct"],
        tmp_path / "case",
        segmentation=phantom_files["labels"],
        level_override="lowest=L6",
        steps=("levels", "measure"),
        images=False,
    )
    assert case.levels["override"] == {"lowest": "L6"} and case.inputs["level_override"] == "lowest=L6"
    argv = [
        "levels",
        str(phantom_files["labels"]),
        "--ct",
        str(phantom_files["ct"]),
        "-o",
        str(tmp_path / "cli"),
    ]
    assert cli.main([*argv, "--override", "lowest=L6"]) == 0, capsys.readouterr().err
    levels_dir = tmp_path / "case" / "levels"
    assert json.loads((levels_dir / "levels.json").read_text()) == json.loads(
        (tmp_path / "cli" / "levels.json").read_text()
    )
    assert (levels_dir / "levels.tsv").read_text() == (tmp_path / "cli" / "levels.tsv").read_text()
    # the two lowest levels are measured under their new names, with the same anatomy as before
    plain = api.measure_triangles(phantom_files["labels"], phantom_files["ct"])
    renamed = {
        (lv.replace("L5", "L6").replace("L4", "L5"), s, t): a for (lv, s, t), a in plain.areas_mm2().items()
    }
    assert case.triangles.areas_mm2() == pytest.approx(renamed)
    assert {r.level for r in case.triangles.triangles} == {"L5-L6", "L6-S1"}


def test_a_numbering_that_fails_does_not_stop_the_case(phantom, tmp_path):
    arr = sitk.GetArrayFromImage(phantom.labels)
    for name in (
        "S1",
        "ilium_left",
        "ilium_right",
    ):  # no pelvis and no CT (so no ribs): nothing to count from
        arr[arr == io.anatomy.BY_NAME[name].label] = 0
    no_sacrum = sitk.GetImageFromArray(arr)
    no_sacrum.CopyInformation(phantom.labels)
    case = spineai.run_case(
        None, tmp_path / "case", segmentation=no_sacrum, steps=("levels", "measure"), images=False
    )
    assert case.steps_done == ["levels", "measure"]
    assert case.levels["flagged"] is True and "No sacrum and no rib-bearing vertebra" in case.levels["error"]
    assert "override" in case.levels["error"]  # the message carries the fix
    assert any(w.startswith("levels: the vertebrae could not be numbered") for w in case.warnings)
    assert not (tmp_path / "case" / "levels").exists()
    assert {r.status for r in case.triangles.triangles if r.level == "L4-L5"} == {
        "ok"
    }  # input names measured
    assert json.loads((tmp_path / "case" / "case.json").read_text())["levels"]["flagged"] is True


def test_levels_run_by_default_after_segmenting(phantom, phantom_files, tmp_path, monkeypatch):
    exact_segmenter(monkeypatch, scramble_level_labels(phantom.labels, 4))
    case = spineai.run_case(phantom_files["ct"], tmp_path / "case", images=False, surfaces=False)
    assert case.steps_done == ["segment", "levels", "measure", "plan"] and case.segmentation_source == "model"
    assert [v["name"] for v in case.levels["vertebrae"]] == ["L3", "L4", "L5", "S1"]
    assert [c["step"] for c in case.checks][:2] == ["segment", "segment"]  # hounsfield, orientation
    direct = api.plan_injection(phantom_files["labels"], phantom_files["ct"])
    assert case.triangles.areas_mm2() == pytest.approx(direct.areas_mm2())


def test_a_mistyped_override_is_refused_before_anything_runs(phantom_files, tmp_path):
    with pytest.raises(InputError, match="not understood"):
        spineai.run_case(None, tmp_path / "case", segmentation=phantom_files["labels"], level_override="L6")
    assert not (tmp_path / "case").exists()


# ------------------------------------------------------------------------------------------ helpers
def write_series(folder: Path, volume: sitk.Image, z_indices) -> None:
    """Write the axial slices ``z_indices`` of ``volume`` (int16 HU, identity direction) as a CT DICOM series."""
    folder.mkdir(parents=True)
    uid = f"1.2.826.0.1.3680043.2.1125.{int(time.time() * 1000) % 10**9}"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    arr = sitk.GetArrayFromImage(volume).astype(np.int16)
    for k, z in enumerate(z_indices):
        img = sitk.GetImageFromArray(arr[z])
        img.SetSpacing(volume.GetSpacing()[:2])
        pos = volume.TransformIndexToPhysicalPoint((0, 0, int(z)))
        for tag, value in (
            ("0008|0060", "CT"),
            ("0008|0016", "1.2.840.10008.5.1.4.1.1.2"),
            ("0008|0018", f"{uid}.2.{k}"),
            ("0020|000d", f"{uid}.1"),
            ("0020|000e", uid),
            ("0020|0037", "1\\0\\0\\0\\1\\0"),
            ("0020|0032", "\\".join(f"{v:.4f}" for v in pos)),
            ("0020|0013", str(k + 1)),
            ("0028|1053", "1"),
            ("0028|1052", "0"),
        ):
            img.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(img)
