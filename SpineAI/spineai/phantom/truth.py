"""Ground truth of the phantom: Kambin's and the safe triangle from the generator's own primitives.

Construction (exact, analytic; see ``docs/phantom.md`` for figures of the same text)
---------------------------------------------------------------------------------------
For a foramen ``U-Lo`` on one side (``U`` upper vertebra, ``Lo`` lower vertebra) and a **view
direction** ``v`` (unit vector from the skin toward the target, i.e. along the X-ray beam / needle as
the operator looks), every structure is projected along ``v`` onto the image plane. The image has two
axes, both orthogonal to ``v``:

* ``up`` = the lower vertebra's axis ``a`` (normal of its superior endplate) made orthogonal to ``v``;
* ``lateral`` = ``up x v`` oriented toward the side of the foramen (``up`` and ``lateral`` are
  orthogonal to ``a`` and to each other).

Every triangle edge is a **supporting line** of one labelled structure (part) in one image direction,
i.e. the line where that structure's projection ends: ``max(u . p)`` over the structure's points for
the stated direction ``u``. Each is therefore measurable from a label mask as the maximum of ``u . p``
over the voxel centres of the stated region.

Kambin's triangle (paper: exiting root = hypotenuse, traversing root and/or facet = height, superior
border of the lower vertebra = base):

* **base**: top of the lower vertebral body, support of ``Lo``'s body in ``+up``. In the reference view
  (``v`` orthogonal to ``a``) this is the plane of Lo's superior endplate, i.e. the inferior face of the
  disc ``disc_U_Lo`` (``min(a . p)`` over the disc);
* **height**: the more lateral of (i) the lateral border of Lo's superior articular process (facet),
  support in ``+lateral`` of the SAP, and (ii) the lateral border of the traversing root (``root_Lo``),
  support in ``+lateral`` of its voxels above Lo's superior endplate plane;
* **hypotenuse**: the inferior (caudal-medial) border of the exiting root's straight foraminal segment
  (``root_U`` between its ``A`` and ``B`` landmarks), support of that segment in ``-m`` where ``m`` is
  the image normal of the segment's projected axis pointing up;
* vertices: ``apex`` = height x hypotenuse, ``base_medial`` = height x base (the right angle),
  ``base_lateral`` = hypotenuse x base.

Safe triangle (paper: lower margin of the pedicle = base, lateral border of the vertebral body =
height, outer border of the exiting nerve = hypotenuse):

* **base**: lower margin of U's pedicle, support of the pedicle in ``-up``;
* **height**: lateral border of U's vertebral body, support of the body in ``+lateral``;
* **hypotenuse**: the superior (outer) border of the exiting root's foraminal segment, support in ``+m``;
* vertices: ``corner`` = base x height (the right angle, under the pedicle at the body's border),
  ``medial`` = base x hypotenuse, ``inferior`` = height x hypotenuse.

A triangle whose hypotenuse does not cut its two legs on the correct side (a root touching the endplate
or the pedicle) has area 0 and ``degenerate: true``.

The **reference view** of a foramen is the posteroanterior view squared to the lower vertebra:
``v = -posterior`` of ``Lo`` (its own antero-posterior axis, orthogonal to ``a`` and to the patient's
left-right axis). The published areas (Fan et al. 2019, Table 4) are reproduced in this view. Triangle
vertices (3D, LPS) are the image points placed in the plane through ``M`` (the midpoint of the exiting
root's foraminal segment) orthogonal to ``v``. :func:`triangles_in_view` gives the same construction
for any view, e.g. the standard 25-degree oblique used for the visibility check.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..anatomy import SIDES, disc_name
from ..carm import STANDARD_OBLIQUE_DEG, angles_from_direction, view_direction_lps
from .geometry import Anatomy, ForamenGeom
from .sdf import Capsule, Primitive, unit

KAMBIN_VERTICES = ("apex", "base_medial", "base_lateral")
SAFE_VERTICES = ("corner", "medial", "inferior")
#: fraction of a triangle's sample points that must see the skin for it to count as visible
VISIBLE_FRACTION = 0.5


def reference_view(fg: ForamenGeom) -> np.ndarray:
    """Body-frame unit direction of the reference view: posteroanterior, squared to the lower vertebra."""
    return -unit(fg.posterior)


def image_axes(fg: ForamenGeom, view: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(lateral, up)`` image axes (body frame) of ``view`` for this foramen."""
    v = unit(view)
    up = fg.axis - np.dot(fg.axis, v) * v
    if np.linalg.norm(up) < 1e-6:
        raise ValueError("view direction is parallel to the vertebral axis")
    up = unit(up)
    lateral = unit(np.cross(up, v))
    if np.dot(lateral, fg.lateral) < 0:
        lateral = -lateral
    return lateral, up


