"""Per-level morphometry of a canonical label map: discs, spinal canal, foramina and lateral recesses (LPS, mm).

:func:`measure_morphometry` measures, at every level ``U-Lo`` whose disc ``disc_U_Lo`` and vertebrae ``U``
and ``Lo`` are labelled (names as given: run :func:`spineai.levels.label_levels` first when they may be
wrong):

Frames (from :mod:`spineai.planning.parts`)
    The endplates are planes fitted to the contacts between the disc and each vertebra, with cranial unit
    normals ``n_U`` (U's inferior endplate) and ``n_Lo`` (Lo's superior endplate). Lo's frame: axis
    ``a = n_Lo``, left-right axis ``x`` (toward the patient's left, LPS +x) and posterior axis ``p``; Lo's
    posterior wall ``Y_wall`` (the body's flat back, mid-sagittal). The **disc mid-plane** is the set of
    points as far below U's plane as above Lo's: ``(n_U + n_Lo) . q = c_U + c_Lo`` (normal: the bisector
    ``n`` of the two normals).

Disc height (``disc_height_mm``: ``anterior``, ``middle``, ``posterior``)
    On the disc's mid-sagittal line (through the centre of its endplate contacts, along ``p`` made
    orthogonal to ``n``), the disc's anterior and posterior margins are its outermost voxels there (within
    1 voxel of the mid-sagittal plane, half a voxel added outward). Each height is the distance between
    the two endplate planes along ``n`` at the anterior margin, halfway between the margins, and at the
    posterior margin.

Spinal canal (``canal_area_mm2``, ``canal_ap_mm``)
    The cross-section of the dural sac (the canal's contents, as labelled) in the disc mid-plane: its area
    and its extent along ``p`` projected into the plane, less half a voxel (the outermost nearest-voxel
    cells reach beyond the outline). The label map is sampled on a 0.25 mm grid in the plane (nearest
    voxel).

Neural foramen per side (``foramen``: ``height_mm``, ``width_mm``, ``area_mm2``)
    The **foraminal plane** is the parasagittal plane through the centre of U's pedicle on that side (the
    centroid of the pedicle's voxels, :func:`spineai.planning.parts.pedicle_points`), normal to ``x``, with
    2D axes ``p`` (posterior) and ``a`` (cranial). Bone (every vertebra, the sacrum) and disc within 8 mm
    of that plane are projected onto it (a lateral view of a 16 mm slab, as on a thick sagittal
    reformat: the inferior articular process of U, medial of Lo's superior articular process, closes the
    foramen above that process's tip), on a 0.25 mm grid (nearest voxel, slab sampled every 0.5 mm),
    eroded by 0.3 voxel (the union of voxel cells over the slab reaches beyond the bone's outline, its
    outermost cells winning; 0.3 voxel is what phantoms at 1-2 mm call for) and closed by a 2 mm disk
    (bridging 1-2 mm joint gaps); the foramen is the empty region containing the
    point 1.5 mm behind the disc's posterior margin on the disc mid-plane. **Area**: its area;
    **height**: its extent along ``a``; **width**: its extent along ``p`` on the line through that point
    (the disc's mid-height), i.e. from the posterior disc margin to the anterior face of the superior
    articular process. A foramen whose region reaches the edge of the 70 mm square is ``not enclosed``.

Lateral recess per side (``lateral_recess_depth_mm``)
    The subarticular (entrance) zone at the disc: on the disc mid-plane, along Lo's posterior axis made
    parallel to that plane, from the disc's posterior margin to the first bone behind it (the anterior
    face of the superior articular process), the shortest such distance across the band ``0.3 a .. 0.7 a``
    lateral of the mid-sagittal plane (``a``: half-width of Lo's body; every 0.5 mm across, 0.25 mm along
    the ray, nearest voxel): the 10th percentile of those distances across the band (the narrowest part,
    robust to single voxel steps). A herniation narrows it (it is part of the disc label).

Everything is named by level (``"L4-L5"``) and the patient's side (``left`` = LPS +x).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from ..anatomy import BY_LABEL, SIDES, SPINE_ORDER, disc_name
from ..errors import InputError

#: sampling step of the 2D sections (mm)
SECTION_CELL_MM = 0.25
#: closing radius of the foraminal section (mm)
FORAMEN_CLOSING_MM = 2.0
#: half side of the square sampled around the foramen (mm)
FORAMEN_HALF_MM = 35.0
#: the seed of the foramen lies this far behind the disc's posterior margin (mm)
FORAMEN_SEED_MM = 1.5
#: half-thickness of the slab projected onto the foraminal plane (mm)
FORAMEN_SLAB_MM = 8.0
#: the projected bone is eroded by this fraction of a voxel (see _foramen)
FORAMEN_ERODE_VOXEL = 0.25
#: the lateral recess depth is this percentile of the depths across the band (robust to voxel steps)
RECESS_PERCENTILE = 10.0
#: band across which the lateral recess is scanned, as fractions of the lower body's half-width
RECESS_BAND = (0.3, 0.7)


# ============================================================================================ results
@dataclass
class LevelMorphometry:
    """Morphometry of one level (see the module docstring); ``None`` where a measure could not be made."""

    level: str
    disc_height_mm: dict[str, float] = field(default_factory=dict)
    canal_area_mm2: float | None = None
    canal_ap_mm: float | None = None
    foramen: dict[str, dict[str, Any]] = field(default_factory=dict)
    lateral_recess_depth_mm: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def r(v: Any) -> Any:
            return None if v is None else round(float(v), 3)

        return dict(
            level=self.level,
            disc_height_mm={k: r(v) for k, v in self.disc_height_mm.items()},
            canal_area_mm2=r(self.canal_area_mm2),
            canal_ap_mm=r(self.canal_ap_mm),
            foramen={
                s: {k: (r(v) if isinstance(v, (int, float, np.floating)) else v) for k, v in f.items()}
                for s, f in self.foramen.items()
            },
            lateral_recess_depth_mm={k: r(v) for k, v in self.lateral_recess_depth_mm.items()},
            notes=list(self.notes),
        )


@dataclass
class Morphometry:
    """Result of :func:`measure_morphometry`: one :class:`LevelMorphometry` per level, cranial to caudal."""

    levels: list[LevelMorphometry]
    warnings: list[str]
    spacing_mm: tuple[float, float, float]

    def get(self, level: str) -> LevelMorphometry:
        for m in self.levels:
            if m.level == level:
                return m
        raise KeyError(level)

    def to_dict(self) -> dict[str, Any]:
        return dict(
            format="spineai-morphometry",
            version=1,
            frame="LPS",
            units="mm, mm2",
            spacing_mm=list(self.spacing_mm),
            definitions=dict(
                disc_height="distance between the two endplate planes along their bisector, at the anterior "
                "margin, midway and at the posterior margin of the disc's mid-sagittal line",
                canal="dural sac cross-section in the disc mid-plane (area, and extent along the posterior axis)",
                foramen="empty region of the lateral projection of a 16 mm slab centred on the upper pedicle (closed "
                "by a 2 mm disk): area, extent along the lower vertebra's axis (height), and along its posterior "
                "axis at the disc's mid-height (width: posterior disc margin to the superior articular process)",
                lateral_recess_depth="shortest distance, on the disc mid-plane, from the disc's posterior margin to "
                "the bone behind it (superior articular process), 0.3..0.7 of the lower body's half-width lateral",
            ),
            warnings=list(self.warnings),
            levels=[m.to_dict() for m in self.levels],
        )

    def table_rows(self) -> list[dict[str, Any]]:
        """One row per level and side for ``morphometry.tsv``."""
        rows = []
        for m in self.levels:
            for side in SIDES:
                f = m.foramen.get(side, {})
                rows.append(
                    dict(
                        level=m.level,
                        side=side,
                        disc_anterior_mm=m.disc_height_mm.get("anterior"),
                        disc_middle_mm=m.disc_height_mm.get("middle"),
                        disc_posterior_mm=m.disc_height_mm.get("posterior"),
                        canal_area_mm2=m.canal_area_mm2,
                        canal_ap_mm=m.canal_ap_mm,
                        foramen_height_mm=f.get("height_mm"),
                        foramen_width_mm=f.get("width_mm"),
                        foramen_area_mm2=f.get("area_mm2"),
                        lateral_recess_depth_mm=m.lateral_recess_depth_mm.get(side),
                    )
                )
        return rows


# ======================================================================================= 2D sections
def section_points(
    origin: np.ndarray, u: np.ndarray, v: np.ndarray, half_u: float, half_v: float, cell: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A square grid of points ``origin + i u + j v`` (cell centres) in a plane.

    Returns:
        ``(points (nu, nv, 3), us (nu,), vs (nv,))`` with ``us``/``vs`` the coordinates along ``u``/``v`` (mm).
    """
    us = np.arange(-half_u, half_u + 1e-9, cell)
    vs = np.arange(-half_v, half_v + 1e-9, cell)
    pts = origin[None, None, :] + us[:, None, None] * u[None, None, :] + vs[None, :, None] * v[None, None, :]
    return pts, us, vs


