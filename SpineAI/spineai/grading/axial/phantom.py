"""Synthetic axial T2-weighted MRI at a lumbar disc level whose LDH, LCCS, LNRC and stenosis grades are exact.

A case is drawn from one integer seed in two steps:

1. :func:`design_axial_case` chooses the grades and builds the geometry that realises them (below), on
   a 0.15 mm grid of the canal where roots are placed and the defining measurements are taken;
2. :func:`render_axial_t2` draws the anatomy with signed-distance shapes onto the image grid (pixel
   spacing, field of view, in-plane pose varied), then applies a Gaussian point-spread function, a
   smooth multiplicative bias field (with the posterior brightening of a spine coil) and Rician noise.
   With ``slab_slices > 1`` it renders a small 3D axial slab; the middle slice is the disc level.

:func:`generate_axial_t2` does both; :func:`write_axial_dataset` writes a folder of cases with the
CSV manifest that ``spineai train grading-axial`` / ``train stenosis`` read.

Frame
-----
LPS, mm (+x patient left, +y posterior, +z superior). Images have the identity direction, so columns run
from the patient's right to left and rows from anterior to posterior (the radiological display). The
*phantom frame* used below has its origin at the midline point of the posterior disc margin, x to the
patient's left and y posterior; the image is that frame rotated in-plane by ``pose_deg`` and shifted.

Anatomy (phantom frame)
-----------------------
Disc (annulus, nucleus) anterior with a flat posterior margin at y = 0; dural sac (an ellipse, anterior
wall 0.6 mm behind the disc) holding CSF and 6-14 cauda equina roots; a traversing root in each lateral
recess, just lateral to the sac; superior articular process (SAP, with a tip forming the recess's
posterior wall), inferior articular process (IAP) and the facet joint between them (its medial edge
``F_m`` at y = ``D``: the **intra-facet line**); ligamentum flavum lining the lamina; lamina, spinous
process, epidural fat, psoas, multifidus and erector spinae, vessels, subcutaneous fat; in each neural
foramen an exiting root in a pad of perineural fat inside a rim of low-signal tissue.

Grades from construction
------------------------
* LDH: herniation lobes are half-ellipses on the disc margin; the largest posterior extent ``e`` over
  all lobes against ``D`` gives the grade: ``e / D`` is drawn in 0.15-0.40 (grade 1), 0.60-0.90 (2) or
  1.10-1.32 (3), away from the thresholds 0.5 and 1.
* LCCS: the sac is shrunk (grades 1-2) with the ligamentum flavum thickened behind it, minus the lobes;
  roots are placed on the fine grid: grade 0 all separate (gap >= 0.9 mm) and at least 2.8 mm behind the
  anterior sac wall (anterior CSF preserved); 1 all separate (gap >= 0.8 mm), CSF space 45-75 % of the
  normal sac, some roots within 1 mm of the anterior wall; 2 two or three clusters of touching roots
  plus separate ones; 3 one hexagonally packed bundle with the sac hugging it (no CSF between roots).
  Roots are *separate* when the gap between them is at least 0.4 mm.
* LNRC per side (image LNRC = worse side): 0 disc material at least 1 mm from the traversing root;
  1 a lobe touching the root in its normal position; 2 a lobe pushing the root 2-2.8 mm dorsally (round,
  fat behind it); 3 the root flattened (aspect >= 2.4) between a lobe and the SAP.
* Lateral recess per side: 0 root free; 1 root touching a wall (the disc, or the SAP of a narrowed
  recess) without displacement or deformation; 2 displaced; 3 compressed.
* Foramen per side: perineural fat margins anterior/posterior/medial/lateral of the exiting root: 0 all
  >= 1.6 mm; 1 two opposing margins 0 (anterior-posterior or medial-lateral), the others >= 1.6 mm;
  2 all 0, root round; 3 all 0 and the root collapsed (aspect >= 2.4).

The truth dict holds the grades, the measurements that define them and the five regions of interest
(central canal, left/right lateral recess, left/right foramen) as boxes in LPS mm and in pixel indices.
It is synthetic: it teaches and tests the pipeline, it does not look like every real scan.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ...anatomy import BY_NAME
from ...errors import InputError
from .grades import AXIAL_TASK_KEYS, DICHOTOMOUS_POSITIVE, REGIONS

__all__ = [
    "LDH_BANDS",
    "LEVELS",
    "MANIFEST_COLUMNS",
    "PHANTOM_VERSION",
    "AxialT2Case",
    "design_axial_case",
    "generate_axial_t2",
    "render_axial_t2",
    "write_axial_case",
    "write_axial_dataset",
]

PHANTOM_VERSION = "spineai.axial_t2_phantom/1"
#: disc levels: (upper vertebra, lower vertebra); the exiting root is the upper's, the traversing the lower's
LEVELS: dict[str, tuple[str, str]] = {"L4-L5": ("L4", "L5"), "L5-S1": ("L5", "S1")}
_TRAVERSING = {"L4-L5": "L5", "L5-S1": "S1"}
_EXITING = {"L4-L5": "L4", "L5-S1": "L5"}
#: herniation extent / distance to the intra-facet line, per LDH grade (kept away from 0.5 and 1.0)
LDH_BANDS: dict[int, tuple[float, float]] = {1: (0.15, 0.40), 2: (0.60, 0.90), 3: (1.10, 1.32)}
#: two roots are separate (CSF between them) when their gap is at least this (mm)
ROOT_SEPARATION_MM = 0.4
#: columns of the manifest written by :func:`write_axial_dataset` (boxes: continuous pixel index, i = column)
MANIFEST_COLUMNS: tuple[str, ...] = (
    "image",
    "patient",
    *AXIAL_TASK_KEYS,
    *[c for r in REGIONS for c in (r.key, f"{r.key}_x0", f"{r.key}_y0", f"{r.key}_x1", f"{r.key}_y1")],
)
_FINE_MM = 0.15
_SIDES = (("left", 1.0), ("right", -1.0))


# ------------------------------------------------------------------------------------------- shapes
@dataclass
class _Shape:
    """A signed distance function (mm, negative inside) with a bounding box in the phantom frame."""

    sdf: Callable[[np.ndarray, np.ndarray], np.ndarray]
    bbox: tuple[float, float, float, float]  # x0, x1, y0, y1


def _ellipse(cx: float, cy: float, a: float, b: float, angle: float = 0.0) -> _Shape:
    """Ellipse with semi-axes ``a`` (along ``angle`` from +x, radians) and ``b``; approximate distance."""
    c, s = math.cos(angle), math.sin(angle)

    def sdf(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        dx = x - cx
        dy = y - cy
        if angle:
            u = (dx * c + dy * s) * (1.0 / a)
            v = (dy * c - dx * s) * (1.0 / b)
        else:
            u = dx * (1.0 / a)
            v = dy * (1.0 / b)
        k0 = np.sqrt(u * u + v * v)
        u *= 1.0 / a
        v *= 1.0 / b
        k1 = np.sqrt(u * u + v * v)
        np.maximum(k1, 1e-9, out=k1)
        return k0 * (k0 - 1.0) / k1

    r = max(a, b)
    return _Shape(sdf, (cx - r, cx + r, cy - r, cy + r))


def _capsule(p0: Sequence[float], p1: Sequence[float], radius: float) -> _Shape:
    """Segment ``p0``-``p1`` thickened by ``radius`` (exact distance)."""
    ax, ay = float(p0[0]), float(p0[1])
    bx, by = float(p1[0]), float(p1[1])
    dx, dy = bx - ax, by - ay
    den = max(dx * dx + dy * dy, 1e-12)

    def sdf(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        t = np.clip(((x - ax) * dx + (y - ay) * dy) / den, 0.0, 1.0)
        return np.hypot(x - ax - t * dx, y - ay - t * dy) - radius

    return _Shape(
        sdf, (min(ax, bx) - radius, max(ax, bx) + radius, min(ay, by) - radius, max(ay, by) + radius)
    )


def _disks(centres: np.ndarray, radii: np.ndarray) -> _Shape:
    """Union of disks ``centres (n, 2)``, ``radii (n,)`` (exact distance)."""
    cen = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    rad = np.asarray(radii, dtype=np.float64).reshape(-1)

    def sdf(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.full(np.shape(x), np.inf)
        for (cx, cy), r in zip(cen, rad, strict=True):
            out = np.minimum(out, np.hypot(x - cx, y - cy) - r)
        return out

    if len(cen) == 0:
        return _Shape(lambda x, y: np.full(np.shape(x), np.inf), (0.0, 0.0, 0.0, 0.0))
    m = float(rad.max())
    return _Shape(sdf, (cen[:, 0].min() - m, cen[:, 0].max() + m, cen[:, 1].min() - m, cen[:, 1].max() + m))


def _union(*shapes: _Shape) -> _Shape:
    shapes = tuple(s for s in shapes if s is not None)

    def sdf(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = shapes[0].sdf(x, y)
        for s in shapes[1:]:
            out = np.minimum(out, s.sdf(x, y))
        return out

    boxes = np.array([s.bbox for s in shapes])
    return _Shape(sdf, (boxes[:, 0].min(), boxes[:, 1].max(), boxes[:, 2].min(), boxes[:, 3].max()))


def _intersect(a: _Shape, b: _Shape) -> _Shape:
    return _Shape(lambda x, y: np.maximum(a.sdf(x, y), b.sdf(x, y)), a.bbox)


def _subtract(a: _Shape, b: _Shape) -> _Shape:
    return _Shape(lambda x, y: np.maximum(a.sdf(x, y), -b.sdf(x, y)), a.bbox)


def _offset(a: _Shape, d: float) -> _Shape:
    x0, x1, y0, y1 = a.bbox
    m = max(d, 0.0)
    return _Shape(lambda x, y: a.sdf(x, y) - d, (x0 - m, x1 + m, y0 - m, y1 + m))


def _below(y0: float, bbox: tuple[float, float, float, float]) -> _Shape:
    """Half-plane ``y <= y0`` (bounded by ``bbox`` for rendering)."""
    return _Shape(lambda x, y: y - y0, bbox)


# ------------------------------------------------------------------------------------------- design
def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


@dataclass
class _FineGrid:
    """The canal on a 0.15 mm grid (phantom frame) for root placement and measurements."""

    x: np.ndarray  # (cols,)
    y: np.ndarray  # (rows,)

    @classmethod
    def around(cls, half_width: float, y0: float, y1: float) -> _FineGrid:
        return cls(np.arange(-half_width, half_width + 1e-9, _FINE_MM), np.arange(y0, y1 + 1e-9, _FINE_MM))

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        return np.meshgrid(self.x, self.y)  # X (rows, cols), Y

    def mask(self, shape: _Shape) -> np.ndarray:
        X, Y = self.mesh()
        return shape.sdf(X, Y) <= 0.0

    def area(self, mask: np.ndarray) -> float:
        return float(mask.sum()) * _FINE_MM * _FINE_MM


def _ldh_grade(ratio: float) -> int:
    if ratio <= 0.0:
        return 0
    if ratio < 0.5:
        return 1
    if ratio <= 1.0:
        return 2
    return 3


def _hex_pack(n: int, pitch: float) -> np.ndarray:
    """The ``n`` points of a hexagonal lattice (spacing ``pitch``) nearest its centre, centred on 0."""
    k = int(math.ceil(math.sqrt(n))) + 2
    pts = np.array(
        [
            [(i + 0.5 * (j % 2)) * pitch, j * pitch * math.sqrt(3) / 2]
            for i in range(-k, k + 1)
            for j in range(-k, k + 1)
        ]
    )
    pts = pts[np.argsort(np.hypot(pts[:, 0], pts[:, 1]), kind="stable")][:n]
    return pts - pts.mean(axis=0)


def _components(
    centres: np.ndarray, radii: np.ndarray, min_gap: float = ROOT_SEPARATION_MM
) -> list[list[int]]:
    """Groups of roots whose gaps are below ``min_gap`` (aggregated), by union-find."""
    n = len(centres)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if np.hypot(*(centres[i] - centres[j])) - radii[i] - radii[j] < min_gap:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=len, reverse=True)


def _min_gap(centres: np.ndarray, radii: np.ndarray) -> float | None:
    if len(centres) < 2:
        return None
    d = np.hypot(centres[:, None, 0] - centres[None, :, 0], centres[:, None, 1] - centres[None, :, 1])
    gap = d - radii[:, None] - radii[None, :]
    gap[np.eye(len(centres), dtype=bool)] = np.inf
    return float(gap.min())


def _gap_mm(a: _Shape, b: _Shape, margin: float = 3.0, res: float = 0.08) -> float:
    """Smallest distance (mm) between shapes ``a`` and ``b`` (0 when they touch or overlap), measured on a
    ``res`` grid around ``a``; distances beyond ``margin`` are reported as ``margin``."""
    from scipy import ndimage

    x0, x1, y0, y1 = a.bbox
    xs = np.arange(x0 - margin, x1 + margin + 1e-9, res)
    ys = np.arange(y0 - margin, y1 + margin + 1e-9, res)
    X, Y = np.meshgrid(xs, ys)
    in_a = a.sdf(X, Y) <= 0
    in_b = b.sdf(X, Y) <= 0
    if not in_a.any():
        return margin
    if np.any(in_a & in_b):
        return 0.0
    if not in_b.any():
        return margin
    dist = ndimage.distance_transform_edt(~in_b) * res
    return float(min(max(dist[in_a].min() - res, 0.0), margin))


def _place_separate(
    rng: np.random.Generator,
    valid: np.ndarray,
    grid: _FineGrid,
    n: int,
    radius: float,
    gap: float,
    placed: list[np.ndarray],
    placed_r: list[float],
    tries: int = 600,
) -> int:
    """Add up to ``n`` roots at random valid centres keeping ``gap`` (mm) to every root placed so far."""
    rows, cols = np.nonzero(valid)
    if rows.size == 0:
        return 0
    added = 0
    picks = rng.integers(rows.size, size=tries)
    for k in picks:
        if added >= n:
            break
        c = np.array([grid.x[cols[k]], grid.y[rows[k]]])
        if placed:
            p = np.asarray(placed)
            if np.any(np.hypot(p[:, 0] - c[0], p[:, 1] - c[1]) < np.asarray(placed_r) + radius + gap):
                continue
        placed.append(c)
        placed_r.append(radius)
        added += 1
    return added


def _front_y(sac: np.ndarray, grid: _FineGrid, x: float) -> float | None:
    """The sac's anterior wall (smallest y) in the column nearest ``x``."""
    col = int(np.argmin(np.abs(grid.x - x)))
    rows = np.nonzero(sac[:, col])[0]
    return float(grid.y[rows[0]]) if rows.size else None


