"""Opt-in anatomy of the phantom's level variants: ribs of T12, and Castellvi transitional processes.

Everything here is built in the phantom's body frame (LPS-aligned axes, mm; see
:mod:`spineai.phantom.geometry`) and only when the parameters ask for it (``thoracic_levels``,
``transitional``): a default case never calls these functions, so its images stay as they were.

Ribs
    Each thoracic vertebra modelled (``T12``) carries a rib on each side: a chain of capsules (radius
    4 mm tapering to 3 mm) from a head 2.5 mm lateral of the vertebral body at the level of the pedicle
    (the costovertebral joint space), backwards and laterally past the tip of the transverse process,
    then laterally, forwards and downwards (the 12th rib's course). Ribs are bone in the CT and carry no
    label (there is no canonical rib structure), as in VerSe-style vertebra masks: the last rib-bearing
    vertebra is recognised from the CT.

Castellvi transitional vertebra (the lowest lumbar vertebra ``V``, per side)
    * **wing**: the lateral part of the transverse process (lateral of the pedicle, over the process's
      antero-posterior thickness) hangs down from the top of the process: a rounded box in ``V``'s frame.
      Type I: its craniocaudal height is ``tp_height_mm`` (>= 19 mm), shortened (not below 20.5 mm) where
      needed to stay 10 mm clear of the sacrum.
    * Types II and III add a **boss** on the sacrum (part of ``S1``) under the wing, from inside the
      sacrum up to the joint: the **joint level** lies 40 % of the way from the sacrum's top under the
      wing's footprint up to the top of the process, or lower, so that the process is at least 22 mm
      high. Type II: wing and boss end ``joint_gap_mm`` apart
      (a pseudo-joint); type III: they interpenetrate by ``fusion_overlap_mm`` (bony fusion; the sacrum
      is painted after ``V``, so the labels touch with no gap).
    * The wing and boss are moved backwards (0.5 mm steps) until they clear every nerve root by 1 mm.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..anatomy import SIDES
from .geometry import RootGeom, Structure, VertebraGeom, side_sign
from .params import PhantomParams
from .sdf import Capsule, Frame, Primitive, RoundBox

#: rib radius at the head and at the lateral end (mm)
RIB_RADIUS_MM = (4.0, 3.0)
#: gap between the rib head and the vertebral body (mm)
RIB_HEAD_GAP_MM = 2.5
#: clearance kept between the transitional parts and any nerve root (mm)
ROOT_CLEARANCE_MM = 1.0
#: depth of the boss inside the sacrum (mm)
BOSS_ANCHOR_MM = 8.0
#: fraction of the way from the sacrum up to the top of the process at which the joint lies
JOINT_FRACTION = 0.4
#: smallest craniocaudal height of a type II / III process (mm); Castellvi's dysplasia threshold is 19 mm
MIN_ENLARGED_MM = 22.0
#: a type I process is shortened (down to MIN_TYPE_I_MM) until it is this far from the sacrum (mm)
TYPE_I_CLEARANCE_MM = 10.0
MIN_TYPE_I_MM = 20.5


# ============================================================================================= ribs
def _rib(v: VertebraGeom, side: str) -> Structure:
    sx = side_sign(side)
    zc = float(v.frame.to_local(v.pedicles[side].frame.origin)[2])
    r0, r1 = RIB_RADIUS_MM
    xs = np.array([v.a + r0 + RIB_HEAD_GAP_MM, v.a + 24.0, v.a + 50.0, v.a + 72.0, v.a + 84.0])
    ys = v.y_wall + np.array([-5.0, 12.0, 10.0, -14.0, -45.0])
    zs = zc + np.array([0.0, -3.0, -22.0, -48.0, -70.0])
    pts = [v.local(sx * x, y, z) for x, y, z in zip(xs, ys, zs, strict=True)]
    radii = np.linspace(r0, r1, len(pts) - 1)
    caps: list[Primitive] = [
        Capsule(pts[i], pts[i + 1], float(radii[i]), part=f"rib_{v.name}_{side}") for i in range(len(pts) - 1)
    ]
    return Structure(f"rib_{v.name}_{side}", 0, "bone", caps)


def rib_structures(params: PhantomParams, verts: dict[str, VertebraGeom]) -> list[Structure]:
    """Unlabelled rib structures of every thoracic vertebra modelled (empty for a default case)."""
    return [_rib(verts[lv], side) for lv in params.thoracic_levels for side in SIDES]


# ======================================================================================= castellvi
def _union_sdf(parts: list[Primitive], holes: list[Primitive], pts: np.ndarray) -> np.ndarray:
    d = np.min([p.sdf_points(pts) for p in parts], axis=0)
    for h in holes:
        d = np.maximum(d, -h.sdf_points(pts))
    return d


def _inside_points(prim: RoundBox, step: float = 0.5) -> np.ndarray:
    """Body-frame points on a grid inside a rounded box (including its surface layer)."""
    h = np.asarray(prim.half, dtype=float)
    axes = [np.arange(-h[i], h[i] + 1e-9, step) for i in range(3)]
    g = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    pts = prim.frame.to_parent(g)
    return pts[prim.sdf_points(pts) <= 0.0]


def _local_extent(v: VertebraGeom, prim: Primitive, axis: int, sign: float) -> float:
    """Support of ``prim`` along ``sign`` x local axis ``axis`` of ``v``, in ``v``'s local coordinates."""
    u = sign * v.frame.axis(axis)
    return sign * (prim.support(u) - float(np.dot(u, v.frame.origin)))


