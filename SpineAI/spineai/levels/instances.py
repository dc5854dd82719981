"""Vertebra instances of a label map and their geometry along the spine (LPS, mm).

A canonical label map says *which voxels belong to which vertebra*; whether the names are right is what
:mod:`spineai.levels.labelling` decides. Here each vertebra (every label of kind ``vertebra`` or
``sacrum``, or each connected component of the 3-class ``bone`` label) becomes an :class:`Instance`
with its voxel centres in the LPS patient frame (+x patient left, +y posterior, +z superior, mm), and the
instances are ordered along the spine.

Spine frame of an instance
    * **axis**: unit cranio-caudal direction (toward the head). From the disc under or over it when one
      is labelled (the smallest principal axis of the disc's voxels: a disc is a thin slab), else from
      the centroids of its neighbours (central difference, one-sided at the ends; the sacrum's centroid
      is not used, it lies far behind and below its S1 body).
    * **lateral**: the patient's left-right axis, toward the left (LPS +x): the long principal axis of the
      labelled discs beside it (a disc is wider than deep), else LPS +x; made orthogonal to the axis. The
      image's physical frame is LPS whatever the array's axis order, so the sign follows the patient (and
      :mod:`spineai.checks` verifies that the anatomy agrees with the frame).
    * **posterior**: ``axis x lateral`` (toward the patient's back).
    * local coordinates ``(X, Y, T)``: along ``lateral`` and ``posterior`` from the instance's centroid,
      and ``T = axis . p``.

Vertebral body of an instance: its voxels in the anterior 38 % of its antero-posterior extent within
20 mm of its mid-sagittal plane (the body lies in front of the canal; the posterior elements behind).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..anatomy import BY_LABEL, BY_NAME

#: instances smaller than this (ml) are fragments (kept with their label, not counted as vertebrae)
MIN_INSTANCE_ML = 1.0
#: components of one label at least this large (ml) and this far apart along the spine (mm) are split
SPLIT_MIN_ML = 6.0
SPLIT_MIN_GAP_MM = 8.0
#: share of the antero-posterior extent (from the front) taken as the vertebral body
BODY_FRACTION = 0.38
#: half-width of the mid-sagittal band of the body (mm)
BODY_HALF_BAND_MM = 20.0


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to unit length."""
    v = np.asarray(v, dtype=float)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


@dataclass
class Grid:
    """The voxel grid of a label map: ``p_lps = origin + index_to_lps @ (i, j, k)`` (mm)."""

    shape_zyx: tuple[int, int, int]
    origin: np.ndarray
    index_to_lps: np.ndarray

    @property
    def spacing(self) -> np.ndarray:
        return np.linalg.norm(self.index_to_lps, axis=0)

    @property
    def voxel_ml(self) -> float:
        return float(abs(np.linalg.det(self.index_to_lps))) / 1000.0

    def points(self, flat: np.ndarray) -> np.ndarray:
        """LPS centres (N, 3) of voxels given by flat C-order indices into the (z, y, x) array."""
        nz, ny, nx = self.shape_zyx
        k, rem = np.divmod(flat, ny * nx)
        j, i = np.divmod(rem, nx)
        ijk = np.column_stack([i, j, k]).astype(float)
        return self.origin + ijk @ self.index_to_lps.T

    def step_along(self, u: np.ndarray) -> float:
        """Extent of one voxel along the unit LPS direction ``u`` (mm)."""
        return float(np.sum(np.abs(np.asarray(u, dtype=float) @ self.index_to_lps)))