def foramen_region(
    solid: np.ndarray, cell: float, seed_ij: tuple[int, int], closing_mm: float = FORAMEN_CLOSING_MM
) -> np.ndarray | None:
    """The empty region of a 2D section containing ``seed_ij`` after closing ``solid`` by a disk.

    Args:
        solid: boolean (nu, nv) section of bone and disc.
        cell: cell size (mm).
        seed_ij: cell inside the foramen.
        closing_mm: radius of the closing disk (mm).

    Returns:
        Boolean mask of the region, or ``None`` when the seed is solid or the region reaches the border.
    """
    r = int(round(closing_mm / cell))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disk = (xx * xx + yy * yy) <= r * r
    padded = np.pad(solid, r + 1, constant_values=False)
    closed = ndimage.binary_erosion(ndimage.binary_dilation(padded, structure=disk), structure=disk)
    closed = closed[r + 1 : -(r + 1), r + 1 : -(r + 1)] | solid
    i, j = seed_ij
    if not (0 <= i < solid.shape[0] and 0 <= j < solid.shape[1]) or closed[i, j]:
        return None
    lab, _ = ndimage.label(~closed)
    region = lab == lab[i, j]
    if region[0, :].any() or region[-1, :].any() or region[:, 0].any() or region[:, -1].any():
        return None
    return region


