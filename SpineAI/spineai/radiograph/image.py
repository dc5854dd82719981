"""Reading, checking and preparing lumbar radiographs for the herniation model.

:func:`load_radiograph` reads a radiograph (PNG/JPEG/BMP/TIFF export, or a 2D DICOM file) or takes a 2D
SimpleITK image and refuses what the model cannot read, each with an :class:`~spineai.errors.InputError`
naming the problem and the fix:

* a 3D volume (a CT or MR series, or an axial stack): the model reads one projection radiograph;
* a **colour photograph**: a colour-encoded file is converted to grey only when its channels are equal
  (a grey radiograph saved as RGB, as many PACS/JPEG exports are; JPEG compression leaves the channels
  within a few grey levels of each other); real colour is refused;
* a radiograph of **another region**: a DICOM whose Body Part Examined names another region (chest,
  skull, hand, knee, ...) or whose modality is not projection radiography (CT, MR, US, NM, PT ...); a
  field of view shorter than 120 mm (pixel spacing known), which cannot hold L1..S1; with vertebra boxes
  (:func:`read_yolo_boxes`), fewer than five boxes. A picture without metadata cannot be checked for its
  region; the result then carries a warning.

:func:`prepare_input` applies the paper's preprocessing: CLAHE (:func:`skimage.exposure.equalize_adapthist`)
on the image scaled to [0, 1] by its 0.5th and 99.5th percentiles, then a letterbox resize (the longer
side to the network's input size, the shorter padded symmetrically: no distortion, no flip or rotation,
so the levels keep their order). :class:`Letterbox` maps a network-grid map (Grad-CAM) back onto the
input image's own pixel grid (:func:`map_to_input`).

Image axes: arrays are ``[row, column]``, row 0 at the top of the displayed radiograph (the patient's
head for a lumbar AP or lateral view). SimpleITK images keep the file's geometry (PNG/JPEG: 1 mm pixels,
origin 0).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import InputError

__all__ = [
    "LUMBAR_BODY_PARTS",
    "Letterbox",
    "LoadedRadiograph",
    "enhance",
    "lumbar_crop_from_boxes",
    "load_radiograph",
    "map_to_input",
    "prepare_input",
    "read_yolo_boxes",
]

_PICTURES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_VOLUMES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
#: Body Part Examined values (upper case, any part of the text) accepted as showing the lumbar spine
LUMBAR_BODY_PARTS: tuple[str, ...] = (
    "LSPINE",
    "L-SPINE",
    "LUMBAR",
    "LUMBOSACRAL",
    "SPINE",
    "TLSPINE",
    "LUMBO",
    "SACRUM",
    "ABDOMEN",
    "PELVIS",
    "WHOLEBODY",
    "TRUNK",
)
_PROJECTION_MODALITIES = ("CR", "DX", "RF", "XA", "RG", "DR", "OT", "")
#: mean / 99.5th percentile absolute channel difference (grey levels of 255) still accepted as grey
_GREY_MEAN_TOL = 2.0
_GREY_P995_TOL = 16.0
_MIN_FIELD_MM = 120.0


@dataclass
class LoadedRadiograph:
    """A radiograph ready for the model.

    Attributes:
        image: 2D float32 ``sitk.Image`` (bone bright), the input's own geometry.
        source: file path, or ``None`` for an in-memory image.
        info: format, original pixel type, whether colour channels were merged, DICOM modality, body
            part, photometric interpretation, pixel spacing when known.
        warnings: what the user should check.
    """

    image: sitk.Image
    source: str | None
    info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _suffix(p: Path) -> str:
    name = p.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else p.suffix.lower()


def _refuse_volume(size: tuple[int, ...], what: str) -> None:
    raise InputError(
        f"The {what} is a 3D volume ({' x '.join(map(str, size))} voxels): a CT or MR series, or an axial "
        "stack, not a radiograph.",
        "pass one projection radiograph of the lumbar spine (AP, lateral or oblique; PNG/JPEG export or "
        "a 2D DICOM file); CT goes to 'spineai segment', sagittal T2 MRI to 'spineai outcome'",
    )


def _grey_from_channels(arr: np.ndarray, what: str) -> tuple[np.ndarray, dict[str, Any]]:
    """``(rows, cols, channels)`` -> grey when the colour channels are equal, else refuse."""
    n = arr.shape[-1]
    if n in (2, 4):  # alpha channel: only a fully opaque one may be dropped
        alpha = arr[..., -1].astype(np.float64)
        top = (
            255.0
            if arr.dtype == np.uint8
            else float(np.iinfo(arr.dtype).max)
            if np.issubdtype(arr.dtype, np.integer)
            else 1.0
        )
        if float(alpha.min()) < top:
            raise InputError(
                f"The {what} has a transparent alpha channel: it is an edited picture, not a "
                "radiograph export.",
                "export the radiograph again without transparency",
            )
        arr = arr[..., :-1]
        n -= 1
    if n == 1:
        return arr[..., 0], {"colour_channels_merged": False}
    rgb = arr[..., :3].astype(np.float64)
    scale = 255.0 / (
        float(np.iinfo(arr.dtype).max)
        if np.issubdtype(arr.dtype, np.integer)
        else max(float(rgb.max()), 1e-6)
    )
    diff = np.maximum(np.abs(rgb[..., 0] - rgb[..., 1]), np.abs(rgb[..., 1] - rgb[..., 2])) * scale
    mean_diff = float(diff.mean())
    p995 = float(np.percentile(diff, 99.5))
    if mean_diff > _GREY_MEAN_TOL or p995 > _GREY_P995_TOL:
        raise InputError(
            f"The {what} is a colour picture (its red, green and blue channels differ: mean "
            f"{mean_diff:.1f}, 99.5th percentile {p995:.0f} grey levels of 255): a photograph or a coloured "
            "screenshot, not a radiograph.",
            "pass the radiograph itself (grey): the PACS/DICOM export of the lumbar AP, lateral or oblique view",
        )
    grey = rgb.mean(axis=-1)
    return grey, {"colour_channels_merged": True, "channel_difference_mean": mean_diff}


def _picture(p: Path, what: str) -> tuple[sitk.Image, dict[str, Any]]:
    try:
        raw = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise InputError(
            f"The {what} '{p}' cannot be read as an image ({str(exc).splitlines()[0][:160]}).",
            "export the radiograph again as PNG, JPEG or DICOM",
        ) from None
    if raw.GetDimension() != 2:
        _refuse_volume(raw.GetSize(), what)
    arr = sitk.GetArrayFromImage(raw)
    info: dict[str, Any] = {
        "format": p.suffix.lstrip(".").upper(),
        "pixel_type": raw.GetPixelIDTypeAsString(),
    }
    if raw.GetNumberOfComponentsPerPixel() > 1:
        grey, extra = _grey_from_channels(arr, what)
        info.update(extra)
    else:
        grey = arr
        info["colour_channels_merged"] = False
    out = sitk.GetImageFromArray(np.asarray(grey, dtype=np.float32))
    out.SetSpacing(raw.GetSpacing())
    out.SetOrigin(raw.GetOrigin())
    out.SetDirection(raw.GetDirection())
    info["pixel_spacing_known"] = False
    return out, info


def _dicom_tags(p: Path) -> dict[str, str]:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return {}
    keys = {
        "0008|0060": "modality",
        "0018|0015": "body_part",
        "0028|0004": "photometric",
        "0008|1030": "study_description",
        "0008|103e": "series_description",
        "0028|0030": "pixel_spacing",
        "0018|1164": "imager_pixel_spacing",
    }
    return {name: reader.GetMetaData(tag).strip() for tag, name in keys.items() if reader.HasMetaDataKey(tag)}


def _dicom(p: Path, what: str) -> tuple[sitk.Image, dict[str, Any]]:
    from ..io import read_image

    tags = _dicom_tags(p)
    modality = tags.get("modality", "").upper()
    if modality not in _PROJECTION_MODALITIES:
        raise InputError(
            f"The {what} '{p}' is a {modality} image (DICOM Modality), not a projection radiograph.",
            "pass a plain radiograph (modality CR or DX) of the lumbar spine",
        )
    img = read_image(p, dims=None, name=what)
    if img.GetDimension() == 3:
        size = img.GetSize()
        if min(size) == 1:
            img = read_image(p, dims=2, name=what)
        else:
            _refuse_volume(size, what)
    img = sitk.Cast(img, sitk.sitkFloat32)
    if tags.get("photometric", "").upper().startswith("MONOCHROME1"):  # high values dark: make bone bright
        arr = sitk.GetArrayFromImage(img)
        inv = sitk.GetImageFromArray(float(arr.max()) + float(arr.min()) - arr)
        inv.CopyInformation(img)
        img = inv
    info: dict[str, Any] = {
        "format": "DICOM",
        **tags,
        "pixel_spacing_known": bool(tags.get("pixel_spacing") or tags.get("imager_pixel_spacing")),
    }
    return img, info


def _check_region(img: sitk.Image, info: dict[str, Any], what: str) -> list[str]:
    warnings: list[str] = []
    part = str(info.get("body_part", "")).upper().replace(" ", "")
    if part and not any(k in part for k in LUMBAR_BODY_PARTS):
        raise InputError(
            f"The {what} shows the {info['body_part']} (DICOM Body Part Examined), not the lumbar spine.",
            "pass a lumbar spine radiograph (AP, lateral or oblique view covering L1 to the sacrum)",
        )
    if info.get("pixel_spacing_known"):
        extent = [s * n for s, n in zip(img.GetSpacing(), img.GetSize(), strict=True)]
        if max(extent) < _MIN_FIELD_MM:
            raise InputError(
                f"The {what} covers only {extent[0]:.0f} x {extent[1]:.0f} mm: too small a field for the lumbar "
                f"spine (L1 to the sacrum spans about 200 mm); it shows another region (a finger, tooth or "
                "joint) or a magnified detail.",
                "pass a lumbar spine radiograph covering L1 to the sacrum",
            )
    if not part:
        warnings.append(
            "the radiograph carries no body-part information: check that it shows the lumbar spine "
            "(the model reads lumbar AP, lateral and oblique views)"
        )
    return warnings


def load_radiograph(
    source: sitk.Image | np.ndarray | str | os.PathLike, *, name: str = "radiograph"
) -> LoadedRadiograph:
    """Read and check a radiograph (see the module docstring for what is refused).

    Args:
        source: a file (PNG/JPEG/BMP/TIFF, 2D DICOM), a 2D ``sitk.Image`` (scalar, or colour with equal
            channels) or a 2D/3D numpy array ``(rows, cols[, channels])``.
        name: what it is, for messages.

    Returns:
        :class:`LoadedRadiograph` with a float32 grey image.

    Raises:
        InputError: missing/unreadable file, a 3D volume, a colour photograph, another body region, NaNs.
    """
    from ..io import validate_image

    info: dict[str, Any] = {}
    if isinstance(source, np.ndarray):
        arr = np.asarray(source)
        if arr.ndim == 3 and arr.shape[-1] in (2, 3, 4):
            grey, info = _grey_from_channels(arr, name)
        elif arr.ndim == 2:
            grey = arr
        else:
            _refuse_volume(arr.shape, name)
        img = sitk.GetImageFromArray(np.asarray(grey, dtype=np.float32))
        src = None
    elif isinstance(source, sitk.Image):
        if source.GetDimension() == 3 and min(source.GetSize()) > 1:
            _refuse_volume(source.GetSize(), name)
        img = source
        if img.GetDimension() == 3:
            size = list(img.GetSize())
            size[size.index(1)] = 0
            img = sitk.Extract(img, size, [0, 0, 0])
        if img.GetNumberOfComponentsPerPixel() > 1:
            grey, info = _grey_from_channels(sitk.GetArrayFromImage(img), name)
            g = sitk.GetImageFromArray(np.asarray(grey, dtype=np.float32))
            g.SetSpacing(img.GetSpacing())
            g.SetOrigin(img.GetOrigin())
            g.SetDirection(img.GetDirection())
            img = g
        img = sitk.Cast(img, sitk.sitkFloat32)
        src = None
    else:
        p = Path(source)
        src = str(p)
        if not p.exists():
            raise InputError(f"The {name} '{p}' does not exist.", "check the path and the file name")
        if p.is_dir():
            from ..io import read_image

            vol = read_image(p, dims=None, name=name)
            if vol.GetDimension() == 3 and min(vol.GetSize()) > 1:
                _refuse_volume(vol.GetSize(), name)
            p = next(q for q in sorted(p.iterdir()) if q.is_file())
        suffix = _suffix(p)
        if p.is_file() and p.stat().st_size == 0:
            raise InputError(f"The {name} file '{p}' is empty (0 bytes).", "export or copy the file again")
        if suffix in _PICTURES:
            img, info = _picture(p, name)
        elif suffix in _VOLUMES:
            from ..io import read_image

            vol = read_image(p, dims=None, name=name)
            if vol.GetDimension() == 3 and min(vol.GetSize()) > 1:
                _refuse_volume(vol.GetSize(), name)
            img = sitk.Cast(read_image(p, dims=2, name=name), sitk.sitkFloat32)
            info = {"format": suffix.lstrip(".").upper(), "pixel_spacing_known": True}
        else:
            img, info = _dicom(p, name)
    validate_image(img, dims=2, name=name, source=src)
    arr = sitk.GetArrayViewFromImage(img)
    if float(np.max(arr)) <= float(np.min(arr)):
        raise InputError(
            f"The {name} is blank (every pixel {float(np.min(arr)):g}).",
            "export the radiograph again; the file holds no image",
        )
    warnings = _check_region(img, info, name)
    return LoadedRadiograph(image=sitk.Cast(img, sitk.sitkFloat32), source=src, info=info, warnings=warnings)


# --------------------------------------------------------------------------------------------------------
# vertebra boxes
def read_yolo_boxes(path: str | os.PathLike, width: int, height: int) -> np.ndarray:
    """Vertebra boxes of a YOLO label file (``class cx cy w h``, normalised) in pixels.

    Returns:
        ``(n, 4)`` float array of ``(x0, y0, x1, y1)`` (column, row), sorted from the top of the image down.

    Raises:
        InputError: missing file or malformed line.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"Box file '{p}' does not exist.", "pass the YOLO .txt file that belongs to the image"
        )
    boxes = []
    for number, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            _cls, cx, cy, w, h = (float(v) for v in parts[:5])
        except ValueError:
            raise InputError(
                f"Line {number} of '{p}' is not 'class cx cy w h' ({line[:60]!r}).",
                "use YOLO text labels: one box per line, coordinates in 0..1",
            ) from None
        if len(parts) < 5 or not all(0.0 <= v <= 1.0 for v in (cx, cy)) or w <= 0 or h <= 0:
            raise InputError(
                f"Line {number} of '{p}' is not a YOLO box inside the image ({line[:60]!r}).",
                "use YOLO text labels: one box per line, coordinates in 0..1",
            )
        boxes.append(
            [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]
        )
    arr = np.asarray(boxes, dtype=float).reshape(-1, 4)
    return arr[np.argsort(0.5 * (arr[:, 1] + arr[:, 3]))]


