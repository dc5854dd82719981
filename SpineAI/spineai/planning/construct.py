"""Kambin's and the safe triangle of one foramen seen along a view direction (LPS, mm).

Both triangles are defined in projection, as the operator sees them: every structure is projected
along the view ``v`` (unit LPS vector from the skin toward the target) onto an image plane with two
axes orthogonal to ``v``:

* ``up``: the lower vertebra's axis ``a`` (normal of its superior endplate) made orthogonal to ``v``;
* ``lateral``: ``up x v``, oriented toward the side of the foramen (it is orthogonal to ``a``).

Each edge is a **supporting line** of one part in one image direction ``u`` (the line where that part's
projection ends: ``max(u . p)`` over the part), see :mod:`spineai.planning.parts` for the parts.

Kambin's triangle (exiting root = hypotenuse, traversing root and/or facet = height, superior border
of the lower vertebra = base):

* base: support of Lo's body prism in ``+up`` (its superior endplate);
* height: the more lateral of Lo's superior articular process and the traversing root above Lo's
  superior endplate, support in ``+lateral``;
* hypotenuse: lower (caudal-medial) border of the exiting root's straight foraminal segment: the
  segment's projected axis shifted by its radius along ``-m``, ``m`` the image normal of the projected
  axis pointing up;
* vertices ``apex`` (height x hypotenuse), ``base_medial`` (height x base, the right angle),
  ``base_lateral`` (hypotenuse x base).

Safe triangle (lower margin of the pedicle = base, lateral border of the vertebral body = height,
outer border of the exiting root = hypotenuse):

* base: lowest point of U's pedicle along ``up`` (support in ``-up``);
* height: support of U's body prism in ``+lateral``;
* hypotenuse: upper (outer) border of the foraminal segment, axis shifted by its radius along ``+m``;
* vertices ``corner`` (base x height, the right angle under the pedicle), ``medial`` (base x
  hypotenuse), ``inferior`` (height x hypotenuse).

A triangle whose hypotenuse does not cut its legs on the correct side (a root touching the endplate
or the pedicle, or a root that rises laterally in this view) has area 0 and is ``degenerate``.

3D vertices are the image points placed in the plane through ``M`` (midpoint of the straight
foraminal segment) orthogonal to ``v``. The **true area** of a triangle is its area in the
**reference view**, the posteroanterior view squared to the lower vertebra: ``v = -posterior`` of Lo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .parts import ForamenParts, unit, voxel_support

KAMBIN_VERTICES = ("apex", "base_medial", "base_lateral")
SAFE_VERTICES = ("corner", "medial", "inferior")
KINDS = ("kambin", "safe")


@dataclass
class Edge:
    """One edge: the supporting line of ``structure`` (its ``border``) in LPS direction ``direction``."""

    name: str
    structure: str
    border: str
    direction: np.ndarray
    support_mm: float
    vertices: tuple[str, str]

    def to_dict(self) -> dict[str, Any]:
        return dict(
            name=self.name,
            structure=self.structure,
            border=self.border,
            support_direction_lps=np.round(self.direction, 6).tolist(),
            support_value_mm=round(float(self.support_mm), 4),
            vertices=list(self.vertices),
        )


@dataclass
class TriangleInView:
    """One triangle in one view.

    Attributes:
        kind: ``"kambin"`` or ``"safe"``.
        view: unit LPS direction (skin -> target).
        lateral, up: unit LPS image axes.
        origin: plane point ``M`` (LPS mm).
        vertices_image: (3, 2) image coordinates (lateral, up) relative to ``M`` (mm).
        vertex_names: names of the three vertices.
        area_mm2: area in the image (0 when degenerate).
        degenerate: the edges do not close a triangle.
        edges: the three supporting lines.
    """

    kind: str
    view: np.ndarray
    lateral: np.ndarray
    up: np.ndarray
    origin: np.ndarray
    vertices_image: np.ndarray
    vertex_names: tuple[str, ...]
    area_mm2: float
    degenerate: bool
    edges: list[Edge]

    @property
    def vertices_lps(self) -> np.ndarray:
        """(3, 3) LPS vertices (mm) in the plane through ``M`` orthogonal to the view."""
        q = self.vertices_image
        return self.origin + q[:, :1] * self.lateral + q[:, 1:] * self.up

    def to_lps(self, q: np.ndarray) -> np.ndarray:
        """Image points (N, 2) -> LPS points (N, 3) on the triangle's plane."""
        q = np.asarray(q, dtype=float).reshape(-1, 2)
        return self.origin + q[:, :1] * self.lateral + q[:, 1:] * self.up


