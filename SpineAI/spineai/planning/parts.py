"""The parts of a foramen that bound Kambin's and the safe triangle, derived from a canonical label map.

A canonical label map has one label per whole vertebra (body and posterior elements together). The
borders the triangles need (pedicle, superior articular process, vertebral body, endplates) are
therefore derived geometrically, per foramen ``U-Lo`` (``U`` the upper vertebra, ``Lo`` the lower one)
and side. Everything is in the LPS patient frame, in mm.

Vertebra frames
    * **Endplates** come from the disc: the points where voxels of the vertebra touch voxels of the disc
      ``disc_U_Lo`` (6-neighbourhood midpoints) are fitted with a plane (principal component analysis;
      contacts more than 1.5 voxels from a first fit, e.g. around a herniation, are dropped).
      Its unit normal, oriented cranially, is the vertebra's cranio-caudal **axis** ``a``: the normal of
      Lo's superior endplate for Lo, of U's inferior endplate for U.
    * The **left-right axis** ``x`` is the long principal axis of the two endplate footprints (a lumbar
      endplate is wider than deep and left-right symmetric), oriented to the patient's left (LPS +x) and
      made orthogonal to each vertebra's axis: first of the disc contacts, then, twice, of the two
      bodies' footprints (below).
    * The **posterior axis** is ``a x x`` (points from the body toward the canal).
    * Local coordinates of a vertebra: ``X`` along ``x`` and ``Y`` along the posterior axis, both from
      the centroid of its endplate footprint, and ``T = a . p`` (mm along the axis).

Vertebral body
    The **posterior wall** ``Y_wall`` is found in a 6 mm wide mid-sagittal band, 1..8 mm inside the
    body from the endplate: going posteriorly, the last vertebra voxel before the first gap of more
    than 1.5 mm (the spinal canal); the gap's length is the **canal depth**. The body is modelled as a
    **prism**: the footprint (vertebra voxels in a slab inside the endplate and at least 5 mm in front
    of the posterior wall, where the pedicles, which reach a few mm into the body and at L5 further
    lateral than the body just there, do not come; projected on the endplate plane) extruded along ``a``
    between the body's lowest and highest ``T`` (the endplate planes where a disc is labelled). Up to
    ``Y_wall - 0.3`` the same slab gives the body's **column**, the part of the vertebra a needle may
    pass (:mod:`spineai.planning.window`). The footprint slab is 0.6..8 mm inside
    the endplate for a lumbar vertebra (the pedicles' anterior tips, which reach into it, lie inside the
    body's outline) and 0.6..1.9 mm for the sacrum (its alae join the body 2..5 mm below the endplate).
    This keeps the pedicles, the sacral alae and the laminae (which share the vertebra's label) out of
    the body.

Pedicle of U (side s)
    U's voxels on that side (``s X > 0``) behind the posterior wall (``Y > Y_wall + 0.5``) and above U's
    inferior endplate, up to where another process begins: going backwards in 1 mm steps of ``Y``, the
    lowest ``T`` of U's voxels on that side descends and rises again smoothly along the pedicle's lower
    margin; the first step where it drops by more than 1.5 mm is the front of a process hanging lower
    behind the pedicle (inferior articular process, lamina), and the pedicle ends there, or at
    ``Y_wall + 0.55 x canal depth`` if that comes first (a lamina whose lower border lies just below the
    pedicle's shows no drop; the pedicle's lower margin is nearly level along its length, so the cut
    costs little). Its **lower margin** in a direction ``-up`` is the lowest of these voxels along
    ``up``.

Superior articular process of Lo (side s)
    Lo's voxels on that side behind its posterior wall and more than 1 mm above its superior endplate
    plane (the only part of a lumbar vertebra or of the sacrum that rises above its superior endplate).

Traversing root
    Voxels of ``root_Lo_<side>`` above Lo's superior endplate plane.

Exiting root: straight foraminal segment
    Voxels of ``root_U_<side>`` are cut into 1 mm slabs across the left-right axis; the centroid of each
    slab traces the root's centre line. The straight foraminal segment is the longest run of
    consecutive slabs whose centroids all lie within 0.45 mm of their fitted line (the ganglion and the
    turn under the pedicle end it medially, the bend of the extraforaminal course laterally); the longest such run covering the slabs 1..3 mm lateral of the body
    border is kept. The straight run gives the segment's **axis**, its end points
    ``A`` (medial) and ``B`` (lateral) and its **radius** from the median voxel volume ``V`` of its slabs
    (``r = sqrt(V |d . x| / (pi * slab width))``: a cylinder between two parallel planes).

Supports of voxel sets use voxel centres (a labelled voxel's centre lies inside its structure),
corrected for the grid by :func:`voxel_support`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..anatomy import disc_name, root_name
from .volume import LabelVolume

SIDE_SIGN = {"left": 1.0, "right": -1.0}
#: slabs of the exiting root's centre line are this thick (mm; times the voxel size above 1 mm)
ROOT_SLAB_MM = 1.0
#: a slab's centroid more than this far from the fitted line ends the straight foraminal segment (mm; times
#: the voxel size above 1 mm)
ROOT_STRAIGHT_TOL_MM = 0.45
#: behind the pedicle, a lower margin dropping by more than this (mm per mm backwards) is another process
PEDICLE_DROP_MM = 1.5
#: a support direction within this angle of a grid axis meets a border parallel to the grid (degrees)
ALIGNED_DEG = 8.0
#: share of half a voxel added to the support of an oblique or curved border (see :func:`voxel_support`)
SUPPORT_FRACTION = 0.3
#: the pedicle is taken no further behind the posterior wall than this fraction of the canal depth
PEDICLE_CANAL_FRACTION = 0.55
#: thickness of the slab (from the endplate) whose voxels outline a lumbar body's footprint (mm)
BODY_SLAB_MM = 8.0
#: the same for the sacrum, whose alae start 2..5 mm below the S1 endplate (mm)
SACRUM_SLAB_MM = 1.9
#: the body's border is taken from voxels at least this far in front of its posterior wall (mm): the
#: pedicles reach a few mm into the body and, at L5, further lateral than the body just there
BODY_WALL_MARGIN_MM = 5.0


class PartError(Exception):
    """A part could not be derived; ``status`` names the failure, the message says what is missing."""

    def __init__(self, status: str, message: str) -> None:
        self.status = status
        super().__init__(message)


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to unit length."""
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def voxel_support(
    points: np.ndarray, u: np.ndarray, voxel_axes: np.ndarray, fraction: float | None = None
) -> float:
    """``max(u . p)`` over voxel centres ``points`` (N, 3), corrected for the voxel grid (mm).

    A labelled voxel's centre lies inside its structure, so the border lies beyond the outermost centre:

    * when ``u`` is within :data:`ALIGNED_DEG` of a grid axis (a border parallel to the grid, e.g. the
      lateral face of a vertebra rotated only about the left-right axis), the centres lie in layers one
      grid step ``D`` apart along ``u``; the outermost layer spreads over a width ``w``, and the border lies
      anywhere in the remaining ``D - w`` beyond it: half of that is added (the unbiased guess);
    * otherwise (an oblique or curved border, where the outermost centres come closer to it) ``fraction``
      of half the voxel's extent along ``u`` is added: :data:`SUPPORT_FRACTION` by default, the value
      phantoms at 1 mm call for on small parts; 0 for the large, densely sampled footprint of a body.

    Args:
        points: voxel centres (N, 3), LPS mm.
        u: LPS direction.
        voxel_axes: (3, 3) index -> LPS matrix of the grid (columns: one step along each index axis).
        fraction: share of half a voxel added on an oblique border (default :data:`SUPPORT_FRACTION`).
    """
    u = np.asarray(u, dtype=float)
    vals = np.asarray(points, dtype=float) @ u
    if vals.size == 0:
        return -np.inf
    v0 = float(vals.max())
    steps = np.abs(u @ voxel_axes)  # projection of one step along each grid axis
    lengths = np.linalg.norm(voxel_axes, axis=0) * max(float(np.linalg.norm(u)), 1e-12)
    i = int(np.argmax(steps / lengths))
    if steps[i] / lengths[i] >= np.cos(np.radians(ALIGNED_DEG)):
        d = float(steps[i])
        top = np.sort(vals[vals >= v0 - 1.5 * d])[::-1]
        breaks = np.nonzero(-np.diff(top) >= 0.5 * d)[0]
        if breaks.size:
            width = v0 - float(top[breaks[0]])
            return v0 + 0.5 * max(d - width, 0.0)
    frac = SUPPORT_FRACTION if fraction is None else fraction
    return v0 + frac * 0.5 * float(np.sum(steps))


