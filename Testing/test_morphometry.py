"""Per-level morphometry against the phantom's analytic values: disc heights, canal (dural sac) area and
diameter, foraminal height, width and area, lateral recess depth; a herniation narrows its recess; outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from spineai import io
from spineai.anatomy import BY_LABEL
from spineai.cli import main
from spineai.errors import InputError
from spineai.levels.morphometry import measure_morphometry
from spineai.phantom import generate_ct_phantom
from spineai.phantom.morphometry import morphometry_truth

LEVELS = ["L4-L5", "L5-S1"]


@pytest.fixture(scope="module")
def case():
    return generate_ct_phantom(
        11, spacing_mm=1.0, progress=False, fov_levels=("L4", "L5", "S1"), herniations=[]
    )


@pytest.fixture(scope="module")
def pairs(case):
    truth = morphometry_truth(case.anatomy, LEVELS)
    measured = measure_morphometry(case.labels, levels=LEVELS)
    out = []
    for lv in LEVELS:
        t, m = truth[lv], measured.get(lv)
        for k in ("anterior", "middle", "posterior"):
            out.append((f"{lv} disc {k}", t["disc_height_mm"][k], m.disc_height_mm[k]))
        out.append((f"{lv} canal area", t["canal_area_mm2"], m.canal_area_mm2))
        out.append((f"{lv} canal AP", t["canal_ap_mm"], m.canal_ap_mm))
        for side in ("left", "right"):
            for k in ("height_mm", "width_mm", "area_mm2"):
                out.append((f"{lv} {side} foramen {k}", t["foramen"][side].get(k), m.foramen[side].get(k)))
            out.append(
                (f"{lv} {side} recess", t["lateral_recess_depth_mm"][side], m.lateral_recess_depth_mm[side])
            )
    return out


def _within(t, m) -> bool:
    return t is not None and m is not None and (abs(m - t) <= 1.0 or abs(m - t) <= 0.1 * abs(t))


def test_nine_in_ten_measurements_within_1mm_or_10_percent(pairs):
    good = [name for name, t, m in pairs if _within(t, m)]
    bad = [(name, t, m) for name, t, m in pairs if not _within(t, m)]
    assert len(good) >= 0.9 * len(pairs), bad


def test_disc_heights_and_canal_are_close(pairs):
    for name, t, m in pairs:
        if " disc " in name:
            assert m == pytest.approx(t, abs=0.5), name
        if "canal area" in name:
            assert m == pytest.approx(t, rel=0.08), name
        if "canal AP" in name:
            assert m == pytest.approx(t, abs=1.0), name
    # the wedge of a lordotic disc: taller in front
    heights = {n: m for n, _, m in pairs if " disc " in n}
    assert heights["L5-S1 disc anterior"] > heights["L5-S1 disc middle"] > heights["L5-S1 disc posterior"]


def test_herniation_narrows_its_lateral_recess():
    case = generate_ct_phantom(
        6,
        spacing_mm=1.5,
        progress=False,
        fov_levels=("L4", "L5", "S1"),
        herniations=[{"level": "L5-S1", "side": "right", "size_mm": 6.0}],
        stenoses=[],
    )
    truth = morphometry_truth(case.anatomy, ["L5-S1"])["L5-S1"]["lateral_recess_depth_mm"]
    measured = measure_morphometry(case.labels, levels=["L5-S1"]).get("L5-S1").lateral_recess_depth_mm
    assert truth["right"] < truth["left"] - 2.0
    assert measured["right"] < measured["left"] - 1.5


def test_command_line_writes_json_and_tsv(case, tmp_path, capsys):
    seg = tmp_path / "labels.nii.gz"
    io.write_labelmap_nifti(io.LabelMap(case.labels, io.anatomy.CANONICAL), seg)
    out = tmp_path / "morph"
    assert main(["morphometry", str(seg), "-o", str(out), "--levels", "L5-S1"]) == 0
    assert "L5-S1" in capsys.readouterr().out
    data = json.loads((out / "morphometry.json").read_text())
    assert data["units"] == "mm, mm2" and [m["level"] for m in data["levels"]] == ["L5-S1"]
    assert set(data["levels"][0]["foramen"]) == {"left", "right"}
    rows = (out / "morphometry.tsv").read_text().splitlines()
    assert rows[0].startswith("level\tside") and len(rows) == 3


def test_a_map_without_discs_is_refused(case):
    arr = sitk.GetArrayFromImage(case.labels)
    for v in np.unique(arr):
        s = BY_LABEL.get(int(v))
        if s is not None and s.kind == "disc":
            arr[arr == v] = 0
    img = sitk.GetImageFromArray(arr)
    img.CopyInformation(case.labels)
    with pytest.raises(InputError, match="disc"):
        measure_morphometry(img)
