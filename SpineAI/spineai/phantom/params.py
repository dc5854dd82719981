"""Parameters of the synthetic lumbosacral CT phantom, and their reproducible random sampling.

All lengths are in mm, angles in degrees, intensities in Hounsfield units (HU). Anatomical
directions refer to the phantom's *body frame* (patient-aligned LPS axes: +x patient left,
+y posterior, +z superior; see :mod:`spineai.phantom.geometry`). Plausible ranges quoted below are
the ranges :func:`sample_params` draws from; any value inside the stated validity limits is accepted.

Levels are listed cranial to caudal. The lumbar list is data (``lumbar_levels``), not hard-coded,
so a sixth lumbar vertebra (``("L3", "L4", "L5", "L6")``) or a longer segment (``("L2", ...)``)
needs no code change; the sacrum is always ``"S1"``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..anatomy import SIDES, VERTEBRAE_ORDER, root_name
from ..errors import InputError

#: lumbar levels modelled by default (cranial to caudal)
DEFAULT_LUMBAR_LEVELS: tuple[str, ...] = ("L3", "L4", "L5")
#: nominal adult dimensions per level (mm / degrees), scaled by ``vertebra_scale`` and jittered per case
_NOMINAL: dict[str, dict[str, float]] = {
    # T12 (only with ``thoracic_levels=("T12",)``): smaller body, short transverse process; it carries ribs
    "T12": dict(
        bw=40,
        bd=29,
        bh=23,
        cw=20,
        cd=17,
        pw=7.5,
        ph=15,
        pl=13,
        pc=8,
        lt=6,
        sl=27,
        sh=20,
        tl=9,
        th=9,
        tt=7,
        sr=9,
        st=7,
        sa=10,
        fa=25,
    ),
    # body W x D x H, canal width (interpedicular) and depth, pedicle w/h/length/convergence,
    # lamina thickness, spinous length/height, transverse process length/height/thickness,
    # superior articular process rise/thickness/length, facet angle to the sagittal plane
    "L1": dict(
        bw=42,
        bd=30,
        bh=25,
        cw=22,
        cd=17,
        pw=8,
        ph=15,
        pl=14,
        pc=10,
        lt=6,
        sl=28,
        sh=22,
        tl=20,
        th=10,
        tt=6,
        sr=10,
        st=7,
        sa=11,
        fa=30,
    ),
    "L2": dict(
        bw=44,
        bd=32,
        bh=26,
        cw=22,
        cd=16.5,
        pw=8.5,
        ph=15,
        pl=14.5,
        pc=11,
        lt=6,
        sl=28,
        sh=23,
        tl=23,
        th=10,
        tt=6,
        sr=10,
        st=7,
        sa=11.5,
        fa=32,
    ),
    "L3": dict(
        bw=46,
        bd=33,
        bh=27,
        cw=24,
        cd=16,
        pw=10,
        ph=15,
        pl=15,
        pc=13,
        lt=6,
        sl=27,
        sh=23,
        tl=26,
        th=10,
        tt=6.5,
        sr=10,
        st=7.5,
        sa=12,
        fa=35,
    ),
    "L4": dict(
        bw=49,
        bd=34,
        bh=27,
        cw=25,
        cd=16,
        pw=11,
        ph=14,
        pl=15,
        pc=16,
        lt=6.5,
        sl=25,
        sh=21,
        tl=22,
        th=11,
        tt=7,
        sr=10,
        st=8,
        sa=12.5,
        fa=45,
    ),
    "L5": dict(
        bw=51,
        bd=35,
        bh=26,
        cw=27,
        cd=16,
        pw=14,
        ph=13.5,
        pl=14,
        pc=24,
        lt=7,
        sl=22,
        sh=18,
        tl=17,
        th=14,
        tt=10,
        sr=10,
        st=8.5,
        sa=13,
        fa=50,
    ),
    "L6": dict(
        bw=51,
        bd=35,
        bh=25,
        cw=26,
        cd=16,
        pw=14,
        ph=13.5,
        pl=14,
        pc=24,
        lt=7,
        sl=21,
        sh=17,
        tl=16,
        th=14,
        tt=10,
        sr=10,
        st=8.5,
        sa=13,
        fa=50,
    ),
    "S1": dict(
        bw=50,
        bd=34,
        bh=27,
        cw=30,
        cd=14,
        pw=15,
        ph=13,
        pl=14,
        pc=28,
        lt=8,
        sl=14,
        sh=14,
        tl=0,
        th=0,
        tt=0,
        sr=10,
        st=9,
        sa=13,
        fa=50,
    ),
}
_DISC_HEIGHT: dict[str, float] = {
    "T12-L1": 8.0,
    "L1-L2": 9.0,
    "L2-L3": 10.0,
    "L3-L4": 10.8,
    "L4-L5": 11.5,
    "L5-L6": 11.5,
    "L5-S1": 11.5,
    "L6-S1": 11.5,
}
_ROOT_DESCENT: dict[str, float] = {"T12": 30, "L1": 32, "L2": 33, "L3": 35, "L4": 38, "L5": 40, "L6": 40}
#: share of the lordosis carried by each disc, counted from the sacrum upwards
_LORDOSIS_SHARES = (0.40, 0.33, 0.27, 0.16, 0.10, 0.06, 0.02, 0.0)
#: thoracic vertebrae that can be modelled above L1 (they carry a pair of ribs)
THORACIC_LEVELS: tuple[str, ...] = ("T12",)
#: Castellvi types realised per side of a transitional lowest lumbar vertebra
CASTELLVI_SIDE_TYPES: tuple[str, ...] = ("I", "II", "III")
#: named anatomical variants of :func:`sample_params` (see :data:`VARIANTS`)
VARIANTS: dict[str, str] = {
    "whole_lumbar": "T12 (with ribs), L1-L5 and the sacrum; normal lumbosacral junction",
    "L6": "T12 (with ribs), six lumbar vertebrae L1-L6 and the sacrum (supernumerary lumbar vertebra)",
    "lumbarised_S1": "T12 (with ribs), L1-L5 and a lumbarised S1 (mobile, labelled L6 as in VerSe) above a "
    "rudimentary disc and the rest of the sacrum",
    "castellvi_Ia": "T12 (with ribs), L1-L5, S1; one dysplastic L5 transverse process (>= 19 mm high)",
    "castellvi_Ib": "as castellvi_Ia on both sides",
    "castellvi_IIa": "one enlarged L5 transverse process forming a pseudo-joint with the sacrum",
    "castellvi_IIb": "as castellvi_IIa on both sides",
    "castellvi_IIIa": "one L5 transverse process fused with the sacrum",
    "castellvi_IIIb": "as castellvi_IIIa on both sides",
    "castellvi_IV": "pseudo-joint (II) on one side, bony fusion (III) on the other",
}


@dataclass
class VertebraParams:
    """Dimensions of one vertebra (lumbar, or the S1 segment of the sacrum).

    Attributes:
        body_width_mm: transverse width of the vertebral body (endplate), 40..58.
        body_depth_mm: antero-posterior depth of the body, 28..40.
        body_height_mm: height of the body along its own axis, 22..30 (S1: height of the S1 segment).
        canal_width_mm: interpedicular distance (medial wall to medial wall), 20..32.
        canal_depth_mm: midsagittal canal depth, posterior body wall to laminae, 12..19.
        pedicle_width_mm: transverse pedicle width, 7..18.
        pedicle_height_mm: vertical pedicle height, 11..17.
        pedicle_length_mm: pedicle length from the posterior body wall to the lamina, 12..18.
        pedicle_convergence_deg: medial angulation of the pedicle axis (anterior end medial), 8..32.
        lamina_thickness_mm: lamina thickness, 5..9.
        spinous_length_mm / spinous_height_mm: spinous process length (posterior) and height.
        transverse_process_length_mm / _height_mm / _thickness_mm: transverse process (TP) length
            lateral of the pedicle, vertical height and antero-posterior thickness (0 for S1).
        sap_rise_mm: height of the superior articular process (SAP) tip above the superior endplate, 6..13.
        sap_thickness_mm: SAP thickness normal to the facet joint, 6..11.
        sap_length_mm: SAP length along the facet joint, 10..15.
        facet_angle_deg: angle between the facet joint (this vertebra's SAP with the inferior articular
            process of the vertebra above) and the sagittal plane, 25..60.
        ala_width_mm: (S1 only) lateral extent of each sacral ala beyond the body, 22..32.
        ala_drop_mm: (S1 only) depth of the ala's top below the S1 superior endplate plane, 2..5.
    """

    body_width_mm: float
    body_depth_mm: float
    body_height_mm: float
    canal_width_mm: float
    canal_depth_mm: float
    pedicle_width_mm: float
    pedicle_height_mm: float
    pedicle_length_mm: float
    pedicle_convergence_deg: float
    lamina_thickness_mm: float
    spinous_length_mm: float
    spinous_height_mm: float
    transverse_process_length_mm: float
    transverse_process_height_mm: float
    transverse_process_thickness_mm: float
    sap_rise_mm: float
    sap_thickness_mm: float
    sap_length_mm: float
    facet_angle_deg: float
    ala_width_mm: float = 0.0
    ala_drop_mm: float = 0.0


@dataclass
class DiscParams:
    """One intervertebral disc (key ``"L4-L5"``).

    Attributes:
        height_mm: disc height at the centre of the endplates, 7..14. Anterior and posterior heights
            follow from the disc's share of the lordosis (its wedge angle).
    """

    height_mm: float


@dataclass
class ForamenParams:
    """One neural foramen (key ``"L5-S1/left"``), between the pedicles of the upper and lower vertebra.

    Attributes:
        height_mm: foraminal height: distance, along the lower vertebra's axis, from the lowest point of
            the upper pedicle to the highest point of the lower pedicle; sampled about 14..21 at the
            lumbosacral level and 15.5..22.5 above, then kept within what the upper body allows (reduced
            by stenosis). Realised by placing the upper pedicle vertically in its body (kept inside the
            body; the realised value is in ``truth["morphometry"]``, a difference is listed in its notes).
        width_mm: foraminal width: antero-posterior distance at the disc's mid-height from the posterior
            disc margin to the anterior face of the lower vertebra's superior articular process, 6.8..10
            (wider where the exiting root needs the room).
        facet_overhang_mm: how far the lateral border of the lower vertebra's SAP lies lateral of the
            start of the exiting root's foraminal segment, in the reference (posteroanterior) view, 0..2.4.
            Controls the height edge of Kambin's triangle.
    """

    height_mm: float
    width_mm: float
    facet_overhang_mm: float


@dataclass
class RootParams:
    """One spinal nerve root (key = canonical name, ``"root_L5_left"``).

    Attributes:
        diameter_mm: diameter of the root in its straight foraminal segment, 3.4..6.0 (the traversing,
            lateral-recess part is 0.75 of it; the dorsal root ganglion 1.2x, within the foramen).
        descent_deg: angle of descent of the foraminal segment below the lower endplate plane, seen in
            the posteroanterior view of the lower vertebra, 28..55 (lumbar roots only).
        anterior_deg: angle of the foraminal segment's horizontal course in front of the pure lateral
            direction (the root runs laterally, anteriorly and inferiorly), 12..36.
        takeoff_mm: where the root leaves the dural sac, in mm above the inferior endplate of the vertebra
            above its own (i.e. above the disc it traverses), -3..5.
        exit_inset_mm: distance, in the reference view, from the start of the foraminal segment (under
            the pedicle) to the lateral border of the vertebral body above it, 1.9..4.3.
        clearance_fraction: distance from the pedicle's lowest point to the root's axis where the
            foraminal segment starts, as a fraction of the foraminal height, 0.16..0.28 (at least the
            root's half-width plus 0.3 mm; stenosis presses the root against the pedicle).
    """

    diameter_mm: float
    descent_deg: float
    anterior_deg: float
    takeoff_mm: float
    exit_inset_mm: float
    clearance_fraction: float


@dataclass
class Herniation:
    """A posterolateral disc herniation at ``level`` (``"L4-L5"``) on ``side`` that displaces and
    compresses the traversing root (the root of the lower vertebra). ``size_mm``: protrusion beyond
    the posterior disc margin, 2..8."""

    level: str
    side: str
    size_mm: float


@dataclass
class Stenosis:
    """Foraminal stenosis at ``level`` on ``side``: ``severity`` 0..1 reduces the foraminal height (by up
    to 35 %) and width (facet hypertrophy, up to 40 %), lowers the disc (up to 12 %) and presses the
    exiting root against the pedicle, flattening its ganglion."""

    level: str
    side: str
    severity: float


@dataclass
class HUParams:
    """Tissue intensities (HU) of one case."""

    cortical: float = 1200.0  #: cortical bone, 1000..1400
    cancellous: float = 220.0  #: cancellous bone, 150..300
    disc: float = 85.0  #: intervertebral disc, 70..100
    csf: float = 8.0  #: cerebrospinal fluid in the dural sac, 0..15
    nerve: float = 40.0  #: nerve roots, 30..50
    muscle: float = 50.0  #: psoas, paraspinal and gluteal muscle, 40..60
    fat: float = -100.0  #: subcutaneous, epidural and foraminal fat, -115..-85
    soft: float = 25.0  #: abdominal soft tissue, 15..35
    vessel: float = 40.0  #: unenhanced blood (aorta, vena cava, iliac vessels), 35..50
    skin: float = 40.0  #: skin, 30..60
    air: float = -1000.0  #: air outside the body


@dataclass
class TransitionalParams:
    """Transitional lumbosacral anatomy of one case (opt-in; ``None`` in :class:`PhantomParams` by default).

    The transitional vertebra is the lowest lumbar vertebra modelled (``lumbar_levels[-1]``).

    Attributes:
        castellvi: per side (``"left"``/``"right"``) the Castellvi type realised on that side: ``"I"``
            (dysplastic transverse process, craniocaudal height >= 19 mm, no contact with the sacrum),
            ``"II"`` (enlarged transverse process forming a pseudo-joint with a boss of the sacral ala,
            ``joint_gap_mm`` apart) or ``"III"`` (the process fused with the sacrum). A side not listed is
            normal. The case's type follows (:func:`castellvi_type`): ``Ia``/``Ib`` ... ``IV``.
        tp_height_mm: per side with type I, the craniocaudal height of the dysplastic transverse process
            (21..27 when sampled; its lateral part beyond the pedicle hangs down this far from the top of
            the process).
        joint_gap_mm: gap of a type II pseudo-joint between the process and the sacral boss, 3..4 mm.
        fusion_overlap_mm: how far a type III process and the sacral boss interpenetrate, 1.5..3 mm.
        lumbarised_s1: the lowest lumbar-type vertebra (``L6`` in the label map, VerSe 25) is a lumbarised
            first sacral segment: it sits on a rudimentary disc (``discs["L6-S1"]``, 4..5.5 mm) above the
            rest of the sacrum (S2 downward, still labelled ``S1``, scaled by 0.9).
    """

    castellvi: dict[str, str] = field(default_factory=dict)
    tp_height_mm: dict[str, float] = field(default_factory=dict)
    joint_gap_mm: float = 3.5
    fusion_overlap_mm: float = 2.0
    lumbarised_s1: bool = False


def castellvi_type(sides: dict[str, str]) -> str:
    """The Castellvi type of a lumbosacral transitional vertebra from its per-side types.

    ``{"left": "II", "right": "III"}`` -> ``"IV"``; the same type on both sides -> ``"<type>b"``; one side
    (or a lower type on the other side) -> ``"<type>a"``; no side -> ``"0"`` (not transitional).

    Raises:
        InputError: a side type other than ``"0"``, ``"I"``, ``"II"``, ``"III"``.
    """
    types = {}
    for side, t in sides.items():
        t = str(t)
        if t not in ("0", "", *CASTELLVI_SIDE_TYPES):
            raise InputError(
                f"Castellvi side type {t!r} ({side}) is not one of I, II, III.", "use 'I', 'II' or 'III'"
            )
        if t not in ("0", ""):
            types[side] = t
    if not types:
        return "0"
    values = set(types.values())
    if {"II", "III"} <= values:
        return "IV"
    top = max(values, key=CASTELLVI_SIDE_TYPES.index)
    both = len(types) == 2 and all(t == top for t in types.values())
    return f"{top}{'b' if both else 'a'}"


@dataclass
class PhantomParams:
    """Every generative parameter of one CT phantom case.

    Attributes:
        lumbar_levels: lumbar vertebrae modelled, cranial to caudal (default L3, L4, L5). The sacrum
            (``"S1"``) is always modelled below them.
        vertebrae: per level (lumbar levels and ``"S1"``) :class:`VertebraParams`.
        discs: per disc (``"L4-L5"``) :class:`DiscParams`.
        foramina: per foramen (``"L5-S1/left"``) :class:`ForamenParams`.
        roots: per root (``"root_L5_left"``) :class:`RootParams`.
        lordosis_deg: sum of the wedge angles of the modelled discs (angle between the superior endplate
            of the most cranial modelled vertebra and the S1 endplate), 20..42 for L3-S1.
        sacral_slope_deg: angle between the S1 superior endplate and the horizontal, 28..50.
        iliac_crest_height_mm: height of the highest point of each iliac crest above the centre of the
            lumbosacral disc (body-frame z), 8..62; above about 45 the crest usually hides the L5-S1 window in
            the standard oblique view.
        pelvis_width_scale: scale of the iliac wings' lateral spread, 0.9..1.1.
        herniations / stenoses: pathology (possibly empty).
        body_half_width_mm / body_half_depth_mm: half-axes of the elliptic trunk outline, 140..185 / 105..135.
        back_tissue_mm: soft tissue between the tips of the spinous processes and the skin, 18..55.
        subcutaneous_fat_mm: subcutaneous fat thickness, 6..35.
        pose_rotation_deg: patient rotation in the scanner about the world x, y, z axes (applied as
            Rz @ Ry @ Rx), each within +-15 when sampled, +-45 accepted.
        pose_translation_mm: patient translation in the scanner (world LPS, mm), within +-15 when sampled.
        spacing_mm: voxel spacing (x, y, z), 0.5..3 typical, anisotropic allowed (e.g. 0.7, 0.7, 3).
        fov_mm: field of view (x, y, z) in mm; ``None``: 180 x 200 x (span of ``fov_levels`` + 24).
        fov_levels: vertebrae the field of view must contain (default: all modelled ones).
        fov_center_body_mm: body-frame point at the centre of the field of view (``None``: centred on
            ``fov_levels``, 30 mm behind the vertebral bodies).
        noise_hu: standard deviation of the added white noise, 4..25 HU.
        blur_mm: Gaussian point-spread sigma of the scanner, 0.25..0.7 mm (partial volume at the voxel
            scale is always modelled from the signed distances).
        hu: :class:`HUParams`.
        dtype: ``"int16"`` (default) or ``"float32"`` for the CT image.
        thoracic_levels: thoracic vertebrae modelled above L1 (``()`` by default; ``("T12",)`` adds T12
            with a pair of unlabelled ribs, so the last rib-bearing vertebra is in the model; needs
            ``lumbar_levels`` to start at L1).
        transitional: :class:`TransitionalParams` (``None``: normal lumbosacral junction).
        variant: name of the :data:`VARIANTS` entry the parameters were sampled for (``None``: default).
    """

    lumbar_levels: tuple[str, ...]
    vertebrae: dict[str, VertebraParams]
    discs: dict[str, DiscParams]
    foramina: dict[str, ForamenParams]
    roots: dict[str, RootParams]
    lordosis_deg: float = 36.0
    sacral_slope_deg: float = 40.0
    iliac_crest_height_mm: float = 30.0
    pelvis_width_scale: float = 1.0
    herniations: tuple[Herniation, ...] = ()
    stenoses: tuple[Stenosis, ...] = ()
    body_half_width_mm: float = 165.0
    body_half_depth_mm: float = 120.0
    back_tissue_mm: float = 35.0
    subcutaneous_fat_mm: float = 18.0
    pose_rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pose_translation_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    fov_mm: tuple[float, float, float] | None = None
    fov_levels: tuple[str, ...] | None = None
    fov_center_body_mm: tuple[float, float, float] | None = None
    noise_hu: float = 12.0
    blur_mm: float = 0.4
    hu: HUParams = field(default_factory=HUParams)
    dtype: str = "int16"
    thoracic_levels: tuple[str, ...] = ()
    transitional: TransitionalParams | None = None
    variant: str | None = None

    # ------------------------------------------------------------------ derived names
    @property
    def levels(self) -> tuple[str, ...]:
        """All modelled vertebrae, cranial to caudal, ending with ``"S1"``."""
        return (*self.thoracic_levels, *self.lumbar_levels, "S1")

    @property
    def disc_levels(self) -> tuple[str, ...]:
        """Disc / foramen level names (``"L4-L5"``), cranial to caudal."""
        lv = self.levels
        return tuple(f"{lv[i]}-{lv[i + 1]}" for i in range(len(lv) - 1))

    @property
    def root_names(self) -> tuple[str, ...]:
        """Canonical names of the modelled nerve roots (every lumbar level and S1, both sides)."""
        return tuple(root_name(level, side) for level in self.levels for side in SIDES)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dictionary (tuples become lists).

        The opt-in fields ``thoracic_levels``, ``transitional`` and ``variant`` are left out while they hold
        their defaults, so the dictionary of a default case is the same as before they existed.
        """
        out = _to_jsonable(dataclasses.asdict(self))
        for key in _OPT_IN_FIELDS:
            if out.get(key) in (None, [], ()):
                out.pop(key, None)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhantomParams:
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        d["lumbar_levels"] = tuple(d["lumbar_levels"])
        d["vertebrae"] = {k: VertebraParams(**v) for k, v in d["vertebrae"].items()}
        d["discs"] = {k: DiscParams(**v) for k, v in d["discs"].items()}
        d["foramina"] = {k: ForamenParams(**v) for k, v in d["foramina"].items()}
        d["roots"] = {k: RootParams(**v) for k, v in d["roots"].items()}
        d["herniations"] = tuple(Herniation(**h) for h in d.get("herniations", ()))
        d["stenoses"] = tuple(Stenosis(**s) for s in d.get("stenoses", ()))
        d["hu"] = HUParams(**d.get("hu", {}))
        d["thoracic_levels"] = tuple(d.get("thoracic_levels") or ())
        if d.get("transitional") is not None:
            d["transitional"] = TransitionalParams(**d["transitional"])
        for key in (
            "pose_rotation_deg",
            "pose_translation_mm",
            "spacing_mm",
            "fov_mm",
            "fov_levels",
            "fov_center_body_mm",
        ):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)

    def replace(self, **changes: Any) -> PhantomParams:
        """A validated copy with ``changes`` applied (same rules as the overrides of :func:`sample_params`)."""
        out = _apply_overrides(dataclasses.replace(self), changes)
        validate_params(out)
        return out


