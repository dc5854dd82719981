"""Reading the axial slice to grade, and refusing what is not an axial lumbar MRI slice.

Accepted inputs: a picture (PNG/JPG/BMP: assumed displayed the radiological way, anterior at the top and
the patient's right on the viewer's left; its pixel size is unknown), a 2D image with geometry
(NIfTI/NRRD/MHA/DICOM), a single-slice 3D image, or a 3D axial volume (an axial series or an
isotropic volume), as a file, a ``SimpleITK.Image`` or a 2D numpy array ``(rows, cols)``.

Working slice: every input is reoriented to LPS (``DICOMOrient``), so its rows run anterior to posterior
and its columns from the patient's right to left; of a 3D volume one axial slice is taken (the middle
one unless ``slice_index`` says otherwise; the notes say which); pixels are made square (resampled to the
finer pixel size). :class:`AxialSlice` maps working pixels back to the input's own index and physical
coordinates, and pastes a working-slice map (Grad-CAM) back onto the input's geometry.

Refused with an :class:`~spineai.errors.InputError` naming the problem and the fix: CT (Hounsfield
statistics), a sagittal or coronal series or slice (its slice normal is not head-to-foot), a picture on
which the sagittal grader's disc locator finds a column of discs (a sagittal picture), a slice smaller
than 48 pixels or stretched beyond 3:1, more than one value per pixel, NaNs (by the reader).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ...errors import InputError
from ..checks import ct_problem

__all__ = ["MIN_SIDE_PX", "AxialSlice", "crop_to_box", "looks_sagittal", "read_axial_slice"]

#: smallest side (pixels) of a slice that can show the canal
MIN_SIDE_PX = 48
_MAX_ASPECT = 3.0
_PICTURES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass
class AxialSlice:
    """The working slice and how it maps back onto the input.

    Attributes:
        array: working slice (float32, rows anterior->posterior, columns patient right->left, square pixels).
        pixel_mm: working pixel size in mm, ``None`` for a picture (size unknown).
        kind: ``"picture"``, ``"slice"`` (2D or single-slice image with geometry) or ``"volume"``.
        source: the input file, if any.
        image: the input image as given.
        lps: the input as a 3D image reoriented to LPS (2D inputs wrapped as one slice).
        slice_index: the graded slice of ``lps`` (its z index).
        zoom_rc: working pixels per ``lps`` pixel along rows and columns (square-pixel resampling).
        notes: what was decided, in words.
    """

    array: np.ndarray
    pixel_mm: float | None
    kind: str
    source: str | None
    image: sitk.Image
    lps: sitk.Image
    slice_index: int
    zoom_rc: tuple[float, float] = (1.0, 1.0)
    notes: list[str] = field(default_factory=list)

    # grid-mode zoom: working w = (s + 0.5) z - 0.5
    def lps_index(self, rc: Sequence[float]) -> tuple[float, float, float]:
        """Continuous index (i, j, k) of ``lps`` of a working (row, col)."""
        r, c = float(rc[0]), float(rc[1])
        j = (r + 0.5) / self.zoom_rc[0] - 0.5
        i = (c + 0.5) / self.zoom_rc[1] - 0.5
        return (i, j, float(self.slice_index))

    def physical(self, rc: Sequence[float]) -> list[float]:
        """Physical point of a working (row, col): LPS mm (x, y, z); for a picture, its pixel grid."""
        point = self.lps.TransformContinuousIndexToPhysicalPoint(self.lps_index(rc))
        return [float(v) for v in point[: self.image.GetDimension()]]

    def input_index(self, rc: Sequence[float]) -> list[float]:
        """Continuous index of a working (row, col) in the input image (SimpleITK order)."""
        point = self.lps.TransformContinuousIndexToPhysicalPoint(self.lps_index(rc))
        if self.image.GetDimension() == 2:
            return [float(v) for v in self.image.TransformPhysicalPointToContinuousIndex(point[:2])]
        return [float(v) for v in self.image.TransformPhysicalPointToContinuousIndex(point)]

    def working_from_input_index(self, index: Sequence[float]) -> tuple[float, float]:
        """Working (row, col) of a continuous input index (SimpleITK order)."""
        if self.image.GetDimension() == 2:
            point = list(self.image.TransformContinuousIndexToPhysicalPoint([float(v) for v in index[:2]]))
            point.append(self.lps.GetOrigin()[2])
        else:
            point = list(self.image.TransformContinuousIndexToPhysicalPoint([float(v) for v in index[:3]]))
        i, j, _k = self.lps.TransformPhysicalPointToContinuousIndex(point)
        return ((j + 0.5) * self.zoom_rc[0] - 0.5, (i + 0.5) * self.zoom_rc[1] - 0.5)

    def map_on_input(self, working_map: np.ndarray) -> sitk.Image:
        """A working-slice map (float) as an image on the input's geometry (zero off the graded slice)."""
        from scipy import ndimage

        n_x, n_y, n_z = self.lps.GetSize()
        rows = (np.arange(n_y) + 0.5) * self.zoom_rc[0] - 0.5
        cols = (np.arange(n_x) + 0.5) * self.zoom_rc[1] - 0.5
        grid = np.meshgrid(rows, cols, indexing="ij")
        plane = ndimage.map_coordinates(
            np.asarray(working_map, dtype=np.float32), grid, order=1, mode="constant", cval=0.0
        )
        vol = np.zeros((n_z, n_y, n_x), dtype=np.float32)
        vol[self.slice_index] = plane
        lps_map = sitk.GetImageFromArray(vol)
        lps_map.CopyInformation(self.lps)
        as_3d = _as_3d(self.image)
        code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(as_3d.GetDirection())
        back = sitk.DICOMOrient(lps_map, code)
        if self.image.GetDimension() == 2:
            out = sitk.GetImageFromArray(sitk.GetArrayFromImage(back)[0])
        else:
            out = back
        out.CopyInformation(self.image)
        return out


