"""Lumbar vertebrae are named by the discs around them when the network spreads one name over two bodies."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from spineai import anatomy
from spineai.phantom import generate_ct_phantom
from spineai.segmentation.postprocess import relabel_vertebrae_by_discs

L3, L4, L5, S1 = (anatomy.structure(n).label for n in ("L3", "L4", "L5", "S1"))


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    """Canonical labels ``(z, y, x)`` of a 2 mm isotropic phantom (L3..S1, discs, roots)."""
    phantom = generate_ct_phantom(3, spacing_mm=2.0, progress=False)
    return sitk.GetArrayFromImage(phantom.labels)


def _dice(a: np.ndarray, b: np.ndarray, value: int) -> float:
    x, y = a == value, b == value
    return float(2 * (x & y).sum() / (x.sum() + y.sum()))


def test_a_vertebra_named_after_its_neighbour_gets_its_own_name_back(truth):
    # what the network does wrong: the upper half of L4 (body and posterior elements) is called L3
    wrong = truth.copy()
    z_l4 = np.nonzero((truth == L4).any(axis=(1, 2)))[0]
    upper_half = np.zeros_like(truth, dtype=bool)
    upper_half[(z_l4.min() + z_l4.max()) // 2 :] = True
    wrong[(truth == L4) & upper_half] = L3
    assert _dice(wrong, truth, L4) < 0.8

    fixed = relabel_vertebrae_by_discs(wrong)

    for value in (L3, L4, L5):
        assert _dice(fixed, truth, value) > 0.95
    # only names of lumbar vertebrae move: everything else and the bone outline are untouched
    others = ~np.isin(truth, [L3, L4, L5])
    np.testing.assert_array_equal(fixed[others], wrong[others])
    np.testing.assert_array_equal(np.isin(fixed, [L3, L4, L5]), np.isin(truth, [L3, L4, L5]))


def test_a_whole_vertebra_called_by_the_wrong_name_is_renamed(truth):
    wrong = truth.copy()
    wrong[truth == L4] = L5  # L4 and L5 both called L5
    fixed = relabel_vertebrae_by_discs(wrong)
    assert _dice(fixed, truth, L4) > 0.95
    assert _dice(fixed, truth, L5) > 0.95


def test_correct_names_stay_as_they_are(truth):
    fixed = relabel_vertebrae_by_discs(truth)
    for value in (L3, L4, L5, S1):
        assert _dice(fixed, truth, value) > 0.97
    np.testing.assert_array_equal(fixed == S1, truth == S1)


def test_without_discs_or_with_discs_out_of_order_nothing_changes(truth):
    discs = [s.label for s in anatomy.structures_of_kind("disc")]
    no_discs = np.where(np.isin(truth, discs), 0, truth)
    no_discs[truth == L4] = L3
    np.testing.assert_array_equal(relabel_vertebrae_by_discs(no_discs), no_discs)

    swapped = truth.copy()
    l34, l45 = anatomy.structure("disc_L3_L4").label, anatomy.structure("disc_L4_L5").label
    swapped[truth == l34], swapped[truth == l45] = l45, l34
    np.testing.assert_array_equal(relabel_vertebrae_by_discs(swapped), swapped)


def test_a_vertebra_whose_body_was_missed_keeps_its_posterior_elements(truth):
    # the network found only L4's posterior elements: its body (around the line through the centres of
    # the discs above and below) came out as background
    upper = np.argwhere(truth == anatomy.structure("disc_L3_L4").label).mean(axis=0)
    lower = np.argwhere(truth == anatomy.structure("disc_L4_L5").label).mean(axis=0)
    axis = (upper - lower) / np.linalg.norm(upper - lower)
    l4 = np.argwhere(truth == L4)
    offset = l4 - lower
    off_axis = np.linalg.norm(offset - np.outer(offset @ axis, axis), axis=1)
    missed = truth.copy()
    body = l4[off_axis < 15.0]  # voxels of 2 mm: within 30 mm of the axis
    missed[body[:, 0], body[:, 1], body[:, 2]] = 0
    assert 0 < (missed == L4).sum() < 0.6 * (truth == L4).sum()

    fixed = relabel_vertebrae_by_discs(missed)

    np.testing.assert_array_equal(fixed == L4, missed == L4)  # not handed to L3 or L5
    for value in (L3, L5):
        assert _dice(fixed, missed, value) > 0.97
