"""C-arm view convention: LPS line of sight (skin -> target) for a prone patient."""

from __future__ import annotations

import numpy as np
import pytest

from spineai.carm import (
    STANDARD_OBLIQUE_DEG,
    angles_from_direction,
    entry_point,
    lps_to_ras,
    standard_view,
    view_direction_lps,
)
from spineai.errors import InputError


@pytest.mark.parametrize("side", ["left", "right"])
def test_posteroanterior_view_runs_from_the_back_to_the_front(side):
    d = view_direction_lps(0.0, 0.0, side)
    assert d == pytest.approx([0.0, -1.0, 0.0])  # +y is posterior: the needle moves anteriorly


def test_ipsilateral_oblique_moves_the_entry_to_that_side():
    left = view_direction_lps(25.0, 0.0, "left")
    right = view_direction_lps(25.0, 0.0, "right")
    # the entry lies on the patient's left (+x) for a left injection, so the needle heads toward -x
    assert left[0] < 0 and right[0] > 0
    assert left[1] < 0 and right[1] < 0 and left[2] == pytest.approx(0.0)
    assert left[0] == pytest.approx(-np.sin(np.radians(25.0)))
    entry = entry_point(np.zeros(3), left, 80.0)
    assert entry[0] > 30.0 and entry[1] > 60.0  # posterior-left skin
    # more oblique = more lateral entry
    assert view_direction_lps(40.0, 0.0, "left")[0] < left[0]


def test_cranial_tilt_sends_the_needle_caudally():
    cranial = view_direction_lps(25.0, 15.0, "left")
    caudal = view_direction_lps(25.0, -15.0, "left")
    assert cranial[2] == pytest.approx(-np.sin(np.radians(15.0)))
    assert caudal[2] > 0
    assert entry_point(np.zeros(3), cranial, 50.0)[2] > 0  # the entry point is moved toward the head


@pytest.mark.parametrize(
    "oblique,tilt,side", [(0, 0, "left"), (25, 0, "right"), (45, -30, "left"), (10, 20, "right")]
)
def test_directions_are_unit_vectors_and_round_trip_to_their_angles(oblique, tilt, side):
    d = view_direction_lps(oblique, tilt, side)
    assert np.linalg.norm(d) == pytest.approx(1.0)
    assert angles_from_direction(d, side) == pytest.approx((oblique, tilt), abs=1e-9)


def test_standard_view_is_25_degrees_from_posteroanterior():
    for side in ("left", "right"):
        d = standard_view(side)
        pa = view_direction_lps(0.0, 0.0, side)
        assert np.degrees(np.arccos(d @ pa)) == pytest.approx(STANDARD_OBLIQUE_DEG)
        assert d == pytest.approx(view_direction_lps(25.0, 0.0, side))


def test_lps_to_ras_negates_x_and_y():
    assert lps_to_ras(np.array([1.0, 2.0, 3.0])) == pytest.approx([-1.0, -2.0, 3.0])
    assert lps_to_ras(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))[1] == pytest.approx([-4.0, -5.0, 6.0])


@pytest.mark.parametrize(
    "args,match",
    [
        ((25, 0, "up"), "left"),
        ((50, 0, "left"), "0..45"),
        ((-5, 0, "left"), "0..45"),
        ((25, 60, "right"), "Tilt"),
        ((float("nan"), 0, "left"), "Oblique"),
    ],
)
def test_bad_angles_and_sides_are_rejected_with_a_fix(args, match):
    with pytest.raises(InputError, match=match) as err:
        view_direction_lps(*args)
    assert "Fix:" in str(err.value)