def _intersect(n1: np.ndarray, c1: float, n2: np.ndarray, c2: float) -> np.ndarray:
    m = np.array([n1, n2], dtype=float)
    return np.linalg.solve(m, np.array([c1, c2], dtype=float))


def _area(q: np.ndarray) -> float:
    return float(
        0.5 * abs((q[1, 0] - q[0, 0]) * (q[2, 1] - q[0, 1]) - (q[2, 0] - q[0, 0]) * (q[1, 1] - q[0, 1]))
    )


def _height_support(fg: ForamenGeom, lateral: np.ndarray) -> tuple[float, str, str]:
    """Support in ``lateral`` of the SAP and of the traversing root above the endplate (the larger)."""
    sap = fg.lower_sap.support(lateral)
    t_e = float(np.dot(fg.axis, fg.lower_endplate_point))
    root = max((c.support_above(lateral, fg.axis, t_e) for c in fg.traversing_capsules), default=-np.inf)
    if root > sap:
        return root, fg.traversing_root, "lateral border of the traversing root above the lower endplate"
    return sap, fg.lower, f"lateral border of the superior articular process ({fg.side})"


def triangles_in_view(fg: ForamenGeom, view: np.ndarray) -> dict[str, Any]:
    """Kambin's and the safe triangle of one foramen seen along ``view`` (body frame, analytic).

    Returns a dictionary with ``lateral``, ``up`` (image axes), ``origin`` (the plane point ``M``), and
    per triangle ``kambin``/``safe``: ``vertices_image`` (3, 2) in mm, ``vertices_body`` (3, 3),
    ``area_mm2``, ``degenerate``, ``on_root_segment`` (per root-border vertex: whether it lies alongside
    the straight foraminal segment, ``False`` where it lies on the border's extension, e.g. the safe
    triangle's medial vertex under the pedicle) and ``edges`` (supporting lines).
    """
    v = unit(view)
    lateral, up = image_axes(fg, v)
    seg: Capsule = fg.foraminal_segment
    m_pt = 0.5 * (np.asarray(seg.a) + np.asarray(seg.b))

    def s_of(val: float, u: np.ndarray) -> float:  # support value -> image coordinate relative to M
        return val - float(np.dot(u, m_pt))

    d = np.asarray(seg.b) - np.asarray(seg.a)
    dd = np.array([np.dot(lateral, d), np.dot(up, d)])
    normal = np.array([-dd[1], dd[0]]) / np.linalg.norm(dd)
    if normal[1] < 0:
        normal = -normal
    m3 = normal[0] * lateral + normal[1] * up
    c_up = s_of(seg.support(m3), m3)
    c_low = -s_of(seg.support(-m3), -m3)
    t_base = s_of(fg.lower_body.support(up), up)
    h_val, h_struct, h_border = _height_support(fg, lateral)
    s_height = s_of(h_val, lateral)
    t_ped = -s_of(fg.upper_pedicle.support(-up), -up)
    s_body = s_of(fg.upper_body.support(lateral), lateral)
    ex, ey = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    descending = normal[0] > 1e-9  # the root runs down as it runs laterally in this view
    qa = np.array([np.dot(lateral, np.asarray(seg.a) - m_pt), np.dot(up, np.asarray(seg.a) - m_pt)])
    qb = np.array([np.dot(lateral, np.asarray(seg.b) - m_pt), np.dot(up, np.asarray(seg.b) - m_pt)])

    def on_segment(q: np.ndarray) -> bool:
        u = float(np.dot(q - qa, qb - qa) / np.dot(qb - qa, qb - qa))
        return -1e-6 <= u <= 1 + 1e-6

    def pack(q: np.ndarray, valid: bool, root_idx: dict[str, int], edges: list[dict]) -> dict[str, Any]:
        body = m_pt + q[:, :1] * lateral + q[:, 1:] * up
        return dict(
            vertices_image=q,
            vertices_body=body,
            area_mm2=_area(q) if valid else 0.0,
            degenerate=not valid,
            on_root_segment={name: bool(on_segment(q[i])) for name, i in root_idx.items()},
            edges=edges,
        )

    # Kambin
    if descending:
        apex = _intersect(ex, s_height, normal, c_low)
        corner = _intersect(ex, s_height, ey, t_base)
        lat = _intersect(normal, c_low, ey, t_base)
        k = np.array([apex, corner, lat])
        k_valid = bool(apex[1] > t_base + 1e-9 and lat[0] > s_height + 1e-9)
    else:
        k, k_valid = np.zeros((3, 2)), False
    root_u = fg.exiting_root
    kambin = pack(
        k,
        k_valid,
        {"apex": 0, "base_lateral": 2},
        [
            _edge(
                "hypotenuse",
                root_u,
                "inferior border of the exiting root's foraminal segment",
                -m3,
                ("apex", "base_lateral"),
                seg.support(-m3),
            ),
            _edge("height", h_struct, h_border, lateral, ("apex", "base_medial"), h_val),
            _edge(
                "base",
                fg.lower,
                "superior border (superior endplate) of the lower vertebral body",
                up,
                ("base_medial", "base_lateral"),
                fg.lower_body.support(up),
            ),
        ],
    )
    # safe
    if descending:
        corner = _intersect(ey, t_ped, ex, s_body)
        medial = _intersect(ey, t_ped, normal, c_up)
        inferior = _intersect(ex, s_body, normal, c_up)
        q = np.array([corner, medial, inferior])
        s_valid = bool(inferior[1] < t_ped - 1e-9 and medial[0] < s_body - 1e-9)
    else:
        q, s_valid = np.zeros((3, 2)), False
    safe = pack(
        q,
        s_valid,
        {"medial": 1, "inferior": 2},
        [
            _edge(
                "hypotenuse",
                root_u,
                "superior (outer) border of the exiting root's foraminal segment",
                m3,
                ("medial", "inferior"),
                seg.support(m3),
            ),
            _edge(
                "height",
                fg.upper,
                "lateral border of the upper vertebral body",
                lateral,
                ("corner", "inferior"),
                fg.upper_body.support(lateral),
            ),
            _edge(
                "base",
                fg.upper,
                f"lower margin of the upper vertebra's pedicle ({fg.side})",
                -up,
                ("corner", "medial"),
                fg.upper_pedicle.support(-up),
            ),
        ],
    )
    return dict(view=v, lateral=lateral, up=up, origin=m_pt, kambin=kambin, safe=safe)