@dataclass
class Endplate:
    """A plane fitted to the contact between a vertebra and a disc.

    Attributes:
        normal: unit LPS normal, oriented cranially.
        offset: ``normal . p`` of the plane (mm).
        centre: centroid of the contact points (LPS mm).
        points: contact points (N, 3), LPS mm.
        rms_mm: root-mean-square distance of the points to the plane.
    """

    normal: np.ndarray
    offset: float
    centre: np.ndarray
    points: np.ndarray
    rms_mm: float


@dataclass
class BodyPrism:
    """A vertebral body as its endplate footprint extruded along the vertebra's axis.

    Attributes:
        axis: unit cranio-caudal axis ``a`` (LPS).
        footprint: footprint points (N, 3) projected on the plane ``a . p = 0`` (LPS mm), at least 5 mm in
            front of the posterior wall (the border used for supports).
        column: the same up to the posterior wall (the region that is not an obstacle to a needle).
        spacing_mm, voxel_axes: the grid (smallest voxel size; index -> LPS matrix), for supports.
        t_low, t_high: lowest and highest ``a . p`` of the body (mm).
    """

    axis: np.ndarray
    footprint: np.ndarray
    t_low: float
    t_high: float
    column: np.ndarray | None = None
    spacing_mm: float = 1.0
    voxel_axes: np.ndarray = field(default_factory=lambda: np.eye(3))

    def support(self, u: np.ndarray) -> float:
        """``max(u . p)`` over the prism (mm) for an LPS direction ``u``."""
        u = np.asarray(u, dtype=float)
        ua = float(np.dot(u, self.axis))
        u_perp = u - ua * self.axis
        if np.linalg.norm(u_perp) < 1e-9:
            return max(ua * self.t_low, ua * self.t_high)
        s = voxel_support(self.footprint, u_perp, self.voxel_axes, fraction=0.0)
        return s + max(ua * self.t_low, ua * self.t_high)

    def contains_xy(self, points: np.ndarray, margin_mm: float = 1.0) -> np.ndarray:
        """Whether points (N, 3) lie in the footprint's column (within ``margin_mm``), ignoring height."""
        from scipy.ndimage import binary_dilation, binary_fill_holes

        e1 = unit(
            np.cross(self.axis, [1.0, 0.0, 0.0])
            if abs(self.axis[0]) < 0.9
            else np.cross(self.axis, [0, 1, 0])
        )
        e2 = np.cross(self.axis, e1)
        cell = 0.5
        fp = self.column if self.column is not None and len(self.column) else self.footprint
        f2 = np.column_stack([fp @ e1, fp @ e2])
        lo = f2.min(0) - margin_mm - 2 * cell
        shape = np.ceil((f2.max(0) + margin_mm + 2 * cell - lo) / cell).astype(int) + 1
        grid = np.zeros(shape, bool)
        ij = np.rint((f2 - lo) / cell).astype(int)
        grid[ij[:, 0], ij[:, 1]] = True
        # footprint voxels are up to a voxel apart: close the gaps, fill, then grow by the margin
        gap = int(np.ceil(1.0 / cell))
        grid = binary_dilation(grid, iterations=gap)
        grid = binary_fill_holes(grid)
        extra = int(np.ceil(margin_mm / cell)) - gap
        if extra > 0:
            grid = binary_dilation(grid, iterations=extra)
        p2 = np.column_stack([points @ e1, points @ e2])
        q = np.rint((p2 - lo) / cell).astype(int)
        ok = np.all((q >= 0) & (q < shape), axis=1)
        out = np.zeros(len(points), bool)
        out[ok] = grid[q[ok, 0], q[ok, 1]]
        return out


