"""C-arm view search and needle paths: a high iliac crest hides L5-S1 in the standard view, a searched view
opens it, and the planned needles cross no bone or nerve."""

from __future__ import annotations

import numpy as np
import pytest

from spineai.anatomy import BY_NAME, NERVE_KINDS
from spineai.planning import NEEDLE_LENGTH_MM, USABLE_WINDOW_MM2, plan_case
from spineai.planning.needle import choose_approach
from spineai.planning.views import search_foramen

HIGH_CREST_MM = 60.0


@pytest.fixture(scope="module")
def high_crest():
    from spineai.phantom import generate_ct_phantom

    case = generate_ct_phantom(
        seed=5, progress=False, iliac_crest_height_mm=HIGH_CREST_MM, fov_levels=("L4", "L5", "S1")
    )
    return case, plan_case(case.labels, ct=case.image)


def test_truth_and_measurement_agree_that_the_crest_hides_kambin_in_the_standard_view(high_crest):
    case, res = high_crest
    for side in ("left", "right"):
        truth = case.truth["triangles"]["L5-S1"][side]["kambin"]["standard_view"]
        assert truth["visible"] is False  # the phantom's own ray casting
        tri = res.get("L5-S1", side).triangles["kambin"]
        std = tri.standard_view
        assert (
            std.name == "standard"
            and std.oblique_deg == pytest.approx(25.0)
            and std.tilt_deg == pytest.approx(0.0)
        )
        assert std.window.visible_fraction < 0.5
        assert not std.usable
        assert next(iter(std.window.blocked_by)) == f"ilium_{side}"  # the main blocker is named


def test_search_finds_a_view_that_opens_the_blocked_triangle(high_crest):
    _, res = high_crest
    for side in ("left", "right"):
        tri = res.get("L5-S1", side).triangles["kambin"]
        best = tri.best_view
        assert tri.usable_view is True and tri.blocked_reason is None
        assert best.usable and best.window_mm2 >= USABLE_WINDOW_MM2
        assert best.window_mm2 > tri.standard_view.window_mm2 + 5.0
        assert 0.0 <= best.oblique_deg <= 45.0 and -30.0 <= best.tilt_deg <= 30.0
        assert (best.oblique_deg, best.tilt_deg) != pytest.approx((25.0, 0.0))
        # the view is reported in both frames and is a unit vector
        assert np.linalg.norm(best.direction_lps) == pytest.approx(1.0)
        assert np.isfinite(best.patient_oblique_deg) and np.isfinite(best.patient_tilt_deg)


def test_best_view_is_at_least_as_good_as_every_coarse_grid_view(high_crest):
    from spineai.planning.construct import level_view, triangles_in_view
    from spineai.planning.window import window_area

    _, res = high_crest
    fm = res.get("L5-S1", "left")
    best = fm.triangles["kambin"].best_view.window_mm2
    grid = []
    for ob in (0.0, 15.0, 30.0, 45.0):
        for ti in (-30.0, -15.0, 0.0, 15.0, 30.0):
            grid.append(
                window_area(
                    triangles_in_view(fm.parts, level_view(fm.parts, ob, ti))["kambin"], res.occluders, 10
                )
            )
    assert best >= 0.9 * max(grid)


def test_needle_paths_cross_no_bone_root_or_dural_sac(high_crest):
    _, res = high_crest
    forbidden_kinds = {"vertebra", "sacrum", "ilium", *NERVE_KINDS}
    for fm in res.foramina:
        assert fm.ok
        assert fm.recommended in ("safe", "kambin"), fm.recommendation
        for kind, path in fm.paths.items():
            if not fm.triangles[kind].usable_view:
                continue
            assert path.safe, (fm.level, fm.side, kind, path.crossed)
            assert not [c for c in path.crossed if BY_NAME[c].kind in forbidden_kinds]
            assert path.min_distance_nerve_mm > 0.0 and path.min_distance_bone_mm > 0.0
            # the needle is coaxial with its view, runs from the skin inward, and its length adds up
            d = (path.target_lps - path.entry_lps) / path.length_mm
            assert d @ path.direction_lps == pytest.approx(1.0, abs=1e-6)
            assert path.reaches_with_standard_needle == (path.length_mm <= NEEDLE_LENGTH_MM)
            assert 0.0 <= path.angle_to_axial_deg <= 90.0 and 0.0 <= path.angle_to_sagittal_deg <= 90.0
            # the entry lies behind the target (posterior, +y in LPS)
            assert path.entry_lps[1] > path.target_lps[1]
            # independent check: sample the label map along the path
            n = int(path.length_mm / 0.2) + 2
            line = path.entry_lps + np.linspace(0, 1, n)[:, None] * (path.target_lps - path.entry_lps)
            labels = set(int(v) for v in res.volume.lookup(line)) - {0}
            names = {n for n, s in BY_NAME.items() if s.label in labels}
            assert not {n for n in names if BY_NAME[n].kind in forbidden_kinds}


def test_skin_entry_is_on_the_body_surface(high_crest):
    import SimpleITK as sitk

    case, res = high_crest
    hu = sitk.GetArrayViewFromImage(case.image)
    found = [p for fm in res.foramina for p in fm.paths.values() if p.skin_found]
    assert found, "no path reached the skin inside the image"
    for p in found:
        inside_pt = p.entry_lps[None] + 1.5 * p.direction_lps
        outside_pt = p.entry_lps[None] - 1.0 * p.direction_lps
        assert res.volume.lookup(inside_pt, hu)[0] > -300
        if res.volume.contains(outside_pt)[0]:
            assert res.volume.lookup(outside_pt, hu)[0] < -300


def test_fig6_strategy_switches_to_kambin_when_the_safe_triangle_is_blocked(high_crest):
    import copy

    _, res = high_crest
    fm = copy.copy(res.get("L4-L5", "left"))
    fm.triangles = {k: copy.copy(t) for k, t in fm.triangles.items()}
    fm.paths = dict(fm.paths)
    choose_approach(fm)
    assert fm.recommended == "safe"
    fm.triangles["safe"].usable_view = False
    fm.triangles["safe"].blocked_reason = "hidden by L4 (transverse process)"
    choose_approach(fm)
    assert fm.recommended == "kambin"
    assert "instead of the safe triangle" in fm.recommendation and "transverse process" in fm.recommendation
    fm.triangles["kambin"].usable_view = False
    fm.triangles["kambin"].blocked_reason = "hidden by ilium_left"
    choose_approach(fm)
    assert fm.recommended is None and "ilium_left" in fm.recommendation


def test_search_range_is_respected(high_crest):
    _, res = high_crest
    fm = res.get("L5-S1", "right")
    found = search_foramen(fm.parts, res.occluders, oblique_range=(10.0, 20.0), tilt_range=(-5.0, 5.0))
    for ob, ti in found.values():
        assert 10.0 <= ob <= 20.0 and -5.0 <= ti <= 5.0


def test_low_crest_leaves_the_standard_view_open():
    from spineai.phantom import generate_ct_phantom
    from spineai.planning import measure_triangles

    case = generate_ct_phantom(
        seed=5,
        progress=False,
        iliac_crest_height_mm=5.0,
        spacing_mm=(1.5, 1.5, 1.5),
        fov_levels=("L4", "L5", "S1"),
    )
    res = measure_triangles(case.labels, levels=["L5-S1"])
    for fm in res.foramina:
        tri = fm.triangles["kambin"]
        assert tri.view.name == "standard"
        assert tri.view.usable and "ilium_left" not in tri.view.window.blocked_by
