"""Analytic anatomy of the lumbosacral phantom, built from :class:`~spineai.phantom.params.PhantomParams`.

Frames (all mm):

* **Body frame** (B): the patient's own anatomical axes, LPS-aligned: +x patient left, +y posterior,
  +z superior (cranial); origin at the centre of the S1 superior endplate. With the identity pose the
  body frame and the world (scanner, LPS) frame differ only by a translation.
* **Vertebra frames**: origin at the centre of the vertebral body; x is the body-frame x (lordosis and
  sacral slope rotate about it); z is the vertebra's own cranio-caudal axis, i.e. the normal of its
  endplates (tilted anteriorly by the angle ``tilt_deg`` about +x: the top of a vertebra with a
  positive tilt lies anterior of its bottom); y completes a right-handed frame (posterior).
* **World frame** (LPS, the image's physical space): ``p_world = R @ (p_body - c) + t`` with the pose
  rotation ``R = Rz @ Ry @ Rx`` (``pose_rotation_deg``), the pose translation ``t`` and the body-frame
  field-of-view centre ``c``. The image grid is centred on the world origin.

Every structure is a union of implicit primitives (:mod:`spineai.phantom.sdf`); a structure's label
is the canonical label of :mod:`spineai.anatomy`. Later structures in :attr:`Anatomy.structures`
overwrite earlier ones where they overlap (the painting order is the label priority).

Foramen construction (per level ``U-Lo`` and side; ``U`` the upper vertebra, ``Lo`` the lower one):

* the root of ``U`` (e.g. ``root_L5_left`` at L5-S1) is the **exiting root**: it leaves the dural sac
  above the disc over ``U``, descends in the lateral recess medial of U's pedicle (there it is the
  *traversing* root of the level above), turns under the pedicle (dorsal root ganglion), and leaves the
  foramen through a **straight foraminal segment** ``A -> B`` that runs laterally, anteriorly and
  inferiorly from under the lateral part of U's pedicle;
* the root of ``Lo`` (``root_S1_left`` at L5-S1) is the **traversing root** at this level: its lateral
  recess segment is a straight tube parallel to Lo's axis, in front of Lo's superior articular process
  (SAP) and behind the disc;
* U's pedicle is an ellipsoid placed vertically so that the foraminal height equals its parameter;
  Lo's SAP is a rounded box whose anterior face is ``width_mm`` behind the disc and whose lateral border
  lies ``facet_overhang_mm`` lateral of the start ``A`` of the foraminal segment in the reference view.

The ground-truth triangles built on these primitives are in :mod:`spineai.phantom.truth`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..anatomy import BY_NAME, SIDES, disc_name, root_name
from .params import PhantomParams, VertebraParams
from .sdf import (
    Capsule,
    Ellipsoid,
    EllipticCylinder,
    Frame,
    HalfSpace,
    Intersection,
    Primitive,
    RoundBox,
    ScaledCapsule,
    VerticalWall,
    rot_x,
    rot_y,
    rot_z,
    unit,
)

SIDE_SIGN = {"left": 1.0, "right": -1.0}
EX = np.array([1.0, 0.0, 0.0])
EY = np.array([0.0, 1.0, 0.0])
EZ = np.array([0.0, 0.0, 1.0])
_BIG = 1000.0
#: semi-axis of the body's elliptic outline as a fraction of its depth (see _make_body)
_D_SHAPE = 0.62


def side_sign(side: str) -> float:
    """+1 for the patient's left (+x), -1 for the right."""
    return SIDE_SIGN[side]


@dataclass
class Structure:
    """One painted structure: union of ``primitives`` minus ``subtract``.

    Attributes:
        key: unique key (``"L5"``, ``"root_L5_left"``, ``"muscle_psoas_left"``...).
        label: canonical label value (0: not labelled, e.g. muscle and fat).
        tissue: intensity class (``"bone"``, ``"disc"``, ``"csf"``, ``"nerve"``, ``"muscle"``, ``"fat"``,
            ``"soft"``, ``"vessel"``, ``"skin"``).
        primitives: union members.
        subtract: solids removed from the union.
    """

    key: str
    label: int
    tissue: str
    primitives: list[Primitive]
    subtract: list[Primitive] = field(default_factory=list)

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.full(3, np.inf)
        hi = np.full(3, -np.inf)
        for p in self.primitives:
            plo, phi = p.bbox()
            lo, hi = np.minimum(lo, plo), np.maximum(hi, phi)
        return lo, hi

    def sdf_points(self, pts: np.ndarray) -> np.ndarray:
        """Signed distance of the structure at body-frame points (N, 3)."""
        d = np.min([p.sdf_points(pts) for p in self.primitives], axis=0)
        for s in self.subtract:
            d = np.maximum(d, -s.sdf_points(pts))
        return d


@dataclass
class VertebraGeom:
    """One vertebra (or the S1 segment), in its own frame (see module docstring)."""

    name: str
    p: VertebraParams
    frame: Frame
    tilt_deg: float
    body: EllipticCylinder
    pedicles: dict[str, Ellipsoid] = field(default_factory=dict)
    saps: dict[str, RoundBox] = field(default_factory=dict)
    parts: list[Primitive] = field(default_factory=list)

    @property
    def half_height(self) -> float:
        return 0.5 * self.p.body_height_mm

    @property
    def a(self) -> float:
        return 0.5 * self.p.body_width_mm

    @property
    def b(self) -> float:
        return 0.5 * self.p.body_depth_mm

    @property
    def y_wall(self) -> float:
        """Local y of the flat posterior wall of the body."""
        return 0.44 * self.p.body_depth_mm

    @property
    def axis(self) -> np.ndarray:
        """Unit cranio-caudal axis (normal of the endplates), body frame."""
        return self.frame.axis(2)

    @property
    def superior_endplate_center(self) -> np.ndarray:
        return self.frame.to_parent(np.array([0.0, 0.0, self.half_height]))

    @property
    def inferior_endplate_center(self) -> np.ndarray:
        return self.frame.to_parent(np.array([0.0, 0.0, -self.half_height]))

    def local(self, x: float, y: float, z: float) -> np.ndarray:
        """Local point -> body frame."""
        return self.frame.to_parent(np.array([x, y, z], dtype=float))


@dataclass
class RootGeom:
    """A nerve root: a chain of capsules through ``path`` (body frame) plus its ganglion.

    Attributes:
        name: canonical name (``root_L5_left``).
        path: (N, 3) polyline from inside the dural sac to its end.
        radii: (N-1,) capsule radius of each path segment.
        segment_names: name of each segment (``"takeoff"``, ``"recess"``, ``"subpedicular"``,
            ``"foraminal"``, ``"extraforaminal"``, ...).
        ganglion: capsule of the dorsal root ganglion (lumbar roots), or ``None``.
    """

    name: str
    path: np.ndarray
    radii: list[float]
    segment_names: list[str]
    ganglion: Capsule | None = None

    def capsules(self) -> list[Capsule]:
        caps = [
            Capsule(
                self.path[i], self.path[i + 1], self.radii[i], part=f"{self.name}:{self.segment_names[i]}"
            )
            for i in range(len(self.path) - 1)
        ]
        if self.ganglion is not None:
            caps.append(self.ganglion)
        return caps

    def segment(self, name: str) -> Capsule:
        """The capsule of the first segment called ``name``."""
        i = self.segment_names.index(name)
        return Capsule(self.path[i], self.path[i + 1], self.radii[i], part=f"{self.name}:{name}")

    def segments(self, name: str) -> list[Capsule]:
        """All capsules of the segments called ``name`` (in path order)."""
        return [
            Capsule(self.path[i], self.path[i + 1], self.radii[i], part=f"{self.name}:{name}")
            for i, n in enumerate(self.segment_names)
            if n == name
        ]