def _sample_grades(rng: np.random.Generator, wanted: Mapping[str, Any]) -> dict[str, Any]:
    known = {
        "ldh",
        "lccs",
        "lnrc",
        "lnrc_left",
        "lnrc_right",
        "foramen_left",
        "foramen_right",
        "narrow_recess_left",
        "narrow_recess_right",
        "herniation_position",
        "level",
    }
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise InputError(f"Unknown phantom setting(s) {unknown}.", f"use some of {sorted(known)}")
    for key in ("ldh", "lccs", "lnrc", "lnrc_left", "lnrc_right", "foramen_left", "foramen_right"):
        if key in wanted and int(wanted[key]) not in (0, 1, 2, 3):
            raise InputError(
                f"Phantom grade {key}={wanted[key]} is not one of 0, 1, 2, 3.", "pass a grade 0-3"
            )
    ldh = int(wanted["ldh"]) if "ldh" in wanted else int(rng.integers(4))
    sides: dict[str, int] = {}
    if "lnrc" in wanted and ("lnrc_left" in wanted or "lnrc_right" in wanted):
        raise InputError("Give either lnrc or lnrc_left/lnrc_right, not both.", "drop one of them")
    if "lnrc_left" in wanted or "lnrc_right" in wanted:
        sides = {s: int(wanted.get(f"lnrc_{s}", 0)) for s, _ in _SIDES}
    else:
        worst = (
            int(wanted["lnrc"])
            if "lnrc" in wanted
            else (0 if ldh == 0 else int(rng.choice(4, p=[0.1, 0.3, 0.3, 0.3])))
        )
        first = "left" if rng.random() < 0.5 else "right"
        other = "right" if first == "left" else "left"
        sides = {first: worst, other: int(rng.integers(worst + 1))}
    if ldh == 0 and max(sides.values()) > 0:
        raise InputError(
            f"LNRC {max(sides.values())} needs disc material touching a root, but LDH 0 has no herniation.",
            "ask for LDH >= 1 with LNRC >= 1",
        )
    position = wanted.get("herniation_position")
    if position is None:
        position = str(rng.choice(["central", "left", "right"], p=[0.5, 0.25, 0.25]))
    if position not in ("central", "left", "right"):
        raise InputError(f"Unknown herniation position '{position}'.", "use central, left or right")
    return {
        "ldh": ldh,
        "lccs_wanted": None if "lccs" not in wanted else int(wanted["lccs"]),
        "lnrc_sides": sides,
        "foramen": {
            s: int(wanted[f"foramen_{s}"]) if f"foramen_{s}" in wanted else int(rng.integers(4))
            for s, _ in _SIDES
        },
        "narrow": {
            s: bool(wanted[f"narrow_recess_{s}"])
            if f"narrow_recess_{s}" in wanted
            else bool(rng.random() < 0.35)
            for s, _ in _SIDES
        },
        "herniation_position": position,
    }


