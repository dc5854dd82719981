"""Axial T2 phantom: every grade's defining geometry holds on the rendered masks, boxes, slab, dataset.

Measurements are taken on the rendered image grid (LPS positions of pixels), not read back from the
generator's own numbers, so a rendering that does not show what the truth says fails here.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from spineai.errors import InputError
from spineai.grading.axial.grades import REGIONS, parse_grade
from spineai.grading.axial.phantom import LDH_BANDS, design_axial_case, generate_axial_t2, write_axial_dataset

FINE = {"spacing_mm": 0.3, "fov_mm": 100.0, "noise": 0.0}


def _lps_grid(case) -> tuple[np.ndarray, np.ndarray]:
    img = case.image
    ox, oy = img.GetOrigin()[:2]
    s = img.GetSpacing()[0]
    rows, cols = case.masks["disc"].shape
    jj, ii = np.mgrid[0:rows, 0:cols]
    return ox + ii * s, oy + jj * s


def _frame(case) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Midline disc-margin point, unit vector along the intra-facet line (to the left), posterior normal."""
    t = case.truth
    left = np.array(t["intra_facet_line_mm"]["left_edge"])
    right = np.array(t["intra_facet_line_mm"]["right_edge"])
    along = (left - right) / np.linalg.norm(left - right)
    posterior = np.array([-along[1], along[0]])
    return np.array(t["disc_margin_midline_mm"]), along, posterior


def _posterior_extent(case, mask: np.ndarray) -> float:
    x, y = _lps_grid(case)
    origin, _along, post = _frame(case)
    d = (x - origin[0]) * post[0] + (y - origin[1]) * post[1]
    return float(d[mask].max()) if mask.any() else 0.0


@pytest.mark.parametrize("grade", [0, 1, 2, 3])
def test_ldh_grade_is_the_herniation_extent_against_the_intra_facet_line(grade):
    case = generate_axial_t2(40 + grade, ldh=grade, **FINE)
    assert case.truth["grades"]["ldh"] == grade
    origin, along, post = _frame(case)
    left = np.array(case.truth["intra_facet_line_mm"]["left_edge"])
    line_distance = float((left - origin) @ post)
    assert line_distance == pytest.approx(
        case.truth["intra_facet_line_mm"]["distance_from_disc_mm"], abs=1e-6
    )
    herniation = case.masks.get("herniation", np.zeros_like(case.masks["disc"]))
    extent = _posterior_extent(case, herniation)
    ratio = extent / line_distance
    if grade == 0:
        assert not herniation.any()
        # the disc itself does not cross its posterior margin
        assert _posterior_extent(case, case.masks["disc"]) <= 0.3
    else:
        lo, hi = LDH_BANDS[grade]
        assert lo - 0.04 <= ratio <= hi + 0.04
        assert (ratio < 0.5) == (grade == 1)
        assert (ratio > 1.0) == (grade == 3)


@pytest.mark.parametrize("grade", [0, 1, 2, 3])
def test_lccs_grade_follows_root_separation_and_csf(grade):
    case = generate_axial_t2(60 + grade, lccs=grade, **FINE)
    m = case.truth["measurements"]["lccs"]
    assert case.truth["grades"]["lccs"] == grade == case.truth["stenosis"]["central_canal"]["grade"]
    labels, n_components = ndimage.label(case.masks["cauda_equina"])
    pixel_area = case.image.GetSpacing()[0] ** 2
    csf_fraction = case.masks["csf"].sum() * pixel_area / m["normal_sac_area_mm2"]
    if grade in (0, 1):
        assert n_components == m["roots"] >= 6  # every root separated by CSF
        assert m["min_gap_between_roots_mm"] >= 0.7
    if grade == 0:
        assert m["anterior_csf_mm"] >= 2.5 and csf_fraction > 0.55
    if grade == 1:
        assert m["anterior_csf_mm"] <= 1.2
    if grade == 2:
        assert 1 < n_components < m["roots"]  # some roots aggregated, some apart
    if grade == 3:
        assert n_components == 1  # one bundle
        assert csf_fraction < 0.12


def test_csf_shrinks_with_the_lccs_grade():
    fractions = []
    for grade in range(4):
        values = []
        for seed in range(3):
            case = generate_axial_t2(80 + 10 * grade + seed, lccs=grade, ldh=0, **FINE)
            values.append(case.truth["measurements"]["lccs"]["csf_fraction_of_normal_sac"])
        fractions.append(np.mean(values))
    assert fractions == sorted(fractions, reverse=True)


def _root_geometry(case, side: str) -> tuple[float, float]:
    """(gap to disc material in mm on the grid, aspect ratio of the traversing root's pixels)."""
    root = case.masks[f"traversing_root_{side}"]
    disc = case.masks["disc"]
    s = case.image.GetSpacing()[0]
    gap = float(ndimage.distance_transform_edt(~disc)[root].min() * s) - s
    x, y = _lps_grid(case)
    pts = np.stack([x[root], y[root]], axis=1)
    ev = np.linalg.eigvalsh(np.cov((pts - pts.mean(axis=0)).T))
    return max(gap, 0.0), float(np.sqrt(ev[-1] / ev[0]))