@dataclass
class ForamenGeom:
    """Everything the triangle construction of one foramen needs (body frame).

    ``axis`` is the lower vertebra's cranio-caudal axis (normal of its superior endplate); ``lateral``
    the patient's left-right axis oriented toward this side. The reference view looks along
    ``-posterior``, the lower vertebra's own antero-posterior axis, i.e. a posteroanterior view squared
    to the lower vertebra's superior endplate.
    """

    level: str
    side: str
    upper: str
    lower: str
    axis: np.ndarray
    lateral: np.ndarray
    posterior: np.ndarray
    upper_body: EllipticCylinder
    lower_body: EllipticCylinder
    upper_pedicle: Ellipsoid
    lower_pedicle: Ellipsoid
    lower_sap: RoundBox
    exiting_root: str
    traversing_root: str
    foraminal_segment: Capsule
    traversing_capsules: list[Capsule]
    lower_endplate_point: np.ndarray
    disc_posterior_point: np.ndarray
    target_height_mm: float
    target_width_mm: float
    upper_axis: np.ndarray = field(default_factory=lambda: EZ.copy())
    upper_posterior: np.ndarray = field(default_factory=lambda: EY.copy())
    realised_height_mm: float = 0.0
    realised_width_mm: float = 0.0
    center: np.ndarray = field(default_factory=lambda: np.zeros(3))


@dataclass
class Anatomy:
    """The assembled phantom anatomy.

    Attributes:
        params: the parameters it was built from.
        vertebrae: per level (lumbar and ``"S1"``) :class:`VertebraGeom`.
        roots: per canonical root name :class:`RootGeom`.
        foramina: per ``"L5-S1/left"`` :class:`ForamenGeom`.
        structures: painting order (later wins).
        discs: per level (``"L5-S1"``) the disc's primitive.
        skin: the trunk outline (for ray casting to the skin).
        fov_center_body: body-frame point mapped to the world origin (before translation).
        rotation: pose rotation (body -> world), translation: pose translation (mm).
    """

    params: PhantomParams
    vertebrae: dict[str, VertebraGeom]
    roots: dict[str, RootGeom]
    foramina: dict[str, ForamenGeom]
    structures: list[Structure]
    discs: dict[str, Primitive]
    skin: EllipticCylinder
    fov_center_body: np.ndarray
    fov_size_mm: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    notes: list[str] = field(default_factory=list)
    #: transitional anatomy as built (:func:`spineai.phantom.transitional.build_transitional`; empty if none)
    transitional: dict = field(default_factory=dict)

    def to_world(self, p_body: np.ndarray) -> np.ndarray:
        """Body-frame point(s) (..., 3) -> world LPS (mm)."""
        return (np.asarray(p_body, float) - self.fov_center_body) @ self.rotation.T + self.translation

    def dir_to_world(self, v_body: np.ndarray) -> np.ndarray:
        """Body-frame direction(s) -> world LPS."""
        return np.asarray(v_body, float) @ self.rotation.T

    def to_body(self, p_world: np.ndarray) -> np.ndarray:
        """World LPS point(s) (..., 3) -> body frame."""
        return (np.asarray(p_world, float) - self.translation) @ self.rotation + self.fov_center_body

    def structure(self, key: str) -> Structure:
        for s in self.structures:
            if s.key == key:
                return s
        raise KeyError(key)


def pose_rotation(angles_deg: tuple[float, float, float]) -> np.ndarray:
    """Pose rotation ``Rz @ Ry @ Rx`` from (rx, ry, rz) in degrees (body -> world)."""
    rx, ry, rz = angles_deg
    return rot_z(rz) @ rot_y(ry) @ rot_x(rx)


# ------------------------------------------------------------------------------------------ the chain
def _lordosis_wedges(params: PhantomParams) -> dict[str, float]:
    from .params import _LORDOSIS_SHARES

    discs = list(params.disc_levels)[::-1]  # from the sacrum upwards
    shares = np.array(_LORDOSIS_SHARES[: len(discs)], dtype=float)
    shares /= shares.sum()
    return {d: float(params.lordosis_deg * s) for d, s in zip(discs, shares, strict=True)}


def _stenosis(params: PhantomParams, level: str, side: str) -> float:
    return max([s.severity for s in params.stenoses if s.level == level and s.side == side], default=0.0)


def _disc_height(params: PhantomParams, level: str) -> float:
    sev = max([s.severity for s in params.stenoses if s.level == level], default=0.0)
    return params.discs[level].height_mm * (1.0 - 0.12 * sev)


def _build_chain(params: PhantomParams) -> tuple[dict[str, VertebraGeom], dict[str, dict]]:
    """Vertebral bodies from S1 upward (frames, tilts) and the disc frames."""
    wedges = _lordosis_wedges(params)
    levels = params.levels
    verts: dict[str, VertebraGeom] = {}
    s1p = params.vertebrae["S1"]
    tilt = params.sacral_slope_deg
    rot = rot_x(tilt)
    centre = -rot @ EZ * (0.5 * s1p.body_height_mm)
    verts["S1"] = _make_body("S1", s1p, Frame(centre, rot), tilt)
    discs: dict[str, dict] = {}
    for i in range(len(levels) - 2, -1, -1):
        upper, lower = levels[i], levels[i + 1]
        key = f"{upper}-{lower}"
        lo = verts[lower]
        w = wedges[key]
        tilt_up = lo.tilt_deg - w
        tilt_disc = lo.tilt_deg - 0.5 * w
        h = _disc_height(params, key)
        e_lo = lo.superior_endplate_center
        e_up = e_lo + rot_x(tilt_disc) @ EZ * h
        up_p = params.vertebrae[upper]
        rot_up = rot_x(tilt_up)
        centre_up = e_up + rot_up @ EZ * (0.5 * up_p.body_height_mm)
        verts[upper] = _make_body(upper, up_p, Frame(centre_up, rot_up), tilt_up)
        discs[key] = dict(
            upper=upper,
            lower=lower,
            tilt=tilt_disc,
            wedge=w,
            height=h,
            frame=Frame(0.5 * (e_lo + e_up), rot_x(tilt_disc)),
        )
    return verts, discs


def _make_body(name: str, p: VertebraParams, frame: Frame, tilt: float) -> VertebraGeom:
    a, hh = 0.5 * p.body_width_mm, 0.5 * p.body_height_mm
    y_wall = 0.44 * p.body_depth_mm
    # D-shaped cross-section: an ellipse centred a little behind the body centre, cut flat posteriorly,
    # so that the posterior wall is broad (the pedicles attach at its corners)
    big_b, cy = _D_SHAPE * p.body_depth_mm, (_D_SHAPE - 0.5) * p.body_depth_mm
    ell_frame = Frame(frame.to_parent(np.array([0.0, cy, 0.0])), frame.rotation)
    body = EllipticCylinder(ell_frame, a, big_b, hh, cut_y=y_wall - cy, part=f"{name}:vertebral_body")
    return VertebraGeom(name=name, p=p, frame=frame, tilt_deg=tilt, body=body, parts=[body])


def _pedicle(v: VertebraGeom, side: str, top_offset: float, pitch_deg: float = 0.0) -> Ellipsoid:
    """Pedicle ellipsoid of ``v`` on ``side`` whose top lies ``top_offset`` below the superior endplate;
    ``pitch_deg`` raises its posterior end (about the vertebra's x axis)."""
    p = v.p
    sx = side_sign(side)
    conv = p.pedicle_convergence_deg
    half_len = 0.5 * p.pedicle_length_mm + 3.5
    rw = 0.5 * p.pedicle_width_mm
    # medial support of the rotated ellipsoid (its x-extent) so that the medial wall sits at canal_width/2
    hx = np.hypot(rw * np.cos(np.radians(conv)), half_len * np.sin(np.radians(conv)))
    xc = sx * (0.5 * p.canal_width_mm + hx)
    zc = v.half_height - top_offset - 0.5 * p.pedicle_height_mm
    yc = v.y_wall + 0.5 * p.pedicle_length_mm
    # local axes: x transverse, y along the pedicle (posterior end lateral), z vertical
    rot_local = rot_x(pitch_deg) @ rot_z(sx * conv)
    frame = Frame(v.local(xc, yc, zc), v.frame.rotation @ rot_local)
    return Ellipsoid(frame, (rw, half_len, 0.5 * p.pedicle_height_mm), part=f"{v.name}:pedicle_{side}")


