"""Image I/O on small synthetic volumes: formats, LPS/RAS, validation, reorientation, resampling,
cropping, label maps with sidecars and Slicer .seg.nrrd files."""

from __future__ import annotations

import gzip
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from spineai import anatomy
from spineai import io as sio
from spineai.errors import InputError, OutputExistsError

# ------------------------------------------------------------------------------------------------
# helpers


def _rotation(axis: str, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


#: an orthogonal but not axis-aligned direction (20 degrees about z, -12 about x)
OBLIQUE = _rotation("z", 20.0) @ _rotation("x", -12.0)
# direction matrices (columns = LPS unit vectors of the i, j, k axes)
DIRECTIONS = {
    "LPS": np.eye(3),
    "RAS": np.diag([-1.0, -1.0, 1.0]),
    "PIR": np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], dtype=float),
    "oblique": OBLIQUE,
    "negative_x": np.array([[-1, 0, 0], [0, 0, 1], [0, 1, 0]], dtype=float),  # R, S, P
}


def volume(
    shape_zyx=(5, 6, 7),
    spacing=(0.8, 0.9, 2.0),
    origin=(-12.5, 30.25, 101.0),
    direction=None,
    dtype=np.int16,
) -> sitk.Image:
    """A volume whose every voxel value is distinct (so any permutation is detectable)."""
    direction = np.eye(3) if direction is None else direction
    arr = (np.arange(np.prod(shape_zyx)).reshape(shape_zyx) - 100).astype(dtype)
    return sio.image_from_array(arr, spacing, origin, direction)


def assert_same_geometry(a: sitk.Image, b: sitk.Image, tol: float = 1e-4) -> None:
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=tol)
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=tol)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=tol)


def assert_same_image(a: sitk.Image, b: sitk.Image, tol: float = 1e-4) -> None:
    assert_same_geometry(a, b, tol)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b))


def assert_input_error(excinfo: pytest.ExceptionInfo, *words: str) -> None:
    msg = str(excinfo.value)
    assert "Fix:" in msg, msg
    for w in words:
        assert w.lower() in msg.lower(), f"{w!r} not in {msg!r}"


def value_at(img: sitk.Image, point) -> float:
    return img[img.TransformPhysicalPointToIndex(point)]


def labels_volume() -> sio.LabelMap:
    """VerSe-convention labels: L3 (22), L4 (23), L5 (24) blocks stacked along +z (superior)."""
    arr = np.zeros((12, 8, 9), dtype=np.uint8)
    arr[8:11, 2:6, 2:7] = 22
    arr[4:7, 2:6, 2:7] = 23
    arr[0:3, 2:6, 2:7] = 24
    img = sio.image_from_array(arr, (0.9, 0.8, 1.5), (5.0, -20.0, 40.0), DIRECTIONS["PIR"])
    return sio.LabelMap(img, anatomy.VERSE)


# ------------------------------------------------------------------------------------------------
# formats and round trips


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_write_read_round_trip_is_lossless(tmp_path, suffix, dtype):
    img = volume(direction=DIRECTIONS["PIR"], dtype=dtype)
    path = sio.write_image(img, tmp_path / f"ct{suffix}")
    back = sio.read_image(path)
    assert back.GetPixelID() == img.GetPixelID()
    assert_same_image(back, img)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left behind


def test_write_refuses_to_overwrite(tmp_path):
    path = tmp_path / "ct.nrrd"
    sio.write_image(volume(), path)
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        sio.write_image(volume(dtype=np.float32), path)
    assert path.read_bytes() == before
    sio.write_image(volume(dtype=np.float32), path, overwrite=True)
    assert sio.read_image(path).GetPixelID() == sitk.sitkFloat32


def test_write_rejects_two_file_formats_and_seg_names(tmp_path):
    with pytest.raises(InputError) as e:
        sio.write_image(volume(), tmp_path / "ct.mhd")
    assert_input_error(e, ".mha")
    with pytest.raises(InputError) as e:
        sio.write_image(volume(), tmp_path / "ct.seg.nrrd")
    assert_input_error(e, "write_seg_nrrd")


def test_nrrd_files_are_compressed(tmp_path):
    path = sio.write_image(sio.image_from_array(np.zeros((40, 40, 40), np.int16)), tmp_path / "zeros.nrrd")
    header = path.read_bytes().split(b"\n\n", 1)[0]
    assert b"encoding: gzip" in header
    assert path.stat().st_size < 40**3 * 2 / 10


def test_image_from_array_axis_order_and_geometry():
    arr = np.zeros((4, 5, 6), dtype=np.float32)  # (z, y, x)
    arr[3, 1, 2] = 7.0
    img = sio.image_from_array(arr, (0.5, 0.6, 2.0), (1.0, 2.0, 3.0), DIRECTIONS["RAS"])
    assert img.GetSize() == (6, 5, 4)
    assert img[2, 1, 3] == 7.0
    # physical position of voxel (i=2, j=1, k=3) in LPS: origin + D @ (index * spacing)
    expected = np.array([1.0, 2.0, 3.0]) + DIRECTIONS["RAS"] @ (np.array([2, 1, 3]) * [0.5, 0.6, 2.0])
    np.testing.assert_allclose(img.TransformIndexToPhysicalPoint((2, 1, 3)), expected)
    assert sio.image_from_array(np.ones((3, 3), bool)).GetPixelID() == sitk.sitkUInt8


# ------------------------------------------------------------------------------------------------
# NIfTI stores RAS; SimpleITK (and the engine) use LPS


def _nifti_header(path: Path) -> dict:
    raw = gzip.open(path).read(348) if path.name.endswith(".gz") else path.read_bytes()[:348]
    assert struct.unpack("<i", raw[0:4])[0] == 348
    return {
        "dim": struct.unpack("<8h", raw[40:56]),
        "pixdim": struct.unpack("<8f", raw[76:108]),
        "qform_code": struct.unpack("<h", raw[252:254])[0],
        "sform_code": struct.unpack("<h", raw[254:256])[0],
        "quatern_bcd": struct.unpack("<3f", raw[256:268]),
        "qoffset": struct.unpack("<3f", raw[268:280]),
        "srow": np.array(struct.unpack("<12f", raw[280:328])).reshape(3, 4),
    }


