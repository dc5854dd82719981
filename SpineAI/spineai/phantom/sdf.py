"""Implicit solid primitives for the phantom: signed distances, bounding boxes and support functions.

Every primitive lives in the phantom's *body frame* (LPS-aligned axes in mm: +x patient left,
+y posterior, +z superior; see :mod:`spineai.phantom.geometry`). A primitive provides

* ``sdf(x, y, z)``: a signed distance (negative inside) evaluated on body-frame coordinate arrays.
  Where the formula is an approximation of the Euclidean distance (ellipses, ellipsoids), its zero
  level set is still the exact surface, so label maps (voxel centre inside <=> ``sdf < 0``) are exact;
  the approximation only affects partial-volume blending.
* ``bbox()``: an axis-aligned body-frame box containing the solid.
* ``support(u)``: ``max(u . p)`` over the solid for a direction ``u`` (the supporting plane with
  outward normal ``u``), exact for every primitive that defines a ground-truth triangle edge.

Nothing here knows about anatomy; :mod:`spineai.phantom.geometry` assembles the primitives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Array = np.ndarray


def rot_x(deg: float) -> np.ndarray:
    """Rotation matrix about +x by ``deg`` degrees (right-handed)."""
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(deg: float) -> np.ndarray:
    """Rotation matrix about +y by ``deg`` degrees (right-handed)."""
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(deg: float) -> np.ndarray:
    """Rotation matrix about +z by ``deg`` degrees (right-handed)."""
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to unit length."""
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class Frame:
    """A rigid frame: ``p_parent = origin + rotation @ p_local`` (rotation columns = local axes)."""

    origin: np.ndarray
    rotation: np.ndarray

    def to_parent(self, p_local: np.ndarray) -> np.ndarray:
        """Local point(s) (..., 3) to parent coordinates."""
        return np.asarray(self.origin) + np.asarray(p_local) @ np.asarray(self.rotation).T

    def vec_to_parent(self, v_local: np.ndarray) -> np.ndarray:
        """Local direction(s) (..., 3) to parent coordinates."""
        return np.asarray(v_local) @ np.asarray(self.rotation).T

    def to_local(self, p: np.ndarray) -> np.ndarray:
        """Parent point(s) (..., 3) to local coordinates."""
        return (np.asarray(p) - self.origin) @ np.asarray(self.rotation)

    def vec_to_local(self, v: np.ndarray) -> np.ndarray:
        """Parent direction(s) (..., 3) to local coordinates."""
        return np.asarray(v) @ np.asarray(self.rotation)

    def axis(self, i: int) -> np.ndarray:
        """Local axis ``i`` (0 x, 1 y, 2 z) in parent coordinates."""
        return np.asarray(self.rotation)[:, i].copy()

    def local_coords(self, x: Array, y: Array, z: Array) -> tuple[Array, Array, Array]:
        """Body-frame coordinate arrays to local coordinate arrays (float32 in, float32 out)."""
        r = np.asarray(self.rotation, dtype=np.float32)
        o = np.asarray(self.origin, dtype=np.float32)
        dx, dy, dz = x - o[0], y - o[1], z - o[2]
        lx = r[0, 0] * dx + r[1, 0] * dy + r[2, 0] * dz
        ly = r[0, 1] * dx + r[1, 1] * dy + r[2, 1] * dz
        lz = r[0, 2] * dx + r[1, 2] * dy + r[2, 2] * dz
        return lx, ly, lz

    def box_corners(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """The 8 corners (8, 3), in parent coordinates, of the local box ``lo..hi``."""
        corners = np.array(
            [[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])]
        )
        return self.to_parent(corners)


IDENTITY = Frame(np.zeros(3), np.eye(3))