def _edge(
    name: str, structure: str, border: str, direction: np.ndarray, vertices: tuple[str, str], support: float
) -> dict[str, Any]:
    return dict(
        name=name,
        structure=structure,
        border=border,
        support_direction=unit(direction),
        support_value=float(support) / float(np.linalg.norm(direction)),
        vertices=list(vertices),
    )


# ------------------------------------------------------------------------------------------ visibility
def _blockers(anatomy: Anatomy, fg: ForamenGeom) -> list[tuple[str, Primitive, list[Primitive]]]:
    """Solids that can hide a target from the skin: bone (but not the two vertebral bodies the triangles
    lie on, nor the disc), the dural sac and every nerve root; with each structure's subtractions."""
    out = []
    for s in anatomy.structures:
        if s.tissue not in ("bone", "nerve", "csf"):
            continue
        for p in s.primitives:
            if p.part in (f"{fg.upper}:vertebral_body", f"{fg.lower}:vertebral_body"):
                continue
            out.append((s.key, p, s.subtract))
    return out


def _triangle_samples(q: np.ndarray, n: int = 7) -> np.ndarray:
    """Barycentric sample points strictly inside a 2D triangle (k, 2)."""
    pts = []
    for i in range(n):
        for j in range(n - i):
            w = np.array([i + 1 / 3, j + 1 / 3, n - i - j - 2 / 3]) / n
            if w.min() > 0:
                pts.append(w @ q)
    return np.array(pts)


