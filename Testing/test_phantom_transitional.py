"""Phantom level variants: default cases unchanged (pinned), T12 with ribs, L6, lumbarised S1, Castellvi I-IV,
lumbar-only fields of view, and the level truth in truth.json."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import SimpleITK as sitk

from spineai.anatomy import BY_NAME
from spineai.errors import InputError
from spineai.phantom import VARIANTS, build_anatomy, castellvi_type, generate_ct_phantom, sample_params

# sha256 of (dtype, shape, bytes, geometry) of the images and labels generated before the level variants were
# added; the trained segmentation model and the measured figures depend on these exact volumes
PINNED = {
    (0, None): (
        "b12923ed6722bcfbade7f1a93179f0cdb4d11940f019bbd6cc5f52e13f826540",
        "82774c2edcc78944f2540d90e9815482b1c22563bade601a450ee2b90d5e4f36",
    ),
    (1, 2.0): (
        "dae986bf0bd18d56cd5edc2c3350bd9e428aea3d4db63c0042005e698da19109",
        "0c0cd3a5f282db8816c09c63dbc53bf0f952c61a538b98763264f8a8c1a0fcc2",
    ),
    (3, 2.0): (
        "a765da1cb421b5ae4fc9d1a8f848e391d8cffa61f73193de9c839bd36d57d1f4",
        "6fe264df8e164bb568910d153ae89203fbae2ecf83f3edd37995cd8b6f6677a6",
    ),
}
#: sha256 of json.dumps(sample_params(3, spacing_mm=(2, 2, 2)).to_dict(), sort_keys=True) before the variants existed
PINNED_PARAMS_3 = "d9aed01c4395a57b4d128ad6f26b9109210d932c763ac2e5e78e21ad55f75306"


def _digest(img: sitk.Image) -> str:
    a = sitk.GetArrayViewFromImage(img)
    m = hashlib.sha256()
    m.update(str(a.dtype).encode())
    m.update(str(a.shape).encode())
    m.update(np.ascontiguousarray(a).tobytes())
    m.update(json.dumps([img.GetSpacing(), img.GetOrigin(), img.GetDirection()]).encode())
    return m.hexdigest()


@pytest.mark.parametrize(("seed", "spacing"), list(PINNED))
def test_default_phantoms_are_unchanged(seed, spacing):
    kwargs = {} if spacing is None else {"spacing_mm": spacing}
    case = generate_ct_phantom(seed, progress=False, **kwargs)
    assert (_digest(case.image), _digest(case.labels)) == PINNED[(seed, spacing)]


def test_default_parameters_are_unchanged():
    params = sample_params(3, spacing_mm=(2.0, 2.0, 2.0))
    text = json.dumps(params.to_dict(), sort_keys=True)
    assert hashlib.sha256(text.encode()).hexdigest() == PINNED_PARAMS_3
    assert "thoracic_levels" not in params.to_dict() and params.transitional is None


@pytest.fixture(scope="module")
def castellvi_iv():
    return generate_ct_phantom(5, variant="castellvi_IV", spacing_mm=2.0, progress=False)


def test_castellvi_iv_truth_and_anatomy(castellvi_iv):
    lt = castellvi_iv.truth["level_truth"]
    tr = lt["transitional"]
    assert tr["kind"] == "castellvi" and tr["vertebra"] == "L5"
    assert sorted(tr["castellvi"].values()) == ["II", "III"] and tr["castellvi_type"] == "IV"
    side_ii = next(s for s, t in tr["castellvi"].items() if t == "II")
    side_iii = next(s for s, t in tr["castellvi"].items() if t == "III")
    assert 2.5 <= tr["gap_mm"][side_ii] <= 4.5  # a pseudo-joint: a gap of a few mm
    assert tr["gap_mm"][side_iii] < 0  # fused: the process and the sacrum interpenetrate
    assert tr["tp_height_mm"][side_ii] >= 19 and tr["tp_height_mm"][side_iii] >= 19
    # in the label map the fused side's L5 touches the sacrum laterally, the pseudo-joint side does not
    lab = sitk.GetArrayViewFromImage(castellvi_iv.labels)
    l5 = lab == BY_NAME["L5"].label
    s1 = lab == BY_NAME["S1"].label
    x_world = (
        castellvi_iv.labels.GetOrigin()[0] + np.arange(lab.shape[2]) * castellvi_iv.labels.GetSpacing()[0]
    )
    joint = np.asarray(tr["joint_point_lps"][side_iii])
    touching = np.zeros_like(l5)
    touching[:-1] |= l5[:-1] & s1[1:]
    touching[1:] |= l5[1:] & s1[:-1]
    zz, yy, xx = np.nonzero(touching)
    lateral = np.abs(x_world[xx]) > 28.0
    assert np.sign(np.median(x_world[xx[lateral]])) == np.sign(joint[0])  # the contact is on the fused side
    assert lt["last_rib_bearing"] == "T12" and lt["lumbar_count"] == 5


def test_t12_carries_unlabelled_ribs(castellvi_iv):
    anat = castellvi_iv.anatomy
    ribs = [s for s in anat.structures if s.key.startswith("rib_T12_")]
    assert {s.key for s in ribs} == {"rib_T12_left", "rib_T12_right"}
    assert all(s.label == 0 and s.tissue == "bone" for s in ribs)
    # the rib is bone in the CT (cancellous, well above soft tissue) where nothing is labelled, beside T12
    ct = sitk.GetArrayViewFromImage(castellvi_iv.image)
    lab = sitk.GetArrayViewFromImage(castellvi_iv.labels)
    rib = ribs[0]
    mid = 0.5 * (np.asarray(rib.primitives[1].a) + np.asarray(rib.primitives[1].b))
    idx = castellvi_iv.image.TransformPhysicalPointToIndex(tuple(float(v) for v in anat.to_world(mid)))
    assert ct[idx[2], idx[1], idx[0]] > 120 and lab[idx[2], idx[1], idx[0]] == 0


@pytest.mark.parametrize("variant", ["L6", "lumbarised_S1"])
def test_six_lumbar_type_vertebrae(variant):
    params = sample_params(4, variant=variant)
    assert params.levels == ("T12", "L1", "L2", "L3", "L4", "L5", "L6", "S1")
    anat = build_anatomy(params)
    from spineai.phantom.ct import level_truth

    lt = level_truth(anat, {lv: 1 for lv in params.levels})
    assert lt["vertebrae"]["L6"]["verse_label"] == 25 and lt["vertebrae"]["S1"]["verse_label"] == 26
    if variant == "lumbarised_S1":
        assert lt["transitional"]["kind"] == "lumbarised_S1"
        assert lt["vertebrae"]["L6"]["identity"] == "S1 (lumbarised)"
        assert params.discs["L6-S1"].height_mm < 0.6 * params.discs["L5-L6"].height_mm
    else:
        assert lt["transitional"]["kind"] == "six_lumbar_vertebrae"
        assert lt["vertebrae"]["L6"]["identity"] == "L6"


def test_lumbar_only_field_of_view_hides_t12_and_l1():
    case = generate_ct_phantom(
        6, variant="whole_lumbar", spacing_mm=2.0, progress=False, fov_levels=("L3", "L4", "L5", "S1")
    )
    seen = case.truth["levels_in_view"]
    assert "T12" not in seen and "L1" not in seen and {"L3", "L4", "L5", "S1"} <= set(seen)
    assert case.truth["level_truth"]["last_rib_bearing"] is None


def test_variant_draws_do_not_disturb_each_other():
    a = sample_params(9, variant="castellvi_IIa")
    b = sample_params(9, variant="castellvi_IIa")
    assert a.to_dict() == b.to_dict()
    assert a.transitional is not None and list(a.transitional.castellvi.values()) == ["II"]
    assert castellvi_type({"left": "I", "right": "I"}) == "Ib"
    assert castellvi_type({"right": "III"}) == "IIIa"
    assert castellvi_type({"left": "II", "right": "III"}) == "IV"
    assert castellvi_type({}) == "0"
    assert set(VARIANTS) >= {"L6", "lumbarised_S1", "castellvi_IV", "whole_lumbar"}


def test_bad_variant_and_levels_are_refused():
    with pytest.raises(InputError, match="variant"):
        sample_params(0, variant="castellvi_V")
    with pytest.raises(InputError, match="thoracic_levels"):
        sample_params(0, thoracic_levels=("T12",))  # needs lumbar levels from L1
    with pytest.raises(InputError, match="Castellvi"):
        from spineai.phantom import castellvi_type as ct

        ct({"left": "V"})