def _solve_point(x: float, n1: np.ndarray, c1: float, n2: np.ndarray, c2: float) -> np.ndarray:
    """Body-frame point with given x and ``n1 . p = c1``, ``n2 . p = c2`` (n1, n2 in the y-z plane)."""
    m = np.array([[n1[1], n1[2]], [n2[1], n2[2]]])
    rhs = np.array([c1 - n1[0] * x, c2 - n2[0] * x])
    y, z = np.linalg.solve(m, rhs)
    return np.array([x, y, z])


# --------------------------------------------------------------------------------------------- builder
def build_anatomy(params: PhantomParams) -> Anatomy:
    """Assemble every primitive of the phantom from ``params`` (no voxels; milliseconds)."""
    verts, disc_info = _build_chain(params)
    levels = params.levels
    notes: list[str] = []
    roots: dict[str, RootGeom] = {}
    foramina: dict[str, ForamenGeom] = {}
    iaps: dict[str, list[Primitive]] = {lv: [] for lv in levels}
    root_parts: dict[str, dict] = {}

    # S1 pedicles are fixed (2 mm below the endplate); lumbar pedicles are placed by the foramen below
    for side in SIDES:
        verts["S1"].pedicles[side] = _pedicle(verts["S1"], side, 2.0)

    discs_geom: dict[str, Primitive] = {}
    for key, info in disc_info.items():
        up, lo = verts[info["upper"]], verts[info["lower"]]
        a = 0.5 * (up.a + lo.a) + 0.7
        depth = up.p.body_depth_mm + lo.p.body_depth_mm
        big_b, cy = 0.5 * _D_SHAPE * depth + 0.7, 0.5 * (_D_SHAPE - 0.5) * depth
        cut = 0.5 * (up.y_wall + lo.y_wall) + 0.7
        f = info["frame"]
        cyl = EllipticCylinder(
            Frame(f.to_parent(np.array([0.0, cy, 0.0])), f.rotation),
            a,
            big_b,
            0.5 * info["height"] + 12.0,
            cut_y=cut - cy,
        )
        discs_geom[key] = Intersection(
            [
                cyl,
                HalfSpace(up.inferior_endplate_center, up.axis),
                HalfSpace(lo.superior_endplate_center, -lo.axis),
            ],
            part=f"{disc_name(info['upper'], info['lower'])}",
        )
        info["cut"] = cut

    # foramina from the sacrum upwards (each places the pedicle of its upper vertebra)
    for i in range(len(levels) - 2, -1, -1):
        upper, lower = levels[i], levels[i + 1]
        key = f"{upper}-{lower}"
        for side in SIDES:
            fg, parts = _build_foramen(params, verts, disc_info[key], key, upper, lower, side, notes)
            foramina[f"{key}/{side}"] = fg
            iaps[upper].append(parts["iap"])
            root_parts[root_name(upper, side)] = parts

    # the most cranial vertebra's SAPs articulate with a vertebra that is not modelled
    top = verts[levels[0]]
    for side in SIDES:
        if side not in top.saps:
            top.saps[side] = _default_sap(top, side)

    for lv in levels:
        _posterior_elements(verts[lv], params)
    for lv in levels:
        verts[lv].parts.extend(iaps[lv])

    # roots (the lumbar ones were laid out with their foramen)
    for lv in levels[:-1]:
        for side in SIDES:
            name = root_name(lv, side)
            roots[name] = root_parts[name]["root"]
    for side in SIDES:
        name = root_name("S1", side)
        roots[name] = _s1_root(params, verts, levels, side)
    _apply_herniations(params, verts, roots, discs_geom, disc_info)

    # morphometry and the traversing capsules of each foramen
    for fkey, fg in foramina.items():
        key, side = fkey.split("/")
        trav = roots[fg.traversing_root]
        fg.traversing_capsules = [
            c for c in trav.capsules() if c.part.split(":")[1] in ("takeoff", "recess", "herniation")
        ]
        fg.foraminal_segment = roots[fg.exiting_root].segment("foraminal")

    sacrum_extra, sacrum_subtract = _sacrum(params, verts, roots)
    verts["S1"].parts.extend(sacrum_extra)
    transitional: dict = {}
    if params.transitional is not None:
        from .transitional import build_transitional

        transitional = build_transitional(params, verts, roots, sacrum_subtract, notes)

    ilium_l, ilium_r = _ilia(params, verts, disc_info)
    skin, soft_structs = _soft_tissue(params, verts, roots, foramina, disc_info)

    structures: list[Structure] = []
    structures.extend(soft_structs)
    structures.append(Structure("ilium_left", BY_NAME["ilium_left"].label, "bone", [ilium_l]))
    structures.append(Structure("ilium_right", BY_NAME["ilium_right"].label, "bone", [ilium_r]))
    if params.thoracic_levels:
        from .transitional import rib_structures

        structures.extend(rib_structures(params, verts))
    for lv in levels:
        sub = sacrum_subtract if lv == "S1" else []
        structures.append(Structure(lv, BY_NAME[lv].label, "bone", verts[lv].parts, sub))
    for key, prim in discs_geom.items():
        u, lo = key.split("-")
        name = disc_name(u, lo)
        structures.append(
            Structure(name, BY_NAME[name].label, "disc", [prim] + _herniation_prims(params, key, prim))
        )
    for name, rg in roots.items():
        # roots above L3 have no canonical label: they are rendered as nerve tissue without a label
        label = BY_NAME[name].label if name in BY_NAME else 0
        structures.append(Structure(name, label, "nerve", rg.capsules()))
    structures.append(Structure("dural_sac", BY_NAME["dural_sac"].label, "csf", _dural_sac(params, verts)))

    fov_levels = params.fov_levels or levels
    centre, size = _field_of_view(params, verts, fov_levels)
    return Anatomy(
        params=params,
        vertebrae=verts,
        roots=roots,
        foramina=foramina,
        structures=structures,
        discs=discs_geom,
        skin=skin,
        fov_center_body=centre,
        fov_size_mm=size,
        rotation=pose_rotation(params.pose_rotation_deg),
        translation=np.asarray(params.pose_translation_mm, dtype=float),
        notes=notes,
        transitional=transitional,
    )