def ray_visibility(
    anatomy: Anatomy,
    fg: ForamenGeom,
    res: dict[str, Any],
    kind: str,
    step_mm: float = 0.5,
    max_mm: float = 300.0,
) -> dict[str, Any]:
    """Cast rays from points inside a triangle toward the skin (along ``-view``) and record what they hit.

    Args:
        anatomy: the phantom anatomy.
        fg: the foramen.
        res: :func:`triangles_in_view` of that foramen for the view.
        kind: ``"kambin"`` or ``"safe"``.
        step_mm: ray-marching step; max_mm: longest ray.

    Returns ``visible_fraction`` (share of sample points whose ray reaches the skin unobstructed),
    ``blocked_by`` (part name -> share of points it blocks first, e.g. ``"ilium_left"``,
    ``"L5:transverse_process_left"``) and ``blocking_structures`` (canonical names).
    """
    tri = res[kind]
    if tri["degenerate"]:
        return dict(visible_fraction=0.0, blocked_by={}, blocking_structures=[])
    lateral, up, origin = res["lateral"], res["up"], res["origin"]
    q2 = _triangle_samples(tri["vertices_image"])
    starts = origin + q2[:, :1] * lateral + q2[:, 1:] * up
    steps = np.arange(0.0, max_mm, step_mm)
    back = -unit(res["view"])
    pos = starts[:, None, :] + steps[None, :, None] * back[None, None, :]
    n, k = pos.shape[:2]
    flat = pos.reshape(-1, 3)
    inside_body = (anatomy.skin.sdf_points(flat) <= 0).reshape(n, k)
    # rays stop at the skin: the first step outside the body
    outside = ~inside_body
    exit_idx = np.where(outside.any(axis=1), outside.argmax(axis=1), k)
    first_hit = np.full(n, k, dtype=int)
    hit_part = np.array([""] * n, dtype=object)
    hit_struct = np.array([""] * n, dtype=object)
    lo, hi = flat.min(axis=0), flat.max(axis=0)
    for key, prim, subtract in _blockers(anatomy, fg):
        plo, phi = prim.bbox()
        if np.any(phi < lo) or np.any(plo > hi):
            continue
        d = prim.sdf_points(flat)
        for sub in subtract:
            d = np.maximum(d, -sub.sdf_points(flat))
        inside = (d < 0).reshape(n, k)
        has = inside.any(axis=1)
        idx = np.where(has, inside.argmax(axis=1), k)
        better = (idx < first_hit) & (idx < exit_idx)
        first_hit = np.where(better, idx, first_hit)
        hit_part[better] = prim.part or key
        hit_struct[better] = key
    blocked = first_hit < exit_idx
    frac = 1.0 - float(blocked.mean())
    parts: dict[str, float] = {}
    for p in hit_part[blocked]:
        parts[p] = parts.get(p, 0.0) + 1.0 / n
    parts = dict(sorted(((p, round(f, 4)) for p, f in parts.items()), key=lambda kv: -kv[1]))
    structs = sorted({str(s) for s in hit_struct[blocked]})
    return dict(visible_fraction=round(frac, 4), blocked_by=parts, blocking_structures=structs)


# ---------------------------------------------------------------------------------------------- truth
def _world_edges(anatomy: Anatomy, edges: list[dict]) -> list[dict]:
    out = []
    for e in edges:
        u_b = e["support_direction"]
        u_w = anatomy.dir_to_world(u_b)
        val_w = (
            e["support_value"]
            - float(np.dot(u_b, anatomy.fov_center_body))
            + float(np.dot(u_w, anatomy.translation))
        )
        out.append(
            dict(
                name=e["name"],
                structure=e["structure"],
                border=e["border"],
                vertices=e["vertices"],
                support_direction_lps=_r(u_w, 6),
                support_value_mm=round(val_w, 4),
            )
        )
    return out


def _r(a: Any, nd: int = 4) -> Any:
    return np.round(np.asarray(a, dtype=float), nd).tolist()


