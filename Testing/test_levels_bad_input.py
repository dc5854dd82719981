"""Bad input to the level labelling: no sacrum, two vertebrae fused into one component, a single vertebra in view;
each message says what is wrong and which levels can still be trusted."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from spineai.anatomy import BY_NAME
from spineai.errors import InputError
from spineai.levels import label_levels
from spineai.phantom import generate_ct_phantom


def _edit(labels: sitk.Image, changes: dict[str, str | None]) -> sitk.Image:
    arr = sitk.GetArrayFromImage(labels)
    out = arr.copy()
    for name, new in changes.items():
        out[arr == BY_NAME[name].label] = 0 if new is None else BY_NAME[new].label
    img = sitk.GetImageFromArray(out)
    img.CopyInformation(labels)
    return img


@pytest.fixture(scope="module")
def whole():
    return generate_ct_phantom(12, variant="whole_lumbar", spacing_mm=2.0, progress=False)


def test_no_sacrum_asks_for_an_override(whole):
    no_sacrum = _edit(whole.labels, {"S1": None})
    with pytest.raises(InputError) as err:
        label_levels(_edit(no_sacrum, {}))  # no CT: neither the sacrum nor the ribs can be seen
    text = str(err.value)
    assert "No sacrum" in text and "override" in text and "lowest=" in text
    # with the CT, the unlabelled sacrum and the ribs are found, and the numbering is anchored
    result = label_levels(no_sacrum, ct=whole.image)
    assert result.names == ["T12", "L1", "L2", "L3", "L4", "L5"]
    assert any("not labelled" in e for e in result.evidence)
    # an override names them without any anchor
    result = label_levels(no_sacrum, override="lowest=L5")
    assert result.names == ["T12", "L1", "L2", "L3", "L4", "L5"]


def test_two_vertebrae_fused_into_one_component(whole):
    fused = _edit(whole.labels, {"L3": "L2", "disc_L2_L3": "L2"})
    result = label_levels(fused, ct=whole.image)
    assert result.names == ["T12", "L1", "L3", "L4", "L5", "S1"]  # the merged L2+L3 is named by its lower one
    merged = result.get("L3")
    assert "merged" in merged.flags and not merged.trusted
    assert result.get("L5").trusted and result.get("L4").trusted
    text = " ".join(result.warnings)
    assert "two vertebrae" in text and "can still be trusted" in text and "L5" in text


def test_single_vertebra_in_view():
    case = generate_ct_phantom(
        2, spacing_mm=2.0, progress=False, fov_levels=("L5", "S1"), fov_mm=(180.0, 200.0, 60.0)
    )
    lab = sitk.GetArrayViewFromImage(case.labels)
    ml = {n: float(np.count_nonzero(lab == BY_NAME[n].label)) * 8e-3 for n in ("L4", "L5", "S1")}
    assert ml["L5"] > 10 and ml["S1"] > 10
    result = label_levels(case.labels, ct=case.image)
    assert "L5" in result.names and result.names[-1] == "S1"
    assert any("one vertebra" in w or "fragment" in w for w in result.warnings) or ml["L4"] > 1.0
    # without the sacrum a single vertebra cannot be numbered
    only_l5 = _edit(case.labels, {"S1": None, "L4": None})
    with pytest.raises(InputError, match="one vertebra"):
        label_levels(only_l5)


def test_empty_label_map_is_refused(whole):
    empty = _edit(whole.labels, {n: None for n in ("T12", "L1", "L2", "L3", "L4", "L5", "S1")})
    with pytest.raises(InputError, match="no vertebra"):
        label_levels(empty)
