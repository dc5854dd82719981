"""Image input/output with SimpleITK: read, validate, reorient, resample, crop, write, Slicer ``.seg.nrrd``.

Coordinate frame
----------------
Every physical coordinate in the engine is **LPS, in mm**: +x = patient left, +y = posterior,
+z = superior. This is SimpleITK's (ITK's, DICOM's) physical frame: ``img.GetOrigin()`` is the LPS
position of the centre of voxel (0, 0, 0) and ``img.GetDirection()`` (row-major 3x3) holds the LPS
unit vector of each voxel axis in its columns.

* **NIfTI** files store their affine (sform/qform) in **RAS** (+x = right, +y = anterior). SimpleITK
  converts on read and write by negating the first two rows of the affine: a NIfTI ``qoffset`` /
  ``srow`` translation of (x, y, z) RAS is origin (-x, -y, z) LPS in SimpleITK.
* **NRRD** files written here say ``space: left-posterior-superior`` and are LPS as stored.
* **DICOM** is LPS natively (ImagePositionPatient, ImageOrientationPatient).
* **3D Slicer** shows RAS coordinates in its GUI; its file readers and writers convert, so a point at
  LPS (x, y, z) here is at RAS (-x, -y, z) in Slicer.

Numpy arrays from :func:`SimpleITK.GetArrayFromImage` (and :func:`image_from_array`) are indexed
``[z, y, x]`` (``[k, j, i]``), the reverse of SimpleITK's ``(i, j, k)`` index and size order.

Label maps
----------
A :class:`LabelMap` is an integer image plus the :class:`~spineai.anatomy.LabelMapping` that names its
values. Label maps are written either as an image with a JSON sidecar (``labels.nii.gz`` +
``labels.json``) or as a 3D Slicer segmentation (``.seg.nrrd``) whose header carries the names,
colours and terminology. Nothing here guesses a label convention: a label file without a sidecar or
segment names needs an explicit mapping.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import anatomy
from .errors import InputError
from .outputs import atomic_path, check_writable, write_json

__all__ = [
    "MAX_SPACING_MM",
    "ORTHOGONALITY_TOLERANCE",
    "LabelMap",
    "crop_to_bounds_mm",
    "crop_to_label",
    "from_canonical",
    "image_from_array",
    "orientation_code",
    "physical_bounds_mm",
    "read_image",
    "read_labelmap",
    "read_seg_nrrd",
    "read_verse_centroids",
    "reorient",
    "resample_like",
    "resample_to_spacing",
    "resolve_mapping",
    "sidecar_path",
    "to_canonical",
    "validate_image",
    "write_image",
    "write_labelmap",
    "write_labelmap_nifti",
    "write_seg_nrrd",
]

#: largest voxel spacing accepted on any axis (mm); larger values mean a broken header
MAX_SPACING_MM = 10.0
#: largest deviation of D^T D from the identity for a direction matrix D to count as orthogonal
ORTHOGONALITY_TOLERANCE = 1e-3

_NIFTI = (".nii", ".nii.gz")
_NRRD = (".nrrd", ".nhdr")
_SEG_NRRD = (".seg.nrrd", ".seg.nhdr")
_META = (".mha", ".mhd")
_PICTURE = (".png", ".jpg", ".jpeg", ".bmp")
_DICOM = (".dcm", ".ima", ".dicom")
#: formats written as a single file (atomic rename is only possible for one file)
_WRITABLE = (".nii", ".nii.gz", ".nrrd", ".mha", ".png", ".jpg", ".jpeg", ".bmp")
_FORMAT_NAMES = {
    ".nii": "NIfTI",
    ".nii.gz": "NIfTI",
    ".nrrd": "NRRD",
    ".nhdr": "NRRD",
    ".seg.nrrd": "Slicer segmentation NRRD",
    ".seg.nhdr": "Slicer segmentation NRRD",
    ".mha": "MetaImage",
    ".mhd": "MetaImage",
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".dcm": "DICOM",
    ".ima": "DICOM",
    ".dicom": "DICOM",
}
_SUPPORTED_TEXT = (
    "NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr, .seg.nrrd), MetaImage (.mha, .mhd), a DICOM series "
    "folder (or one of its files), PNG/JPEG/BMP (2D)"
)
_READABLE_FIX = (
    "check that the file is complete and really in that format (try opening it in 3D Slicer); "
    "if it is, export it again as NIfTI (.nii.gz) or NRRD (.nrrd)"
)

# ITU-R BT.601 luma weights (the JPEG/JFIF convention) for colour pictures converted to grey
_LUMA_RGB = (0.299, 0.587, 0.114)

_INTERPOLATORS = {
    "linear": sitk.sitkLinear,
    "bspline": sitk.sitkBSpline,
    "nearest": sitk.sitkNearestNeighbor,
}

_INTEGER_PIXEL_IDS = {
    sitk.sitkUInt8,
    sitk.sitkInt8,
    sitk.sitkUInt16,
    sitk.sitkInt16,
    sitk.sitkUInt32,
    sitk.sitkInt32,
    sitk.sitkUInt64,
    sitk.sitkInt64,
}

_AXIS_LETTERS = ({"L", "R"}, {"P", "A"}, {"S", "I"})


# ----------------------------------------------------------------------------------------------------
# paths and formats


def _suffix(path: str | os.PathLike) -> str:
    """Lower-case file extension, keeping the two-part ones (``.nii.gz``, ``.seg.nrrd``)."""
    name = Path(path).name.lower()
    for two_part in (".nii.gz", ".seg.nrrd", ".seg.nhdr"):
        if name.endswith(two_part):
            return two_part
    return Path(name).suffix


def _is_dicom_file(path: Path) -> bool:
    """True if ``path`` starts with the DICOM preamble + ``DICM`` magic (Part 10 file)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def sidecar_path(path: str | os.PathLike) -> Path:
    """JSON sidecar of a label image: ``labels.nii.gz`` -> ``labels.json`` (same folder)."""
    p = Path(path)
    suffix = _suffix(p)
    stem = p.name[: len(p.name) - len(suffix)] if suffix else p.name
    return p.with_name(stem + ".json")


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")


# ----------------------------------------------------------------------------------------------------
# validation


def _describe(name: str, source: str | os.PathLike | None) -> str:
    return f"The {name} '{source}'" if source is not None else f"The {name}"


def validate_image(
    img: sitk.Image,
    *,
    dims: int | None = None,
    name: str = "image",
    source: str | os.PathLike | None = None,
) -> sitk.Image:
    """Check an in-memory image and return it unchanged; raise :class:`InputError` if it is unusable.

    Checks, in order: dimensionality (``dims`` = 2 or 3; ``None`` accepts either), no zero-size axis,
    finite positive spacing no larger than :data:`MAX_SPACING_MM` on every axis, finite origin, an
    orthogonal direction matrix (``|D^T D - I| <= 1e-3``), and no NaN/Inf voxel.

    Args:
        img: the image (any pixel type, scalar or vector).
        dims: required number of spatial dimensions, or ``None``.
        name: what the image is, for messages ("CT", "label map").
        source: the file it came from, named in messages.

    Returns:
        ``img`` itself, so calls can be chained.
    """
    what = _describe(name, source)
    dim = img.GetDimension()
    size = img.GetSize()
    if dim not in (2, 3):
        raise InputError(
            f"{what} has {dim} dimensions (size {size}); only 2D images and 3D volumes are supported.",
            "export a single 3D volume (one time point, one channel) or a single 2D image",
        )
    if dims is not None and dim != dims:
        if dims == 3:
            raise InputError(
                f"{what} is a 2D image (size {size[0]} x {size[1]} pixels) but a 3D volume is needed here.",
                "load the whole CT/MR volume: a NIfTI/NRRD/MHA file or the DICOM series folder, "
                "not a single slice, screenshot or radiograph",
            )
        raise InputError(
            f"{what} is a 3D volume (size {' x '.join(map(str, size))} voxels) but a 2D image is needed here.",
            "pass a single 2D image (radiograph or slice: PNG/JPEG/BMP or 2D DICOM), or extract one slice first",
        )
    if any(s == 0 for s in size):
        raise InputError(
            f"{what} has a zero-size axis (size {size}): it contains no voxels.",
            "the file is empty or was cropped to nothing; export the image again",
        )
    spacing = np.asarray(img.GetSpacing(), dtype=float)
    bad = [i for i, s in enumerate(spacing) if not (math.isfinite(s) and 0.0 < s <= MAX_SPACING_MM)]
    if bad:
        axes = ", ".join("xyz"[i] for i in bad)
        raise InputError(
            f"{what} has an implausible voxel spacing {tuple(round(float(s), 6) for s in spacing)} mm "
            f"(axis {axes} outside 0 < spacing <= {MAX_SPACING_MM:g} mm).",
            "the header's voxel size is wrong: check it in the scanner export or 3D Slicer's Volumes module "
            "(Volume Information), correct it and save the image again",
        )
    origin = np.asarray(img.GetOrigin(), dtype=float)
    if not np.all(np.isfinite(origin)):
        raise InputError(
            f"{what} has a non-finite origin {tuple(origin)}.",
            "the header is corrupt: re-export the image from its source",
        )
    direction = np.asarray(img.GetDirection(), dtype=float).reshape(dim, dim)
    deviation = (
        float(np.max(np.abs(direction.T @ direction - np.eye(dim))))
        if np.all(np.isfinite(direction))
        else np.inf
    )
    if deviation > ORTHOGONALITY_TOLERANCE:
        raise InputError(
            f"{what} has a non-orthogonal direction matrix (axes not perpendicular unit vectors; "
            f"max |D^T D - I| = {deviation:.3g} > {ORTHOGONALITY_TOLERANCE:g}), i.e. a sheared or "
            "broken orientation.",
            "re-export the image from the scanner or DICOM (sheared gantry-tilt series must be resampled "
            "first, e.g. by loading the DICOM in 3D Slicer, which corrects the tilt, and saving as NRRD)",
        )
    if img.GetPixelID() in (
        sitk.sitkFloat32,
        sitk.sitkFloat64,
        sitk.sitkVectorFloat32,
        sitk.sitkVectorFloat64,
    ):
        values = sitk.GetArrayViewFromImage(img)
        # slab by slab: no full-size boolean copy of a large volume
        if not all(np.isfinite(slab).all() for slab in values):
            n_bad = sum(int(slab.size - np.count_nonzero(np.isfinite(slab))) for slab in values)
            raise InputError(
                f"{what} contains {n_bad} NaN or infinite voxel value(s).",
                "the image was produced by a failed computation or conversion; regenerate it, or replace "
                "the invalid voxels (e.g. with the background value) before loading it",
            )
    return img