def test_nifti_written_by_engine_holds_ras_affine(tmp_path):
    img = volume(direction=OBLIQUE)
    path = sio.write_image(img, tmp_path / "oblique.nii.gz")
    h = _nifti_header(path)
    lps = np.asarray(img.GetDirection()).reshape(3, 3) * np.asarray(img.GetSpacing())
    ras_affine = np.diag([-1.0, -1.0, 1.0]) @ np.column_stack([lps, img.GetOrigin()])
    assert h["sform_code"] > 0
    np.testing.assert_allclose(h["srow"], ras_affine, atol=1e-4)
    ox, oy, oz = img.GetOrigin()
    np.testing.assert_allclose(h["qoffset"], (-ox, -oy, oz), atol=1e-4)


def _write_nifti_by_hand(path: Path, data_zyx: np.ndarray, ras_affine: np.ndarray) -> None:
    """A minimal NIfTI-1 file (sform only), built byte by byte, independent of ITK."""
    nz, ny, nx = data_zyx.shape
    hdr = bytearray(352)
    struct.pack_into("<i", hdr, 0, 348)
    struct.pack_into("<8h", hdr, 40, 3, nx, ny, nz, 1, 1, 1, 1)
    struct.pack_into("<hh", hdr, 70, 4, 16)  # int16
    spacing = np.linalg.norm(ras_affine[:3, :3], axis=0)
    struct.pack_into("<8f", hdr, 76, 1.0, *spacing, 1.0, 1.0, 1.0, 1.0)
    struct.pack_into("<f", hdr, 108, 352.0)  # vox_offset
    struct.pack_into("<B", hdr, 123, 2)  # xyzt_units: mm
    struct.pack_into("<hh", hdr, 252, 0, 1)  # qform_code 0, sform_code 1 (scanner)
    struct.pack_into("<12f", hdr, 280, *ras_affine[:3, :4].ravel())
    hdr[344:348] = b"n+1\x00"
    path.write_bytes(bytes(hdr) + data_zyx.astype("<i2").tobytes())


def test_nifti_ras_affine_is_read_as_lps(tmp_path):
    rot = _rotation("y", 15.0)
    ras_affine = np.eye(4)
    ras_affine[:3, :3] = rot * [0.75, 0.75, 2.5]
    ras_affine[:3, 3] = [-120.5, 84.25, -310.0]  # RAS position of voxel (0,0,0)
    data = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    path = tmp_path / "hand.nii"
    _write_nifti_by_hand(path, data, ras_affine)

    img = sio.read_image(path)
    np.testing.assert_allclose(img.GetOrigin(), (120.5, -84.25, -310.0), atol=1e-4)  # x, y negated
    np.testing.assert_allclose(img.GetSpacing(), (0.75, 0.75, 2.5), atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(img.GetDirection()).reshape(3, 3), np.diag([-1.0, -1.0, 1.0]) @ rot, atol=1e-5
    )
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), data)
    # a voxel's RAS position from the file's affine equals its LPS position with x, y negated
    ras = ras_affine @ np.array([4, 3, 2, 1.0])
    np.testing.assert_allclose(img.TransformIndexToPhysicalPoint((4, 3, 2)), ras[:3] * [-1, -1, 1], atol=1e-4)


# ------------------------------------------------------------------------------------------------
# DICOM series


def _write_dicom_series(
    folder: Path, hu_zyx: np.ndarray, *, series_uid: str, skip: tuple[int, ...] = (), prefix: str = "slice"
) -> None:
    """Axial CT slices stored as raw = HU + 1024 with RescaleIntercept -1024 (as scanners do)."""
    folder.mkdir(parents=True, exist_ok=True)
    img = sio.image_from_array(hu_zyx.astype(np.int16), (0.7, 0.7, 2.5), (-40.0, -30.0, 100.0))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(img.GetSize()[2]):
        if k in skip:
            continue
        s = img[:, :, k]
        tags = {
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0008|0018": f"{series_uid}.{k + 1}",
            "0008|0060": "CT",
            "0020|000d": "1.2.826.0.1.3680043.8.498.1",
            "0020|000e": series_uid,
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.4f}" for v in img.TransformIndexToPhysicalPoint((0, 0, k))),
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0028|1052": "-1024",
            "0028|1053": "1",
        }
        for tag, value in tags.items():
            s.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{prefix}{k:03d}.dcm"))
        writer.Execute(s)


def test_dicom_series_folder_is_read_in_hu(tmp_path):
    hu = np.linspace(-1000, 1500, 6 * 8 * 9).reshape(6, 8, 9).astype(np.int16)
    folder = tmp_path / "series"
    _write_dicom_series(folder, hu, series_uid="1.2.826.0.1.3680043.8.498.10")
    # the stored pixels really are HU + 1024: the last bytes of a slice file are its pixel data
    raw = np.frombuffer((folder / "slice000.dcm").read_bytes()[-8 * 9 * 2 :], dtype="<u2").reshape(8, 9)
    np.testing.assert_array_equal(raw.astype(int), hu[0].astype(int) + 1024)

    img = sio.read_image(folder, name="CT")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), hu)  # rescale applied
    np.testing.assert_allclose(img.GetSpacing(), (0.7, 0.7, 2.5), atol=1e-4)
    np.testing.assert_allclose(img.GetOrigin(), (-40.0, -30.0, 100.0), atol=1e-4)  # DICOM is LPS
    assert sio.orientation_code(img) == "LPS"
    # a single file of the series reads the whole series
    one = sio.read_image(folder / "slice003.dcm")
    assert one.GetSize() == (9, 8, 6)


def test_dicom_folder_with_two_series_reads_the_largest(tmp_path):
    folder = tmp_path / "mixed"
    small = np.zeros((3, 4, 4), np.int16)
    _write_dicom_series(folder, small, series_uid="1.2.826.0.1.3680043.8.498.20", prefix="a_scout")
    big = np.full((5, 4, 4), 40, np.int16)
    _write_dicom_series(folder, big, series_uid="1.2.826.0.1.3680043.8.498.21", prefix="b_axial")
    img = sio.read_image(folder)
    assert img.GetSize() == (4, 4, 5)
    assert np.all(sitk.GetArrayViewFromImage(img) == 40)
    # naming a file of the smaller series reads that series
    assert sio.read_image(folder / "a_scout001.dcm").GetSize() == (4, 4, 3)


