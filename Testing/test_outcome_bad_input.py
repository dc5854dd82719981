"""The outcome model refuses what it cannot read, with a message naming the problem and the fix."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import SimpleITK as sitk

from spineai.errors import InputError
from spineai.outcome.cli import add_outcome_parser
from spineai.outcome.mri_phantom import generate_sagittal_t2
from spineai.outcome.predict import predict_outcome
from spineai.outcome.roi import check_sagittal_t2

RENDER = {"spacing_mm": (4.0, 1.5, 1.5), "slice_subsamples": 1, "noise": False}


@pytest.fixture(scope="module")
def sagittal() -> sitk.Image:
    return generate_sagittal_t2(2, **RENDER).image


def _fix_of(exc: pytest.ExceptionInfo) -> str:
    return exc.value.fix or ""


def test_a_good_sagittal_volume_passes(sagittal):
    lps = check_sagittal_t2(sagittal)
    assert lps.GetPixelID() == sitk.sitkFloat32
    assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(lps.GetDirection()) == "LPS"


def test_ct_in_hounsfield_units_is_refused(sagittal):
    a = sitk.GetArrayFromImage(sagittal).astype(np.int16)
    ct = np.where(a > 50, 40, -1000).astype(np.int16)  # soft tissue 40 HU in air
    ct[a > 600] = 900  # bright structures as bone
    img = sitk.GetImageFromArray(ct)
    img.CopyInformation(sagittal)
    with pytest.raises(InputError, match="looks like a CT in Hounsfield units") as exc:
        check_sagittal_t2(img)
    assert "sagittal T2" in _fix_of(exc)


def test_axial_series_is_refused(sagittal):
    axial_ref = sitk.Image([200, 200, 40], sitk.sitkFloat32)
    axial_ref.SetSpacing((1.0, 1.0, 4.0))  # thick axis along z: an axial stack
    axial_ref.SetOrigin((-100.0, -100.0, -80.0))
    axial = sitk.Resample(sitk.Cast(sagittal, sitk.sitkFloat32), axial_ref)
    with pytest.raises(InputError, match="axial series") as exc:
        check_sagittal_t2(axial)
    assert "sagittal T2 series" in _fix_of(exc)


def test_coronal_series_is_refused(sagittal):
    ref = sitk.Image([200, 30, 200], sitk.sitkFloat32)
    ref.SetSpacing((1.0, 4.0, 1.0))  # thick axis antero-posterior
    ref.SetOrigin((-100.0, -60.0, -100.0))
    with pytest.raises(InputError, match="coronal series"):
        check_sagittal_t2(sitk.Resample(sitk.Cast(sagittal, sitk.sitkFloat32), ref))


def test_too_few_sagittal_slices_are_refused(sagittal):
    few = generate_sagittal_t2(2, n_slices=10, **RENDER).image
    with pytest.raises(InputError, match="only 10 sagittal slice") as exc:
        check_sagittal_t2(few)
    assert "complete sagittal T2 series" in _fix_of(exc)
    # 15 slices of which 5 are empty (a partial export) count as 10
    a = sitk.GetArrayFromImage(sagittal)
    a[:5] = 0  # PIR: array axes are [slice, row, column]
    partial = sitk.GetImageFromArray(a)
    partial.CopyInformation(sagittal)
    with pytest.raises(InputError, match="only 10 sagittal slice"):
        check_sagittal_t2(partial)


def test_a_2d_image_is_refused_in_memory_and_from_a_file(tmp_path, sagittal):
    slice2d = sitk.Extract(sagittal, [sagittal.GetSize()[0], sagittal.GetSize()[1], 0], [0, 0, 7])
    with pytest.raises(InputError, match="2D image"):
        check_sagittal_t2(slice2d)
    png = tmp_path / "slice.png"
    sitk.WriteImage(sitk.Cast(sitk.RescaleIntensity(slice2d), sitk.sitkUInt8), str(png))
    with pytest.raises(InputError, match="2D image"):
        predict_outcome(png)


def test_cli_reports_bad_input_with_exit_code_1(tmp_path, capsys, sagittal):
    parser = argparse.ArgumentParser(prog="spineai")
    add_outcome_parser(parser.add_subparsers())
    few = generate_sagittal_t2(2, n_slices=8, **RENDER).image
    path = tmp_path / "few.nii.gz"
    sitk.WriteImage(few, str(path))
    args = parser.parse_args(["outcome", str(path), "-o", str(tmp_path / "out")])
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert "only 8 sagittal slice" in err and "Fix:" in err
    assert not (tmp_path / "out").exists()
    missing = parser.parse_args(["outcome", str(tmp_path / "nothing.nii.gz")])
    assert missing.func(missing) == 1
    assert "does not exist" in capsys.readouterr().err
