"""Bad input to the triangle measurement: missing structures, roots that stop short, mismatched grids,
levels outside the field of view, wrong names; and the ray casting on hand-made masks."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from spineai.anatomy import BY_NAME
from spineai.errors import InputError
from spineai.planning import measure_triangles, parse_level
from spineai.planning.construct import TriangleInView
from spineai.planning.volume import LabelVolume
from spineai.planning.window import Occluders, accessible_window

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def phantom():
    from spineai.phantom import generate_ct_phantom

    return generate_ct_phantom(
        seed=9, progress=False, spacing_mm=(1.5, 1.5, 1.5), fov_levels=("L4", "L5", "S1")
    )


def _edited(labels: sitk.Image, fn) -> sitk.Image:
    arr = sitk.GetArrayFromImage(labels)
    fn(arr)
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(labels)
    return out


def test_missing_root_is_named_and_the_other_foramina_are_measured(phantom):
    lab = _edited(phantom.labels, lambda a: a.__setitem__(a == BY_NAME["root_S1_left"].label, 0))
    res = measure_triangles(lab)
    fm = res.get("L5-S1", "left")
    assert fm.status == "missing_structures" and "root_S1_left" in fm.message
    assert not fm.triangles
    assert [f.ok for f in res.foramina] == [True, True, False, True]
    assert any("root_S1_left" in w for w in res.warnings)
    assert res.to_dict()["foramina"][2]["status"] == "missing_structures"


def test_missing_disc_is_named(phantom):
    lab = _edited(phantom.labels, lambda a: a.__setitem__(a == BY_NAME["disc_L4_L5"].label, 0))
    res = measure_triangles(lab, levels=["L4-L5", "L5-S1"], sides=["right"])
    assert res.get("L4-L5", "right").status == "missing_structures"
    assert "disc_L4_L5" in res.get("L4-L5", "right").message
    assert res.get("L5-S1", "right").ok


def test_root_that_stops_before_the_foramen(phantom):
    ref = measure_triangles(phantom.labels, levels=["L5-S1"], sides=["right"]).get("L5-S1", "right")
    lateral = ref.parts.lateral_side
    s_body = ref.parts.upper_frame.body.support(lateral)
    vol = LabelVolume(phantom.labels)
    root = vol.ijk("root_L5_right")
    cut = root[vol.to_lps(root) @ lateral > s_body - 3.0]

    def drop(a):
        a[cut[:, 2], cut[:, 1], cut[:, 0]] = 0

    res = measure_triangles(_edited(phantom.labels, drop), levels=["L5-S1"], sides=["right", "left"])
    fm = res.get("L5-S1", "right")
    assert fm.status == "root_not_in_foramen"
    assert "root_L5_right" in fm.message and "foramen" in fm.message
    assert res.get("L5-S1", "left").ok


def test_level_outside_the_field_of_view(phantom):
    size = list(phantom.labels.GetSize())
    # keep only the cranial part of the image: the sacrum is cut away, L5 reaches the lower edge
    vol = LabelVolume(phantom.labels)
    k_l5 = int(np.median(vol.ijk("L5")[:, 2]))
    start = [0, 0, k_l5]
    cropped = sitk.RegionOfInterest(phantom.labels, [size[0], size[1], size[2] - k_l5], start)
    res = measure_triangles(cropped)
    for side in ("left", "right"):
        fm = res.get("L5-S1", side)
        assert fm.status == "outside_field_of_view", fm.message
        assert "L5-S1" in fm.message and "field of view" in fm.message
    # the other end: L3-L4 on an image that starts below L3
    k_l4 = int(np.median(vol.ijk("L4")[:, 2]))
    lower = sitk.RegionOfInterest(phantom.labels, [size[0], size[1], k_l4], [0, 0, 0])
    res = measure_triangles(lower, levels=["L3-L4", "L5-S1"], sides=["left"])
    assert res.foramina[0].status == "outside_field_of_view" and "L3" in res.foramina[0].message
    assert res.foramina[1].ok
    # levels without labelled roots are refused up front
    with pytest.raises(InputError, match="L1-L2") as info:
        measure_triangles(phantom.labels, levels=["L1-L2"])
    assert "L4-L5" in str(info.value)


def test_ct_on_another_grid_is_refused(phantom):
    ct = sitk.Image(phantom.image)
    ct.SetOrigin(tuple(o + 5.0 for o in ct.GetOrigin()))
    with pytest.raises(InputError, match="does not match") as info:
        measure_triangles(phantom.labels, ct=ct)
    assert "resample" in str(info.value)
    small = sitk.RegionOfInterest(phantom.image, [20, 20, 20], [0, 0, 0])
    with pytest.raises(InputError, match="size"):
        measure_triangles(phantom.labels, ct=small)


@pytest.mark.parametrize(
    "levels, sides, match",
    [
        (["L5-L4"], ["left"], "not below"),
        (["L9-S1"], ["left"], "not a spinal level"),
        (["L5"], ["left"], "not a spinal level"),
        (["L5-S1"], ["up"], "Side 'up'"),
    ],
)
def test_wrong_level_or_side_names(phantom, levels, sides, match):
    with pytest.raises(InputError, match=match):
        measure_triangles(phantom.labels, levels=levels, sides=sides)


def test_level_name_forms():
    assert parse_level("L5/S1") == ("L5-S1", "L5", "S1")
    assert parse_level("l4l5") == ("L4-L5", "L4", "L5")
    assert parse_level("L5_L6") == ("L5-L6", "L5", "L6")


def test_not_a_label_map(phantom):
    with pytest.raises(InputError, match="canonical"):
        measure_triangles(_edited(phantom.labels, lambda a: a.__setitem__((0, 0, 0), 200)))
    with pytest.raises(InputError, match="fractional"):
        measure_triangles(sitk.Cast(phantom.image, sitk.sitkFloat32) + 0.5)
    with pytest.raises(InputError, match="3D"):
        measure_triangles(sitk.Image([10, 10], sitk.sitkUInt8))
    with pytest.raises(InputError, match="not understood"):
        measure_triangles(phantom.labels, levels=["L5-S1"], sides=["left"], view="sideways")


def test_empty_label_map_gives_statuses_and_a_warning():
    empty = sitk.Image([40, 40, 40], sitk.sitkUInt8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = measure_triangles(empty)
    assert not res.measured and len(res.warnings) == 4
    assert {f.status for f in res.foramina} == {"outside_field_of_view"}
    assert any("no level could be measured" in str(w.message) for w in caught)


# ------------------------------------------------------------------------------ ray casting, hand-made
def _box_volume() -> LabelVolume:
    """A 60 mm cube at 1 mm with a bony block (label of L5) behind the left half of the plane y = 0."""
    arr = np.zeros((60, 60, 60), np.uint8)  # (z, y, x); LPS = index - 30
    arr[20:40, 40:45, 10:30] = BY_NAME["L5"].label  # x in [-20, -1], y in [10, 14], z in [-10, 9]
    arr[20:40, 50:52, 30:50] = BY_NAME["root_L5_left"].label  # a root behind the right half, further back
    img = sitk.GetImageFromArray(arr)
    img.SetOrigin((-30.0, -30.0, -30.0))
    return LabelVolume(img)


def _triangle(view=(0.0, -1.0, 0.0)) -> TriangleInView:
    q = np.array([[-8.0, -5.0], [8.0, -5.0], [0.0, 5.0]])
    return TriangleInView(
        kind="safe",
        view=np.asarray(view, float),
        lateral=np.array([1.0, 0.0, 0.0]),
        up=np.array([0.0, 0.0, 1.0]),
        origin=np.zeros(3),
        vertices_image=q,
        vertex_names=("corner", "medial", "inferior"),
        area_mm2=80.0,
        degenerate=False,
        edges=[],
    )


def test_rays_toward_the_skin_stop_at_bone_and_nerve():
    vol = _box_volume()
    occ = Occluders(vol, frames=[])
    starts = np.array([[-10.0, 0.0, 0.0], [10.0, 0.0, 0.0], [-10.0, 20.0, 0.0], [0.5, 0.0, 25.0]])
    hits = occ.first_hit(starts, np.array([0.0, -1.0, 0.0]))  # needle runs anteriorly: rays go posteriorly
    assert hits.tolist() == [BY_NAME["L5"].label, BY_NAME["root_L5_left"].label, 0, 0]
    # looking the other way (rays go anteriorly): only the point behind the block sees it
    assert occ.first_hit(starts, np.array([0.0, 1.0, 0.0])).tolist() == [0, 0, BY_NAME["L5"].label, 0]


def test_accessible_window_on_hand_made_masks():
    vol = _box_volume()
    occ = Occluders(vol, frames=[])
    win = accessible_window(_triangle(), occ, n=20)
    # the whole triangle is behind either the bone block (voxels x < -0.5) or the root (x >= -0.5); the
    # part left of x = -0.5 is 0.44 of the triangle
    assert win.window_mm2 == pytest.approx(0.0, abs=1e-9) and not win.usable
    assert set(win.blocked_by) == {"L5", "root_L5_left"}
    assert win.blocked_by["L5"] == pytest.approx(0.44, abs=0.03)
    # remove the root: the rest opens, 0.56 of 80 mm2
    arr = np.asarray(vol.array).copy()
    arr[arr == BY_NAME["root_L5_left"].label] = 0
    img = sitk.GetImageFromArray(arr)
    img.CopyInformation(vol.image)
    win = accessible_window(_triangle(), Occluders(LabelVolume(img), frames=[]), n=20)
    assert win.window_mm2 == pytest.approx(44.8, abs=2.5)
    assert win.usable and win.inscribed_radius_mm > 1.0
    assert list(win.blocked_by) == ["L5"]


# ------------------------------------------------------------------------------------- real anatomy
def test_real_ct_vertebra_masks_name_what_is_missing():
    """VerSe subject 014: vertebrae L1-L5 only (no discs, roots or sacrum), oblique PIR grid."""
    from spineai import io

    folder = SHARED_DATA / "ct" / "verse014"
    if not folder.is_dir():
        pytest.skip(f"public test data not found at {folder} (it sits beside the repository in CI)")
    labels = io.read_labelmap(folder / "sub-verse014_seg-vert_msk.nii.gz", mapping="verse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = measure_triangles(labels, ct=folder / "sub-verse014_ct.nii.gz")
    assert not res.measured
    l45 = res.get("L4-L5", "left")
    assert l45.status == "missing_structures"
    assert "disc_L4_L5" in l45.message and "root_L4_left" in l45.message and "root_L5_left" in l45.message
    l5s1 = res.get("L5-S1", "right")
    assert l5s1.status == "missing_structures" and "S1" in l5s1.message and "root_S1_right" in l5s1.message