def test_dicom_series_with_a_missing_slice_is_refused(tmp_path):
    folder = tmp_path / "gappy"
    _write_dicom_series(
        folder, np.zeros((6, 4, 4), np.int16), series_uid="1.2.826.0.1.3680043.8.498.30", skip=(3,)
    )
    with pytest.raises(InputError) as e:
        sio.read_image(folder)
    assert_input_error(e, "unevenly spaced", str(folder))


def test_folder_without_dicom_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(InputError) as e:
        sio.read_image(tmp_path)
    assert_input_error(e, "no readable DICOM series", str(tmp_path))


# ------------------------------------------------------------------------------------------------
# 2D pictures


def test_colour_png_becomes_grey_luminance(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    rgb[0, 0] = (255, 255, 255)
    path = tmp_path / "xray.png"
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(path))
    img = sio.read_image(path, dims=2, name="radiograph")
    assert img.GetDimension() == 2 and img.GetNumberOfComponentsPerPixel() == 1
    grey = sitk.GetArrayFromImage(img)
    assert grey.dtype == np.uint8
    assert grey[1, 1] == round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    assert grey[0, 0] == 255


def test_png_where_a_volume_is_needed_is_refused(tmp_path):
    path = tmp_path / "slice.png"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((6, 7), np.uint8)), str(path))
    with pytest.raises(InputError) as e:
        sio.read_image(path, dims=3, name="CT")
    assert_input_error(e, "2D image", "3D volume is needed", str(path))


def test_volume_where_a_2d_image_is_needed_is_refused(tmp_path):
    path = sio.write_image(volume(), tmp_path / "ct.nrrd")
    with pytest.raises(InputError) as e:
        sio.read_image(path, dims=2, name="radiograph")
    assert_input_error(e, "3D volume", "2D image is needed")


def test_single_slice_volume_becomes_2d_when_2d_is_requested(tmp_path):
    arr = np.arange(20, dtype=np.int16).reshape(1, 4, 5)
    path = sio.write_image(sio.image_from_array(arr, (0.2, 0.3, 1.0)), tmp_path / "one_slice.nrrd")
    img = sio.read_image(path, dims=2)
    assert img.GetSize() == (5, 4)
    np.testing.assert_allclose(img.GetSpacing(), (0.2, 0.3))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), arr[0])


# ------------------------------------------------------------------------------------------------
# bad input


def test_missing_path(tmp_path):
    with pytest.raises(InputError) as e:
        sio.read_image(tmp_path / "nope.nii.gz", name="CT")
    assert_input_error(e, "does not exist", "nope.nii.gz")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.nii.gz"
    path.touch()
    with pytest.raises(InputError) as e:
        sio.read_image(path)
    assert_input_error(e, "empty", "empty.nii.gz")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_corrupt_file(tmp_path, suffix):
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    with pytest.raises(InputError) as e:
        sio.read_image(path)
    assert_input_error(e, "could not be read", path.name)


def test_truncated_file(tmp_path):
    good = sio.write_image(volume(shape_zyx=(20, 20, 20)), tmp_path / "good.nii.gz")
    bad = tmp_path / "truncated.nii.gz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError) as e:
        sio.read_image(bad)
    assert_input_error(e, "truncated.nii.gz")


def test_nan_voxels(tmp_path):
    arr = np.zeros((3, 4, 5), np.float32)
    arr[1, 2, 3] = np.nan
    arr[0, 0, 0] = np.inf
    path = tmp_path / "nan.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))
    with pytest.raises(InputError) as e:
        sio.read_image(path)
    assert_input_error(e, "2 NaN or infinite", "nan.nrrd")


def _metaimage(path: Path, spacing: str, dims: str = "2 2 2", n_bytes: int = 8) -> Path:
    text = (
        f"ObjectType = Image\nNDims = 3\nDimSize = {dims}\nElementSpacing = {spacing}\n"
        "ElementType = MET_UCHAR\nElementDataFile = LOCAL\n"
    )
    path.write_bytes(text.encode() + bytes(n_bytes))
    return path


@pytest.mark.parametrize("spacing", ["1 1 20", "1 1 10.5", "1 0 1"])
def test_absurd_spacing(tmp_path, spacing):
    path = _metaimage(tmp_path / "spacing.mha", spacing)
    with pytest.raises(InputError) as e:
        sio.read_image(path)
    assert_input_error(e, "spacing", "spacing.mha")


def test_zero_size_axis(tmp_path):
    path = _metaimage(tmp_path / "flat.mha", "1 1 1", dims="2 0 2", n_bytes=0)
    with pytest.raises(InputError) as e:
        sio.read_image(path)
    assert_input_error(e, "zero-size axis", "flat.mha")
    with pytest.raises(InputError) as e:
        sio.image_from_array(np.zeros((0, 3, 3)))
    assert_input_error(e, "zero-size axis")


def test_non_orthogonal_direction(tmp_path):
    path = tmp_path / "sheared.nrrd"
    path.write_bytes(
        b"NRRD0004\ntype: uint8\ndimension: 3\nspace: left-posterior-superior\nsizes: 2 2 2\n"
        b"space directions: (1,0,0) (0.5,1,0) (0,0,1)\nkinds: domain domain domain\nencoding: raw\n"
        b"space origin: (0,0,0)\n\n" + bytes(8)
    )
    with pytest.raises(InputError) as e:
        sio.read_image(path)
    assert_input_error(e, "non-orthogonal direction", "sheared.nrrd")
    # the same check on in-memory images (tolerance 1e-3)
    img = sitk.Image([2, 2, 2], sitk.sitkUInt8)
    img.SetDirection((1, 0.002, 0, 0, 1, 0, 0, 0, 1))
    with pytest.raises(InputError):
        sio.validate_image(img)
    img.SetDirection((1, 0.0004, 0, 0, 1, 0, 0, 0, 1))
    assert sio.validate_image(img) is img