@dataclass
class Instance:
    """One vertebra (or the sacrum, or a piece of bone) found in the label map.

    Attributes:
        key: identifier, ``"v<label>"`` or ``"v<label>.<n>"`` when one label held several vertebrae.
        label: label value in the input (canonical value).
        input_name: canonical name the input gave it (not trusted).
        flat: flat indices of its voxels in the (z, y, x) array.
        points: LPS voxel centres (N, 3), mm.
        volume_ml: volume (ml).
        touches_border: whether it reaches the edge of the image (cut by the field of view).
        axis, posterior, lateral: spine frame (see the module docstring).
        fragments: voxels of small separate pieces carrying the same label (kept with it).
    """

    key: str
    label: int
    input_name: str
    flat: np.ndarray
    points: np.ndarray
    volume_ml: float
    touches_border: bool
    axis: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))
    posterior: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0, 0.0]))
    lateral: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0]))
    fragments: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: bone gap to the next instance below along the axis (mm), set by the labelling
    gap_below_mm: float | None = None
    #: sides on which a rib starts beside it (set by the labelling when a CT is given)
    rib_sides: list[str] = field(default_factory=list)

    @property
    def centroid(self) -> np.ndarray:
        return self.points.mean(axis=0)

    def set_axis(self, axis: np.ndarray, lateral: np.ndarray | None = None) -> None:
        """Set the cranio-caudal axis and the left-right axis; ``posterior = axis x lateral``.

        Args:
            axis: cranio-caudal direction (turned toward LPS +z).
            lateral: the patient's left-right direction from the anatomy (e.g. a disc's long axis), made
                orthogonal to ``axis`` and turned toward LPS +x; ``None``: LPS +x made orthogonal to the
                axis (the image's physical frame is LPS, so +x is the patient's left).
        """
        a = unit(axis)
        if a[2] < 0:
            a = -a
        self.axis = a
        x = np.array([1.0, 0.0, 0.0]) if lateral is None else np.asarray(lateral, dtype=float)
        lat = x - np.dot(x, a) * a
        if np.linalg.norm(lat) < 1e-6:  # axis along x: fall back to y
            lat = np.cross(np.array([0.0, 1.0, 0.0]), a)
        lat = unit(lat)
        if lat[0] < 0:
            lat = -lat
        self.lateral = lat
        self.posterior = unit(np.cross(a, lat))

    def local(self, pts: np.ndarray | None = None, origin: np.ndarray | None = None) -> np.ndarray:
        """LPS points (N, 3) (default: its own) -> local (X, Y, T) about ``origin`` (default: centroid)."""
        p = self.points if pts is None else np.asarray(pts, dtype=float)
        o = self.centroid if origin is None else origin
        d = p - o
        return np.column_stack([d @ self.lateral, d @ self.posterior, p @ self.axis])

    def body_mask(self) -> np.ndarray:
        """Boolean mask over :attr:`points` of the vertebral body (module docstring)."""
        loc = self.local()
        y0, y1 = float(loc[:, 1].min()), float(loc[:, 1].max())
        return (loc[:, 1] <= y0 + BODY_FRACTION * (y1 - y0)) & (np.abs(loc[:, 0]) <= BODY_HALF_BAND_MM)

    def body_centre(self) -> np.ndarray:
        """Centroid of the vertebral body (LPS mm)."""
        m = self.body_mask()
        return self.points[m].mean(axis=0) if np.any(m) else self.centroid

    def body_half_width(self) -> float:
        """Half the left-right width of the body at its mid-height (mm; 99th percentile of ``|X|`` about the
        body centre, over the instance's voxels within 5 mm of the body's mid-height and in front of it
        back)."""
        m = self.body_mask()
        if not np.any(m):
            return 20.0
        bc = self.body_centre()
        loc = self.local(self.points, origin=bc)
        t_mid = float(bc @ self.axis)
        slab = np.abs(loc[:, 2] - t_mid) < 5.0
        # in front of the posterior wall (the body region's back, less 3 mm): no pedicle, no process
        front = loc[:, 1] < float(loc[m, 1].max()) - 3.0
        sel = slab & front
        if np.count_nonzero(sel) < 10:
            sel = m
        return float(np.percentile(np.abs(loc[sel, 0]), 99))

    def body_height(self) -> float:
        """Extent of the body along the axis (mm, between voxel centres)."""
        m = self.body_mask()
        t = self.points[m] @ self.axis if np.any(m) else self.points @ self.axis
        return float(t.max() - t.min())


def _touches_border(flat: np.ndarray, shape: tuple[int, int, int]) -> bool:
    nz, ny, nx = shape
    k, rem = np.divmod(flat, ny * nx)
    j, i = np.divmod(rem, nx)
    return bool(
        (k.min() == 0)
        or (k.max() == nz - 1)
        or (j.min() == 0)
        or (j.max() == ny - 1)
        or (i.min() == 0)
        or (i.max() == nx - 1)
    )


def vertebra_labels(array: np.ndarray) -> list[int]:
    """Label values of kind ``vertebra``/``sacrum`` (and the class ``bone``) present in a canonical array."""
    present = np.flatnonzero(np.bincount(np.asarray(array).ravel().astype(np.int64)))
    out = []
    for v in present:
        s = BY_LABEL.get(int(v))
        if s is not None and (s.kind in ("vertebra", "sacrum") or s.name == "bone"):
            out.append(int(v))
    return out


