"""Level labelling on phantoms whose vertebra, disc and root names were scrambled: numbering from the sacrum
and from the last rib, L6 and a lumbarised S1, Castellvi types, outputs (API and command line)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from spineai import io
from spineai.cli import main
from spineai.levels import label_levels
from spineai.phantom import generate_ct_phantom
from spineai.phantom.scramble import level_agreement, scramble_level_labels


def _run(case, seed: int = 0, with_ct: bool = True):
    scrambled = scramble_level_labels(case.labels, seed)
    result = label_levels(scrambled, ct=case.image if with_ct else None)
    return result, level_agreement(case.labels, result.labelmap.image)


@pytest.fixture(scope="module")
def default_case():
    return generate_ct_phantom(3, spacing_mm=2.0, progress=False)


@pytest.fixture(scope="module")
def castellvi_case():
    return generate_ct_phantom(5, variant="castellvi_IV", spacing_mm=2.0, progress=False)


def test_scrambling_really_hides_the_names(default_case):
    scrambled = scramble_level_labels(default_case.labels, 0)
    before = level_agreement(default_case.labels, scrambled)
    assert not before["vertebrae_correct"] and not before["discs_correct"]


def test_default_phantom_is_numbered_from_the_sacrum(default_case):
    result, agree = _run(default_case, seed=1)
    assert result.names == ["L3", "L4", "L5", "S1"]
    assert agree["vertebrae_correct"] and agree["discs_correct"] and agree["roots_correct"], agree["wrong"]
    assert result.anchor["method"] == "sacrum" and result.transitional["castellvi_type"] == "0"
    assert all(v.trusted for v in result.vertebrae)
    assert result.get("L5").verse_label == 24
    assert any("sacrum" in e for e in result.evidence)


def test_castellvi_iv_with_t12_in_view(castellvi_case):
    result, agree = _run(castellvi_case, seed=2)
    truth = castellvi_case.truth["level_truth"]["transitional"]
    assert agree["vertebrae_correct"] and agree["discs_correct"], agree["wrong"]
    assert result.anchor["method"] == "both" and result.lumbar_count == 5
    assert result.transitional["vertebra"] == "L5"
    assert {s: e["type"] for s, e in result.transitional["castellvi"].items()} == truth["castellvi"]
    assert result.transitional["castellvi_type"] == "IV"
    assert "transitional" in result.get("L5").flags and "rib_bearing" in result.get("T12").flags


def test_castellvi_without_the_thoracolumbar_junction_is_flagged(castellvi_case):
    # without the CT no rib can be seen: the numbering rests on the sacrum at a transitional junction
    result, agree = _run(castellvi_case, seed=3, with_ct=False)
    assert agree["vertebrae_correct"]
    assert result.anchor["method"] == "sacrum"
    assert not result.get("L5").trusted and "low_confidence" in result.get("L5").flags
    assert any("override" in w for w in result.warnings)


@pytest.mark.parametrize("variant", ["L6", "lumbarised_S1"])
def test_six_lumbar_type_vertebrae_get_l6(variant):
    case = generate_ct_phantom(6, variant=variant, spacing_mm=2.0, progress=False)
    result, agree = _run(case, seed=4)
    assert agree["vertebrae_correct"] and agree["discs_correct"], agree["wrong"]
    assert result.names[-2:] == ["L6", "S1"] and result.get("L6").verse_label == 25
    assert (
        result.lumbar_count == 6
        and result.transitional["kind"] == case.truth["level_truth"]["transitional"]["kind"]
    )
    assert result.get("L6").trusted


def test_outputs_and_command_line(default_case, tmp_path, capsys):
    seg = tmp_path / "in" / "labels.nii.gz"
    io.write_labelmap_nifti(
        io.LabelMap(scramble_level_labels(default_case.labels, 5), io.anatomy.CANONICAL), seg
    )
    ct = tmp_path / "in" / "ct.nii.gz"
    io.write_image(default_case.image, ct)
    out = tmp_path / "levels"
    assert main(["levels", str(seg), "--ct", str(ct), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "L5" in printed and "evidence" in printed
    data = json.loads((out / "levels.json").read_text())
    assert [v["name"] for v in data["vertebrae"]] == ["L3", "L4", "L5", "S1"]
    assert data["transitional"]["castellvi_type"] == "0"
    rows = (out / "levels.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:4] == ["name", "verse_label", "input_name", "confidence"] and len(rows) == 5
    relabelled = io.read_labelmap(out / "labels.seg.nrrd")
    assert level_agreement(default_case.labels, relabelled.canonical().image)["vertebrae_correct"]
    nifti = io.read_labelmap(out / "labels.nii.gz")
    assert set(nifti.structures_present()) >= {"L3", "L4", "L5", "S1", "disc_L5_S1"}
    # nothing is overwritten without --overwrite
    before = (out / "levels.json").read_bytes()
    assert main(["levels", str(seg), "-o", str(out), "--ct", str(ct)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (out / "levels.json").read_bytes() == before


def test_bone_class_that_cannot_be_split_is_refused_clearly(default_case):
    # the 3-class map: every vertebra is just "bone", and at 2 mm the facet joints connect them all
    arr = sitk.GetArrayFromImage(default_case.labels)
    from spineai.anatomy import BY_LABEL, BY_NAME
    from spineai.errors import InputError

    out = arr.copy()
    for v in np.unique(arr):
        s = BY_LABEL.get(int(v))
        if s is not None and s.kind in ("vertebra", "sacrum"):
            out[arr == v] = BY_NAME["bone"].label
    img = sitk.GetImageFromArray(out)
    img.CopyInformation(default_case.labels)
    with pytest.raises(InputError, match="cannot be told apart") as err:
        label_levels(img)
    assert "own label" in str(err.value)