def _normalise_dims(img: sitk.Image, dims: int | None) -> sitk.Image:
    """Drop a single-voxel axis when a 2D image is requested (e.g. a one-frame DICOM radiograph)."""
    if dims == 2 and img.GetDimension() == 3:
        singleton = [i for i, s in enumerate(img.GetSize()) if s == 1]
        if len(singleton) >= 1 and sum(1 for s in img.GetSize() if s > 1) == 2:
            size = list(img.GetSize())
            size[singleton[0]] = 0
            return sitk.Extract(img, size, [0, 0, 0])
    return img


# ----------------------------------------------------------------------------------------------------
# reading


def _to_luminance(img: sitk.Image) -> sitk.Image:
    """Colour (RGB/RGBA) or grey+alpha picture -> single-channel grey, same integer type.

    Luminance uses the ITU-R BT.601 weights 0.299 R + 0.587 G + 0.114 B (the JPEG convention).
    """
    n = img.GetNumberOfComponentsPerPixel()
    if n == 1:
        return img
    arr = sitk.GetArrayFromImage(img)  # (..., n)
    if n == 2:  # grey + alpha
        grey = arr[..., 0]
    else:
        rgb = arr[..., :3].astype(np.float64)
        grey = rgb @ np.asarray(_LUMA_RGB)
        if np.issubdtype(arr.dtype, np.integer):
            info = np.iinfo(arr.dtype)
            grey = np.clip(np.rint(grey), info.min, info.max).astype(arr.dtype)
        else:
            grey = grey.astype(arr.dtype)
    out = sitk.GetImageFromArray(np.ascontiguousarray(grey), isVector=False)
    out.SetOrigin(img.GetOrigin())
    out.SetSpacing(img.GetSpacing())
    out.SetDirection(img.GetDirection())
    return out


def _read_dicom_series(folder: Path, name: str, *, containing: Path | None = None) -> sitk.Image:
    """Read the largest DICOM series in ``folder`` (or the one holding ``containing``) as HU/values.

    SimpleITK's GDCM reader sorts the slices by position and applies Rescale Slope/Intercept
    (0028,1053/0028,1052), so CT comes out in Hounsfield units. Slices must be evenly spaced.
    """
    try:
        series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    except RuntimeError:
        series_ids = ()
    candidates: list[tuple[str, list[str]]] = []
    for sid in series_ids:
        files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid))
        if files:
            candidates.append((sid, files))
    if containing is not None:
        target = os.path.realpath(containing)
        candidates = [c for c in candidates if target in {os.path.realpath(f) for f in c[1]}]
    if not candidates:
        raise InputError(
            f"The {name} folder '{folder}' contains no readable DICOM series.",
            "point to the folder that directly holds the DICOM slice files of one series (sub-folders are "
            "not searched), or convert the series to NIfTI/NRRD first (e.g. with 3D Slicer or dcm2niix)",
        )
    # the series with the most files; the first one reported on a tie
    series_id, files = max(candidates, key=lambda c: len(c[1]))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    reader.LoadPrivateTagsOff()
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise InputError(
            f"The DICOM series {series_id or '(no series UID)'} in '{folder}' could not be read: {_first_line(exc)}",
            "check that the series is complete and uncompressed or in a transfer syntax GDCM supports; "
            "otherwise convert it to NIfTI/NRRD with 3D Slicer or dcm2niix",
        ) from None
    if img.GetDimension() == 3 and img.GetSize()[2] > 2:
        _check_slice_positions(reader, img, folder)
    return img


def _check_slice_positions(reader: sitk.ImageSeriesReader, img: sitk.Image, folder: Path) -> None:
    """Raise if the slices of a series are unevenly spaced (missing or duplicated slices)."""
    n = img.GetSize()[2]
    positions = []
    for k in range(n):
        if not reader.HasMetaDataKey(k, "0020|0032"):
            return  # multi-frame or unusual file: GDCM already derived the geometry
        try:
            positions.append([float(v) for v in reader.GetMetaData(k, "0020|0032").split("\\")])
        except ValueError:
            return
    normal = np.asarray(img.GetDirection(), dtype=float).reshape(3, 3)[:, 2]
    along = np.asarray(positions) @ normal
    gaps = np.diff(along)
    typical = float(np.median(np.abs(gaps)))
    if typical <= 0 or np.max(np.abs(np.abs(gaps) - typical)) > 0.01 * typical + 0.01:
        raise InputError(
            f"The DICOM series in '{folder}' has unevenly spaced slices (gaps between "
            f"{np.min(np.abs(gaps)):.3g} and {np.max(np.abs(gaps)):.3g} mm): slices are missing or duplicated.",
            "export the complete series again; a series with a variable slice spacing must be resampled "
            "first (e.g. load it in 3D Slicer, which regularises it, and save as NRRD)",
        )