# ------------------------------------------------------------------------------------------- foramen
def _build_foramen(
    params: PhantomParams,
    verts: dict[str, VertebraGeom],
    info: dict,
    key: str,
    upper: str,
    lower: str,
    side: str,
    notes: list[str],
) -> tuple[ForamenGeom, dict]:
    """Place U's pedicle, Lo's SAP, U's inferior articular process and the exiting root's course."""
    up, lo = verts[upper], verts[lower]
    sx = side_sign(side)
    fp = params.foramina[f"{key}/{side}"]
    rp = params.roots[root_name(upper, side)]
    sev = _stenosis(params, key, side)
    target_h = fp.height_mm * (1.0 - 0.35 * sev)
    target_w = fp.width_mm * (1.0 - 0.40 * sev)
    axis = lo.axis
    lateral = sx * EX
    posterior = lo.frame.axis(1)

    # Lo's pedicle top along the axis; U's pedicle placed so that the foraminal height is target_h
    lo_ped = lo.pedicles[side]
    top_lo = lo_ped.support(axis)
    # the pedicle's long axis is pitched toward the lower endplate's plane (80 % of the disc wedge), so
    # its lowest point lies mid-pedicle, between the body and the pars interarticularis
    pitch = 0.8 * (lo.tilt_deg - up.tilt_deg)
    probe = _pedicle(up, side, 0.0, pitch)
    low0 = -probe.support(-axis)  # lowest point (along the axis) with a zero top offset
    dz_dir = float(np.dot(axis, up.axis))  # lowering the pedicle by 1 mm lowers its bottom by this much
    offset = (low0 - top_lo - target_h) / dz_dir
    max_off = 2.0 * up.half_height - up.p.pedicle_height_mm - 2.0
    clamped = float(np.clip(offset, 1.0, max_off))
    if abs(clamped - offset) > 1e-6:
        notes.append(
            f"{key}/{side}: the pedicle of {upper} was kept inside its body; the foraminal height "
            f"differs from its parameter"
        )
    ped = _pedicle(up, side, clamped, pitch)
    up.pedicles[side] = ped
    t_p = -ped.support(-axis)  # the pedicle's lowest point along the axis
    realised_h = t_p - top_lo

    # the disc's posterior margin (Lo frame y); a narrow foramen compresses the root
    disc_back = info["frame"].to_parent(np.array([0.0, info["cut"], 0.0]))  # mid-disc posterior margin
    y_disc_back = float(np.dot(posterior, disc_back - lo.frame.origin))
    r = min(0.5 * rp.diameter_mm, 0.5 * (target_w - 1.4))
    descent = np.radians(rp.descent_deg)
    anterior = np.radians(rp.anterior_deg)
    half_band = r / np.cos(descent)  # vertical half-width of the root's band in the reference view
    clearance = max(rp.clearance_fraction * realised_h, half_band + 0.35)
    if sev > 0:  # stenosis presses the root against the pedicle
        clearance = half_band + 0.35 + (clearance - half_band - 0.35) * (1.0 - sev)
    s_body = up.body.support(lateral)  # lateral border of U's body in the reference view
    s_a = s_body - rp.exit_inset_mm
    t_a = t_p - clearance
    y_axis_up = up.frame.axis(1)
    c_wall = float(np.dot(y_axis_up, up.frame.origin)) + up.y_wall + r + 0.9  # just behind U's posterior wall
    a_pt = _solve_point(sx * s_a, axis, t_a, y_axis_up, c_wall)
    d_local = np.array([sx * np.cos(descent), -np.tan(anterior) * np.cos(descent), -np.sin(descent)])
    d = unit(lo.frame.vec_to_parent(d_local))
    e_lo = lo.superior_endplate_center
    length = _foraminal_length(a_pt, d, r, axis, lateral, float(np.dot(axis, e_lo)), s_body)
    b_pt = a_pt + d * length

    # the exiting root upstream of A: sac -> lateral recess of U (parallel to U's axis) -> under the pedicle
    r_rec = 0.75 * 0.5 * rp.diameter_mm
    x_rec = sx * (0.5 * up.p.canal_width_mm - r_rec - 0.4)
    y_rec = up.y_wall + r_rec + 1.6
    z_top = up.half_height + _disc_above(params, upper) + rp.takeoff_mm
    above = verts[params.levels[params.levels.index(upper) - 1]] if upper != params.levels[0] else None
    t1 = _clear_of(above, up.local(x_rec, y_rec, z_top), up.frame.axis(1), r_rec + 0.8)
    t0 = up.local(sx * (_sac_dims(params)[0] - 2.5), y_rec + 3.0, z_top + 7.0)
    t0 = t0 + (t1 - up.local(x_rec, y_rec, z_top))
    p0 = up.local(x_rec, y_rec, 0.0)
    z_bend = (t_a + 1.0 - float(np.dot(axis, p0))) / float(np.dot(axis, up.axis))
    tb = up.local(x_rec, y_rec, z_bend)
    r_sub = 0.5 * (r_rec + r) * (1.0 - 0.3 * sev)
    r_drg = min(1.25 * r, half_band - 0.15, clearance - 0.4) * (1.0 - 0.35 * sev)
    r_drg = max(r_drg, r_sub)
    g0, g1 = a_pt + (tb - a_pt) * 0.55, a_pt + (tb - a_pt) * 0.2
    for g in (g0, g1):  # keep the ganglion below the pedicle's lowest point
        excess = float(np.dot(axis, g)) + r_drg - (t_p - 0.3)
        if excess > 0:
            g -= axis * excess

    # Lo's superior articular process (its tip 1.5 mm below U's pedicle), moved back if the root would touch it
    sap_ceiling = t_p - float(np.dot(axis, lo.frame.origin)) - 1.5
    s_sap = s_a + fp.facet_overhang_mm
    y_front = y_disc_back + target_w
    root_caps = [Capsule(tb, a_pt, r_sub), Capsule(a_pt, b_pt, r), Capsule(g0, g1, r_drg)]
    for _ in range(6):
        sap = _sap_for_foramen(lo, side, s_sap, y_front, sev, max_top=sap_ceiling)
        gap = min(_capsule_clearance(c, sap) for c in root_caps)
        if gap >= 0.5:
            break
        y_front += 0.5 - gap + 0.05
    lo.saps[side] = sap
    realised_w = (-sap.support(-posterior) - float(np.dot(posterior, lo.frame.origin))) - y_disc_back
    iap = _iap_for_joint(up, lo, sap, side)

    ped_local = lo.frame.to_local(ped.frame.origin)
    centre = lo.frame.to_parent(np.array([ped_local[0], y_disc_back + 0.5 * realised_w, 0.0]))
    centre = centre + axis * (0.5 * (t_p + top_lo) - float(np.dot(axis, centre)))
    fg = ForamenGeom(
        level=key,
        side=side,
        upper=upper,
        lower=lower,
        axis=axis,
        lateral=lateral,
        posterior=posterior,
        upper_body=up.body,
        lower_body=lo.body,
        upper_pedicle=ped,
        lower_pedicle=lo_ped,
        lower_sap=sap,
        exiting_root=root_name(upper, side),
        traversing_root=root_name(lower, side),
        foraminal_segment=Capsule(a_pt, b_pt, r),
        traversing_capsules=[],
        lower_endplate_point=e_lo,
        disc_posterior_point=disc_back,
        target_height_mm=target_h,
        target_width_mm=target_w,
        realised_height_mm=float(realised_h),
        realised_width_mm=float(realised_w),
        center=centre,
        upper_axis=up.axis,
        upper_posterior=up.frame.axis(1),
    )
    # beyond the foramen: forward (in front of the sacral ala at the lumbosacral level), then down
    if lower == "S1":
        d2 = unit(lo.frame.vec_to_parent(np.array([sx * 0.12, -0.95, -0.15])))
        d3 = unit(lo.frame.vec_to_parent(np.array([sx * 0.1, -0.3, -0.95])))
    else:
        d2 = unit(d + lo.frame.vec_to_parent(np.array([0.0, -0.9, -0.5])))
        d3 = unit(d2 + lo.frame.vec_to_parent(np.array([0.0, 0.0, -0.8])))
    c_pt = b_pt + d2 * 25.0
    path = np.array([t0, t1, tb, a_pt, b_pt, c_pt, c_pt + d3 * 30.0])
    root = RootGeom(
        root_name(upper, side),
        path,
        [r_rec, r_rec, r_sub, r, 0.95 * r, 0.95 * r],
        ["takeoff", "recess", "subpedicular", "foraminal", "extraforaminal", "extraforaminal"],
        Capsule(g0, g1, r_drg, part=f"{root_name(upper, side)}:ganglion"),
    )
    return fg, dict(iap=iap, root=root)