def foramen_measures(
    region: np.ndarray, us: np.ndarray, vs: np.ndarray, seed_ij: tuple[int, int], cell: float
) -> dict[str, float]:
    """Area, height (extent along the section's ``v``) and width (extent along ``u`` on the seed's row)."""
    iu, iv = np.nonzero(region)
    row = np.nonzero(region[:, seed_ij[1]])[0]
    return dict(
        area_mm2=float(region.sum() * cell * cell),
        height_mm=float(vs[iv].max() - vs[iv].min() + cell),
        width_mm=float(us[row].max() - us[row].min() + cell) if row.size else 0.0,
    )


def plane_heights(
    n_up: np.ndarray, c_up: float, n_lo: np.ndarray, c_lo: float, n: np.ndarray, q: np.ndarray
) -> float:
    """Distance along ``n`` between the planes ``n_up . p = c_up`` (above) and ``n_lo . p = c_lo`` at ``q``."""
    s_up = (c_up - float(n_up @ q)) / float(n_up @ n)
    s_lo = (c_lo - float(n_lo @ q)) / float(n_lo @ n)
    return float(s_up - s_lo)


def mid_plane_point(
    n_up: np.ndarray, c_up: float, n_lo: np.ndarray, c_lo: float, n: np.ndarray, q: np.ndarray
) -> np.ndarray:
    """The point of the line ``q + s n`` on the disc mid-plane (equidistant from both endplate planes)."""
    s_up = (c_up - float(n_up @ q)) / float(n_up @ n)
    s_lo = (c_lo - float(n_lo @ q)) / float(n_lo @ n)
    return q + 0.5 * (s_up + s_lo) * n