def design_axial_case(seed: int, **wanted: Any) -> dict[str, Any]:
    """Choose the grades of a case and the geometry that realises them (no image yet).

    Args:
        seed: the case's seed (the same seed always gives the same case).
        **wanted: grades to impose instead of drawing them: ``ldh``, ``lccs``, ``lnrc`` (worse side) or
            ``lnrc_left``/``lnrc_right``, ``foramen_left``/``foramen_right`` (0-3),
            ``narrow_recess_left``/``_right`` (bool), ``herniation_position`` (central/left/right),
            ``level`` (``"L4-L5"``/``"L5-S1"``).

    Returns:
        The design: ``anatomy`` (mm, phantom frame), ``lobes``, ``sac``, ``roots``, ``traversing``,
        ``foramina``, ``grades``, ``stenosis`` and ``measurements``.

    Raises:
        InputError: impossible requests (e.g. LNRC >= 1 with LDH 0, an unknown grade).
    """
    level = wanted.get("level")
    if level is not None and level not in LEVELS:
        raise InputError(f"Unknown level '{level}'.", f"use one of {', '.join(LEVELS)}")
    # the grades are drawn once; only the geometry is redrawn until it realises them
    choice = np.random.default_rng([int(seed), 1])
    grades = _sample_grades(choice, wanted)
    level = level or str(choice.choice(list(LEVELS), p=[0.55, 0.45]))
    lccs_fixed = grades["lccs_wanted"] is not None
    lccs = grades["lccs_wanted"] if lccs_fixed else int(choice.integers(4))
    reasons: dict[str, int] = {}
    failed_at_grade = 0
    for attempt in range(60):
        try:
            design = _try_design(np.random.default_rng([int(seed), 2, attempt]), grades, lccs, level)
        except _Redraw as exc:
            reasons[str(exc)] = reasons.get(str(exc), 0) + 1
            failed_at_grade += 1
            # a canal too full for the drawn LCCS (large herniation) takes the next grade up
            if not lccs_fixed and lccs < 3 and (reasons.get(_NO_ROOM, 0) >= 2 or failed_at_grade >= 12):
                lccs += 1
                reasons.pop(_NO_ROOM, None)
                failed_at_grade = 0
            continue
        design["seed"] = int(seed)
        return design
    common = ", ".join(f"{k} ({v}x)" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])[:3])
    raise InputError(
        f"The phantom could not realise the requested grades {dict(wanted)} (seed {seed}): {common}.",
        "ask for a compatible combination (a large central herniation leaves no room for a normal canal)",
    )


_NO_ROOM = "the herniation leaves too little canal for the requested LCCS"
#: thinnest ligamentum flavum (mm): the sac cannot be pushed further back
_LF_MIN_MM = 2.0


class _Redraw(Exception):
    """A drawn geometry does not realise its grades; draw it again."""