def _bbox_of(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return points.min(axis=0), points.max(axis=0)


@dataclass
class Primitive:
    """Base class. ``part`` names the anatomical part (e.g. ``"L5:pedicle_left"``)."""

    part: str = field(default="", kw_only=True)

    def sdf(self, x: Array, y: Array, z: Array) -> Array:  # pragma: no cover - interface
        raise NotImplementedError

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError

    def support(self, u: np.ndarray) -> float:
        """``max(u . p)`` over the solid (body frame)."""
        raise NotImplementedError(f"{type(self).__name__} has no exact support function")

    def sdf_points(self, pts: np.ndarray) -> np.ndarray:
        """Signed distance at body-frame points (N, 3)."""
        p = np.asarray(pts, dtype=np.float32)
        return self.sdf(p[:, 0], p[:, 1], p[:, 2])


def _ellipse_sdf(x: Array, y: Array, a: float, b: float) -> Array:
    """Approximate signed distance to the ellipse (x/a)^2 + (y/b)^2 = 1 (exact zero set)."""
    k0 = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    k1 = np.sqrt((x / (a * a)) ** 2 + (y / (b * b)) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = k0 * (k0 - 1.0) / k1
    return np.where(k1 > 1e-12, d, -min(a, b)).astype(np.float32)


@dataclass
class Ellipsoid(Primitive):
    """Ellipsoid with semi-axes ``radii`` along the axes of ``frame`` (centred at its origin)."""

    frame: Frame
    radii: tuple[float, float, float]

    def sdf(self, x: Array, y: Array, z: Array) -> Array:
        lx, ly, lz = self.frame.local_coords(x, y, z)
        a, b, c = self.radii
        k0 = np.sqrt((lx / a) ** 2 + (ly / b) ** 2 + (lz / c) ** 2)
        k1 = np.sqrt((lx / (a * a)) ** 2 + (ly / (b * b)) ** 2 + (lz / (c * c)) ** 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = k0 * (k0 - 1.0) / k1
        return np.where(k1 > 1e-12, d, -min(self.radii)).astype(np.float32)

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        r = np.asarray(self.radii, dtype=float)
        return _bbox_of(self.frame.box_corners(-r, r))

    def support(self, u: np.ndarray) -> float:
        ul = self.frame.vec_to_local(np.asarray(u, dtype=float))
        return float(np.dot(u, self.frame.origin) + np.sqrt(np.sum((np.asarray(self.radii) * ul) ** 2)))

    def support_point(self, u: np.ndarray) -> np.ndarray:
        """The surface point where ``u . p`` is largest (body frame)."""
        ul = self.frame.vec_to_local(np.asarray(u, dtype=float))
        r2 = np.asarray(self.radii) ** 2
        q = r2 * ul / np.sqrt(np.sum(r2 * ul * ul))
        return self.frame.to_parent(q)


@dataclass
class RoundBox(Primitive):
    """Box with half-extents ``half`` (rounding included) and edge radius ``rounding``, in ``frame``."""

    frame: Frame
    half: tuple[float, float, float]
    rounding: float = 0.0

    def sdf(self, x: Array, y: Array, z: Array) -> Array:
        lx, ly, lz = self.frame.local_coords(x, y, z)
        r = self.rounding
        qx = np.abs(lx) - (self.half[0] - r)
        qy = np.abs(ly) - (self.half[1] - r)
        qz = np.abs(lz) - (self.half[2] - r)
        outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2 + np.maximum(qz, 0) ** 2)
        inside = np.minimum(np.maximum(qx, np.maximum(qy, qz)), 0)
        return (outside + inside - r).astype(np.float32)

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        h = np.asarray(self.half, dtype=float)
        return _bbox_of(self.frame.box_corners(-h, h))

    def support(self, u: np.ndarray) -> float:
        u = np.asarray(u, dtype=float)
        ul = self.frame.vec_to_local(u)
        inner = np.asarray(self.half) - self.rounding
        return float(
            np.dot(u, self.frame.origin) + np.sum(inner * np.abs(ul)) + self.rounding * np.linalg.norm(u)
        )


@dataclass
class EllipticCylinder(Primitive):
    """Elliptic cylinder along the local z axis: (x/a)^2 + (y/b)^2 <= 1, |z| <= half_height,
    optionally cut flat at ``y <= cut_y`` (a flat posterior wall)."""

    frame: Frame
    a: float
    b: float
    half_height: float
    cut_y: float | None = None

    def sdf(self, x: Array, y: Array, z: Array) -> Array:
        lx, ly, lz = self.frame.local_coords(x, y, z)
        d2 = _ellipse_sdf(lx, ly, self.a, self.b)
        if self.cut_y is not None:
            d2 = np.maximum(d2, ly - self.cut_y)
        wz = np.abs(lz) - self.half_height
        out = np.sqrt(np.maximum(d2, 0) ** 2 + np.maximum(wz, 0) ** 2) + np.minimum(np.maximum(d2, wz), 0)
        return out.astype(np.float32)

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.array([-self.a, -self.b, -self.half_height])
        hi = np.array([self.a, self.b if self.cut_y is None else min(self.b, self.cut_y), self.half_height])
        return _bbox_of(self.frame.box_corners(lo, hi))

    def support_2d(self, ux: float, uy: float) -> float:
        """Support of the (cut) elliptic cross-section for the in-plane local direction (ux, uy)."""
        a, b = self.a, self.b
        n = np.sqrt((a * ux) ** 2 + (b * uy) ** 2)
        if n < 1e-15:
            return 0.0
        qx, qy = a * a * ux / n, b * b * uy / n
        if self.cut_y is None or qy <= self.cut_y:
            return float(ux * qx + uy * qy)
        # the maximiser lies on the flat cut: the better of its two end points
        c = self.cut_y
        xe = a * np.sqrt(max(0.0, 1.0 - (c / b) ** 2))
        return float(max(ux * xe + uy * c, -ux * xe + uy * c))

    def support(self, u: np.ndarray) -> float:
        u = np.asarray(u, dtype=float)
        ul = self.frame.vec_to_local(u)
        return float(
            np.dot(u, self.frame.origin) + self.support_2d(ul[0], ul[1]) + self.half_height * abs(ul[2])
        )


@dataclass
class Capsule(Primitive):
    """Segment ``a``-``b`` (body frame) swept by a ball of radius ``radius``."""

    a: np.ndarray
    b: np.ndarray
    radius: float

    def sdf(self, x: Array, y: Array, z: Array) -> Array:
        a = np.asarray(self.a, dtype=np.float32)
        ba = np.asarray(self.b, dtype=np.float32) - a
        bb = float(np.dot(ba, ba))
        px, py, pz = x - a[0], y - a[1], z - a[2]
        h = (px * ba[0] + py * ba[1] + pz * ba[2]) / max(bb, 1e-12)
        h = np.clip(h, 0.0, 1.0)
        dx, dy, dz = px - ba[0] * h, py - ba[1] * h, pz - ba[2] * h
        return (np.sqrt(dx * dx + dy * dy + dz * dz) - self.radius).astype(np.float32)

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        pts = np.array([self.a, self.b], dtype=float)
        return pts.min(axis=0) - self.radius, pts.max(axis=0) + self.radius

    def support(self, u: np.ndarray) -> float:
        u = np.asarray(u, dtype=float)
        return float(max(np.dot(u, self.a), np.dot(u, self.b)) + self.radius * np.linalg.norm(u))

    def support_above(self, u: np.ndarray, normal: np.ndarray, offset: float, step: float = 0.02) -> float:
        """``max(u . p)`` over the part of the capsule with ``normal . p >= offset``, for ``u`` orthogonal
        to ``normal`` (unit vectors); ``-inf`` when that part is empty. Numerical (axis sampled every
        ``step`` mm), accurate to far below a voxel."""
        a, b = np.asarray(self.a, float), np.asarray(self.b, float)
        n = max(2, int(np.ceil(np.linalg.norm(b - a) / step)) + 1)
        q = a + np.linspace(0.0, 1.0, n)[:, None] * (b - a)
        depth = offset - q @ normal  # how far below the plane each axis point is
        ok = depth <= self.radius
        if not np.any(ok):
            return -np.inf
        reach = np.sqrt(np.maximum(self.radius**2 - np.maximum(depth[ok], 0.0) ** 2, 0.0))
        return float(np.max(q[ok] @ u + reach))


@dataclass
class ScaledCapsule(Primitive):
    """A capsule whose cross-section is elliptic: body-frame x is scaled by ``x_scale`` before the
    capsule test (radius ``radius`` in y/z, ``radius / x_scale`` in x). Used for the dural sac."""

    a: np.ndarray
    b: np.ndarray
    radius: float
    x_scale: float

    def sdf(self, x: Array, y: Array, z: Array) -> Array:
        k = np.float32(self.x_scale)
        a = np.asarray(self.a, dtype=np.float32).copy()
        b = np.asarray(self.b, dtype=np.float32).copy()
        a[0] *= k
        b[0] *= k
        d = Capsule(a, b, self.radius).sdf(x * k, y, z)
        return (d * min(1.0, 1.0 / float(k))).astype(np.float32)

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        pts = np.array([self.a, self.b], dtype=float)
        r = np.array([self.radius / self.x_scale, self.radius, self.radius])
        return pts.min(axis=0) - r, pts.max(axis=0) + r


@dataclass
class HalfSpace(Primitive):
    """The half-space ``normal . (p - point) <= 0`` (only meaningful inside an :class:`Intersection`)."""

    point: np.ndarray
    normal: np.ndarray

    def sdf(self, x: Array, y: Array, z: Array) -> Array:
        n = unit(self.normal).astype(np.float32)
        p = np.asarray(self.point, dtype=np.float32)
        return ((x - p[0]) * n[0] + (y - p[1]) * n[1] + (z - p[2]) * n[2]).astype(np.float32)

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        big = np.full(3, 1e6)
        return -big, big


@dataclass
class Intersection(Primitive):
    """Intersection of solids (maximum of signed distances); bounded by the first child."""

    children: list[Primitive]

    def sdf(self, x: Array, y: Array, z: Array) -> Array:
        out = self.children[0].sdf(x, y, z)
        for c in self.children[1:]:
            out = np.maximum(out, c.sdf(x, y, z))
        return out

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.children[0].bbox()
        for c in self.children[1:]:
            clo, chi = c.bbox()
            lo, hi = np.maximum(lo, clo), np.minimum(hi, chi)
        return lo, hi


@dataclass
class VerticalWall(Primitive):
    """A thick vertical wall along a horizontal polyline, with a top height that varies along it.

    ``points`` (N, 2) are body-frame (x, y) vertices of the wall's mid-line, ``tops`` (N,) the body-frame
    z of the wall's upper edge at each vertex and ``thickness`` (N,) its thickness there (both linear
    between vertices); the wall spans ``bottom <= z <= top``. Used for the iliac wings, whose upper edge
    is the iliac crest.
    """

    points: np.ndarray
    tops: np.ndarray
    thickness: np.ndarray
    bottom: float

    def _closest(self, x: Array, y: Array) -> tuple[Array, Array, Array]:
        pts = np.asarray(self.points, dtype=np.float32)
        best_d = np.full(x.shape, np.inf, dtype=np.float32)
        best_top = np.zeros(x.shape, dtype=np.float32)
        best_t = np.zeros(x.shape, dtype=np.float32)
        for i in range(len(pts) - 1):
            a, b = pts[i], pts[i + 1]
            ba = b - a
            h = np.clip(((x - a[0]) * ba[0] + (y - a[1]) * ba[1]) / float(np.dot(ba, ba)), 0.0, 1.0)
            dx, dy = x - a[0] - ba[0] * h, y - a[1] - ba[1] * h
            d = np.sqrt(dx * dx + dy * dy)
            closer = d < best_d
            best_d = np.where(closer, d, best_d)
            best_top = np.where(closer, self.tops[i] + (self.tops[i + 1] - self.tops[i]) * h, best_top)
            best_t = np.where(
                closer, self.thickness[i] + (self.thickness[i + 1] - self.thickness[i]) * h, best_t
            )
        return best_d, best_top, best_t

    def sdf(self, x: Array, y: Array, z: Array) -> Array:
        d, top, thick = self._closest(x, y)
        out = np.maximum(d - 0.5 * thick, np.maximum(z - top, self.bottom - z))
        return out.astype(np.float32)

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        pts = np.asarray(self.points, dtype=float)
        t = float(np.max(self.thickness))
        lo = np.array([pts[:, 0].min() - t, pts[:, 1].min() - t, self.bottom])
        hi = np.array([pts[:, 0].max() + t, pts[:, 1].max() + t, float(np.max(self.tops))])
        return lo, hi