def _clear_of(v: VertebraGeom | None, p: np.ndarray, direction: np.ndarray, margin: float) -> np.ndarray:
    """``p`` moved along ``direction`` until it is ``margin`` outside the vertebral body of ``v``."""
    if v is None:
        return p
    q = np.asarray(p, dtype=float).copy()
    for _ in range(60):
        if float(v.body.sdf_points(q[None])[0]) >= margin:
            break
        q = q + 0.25 * direction
    return q


def _disc_above(params: PhantomParams, level: str) -> float:
    levels = params.levels
    idx = levels.index(level)
    return _disc_height(params, f"{levels[idx - 1]}-{level}") if idx > 0 else 10.0


def _capsule_clearance(cap: Capsule, solid: Primitive, step: float = 0.25) -> float:
    """Smallest distance between a capsule's surface and a solid with an exact SDF (negative: overlap)."""
    a, b = np.asarray(cap.a, float), np.asarray(cap.b, float)
    n = max(2, int(np.ceil(np.linalg.norm(b - a) / step)) + 1)
    q = a + np.linspace(0.0, 1.0, n)[:, None] * (b - a)
    return float(np.min(solid.sdf_points(q)) - cap.radius)


def _foraminal_length(
    a_pt: np.ndarray,
    d: np.ndarray,
    r: float,
    axis: np.ndarray,
    lateral: np.ndarray,
    t_e: float,
    s_body: float,
) -> float:
    """Length of the straight foraminal segment: 4 mm past both triangles' lateral vertices (reference view)."""
    ds, dt = float(np.dot(lateral, d)), float(np.dot(axis, d))
    s_a, t_a = float(np.dot(lateral, a_pt)), float(np.dot(axis, a_pt))
    slope = -dt / ds  # descent per mm of lateral run
    band = r * np.hypot(ds, dt) / ds  # vertical half-width of the band
    s_k = s_a + (t_a - band - t_e) / slope  # where the lower border meets the endplate line
    return float(max(18.0, (max(s_k, s_body) + 4.0 - s_a) / ds))


def _sap_box(v: VertebraGeom, side: str, thickness: float, length: float, bottom: float, top: float) -> tuple:
    sx = side_sign(side)
    fa = np.radians(v.p.facet_angle_deg)
    u1 = np.array([sx * np.cos(fa), -np.sin(fa), 0.0])  # normal of the joint, into the SAP
    u2 = np.array([sx * np.sin(fa), np.cos(fa), 0.0])  # along the joint (posterolateral)
    u3 = EZ
    rot_local = np.column_stack([u1, u2, u3])
    half = (0.5 * thickness, 0.5 * length, 0.5 * (top - bottom))
    rounding = min(1.8, 0.45 * half[0])
    return rot_local, half, rounding


def _sap_for_foramen(
    lo: VertebraGeom, side: str, s_lateral: float, y_front: float, sev: float, max_top: float | None = None
) -> RoundBox:
    """Lo's SAP with lateral border at ``s_lateral`` (reference view), anterior face at local y ``y_front``
    and its tip at most at local height ``max_top`` (below the pedicle above)."""
    p = lo.p
    sx = side_sign(side)
    thickness = p.sap_thickness_mm + 2.0 * sev  # facet hypertrophy
    bottom = float(np.dot(lo.frame.vec_to_local(lo.pedicles[side].frame.origin - lo.frame.origin), EZ))
    top = lo.half_height + p.sap_rise_mm
    if max_top is not None:
        top = max(min(top, max_top), lo.half_height + 3.0)
    rot_local, half, rho = _sap_box(lo, side, thickness, p.sap_length_mm, bottom, top)
    inner = np.asarray(half) - rho
    hx = inner[0] * abs(rot_local[0, 0]) + inner[1] * abs(rot_local[0, 1]) + rho
    hy = inner[0] * abs(rot_local[1, 0]) + inner[1] * abs(rot_local[1, 1]) + rho
    # lateral support along body x equals local x (all frames share x)
    lat_local = sx * s_lateral - float(np.dot(EX, lo.frame.origin))
    xc = lat_local - sx * hx
    yc = y_front + hy
    zc = 0.5 * (top + bottom)
    frame = Frame(lo.local(xc, yc, zc), lo.frame.rotation @ rot_local)
    return RoundBox(frame, half, rho, part=f"{lo.name}:superior_articular_process_{side}")


def _default_sap(v: VertebraGeom, side: str) -> RoundBox:
    """SAP of the most cranial modelled vertebra (its joint partner is not modelled)."""
    return _sap_for_foramen(v, side, v.a - 1.0, v.y_wall + 8.0, 0.0)


def _iap_for_joint(up: VertebraGeom, lo: VertebraGeom, sap: RoundBox, side: str) -> RoundBox:
    """U's inferior articular process: medial/posterior of Lo's SAP across a 1.5 mm joint space."""
    u1, u2 = sap.frame.rotation[:, 0], sap.frame.rotation[:, 1]
    e1 = 0.42 * up.p.sap_thickness_mm
    gap = 1.5
    z_top_local = (
        float(np.dot(lo.frame.vec_to_local(up.inferior_endplate_center - lo.frame.origin), EZ)) + 11.0
    )
    z_bot_local = lo.half_height - 1.0
    centre_sap_local = lo.frame.to_local(sap.frame.origin)
    shift = -(sap.half[0] + gap + e1) * lo.frame.vec_to_local(u1) + 1.0 * lo.frame.vec_to_local(u2)
    c_local = centre_sap_local + shift
    c_local[2] = 0.5 * (z_top_local + z_bot_local)
    half = (e1, 0.45 * up.p.sap_length_mm, 0.5 * (z_top_local - z_bot_local))
    frame = Frame(lo.frame.to_parent(c_local), sap.frame.rotation)
    return RoundBox(frame, half, min(1.8, 0.45 * e1), part=f"{up.name}:inferior_articular_process_{side}")