_OPT_IN_FIELDS = ("thoracic_levels", "transitional", "variant")


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


# ---------------------------------------------------------------------------------------------- sampling
def _check_lumbar_levels(levels: Any) -> tuple[str, ...]:
    levels = tuple(levels)
    lumbar = [v for v in VERTEBRAE_ORDER if v.startswith("L")]
    if not levels or any(v not in lumbar for v in levels):
        raise InputError(
            f"lumbar_levels {levels!r} must be a non-empty list of lumbar vertebrae ({', '.join(lumbar)}).",
            "pass e.g. ('L3', 'L4', 'L5'), or ('L3', 'L4', 'L5', 'L6') for a sixth lumbar vertebra",
        )
    idx = [lumbar.index(v) for v in levels]
    if idx != list(range(idx[0], idx[0] + len(idx))):
        raise InputError(
            f"lumbar_levels {levels!r} must be consecutive and ordered cranial to caudal.",
            "list them in order without gaps, e.g. ('L3', 'L4', 'L5')",
        )
    if "L6" in levels and levels[-1] != "L6":
        raise InputError(
            f"lumbar_levels {levels!r}: L6 must be the last lumbar level.", "end the list with L6"
        )
    if "L6" not in levels and levels[-1] != "L5":
        raise InputError(
            f"lumbar_levels {levels!r} must end at L5 (or L6), the vertebra above the sacrum.",
            "end the list with 'L5' (or 'L6' for a sixth lumbar vertebra)",
        )
    return levels


