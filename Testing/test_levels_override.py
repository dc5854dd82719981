"""User overrides of the numbering: the map is relabelled and the triangles and morphometry named by level
follow the override."""

from __future__ import annotations

import json

import pytest

from spineai import io
from spineai.cli import main
from spineai.errors import InputError
from spineai.levels import label_levels, parse_override
from spineai.levels.morphometry import measure_morphometry
from spineai.levels.outputs import remeasure, triangle_levels
from spineai.phantom import generate_ct_phantom


@pytest.fixture(scope="module")
def case():
    return generate_ct_phantom(8, progress=False, spacing_mm=(1.5, 1.5, 1.5), fov_levels=("L4", "L5", "S1"))


@pytest.fixture(scope="module")
def automatic(case):
    result = label_levels(case.labels, ct=case.image)
    return result, remeasure(result)


def _areas(measurements):
    return {
        (f.level, f.side): round(f.triangles["kambin"].area_mm2, 6) for f in measurements.foramina if f.ok
    }


@pytest.mark.parametrize("rule", ["shift=+1", "lowest=L6", {"lowest": "L6"}, {"shift": 1}])
def test_override_renames_levels_and_triangles(case, automatic, rule):
    auto, auto_tri = automatic
    assert auto.names == ["L4", "L5", "S1"] and triangle_levels(auto) == ["L4-L5", "L5-S1"]
    result = label_levels(case.labels, ct=case.image, override=rule)
    assert result.names == ["L5", "L6", "S1"]
    assert result.anchor["method"] == "override" and "override" in result.get("L6").flags
    assert set(result.labelmap.structures_present()) >= {"L6", "disc_L5_L6", "disc_L6_S1", "root_L6_left"}
    tri = remeasure(result)
    assert [f.level for f in tri.foramina] == ["L5-L6", "L5-L6", "L6-S1", "L6-S1"]
    renamed = {("L5-L6" if lv == "L4-L5" else "L6-S1", side): a for (lv, side), a in _areas(auto_tri).items()}
    assert _areas(tri) == pytest.approx(renamed)  # the same anatomy, measured under the new names
    assert all(f.ok for f in tri.foramina)


def test_morphometry_follows_the_override(case):
    result = label_levels(case.labels, ct=case.image, override="shift=+1")
    morph = measure_morphometry(result.labelmap)
    assert [m.level for m in morph.levels] == ["L5-L6", "L6-S1"]


def test_override_rules_are_checked():
    assert parse_override(None) is None
    assert parse_override("shift = -1") == {"shift": -1}
    assert parse_override("lowest=l6") == {"lowest": "L6"}
    for bad in ("L6", "lowest=S1", "shift=0", "shift=+9", "shift=one", {"lowest": "L6", "shift": 1}, 3):
        with pytest.raises(InputError):
            parse_override(bad)


def test_shift_beyond_l6_is_refused(case):
    with pytest.raises(InputError, match="below L6"):
        label_levels(case.labels, override="shift=+2")


def test_command_line_override_writes_renamed_measurements(case, tmp_path):
    seg = tmp_path / "labels.nii.gz"
    io.write_labelmap_nifti(io.LabelMap(case.labels, io.anatomy.CANONICAL), seg)
    out = tmp_path / "out"
    assert main(["levels", str(seg), "-o", str(out), "--override", "lowest=L6", "--measure"]) == 0
    levels = json.loads((out / "levels.json").read_text())
    assert levels["override"] == {"lowest": "L6"} and [v["name"] for v in levels["vertebrae"]] == [
        "L5",
        "L6",
        "S1",
    ]
    tri = json.loads((out / "measurements.json").read_text())
    assert {f["level"] for f in tri["foramina"]} == {"L5-L6", "L6-S1"}
    morph = json.loads((out / "morphometry.json").read_text())
    assert [m["level"] for m in morph["levels"]] == ["L5-L6", "L6-S1"]
