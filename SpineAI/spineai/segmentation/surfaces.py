"""Smoothed surface models of a label map, for 3D display (Slicer models, STL for printing).

For each structure: its voxels are cut out of the label map (bounding box plus a one-voxel margin),
median-filtered with a 1.5 mm kernel as in the SPINECT paper (the kernel size in voxels follows 3D
Slicer's Segment Editor smoothing effect: the odd number nearest to ``kernel_mm / spacing`` per axis, so a
1 mm voxel gets no median and a 0.7 mm voxel a 3-voxel kernel), turned into a closed triangle mesh with
VTK's discrete flying edges, smoothed with a windowed-sinc filter (Slicer's closed-surface smoothing; a
factor of 0.5 is Slicer's default), and given outward normals.

Points are in the LPS patient frame in mm (SimpleITK's physical frame). Written ``.vtp`` files carry a
``SPACE = LPS`` field-data string and ``.stl`` files a ``SPACE=LPS`` header, which is how 3D Slicer (>= 4.11)
recognises the frame when it loads them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..outputs import atomic_path

#: the paper's median kernel (mm)
MEDIAN_KERNEL_MM = 1.5
#: Slicer's default closed-surface smoothing factor
DEFAULT_SMOOTHING = 0.5


def median_kernel_voxels(kernel_mm: float, spacing_mm: Sequence[float]) -> tuple[int, ...]:
    """Median kernel size in voxels per axis (x, y, z): the odd number nearest to ``kernel_mm / spacing``.

    Same rule as 3D Slicer's smoothing effect: ``round((kernel_mm / spacing + 1) / 2) * 2 - 1``, at least 1.
    """
    return tuple(max(1, int(round((kernel_mm / s + 1) / 2)) * 2 - 1) for s in spacing_mm)


def _index_to_physical_matrix(image: sitk.Image, start_index: Sequence[int]):
    import vtk

    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    spacing = np.array(image.GetSpacing(), dtype=float)
    origin = np.array(image.TransformIndexToPhysicalPoint([int(i) for i in start_index]), dtype=float)
    linear = direction @ np.diag(spacing)
    matrix = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            matrix.SetElement(r, c, float(linear[r, c]))
        matrix.SetElement(r, 3, float(origin[r]))
    return matrix


def mask_surface(
    mask: sitk.Image,
    kernel_mm: float = MEDIAN_KERNEL_MM,
    smoothing: float = DEFAULT_SMOOTHING,
):
    """Closed, smoothed surface (``vtkPolyData``, LPS mm) of a binary mask image (non-zero = inside).

    Returns ``None`` when the mask is empty (or vanishes under the median filter).
    """
    import vtk
    from vtk.util import numpy_support

    binary = sitk.Cast(mask != 0, sitk.sitkUInt8)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(binary)
    if not stats.HasLabel(1):
        return None
    bbox = stats.GetBoundingBox(1)  # (x, y, z, size_x, size_y, size_z)
    kernel = median_kernel_voxels(kernel_mm, binary.GetSpacing())
    radius = [(k - 1) // 2 for k in kernel]
    margin = [r + 1 for r in radius]
    size = binary.GetSize()
    lo = [max(0, bbox[i] - margin[i]) for i in range(3)]
    hi = [min(size[i], bbox[i] + bbox[i + 3] + margin[i]) for i in range(3)]
    crop = sitk.RegionOfInterest(binary, [hi[i] - lo[i] for i in range(3)], lo)
    if any(r > 0 for r in radius):
        crop = sitk.BinaryMedian(crop, radius, foregroundValue=1, backgroundValue=0)
    array = sitk.GetArrayFromImage(crop)  # (z, y, x)
    if not array.any():
        return None
    array = np.pad(array, 1)  # closed surfaces at the crop border
    start = [lo[i] - 1 for i in range(3)]

    vtk_image = vtk.vtkImageData()
    vtk_image.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    vtk_image.GetPointData().SetScalars(
        numpy_support.numpy_to_vtk(
            np.ascontiguousarray(array).ravel(), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR
        )
    )
    surface = vtk.vtkDiscreteFlyingEdges3D()
    surface.SetInputData(vtk_image)
    surface.SetValue(0, 1)
    surface.ComputeNormalsOff()
    surface.ComputeGradientsOff()
    surface.ComputeScalarsOff()
    last = surface
    if smoothing > 0:
        smoother = vtk.vtkWindowedSincPolyDataFilter()
        smoother.SetInputConnection(last.GetOutputPort())
        smoother.SetNumberOfIterations(20)
        smoother.SetPassBand(float(10.0 ** (-4.0 * smoothing)))
        smoother.BoundarySmoothingOff()
        smoother.FeatureEdgeSmoothingOff()
        smoother.NonManifoldSmoothingOn()
        smoother.NormalizeCoordinatesOn()
        last = smoother
    transform = vtk.vtkTransform()
    transform.SetMatrix(_index_to_physical_matrix(binary, start))
    to_physical = vtk.vtkTransformFilter()
    to_physical.SetInputConnection(last.GetOutputPort())
    to_physical.SetTransform(transform)
    normals = vtk.vtkPolyDataNormals()
    normals.SetInputConnection(to_physical.GetOutputPort())
    normals.ConsistencyOn()
    normals.SplittingOff()
    normals.AutoOrientNormalsOn()
    normals.Update()
    polydata = vtk.vtkPolyData()
    polydata.DeepCopy(normals.GetOutput())
    if polydata.GetNumberOfPoints() == 0:
        return None
    _tag_lps(polydata)
    return polydata


def _tag_lps(polydata) -> None:
    import vtk

    space = vtk.vtkStringArray()
    space.SetName("SPACE")
    space.InsertNextValue("LPS")
    polydata.GetFieldData().AddArray(space)


def label_surfaces(
    labels: sitk.Image,
    names: Mapping[int, str],
    kernel_mm: float = MEDIAN_KERNEL_MM,
    smoothing: float = DEFAULT_SMOOTHING,
) -> dict[str, object]:
    """One smoothed surface per structure present in ``labels``.

    Args:
        labels: integer label map (any geometry; LPS physical frame).
        names: label value -> structure name; values absent from ``labels`` are skipped.
        kernel_mm: median kernel (mm), the paper's 1.5 mm by default.
        smoothing: windowed-sinc smoothing factor 0..1 (0: none).

    Returns:
        structure name -> ``vtkPolyData`` (LPS, mm), in the order of ``names``.
    """
    present = set(np.unique(sitk.GetArrayViewFromImage(labels)).tolist())
    surfaces: dict[str, object] = {}
    for value, name in names.items():
        if int(value) == 0 or int(value) not in present:
            continue
        poly = mask_surface(labels == int(value), kernel_mm=kernel_mm, smoothing=smoothing)
        if poly is not None:
            surfaces[name] = poly
    return surfaces


def surface_area_mm2(polydata) -> float:
    """Area of a triangle mesh (mm2)."""
    import vtk

    props = vtk.vtkMassProperties()
    triangles = vtk.vtkTriangleFilter()
    triangles.SetInputData(polydata)
    props.SetInputConnection(triangles.GetOutputPort())
    props.Update()
    return float(props.GetSurfaceArea())


def surface_volume_mm3(polydata) -> float:
    """Enclosed volume of a closed triangle mesh (mm3)."""
    import vtk

    props = vtk.vtkMassProperties()
    triangles = vtk.vtkTriangleFilter()
    triangles.SetInputData(polydata)
    props.SetInputConnection(triangles.GetOutputPort())
    props.Update()
    return float(props.GetVolume())


def write_surface(polydata, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write one surface as ``.vtp`` (XML, compressed) or ``.stl`` (binary), atomically; LPS frame tagged."""
    import vtk

    dest = Path(path)
    suffix = dest.suffix.lower()
    with atomic_path(dest, overwrite) as tmp:
        if suffix == ".vtp":
            writer = vtk.vtkXMLPolyDataWriter()
            writer.SetDataModeToBinary()
            writer.SetCompressorTypeToZLib()
        elif suffix == ".stl":
            writer = vtk.vtkSTLWriter()
            writer.SetFileTypeToBinary()
            writer.SetHeader("SpineAI surface. SPACE=LPS")
        else:
            raise ValueError(f"surface format '{suffix}' is not supported; use .vtp or .stl")
        writer.SetFileName(str(tmp))
        writer.SetInputData(polydata)
        if writer.Write() != 1:
            raise OSError(f"VTK could not write the surface file {dest}")
    return dest


def write_surfaces(
    surfaces: Mapping[str, object],
    folder: str | os.PathLike,
    formats: Sequence[str] = ("vtp",),
    overwrite: bool = False,
) -> dict[str, list[Path]]:
    """Write ``folder/<structure>.<fmt>`` for every surface and format; returns name -> written paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    for name, poly in surfaces.items():
        written[name] = [write_surface(poly, out / f"{name}.{fmt.lstrip('.')}", overwrite) for fmt in formats]
    return written