@dataclass
class VertebraFrame:
    """Local frame of one vertebra (all LPS, mm).

    Attributes:
        name: vertebra (``"L5"``).
        axis: unit cranio-caudal axis (normal of the endplate used).
        lateral: unit left-right axis toward the patient's left, orthogonal to ``axis``.
        posterior: unit antero-posterior axis toward the back, ``axis x lateral``.
        origin: centroid of the endplate footprint.
        y_wall: posterior wall of the body, ``Y`` coordinate (mm from ``origin``).
        canal_depth: antero-posterior depth of the canal in the mid-sagittal band (mm; 0 if not found).
        body: the body prism.
    """

    name: str
    axis: np.ndarray
    lateral: np.ndarray
    posterior: np.ndarray
    origin: np.ndarray
    y_wall: float
    canal_depth: float
    body: BodyPrism

    def local(self, points: np.ndarray) -> np.ndarray:
        """LPS points (N, 3) -> local (X, Y, T): left-right and posterior from the origin, ``a . p``."""
        d = np.asarray(points, dtype=float) - self.origin
        return np.column_stack([d @ self.lateral, d @ self.posterior, np.asarray(points) @ self.axis])


@dataclass
class RootSegment:
    """Straight foraminal segment of the exiting root (LPS, mm).

    Attributes:
        a, b: medial (``A``) and lateral (``B``) end points on the axis.
        direction: unit axis direction from ``A`` to ``B``.
        radius: radius of the root (mm).
        n_voxels: voxels in the straight run.
        straightness_mm: RMS distance of the slab centroids to the axis.
    """

    a: np.ndarray
    b: np.ndarray
    direction: np.ndarray
    radius: float
    n_voxels: int
    straightness_mm: float

    @property
    def midpoint(self) -> np.ndarray:
        return 0.5 * (self.a + self.b)

    @property
    def length(self) -> float:
        return float(np.linalg.norm(self.b - self.a))


