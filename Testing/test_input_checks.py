"""Input checks: Hounsfield units (and DICOM rescale slope/intercept), field of view, irregular slice spacing and
gantry tilt resampled to a regular grid, and a direction matrix that contradicts the anatomy."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from spineai import io
from spineai.checks import (
    check_field_of_view,
    check_hounsfield,
    check_orientation,
    read_dicom_regular,
    require,
    run_input_checks,
)
from spineai.errors import InputError
from spineai.phantom import generate_ct_phantom

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ct"


@pytest.fixture(scope="module")
def case():
    return generate_ct_phantom(2, spacing_mm=2.0, progress=False)


@pytest.fixture(scope="module")
def block(case):
    """A 64 x 64 x 16 block of the phantom CT around the L5-S1 disc (2 mm voxels, HU)."""
    centre = case.image.TransformPhysicalPointToIndex(
        tuple(case.truth["landmarks"]["discs"]["L5-S1"]["center"])
    )
    start = [max(0, centre[0] - 32), max(0, centre[1] - 32), max(0, centre[2] - 8)]
    return sitk.RegionOfInterest(case.image, [64, 64, 16], start)


def _slice(volume: sitk.Image, z_index: float, dy_mm: float = 0.0) -> tuple[sitk.Image, tuple]:
    """One axial slice of ``volume`` at continuous index ``z_index``, shifted by ``dy_mm`` along y: the 2D
    image and its 3D position (Image Position Patient)."""
    ref = sitk.Image(volume.GetSize()[0], volume.GetSize()[1], 1, sitk.sitkFloat32)
    ref.SetSpacing(volume.GetSpacing())
    o = np.asarray(volume.TransformContinuousIndexToPhysicalPoint((0.0, 0.0, float(z_index))))
    ref.SetOrigin(tuple(o + np.array([0.0, dy_mm, 0.0])))
    out = sitk.Resample(volume, ref, sitk.Transform(), sitk.sitkLinear, -1024.0, sitk.sitkFloat32)
    arr = np.rint(sitk.GetArrayFromImage(out)[0]).astype(np.int16)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(volume.GetSpacing()[:2])
    return img, tuple(ref.GetOrigin())


def _write(folder: Path, volume: sitk.Image, z_indices, dy_per_mm: float = 0.0, **rescale) -> None:
    """Write slices of ``volume`` as a DICOM series; slice ``k`` moved by ``dy_per_mm`` x its height along y
    (a gantry tilt: slice positions that do not advance along the slice normal)."""
    items = []
    for z in z_indices:
        height = (
            volume.TransformContinuousIndexToPhysicalPoint((0.0, 0.0, float(z)))[2] - volume.GetOrigin()[2]
        )
        items.append(_slice(volume, z, dy_per_mm * height))
    folder.mkdir(parents=True, exist_ok=True)
    _write_series_positions(folder, items, **rescale)


def _write_series_positions(folder: Path, items, slope: float = 1.0, intercept: float = 0.0) -> None:
    uid = f"1.2.826.0.1.3680043.2.1125.{int(time.time() * 1000) % 10**9}"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k, (img, pos) in enumerate(items):
        img = sitk.Cast(img, sitk.sitkInt16)
        for tag, value in (
            ("0008|0060", "CT"),
            ("0008|0016", "1.2.840.10008.5.1.4.1.1.2"),
            ("0008|0018", f"{uid}.2.{k}"),
            ("0020|000d", f"{uid}.1"),
            ("0020|000e", uid),
            ("0020|0037", "1\\0\\0\\0\\1\\0"),
            ("0020|0032", "\\".join(f"{v:.4f}" for v in pos)),
            ("0020|0013", str(k + 1)),
            ("0028|1053", f"{slope:g}"),
            ("0028|1052", f"{intercept:g}"),
        ):
            img.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(img)


def _error_against(volume: sitk.Image, image: sitk.Image) -> float:
    """Mean absolute HU difference between ``image`` and ``volume`` sampled on ``image``'s grid (overlap only)."""
    ref = sitk.Resample(volume, image, sitk.Transform(), sitk.sitkLinear, -5000.0, sitk.sitkFloat32)
    a = sitk.GetArrayFromImage(ref)[:, 12:-12, 12:-12]  # away from the edges a shifted slice cannot fill
    b = sitk.GetArrayFromImage(sitk.Cast(image, sitk.sitkFloat32))[:, 12:-12, 12:-12]
    inside = a > -4000
    return float(np.mean(np.abs(a[inside] - b[inside])))


# --------------------------------------------------------------------------------------- Hounsfield
def test_hounsfield_units_are_recognised(case):
    assert check_hounsfield(case.image).status == "ok"
    raw = sitk.Cast(case.image, sitk.sitkInt32) + 1024  # stored values without the intercept
    result = check_hounsfield(raw)
    assert result.status == "error" and "intercept" in result.message and result.fix
    normalised = sitk.Normalize(sitk.Cast(case.image, sitk.sitkFloat32))
    assert check_hounsfield(normalised).status == "error"
    with pytest.raises(InputError, match="Hounsfield"):
        require([check_hounsfield(raw)])


