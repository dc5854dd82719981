"""The shipped sagittal grader: its card, its verified loading, and its figures reproduced on SPIDER.

The reproduction test grades the held-out test patients of the card's own split in
``../shared/data/spider_sagittal_t2`` exactly as ``spineai evaluate sagittal`` does and compares every
figure with the card (skipped when the data is absent).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spineai.errors import WeightsError
from spineai.grading.datasets import PatientSplit
from spineai.grading.model import ARCHITECTURE, MODEL_NAME, TASK, load_grading_model
from spineai.weights import INTENDED_USE, load_model_card, model_weights_path

REPO_ROOT = Path(__file__).resolve().parents[1]
SPIDER = REPO_ROOT.parent / "shared" / "data" / "spider_sagittal_t2"
TOLERANCE = 0.02  # figures are deterministic on one machine; this absorbs float differences between CPUs


def test_card_describes_training_data_split_and_use():
    card = load_model_card(MODEL_NAME)
    assert card.task == TASK and card.architecture == ARCHITECTURE
    assert card.intended_use == INTENDED_USE == "research use only, not for clinical decisions"
    assert "CC BY 4.0" in card.training_data["licence"] and "SPIDER" in card.training_data["dataset"]
    split = PatientSplit.from_dict(card.extra["split"])
    train, val, test = set(split.train), set(split.val), set(split.test)
    assert train and val and test
    assert not (train & test) and not (train & val) and not (val & test)  # split by patient
    assert card.extra["weights_dtype"] == "float16"
    weights = model_weights_path(MODEL_NAME)
    assert weights.is_file() and weights.stat().st_size < 10_000_000
    for key in ("pfirrmann", "modic"):
        assert "balanced_accuracy" in card.metrics["test"]["gradings"][key]


def test_tampered_weights_are_refused(tmp_path):
    src = model_weights_path(MODEL_NAME)
    shutil.copy(src, tmp_path / src.name)
    shutil.copy(src.with_suffix(".json"), tmp_path / src.with_suffix(".json").name)
    data = bytearray((tmp_path / src.name).read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / src.name).write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match its model card"):
        load_grading_model(tmp_path / src.name)
    model, card = load_grading_model()
    assert not model.training and card.name == MODEL_NAME


def test_shipped_weights_reproduce_their_card_on_the_held_out_patients():
    if not SPIDER.is_dir():
        pytest.skip(f"public SPIDER subset not found at {SPIDER} (it sits beside the repository in CI)")
    from spineai.grading.evaluation import evaluate_sagittal

    card = load_model_card(MODEL_NAME)
    expected = card.metrics["test"]
    report = evaluate_sagittal(SPIDER, split="test", stored_orientation="caudal_top", progress=False)
    assert report["patients"] == expected["patients"] == len(card.extra["split"]["test"])
    assert abs(report["matched_discs"] - expected["matched_discs"]) <= 2
    assert report["coverage"] == pytest.approx(expected["coverage"], abs=TOLERANCE)
    for key, want in expected["gradings"].items():
        got = report["gradings"][key]
        for figure in ("accuracy", "balanced_accuracy", "kappa", "kappa_linear"):
            if want.get(figure) is None:
                continue
            assert got[figure] == pytest.approx(want[figure], abs=TOLERANCE), (key, figure)
        assert got["ac1"]["ac1"] == pytest.approx(want["ac1"]["ac1"], abs=TOLERANCE), key
    dich = report["gradings"]["pfirrmann"]["dichotomous"]["auc"]
    assert dich["auc"] == pytest.approx(
        expected["gradings"]["pfirrmann"]["dichotomous"]["auc"]["auc"], abs=TOLERANCE
    )
    loc, want_loc = report["localisation"], expected["localisation"]
    assert loc["detection_rate"] == pytest.approx(want_loc["detection_rate"], abs=TOLERANCE)
    assert loc["error_mm_median"] == pytest.approx(want_loc["error_mm_median"], abs=0.3)
    assert loc["level_naming_accuracy"] == pytest.approx(want_loc["level_naming_accuracy"], abs=TOLERANCE)