def _check_thoracic_levels(levels: Any, lumbar: tuple[str, ...]) -> tuple[str, ...]:
    levels = tuple(str(v) for v in (levels or ()))
    if not levels:
        return ()
    if levels != THORACIC_LEVELS[-len(levels) :] or len(levels) > len(THORACIC_LEVELS):
        raise InputError(f"thoracic_levels {levels!r} is not supported.", f"use () or {THORACIC_LEVELS!r}")
    if lumbar[0] != "L1":
        raise InputError(
            f"thoracic_levels {levels!r} needs lumbar_levels starting at L1 (got {lumbar!r}).",
            "start lumbar_levels at 'L1' when T12 is modelled",
        )
    return levels


def _sample_vertebra(rng: np.random.Generator, level: str, scale: float) -> VertebraParams:
    n = _NOMINAL[level]

    def jit(v: float, rel: float = 0.04) -> float:
        return float(v * scale * (1.0 + rel * rng.uniform(-1.0, 1.0)))

    return VertebraParams(
        body_width_mm=jit(n["bw"]),
        body_depth_mm=jit(n["bd"]),
        body_height_mm=jit(n["bh"]),
        canal_width_mm=jit(n["cw"], 0.07),
        canal_depth_mm=jit(n["cd"], 0.08),
        pedicle_width_mm=jit(n["pw"], 0.12),
        pedicle_height_mm=jit(n["ph"], 0.07),
        pedicle_length_mm=jit(n["pl"], 0.08),
        pedicle_convergence_deg=float(n["pc"] + rng.uniform(-4, 4)),
        lamina_thickness_mm=jit(n["lt"], 0.1),
        spinous_length_mm=jit(n["sl"], 0.12),
        spinous_height_mm=jit(n["sh"], 0.1),
        transverse_process_length_mm=jit(n["tl"], 0.18),
        transverse_process_height_mm=jit(n["th"], 0.12),
        transverse_process_thickness_mm=jit(n["tt"], 0.12),
        sap_rise_mm=jit(n["sr"], 0.15),
        sap_thickness_mm=jit(n["st"], 0.1),
        sap_length_mm=jit(n["sa"], 0.1),
        facet_angle_deg=float(n["fa"] + rng.uniform(-8, 8)),
        ala_width_mm=jit(27.0, 0.1) if level == "S1" else 0.0,
        ala_drop_mm=float(rng.uniform(2.0, 5.0)) if level == "S1" else 0.0,
    )


