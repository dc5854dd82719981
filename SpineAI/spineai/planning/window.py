"""The accessible window of a triangle under a view: the part a straight needle along the view reaches.

A triangle (see :mod:`spineai.planning.construct`) lies in the plane through ``M`` orthogonal to the
view ``v`` (unit LPS vector, skin -> target). It is cut into ``n x n`` congruent sub-triangles; from the
centroid of each, a ray is cast back toward the skin (along ``-v``) through the label map, in steps of
half the smallest voxel size, with the label of the nearest voxel at each step. A ray is **blocked** when
it meets a voxel of bone (vertebrae, sacrum, ilium) or neural tissue (nerve roots, dural sac) before it
leaves the labelled anatomy; the vertebral bodies of the measured levels are not obstacles (the
triangles lie on their borders and the needle approaches from behind them). The **accessible window**
is the triangle's area times the share of free rays (mm2), and every blocked ray is charged to the
first structure it meets (e.g. ``ilium_left`` for a high iliac crest, the vertebra for a transverse
process, facet or lamina, ``root_L5_left`` for the ganglion).

A window is **usable** when it is at least :data:`USABLE_WINDOW_MM2` (2 mm2) and a needle of
:data:`NEEDLE_DIAMETER_MM` (1 mm) fits: some free centroid lies at least half that diameter inside the
triangle and (less half a sample spacing) away from every blocked centroid.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..anatomy import BY_LABEL
from .construct import TriangleInView
from .parts import ForamenParts, unit
from .volume import LabelVolume

#: smallest accessible window called usable (mm2)
USABLE_WINDOW_MM2 = 2.0
#: diameter of the needle that must fit in a usable window (mm)
NEEDLE_DIAMETER_MM = 1.0


@dataclass
class Window:
    """Accessible part of one triangle under one view.

    Attributes:
        area_mm2: area of the triangle in this view.
        window_mm2: accessible area (mm2).
        visible_fraction: share of the triangle a needle along the view reaches.
        inscribed_radius_mm: radius of the largest disc of the accessible region (approximate).
        usable: window >= 2 mm2 and a 1 mm needle fits.
        blocked_by: structure name -> share of the triangle it hides (first structure met).
        samples_image: (N, 2) sample points (image coordinates, mm, relative to ``M``).
        free: (N,) whether each sample is reachable.
        clearance_mm: (N,) for free samples, distance to the nearest edge or blocked sample (mm).
    """

    area_mm2: float
    window_mm2: float
    visible_fraction: float
    inscribed_radius_mm: float
    usable: bool
    blocked_by: dict[str, float]
    samples_image: np.ndarray = field(repr=False)
    free: np.ndarray = field(repr=False)
    clearance_mm: np.ndarray = field(repr=False)

    @property
    def blocking_structures(self) -> list[str]:
        """Structures hiding part of the triangle, most first."""
        return list(self.blocked_by)

    def to_dict(self) -> dict[str, Any]:
        return dict(
            area_mm2=round(self.area_mm2, 3),
            window_mm2=round(self.window_mm2, 3),
            visible_fraction=round(self.visible_fraction, 4),
            inscribed_radius_mm=round(self.inscribed_radius_mm, 3),
            usable=bool(self.usable),
            blocked_by={k: round(v, 4) for k, v in self.blocked_by.items()},
        )


def triangle_samples(q: np.ndarray, n: int) -> np.ndarray:
    """Centroids (n*n, 2) of the ``n x n`` congruent sub-triangles of the 2D triangle ``q`` (3, 2)."""
    pts = []
    for i in range(n):
        for j in range(n - i):
            pts.append(((i + 1 / 3) / n, (j + 1 / 3) / n))
            if i + j <= n - 2:
                pts.append(((i + 2 / 3) / n, (j + 2 / 3) / n))
    w = np.array(pts)
    w = np.column_stack([w, 1.0 - w.sum(axis=1)])
    return w @ np.asarray(q, dtype=float)


def _edge_distance(q: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Distance of points inside triangle ``q`` to its nearest edge."""
    out = np.full(len(pts), np.inf)
    for i in range(3):
        a, b = q[i], q[(i + 1) % 3]
        e = b - a
        n = np.array([-e[1], e[0]]) / max(np.linalg.norm(e), 1e-12)
        out = np.minimum(out, np.abs((pts - a) @ n))
    return out


