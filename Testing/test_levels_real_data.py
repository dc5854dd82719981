"""Level labelling on real CT (VerSe subject 014, the TPTBox L2-L4 sample): the numbering agrees with the
reference vertebra labels. Skipped when ../shared/data is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from spineai import io
from spineai.errors import InputError
from spineai.levels import label_levels
from spineai.phantom.scramble import level_agreement, scramble_level_labels

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ct"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"public CT data not found at {path} (it sits beside the repository as ../shared/data)")
    return path


def test_verse014_numbering_agrees_with_the_reference():
    folder = _need(DATA / "verse014")
    ref = io.read_labelmap(folder / "sub-verse014_seg-vert_msk.nii.gz", mapping="verse")
    ct = folder / "sub-verse014_ct.nii.gz"
    scrambled = scramble_level_labels(ref.canonical().image, 7)
    result = label_levels(scrambled, ct=ct)
    assert result.names == ["L1", "L2", "L3", "L4", "L5"]
    agree = level_agreement(ref.canonical().image, result.labelmap.image)
    assert agree["vertebrae_correct"], agree["wrong"]
    # the sacrum is not labelled in VerSe 014: it was found in the CT, just below L5
    assert result.anchor["method"] == "sacrum" and any("not labelled" in e for e in result.evidence)
    # the 80 mm slab cuts the transverse processes: Castellvi cannot be assessed, and says so
    assert result.transitional["castellvi_type"] == "not assessable"
    # without the CT there is no anchor
    with pytest.raises(InputError, match="override"):
        label_levels(scrambled)


def test_tptbox_l2_l4_needs_an_override_and_then_agrees():
    folder = _need(DATA / "tptbox_l2_l4")
    ref = io.read_labelmap(folder / "sub-ct_seg-vert_label-22_msk.nii.gz", mapping="tptbox_vertebra")
    ct = folder / "sub-ct_label-22_ct.nii.gz"
    with pytest.raises(InputError) as err:
        label_levels(ref, ct=ct)
    assert "No sacrum" in str(err.value) and "lowest=" in str(err.value)
    result = label_levels(scramble_level_labels(ref.canonical().image, 3), ct=ct, override="lowest=L4")
    assert result.names == ["L2", "L3", "L4"]
    assert level_agreement(ref.canonical().image, result.labelmap.image)["vertebrae_correct"]