def test_validate_image_in_memory():
    img = volume(dtype=np.float32)
    assert sio.validate_image(img, dims=3) is img
    bad = sitk.Image(img)
    bad[1, 1, 1] = float("nan")
    with pytest.raises(InputError) as e:
        sio.validate_image(bad, name="CT")
    assert_input_error(e, "The CT", "NaN")
    with pytest.raises(InputError) as e:
        sio.validate_image(img, dims=2)
    assert_input_error(e, "3D volume")


def test_image_from_array_rejects_bad_geometry():
    with pytest.raises(InputError) as e:
        sio.image_from_array(np.zeros((2, 2, 2)), spacing_mm=(1, 1, 0))
    assert_input_error(e, "spacing")
    with pytest.raises(InputError) as e:
        sio.image_from_array(np.zeros((2, 2, 2)), direction=[[1, 0.3, 0], [0, 1, 0], [0, 0, 1]])
    assert_input_error(e, "not orthogonal")
    with pytest.raises(InputError) as e:
        sio.image_from_array(np.zeros((2, 2, 2, 2)))
    assert_input_error(e, "4 dimensions")


# ------------------------------------------------------------------------------------------------
# orientation


@pytest.mark.parametrize(
    ("direction", "code"),
    [("LPS", "LPS"), ("RAS", "RAS"), ("PIR", "PIR"), ("negative_x", "RSP"), ("oblique", "LPS")],
)
def test_orientation_code(direction, code):
    assert sio.orientation_code(volume(direction=DIRECTIONS[direction])) == code


@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_canonical_round_trip_is_exact(direction):
    img = volume(direction=DIRECTIONS[direction])
    canon, code = sio.to_canonical(img)
    assert code == sio.orientation_code(img)
    assert sio.orientation_code(canon) == "LPS"
    if direction != "oblique":
        np.testing.assert_allclose(np.asarray(canon.GetDirection()), np.eye(3).ravel(), atol=1e-12)
    back = sio.from_canonical(canon, code)
    assert_same_image(back, img, tol=1e-4)
    assert back.GetPixelID() == img.GetPixelID()


@pytest.mark.parametrize("target", ["LPS", "RAS", "PIR", "ASL", "ila"])
def test_reorient_keeps_every_voxel_at_its_physical_position(target):
    img = volume(direction=DIRECTIONS["PIR"])
    out = sio.reorient(img, target)
    assert sio.orientation_code(out) == target.upper()
    for index in [(0, 0, 0), (6, 5, 4), (3, 2, 1), (1, 4, 2)]:
        point = img.TransformIndexToPhysicalPoint(index)
        assert value_at(out, point) == img[index]
    assert sorted(sitk.GetArrayViewFromImage(out).ravel()) == sorted(sitk.GetArrayViewFromImage(img).ravel())


def test_bad_orientation_code():
    with pytest.raises(InputError) as e:
        sio.reorient(volume(), "LPA")
    assert_input_error(e, "not an orientation code")


# ------------------------------------------------------------------------------------------------
# resampling


def _ramp_x(direction=None) -> sitk.Image:
    """Intensity = LPS x coordinate (mm) of each voxel: a linear field linear interpolation reproduces."""
    direction = np.eye(3) if direction is None else direction
    img = sio.image_from_array(
        np.zeros((10, 12, 14), np.float32), (1.0, 1.0, 2.0), (3.0, -7.0, 50.0), direction
    )
    idx = np.stack(np.meshgrid(np.arange(14), np.arange(12), np.arange(10), indexing="ij"), -1).reshape(-1, 3)
    pts = (
        np.asarray(img.GetOrigin())
        + (idx * img.GetSpacing()) @ np.asarray(img.GetDirection()).reshape(3, 3).T
    )
    arr = np.zeros((10, 12, 14), np.float32)
    arr[idx[:, 2], idx[:, 1], idx[:, 0]] = pts[:, 0]
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    return out


def test_resample_to_spacing_keeps_extent_and_values():
    img = _ramp_x(DIRECTIONS["PIR"])
    out = sio.resample_to_spacing(img, (0.5, 2.0, 1.0))
    assert out.GetSize() == (28, 6, 20)
    np.testing.assert_allclose(out.GetSpacing(), (0.5, 2.0, 1.0))
    assert out.GetDirection() == img.GetDirection()
    assert out.GetPixelID() == sitk.sitkFloat32

    # the outer box (voxel edges) is unchanged
    def box(im):
        d = np.asarray(im.GetDirection()).reshape(3, 3)
        lo = np.asarray(im.GetOrigin()) - d @ (0.5 * np.asarray(im.GetSpacing()))
        return lo, lo + d @ (np.asarray(im.GetSize()) * im.GetSpacing())

    for a, b in zip(box(img), box(out), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # interior voxels carry their own x coordinate (linear field, linear interpolation)
    for index in [(5, 2, 7), (20, 3, 12), (10, 1, 4)]:
        x = out.TransformIndexToPhysicalPoint(index)[0]
        assert out[index] == pytest.approx(x, abs=1e-3)


def test_resample_integer_image_gives_float_and_bspline_works():
    img = volume(dtype=np.int16)
    lin = sio.resample_to_spacing(img, 1.0)
    bsp = sio.resample_to_spacing(img, 1.0, interpolator="bspline")
    assert lin.GetPixelID() == bsp.GetPixelID() == sitk.sitkFloat32
    assert lin.GetSize() == bsp.GetSize() == (round(7 * 0.8), round(6 * 0.9), 10)
    with pytest.raises(InputError) as e:
        sio.resample_to_spacing(img, 1.0, interpolator="cubic")
    assert_input_error(e, "Unknown interpolator", "bspline")


def test_resample_labels_uses_nearest_neighbour_always():
    lm = labels_volume()
    out = sio.resample_to_spacing(lm.image, 0.5, is_label=True, interpolator="bspline")
    assert out.GetPixelID() == lm.image.GetPixelID()
    assert set(np.unique(sitk.GetArrayViewFromImage(out))) == {0, 22, 23, 24}
    # each label keeps its volume to within the boundary voxels
    for v in (22, 23, 24):
        before = np.count_nonzero(sitk.GetArrayViewFromImage(lm.image) == v) * np.prod(lm.image.GetSpacing())
        after = np.count_nonzero(sitk.GetArrayViewFromImage(out) == v) * 0.5**3
        assert after == pytest.approx(before, rel=0.25)


def test_resample_like_uses_reference_grid_and_default_value():
    img = _ramp_x()
    ref = sio.image_from_array(np.zeros((4, 5, 6), np.int16), 1.5, (5.0, -5.0, 52.0), DIRECTIONS["RAS"])
    out = sio.resample_like(img, ref, default_value=-1024)
    assert_same_geometry(out, ref)
    assert out[0, 0, 0] == pytest.approx(5.0, abs=1e-3)
    # voxels of the reference outside the source (x < 2.5 mm) get the default value
    assert out[5, 0, 0] == -1024  # x = 5 - 7.5 = -2.5 mm
    lab = sio.resample_like(labels_volume().image, ref, is_label=True)
    assert lab.GetPixelID() == sitk.sitkUInt8


# ------------------------------------------------------------------------------------------------
# cropping


def test_crop_to_bounds_mm_axis_aligned():
    img = volume(shape_zyx=(10, 10, 10), spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0))
    out = sio.crop_to_bounds_mm(img, (2.0, 3.5, 4.0), (5.0, 6.0, 9.9))
    assert out.GetSize() == (4, 3, 3)  # voxel centres x 2..5, y 4..6, z 4, 6, 8 mm
    np.testing.assert_allclose(out.GetOrigin(), (2.0, 4.0, 4.0))
    assert out[0, 0, 0] == img[2, 4, 2]


