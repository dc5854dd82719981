"""Training loops of the sagittal grader on synthetic slices (tiny networks, a few steps): losses fall."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spineai.grading.disc_detection import locator_input, name_levels, normalise_slice, render_heatmaps
from spineai.grading.synthetic import synthetic_sagittal_slice
from spineai.grading.train import (
    GraderTrainConfig,
    LocatorTrainConfig,
    PatchSample,
    heatmap_loss,
    train_grader,
    train_locator,
)

TINY_LOCATOR = {"size": 64, "channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 0}
TINY_GRADER = {"block_inplanes": [8, 8, 16, 16], "layers": [1, 1, 1, 1], "dropout": 0.0}


@pytest.fixture(scope="module")
def synthetic_slices():
    return [synthetic_sagittal_slice(seed) for seed in range(6)]


def test_heatmap_targets_peak_at_the_disc_centres():
    discs = np.array([[40.3, 30.7], [20.0, 28.0]])
    t = render_heatmaps(discs, 0, 64)
    assert t.shape == (2, 64, 64)
    assert t[0, 40, 31] == 1.0 and t[0, 20, 28] == 1.0
    assert t[1, 40, 31] == 1.0 and t[1, 20, 28] < 1e-3  # L5/S1 channel: the first disc only
    assert render_heatmaps(discs, None, 64)[1].max() == 0.0


def test_heatmap_loss_prefers_the_right_heatmap_and_ignores_masked_channels():
    target = torch.from_numpy(render_heatmaps(np.array([[32.0, 32.0]]), 0, 64))[None]
    good = torch.logit(target.clamp(0.01, 0.99))
    bad = torch.logit(torch.roll(target, shifts=10, dims=-1).clamp(0.01, 0.99))
    assert heatmap_loss(good, target) < 0.2 * heatmap_loss(bad, target)
    # with the L5/S1 channel masked, its logits do not change the loss
    mask = torch.tensor([[1.0, 0.0]])
    other = good.clone()
    other[:, 1] = bad[:, 1]
    assert heatmap_loss(good, target, mask) == pytest.approx(float(heatmap_loss(other, target, mask)))
    assert heatmap_loss(other, target) > heatmap_loss(good, target)


def test_locator_training_reduces_the_loss(synthetic_slices):
    slices = [normalise_slice(s.image) for s in synthetic_slices]
    discs = [s.discs_rc for s in synthetic_slices]
    cfg = LocatorTrainConfig(
        iterations=60, batch_size=4, learning_rate=3e-3, seed=1, architecture=TINY_LOCATOR
    )
    before = torch.get_num_threads()
    model, history = train_locator(slices, discs, [True] * len(slices), cfg, progress=False)
    assert torch.get_num_threads() == before  # the thread setting is restored
    loss = np.asarray(history["loss"])
    assert len(loss) == 60 and np.all(np.isfinite(loss))
    assert loss[-10:].mean() < 0.6 * loss[:10].mean()
    x, _ = locator_input(slices[0], 64)
    with torch.no_grad():
        heat = torch.sigmoid(model(torch.from_numpy(x)[None, None]))
    assert heat.shape == (1, 2, 64, 64)


def test_grader_training_reduces_the_loss_and_keeps_the_best_epoch(synthetic_slices):
    slices = [normalise_slice(s.image) for s in synthetic_slices]
    samples = []
    for i, s in enumerate(synthetic_slices):
        loc = name_levels(s.discs_rc, np.zeros(len(s.discs_rc)), np.ones(len(s.discs_rc)), lowest_ivd=1)
        for d in loc.discs:
            grade = s.pfirrmann[d.ivd - 1]
            samples.append(
                PatchSample(i, (d.row, d.col), d.axis_rc, d.spacing_px, {"pfirrmann": grade}, str(i), d.ivd)
            )
    train, val = samples[:24], samples[24:]
    cfg = GraderTrainConfig(
        epochs=8, batch_size=8, learning_rate=3e-3, jitter=False, seed=0, architecture=TINY_GRADER
    )
    model, history = train_grader(slices, train, cfg, val_samples=val, progress=False)
    loss = history["loss"]
    assert len(loss) == 8 and loss[-1] < loss[0]
    assert len(history["val_mean_balanced_accuracy"]) == 8
    assert 0 <= history["best_epoch"] < 8
    assert not model.training


def test_training_refuses_inconsistent_inputs(synthetic_slices):
    with pytest.raises(ValueError):
        train_locator(
            [normalise_slice(synthetic_slices[0].image)], [], [True], LocatorTrainConfig(iterations=1)
        )
    with pytest.raises(ValueError):
        train_grader([], [], GraderTrainConfig(epochs=1))