def read_image(path: str | os.PathLike, *, dims: int | None = 3, name: str = "image") -> sitk.Image:
    """Read and validate an image; the result's geometry is LPS (mm) whatever the file format.

    Formats: NIfTI (.nii, .nii.gz; RAS on disk, converted to LPS by SimpleITK), NRRD (.nrrd, .nhdr,
    .seg.nrrd as a plain volume), MetaImage (.mha, .mhd), a DICOM series folder (the series with the
    most files; rescale slope/intercept applied, so CT is in HU) or a single DICOM file (its whole
    series is read), PNG/JPEG/BMP (2D; colour converted to grey luminance, BT.601 weights).

    Args:
        path: file or DICOM folder.
        dims: required dimensionality, 3 (volume, default), 2 (picture/radiograph) or ``None`` (either).
            With ``dims=2`` a 3D image with a single slice (one-frame DICOM) becomes 2D.
        name: what the image is, used in error messages ("CT", "radiograph").

    Returns:
        A scalar ``sitk.Image`` (pixel type as stored; size ``(x, y[, z])``).

    Raises:
        InputError: missing path, empty or unreadable file, folder without DICOM series, NaN/Inf voxels,
            wrong dimensionality, spacing <= 0 or > 10 mm, non-orthogonal direction, zero-size axis.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(
            f"The {name} '{p}' does not exist.",
            "check the path (spelling, current folder, mounted drive) and that the file was copied completely",
        )
    suffix = _suffix(p)
    if p.is_dir():
        img = _read_dicom_series(p, name)
        fmt = "DICOM"
    else:
        if p.stat().st_size == 0:
            raise InputError(
                f"The {name} file '{p}' is empty (0 bytes).",
                "the file was not saved or copied completely; export or copy it again",
            )
        if suffix in _DICOM or (suffix not in _FORMAT_NAMES and _is_dicom_file(p)):
            img = (
                _read_dicom_series(p.parent, name, containing=p) if _is_dicom_file(p) else _read_file(p, name)
            )
            fmt = "DICOM"
        else:
            img = _read_file(p, name)
            fmt = _FORMAT_NAMES.get(suffix, "image")
    n_comp = img.GetNumberOfComponentsPerPixel()
    if n_comp > 1:
        if (suffix in _PICTURE or fmt == "DICOM") and n_comp in (2, 3, 4):
            img = _to_luminance(img)
        else:
            raise InputError(
                f"The {name} '{p}' has {n_comp} values per voxel; a single-channel (scalar) image is needed.",
                "save one channel/component as its own image (for a Slicer segmentation use read_seg_nrrd or "
                "read_labelmap instead)",
            )
    img = _normalise_dims(img, dims)
    return validate_image(img, dims=dims, name=name, source=p)


def _nifti_expected_bytes(header: bytes) -> int | None:
    """Uncompressed size (bytes) a NIfTI-1/2 file must have, from its header; None if unrecognised."""
    for endian in "<>":
        if len(header) >= 348 and struct.unpack(endian + "i", header[:4])[0] == 348:
            dim = struct.unpack(endian + "8h", header[40:56])
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            vox_offset = int(struct.unpack(endian + "f", header[108:112])[0])
            break
        if len(header) >= 540 and struct.unpack(endian + "i", header[:4])[0] == 540:
            bitpix = struct.unpack(endian + "h", header[14:16])[0]
            dim = struct.unpack(endian + "8q", header[16:80])
            vox_offset = struct.unpack(endian + "q", header[168:176])[0]
            break
    else:
        return None
    n_dims = dim[0]
    if not 1 <= n_dims <= 7 or bitpix <= 0:
        return None
    n_voxels = math.prod(max(int(d), 1) for d in dim[1 : n_dims + 1])
    return max(vox_offset, 348) + n_voxels * bitpix // 8


def _check_nifti_complete(p: Path, name: str) -> None:
    """Raise if a NIfTI file is shorter than its header says (ITK would silently read zeros).

    For ``.nii.gz`` the gzip trailer's ISIZE (uncompressed size mod 2**32) is compared first; only on
    a mismatch (truncation, or a multi-member gzip) is the stream decompressed to count its bytes.
    """
    gz = p.name.lower().endswith(".gz")
    try:
        if gz:
            with gzip.open(p, "rb") as f:
                header = f.read(540)
        else:
            with open(p, "rb") as f:
                header = f.read(540)
    except (OSError, EOFError, zlib.error):
        return  # unreadable header: SimpleITK reports it
    expected = _nifti_expected_bytes(header)
    if expected is None:
        return
    if not gz:
        actual = p.stat().st_size
    else:
        with open(p, "rb") as f:
            f.seek(-4, os.SEEK_END)
            isize = struct.unpack("<I", f.read(4))[0]
        if isize == expected % 2**32:
            return
        actual = 0
        try:
            with gzip.open(p, "rb") as f:
                while chunk := f.read(1 << 22):
                    actual += len(chunk)
        except (OSError, EOFError, zlib.error):
            pass
    if actual < expected:
        raise InputError(
            f"The {name} file '{p}' is truncated: its header describes {expected} bytes of image but only "
            f"{actual} are there.",
            "the file was not saved or copied completely; copy or export it again",
        )


def _read_file(p: Path, name: str) -> sitk.Image:
    suffix = _suffix(p)
    if suffix in _NIFTI:
        _check_nifti_complete(p, name)
    try:
        return sitk.ReadImage(str(p))
    except RuntimeError as exc:
        if "Zero-valued spacing" in str(exc):
            raise InputError(
                f"The {name} file '{p}' has a zero voxel spacing in its header (spacing must be > 0 mm).",
                "the header's voxel size is wrong: correct it (e.g. in 3D Slicer's Volumes module, Volume "
                "Information) and save the image again",
            ) from None
        if suffix in _FORMAT_NAMES:
            problem = (
                f"The {name} file '{p}' could not be read as {_FORMAT_NAMES[suffix]}: it is corrupt, "
                f"truncated or not really a {_FORMAT_NAMES[suffix]} file ({_first_line(exc)})."
            )
            raise InputError(problem, _READABLE_FIX) from None
        raise InputError(
            f"The {name} file '{p}' is not in a readable image format ({_first_line(exc)}).",
            f"use one of: {_SUPPORTED_TEXT}",
        ) from None


def image_from_array(
    array: np.ndarray,
    spacing_mm: float | Sequence[float] = 1.0,
    origin_mm: Sequence[float] | None = None,
    direction: Sequence[float] | np.ndarray | None = None,
    *,
    name: str = "array",
) -> sitk.Image:
    """Wrap a numpy array as a validated ``sitk.Image``.

    Args:
        array: voxel values, shape ``(z, y, x)`` for 3D or ``(y, x)`` for 2D (SimpleITK's
            ``GetArrayFromImage`` order). Booleans become uint8.
        spacing_mm: voxel size (x, y[, z]) in mm, or one number for all axes.
        origin_mm: LPS position (mm) of the centre of voxel ``[0, 0, 0]``; default zeros.
        direction: LPS unit vectors of the x, y(, z) voxel axes as the columns of a 3x3 (2x2) matrix,
            given as that matrix or flattened row-major (SimpleITK order); default identity.
        name: used in error messages.

    Returns:
        The image; geometry validated as in :func:`validate_image`.
    """
    arr = np.asarray(array)
    if arr.ndim not in (2, 3):
        raise InputError(
            f"The {name} has {arr.ndim} dimensions (shape {arr.shape}); a 2D (y, x) or 3D (z, y, x) array is needed.",
            "pass a single 2D image or 3D volume, axes ordered (z, y, x)",
        )
    if 0 in arr.shape:
        raise InputError(
            f"The {name} has a zero-size axis (shape {arr.shape}): it contains no voxels.",
            "pass a non-empty array",
        )
    dim = arr.ndim
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    spacing = _as_vector(spacing_mm, dim, "spacing_mm")
    bad = [i for i, s in enumerate(spacing) if not (math.isfinite(s) and 0.0 < s <= MAX_SPACING_MM)]
    if bad:
        raise InputError(
            f"The {name} spacing {tuple(spacing)} mm is implausible on axis "
            f"{', '.join('xyz'[i] for i in bad)} (must be 0 < spacing <= {MAX_SPACING_MM:g} mm).",
            "pass the voxel size in millimetres in (x, y, z) order",
        )
    origin = _as_vector(0.0 if origin_mm is None else origin_mm, dim, "origin_mm")
    if direction is None:
        dir_flat = tuple(np.eye(dim).ravel())
    else:
        d = np.asarray(direction, dtype=float)
        if d.size != dim * dim:
            raise InputError(
                f"The {name} direction has {d.size} values; a {dim}x{dim} matrix is needed.",
                f"pass the {dim} axis unit vectors (LPS) as the columns of a {dim}x{dim} matrix",
            )
        dir_flat = tuple(d.reshape(dim, dim).ravel())
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr), isVector=False)
    img.SetSpacing(tuple(spacing))
    img.SetOrigin(tuple(origin))
    d = np.asarray(dir_flat).reshape(dim, dim)
    if not np.all(np.isfinite(d)) or np.max(np.abs(d.T @ d - np.eye(dim))) > ORTHOGONALITY_TOLERANCE:
        raise InputError(
            f"The {name} direction matrix is not orthogonal (max |D^T D - I| = "
            f"{float(np.max(np.abs(d.T @ d - np.eye(dim)))) if np.all(np.isfinite(d)) else float('inf'):.3g}).",
            "pass perpendicular unit vectors (LPS) as the columns of the direction matrix",
        )
    img.SetDirection(dir_flat)
    return validate_image(img, name=name)


def _as_vector(value: float | Sequence[float], dim: int, what: str) -> list[float]:
    if np.isscalar(value):
        return [float(value)] * dim  # type: ignore[arg-type]
    vec = [float(v) for v in value]  # type: ignore[union-attr]
    if len(vec) != dim:
        raise InputError(
            f"{what} has {len(vec)} values for a {dim}D image.", f"pass {dim} values in (x, y, z) order"
        )
    return vec


# ----------------------------------------------------------------------------------------------------
# writing


def write_image(
    img: sitk.Image, path: str | os.PathLike, overwrite: bool = False, *, compress: bool = True
) -> Path:
    """Write ``img`` atomically (temporary file renamed on success), compressed.

    Single-file formats only: .nii, .nii.gz, .nrrd, .mha (and .png/.jpg/.bmp for 2D 8/16-bit images).
    NIfTI files get a RAS affine from SimpleITK; NRRD/MHA store LPS. Metadata read from another
    format (NIfTI header fields, DICOM tags) is not copied into the new file.

    Args:
        img: the image.
        path: destination.
        overwrite: replace an existing file (default: refuse with :class:`OutputExistsError`).
        compress: gzip/zlib compression where the format supports it.

    Returns:
        ``path`` as a :class:`Path`.
    """
    p = Path(path)
    suffix = _suffix(p)
    if suffix in _SEG_NRRD:
        raise InputError(
            f"'{p}' is a Slicer segmentation name (.seg.nrrd) but write_image writes plain images.",
            "use write_seg_nrrd for label maps, or name the file .nrrd",
        )
    if suffix not in _WRITABLE:
        raise InputError(
            f"Cannot write '{p}': '{suffix or '(no extension)'}' is not a single-file image format.",
            "use .nii.gz, .nrrd or .mha (header+data pairs such as .mhd/.nhdr cannot be written atomically)",
        )
    out = sitk.Image(img)  # cheap copy-on-write; lets us drop foreign metadata
    for key in out.GetMetaDataKeys():
        out.EraseMetaData(key)
    _write(out, p, overwrite, compress)
    return p


def _write(img: sitk.Image, p: Path, overwrite: bool, compress: bool) -> None:
    with atomic_path(p, overwrite) as tmp:
        try:
            sitk.WriteImage(img, str(tmp), compress)
        except RuntimeError as exc:
            raise InputError(
                f"Could not write '{p}' ({img.GetPixelIDTypeAsString()}, {img.GetDimension()}D): {_first_line(exc)}",
                "choose a format that supports this pixel type (NRRD, MHA or NIfTI for volumes; PNG only for "
                "8/16-bit 2D images) and check that the folder is writable",
            ) from None


# ----------------------------------------------------------------------------------------------------
# orientation


def _check_code(code: str) -> str:
    c = str(code).upper()
    if len(c) != 3 or not all(sum(ch in pair for ch in c) == 1 for pair in _AXIS_LETTERS):
        raise InputError(
            f"'{code}' is not an orientation code.",
            "use three letters, one from each pair L/R, P/A, S/I, e.g. 'LPS', 'RAS' or 'PIR'",
        )
    return c


def orientation_code(img: sitk.Image) -> str:
    """Three-letter orientation of a 3D image: the direction each voxel axis i, j, k points *towards*.

    ``"LPS"`` is the identity direction (x to the patient's left, y posterior, z superior); a NIfTI
    stored RAS+ reads as ``"RAS"``. Oblique axes get the closest letters. Uses
    ``sitk.DICOMOrientImageFilter``.
    """
    if img.GetDimension() != 3:
        raise InputError(
            f"Orientation codes are defined for 3D volumes; this image is {img.GetDimension()}D.",
            "pass a 3D volume",
        )
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(img.GetDirection())


def reorient(img: sitk.Image, code: str = "LPS") -> sitk.Image:
    """Permute/flip voxel axes so they point towards ``code``; every voxel keeps its LPS position.

    Values are moved, never interpolated, so the operation is exact and reversible. Oblique images stay
    oblique (only the axis order and signs change).
    """
    target = _check_code(code)
    if orientation_code(img) == target:
        return sitk.Image(img)
    return sitk.DICOMOrient(img, target)


def to_canonical(img: sitk.Image) -> tuple[sitk.Image, str]:
    """Reorient to the engine's canonical ``LPS`` axis order; also return the original code.

    ``from_canonical(*to_canonical(img))`` reproduces ``img`` (geometry to floating-point precision,
    voxel values exactly).
    """
    code = orientation_code(img)
    return reorient(img, "LPS"), code


def from_canonical(img: sitk.Image, original_code: str) -> sitk.Image:
    """Undo :func:`to_canonical`: reorient back to ``original_code``."""
    return reorient(img, original_code)


# ----------------------------------------------------------------------------------------------------
# resampling


def _interpolator(name: str) -> int:
    try:
        return _INTERPOLATORS[name]
    except KeyError:
        raise InputError(
            f"Unknown interpolator '{name}'.", f"use one of: {', '.join(_INTERPOLATORS)}"
        ) from None


def _resampled_pixel_id(img: sitk.Image, is_label: bool) -> int:
    if is_label or img.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        return img.GetPixelID()
    return sitk.sitkFloat32


def resample_to_spacing(
    img: sitk.Image,
    spacing_mm: float | Sequence[float],
    *,
    is_label: bool = False,
    interpolator: str = "linear",
    default_value: float = 0.0,
) -> sitk.Image:
    """Resample to a new voxel size, keeping the physical extent and orientation.

    The grid's outer box (voxel edges: from ``origin - spacing/2`` along each axis, ``size * spacing``
    long) is kept; the new size is ``round(size * spacing / new_spacing)`` (at least 1), so the box
    changes by less than half a new voxel per side.

    Args:
        img: 2D or 3D image.
        spacing_mm: new spacing (x, y[, z]) in mm, or one number for isotropic.
        is_label: label map: nearest-neighbour interpolation (always) and the same pixel type.
        interpolator: ``"linear"`` (default) or ``"bspline"`` (cubic B-spline; may overshoot edges), or
            ``"nearest"``; ignored for labels.
        default_value: value of output voxels outside the input (0; use -1024 for air in CT).

    Returns:
        The resampled image; intensity images come out as float32 (float64 stays float64).
    """
    dim = img.GetDimension()
    new_spacing = np.asarray(_as_vector(spacing_mm, dim, "spacing_mm"))
    if not np.all((new_spacing > 0) & np.isfinite(new_spacing)):
        raise InputError(
            f"Resampling spacing {tuple(new_spacing)} mm must be positive.", "pass spacings > 0 mm"
        )
    interp = sitk.sitkNearestNeighbor if is_label else _interpolator(interpolator)
    old_spacing = np.asarray(img.GetSpacing())
    size = np.asarray(img.GetSize())
    direction = np.asarray(img.GetDirection()).reshape(dim, dim)
    new_size = np.maximum(1, np.rint(size * old_spacing / new_spacing)).astype(int)
    corner = np.asarray(img.GetOrigin()) - direction @ (0.5 * old_spacing)
    new_origin = corner + direction @ (0.5 * new_spacing)
    f = sitk.ResampleImageFilter()
    f.SetSize([int(s) for s in new_size])
    f.SetOutputSpacing([float(s) for s in new_spacing])
    f.SetOutputOrigin([float(o) for o in new_origin])
    f.SetOutputDirection(img.GetDirection())
    f.SetInterpolator(interp)
    f.SetDefaultPixelValue(float(default_value))
    f.SetOutputPixelType(_resampled_pixel_id(img, is_label))
    return f.Execute(img)


def resample_like(
    img: sitk.Image,
    reference: sitk.Image,
    *,
    is_label: bool = False,
    interpolator: str = "linear",
    default_value: float = 0.0,
) -> sitk.Image:
    """Resample ``img`` onto ``reference``'s voxel grid (size, spacing, origin, direction).

    Physical (LPS) positions are matched, no registration: voxels of the reference outside ``img`` get
    ``default_value``. Labels use nearest neighbour and keep their pixel type; intensity images come
    out as float32 (float64 stays float64).
    """
    if img.GetDimension() != reference.GetDimension():
        raise InputError(
            f"Cannot resample a {img.GetDimension()}D image onto a {reference.GetDimension()}D reference.",
            "pass a reference with the same number of dimensions",
        )
    f = sitk.ResampleImageFilter()
    f.SetReferenceImage(reference)
    f.SetInterpolator(sitk.sitkNearestNeighbor if is_label else _interpolator(interpolator))
    f.SetDefaultPixelValue(float(default_value))
    f.SetOutputPixelType(_resampled_pixel_id(img, is_label))
    return f.Execute(img)


#: largest difference of spacing / origin (mm) or direction cosines for two grids to count as the same
GRID_TOLERANCE = 1e-3


def grid_differences(a: sitk.Image, b: sitk.Image, tolerance: float = GRID_TOLERANCE) -> list[str]:
    """How the voxel grids of ``a`` and ``b`` differ (size, spacing, origin, direction); empty when equal."""
    problems = []
    if a.GetSize() != b.GetSize():
        problems.append(f"size {a.GetSize()} vs {b.GetSize()}")
    for what, x, y in (
        ("spacing", a.GetSpacing(), b.GetSpacing()),
        ("origin", a.GetOrigin(), b.GetOrigin()),
        ("direction", a.GetDirection(), b.GetDirection()),
    ):
        if len(x) != len(y) or np.max(np.abs(np.subtract(x, y))) > tolerance:
            problems.append(f"{what} {tuple(round(v, 4) for v in x)} vs {tuple(round(v, 4) for v in y)}")
    return problems


def ct_on_label_grid(
    ct: sitk.Image | str | os.PathLike | None,
    labels: sitk.Image,
    *,
    resample: bool,
    notes: list[str] | None = None,
) -> sitk.Image | None:
    """The CT (path or image) that belongs to a label map, on the label map's voxel grid.

    Args:
        ct: CT image or file / DICOM folder; ``None`` passes through.
        labels: the label map whose grid the CT must share.
        resample: when the grids differ, resample the CT linearly onto the label map's grid (air, -1024 HU,
            outside it) and add a sentence to ``notes``; when ``False`` refuse instead.
        notes: list that collects what was done.

    Raises:
        InputError: ``ct`` is neither a path nor an image, or (``resample=False``) the grids differ.
    """
    if ct is None:
        return None
    if isinstance(ct, (str, os.PathLike)):
        ct = read_image(ct, dims=3, name="CT")
    if not isinstance(ct, sitk.Image):
        raise InputError(f"Cannot use {type(ct).__name__} as a CT.", "pass a file path or a SimpleITK image")
    problems = grid_differences(ct, labels)
    if not problems:
        return ct
    if not resample:
        raise InputError(
            "The label map's grid does not match the CT's (CT vs label map: " + "; ".join(problems) + ").",
            "pass the CT the segmentation was made from, or resample the label map onto the CT first "
            "(spineai.io.resample_like(labels, ct, is_label=True))",
        )
    if notes is not None:
        notes.append(
            "the CT lies on another grid than the label map: it was resampled onto the label map's grid"
        )
    return resample_like(ct, labels, interpolator="linear", default_value=-1024.0)


# ----------------------------------------------------------------------------------------------------
# cropping


def physical_bounds_mm(img: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """LPS axis-aligned bounds (mm) of the centres of an image's voxels: ``(lower, upper)``."""
    size = img.GetSize()
    corners = [
        img.TransformContinuousIndexToPhysicalPoint([float(c) for c in idx])
        for idx in itertools.product(*[(0, s - 1) for s in size])
    ]
    pts = np.asarray(corners)
    return pts.min(axis=0), pts.max(axis=0)