# ----------------------------------------------------------------------------------- posterior elements
def _posterior_elements(v: VertebraGeom, params: PhantomParams) -> None:
    p = v.p
    v.parts.extend(v.pedicles[s] for s in SIDES)
    v.parts.extend(v.saps[s] for s in SIDES)
    if v.name == "S1":
        return
    y_canal_back = v.y_wall + p.canal_depth_mm
    for side in SIDES:
        sx = side_sign(side)
        ped = v.pedicles[side]
        pc = v.frame.to_local(ped.frame.origin)
        z_top = pc[2] + 0.5 * p.pedicle_height_mm - 2.5
        z_bot = -v.half_height + 8.0
        p1 = np.array([pc[0] - sx * 0.3 * p.pedicle_width_mm, v.y_wall + p.pedicle_length_mm + 2.5])
        p2 = np.array([0.0, y_canal_back + 0.5 * p.lamina_thickness_mm])
        u = unit(np.append(p2 - p1, 0.0))
        length = float(np.linalg.norm(p2 - p1))
        rot_local = np.column_stack([u, np.cross(EZ, u), EZ])
        c = np.append(0.5 * (p1 + p2), 0.5 * (z_top + z_bot))
        v.parts.append(
            RoundBox(
                Frame(v.frame.to_parent(c), v.frame.rotation @ rot_local),
                (0.5 * length + 1.5, 0.5 * p.lamina_thickness_mm, 0.5 * (z_top - z_bot)),
                1.5,
                part=f"{v.name}:lamina_{side}",
            )
        )
        # transverse process from the pedicle-lamina junction, laterally and a little backwards (L5: upwards);
        # it neither hangs below the pedicle (the roof of the foramen) nor rises above the superior endplate
        up_deg = 6.0 if v.name in ("L5", "L6") else 0.0
        back_deg = 18.0 if v.name in ("L5", "L6") else 10.0
        d = unit(
            np.array(
                [sx * np.cos(np.radians(back_deg)), np.sin(np.radians(back_deg)), np.sin(np.radians(up_deg))]
            )
        )
        hx_ped = ped.support(sx * v.frame.axis(0)) - float(np.dot(sx * v.frame.axis(0), ped.frame.origin))
        root_pt = np.array([pc[0] + sx * 0.4 * hx_ped, v.y_wall + 0.85 * p.pedicle_length_mm, pc[2]])
        half_len = 0.5 * p.transverse_process_length_mm + 0.3 * hx_ped
        rot_local = np.column_stack([d, unit(np.cross(EZ, d)), unit(np.cross(d, unit(np.cross(EZ, d))))])
        axis = v.axis
        floor = -ped.support(-axis) + 1.0
        ceiling = float(np.dot(axis, v.superior_endplate_center)) - 1.5
        height = p.transverse_process_height_mm
        for _ in range(3):
            rho = 0.35 * min(height, p.transverse_process_thickness_mm)
            half = (half_len + rho, 0.5 * p.transverse_process_thickness_mm, 0.5 * height)
            c = root_pt + d * half_len
            tp = RoundBox(Frame(v.frame.to_parent(c), v.frame.rotation @ rot_local), half, rho)
            c = c + EZ * (floor - (-tp.support(-axis))) / float(np.dot(axis, v.axis))
            tp = RoundBox(Frame(v.frame.to_parent(c), v.frame.rotation @ rot_local), half, rho)
            excess = tp.support(axis) - ceiling
            if excess <= 0:
                break
            height -= excess + 0.05
        v.parts.append(RoundBox(tp.frame, half, rho, part=f"{v.name}:transverse_process_{side}"))
    # spinous process, sloping caudally
    zc = -0.12 * p.body_height_mm
    c = np.array([0.0, y_canal_back + p.lamina_thickness_mm + 0.5 * p.spinous_length_mm - 2.5, zc])
    v.parts.append(
        RoundBox(
            Frame(v.frame.to_parent(c), v.frame.rotation @ rot_x(-12.0)),
            (3.6, 0.5 * p.spinous_length_mm + 1.0, 0.5 * p.spinous_height_mm),
            2.5,
            part=f"{v.name}:spinous_process",
        )
    )


# ----------------------------------------------------------------------------------------------- roots
def _s1_root(
    params: PhantomParams, verts: dict[str, VertebraGeom], levels: tuple[str, ...], side: str
) -> RootGeom:
    """S1 root: sac -> lateral recess above S1 (traversing at the lumbosacral level) -> S1 foramen."""
    v = verts["S1"]
    sx = side_sign(side)
    rp = params.roots[root_name("S1", side)]
    r_rec = 0.75 * 0.5 * rp.diameter_mm
    r = 0.5 * rp.diameter_mm
    p = v.p
    x_rec = sx * (0.5 * p.canal_width_mm - r_rec - 0.6)
    y_rec = v.y_wall + r_rec + 1.6
    disc_h = _disc_height(params, f"{levels[-2]}-S1")
    z_top = v.half_height + disc_h + rp.takeoff_mm
    sac_rx = _sac_dims(params)[0]
    t1 = _clear_of(verts[levels[-2]], v.local(x_rec, y_rec, z_top), v.frame.axis(1), r_rec + 0.8)
    t0 = v.local(sx * (sac_rx - 2.5), y_rec + 3.0, z_top + 7.0) + (t1 - v.local(x_rec, y_rec, z_top))
    tb = v.local(x_rec, y_rec, v.half_height - 9.0)
    f1 = v.local(sx * (0.5 * p.canal_width_mm + 3.0), v.y_wall - 4.0, -v.half_height + 2.0)
    f2 = v.local(sx * (0.5 * p.canal_width_mm + 9.0), -v.b - 6.0, -v.half_height - 10.0)
    f3 = v.local(sx * (0.5 * p.canal_width_mm + 16.0), -v.b - 14.0, -v.half_height - 45.0)
    path = np.array([t0, t1, tb, f1, f2, f3])
    return RootGeom(
        root_name("S1", side),
        path,
        [r_rec, r_rec, r_rec, r, r],
        ["takeoff", "recess", "sacral", "sacral_foramen", "pelvic"],
    )


def _apply_herniations(
    params: PhantomParams,
    verts: dict[str, VertebraGeom],
    roots: dict[str, RootGeom],
    discs: dict[str, Primitive],
    disc_info: dict,
) -> None:
    """Displace (posteriorly, slightly medially) and compress the traversing root over each herniation.

    The root keeps its lateral-recess course above and below the herniation; over the disc's lower 85 %
    it is pushed back by the protrusion (as far as the superior articular process behind it allows)
    and its radius drops to 72 %.
    """
    for h in params.herniations:
        info = disc_info[h.level]
        lo = verts[info["lower"]]
        root = roots[root_name(info["lower"], h.side)]
        sx = side_sign(h.side)
        i = root.segment_names.index("recess")
        t1, tb = root.path[i], root.path[i + 1]
        r_rec = root.radii[i]
        comp = 0.72 * r_rec
        axis = lo.axis
        t_lo = float(np.dot(axis, lo.superior_endplate_center))
        z0, z1 = t_lo + 0.1 * info["height"], t_lo + 0.85 * info["height"]
        # room behind the root: up to the anterior face of the SAP
        y_root = float(np.dot(lo.frame.axis(1), t1 - lo.frame.origin))
        sap = lo.saps[h.side]
        y_front = -sap.support(-lo.frame.axis(1)) - float(np.dot(lo.frame.axis(1), lo.frame.origin))
        room = y_front - (y_root + comp) - 0.4
        push_y = float(np.clip(h.size_mm - 0.4, 0.3, max(room, 0.3)))
        push = lo.frame.vec_to_parent(np.array([-sx * 0.8, push_y, 0.0]))
        t_top, t_bot = float(np.dot(axis, t1)), float(np.dot(axis, tb))

        def at(
            t: float, t1: np.ndarray = t1, tb: np.ndarray = tb, t_top: float = t_top, t_bot: float = t_bot
        ) -> np.ndarray:
            return t1 + (tb - t1) * ((t_top - t) / (t_top - t_bot))

        hi = min(z1 + 2.5, t_top - 0.5)
        pts = [t1, at(hi), at(min(z1, hi - 0.5)) + push, at(z0) + push, at(z0 - 3.0), tb]
        root.path = np.vstack([root.path[:i], np.array(pts), root.path[i + 2 :]])
        root.radii = root.radii[:i] + [r_rec, 0.85 * r_rec, comp, 0.85 * r_rec, r_rec] + root.radii[i + 1 :]
        root.segment_names = (
            root.segment_names[:i]
            + ["recess", "herniation", "herniation", "herniation", "recess"]
            + root.segment_names[i + 1 :]
        )


def _herniation_prims(params: PhantomParams, key: str, disc: Primitive) -> list[Primitive]:
    out: list[Primitive] = []
    if not isinstance(disc, Intersection):
        return out
    cyl = disc.children[0]
    assert isinstance(cyl, EllipticCylinder)
    for h in params.herniations:
        if h.level != key:
            continue
        sx = side_sign(h.side)
        f = cyl.frame
        cut = cyl.cut_y if cyl.cut_y is not None else cyl.b
        x_c = sx * 0.42 * cyl.a
        y_c = cut - 0.5
        centre = f.to_parent(np.array([x_c, y_c, 0.0]))
        ell = Ellipsoid(
            Frame(centre, f.rotation),
            (5.0 + 0.3 * h.size_mm, h.size_mm + 0.5, 8.0),
            part=f"{disc.part}:herniation_{h.side}",
        )
        out.append(Intersection([ell, disc.children[1], disc.children[2]], part=ell.part))
    return out