# ======================================================================================== measurement
def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def measure_morphometry(labelmap: Any, levels: list[str] | None = None) -> Morphometry:
    """Disc heights, canal area and diameter, foramina and lateral recesses at every labelled level.

    Args:
        labelmap: canonical label map (path, :class:`spineai.io.LabelMap` or ``sitk.Image``); the names are
            used as given.
        levels: levels to measure (``"L4-L5"``); default every level whose disc and two vertebrae are labelled.

    Returns:
        :class:`Morphometry`, cranial to caudal; a measure that cannot be made is ``None`` with a note.

    Raises:
        InputError: unreadable label map, a level name that is not a level, or no measurable level.
    """
    from ..planning.parts import (
        PartError,
        endplate,
        left_right_axis,
        pedicle_points,
        vertebra_frame,
    )
    from ..planning.triangles import parse_level
    from ..planning.volume import LabelVolume
    from .labelling import load_canonical

    image = load_canonical(labelmap)
    vol = LabelVolume(image)
    present = vol.names_present()
    if levels is None:
        wanted = []
        order = [v for v in SPINE_ORDER if v in present]
        for u, lo in zip(order, order[1:], strict=False):
            if disc_name(u, lo) in present:
                wanted.append((f"{u}-{lo}", u, lo))
    else:
        wanted = [parse_level(lv) for lv in levels]
    if not wanted:
        raise InputError(
            "No level can be measured: no labelled disc lies between two labelled vertebrae.",
            "pass a segmentation with vertebrae and discs named canonically (run 'spineai levels' first)",
        )
    bone_labels = [
        v for v in vol.labels_present() if BY_LABEL.get(v) and BY_LABEL[v].kind in ("vertebra", "sacrum")
    ]
    disc_labels = [v for v in vol.labels_present() if BY_LABEL.get(v) and BY_LABEL[v].kind == "disc"]
    solid_lut = np.zeros(max(BY_LABEL) + 1, dtype=bool)
    solid_lut[bone_labels + disc_labels] = True
    sac = next(s.label for s in BY_LABEL.values() if s.name == "dural_sac")
    out: list[LevelMorphometry] = []
    warnings: list[str] = []
    for level, upper, lower in wanted:
        m = LevelMorphometry(level=level)
        out.append(m)
        disc = disc_name(upper, lower)
        missing = [n for n in (upper, lower, disc) if n not in present]
        if missing:
            m.notes.append(f"not measured: the label map has no {', '.join(missing)}")
            warnings.append(f"{level}: not measured (no {', '.join(missing)})")
            continue
        try:
            lo_plate = endplate(vol, lower, disc, vertebra_is_below=True)
            up_plate = endplate(vol, upper, disc, vertebra_is_below=False)
            x = left_right_axis(lo_plate.points, up_plate.points)
            lo_frame = vertebra_frame(vol, lower, lo_plate, x, plate_is_superior=True)
            up_frame = vertebra_frame(vol, upper, up_plate, x, plate_is_superior=False)
        except PartError as exc:
            m.notes.append(f"not measured: {exc}")
            warnings.append(f"{level}: not measured ({exc})")
            continue
        n_up, c_up = up_plate.normal, up_plate.offset
        n_lo, c_lo = lo_plate.normal, lo_plate.offset
        n = _unit(n_up + n_lo)
        lat = lo_frame.lateral - float(lo_frame.lateral @ n) * n
        lat = _unit(lat)
        post = _unit(np.cross(n, lat))
        step = float(np.max(vol.spacing))
        # ---------------------------------------------------------------- disc heights
        centre = 0.5 * (lo_plate.centre + up_plate.centre)
        dpts = vol.points(disc)
        rel = dpts - centre
        band = np.abs(rel @ lat) <= max(1.0, 0.5 * float(vol.voxel_half_extent(lat)) * 2)
        if np.count_nonzero(band) < 3:
            band = np.abs(rel @ lat) <= step
        ys = rel[band] @ post
        half = vol.voxel_half_extent(post)
        y_ant, y_post = float(ys.min()) - half, float(ys.max()) + half
        for name, y in (("anterior", y_ant), ("middle", 0.5 * (y_ant + y_post)), ("posterior", y_post)):
            m.disc_height_mm[name] = plane_heights(n_up, c_up, n_lo, c_lo, n, centre + y * post)
        # ---------------------------------------------------------------- canal (dural sac) in the mid-plane
        mid = mid_plane_point(n_up, c_up, n_lo, c_lo, n, centre + 0.5 * (y_ant + y_post) * post)
        if vol.count("dural_sac") > 0:
            sp = vol.points("dural_sac")
            near = np.abs((sp - mid) @ n) < 3 * step
            if np.count_nonzero(near):
                c0 = sp[near].mean(0)
                c0 = c0 - float((c0 - mid) @ n) * n
                pts, us, vs = section_points(c0, post, lat, 25.0, 25.0, SECTION_CELL_MM)
                inside = vol.lookup(pts.reshape(-1, 3)).reshape(pts.shape[:2]) == sac
                if inside.any():
                    lab, _ = ndimage.label(inside)
                    ci, cj = np.unravel_index(np.argmin(us[:, None] ** 2 + vs[None, :] ** 2), inside.shape)
                    if lab[ci, cj]:
                        inside = lab == lab[ci, cj]
                    m.canal_area_mm2 = float(inside.sum() * SECTION_CELL_MM**2)
                    iu = np.nonzero(inside.any(axis=1))[0]
                    # the outermost nearest-voxel cells reach about half a voxel beyond the outline
                    extent = float(us[iu].max() - us[iu].min() + SECTION_CELL_MM)
                    m.canal_ap_mm = extent - vol.voxel_half_extent(post)
            if m.canal_area_mm2 is None:
                m.notes.append("the dural sac does not cross the disc mid-plane")
        else:
            m.notes.append("canal not measured: no dural_sac label")
        # ---------------------------------------------------------------- per side
        for side in SIDES:
            try:
                ped = pedicle_points(vol, up_frame, side, up_plate.offset)
            except Exception:  # noqa: BLE001 - geometry of a corrupt map
                ped = np.zeros((0, 3))
            if len(ped) < 5:
                m.foramen[side] = dict(
                    status="not measured", reason=f"no pedicle of {upper} found on the {side}"
                )
            else:
                m.foramen[side] = _foramen(
                    vol, solid_lut, lo_frame, ped.mean(0), n_up, c_up, n_lo, c_lo, n, disc
                )
            m.lateral_recess_depth_mm[side] = _recess(
                vol, bone_labels, disc, lo_frame, n_up, c_up, n_lo, c_lo, n, side
            )
    return Morphometry(levels=out, warnings=warnings, spacing_mm=tuple(float(s) for s in vol.spacing))


