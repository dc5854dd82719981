"""The shipped radiograph demo ensemble: verified fp16 weights under 25 MB, an honest card, default use."""

from __future__ import annotations

import numpy as np
import pytest

from spineai.cli import main
from spineai.radiograph.network import ARCHITECTURE, LEVELS, TASK
from spineai.radiograph.predict import DEFAULT_MODEL, load_radiograph_model, read_radiograph
from spineai.weights import MODELS_DIR, file_sha256, load_card

WEIGHTS = MODELS_DIR / f"{DEFAULT_MODEL}.safetensors"
pytestmark = [
    pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"shipped radiograph weights absent ({WEIGHTS})"),
    pytest.mark.usefixtures("one_torch_thread"),
]


def test_card_is_honest_and_matches_the_file():
    card = load_card(WEIGHTS)
    assert (
        card.name == DEFAULT_MODEL == "radiograph_demo"
        and card.task == TASK
        and card.architecture == ARCHITECTURE
    )
    assert WEIGHTS.stat().st_size <= 25 * 1024 * 1024 and card.extra["weights_dtype"] == "float16"
    assert card.sha256 == file_sha256(WEIGHTS)
    assert card.class_names == list(LEVELS) and card.config["n_members"] == 4
    assert (
        card.training_data["kind"] == "SYNTHETIC"
        and "not a clinical model" in card.training_data["statement"]
    )
    assert "B5" in card.extra["why_not_the_papers_network"]
    test = card.metrics["test"]
    assert test["n_patients"] >= 20 and set(test["per_level"]) == set(LEVELS)
    for entry in test["per_level"].values():
        assert {"precision", "recall", "f1", "auc", "threshold"} <= set(entry)
    assert len(card.metrics["cross_validation_folds"]) == 4
    assert card.metrics["paper"]["per_level"]["L5-S1"]["auc"] == 0.72


def test_default_model_reads_a_phantom_radiograph(tmp_path, capsys):
    from spineai.radiograph.phantom import render_radiograph_patient

    model = load_radiograph_model()
    assert len(model.ensemble.members) == 4 and model.image_size == 128
    case = render_radiograph_patient(2, views=("lateral",), image_px=128, spacing_mm=4.0)
    res = read_radiograph(case.images["lateral"], weights=model)
    assert list(res.probabilities) == list(LEVELS) and len(res.member_probabilities) == 4
    assert res.heatmap.GetSize() == (128, 128) and np.isfinite(list(res.probabilities.values())).all()
    assert any("synthetic" in w for w in res.warnings)
    png = tmp_path / "lateral.png"
    from PIL import Image

    Image.fromarray(case.images["lateral"]).save(png)
    assert main(["radiograph", str(png), "-o", str(tmp_path / "out")]) == 0
    assert "radiograph_demo" in (tmp_path / "out" / "radiograph.json").read_text()
    capsys.readouterr()