def _triangle_entry(
    anatomy: Anatomy, fg: ForamenGeom, view_b: np.ndarray, res: dict, kind: str, view_name: str
) -> dict[str, Any]:
    tri = res[kind]
    names = KAMBIN_VERTICES if kind == "kambin" else SAFE_VERTICES
    return dict(
        view=view_name,
        view_direction_lps=_r(anatomy.dir_to_world(view_b), 6),
        plane_normal_lps=_r(anatomy.dir_to_world(view_b), 6),
        plane_point_lps=_r(anatomy.to_world(res["origin"])),
        image_axes_lps=dict(
            lateral=_r(anatomy.dir_to_world(res["lateral"]), 6), up=_r(anatomy.dir_to_world(res["up"]), 6)
        ),
        vertex_names=list(names),
        vertices_lps_mm=_r(anatomy.to_world(tri["vertices_body"])),
        vertices_image_mm=_r(tri["vertices_image"]),
        area_mm2=round(float(tri["area_mm2"]), 4),
        degenerate=bool(tri["degenerate"]),
        root_vertices_on_foraminal_segment=dict(tri["on_root_segment"]),
        edges=_world_edges(anatomy, tri["edges"]),
    )


def level_view_body(fg: ForamenGeom, oblique_deg: float, tilt_deg: float) -> np.ndarray:
    """Body-frame view direction of a C-arm aligned with the level: :func:`spineai.carm.view_direction_lps`
    evaluated in the upper vertebra's frame (left-right axis, its antero-posterior axis, its cranio-caudal
    axis), so that ``tilt_deg = 0`` means the beam runs parallel to the inferior endplate of the vertebra
    whose root exits (the squared endplate of the clinical protocol for a transforaminal injection)."""
    c = view_direction_lps(oblique_deg, tilt_deg, fg.side)
    return unit(
        c[0] * np.array([1.0, 0.0, 0.0]) + c[1] * unit(fg.upper_posterior) + c[2] * unit(fg.upper_axis)
    )


def standard_view_body(fg: ForamenGeom) -> np.ndarray:
    """The standard tESI view of a level: 25 degrees ipsilateral oblique, upper endplate squared (no tilt)."""
    return level_view_body(fg, STANDARD_OBLIQUE_DEG, 0.0)


def foramen_triangles(anatomy: Anatomy, fkey: str, with_visibility: bool = True) -> dict[str, Any]:
    """Truth entries (``kambin``, ``safe``) of one foramen ``"L5-S1/left"`` in world LPS."""
    fg = anatomy.foramina[fkey]
    ref = reference_view(fg)
    res = triangles_in_view(fg, ref)
    out: dict[str, Any] = {}
    std = standard_view_body(fg)
    res_std = triangles_in_view(fg, std) if with_visibility else None
    for kind in ("kambin", "safe"):
        entry = _triangle_entry(anatomy, fg, ref, res, kind, "reference_posteroanterior")
        if res_std is not None:
            vis = ray_visibility(anatomy, fg, res_std, kind)
            std_entry = _triangle_entry(anatomy, fg, std, res_std, kind, "standard_oblique")
            visible = (not res_std[kind]["degenerate"]) and vis["visible_fraction"] >= VISIBLE_FRACTION
            table_oblique, table_tilt = angles_from_direction(std, fg.side)
            entry["standard_view"] = dict(
                oblique_deg=STANDARD_OBLIQUE_DEG,
                tilt_deg=0.0,
                frame="upper vertebra (C-arm squared to its inferior endplate)",
                patient_frame_oblique_deg=round(table_oblique, 3),
                patient_frame_tilt_deg=round(table_tilt, 3),
                view_direction_lps=std_entry["view_direction_lps"],
                area_mm2=std_entry["area_mm2"],
                degenerate=std_entry["degenerate"],
                vertices_lps_mm=std_entry["vertices_lps_mm"],
                visible=bool(visible),
                visible_fraction=vis["visible_fraction"],
                blocked_by=vis["blocked_by"],
                blocking_structures=vis["blocking_structures"],
            )
        out[kind] = entry
    return out