def test_crop_is_clipped_to_the_image_and_follows_flipped_axes():
    img = volume(
        shape_zyx=(10, 10, 10), spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=DIRECTIONS["RAS"]
    )
    # image spans x, y in [-9, 0] mm (axes point to -x, -y)
    out = sio.crop_to_bounds_mm(img, (-3.0, -100.0, 2.0), (50.0, -8.0, 3.0))
    assert out.GetSize() == (4, 2, 2)
    lo, hi = sio.physical_bounds_mm(out)
    np.testing.assert_allclose(lo, (-3.0, -9.0, 2.0))
    np.testing.assert_allclose(hi, (0.0, -8.0, 3.0))
    for index in [(0, 0, 0), (3, 1, 1)]:
        assert value_at(img, out.TransformIndexToPhysicalPoint(index)) == out[index]


def test_crop_missing_the_image_is_refused():
    img = volume()
    with pytest.raises(InputError) as e:
        sio.crop_to_bounds_mm(img, (500.0, 500.0, 500.0), (600.0, 600.0, 600.0))
    assert_input_error(e, "misses the image", "spans")
    with pytest.raises(InputError) as e:
        sio.crop_to_bounds_mm(img, (1.0, 0.0, 0.0), (0.0, 1.0, 1.0))
    assert_input_error(e, "lower")


def test_crop_to_label_with_margin():
    lm = labels_volume()
    ct = sio.resample_like(_ramp_x(), lm.image, default_value=0.0)
    l4 = sio.crop_to_label(ct, lm, margin_mm=0.0, structures=["L4"])
    lab4 = sio.crop_to_label(lm.image, lm, structures=["L4"])
    assert set(np.unique(sitk.GetArrayViewFromImage(lab4))) == {23}
    assert l4.GetSize() == lab4.GetSize()
    wider = sio.crop_to_label(lm.image, lm, margin_mm=2.0, structures=[23])
    assert all(w > s for w, s in zip(wider.GetSize(), lab4.GetSize(), strict=True))
    assert set(np.unique(sitk.GetArrayViewFromImage(sio.crop_to_label(lm.image, lm.image)))) == {
        0,
        22,
        23,
        24,
    }
    with pytest.raises(InputError) as e:
        sio.crop_to_label(ct, lm, structures=["S1"])
    assert_input_error(e, "S1")


# ------------------------------------------------------------------------------------------------
# label maps: sidecar JSON


def test_labelmap_canonical_uses_anatomy_labels():
    lm = labels_volume()
    canon = lm.canonical()
    arr = sitk.GetArrayViewFromImage(canon.image)
    assert set(np.unique(arr)) == {
        0,
        anatomy.BY_NAME["L3"].label,
        anatomy.BY_NAME["L4"].label,
        anatomy.BY_NAME["L5"].label,
    }
    np.testing.assert_array_equal(arr == anatomy.BY_NAME["L4"].label, lm.array() == 23)
    assert set(canon.mapping.values.values()) == set(lm.mapping.values.values())
    assert all(anatomy.BY_NAME[n].label == v for v, n in canon.mapping.values.items())
    assert_same_geometry(canon.image, lm.image)
    assert lm.structures_present() == ["L3", "L4", "L5"]


def test_labelmap_nifti_with_sidecar_round_trip(tmp_path):
    lm = labels_volume()
    image_path, side = sio.write_labelmap_nifti(lm, tmp_path / "labels.nii.gz")
    assert side == tmp_path / "labels.json"
    assert json.loads(side.read_text()) == json.loads(json.dumps(lm.mapping.to_json()))
    back = sio.read_labelmap(image_path)
    assert_same_image(back.image, lm.image)
    assert back.mapping.values == lm.mapping.values and back.mapping.source == lm.mapping.source


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".nii"])
def test_labelmap_other_formats_round_trip(tmp_path, suffix):
    lm = labels_volume()
    path = sio.write_labelmap(lm, tmp_path / f"labels{suffix}")
    assert sio.sidecar_path(path).exists()
    back = sio.read_labelmap(path)
    assert_same_image(back.image, lm.image)
    assert back.mapping.values == lm.mapping.values


def test_labelmap_without_sidecar_or_mapping_is_refused(tmp_path):
    path = sio.write_image(labels_volume().image, tmp_path / "mask.nii.gz")
    with pytest.raises(InputError) as e:
        sio.read_labelmap(path)
    assert_input_error(e, "no sidecar", "verse", "mask.json")
    lm = sio.read_labelmap(path, mapping="verse")
    assert lm.structures_present() == ["L3", "L4", "L5"]
    lm = sio.read_labelmap(path, mapping=anatomy.VERSE)
    assert lm.mapping is anatomy.VERSE
    with pytest.raises(InputError) as e:
        sio.read_labelmap(path, mapping="nonsense")
    assert_input_error(e, "Unknown label convention", "verse")


