"""Laterality follows the anatomy, never the array axes.

One phantom with a left-sided anomaly (a Castellvi type II pseudo-joint on one side, a severe foraminal
stenosis at L5-S1 on the left) is re-stored in every way a file can hold the same patient: axes reordered
(RAS, PIR), a negative-x direction, a NIfTI round trip (RAS on disk), a rotation in the scanner. Every
left/right output must stay the same: the Castellvi side, the side of each renamed nerve root, the left and
right triangles of :func:`spineai.planning.measure_triangles` and the left and right foramina of the
morphometry. Mirroring the voxels (the same header over a left-right flipped patient) must swap them.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from spineai import io
from spineai.anatomy import BY_LABEL
from spineai.levels import label_levels
from spineai.levels.morphometry import measure_morphometry
from spineai.phantom import generate_ct_phantom
from spineai.phantom.scramble import scramble_level_labels
from spineai.planning import measure_triangles


@pytest.fixture(scope="module")
def case():
    return generate_ct_phantom(
        14,
        variant="castellvi_IIa",
        spacing_mm=(1.5, 1.5, 1.5),
        fov_levels=("L4", "L5", "S1"),
        stenoses=[{"level": "L5-S1", "side": "left", "severity": 0.9}],
        herniations=[],
        progress=False,
    )


def _outputs(labels: sitk.Image, ct: sitk.Image) -> dict:
    result = label_levels(scramble_level_labels(labels, 11), ct=ct)
    lm = result.labelmap
    arr = sitk.GetArrayViewFromImage(lm.image)
    # mean LPS x of each renamed root
    root_x = {}
    for v in np.unique(arr):
        s = BY_LABEL.get(int(v))
        if s is not None and s.kind == "root":
            idx = np.argwhere(np.asarray(arr) == v)[:, ::-1].astype(float)
            pts = np.asarray([lm.image.TransformContinuousIndexToPhysicalPoint(p.tolist()) for p in idx[::7]])
            root_x[s.name] = float(pts[:, 0].mean())
    tri = measure_triangles(lm, levels=["L4-L5", "L5-S1"])
    areas = {(f.level, f.side, k): t.area_mm2 for f in tri.foramina if f.ok for k, t in f.triangles.items()}
    morph = measure_morphometry(lm, levels=["L5-S1"]).get("L5-S1")
    return dict(
        names=result.names,
        castellvi={s: e["type"] for s, e in result.transitional["castellvi"].items()},
        root_x=root_x,
        areas=areas,
        foramen={s: morph.foramen[s].get("area_mm2") for s in ("left", "right")},
    )


@pytest.fixture(scope="module")
def base(case):
    return _outputs(case.labels, case.image)


def _negative_x(img: sitk.Image) -> sitk.Image:
    """The same voxels stored with the x axis pointing to the patient's right (negative x direction)."""
    arr = sitk.GetArrayFromImage(img)[:, :, ::-1]
    out = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    out.SetSpacing(img.GetSpacing())
    out.SetOrigin(img.TransformIndexToPhysicalPoint((img.GetSize()[0] - 1, 0, 0)))
    d = np.asarray(img.GetDirection()).reshape(3, 3).copy()
    d[:, 0] *= -1
    out.SetDirection(tuple(d.ravel()))
    return out


def _mirrored(img: sitk.Image) -> sitk.Image:
    """The patient flipped left-right: voxels mirrored, header unchanged."""
    arr = sitk.GetArrayFromImage(img)[:, :, ::-1]
    out = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    out.CopyInformation(img)
    return out


def _rotated(img: sitk.Image, is_label: bool) -> sitk.Image:
    """The patient rotated by 20 degrees about the scanner's z axis (about the image centre)."""
    t = sitk.Euler3DTransform()
    centre = img.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in img.GetSize()])
    t.SetCenter(centre)
    t.SetRotation(0.0, 0.0, np.radians(20.0))
    interp = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
    return sitk.Resample(img, img, t, interp, 0 if is_label else -1000, img.GetPixelID())