def crop_to_bounds_mm(img: sitk.Image, lower_lps: Sequence[float], upper_lps: Sequence[float]) -> sitk.Image:
    """Crop to an axis-aligned box given in LPS mm, clipped to the image.

    The result is the smallest block of whole voxels containing every voxel whose centre lies in the
    box (for oblique images: the index-space bounding block of the box's corners). Geometry (origin)
    is updated so voxels keep their physical positions.

    Raises:
        InputError: ``lower`` > ``upper`` on an axis, or the box misses the image entirely.
    """
    dim = img.GetDimension()
    lower = np.asarray(_as_vector(lower_lps, dim, "lower_lps"))
    upper = np.asarray(_as_vector(upper_lps, dim, "upper_lps"))
    if np.any(lower > upper) or not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
        raise InputError(
            f"Crop box lower corner {tuple(lower)} is not below upper corner {tuple(upper)} on every axis.",
            "pass finite (lower, upper) LPS coordinates in mm with lower <= upper",
        )
    corners = np.asarray(
        [
            img.TransformPhysicalPointToContinuousIndex([float(c) for c in corner])
            for corner in itertools.product(*zip(lower, upper, strict=True))
        ]
    )
    eps = 1e-6
    lo = np.ceil(corners.min(axis=0) - eps).astype(int)
    hi = np.floor(corners.max(axis=0) + eps).astype(int)
    size = np.asarray(img.GetSize())
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, size - 1)
    if np.any(lo > hi):
        b_lo, b_hi = physical_bounds_mm(img)
        raise InputError(
            f"The crop box {tuple(np.round(lower, 2))} .. {tuple(np.round(upper, 2))} mm (LPS) misses the image, "
            f"which spans {tuple(np.round(b_lo, 2))} .. {tuple(np.round(b_hi, 2))} mm.",
            "check the box coordinates (LPS mm, not voxel indices and not Slicer's RAS: negate x and y "
            "of RAS points) and that the right image was loaded",
        )
    return sitk.RegionOfInterest(img, [int(v) for v in hi - lo + 1], [int(v) for v in lo])