@pytest.mark.parametrize("state", [0, 1, 2, 3])
def test_lnrc_per_side_follows_contact_deviation_compression(state):
    case = generate_axial_t2(100 + state, ldh=2, lnrc_left=state, lnrc_right=0, **FINE)
    assert case.truth["lnrc_sides"] == {"left": state, "right": 0}
    assert case.truth["grades"]["lnrc"] == state
    m = case.truth["measurements"]["lnrc"]["left"]
    gap, aspect = _root_geometry(case, "left")
    if state == 0:
        assert gap >= 0.6 and m["root_to_disc_mm"] >= 0.8
    else:
        assert gap <= 0.35  # disc material touches the root
    if state == 1:
        assert abs(m["root_displacement_mm"]) < 0.3 and aspect < 1.3
    if state == 2:
        assert m["root_displacement_mm"] >= 1.8 and aspect < 1.3 and m["root_to_sap_mm"] >= 0.8
    if state == 3:
        assert aspect >= 2.0 and m["root_to_sap_mm"] <= 0.15
    # the lateral recess grade follows the root (and is never below the disc's compromise)
    assert case.truth["stenosis"]["lateral_recess_left"]["grade"] >= state
    right_gap, _ = _root_geometry(case, "right")
    assert right_gap >= 0.6


@pytest.mark.parametrize("grade", [0, 1, 2, 3])
def test_foramen_grade_follows_the_perineural_fat(grade):
    case = generate_axial_t2(120 + grade, foramen_left=grade, foramen_right=0, **FINE)
    f = case.truth["measurements"]["foramen"]["left"]
    margins = f["fat_margins_mm"]
    fat = case.masks.get("foraminal_fat_left", np.zeros_like(case.masks["disc"]))
    root = case.masks["exiting_root_left"]
    ring = ndimage.binary_dilation(root, iterations=3) & ~root  # 0.9 mm around the root
    fat_share = fat[ring].mean()
    if grade == 0:
        assert min(margins.values()) >= 1.6 and fat_share > 0.9
    if grade == 1:
        zero = sorted(k for k, v in margins.items() if v == 0)
        assert zero in (["anterior", "posterior"], ["lateral", "medial"])
        assert 0.2 < fat_share < 0.9
    if grade >= 2:
        assert max(margins.values()) == 0 and fat_share == 0
    assert (f["root_aspect"] >= 2.4) == (grade == 3)
    assert case.truth["stenosis"]["foramen_left"]["grade"] == grade


def test_region_boxes_hold_their_structures_and_left_is_patient_left():
    case = generate_axial_t2(7, **FINE)
    st = case.truth["stenosis"]
    rows, cols = case.masks["disc"].shape

    def inside(mask, box):
        jj, ii = np.nonzero(mask)
        i0, j0, i1, j1 = box
        return np.mean((ii >= i0) & (ii <= i1) & (jj >= j0) & (jj <= j1))

    assert inside(case.masks["exiting_root_left"], st["foramen_left"]["box_index"]) == 1.0
    assert inside(case.masks["exiting_root_right"], st["foramen_right"]["box_index"]) == 1.0
    assert inside(case.masks["traversing_root_left"], st["lateral_recess_left"]["box_index"]) > 0.95
    assert inside(case.masks["dural_sac"], st["central_canal"]["box_index"]) > 0.95
    # LPS: the patient's left is +x, i.e. larger column index
    assert (
        st["foramen_left"]["centre_mm"][0]
        > st["central_canal"]["centre_mm"][0]
        > st["foramen_right"]["centre_mm"][0]
    )
    for r in REGIONS:
        assert st[r.key]["dichotomous"] == int(st[r.key]["grade"] >= 2)
        i0, j0, i1, j1 = st[r.key]["box_index"]
        assert 0 <= i0 < i1 < cols and 0 <= j0 < j1 < rows


def test_same_seed_same_case_and_imaging_varies():
    a = generate_axial_t2(5)
    b = generate_axial_t2(5)
    assert np.array_equal(sitk.GetArrayFromImage(a.image), sitk.GetArrayFromImage(b.image))
    spacings = {round(generate_axial_t2(s).image.GetSpacing()[0], 3) for s in range(4)}
    assert len(spacings) == 4
    noisy = sitk.GetArrayFromImage(generate_axial_t2(5, noise=0.06).image).astype(float)
    clean = sitk.GetArrayFromImage(generate_axial_t2(5, noise=0.0).image).astype(float)
    assert np.std(noisy - clean) > 10


def test_slab_has_the_disc_level_in_the_middle():
    case = generate_axial_t2(9, slab_slices=5)
    arr = sitk.GetArrayFromImage(case.image)
    labels = sitk.GetArrayFromImage(case.labels)
    assert arr.shape[0] == 5 and case.truth["imaging"]["disc_level_slice"] == 2
    disc_label = case.truth["labels"][next(k for k in case.truth["labels"] if k.startswith("disc_"))]
    assert (labels[2] == disc_label).sum() > 0
    assert (labels[0] == disc_label).sum() == 0  # above/below the disc: vertebral bodies
    assert case.image.GetSpacing()[2] >= 3.0


def test_impossible_requests_are_refused():
    with pytest.raises(InputError, match="LDH >= 1"):
        design_axial_case(1, ldh=0, lnrc=2)
    with pytest.raises(InputError, match="not one of 0, 1, 2, 3"):
        design_axial_case(1, ldh=5)
    with pytest.raises(InputError, match="Unknown phantom setting"):
        design_axial_case(1, pfirrmann=3)


def test_dataset_manifest_round_trip(tmp_path):
    manifest = write_axial_dataset(tmp_path / "ds", range(3), progress=False)
    rows = list(csv.DictReader(manifest.open()))
    assert len(rows) == 3
    for row in rows:
        truth = json.loads((tmp_path / "ds" / "truth" / (row["patient"] + ".json")).read_text())
        assert int(row["ldh"]) == truth["grades"]["ldh"]
        assert parse_grade(row["foramen_left"]) == truth["stenosis"]["foramen_left"]["grade"]
        img = sitk.ReadImage(str(tmp_path / "ds" / row["image"]))
        assert img.GetDimension() == 2
        assert float(row["central_canal_x1"]) > float(row["central_canal_x0"])
