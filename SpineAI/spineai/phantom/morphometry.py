"""Ground-truth morphometry of a phantom, from its primitives (never from the rendered label map).

:func:`morphometry_truth` evaluates, on the generator's exact planes and signed distances, the quantities
:func:`spineai.levels.measure_morphometry` measures on a label map, with the same definitions (see that
module and ``docs/morphometry.md``):

* **disc heights**: the endplate planes are exact (each vertebra's endplate centre and axis); the disc's
  mid-sagittal line runs along the disc's own antero-posterior axis through its frame origin, from the
  front of its D-shaped outline (``-b``) to its flat back (``cut_y``); heights are measured along the
  bisector of the two endplate normals;
* **canal**: the dural sac's union of swept ellipses sampled on a 0.1 mm grid in the disc mid-plane;
* **foramen**: the parasagittal section through the centre of the upper pedicle (an ellipsoid), with the
  two vertebrae (with the sacrum's holes) and the disc within 8 mm of it projected onto it, from their
  signed distances on a 0.25 mm grid (slab every 0.5 mm; exact, so not eroded), then the same 2 mm
  closing and seed as the measurement;
* **lateral recess**: rays on the disc mid-plane along the lower vertebra's posterior axis, every 0.5 mm
  0.3..0.7 of its body half-width lateral, from the disc's posterior margin (its signed distance,
  herniation included) to the first bone behind it, marched in 0.02 mm steps; the 10th percentile of
  those distances.

Values are in mm and mm2, sides are the patient's (left = LPS +x), levels ``"L4-L5"``. Computed on
request only (about a second per level), so generating a phantom costs nothing extra.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..anatomy import SIDES, disc_name
from .geometry import Anatomy, side_sign
from .sdf import EllipticCylinder, Intersection

#: sampling steps of the truth (mm)
CANAL_CELL_MM = 0.1
FORAMEN_CELL_MM = 0.25
FORAMEN_HALF_MM = 25.0
RAY_STEP_MM = 0.02


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def _sdf(anatomy: Anatomy, keys: list[str], pts: np.ndarray) -> np.ndarray:
    return np.min([anatomy.structure(k).sdf_points(pts) for k in keys], axis=0)


def level_truth_morphometry(anatomy: Anatomy, level: str) -> dict[str, Any]:
    """Truth morphometry of one level ``"U-Lo"`` (body frame computations, mm)."""
    from ..levels.morphometry import (
        FORAMEN_SLAB_MM,
        RECESS_BAND,
        RECESS_PERCENTILE,
        foramen_from_section,
        mid_plane_point,
        plane_heights,
        recess_on_ray,
    )

    upper, lower = level.split("-")
    up, lo = anatomy.vertebrae[upper], anatomy.vertebrae[lower]
    n_up, n_lo = up.axis, lo.axis
    c_up = float(n_up @ up.inferior_endplate_center)
    c_lo = float(n_lo @ lo.superior_endplate_center)
    n = _unit(n_up + n_lo)
    disc = anatomy.discs[level]
    assert isinstance(disc, Intersection)
    cyl = disc.children[0]
    assert isinstance(cyl, EllipticCylinder)
    post = cyl.frame.axis(1)
    origin = cyl.frame.origin
    q_ant = origin - cyl.b * post
    q_post = origin + float(cyl.cut_y) * post
    q_mid = 0.5 * (q_ant + q_post)
    heights = {
        name: plane_heights(n_up, c_up, n_lo, c_lo, n, q)
        for name, q in (("anterior", q_ant), ("middle", q_mid), ("posterior", q_post))
    }
    # canal: the dural sac in the disc mid-plane
    mid = mid_plane_point(n_up, c_up, n_lo, c_lo, n, q_mid)
    lat = _unit(np.array([1.0, 0.0, 0.0]) - n[0] * n)
    p_in = _unit(np.cross(n, lat))
    # the sac's centre in the plane from a coarse pass, then a fine grid around it
    coarse = np.arange(-40.0, 40.0 + 1e-9, 0.5)
    g0 = mid[None, None, :] + coarse[:, None, None] * p_in + coarse[None, :, None] * lat
    in0 = _sdf(anatomy, ["dural_sac"], g0.reshape(-1, 3)) < 0
    sac_axis_pt = g0.reshape(-1, 3)[in0].mean(0) if np.any(in0) else mid
    us = np.arange(-15.0, 15.0 + 1e-9, CANAL_CELL_MM)
    grid = sac_axis_pt[None, None, :] + us[:, None, None] * p_in + us[None, :, None] * lat
    inside = (_sdf(anatomy, ["dural_sac"], grid.reshape(-1, 3)) < 0).reshape(len(us), len(us))
    canal_area = float(inside.sum() * CANAL_CELL_MM**2)
    rows = np.nonzero(inside.any(axis=1))[0]
    canal_ap = float(us[rows].max() - us[rows].min() + CANAL_CELL_MM) if rows.size else 0.0
    out: dict[str, Any] = dict(
        disc_height_mm=heights,
        canal_area_mm2=canal_area,
        canal_ap_mm=canal_ap,
        foramen={},
        lateral_recess_depth_mm={},
    )
    a_lo, p_lo = lo.axis, lo.frame.axis(1)
    ex = np.array([1.0, 0.0, 0.0])
    solid_keys = [upper, lower]
    disc_key = disc_name(upper, lower)
    cells = np.arange(-FORAMEN_HALF_MM, FORAMEN_HALF_MM + 1e-9, FORAMEN_CELL_MM)
    for side in SIDES:
        sx = side_sign(side)
        ped = up.pedicles[side]
        q0 = mid_plane_point(n_up, c_up, n_lo, c_lo, a_lo, ped.frame.origin)
        pts = q0[None, None, :] + cells[:, None, None] * p_lo + cells[None, :, None] * a_lo
        flat = pts.reshape(-1, 3)
        solid = np.zeros(len(flat), dtype=bool)
        for off in np.arange(-FORAMEN_SLAB_MM, FORAMEN_SLAB_MM + 1e-9, 0.5):
            shifted = flat + off * ex
            solid |= _sdf(anatomy, [*solid_keys, disc_key], shifted) < 0
        disc_cells = (anatomy.structure(disc_key).sdf_points(flat) < 0).reshape(len(cells), len(cells))
        entry = foramen_from_section(solid.reshape(len(cells), len(cells)), disc_cells, cells, cells, q0, ex)
        out["foramen"][side] = {
            k: v for k, v in entry.items() if k not in ("plane_point_lps", "plane_normal_lps")
        }
        # lateral recess: rays on the disc mid-plane from the disc's back to the bone behind it
        ys = np.arange(-15.0, 40.0, RAY_STEP_MM)
        depths = []
        for frac in np.arange(RECESS_BAND[0], RECESS_BAND[1] + 1e-9, 0.5 / lo.a):
            q = mid_plane_point(
                n_up, c_up, n_lo, c_lo, n, lo.superior_endplate_center + sx * frac * lo.a * lat
            )
            line = q[None, :] + ys[:, None] * p_in[None, :]
            depth = recess_on_ray(
                anatomy.structure(disc_key).sdf_points(line) < 0, _sdf(anatomy, solid_keys, line) < 0, ys
            )
            if depth is not None:
                depths.append(depth)
        out["lateral_recess_depth_mm"][side] = (
            float(np.percentile(depths, RECESS_PERCENTILE)) if depths else None
        )
    return out


def morphometry_truth(anatomy: Anatomy, levels: list[str] | None = None) -> dict[str, Any]:
    """``{level: truth}`` for ``levels`` (default: every modelled disc level), see the module docstring."""
    return {lv: level_truth_morphometry(anatomy, lv) for lv in (levels or anatomy.params.disc_levels)}