def lumbar_crop_from_boxes(boxes: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """Crop ``(x0, y0, x1, y1)`` (pixels) around the lumbar spine from vertebra boxes.

    The five lowest boxes are taken as L1..L5 (the boxes of a lumbar or whole-spine radiograph end at L5;
    a sixth lumbar vertebra or a boxed sacrum shifts this by one level). The crop runs from half a
    vertebra above L1 to 1.5 vertebrae below L5 (the sacrum), is square where the image allows, and is
    centred on the boxes' mean column.

    Raises:
        InputError: fewer than five boxes (the lumbar spine is not in view).
    """
    b = np.asarray(boxes, dtype=float).reshape(-1, 4)
    if len(b) < 5:
        raise InputError(
            f"Only {len(b)} vertebra box(es): the five lumbar vertebrae are not in view, so this is not a "
            "lumbar (or whole-spine) radiograph.",
            "pass a radiograph showing L1 to the sacrum, with its vertebra boxes",
        )
    lumbar = b[np.argsort(0.5 * (b[:, 1] + b[:, 3]))][-5:]
    box_h = float(np.mean(lumbar[:, 3] - lumbar[:, 1]))
    y0 = float(lumbar[0, 1]) - 0.5 * box_h
    y1 = float(lumbar[-1, 3]) + 1.5 * box_h
    side = y1 - y0
    cx = float(np.mean(0.5 * (lumbar[:, 0] + lumbar[:, 2])))
    x0, x1 = cx - side / 2, cx + side / 2
    x0i, x1i = int(max(0, np.floor(x0))), int(min(width, np.ceil(x1)))
    y0i, y1i = int(max(0, np.floor(y0))), int(min(height, np.ceil(y1)))
    return x0i, y0i, x1i, y1i


# --------------------------------------------------------------------------------------------------------
# network input
@dataclass(frozen=True)
class Letterbox:
    """How an input image (``rows x cols``) sits in the square network grid (``size x size``).

    Attributes:
        rows, cols: input size (pixels).
        size: network grid side.
        scale: network pixels per input pixel.
        top, left: padding (network pixels) above and to the left of the image.
    """

    rows: int
    cols: int
    size: int
    scale: float
    top: int
    left: int

    @property
    def inner(self) -> tuple[int, int]:
        """Size (rows, cols) of the image inside the grid."""
        return max(1, round(self.rows * self.scale)), max(1, round(self.cols * self.scale))


def enhance(image: sitk.Image | np.ndarray, *, clahe_clip: float = 0.01) -> np.ndarray:
    """The paper's contrast step at the image's own resolution: 0.5th-99.5th percentile to [0, 1], then CLAHE.

    Args:
        image: 2D grey image (bone bright).
        clahe_clip: ``clip_limit`` of :func:`skimage.exposure.equalize_adapthist`.

    Returns:
        ``(rows, cols)`` float32 array in [0, 1], same grid as the input.
    """
    from skimage.exposure import equalize_adapthist

    arr = sitk.GetArrayFromImage(image) if isinstance(image, sitk.Image) else np.asarray(image)
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim != 2:
        raise InputError(
            f"A radiograph array of shape {arr.shape} was given; (rows, cols) is needed.",
            "pass a single grey 2D image",
        )
    lo, hi = np.percentile(arr, [0.5, 99.5])
    unit = np.clip((arr - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0)
    return equalize_adapthist(unit, clip_limit=clahe_clip).astype(np.float32)


def prepare_input(
    image: sitk.Image | np.ndarray, size: int, *, clahe_clip: float = 0.01
) -> tuple[np.ndarray, Letterbox]:
    """The paper's preprocessing: percentile scaling, CLAHE, letterbox resize to ``size x size``.

    Args:
        image: 2D grey image (bone bright).
        size: side of the network input (pixels).
        clahe_clip: ``clip_limit`` of :func:`skimage.exposure.equalize_adapthist`.

    Returns:
        ``(array (size, size) float32 in [-0.5, 0.5], Letterbox)``; padding is -0.5 (black).
    """
    from skimage.transform import resize

    enhanced = enhance(image, clahe_clip=clahe_clip)
    rows, cols = enhanced.shape
    scale = size / float(max(rows, cols))
    inner = (max(1, round(rows * scale)), max(1, round(cols * scale)))
    small = resize(enhanced, inner, order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)
    out = np.zeros((size, size), dtype=np.float32)
    top, left = (size - inner[0]) // 2, (size - inner[1]) // 2
    out[top : top + inner[0], left : left + inner[1]] = small
    return out - 0.5, Letterbox(rows=rows, cols=cols, size=size, scale=scale, top=top, left=left)


def map_to_input(grid_map: np.ndarray, box: Letterbox) -> np.ndarray:
    """A ``(size, size)`` map on the network grid -> ``(rows, cols)`` on the input image (bilinear)."""
    from skimage.transform import resize

    r, c = box.inner
    inner = np.asarray(grid_map, dtype=np.float32)[box.top : box.top + r, box.left : box.left + c]
    return resize(inner, (box.rows, box.cols), order=1, preserve_range=True).astype(np.float32)
