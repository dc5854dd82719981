"""Synthetic sagittal T2 phantom and the cohort's generative outcome model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from spineai import anatomy
from spineai.errors import InputError
from spineai.outcome.mri_phantom import (
    FORAMINAL_GRADES,
    OUTCOME_MODEL,
    bayes_ceiling_auc,
    generate_sagittal_t2,
    outcome_probability,
    sample_case,
    write_sagittal_case,
)

FAST = {"spacing_mm": (4.0, 1.5, 1.5), "slice_subsamples": 2, "noise": False}


def _lps_points(img: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Values [z, y, x] of the LPS-reoriented image and the LPS coordinates of every voxel (..., 3)."""
    lps = sitk.DICOMOrient(img, "LPS")
    a = sitk.GetArrayFromImage(lps).astype(float)
    sp, org = np.array(lps.GetSpacing()), np.array(lps.GetOrigin())
    z, y, x = np.meshgrid(*(np.arange(n) for n in a.shape), indexing="ij")
    pts = np.stack([x * sp[0] + org[0], y * sp[1] + org[1], z * sp[2] + org[2]], axis=-1)
    return a, pts


def _region_mean(case, centre, half_xyz) -> float:
    a, pts = _lps_points(case.image)
    d = np.abs(pts - np.asarray(centre)) <= np.asarray(half_xyz)
    return float(a[d.all(axis=-1)].mean())


def test_same_seed_same_volume_and_truth():
    a = generate_sagittal_t2(11, **FAST)
    b = generate_sagittal_t2(11, **FAST)
    c = generate_sagittal_t2(12, **FAST)
    assert np.array_equal(sitk.GetArrayFromImage(a.image), sitk.GetArrayFromImage(b.image))
    assert json.dumps(a.truth, sort_keys=True) == json.dumps(b.truth, sort_keys=True)
    assert not np.array_equal(sitk.GetArrayFromImage(a.image), sitk.GetArrayFromImage(c.image))


def test_volume_is_a_sagittal_t2_series_with_canonical_labels():
    case = generate_sagittal_t2(3)
    img = case.image
    assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(img.GetDirection()) == "PIR"
    assert img.GetSpacing() == pytest.approx((0.9, 0.9, 4.0))
    assert img.GetSize()[2] == 15 and img.GetPixelID() == sitk.sitkInt16
    a = sitk.GetArrayFromImage(img)
    assert a.min() >= 0 and np.percentile(a, 99) > 300  # MR magnitude, not Hounsfield units
    present = set(np.unique(sitk.GetArrayFromImage(case.labels)))
    for name in (
        "L3",
        "L4",
        "L5",
        "S1",
        "disc_L4_L5",
        "disc_L5_S1",
        "dural_sac",
        "root_L5_left",
        "root_L4_right",
    ):
        assert anatomy.BY_NAME[name].label in present, name
    # CSF brighter than marrow, marrow brighter than muscle (fast spin-echo T2)
    lab = sitk.GetArrayFromImage(case.labels)
    csf = np.median(a[lab == anatomy.BY_NAME["dural_sac"].label])
    marrow = np.median(a[lab == anatomy.BY_NAME["L3"].label])
    assert csf > 1.5 * marrow


def test_foraminal_grades_obliterate_the_foraminal_fat_in_order():
    means = []
    for grade in FORAMINAL_GRADES:
        case = generate_sagittal_t2(
            21, normal=True, pathology={"L5-S1": {"foraminal_stenosis": {"left": grade}}}, **FAST
        )
        f = case.truth["geometry"]["foramina"]["L5-S1"]["left"]
        assert f["grade"] == grade
        means.append(_region_mean(case, f["centre_lps"], (4.0, 3.0, 5.0)))
        other = case.truth["geometry"]["foramina"]["L5-S1"]["right"]
        assert other["grade"] == "none"
    assert means[0] > means[1] > means[2] > means[3], means
    assert means[3] < 0.6 * means[0]


def test_central_stenosis_narrows_the_dural_sac_at_the_disc():
    sac = anatomy.BY_NAME["dural_sac"].label
    counts = []
    for grade in ("none", "moderate", "severe"):
        case = generate_sagittal_t2(22, normal=True, pathology={"L4-L5": {"central_stenosis": grade}}, **FAST)
        geo = case.truth["geometry"]["discs"]["L4-L5"]
        lab, pts = _lps_points(case.labels)
        near = np.abs((pts - np.asarray(geo["centre_lps"])) @ np.asarray(geo["up"])) < 4.0  # the disc's level
        counts.append(int(np.sum((lab == sac) & near)))
    assert counts[0] > counts[1] > counts[2] and counts[2] < 0.6 * counts[0], counts


