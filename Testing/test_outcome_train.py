"""Outcome training: the network, rotation augmentation, a few steps lowering the loss, manifest checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spineai.errors import InputError
from spineai.outcome.data import label_from_nrs, read_manifest, synthetic_rois
from spineai.outcome.network import GRADCAM_LAYER, build_network, count_parameters
from spineai.outcome.train import ROI_EXTENT_HW_MM, OutcomeTrainConfig, rotate_batch, train_outcome


@pytest.fixture(scope="module")
def rois():
    torch.set_num_threads(1)
    return synthetic_rois(
        range(300, 316),
        roi="truth",
        render={"spacing_mm": (4.0, 1.5, 1.5), "slice_subsamples": 1, "noise": True},
    )


def test_network_shapes_and_layers():
    net = build_network({"features": [8, 16, 32, 64]})
    x = torch.zeros(2, 1, 13, 100, 40)
    assert net(x).shape == (2, 2)
    assert net.features(x).shape == (2, 64, 6, 12, 5)  # conv4 keeps left/right resolution (6 of 13 planes)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    assert len(convs) == 4 and isinstance(dict(net.named_modules())[GRADCAM_LAYER], torch.nn.Sequential)
    assert any(isinstance(m, torch.nn.Dropout) and m.p == pytest.approx(0.1) for m in net.modules())
    assert count_parameters(net) == sum(p.numel() for p in net.parameters())
    with pytest.raises(ValueError):
        build_network({"features": [8, 16, 32]})


def test_rotation_is_physical_in_the_sagittal_plane():
    h_mm, w_mm = ROI_EXTENT_HW_MM
    hh, ww = np.meshgrid(
        np.linspace(-h_mm / 2, h_mm / 2, 100), np.linspace(-w_mm / 2, w_mm / 2, 40), indexing="ij"
    )
    bar = (np.abs(hh) < 3.0) & (np.abs(ww) < 45.0)  # a bar running antero-posteriorly, in mm
    x = torch.from_numpy(np.broadcast_to(bar, (13, 100, 40)).astype(np.float32).copy())[None, None]
    assert torch.allclose(rotate_batch(x, [0.0]), x, atol=1e-5)
    for angle in (-20.0, 10.0, 20.0):
        r = rotate_batch(x, [angle])[0, 0, 6].numpy()
        w = r > 0.5
        # principal direction of the rotated bar, measured in millimetres
        pts = np.stack([hh[w], ww[w]], axis=1)
        pts = pts - pts.mean(axis=0)
        _, vecs = np.linalg.eigh(pts.T @ pts)
        d = vecs[:, -1]
        measured = math.degrees(math.atan2(d[0], d[1]))
        measured = (measured + 90.0) % 180.0 - 90.0
        assert abs(abs(measured) - abs(angle)) < 2.0, (angle, measured)


def _training_loss(model, x, y) -> float:
    """Cross-entropy on (x, y) as training sees it (batch statistics), without dropout's randomness."""
    model.train()
    model.dropout.eval()
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(model(x), y))


def test_a_few_training_steps_lower_the_loss(rois):
    x, y = rois.x, rois.y
    assert 0 < y.sum() < len(y)
    cfg = OutcomeTrainConfig(
        epochs=6, learning_rate=1e-3, rotation_prob=0.0, seed=5, num_threads=1, keep_best=False
    )
    torch.manual_seed(cfg.seed)
    start = build_network(
        {"features": cfg.features, "dropout": cfg.dropout, "norm": cfg.norm, "pooling": cfg.pooling}
    )
    val = np.unique([int(np.flatnonzero(y == 0)[0]), int(np.flatnonzero(y == 1)[0])])
    result = train_outcome(x, y, None, cfg, val_indices=val)
    train_idx = np.setdiff1d(np.arange(len(y)), val)
    xt = torch.from_numpy(x[train_idx].astype(np.float32)).unsqueeze(1)
    yt = torch.from_numpy(y[train_idx])
    before = _training_loss(start, xt, yt)
    after = _training_loss(result.model, xt, yt)
    assert after < 0.8 * before, (before, after)
    assert len(result.history) == cfg.epochs and 0.0 <= result.threshold <= 1.0