class Occluders:
    """Label map reduced to what stops a needle: bone and neural tissue, minus the vertebral bodies.

    Args:
        vol: the canonical label map.
        frames: vertebra frames whose body prisms are not obstacles.
    """

    def __init__(self, vol: LabelVolume, frames: list[Any]) -> None:
        self.vol = vol
        src = np.asarray(vol.array)
        keep = np.zeros(int(src.max()) + 1 if src.size else 1, dtype=np.uint8)
        for v in vol.blocking_labels():
            keep[v] = v
        arr = keep[src]
        for f in frames:
            ijk = vol.ijk(f.name)
            if len(ijk) == 0:
                continue
            pts = vol.to_lps(ijk)
            loc = f.local(pts)
            cand = loc[:, 1] < f.y_wall + 0.5
            inside = np.zeros(len(pts), bool)
            inside[cand] = f.body.contains_xy(pts[cand], margin_mm=1.0)
            sel = ijk[inside]
            arr[sel[:, 2], sel[:, 1], sel[:, 0]] = 0
        nz = np.nonzero(arr)
        if nz[0].size:
            self.lo = np.array([nz[2].min(), nz[1].min(), nz[0].min()], dtype=float) - 1.0
            self.hi = np.array([nz[2].max(), nz[1].max(), nz[0].max()], dtype=float) + 1.0
        else:
            self.lo = np.zeros(3)
            self.hi = np.zeros(3)
        # one voxel of background around the grid, so every clipped index reads 0 outside
        self.padded = np.pad(arr, 1)
        self.flat = self.padded.ravel()
        self.shape_xyz = np.array(self.padded.shape[::-1], dtype=np.int64)
        self.step_mm = 0.5 * float(np.min(vol.spacing))

    @property
    def array(self) -> np.ndarray:
        """The occluder labels on the label map's grid (0 = free), shape (nz, ny, nx)."""
        return self.padded[1:-1, 1:-1, 1:-1]

    def _exit_distance(self, i0: np.ndarray, di: np.ndarray) -> np.ndarray:
        """Steps from each start (voxel index) along ``di`` (index per step) until it leaves the occluders' box."""
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (self.lo - i0) / di
            t2 = (self.hi - i0) / di
        tmax = np.where(np.abs(di) < 1e-12, np.inf, np.maximum(t1, t2))
        return np.clip(np.min(tmax, axis=1), 0.0, None)

    def first_hit(self, starts: np.ndarray, view: np.ndarray) -> np.ndarray:
        """Label of the first occluder met going from each start (N, 3) toward the skin; 0 when free."""
        starts = np.asarray(starts, dtype=float).reshape(-1, 3)
        if len(starts) == 0:
            return np.zeros(0, dtype=np.uint8)
        back = -unit(view)
        i0 = self.vol.to_index(starts)
        di = self.vol.lps_to_index @ back * self.step_mm
        n_exit = self._exit_distance(i0, di)
        n_steps = int(np.ceil(float(n_exit.max()))) + 1
        k = np.arange(n_steps, dtype=np.float32)
        pos = (i0.astype(np.float32)[:, None, :] + 1.0) + k[None, :, None] * di.astype(np.float32)[
            None, None, :
        ]
        idx = np.rint(pos).astype(np.int64)
        np.clip(idx, 0, self.shape_xyz - 1, out=idx)
        flat = (idx[..., 2] * self.shape_xyz[1] + idx[..., 1]) * self.shape_xyz[0] + idx[..., 0]
        lab = self.flat[flat]
        lab[k[None, :] > n_exit[:, None]] = 0
        first = np.argmax(lab > 0, axis=1)
        return lab[np.arange(len(starts)), first]


def window_area(tri: TriangleInView, occluders: Occluders, n: int) -> float:
    """Accessible window (mm2) of ``tri`` only, with ``n x n`` rays (the quick score of the view search)."""
    if tri.degenerate or tri.area_mm2 <= 0:
        return 0.0
    hits = occluders.first_hit(tri.to_lps(triangle_samples(tri.vertices_image, n)), tri.view)
    return float(tri.area_mm2 * np.mean(hits == 0))


def accessible_window(tri: TriangleInView, occluders: Occluders, n: int = 12) -> Window:
    """Accessible window of ``tri`` under its own view (see the module docstring)."""
    if tri.degenerate or tri.area_mm2 <= 0:
        return Window(
            area_mm2=0.0,
            window_mm2=0.0,
            visible_fraction=0.0,
            inscribed_radius_mm=0.0,
            usable=False,
            blocked_by={},
            samples_image=np.zeros((0, 2)),
            free=np.zeros(0, bool),
            clearance_mm=np.zeros(0),
        )
    q = tri.vertices_image
    samples = triangle_samples(q, n)
    starts = tri.to_lps(samples)
    hits = occluders.first_hit(starts, tri.view)
    free = hits == 0
    frac = float(free.mean())
    blocked: dict[str, float] = {}
    if not free.all():
        counts = Counter(int(h) for h in hits[~free])
        for value, k in counts.most_common():
            name = BY_LABEL[value].name if value in BY_LABEL else f"label {value}"
            blocked[name] = k / len(hits)
    # clearance of free samples: to the edges and to blocked samples
    spacing = float(np.sqrt(2.0 * tri.area_mm2) / n)  # typical distance between neighbouring samples
    clear = np.zeros(len(samples))
    if free.any():
        d_edge = _edge_distance(q, samples[free])
        if (~free).any():
            diff = samples[free][:, None, :] - samples[~free][None, :, :]
            d_block = np.sqrt((diff**2).sum(-1)).min(axis=1) - 0.5 * spacing
        else:
            d_block = np.full(int(free.sum()), np.inf)
        clear[free] = np.minimum(d_edge, d_block)
    radius = float(clear.max()) if free.any() else 0.0
    window = tri.area_mm2 * frac
    usable = bool(window >= USABLE_WINDOW_MM2 and radius >= 0.5 * NEEDLE_DIAMETER_MM)
    return Window(
        area_mm2=tri.area_mm2,
        window_mm2=window,
        visible_fraction=frac,
        inscribed_radius_mm=radius,
        usable=usable,
        blocked_by=blocked,
        samples_image=samples,
        free=free,
        clearance_mm=clear,
    )


def body_frames(parts_list: list[ForamenParts]) -> list[Any]:
    """The distinct vertebra frames of a list of foramina (their bodies are not obstacles)."""
    seen: dict[str, Any] = {}
    for p in parts_list:
        for f in (p.upper_frame, p.lower_frame):
            seen.setdefault(f.name, f)
    return list(seen.values())
