"""The CT segmentation against the engine's synthetic phantom: class coverage, checks, and a tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_segmentation_fixtures import single_torch_thread  # noqa: F401

from spineai import anatomy
from spineai.phantom import generate_ct_phantom, write_phantom_case
from spineai.segmentation.data import CT_CLASS_NAMES, find_cases, prepare_case, to_working_grid
from spineai.segmentation.inference import check_ct_image, locate_spine_region, segment
from spineai.segmentation.metrics import evaluate_segmentation
from spineai.segmentation.train import TrainConfig, train_segmentation

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("phantoms")
    for seed in (3, 4):
        write_phantom_case(
            generate_ct_phantom(seed, spacing_mm=(2.0, 2.0, 2.0), progress=False), root / f"p{seed}"
        )
    return root


def test_model_classes_cover_every_phantom_structure(phantoms: Path):
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(phantoms / "p3" / "labels.nii.gz")))
    names = {anatomy.BY_LABEL[int(v)].name for v in np.unique(labels) if v}
    assert names == set(CT_CLASS_NAMES[1:])  # L3..S1, ilia, three discs, dural sac, roots L3..S1 both sides


def test_phantom_passes_the_ct_checks_and_the_fast_crop_keeps_every_structure(phantoms: Path):
    image = sitk.ReadImage(str(phantoms / "p4" / "ct.nii.gz"))
    check_ct_image(image, "phantom")
    work = to_working_grid(sitk.Cast(image, sitk.sitkFloat32))
    labels = to_working_grid(sitk.ReadImage(str(phantoms / "p4" / "labels.nii.gz")), is_label=True)
    hu = sitk.GetArrayFromImage(work)
    box = locate_spine_region(hu)
    inside = np.zeros(hu.shape, bool)
    inside[box] = True
    assert inside[sitk.GetArrayFromImage(labels) > 0].all()


def test_prepared_phantom_has_every_class_with_left_roots_at_larger_x(phantoms: Path):
    case = find_cases(phantoms)[0]
    prepared = prepare_case(case, CT_CLASS_NAMES, (32, 64, 64))
    assert set(np.unique(prepared.classes).tolist()) == set(range(len(CT_CLASS_NAMES)))
    for level in ("L3", "L4", "L5", "S1"):
        left = np.argwhere(prepared.classes == CT_CLASS_NAMES.index(f"root_{level}_left"))[:, 2].mean()
        right = np.argwhere(prepared.classes == CT_CLASS_NAMES.index(f"root_{level}_right"))[:, 2].mean()
        assert left > right  # array axis 2 runs towards the patient's left (LPS +x)
    z = {
        n: np.argwhere(prepared.classes == CT_CLASS_NAMES.index(n))[:, 0].mean()
        for n in ("L3", "L4", "L5", "S1")
    }
    assert z["S1"] < z["L5"] < z["L4"] < z["L3"]


def test_tiny_end_to_end_run_on_a_small_phantom(tmp_path: Path):
    # one phantom with a small field of view around L5-S1 keeps the run short
    case = generate_ct_phantom(
        5, spacing_mm=(2.0, 2.0, 2.0), fov_levels=("L5", "S1"), fov_mm=(130.0, 100.0, 70.0), progress=False
    )
    data = tmp_path / "data"
    write_phantom_case(case, data / "p5")
    config = TrainConfig(features=(4, 8, 16), batch_size=2, iterations=4, val_every=4, device="cpu", seed=0)
    result = train_segmentation(
        data, tmp_path / "run", config, progress=False
    )  # validates on its training case
    weights = result.weights_path
    assert weights is not None and weights.is_file()
    assert "validation uses training cases" in (tmp_path / "run" / "train.log").read_text()
    ct = data / "p5" / "ct.nii.gz"
    seg = segment(ct, weights=weights, device="cpu", mode="fast")
    assert seg.labels.GetSize() == case.image.GetSize()
    seg.save(tmp_path / "out", surfaces=False)
    assert (tmp_path / "out" / "segmentation.seg.nrrd").is_file()
    evaluate_segmentation(
        data, weights=weights, device="cpu", distances=False, json_out=tmp_path / "eval.json"
    )
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert [c["case"] for c in saved["cases"]] == ["p5"]
    truth = {anatomy.BY_LABEL[int(v)].name for v in np.unique(sitk.GetArrayFromImage(case.labels)) if v}
    statuses = saved["cases"][0]["structures"]
    assert {n for n, s in statuses.items() if s["true_voxels"] > 0} == truth
    assert set(saved["summary"]["structures"]) == set(CT_CLASS_NAMES[1:])
