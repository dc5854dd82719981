"""Canonical structures, Slicer terminology and the label-convention mappings of ``spineai.anatomy``."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from spineai import anatomy
from spineai.anatomy import (
    BY_LABEL,
    BY_NAME,
    CANONICAL,
    PAPER_3CLASS,
    STRUCTURES,
    TOTALSEG_V2,
    TOTALSEG_V2_NAMES,
    TPTBOX_SUBREGION,
    TPTBOX_VERTEBRA,
    VERSE,
    LabelMapping,
    get_mapping,
    to_three_class,
)
from spineai.errors import InputError, OutputExistsError

REPO_ROOT = Path(__file__).resolve().parents[1]
ALL_MAPPINGS = (CANONICAL, VERSE, TOTALSEG_V2, TPTBOX_VERTEBRA, TPTBOX_SUBREGION, PAPER_3CLASS)


def canon(*names: str) -> list[int]:
    return [BY_NAME[n].label for n in names]


# ================================================================================ structure table
def test_every_structure_has_a_unique_name_value_and_colour():
    names = [s.name for s in STRUCTURES]
    labels = [s.label for s in STRUCTURES]
    assert len(set(names)) == len(names)
    assert len(set(labels)) == len(labels)
    assert all(1 <= v <= 255 for v in labels)
    for s in STRUCTURES:
        assert s.kind in anatomy.KINDS, s
        assert len(s.rgb) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in s.rgb), s
    # anatomical structures are told apart by colour; the two paper classes are a separate label map
    anatomical = Counter(s.rgb for s in STRUCTURES if s.kind != "class")
    assert [rgb for rgb, n in anatomical.items() if n > 1] == []
    assert BY_NAME["bone"].rgb != BY_NAME["nerve"].rgb


def test_label_values_others_rely_on_are_stable():
    expected = {
        "T12": 1,
        "L4": 5,
        "L5": 6,
        "L6": 7,
        "S1": 8,
        "ilium_left": 9,
        "disc_L4_L5": 15,
        "disc_L5_S1": 16,
        "dural_sac": 19,
        "root_L5_left": 24,
        "root_S1_right": 27,
        "bone": 30,
        "nerve": 31,
        "vertebral_arch": 41,
        "vertebral_body": 50,
    }
    assert {n: BY_NAME[n].label for n in expected} == expected
    assert BY_NAME["L5"].rgb == (200, 160, 100)
    # T13 got a value no other structure had
    assert (
        BY_NAME["T13"].kind == "vertebra" and Counter(s.label for s in STRUCTURES)[BY_NAME["T13"].label] == 1
    )


def test_side_follows_the_name():
    assert BY_NAME["root_L5_left"].side == "left"
    assert BY_NAME["transverse_process_right"].side == "right"
    assert BY_NAME["L5"].side is None


def test_structures_of_kind():
    roots = {s.name for s in anatomy.structures_of_kind("root")}
    assert roots == {
        f"root_{lvl}_{side}" for lvl in ("L3", "L4", "L5", "S1", "L6") for side in ("left", "right")
    }
    assert [s.name for s in anatomy.structures_of_kind("ilium")] == ["ilium_left", "ilium_right"]
    assert {s.name for s in anatomy.structures_of_kind("class")} == {"bone", "nerve"}
    with pytest.raises(InputError, match="Unknown structure kind 'bones'"):
        anatomy.structures_of_kind("bones")


def test_vertebra_neighbours_honour_l6_and_t13_only_when_present():
    assert anatomy.vertebra_below("L4") == "L5"
    assert anatomy.vertebra_below("L5") == "S1"
    assert anatomy.vertebra_below("L5", present={"L4", "L5", "L6", "S1"}) == "L6"
    assert anatomy.vertebra_below("L6") == "S1"
    assert anatomy.vertebra_above("S1") == "L5"
    assert anatomy.vertebra_above("S1", present=["L6"]) == "L6"
    assert anatomy.vertebra_above("L1") == "T12"
    assert anatomy.vertebra_above("L1", present={"T13"}) == "T13"
    assert anatomy.vertebra_below("T12", present={"T13"}) == "T13"
    assert anatomy.vertebra_below("S1") is None
    assert anatomy.vertebra_above("C1") is None
    with pytest.raises(InputError, match="not a vertebra"):
        anatomy.vertebra_below("disc_L4_L5")


def test_unknown_structure_name_lists_the_valid_ones():
    with pytest.raises(InputError) as info:
        anatomy.structure("L7")
    assert "'L7'" in str(info.value) and "root_L5_left" in info.value.fix


# ================================================================================ Slicer terminology
def test_every_structure_has_a_seven_field_terminology_entry_that_identifies_it():
    for s in STRUCTURES:
        entry = anatomy.terminology_entry(s.name)
        parts = entry.split("~")
        assert len(parts) == 7, entry
        assert parts[0] in (anatomy.SPINEAI_CONTEXT, anatomy.SLICER_DICOM_CONTEXT)
        assert parts[4] == anatomy.REGION_CONTEXT
        for code in (parts[1], parts[2], parts[3], parts[5], parts[6]):
            assert code.count("^") == 2, entry
        assert anatomy.parse_terminology_entry(entry) == anatomy.terminology_fields(s.name)
        # no two structures share a terminology, so a renamed segment is still recognised
        assert anatomy.name_from_terminology(entry) == s.name


def test_terminology_uses_the_known_snomed_codes():
    def type_code(name):
        return anatomy.terminology_fields(name)["type"]["code_value"]

    assert type_code("L4") == "11994002"
    assert type_code("L5") == "49668003"
    assert type_code("L3") == "36470004"
    assert type_code("T12") == "23215003"
    assert type_code("S1") == "54735007"  # canonical S1 holds the sacrum
    assert type_code("disc_L4_L5") == "84020006"
    assert type_code("disc_L5_S1") == "715056000"
    assert type_code("vertebral_arch") == "40265002"
    assert type_code("spinous_process") == "55678000"
    l6 = anatomy.terminology_fields("L6")["type"]
    assert l6["code_value"] == "73903008" and "L6" in l6["code_meaning"]  # lumbar vertebra, named clearly
    root = anatomy.terminology_fields("root_L5_left")
    assert root["type"]["code_value"] == "69733000"
    assert root["type_modifier"]["code_value"] == "7771000"
    assert root["region"]["code_value"] == "49668003"  # the level: root exits under the L5 pedicle
    assert anatomy.terminology_fields("root_S1_right")["type_modifier"]["code_value"] == "24028007"
    assert anatomy.terminology_entry("L5") == (
        "Segmentation category and type - SpineAI~SCT^123037004^Anatomical Structure~SCT^49668003^L5 vertebra"
        "~^^~Anatomic codes - DICOM master list~^^~^^"
    )
    # codes already in Slicer's default DICOM master list refer to that context
    assert anatomy.terminology_entry("ilium_right") == (
        "Segmentation category and type - DICOM master list~SCT^123037004^Anatomical Structure~SCT^22356005^Ilium"
        "~SCT^24028007^Right~Anatomic codes - DICOM master list~^^~^^"
    )
    assert anatomy.terminology_fields("nerve")["category"]["code_value"] == "85756007"


def test_parser_reads_slicers_own_default_entry_and_rejects_malformed_ones():
    default = (
        "Segmentation category and type - 3D Slicer General Anatomy list~SCT^85756007^Tissue~SCT^85756007^Tissue"
        "~^^~Anatomic codes - DICOM master list~^^~^^"
    )
    fields = anatomy.parse_terminology_entry(default)
    assert fields["type"]["code_meaning"] == "Tissue" and fields["type_modifier"] is None
    with pytest.raises(InputError, match="instead of 7"):
        anatomy.parse_terminology_entry("a~b~c")
    with pytest.raises(InputError, match="scheme\\^value\\^meaning"):
        anatomy.parse_terminology_entry("ctx~SCT^1~SCT^2^x~^^~r~^^~^^")
    with pytest.raises(InputError, match="matches no canonical"):
        anatomy.name_from_terminology(default)


# dcmqi segment-context-schema (the schema Slicer's *.term.json files declare); additionalProperties: false
_CATEGORY_KEYS = {
    "CodeValue",
    "CodeMeaning",
    "CodingSchemeDesignator",
    "recommendedDisplayRGBValue",
    "3dSlicerLabel",
    "cid",
    "contextGroupName",
    "UMLSConceptUID",
    "SNOMEDCTConceptID",
    "showAnatomy",
    "Type",
}
_TYPE_KEYS = {
    "CodeValue",
    "CodeMeaning",
    "CodingSchemeDesignator",
    "recommendedDisplayRGBValue",
    "paired",
    "3dSlicerLabel",
    "3dSlicerIntegerLabel",
    "cid",
    "contextGroupName",
    "UMLSConceptUID",
    "SNOMEDCTConceptID",
    "Modifier",
}
_MODIFIER_KEYS = {
    "CodeValue",
    "CodeMeaning",
    "CodingSchemeDesignator",
    "recommendedDisplayRGBValue",
    "3dSlicerLabel",
    "3dSlicerIntegerLabel",
    "cid",
    "contextGroupName",
    "UMLSConceptUID",
    "SNOMEDCTConceptID",
}
_SLICER_SCHEMAS = {
    "https://raw.githubusercontent.com/qiicr/dcmqi/master/doc/segment-context-schema.json#",
    "https://raw.githubusercontent.com/qiicr/dcmqi/master/doc/schemas/segment-context-schema.json#",
}


def _check_code_item(item: dict, allowed: set[str], where: str) -> None:
    assert set(item) <= allowed, (where, set(item) - allowed)
    for key in ("CodeValue", "CodeMeaning", "CodingSchemeDesignator"):
        assert isinstance(item[key], str) and item[key], (where, key)
    assert len(item["CodeMeaning"]) <= 64 and len(item["CodeValue"]) <= 64  # DICOM LO / SH
    if "recommendedDisplayRGBValue" in item:
        rgb = item["recommendedDisplayRGBValue"]
        assert len(rgb) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in rgb), where


def test_terminology_json_follows_slicers_schema_and_holds_every_code_the_entries_use():
    data = anatomy.load_terminology_json()
    assert anatomy.terminology_json_path().name == "SpineAI.term.json"
    assert data["@schema"] in _SLICER_SCHEMAS
    assert data["SegmentationCategoryTypeContextName"] == anatomy.SPINEAI_CONTEXT
    assert set(data["SegmentationCodes"]) == {"Category"}
    codes: set[tuple[str, str]] = set()
    for cat in data["SegmentationCodes"]["Category"]:
        _check_code_item(cat, _CATEGORY_KEYS, cat["CodeMeaning"])
        assert isinstance(cat["showAnatomy"], bool) and cat["Type"]
        codes.add((cat["CodingSchemeDesignator"], cat["CodeValue"]))
        type_keys = [(t["CodingSchemeDesignator"], t["CodeValue"]) for t in cat["Type"]]
        assert len(set(type_keys)) == len(type_keys), "Slicer finds types by scheme and value: no duplicates"
        for typ in cat["Type"]:
            _check_code_item(typ, _TYPE_KEYS, typ["CodeMeaning"])
            assert typ["paired"] in ("Y", "N", "U")
            codes.add((typ["CodingSchemeDesignator"], typ["CodeValue"]))
            mods = typ.get("Modifier", [])
            assert len({(m["CodingSchemeDesignator"], m["CodeValue"]) for m in mods}) == len(mods)
            for mod in mods:
                _check_code_item(mod, _MODIFIER_KEYS, mod["CodeMeaning"])
                codes.add((mod["CodingSchemeDesignator"], mod["CodeValue"]))
    for s in STRUCTURES:
        fields = anatomy.terminology_fields(s.name)
        for part in ("category", "type", "type_modifier", "region"):
            code = fields[part]
            if code is not None:
                assert (code["coding_scheme"], code["code_value"]) in codes, (s.name, part, code)
    # a segment named like a structure gets its terminology in Slicer through 3dSlicerLabel
    labels = {t.get("3dSlicerLabel") for c in data["SegmentationCodes"]["Category"] for t in c["Type"]}
    assert {"L5", "S1", "dural_sac", "disc_L5_S1"} <= labels


def test_shipped_terminology_json_is_up_to_date_with_the_table():
    assert anatomy.load_terminology_json() == anatomy.build_terminology_json()


# ================================================================================ label mappings
def test_verse_values_map_exactly():
    expected = {
        20: "L1",
        21: "L2",
        22: "L3",
        23: "L4",
        24: "L5",
        25: "L6",
        26: "S1",
        28: "T13",
        19: "T12",
        1: "C1",
        7: "C7",
        8: "T1",
        18: "T11",
    }
    for value, name in expected.items():
        assert VERSE.values[value] == name
        assert VERSE.to_canonical(np.array([value]))[0] == BY_NAME[name].label
    assert 27 not in VERSE.values  # the coccyx has no canonical structure
    assert TPTBOX_VERTEBRA.values == VERSE.values


def test_tptbox_subregion_values_map_exactly():
    assert TPTBOX_SUBREGION.values == {
        41: "vertebral_arch",
        42: "spinous_process",
        43: "transverse_process_left",
        44: "transverse_process_right",
        45: "superior_articular_process_left",
        46: "superior_articular_process_right",
        47: "inferior_articular_process_left",
        48: "inferior_articular_process_right",
        49: "vertebral_body_cortex",
        50: "vertebral_body",
    }


def test_totalsegmentator_names_and_total_task_ids():
    assert TOTALSEG_V2_NAMES["vertebrae_L5"] == "L5"
    assert TOTALSEG_V2_NAMES["vertebrae_S1"] == "S1" and TOTALSEG_V2_NAMES["sacrum"] == "S1"
    assert TOTALSEG_V2_NAMES["hip_left"] == "ilium_left" and TOTALSEG_V2_NAMES["hip_right"] == "ilium_right"
    assert TOTALSEG_V2_NAMES["spinal_cord"] == "dural_sac"
    assert anatomy.totalseg_to_canonical("vertebrae_T12") == "T12"
    with pytest.raises(InputError, match="'liver'"):
        anatomy.totalseg_to_canonical("liver")
    # ids of TotalSegmentator's `total` task (map_to_binary.py)
    ts_ids = {
        25: "S1",
        26: "S1",
        27: "L5",
        28: "L4",
        31: "L1",
        32: "T12",
        43: "T1",
        44: "C7",
        50: "C1",
        77: "ilium_left",
        78: "ilium_right",
        79: "dural_sac",
    }
    for value, name in ts_ids.items():
        assert TOTALSEG_V2.values[value] == name
    labels = np.array([0, 5, 27, 79, 77, 26, 25])  # 5 = liver
    with pytest.raises(InputError) as info:
        TOTALSEG_V2.to_canonical(labels)
    assert "5" in str(info.value) and "drop_unmapped" in info.value.fix
    out = TOTALSEG_V2.to_canonical(labels, drop_unmapped=True)
    assert out.tolist() == [0, 0, *canon("L5", "dural_sac", "ilium_left", "S1", "S1")]
    # back to TotalSegmentator: S1 goes to the first id listed for it (25, sacrum)
    assert TOTALSEG_V2.from_canonical(out).tolist() == [0, 0, 27, 79, 77, 25, 25]


def test_unknown_label_values_raise_and_name_the_values():
    labels = np.zeros((4, 5, 6), dtype=np.uint8)
    labels[0, 0, :3] = [20, 27, 99]
    with pytest.raises(InputError) as info:
        VERSE.to_canonical(labels)
    message = str(info.value)
    assert "27" in message and "99" in message and "'verse'" in message
    assert "20," not in message.split("it lists")[0]  # a mapped value is not reported as unknown
    assert info.value.fix
    with pytest.raises(InputError, match="70000"):
        CANONICAL.to_canonical(np.array([0, 5, 70000], dtype=np.int32))
    dropped = VERSE.to_canonical(labels, drop_unmapped=True)
    assert sorted(np.unique(dropped).tolist()) == [0, BY_NAME["L1"].label]


def test_bad_label_arrays_are_refused():
    with pytest.raises(InputError, match="non-integer"):
        CANONICAL.to_canonical(np.array([0.0, 0.5]))
    with pytest.raises(InputError, match="non-integer"):
        CANONICAL.to_canonical(np.array([0.0, np.nan]))
    with pytest.raises(InputError, match="negative"):
        CANONICAL.to_canonical(np.array([0, -1]))
    # whole numbers stored as floats (common in NIfTI) are accepted
    assert CANONICAL.to_canonical(np.array([[0.0, 6.0]])).tolist() == [[0, 6]]
    assert CANONICAL.to_canonical(np.array([True, False])).dtype == np.uint8


def test_from_canonical_refuses_structures_the_convention_cannot_hold():
    with pytest.raises(InputError) as info:
        VERSE.from_canonical(np.array(canon("L5", "root_L5_left")))
    assert "root_L5_left" in str(info.value)
    assert VERSE.from_canonical(np.array(canon("L5", "root_L5_left")), drop_unmapped=True).tolist() == [24, 0]
    with pytest.raises(InputError, match="not canonical label values"):
        VERSE.from_canonical(np.array([0, 200]))


@pytest.mark.parametrize("mapping", ALL_MAPPINGS, ids=lambda m: m.source)
def test_conversion_round_trip(mapping: LabelMapping):
    rng = np.random.default_rng(7)
    values = np.array([0, *mapping.values])
    labels = rng.choice(values, size=(6, 7, 8))
    canonical = mapping.to_canonical(labels)
    assert canonical.dtype == np.uint8 and canonical.shape == labels.shape
    expected = np.vectorize(lambda v: 0 if v == 0 else BY_NAME[mapping.values[int(v)]].label)(labels)
    np.testing.assert_array_equal(canonical, expected)
    np.testing.assert_array_equal(mapping.to_canonical(mapping.from_canonical(canonical)), canonical)


def test_names_lists_each_canonical_structure_once_in_value_order():
    assert VERSE.names()[:3] == ["C1", "C2", "C3"] and VERSE.names()[-2:] == ["S1", "T13"]
    assert TOTALSEG_V2.names().count("S1") == 1 and TOTALSEG_V2.names()[0] == "S1"
    assert PAPER_3CLASS.names() == ["bone", "nerve"]
    assert CANONICAL.names() == [s.name for s in sorted(STRUCTURES, key=lambda s: s.label)]


def test_large_maps_are_converted_block_by_block(monkeypatch):
    labels = (
        np.random.default_rng(3).choice([0, 20, 21, 22, 23, 24, 25, 26], size=(5, 9, 11)).astype(np.int16)
    )
    whole = VERSE.to_canonical(labels)
    monkeypatch.setattr(anatomy, "_CHUNK", 7)  # blocks that do not divide the volume
    np.testing.assert_array_equal(VERSE.to_canonical(labels), whole)
    np.testing.assert_array_equal(VERSE.from_canonical(whole), labels)
    with pytest.raises(InputError, match="27"):
        VERSE.to_canonical(np.concatenate([labels.ravel(), [27]]))


@pytest.mark.parametrize("mapping", ALL_MAPPINGS, ids=lambda m: m.source)
def test_sidecar_json_round_trip(mapping: LabelMapping, tmp_path):
    data = mapping.to_json()
    assert data["convention"] == mapping.source
    assert all(isinstance(k, str) for k in data["labels"])
    first_value, first_name = next(iter(mapping.values.items()))
    item = data["labels"][str(first_value)]
    assert item["name"] == first_name and item["rgb"] == list(BY_NAME[first_name].rgb)
    assert item["terminology"] == anatomy.terminology_entry(first_name)
    assert LabelMapping.from_json(data) == mapping
    assert LabelMapping.from_json(json.dumps(data)) == mapping
    path = mapping.save_json(tmp_path / "labels.json")
    assert LabelMapping.load_json(path) == mapping
    with pytest.raises(OutputExistsError):
        mapping.save_json(path)


def test_malformed_sidecars_are_refused():
    with pytest.raises(InputError, match="no 'labels'"):
        LabelMapping.from_json({"convention": "x"})
    with pytest.raises(InputError, match="not an integer"):
        LabelMapping.from_json({"convention": "x", "labels": {"five": {"name": "L5"}}})
    with pytest.raises(InputError, match="not a canonical name"):
        LabelMapping.from_json({"convention": "x", "labels": {"5": {"name": "L7"}}})
    with pytest.raises(InputError, match="0 is always background"):
        LabelMapping.from_json({"convention": "x", "labels": {"0": {"name": "L5"}}})
    with pytest.raises(InputError, match="not valid JSON"):
        LabelMapping.from_json("{not json")
    with pytest.raises(InputError, match="does not exist"):
        LabelMapping.load_json("/nonexistent/labels.json")
    # a class can be dropped on purpose by mapping it to background
    dropping = LabelMapping.from_json({"convention": "x", "labels": {"3": {"name": "background"}, "4": "L4"}})
    assert dropping.to_canonical(np.array([3, 4])).tolist() == [0, BY_NAME["L4"].label]


def test_get_mapping_registry():
    assert get_mapping("verse") is VERSE
    assert get_mapping("TotalSeg-V2") is TOTALSEG_V2
    assert get_mapping("canonical") is CANONICAL and get_mapping("spineai") is CANONICAL
    assert get_mapping("paper_3class") is PAPER_3CLASS
    with pytest.raises(InputError) as info:
        get_mapping("nnunet")
    assert "'nnunet'" in str(info.value) and "verse" in info.value.fix


# ================================================================================ the paper's classes
def test_three_class_rule():
    bone = [s.name for s in STRUCTURES if s.kind in ("vertebra", "sacrum", "ilium", "subregion")] + ["bone"]
    nerve = [s.name for s in STRUCTURES if s.kind == "root"] + ["dural_sac", "nerve"]
    discs = [s.name for s in STRUCTURES if s.kind == "disc"]
    assert to_three_class(np.array(canon(*bone))).tolist() == [1] * len(bone)
    assert to_three_class(np.array(canon(*nerve))).tolist() == [2] * len(nerve)
    assert to_three_class(np.array(canon(*discs))).tolist() == [0] * len(discs)
    assert to_three_class(np.array(canon(*discs)), discs_as="bone").tolist() == [1] * len(discs)
    assert to_three_class(np.zeros((2, 3), dtype=np.uint8)).tolist() == [[0, 0, 0], [0, 0, 0]]
    # the 3-class map read back through the paper's convention gives the canonical class structures
    assert PAPER_3CLASS.to_canonical(to_three_class(np.array(canon("L5", "root_L5_left")))).tolist() == canon(
        "bone", "nerve"
    )
    with pytest.raises(InputError, match="not canonical label values"):
        to_three_class(np.array([0, 6, 250]))
    with pytest.raises(InputError, match="discs_as"):
        to_three_class(np.array([0]), discs_as="nerve")


# ================================================================================ documentation
def test_docs_table_lists_every_structure_with_its_value_and_codes():
    text = (REPO_ROOT / "docs" / "anatomy.md").read_text(encoding="utf-8")
    rows = {
        m.group(1): m.group(2) for m in re.finditer(r"^\|\s*`([^`]+)`\s*\|\s*(\d+)\s*\|(.*)$", text, re.M)
    }
    for s in STRUCTURES:
        assert rows.get(s.name) == str(s.label), s.name
        row = next(line for line in text.splitlines() if line.startswith(f"| `{s.name}` |"))
        assert anatomy.terminology_fields(s.name)["type"]["code_value"] in row, s.name


# ================================================================================ real data
def _physical_centroids(image, labels: np.ndarray) -> dict[int, np.ndarray]:
    """Centroid (mm, LPS) of each non-zero value of a (z, y, x) label array on ``image``'s grid."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    spacing = np.array(image.GetSpacing())
    origin = np.array(image.GetOrigin())
    out = {}
    for value in np.unique(labels):
        if value:
            ijk = np.argwhere(labels == value)[:, ::-1].mean(axis=0)  # (x, y, z) index
            out[int(value)] = origin + direction @ (spacing * ijk)
    return out