def _same_sides(base: dict, other: dict, rel: float = 1e-6, abs_mm2: float = 1e-6) -> None:
    assert other["names"] == base["names"]
    assert other["castellvi"] == base["castellvi"]
    assert set(other["root_x"]) == set(base["root_x"])
    for name in base["root_x"]:
        if name.endswith("_left"):
            assert other["root_x"][name] > other["root_x"][name.replace("_left", "_right")], name
    assert set(other["areas"]) == set(base["areas"])
    for key, area in base["areas"].items():
        assert other["areas"][key] == pytest.approx(area, rel=rel, abs=abs_mm2), key
    for side in ("left", "right"):
        assert other["foramen"][side] == pytest.approx(base["foramen"][side], rel=rel, abs=abs_mm2)


def test_the_phantom_really_is_lateralised(case, base):
    truth = case.truth["level_truth"]["transitional"]["castellvi"]
    assert base["castellvi"] == truth and sorted(truth.values()) == ["0", "II"]
    assert base["foramen"]["left"] < 0.85 * base["foramen"]["right"]  # the stenosis is on the left
    assert base["areas"][("L5-S1", "left", "safe")] != pytest.approx(
        base["areas"][("L5-S1", "right", "safe")]
    )


@pytest.mark.parametrize("code", ["RAS", "PIR", "ASL"])
def test_reordered_axes_change_nothing(case, base, code):
    other = _outputs(io.reorient(case.labels, code), io.reorient(case.image, code))
    _same_sides(base, other)


def test_negative_x_direction_changes_nothing(case, base):
    _same_sides(base, _outputs(_negative_x(case.labels), _negative_x(case.image)))


def test_nifti_round_trip_changes_nothing(case, base, tmp_path):
    seg, ct = tmp_path / "labels.nii.gz", tmp_path / "ct.nii.gz"
    io.write_labelmap_nifti(io.LabelMap(case.labels, io.anatomy.CANONICAL), seg)
    io.write_image(case.image, ct)
    labels = io.read_labelmap(seg)
    assert io.orientation_code(sitk.ReadImage(str(seg))) == "LPS"
    _same_sides(base, _outputs(labels.canonical().image, io.read_image(ct)), rel=1e-4, abs_mm2=1e-3)


def test_rotation_in_the_scanner_keeps_the_sides(case, base):
    other = _outputs(_rotated(case.labels, True), _rotated(case.image, False))
    # the pseudo-joint stays on its side; the other side may leave the field of view (then it says so)
    side = next(s for s, t in base["castellvi"].items() if t == "II")
    other_side = "right" if side == "left" else "left"
    assert other["castellvi"][side] == "II" and other["castellvi"][other_side] in ("0", "not assessable")
    for name in base["root_x"]:
        if name.endswith("_left") and name in other["root_x"]:
            assert other["root_x"][name] > other["root_x"][name.replace("_left", "_right")], name
    # the stenosed left foramen stays the smaller one (nearest-neighbour resampling may close it altogether)
    assert other["foramen"]["right"] is not None
    assert other["foramen"]["left"] is None or other["foramen"]["left"] < other["foramen"]["right"]
    b, o = base["areas"], other["areas"]
    for kind in ("kambin", "safe"):
        kl, kr = ("L5-S1", "left", kind), ("L5-S1", "right", kind)
        if kl in o and kr in o and abs(b[kl] - b[kr]) > 0.3 * max(b[kl], b[kr]):
            assert (o[kl] < o[kr]) == (b[kl] < b[kr]), kind


def test_mirrored_patient_swaps_every_side(case, base):
    other = _outputs(_mirrored(case.labels), _mirrored(case.image))
    swap = {"left": "right", "right": "left"}
    assert other["castellvi"] == {swap[s]: t for s, t in base["castellvi"].items()}
    for name in base["root_x"]:
        if name.endswith("_left"):
            assert other["root_x"][name] > other["root_x"][name.replace("_left", "_right")], name
    assert other["foramen"]["right"] == pytest.approx(base["foramen"]["left"], rel=0.05)
    assert other["foramen"]["left"] == pytest.approx(base["foramen"]["right"], rel=0.05)
    for (level, side, kind), area in base["areas"].items():
        assert other["areas"][(level, swap[side], kind)] == pytest.approx(area, rel=0.1, abs=1.0)