def _foramen(
    vol: Any,
    solid_lut: np.ndarray,
    lo_frame: Any,
    ped_centre: np.ndarray,
    n_up: np.ndarray,
    c_up: float,
    n_lo: np.ndarray,
    c_lo: float,
    n: np.ndarray,
    disc: str,
) -> dict[str, Any]:
    from ..anatomy import BY_NAME

    a, p, x = lo_frame.axis, lo_frame.posterior, lo_frame.lateral
    # plane through the pedicle centre, normal x; its origin on the disc mid-plane level with the pedicle
    q0 = mid_plane_point(n_up, c_up, n_lo, c_lo, a, ped_centre)
    pts, us, vs = section_points(q0, p, a, FORAMEN_HALF_MM, FORAMEN_HALF_MM, SECTION_CELL_MM)
    solid = np.zeros(pts.shape[:2], dtype=bool)
    disc_value = BY_NAME[disc].label
    disc_cells = np.zeros(pts.shape[:2], dtype=bool)
    idx0 = vol.to_index(pts.reshape(-1, 3))
    dx = vol.lps_to_index @ x  # index step per mm along x
    arr = np.asarray(vol.array)
    shape = vol.shape_xyz
    for off in np.arange(-FORAMEN_SLAB_MM, FORAMEN_SLAB_MM + 1e-9, 0.5):
        ijk = np.rint(idx0 + off * dx).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < shape), axis=1)
        labels = np.zeros(len(ijk), dtype=np.int64)
        sel = ijk[inside]
        labels[inside] = arr[sel[:, 2], sel[:, 1], sel[:, 0]]
        labels = labels.reshape(pts.shape[:2])
        solid |= solid_lut[np.clip(labels, 0, len(solid_lut) - 1)]
        if abs(off) < 1e-9:
            disc_cells = labels == disc_value
    # the union of nearest-voxel cells over the slab reaches beyond the bone's outline (its outermost cells
    # win): take FORAMEN_ERODE_VOXEL of a voxel back before closing
    r = int(round(FORAMEN_ERODE_VOXEL * float(np.mean(vol.spacing)) / SECTION_CELL_MM))
    if r > 0:
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        solid = ndimage.binary_erosion(solid, structure=(xx * xx + yy * yy) <= r * r, border_value=1)
    return foramen_from_section(solid, disc_cells, us, vs, q0, x)


