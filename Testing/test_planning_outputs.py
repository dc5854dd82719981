"""Outputs of the planner: Slicer markups (schema rules), the table, radiographs, 3D rendering and the CLI."""

from __future__ import annotations

import copy
import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from spineai.anatomy import STRUCTURES
from spineai.cli import main
from spineai.errors import InputError
from spineai.planning import build_markups, plan_case, validate_markups
from spineai.planning.construct import image_axes
from spineai.planning.drr import drr, synthetic_ct
from spineai.planning.markups import SCHEMA
from spineai.planning.tables import COLUMNS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory):
    from spineai.phantom import generate_ct_phantom, write_phantom_case

    case = generate_ct_phantom(
        seed=8, progress=False, spacing_mm=(1.5, 1.5, 1.5), fov_levels=("L4", "L5", "S1")
    )
    folder = tmp_path_factory.mktemp("phantom") / "case"
    paths = write_phantom_case(case, folder)
    return case, paths


@pytest.fixture(scope="module")
def planned(case_dir):
    case, _ = case_dir
    return case, plan_case(case.labels, ct=case.image, levels=["L5-S1"], sides=["left", "right"])


def test_markups_follow_the_schema_and_name_everything(planned):
    _, res = planned
    doc = build_markups(res)
    validate_markups(doc)
    assert doc["@schema"] == SCHEMA
    by_name = {m["name"]: m for m in doc["markups"]}
    for side in ("left", "right"):
        for title in ("Kambin", "Safe"):
            m = by_name[f"{title} L5-S1 {side}"]
            assert (
                m["type"] == "ClosedCurve" and m["coordinateSystem"] == "LPS" and m["coordinateUnits"] == "mm"
            )
            tri = res.get("L5-S1", side).triangles[title.lower()]
            pos = np.array([cp["position"] for cp in m["controlPoints"]])
            assert np.allclose(pos, tri.vertices_lps_mm, atol=1e-3)
            assert m["measurements"][0]["units"] == "mm2"
            assert m["measurements"][0]["value"] == pytest.approx(tri.area_mm2, abs=1e-3)
        needle = by_name[f"Needle L5-S1 {side} (safe)"]
        assert needle["type"] == "Line" and len(needle["controlPoints"]) == 2
        assert [cp["label"] for cp in needle["controlPoints"]] == ["entry", "target"]
        assert by_name[f"Entry/target L5-S1 {side} (safe)"]["type"] == "Fiducial"


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda d: d.pop("@schema"), "@schema"),
        (lambda d: d.__setitem__("@schema", "https://example.org/other.json"), "@schema"),
        (lambda d: d["markups"][0].__setitem__("type", "Triangle"), "type"),
        (lambda d: d["markups"][0].__setitem__("coordinateSystem", "IJK"), "coordinateSystem"),
        (lambda d: d["markups"][0]["controlPoints"][0].__setitem__("position", [1.0, 2.0]), "position"),
        (
            lambda d: d["markups"][0]["controlPoints"][0].__setitem__("positionStatus", "maybe"),
            "positionStatus",
        ),
        (lambda d: d["markups"][0]["display"].__setitem__("color", [1.5, 0.0, 0.0]), "color"),
        (lambda d: d["markups"][0]["display"].__setitem__("glyphType", "Teapot3D"), "glyphType"),
        (lambda d: d["markups"][0]["measurements"][0].__setitem__("value", "big"), "value"),
    ],
)
def test_markups_validator_rejects_what_the_schema_forbids(planned, breakage, message):
    _, res = planned
    doc = copy.deepcopy(build_markups(res))
    breakage(doc)
    with pytest.raises(InputError, match=message):
        validate_markups(doc)