def test_labelmap_values_outside_the_mapping_are_refused(tmp_path):
    path = sio.write_image(labels_volume().image, tmp_path / "mask.nii.gz")
    with pytest.raises(InputError) as e:
        sio.read_labelmap(path, mapping="paper_3class")
    assert_input_error(e, "22", "not in the")
    lm = sio.LabelMap(labels_volume().image, anatomy.PAPER_3CLASS)
    with pytest.raises(InputError):
        sio.write_labelmap_nifti(lm, tmp_path / "bad.nii.gz")
    assert not (tmp_path / "bad.nii.gz").exists()


def test_float_label_files(tmp_path):
    lm = labels_volume()
    as_float = sitk.Cast(lm.image, sitk.sitkFloat32)
    path = sio.write_image(as_float, tmp_path / "float_mask.nii.gz")
    back = sio.read_labelmap(path, mapping="verse")
    assert back.image.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_array_equal(back.array(), lm.array())
    probabilities = sitk.Cast(lm.image, sitk.sitkFloat32) / 100.0
    path = sio.write_image(probabilities, tmp_path / "prob.nii.gz")
    with pytest.raises(InputError) as e:
        sio.read_labelmap(path, mapping="verse")
    assert_input_error(e, "non-integer")


def test_labelmap_writers_never_overwrite(tmp_path):
    lm = labels_volume()
    (tmp_path / "labels.json").write_text("{}")  # only the sidecar exists
    with pytest.raises(OutputExistsError):
        sio.write_labelmap_nifti(lm, tmp_path / "labels.nii.gz")
    assert not (tmp_path / "labels.nii.gz").exists()
    assert (tmp_path / "labels.json").read_text() == "{}"
    sio.write_labelmap_nifti(lm, tmp_path / "labels.nii.gz", overwrite=True)
    assert sio.read_labelmap(tmp_path / "labels.nii.gz").mapping.values == lm.mapping.values
    sio.write_seg_nrrd(lm, tmp_path / "labels.seg.nrrd")
    before = (tmp_path / "labels.seg.nrrd").read_bytes()
    with pytest.raises(OutputExistsError):
        sio.write_seg_nrrd(lm.canonical(), tmp_path / "labels.seg.nrrd")
    assert (tmp_path / "labels.seg.nrrd").read_bytes() == before


def test_labelmap_rejects_non_integer_images():
    with pytest.raises(InputError) as e:
        sio.LabelMap(sitk.Image([2, 2, 2], sitk.sitkFloat32), anatomy.VERSE)
    assert_input_error(e, "integer")


# ------------------------------------------------------------------------------------------------
# Slicer .seg.nrrd