def foramen_from_section(
    solid: np.ndarray,
    disc_cells: np.ndarray,
    us: np.ndarray,
    vs: np.ndarray,
    q0: np.ndarray,
    normal: np.ndarray,
) -> dict[str, Any]:
    """The foramen's measures from a projected section (``solid``) and the disc's cells in the plane itself.

    The section's rows run along ``us`` (posterior) and its columns along ``vs`` (cranial); the seed lies on
    the row ``vs = 0`` (the disc mid-plane), :data:`FORAMEN_SEED_MM` behind the disc's last cell.
    """
    cell = float(us[1] - us[0])
    j0 = int(np.argmin(np.abs(vs)))
    row = np.nonzero(disc_cells[:, j0])[0]
    if row.size == 0:
        return dict(status="not measured", reason="the disc does not reach the foraminal plane")
    i_seed = int(row.max()) + int(round(FORAMEN_SEED_MM / cell))
    region = foramen_region(solid, cell, (i_seed, j0))
    if region is None:
        return dict(
            status="not enclosed",
            reason="no free space behind the disc at its mid-height (a closed foramen), or the foramen is open "
            "in the section (a gap wider than 4 mm around it)",
        )
    out: dict[str, Any] = dict(status="ok")
    out.update(foramen_measures(region, us, vs, (i_seed, j0), cell))
    out["plane_point_lps"] = np.round(q0, 3).tolist()
    out["plane_normal_lps"] = np.round(normal, 6).tolist()
    return out


def _recess(
    vol: Any,
    bone_values: list[int],
    disc: str,
    lo_frame: Any,
    n_up: np.ndarray,
    c_up: float,
    n_lo: np.ndarray,
    c_lo: float,
    n: np.ndarray,
    side: str,
) -> float | None:
    from ..anatomy import BY_NAME

    sx = 1.0 if side == "left" else -1.0
    lat = lo_frame.lateral - float(lo_frame.lateral @ n) * n
    lat = lat / np.linalg.norm(lat)
    p = np.cross(n, lat)
    a_half = float(np.max(np.abs((lo_frame.body.footprint - lo_frame.origin) @ lo_frame.lateral)))
    a_half += vol.voxel_half_extent(lo_frame.lateral)
    ys = np.arange(-15.0, 40.0, SECTION_CELL_MM)
    disc_value = BY_NAME[disc].label
    depths = []
    for frac in np.arange(RECESS_BAND[0], RECESS_BAND[1] + 1e-9, 0.5 / a_half):
        q = lo_frame.origin + sx * frac * a_half * lo_frame.lateral
        q = mid_plane_point(n_up, c_up, n_lo, c_lo, n, q)
        labels = vol.lookup(q[None, :] + ys[:, None] * p[None, :])
        depth = recess_on_ray(labels == disc_value, np.isin(labels, bone_values), ys)
        if depth is not None:
            depths.append(depth)
    return float(np.percentile(depths, RECESS_PERCENTILE)) if depths else None


def recess_on_ray(disc: np.ndarray, bone: np.ndarray, ys: np.ndarray) -> float | None:
    """Distance along a ray from the disc's posterior margin to the first bone behind it (mm), or ``None``.

    The margin is halfway between the last disc sample and the next one; the bone's front halfway between
    the last free sample and the first bone sample.
    """
    k = np.nonzero(disc)[0]
    if k.size == 0:
        return None
    last = int(k.max())
    behind = np.nonzero(bone[last + 1 :])[0]
    if behind.size == 0:
        return None
    first = last + 1 + int(behind[0])
    cell = float(ys[1] - ys[0])
    return float((ys[first] - 0.5 * cell) - (ys[last] + 0.5 * cell))


def morphometry_tsv(result: Morphometry) -> str:
    """``morphometry.tsv`` text: one row per level and side."""
    rows = result.table_rows()
    cols = list(rows[0]) if rows else ["level", "side"]
    lines = ["\t".join(cols)]
    for r in rows:
        lines.append(
            "\t".join(
                "" if r[c] is None else (f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]))
                for c in cols
            )
        )
    return "\n".join(lines) + "\n"


def write_morphometry(
    result: Morphometry, out_dir: str | os.PathLike, overwrite: bool = False
) -> dict[str, Any]:
    """Write ``morphometry.json`` and ``morphometry.tsv`` into ``out_dir`` (new or empty unless ``overwrite``)."""
    from ..outputs import check_writable, prepare_output_dir, write_json, write_text

    out = prepare_output_dir(out_dir, overwrite=overwrite)
    for n in ("morphometry.json", "morphometry.tsv"):
        check_writable(out / n, overwrite)
    return {
        "morphometry.json": write_json(out / "morphometry.json", result.to_dict(), overwrite=overwrite),
        "morphometry.tsv": write_text(out / "morphometry.tsv", morphometry_tsv(result), overwrite=overwrite),
    }