def crop_to_label(
    img: sitk.Image,
    labels: LabelMap | sitk.Image,
    margin_mm: float | Sequence[float] = 0.0,
    *,
    structures: Iterable[str | int] | None = None,
) -> sitk.Image:
    """Crop ``img`` to the LPS bounding box of labelled voxels, enlarged by ``margin_mm``.

    Args:
        img: image to crop (any grid; the box is computed in physical space).
        labels: a :class:`LabelMap` or an integer ``sitk.Image`` (nonzero = labelled).
        margin_mm: margin added on every side (one number or per axis x, y, z), mm, >= 0.
        structures: restrict to these structures: canonical names (needs a :class:`LabelMap`) or
            label values as stored in the image.

    Raises:
        InputError: no selected label present, or an unknown structure name.
    """
    label_img = labels.image if isinstance(labels, LabelMap) else labels
    arr = sitk.GetArrayViewFromImage(label_img)
    if structures is None:
        mask = arr != 0
        wanted = "any label"
    else:
        values = []
        for s in structures:
            if isinstance(s, str):
                if not isinstance(labels, LabelMap):
                    raise InputError(
                        f"Structure name '{s}' given but the labels have no mapping.",
                        "pass a LabelMap (read_labelmap) or label values instead of names",
                    )
                values.append(labels.value_of(s))
            else:
                values.append(int(s))
        mask = np.isin(arr, values)
        wanted = f"structures {list(structures)}"
    if not mask.any():
        raise InputError(
            f"The label map contains no voxel of {wanted}; there is nothing to crop to.",
            "check that the right label map was given and that the structures were segmented",
        )
    dim = label_img.GetDimension()
    nz = np.nonzero(mask)  # (z, y, x) order
    idx_lo = [int(a.min()) for a in reversed(nz)]
    idx_hi = [int(a.max()) for a in reversed(nz)]
    pts = np.asarray(
        [
            label_img.TransformContinuousIndexToPhysicalPoint([float(c) for c in corner])
            for corner in itertools.product(*zip(idx_lo, idx_hi, strict=True))
        ]
    )
    margin = np.asarray(_as_vector(margin_mm, dim, "margin_mm"))
    if np.any(margin < 0):
        raise InputError(f"Negative crop margin {tuple(margin)} mm.", "pass a margin >= 0 mm")
    return crop_to_bounds_mm(img, pts.min(axis=0) - margin, pts.max(axis=0) + margin)


# ----------------------------------------------------------------------------------------------------
# label maps


def resolve_mapping(mapping: anatomy.LabelMapping | str) -> anatomy.LabelMapping:
    """A :class:`~spineai.anatomy.LabelMapping`, or a predefined one by convention name (``"verse"``...,
    see :data:`spineai.anatomy.MAPPINGS`)."""
    if isinstance(mapping, str):
        return anatomy.get_mapping(mapping)
    if not isinstance(mapping, anatomy.LabelMapping):
        raise InputError(
            f"mapping must be a LabelMapping or a convention name, not {type(mapping).__name__}.",
            f"pass one of: {', '.join(_convention_names())}, or a LabelMapping",
        )
    return mapping


def _convention_names() -> list[str]:
    return list(anatomy.MAPPINGS)


def _smallest_label_type(values: np.ndarray) -> int:
    vmax = int(values.max()) if values.size else 0
    if vmax <= 255:
        return sitk.sitkUInt8
    if vmax <= 65535:
        return sitk.sitkUInt16
    return sitk.sitkUInt32