def test_herniation_types_reach_further_into_the_canal():
    level = "L5-S1"
    upper, lower = level.split("-")
    disc = anatomy.BY_NAME[f"disc_{upper}_{lower}"].label
    reach = []
    for htype in ("none", "bulge", "protrusion", "extrusion"):
        h = {"type": htype, "position": "central", "side": None}
        case = generate_sagittal_t2(23, normal=True, pathology={level: {"herniation": h}}, **FAST)
        geo = case.truth["geometry"]["discs"][level]
        lab, pts = _lps_points(case.labels)
        up = np.asarray(geo["up"])
        back = np.cross(up, [1.0, 0.0, 0.0])  # posterior direction in the sagittal plane
        back = back if back[1] > 0 else -back
        d = (pts[lab == disc] - np.asarray(geo["centre_lps"])) @ back
        reach.append(float(d.max()))
    assert reach[0] < reach[1] < reach[2] < reach[3], reach
    assert reach[3] - reach[0] > 6.0


def test_degeneration_darkens_and_thins_the_disc():
    bright = generate_sagittal_t2(24, normal=True, pathology={"L4-L5": {"pfirrmann": 1}}, **FAST)
    dark = generate_sagittal_t2(24, normal=True, pathology={"L4-L5": {"pfirrmann": 5}}, **FAST)
    gb, gd = bright.truth["geometry"]["discs"]["L4-L5"], dark.truth["geometry"]["discs"]["L4-L5"]
    assert gd["height_mm"] < 0.5 * gb["height_mm"]
    assert _region_mean(dark, gd["centre_lps"], (3.0, 4.0, 1.0)) < 0.5 * _region_mean(
        bright, gb["centre_lps"], (3.0, 4.0, 1.0)
    )


def test_pathology_override_keeps_anatomy_and_pose():
    a = sample_case(30)
    b = sample_case(30, pathology={"L5-S1": {"foraminal_stenosis": {"right": "severe"}}})
    assert a["anatomy"] == b["anatomy"] and a["pose"] == b["pose"]
    assert b["pathology"]["L5-S1"]["foraminal_stenosis"]["right"] == "severe"
    with pytest.raises(InputError, match="foraminal grade"):
        sample_case(30, pathology={"L5-S1": {"foraminal_stenosis": {"left": "terrible"}}})
    with pytest.raises(InputError, match="level"):
        sample_case(30, pathology={"L7-L8": {"pfirrmann": 2}})


def test_outcome_model_numbers_are_the_documented_ones():
    assert outcome_probability("mild", "protrusion", "none") == pytest.approx(0.871)
    assert outcome_probability("moderate", "bulge", "mild") == pytest.approx(0.871)
    assert outcome_probability("severe", "none", "none") == pytest.approx(0.423)
    assert outcome_probability("none", "extrusion", "none") == pytest.approx(0.871 * 0.65)
    assert outcome_probability("severe", "extrusion", "severe") == pytest.approx(0.423 * 0.65 * 0.5)
    assert OUTCOME_MODEL["root_level_weights"] == {"L2": 4, "L3": 18, "L4": 65, "L5": 324, "S1": 92}
    with pytest.raises(InputError):
        outcome_probability("grade 3", "none", "none")


def test_sampled_outcomes_follow_p_good_and_the_nrs_definition():
    cases = [sample_case(s) for s in range(2000)]
    p = np.array([c["outcome"]["p_good"] for c in cases])
    y = np.array([c["outcome"]["label"] for c in cases])
    se = np.sqrt(np.sum(p * (1 - p))) / len(p)
    assert abs(y.mean() - p.mean()) < 3.5 * se
    for c in cases:
        o = c["outcome"]
        assert 4 <= o["nrs_pre"] <= 10 and 0 <= o["nrs_post_2_months"] <= 10
        assert ((o["nrs_pre"] - o["nrs_post_2_months"]) / o["nrs_pre"] >= 0.5) == o["good_outcome"]
        sym = c["pathology"][c["patient"]["level"]]
        assert o["p_good"] == pytest.approx(
            outcome_probability(
                sym["foraminal_stenosis"][c["patient"]["side"]],
                sym["herniation"]["type"],
                sym["central_stenosis"],
            )
        )
    levels = [c["patient"]["level"] for c in cases]
    assert levels.count("L5-S1") / len(levels) == pytest.approx(416 / 503, abs=0.03)


def test_bayes_ceiling_auc_hand_example_and_realised_value():
    # p = (0.8, 0.2): positives weigh 0.8 and 0.2, negatives 0.2 and 0.8.
    # concordant 0.8*0.8 = 0.64, ties (0.8*0.2 + 0.2*0.8)/2 = 0.16 -> AUC 0.80
    assert bayes_ceiling_auc([0.8, 0.2]) == pytest.approx(0.8)
    assert bayes_ceiling_auc([0.5, 0.5, 0.5]) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    p = rng.choice([0.871, 0.423, 0.2], size=20000, p=[0.5, 0.3, 0.2])
    y = rng.random(p.size) < p
    assert bayes_ceiling_auc(p, y) == pytest.approx(bayes_ceiling_auc(p), abs=0.01)


def test_write_case_refuses_to_overwrite(tmp_path):
    case = generate_sagittal_t2(5, **FAST)
    paths = write_sagittal_case(case, tmp_path / "case")
    assert {"image", "labels", "labels_json", "truth"} <= set(paths)
    truth = json.loads(paths["truth"].read_text())
    assert truth["outcome"]["label"] in (0, 1) and truth["grid"]["orientation"] == "PIR"
    with pytest.raises(FileExistsError):
        write_sagittal_case(case, tmp_path / "case")