def sample_params(seed: int, **overrides: Any) -> PhantomParams:
    """Random but anatomically plausible parameters, reproducible from ``seed``.

    Args:
        seed: any non-negative integer; the same seed (and overrides) always gives the same parameters.
        **overrides: replace sampled values, by :class:`PhantomParams` field name. Fields holding
            per-level tables (``vertebrae``, ``discs``, ``foramina``, ``roots``) accept either full
            objects or partial updates, e.g. ``foramina={"L5-S1/left": {"height_mm": 22}}``;
            ``hu`` accepts a :class:`HUParams` or a dict of its fields. ``lumbar_levels`` (and
            ``thoracic_levels``) change which levels are sampled. ``variant`` (a :data:`VARIANTS` name)
            samples a whole lumbar spine with T12 and its ribs, with six lumbar vertebrae, a lumbarised S1
            or a Castellvi type; its extra draws come from a separate random stream. Without ``variant``
            and these level overrides the parameters are exactly those of earlier versions.

    Raises:
        InputError: unknown override names, levels or values outside their validity limits.
    """
    if int(seed) < 0:
        raise InputError(f"seed {seed} is negative.", "use a seed >= 0")
    variant = overrides.pop("variant", None)
    if variant is not None:
        overrides = {**_variant_levels(variant), **overrides}
    rng = np.random.default_rng([int(seed), 0x5EED])
    levels = _check_lumbar_levels(overrides.get("lumbar_levels", DEFAULT_LUMBAR_LEVELS))
    thoracic = _check_thoracic_levels(overrides.get("thoracic_levels", ()), levels)
    scale = float(np.clip(rng.normal(1.0, 0.06), 0.88, 1.12))
    all_levels = (*thoracic, *levels, "S1")
    vertebrae = {lv: _sample_vertebra(rng, lv, scale) for lv in all_levels}
    discs: dict[str, DiscParams] = {}
    foramina: dict[str, ForamenParams] = {}
    for i in range(len(all_levels) - 1):
        key = f"{all_levels[i]}-{all_levels[i + 1]}"
        discs[key] = DiscParams(
            height_mm=float(_DISC_HEIGHT.get(key, 11.0) * scale * rng.uniform(0.88, 1.12))
        )
        for side in SIDES:
            foramina[f"{key}/{side}"] = ForamenParams(
                height_mm=float(
                    np.clip(rng.normal(17.5, 1.5), 14.0, 21.0)
                    if key.endswith("S1")
                    else np.clip(rng.normal(19.0, 1.5), 15.5, 22.5)
                ),
                width_mm=float(rng.uniform(6.8, 10.0)),
                facet_overhang_mm=float(rng.uniform(0.0, 2.4)),
            )
    roots: dict[str, RootParams] = {}
    for lv in all_levels:
        for side in SIDES:
            roots[root_name(lv, side)] = RootParams(
                diameter_mm=float(np.clip(rng.normal(4.6, 0.5), 3.4, 6.0)),
                descent_deg=float(np.clip(_ROOT_DESCENT.get(lv, 40.0) + rng.normal(0, 6.0), 28.0, 55.0)),
                anterior_deg=float(rng.uniform(12.0, 36.0)),
                takeoff_mm=float(rng.uniform(-3.0, 5.0)),
                exit_inset_mm=float(rng.uniform(1.9, 4.3)),
                clearance_fraction=float(rng.uniform(0.16, 0.28)),
            )
    herniations: list[Herniation] = []
    stenoses: list[Stenosis] = []
    lower_levels = list(discs)[-2:]
    if rng.uniform() < 0.25:
        herniations.append(
            Herniation(str(rng.choice(lower_levels)), str(rng.choice(SIDES)), float(rng.uniform(3.0, 7.0)))
        )
    if rng.uniform() < 0.2:
        stenoses.append(
            Stenosis(str(rng.choice(lower_levels)), str(rng.choice(SIDES)), float(rng.uniform(0.3, 0.9)))
        )
    hu = HUParams(
        cortical=float(rng.uniform(1000, 1400)),
        cancellous=float(rng.uniform(150, 300)),
        disc=float(rng.uniform(70, 100)),
        csf=float(rng.uniform(0, 15)),
        nerve=float(rng.uniform(30, 50)),
        muscle=float(rng.uniform(42, 58)),
        fat=float(rng.uniform(-112, -88)),
        soft=float(rng.uniform(15, 35)),
        vessel=float(rng.uniform(35, 50)),
        skin=float(rng.uniform(30, 60)),
    )
    params = PhantomParams(
        lumbar_levels=levels,
        vertebrae=vertebrae,
        discs=discs,
        foramina=foramina,
        roots=roots,
        lordosis_deg=float(rng.uniform(20.0, 42.0)),
        sacral_slope_deg=float(rng.uniform(30.0, 48.0)),
        iliac_crest_height_mm=float(rng.uniform(8.0, 62.0)),
        pelvis_width_scale=float(rng.uniform(0.92, 1.08)),
        herniations=tuple(herniations),
        stenoses=tuple(stenoses),
        body_half_width_mm=float(rng.uniform(145, 180)),
        body_half_depth_mm=float(rng.uniform(108, 130)),
        back_tissue_mm=float(rng.uniform(22, 50)),
        subcutaneous_fat_mm=float(rng.uniform(7, 30)),
        pose_rotation_deg=tuple(float(v) for v in rng.uniform(-15, 15, 3)),  # type: ignore[arg-type]
        pose_translation_mm=tuple(float(v) for v in rng.uniform(-15, 15, 3)),  # type: ignore[arg-type]
        spacing_mm=(1.0, 1.0, 1.0),
        noise_hu=float(rng.uniform(5, 25)),
        blur_mm=float(rng.uniform(0.25, 0.7)),
        hu=hu,
    )
    if thoracic:
        params = dataclasses.replace(params, thoracic_levels=thoracic)
    if variant is not None:
        params = _sample_variant(params, variant, int(seed))
    out = _apply_overrides(
        params, {k: v for k, v in overrides.items() if k not in ("lumbar_levels", "thoracic_levels")}
    )
    validate_params(out)
    return _achievable_foraminal_heights(out, overrides.get("foramina", {}))