def _as_3d(img: sitk.Image) -> sitk.Image:
    """A 2D image as a one-slice 3D image with the same in-plane geometry (z spacing 1 mm)."""
    if img.GetDimension() == 3:
        return img
    vol = sitk.JoinSeries(img)
    d = np.asarray(img.GetDirection(), dtype=float).reshape(2, 2)
    d3 = np.eye(3)
    d3[:2, :2] = d
    vol.SetDirection(tuple(d3.ravel()))
    vol.SetOrigin((*img.GetOrigin(), 0.0))
    vol.SetSpacing((*img.GetSpacing(), 1.0))
    return vol


def _axis_name(vec: np.ndarray) -> str:
    return "xyz"[int(np.argmax(np.abs(vec)))]


def _read(image: str | os.PathLike | sitk.Image | np.ndarray) -> tuple[sitk.Image, str | None, bool]:
    """(image, source, spacing_known)."""
    from ...io import image_from_array, read_image, validate_image

    if isinstance(image, sitk.Image):
        return validate_image(image, name="axial MRI"), None, True
    if isinstance(image, np.ndarray):
        if image.ndim != 2:
            raise InputError(
                f"A numpy array of shape {image.shape} was given; arrays must be one 2D slice (rows, cols).",
                "pass a volume as a file or SimpleITK image so its geometry is known",
            )
        return image_from_array(np.asarray(image, dtype=np.float32), name="axial slice"), None, False
    path = Path(image)
    img = read_image(path, dims=None, name="axial MRI")
    picture = "".join(path.suffixes).lower().endswith(_PICTURES)
    return img, str(path), not picture


def looks_sagittal(array: np.ndarray) -> str | None:
    """Why a 2D picture looks like a sagittal spine slice (a column of discs), or ``None``.

    Runs the shipped sagittal grader's disc locator on the picture and its flips; a plausible column of
    at least four discs means a sagittal slice. Returns ``None`` when the sagittal weights are absent.
    """
    import torch

    from ...errors import WeightsError
    from ..disc_detection import decode_heatmaps, locator_input, normalise_slice
    from ..model import load_grading_model

    try:
        model, _card = load_grading_model(None)
    except WeightsError:
        return None
    base = normalise_slice(array)
    flips = (base, base[::-1], base[:, ::-1], base.T, base.T[::-1])
    inputs, geos = [], []
    for f in flips:
        x, geo = locator_input(np.ascontiguousarray(f), int(model.locator.config["size"]))
        inputs.append(x[None])
        geos.append(geo)
    with torch.no_grad():
        heat = torch.sigmoid(model.locator(torch.from_numpy(np.stack(inputs)))).numpy()
    for h, geo in zip(heat, geos, strict=True):
        try:
            loc = decode_heatmaps(h, geo, l5s1_threshold=0.0, require_l5s1=False)
        except InputError:
            continue
        if len(loc.discs) >= 4:
            return (
                f"a column of {len(loc.discs)} intervertebral discs was found on it, as on a sagittal slice"
            )
    return None


