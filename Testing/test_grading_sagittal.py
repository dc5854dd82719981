"""Sagittal grading: folder reading, level naming, patch geometry, grading API, outputs, refusals, CLI.

Synthetic slices (``spineai.grading.synthetic``) with disc centres given by hand exercise the whole
pipeline with the shipped weights without any data; the tests on real SPIDER slices skip when
``../shared/data`` is absent.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from spineai.errors import InputError
from spineai.grading.classifier import patch_frame, sample_patch
from spineai.grading.datasets import (
    patient_split,
    read_gradings_csv,
    read_sagittal_folder,
    recover_disc_boxes,
)
from spineai.grading.disc_detection import name_levels
from spineai.grading.synthetic import synthetic_sagittal_slice
from spineai.grading.tasks import GRADING_TASKS, level_name, level_structure

REPO_ROOT = Path(__file__).resolve().parents[1]
SPIDER = REPO_ROOT.parent / "shared" / "data" / "spider_sagittal_t2"
HEADER = ["Patient", "IVD label"] + [t.column for t in GRADING_TASKS]


def _spider() -> Path:
    if not SPIDER.is_dir():
        pytest.skip(f"public SPIDER subset not found at {SPIDER} (it sits beside the repository in CI)")
    return SPIDER


def _point_in_polygon(point, polygon) -> bool:
    from matplotlib.path import Path as MplPath

    return bool(MplPath(np.asarray(polygon)).contains_point(point, radius=1e-6))


# ------------------------------------------------------------------------------------------- levels
def test_level_names_count_upwards_from_l5_s1():
    assert [level_name(k) for k in (1, 2, 5, 6, 7)] == ["L5-S1", "L4-L5", "L1-L2", "T12-L1", "T11-T12"]
    assert level_structure(1) == "disc_L5_S1" and level_structure(2) == "disc_L4_L5"
    with pytest.raises(ValueError):
        level_name(0)


def test_name_levels_uses_l5s1_drops_sacral_spots_and_skips_missed_discs():
    # column (row grows caudally): a sacral spot at row 200, L5/S1 at 170, then discs every 30 px with one missed
    rows = [200, 170, 140, 110, 50, 20]
    pts = np.array([[r, 50.0 + 0.1 * r] for r in rows])
    l5 = np.array([0.2, 0.9, 0.1, 0.0, 0.0, 0.0])
    loc = name_levels(pts, l5, np.ones(6))
    assert loc.l5s1_found
    assert [d.ivd for d in loc.discs] == [1, 2, 3, 5, 6]
    assert loc.discs[0].level == "L5-S1" and loc.discs[0].row == 170
    assert any("sacral" in n for n in loc.notes) and any("not found" in n for n in loc.notes)
    up = np.asarray(loc.discs[1].axis_rc)
    assert up[0] < -0.9  # cranial = towards smaller rows
    with pytest.raises(InputError, match="L5/S1"):
        name_levels(pts, np.zeros(6), np.ones(6))
    loose = name_levels(pts, np.zeros(6), np.ones(6), require_l5s1=False)
    assert not loose.l5s1_found and loose.discs[0].row == 200
    with pytest.raises(InputError, match="No column of intervertebral discs"):
        name_levels(pts[:2], l5[:2], np.ones(2))


# ---------------------------------------------------------------------------------------- folders
def _write_folder(root: Path, rows: list[list], scans: list[str]) -> Path:
    (root / "scans").mkdir(parents=True)
    with (root / "radiological_gradings.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(rows)
    for patient in scans:
        img = sitk.GetImageFromArray(synthetic_sagittal_slice(int(patient)).image)
        sitk.WriteImage(img, str(root / "scans" / f"{patient}_t2.png"))
    return root


def _row(patient: int, ivd: int, pfirrmann: int = 3) -> list:
    return [patient, ivd, 0, 0, 1, 0, 0, 1, 0, pfirrmann]


def test_folder_reading_lists_missing_scans_and_names_bad_rows(tmp_path):
    root = _write_folder(tmp_path / "ok", [_row(1, 1), _row(1, 2), _row(2, 1), _row(2, 0)], scans=["1"])
    folder = read_sagittal_folder(root)
    assert [c.patient for c in folder.cases] == ["1"]
    assert folder.cases[0].gradings[2]["pfirrmann"] == 3 and folder.cases[0].gradings[1]["low_endplate"] == 1
    assert any("line 4: patient 2 has no scan" in s for s in folder.skipped)
    assert any("line 5" in s and "IVD label 0" in s for s in folder.skipped)
    with pytest.raises(InputError, match="line 4: patient 2 has no scan"):
        read_sagittal_folder(root, strict=True)

    bad = _write_folder(tmp_path / "bad", [_row(1, 1), _row(1, 2, pfirrmann=7)], scans=["1"])
    with pytest.raises(
        InputError, match=r"line 3: patient 1, IVD 2: column 'Pfirrman grade' has the value '7'"
    ):
        read_gradings_csv(bad / "radiological_gradings.csv")

    nocol = tmp_path / "nocol"
    (nocol / "scans").mkdir(parents=True)
    (nocol / "radiological_gradings.csv").write_text("Patient,IVD label,Modic\n1,1,0\n")
    with pytest.raises(InputError, match="lacks the column"):
        read_sagittal_folder(nocol)
    with pytest.raises(InputError, match="no scans/"):
        read_sagittal_folder(tmp_path)


def test_patient_split_is_seeded_disjoint_and_complete():
    patients = [str(i) for i in range(40)]
    strata = {p: ("a" if int(p) % 3 else "b") for p in patients}
    s1 = patient_split(patients, seed=7, strata=strata)
    s2 = patient_split(patients, seed=7, strata=strata)
    assert s1 == s2
    assert set(s1.train) | set(s1.val) | set(s1.test) == set(patients)
    assert (
        not (set(s1.train) & set(s1.test))
        and not (set(s1.val) & set(s1.test))
        and not (set(s1.train) & set(s1.val))
    )
    assert len(s1.test) == pytest.approx(10, abs=2)
    assert patient_split(patients, seed=8, strata=strata).test != s1.test


def test_crop_positions_are_recovered_exactly(tmp_path):
    scan = synthetic_sagittal_slice(3).image
    crops = []
    for k, (r0, c0, h, w) in enumerate([(100, 50, 20, 40), (60, 45, 24, 44)]):
        window = scan[r0 : r0 + h, c0 : c0 + w][::-1]  # stored flipped, framed by a 5-px border
        framed = np.pad(window, 5, constant_values=76)
        path = tmp_path / f"9_t2_disc_{k + 1}.png"
        sitk.WriteImage(sitk.GetImageFromArray(framed), str(path))
        crops.append(path)
    boxes = recover_disc_boxes(scan.astype(np.float32), crops)
    assert [(b.row, b.col, b.height, b.width, b.flipped) for b in boxes] == [
        (100, 50, 20, 40, True),
        (60, 45, 24, 44, True),
    ]
    assert all(b.ncc > 0.999 for b in boxes)


# ------------------------------------------------------------------------------------- patch geometry
def test_patch_frame_maps_points_both_ways_and_follows_the_spine():
    frame = patch_frame((100.0, 80.0), (-0.8, 0.6), 30.0)
    grid = frame.coordinates()
    assert grid.shape == (2, 64, 96)
    ij = frame.to_patch(np.moveaxis(grid, 0, -1))
    rows, cols = np.mgrid[0:64, 0:96]
    assert np.allclose(ij[..., 0], rows) and np.allclose(ij[..., 1], cols)
    # the patch's "up" is the spine's cranial direction; posterior is to its right
    top = grid[:, 0, 48] - grid[:, -1, 48]
    assert np.dot(top / np.linalg.norm(top), [-0.8, 0.6]) > 0.99
    assert frame.contains(np.array(frame.centre_rc)) and not frame.contains(np.array([0.0, 0.0]))
    img = np.zeros((200, 200), dtype=np.float32)
    img[95:106, 75:86] = 1.0  # a bright square at the disc centre
    patch = sample_patch(img, frame)
    assert patch.shape == (64, 96) and patch.max() > 0.9 and patch[0, 0] == 0.0


# ----------------------------------------------------------------------------------- grading API
@pytest.fixture(scope="module")
def synthetic_picture(tmp_path_factory):
    s = synthetic_sagittal_slice(11)
    img = sitk.GetImageFromArray(s.image)
    img.SetSpacing((0.8, 0.8))
    img.SetOrigin((-20.0, 35.0))
    path = tmp_path_factory.mktemp("pic") / "synthetic_t2.png"
    sitk.WriteImage(img, str(path))
    return s, img, path


def _physical_2d(img: sitk.Image, rc) -> list[float]:
    return list(img.TransformContinuousIndexToPhysicalPoint((float(rc[1]), float(rc[0]))))


def test_grading_a_picture_with_given_disc_centres_writes_everything(synthetic_picture, tmp_path):
    from spineai.grading import grade_sagittal

    s, img, _ = synthetic_picture
    points = [_physical_2d(img, rc) for rc in s.discs_rc]
    result = grade_sagittal(img, disc_points=points, gradcam=["pfirrmann", "modic"])
    assert [d.level for d in result.discs] == ["L5-S1", "L4-L5", "L3-L4", "L2-L3", "L1-L2", "T12-L1"]
    for d, rc in zip(result.discs, s.discs_rc, strict=True):
        assert np.allclose(d.centre_index, [rc[1], rc[0]], atol=1e-6)
        assert set(d.grades) == {t.key for t in GRADING_TASKS}
        for task in GRADING_TASKS:
            p = d.probabilities[task.key]
            assert sum(p.values()) == pytest.approx(1.0, abs=1e-5)
            assert d.grades[task.key] == int(max(p, key=p.get))
        # the Grad-CAM maximum of each disc lies inside that disc's patch
        for key in ("pfirrmann", "modic"):
            assert _point_in_polygon(d.gradcam_peak_index[key], d.patch_corners_index)
    json.dumps(result.to_dict())  # JSON-serialisable
    heat = result.heatmaps["pfirrmann"]
    assert heat.GetSize() == img.GetSize() and heat.GetSpacing() == img.GetSpacing()
    assert heat.GetOrigin() == img.GetOrigin()
    arr = sitk.GetArrayFromImage(heat)
    assert arr.max() > 0.5 and arr.min() == 0.0 and arr.std() > 0.01  # non-constant
    written = result.write(tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted(
        [
            "grades.json",
            "grades.tsv",
            "gradcam_modic.nii.gz",
            "gradcam_modic.png",
            "gradcam_pfirrmann.nii.gz",
            "gradcam_pfirrmann.png",
        ]
    )
    rows = list(csv.DictReader((tmp_path / "out" / "grades.tsv").open(), delimiter="\t"))
    assert [r["level"] for r in rows] == [d.level for d in result.discs]
    assert "p_pfirrmann_5" in rows[0]
    back = sitk.ReadImage(str(written["gradcam_pfirrmann"]))
    assert back.GetSize() == img.GetSize()
    with pytest.raises(FileExistsError):
        result.write(tmp_path / "out")


def _sagittal_volume(s, n_x: int = 9) -> tuple[sitk.Image, float]:
    """The synthetic slice repeated over ``n_x`` sagittal slices, stored PIR like a sagittal DICOM series."""
    upright = s.image.astype(np.float32)  # rows superior->inferior, cols anterior->posterior
    # voxel axes: i -> posterior (cols), j -> inferior (rows), k -> patient's right (slices)
    vol = np.repeat(upright[None], n_x, axis=0)  # [k, j, i]
    vol[0] = vol[-1] = 0.0
    img = sitk.GetImageFromArray(vol)
    img.SetSpacing((0.9, 0.9, 4.0))
    img.SetDirection((0, 0, -1, 1, 0, 0, 0, -1, 0))  # i = +y (P), j = -z (I), k = -x (R)
    img.SetOrigin((30.0, -80.0, 120.0))
    return img, 0.9


def test_volume_is_graded_on_its_mid_sagittal_slice_and_maps_back(tmp_path):
    from spineai.grading import grade_sagittal

    s = synthetic_sagittal_slice(12)
    img, _ = _sagittal_volume(s)
    k_mid = 4
    points = [
        list(img.TransformContinuousIndexToPhysicalPoint((float(c), float(r), float(k_mid))))
        for r, c in s.discs_rc
    ]
    result = grade_sagittal(img, disc_points=points)
    assert result.input_kind == "volume"
    assert any("mid-sagittal slice" in n for n in result.notes)
    assert result.discs[0].level == "L5-S1"
    assert np.allclose(result.discs[0].centre_index, [s.discs_rc[0][1], s.discs_rc[0][0], k_mid], atol=1e-4)
    heat = result.heatmaps["pfirrmann"]
    assert heat.GetSize() == img.GetSize() and heat.GetDirection() == img.GetDirection()
    arr = sitk.GetArrayFromImage(heat)  # [k, j, i]
    assert arr[k_mid].max() > 0.5 and np.all(arr[np.arange(arr.shape[0]) != k_mid] == 0)
    result.write(tmp_path / "vol")
    assert (tmp_path / "vol" / "gradcam_pfirrmann.nii.gz").is_file()


def test_refusals_name_the_problem():
    from spineai.grading import grade_sagittal

    s = synthetic_sagittal_slice(13)
    ct = sitk.GetImageFromArray(
        np.where(np.random.default_rng(0).random((20, 60, 60)) < 0.5, -1000, 400).astype(np.int16)
    )
    with pytest.raises(InputError, match="CT in Hounsfield units"):
        grade_sagittal(ct)
    axial = sitk.GetImageFromArray(np.repeat(s.image[None].astype(np.float32), 12, axis=0))
    axial.SetSpacing((0.8, 0.8, 4.0))  # thick slices along z: an axial series
    with pytest.raises(InputError, match="axial series"):
        grade_sagittal(axial)
    with pytest.raises(InputError, match="512 x 17 pixels"):
        grade_sagittal(np.zeros((17, 512), dtype=np.float32) + 5)
    with pytest.raises(InputError, match="aspect ratio"):
        grade_sagittal(np.random.default_rng(1).random((1200, 300)).astype(np.float32))
    # an axial-looking picture: one round vertebral body and canal, no column of discs
    yy, xx = np.mgrid[0:160, 0:160]
    pic = np.full((160, 160), 30.0)
    pic[(yy - 70) ** 2 + (xx - 80) ** 2 < 30**2] = 120.0
    pic[(yy - 115) ** 2 + (xx - 80) ** 2 < 9**2] = 230.0
    pic += np.random.default_rng(2).normal(0, 5, pic.shape)
    with pytest.raises(InputError, match="No column of intervertebral discs"):
        grade_sagittal(pic.astype(np.float32))
    with pytest.raises(InputError, match="Unknown orientation"):
        grade_sagittal(s.image.astype(np.float32), orientation="sideways")


# ---------------------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    from spineai.grading.cli import add_evaluate_parser, add_grade_parser

    parser = argparse.ArgumentParser(prog="spineai")
    sub = parser.add_subparsers(dest="command")
    add_grade_parser(sub)
    evaluate = sub.add_parser("evaluate")
    add_evaluate_parser(evaluate.add_subparsers(dest="evaluate_task"))
    return parser


def test_cli_help_has_examples_and_errors_return_1(tmp_path, capsys):
    parser = _parser()
    for argv in (["grade", "sagittal", "--help"], ["evaluate", "sagittal", "--help"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        assert "example:" in capsys.readouterr().out
    args = parser.parse_args(["grade", "sagittal", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o")])
    assert args.func(args) == 1
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    pic = tmp_path / "pic.png"
    sitk.WriteImage(sitk.GetImageFromArray(synthetic_sagittal_slice(1).image), str(pic))
    args = parser.parse_args(["grade", "sagittal", str(pic), "-o", str(tmp_path / "full")])
    assert args.func(args) == 1
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(SystemExit):
        parser.parse_args(["grade", "sagittal", str(pic), "--gradcam", "nonsense"])
    args = parser.parse_args(
        ["evaluate", "sagittal", "--data", str(tmp_path), "--json", str(tmp_path / "e.json")]
    )
    assert args.func(args) == 1
    assert "no scans/" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ real slices
def test_real_spider_slice_is_turned_upright_located_named_and_explained(tmp_path, capsys):
    from spineai.grading import grade_sagittal
    from spineai.grading.datasets import crop_files, read_slice_array

    root = _spider()
    scan = root / "scans" / "104_t2.png"
    result = grade_sagittal(scan, gradcam=["pfirrmann"])
    # the public export stores slices upside down; the grader notices and says so
    assert result.orientation == "flip_vertical"
    assert any("upside down" in n for n in result.notes)
    assert result.l5s1_found and result.discs[0].level == "L5-S1"
    assert len(result.discs) >= 5
    # predicted centres agree with the crops cut from this slice (exact positions, numbered caudal first)
    boxes = recover_disc_boxes(read_slice_array(scan), crop_files(root, "104"))
    ref = sorted((b.centre_rc for b in boxes), key=lambda rc: rc[0])  # stored caudal end at the top
    by_ivd = {d.ivd: d for d in result.discs}
    for ivd, (r, c) in enumerate(ref[:5], start=1):
        assert ivd in by_ivd
        assert (
            np.hypot(by_ivd[ivd].centre_index[0] - c, by_ivd[ivd].centre_index[1] - r) < 10
        )  # pixels (0.73 mm)
    arr = sitk.GetArrayFromImage(result.heatmaps["pfirrmann"])
    assert arr.shape == read_slice_array(scan).shape and arr.std() > 0.01
    for d in result.discs:
        assert _point_in_polygon(d.gradcam_peak_index["pfirrmann"], d.patch_corners_index)
    # the command line does the same and prints the table
    args = _parser().parse_args(["grade", "sagittal", str(scan), "-o", str(tmp_path / "cli")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "L5-S1" in out and "upside down" in out
    assert (tmp_path / "cli" / "gradcam_pfirrmann.png").is_file()


def test_real_degenerate_spider_slice_is_refused():
    from spineai.grading import grade_sagittal

    root = _spider()
    with pytest.raises(InputError, match="pixels"):
        grade_sagittal(root / "scans" / "110_t2.png")