def test_dicom_rescale_slope_and_intercept_are_applied(block, tmp_path):
    folder = tmp_path / "slope"
    _write(folder, block, range(block.GetSize()[2]), slope=2.0, intercept=-1024.0)
    files = sorted(folder.glob("*.dcm"))
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(files[0]))
    reader.ReadImageInformation()
    assert float(reader.GetMetaData("0028|1053")) == 2.0 and float(reader.GetMetaData("0028|1052")) == -1024.0
    # the file stores (HU + 1024) / 2: its last 64 x 64 x 2 bytes are the raw pixel data of the slice
    raw = np.frombuffer(files[0].read_bytes()[-64 * 64 * 2 :], dtype="<i2").reshape(64, 64)
    hu0 = sitk.GetArrayFromImage(block)[0].astype(float)
    assert np.max(np.abs(raw * 2.0 - 1024.0 - hu0)) <= 2.0
    image = io.read_image(folder, dims=3, name="CT")  # SimpleITK applies the rescale
    assert np.max(np.abs(sitk.GetArrayFromImage(image).astype(float) - sitk.GetArrayFromImage(block))) <= 2.0
    assert check_hounsfield(image).status in ("ok", "warning")


# ------------------------------------------------------------------------------------- slice geometry
def test_regular_series_is_read_as_is(block, tmp_path):
    folder = tmp_path / "regular"
    _write(folder, block, range(block.GetSize()[2]))
    image, result = read_dicom_regular(folder)
    assert result.status == "ok" and image.GetSize() == block.GetSize()
    assert _error_against(block, image) < 1.0


def test_irregular_spacing_is_resampled(block, tmp_path):
    folder = tmp_path / "irregular"
    z = [k for k in range(block.GetSize()[2]) if k not in (5, 6, 11)]  # missing slices: gaps of 2, 6 and 4 mm
    _write(folder, block, z)
    with pytest.raises(InputError, match="unevenly spaced"):
        io.read_image(folder, dims=3, name="CT")  # the plain reader refuses it
    image, result = read_dicom_regular(folder)
    assert (
        result.status == "warning" and "unevenly spaced" in result.message and "resampled" in result.message
    )
    assert image.GetSpacing()[2] == pytest.approx(2.0) and image.GetSize()[2] == block.GetSize()[2]
    assert _error_against(block, image) < 40.0  # linear interpolation across the missing slices


def test_gantry_tilt_is_detected_and_resampled(block, tmp_path):
    folder = tmp_path / "tilt"
    shear = float(np.tan(np.radians(15.0)))  # each slice moves 0.27 mm along y per mm along z
    _write(folder, block, range(block.GetSize()[2]), dy_per_mm=shear)
    naive = io.read_image(folder, dims=3, name="CT")  # ignores the drift: a sheared patient
    image, result = read_dicom_regular(folder)
    assert result.status == "warning" and "gantry tilt" in result.message
    assert result.details["tilt_deg"] == pytest.approx(15.0, abs=0.5)
    # the corrected volume matches the original patient; the naive one does not
    corrected, sheared = _error_against(block, image), _error_against(block, naive)
    assert corrected < 30.0 and sheared > 3.0 * corrected


# ---------------------------------------------------------------------------------------- field of view
def test_field_of_view_covers_the_levels(case):
    ok = check_field_of_view(case.labels, ["L4-L5", "L5-S1"])
    assert ok.status == "ok" and ok.details["covered"] == ["L4-L5", "L5-S1"]
    bad = check_field_of_view(case.labels, ["L2-L3", "L5-S1"])
    assert bad.status == "error" and "L2-L3" in bad.message and "L5-S1" in bad.details["covered"]
    cut = generate_ct_phantom(
        2, spacing_mm=2.0, progress=False, fov_levels=("L5", "S1"), fov_mm=(180, 200, 50)
    )
    result = check_field_of_view(cut.labels, ["L4-L5", "L5-S1"])
    assert result.status == "error" and "L4" in result.message


# ------------------------------------------------------------------------------------------ orientation
def test_orientation_that_contradicts_the_anatomy_is_reported(case):
    assert check_orientation(case.labels).status == "ok"
    flipped_ap = sitk.Image(case.labels)
    flipped_ap.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))  # the header says the back is in front
    result = check_orientation(flipped_ap)
    assert result.status == "error" and "anterior-posterior" in result.message and result.fix
    flipped_si = sitk.Image(case.labels)
    flipped_si.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))
    result = check_orientation(flipped_si)
    assert result.status == "error" and "cranio-caudal" in result.message
    # a correctly stored RAS volume is the same patient: no complaint
    assert check_orientation(io.reorient(case.labels, "RAS")).status == "ok"
    with pytest.raises(InputError, match="orientation"):
        require(run_input_checks(labelmap=flipped_ap))


def test_real_dicom_series_is_regular_and_in_hu():
    folder = DATA / "dicom_series_t11_t12"
    if not folder.is_dir():
        pytest.skip(f"public CT data not found at {folder} (it sits beside the repository as ../shared/data)")
    results = run_input_checks(ct=folder)
    assert [r.name for r in results] == ["slice_geometry", "hounsfield"]
    assert all(r.status == "ok" for r in results), [r.message for r in results]