def _try_design(rng: np.random.Generator, g: Mapping[str, Any], lccs: int, level: str) -> dict[str, Any]:
    # ---- anatomy
    a: dict[str, float] = {
        "D": _u(rng, 9.5, 12.5),
        "sac_rx": _u(rng, 7.0, 8.6),
        "sac_ry": _u(rng, 5.6, 6.8),
        "root_r": _u(rng, 1.3, 1.65),
        "disc_a": _u(rng, 19.0, 24.0),
        "disc_b": _u(rng, 14.0, 17.0),
        "joint_angle_deg": _u(rng, 40.0, 55.0),
        "joint_length": _u(rng, 11.0, 15.0),
        "sap_width": _u(rng, 3.0, 4.0),
        "iap_width": _u(rng, 3.0, 3.8),
        "sap_tip_r": _u(rng, 2.0, 2.5),
        "fat_posterior": _u(rng, 1.5, 3.0),
        "lf_normal": _u(rng, 2.5, 3.5),
    }
    a["x_root"] = a["sac_rx"] + a["root_r"] + _u(rng, 0.4, 0.8)
    a["x_facet"] = a["x_root"] + _u(rng, 1.0, 2.2)
    a["y_sac_front"] = 0.6
    a["y_lamina"] = a["y_sac_front"] + 2 * a["sac_ry"] + a["fat_posterior"] + a["lf_normal"]
    r_t = a["root_r"]
    ldh = g["ldh"]

    # ---- traversing roots and the lobes that compromise them (per side)
    traversing: dict[str, dict[str, Any]] = {}
    lobes: list[dict[str, Any]] = []
    cap = lambda D: LDH_BANDS[ldh][1] * D if ldh else 0.0  # noqa: E731
    for side, sgn in _SIDES:
        state = g["lnrc_sides"][side]
        gap0 = _u(rng, 1.2, 2.0)  # epidural fat between disc margin and the root in its normal place
        x = sgn * a["x_root"]
        root: dict[str, Any] = {"state": state, "normal_y": gap0 + r_t, "x": x, "a": r_t, "b": r_t}
        lobe_e = None
        if state == 0:
            root["y"] = gap0 + r_t
            behind = _u(rng, 0.15, 0.3) if g["narrow"][side] else _u(rng, 1.3, 2.4)
            recess = gap0 + 2 * r_t + behind
        elif state == 1:
            lobe_e = gap0 + 0.12
            root["y"] = gap0 + r_t
            behind = _u(rng, 0.15, 0.3) if g["narrow"][side] else _u(rng, 1.3, 2.4)
            recess = gap0 + 2 * r_t + behind
        elif state == 2:
            room = cap(a["D"]) - gap0
            if room < 2.05:
                gap0 = max(1.0, cap(a["D"]) - 2.05)
                root["normal_y"] = gap0 + r_t
                room = cap(a["D"]) - gap0
            shift = _u(rng, 2.0, min(2.8, max(room, 2.0)))
            lobe_e = gap0 + shift
            root["y"] = lobe_e + r_t - 0.1
            recess = lobe_e + 2 * r_t + _u(rng, 1.1, 1.8)
        else:
            lobe_e = _u(rng, 1.6, max(1.7, min(4.5, cap(a["D"]))))
            thickness = _u(rng, 0.9, 1.2)
            root["y"] = lobe_e + thickness / 2 - 0.05
            root["b"] = thickness / 2 + 0.05
            root["a"] = min(r_t * _u(rng, 1.8, 2.1), 3.4)
            recess = lobe_e + thickness - 0.1
        if lobe_e is not None:
            lobes.append(
                {
                    "x": x + sgn * _u(rng, -0.6, 0.6),
                    "w": _u(rng, 3.0, 4.2),
                    "e": float(lobe_e),
                    "role": f"recess_{side}",
                }
            )
        root["recess_depth"] = float(recess)
        root["gap0"] = float(gap0)
        traversing[side] = root
    deepest_recess = max(r["recess_depth"] for r in traversing.values())
    a["D"] = max(a["D"], deepest_recess + a["sap_tip_r"] + _u(rng, 0.6, 1.4))

    # ---- main herniation lobe (defines LDH)
    if ldh:
        lo, hi = LDH_BANDS[ldh]
        e_main = _u(rng, lo, hi) * a["D"]
        pos = g["herniation_position"]
        xc = _u(rng, -1.2, 1.2) if pos == "central" else (1.0 if pos == "left" else -1.0) * _u(rng, 2.5, 4.0)
        main = {"x": xc, "w": _u(rng, 3.5, 7.0), "e": float(e_main), "role": "main"}
        # keep the main lobe >= 1 mm from both traversing roots (they are graded by their own lobes)
        for _ in range(30):
            lobe = _ellipse(main["x"], 0.0, main["w"], main["e"])
            if all(
                _gap_mm(_ellipse(t["x"], t["y"], t["a"], t["b"]), lobe, 1.5) >= 1.0
                for t in traversing.values()
            ):
                break
            main["w"] *= 0.85
            main["x"] *= 0.85
        else:
            raise _Redraw("main lobe cannot clear the traversing roots")
        if main["w"] < 2.0:
            raise _Redraw("main lobe became too narrow")
        lobes.append(main)
    extent = max((lb["e"] for lb in lobes), default=0.0)
    ratio = extent / a["D"]
    if _ldh_grade(ratio) != ldh or (
        ldh and not (LDH_BANDS[ldh][0] - 1e-9 <= ratio <= LDH_BANDS[ldh][1] + 1e-9)
    ):
        raise _Redraw("herniation extent outside its LDH band")

    lobe_shapes = [_ellipse(lb["x"], 0.0, lb["w"], lb["e"]) for lb in lobes]
    trav_shapes = {s: _ellipse(t["x"], t["y"], t["a"], t["b"]) for s, t in traversing.items()}

    # ---- central canal: sac, ligamentum flavum, cauda equina
    from scipy import ndimage

    fine = _FineGrid.around(a["x_facet"] + 3.0, -2.0, a["y_lamina"] + 1.0)
    X, Y = fine.mesh()
    normal_sac = _ellipse(0.0, a["y_sac_front"] + a["sac_ry"], a["sac_rx"], a["sac_ry"])
    normal_mask = normal_sac.sdf(X, Y) <= 0
    normal_area = fine.area(normal_mask)
    # the space the sac can take: in front of a ligamentum flavum at least _LF_MIN_MM thick, medial to the
    # traversing roots, outside the herniation lobes (a herniation pushes the sac back and aside)
    y_back_max = a["y_lamina"] - _LF_MIN_MM
    canal = _ellipse(
        0.0, (a["y_sac_front"] + y_back_max) / 2, a["sac_rx"] + 0.5, (y_back_max - a["y_sac_front"]) / 2
    )
    blockers = [_offset(sh, 0.5) for sh in lobe_shapes] + [_offset(sh, 0.3) for sh in trav_shapes.values()]
    space_shape = _subtract(canal, _union(*blockers)) if blockers else canal
    space = space_shape.sdf(X, Y) <= 0

    def place_sac(sx: float, sy: float) -> _Shape:
        """The scaled sac ellipse where it overlaps the free space most (preferring small shifts)."""
        rx, ry = a["sac_rx"] * sx, a["sac_ry"] * sy
        Xc, Yc, Sc = X[::3, ::3], Y[::3, ::3], space[::3, ::3]
        best, best_score = None, -np.inf
        for dy in np.arange(0.0, 8.01, 1.0):
            cy = a["y_sac_front"] + ry + dy
            if cy + ry > y_back_max + 0.01:
                break
            for cx in np.arange(-3.0, 3.01, 1.0):
                inside = _ellipse(cx, cy, rx, ry).sdf(Xc, Yc) <= 0
                score = np.count_nonzero(inside & Sc) - 3.0 * (dy + abs(cx))
                if score > best_score:
                    best, best_score = (cx, cy), score
        if best is None:
            best = (0.0, a["y_sac_front"] + ry)
        return _intersect(_ellipse(best[0], best[1], rx, ry), space_shape)

    available = fine.area(place_sac(1.0, 1.0).sdf(X, Y) <= 0) / normal_area
    floor = 0 if available >= 0.8 else 1 if available >= 0.5 else 2 if available >= 0.3 else 3
    if lccs < floor:
        raise _Redraw(_NO_ROOM)
    n_roots = int(rng.integers(9, 15))
    root_radius = _u(rng, 0.75, 0.95)
    centres: list[np.ndarray] = []
    radii: list[float] = []
    if lccs < 3:
        sx, sy = {
            0: (1.0, _u(rng, 0.96, 1.04)),
            1: (_u(rng, 0.88, 0.98), _u(rng, 0.68, 0.8)),
            2: (_u(rng, 0.8, 0.92), _u(rng, 0.52, 0.65)),
        }[lccs]
        sac_shape = place_sac(sx, sy)
        region = sac_shape.sdf(X, Y) <= 0
        dist = ndimage.distance_transform_edt(region) * _FINE_MM
        front = np.full(X.shape[1], np.nan)
        cols_any = region.any(axis=0)
        front[cols_any] = fine.y[np.argmax(region[:, cols_any], axis=0)]
        front_map = np.broadcast_to(front, X.shape)
        if lccs == 0:
            valid = (dist >= root_radius + 0.4) & (Y >= front_map + 2.6 + root_radius)
            _place_separate(rng, valid, fine, n_roots, root_radius, 0.7, centres, radii)
        elif lccs == 1:
            near = (dist >= root_radius + 0.3) & (Y <= front_map + root_radius + 0.7)
            _place_separate(rng, near, fine, 2, root_radius, 0.8, centres, radii)
            if len(centres) < 1:
                raise _Redraw("no room for a root at the anterior sac wall")
            valid = dist >= root_radius + 0.3
            _place_separate(rng, valid, fine, n_roots - len(centres), root_radius, 0.7, centres, radii)
        else:
            for _ in range(int(rng.integers(2, 4))):
                m = int(rng.choice([2, 3, 4], p=[0.4, 0.4, 0.2]))
                pack = _hex_pack(m, 2 * root_radius - 0.1)
                reach = float(np.max(np.hypot(pack[:, 0], pack[:, 1]))) + root_radius
                rows, cols = np.nonzero(dist >= reach + 0.2)
                for _try in range(200):
                    if rows.size == 0:
                        break
                    k = int(rng.integers(rows.size))
                    cand = pack + np.array([fine.x[cols[k]], fine.y[rows[k]]])
                    if all(
                        np.hypot(*(q - p)) >= root_radius + r + 0.8
                        for q in cand
                        for p, r in zip(centres, radii, strict=True)
                    ):
                        centres.extend(list(cand))
                        radii.extend([root_radius] * m)
                        break
            if not centres or len(_components(np.array(centres), np.array(radii))) == len(centres):
                raise _Redraw("root clusters could not be placed")
            _place_separate(
                rng,
                dist >= root_radius + 0.3,
                fine,
                int(rng.integers(2, 5)),
                root_radius,
                0.8,
                centres,
                radii,
            )
        if len(centres) < 6:
            raise _Redraw("fewer than 6 cauda equina roots fit")
        cen = np.array(centres)
        rad = np.array(radii)
        fat_back = a["fat_posterior"] if lccs == 0 else _u(rng, 0.4, 0.9)
        sac_back = float(Y[region].max())
        lf_thickness = max(_LF_MIN_MM, a["y_lamina"] - sac_back - fat_back)
    else:
        dist = ndimage.distance_transform_edt(space) * _FINE_MM
        n = min(n_roots, 12)
        r_b = root_radius
        while True:
            pack = _hex_pack(n, 2 * r_b - 0.1)
            reach = float(np.max(np.hypot(pack[:, 0], pack[:, 1]))) + r_b + 0.4
            if dist.max() >= reach:
                break
            if r_b > 0.8:
                r_b -= 0.05
            elif n > 7:
                n -= 1
            else:
                raise _Redraw("the root bundle does not fit the canal")
        # the bundle sits where the canal leaves room, towards the back of the canal
        rows, cols = np.nonzero(dist >= reach)
        k = int(np.argmax(fine.y[rows] - 0.2 * np.abs(fine.x[cols])))
        cen = pack + np.array([fine.x[cols[k]], fine.y[rows[k]]])
        rad = np.full(n, r_b)
        sac_shape = _offset(_disks(cen, rad), 0.35)
        sac_back = float((cen[:, 1] + rad).max() + 0.35)
        lf_thickness = max(_LF_MIN_MM, a["y_lamina"] - sac_back - _u(rng, 0.3, 0.6))
    rx, ry = (a["sac_rx"] * sx, a["sac_ry"] * sy) if lccs < 3 else (None, None)
    sac_mask = fine.mask(sac_shape)
    roots_mask = fine.mask(_disks(cen, rad))
    groups = _components(cen, rad)
    # anterior CSF: from the sac's anterior wall to the most anterior root edge, over roots in the middle third
    depths = []
    for (cx, cy), r in zip(cen, rad, strict=True):
        fy = _front_y(sac_mask, fine, cx)
        if fy is not None:
            depths.append(cy - r - fy)
    lccs_meas = {
        "normal_sac_area_mm2": normal_area,
        "sac_area_mm2": fine.area(sac_mask),
        "csf_area_mm2": fine.area(sac_mask & ~roots_mask),
        "csf_fraction_of_normal_sac": fine.area(sac_mask & ~roots_mask) / normal_area,
        "roots": len(cen),
        "root_groups": len(groups),
        "largest_group": len(groups[0]),
        "min_gap_between_roots_mm": _min_gap(cen, rad),
        "anterior_csf_mm": float(min(depths)) if depths else None,
        "ligamentum_flavum_mm": float(lf_thickness),
        "separation_threshold_mm": ROOT_SEPARATION_MM,
    }
    # definitional checks (a design that does not meet its grade's definition is redrawn)
    sep_ok = lccs_meas["root_groups"] == lccs_meas["roots"]
    if lccs == 0 and not (sep_ok and (lccs_meas["anterior_csf_mm"] or 0) >= 2.5):
        raise _Redraw("LCCS 0 definition not met")
    if lccs == 1 and not (sep_ok and (lccs_meas["anterior_csf_mm"] or 9) <= 1.2):
        raise _Redraw("LCCS 1 definition not met")
    if lccs == 2 and not (1 < lccs_meas["root_groups"] < lccs_meas["roots"]):
        raise _Redraw("LCCS 2 definition not met")
    if lccs == 3 and lccs_meas["root_groups"] != 1:
        raise _Redraw("LCCS 3 definition not met")

    # ---- SAP, IAP, facet joint, lamina, ligamentum flavum (per side)
    phi = math.radians(a["joint_angle_deg"])
    posterior = {}
    for side, sgn in _SIDES:
        fm = np.array([sgn * a["x_facet"], a["D"]])
        u = np.array([sgn * math.sin(phi), math.cos(phi)])
        n_a = np.array([sgn * math.cos(phi), -math.sin(phi)])
        L = a["joint_length"]
        c_sap = fm + u * L / 2 + n_a * (a["sap_width"] + 0.5)
        c_iap = fm + u * (L / 2 + 0.5) - n_a * (a["iap_width"] + 0.5)
        t = traversing[side]
        tip = np.array([sgn * (abs(t["x"]) + 1.3), t["recess_depth"] + a["sap_tip_r"]])
        posterior[side] = {
            "facet_medial_edge": fm.tolist(),
            "joint_dir": u.tolist(),
            "normal": n_a.tolist(),
            "sap_centre": c_sap.tolist(),
            "iap_centre": c_iap.tolist(),
            "sap_tip": tip.tolist(),
        }

    # ---- lateral recesses (gaps measured on a 0.08 mm grid)
    sap_shapes = {s: _sap_shape(a, posterior[s]) for s, _ in _SIDES}
    disc_material = _union(_disc_shape(a), *lobe_shapes)
    recess = {}
    for side, _sgn in _SIDES:
        t = traversing[side]
        gap_disc = _gap_mm(trav_shapes[side], disc_material)
        gap_sap = _gap_mm(trav_shapes[side], sap_shapes[side])
        displacement = float(t["y"] - t["normal_y"])
        aspect = float(max(t["a"], t["b"]) / min(t["a"], t["b"]))
        state = t["state"]
        contact = (gap_disc is not None and gap_disc <= 0.15) or (gap_sap is not None and gap_sap <= 0.35)
        lr = 3 if aspect >= 1.8 else 2 if displacement >= 1.5 else 1 if contact else 0
        recess[side] = {
            "lnrc": state,
            "lateral_recess": lr,
            "recess_depth_mm": t["recess_depth"],
            "root_to_disc_mm": gap_disc,
            "root_to_sap_mm": gap_sap,
            "root_displacement_mm": displacement,
            "root_aspect": aspect,
        }
        # definitional checks
        if state == 0 and not (gap_disc is not None and gap_disc >= 0.8):
            raise _Redraw("LNRC 0 definition not met")
        if state == 1 and not (
            gap_disc is not None and gap_disc <= 0.15 and abs(displacement) < 0.3 and aspect < 1.2
        ):
            raise _Redraw("LNRC 1 definition not met")
        if state == 2 and not (
            gap_disc <= 0.15 and displacement >= 1.8 and aspect < 1.2 and (gap_sap or 0) >= 0.8
        ):
            raise _Redraw("LNRC 2 definition not met")
        if state == 3 and not (gap_disc <= 0.15 and gap_sap <= 0.15 and aspect >= 2.4):
            raise _Redraw("LNRC 3 definition not met")

    # ---- foramina
    foramina = {}
    for side, sgn in _SIDES:
        grade = g["foramen"][side]
        r_e = _u(rng, 1.8, 2.3)
        x_e = a["x_facet"] + _u(rng, 5.5, 7.5)
        frac = min(abs(x_e) / a["disc_a"], 0.98)
        y_disc = -a["disc_b"] + 4.0 + a["disc_b"] * math.sqrt(1 - frac * frac)
        y_e = y_disc + r_e + _u(rng, 2.0, 3.0)
        if grade == 0:
            margins = {k: _u(rng, 1.6, 2.8) for k in ("anterior", "posterior", "medial", "lateral")}
        elif grade == 1:
            keep = ("medial", "lateral") if rng.random() < 0.6 else ("anterior", "posterior")
            margins = {
                k: (_u(rng, 1.6, 2.6) if k in keep else 0.0)
                for k in ("anterior", "posterior", "medial", "lateral")
            }
        else:
            margins = {k: 0.0 for k in ("anterior", "posterior", "medial", "lateral")}
        if grade == 3:
            flat = _u(rng, 1.6, 1.8)
            semi = (r_e * flat, r_e / flat) if rng.random() < 0.5 else (r_e / flat, r_e * flat)
        else:
            semi = (r_e, r_e)
        foramina[side] = {
            "grade": grade,
            "centre": [sgn * x_e, y_e],
            "root_semi_axes": list(semi),
            "root_radius": r_e,
            "fat_margins_mm": margins,
            "root_aspect": float(max(semi) / min(semi)),
        }

    # ---- regions of interest (phantom frame boxes: x0, y0, x1, y1)
    boxes = {
        "central_canal": [-(a["sac_rx"] + 1.0), -1.5, a["sac_rx"] + 1.0, a["y_lamina"] - 0.5],
    }
    for side, sgn in _SIDES:
        t = traversing[side]
        xa, xb = sgn * (a["x_root"] - r_t - 1.5), sgn * (a["x_root"] + r_t + 2.5)
        boxes[f"lateral_recess_{side}"] = [min(xa, xb), -1.5, max(xa, xb), a["D"] + 0.5]
        c = foramina[side]["centre"]
        h = foramina[side]["root_radius"] + 4.5
        boxes[f"foramen_{side}"] = [c[0] - h, c[1] - h, c[0] + h, c[1] + h]

    lnrc = max(g["lnrc_sides"].values())
    stenosis = {
        "central_canal": lccs,
        "lateral_recess_left": recess["left"]["lateral_recess"],
        "lateral_recess_right": recess["right"]["lateral_recess"],
        "foramen_left": foramina["left"]["grade"],
        "foramen_right": foramina["right"]["grade"],
    }
    return {
        "level": level,
        "anatomy": a,
        "lobes": lobes,
        "traversing": traversing,
        "posterior": posterior,
        "sac": {
            "grade": lccs,
            "rx": rx,
            "ry": ry,
            "bundle": lccs == 3,
            "ligamentum_flavum_mm": float(lf_thickness),
            "root_centres": cen.tolist(),
            "root_radii": rad.tolist(),
        },
        "foramina": foramina,
        "boxes_phantom": boxes,
        "grades": {"ldh": ldh, "lccs": lccs, "lnrc": lnrc},
        "stenosis": stenosis,
        "measurements": {
            "ldh": {
                "intra_facet_line_mm": a["D"],
                "herniation_extent_mm": extent,
                "extent_ratio": ratio,
                "herniation_position": g["herniation_position"] if ldh else None,
                "lobes": [dict(lb) for lb in lobes],
            },
            "lccs": lccs_meas,
            "lnrc": {"left": recess["left"], "right": recess["right"]},
            "foramen": {
                s: {k: foramina[s][k] for k in ("grade", "fat_margins_mm", "root_aspect")} for s, _ in _SIDES
            },
        },
        "_shapes": {"sac": sac_shape, "lobes": lobe_shapes, "traversing": trav_shapes},
    }