def extract_instances(array: np.ndarray, grid: Grid) -> tuple[list[Instance], list[str]]:
    """Vertebra instances of a canonical label array (z, y, x), with remarks.

    Each vertebra/sacrum label is one instance; its separate components are split into several
    instances only when at least two of them are larger than :data:`SPLIT_MIN_ML` and lie more than
    :data:`SPLIT_MIN_GAP_MM` apart along the spine's long axis (the same name given to two vertebrae).
    Smaller pieces stay with their label (e.g. the articular processes of a vertebra cut by the field of
    view). The class ``bone`` is split into its connected components. Instances smaller than
    :data:`MIN_INSTANCE_ML` are dropped (listed in the remarks).
    """
    notes: list[str] = []
    out: list[Instance] = []
    arr = np.asarray(array)
    structure = np.ones((3, 3, 3), dtype=bool)
    bone = BY_NAME["bone"].label
    for value in vertebra_labels(arr):
        name = BY_LABEL[value].name
        mask = arr == value
        lab, n = ndimage.label(mask, structure=structure)
        flat_all = np.flatnonzero(mask)
        comp_of = lab.ravel()[flat_all]
        sizes = np.bincount(comp_of, minlength=n + 1)
        order = np.argsort(sizes[1:])[::-1] + 1
        big = [c for c in order if sizes[c] * grid.voxel_ml >= SPLIT_MIN_ML]
        groups: list[list[int]] = []
        if value == bone:
            groups = [[c] for c in order if sizes[c] * grid.voxel_ml >= MIN_INSTANCE_ML]
        elif len(big) >= 2:
            # split when big components are far apart along the label's long axis
            pts_of = {c: grid.points(flat_all[comp_of == c]) for c in big}
            allp = np.vstack(list(pts_of.values()))
            _, _, vt = np.linalg.svd(allp - allp.mean(0), full_matrices=False)
            d = vt[0]
            spans = sorted((float((pts_of[c] @ d).min()), float((pts_of[c] @ d).max()), c) for c in big)
            groups = [[spans[0][2]]]
            hi = spans[0][1]
            for lo_c, hi_c, c in spans[1:]:
                if lo_c - hi > SPLIT_MIN_GAP_MM:
                    groups.append([c])
                else:
                    groups[-1].append(c)
                hi = max(hi, hi_c)
            if len(groups) > 1:
                notes.append(
                    f"label {name} ({value}) holds {len(groups)} separate vertebrae; they are numbered one by one"
                )
        else:
            groups = [[c for c in order]]
        assigned = set(c for g in groups for c in g)
        for gi, g in enumerate(groups):
            flat = flat_all[np.isin(comp_of, g)]
            vol = flat.size * grid.voxel_ml
            if vol < MIN_INSTANCE_ML:
                notes.append(f"label {name} ({value}) has only {vol:.2f} ml: ignored as a fragment")
                continue
            key = f"v{value}" if len(groups) == 1 else f"v{value}.{gi + 1}"
            out.append(
                Instance(
                    key=key,
                    label=value,
                    input_name=name,
                    flat=flat,
                    points=grid.points(flat),
                    volume_ml=vol,
                    touches_border=_touches_border(flat, arr.shape),
                )
            )
        rest = [c for c in range(1, n + 1) if c not in assigned]
        if rest and value != bone and out and len(groups) > 1:
            # leftover pieces of a split label: attach to the nearest instance of that label
            mine = [inst for inst in out if inst.label == value]
            for c in rest:
                f = flat_all[comp_of == c]
                cen = grid.points(f).mean(0)
                near = min(mine, key=lambda inst: float(np.linalg.norm(inst.centroid - cen)))
                near.fragments = np.concatenate([near.fragments, f])
    return out, notes


def order_along_spine(instances: list[Instance]) -> np.ndarray:
    """Sort ``instances`` in place from cranial to caudal; return the unit long axis (toward the head).

    The long axis is the principal axis of the instances' centroids (LPS +z when fewer than two).
    """
    if len(instances) < 2:
        return np.array([0.0, 0.0, 1.0])
    c = np.array([i.centroid for i in instances])
    w = np.array([i.volume_ml for i in instances])
    mean = (c * w[:, None]).sum(0) / w.sum()
    _, _, vt = np.linalg.svd((c - mean) * np.sqrt(w)[:, None], full_matrices=False)
    d = unit(vt[0])
    if d[2] < 0:
        d = -d
    instances.sort(key=lambda i: -float(i.centroid @ d))
    return d


def thin_axis(points: np.ndarray) -> np.ndarray | None:
    """Smallest principal axis of a point cloud (the normal of a thin slab such as a disc), or ``None``."""
    if len(points) < 30:
        return None
    q = points - points.mean(0)
    w, v = np.linalg.eigh(q.T @ q / len(points))
    if w[0] > 0.5 * w[1]:  # not a slab
        return None
    a = v[:, 0]
    return a if a[2] >= 0 else -a


def long_axis_of(points: np.ndarray) -> np.ndarray | None:
    """Largest principal axis of a slab-like point cloud (a disc: its left-right axis), or ``None`` when the
    cloud is too small or not clearly longer than wide (less than 1.2 x the variance across)."""
    if len(points) < 30:
        return None
    q = points - points.mean(0)
    w, v = np.linalg.eigh(q.T @ q / len(points))
    if w[2] < 1.2 * w[1]:
        return None
    return v[:, 2]