def test_training_writes_verified_weights_and_card(tmp_path, rois):
    from spineai.weights import load_card, load_into

    cfg = OutcomeTrainConfig(epochs=1, seed=0, model_name="unit_outcome")
    val = np.unique([int(np.flatnonzero(rois.y == c)[k]) for c in (0, 1) for k in (0, 1)])
    result = train_outcome(
        rois.x, rois.y, None, cfg, tmp_path / "run", val_indices=val, training_data="unit test"
    )
    card = load_card(result.weights_path)
    assert card.task == "tesi_outcome" and card.class_names == ["poor_outcome", "good_outcome"]
    assert card.training_recipe["learning_rate"] == 1e-4 and card.training_recipe["batch_size"] == 4
    assert card.training_recipe["rotation_angles"] == [-20.0, -10.0, -5.0, 5.0, 10.0, 20.0]
    assert card.extra["decision_threshold"] == pytest.approx(result.threshold)
    load_into(build_network(card.config), result.weights_path, card)
    with pytest.raises(FileExistsError):
        train_outcome(rois.x, rois.y, None, cfg, tmp_path / "run", val_indices=val)


def test_soft_targets_are_the_training_target(rois):
    """One-hot soft targets train exactly like the 0/1 labels; other probabilities train differently."""
    val = np.unique([int(np.flatnonzero(rois.y == c)[0]) for c in (0, 1)])
    cfg = OutcomeTrainConfig(epochs=1, seed=0, rotation_prob=0.0, keep_best=False)
    with pytest.raises(InputError, match="soft_targets"):
        train_outcome(rois.x, rois.y, None, cfg, val_indices=val, soft_targets=np.full(3, 0.5))
    with pytest.raises(InputError, match="soft_targets"):
        train_outcome(rois.x, rois.y, None, cfg, val_indices=val, soft_targets=np.full(len(rois.y), 1.5))
    hard = train_outcome(rois.x, rois.y, None, cfg, val_indices=val)
    onehot = train_outcome(rois.x, rois.y, None, cfg, val_indices=val, soft_targets=rois.y.astype(float))
    flat = train_outcome(rois.x, rois.y, None, cfg, val_indices=val, soft_targets=np.full(len(rois.y), 0.5))
    a, b, c = (r.model.state_dict()["classifier.weight"] for r in (hard, onehot, flat))
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, c, atol=1e-4)


def test_one_class_validation_is_refused(rois):
    val = np.flatnonzero(rois.y == 1)[:3]
    with pytest.raises(InputError, match="one outcome class"):
        train_outcome(rois.x, rois.y, None, OutcomeTrainConfig(epochs=1), val_indices=val)


def test_label_from_nrs_follows_the_50_percent_rule():
    assert label_from_nrs(8, 4) == 1  # exactly 50 %
    assert label_from_nrs(8, 5) == 0
    assert label_from_nrs(5, 2) == 1
    assert label_from_nrs(6, 7) == 0  # worse
    with pytest.raises(InputError, match="undefined"):
        label_from_nrs(0, 0)
    with pytest.raises(InputError, match="0-10"):
        label_from_nrs(12, 3)


def test_manifest_bad_rows_are_named(tmp_path):
    img = tmp_path / "a.nii.gz"
    img.write_bytes(b"placeholder image file")
    (tmp_path / "b.nii.gz").write_bytes(b"placeholder image file")
    csv = tmp_path / "manifest.csv"
    csv.write_text(
        "case_id,image,label,nrs_pre,nrs_post,patient_id\n"
        "a,a.nii.gz,1,,,p1\n"  # row 2: good
        "b,b.nii.gz,,8,3,p2\n"  # row 3: good from NRS (62.5 %)
        "c,missing.nii.gz,1,,,p3\n"  # row 4: image missing
        "d,a.nii.gz,maybe,,,p4\n"  # row 5: bad label
        "e,a.nii.gz,1,8,6,p5\n"  # row 6: label contradicts NRS (25 %)
        "a,a.nii.gz,0,,,p6\n"  # row 7: duplicate id
        "f,a.nii.gz,,0,0,p7\n"  # row 8: NRS before 0
        "g,a.nii.gz,,,,p8\n",  # row 9: no label
        encoding="utf-8",
    )
    with pytest.raises(InputError) as exc:
        read_manifest(csv)
    msg = str(exc.value)
    assert "6 bad row(s)" in msg
    for text in (
        "row 4 (case 'c'): image",
        "row 5 (case 'd'): label 'maybe'",
        "row 6 (case 'e'): label 1 contradicts",
        "row 7 (case 'a'): duplicate",
        "row 8 (case 'f')",
        "row 9 (case 'g'): no label",
    ):
        assert text in msg, text
    assert "--skip-bad-rows" in (exc.value.fix or "")
    cases, problems = read_manifest(csv, skip_bad_rows=True)
    assert [c.case_id for c in cases] == ["a", "b"] and [c.label for c in cases] == [1, 1]
    assert cases[1].nrs_pre == 8 and cases[1].patient_id == "p2" and len(problems) == 6


def test_manifest_without_label_columns_is_refused(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text("case_id,image\na,a.nii.gz\n", encoding="utf-8")
    with pytest.raises(InputError, match="label"):
        read_manifest(csv)
