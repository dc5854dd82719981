"""Training: a tiny configuration learns (loss falls), writes its logs and card, and resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_segmentation_fixtures import (
    TINY_CLASSES,
    single_torch_thread,  # noqa: F401
    write_dataset,
)

from spineai.errors import InputError, OutputExistsError
from spineai.segmentation.train import TrainConfig, class_weights, train_segmentation
from spineai.weights import load_card, load_state_dict

TINY = dict(
    class_names=TINY_CLASSES,
    features=(4, 8, 16),
    patch_size=(16, 32, 32),
    batch_size=2,
    seed=0,
    device="cpu",
    val_cases_per_round=1,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("seg_train_data"), seeds=(0, 1, 2))


def test_tiny_training_lowers_the_loss_and_writes_its_outputs(dataset: Path, tmp_path: Path):
    out = tmp_path / "run"
    result = train_segmentation(
        dataset, out, TrainConfig(**TINY, iterations=60, val_every=30), progress=False
    )
    losses = np.array(result.losses)
    assert len(losses) == 60
    assert losses[-10:].mean() < 0.8 * losses[:10].mean()
    assert [h["iteration"] for h in result.history] == [30, 60]
    for name in (
        "model.safetensors",
        "model.json",
        "train.log",
        "metrics.tsv",
        "metrics.json",
        "checkpoints/last.safetensors",
        "checkpoints/last.json",
        "checkpoints/last_optimizer.pt",
        "checkpoints/last_state.json",
    ):
        assert (out / name).is_file(), name
    card = load_card(out / "model.safetensors")
    assert card.class_names == list(TINY_CLASSES)
    # the loss's class weights are in the card, so inference can undo their shift of the boundaries
    state = json.loads((out / "checkpoints" / "last_state.json").read_text())
    recorded = card.training_recipe["class_weights"]
    assert list(recorded) == list(TINY_CLASSES)
    assert np.allclose(list(recorded.values()), state["class_weights"])
    assert card.task == "ct_segmentation" and card.config["features"] == [4, 8, 16]
    assert card.input["patch_size"] == [16, 32, 32] and card.input["intensity"]["clip_low_hu"] == -1000
    assert card.training_recipe["learning_rate"] == 5e-4 and card.training_recipe["optimizer"] == "Adam"
    assert card.metrics["best_validation"]["iteration"] == result.best_iteration
    load_state_dict(out / "model.safetensors")  # verifies the checksum
    tsv = (out / "metrics.tsv").read_text().splitlines()
    assert tsv[0].startswith("iteration\ttrain_loss\tval_mean_dice\tdice_L5")
    assert [row.split("\t")[0] for row in tsv[1:]] == ["30", "60"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_mean_dice"] == pytest.approx(result.best_mean_dice)
    assert "validation mean Dice" in (out / "train.log").read_text()


def test_resume_continues_from_the_saved_iteration(dataset: Path, tmp_path: Path):
    out = tmp_path / "run"
    first = train_segmentation(dataset, out, TrainConfig(**TINY, iterations=20, val_every=10), progress=False)
    assert first.iterations_done == 20
    state = json.loads((out / "checkpoints" / "last_state.json").read_text())
    assert state["iteration"] == 20
    # "interrupted" run picked up with a higher iteration budget: only the remaining 10 are run
    resumed = train_segmentation(
        dataset, out, TrainConfig(**TINY, iterations=30, val_every=10), resume=True, progress=False
    )
    assert len(resumed.losses) == 10
    assert [h["iteration"] for h in resumed.history] == [10, 20, 30]
    assert json.loads((out / "checkpoints" / "last_state.json").read_text())["iteration"] == 30
    assert (out / "train.log").read_text().count("resumed run") == 1


def test_interrupted_and_resumed_run_matches_an_uninterrupted_one(dataset: Path, tmp_path: Path):
    straight = train_segmentation(
        dataset, tmp_path / "straight", TrainConfig(**TINY, iterations=14, val_every=10), progress=False
    )
    interrupted = tmp_path / "interrupted"
    first = train_segmentation(
        dataset, interrupted, TrainConfig(**TINY, iterations=10, val_every=10), progress=False
    )
    rest = train_segmentation(
        dataset, interrupted, TrainConfig(**TINY, iterations=14, val_every=10), resume=True, progress=False
    )
    assert np.allclose(first.losses + rest.losses, straight.losses, rtol=1e-4, atol=1e-5)


def test_new_run_refuses_a_used_folder_and_resume_needs_a_checkpoint(dataset: Path, tmp_path: Path):
    out = tmp_path / "used"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        train_segmentation(dataset, out, TrainConfig(**TINY, iterations=1), progress=False)
    with pytest.raises(InputError, match="Nothing to resume"):
        train_segmentation(dataset, tmp_path / "empty", TrainConfig(**TINY, iterations=1), resume=True)
    assert (out / "keep.txt").read_text() == "mine"


def test_invalid_settings_are_refused(dataset: Path, tmp_path: Path):
    with pytest.raises(InputError, match="not divisible by 4"):
        train_segmentation(dataset, tmp_path / "a", TrainConfig(**{**TINY, "patch_size": (18, 32, 32)}))
    with pytest.raises(InputError, match="class-weighting"):
        train_segmentation(dataset, tmp_path / "b", TrainConfig(**TINY, class_weighting="median"))


def test_class_weights_are_inverse_frequency_capped_and_normalised():
    f = np.array([0.90, 0.08, 0.02, 0.0])
    w = class_weights(f, "inverse", max_ratio=1000)
    assert w[1] / w[0] == pytest.approx(0.90 / 0.08, rel=1e-5)
    assert w[2] / w[1] == pytest.approx(4.0, rel=1e-5)
    assert float((f * w).sum()) == pytest.approx(1.0, rel=1e-5)
    assert w[3] == pytest.approx(w[:3].max())  # an unseen class gets the largest weight
    capped = class_weights(f, "inverse", max_ratio=10)
    assert capped.max() / capped.min() == pytest.approx(10, rel=1e-5)
    sq = class_weights(f, "sqrt-inverse", max_ratio=1000)
    assert sq[2] / sq[1] == pytest.approx(2.0, rel=1e-5)
    assert np.all(class_weights(f, "none") == 1)


def test_init_weights_start_the_network_from_a_previous_run(dataset: Path, tmp_path: Path):
    first = train_segmentation(dataset, tmp_path / "a", TrainConfig(**TINY, iterations=10, val_every=10))
    weights = first.weights_path
    assert weights is not None
    started = load_state_dict(weights)
    # zero iterations of training are not allowed; one step at a tiny learning rate barely moves the weights
    second = train_segmentation(
        dataset,
        tmp_path / "b",
        TrainConfig(**TINY, iterations=1, val_every=1, learning_rate=1e-9, init_weights=str(weights)),
        progress=False,
    )
    assert second.weights_path is not None
    after = load_state_dict(second.weights_path)
    conv = next(k for k, v in started.items() if v.ndim == 5)  # the first 3D convolution kernel
    assert np.allclose(after[conv].numpy(), started[conv].numpy(), atol=1e-3)
    fresh = train_segmentation(
        dataset, tmp_path / "c", TrainConfig(**{**TINY, "seed": 5}, iterations=1, val_every=1), progress=False
    )
    assert not np.allclose(
        load_state_dict(fresh.weights_path)[conv].numpy(), started[conv].numpy(), atol=1e-3
    )
    assert "initialised from" in (tmp_path / "b" / "train.log").read_text()


def test_init_weights_of_another_shape_are_refused_by_name(dataset: Path, tmp_path: Path):
    first = train_segmentation(dataset, tmp_path / "a", TrainConfig(**TINY, iterations=1, val_every=1))
    wider = {**TINY, "features": (8, 16, 32)}
    with pytest.raises(InputError, match="do not fit this run"):
        train_segmentation(
            dataset, tmp_path / "b", TrainConfig(**wider, iterations=1, init_weights=str(first.weights_path))
        )
    with pytest.raises(InputError, match="do not exist"):
        train_segmentation(
            dataset, tmp_path / "c", TrainConfig(**TINY, iterations=1, init_weights=str(tmp_path / "none"))
        )


def test_time_limit_stops_at_a_validation_and_resume_finishes(dataset: Path, tmp_path: Path):
    out = tmp_path / "run"
    # a limit of a few milliseconds is passed by the first validation
    stopped = train_segmentation(
        dataset, out, TrainConfig(**TINY, iterations=30, val_every=5, max_minutes=1e-5), progress=False
    )
    assert stopped.iterations_done == 5
    assert json.loads((out / "checkpoints" / "last_state.json").read_text())["iteration"] == 5
    assert "stopped (resume to continue)" in (out / "train.log").read_text()
    finished = train_segmentation(
        dataset, out, TrainConfig(**TINY, iterations=30, val_every=5), resume=True, progress=False
    )
    assert finished.iterations_done == 30
    assert [h["iteration"] for h in finished.history] == [5, 10, 15, 20, 25, 30]
