"""The ``spineai`` command line: help with examples, version, phantom and demo end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import SimpleITK as sitk

from spineai import __version__
from spineai.cli import build_parser, main


def _subcommand_parsers(parser):
    """Yield (name, parser) for every (nested) subcommand."""
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield name, sub
                for nested_name, nested in _subcommand_parsers(sub):
                    yield f"{name} {nested_name}", nested


def test_version_is_printed(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_every_subcommand_help_has_an_example():
    parser = build_parser()
    names = []
    for name, sub in _subcommand_parsers(parser):
        names.append(name)
        text = sub.format_help()
        if sub.description and "Choose the task" in sub.description:
            continue  # a group such as 'train' lists its tasks, each of which has its own example
        assert "example" in text.lower(), f"'spineai {name} --help' has no example"
        assert f"spineai {name.split()[0]}" in text, (
            f"'spineai {name} --help' example does not show the command"
        )
    assert {"demo", "phantom"} <= set(names)


def test_console_entry_point_runs_as_module():
    result = subprocess.run(
        [sys.executable, "-m", "spineai", "--help"], capture_output=True, text=True, check=True
    )
    assert "phantom" in result.stdout and "demo" in result.stdout


def test_phantom_command_writes_a_complete_case(tmp_path):
    out = tmp_path / "ph"
    assert main(["phantom", "-o", str(out), "--seed", "5", "--spacing", "2"]) == 0
    for name in ("ct.nii.gz", "labels.nii.gz", "labels.json", "labels.seg.nrrd", "truth.json"):
        assert (out / name).is_file(), name
    truth = json.loads((out / "truth.json").read_text())
    assert truth["seed"] == 5
    ct = sitk.ReadImage(str(out / "ct.nii.gz"))
    assert ct.GetSpacing() == pytest.approx((2.0, 2.0, 2.0))


def test_phantom_command_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "ph"
    out.mkdir()
    (out / "mine.txt").write_text("a user's file")
    assert main(["phantom", "-o", str(out), "--spacing", "2"]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err
    assert (out / "mine.txt").read_text() == "a user's file"
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]


def test_bad_spacing_is_rejected_with_the_fix(capsys):
    with pytest.raises(SystemExit):
        main(["phantom", "-o", "x", "--spacing", "0,1,1"])
    assert "(0, 10] mm" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_writes_volume_labels_segmentation_and_picture(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out.resolve()) in printed
    png = out / "phantom_slices.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "phantom" / "labels.seg.nrrd").is_file()
    assert (out / "phantom" / "ct.nii.gz").is_file()
    # triangles, view and needle path: table, Slicer markups, C-arm pictures, 3D rendering
    planning = out / "planning"
    for name in ("measurements.tsv", "planning.mrk.json", "render3d.png", "carm_L5-S1_left.png"):
        assert (planning / name).is_file(), name
    rows = (planning / "measurements.tsv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2 * 2  # header + 2 levels x 2 sides x 2 triangles
    assert "L5-S1 left:" in printed and "needle (" in printed
    assert "numbered from the sacrum" in printed and "Castellvi type" in printed
    markups = json.loads((planning / "planning.mrk.json").read_text())
    assert markups["markups"]
    from spineai.demo import _installed

    if _installed("spinect_ct_demo"):  # the shipped CT model segments the phantom and is scored
        assert (out / "segmentation_slices.png").is_file()
        assert "Dice against the phantom's truth" in printed
        assert "measured on the model's segmentation" in printed
    else:
        assert "segmentation skipped" in printed
        assert "measured on the phantom's ground-truth label map" in printed
    if _installed("outcome_demo"):  # outcome probability with a Grad-CAM on the sagittal T2 phantom's grid
        assert (out / "outcome" / "gradcam.nii.gz").is_file() and (
            out / "mri" / "sagittal_t2.nii.gz"
        ).is_file()
        assert "probability of a good outcome" in printed
    if _installed("axial_grader_demo"):  # axial LDH/LCCS/LNRC grades with Grad-CAM pictures
        assert (out / "axial_grading" / "gradcam_ldh.png").is_file()
        assert "LDH" in printed and "(truth" in printed
    if _installed("radiograph_hnp_demo"):  # a lateral DRR of the phantom read disc by disc
        _assert_demo_radiograph_reading(out, printed)
    else:
        assert "Radiograph reading skipped" in printed
    # a second run into the same folder is refused, the first results stay
    assert main(["demo", "--out", str(out)]) == 1
    assert png.is_file()


def _assert_demo_radiograph_reading(out, printed: str) -> None:
    """The demo's radiograph step: the shipped disc-crops model found the five discs of the phantom's lateral
    DRR near their true centres, called each level at its threshold and wrote a heat map on the DRR's grid."""
    import re

    import SimpleITK as sitk
    from PIL import Image

    levels = ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    picture = out / "phantom" / "radiograph_lateral.png"
    reading = json.loads((out / "radiograph" / "radiograph.json").read_text())
    assert reading["design"] == "disc-crops" and reading["model"]["name"] == "radiograph_hnp_demo"
    assert [d["level"] for d in reading["discs"]] == levels
    rows = [d["row"] for d in reading["discs"]]
    assert rows == sorted(rows)  # cranio-caudal order, head at the top
    width, height = Image.open(picture).size
    for disc in reading["discs"]:
        assert 0 <= disc["column"] < width and 0 <= disc["row"] < height and disc["confidence"] > 0.2
        assert disc["scale_source"] == "given"  # the demo passes the DRR's pixel size
    probabilities = reading["probabilities"]
    for lv in levels:
        assert 0.0 <= probabilities[lv] <= 1.0
        assert reading["predicted_herniation"][lv] == (probabilities[lv] >= reading["thresholds"][lv])
    assert reading["gradcam_level"] == max(probabilities, key=probabilities.get)
    heat = sitk.ReadImage(str(out / "radiograph" / reading["files"]["gradcam"]))
    assert heat.GetSize() == (width, height)  # on the radiograph's own pixel grid
    assert (out / "radiograph" / reading["files"]["overlay"]).read_bytes()[:4] == b"\x89PNG"
    errors = [float(mm) for mm in re.findall(r"disc located ([0-9.]+) mm from its true centre", printed)]
    assert len(errors) == 5 and max(errors) < 5.0, errors  # the locator's held-out median is about 1 mm
    assert printed.count("(phantom truth: ") == 5