# ---------------------------------------------------------------------------------------- dural sac
def _sac_dims(params: PhantomParams) -> tuple[float, float]:
    """Half-width (x) and half-depth (y) of the dural sac (mm)."""
    widths = [params.vertebrae[lv].canal_width_mm for lv in params.levels]
    depths = [params.vertebrae[lv].canal_depth_mm for lv in params.levels]
    max_r = max(0.75 * 0.5 * params.roots[n].diameter_mm for n in params.root_names)
    rx = 0.5 * min(widths) - 2.0 * max_r - 0.9
    ry = 0.5 * min(depths) - 1.8
    return float(rx), float(ry)


def _dural_sac(params: PhantomParams, verts: dict[str, VertebraGeom]) -> list[Primitive]:
    rx, ry = _sac_dims(params)
    pts = []
    levels = params.levels
    top = verts[levels[0]]
    y_off = lambda v: v.y_wall + 0.5 * v.p.canal_depth_mm + 0.6  # noqa: E731
    pts.append(top.local(0.0, y_off(top), top.half_height + 60.0))
    for lv in levels[:-1]:
        v = verts[lv]
        pts.append(v.local(0.0, y_off(v), v.half_height))
        pts.append(v.local(0.0, y_off(v), -v.half_height))
    s1 = verts["S1"]
    pts.append(s1.local(0.0, y_off(s1), s1.half_height))
    pts.append(s1.local(0.0, y_off(s1) + 1.0, -s1.half_height - 8.0))
    pts = np.array(pts)
    k = ry / rx
    out: list[Primitive] = []
    for i in range(len(pts) - 1):
        out.append(ScaledCapsule(pts[i], pts[i + 1], ry, k, part="dural_sac"))
    return out


# -------------------------------------------------------------------------------------------- sacrum
def _sacrum(
    params: PhantomParams, verts: dict[str, VertebraGeom], roots: dict[str, RootGeom]
) -> tuple[list[Primitive], list[Primitive]]:
    v = verts["S1"]
    p = v.p
    hh = v.half_height
    out: list[Primitive] = []
    for side in SIDES:
        sx = side_sign(side)
        # ala: top ala_drop below the endplate plane, sloping down laterally
        rot_local = rot_y(sx * 10.0)
        radii = (0.5 * p.ala_width_mm + 9.0, 0.95 * v.b, hh + 8.0)
        c = np.array([sx * (v.a + 0.5 * p.ala_width_mm - 8.0), 0.1 * v.b, 0.0])
        ell = Ellipsoid(Frame(v.local(*c), v.frame.rotation @ rot_local), radii, part=f"S1:ala_{side}")
        top = ell.support(v.axis) - float(np.dot(v.axis, v.frame.origin))
        c[2] -= top - (hh - p.ala_drop_mm)
        out.append(Ellipsoid(Frame(v.local(*c), v.frame.rotation @ rot_local), radii, part=f"S1:ala_{side}"))
        # lateral mass between canal and ala, behind the body (below the endplate)
        lm_top, lm_bot = hh - 4.0, -hh - 22.0
        c = np.array(
            [
                sx * (0.5 * p.canal_width_mm + 0.5 * p.pedicle_width_mm + 2.0),
                v.y_wall + 0.5 * p.canal_depth_mm,
                0.5 * (lm_top + lm_bot),
            ]
        )
        out.append(
            RoundBox(
                Frame(v.local(*c), v.frame.rotation),
                (0.5 * p.pedicle_width_mm + 4.0, 0.5 * p.canal_depth_mm + 2.5, 0.5 * (lm_top - lm_bot)),
                5.0,
                part=f"S1:lateral_mass_{side}",
            )
        )
    # roof of the sacral canal and the median sacral crest
    roof_top, roof_bot = hh - 3.0, -hh - 24.0
    y_back = v.y_wall + p.canal_depth_mm
    out.append(
        RoundBox(
            Frame(
                v.local(0.0, y_back + 0.5 * p.lamina_thickness_mm - 1.0, 0.5 * (roof_top + roof_bot)),
                v.frame.rotation,
            ),
            (0.5 * p.canal_width_mm + 5.0, 0.5 * p.lamina_thickness_mm, 0.5 * (roof_top - roof_bot)),
            2.5,
            part="S1:sacral_lamina",
        )
    )
    out.append(
        RoundBox(
            Frame(v.local(0.0, y_back + p.lamina_thickness_mm + 3.0, -hh - 2.0), v.frame.rotation),
            (3.0, 5.0, 12.0),
            2.5,
            part="S1:median_sacral_crest",
        )
    )
    # lower sacrum (S2-S3): tapering, curving backwards
    low_frame = Frame(v.local(0.0, 3.0, -hh - 14.0), v.frame.rotation @ rot_x(-18.0))
    out.append(EllipticCylinder(low_frame, 0.85 * v.a, 0.8 * v.b, 14.0, part="S1:lower_sacrum"))
    out.append(
        Ellipsoid(low_frame, (v.a + 0.5 * p.ala_width_mm, 0.85 * v.b + 3.0, 26.0), part="S1:lower_sacrum")
    )
    # canal and S1 foramina are holes in the sacrum (filled with fat, roots and the sac)
    canal = EllipticCylinder(
        Frame(v.local(0.0, v.y_wall + 0.5 * p.canal_depth_mm, -22.0), v.frame.rotation),
        0.5 * p.canal_width_mm,
        0.5 * p.canal_depth_mm,
        hh + 23.0,
        part="S1:sacral_canal",
    )
    low_canal = EllipticCylinder(
        Frame(
            low_frame.to_parent(np.array([0.0, v.y_wall - 3.0 + 0.4 * p.canal_depth_mm, -6.0])),
            low_frame.rotation,
        ),
        0.45 * p.canal_width_mm,
        0.4 * p.canal_depth_mm,
        24.0,
        part="S1:sacral_canal",
    )
    holes: list[Primitive] = [canal, low_canal]
    for side in SIDES:
        rg = roots[root_name("S1", side)]
        for i, n in enumerate(rg.segment_names):
            if n in ("sacral", "sacral_foramen"):
                holes.append(Capsule(rg.path[i], rg.path[i + 1], rg.radii[i] + 1.3, part="S1:sacral_foramen"))
    return out, holes


# --------------------------------------------------------------------------------------------- ilium
def _ilia(
    params: PhantomParams, verts: dict[str, VertebraGeom], disc_info: dict
) -> tuple[Primitive, Primitive]:
    s1 = verts["S1"]
    lumbosacral = f"{params.levels[-2]}-S1"
    z_disc = float(disc_info[lumbosacral]["frame"].origin[2])
    crest = z_disc + params.iliac_crest_height_mm
    c = s1.frame.origin
    ala_lat = s1.a + s1.p.ala_width_mm
    ala_top = float(s1.local(0, 0, s1.half_height - s1.p.ala_drop_mm)[2])
    k = params.pelvis_width_scale
    out = []
    for side in SIDES:
        sx = side_sign(side)
        # SI joint (anterior, posterior), posterior superior iliac spine, posterior crest, crest apex,
        # anterior crest, anterior superior iliac spine
        xs = np.array(
            [
                ala_lat + 11,
                ala_lat + 9,
                ala_lat - 9,
                ala_lat + 12 * k,
                ala_lat + 40 * k,
                ala_lat + 62 * k,
                ala_lat + 60 * k,
            ]
        )
        ys = c[1] + np.array([-12.0, 23.0, 46.0, 54.0, 34.0, -8.0, -50.0])
        tops = np.array(
            [
                ala_top - 2.0,
                max(ala_top + 4.0, crest - 20.0),
                crest - 17.0,
                crest - 4.0,
                crest,
                crest - 10.0,
                crest - 35.0,
            ]
        )
        thick = np.array([14.0, 20.0, 16.0, 12.0, 9.0, 8.0, 9.0])
        pts = np.column_stack([sx * xs, ys])
        out.append(VerticalWall(pts, tops, thick, bottom=c[2] - 110.0, part=f"ilium_{side}"))
    return out[0], out[1]


