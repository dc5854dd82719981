"""Axial grader: input reading and refusals, manifests, metrics on a hand-computed fixture, the network,
training steps, evaluation end to end with a model whose answers are known.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from spineai.errors import InputError, WeightsError
from spineai.grading.axial.data import read_manifest, split_records
from spineai.grading.axial.evaluate import axial_metrics, evaluate_axial, per_grade_statistics
from spineai.grading.axial.model import (
    ARCHITECTURE,
    PAPER_CONFIG,
    TASK,
    AxialGraderNet,
    class_names,
    load_axial_model,
    prepare_axial_input,
)
from spineai.grading.axial.phantom import generate_axial_t2
from spineai.grading.axial.slices import crop_to_box, read_axial_slice
from spineai.grading.axial.train import AxialTrainConfig, augment_batch, train_axial_grader
from spineai.weights import ModelCard, save_weights

TINY = {
    "depth": 10,
    "widen_factor": 0.125,
    "conv1_stride": 2,
    "no_max_pool": True,
    "dropout": 0.0,
    "input_size": 64,
}


# --------------------------------------------------------------------------------------------- input
def test_slice_reading_keeps_geometry_and_maps_back():
    case = generate_axial_t2(3)
    arr = sitk.GetArrayFromImage(case.image)
    ws = read_axial_slice(case.image)
    assert ws.kind == "slice" and ws.pixel_mm == pytest.approx(case.image.GetSpacing()[0])
    assert np.array_equal(ws.array, arr.astype(np.float32))
    back = ws.map_on_input(ws.array)
    assert np.array_equal(sitk.GetArrayFromImage(back), arr.astype(np.float32))
    assert ws.input_index((10.0, 20.0)) == pytest.approx([20.0, 10.0])
    # a mirrored copy (direction -x) is put back into the radiological display
    flipped = sitk.Flip(case.image, [True, False])
    assert np.array_equal(read_axial_slice(flipped).array, ws.array)


def test_volume_middle_slice_is_graded_and_said():
    case = generate_axial_t2(4, slab_slices=5)
    ws = read_axial_slice(case.image)
    assert ws.kind == "volume" and ws.slice_index == 2
    assert any("middle axial slice 2 of 5" in n for n in ws.notes)
    assert np.array_equal(ws.array, sitk.GetArrayFromImage(case.image)[2].astype(np.float32))
    other = read_axial_slice(case.image, slice_index=1)
    assert other.slice_index == 1
    heat = ws.map_on_input(np.ones_like(ws.array))
    vol = sitk.GetArrayFromImage(heat)
    assert vol.shape == (5, *ws.array.shape) and vol[2].min() == 1 and vol[[0, 1, 3, 4]].max() == 0
    with pytest.raises(InputError, match="outside"):
        read_axial_slice(case.image, slice_index=9)


def _reoriented(img: sitk.Image, columns: list[list[float]]) -> sitk.Image:
    out = sitk.Image(img)
    out.SetDirection(tuple(np.array(columns, dtype=float).T.ravel()))
    return out


def test_sagittal_coronal_ct_and_tiny_inputs_are_refused():
    slab = generate_axial_t2(4, slab_slices=3).image
    # slices stacked along the patient's left-right axis: a sagittal series
    sagittal = _reoriented(slab, [[0, 1, 0], [0, 0, 1], [1, 0, 0]])
    with pytest.raises(InputError, match="sagittal series"):
        read_axial_slice(sagittal)
    coronal = _reoriented(slab, [[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    with pytest.raises(InputError, match="coronal series"):
        read_axial_slice(coronal)
    ct = np.full((128, 128), -1000.0, dtype=np.float32)
    yy, xx = np.mgrid[0:128, 0:128]
    ct[(yy - 64) ** 2 + (xx - 64) ** 2 < 50**2] = 40.0
    ct[(yy - 70) ** 2 + (xx - 64) ** 2 < 12**2] = 900.0
    with pytest.raises(InputError, match="CT"):
        read_axial_slice(ct)
    with pytest.raises(InputError, match="at least 48 pixels"):
        read_axial_slice(np.zeros((30, 30), dtype=np.float32))
    with pytest.raises(InputError, match="NaN"):
        read_axial_slice(np.full((64, 64), np.nan, dtype=np.float32))


def test_sagittal_picture_is_refused_and_axial_picture_accepted():
    from spineai.grading.synthetic import synthetic_sagittal_slice

    with pytest.raises(InputError, match="sagittal"):
        read_axial_slice(synthetic_sagittal_slice(1).image.astype(np.float32))
    picture = sitk.GetArrayFromImage(generate_axial_t2(2).image).astype(np.float32)
    ws = read_axial_slice(picture)
    assert ws.kind == "picture" and ws.pixel_mm is None
    assert any("radiological" in n for n in ws.notes)


# ------------------------------------------------------------------------------------------ manifest
def _write_manifest(folder, rows, header=("image", "ldh", "lccs", "lnrc")):
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "manifest.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return folder


def _write_case(folder, seed, **wanted):
    (folder / "images").mkdir(parents=True, exist_ok=True)
    case = generate_axial_t2(seed, **wanted)
    sitk.WriteImage(case.image, str(folder / "images" / f"c{seed}.nii.gz"))
    return f"images/c{seed}.nii.gz", case


def test_manifest_errors_name_the_row(tmp_path):
    name, _case = _write_case(tmp_path / "ok", 1)
    folder = _write_manifest(tmp_path / "ok", [[name, 1, 0, 2], [name, "", "severe", 0]])
    m = read_manifest(folder)
    assert [r.grades for r in m.records] == [
        {"ldh": 1, "lccs": 0, "lnrc": 2},
        {"ldh": None, "lccs": 3, "lnrc": 0},
    ]
    _write_case(tmp_path / "missing", 1)
    missing = _write_manifest(tmp_path / "missing", [[name, 0, 0, 0], ["images/nothere.nii.gz", 1, 1, 1]])
    with pytest.raises(InputError, match=r"line 3: the image 'images/nothere.nii.gz' does not exist"):
        read_manifest(missing)
    _write_case(tmp_path / "bad", 1)
    bad = _write_manifest(tmp_path / "bad", [[name, 0, 0, 0], [name, 0, 7, 0]])
    with pytest.raises(InputError, match=r"line 3: column 'lccs' has the value '7'"):
        read_manifest(bad)
    nocol = _write_manifest(tmp_path / "nocol", [[name]], header=("image",))
    with pytest.raises(InputError, match="lacks the column"):
        read_manifest(nocol)
    with pytest.raises(InputError, match="No manifest"):
        read_manifest(tmp_path / "empty_dir_that_does_not_exist")


def test_split_keeps_patients_together(tmp_path):
    _write_case(tmp_path, 1)
    rows = [["images/c1.nii.gz", 0, 0, 0, f"p{i // 3}", ""] for i in range(30)]
    rows[0][5] = "test"
    folder = _write_manifest(tmp_path, rows, header=("image", "ldh", "lccs", "lnrc", "patient", "split"))
    parts = split_records(read_manifest(folder).records, val_fraction=0.2, seed=1)
    owners = {}
    for name, records in parts.items():
        for r in records:
            assert owners.setdefault(r.patient, name) == name
    assert all(r.patient == "p0" for r in parts["test"]) and len(parts["test"]) == 3
    assert len(parts["val"]) == 6 and sum(len(v) for v in parts.values()) == 30


# ------------------------------------------------------------------------------------------- metrics
#: hand-computed fixture (see the comments for the arithmetic)
TRUTH = [0, 0, 1, 1, 2, 3, 3, 2]
PRED = [0, 1, 1, 2, 2, 3, 2, 2]


def test_metrics_match_a_hand_computed_fixture():
    m = axial_metrics({"ldh": TRUTH}, {"ldh": PRED})["ldh"]
    assert m["confusion_matrix"] == [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 2, 0], [0, 0, 1, 1]]
    assert m["accuracy"] == pytest.approx(5 / 8)
    # Cohen: po = 5/8, pe = sum(row_k * col_k) = 0.25 * (1 + 2 + 4 + 1) / 8 = 0.25 -> (0.625 - 0.25) / 0.75
    assert m["kappa"] == pytest.approx(0.5)
    # Gwet: pi = (3, 4, 6, 3) / 16, pe = sum pi (1 - pi) / 3 = 0.2421875 -> (0.625 - pe) / (1 - pe)
    assert m["ac1"]["ac1"] == pytest.approx((0.625 - 0.2421875) / (1 - 0.2421875))
    rows = {r["grade"]: r for r in m["per_grade"]}
    assert rows[0]["precision"] == 1.0 and rows[0]["sensitivity"] == 0.5 and rows[0]["specificity"] == 1.0
    assert (
        rows[1]["precision"] == 0.5
        and rows[1]["sensitivity"] == 0.5
        and rows[1]["specificity"] == pytest.approx(5 / 6)
    )
    assert (
        rows[2]["precision"] == 0.5
        and rows[2]["sensitivity"] == 1.0
        and rows[2]["f1"] == pytest.approx(2 / 3)
    )
    assert m["macro_precision"] == pytest.approx(0.75) and m["weighted_sensitivity"] == pytest.approx(5 / 8)
    # dichotomous 0-1 vs 2-3: truth 0,0,0,0,1,1,1,1; model 0,0,0,1,1,1,1,1
    d = m["dichotomous"]
    assert d["confusion_matrix"] == [[3, 1], [0, 4]]
    assert d["sensitivity"] == 1.0 and d["specificity"] == 0.75 and d["accuracy"] == pytest.approx(7 / 8)


def test_dichotomous_roc_uses_p2_plus_p3():
    probs = np.array(
        [
            [0.7, 0.2, 0.1, 0.0],
            [0.4, 0.4, 0.1, 0.1],
            [0.1, 0.6, 0.2, 0.1],
            [0.2, 0.3, 0.3, 0.2],
            [0.0, 0.1, 0.8, 0.1],
            [0.0, 0.0, 0.2, 0.8],
        ]
    )
    truth = [0, 0, 1, 1, 2, 3]
    m = axial_metrics({"lnrc": truth}, {"lnrc": list(probs.argmax(axis=1))}, {"lnrc": probs})["lnrc"]
    roc = m["dichotomous"]["roc"]
    assert m["dichotomous"]["auc"]["auc"] == pytest.approx(1.0)  # scores 0.1 0.2 0.3 0.5 | 0.9 1.0
    assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0


def test_per_grade_statistics_handle_empty_grades():
    stats = per_grade_statistics(np.array([[2, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]))
    assert stats["per_grade"][1]["precision"] is None and stats["per_grade"][1]["support"] == 0
    assert stats["macro_sensitivity"] == 1.0


# ---------------------------------------------------------------------------------------------- model
def test_default_network_is_resnet50_with_a_2048_feature_and_three_heads():
    net = AxialGraderNet(**PAPER_CONFIG)
    assert net.feature_dim == 2048
    assert set(net.heads) == {"ldh", "lccs", "lnrc"} and all(h.out_features == 4 for h in net.heads.values())
    assert type(net.backbone).__module__.startswith("monai.networks.nets")
    assert len(class_names()) == 12
    small = AxialGraderNet(**TINY).eval()
    with torch.no_grad():
        out = small(torch.rand(2, 1, 64, 64))
    assert out.shape == (2, 12) and set(AxialGraderNet.split(out)) == {"ldh", "lccs", "lnrc"}


def test_augmentation_rotates_and_crops_but_keeps_shape():
    x = torch.zeros(4, 1, 32, 32)
    x[:, :, 10:22, 14:18] = 1.0
    g = torch.Generator().manual_seed(0)
    y = augment_batch(x, 15.0, (0.8, 1.0), g)
    assert y.shape == x.shape and not torch.allclose(x, y)
    same = augment_batch(x, 0.0, (1.0, 1.0), g)
    assert torch.allclose(same, x, atol=1e-5)


def _tiny_arrays(seeds, size=64):
    xs, ys = [], []
    for s in seeds:
        case = generate_axial_t2(s, fov_mm=100.0, spacing_mm=0.8)
        a, _ = prepare_axial_input(read_axial_slice(case.image).array, size)
        xs.append(np.round(a * 255).astype(np.uint8))
        ys.append([case.truth["grades"][k] for k in ("ldh", "lccs", "lnrc")])
    return np.stack(xs), np.array(ys)


def test_a_few_training_steps_make_the_loss_fall():
    x, y = _tiny_arrays(range(8))
    cfg = AxialTrainConfig(
        epochs=12,
        batch_size=4,
        learning_rate=3e-3,
        rotation_deg=0.0,
        crop_scale=(1.0, 1.0),
        architecture=dict(TINY),
    )
    net, history = train_axial_grader(x, y, config=cfg, progress=False)
    losses = [e["loss"] for e in history["epochs"]]
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])
    assert history["steps"] == 12 * 2 and not net.training


def _constant_model(path, ldh=1, lccs=0, lnrc=3):
    """A network whose heads ignore the image: every slice gets these grades."""
    net = AxialGraderNet(**TINY)
    with torch.no_grad():
        for key, grade in (("ldh", ldh), ("lccs", lccs), ("lnrc", lnrc)):
            net.heads[key].weight.zero_()
            net.heads[key].bias.fill_(0.0)
            net.heads[key].bias[grade] = 5.0
    card = ModelCard(
        name="constant",
        task=TASK,
        architecture=ARCHITECTURE,
        config=dict(net.config),
        class_names=class_names(),
    )
    save_weights(net, path, card, dtype="float32")
    return path


def test_evaluation_end_to_end_gives_the_hand_computed_confusion(tmp_path):
    folder = tmp_path / "data"
    rows = []
    for seed, truth in ((1, (0, 0, 3)), (2, (1, 0, 2)), (3, (1, 2, 3)), (4, (3, 1, 0))):
        name, _ = _write_case(folder, seed)
        rows.append([name, *truth])
    _write_manifest(folder, rows)
    weights = _constant_model(tmp_path / "constant.safetensors")
    report = evaluate_axial(folder, weights=weights, progress=False)
    ldh = report["metrics"]["ldh"]
    # every slice predicted LDH 1: truth 0,1,1,3 -> column 1 holds all four
    assert ldh["confusion_matrix"] == [[0, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0]]
    assert ldh["accuracy"] == 0.5 and ldh["kappa"] == pytest.approx(0.0)
    lnrc = report["metrics"]["lnrc"]
    assert lnrc["accuracy"] == 0.5 and lnrc["dichotomous"]["sensitivity"] == 1.0
    assert lnrc["dichotomous"]["specificity"] == 0.0
    assert [r["lccs_predicted"] for r in report["per_image"]] == [0, 0, 0, 0]
    json.dumps(report)  # JSON-ready
    assert report["reference_paper"]["accuracy"]["ldh"] == pytest.approx(0.842)


def test_weights_of_another_model_are_refused(tmp_path):
    from spineai.weights import MODELS_DIR

    with pytest.raises(WeightsError, match="axial_mri_grading"):
        load_axial_model(MODELS_DIR / "sagittal_grader.safetensors")
    weights = _constant_model(tmp_path / "m.safetensors")
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match its model card"):
        load_axial_model(weights)


def test_manifest_roi_columns_crop_training_inputs(tmp_path):
    from spineai.grading.axial.train import prepare_arrays

    name, case = _write_case(tmp_path, 5)
    i0, j0, i1, j1 = case.truth["stenosis"]["central_canal"]["box_index"]
    header = ("image", "ldh", "lccs", "lnrc", "roi_x0", "roi_y0", "roi_x1", "roi_y1")
    roi = [i0 - 15, j0 - 15, i1 + 15, j1 + 15]
    folder = _write_manifest(
        tmp_path, [[name, 1, 1, 1, *roi], [name, 1, 1, 1, "", "", "", ""]], header=header
    )
    records = read_manifest(folder).records
    assert records[0].roi == pytest.approx(roi) and records[1].roi is None
    x, y = prepare_arrays(records, 64, progress=False)
    assert not np.array_equal(x[0], x[1]) and y.tolist() == [[1, 1, 1], [1, 1, 1]]
    # the first input is exactly the ROI of the working slice fitted into the network input
    crop, r0, c0 = crop_to_box(read_axial_slice(case.image), roi)
    assert r0 == int(np.floor(roi[1])) and c0 == int(np.floor(roi[0]))
    expected = np.round(prepare_axial_input(crop, 64)[0] * 255).astype(np.uint8)
    assert np.array_equal(x[0], expected)
    bad = _write_manifest(tmp_path / "bad", [[str(tmp_path / name), 1, 1, 1, 50, 50, 10, 60]], header=header)
    with pytest.raises(InputError, match=r"line 2: the box of 'roi'.*inverted"):
        read_manifest(bad)
