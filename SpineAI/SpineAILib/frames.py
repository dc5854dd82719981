"""Coordinate frames: LPS (engine, SimpleITK, DICOM) <-> RAS (3D Slicer).

The engine works in LPS: +x = patient left, +y = posterior, +z = superior (SimpleITK's physical frame).
Slicer's world frame is RAS: +x = patient right, +y = anterior, +z = superior. The two differ by negating
x and y, i.e. by the matrix ``diag(-1, -1, 1)``, which is its own inverse.

Image geometry in Slicer is one 4x4 ``IJKToRAS`` matrix; in SimpleITK it is origin, spacing and a 3x3
direction matrix (columns = unit vectors of the i, j, k axes) in LPS. Voxel arrays are indexed
``[k, j, i]`` in both ``slicer.util.arrayFromVolume`` and ``SimpleITK.GetArrayFromImage``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: the LPS <-> RAS flip (its own inverse)
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def _as_points(points: Sequence[Sequence[float]] | np.ndarray) -> tuple[np.ndarray, bool]:
    arr = np.asarray(points, dtype=float)
    single = arr.ndim == 1
    if single:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(
            f"Expected one point (3 numbers) or an array of shape (N, 3), got shape {np.shape(points)}. "
            "Pass coordinates in mm as [x, y, z] rows."
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("Point coordinates contain NaN or infinity; remove undefined control points first.")
    return arr, single


def lps_to_ras(points: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Convert points from LPS to RAS (mm): x and y change sign.

    Args:
        points: one point ``(3,)`` or many ``(N, 3)``, in mm, LPS.

    Returns:
        the same shape, in mm, RAS (a new float array).
    """
    arr, single = _as_points(points)
    out = arr @ LPS_TO_RAS
    return out[0] if single else out


def ras_to_lps(points: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Convert points from RAS to LPS (mm); the inverse (and the same operation) as :func:`lps_to_ras`."""
    arr, single = _as_points(points)
    out = arr @ LPS_TO_RAS
    return out[0] if single else out


def lps_to_ras_vectors(vectors: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Convert direction vectors (e.g. a needle axis) from LPS to RAS; same flip as for points."""
    return lps_to_ras(vectors)


@dataclass(frozen=True)
class ImageGeometry:
    """Geometry of a 3D image in the engine's (SimpleITK's) LPS frame.

    Attributes:
        origin: physical position of voxel (0, 0, 0), mm, LPS.
        spacing: voxel size along i, j, k, mm (all > 0).
        direction: 3x3 row-major tuple; column c is the LPS unit vector of index axis c (i, j, k).
    """

    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: tuple[float, ...]

    def direction_matrix(self) -> np.ndarray:
        """The direction as a 3x3 array (columns = i, j, k axes in LPS)."""
        return np.asarray(self.direction, dtype=float).reshape(3, 3)


def geometry_from_ijk_to_ras(ijk_to_ras: Sequence[Sequence[float]] | np.ndarray) -> ImageGeometry:
    """SimpleITK geometry (LPS) of an image whose Slicer ``IJKToRAS`` matrix is given.

    Args:
        ijk_to_ras: 4x4 matrix mapping voxel index (i, j, k, 1) to RAS mm, as returned by
            ``volumeNode.GetIJKToRASMatrix`` (converted with ``slicer.util.arrayFromVTKMatrix``).

    Returns:
        origin (LPS, mm), spacing (mm) and direction (LPS) for ``SimpleITK.Image.SetOrigin`` etc.

    Raises:
        ValueError: if the matrix is not 4x4, has a degenerate axis, or is not affine.
    """
    m = np.asarray(ijk_to_ras, dtype=float)
    if m.shape != (4, 4):
        raise ValueError(f"IJKToRAS must be a 4x4 matrix, got shape {m.shape}.")
    if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0]):
        raise ValueError("IJKToRAS last row must be [0, 0, 0, 1] (an affine matrix).")
    axes_lps = LPS_TO_RAS @ m[:3, :3]
    spacing = np.linalg.norm(axes_lps, axis=0)
    if np.any(spacing <= 0) or not np.all(np.isfinite(spacing)):
        raise ValueError(
            f"IJKToRAS has a zero-length axis (spacing {spacing.tolist()} mm); the volume is degenerate."
        )
    direction = axes_lps / spacing
    origin = LPS_TO_RAS @ m[:3, 3]
    return ImageGeometry(
        origin=tuple(float(v) for v in origin),
        spacing=tuple(float(v) for v in spacing),
        direction=tuple(float(v) for v in direction.reshape(-1)),
    )


def ijk_to_ras_from_geometry(
    origin: Sequence[float], spacing: Sequence[float], direction: Sequence[float]
) -> np.ndarray:
    """Slicer ``IJKToRAS`` 4x4 matrix of an image with SimpleITK (LPS) geometry.

    Args:
        origin: ``image.GetOrigin()``, mm, LPS.
        spacing: ``image.GetSpacing()``, mm.
        direction: ``image.GetDirection()``, 9 numbers row-major (columns = index axes in LPS).

    Returns:
        4x4 float array for ``volumeNode.SetIJKToRASMatrix`` (after conversion to vtkMatrix4x4).
    """
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    s = np.asarray(spacing, dtype=float)
    if s.shape != (3,) or np.any(s <= 0):
        raise ValueError(f"Spacing must be three positive numbers in mm, got {list(spacing)}.")
    m = np.eye(4)
    m[:3, :3] = LPS_TO_RAS @ d @ np.diag(s)
    m[:3, 3] = LPS_TO_RAS @ np.asarray(origin, dtype=float)
    return m


def geometry_to_sitk(image: object, geometry: ImageGeometry) -> None:
    """Apply ``geometry`` to a SimpleITK image in place (``SetOrigin``, ``SetSpacing``, ``SetDirection``)."""
    image.SetOrigin(geometry.origin)  # type: ignore[attr-defined]
    image.SetSpacing(geometry.spacing)  # type: ignore[attr-defined]
    image.SetDirection(geometry.direction)  # type: ignore[attr-defined]