def _disc_shape(a: Mapping[str, float]) -> _Shape:
    """Disc (or vertebral body) outline with its flat posterior margin at y = 0."""
    ell = _ellipse(0.0, -a["disc_b"] + 4.0, a["disc_a"], a["disc_b"])
    return _intersect(ell, _below(0.0, ell.bbox))


def _sap_shape(a: Mapping[str, float], p: Mapping[str, Any]) -> _Shape:
    u = np.asarray(p["joint_dir"])
    body = _ellipse(*p["sap_centre"], a["joint_length"] / 2 + 1.5, a["sap_width"], math.atan2(u[1], u[0]))
    tip = _ellipse(*p["sap_tip"], a["sap_tip_r"], a["sap_tip_r"])
    bridge = _capsule(p["sap_tip"], p["sap_centre"], min(a["sap_tip_r"], a["sap_width"]) - 0.2)
    return _union(body, tip, bridge)


def _iap_shape(a: Mapping[str, float], p: Mapping[str, Any]) -> _Shape:
    u = np.asarray(p["joint_dir"])
    return _ellipse(*p["iap_centre"], a["joint_length"] / 2 + 0.5, a["iap_width"], math.atan2(u[1], u[0]))


# ---------------------------------------------------------------------------------------- rendering
@dataclass
class AxialT2Case:
    """A rendered case.

    Attributes:
        image: the T2 image (``sitk.Image``, 2D, or 3D for a slab; int16, LPS, identity direction).
        labels: canonical label map on the same grid (uint8; values of :mod:`spineai.anatomy`).
        truth: JSON-ready truth (grades, measurements, boxes, imaging settings).
        masks: per structure boolean arrays on the disc-level slice ``(rows, cols)`` (not occluded):
            ``disc``, ``herniation``, ``dural_sac``, ``cauda_equina``, ``csf``, ``traversing_root_<side>``,
            ``exiting_root_<side>``, ``foraminal_fat_<side>``, ``sap_<side>``, ``ligamentum_flavum``.
        phantom_xy: phantom-frame coordinates ``(2, rows, cols)`` (mm) of the disc-level slice's pixels.
    """

    image: sitk.Image
    labels: sitk.Image
    truth: dict[str, Any]
    masks: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    phantom_xy: np.ndarray | None = field(default=None, repr=False)