@dataclass
class LabelMap:
    """An integer label image together with the mapping that names its values.

    Attributes:
        image: integer ``sitk.Image`` (LPS geometry); 0 is background.
        mapping: file value -> canonical structure name (:class:`~spineai.anatomy.LabelMapping`).
    """

    image: sitk.Image
    mapping: anatomy.LabelMapping

    def __post_init__(self) -> None:
        if (
            self.image.GetNumberOfComponentsPerPixel() != 1
            or self.image.GetPixelID() not in _INTEGER_PIXEL_IDS
        ):
            raise InputError(
                f"A label map must be a scalar integer image, not {self.image.GetPixelIDTypeAsString()}.",
                "cast it with sitk.Cast(image, sitk.sitkUInt8), or read it with read_labelmap",
            )

    def array(self) -> np.ndarray:
        """Label values as a numpy array, shape (z, y, x) (a copy)."""
        return sitk.GetArrayFromImage(self.image)

    def values_present(self) -> list[int]:
        """Sorted nonzero label values found in the image."""
        vals = np.unique(sitk.GetArrayViewFromImage(self.image))
        return [int(v) for v in vals if v != 0]

    def structures_present(self) -> list[str]:
        """Canonical names of the structures with at least one voxel, in order of first label value."""
        out: list[str] = []
        for v in self.values_present():
            name = self.mapping.values.get(v)
            if name is not None and name != anatomy.BACKGROUND and name not in out:
                out.append(name)
        return out

    def value_of(self, name: str) -> int:
        """Label value of canonical structure ``name`` in this map's convention (the first one listed)."""
        for value, n in self.mapping.values.items():
            if n == name and n != anatomy.BACKGROUND:
                return int(value)
        raise InputError(
            f"Structure '{name}' is not in the label map's '{self.mapping.source}' mapping.",
            f"use one of: {', '.join(self.mapping.names())}",
        )

    def validate(self, source: str | os.PathLike | None = None) -> None:
        """Raise :class:`InputError` if a label value in the image is not named by the mapping."""
        unknown = [v for v in self.values_present() if v not in self.mapping.values]
        if unknown:
            where = f" in '{source}'" if source is not None else ""
            raise InputError(
                f"Label value(s) {unknown}{where} are not in the '{self.mapping.source}' mapping "
                f"(which names {sorted(int(v) for v in self.mapping.values)}).",
                "pass the mapping that matches how the file was labelled (conventions: "
                f"{', '.join(_convention_names())}), or fix the sidecar/segment names",
            )

    def canonical(self) -> LabelMap:
        """The same label map in canonical label values (``spineai.anatomy`` labels, uint8).

        The new mapping lists exactly the structures this map's mapping lists; values mapped to
        ``background`` become 0, values sharing a name merge.
        """
        arr = np.asarray(self.mapping.to_canonical(sitk.GetArrayViewFromImage(self.image)))
        out = sitk.GetImageFromArray(arr.astype(np.uint8))
        out.CopyInformation(self.image)
        values = {anatomy.BY_NAME[n].label: n for n in self.mapping.names()}
        return LabelMap(out, anatomy.LabelMapping(anatomy.CANONICAL.source, values))