# ---------------------------------------------------------------------------------------- soft tissue
def _soft_tissue(
    params: PhantomParams,
    verts: dict[str, VertebraGeom],
    roots: dict[str, RootGeom],
    foramina: dict[str, ForamenGeom],
    disc_info: dict,
) -> tuple[EllipticCylinder, list[Structure]]:
    levels = params.levels
    lumbar = [verts[lv] for lv in levels[:-1]]
    sp_tips = [max(p.support(EY) for p in v.parts if p.part.endswith("spinous_process")) for v in lumbar]
    y_skin = max(sp_tips) + params.back_tissue_mm
    a, b = params.body_half_width_mm, params.body_half_depth_mm
    yc = y_skin - b
    trunk_frame = Frame(np.array([0.0, yc, 0.0]), np.eye(3))
    skin = EllipticCylinder(trunk_frame, a, b, _BIG, part="skin")
    fat = EllipticCylinder(trunk_frame, a - 2.0, b - 2.0, _BIG, part="subcutaneous_fat")
    fat_t = params.subcutaneous_fat_mm
    inner = EllipticCylinder(trunk_frame, a - 2.0 - 1.3 * fat_t, b - 2.0 - fat_t, _BIG, part="trunk")
    s: list[Structure] = [
        Structure("skin", 0, "skin", [skin]),
        Structure("subcutaneous_fat", 0, "fat", [fat]),
        Structure("trunk", 0, "soft", [inner]),
    ]
    # retroperitoneal fat around the spine
    col = []
    for v in [*lumbar, verts["S1"]]:
        col.append(
            EllipticCylinder(
                Frame(v.local(0, 8.0, 0), v.frame.rotation),
                v.a + 22.0,
                v.b + 22.0,
                v.half_height + 8.0,
                part="retroperitoneal_fat",
            )
        )
    s.append(Structure("retroperitoneal_fat", 0, "fat", [Intersection([c, inner]) for c in col]))
    for side in SIDES:
        sx = side_sign(side)
        # paraspinal muscles (multifidus + erector spinae) behind the laminae and transverse processes
        pts = []
        for v in lumbar:
            pts.append(v.local(sx * 30.0, v.y_wall + v.p.canal_depth_mm + 26.0, v.half_height + 4.0))
            pts.append(v.local(sx * 30.0, v.y_wall + v.p.canal_depth_mm + 26.0, -v.half_height - 4.0))
        s1 = verts["S1"]
        pts.append(s1.local(sx * 26.0, s1.y_wall + s1.p.canal_depth_mm + 26.0, -s1.half_height - 30.0))
        pts = [lumbar[0].local(sx * 30.0, lumbar[0].y_wall + lumbar[0].p.canal_depth_mm + 26.0, 80.0)] + pts
        prims = [
            Intersection([ScaledCapsule(pts[i], pts[i + 1], 27.0, 27.0 / 25.0), inner], part="paraspinal")
            for i in range(len(pts) - 1)
        ]
        s.append(Structure(f"muscle_paraspinal_{side}", 0, "muscle", prims))
        # psoas, growing caudally
        ps = []
        radii = np.linspace(9.0, 21.0, len(lumbar) + 1)
        for j, v in enumerate([*lumbar, verts["S1"]]):
            ps.append(v.local(sx * (v.a + radii[j] - 5.0), -0.1 * v.b, 0.0))
        ps = [lumbar[0].local(sx * (lumbar[0].a + 5.0), -0.1 * lumbar[0].b, 60.0)] + ps
        ps.append(verts["S1"].local(sx * (verts["S1"].a + 35.0), -verts["S1"].b - 25.0, -60.0))
        rr = [8.0, *radii, 22.0]
        s.append(
            Structure(
                f"muscle_psoas_{side}",
                0,
                "muscle",
                [
                    Intersection([Capsule(ps[i], ps[i + 1], rr[i + 1]), inner], part="psoas")
                    for i in range(len(ps) - 1)
                ],
            )
        )
        # gluteal muscles behind the iliac wing, below the crest
        s1o = verts["S1"].frame.origin
        glut = EllipticCylinder(
            Frame(np.array([sx * 82.0, s1o[1] + 62.0, s1o[2] - 60.0]), np.eye(3)),
            48.0,
            32.0,
            60.0 + params.iliac_crest_height_mm * 0.5,
            part="gluteal",
        )
        s.append(Structure(f"muscle_gluteal_{side}", 0, "muscle", [Intersection([glut, inner])]))
    # great vessels in front of the spine, bifurcating over L4-L5
    l_top = lumbar[0]
    bif = verts[levels[-2]].superior_endplate_center
    s1v = verts["S1"]
    vessels = []
    for sx, r0, name in ((1.0, 10.5, "aorta"), (-1.0, 11.5, "vena_cava")):
        top_pt = l_top.local(sx * 12.0, -l_top.b - r0 - 4.0, 80.0)
        mid = bif + np.array([sx * 12.0, -verts[levels[-2]].b - r0 - 4.0, 0.0])
        vessels.append(Capsule(top_pt, mid, r0, part=name))
        for side_x in (1.0, -1.0):
            end = s1v.local(side_x * 45.0, -s1v.b - 28.0, -55.0)
            vessels.append(Capsule(mid, end, 0.62 * r0, part=f"{name}_iliac"))
    s.append(Structure("vessels", 0, "vessel", [Intersection([c, inner]) for c in vessels]))
    # epidural fat in the canal, foraminal fat, fat sleeves around the roots
    efat: list[Primitive] = []
    for lv in levels:
        v = verts[lv]
        efat.append(
            EllipticCylinder(
                Frame(v.local(0.0, v.y_wall + 0.5 * v.p.canal_depth_mm, 0.0), v.frame.rotation),
                0.5 * v.p.canal_width_mm + 1.5,
                0.5 * v.p.canal_depth_mm + 1.5,
                v.half_height + 7.0,
                part="epidural_fat",
            )
        )
    for fg in foramina.values():
        lo = verts[fg.lower]
        efat.append(
            Ellipsoid(
                Frame(fg.center, lo.frame.rotation),
                (14.0, 0.5 * fg.realised_width_mm + 6.0, 0.5 * fg.realised_height_mm + 4.0),
                part="foraminal_fat",
            )
        )
    for rg in roots.values():
        for i in range(1, len(rg.path) - 1):
            efat.append(Capsule(rg.path[i], rg.path[i + 1], rg.radii[i] + 2.2, part="perineural_fat"))
    s.append(Structure("epidural_fat", 0, "fat", [Intersection([c, inner]) for c in efat]))
    return skin, s


# -------------------------------------------------------------------------------------- field of view
def _field_of_view(
    params: PhantomParams, verts: dict[str, VertebraGeom], fov_levels: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    zs, ys = [], []
    for lv in fov_levels:
        v = verts[lv]
        hh = v.half_height + (14.0 if lv == "S1" else 0.0)
        for z in (-hh, v.half_height):
            for y in (-v.b, v.b):
                q = v.local(0.0, y, z)
                zs.append(q[2])
                ys.append(q[1])
    z_lo, z_hi = min(zs), max(zs)
    if params.fov_center_body_mm is not None:
        centre = np.asarray(params.fov_center_body_mm, dtype=float)
    else:
        centre = np.array([0.0, float(np.mean(ys)) + 30.0, 0.5 * (z_lo + z_hi)])
    if params.fov_mm is not None:
        size = np.asarray(params.fov_mm, dtype=float)
    else:
        size = np.array([180.0, 200.0, (z_hi - z_lo) + 24.0])
    return centre, size