def _signals(rng: np.random.Generator) -> dict[str, float]:
    return {
        "csf": 1.0,
        "fat": _u(rng, 0.68, 0.85),
        "muscle": _u(rng, 0.17, 0.28),
        "annulus": _u(rng, 0.13, 0.22),
        "nucleus": _u(rng, 0.35, 0.85),
        "herniation": _u(rng, 0.28, 0.5),
        "root": _u(rng, 0.24, 0.36),
        "marrow": _u(rng, 0.32, 0.5),
        "cortex": 0.06,
        "ligament": _u(rng, 0.1, 0.2),
        "dura": _u(rng, 0.15, 0.3),
        "joint": _u(rng, 0.5, 0.8),
        "vessel": 0.04,
        "foraminal_rim": _u(rng, 0.15, 0.28),
    }


def _imaging(
    rng: np.random.Generator, spacing_mm: float | None, fov_mm: float | None, noise: float | None
) -> dict[str, Any]:
    return {
        "spacing_mm": float(spacing_mm) if spacing_mm is not None else _u(rng, 0.45, 0.85),
        "fov_mm": float(fov_mm) if fov_mm is not None else _u(rng, 100.0, 140.0),
        "pose_deg": _u(rng, -10.0, 10.0),
        "canal_offset_mm": [_u(rng, -10.0, 10.0), _u(rng, -4.0, 14.0)],
        "psf_sigma_px": _u(rng, 0.3, 0.7),
        "noise_sigma": float(noise) if noise is not None else _u(rng, 0.015, 0.06),
        "bias_coeffs": [float(v) for v in rng.normal(0.0, 0.12, 4)],
        "bias_posterior": _u(rng, 0.0, 0.4),
        "scale": _u(rng, 600.0, 1500.0),
        "slice_thickness_mm": _u(rng, 3.0, 4.5),
    }


def _scene(
    design: Mapping[str, Any], sig: Mapping[str, float], dz: float, disc_half_height: float
) -> list[tuple[str, _Shape, float, str | None]]:
    """Shapes in painting order: (name, shape, signal, canonical label or None)."""
    a = design["anatomy"]
    upper, lower = LEVELS[design["level"]]
    trav, exit_ = _TRAVERSING[design["level"]], _EXITING[design["level"]]
    disc_label = f"disc_{upper}_{lower}"
    on_disc = abs(dz) <= 0.6 * disc_half_height
    lobe_scale = max(0.0, 1.0 - abs(dz) / (disc_half_height + 2.0))
    items: list[tuple[str, _Shape, float, str | None]] = []
    add = items.append
    big = (-200.0, 200.0, -200.0, 200.0)
    add(("body", _ellipse(0.0, -25.0, 135.0, a["y_lamina"] + 70.0), sig["fat"], None))
    # muscles
    psoas_y = -a["disc_b"] * 0.6
    for _side, sgn in _SIDES:
        add(
            (
                "psoas",
                _ellipse(sgn * (a["disc_a"] + 11.0), psoas_y, 10.5, 15.0, 0.3 * sgn),
                sig["muscle"],
                None,
            )
        )
        add(
            (
                "erector",
                _ellipse(sgn * 27.0, a["y_lamina"] + 12.0, 14.0, 17.0, -0.35 * sgn),
                sig["muscle"],
                None,
            )
        )
        add(
            (
                "multifidus",
                _ellipse(sgn * 8.5, a["y_lamina"] + 16.0, 7.5, 13.0, -0.25 * sgn),
                sig["muscle"],
                None,
            )
        )
    add(("aorta", _ellipse(-8.0, -2 * a["disc_b"] - 3.0, 8.0, 8.0), sig["vessel"], None))
    add(("ivc", _ellipse(12.0, -2 * a["disc_b"] - 2.0, 10.0, 6.5), sig["vessel"] + 0.05, None))
    # canal fat, bones
    add(
        (
            "epidural_fat",
            _ellipse(0.0, a["y_lamina"] / 2, a["x_facet"] + 4.0, a["y_lamina"] / 2 + 1.5),
            sig["fat"],
            None,
        )
    )
    for side, _sgn in _SIDES:
        p = design["posterior"][side]
        fm = np.asarray(p["facet_medial_edge"])
        u = np.asarray(p["joint_dir"])
        n_a = np.asarray(p["normal"])
        lam0 = fm + u * a["joint_length"] * 0.75 - n_a * 2 * a["iap_width"]
        lamina = _union(
            _capsule(lam0, (0.0, a["y_lamina"] + 2.5), 2.5),
            _capsule((0.0, a["y_lamina"] + 2.0), (0.0, a["y_lamina"] + 28.0), 3.0),
        )
        for name, shape, label in (
            ("lamina", lamina, "vertebral_arch"),
            (f"iap_{side}", _iap_shape(a, p), f"inferior_articular_process_{side}"),
            (f"sap_{side}", _sap_shape(a, p), f"superior_articular_process_{side}"),
        ):
            add((name, shape, sig["cortex"], label))
            add((name + "_marrow", _offset(shape, -0.9), sig["marrow"], label))
        add((f"joint_{side}", _capsule(fm, fm + u * a["joint_length"], 0.45), sig["joint"], None))
    # disc or vertebral body, herniation lobes
    disc = _disc_shape(a)
    if on_disc:
        add(("disc", disc, sig["annulus"], disc_label))
        nucleus = _ellipse(0.0, -a["disc_b"] * 0.55 + 1.0, 0.55 * a["disc_a"], 0.42 * a["disc_b"])
        add(("nucleus", nucleus, sig["nucleus"], disc_label))
    else:
        body_label = upper if dz > 0 else lower  # the upper vertebra's body above the disc, the lower's below
        add(("vertebral_body", disc, sig["cortex"], body_label))
        add(("vertebral_body_marrow", _offset(disc, -1.0), sig["marrow"], body_label))
    if lobe_scale > 0:
        for lb in design["lobes"]:
            if lb["e"] * lobe_scale > 0.3:
                lobe = _intersect(
                    _ellipse(lb["x"], 0.0, lb["w"], lb["e"] * lobe_scale),
                    _Shape(lambda x, y: -1.5 - y, big),
                )
                add(("herniation", lobe, sig["herniation"], disc_label))
    # ligamentum flavum
    lf_t = design["sac"]["ligamentum_flavum_mm"]
    for side, _sgn in _SIDES:
        fm = np.asarray(design["posterior"][side]["facet_medial_edge"])
        add(
            (
                "ligamentum_flavum",
                _capsule(
                    fm + np.array([-0.5 * np.sign(fm[0]), 0.5]), (0.0, a["y_lamina"] - lf_t / 2), lf_t / 2
                ),
                sig["ligament"],
                None,
            )
        )
    # foramina
    for side, sgn in _SIDES:
        f = design["foramina"][side]
        cx, cy = f["centre"]
        m = f["fat_margins_mm"]
        r_e = f["root_radius"]
        add((f"foraminal_rim_{side}", _ellipse(cx, cy, r_e + 4.0, r_e + 3.2), sig["foraminal_rim"], None))
        ax = r_e + (m["medial"] + m["lateral"]) / 2
        by = r_e + (m["anterior"] + m["posterior"]) / 2
        fx = cx + sgn * (m["lateral"] - m["medial"]) / 2
        fy = cy + (m["posterior"] - m["anterior"]) / 2
        if max(m.values()) > 0:
            add((f"foraminal_fat_{side}", _ellipse(fx, fy, ax, by), sig["fat"], None))
        sa, sb = f["root_semi_axes"]
        add((f"exiting_root_{side}", _ellipse(cx, cy, sa, sb), sig["root"], f"root_{exit_}_{side}"))
    # dural sac, cauda equina, traversing roots
    shapes = design["_shapes"]
    add(("dura", _offset(shapes["sac"], 0.4), sig["dura"], "dural_sac"))
    add(("dural_sac", shapes["sac"], sig["csf"], "dural_sac"))
    cen = np.asarray(design["sac"]["root_centres"])
    rad = np.asarray(design["sac"]["root_radii"])
    add(("cauda_equina", _disks(cen, rad), sig["root"], "dural_sac"))
    for side, _sgn in _SIDES:
        add((f"traversing_root_{side}", shapes["traversing"][side], sig["root"], f"root_{trav}_{side}"))
    return items