def _variant_levels(variant: str) -> dict[str, Any]:
    """Level overrides of a named variant (see :data:`VARIANTS`)."""
    if variant not in VARIANTS:
        raise InputError(
            f"Unknown phantom variant {variant!r}.", f"use one of: {', '.join(VARIANTS)} (or no variant)"
        )
    lumbar = ("L1", "L2", "L3", "L4", "L5", "L6") if variant in ("L6", "lumbarised_S1") else None
    out: dict[str, Any] = {"thoracic_levels": THORACIC_LEVELS}
    out["lumbar_levels"] = lumbar or ("L1", "L2", "L3", "L4", "L5")
    return out


def _sample_variant(params: PhantomParams, variant: str, seed: int) -> PhantomParams:
    """Apply a named variant's transitional anatomy, drawn from its own random stream.

    The variant's draws use a separate generator (seeded with the case seed), so they never shift the
    draws of the other parameters.
    """
    rng = np.random.default_rng([seed, 0x7A51])
    # the sampled lordosis is that of L3-S1; a longer lumbar spine carries more (the upper discs' shares)
    n_discs = len(params.disc_levels)
    lordosis = params.lordosis_deg * sum(_LORDOSIS_SHARES[:n_discs]) / sum(_LORDOSIS_SHARES[:3])
    changes: dict[str, Any] = {"variant": variant, "lordosis_deg": float(lordosis)}
    if variant == "lumbarised_S1":
        s1 = params.vertebrae["S1"]
        vertebrae = dict(params.vertebrae)
        vertebrae["S1"] = dataclasses.replace(
            s1,
            body_width_mm=0.9 * s1.body_width_mm,
            body_depth_mm=0.9 * s1.body_depth_mm,
            body_height_mm=0.9 * s1.body_height_mm,
            ala_width_mm=0.9 * s1.ala_width_mm,
        )
        discs = dict(params.discs)
        discs["L6-S1"] = DiscParams(height_mm=float(rng.uniform(4.0, 5.5)))
        changes.update(vertebrae=vertebrae, discs=discs, transitional=TransitionalParams(lumbarised_s1=True))
    elif variant.startswith("castellvi_"):
        kind = variant.split("_", 1)[1]
        first = str(rng.choice(("left", "right")))
        other = "right" if first == "left" else "left"
        if kind == "IV":
            sides = {first: "II", other: "III"}
        else:
            t = kind[:-1]
            sides = {first: t, other: t} if kind.endswith("b") else {first: t}
        heights = {side: float(rng.uniform(21.0, 27.0)) for side, t in sides.items() if t == "I"}
        changes["transitional"] = TransitionalParams(
            castellvi=dict(sorted(sides.items())),
            tp_height_mm=heights,
            joint_gap_mm=float(rng.uniform(3.0, 4.0)),
            fusion_overlap_mm=float(rng.uniform(1.5, 3.0)),
        )
    return dataclasses.replace(params, **changes)