def read_axial_slice(
    image: str | os.PathLike | sitk.Image | np.ndarray,
    *,
    slice_index: int | None = None,
    check_sagittal_picture: bool = True,
) -> AxialSlice:
    """The working axial slice of an input (see the module docstring).

    Args:
        image: file, ``SimpleITK.Image`` or 2D numpy array.
        slice_index: for a 3D volume, the axial slice to grade (index along LPS z after reorientation);
            default the middle one.
        check_sagittal_picture: run the sagittal disc locator on 2D inputs without orientation to refuse
            sagittal pictures.

    Raises:
        InputError: see the module docstring.
    """
    img, source, spacing_known = _read(image)
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"The image has {img.GetNumberOfComponentsPerPixel()} values per pixel.",
            "pass a single-channel grey image",
        )
    values = sitk.GetArrayViewFromImage(img)
    sample = np.asarray(values if img.GetDimension() == 2 else values[:: max(1, values.shape[0] // 16)])
    problem = ct_problem(sample)
    if problem:
        raise InputError(
            f"Cannot grade this image: {problem}.",
            "pass an axial T2-weighted MRI slice or series of the lumbar spine (CT is read by 'spineai segment')",
        )
    vol = _as_3d(img)
    size = np.asarray(vol.GetSize())
    spacing = np.asarray(vol.GetSpacing(), dtype=float)
    direction = np.asarray(vol.GetDirection(), dtype=float).reshape(3, 3)
    notes: list[str] = []
    if img.GetDimension() == 3:
        single = [a for a in range(3) if size[a] == 1]
        if single:
            normal_axis = single[0]
        else:
            normal_axis = int(np.argmax(spacing))
            if spacing[normal_axis] <= 1.25 * float(np.min(spacing)):
                normal_axis = -1  # isotropic: resliced axially
        if normal_axis >= 0:
            normal = direction[:, normal_axis]
            axis = _axis_name(normal)
            if axis != "z":
                plane = "sagittal" if axis == "x" else "coronal"
                raise InputError(
                    f"The image is a {plane} {'slice' if single else 'series'} (its slices are stacked along the "
                    f"patient's {'left-right' if axis == 'x' else 'antero-posterior'} axis); the axial grader reads "
                    "axial slices.",
                    "load the axial T2 series of the same study (slices stacked from head to foot); a sagittal "
                    "series is graded by 'spineai grade sagittal'",
                )
            tilt = float(np.degrees(np.arccos(min(1.0, abs(float(normal[2]))))))
            if tilt > 5.0:
                notes.append(
                    f"the slices are tilted {tilt:.0f} degrees from true axial (angled to the disc); graded as acquired"
                )
        else:
            notes.append("isotropic volume: axial slices taken along the patient's head-to-foot axis")
    lps = sitk.DICOMOrient(sitk.Cast(vol, sitk.sitkFloat32), "LPS")
    arr = sitk.GetArrayFromImage(lps)  # [z, y, x]
    n_z = arr.shape[0]
    k = n_z // 2 if slice_index is None else int(slice_index)
    if not 0 <= k < n_z:
        raise InputError(f"Axial slice {k} is outside 0..{n_z - 1}.", "pass a slice index inside the volume")
    kind = "volume" if (img.GetDimension() == 3 and n_z > 1) else ("slice" if spacing_known else "picture")
    if kind == "volume":
        z = lps.TransformContinuousIndexToPhysicalPoint((0.0, 0.0, float(k)))[2]
        notes.append(
            f"graded the {'middle ' if slice_index is None else ''}axial slice {k} of {n_z} (LPS z = {z:.1f} mm); "
            "pass slice_index (--slice) to grade another"
        )
    plane = arr[k]
    sy, sx = float(lps.GetSpacing()[1]), float(lps.GetSpacing()[0])
    rows, cols = plane.shape
    if min(rows, cols) < MIN_SIDE_PX:
        raise InputError(
            f"The slice is only {cols} x {rows} pixels; at least {MIN_SIDE_PX} pixels are needed on each side.",
            "pass the full axial slice, not a thumbnail or a thin strip",
        )
    aspect = max(rows * sy, cols * sx) / max(min(rows * sy, cols * sx), 1e-9)
    if aspect > _MAX_ASPECT:
        raise InputError(
            f"The slice is {cols} x {rows} pixels with an aspect ratio of {aspect:.1f}:1, which no axial field of view has.",
            "export the slice with square pixels, or pass the image with its geometry (NIfTI/NRRD/DICOM)",
        )
    if kind == "picture":
        notes.append(
            "picture without geometry: assumed displayed the radiological way (anterior at the top, the patient's "
            "right on the left)"
        )
        if check_sagittal_picture:
            why = looks_sagittal(plane)
            if why:
                raise InputError(
                    f"The picture looks like a sagittal slice: {why}.",
                    "pass an axial T2 slice at a disc level; sagittal slices are graded by 'spineai grade sagittal'",
                )
    work, zoom = plane.astype(np.float32), (1.0, 1.0)
    if abs(sy / sx - 1.0) > 0.05:
        from scipy import ndimage

        target = min(sx, sy)
        work = ndimage.zoom(plane, (sy / target, sx / target), order=1, mode="nearest", grid_mode=True)
        zoom = (work.shape[0] / rows, work.shape[1] / cols)
        notes.append(f"pixels of {sx:.2f} x {sy:.2f} mm resampled to square {target:.2f} mm pixels")
    pixel = None if kind == "picture" else float(min(sx, sy))
    return AxialSlice(
        array=np.ascontiguousarray(work, dtype=np.float32),
        pixel_mm=pixel,
        kind=kind,
        source=source,
        image=img,
        lps=lps,
        slice_index=k,
        zoom_rc=(float(zoom[0]), float(zoom[1])),
        notes=notes,
    )


def crop_to_box(ws: AxialSlice, box: Sequence[float]) -> tuple[np.ndarray, int, int]:
    """The part of the working slice inside a box given in input pixel indices.

    Args:
        ws: the working slice.
        box: ``[x0, y0, x1, y1]`` continuous pixel indices of the input (x = column); for a volume, of
            its graded slice (x, y = the first two index axes).

    Returns:
        ``(crop, row0, col0)``: the crop (a view of ``ws.array``) and its offset in the working slice.

    Raises:
        InputError: not a box, or less than 16 x 16 working pixels inside the slice.
    """
    values = [float(v) for v in box]
    if len(values) != 4 or not (values[2] > values[0] and values[3] > values[1]):
        raise InputError(
            f"The ROI {list(box)} is not a box x0 < x1, y0 < y1.", "give [x0, y0, x1, y1] in pixel indices"
        )
    extra = [] if ws.image.GetDimension() == 2 else [ws.input_index((0.0, 0.0))[2]]
    x0, y0, x1, y1 = values
    corners = np.array(
        [ws.working_from_input_index([x, y, *extra]) for x, y in ((x0, y0), (x1, y1), (x0, y1), (x1, y0))]
    )
    r0 = max(int(np.floor(corners[:, 0].min())), 0)
    r1 = min(int(np.ceil(corners[:, 0].max())) + 1, ws.array.shape[0])
    c0 = max(int(np.floor(corners[:, 1].min())), 0)
    c1 = min(int(np.ceil(corners[:, 1].max())) + 1, ws.array.shape[1])
    if r1 - r0 < 16 or c1 - c0 < 16:
        raise InputError(
            f"The ROI {values} covers less than 16 x 16 pixels of the slice.",
            "give a larger box inside the image",
        )
    return ws.array[r0:r1, c0:c1], r0, c0