_MASK_NAMES = {
    "disc": ("disc",),
    "herniation": ("herniation",),
    "dural_sac": ("dural_sac",),
    "cauda_equina": ("cauda_equina",),
    "ligamentum_flavum": ("ligamentum_flavum",),
}


def _render_slice(
    design: Mapping[str, Any],
    sig: Mapping[str, float],
    imaging: Mapping[str, Any],
    qx: np.ndarray,
    qy: np.ndarray,
    corner_index: Callable[[np.ndarray], np.ndarray],
    dz: float,
    disc_half_height: float,
    want_masks: bool,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Paint one slice; returns (values, canonical labels, masks)."""
    spacing = float(imaging["spacing_mm"])
    rows, cols = qx.shape
    value = np.zeros((rows, cols), dtype=np.float32)
    labels = np.zeros((rows, cols), dtype=np.uint8)
    masks: dict[str, np.ndarray] = {}
    for name, shape, signal, label in _scene(design, sig, dz, disc_half_height):
        x0, x1, y0, y1 = shape.bbox
        corners = corner_index(np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]]))
        c0 = max(int(np.floor(corners[:, 0].min())) - 2, 0)
        c1 = min(int(np.ceil(corners[:, 0].max())) + 3, cols)
        r0 = max(int(np.floor(corners[:, 1].min())) - 2, 0)
        r1 = min(int(np.ceil(corners[:, 1].max())) + 3, rows)
        if c1 <= c0 or r1 <= r0:
            continue
        d = shape.sdf(qx[r0:r1, c0:c1], qy[r0:r1, c0:c1])
        cover = np.clip(0.5 - d / spacing, 0.0, 1.0).astype(np.float32)
        block = value[r0:r1, c0:c1]
        value[r0:r1, c0:c1] = block * (1.0 - cover) + np.float32(signal) * cover
        inside = d <= 0.0
        if label is not None:
            labels[r0:r1, c0:c1][inside] = BY_NAME[label].label
        elif name in ("epidural_fat", "body") or name.startswith(("foraminal_rim", "foraminal_fat", "joint")):
            # unlabelled tissue painted over a labelled structure removes that label there
            labels[r0:r1, c0:c1][inside] = 0
        if want_masks:
            key = name
            for mask_name, names in _MASK_NAMES.items():
                if name in names:
                    key = mask_name
            if key.endswith("_marrow"):
                continue
            if key in (
                "disc",
                "herniation",
                "dural_sac",
                "cauda_equina",
                "ligamentum_flavum",
            ) or key.startswith(("traversing_root_", "exiting_root_", "foraminal_fat_", "sap_")):
                full = masks.setdefault(key, np.zeros((rows, cols), dtype=bool))
                full[r0:r1, c0:c1] |= inside
    if want_masks:
        masks["disc"] = masks.get("disc", np.zeros((rows, cols), bool)) | masks.get(
            "herniation", np.zeros((rows, cols), bool)
        )
        masks["csf"] = masks.get("dural_sac", np.zeros((rows, cols), bool)) & ~masks.get(
            "cauda_equina", np.zeros((rows, cols), bool)
        )
    return value, labels, masks


def render_axial_t2(
    design: Mapping[str, Any],
    seed: int,
    *,
    spacing_mm: float | None = None,
    fov_mm: float | None = None,
    noise: float | None = None,
    slab_slices: int = 1,
    pose_deg: float | None = None,
) -> AxialT2Case:
    """Render a design (:func:`design_axial_case`) into an image, a label map and the truth.

    Args:
        design: the case's design.
        seed: seed of the imaging variation (contrast, pose, bias field, noise).
        spacing_mm: in-plane pixel size (default: drawn in 0.45-0.85 mm).
        fov_mm: square field of view (default: drawn in 100-140 mm).
        noise: Rician noise sigma relative to CSF signal (default: drawn in 0.015-0.06; 0 for none).
        slab_slices: 1 for a 2D slice; an odd number for a 3D axial slab centred on the disc level.
        pose_deg: in-plane rotation of the anatomy (default: drawn in +-10 degrees).
    """
    from scipy import ndimage

    if slab_slices < 1 or slab_slices % 2 == 0:
        raise InputError(
            f"slab_slices={slab_slices} is not a positive odd number.", "use 1 (2D) or 3, 5, 7, ..."
        )
    rng = np.random.default_rng([int(seed), 7919])
    sig = _signals(rng)
    imaging = _imaging(rng, spacing_mm, fov_mm, noise)
    if pose_deg is not None:
        imaging["pose_deg"] = float(pose_deg)
    spacing = imaging["spacing_mm"]
    n = int(round(imaging["fov_mm"] / spacing))
    theta = math.radians(imaging["pose_deg"])
    c, s = math.cos(theta), math.sin(theta)
    # LPS of the canal reference point (phantom origin); image origin so that it sits at offset from the centre
    centre_lps = np.array(imaging["canal_offset_mm"], dtype=np.float64)
    origin = -(n - 1) / 2.0 * spacing * np.ones(2)
    ii, jj = np.meshgrid(np.arange(n), np.arange(n))
    px = origin[0] + ii * spacing - centre_lps[0]
    py = origin[1] + jj * spacing - centre_lps[1]
    qx = (c * px + s * py).astype(np.float64)  # phantom = R(-theta) (p - centre)
    qy = (-s * px + c * py).astype(np.float64)

    def phantom_to_lps(q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        return np.stack([c * q[..., 0] - s * q[..., 1], s * q[..., 0] + c * q[..., 1]], axis=-1) + centre_lps

    def corner_index(q: np.ndarray) -> np.ndarray:
        return (phantom_to_lps(q) - origin) / spacing

    disc_half_height = _u(rng, 4.0, 5.5)
    dz_step = imaging["slice_thickness_mm"]
    k_mid = slab_slices // 2
    values, label_slices = [], []
    masks: dict[str, np.ndarray] = {}
    for k in range(slab_slices):
        dz = (k - k_mid) * dz_step
        v, lab, m = _render_slice(
            design, sig, imaging, qx, qy, corner_index, dz, disc_half_height, k == k_mid
        )
        if k == k_mid:
            masks = m
        # image formation: blur, bias field, Rician noise
        v = ndimage.gaussian_filter(v, imaging["psf_sigma_px"])
        xn = (ii - n / 2) / (n / 2)
        yn = (jj - n / 2) / (n / 2)
        cb = imaging["bias_coeffs"]
        bias = np.exp(
            imaging["bias_posterior"] * yn
            + cb[0] * xn
            + cb[1] * yn
            + cb[2] * xn * yn
            + cb[3] * (xn**2 + yn**2)
        )
        v = v * bias
        sigma = imaging["noise_sigma"]
        if sigma > 0:
            nrng = np.random.default_rng([int(seed), 104729, k])
            v = np.sqrt((v + nrng.normal(0, sigma, v.shape)) ** 2 + nrng.normal(0, sigma, v.shape) ** 2)
        values.append(np.clip(np.round(v * imaging["scale"]), 0, 32000).astype(np.int16))
        label_slices.append(lab)
    if slab_slices == 1:
        image = sitk.GetImageFromArray(values[0])
        labels = sitk.GetImageFromArray(label_slices[0])
        image.SetSpacing((spacing, spacing))
        image.SetOrigin(tuple(origin))
    else:
        image = sitk.GetImageFromArray(np.stack(values))
        labels = sitk.GetImageFromArray(np.stack(label_slices))
        image.SetSpacing((spacing, spacing, dz_step))
        image.SetOrigin((origin[0], origin[1], -k_mid * dz_step))
    labels.CopyInformation(image)

    # boxes in LPS and in pixel indices (the axis-aligned box around the rotated phantom box)
    regions = {}
    for r in REGIONS:
        x0, y0, x1, y1 = design["boxes_phantom"][r.key]
        corners = phantom_to_lps(np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]]))
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        idx_lo = (lo - origin) / spacing
        idx_hi = (hi - origin) / spacing
        grade = int(design["stenosis"][r.key])
        regions[r.key] = {
            "grade": grade,
            "dichotomous": int(grade in DICHOTOMOUS_POSITIVE),
            "box_mm": [float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])],
            "box_index": [float(idx_lo[0]), float(idx_lo[1]), float(idx_hi[0]), float(idx_hi[1])],
            "centre_mm": [float((lo[0] + hi[0]) / 2), float((lo[1] + hi[1]) / 2)],
        }
    line = design["anatomy"]["D"]
    fm_l = phantom_to_lps(np.array(design["posterior"]["left"]["facet_medial_edge"]))
    fm_r = phantom_to_lps(np.array(design["posterior"]["right"]["facet_medial_edge"]))
    truth = {
        "phantom": PHANTOM_VERSION,
        "seed": int(design["seed"]),
        "imaging_seed": int(seed),
        "level": design["level"],
        "frame": "LPS mm (+x patient left, +y posterior, +z superior); identity direction; "
        "rows anterior->posterior, columns patient right->left",
        "grades": dict(design["grades"]),
        "lnrc_sides": {s: int(design["traversing"][s]["state"]) for s, _ in _SIDES},
        "stenosis": regions,
        "measurements": _jsonable(design["measurements"]),
        "intra_facet_line_mm": {
            "left_edge": fm_l.tolist(),
            "right_edge": fm_r.tolist(),
            "distance_from_disc_mm": line,
        },
        "disc_margin_midline_mm": phantom_to_lps(np.zeros(2)).tolist(),
        "phantom_frame": {"origin_lps_mm": centre_lps.tolist(), "rotation_deg": imaging["pose_deg"]},
        "imaging": {
            **imaging,
            "size": [n, n] if slab_slices == 1 else [n, n, slab_slices],
            "disc_level_slice": k_mid,
        },
        "signals": dict(sig),
        "labels": {name: BY_NAME[name].label for name in _label_names(design["level"])},
        "intended_use": "synthetic test and training data; research use only",
    }
    return AxialT2Case(image=image, labels=labels, truth=truth, masks=masks, phantom_xy=np.stack([qx, qy]))


def _label_names(level: str) -> list[str]:
    upper, lower = LEVELS[level]
    trav, exit_ = _TRAVERSING[level], _EXITING[level]
    names = [f"disc_{upper}_{lower}", "dural_sac", upper, lower, "vertebral_arch"]
    for side, _ in _SIDES:
        names += [
            f"root_{trav}_{side}",
            f"root_{exit_}_{side}",
            f"superior_articular_process_{side}",
            f"inferior_articular_process_{side}",
        ]
    return names


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    return obj


def generate_axial_t2(
    seed: int,
    *,
    spacing_mm: float | None = None,
    fov_mm: float | None = None,
    noise: float | None = None,
    slab_slices: int = 1,
    pose_deg: float | None = None,
    **wanted: Any,
) -> AxialT2Case:
    """Design and render one case (see the module docstring).

    Args:
        seed: the case's seed.
        spacing_mm, fov_mm, noise, slab_slices, pose_deg: imaging (see :func:`render_axial_t2`).
        **wanted: grades to impose (see :func:`design_axial_case`), e.g. ``ldh=3, lccs=2``.

    Returns:
        An :class:`AxialT2Case`.
    """
    design = design_axial_case(seed, **wanted)
    return render_axial_t2(
        design,
        seed,
        spacing_mm=spacing_mm,
        fov_mm=fov_mm,
        noise=noise,
        slab_slices=slab_slices,
        pose_deg=pose_deg,
    )


# ------------------------------------------------------------------------------------------- writing
def write_axial_case(
    case: AxialT2Case, folder: str | os.PathLike, overwrite: bool = False
) -> dict[str, Path]:
    """Write ``image.nii.gz``, ``labels.nii.gz`` and ``truth.json`` into ``folder`` (new or empty)."""
    from ...io import write_image
    from ...outputs import prepare_output_dir, write_json

    out = prepare_output_dir(folder, overwrite=overwrite)
    return {
        "image": write_image(case.image, out / "image.nii.gz", overwrite=overwrite),
        "labels": write_image(case.labels, out / "labels.nii.gz", overwrite=overwrite),
        "truth": write_json(out / "truth.json", case.truth, overwrite=overwrite),
    }


def manifest_row(case: AxialT2Case, image_name: str, patient: str) -> dict[str, Any]:
    """One manifest row (grades and boxes in pixel indices) of a written case."""
    row: dict[str, Any] = {"image": image_name, "patient": patient}
    row.update({k: case.truth["grades"][k] for k in AXIAL_TASK_KEYS})
    for r in REGIONS:
        entry = case.truth["stenosis"][r.key]
        row[r.key] = entry["grade"]
        for name, v in zip(("x0", "y0", "x1", "y1"), entry["box_index"], strict=True):
            row[f"{r.key}_{name}"] = round(float(v), 2)
    return row


def write_axial_dataset(
    out_dir: str | os.PathLike,
    seeds: Iterable[int],
    *,
    overwrite: bool = False,
    progress: bool | None = None,
    spacing_mm: float | None = None,
    fov_mm: float | None = None,
    noise: float | None = None,
    **wanted: Any,
) -> Path:
    """Write a training/evaluation folder: ``images/case_<seed>.nii.gz``, ``truth/case_<seed>.json`` and
    ``manifest.csv`` (:data:`MANIFEST_COLUMNS`; one row per image, ``patient`` = the case).

    Returns:
        The manifest path.
    """
    from ...io import write_image
    from ...outputs import prepare_output_dir, write_json, write_text
    from ...progress import track

    out = prepare_output_dir(out_dir, overwrite=overwrite)
    rows = []
    seeds = list(seeds)
    for seed in track(seeds, desc="axial phantoms", disable=None if progress is None else not progress):
        case = generate_axial_t2(int(seed), spacing_mm=spacing_mm, fov_mm=fov_mm, noise=noise, **wanted)
        name = f"case_{int(seed):05d}"
        write_image(case.image, out / "images" / f"{name}.nii.gz", overwrite=overwrite)
        write_json(out / "truth" / f"{name}.json", case.truth, overwrite=overwrite)
        rows.append(manifest_row(case, f"images/{name}.nii.gz", name))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(MANIFEST_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text(out / "manifest.csv", buffer.getvalue(), overwrite=overwrite)