def _box(
    v: VertebraGeom,
    x_lo: float,
    x_hi: float,
    y_lo: float,
    y_hi: float,
    z_lo: float,
    z_hi: float,
    side: str,
    part: str,
) -> RoundBox:
    sx = side_sign(side)
    centre = v.local(sx * 0.5 * (x_lo + x_hi), 0.5 * (y_lo + y_hi), 0.5 * (z_lo + z_hi))
    half = (0.5 * (x_hi - x_lo), 0.5 * (y_hi - y_lo), 0.5 * (z_hi - z_lo))
    return RoundBox(Frame(centre, v.frame.rotation), half, min(2.0, 0.45 * min(half)), part=part)


def _sacrum_top(
    v: VertebraGeom,
    side: str,
    x_rng: tuple[float, float],
    y_rng: tuple[float, float],
    z_from: float,
    s1_parts: list[Primitive],
    s1_holes: list[Primitive],
) -> float | None:
    """Highest local z (in ``v``'s frame) of the sacrum under a footprint, searching downwards."""
    sx = side_sign(side)
    zs = np.arange(z_from, z_from - 80.0, -0.25)
    best = None
    for x in np.linspace(x_rng[0] + 1.0, x_rng[1] - 1.0, 5):
        for y in np.linspace(y_rng[0] + 0.5, y_rng[1] - 0.5, 3):
            pts = np.array([v.local(sx * x, y, z) for z in zs])
            inside = np.nonzero(_union_sdf(s1_parts, s1_holes, pts) < 0.0)[0]
            if inside.size:
                z_hit = float(zs[inside[0]])
                best = z_hit if best is None else max(best, z_hit)
    return best


def _clearance(prim: RoundBox, obstacles: list[Primitive]) -> float:
    pts = _inside_points(prim, 0.6)
    if len(pts) == 0 or not obstacles:
        return np.inf
    return float(np.min([o.sdf_points(pts).min() for o in obstacles]))