def _achievable_foraminal_heights(params: PhantomParams, fixed: Any) -> PhantomParams:
    """Bring sampled foraminal heights into the range the sampled vertebrae allow.

    The upper pedicle is moved vertically inside its body to realise a foraminal height; when a sampled
    height lies outside what that body allows, the sampled value is replaced by the achievable one, so that
    sampled parameters always describe the generated anatomy. Heights given as overrides are kept (the
    realised value is then reported in the truth's morphometry and notes).
    """
    from .geometry import build_anatomy

    anatomy = build_anatomy(params)
    table = dict(params.foramina)
    changed = False
    for key, fg in anatomy.foramina.items():
        if key in fixed or abs(fg.realised_height_mm - fg.target_height_mm) < 1e-6:
            continue
        level, side = key.split("/")
        sev = max([s.severity for s in params.stenoses if s.level == level and s.side == side], default=0.0)
        table[key] = dataclasses.replace(
            table[key], height_mm=float(fg.realised_height_mm / (1.0 - 0.35 * sev))
        )
        changed = True
    return dataclasses.replace(params, foramina=table) if changed else params


_TABLE_TYPES = {
    "vertebrae": VertebraParams,
    "discs": DiscParams,
    "foramina": ForamenParams,
    "roots": RootParams,
}


