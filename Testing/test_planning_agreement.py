"""Agreement of triangle areas measured on a segmentation and on reference masks (the paper's validation)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from spineai.planning.agreement import icc, paired_agreement

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges; published ICC(2,1) = .29, ICC(3,1) = .71
SHROUT_FLEISS = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]


def test_icc_reproduces_shrout_and_fleiss_table():
    out = icc(SHROUT_FLEISS)
    assert out["icc2_1"] == pytest.approx(0.29, abs=0.005)
    assert out["icc3_1"] == pytest.approx(0.71, abs=0.005)
    for key in ("icc2_1", "icc3_1"):
        lo, hi = out[f"{key}_ci"]
        assert lo < out[key] < hi


def test_icc_is_one_for_identical_methods_and_low_for_unrelated_ones():
    rng = np.random.default_rng(0)
    x = rng.normal(30, 10, 40)
    assert icc(np.stack([x, x], 1))["icc2_1"] == pytest.approx(1.0)
    assert icc(np.stack([x, rng.permutation(x)], 1))["icc2_1"] < 0.5


def test_paired_t_test_matches_hand_computation():
    measured = [10.0, 12.0, 9.0, 15.0, 11.0]
    reference = [9.0, 12.5, 8.0, 13.0, 10.0]
    d = np.subtract(measured, reference)
    t_hand = d.mean() / (d.std(ddof=1) / np.sqrt(d.size))
    out = paired_agreement(measured, reference)
    assert out["paired_t"]["t"] == pytest.approx(t_hand)
    assert 0 < out["paired_t"]["p"] < 1
    assert out["bland_altman"]["bias"] == pytest.approx(d.mean())
    assert out["measured"]["mean"] == pytest.approx(11.4)
    assert out["reference"]["sd"] == pytest.approx(np.std(reference, ddof=1))


def test_paired_agreement_refuses_unpaired_lengths():
    with pytest.raises(ValueError, match="one length"):
        paired_agreement([1.0, 2.0], [1.0])


@pytest.mark.slow
def test_agreement_pairs_every_triangle_and_a_perfect_model_agrees_exactly(tmp_path, monkeypatch):
    """With a model that returns the reference masks, every foramen pairs and the areas agree exactly."""
    from spineai.cli import main
    from spineai.io import read_labelmap
    from spineai.phantom import generate_ct_phantom, write_phantom_case
    from spineai.segmentation import inference

    data = tmp_path / "cases"
    for seed in (11, 12):
        case = generate_ct_phantom(seed=seed, progress=False, fov_levels=("L4", "L5", "S1"))
        write_phantom_case(case, data / f"case_{seed}")

    def perfect_segment(image, model=None, **kwargs):  # the case's reference masks (image: its CT path)
        return SimpleNamespace(labels=read_labelmap(image.parent / "labels.nii.gz").canonical().image)

    card = SimpleNamespace(name="perfect", sha256="0" * 64)
    monkeypatch.setattr(inference, "segment", perfect_segment)
    monkeypatch.setattr(
        inference, "load_segmentation_model", lambda weights, device: SimpleNamespace(card=card)
    )
    out = tmp_path / "agreement.json"
    assert main(["evaluate", "triangles", "--data", str(data), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert len(report["pairs"]) == 2 * 2 * 2 * 2  # cases x levels x sides x kinds
    for kind in ("kambin", "safe"):
        s = report["summary"][kind]
        assert s["n"] == 8
        assert s["measured"]["mean"] == pytest.approx(s["reference"]["mean"])
        assert s["icc"]["icc2_1"] == pytest.approx(1.0)
        assert s["paired_t"] is None  # identical pairs: no test to run
    assert report["paper"]["kambin"]["icc"] == 0.98