def write_labelmap_nifti(
    labelmap: LabelMap, path: str | os.PathLike, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write a label map as NIfTI plus its JSON sidecar (``labels.nii.gz`` + ``labels.json``).

    The sidecar holds ``labelmap.mapping.to_json()``. Both files are written atomically; neither is
    written if either already exists (unless ``overwrite``).

    Returns:
        ``(image_path, sidecar_path)``.
    """
    if _suffix(path) not in _NIFTI:
        raise InputError(f"'{path}' is not a NIfTI file name.", "name it .nii.gz (or use write_labelmap)")
    return _write_labelmap_with_sidecar(labelmap, Path(path), overwrite)


def _write_labelmap_with_sidecar(labelmap: LabelMap, p: Path, overwrite: bool) -> tuple[Path, Path]:
    side = sidecar_path(p)
    check_writable(p, overwrite)
    check_writable(side, overwrite)
    labelmap.validate()
    img = sitk.Cast(labelmap.image, _smallest_label_type(np.asarray(labelmap.values_present() or [0])))
    write_image(img, p, overwrite)
    write_json(side, labelmap.mapping.to_json(), overwrite)
    return p, side


def write_labelmap(
    labelmap: LabelMap,
    path: str | os.PathLike,
    overwrite: bool = False,
    *,
    reference: sitk.Image | None = None,
) -> Path:
    """Write a label map by extension: ``.seg.nrrd`` -> Slicer segmentation; ``.nii(.gz)``, ``.nrrd``,
    ``.mha`` -> image + JSON sidecar. Returns the image path."""
    suffix = _suffix(path)
    if suffix == ".seg.nrrd":
        return write_seg_nrrd(labelmap, path, overwrite, reference=reference)
    if suffix in (".nii", ".nii.gz", ".nrrd", ".mha"):
        return _write_labelmap_with_sidecar(labelmap, Path(path), overwrite)[0]
    raise InputError(
        f"Cannot write a label map to '{path}'.", "use .seg.nrrd (3D Slicer), .nii.gz, .nrrd or .mha"
    )


def _labelmap_image_from_file(img: sitk.Image, source: Path) -> sitk.Image:
    """Integer-typed label image from whatever was stored (floats must hold whole numbers)."""
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"The label map '{source}' has {img.GetNumberOfComponentsPerPixel()} values per voxel.",
            "save a single-component label map (one integer label per voxel)",
        )
    arr = sitk.GetArrayViewFromImage(img)
    if img.GetPixelID() in _INTEGER_PIXEL_IDS:
        if arr.size and arr.min() < 0:
            raise InputError(
                f"The label map '{source}' has negative label values (min {int(arr.min())}).",
                "labels must be 0 (background) or positive integers; relabel the file",
            )
        return sitk.Cast(img, _smallest_label_type(arr)) if arr.size else img
    if not np.all(np.isfinite(arr)) or not np.all(arr == np.rint(arr)) or (arr.size and arr.min() < 0):
        raise InputError(
            f"The label map '{source}' has non-integer, negative or NaN values; it looks like an intensity "
            "image or a probability map, not labels.",
            "pass the label (mask) file, or threshold/argmax the probability map into integer labels first",
        )
    return sitk.Cast(img, _smallest_label_type(arr))


def read_labelmap(path: str | os.PathLike, mapping: anatomy.LabelMapping | str | None = None) -> LabelMap:
    """Read a label map and the names of its values.

    Where the names come from: ``.seg.nrrd`` -> the segment names in its header (see
    :func:`read_seg_nrrd`); NIfTI/NRRD/MHA -> the ``mapping`` argument if given, else the JSON sidecar
    (``labels.nii.gz`` -> ``labels.json``). Without either an :class:`InputError` lists the known
    conventions: nothing is guessed. Every nonzero value in the file must be in the mapping.

    Args:
        path: label file.
        mapping: a :class:`~spineai.anatomy.LabelMapping` or a convention name (``"verse"``,
            ``"tptbox_subregion"``, ``"paper_3class"``, ``"canonical"``); overrides a sidecar.
    """
    p = Path(path)
    suffix = _suffix(p)
    if suffix in _SEG_NRRD or (suffix in _NRRD and p.is_file() and _nrrd_has_segments(p)):
        return read_seg_nrrd(p, mapping=mapping)
    img = read_image(p, dims=None, name="label map")
    img = _labelmap_image_from_file(img, p)
    if mapping is not None:
        resolved = resolve_mapping(mapping)
    else:
        side = sidecar_path(p)
        if not side.exists():
            raise InputError(
                f"The label map '{p}' has no sidecar '{side.name}' and no mapping was given, so its label "
                "values cannot be named.",
                f"pass mapping= one of: {', '.join(_convention_names())} (or a LabelMapping), or put the "
                f"sidecar JSON written by write_labelmap_nifti next to it",
            )
        resolved = _read_sidecar(side)
    lm = LabelMap(img, resolved)
    lm.validate(p)
    return lm


def _read_sidecar(side: Path) -> anatomy.LabelMapping:
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
        return anatomy.LabelMapping.from_json(data)
    except InputError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"The label sidecar '{side}' could not be read as a label mapping ({_first_line(exc)}).",
            "rewrite it with write_labelmap_nifti, or pass mapping= explicitly",
        ) from None


# ----------------------------------------------------------------------------------------------------
# 3D Slicer segmentation (.seg.nrrd)

_SLICER_REPRESENTATION = "Binary labelmap"


def _nrrd_has_segments(p: Path) -> bool:
    """True if an NRRD header has Slicer segment fields (``Segment0_ID``)."""
    try:
        with open(p, "rb") as f:
            head = f.read(65536)
    except OSError:
        return False
    return b"\nSegment0_ID:=" in head.split(b"\n\n", 1)[0]


def _fmt(v: float) -> str:
    """Number as C++ iostreams print it with precision 17 (``0``, ``1``, ``3.0468759536743195``)."""
    return f"{float(v):.17g}"


def _ijk_to_ras(img: sitk.Image) -> np.ndarray:
    """4x4 matrix mapping voxel (i, j, k, 1) to Slicer RAS (mm)."""
    d = np.asarray(img.GetDirection(), dtype=float).reshape(3, 3) * np.asarray(img.GetSpacing(), dtype=float)
    m = np.eye(4)
    m[:3, :3] = d
    m[:3, 3] = img.GetOrigin()
    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    return lps_to_ras @ m


def _serialize_image_geometry(img: sitk.Image, extent: Sequence[int]) -> str:
    """Slicer's ``vtkSegmentationConverter::SerializeImageGeometry`` text: the IJK-to-RAS matrix
    (16 values, row-major) then the extent (6 values), each followed by ``;``."""
    values = [_fmt(v) for v in _ijk_to_ras(img).ravel()] + [str(int(e)) for e in extent]
    return "".join(v + ";" for v in values)


def _reference_offset(labels: sitk.Image, reference: sitk.Image) -> list[int]:
    """Index of the label grid's first voxel in the reference grid; zeros unless the grids coincide."""
    same_axes = np.allclose(labels.GetSpacing(), reference.GetSpacing(), atol=1e-6) and np.allclose(
        labels.GetDirection(), reference.GetDirection(), atol=1e-6
    )
    if not same_axes:
        return [0, 0, 0]
    cidx = np.asarray(reference.TransformPhysicalPointToContinuousIndex(labels.GetOrigin()))
    if np.max(np.abs(cidx - np.rint(cidx))) > 1e-3:
        return [0, 0, 0]
    return [int(v) for v in np.rint(cidx)]


def write_seg_nrrd(
    labelmap: LabelMap,
    path: str | os.PathLike,
    overwrite: bool = False,
    reference: sitk.Image | None = None,
    *,
    keep_empty: bool = True,
) -> Path:
    """Write a label map as a 3D Slicer segmentation file (``.seg.nrrd``), as Slicer's own writer does.

    Layout (``vtkMRMLSegmentationStorageNode::WriteBinaryLabelmapRepresentation``): one 3D layer
    ("shared labelmap") of uint8 (uint16 if a value exceeds 255), gzip, ``space:
    left-posterior-superior``; header fields ``Segmentation_MasterRepresentation`` (``Binary
    labelmap``), ``Segmentation_ContainedRepresentationNames``, ``Segmentation_ConversionParameters``
    (``Reference image geometry``), ``Segmentation_ReferenceImageExtentOffset``, and per segment
    ``SegmentN_ID``/``_Name`` (canonical name), ``_NameAutoGenerated`` (0), ``_Color`` (0..1),
    ``_ColorAutoGenerated`` (0), ``_LabelValue``, ``_Layer`` (0), ``_Extent`` (the layer's full
    extent, as Slicer writes for shared layers) and ``_Tags`` (``TerminologyEntry:...|``).

    Every structure the mapping lists gets a segment, empty ones included (Slicer keeps empty segments
    too, so an annotator can paint a structure the model missed), in label-value order; pass
    ``keep_empty=False`` to write only the structures present (useful for broad conventions such as
    VerSe, which lists the whole spine). Label values not in the mapping are an error. A mapping that
    gives two values the same name, or maps a value to ``background``, is written in canonical values
    (each segment needs one label value).

    Args:
        labelmap: the label map (values as its mapping names them).
        path: destination ending in ``.seg.nrrd``.
        overwrite: replace an existing file.
        reference: the image the segmentation belongs to (e.g. the CT). Its grid becomes Slicer's
            "Reference image geometry" (the Segment Editor's editing grid); if the label map lies on
            that grid (a crop of it), ``ReferenceImageExtentOffset`` records where. Default: the label
            map's own grid.
        keep_empty: write segments for listed structures that have no voxel.

    Returns:
        ``path`` as a :class:`Path`.
    """
    p = Path(path)
    if _suffix(p) != ".seg.nrrd":
        raise InputError(
            f"'{p}' does not end in .seg.nrrd.",
            "name the file <name>.seg.nrrd so 3D Slicer loads it as a segmentation",
        )
    img = labelmap.image
    if img.GetDimension() != 3:
        raise InputError(
            f"Slicer segmentations are 3D; this label map is {img.GetDimension()}D.", "pass a 3D label map"
        )
    labelmap.validate()
    check_writable(p, overwrite)
    listed = list(labelmap.mapping.values.values())
    if anatomy.BACKGROUND in listed or len(set(listed)) != len(listed):
        labelmap = labelmap.canonical()
        img = labelmap.image
    present = set(labelmap.values_present())
    entries = [(int(v), n) for v, n in labelmap.mapping.values.items() if keep_empty or int(v) in present]
    max_value = max([v for v, _ in entries] + [0])
    pixel = sitk.sitkUInt8 if max_value <= 255 else sitk.sitkUInt16
    out = sitk.Cast(img, pixel)
    for key in out.GetMetaDataKeys():
        out.EraseMetaData(key)
    size = out.GetSize()
    layer_extent = f"0 {size[0] - 1} 0 {size[1] - 1} 0 {size[2] - 1}"
    if reference is not None:
        if reference.GetDimension() != 3:
            raise InputError("The reference image must be 3D.", "pass the 3D image the labels belong to")
        offset = _reference_offset(out, reference)
        ref_extent = [
            0,
            reference.GetSize()[0] - 1,
            0,
            reference.GetSize()[1] - 1,
            0,
            reference.GetSize()[2] - 1,
        ]
        geometry = _serialize_image_geometry(reference, ref_extent)
    else:
        offset = [0, 0, 0]
        geometry = _serialize_image_geometry(out, [0, size[0] - 1, 0, size[1] - 1, 0, size[2] - 1])

    meta: dict[str, str] = {
        "Segmentation_MasterRepresentation": _SLICER_REPRESENTATION,
        "Segmentation_ContainedRepresentationNames": "Binary labelmap|Closed surface|",
        "Segmentation_ConversionParameters": (
            f"Reference image geometry|{geometry}|Image geometry description string determining the geometry "
            "of the labelmap that is created in course of conversion.&"
        ),
        "Segmentation_ReferenceImageExtentOffset": " ".join(str(v) for v in offset),
    }
    for i, (value, name) in enumerate(entries):
        rgb = anatomy.BY_NAME[name].rgb
        meta[f"Segment{i}_ID"] = name
        meta[f"Segment{i}_Name"] = name
        meta[f"Segment{i}_NameAutoGenerated"] = "0"
        meta[f"Segment{i}_Color"] = " ".join(f"{c / 255.0:.6g}" for c in rgb)
        meta[f"Segment{i}_ColorAutoGenerated"] = "0"
        meta[f"Segment{i}_LabelValue"] = str(value)
        meta[f"Segment{i}_Layer"] = "0"
        meta[f"Segment{i}_Extent"] = layer_extent
        meta[f"Segment{i}_Tags"] = f"TerminologyEntry:{anatomy.terminology_entry(name)}|"
    for key, value in meta.items():
        out.SetMetaData(key, value)
    _write(out, p, overwrite, True)
    return p


@dataclass(frozen=True)
class _Segment:
    index: int
    segment_id: str
    name: str
    label_value: int
    layer: int
    extent: tuple[int, int, int, int, int, int] | None


def _parse_segments(img: sitk.Image, p: Path) -> list[_Segment]:
    keys = set(img.GetMetaDataKeys())
    segments = []
    i = 0
    while f"Segment{i}_ID" in keys:

        def get(field: str, default: str | None = None, _i: int = i) -> str | None:
            k = f"Segment{_i}_{field}"
            return img.GetMetaData(k) if k in keys else default

        seg_id = get("ID") or f"Segment_{i + 1}"
        name = get("Name") or seg_id
        try:
            layer = int(get("Layer", str(i)))  # files without layers: one segment per component
            label_value = int(get("LabelValue", "1"))
            ext_text = get("Extent")
            extent = tuple(int(v) for v in ext_text.split()) if ext_text else None
        except ValueError as exc:
            raise InputError(
                f"The Slicer segmentation '{p}' has a malformed header field for segment {i} ({exc}).",
                "re-save the segmentation from 3D Slicer",
            ) from None
        if extent is not None and len(extent) != 6:
            extent = None
        segments.append(_Segment(i, seg_id, name, label_value, layer, extent))  # type: ignore[arg-type]
        i += 1
    return segments


def read_seg_nrrd(path: str | os.PathLike, mapping: anatomy.LabelMapping | str | None = None) -> LabelMap:
    """Read a 3D Slicer segmentation (``.seg.nrrd``), single- or multi-layer, as one label map.

    Segments are identified by their header ``SegmentN_Name``/``_LabelValue``/``_Layer``/``_Extent``
    fields (voxels outside a segment's extent do not belong to it, as in Slicer). Multi-layer (4D)
    files, where segments overlap or were kept apart, are merged into one label map; voxels claimed by
    segments of two layers are an error.

    Naming: without ``mapping`` every segment name must be a canonical structure name; the resulting
    mapping is ``{label value: name}``. With ``mapping`` (a LabelMapping or convention name) the
    segments' label values are named by it instead (a canonical segment name that disagrees with it
    is an error; segments whose value it maps to ``background`` are dropped) and the result keeps that
    mapping. If layers reuse label values, the merged map uses canonical label values.
    """
    p = Path(path)
    img = _read_seg_image(p)
    segments = _parse_segments(img, p)
    if not segments:
        # a plain label volume saved as .seg.nrrd: no segment names, needs a sidecar or mapping
        plain = sitk.VectorIndexSelectionCast(img, 0) if img.GetNumberOfComponentsPerPixel() > 1 else img
        plain = _labelmap_image_from_file(plain, p)
        if mapping is None:
            side = sidecar_path(p)
            if not side.exists():
                raise InputError(
                    f"The segmentation '{p}' has no segment names in its header and no sidecar, so its label "
                    "values cannot be named.",
                    f"pass mapping= one of: {', '.join(_convention_names())} (or a LabelMapping)",
                )
            resolved = _read_sidecar(side)
        else:
            resolved = resolve_mapping(mapping)
        lm = LabelMap(plain, resolved)
        lm.validate(p)
        return lm

    given = resolve_mapping(mapping) if mapping is not None else None
    names: dict[int, str] = {}  # segment index -> canonical name
    non_canonical = []
    for seg in segments:
        if given is not None:
            if seg.label_value not in given.values:
                raise InputError(
                    f"Segment '{seg.name}' of '{p}' has label value {seg.label_value}, which the "
                    f"'{given.source}' mapping does not name.",
                    "pass the mapping that matches the file, or rename the segments to canonical names in "
                    "3D Slicer and read without mapping",
                )
            named = given.values[seg.label_value]
            if named != anatomy.BACKGROUND and seg.name in anatomy.BY_NAME and seg.name != named:
                raise InputError(
                    f"Segment '{seg.name}' of '{p}' (label value {seg.label_value}) is '{named}' in the "
                    f"'{given.source}' mapping: the mapping does not fit this file.",
                    "read it without mapping= (its segment names are canonical) or pass the right mapping",
                )
            if named != anatomy.BACKGROUND:  # the mapping drops this class on purpose
                names[seg.index] = named
        elif seg.name in anatomy.BY_NAME:
            names[seg.index] = seg.name
        else:
            non_canonical.append(seg.name)
    if non_canonical:
        raise InputError(
            f"Segments {non_canonical} of '{p}' are not canonical structure names, so they cannot be "
            "identified.",
            f"rename them in 3D Slicer to canonical names ({', '.join(list(anatomy.BY_NAME)[:8])}, ...) or pass "
            f"mapping= one of: {', '.join(_convention_names())} (or a LabelMapping) to name the label values",
        )
    kept = [seg for seg in segments if seg.index in names]

    n_layers = img.GetNumberOfComponentsPerPixel()
    arr = sitk.GetArrayFromImage(img)
    if n_layers == 1:
        arr = arr[..., np.newaxis]
    shape = arr.shape[:3]  # (z, y, x)
    for seg in kept:
        if not 0 <= seg.layer < n_layers:
            raise InputError(
                f"Segment '{seg.name}' of '{p}' is in layer {seg.layer} but the file has {n_layers} layer(s).",
                "re-save the segmentation from 3D Slicer",
            )
    all_values = [seg.label_value for seg in kept]
    reuse = len(set(all_values)) != len(all_values)  # layers reusing values: switch to canonical ones
    out_value = {
        seg.index: (anatomy.BY_NAME[names[seg.index]].label if reuse else seg.label_value) for seg in kept
    }
    result = np.zeros(shape, dtype=np.uint16 if max(out_value.values(), default=0) > 255 else np.uint8)
    claimed = np.full(shape, -1, dtype=np.int32)  # index of the segment owning each voxel
    for seg in kept:
        mask = arr[..., seg.layer] == seg.label_value
        if seg.extent is not None:
            e = seg.extent
            if e[0] > e[1] or e[2] > e[3] or e[4] > e[5]:
                continue  # empty segment
            inside = np.zeros(shape, dtype=bool)
            inside[max(e[4], 0) : e[5] + 1, max(e[2], 0) : e[3] + 1, max(e[0], 0) : e[1] + 1] = True
            mask &= inside
        clash = mask & (claimed >= 0) & (claimed != seg.index)
        if clash.any():
            other = segments[int(claimed[clash][0])].name
            raise InputError(
                f"Segments '{seg.name}' and '{other}' of '{p}' overlap ({int(clash.sum())} voxels); one "
                "label map cannot hold overlapping structures.",
                "remove the overlap in 3D Slicer (Segment Editor, masking 'Overwrite other segments') and save "
                "again, or export the structures to separate files",
            )
        claimed[mask] = seg.index
        result[mask] = out_value[seg.index]

    if given is not None and not reuse:
        result_mapping = given
    else:
        values = dict(sorted({out_value[seg.index]: names[seg.index] for seg in kept}.items()))
        canonical_values = all(anatomy.BY_NAME[n].label == v for v, n in values.items())
        source = anatomy.CANONICAL.source if canonical_values else f"slicer:{p.name}"
        result_mapping = anatomy.LabelMapping(source, values) if values else anatomy.CANONICAL
    out = sitk.GetImageFromArray(result)
    geometry = sitk.VectorIndexSelectionCast(img, 0) if n_layers > 1 else img
    out.SetOrigin(geometry.GetOrigin())
    out.SetSpacing(geometry.GetSpacing())
    out.SetDirection(geometry.GetDirection())
    validate_image(out, dims=3, name="segmentation", source=p)
    return LabelMap(out, result_mapping)


def _read_seg_image(p: Path) -> sitk.Image:
    if not p.exists():
        raise InputError(f"The segmentation '{p}' does not exist.", "check the path")
    if p.is_dir() or p.stat().st_size == 0:
        raise InputError(
            f"The segmentation '{p}' is {'a folder' if p.is_dir() else 'empty (0 bytes)'}.",
            "pass a .seg.nrrd file saved by 3D Slicer or write_seg_nrrd",
        )
    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise InputError(
            f"The segmentation '{p}' could not be read as NRRD: it is corrupt or truncated ({_first_line(exc)}).",
            _READABLE_FIX,
        ) from None
    if img.GetDimension() != 3:
        raise InputError(
            f"The segmentation '{p}' is {img.GetDimension()}D; Slicer segmentations are 3D (plus layers).",
            "save the segmentation from 3D Slicer as .seg.nrrd",
        )
    return img


# ----------------------------------------------------------------------------------------------------
# landmark files


def read_verse_centroids(
    path: str | os.PathLike,
    image: sitk.Image,
    *,
    mapping: anatomy.LabelMapping | str = "verse",
    centroid_spacing_mm: float | Sequence[float] | None = None,
) -> dict[str, np.ndarray]:
    """Read a VerSe-style centroid JSON as LPS points (mm), keyed by canonical structure name.

    The file is a list whose first entry is ``{"direction": ["P", "I", "R"]}`` (the axis code of the
    voxel grid the coordinates refer to) followed by ``{"label": v, "X": i, "Y": j, "Z": k}`` entries:
    continuous voxel indices of ``image`` reoriented to that code. With ``centroid_spacing_mm`` the
    indices refer to a grid of that spacing sharing the first voxel (VerSe's 1 mm variant); by default
    (``None``) to ``image``'s own spacing. Labels the mapping does not name are left out.

    Args:
        path: the JSON file (e.g. ``sub-verse014_seg-vb_ctd.json``).
        image: the image the centroids were annotated on (the CT or its mask).
        mapping: convention of the ``label`` values (VerSe by default).
        centroid_spacing_mm: spacing of the centroid grid, or ``None`` for the image's own.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"The centroid file '{p}' does not exist.", "check the path")
    try:
        entries = json.loads(p.read_text(encoding="utf-8"))
        code = "".join(entries[0]["direction"])
        points = [(int(e["label"]), float(e["X"]), float(e["Y"]), float(e["Z"])) for e in entries[1:]]
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise InputError(
            f"The centroid file '{p}' is not a VerSe centroid list ({_first_line(exc)}).",
            'expected [{"direction": ["P","I","R"]}, {"label": 20, "X": .., "Y": .., "Z": ..}, ...]',
        ) from None
    grid = reorient(image, code)
    scale = np.ones(3)
    if centroid_spacing_mm is not None:
        scale = np.asarray(_as_vector(centroid_spacing_mm, 3, "centroid_spacing_mm")) / np.asarray(
            grid.GetSpacing()
        )
    resolved = resolve_mapping(mapping)
    out: dict[str, np.ndarray] = {}
    for label, x, y, z in points:
        if label in resolved.values:
            idx = np.asarray([x, y, z]) * scale
            out[resolved.values[label]] = np.asarray(
                grid.TransformContinuousIndexToPhysicalPoint(idx.tolist())
            )
    return out
