"""The shipped outcome demo model: verified weights, an honest card, default use, and learned behaviour.

The behavioural test uses phantom twins (same seed: same anatomy, pose and imaging) that differ only in the
foraminal stenosis grade at the symptomatic level and side, the finding that drives the outcome label in
the cohort's generative model: the model must lower P(good outcome), and the Grad-CAM evidence for a poor
outcome that the stenosis adds must lie at that level and on that side.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from spineai.cli import main
from spineai.outcome.data import COHORT_RENDER
from spineai.outcome.mri_phantom import generate_sagittal_t2
from spineai.outcome.network import ARCHITECTURE, TASK
from spineai.outcome.predict import DEFAULT_MODEL, load_outcome_model, predict_outcome
from spineai.weights import MODELS_DIR, file_sha256, load_card

WEIGHTS = MODELS_DIR / f"{DEFAULT_MODEL}.safetensors"
pytestmark = [
    pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"shipped outcome weights absent ({WEIGHTS})"),
    pytest.mark.usefixtures("one_torch_thread"),
]


@pytest.fixture(scope="module")
def model():
    return load_outcome_model()


def test_card_is_honest_and_matches_the_file(model):
    card = load_card(WEIGHTS)
    assert card.name == DEFAULT_MODEL == "outcome_demo"
    assert card.task == TASK and card.architecture == ARCHITECTURE
    assert card.sha256 == file_sha256(WEIGHTS) and card.extra["weights_dtype"] == "float16"
    assert (
        card.training_data["kind"] == "SYNTHETIC"
        and "not a clinical model" in card.training_data["statement"]
    )
    assert "research use only" in card.intended_use
    test = card.metrics["test"]
    assert test["n"] >= 100 and 0.5 < test["auc"]["auc"] <= 1.0 and test["auc"]["ci_low"] < test["auc"]["auc"]
    assert card.metrics["paper"]["validation_auc"] == 0.827
    assert 0.7 < card.metrics["generative_ceiling"]["expected_auc"] < 0.85
    assert model.threshold == pytest.approx(card.extra["decision_threshold"])
    assert "train_outcome_demo.py" in card.extra["training_command"]


def _twin(seed: int, grade: str):
    path = {
        "L5-S1": {
            "foraminal_stenosis": {"left": grade},
            "herniation": {"type": "none"},
            "central_stenosis": "none",
        }
    }
    return generate_sagittal_t2(
        seed, pathology=path, symptomatic={"level": "L5-S1", "side": "left"}, **COHORT_RENDER
    )


@pytest.mark.parametrize("seed", [3])
def test_severe_foraminal_stenosis_lowers_p_good_and_draws_the_heat_there(model, seed):
    normal, stenotic = _twin(seed, "none"), _twin(seed, "severe")
    assert stenotic.truth["outcome"]["p_good"] < normal.truth["outcome"]["p_good"]
    r0 = predict_outcome(normal.image, weights=model, gradcam_class="poor")
    r1 = predict_outcome(stenotic.image, weights=model, gradcam_class="poor")
    assert r1.probability_good < r0.probability_good - 0.05
    added = sitk.GetArrayFromImage(r1.heatmap) - sitk.GetArrayFromImage(r0.heatmap)
    k = np.unravel_index(int(np.argmax(added)), added.shape)
    peak = np.asarray(r1.heatmap.TransformIndexToPhysicalPoint(tuple(int(v) for v in k[::-1])))
    foramen = np.asarray(stenotic.truth["geometry"]["foramina"]["L5-S1"]["left"]["centre_lps"])
    assert abs(peak[2] - foramen[2]) <= 13.0  # the L5-S1 level (one conv4 cell is 12.5 mm high)
    assert peak[0] > r1.roi["midline_x_mm"]  # the patient's left (+x in LPS), the stenotic side


def test_cli_uses_the_shipped_model_by_default(tmp_path, capsys):
    case = generate_sagittal_t2(4, **COHORT_RENDER)
    image = tmp_path / "t2.nii.gz"
    sitk.WriteImage(case.image, str(image))
    assert main(["outcome", str(image), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "model outcome_demo" in out
    assert (tmp_path / "out" / "gradcam.nii.gz").is_file() and (
        tmp_path / "out" / "gradcam_overlay.png"
    ).is_file()