def image_axes(axis: np.ndarray, lateral_side: np.ndarray, view: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(lateral, up)`` unit image axes (LPS) of ``view`` for a foramen with lower-vertebra axis ``axis``."""
    v = unit(view)
    up = axis - np.dot(axis, v) * v
    if np.linalg.norm(up) < 1e-6:
        raise ValueError("the view direction is parallel to the vertebral axis")
    up = unit(up)
    lateral = unit(np.cross(up, v))
    if np.dot(lateral, lateral_side) < 0:
        lateral = -lateral
    return lateral, up


def _support(parts: ForamenParts, points: np.ndarray, u: np.ndarray) -> float:
    if len(points) == 0:
        return -np.inf
    return voxel_support(points, u, parts.voxel_axes)


def _intersect(n1: np.ndarray, c1: float, n2: np.ndarray, c2: float) -> np.ndarray:
    return np.linalg.solve(np.array([n1, n2], dtype=float), np.array([c1, c2], dtype=float))


def _area(q: np.ndarray) -> float:
    return float(
        0.5 * abs((q[1, 0] - q[0, 0]) * (q[2, 1] - q[0, 1]) - (q[2, 0] - q[0, 0]) * (q[1, 1] - q[0, 1]))
    )


def triangles_in_view(parts: ForamenParts, view: np.ndarray) -> dict[str, TriangleInView]:
    """Kambin's and the safe triangle of one foramen seen along ``view`` (see the module docstring).

    Args:
        parts: the foramen's parts.
        view: LPS direction from the skin toward the target (any length).

    Returns:
        ``{"kambin": TriangleInView, "safe": TriangleInView}``.
    """
    v = unit(view)
    lateral, up = image_axes(parts.axis, parts.lateral_side, v)
    seg = parts.exiting
    m_pt = seg.midpoint
    d = seg.direction
    dd = np.array([np.dot(lateral, d), np.dot(up, d)])
    if np.linalg.norm(dd) < 1e-9:
        dd = np.array([1.0, 0.0])
    normal = np.array([-dd[1], dd[0]]) / np.linalg.norm(dd)
    if normal[1] < 0:
        normal = -normal
    m3 = normal[0] * lateral + normal[1] * up
    axis_val = float(np.dot(m3, seg.a - m_pt))  # m3 is orthogonal to the axis: constant along it
    c_up = axis_val + seg.radius
    c_low = axis_val - seg.radius

    t_base_abs = parts.lower_frame.body.support(up)
    t_base = t_base_abs - float(np.dot(up, m_pt))
    sap_val = _support(parts, parts.lower_sap, lateral)
    root_val = _support(parts, parts.traversing_above, lateral)
    if root_val > sap_val:
        h_val, h_struct, h_border = (
            root_val,
            parts.traversing_root,
            "lateral border of the traversing root above the lower endplate",
        )
    else:
        h_val, h_struct, h_border = (
            sap_val,
            parts.lower,
            f"lateral border of the superior articular process ({parts.side})",
        )
    s_height = h_val - float(np.dot(lateral, m_pt))
    ped_val = _support(parts, parts.upper_pedicle, -up)
    t_ped = -ped_val - float(np.dot(up, m_pt))
    body_val = parts.upper_frame.body.support(lateral)
    s_body = body_val - float(np.dot(lateral, m_pt))
    ex, ey = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    descending = normal[0] > 1e-9

    def pack(
        kind: str, q: np.ndarray, valid: bool, names: tuple[str, ...], edges: list[Edge]
    ) -> TriangleInView:
        return TriangleInView(
            kind=kind,
            view=v,
            lateral=lateral,
            up=up,
            origin=m_pt,
            vertices_image=q,
            vertex_names=names,
            area_mm2=_area(q) if valid else 0.0,
            degenerate=not valid,
            edges=edges,
        )

    # Kambin
    if descending and np.isfinite(s_height):
        apex = _intersect(ex, s_height, normal, c_low)
        corner = _intersect(ex, s_height, ey, t_base)
        lat = _intersect(normal, c_low, ey, t_base)
        k = np.array([apex, corner, lat])
        k_valid = bool(apex[1] > t_base + 1e-9 and lat[0] > s_height + 1e-9)
    else:
        k, k_valid = np.zeros((3, 2)), False
    root_u = parts.exiting_root
    m_up = float(np.dot(m3, m_pt))
    kambin = pack(
        "kambin",
        k,
        k_valid,
        KAMBIN_VERTICES,
        [
            Edge(
                "hypotenuse",
                root_u,
                "inferior border of the exiting root's foraminal segment",
                -m3,
                -(c_low + m_up),
                ("apex", "base_lateral"),
            ),
            Edge("height", h_struct, h_border, lateral, h_val, ("apex", "base_medial")),
            Edge(
                "base",
                parts.lower,
                "superior border (superior endplate) of the lower vertebral body",
                up,
                t_base_abs,
                ("base_medial", "base_lateral"),
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
        "safe",
        q,
        s_valid,
        SAFE_VERTICES,
        [
            Edge(
                "hypotenuse",
                root_u,
                "superior (outer) border of the exiting root's foraminal segment",
                m3,
                c_up + m_up,
                ("medial", "inferior"),
            ),
            Edge(
                "height",
                parts.upper,
                "lateral border of the upper vertebral body",
                lateral,
                body_val,
                ("corner", "inferior"),
            ),
            Edge(
                "base",
                parts.upper,
                f"lower margin of the upper vertebra's pedicle ({parts.side})",
                -up,
                ped_val,
                ("corner", "medial"),
            ),
        ],
    )
    return {"kambin": kambin, "safe": safe}


def reference_view(parts: ForamenParts) -> np.ndarray:
    """Reference view of a foramen: posteroanterior, squared to the lower vertebra (``-posterior`` of Lo)."""
    return -parts.lower_frame.posterior


def level_view(parts: ForamenParts, oblique_deg: float, tilt_deg: float) -> np.ndarray:
    """LPS direction of a C-arm aligned with the level (see :func:`spineai.carm.view_direction_lps`).

    The C-arm angles are taken in the upper vertebra's frame (its left-right, antero-posterior and
    cranio-caudal axes), so ``tilt_deg = 0`` means the beam runs parallel to the inferior endplate of
    the vertebra whose root exits (the squared endplate of the transforaminal protocol).
    """
    from ..carm import view_direction_lps

    c = view_direction_lps(oblique_deg, tilt_deg, parts.side)
    f = parts.upper_frame
    return unit(c[0] * f.lateral + c[1] * f.posterior + c[2] * f.axis)


def level_angles(parts: ForamenParts, view: np.ndarray) -> tuple[float, float]:
    """Inverse of :func:`level_view`: ``(oblique_deg, tilt_deg)`` in the upper vertebra's frame."""
    from ..carm import angles_from_direction

    f = parts.upper_frame
    v = unit(view)
    local = np.array([np.dot(v, f.lateral), np.dot(v, f.posterior), np.dot(v, f.axis)])
    return angles_from_direction(local, parts.side)