def test_drr_is_brighter_on_bone(planned):
    case, res = planned
    fm = res.get("L5-S1", "left")
    v = fm.triangles["safe"].best_view.direction_lps
    lateral, up = image_axes(fm.parts.axis, fm.parts.lateral_side, v)
    centre = fm.parts.exiting.midpoint
    size, pix = 100.0, 1.0
    labels = sitk.GetArrayViewFromImage(case.labels)
    bone_vals = [s.label for s in STRUCTURES if s.kind in ("vertebra", "sacrum", "ilium")]
    for volume in (case.image, synthetic_ct(case.labels)):
        img = drr(volume, v, lateral, up, centre, size_mm=size, pixel_mm=pix)
        n = img.shape[0]
        assert img.shape == (n, n) and np.all(np.isfinite(img)) and img.min() >= 0.0
        # rays through bone: project the bone voxels onto the detector
        bone = np.isin(labels, bone_vals)
        k, j, i = np.nonzero(bone)
        pts = res.volume.to_lps(np.column_stack([i, j, k]))
        col = np.rint(((pts - centre) @ lateral) / pix + (n - 1) / 2).astype(int)
        row = np.rint((n - 1) / 2 - ((pts - centre) @ up) / pix).astype(int)
        ok = (col >= 0) & (col < n) & (row >= 0) & (row < n)
        hit = np.zeros((n, n), bool)
        hit[row[ok], col[ok]] = True
        assert hit.any() and (~hit).any()
        assert img[hit].mean() > img[~hit].mean() * 1.05


def test_cli_measure_writes_every_output(case_dir, tmp_path, capsys):
    _, paths = case_dir
    out = tmp_path / "plan"
    rc = main(
        [
            "measure",
            str(paths["labels"]),
            "--ct",
            str(paths["ct"]),
            "-o",
            str(out),
            "--levels",
            "L5-S1",
            "--sides",
            "left",
        ]
    )
    text = capsys.readouterr()
    assert rc == 0, text.err
    for name in (
        "measurements.json",
        "measurements.tsv",
        "planning.mrk.json",
        "carm_L5-S1_left.png",
        "render3d.png",
    ):
        assert (out / name).is_file(), name
    for png in ("carm_L5-S1_left.png", "render3d.png"):
        data = (out / png).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 20_000
    validate_markups(json.loads((out / "planning.mrk.json").read_text()))
    with open(out / "measurements.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert tuple(rows[0].keys()) == COLUMNS
    assert [(r["level"], r["side"], r["triangle"]) for r in rows] == [
        ("L5-S1", "left", "kambin"),
        ("L5-S1", "left", "safe"),
    ]
    assert all(r["status"] == "ok" and float(r["area_mm2"]) > 0 for r in rows)
    assert sum(r["recommended"] == "yes" for r in rows) == 1
    data = json.loads((out / "measurements.json").read_text())
    assert data["frame"] == "LPS" and data["skin_source"].startswith("CT")
    assert "Kambin" in text.out and "mm2" in text.out
    # refuses to overwrite, then overwrites when asked
    assert main(["measure", str(paths["labels"]), "-o", str(out), "--levels", "L5-S1", "--no-images"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (
        main(
            [
                "measure",
                str(paths["labels"]),
                "-o",
                str(out),
                "--levels",
                "L5-S1",
                "--sides",
                "right",
                "--no-images",
                "--overwrite",
            ]
        )
        == 0
    )


def test_cli_reads_a_slicer_segmentation_without_ct(case_dir, tmp_path, capsys):
    _, paths = case_dir
    out = tmp_path / "seg"
    rc = main(["measure", str(paths["segmentation"]), "-o", str(out), "--levels", "L4-L5", "--no-images"])
    assert rc == 0, capsys.readouterr().err
    data = json.loads((out / "measurements.json").read_text())
    assert "no CT" in data["skin_source"]
    assert {f["side"] for f in data["foramina"] if f["status"] == "ok"} == {"left", "right"}


def test_cli_plan_evaluates_the_requested_view(case_dir, tmp_path, capsys):
    _, paths = case_dir
    out = tmp_path / "view"
    rc = main(
        [
            "plan",
            str(paths["labels"]),
            "--ct",
            str(paths["ct"]),
            "-o",
            str(out),
            "--level",
            "L5-S1",
            "--side",
            "right",
            "--oblique",
            "15",
            "--tilt",
            "5",
            "--no-images",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    tri = json.loads((out / "measurements.json").read_text())["foramina"][0]["triangles"]["safe"]
    assert tri["best_view"]["oblique_deg"] == pytest.approx(15.0, abs=0.01)
    assert tri["best_view"]["tilt_deg"] == pytest.approx(5.0, abs=0.01)
    assert (
        main(
            [
                "plan",
                str(paths["labels"]),
                "-o",
                str(tmp_path / "bad"),
                "--level",
                "L5-S1",
                "--side",
                "right",
                "--oblique",
                "70",
                "--no-images",
            ]
        )
        == 1
    )
    assert "Oblique angle" in capsys.readouterr().err


def test_help_texts_have_examples(capsys):
    for cmd in ("measure", "plan"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        assert "example:" in capsys.readouterr().out
