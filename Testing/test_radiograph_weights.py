"""The shipped radiograph model (disc locator + per-level reader): verified fp16 weights, an honest card, default use."""

from __future__ import annotations

import numpy as np
import pytest

from spineai.cli import main
from spineai.radiograph.network import LEVELS, TASK
from spineai.radiograph.predict import DEFAULT_MODEL, load_radiograph_model, read_radiograph
from spineai.radiograph.reader import DISC_ARCHITECTURE
from spineai.weights import MODELS_DIR, file_sha256, load_card

WEIGHTS = MODELS_DIR / f"{DEFAULT_MODEL}.safetensors"
pytestmark = [
    pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"shipped radiograph weights absent ({WEIGHTS})"),
    pytest.mark.usefixtures("one_torch_thread"),
]


def _true_centres(case, view: str) -> np.ndarray:
    from spineai.radiograph.discs import project_disc_centres

    g = case.truth["image"]
    return project_disc_centres(
        case.truth["disc_centres_lps_mm"], view, g["centre_lps_mm"], g["pixel_mm"], g["image_px"]
    )


def test_card_is_honest_and_matches_the_file():
    card = load_card(WEIGHTS)
    assert card.name == DEFAULT_MODEL == "radiograph_hnp_demo" and card.task == TASK
    assert card.architecture == DISC_ARCHITECTURE and card.config["design"] == "disc-crops"
    assert WEIGHTS.stat().st_size <= 5 * 1024 * 1024 and card.extra["weights_dtype"] == "float16"
    assert card.sha256 == file_sha256(WEIGHTS)
    assert card.class_names == list(LEVELS) and card.config["n_members"] == 4
    assert card.training_data["kind"] == "SYNTHETIC"
    assert "not a clinical model" in card.training_data["statement"]
    assert "departs from the seed paper" in card.extra["departure_from_the_paper"]
    assert (
        "whole" in card.extra["departure_from_the_paper"]
        and "chance" in card.extra["departure_from_the_paper"]
    )
    assert (
        card.input["image_size"] == [card.config["locator_size"]] * 2
        and "around each disc" in card.input["reader_crops"]
    )
    test = card.metrics["test"]
    assert test["n_patients"] >= 50 and set(test["per_level"]) == set(LEVELS)
    for entry in test["per_level"].values():
        assert {"precision", "recall", "f1", "auc", "threshold"} <= set(entry)
        assert entry["auc"]["auc"] > 0.6  # installed only when clearly above chance
    assert len(card.metrics["cross_validation_folds"]) == 4
    assert card.metrics["locator_held_out_error"]["lateral"]["median_mm"] < 5.0
    assert card.metrics["paper"]["per_level"]["L5-S1"]["auc"] == 0.72


def test_default_model_locates_and_reads_a_phantom_radiograph(tmp_path, capsys):
    from PIL import Image

    from spineai.radiograph.phantom import render_radiograph_patient

    model = load_radiograph_model()
    assert model.design == "disc-crops" and len(model.ensemble.members) == 4
    case = render_radiograph_patient(2, views=("lateral",), image_px=160, spacing_mm=2.5)
    res = read_radiograph(case.images["lateral"], weights=model, pixel_mm=case.pixel_mm)
    assert list(res.probabilities) == list(LEVELS) and np.isfinite(list(res.probabilities.values())).all()
    located = np.array([[d["row"], d["column"]] for d in res.discs])
    error_mm = np.linalg.norm(located - _true_centres(case, "lateral"), axis=1) * case.pixel_mm
    assert np.all(np.diff(located[:, 0]) > 0) and np.median(error_mm) < 5.0
    assert res.heatmap.GetSize() == (160, 160) and any("synthetic" in w for w in res.warnings)
    png = tmp_path / "lateral.png"
    Image.fromarray(case.images["lateral"]).save(png)
    assert main(["radiograph", str(png), "-o", str(tmp_path / "out")]) == 0
    assert "disc at x" in capsys.readouterr().out
    assert DEFAULT_MODEL in (tmp_path / "out" / "radiograph.json").read_text()


@pytest.mark.slow
def test_shipped_model_beats_chance_on_new_phantom_patients():
    """Twelve patients never seen in training (seeds 300000..), two views each: herniated discs read higher."""
    from sklearn.metrics import roc_auc_score

    from spineai.radiograph.phantom import render_radiograph_patient

    model = load_radiograph_model()
    probs, labels, errors = [], [], []
    for seed in range(300_000, 300_012):
        case = render_radiograph_patient(seed, views=("lateral", "ap"))
        per_view = []
        for view in ("lateral", "ap"):
            res = read_radiograph(case.images[view], weights=model, gradcam=False)
            per_view.append([res.probabilities[lv] for lv in LEVELS])
            located = np.array([[d["row"], d["column"]] for d in res.discs])
            errors.append(np.linalg.norm(located - _true_centres(case, view), axis=1) * case.pixel_mm)
        probs.append(np.mean(per_view, axis=0))
        labels.append(case.labels())
    y, p = np.ravel(labels), np.ravel(probs)
    assert np.median(errors) < 5.0
    assert (
        roc_auc_score(y, p) > 0.6
    )  # all levels pooled (60 discs); the card's per-level test AUCs are higher