def _nrrd_header(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Parse an NRRD header by hand: (fields 'key: value', key/value pairs 'key:=value')."""
    text = path.read_bytes().split(b"\n\n", 1)[0].decode("latin-1")
    lines = text.split("\n")
    assert lines[0].startswith("NRRD000")
    fields, pairs = {}, {}
    for line in lines[1:]:
        if line.startswith("#"):
            continue
        if ":=" in line:
            k, v = line.split(":=", 1)
            pairs[k] = v
        else:
            k, v = line.split(": ", 1)
            fields[k] = v
    return fields, pairs


def _numbers(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", text)]


def test_seg_nrrd_header_is_what_slicer_writes(tmp_path):
    canon = labels_volume().canonical()
    # L6 is listed in the mapping but absent from the image: it still gets an (empty) segment
    values = {anatomy.BY_NAME[n].label: n for n in ("L3", "L4", "L5", "L6")}
    lm = sio.LabelMap(canon.image, anatomy.LabelMapping(source=canon.mapping.source, values=values))
    path = sio.write_seg_nrrd(lm, tmp_path / "spine.seg.nrrd")
    fields, pairs = _nrrd_header(path)

    assert fields["type"] == "unsigned char"
    assert fields["dimension"] == "3"
    assert fields["space"] == "left-posterior-superior"
    assert fields["kinds"] == "domain domain domain"
    assert fields["encoding"] == "gzip"
    assert _numbers(fields["sizes"]) == list(lm.image.GetSize())
    np.testing.assert_allclose(_numbers(fields["space origin"]), lm.image.GetOrigin(), atol=1e-9)
    dirs = np.asarray(_numbers(fields["space directions"])).reshape(3, 3)  # one row per axis
    np.testing.assert_allclose(
        dirs.T, np.asarray(lm.image.GetDirection()).reshape(3, 3) * lm.image.GetSpacing(), atol=1e-9
    )

    assert pairs["Segmentation_MasterRepresentation"] == "Binary labelmap"
    assert pairs["Segmentation_ContainedRepresentationNames"].startswith("Binary labelmap|")
    assert pairs["Segmentation_ReferenceImageExtentOffset"] == "0 0 0"
    geometry = re.search(r"Reference image geometry\|([^|]*)\|", pairs["Segmentation_ConversionParameters"])
    numbers = [float(v) for v in geometry.group(1).rstrip(";").split(";")]
    ijk_to_ras = np.asarray(numbers[:16]).reshape(4, 4)
    point = ijk_to_ras @ np.array([2, 3, 4, 1.0])
    np.testing.assert_allclose(
        point[:3], np.multiply(lm.image.TransformIndexToPhysicalPoint((2, 3, 4)), [-1, -1, 1])
    )
    size = lm.image.GetSize()
    assert numbers[16:] == [0, size[0] - 1, 0, size[1] - 1, 0, size[2] - 1]

    names = ["L3", "L4", "L5", "L6"]
    for i, name in enumerate(names):
        s = anatomy.BY_NAME[name]
        assert pairs[f"Segment{i}_ID"] == name
        assert pairs[f"Segment{i}_Name"] == name
        assert pairs[f"Segment{i}_NameAutoGenerated"] == "0"
        assert pairs[f"Segment{i}_ColorAutoGenerated"] == "0"
        np.testing.assert_allclose(_numbers(pairs[f"Segment{i}_Color"]), np.asarray(s.rgb) / 255, atol=1e-5)
        assert pairs[f"Segment{i}_LabelValue"] == str(s.label)
        assert pairs[f"Segment{i}_Layer"] == "0"
        assert pairs[f"Segment{i}_Extent"] == f"0 {size[0] - 1} 0 {size[1] - 1} 0 {size[2] - 1}"
        assert pairs[f"Segment{i}_Tags"] == f"TerminologyEntry:{anatomy.terminology_entry(name)}|"
    assert "Segment4_ID" not in pairs


def test_seg_nrrd_round_trip(tmp_path):
    lm = labels_volume()
    path = sio.write_seg_nrrd(lm, tmp_path / "verse.seg.nrrd")
    back = sio.read_seg_nrrd(path)
    assert_same_image(back.image, lm.image)
    assert back.mapping.values == lm.mapping.values
    again = sio.read_labelmap(path)  # dispatch by extension
    np.testing.assert_array_equal(again.array(), lm.array())
    canon = sio.read_labelmap(sio.write_labelmap(lm.canonical(), tmp_path / "canon.seg.nrrd"))
    np.testing.assert_array_equal(canon.array(), lm.canonical().array())


def test_seg_nrrd_with_reference_records_offset_and_reference_grid(tmp_path):
    ct = sio.image_from_array(
        np.zeros((12, 10, 11), np.int16), (0.9, 0.8, 1.5), (1.0, 2.0, 3.0), DIRECTIONS["RAS"]
    )
    arr = np.zeros((4, 3, 5), np.uint8)
    arr[1:3, 1:2, 1:4] = 23
    labels = sio.image_from_array(
        arr, ct.GetSpacing(), ct.TransformIndexToPhysicalPoint((2, 3, 4)), DIRECTIONS["RAS"]
    )
    path = sio.write_seg_nrrd(sio.LabelMap(labels, anatomy.VERSE), tmp_path / "crop.seg.nrrd", reference=ct)
    fields, pairs = _nrrd_header(path)
    assert pairs["Segmentation_ReferenceImageExtentOffset"] == "2 3 4"
    np.testing.assert_allclose(_numbers(fields["space origin"]), labels.GetOrigin(), atol=1e-9)
    geometry = re.search(
        r"Reference image geometry\|([^|]*)\|", pairs["Segmentation_ConversionParameters"]
    ).group(1)
    numbers = [float(v) for v in geometry.rstrip(";").split(";")]
    assert numbers[16:] == [0, 10, 0, 9, 0, 11]
    np.testing.assert_allclose(numbers[3:12:4], np.multiply(ct.GetOrigin(), [-1, -1, 1]))
    back = sio.read_seg_nrrd(path)
    assert_same_image(back.image, labels)


def _slicer_style_file(path: Path, layers: list[np.ndarray], segments: list[dict]) -> Path:
    """A segmentation as Slicer saves it (4D 'list' axis when there are several layers)."""
    if len(layers) == 1:
        img = sitk.GetImageFromArray(layers[0])
    else:
        img = sitk.GetImageFromArray(np.stack(layers, axis=-1), isVector=True)
    img.SetSpacing((1.2, 1.2, 3.0))
    img.SetOrigin((193.1, 216.4, -340.25))
    img.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    shape = layers[0].shape
    img.SetMetaData("Segmentation_MasterRepresentation", "Binary labelmap")
    img.SetMetaData("Segmentation_ReferenceImageExtentOffset", "0 0 0")
    for i, seg in enumerate(segments):
        img.SetMetaData(f"Segment{i}_ID", f"Segment_{i + 1}")
        img.SetMetaData(f"Segment{i}_Name", seg["name"])
        img.SetMetaData(f"Segment{i}_LabelValue", str(seg["value"]))
        img.SetMetaData(f"Segment{i}_Layer", str(seg["layer"]))
        img.SetMetaData(
            f"Segment{i}_Extent", seg.get("extent", f"0 {shape[2] - 1} 0 {shape[1] - 1} 0 {shape[0] - 1}")
        )
        img.SetMetaData(f"Segment{i}_Color", "0.5 0.5 0.5")
        img.SetMetaData(f"Segment{i}_Tags", "Segmentation.Status:inprogress|")
    sitk.WriteImage(img, str(path), True)
    return path


def test_read_multi_layer_seg_nrrd(tmp_path):
    a = np.zeros((4, 5, 6), np.uint8)
    b = np.zeros((4, 5, 6), np.uint8)
    a[0:2, 1:3, 1:3] = 1  # L4, layer 0
    a[2:4, 1:3, 1:3] = 2  # L5, layer 0
    b[1:3, 3:5, 4:6] = 1  # root_L5_left, layer 1 (value 1 reused)
    segments = [
        {"name": "L4", "value": 1, "layer": 0},
        {"name": "L5", "value": 2, "layer": 0},
        {"name": "root_L5_left", "value": 1, "layer": 1},
    ]
    path = _slicer_style_file(tmp_path / "layers.seg.nrrd", [a, b], segments)
    lm = sio.read_seg_nrrd(path)
    canon = {n: anatomy.BY_NAME[n].label for n in ("L4", "L5", "root_L5_left")}
    assert lm.mapping.values == {v: n for n, v in sorted(canon.items(), key=lambda kv: kv[1])}
    arr = lm.array()
    np.testing.assert_array_equal(arr == canon["L4"], a == 1)
    np.testing.assert_array_equal(arr == canon["L5"], a == 2)
    np.testing.assert_array_equal(arr == canon["root_L5_left"], b == 1)
    np.testing.assert_allclose(lm.image.GetOrigin(), (193.1, 216.4, -340.25))
    assert sio.orientation_code(lm.image) == "RAS"


def test_read_seg_nrrd_overlap_and_extent(tmp_path):
    a = np.zeros((4, 5, 6), np.uint8)
    b = np.zeros((4, 5, 6), np.uint8)
    a[0:2, 1:3, 1:3] = 1
    b[1:3, 1:3, 1:3] = 1  # overlaps the first segment at z = 1
    segments = [{"name": "L4", "value": 1, "layer": 0}, {"name": "L5", "value": 1, "layer": 1}]
    path = _slicer_style_file(tmp_path / "overlap.seg.nrrd", [a, b], segments)
    with pytest.raises(InputError) as e:
        sio.read_seg_nrrd(path)
    assert_input_error(e, "overlap", "L4", "L5")
    # voxels outside a segment's extent do not belong to it (Slicer clips to the extent)
    c = np.zeros((4, 5, 6), np.uint8)
    c[:, 1:3, 1:3] = 1
    path = _slicer_style_file(
        tmp_path / "extent.seg.nrrd", [c], [{"name": "S1", "value": 1, "layer": 0, "extent": "0 5 0 4 0 1"}]
    )
    arr = sio.read_seg_nrrd(path).array()
    assert np.count_nonzero(arr[:2]) == 8 and np.count_nonzero(arr[2:]) == 0


def test_read_seg_nrrd_needs_canonical_names_or_a_mapping(tmp_path):
    a = np.zeros((4, 5, 6), np.uint8)
    a[1:3, 1:3, 1:3] = 20
    a[3, 1:3, 1:3] = 21
    segments = [{"name": "Segment_1", "value": 20, "layer": 0}, {"name": "lumbar 2", "value": 21, "layer": 0}]
    path = _slicer_style_file(tmp_path / "named.seg.nrrd", [a], segments)
    with pytest.raises(InputError) as e:
        sio.read_seg_nrrd(path)
    assert_input_error(e, "Segment_1", "lumbar 2", "mapping=", "verse")
    lm = sio.read_labelmap(path, mapping="verse")
    assert lm.structures_present() == ["L1", "L2"]
    np.testing.assert_array_equal(lm.array(), a)
    # a canonical segment name contradicting the mapping is refused
    path = _slicer_style_file(tmp_path / "wrong.seg.nrrd", [a], [{"name": "L5", "value": 20, "layer": 0}])
    with pytest.raises(InputError) as e:
        sio.read_seg_nrrd(path, mapping="verse")
    assert_input_error(e, "L5", "L1")


def test_write_seg_nrrd_refusals(tmp_path):
    lm = labels_volume()
    with pytest.raises(InputError) as e:
        sio.write_seg_nrrd(lm, tmp_path / "labels.nrrd")
    assert_input_error(e, ".seg.nrrd")
    with pytest.raises(InputError) as e:
        sio.write_seg_nrrd(sio.LabelMap(lm.image, anatomy.PAPER_3CLASS), tmp_path / "x.seg.nrrd")
    assert_input_error(e, "not in the")
    assert not (tmp_path / "x.seg.nrrd").exists()


def test_seg_nrrd_corrupt_file(tmp_path):
    path = tmp_path / "broken.seg.nrrd"
    path.write_bytes(b"NRRD0004\ntype: what\n\n" + bytes(10))
    with pytest.raises(InputError) as e:
        sio.read_labelmap(path)
    assert_input_error(e, "broken.seg.nrrd")


def test_seg_nrrd_keep_empty_false_writes_only_present_structures(tmp_path):
    lm = labels_volume()  # VerSe lists C1..T13 too; only L3-L5 are present
    _, all_pairs = _nrrd_header(sio.write_seg_nrrd(lm, tmp_path / "all.seg.nrrd"))
    assert sum(k.endswith("_ID") for k in all_pairs) == len(anatomy.VERSE.names())
    _, pairs = _nrrd_header(sio.write_seg_nrrd(lm, tmp_path / "present.seg.nrrd", keep_empty=False))
    assert [pairs[f"Segment{i}_Name"] for i in range(3)] == ["L3", "L4", "L5"]
    assert [pairs[f"Segment{i}_LabelValue"] for i in range(3)] == ["22", "23", "24"]
    assert "Segment3_ID" not in pairs


def test_seg_nrrd_from_a_many_to_one_mapping_uses_canonical_values(tmp_path):
    arr = np.zeros((4, 5, 6), np.uint8)
    arr[0, 1:3, 1:3] = 25  # TotalSegmentator "sacrum"
    arr[1, 1:3, 1:3] = 26  # TotalSegmentator "vertebrae_S1": both are canonical S1
    arr[3, 1:3, 1:3] = 27  # vertebrae_L5
    lm = sio.LabelMap(sio.image_from_array(arr), anatomy.TOTALSEG_V2)
    path = sio.write_seg_nrrd(lm, tmp_path / "ts.seg.nrrd", keep_empty=False)
    _, pairs = _nrrd_header(path)
    assert {pairs[f"Segment{i}_Name"]: pairs[f"Segment{i}_LabelValue"] for i in range(2)} == {
        "S1": str(anatomy.BY_NAME["S1"].label),
        "L5": str(anatomy.BY_NAME["L5"].label),
    }
    back = sio.read_seg_nrrd(path).array()
    np.testing.assert_array_equal(back == anatomy.BY_NAME["S1"].label, (arr == 25) | (arr == 26))
    # a class mapped to background is dropped, never written as a segment
    site = anatomy.LabelMapping("site", {1: "L5", 2: anatomy.BACKGROUND})
    two = np.zeros((4, 5, 6), np.uint8)
    two[0], two[1] = 1, 2
    path = sio.write_seg_nrrd(sio.LabelMap(sio.image_from_array(two), site), tmp_path / "site.seg.nrrd")
    _, pairs = _nrrd_header(path)
    assert pairs["Segment0_Name"] == "L5" and "Segment1_ID" not in pairs
    back = sio.read_seg_nrrd(path).array()
    np.testing.assert_array_equal(back != 0, two == 1)


def test_read_seg_nrrd_segments_sharing_a_name_merge(tmp_path):
    a = np.zeros((4, 5, 6), np.uint8)
    a[0] = 3
    a[1] = 4
    segments = [{"name": "S1", "value": 3, "layer": 0}, {"name": "S1", "value": 4, "layer": 0}]
    lm = sio.read_seg_nrrd(_slicer_style_file(tmp_path / "twice.seg.nrrd", [a], segments))
    assert lm.mapping.values == {3: "S1", 4: "S1"}
    assert lm.structures_present() == ["S1"]
    canon = lm.canonical().array()
    np.testing.assert_array_equal(canon == anatomy.BY_NAME["S1"].label, a > 0)
    # a mapping that sends a segment's value to background drops that segment
    site = anatomy.LabelMapping("site", {3: "S1", 4: anatomy.BACKGROUND})
    dropped = sio.read_seg_nrrd(tmp_path / "twice.seg.nrrd", mapping=site)
    np.testing.assert_array_equal(dropped.array() != 0, a == 3)