def _apply_overrides(params: PhantomParams, overrides: dict[str, Any]) -> PhantomParams:
    names = {f.name for f in dataclasses.fields(PhantomParams)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise InputError(
            f"Unknown phantom parameter(s): {', '.join(unknown)}.",
            f"use PhantomParams field names: {', '.join(sorted(names))}",
        )
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in _TABLE_TYPES:
            table = dict(getattr(params, key))
            for entry, upd in dict(value).items():
                if isinstance(upd, _TABLE_TYPES[key]):
                    table[entry] = upd
                    continue
                if entry not in table:
                    raise InputError(
                        f"'{entry}' is not an entry of the phantom's {key} table.",
                        f"use one of: {', '.join(table)}",
                    )
                try:
                    table[entry] = dataclasses.replace(table[entry], **dict(upd))
                except TypeError as exc:
                    raise InputError(
                        f"Bad update for {key}['{entry}']: {exc}.",
                        f"use {_TABLE_TYPES[key].__name__} field names",
                    ) from None
            changes[key] = table
        elif key == "hu":
            changes[key] = (
                value if isinstance(value, HUParams) else dataclasses.replace(params.hu, **dict(value))
            )
        elif key == "herniations":
            changes[key] = tuple(h if isinstance(h, Herniation) else Herniation(**h) for h in value)
        elif key == "stenoses":
            changes[key] = tuple(s if isinstance(s, Stenosis) else Stenosis(**s) for s in value)
        elif key in ("spacing_mm",) and np.isscalar(value):
            changes[key] = (float(value),) * 3
        elif (
            key
            in (
                "pose_rotation_deg",
                "pose_translation_mm",
                "spacing_mm",
                "fov_mm",
                "fov_center_body_mm",
                "fov_levels",
                "lumbar_levels",
                "thoracic_levels",
            )
            and value is not None
        ):
            changes[key] = tuple(
                str(v) if key in ("fov_levels", "lumbar_levels", "thoracic_levels") else float(v)
                for v in value
            )
        elif key == "transitional" and isinstance(value, dict):
            changes[key] = TransitionalParams(**value)
        else:
            changes[key] = value
    return dataclasses.replace(params, **changes)


def _range(name: str, value: float, lo: float, hi: float) -> None:
    if not np.isfinite(value) or not lo <= value <= hi:
        raise InputError(
            f"Phantom parameter {name} = {value!r} is outside {lo}..{hi}.",
            f"choose {name} between {lo} and {hi}",
        )


def validate_params(p: PhantomParams) -> None:
    """Raise :class:`InputError` naming the first parameter that is missing or out of its limits."""
    _check_lumbar_levels(p.lumbar_levels)
    _check_thoracic_levels(p.thoracic_levels, p.lumbar_levels)
    if p.transitional is not None:
        tr = p.transitional
        for side, t in tr.castellvi.items():
            if side not in SIDES or t not in CASTELLVI_SIDE_TYPES:
                raise InputError(
                    f"transitional.castellvi {dict(tr.castellvi)!r} is not side -> type.",
                    "use e.g. {'left': 'II', 'right': 'III'} with sides left/right and types I, II, III",
                )
            if t == "I":
                _range(
                    f"transitional.tp_height_mm[{side}]", tr.tp_height_mm.get(side, float("nan")), 19.5, 32.0
                )
        _range("transitional.joint_gap_mm", tr.joint_gap_mm, 1.0, 8.0)
        _range("transitional.fusion_overlap_mm", tr.fusion_overlap_mm, 0.5, 5.0)
        if tr.lumbarised_s1 and p.lumbar_levels[-1] != "L6":
            raise InputError(
                "A lumbarised S1 is modelled as the sixth lumbar-type vertebra, but lumbar_levels does not "
                f"end with L6 ({p.lumbar_levels!r}).",
                "use variant='lumbarised_S1', or lumbar_levels ending with 'L6'",
            )
    for lv in p.levels:
        if lv not in p.vertebrae:
            raise InputError(f"No vertebra parameters for {lv}.", "sample the parameters with sample_params")
    for key in p.disc_levels:
        if key not in p.discs:
            raise InputError(f"No disc parameters for {key}.", "sample the parameters with sample_params")
        _range(f"discs[{key}].height_mm", p.discs[key].height_mm, 4.0, 18.0)
        for side in SIDES:
            f = p.foramina.get(f"{key}/{side}")
            if f is None:
                raise InputError(
                    f"No foramen parameters for {key}/{side}.", "sample the parameters with sample_params"
                )
            _range(f"foramina[{key}/{side}].height_mm", f.height_mm, 8.0, 30.0)
            _range(f"foramina[{key}/{side}].width_mm", f.width_mm, 3.0, 14.0)
            _range(f"foramina[{key}/{side}].facet_overhang_mm", f.facet_overhang_mm, -2.0, 8.0)
    for name in p.root_names:
        r = p.roots.get(name)
        if r is None:
            raise InputError(f"No root parameters for {name}.", "sample the parameters with sample_params")
        _range(f"roots[{name}].diameter_mm", r.diameter_mm, 2.0, 8.0)
        _range(f"roots[{name}].descent_deg", r.descent_deg, 15.0, 75.0)
        _range(f"roots[{name}].anterior_deg", r.anterior_deg, 0.0, 50.0)
        _range(f"roots[{name}].takeoff_mm", r.takeoff_mm, -8.0, 10.0)
        _range(f"roots[{name}].exit_inset_mm", r.exit_inset_mm, 0.0, 8.0)
        _range(f"roots[{name}].clearance_fraction", r.clearance_fraction, 0.1, 0.5)
    for lv in p.levels:
        v = p.vertebrae[lv]
        _range(f"vertebrae[{lv}].body_width_mm", v.body_width_mm, 30.0, 70.0)
        _range(f"vertebrae[{lv}].body_depth_mm", v.body_depth_mm, 22.0, 50.0)
        _range(f"vertebrae[{lv}].body_height_mm", v.body_height_mm, 16.0, 38.0)
        _range(f"vertebrae[{lv}].canal_width_mm", v.canal_width_mm, 14.0, 40.0)
        _range(f"vertebrae[{lv}].canal_depth_mm", v.canal_depth_mm, 9.0, 25.0)
        _range(f"vertebrae[{lv}].pedicle_width_mm", v.pedicle_width_mm, 4.0, 24.0)
        _range(f"vertebrae[{lv}].pedicle_height_mm", v.pedicle_height_mm, 8.0, 22.0)
    _range("lordosis_deg", p.lordosis_deg, 0.0, 80.0)
    _range("sacral_slope_deg", p.sacral_slope_deg, 10.0, 65.0)
    _range("iliac_crest_height_mm", p.iliac_crest_height_mm, -30.0, 90.0)
    for i, a in enumerate(p.pose_rotation_deg):
        _range(f"pose_rotation_deg[{i}]", a, -45.0, 45.0)
    for i, t in enumerate(p.pose_translation_mm):
        _range(f"pose_translation_mm[{i}]", t, -200.0, 200.0)
    if len(p.spacing_mm) != 3:
        raise InputError(
            f"spacing_mm {p.spacing_mm!r} must have 3 values (x, y, z).", "pass e.g. (0.7, 0.7, 3)"
        )
    for i, s in enumerate(p.spacing_mm):
        _range(f"spacing_mm[{i}]", s, 0.1, 10.0)
    if p.fov_mm is not None:
        for i, f in enumerate(p.fov_mm):
            _range(f"fov_mm[{i}]", f, 1.0, 600.0)
    if p.fov_levels is not None:
        bad = [v for v in p.fov_levels if v not in p.levels]
        if bad or not p.fov_levels:
            raise InputError(
                f"fov_levels {p.fov_levels!r} names levels the phantom does not model.",
                f"choose among {', '.join(p.levels)}",
            )
    _range("noise_hu", p.noise_hu, 0.0, 200.0)
    _range("blur_mm", p.blur_mm, 0.0, 5.0)
    if p.dtype not in ("int16", "float32"):
        raise InputError(f"dtype {p.dtype!r} is not supported.", "use 'int16' or 'float32'")
    for h in p.herniations:
        if h.level not in p.disc_levels or h.side not in SIDES:
            raise InputError(
                f"Herniation at {h.level}/{h.side} is not a modelled disc and side.",
                f"use a level among {', '.join(p.disc_levels)} and side 'left' or 'right'",
            )
        _range("herniation size_mm", h.size_mm, 0.5, 12.0)
    for s in p.stenoses:
        if s.level not in p.disc_levels or s.side not in SIDES:
            raise InputError(
                f"Stenosis at {s.level}/{s.side} is not a modelled foramen.",
                f"use a level among {', '.join(p.disc_levels)} and side 'left' or 'right'",
            )
        _range("stenosis severity", s.severity, 0.0, 1.0)