@pytest.mark.shared_data
def test_verse_file_maps_to_lumbar_vertebrae_in_cranio_caudal_order(shared_data):
    sitk = pytest.importorskip("SimpleITK")
    image = sitk.ReadImage(str(shared_data / "ct" / "verse014" / "sub-verse014_seg-vert_msk.nii.gz"))
    canonical = VERSE.to_canonical(sitk.GetArrayFromImage(image))
    centroids = _physical_centroids(image, canonical)
    names = [BY_LABEL[v].name for v in centroids]
    assert names == ["L1", "L2", "L3", "L4", "L5"]
    z = [centroids[BY_NAME[n].label][2] for n in names]  # LPS +z is superior
    assert z == sorted(z, reverse=True)
    for upper in names[:-1]:
        assert anatomy.vertebra_below(upper) == names[names.index(upper) + 1]


@pytest.mark.shared_data
def test_tptbox_files_map_with_patient_left_at_larger_lps_x(shared_data):
    sitk = pytest.importorskip("SimpleITK")
    folder = shared_data / "ct" / "tptbox_l2_l4"
    vert_image = sitk.ReadImage(str(folder / "sub-ct_seg-vert_label-22_msk.nii.gz"))
    vertebrae = _physical_centroids(
        vert_image, TPTBOX_VERTEBRA.to_canonical(sitk.GetArrayFromImage(vert_image))
    )
    assert [BY_LABEL[v].name for v in vertebrae] == ["L2", "L3", "L4"]
    assert (
        vertebrae[BY_NAME["L2"].label][2]
        > vertebrae[BY_NAME["L3"].label][2]
        > vertebrae[BY_NAME["L4"].label][2]
    )

    sub_image = sitk.ReadImage(str(folder / "sub-ct_seg-subreg_label-22_msk.nii.gz"))
    sub = TPTBOX_SUBREGION.to_canonical(sitk.GetArrayFromImage(sub_image))
    assert {BY_LABEL[v].name for v in np.unique(sub) if v} == set(TPTBOX_SUBREGION.values.values())
    c = {BY_LABEL[v].name: xyz for v, xyz in _physical_centroids(sub_image, sub).items()}
    for part in ("transverse_process", "superior_articular_process", "inferior_articular_process"):
        assert c[f"{part}_left"][0] > c[f"{part}_right"][0] + 5.0, part  # LPS +x is the patient's left
    assert c["spinous_process"][1] > c["vertebral_body"][1] + 30.0  # LPS +y is posterior
    # 49 is the cortical shell (touches the outside), 50 the body it encloses
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    outside = scipy_ndimage.binary_dilation(sub == 0)
    assert (outside & (sub == BY_NAME["vertebral_body_cortex"].label)).any()
    assert not (outside & (sub == BY_NAME["vertebral_body"].label)).any()