@dataclass
class ForamenParts:
    """Everything the triangle construction of one foramen needs, derived from the label map (LPS mm).

    ``axis``/``lateral``/``posterior`` are the lower vertebra's (Lo) axes; ``lateral_side`` is the
    left-right axis oriented toward this side.
    """

    level: str
    side: str
    upper: str
    lower: str
    upper_frame: VertebraFrame
    lower_frame: VertebraFrame
    upper_pedicle: np.ndarray
    lower_sap: np.ndarray
    traversing_above: np.ndarray
    exiting: RootSegment
    exiting_root: str
    traversing_root: str
    lower_endplate_offset: float
    voxel_axes: np.ndarray = field(default_factory=lambda: np.eye(3))
    spacing_mm: float = 1.0
    notes: list[str] = field(default_factory=list)

    def voxel_half_extent(self, u: np.ndarray) -> float:
        """Half a voxel's extent along the LPS direction ``u`` (mm)."""
        return float(0.5 * np.sum(np.abs(np.asarray(u, dtype=float) @ self.voxel_axes)))

    @property
    def axis(self) -> np.ndarray:
        return self.lower_frame.axis

    @property
    def posterior(self) -> np.ndarray:
        return self.lower_frame.posterior

    @property
    def lateral_side(self) -> np.ndarray:
        return SIDE_SIGN[self.side] * self.lower_frame.lateral


