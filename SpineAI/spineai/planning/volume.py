"""A canonical label map held as arrays, with voxel <-> LPS conversions and per-structure voxel lists.

Every coordinate leaving this module is in the LPS patient frame (SimpleITK's physical frame: +x patient
left, +y posterior, +z superior) in mm. Voxel indices are ``(i, j, k)`` = (x, y, z) image indices, as
SimpleITK counts them; numpy arrays are indexed ``[k, j, i]``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import SimpleITK as sitk

from ..anatomy import BY_LABEL, BY_NAME, NERVE_KINDS
from ..errors import InputError

#: canonical kinds that stop a needle: bone of any kind and neural tissue (roots, dural sac)
BONE_KINDS_BLOCKING: frozenset[str] = frozenset({"vertebra", "sacrum", "ilium", "subregion"})


class LabelVolume:
    """A canonical label map as a numpy array plus its LPS geometry.

    Args:
        image: integer ``sitk.Image`` holding canonical label values (:mod:`spineai.anatomy`).

    Attributes:
        array: label values, shape (nz, ny, nx), uint8/uint16.
        spacing: voxel size (x, y, z) in mm.
        origin: LPS position (mm) of the centre of voxel (0, 0, 0).
        index_to_lps: (3, 3) matrix ``direction @ diag(spacing)``; ``p = origin + index_to_lps @ ijk``.
    """

    def __init__(self, image: sitk.Image) -> None:
        if image.GetDimension() != 3:
            raise InputError(
                f"The label map is {image.GetDimension()}D; Kambin's and the safe triangle need a 3D label map.",
                "pass the 3D segmentation of the lumbosacral CT",
            )
        self.image = image
        self.array = sitk.GetArrayViewFromImage(image)
        self.spacing = np.asarray(image.GetSpacing(), dtype=float)
        self.origin = np.asarray(image.GetOrigin(), dtype=float)
        self.direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
        self.index_to_lps = self.direction @ np.diag(self.spacing)
        self.lps_to_index = np.linalg.inv(self.index_to_lps)
        self.shape_xyz = np.asarray(image.GetSize(), dtype=int)
        self._groups: dict[int, np.ndarray] | None = None
        self._points: dict[str, np.ndarray] = {}

    # ---------------------------------------------------------------- conversions
    def to_lps(self, ijk: np.ndarray) -> np.ndarray:
        """Voxel indices (..., 3) as (i, j, k) -> LPS points (..., 3), mm."""
        return self.origin + np.asarray(ijk, dtype=float) @ self.index_to_lps.T

    def to_index(self, points: np.ndarray) -> np.ndarray:
        """LPS points (..., 3), mm -> continuous voxel indices (..., 3) as (i, j, k)."""
        return (np.asarray(points, dtype=float) - self.origin) @ self.lps_to_index.T

    def voxel_half_extent(self, u: np.ndarray) -> float:
        """Half the extent of one voxel along the unit LPS direction ``u`` (mm)."""
        return float(0.5 * np.sum(np.abs(np.asarray(u, dtype=float) @ self.index_to_lps)))

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel (mm3)."""
        return float(np.prod(self.spacing))

    def bounds_lps(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned LPS box (lower, upper corners, mm) enclosing every voxel of the grid."""
        corners = np.array(
            [
                [a, b, c]
                for a in (-0.5, self.shape_xyz[0] - 0.5)
                for b in (-0.5, self.shape_xyz[1] - 0.5)
                for c in (-0.5, self.shape_xyz[2] - 0.5)
            ]
        )
        pts = self.to_lps(corners)
        return pts.min(axis=0), pts.max(axis=0)

    def contains(self, points: np.ndarray, margin_vox: float = 0.0) -> np.ndarray:
        """Whether LPS points (N, 3) lie inside the grid (bool (N,))."""
        idx = self.to_index(points)
        lo = -0.5 + margin_vox
        hi = self.shape_xyz - 0.5 - margin_vox
        return np.all((idx >= lo) & (idx <= hi), axis=-1)

    # ---------------------------------------------------------------- voxel lists
    def _build_groups(self) -> dict[int, np.ndarray]:
        flat = np.asarray(self.array).ravel()
        nz = np.flatnonzero(flat)
        values = flat[nz]
        order = np.argsort(values, kind="stable")
        nz, values = nz[order], values[order]
        if nz.size == 0:
            return {}
        uniq, starts = np.unique(values, return_index=True)
        ends = np.append(starts[1:], len(values))
        return {int(v): nz[s:e] for v, s, e in zip(uniq, starts, ends, strict=True)}

    @property
    def groups(self) -> dict[int, np.ndarray]:
        """Flat (C-order) indices of the voxels of each nonzero label value."""
        if self._groups is None:
            self._groups = self._build_groups()
        return self._groups

    def labels_present(self) -> set[int]:
        """Nonzero label values with at least one voxel."""
        return set(self.groups)

    def names_present(self) -> set[str]:
        """Canonical names of the structures present."""
        return {BY_LABEL[v].name for v in self.groups if v in BY_LABEL}

    def ijk(self, name: str) -> np.ndarray:
        """Voxel indices (N, 3) as (i, j, k) of structure ``name`` (empty (0, 3) when absent)."""
        flat = self.groups.get(BY_NAME[name].label)
        if flat is None:
            return np.zeros((0, 3), dtype=int)
        nz, ny, nx = self.array.shape
        k, rem = np.divmod(flat, ny * nx)
        j, i = np.divmod(rem, nx)
        return np.column_stack([i, j, k])

    def points(self, name: str) -> np.ndarray:
        """LPS centres (N, 3), mm, of the voxels of structure ``name`` (cached; do not modify)."""
        if name not in self._points:
            pts = self.to_lps(self.ijk(name))
            pts.flags.writeable = False
            self._points[name] = pts
        return self._points[name]

    def count(self, name: str) -> int:
        """Number of voxels of structure ``name``."""
        flat = self.groups.get(BY_NAME[name].label)
        return 0 if flat is None else int(flat.size)

    def lookup(self, points: np.ndarray, array: np.ndarray | None = None) -> np.ndarray:
        """Label (or ``array`` value) at the voxel nearest to each LPS point; 0 outside the grid."""
        arr = self.array if array is None else array
        idx = np.rint(self.to_index(points)).astype(np.int64)
        inside = np.all((idx >= 0) & (idx < self.shape_xyz), axis=-1)
        out = np.zeros(idx.shape[:-1], dtype=arr.dtype)
        sel = idx[inside]
        out[inside] = arr[sel[:, 2], sel[:, 1], sel[:, 0]]
        return out

    # ---------------------------------------------------------------- interfaces
    def interface(self, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
        """Points where voxels of ``name_a`` touch voxels of ``name_b`` (6-neighbourhood).

        Returns:
            ``(points, step)``: midpoints (N, 3) LPS mm between each touching pair, and the unit LPS
            step (N, 3) from the ``name_a`` voxel to the ``name_b`` voxel.
        """
        la, lb = BY_NAME[name_a].label, BY_NAME[name_b].label
        ia, ib = self.ijk(name_a), self.ijk(name_b)
        if len(ia) == 0 or len(ib) == 0:
            return np.zeros((0, 3)), np.zeros((0, 3))
        lo = np.maximum(np.minimum(ia.min(0), ib.min(0)) - 1, 0)
        hi = np.minimum(np.maximum(ia.max(0), ib.max(0)) + 2, self.shape_xyz)
        box = np.asarray(self.array[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]])
        ma, mb = box == la, box == lb
        pts, steps = [], []
        for axis_zyx in range(3):
            for sign in (1, -1):
                sl_a = [slice(None)] * 3
                sl_b = [slice(None)] * 3
                if sign > 0:
                    sl_a[axis_zyx], sl_b[axis_zyx] = slice(0, -1), slice(1, None)
                else:
                    sl_a[axis_zyx], sl_b[axis_zyx] = slice(1, None), slice(0, -1)
                both = ma[tuple(sl_a)] & mb[tuple(sl_b)]
                kz, jy, ix = np.nonzero(both)
                if kz.size == 0:
                    continue
                if sign < 0:
                    idx = [kz, jy, ix]
                    idx[axis_zyx] = idx[axis_zyx] + 1
                    kz, jy, ix = idx
                shift = np.zeros(3)
                shift[2 - axis_zyx] = sign
                ijk = np.column_stack([ix, jy, kz]).astype(float) + lo + 0.5 * shift
                pts.append(self.to_lps(ijk))
                step = self.index_to_lps @ shift
                steps.append(np.repeat((step / np.linalg.norm(step))[None, :], len(ijk), axis=0))
        if not pts:
            return np.zeros((0, 3)), np.zeros((0, 3))
        return np.vstack(pts), np.vstack(steps)

    # ---------------------------------------------------------------- blocking structures
    def blocking_labels(self) -> list[int]:
        """Label values present that a needle must not cross: bone and neural tissue."""
        out = []
        for v in self.groups:
            s = BY_LABEL.get(v)
            if s is None:
                continue
            if s.kind in BONE_KINDS_BLOCKING or s.kind in NERVE_KINDS or s.name in ("bone", "nerve"):
                out.append(v)
        return sorted(out)


def label_values(names: Iterable[str]) -> list[int]:
    """Canonical label values of ``names``."""
    return [BY_NAME[n].label for n in names]
