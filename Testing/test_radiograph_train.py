"""Radiograph network, cross-validated training, bagging ensemble, per-level patient scoring, manifests."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from spineai.errors import InputError
from spineai.radiograph.data import RadiographArrays, read_radiograph_manifest
from spineai.radiograph.evaluate import level_report, patient_means
from spineai.radiograph.network import LEVEL_COLUMNS, LEVELS, RadiographEnsemble, RadiographNet
from spineai.radiograph.train import RadiographTrainConfig, augment_batch, train_radiograph_arrays
from spineai.weights import load_card, verify_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = {"model_name": "efficientnet-b0", "width_multiplier": 0.25}


def test_network_outputs_and_monai_backbone():
    from monai.networks.nets import EfficientNetBN

    torch.manual_seed(0)
    net = RadiographNet(**TINY, age_task=True).eval()
    logits, age = net(torch.randn(3, 1, 64, 64))
    assert logits.shape == (3, 5) and age.shape == (3,)
    assert RadiographNet(**TINY).eval()(torch.randn(2, 1, 64, 64))[1] is None
    full = RadiographNet("efficientnet-b0")
    assert isinstance(full.backbone, EfficientNetBN) and full.backbone._fc.out_features == 5
    assert full.backbone._conv_stem.in_channels == 1
    with pytest.raises(ValueError, match="model_name"):
        RadiographNet("resnet50")
    ens = RadiographEnsemble(n_members=3, image_size=64, **TINY).eval()
    x = torch.randn(2, 1, 64, 64)
    mean, members, _ = ens.predict(x)
    assert members.shape == (3, 2, 5)
    assert torch.allclose(mean, torch.stack([torch.sigmoid(m(x)[0]) for m in ens.members]).mean(0))


def test_patient_means_and_level_report_by_hand():
    p = np.array([[0.2, 0.1, 0.1, 0.8, 0.3], [0.4, 0.1, 0.1, 0.6, 0.1], [0.9, 0.1, 0.2, 0.1, 0.1]])
    y = np.array([[1, 0, 0, 1, 0], [1, 0, 0, 1, 0], [0, 0, 1, 0, 0]])
    ids, pm, ym = patient_means(p, ["a", "a", "b"], y)
    assert (
        ids == ["a", "b"]
        and np.allclose(pm[0], [0.3, 0.1, 0.1, 0.7, 0.2])
        and ym.tolist() == y[[0, 2]].tolist()
    )
    with pytest.raises(InputError, match="different herniation labels"):
        patient_means(p, ["a", "a", "b"], np.array([[1, 0, 0, 1, 0], [0, 0, 0, 1, 0], [0, 0, 1, 0, 0]]))
    yy = np.array([[1, 0, 0, 1, 0], [0, 0, 0, 1, 1], [0, 1, 0, 0, 0], [1, 0, 0, 0, 1]])
    pp = np.array(
        [
            [0.9, 0.2, 0.1, 0.7, 0.1],
            [0.2, 0.3, 0.1, 0.8, 0.6],
            [0.6, 0.6, 0.1, 0.2, 0.2],
            [0.4, 0.1, 0.1, 0.3, 0.9],
        ]
    )
    rep = level_report(yy, pp, [0.5] * 5)
    l1 = rep["per_level"]["L1-L2"]  # calls: 0.9 (pos), 0.6 (neg); misses 0.4 (pos)
    assert (l1["tp"], l1["fp"], l1["fn"], l1["tn"]) == (1, 1, 1, 1)
    assert l1["precision"] == 0.5 and l1["recall"] == 0.5 and l1["f1"] == pytest.approx(0.5)
    assert l1["auc"]["auc"] == pytest.approx(0.75)
    assert rep["per_level"]["L3-L4"]["auc"] is None  # no positive patient: no AUC
    assert rep["per_level"]["L4-L5"]["auc"]["auc"] == 1.0
    assert rep["any_hnp"]["n_positive"] == 4


def _arrays(n_patients: int = 12, size: int = 64, seed: int = 0) -> RadiographArrays:
    """Two images per patient; a herniated L4-L5 shows as a bright band (so the loss can fall)."""
    rng = np.random.default_rng(seed)
    xs, labels, patients, ages = [], [], [], []
    for i in range(n_patients):
        y = np.zeros(5, dtype=np.int64)
        y[3] = i % 2
        y[4] = int(i % 3 == 0)
        for _view in range(2):
            img = rng.normal(0.0, 0.1, (size, size)).astype(np.float32)
            if y[3]:
                img[40:46, 16:48] += 0.8
            xs.append(img)
            labels.append(y)
            patients.append(f"pt{i}")
            ages.append(30.0 + 3 * i)
    return RadiographArrays(
        x=np.stack(xs).astype(np.float16),
        labels=np.stack(labels),
        ages=np.asarray(ages),
        patients=patients,
        views=["ap", "lateral"] * n_patients,
        records=[],
    )


def test_cross_validation_writes_a_verified_ensemble_and_resumes(tmp_path):
    arrays = _arrays()
    cfg = RadiographTrainConfig(
        **TINY,
        image_size=64,
        folds=2,
        epochs=2,
        batch_size=4,
        learning_rate=3e-3,
        age_task=True,
        model_card_name="tiny",
    )
    result = train_radiograph_arrays(arrays, cfg, tmp_path / "run", training_data="unit test")
    card = load_card(result.card_path)
    verify_weights(result.weights_path, card)
    assert card.task == "radiograph_hnp" and card.class_names == list(LEVELS)
    assert card.config["n_members"] == 2 and card.config["age_task"] is True
    assert len(card.metrics["cross_validation_folds"]) == 2
    assert set(card.extra["thresholds"]) == set(LEVELS)
    fold_thr = np.array(card.extra["fold_thresholds"])
    assert np.allclose(fold_thr.mean(axis=0), [card.extra["thresholds"][lv] for lv in LEVELS])
    # every patient was validated once, by the fold model that did not train on it
    rows = list(csv.DictReader(open(tmp_path / "run" / "cv_patients.csv", encoding="utf-8")))
    assert sorted(r["patient_id"] for r in rows) == sorted({f"pt{i}" for i in range(12)})
    assert sum(f["n_val_patients"] for f in result.folds) == 12
    again = train_radiograph_arrays(arrays, cfg, tmp_path / "run", training_data="unit test")
    assert "reused" in (tmp_path / "run" / "train.log").read_text()
    assert again.thresholds == pytest.approx(result.thresholds)
    other = RadiographTrainConfig(**TINY, image_size=64, folds=2, epochs=3, batch_size=4)
    with pytest.raises(InputError, match="other settings"):
        train_radiograph_arrays(arrays, other, tmp_path / "run")


def test_a_few_steps_lower_the_training_loss():
    from spineai.radiograph.train import _train_fold

    arrays = _arrays(n_patients=8)
    cfg = RadiographTrainConfig(**TINY, image_size=64, folds=2, epochs=6, batch_size=8, learning_rate=3e-3)
    log: list[str] = []
    idx = np.arange(len(arrays.x))
    _net, info = _train_fold(cfg, arrays, idx, idx[:4], 0, torch.device("cpu"), log)
    losses = [h["train_loss"] for h in info["history"]]
    assert losses[-1] < losses[0]


def test_augmentation_keeps_levels_in_order_and_sides_apart():
    # a bright band high up on the image's left, a dark one low down on its right
    x = torch.zeros(16, 1, 64, 64)
    x[:, :, 10:16, 4:28] = 0.5
    x[:, :, 48:54, 36:60] = -0.5
    out = augment_batch(x, np.random.default_rng(0))
    assert out.shape == x.shape
    assert not torch.allclose(out, x)  # something moved or changed contrast
    for img in out[:, 0]:
        bright = np.unravel_index(int(torch.argmax(img)), img.shape)
        dark = np.unravel_index(int(torch.argmin(img)), img.shape)
        assert bright[0] < 32 <= dark[0]  # top stays top: no flip or rotation swaps the levels
        assert bright[1] < 32 <= dark[1]  # left stays left


def test_augmented_training_still_learns():
    from spineai.radiograph.train import _train_fold

    arrays = _arrays(n_patients=8)
    cfg = RadiographTrainConfig(
        **TINY, image_size=64, folds=2, epochs=6, batch_size=8, learning_rate=3e-3, augment=True
    )
    idx = np.arange(len(arrays.x))
    _net, info = _train_fold(cfg, arrays, idx, idx[:4], 0, torch.device("cpu"), [])
    losses = [h["train_loss"] for h in info["history"]]
    assert losses[-1] < losses[0]


def test_bad_training_input_is_refused():
    arrays = _arrays(n_patients=4)
    with pytest.raises(InputError, match="patient"):
        train_radiograph_arrays(arrays, RadiographTrainConfig(**TINY, image_size=64, folds=5))
    with pytest.raises(InputError, match="image_size|pixels"):
        train_radiograph_arrays(arrays, RadiographTrainConfig(**TINY, image_size=128, folds=2))
    arrays.labels[0, 0] = -1
    with pytest.raises(InputError, match="no herniation labels"):
        train_radiograph_arrays(arrays, RadiographTrainConfig(**TINY, image_size=64, folds=2))


def test_manifest_bad_rows_are_named(tmp_path):
    img = tmp_path / "a.png"
    img.write_bytes(b"x")
    header = "patient_id,image,view,age," + ",".join(LEVEL_COLUMNS)
    lines = [
        header,
        "p1,a.png,ap,55,0,0,0,1,0",
        "p2,missing.png,ap,60,0,0,0,0,0",
        "p3,a.png,ap,old,0,0,0,0,0",
        "p4,a.png,ap,40,0,0,maybe,0,0",
        ",a.png,ap,40,0,0,0,0,0",
    ]
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as exc:
        read_radiograph_manifest(csv_path)
    text = str(exc.value)
    assert "4 bad row(s)" in text and "row 3 (patient 'p2')" in text and "does not exist" in text
    assert "age 'old'" in text and "hnp_L3_4 'maybe'" in text and "empty patient_id" in text
    records, problems = read_radiograph_manifest(csv_path, skip_bad_rows=True)
    assert [r.patient_id for r in records] == ["p1"] and records[0].labels.tolist() == [0, 0, 0, 1, 0]
    assert len(problems) == 4
    (tmp_path / "nolabels.csv").write_text("patient_id,image\np1,a.png\n")
    with pytest.raises(InputError, match="hnp_L1_2"):
        read_radiograph_manifest(tmp_path / "nolabels.csv")