def build_transitional(
    params: PhantomParams,
    verts: dict[str, VertebraGeom],
    roots: dict[str, RootGeom],
    s1_holes: list[Primitive],
    notes: list[str],
) -> dict[str, Any]:
    """Add the Castellvi wings (to the lowest lumbar vertebra) and bosses (to the sacrum) in place.

    Args:
        params: the case's parameters (``params.transitional`` must be set).
        verts: the vertebrae; the lowest lumbar one and ``S1`` get new parts.
        roots: every nerve root (kept clear by :data:`ROOT_CLEARANCE_MM`).
        s1_holes: the sacrum's subtracted solids (canal, foramina).
        notes: list to which differences between parameters and realised anatomy are appended.

    Returns:
        ``{"vertebra", "sides": {side: {"type", "tp_height_mm", "gap_mm", "joint_point_body"}}}`` (body frame,
        mm); ``gap_mm`` is the realised smallest distance between the process (its wing) and the sacrum
        lateral of the facet joints (negative: they interpenetrate).
    """
    tr = params.transitional
    if tr is None or not tr.castellvi:
        return {}
    v = verts[params.lumbar_levels[-1]]
    s1 = verts["S1"]
    root_caps = [c for rg in roots.values() for c in rg.capsules()]
    out: dict[str, Any] = {"vertebra": v.name, "sides": {}}
    for side in SIDES:
        kind = tr.castellvi.get(side)
        if kind is None:
            continue
        tp = next(p for p in v.parts if p.part == f"{v.name}:transverse_process_{side}")
        sx = side_sign(side)
        ped = v.pedicles[side]
        x_in = _local_extent(v, ped, 0, sx) * sx + 2.0
        x_out = _local_extent(v, tp, 0, sx) * sx - 0.5
        y_lo = _local_extent(v, tp, 1, -1.0) + 0.5
        y_hi = _local_extent(v, tp, 1, 1.0) - 0.5
        z_top = _local_extent(v, tp, 2, 1.0)
        # the sacrum lateral of the facet joints (the L5-S1 facet is a normal articulation)
        s1_parts = [p for p in s1.parts if "superior_articular_process" not in p.part]
        info: dict[str, Any] = {"type": kind}
        for _ in range(16):
            if kind == "I":
                height = float(tr.tp_height_mm[side])
                for _ in range(12):  # keep a type I process clearly apart from the sacrum
                    wing = _box(
                        v, x_in, x_out, y_lo, y_hi, z_top - height, z_top, side, f"{v.name}:tp_wing_{side}"
                    )
                    gap = float(_union_sdf(s1_parts, s1_holes, _inside_points(wing, 0.6)).min())
                    if gap >= TYPE_I_CLEARANCE_MM or height <= MIN_TYPE_I_MM:
                        break
                    height = max(MIN_TYPE_I_MM, height - (TYPE_I_CLEARANCE_MM - gap) - 0.2)
                boss = None
            else:
                z_sac = _sacrum_top(v, side, (x_in, x_out), (y_lo, y_hi), z_top, s1_parts, s1_holes)
                if z_sac is None:
                    z_sac = z_top - 45.0
                half = 0.5 * (tr.joint_gap_mm if kind == "II" else -tr.fusion_overlap_mm)
                # the enlarged process is at least MIN_ENLARGED_MM high above the joint
                z_joint = min(z_sac + JOINT_FRACTION * (z_top - z_sac), z_top - MIN_ENLARGED_MM - half)
                wing = _box(
                    v, x_in, x_out, y_lo, y_hi, z_joint + half, z_top, side, f"{v.name}:tp_wing_{side}"
                )
                boss = _box(
                    v,
                    x_in,
                    x_out,
                    y_lo,
                    y_hi,
                    z_sac - BOSS_ANCHOR_MM,
                    z_joint - half,
                    side,
                    f"S1:transitional_boss_{side}",
                )
            clear = min(_clearance(wing, root_caps), _clearance(boss, root_caps) if boss else np.inf)
            if clear >= ROOT_CLEARANCE_MM:
                break
            y_lo += 0.5
            y_hi += 0.5
        else:
            notes.append(
                f"{v.name} {side}: the transitional process could not be kept 1 mm clear of the roots"
            )
        v.parts.append(wing)
        if boss is not None:
            s1.parts.append(boss)
        # realised height (along V's axis) and distance to the sacrum (negative when fused)
        info["tp_height_mm"] = float(_local_extent(v, wing, 2, 1.0) - _local_extent(v, wing, 2, -1.0))
        pts = _inside_points(wing, 0.4)
        d = _union_sdf([p for p in s1.parts if "superior_articular_process" not in p.part], s1_holes, pts)
        info["gap_mm"] = float(d.min())
        info["joint_point_body"] = pts[int(np.argmin(d))].tolist()
        if kind == "I" and info["gap_mm"] < TYPE_I_CLEARANCE_MM - 0.5:
            notes.append(
                f"{v.name} {side}: the type I process comes within {info['gap_mm']:.1f} mm of the sacrum"
            )
        out["sides"][side] = info
    return out