def landmarks(anatomy: Anatomy) -> dict[str, Any]:
    """Per-level landmark points (world LPS, mm) and unit axes."""
    w = anatomy.to_world
    out: dict[str, Any] = {"vertebrae": {}, "discs": {}, "roots": {}, "foramina": {}}
    for name, v in anatomy.vertebrae.items():
        entry = dict(
            body_center=_r(w(v.frame.origin)),
            superior_endplate_center=_r(w(v.superior_endplate_center)),
            inferior_endplate_center=_r(w(v.inferior_endplate_center)),
            axis=_r(anatomy.dir_to_world(v.axis), 6),
            posterior_axis=_r(anatomy.dir_to_world(v.frame.axis(1)), 6),
            body_half_axes_mm=_r([v.a, v.b, v.half_height]),
            posterior_wall_offset_mm=round(v.y_wall, 4),
        )
        for side in SIDES:
            if side in v.pedicles:
                ped = v.pedicles[side]
                entry[f"pedicle_center_{side}"] = _r(w(ped.frame.origin))
                entry[f"pedicle_radii_mm_{side}"] = _r(ped.radii)
                entry[f"pedicle_axes_lps_{side}"] = _r(anatomy.dir_to_world(ped.frame.rotation.T), 6)
            if side in v.saps:
                entry[f"superior_articular_process_center_{side}"] = _r(w(v.saps[side].frame.origin))
        out["vertebrae"][name] = entry
    for key in anatomy.discs:
        u, lo = key.split("-")
        up_v, lo_v = anatomy.vertebrae[u], anatomy.vertebrae[lo]
        centre = 0.5 * (up_v.inferior_endplate_center + lo_v.superior_endplate_center)
        out["discs"][key] = dict(
            name=disc_name(u, lo),
            center=_r(w(centre)),
            axis=_r(anatomy.dir_to_world(unit(up_v.axis + lo_v.axis)), 6),
        )
    for name, rg in anatomy.roots.items():
        entry = dict(path=_r(w(rg.path)), radii_mm=_r(rg.radii), segments=list(rg.segment_names))
        if "foraminal" in rg.segment_names:
            i = rg.segment_names.index("foraminal")
            entry["foraminal_segment"] = _r(w(rg.path[i : i + 2]))
            entry["foraminal_radius_mm"] = round(float(rg.radii[i]), 4)
        i = rg.segment_names.index("recess")
        entry["recess_segment"] = _r(w(rg.path[i : i + 2]))
        if rg.ganglion is not None:
            entry["ganglion"] = dict(
                segment=_r(w(np.array([rg.ganglion.a, rg.ganglion.b]))),
                radius_mm=round(float(rg.ganglion.radius), 4),
            )
        out["roots"][name] = entry
    for fkey, fg in anatomy.foramina.items():
        level, side = fkey.split("/")
        ped = fg.upper_pedicle
        out["foramina"].setdefault(level, {})[side] = dict(
            center=_r(w(fg.center)),
            upper_pedicle_lowest_point=_r(w(ped.support_point(-fg.axis))),
            lower_pedicle_highest_point=_r(w(fg.lower_pedicle.support_point(fg.axis))),
            lower_endplate_center=_r(w(fg.lower_endplate_point)),
            disc_posterior_margin=_r(w(fg.disc_posterior_point)),
            exiting_root=fg.exiting_root,
            traversing_root=fg.traversing_root,
            foraminal_segment=_r(w(np.array([fg.foraminal_segment.a, fg.foraminal_segment.b]))),
        )
    return out


def morphometry(anatomy: Anatomy) -> dict[str, Any]:
    """Foraminal height and width per level and side (mm), as realised by the geometry."""
    out: dict[str, Any] = {}
    for level in anatomy.params.disc_levels:
        for side in SIDES:
            fg = anatomy.foramina[f"{level}/{side}"]
            out.setdefault(level, {})[side] = dict(
                height_mm=round(fg.realised_height_mm, 4),
                width_mm=round(fg.realised_width_mm, 4),
                height_definition="distance along the lower vertebra's axis from the lowest point of the upper "
                "pedicle to the highest point of the lower pedicle",
                width_definition="distance along the lower vertebra's antero-posterior axis from the posterior disc "
                "margin (mid-disc) to the anterior face of the lower superior articular process",
            )
    return out


def all_triangles(anatomy: Anatomy, with_visibility: bool = True) -> dict[str, dict[str, Any]]:
    """``{level: {side: {"kambin": ..., "safe": ...}}}`` for every modelled foramen."""
    out: dict[str, dict[str, Any]] = {}
    for level in anatomy.params.disc_levels:  # cranial to caudal
        for side in SIDES:
            out.setdefault(level, {})[side] = foramen_triangles(anatomy, f"{level}/{side}", with_visibility)
    return out
