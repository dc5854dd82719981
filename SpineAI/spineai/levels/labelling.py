"""Number the vertebrae of a label map from the sacrum (and the last rib) upward, with the evidence.

:func:`label_levels` takes a canonical label map whose vertebrae may be mis-numbered (or carry
arbitrary vertebra names, or be plain ``bone`` components): only *which voxels form one vertebra* is
used, never the names. It returns a :class:`LevelResult`: the relabelled label map (vertebrae, discs and
nerve roots renamed consistently), one :class:`VertebraLevel` per vertebra with its confidence and
flags, the transitional lumbosacral anatomy (Castellvi type per side) and every piece of evidence. All
geometry is in the LPS patient frame (+x patient left, +y posterior, +z superior), mm.

Anchors
    * **Sacrum**: the lowest instance, when it is clearly not a mobile vertebra: it touches both iliac
      bones, or it is much larger (>= 1.35 x the median volume of the others) and continues caudally
      beyond a vertebral body (column under its top >= 1.3 x the median body height). Without a sacrum
      label, an unlabelled bone mass just below the lowest vertebra in the CT (> 180 HU, >= 15 ml,
      reaching the midline) is taken as the sacrum (evidence only; it is not added to the label map).
    * **Last rib-bearing vertebra** (needs the CT): unlabelled bone (> 180 HU) that starts within 8 mm of a
      vertebra beside it and runs at least 15 mm further lateral than the vertebra, 0.3..40 ml (a rib; the
      ilium is excluded by size and by never counting the two vertebrae above the sacrum). The most caudal
      rib-bearing vertebra is T12 (twelve rib pairs assumed).

Numbering
    With both anchors, the vertebrae between them are L1..Ln: n = 5 is the normal count, n = 6 gives an
    ``L6`` (VerSe label 25; a supernumerary lumbar vertebra, or a lumbarised S1 when it sits on a
    rudimentary disc), n = 4 a four-lumbar spine (sacralised L5 or eleven rib pairs), flagged. With the
    sacrum only, the lowest mobile vertebra is L5 and the others are counted upward; a transitional
    junction (a Castellvi process or a rudimentary lowest disc) then lowers the confidence, because only
    a count from above tells an L5 from an L6. With the last rib only, the vertebrae are counted
    downward from T12. Without either anchor the numbering is refused (:class:`~spineai.errors.InputError`
    asking for an override). An override (:mod:`spineai.levels.override`) replaces the automatic anchor.

Castellvi assessment of the lowest mobile vertebra ``V`` (per side ``s``; ``X`` along the patient's
left-right axis from ``V``'s body centre, ``a`` the half-width of its body)
    * lateral process: ``V``'s voxels with ``s X > a + 4 mm`` (beyond the body, the pedicle and the
      facet joints); its **height** is the largest extent along ``V``'s axis over 3 mm wide slices across
      ``X``, plus one voxel (voxel centres lie inside the bone);
    * lateral sacrum: sacrum voxels with ``s X > a + 4 mm`` (the L5-S1 facet joint, a normal articulation,
      is left out);
    * **III** (fusion): >= 3 face-neighbouring voxel pairs between the two; **II** (pseudo-joint): their
      gap (closest voxel centres minus one voxel) is <= 5 mm; **I**: height >= 19 mm; else **0**. The case
      type follows (``Ia`` ... ``IV``, :func:`spineai.phantom.castellvi_type`). A side whose process is cut by
      the field of view is ``not assessable``.

Discs and roots are renamed by position: a disc component by the two vertebrae around its centre; a
nerve root by where it leaves the canal (its voxels 16..32 mm lateral of the midline; the most cranial of
them) -- below vertebra ``X``'s pedicle it is ``root_X``; under the top of the sacrum it is ``root_S1`` --
and its side by the sign of that position along the patient's left-right axis (LPS +x = left).

Confidence (0..1) of each vertebra's name: both anchors agreeing 0.97; the sacrum alone 0.90 (0.60 at a
transitional junction); T12 alone 0.85; both anchors with 6 or 4 lumbar vertebrae 0.90; anchors that
disagree 0.50; minus 0.01 per level away from the anchor; halved beyond a suspicious gap or a merged
component (one not cut by the field of view whose body is > 1.6 x the median body height and whose volume is
> 1.5 x the median volume); 1.0 for an override. A level is **trusted** at >= 0.8.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import cKDTree

from ..anatomy import BY_LABEL, BY_NAME, CANONICAL, SIDES, VERSE, LabelMapping
from ..errors import InputError
from .instances import Grid, Instance, extract_instances, long_axis_of, order_along_spine, thin_axis, unit

#: mobile vertebrae from cranial to caudal, as numbered here (L6 only where present)
COLUMN: tuple[str, ...] = (
    *(f"C{i}" for i in range(1, 8)),
    *(f"T{i}" for i in range(1, 13)),
    "L1",
    "L2",
    "L3",
    "L4",
    "L5",
    "L6",
)
#: Castellvi thresholds (mm)
CASTELLVI_HEIGHT_MM = 19.0
PSEUDO_JOINT_GAP_MM = 5.0
FUSION_MIN_CONTACTS = 3
#: a level is trusted from this confidence on
TRUSTED_CONFIDENCE = 0.8
#: CT threshold of bone for ribs and an unlabelled sacrum (HU)
BONE_HU = 180.0
_VERSE_VALUE = {name: value for value, name in VERSE.values.items()}


# ============================================================================================ results
@dataclass
class VertebraLevel:
    """One vertebra (or the sacrum) of the result.

    Attributes:
        name: canonical name given (``"L5"``, ``"L6"``, ``"S1"`` for the sacrum).
        label: canonical label value in the output map; ``verse_label`` the VerSe value (L6 = 25).
        input_name: the name the input gave it (not used for the numbering).
        volume_ml, centroid_lps: size and position (mm).
        confidence: 0..1; ``trusted``: confidence >= 0.8.
        flags: ``"transitional"``, ``"low_confidence"``, ``"partial"`` (cut by the field of view),
            ``"rib_bearing"``, ``"merged"`` (one component holding two vertebrae; named by the lower one),
            ``"override"``.
        disc_below_mm: bone gap to the next instance below along its axis (mm; ``None`` for the lowest).
        tp_height_mm: per side, height of the lateral process (lowest mobile vertebra only).
    """

    name: str
    label: int
    verse_label: int | None
    input_name: str
    volume_ml: float
    centroid_lps: np.ndarray
    confidence: float
    flags: list[str] = field(default_factory=list)
    disc_below_mm: float | None = None
    tp_height_mm: dict[str, float | None] = field(default_factory=dict)
    instance: Instance | None = field(default=None, repr=False)

    @property
    def trusted(self) -> bool:
        return self.confidence >= TRUSTED_CONFIDENCE

    def to_dict(self) -> dict[str, Any]:
        return dict(
            name=self.name,
            label=self.label,
            verse_label=self.verse_label,
            input_name=self.input_name,
            volume_ml=round(self.volume_ml, 2),
            centroid_lps=np.round(self.centroid_lps, 2).tolist(),
            confidence=round(self.confidence, 3),
            trusted=self.trusted,
            flags=list(self.flags),
            disc_below_mm=None if self.disc_below_mm is None else round(self.disc_below_mm, 2),
            tp_height_mm={k: (None if v is None else round(v, 2)) for k, v in self.tp_height_mm.items()},
        )


@dataclass
class LevelResult:
    """Result of :func:`label_levels`.

    Attributes:
        vertebrae: cranial to caudal, the sacrum last when present.
        labelmap: the relabelled canonical label map (:class:`spineai.io.LabelMap`).
        anchor: how the numbering was anchored (``method``: ``"sacrum"``, ``"last_rib"``, ``"both"``,
            ``"override"``; with details).
        lumbar_count: number of lumbar vertebrae when both ends are known, else ``None``.
        transitional: the lowest mobile vertebra's assessment: ``vertebra``, ``kind``, ``castellvi`` per side
            (type, ``tp_height_mm``, ``gap_mm``, ``fused``, ``assessable``), ``castellvi_type``, evidence.
        discs, roots: renamed discs and roots (input name -> output name, with position).
        evidence: plain sentences, in the order they were established.
        warnings: what makes a level untrustworthy, and what to do.
        override: the override applied (``None`` for automatic numbering).
    """

    vertebrae: list[VertebraLevel]
    labelmap: Any
    anchor: dict[str, Any]
    lumbar_count: int | None
    transitional: dict[str, Any]
    discs: list[dict[str, Any]]
    roots: list[dict[str, Any]]
    evidence: list[str]
    warnings: list[str]
    override: dict[str, Any] | None = None
    ct: sitk.Image | None = field(default=None, repr=False)

    @property
    def names(self) -> list[str]:
        """Vertebra names, cranial to caudal."""
        return [v.name for v in self.vertebrae]

    @property
    def trusted_levels(self) -> list[str]:
        return [v.name for v in self.vertebrae if v.trusted]

    @property
    def flagged(self) -> bool:
        """Whether any level has low confidence or the junction is transitional."""
        return any(not v.trusted for v in self.vertebrae) or bool(self.transitional.get("kind"))

    def get(self, name: str) -> VertebraLevel:
        for v in self.vertebrae:
            if v.name == name:
                return v
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return dict(
            format="spineai-levels",
            version=1,
            frame="LPS",
            units="mm",
            conventions=dict(
                names="canonical SpineAI names; a sixth lumbar-type vertebra is L6 (VerSe label 25); the sacrum "
                "is S1 (VerSe 26)",
                sides="the patient's: left = LPS +x",
                confidence=f"0..1; trusted from {TRUSTED_CONFIDENCE}",
            ),
            anchor=self.anchor,
            override=self.override,
            lumbar_count=self.lumbar_count,
            vertebrae=[v.to_dict() for v in self.vertebrae],
            trusted_levels=self.trusted_levels,
            flagged=self.flagged,
            transitional=_jsonable(self.transitional),
            discs=_jsonable(self.discs),
            roots=_jsonable(self.roots),
            evidence=list(self.evidence),
            warnings=list(self.warnings),
        )

    def table_rows(self) -> list[dict[str, Any]]:
        """One row per vertebra for ``levels.tsv``."""
        rows = []
        for v in self.vertebrae:
            rows.append(
                dict(
                    name=v.name,
                    verse_label=v.verse_label if v.verse_label is not None else "",
                    input_name=v.input_name,
                    confidence=f"{v.confidence:.3f}",
                    trusted="yes" if v.trusted else "no",
                    flags=",".join(v.flags),
                    castellvi_left=self._castellvi(v, "left"),
                    castellvi_right=self._castellvi(v, "right"),
                    volume_ml=f"{v.volume_ml:.1f}",
                    disc_below_mm="" if v.disc_below_mm is None else f"{v.disc_below_mm:.1f}",
                )
            )
        return rows

    def _castellvi(self, v: VertebraLevel, side: str) -> str:
        if self.transitional.get("vertebra") != v.name:
            return ""
        entry = self.transitional.get("castellvi", {}).get(side)
        return "" if entry is None else str(entry.get("type"))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return np.round(obj.astype(float), 3).tolist()
    if isinstance(obj, (np.floating,)):
        return round(float(obj), 3)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, float):
        return round(obj, 3)
    return obj


# ============================================================================================= inputs
def load_canonical(labelmap: Any) -> sitk.Image:
    """A canonical label image from a path, a :class:`spineai.io.LabelMap` or a ``sitk.Image``.

    Raises:
        InputError: unreadable file, not a 3D integer label map, or non-canonical values.
    """
    from ..planning.triangles import load_labels

    if isinstance(labelmap, (str, os.PathLike)):
        from .. import io

        labelmap = io.read_labelmap(labelmap)
    image = load_labels(labelmap)
    if image.GetDimension() != 3:
        raise InputError(
            f"The label map is {image.GetDimension()}D; numbering vertebrae needs a 3D label map.",
            "pass the 3D segmentation of the CT",
        )
    return image


def _grid_of(image: sitk.Image) -> Grid:
    d = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    sp = np.asarray(image.GetSpacing(), dtype=float)
    size = image.GetSize()
    return Grid((size[2], size[1], size[0]), np.asarray(image.GetOrigin(), dtype=float), d @ np.diag(sp))


# ========================================================================================== geometry
def _set_axes(instances: list[Instance], array: np.ndarray, grid: Grid, long_axis: np.ndarray) -> dict:
    """Give every instance its axis (discs first, else neighbours); return the disc components found."""
    discs = _disc_components(array, grid)
    n = len(instances)
    # a much larger last instance is probably the sacrum: its centroid lies behind and below its S1 body
    vols = [i.volume_ml for i in instances[:-1]]
    big_last = n >= 3 and instances[-1].volume_ml > 1.3 * float(np.median(vols))
    laterals: list[np.ndarray | None] = []
    for i, inst in enumerate(instances):
        axes, lats = [], []
        for d in discs:
            if d["axis"] is None:
                continue
            dist = float(
                np.min(np.linalg.norm(inst.points[:: max(1, len(inst.points) // 400)] - d["centre"], axis=1))
            )
            if dist < 15.0:
                axes.append(d["axis"])
                if d["lateral"] is not None:
                    lats.append(d["lateral"] if d["lateral"][0] >= 0 else -d["lateral"])
        laterals.append(unit(np.sum(lats, axis=0)) if lats else None)
        if axes:
            a = unit(np.sum([x if x @ long_axis >= 0 else -x for x in axes], axis=0))
        else:
            above = instances[i - 1].centroid if i > 0 else None
            below = instances[i + 1].centroid if i + 1 < n and not (i + 1 == n - 1 and big_last) else None
            if above is not None and below is not None:
                a = unit(above - below)
            elif above is not None:
                a = unit(above - inst.centroid)
            elif below is not None:
                a = unit(inst.centroid - below)
            else:
                a = long_axis
        inst.set_axis(a, laterals[i])
    # a vertebra without a disc beside it takes the left-right axis of the nearest one with a disc
    known = [k for k, lat in enumerate(laterals) if lat is not None]
    if known:
        for k, inst in enumerate(instances):
            if laterals[k] is None:
                j = min(known, key=lambda q: abs(q - k))
                inst.set_axis(inst.axis, laterals[j])
    return {"discs": discs}


def _disc_components(array: np.ndarray, grid: Grid) -> list[dict[str, Any]]:
    """Connected components of every disc label: centre, thin axis (its normal), long axis (left-right), voxels."""
    out = []
    structure = np.ones((3, 3, 3), dtype=bool)
    values = [s.label for s in BY_LABEL.values() if s.kind == "disc"]
    present = set(np.flatnonzero(np.bincount(array.ravel().astype(np.int64), minlength=256)).tolist())
    for value in values:
        if value not in present:
            continue
        mask = array == value
        lab, n = ndimage.label(mask, structure=structure)
        flat_all = np.flatnonzero(mask)
        comp = lab.ravel()[flat_all]
        for c in range(1, n + 1):
            flat = flat_all[comp == c]
            if flat.size * grid.voxel_ml < 0.3:
                continue
            pts = grid.points(flat)
            out.append(
                dict(
                    label=value,
                    input_name=BY_LABEL[value].name,
                    flat=flat,
                    centre=pts.mean(0),
                    axis=thin_axis(pts),
                    lateral=long_axis_of(pts),
                )
            )
    return out


def _column_gap(upper: Instance, lower: Instance, radius: float = 7.0) -> float:
    """Bone gap (mm) between ``upper``'s body and ``lower`` along ``upper``'s axis, through its body centre."""
    bc = upper.body_centre()
    a = upper.axis

    def radial(p: np.ndarray) -> np.ndarray:
        q = p - bc
        return np.linalg.norm(q - np.outer(q @ a, a), axis=1)

    up = upper.points[radial(upper.points) < radius] @ a
    lo_pts = lower.points[radial(lower.points) < radius]
    lo_t = lo_pts @ a
    t_bottom = float(up.min()) if up.size else float((upper.points @ a).min())
    lo_t = lo_t[lo_t < t_bottom + 5.0]
    if lo_t.size == 0:
        return float("nan")
    return float(t_bottom - lo_t.max())


# =========================================================================================== anchors
def _ilium_contact(inst: Instance, array: np.ndarray, grid: Grid) -> list[str]:
    """Sides (``left``/``right``) on which the instance lies within 4 mm of an ilium label."""
    sides = []
    tree = None
    for side in SIDES:
        flat = np.flatnonzero(array.ravel() == BY_NAME[f"ilium_{side}"].label)
        if flat.size == 0:
            continue
        pts = grid.points(flat[:: max(1, flat.size // 20000)])
        if tree is None:
            tree = cKDTree(inst.points[:: max(1, len(inst.points) // 20000)])
        d, _ = tree.query(pts, k=1, distance_upper_bound=4.0 + float(grid.spacing.max()))
        if np.any(np.isfinite(d)):
            sides.append(side)
    return sides


def _disc_below(low: Instance, discs: list[dict[str, Any]]) -> bool:
    """Whether a disc lies caudal to ``low`` in its column (then ``low`` is a vertebra, not the sacrum)."""
    m = low.body_mask()
    body = low.points[m] if np.any(m) else low.points
    body_bottom = float((body @ low.axis).min())
    centre = body.mean(axis=0)
    for d in discs:
        rel = d["centre"] - centre
        radial = float(np.linalg.norm(rel - (rel @ low.axis) * low.axis))
        if float(d["centre"] @ low.axis) < body_bottom + 2.0 and radial < 25.0:
            return True
    return False


def _is_sacrum(
    instances: list[Instance],
    array: np.ndarray,
    grid: Grid,
    evidence: list[str],
    discs: list[dict[str, Any]] | None = None,
) -> bool:
    low = instances[-1]
    others = instances[:-1]
    if discs and _disc_below(low, discs):
        evidence.append(
            f"the lowest labelled bone ('{low.input_name}') rests on a disc: it is a mobile vertebra and the bone "
            "below that disc is not in the label map"
        )
        return False
    ilia = _ilium_contact(low, array, grid)
    if len(ilia) == 2:
        evidence.append("the lowest bone touches both iliac bones (sacroiliac joints): it is the sacrum")
        return True
    if not others:
        return low.input_name == "S1" and low.volume_ml > 60.0
    med_vol = float(np.median([o.volume_ml for o in others]))
    med_h = float(np.median([o.body_height() for o in others]))
    t_low = low.points @ others[-1].axis
    col = float(t_low.max() - t_low.min())
    big = low.volume_ml >= 1.35 * med_vol
    tall = col >= 1.3 * med_h
    if big and tall:
        evidence.append(
            f"the lowest bone is {low.volume_ml / med_vol:.1f} x the median vertebral volume and extends "
            f"{col:.0f} mm caudally (median vertebral body {med_h:.0f} mm): it is the sacrum"
        )
        return True
    return False


def _ct_bone(ct: sitk.Image, array: np.ndarray) -> np.ndarray:
    """Unlabelled bone voxels of the CT (> BONE_HU after a 1 mm Gaussian), away from labelled voxels."""
    sm = sitk.SmoothingRecursiveGaussian(sitk.Cast(ct, sitk.sitkFloat32), 1.0)
    hu = sitk.GetArrayViewFromImage(sm)
    labelled = ndimage.binary_dilation(array > 0, iterations=1)
    return (hu > BONE_HU) & ~labelled


def _sacrum_from_ct(
    instances: list[Instance], bone: np.ndarray, grid: Grid, evidence: list[str]
) -> np.ndarray | None:
    """LPS points of an unlabelled sacrum just below the lowest vertebra, or ``None``.

    A candidate is an unlabelled bone component of >= 15 ml whose centroid lies below the lowest vertebra's
    body centre and which, within the column of that body (15 mm around the line through the body centre
    along its axis), starts between 30 mm below and 5 mm above the body's lowest point.
    """
    low = instances[-1]
    a = low.axis
    bc = low.body_centre()

    def in_column(p: np.ndarray) -> np.ndarray:
        q = p - bc
        return np.linalg.norm(q - np.outer(q @ a, a), axis=1) < 15.0

    body_t = low.points[in_column(low.points)] @ a
    t_bottom = float(body_t.min()) if body_t.size else float((low.points @ a).min())
    lab, n = ndimage.label(bone, structure=np.ones((3, 3, 3), dtype=bool))
    if n == 0:
        return None
    flat = np.flatnonzero(lab)
    comp = lab.ravel()[flat]
    sizes = np.bincount(comp, minlength=n + 1)
    for c in np.argsort(sizes)[::-1]:
        if c == 0 or sizes[c] * grid.voxel_ml < 15.0:
            break
        pts = grid.points(flat[comp == c])
        if float(pts.mean(0) @ a) >= float(bc @ a):
            continue
        col = in_column(pts)
        if np.count_nonzero(col) < 10:
            continue
        t_top = float((pts[col] @ a).max())
        if t_bottom - 30.0 <= t_top <= t_bottom + 5.0:
            evidence.append(
                f"the sacrum is not labelled; an unlabelled bone mass of {sizes[c] * grid.voxel_ml:.0f} ml starts "
                f"{max(t_bottom - t_top, 0.0):.0f} mm below the lowest vertebra's body in the CT: taken as the sacrum"
            )
            return pts
    return None


def _rib_sides(
    inst: Instance,
    bone_flat: np.ndarray,
    bone_comp: np.ndarray,
    sizes: np.ndarray,
    grid: Grid,
) -> list[str]:
    """Sides on which an unlabelled rib starts beside ``inst`` (see the module docstring)."""
    bc = inst.body_centre()
    loc_i = inst.local(origin=bc)
    reach = float(np.abs(loc_i[:, 0]).max())
    tree = cKDTree(inst.points[:: max(1, len(inst.points) // 15000)])
    t_c = float(bc @ inst.axis)
    sides = []
    # candidate components: those with voxels within 8 mm of the instance
    d, _ = tree.query(grid.points(bone_flat), k=1, distance_upper_bound=8.0 + float(grid.spacing.max()))
    near = np.unique(bone_comp[np.isfinite(d)])
    for c in near:
        vol = sizes[c] * grid.voxel_ml
        if not 0.3 <= vol <= 40.0:
            continue
        pts = grid.points(bone_flat[bone_comp == c])
        loc = inst.local(pts, origin=bc)
        x = loc[:, 0]
        side = "left" if np.median(x) > 0 else "right"
        sx = 1.0 if side == "left" else -1.0
        if float((sx * x).max()) < reach + 15.0:
            continue
        dd, _ = tree.query(pts, k=1)
        medial = pts[np.argmin(dd)]
        if float(medial @ inst.axis) < t_c - 15.0:
            continue
        if side not in sides:
            sides.append(side)
    return sides


# ========================================================================================= castellvi
def _castellvi_side(
    v: Instance,
    sacrum_pts: np.ndarray,
    side: str,
    grid: Grid,
    shape_zyx: tuple[int, int, int],
    sacrum_flat: np.ndarray | None,
) -> dict[str, Any]:
    bc = v.body_centre()
    a = v.body_half_width()
    sx = 1.0 if side == "left" else -1.0
    loc = v.local(origin=bc)
    lat = sx * loc[:, 0] > a + 4.0
    out: dict[str, Any] = dict(type="0", tp_height_mm=None, gap_mm=None, fused=False, assessable=True)
    if np.count_nonzero(lat) < 5:
        out.update(assessable=False, type="not assessable", reason="no transverse process found on this side")
        return out
    lat_pts = v.points[lat]
    lat_flat = v.flat[lat]
    # height: largest extent along the axis over 3 mm slices across X, plus one voxel
    x = sx * loc[lat, 0]
    t = loc[lat, 2]
    bins = np.floor((x - x.min()) / 3.0).astype(int)
    height = 0.0
    for b in np.unique(bins):
        tb = t[bins == b]
        if tb.size >= 3:
            height = max(height, float(tb.max() - tb.min()))
    height += grid.step_along(v.axis)
    out["tp_height_mm"] = height
    # cut by the field of view laterally: the process touches the image border
    nz, ny, nx = shape_zyx
    k, rem = np.divmod(lat_flat, ny * nx)
    j, i = np.divmod(rem, nx)
    at_border = (i == 0) | (i == nx - 1) | (j == 0) | (j == ny - 1) | (k == 0) | (k == nz - 1)
    if np.count_nonzero(at_border) > 0.05 * lat_flat.size:
        out.update(
            assessable=False,
            type="not assessable",
            reason="the transverse process is cut by the field of view",
        )
        return out
    if len(sacrum_pts):
        sloc = v.local(sacrum_pts, origin=bc)
        s_lat = sx * sloc[:, 0] > a + 4.0
        sp = sacrum_pts[s_lat]
        if len(sp):
            tree = cKDTree(sp)
            d, idx = tree.query(lat_pts, k=1)
            j_min = int(np.argmin(d))
            direction = unit(sp[idx[j_min]] - lat_pts[j_min])
            gap = max(0.0, float(d[j_min]) - grid.step_along(direction))
            out["gap_mm"] = gap
            out["joint_point_lps"] = (0.5 * (sp[idx[j_min]] + lat_pts[j_min])).tolist()
            contacts = 0
            if sacrum_flat is not None:
                contacts = _face_contacts(lat_flat, sacrum_flat[s_lat], shape_zyx)
            out["contacts"] = contacts
            if contacts >= FUSION_MIN_CONTACTS:
                out.update(type="III", fused=True)
                return out
            if gap <= PSEUDO_JOINT_GAP_MM:
                out["type"] = "II"
                return out
    if height >= CASTELLVI_HEIGHT_MM:
        out["type"] = "I"
    return out


def _face_contacts(a_flat: np.ndarray, b_flat: np.ndarray, shape: tuple[int, int, int]) -> int:
    """Number of voxels of ``a`` with a face neighbour in ``b`` (flat indices in a (z, y, x) array)."""
    if a_flat.size == 0 or b_flat.size == 0:
        return 0
    nz, ny, nx = shape
    b = np.zeros(nz * ny * nx, dtype=bool)
    b[b_flat] = True
    k, rem = np.divmod(a_flat, ny * nx)
    j, i = np.divmod(rem, nx)
    hit = np.zeros(a_flat.size, dtype=bool)
    for dk, dj, di in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
        kk, jj, ii = k + dk, j + dj, i + di
        ok = (kk >= 0) & (kk < nz) & (jj >= 0) & (jj < ny) & (ii >= 0) & (ii < nx)
        idx = (kk * ny + jj) * nx + ii
        hit[ok] |= b[idx[ok]]
    return int(np.count_nonzero(hit))


# ========================================================================================== numbering
def _names_up_from(lowest: str, count: int) -> list[str]:
    """``count`` names ending (caudally) with ``lowest``, cranial to caudal; L6 only as the lowest."""
    column = [c for c in COLUMN if c != "L6"]
    if lowest == "L6":
        names = ["L6"]
        start = column.index("L5")
    else:
        if lowest not in column:
            raise InputError(
                f"'{lowest}' is not a vertebra that can be the lowest mobile one.", "use e.g. L4, L5 or L6"
            )
        names = [lowest]
        start = column.index(lowest) - 1
    while len(names) < count:
        if start < 0:
            raise InputError(
                f"Numbering {count} vertebrae upward from {lowest} runs past C1.",
                "check the override: the lowest vertebra is too high for the number of vertebrae in view",
            )
        names.insert(0, column[start])
        start -= 1
    return names


def _names_down_from_t12(count_below: int) -> list[str]:
    lumbar = [f"L{i}" for i in range(1, 7)]
    if count_below > len(lumbar):
        raise InputError(
            f"{count_below} vertebrae lie below the last rib-bearing vertebra; at most six lumbar vertebrae are supported.",
            "check the segmentation for split vertebrae, or give an override",
        )
    return ["T12", *lumbar[:count_below]]


# ============================================================================================= main
def label_levels(labelmap: Any, ct: Any = None, override: Any = None) -> LevelResult:
    """Number the vertebrae of a label map from the sacrum (and the last rib) upward; rename discs and roots.

    Args:
        labelmap: canonical label map (path with sidecar or ``.seg.nrrd``, :class:`spineai.io.LabelMap`, or
            ``sitk.Image`` of canonical values). Vertebra names are not trusted: each vertebra/sacrum
            label (or ``bone`` component) is one vertebra to be named.
        ct: optional CT (path or ``sitk.Image``, HU) of the same patient, on the label map's grid or resampled
            onto it: finds ribs (the last rib-bearing vertebra) and an unlabelled sacrum.
        override: ``"lowest=L6"`` / ``{"lowest": "L6"}`` (the lowest mobile vertebra is L6) or ``"shift=+1"``
            / ``{"shift": 1}`` (every vertebra one level lower; -1 one level higher). See
            :func:`spineai.levels.override.parse_override`.

    Returns:
        :class:`LevelResult` (relabelled map, levels with confidence and flags, Castellvi, evidence).

    Raises:
        InputError: unreadable or non-canonical label map, no vertebra in it, a single vertebra without a
            sacrum, or no anchor (no sacrum and no rib-bearing vertebra) without an override -- each
            message lists what was found and the override to give.
    """
    from .override import apply_override, parse_override

    parsed = parse_override(override)
    image = load_canonical(labelmap)
    array = np.asarray(sitk.GetArrayViewFromImage(image))
    grid = _grid_of(image)
    evidence: list[str] = []
    warnings: list[str] = []
    from .. import io

    ct_img = io.ct_on_label_grid(ct, image, resample=True, notes=warnings)
    instances, notes = extract_instances(array, grid)
    warnings.extend(notes)
    if not instances:
        raise InputError(
            "The label map holds no vertebra (no vertebra, sacrum or bone label with at least 1 ml).",
            "pass the segmentation of the spine (canonical vertebra labels, or the 3-class bone label)",
        )
    bone_value = BY_NAME["bone"].label
    if all(i.label == bone_value for i in instances) and len(instances) < 3:
        raise InputError(
            f"The 'bone' class forms only {len(instances)} connected piece(s): the vertebrae touch one another "
            "(through the facet joints or the discs), so they cannot be told apart and numbered.",
            "give each vertebra its own label (a vertebra segmentation such as VerSe or TotalSegmentator, or "
            "'spineai segment' with vertebra labels), then run again",
        )
    long_axis = order_along_spine(instances)
    ctx = _set_axes(instances, array, grid, long_axis)

    # ----------------------------------------------------------------- sacrum
    sacrum: Instance | None = None
    sacrum_pts = np.zeros((0, 3))
    sacrum_flat = None
    if len(instances) >= 2 and _is_sacrum(instances, array, grid, evidence, ctx["discs"]):
        sacrum = instances[-1]
        sacrum_pts, sacrum_flat = sacrum.points, sacrum.flat
    elif len(instances) == 1 and _is_sacrum(instances, array, grid, evidence, ctx["discs"]):
        raise InputError(
            "The label map holds only the sacrum (no vertebra above it).",
            "segment the lumbar vertebrae as well, or check the field of view",
        )
    mobile = [i for i in instances if i is not sacrum]
    bone = _ct_bone(ct_img, array) if ct_img is not None else None
    if sacrum is None and bone is not None and mobile:
        found = _sacrum_from_ct(mobile, bone, grid, evidence)
        if found is not None:
            sacrum_pts = found
    have_sacrum = sacrum is not None or len(sacrum_pts) > 0

    # ----------------------------------------------------------------- discs between instances
    for i in range(len(instances) - 1):
        g = _column_gap(instances[i], instances[i + 1])
        instances[i].gap_below_mm = g
    gaps = [m.gap_below_mm for m in mobile]
    finite = [g for g in gaps if g is not None and np.isfinite(g)]
    median_gap = float(np.median(finite)) if finite else float("nan")

    # ----------------------------------------------------------------- merged components
    heights = [m.body_height() for m in mobile]
    med_h = float(np.median(heights)) if heights else 0.0
    whole = [m.volume_ml for m in mobile if not m.touches_border]
    med_vol = float(np.median(whole)) if whole else 0.0
    merged = [
        k
        for k, m in enumerate(mobile)
        if len(mobile) >= 3
        and not m.touches_border
        and heights[k] > 1.6 * med_h
        and m.volume_ml > 1.5 * med_vol
    ]
    for k in merged:
        warnings.append(
            f"vertebra component '{mobile[k].input_name}' is {heights[k]:.0f} mm high, {heights[k] / med_h:.1f} x the "
            "median vertebral body: it looks like two vertebrae fused or labelled as one; it is counted as two and "
            "the levels beyond it are not trusted (separate it in the segmentation, then run again)"
        )

    # ----------------------------------------------------------------- ribs
    rib_index: int | None = None
    if bone is not None and mobile:
        lab, n = ndimage.label(bone, structure=np.ones((3, 3, 3), dtype=bool))
        bflat = np.flatnonzero(lab)
        bcomp = lab.ravel()[bflat]
        sizes = np.bincount(bcomp, minlength=n + 1)
        limit = len(mobile) - 2 if have_sacrum else len(mobile)
        for k in range(limit):
            sides = _rib_sides(mobile[k], bflat, bcomp, sizes, grid)
            mobile[k].rib_sides = sides
            if sides:
                rib_index = k
        if rib_index is not None:
            evidence.append(
                f"ribs start beside the vertebra '{mobile[rib_index].input_name}' "
                f"({' and '.join(mobile[rib_index].rib_sides)}) and below none: it is the last rib-bearing "
                "vertebra, T12"
            )
        else:
            evidence.append("no rib-bearing vertebra in view (the CT shows no rib beside any vertebra)")

    # ----------------------------------------------------------------- castellvi of the lowest mobile vertebra
    transitional: dict[str, Any] = {}
    if mobile and have_sacrum:
        v = mobile[-1]
        sides = {}
        for side in SIDES:
            sides[side] = _castellvi_side(v, sacrum_pts, side, grid, array.shape, sacrum_flat)
        from ..phantom.params import castellvi_type

        types = {s: e["type"] for s, e in sides.items() if e["type"] in ("I", "II", "III")}
        ctype = castellvi_type(types)
        if ctype == "0" and not any(e.get("assessable", True) for e in sides.values()):
            ctype = "not assessable"
        transitional = dict(vertebra=None, castellvi=sides, castellvi_type=ctype, kind=None, evidence=[])
        for s, e in sides.items():
            if e.get("assessable") is False:
                transitional["evidence"].append(f"{s}: {e.get('reason')}")
            else:
                transitional["evidence"].append(
                    f"{s}: transverse process {e['tp_height_mm']:.1f} mm high"
                    + ("" if e.get("gap_mm") is None else f", {e['gap_mm']:.1f} mm from the sacrum")
                    + (", fused with it" if e.get("fused") else "")
                    + f" -> type {e['type']}"
                )
        if ctype not in ("0", "not assessable"):
            transitional["kind"] = "castellvi"
        # rudimentary disc below the lowest mobile vertebra
        g_low = gaps[-1] if gaps else None
        g_above = gaps[-2] if len(gaps) >= 2 else None
        if g_low is not None and g_above is not None and np.isfinite(g_low) and np.isfinite(g_above):
            transitional["disc_below_mm"] = g_low
            transitional["disc_above_mm"] = g_above
            if g_low < 7.0 and g_low < 0.55 * g_above:
                transitional["rudimentary_disc"] = True
                transitional["evidence"].append(
                    f"the disc under the lowest mobile vertebra is rudimentary ({g_low:.1f} mm vs {g_above:.1f} mm above)"
                )

    # ----------------------------------------------------------------- numbering
    n_mob = len(mobile) + len(merged)  # a merged component counts as two
    positions = _positions(mobile, merged)  # position of each mobile instance in the column (cranial 0)
    rib_pos = positions[rib_index] if rib_index is not None else None
    try:
        names_pos, anchor, base, lumbar_count = _auto_numbering(
            n_mob, rib_pos, have_sacrum, transitional, mobile, evidence, warnings
        )
        auto_error = None
    except InputError as exc:
        if parsed is None:
            raise
        names_pos, anchor, base, lumbar_count, auto_error = [], {}, 0.0, None, exc
    if parsed is not None:
        names_pos, anchor = apply_override(parsed, names_pos, n_mob, auto_error, evidence)
        base = 1.0
    if len(mobile) == 1 and parsed is None:
        warnings.append(
            "only one vertebra is in view: its name rests on the sacrum alone (no neighbour confirms it)"
        )
        base = min(base, 0.85)

    # ----------------------------------------------------------------- levels and confidence
    anchor_pos = n_mob - 1 if anchor.get("method") in ("sacrum", "both", "override") else (rib_pos or 0)
    problem_pos = sorted(set([positions[k] for k in merged]))
    for k in range(len(mobile) - 1):  # a gap as large as two discs: a vertebra may be missing
        g = gaps[k]
        if g is not None and np.isfinite(g) and np.isfinite(median_gap) and g > max(2.2 * median_gap, 25.0):
            problem_pos.append(positions[k])
            warnings.append(
                f"the gap below '{mobile[k].input_name}' is {g:.0f} mm (median disc {median_gap:.0f} mm): a vertebra may "
                "be missing from the segmentation; the levels above it are not trusted"
            )
    levels: list[VertebraLevel] = []
    for k, m in enumerate(mobile):
        pos = positions[k]
        name = names_pos[pos + 1] if k in merged else names_pos[pos]  # a merged pair is named by its lower
        conf = base - 0.01 * abs(anchor_pos - pos)
        # a problem between a level and its anchor makes the count up to that level uncertain (with both
        # anchors agreeing on the count, only the problem itself is uncertain)
        if anchor_pos >= pos:
            beyond = [p for p in problem_pos if pos <= p < anchor_pos]
        else:
            beyond = [p for p in problem_pos if anchor_pos < p <= pos]
        if beyond and anchor.get("method") not in ("override", "both"):
            conf *= 0.5
        flags = []
        if k in merged:
            flags.append("merged")
            conf = min(conf, 0.5)
        if m.touches_border:
            flags.append("partial")
        if m.rib_sides:
            flags.append("rib_bearing")
        if anchor.get("method") == "override":
            flags.append("override")
        g = gaps[k] if k < len(gaps) else None
        levels.append(
            VertebraLevel(
                name=name,
                label=BY_NAME[name].label,
                verse_label=_VERSE_VALUE.get(name),
                input_name=m.input_name,
                volume_ml=m.volume_ml,
                centroid_lps=m.centroid,
                confidence=float(np.clip(conf, 0.0, 1.0)),
                flags=flags,
                disc_below_mm=None if g is None or not np.isfinite(g) else float(g),
                instance=m,
            )
        )
    if transitional and levels:
        low = levels[-1]
        transitional["vertebra"] = low.name
        low.tp_height_mm = {s: e.get("tp_height_mm") for s, e in transitional["castellvi"].items()}
        if transitional.get("kind"):
            low.flags.append("transitional")
    for lv in levels:
        if not lv.trusted:
            lv.flags.append("low_confidence")
    if any(not lv.trusted for lv in levels):
        trusted = [lv.name for lv in levels if lv.trusted]
        warnings.append(
            "levels that can still be trusted: "
            + (", ".join(trusted) if trusted else "none")
            + "; check the others (or give an override)"
        )
    if sacrum is not None:
        levels.append(
            VertebraLevel(
                name="S1",
                label=BY_NAME["S1"].label,
                verse_label=_VERSE_VALUE.get("S1"),
                input_name=sacrum.input_name,
                volume_ml=sacrum.volume_ml,
                centroid_lps=sacrum.centroid,
                confidence=0.97 if anchor.get("method") != "override" else 1.0,
                flags=["partial"] if sacrum.touches_border else [],
                instance=sacrum,
            )
        )

    # ----------------------------------------------------------------- relabel the map
    from .relabel import relabel

    out_image, discs, roots, notes2 = relabel(
        image, array, grid, levels, ctx["discs"], sacrum_top=_sacrum_top(sacrum_pts, mobile)
    )
    warnings.extend(notes2)
    from .. import io

    present = sorted({int(v) for v in np.unique(sitk.GetArrayViewFromImage(out_image)) if v != 0})
    mapping = LabelMapping(CANONICAL.source, {v: BY_LABEL[v].name for v in present}) if present else CANONICAL
    return LevelResult(
        vertebrae=levels,
        labelmap=io.LabelMap(out_image, mapping),
        anchor=anchor,
        lumbar_count=lumbar_count,
        transitional=transitional,
        discs=discs,
        roots=roots,
        evidence=evidence,
        warnings=warnings,
        override=parsed,
        ct=ct_img,
    )


def _auto_numbering(
    n_mob: int,
    rib_pos: int | None,
    have_sacrum: bool,
    transitional: dict[str, Any],
    mobile: list[Instance],
    evidence: list[str],
    warnings: list[str],
) -> tuple[list[str], dict[str, Any], float, int | None]:
    """Names of the ``n_mob`` column positions (cranial to caudal), the anchor, the base confidence and the
    lumbar count (see the module docstring).

    Raises:
        InputError: no sacrum and no rib-bearing vertebra (nothing to anchor the numbering on).
    """
    lumbar_count: int | None = None
    if rib_pos is not None and have_sacrum:
        k = n_mob - 1 - rib_pos
        lumbar_count = k
        anchor: dict[str, Any] = dict(method="both", sacrum=True, last_rib_bearing="T12", lumbar_vertebrae=k)
        if 4 <= k <= 6:
            names = _names_up_from("T12", rib_pos + 1) + _names_down_from_t12(k)[1:]
        if k == 5:
            evidence.append("five vertebrae lie between T12 and the sacrum: L1-L5, normal count")
            return names, anchor, 0.97, lumbar_count
        if k == 6:
            evidence.append("six vertebrae lie between T12 and the sacrum: the lowest is L6 (VerSe 25)")
            transitional["kind"] = (
                "lumbarised_S1" if transitional.get("rudimentary_disc") else "six_lumbar_vertebrae"
            )
            if transitional["kind"] == "lumbarised_S1":
                evidence.append("it sits on a rudimentary disc: a lumbarised S1 (labelled L6, as in VerSe)")
            return names, anchor, 0.9, lumbar_count
        if k == 4:
            evidence.append(
                "four vertebrae lie between T12 and the sacrum: a sacralised L5 or eleven rib pairs; numbered L1-L4"
            )
            transitional["kind"] = transitional.get("kind") or "four_lumbar_vertebrae"
            return names, anchor, 0.9, lumbar_count
        warnings.append(
            f"{k} vertebrae lie between the last rib-bearing vertebra and the sacrum, which no normal or "
            "transitional spine has: numbered from the sacrum (lowest L5); check the segmentation or override"
        )
        anchor["method"] = "sacrum"
        return _names_up_from("L5", n_mob), anchor, 0.5, None
    if have_sacrum:
        evidence.append(
            "numbered from the sacrum: the lowest mobile vertebra is L5 (five lumbar vertebrae assumed)"
        )
        signs = transitional.get("kind") == "castellvi" or bool(transitional.get("rudimentary_disc"))
        if signs:
            warnings.append(
                "the lumbosacral junction is transitional and no rib-bearing vertebra is in view: the lowest mobile "
                "vertebra may be L6 or a lumbarised S1 rather than L5; count from T12 (a CT showing the ribs) or give "
                "an override ('--override lowest=L6' or '--override shift=+1')"
            )
        anchor = dict(method="sacrum", sacrum=True, last_rib_bearing=None)
        return _names_up_from("L5", n_mob), anchor, 0.6 if signs else 0.9, None
    if rib_pos is not None:
        evidence.append("no sacrum in view: numbered downward from the last rib-bearing vertebra (T12)")
        names = _names_up_from("T12", rib_pos + 1) + _names_down_from_t12(n_mob - 1 - rib_pos)[1:]
        return names, dict(method="last_rib", sacrum=False, last_rib_bearing="T12"), 0.85, None
    found = ", ".join(f"'{m.input_name}' ({m.volume_ml:.0f} ml)" for m in mobile)
    if len(mobile) == 1:
        raise InputError(
            f"Only one vertebra is in view ({found}) and no sacrum: it cannot be numbered.",
            "widen the field of view to include the sacrum, or name it with an override, e.g. "
            "--override lowest=L4 (API: override='lowest=L4')",
        )
    raise InputError(
        f"No sacrum and no rib-bearing vertebra in view, so the {len(mobile)} vertebrae found ({found}) cannot "
        "be anchored: no level can be trusted.",
        "give an override naming the lowest vertebra in view, e.g. --override lowest=L4 (API: "
        "override='lowest=L4'), or pass the CT (--ct) when the sacrum or the ribs are in it",
    )


def _positions(mobile: list[Instance], merged: list[int]) -> list[int]:
    """Position of each mobile instance in the column (a merged component takes two positions)."""
    out, p = [], 0
    for k in range(len(mobile)):
        out.append(p)
        p += 2 if k in merged else 1
    return out


def _sacrum_top(sacrum_pts: np.ndarray, mobile: list[Instance]) -> float | None:
    """``axis . p`` of the top of the sacrum in the lowest mobile vertebra's axis (mm), or ``None``."""
    if len(sacrum_pts) == 0 or not mobile:
        return None
    low = mobile[-1]
    bc = low.body_centre()
    loc = low.local(sacrum_pts, origin=bc)
    # the S1 body under the lowest vertebra's body: near the midline, in front of the canal (not the
    # superior articular processes, which rise higher behind it)
    mid = (np.abs(loc[:, 0]) < 15.0) & (loc[:, 1] < 10.0)
    t = loc[mid, 2] if np.any(mid) else loc[:, 2]
    return float(t.max())