# ----------------------------------------------------------------------------------------- helpers
def fit_plane(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal axes of a point cloud: ``(centroid, axes (3, 3) rows by decreasing variance, variances)``."""
    c = points.mean(axis=0)
    q = points - c
    cov = q.T @ q / max(len(points) - 1, 1)
    w, v = np.linalg.eigh(cov)
    order = np.argsort(w)[::-1]
    return c, v[:, order].T, w[order]


def endplate(vol: LabelVolume, vertebra: str, disc: str, vertebra_is_below: bool) -> Endplate:
    """Plane of the contact between ``vertebra`` and ``disc``; normal oriented cranially.

    Raises:
        PartError: fewer than 30 contact points (the vertebra and the disc do not touch).
    """
    pts, steps = vol.interface(vertebra, disc)
    if len(pts) < 30:
        raise PartError(
            "missing_structures",
            f"{vertebra} and {disc} barely touch ({len(pts)} contact voxels), so the endplate of "
            f"{vertebra} cannot be found",
        )
    c, axes, var = fit_plane(pts)
    n = axes[2]
    mean_step = steps.mean(axis=0)
    # from the vertebra into the disc: cranial for the lower vertebra, caudal for the upper one
    if np.dot(n, mean_step) < 0:
        n = -n
    if not vertebra_is_below:
        n = -n
    # drop contacts far from the plane (around a herniation, or the rim); a plane nearly parallel to the
    # grid is a staircase of whole voxels, so the band must keep the steps
    d = (pts - c) @ n
    keep = np.abs(d - np.median(d)) <= 1.5 * float(np.max(vol.spacing))
    if np.count_nonzero(keep) < 30:
        keep = np.ones(len(pts), bool)
    c, axes, var = fit_plane(pts[keep])
    n2 = axes[2] if np.dot(axes[2], n) > 0 else -axes[2]
    rms = float(np.sqrt(np.mean(((pts[keep] - c) @ n2) ** 2)))
    return Endplate(normal=n2, offset=float(c @ n2), centre=c, points=pts[keep], rms_mm=rms)


def _orthonormal_lateral(x: np.ndarray, axis: np.ndarray) -> np.ndarray:
    lat = x - np.dot(x, axis) * axis
    lat = unit(lat)
    return lat if lat[0] >= 0 else -lat


def left_right_axis(*clouds: np.ndarray) -> np.ndarray:
    """Patient left-right axis (toward LPS +x): the long principal axis of endplate footprints (N, 3)."""
    acc = np.zeros(3)
    for pts in clouds:
        if len(pts) < 10:
            continue
        _, axes, var = fit_plane(pts)
        major = axes[0] if axes[0][0] >= 0 else -axes[0]
        acc += major * max(var[0] - var[1], 1e-6)  # weight by how elongated the footprint is
    if np.linalg.norm(acc) < 1e-9:
        return np.array([1.0, 0.0, 0.0])
    return unit(acc)


def _posterior_wall(local: np.ndarray, t_lo: float, t_hi: float, step_mm: float) -> tuple[float, float]:
    """``(Y_wall, canal_depth)`` from vertebra voxels in local coordinates (X, Y, T).

    The mid-sagittal band ``|X| < 3`` mm between ``t_lo`` and ``t_hi`` is scanned from anterior to
    posterior; the first gap longer than 1.5 mm after the body is the canal.
    """
    band = local[(np.abs(local[:, 0]) < 3.0) & (local[:, 2] > t_lo) & (local[:, 2] < t_hi)]
    if len(band) < 5:
        return float("nan"), 0.0
    ys = np.sort(band[:, 1])
    gaps = np.diff(ys)
    min_gap = max(1.5, 1.6 * step_mm)
    big = np.nonzero(gaps > min_gap)[0]
    if big.size == 0:
        return float(ys[-1] + 0.5 * step_mm), 0.0
    i = int(big[0])
    return float(ys[i] + 0.5 * step_mm), float(gaps[i] - step_mm)


def vertebra_frame(
    vol: LabelVolume,
    name: str,
    plate: Endplate,
    lateral: np.ndarray,
    plate_is_superior: bool,
    other_plate: Endplate | None = None,
) -> VertebraFrame:
    """Frame, posterior wall and body prism of vertebra ``name`` from one of its endplates.

    Args:
        plate: the endplate (contact with a disc) that defines the axis.
        lateral: patient left-right axis (any length; made orthogonal to the axis).
        plate_is_superior: whether ``plate`` is the vertebra's superior endplate.
        other_plate: its other endplate, when that disc is labelled (sets the body's other end).

    Raises:
        PartError: when the vertebra has no body in front of a canal.
    """
    axis = plate.normal
    lat = _orthonormal_lateral(lateral, axis)
    post = unit(np.cross(axis, lat))
    pts = vol.points(name)
    frame = VertebraFrame(
        name=name,
        axis=axis,
        lateral=lat,
        posterior=post,
        origin=plate.centre,
        y_wall=0.0,
        canal_depth=0.0,
        body=None,
    )  # type: ignore[arg-type]
    loc = frame.local(pts)
    t_e = plate.offset
    step = float(np.max(vol.spacing))
    inward = -1.0 if plate_is_superior else 1.0  # direction of the body's interior from the endplate
    t_lo, t_hi = sorted((t_e + inward * 1.0, t_e + inward * 8.0))
    y_wall, canal = _posterior_wall(loc, t_lo, t_hi, float(np.min(vol.spacing)))
    if not np.isfinite(y_wall):
        raise PartError("missing_structures", f"{name} has no vertebral body next to its endplate")
    frame.y_wall, frame.canal_depth = y_wall, canal
    # footprint: a slab inside the endplate, in front of the posterior wall (thin for the sacrum, whose
    # alae join the body a few mm below its endplate)
    depth = SACRUM_SLAB_MM if name == "S1" else BODY_SLAB_MM
    s_lo, s_hi = sorted((t_e + inward * 0.6, t_e + inward * max(depth, 1.5 * step)))
    slab = (loc[:, 2] > s_lo) & (loc[:, 2] < s_hi)
    column = pts[slab & (loc[:, 1] < y_wall - 0.3)]
    foot = pts[slab & (loc[:, 1] < y_wall - BODY_WALL_MARGIN_MM)]
    if len(foot) < 20:
        raise PartError(
            "missing_structures", f"{name}: too few voxels under its endplate to outline the body"
        )
    foot = foot - np.outer(foot @ axis, axis)
    column = column - np.outer(column @ axis, axis)
    # height of the body: the labelled endplates, else the extent of the column in front of the wall
    in_front = loc[:, 1] < y_wall - 1.0
    prism = BodyPrism(
        axis=axis,
        footprint=foot,
        t_low=0.0,
        t_high=0.0,
        column=column,
        spacing_mm=float(np.min(vol.spacing)),
        voxel_axes=vol.index_to_lps.copy(),
    )
    col = prism.contains_xy(pts[in_front], margin_mm=0.5)
    t_col = loc[in_front][col, 2]
    if plate_is_superior:
        t_high = t_e
        t_low = float(t_col.min()) if t_col.size else t_e - 25.0
        if other_plate is not None:
            t_low = float(np.dot(other_plate.centre, axis))
    else:
        t_low = t_e
        t_high = float(t_col.max()) if t_col.size else t_e + 25.0
        if other_plate is not None:
            t_high = float(np.dot(other_plate.centre, axis))
    prism.t_low, prism.t_high = t_low, t_high
    frame.body = prism
    return frame


# ------------------------------------------------------------------------------------------ pedicle
def pedicle_points(vol: LabelVolume, frame: VertebraFrame, side: str, t_inferior: float) -> np.ndarray:
    """Voxel centres (N, 3) of U's pedicle on ``side`` (see module docstring).

    Args:
        frame: U's frame.
        side: ``"left"`` or ``"right"``.
        t_inferior: ``a . p`` of U's inferior endplate (mm).
    """
    sx = SIDE_SIGN[side]
    pts = vol.points(frame.name)
    loc = frame.local(pts)
    step = max(1.0, float(np.min(vol.spacing)))
    y0 = frame.y_wall + 0.5
    y_end = frame.y_wall + max(frame.canal_depth, 12.0) + 6.0
    on_side = sx * loc[:, 0] > 0.0
    cand = on_side & (loc[:, 1] > y0) & (loc[:, 1] < y_end)
    if not np.any(cand):
        return pts[:0]
    b = np.floor((loc[cand, 1] - y0) / step).astype(int)
    t = loc[cand, 2]
    n_bins = int(b.max()) + 1
    lowest = np.full(n_bins, np.inf)
    np.minimum.at(lowest, b, t)
    # walk backwards from the body: the pedicle's lower margin descends and rises again smoothly; a sudden
    # drop means another process (inferior articular process, lamina) hangs lower behind it
    y_cut = y0 + n_bins * step
    prev, seen = None, 0
    for i in range(n_bins):
        if not np.isfinite(lowest[i]):
            continue
        if prev is not None and seen >= 2 and lowest[i] < prev - PEDICLE_DROP_MM * step:
            y_cut = y0 + i * step
            break
        prev, seen = lowest[i], seen + 1
    if frame.canal_depth > 4.0:
        y_cut = min(y_cut, frame.y_wall + PEDICLE_CANAL_FRACTION * frame.canal_depth)
    sel = on_side & (loc[:, 1] > y0) & (loc[:, 1] < y_cut) & (loc[:, 2] > t_inferior - 1.0)
    return pts[sel]


def sap_points(vol: LabelVolume, frame: VertebraFrame, side: str, t_superior: float) -> np.ndarray:
    """Voxel centres (N, 3) of Lo's superior articular process on ``side``."""
    sx = SIDE_SIGN[side]
    pts = vol.points(frame.name)
    loc = frame.local(pts)
    sel = (sx * loc[:, 0] > 0.0) & (loc[:, 1] > frame.y_wall - 1.0) & (loc[:, 2] > t_superior + 1.0)
    return pts[sel]


# --------------------------------------------------------------------------------------- exiting root
def _line_fit(points: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    w = np.ones(len(points)) if weights is None else np.asarray(weights, float)
    c = (points * w[:, None]).sum(0) / w.sum()
    q = (points - c) * np.sqrt(w)[:, None]
    _, _, vt = np.linalg.svd(q, full_matrices=False)
    return c, vt[0]


def _dist_to_line(p: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    q = p - c
    return np.linalg.norm(q - np.outer(q @ d, d), axis=1)


def exiting_segment(vol: LabelVolume, root: str, lateral_side: np.ndarray, s_body: float) -> RootSegment:
    """The straight foraminal segment of the exiting root ``root`` (see module docstring).

    Args:
        lateral_side: unit left-right axis toward the root's side.
        s_body: ``lateral_side . p`` of the upper vertebral body's lateral border (mm).

    Raises:
        PartError: ``root_not_in_foramen`` when the root does not run laterally past the body's border.
    """
    pts = vol.points(root)
    if len(pts) == 0:
        raise PartError("missing_structures", f"{root} is not labelled")
    s = pts @ lateral_side - s_body
    if np.count_nonzero(s > 1.0) < 10 or s.max() < 3.0:
        raise PartError(
            "root_not_in_foramen",
            f"{root} does not reach the foramen: it ends {max(float(s.max()), 0.0):.1f} mm lateral of "
            "the border of the vertebral body above (a root must leave through the foramen)",
        )
    coarse = max(1.0, float(np.max(vol.spacing)))
    w = ROOT_SLAB_MM * coarse
    lo_bin = int(np.floor(max(s.min(), -8.0) / w))
    hi_bin = int(np.ceil(s.max() / w))
    bins = np.arange(lo_bin, hi_bin)
    cents, counts, idx_of = [], [], []
    for b in bins:
        m = (s >= b * w) & (s < (b + 1) * w)
        n = int(np.count_nonzero(m))
        counts.append(n)
        cents.append(pts[m].mean(0) if n else np.full(3, np.nan))
        idx_of.append(m)
    cents = np.array(cents)
    counts = np.array(counts)
    valid = counts >= 3
    # the longest run of consecutive slabs whose centroids lie on one line and that covers the slabs
    # 1..3 mm lateral of the body border (inside the foraminal segment; the extraforaminal course is
    # straight too, but starts further out)
    seed = [i for i, b in enumerate(bins) if 1.0 <= (b + 0.5) * w <= 1.0 + 2.0 * coarse]
    if not seed or not all(valid[i] for i in seed):
        raise PartError(
            "root_not_in_foramen",
            f"{root}: the root is interrupted just lateral of the pedicle (no continuous foraminal course)",
        )
    best: tuple[float, float, int, int] | None = None
    tol = ROOT_STRAIGHT_TOL_MM * coarse
    for i in range(min(seed), -1, -1):
        if not valid[i]:
            break
        for j in range(max(seed), len(bins)):
            if not valid[j]:
                break
            if j - i < 2:
                continue
            run = cents[i : j + 1]
            c, d = _line_fit(run, counts[i : j + 1])
            dev = _dist_to_line(run, c, d)
            if dev.max() > tol:
                if j > max(seed) + 1:
                    break
                continue
            key = (j - i, -float(np.sqrt(np.mean(dev**2))), i, j)
            if best is None or key[:2] > best[:2]:
                best = key
    if best is None:
        raise PartError("root_not_in_foramen", f"{root}: no straight course found lateral of the pedicle")
    lo_i, hi_i = best[2], best[3]
    c, d = _line_fit(cents[lo_i : hi_i + 1], counts[lo_i : hi_i + 1])
    if np.dot(d, lateral_side) < 0:
        d = -d
    run_mask = np.zeros(len(pts), bool)
    for i in range(lo_i, hi_i + 1):
        run_mask |= idx_of[i]
    n_run = int(np.count_nonzero(run_mask))
    dx = abs(float(np.dot(d, lateral_side)))
    # per slab: voxel volume = pi r^2 w / |d . x|; the median slab ignores a ganglion or bend at the ends
    per_slab = float(np.median(counts[lo_i : hi_i + 1]))
    radius = float(np.sqrt(per_slab * vol.voxel_volume_mm3 * dx / (np.pi * w)))
    # end points: where the run's slab planes cut the axis
    s_a = bins[lo_i] * w + s_body
    s_b = (bins[hi_i] + 1) * w + s_body
    t_a = (s_a - np.dot(c, lateral_side)) / np.dot(d, lateral_side)
    t_b = (s_b - np.dot(c, lateral_side)) / np.dot(d, lateral_side)
    run = cents[lo_i : hi_i + 1]
    rms = float(np.sqrt(np.mean(_dist_to_line(run, c, d) ** 2)))
    return RootSegment(
        a=c + t_a * d, b=c + t_b * d, direction=d, radius=radius, n_voxels=n_run, straightness_mm=rms
    )


# ------------------------------------------------------------------------------------------- foramen
def required_structures(upper: str, lower: str, side: str) -> list[str]:
    """Structures a foramen's triangles need."""
    return [upper, lower, disc_name(upper, lower), root_name(upper, side), root_name(lower, side)]


def foramen_parts(
    vol: LabelVolume,
    upper: str,
    lower: str,
    side: str,
    disc_above: str | None = None,
    cache: dict | None = None,
) -> ForamenParts:
    """Derive the parts of foramen ``upper-lower`` on ``side`` (see the module docstring).

    Args:
        vol: the canonical label map.
        upper, lower: vertebra names (``"L5"``, ``"S1"``).
        side: ``"left"`` or ``"right"``.
        disc_above: name of the disc above ``upper`` when labelled (gives U's superior endplate).
        cache: dictionary shared between the sides of one level (endplates and frames are reused).

    Raises:
        PartError: with ``status`` ``missing_structures`` or ``root_not_in_foramen``.
    """
    cache = {} if cache is None else cache
    level = f"{upper}-{lower}"
    missing = [n for n in required_structures(upper, lower, side) if vol.count(n) == 0]
    if missing:
        raise PartError("missing_structures", f"{level} {side}: the label map has no {', '.join(missing)}")
    disc = disc_name(upper, lower)
    key = ("frames", upper, lower)
    if key not in cache:
        lo_plate = endplate(vol, lower, disc, vertebra_is_below=True)
        up_plate = endplate(vol, upper, disc, vertebra_is_below=False)
        above = None
        if disc_above and vol.count(disc_above) > 0:
            try:
                above = endplate(vol, upper, disc_above, vertebra_is_below=True)
            except PartError:
                above = None
        # left-right axis: first from the disc contacts, then from the two bodies' footprints
        x = left_right_axis(lo_plate.points, up_plate.points)
        for _ in range(2):
            lo_frame = vertebra_frame(vol, lower, lo_plate, x, plate_is_superior=True)
            up_frame = vertebra_frame(vol, upper, up_plate, x, plate_is_superior=False, other_plate=above)
            x = left_right_axis(lo_frame.body.column, up_frame.body.column)
        cache[key] = (lo_plate, up_plate, lo_frame, up_frame)
    lo_plate, up_plate, lo_frame, up_frame = cache[key]
    ped = pedicle_points(vol, up_frame, side, up_plate.offset)
    if len(ped) < 5:
        raise PartError("missing_structures", f"{level} {side}: no pedicle of {upper} found behind its body")
    t_e = lo_plate.offset
    sap = sap_points(vol, lo_frame, side, t_e)
    trav = vol.points(root_name(lower, side))
    trav_above = trav[trav @ lo_frame.axis > t_e]
    lateral_side = SIDE_SIGN[side] * lo_frame.lateral
    s_body = up_frame.body.support(lateral_side)
    seg = exiting_segment(vol, root_name(upper, side), lateral_side, s_body)
    notes = []
    if len(sap) == 0:
        notes.append(f"no superior articular process of {lower} found above its endplate on the {side}")
    if len(trav_above) == 0:
        notes.append(f"{root_name(lower, side)} has no voxels above the superior endplate of {lower}")
    return ForamenParts(
        level=level,
        side=side,
        upper=upper,
        lower=lower,
        upper_frame=up_frame,
        lower_frame=lo_frame,
        upper_pedicle=ped,
        lower_sap=sap,
        traversing_above=trav_above,
        exiting=seg,
        exiting_root=root_name(upper, side),
        traversing_root=root_name(lower, side),
        lower_endplate_offset=t_e,
        voxel_axes=vol.index_to_lps.copy(),
        spacing_mm=float(np.min(vol.spacing)),
        notes=notes,
    )
