"""Straight needle paths to Kambin's and the safe triangle, coaxial with the planned C-arm view (LPS, mm).

For each triangle the needle runs along its best view ``v`` (the "tunnel view": the needle is seen end-on
on the C-arm image):

* **target**: inside the accessible window at that view, the free sample point farthest from the
  triangle's edges and from blocked parts (the centre of the largest free disc). For the safe triangle
  this is the classic point just below the pedicle (the disc touches the pedicle's lower margin); for
  Kambin's triangle it lies over the disc, above the lower vertebra's endplate. It sits in the plane of
  the triangle (through the middle of the exiting root's foraminal segment, orthogonal to ``v``).
* **entry**: where the line from the target back along ``-v`` leaves the body. With a CT the body is
  everything above -300 HU (the entry is the first point of a run of at least 5 mm below that); without
  a CT the edge of the label map's field of view stands in for the skin (and the length is a lower
  bound).
* **length** (mm) and whether a standard 90 mm (3.5 inch) spinal needle reaches;
* **angles** of the needle to the axial and to the sagittal plane of the patient (LPS frame, degrees);
* **clearances**: the smallest distance from the path to any nerve (roots, dural sac) and to any bone
  (distance to the nearest voxel centre less half a voxel);
* **crossed structures** along the path; a path is **safe** when it crosses no bone, root or dural sac.

If the safe triangle has no usable window (or its path is not safe), the Kambin path is recommended, and
vice versa (the strategy of Fan et al. 2019, Fig 6); the reason is stated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..anatomy import BY_LABEL, BY_NAME, NERVE_KINDS
from .triangles import KIND_TITLES, ForamenMeasurement, TriangleMeasurement, TriangleMeasurements, _r
from .volume import BONE_KINDS_BLOCKING

#: a standard 3.5 inch spinal needle (mm)
NEEDLE_LENGTH_MM = 90.0
#: body / air threshold of the skin (HU)
SKIN_HU = -300.0
#: a run of air at least this long marks the skin (mm), so small gas pockets are crossed
SKIN_AIR_RUN_MM = 5.0
_STEP_MM = 0.25


@dataclass
class NeedlePath:
    """A straight needle path to one triangle.

    Attributes:
        level, side, kind: foramen and triangle (``"kambin"``/``"safe"``).
        oblique_deg, tilt_deg: C-arm view (level frame) the needle is coaxial with.
        patient_oblique_deg, patient_tilt_deg: the same in the patient frame.
        direction_lps: unit direction from the entry toward the target.
        target_lps, entry_lps: points (mm).
        length_mm: entry -> target.
        reaches_with_standard_needle: ``length_mm <= 90``.
        angle_to_axial_deg / angle_to_sagittal_deg: needle angles to the patient's axial / sagittal planes.
        min_distance_nerve_mm / min_distance_bone_mm: smallest clearance along the path, with the nearest
            structure of each kind.
        crossed: structures the path crosses, from the skin inward.
        forbidden_crossed: the bone, root or dural-sac structures among them.
        safe: no forbidden structure is crossed and the target lies in a free part of the window.
        skin_found: the entry is a real skin point (False: edge of the field of view).
        target_clearance_mm: radius of the free disc around the target in the window.
        window_mm2: the accessible window at this view.
    """

    level: str
    side: str
    kind: str
    oblique_deg: float
    tilt_deg: float
    patient_oblique_deg: float
    patient_tilt_deg: float
    direction_lps: np.ndarray
    target_lps: np.ndarray
    entry_lps: np.ndarray
    length_mm: float
    reaches_with_standard_needle: bool
    angle_to_axial_deg: float
    angle_to_sagittal_deg: float
    min_distance_nerve_mm: float
    nearest_nerve: str
    min_distance_bone_mm: float
    nearest_bone: str
    crossed: list[str]
    forbidden_crossed: list[str]
    safe: bool
    skin_found: bool
    target_clearance_mm: float
    window_mm2: float
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """Display name, e.g. ``"Needle L5-S1 left (safe)"``."""
        return f"Needle {self.level} {self.side} ({KIND_TITLES[self.kind].lower()})"

    def to_dict(self) -> dict[str, Any]:
        return dict(
            name=self.name,
            level=self.level,
            side=self.side,
            triangle=self.kind,
            oblique_deg=round(self.oblique_deg, 2),
            tilt_deg=round(self.tilt_deg, 2),
            patient_oblique_deg=round(self.patient_oblique_deg, 2),
            patient_tilt_deg=round(self.patient_tilt_deg, 2),
            direction_lps=_r(self.direction_lps, 6),
            target_lps=_r(self.target_lps, 3),
            entry_lps=_r(self.entry_lps, 3),
            length_mm=round(self.length_mm, 2),
            needle_length_mm=NEEDLE_LENGTH_MM,
            reaches_with_standard_needle=bool(self.reaches_with_standard_needle),
            angle_to_axial_deg=round(self.angle_to_axial_deg, 2),
            angle_to_sagittal_deg=round(self.angle_to_sagittal_deg, 2),
            min_distance_nerve_mm=round(self.min_distance_nerve_mm, 2),
            nearest_nerve=self.nearest_nerve,
            min_distance_bone_mm=round(self.min_distance_bone_mm, 2),
            nearest_bone=self.nearest_bone,
            crossed=list(self.crossed),
            forbidden_crossed=list(self.forbidden_crossed),
            safe=bool(self.safe),
            skin_found=bool(self.skin_found),
            target_clearance_mm=round(self.target_clearance_mm, 3),
            window_mm2=round(self.window_mm2, 3),
            notes=list(self.notes),
        )


def _is_forbidden(value: int) -> bool:
    s = BY_LABEL.get(int(value))
    return s is not None and (
        s.kind in BONE_KINDS_BLOCKING or s.kind in NERVE_KINDS or s.name in ("bone", "nerve")
    )


def _skin_entry(
    target: np.ndarray, direction: np.ndarray, vol, ct: sitk.Image | None
) -> tuple[np.ndarray, bool]:
    """Entry point on the skin (or the edge of the field of view) going from ``target`` along ``-direction``."""
    back = -direction
    lo, hi = vol.bounds_lps()
    # distance to leave the grid's box
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - target) / back
        t2 = (hi - target) / back
    t_exit = float(np.min(np.where(np.abs(back) < 1e-12, np.inf, np.maximum(t1, t2))))
    t_exit = max(t_exit, 0.0)
    if ct is None:
        return target + t_exit * back, False
    arr = sitk.GetArrayViewFromImage(ct)
    ts = np.arange(0.0, t_exit, 0.5)
    pts = target[None, :] + ts[:, None] * back[None, :]
    hu = vol.lookup(pts, arr).astype(float)
    inside = vol.contains(pts)
    air = (hu < SKIN_HU) & inside
    run = int(np.ceil(SKIN_AIR_RUN_MM / 0.5))
    for i in range(len(ts)):
        if air[i] and (air[i : i + run].all() or not inside[min(i + run, len(ts) - 1)]):
            if i == 0:
                return target.copy(), True
            return target + ts[i - 1] * back + 0.25 * back, True
    return target + t_exit * back, False


def _clearance(points: np.ndarray, vol, values: list[int]) -> tuple[float, str]:
    """Smallest distance (mm) from ``points`` to voxels with one of ``values`` (less half a voxel)."""
    from scipy.spatial import cKDTree

    if not values:
        return float("inf"), ""
    lo = points.min(0) - 25.0
    hi = points.max(0) + 25.0
    best, name = float("inf"), ""
    half = 0.5 * float(np.min(vol.spacing))
    for v in values:
        s = BY_LABEL.get(v)
        if s is None:
            continue
        pts = vol.points(s.name)
        sel = np.all((pts >= lo) & (pts <= hi), axis=1)
        if not sel.any():
            continue
        d, _ = cKDTree(pts[sel]).query(points, k=1)
        m = float(d.min()) - half
        if m < best:
            best, name = m, s.name
    return max(best, 0.0), name


def plan_path(
    measurements: TriangleMeasurements, fm: ForamenMeasurement, tri: TriangleMeasurement
) -> NeedlePath:
    """The needle path to one triangle at its best view (see the module docstring)."""
    vol = measurements.volume
    view = tri.best_view or tri.view
    assert view is not None
    t_view = view.triangle
    win = view.window
    notes: list[str] = []
    if win.free.any():
        i = int(np.argmax(np.where(win.free, win.clearance_mm, -np.inf)))
        q = win.samples_image[i]
        clearance = float(win.clearance_mm[i])
    else:
        q = t_view.vertices_image.mean(axis=0)
        clearance = 0.0
        notes.append("no free part of the window: the path aims at the triangle's centroid and is blocked")
    target = t_view.to_lps(q)[0]
    d = view.direction_lps / np.linalg.norm(view.direction_lps)
    entry, skin = _skin_entry(target, d, vol, measurements.ct)
    if not skin:
        notes.append(
            "the skin is outside the image (or no CT was given): the entry is the edge of the field "
            "of view and the length is a lower bound"
        )
    length = float(np.linalg.norm(target - entry))
    n = max(2, int(np.ceil(length / _STEP_MM)) + 1)
    line = entry[None, :] + np.linspace(0.0, 1.0, n)[:, None] * (target - entry)[None, :]
    labels = vol.lookup(line)
    crossed: list[str] = []
    for v in labels:
        if v and BY_LABEL.get(int(v)) and BY_LABEL[int(v)].name not in crossed:
            crossed.append(BY_LABEL[int(v)].name)
    forbidden = [c for c in crossed if _is_forbidden(BY_NAME[c].label)]
    present = sorted(vol.labels_present())
    nerve_values = [
        v
        for v in present
        if v in BY_LABEL and (BY_LABEL[v].kind in NERVE_KINDS or BY_LABEL[v].name == "nerve")
    ]
    bone_values = [
        v
        for v in present
        if v in BY_LABEL and (BY_LABEL[v].kind in BONE_KINDS_BLOCKING or BY_LABEL[v].name == "bone")
    ]
    d_nerve, n_name = _clearance(line, vol, nerve_values)
    d_bone, b_name = _clearance(line, vol, bone_values)
    if length > NEEDLE_LENGTH_MM:
        notes.append(
            f"the path is {length:.0f} mm long: a standard {NEEDLE_LENGTH_MM:.0f} mm (3.5 inch) needle "
            "does not reach; use a longer one (e.g. 5 inch / 127 mm)"
        )
    return NeedlePath(
        level=fm.level,
        side=fm.side,
        kind=tri.kind,
        oblique_deg=view.oblique_deg,
        tilt_deg=view.tilt_deg,
        patient_oblique_deg=view.patient_oblique_deg,
        patient_tilt_deg=view.patient_tilt_deg,
        direction_lps=d,
        target_lps=target,
        entry_lps=entry,
        length_mm=length,
        reaches_with_standard_needle=bool(length <= NEEDLE_LENGTH_MM),
        angle_to_axial_deg=float(np.degrees(np.arcsin(min(1.0, abs(d[2]))))),
        angle_to_sagittal_deg=float(np.degrees(np.arcsin(min(1.0, abs(d[0]))))),
        min_distance_nerve_mm=d_nerve,
        nearest_nerve=n_name,
        min_distance_bone_mm=d_bone,
        nearest_bone=b_name,
        crossed=crossed,
        forbidden_crossed=forbidden,
        safe=bool(not forbidden and clearance > 0.0),
        skin_found=skin,
        target_clearance_mm=clearance,
        window_mm2=win.window_mm2,
        notes=notes,
    )


def _why_not(tri: TriangleMeasurement, path: NeedlePath) -> str:
    usable = (
        tri.usable_view if tri.usable_view is not None else bool(tri.view is not None and tri.view.usable)
    )
    if not usable:
        return tri.blocked_reason or f"{tri.name} has no usable window at the view measured"
    if path.forbidden_crossed:
        return f"the path to the {KIND_TITLES[tri.kind].lower()} triangle crosses {', '.join(path.forbidden_crossed)}"
    return f"the {KIND_TITLES[tri.kind].lower()} triangle's target has no clearance"


def plan_paths(measurements: TriangleMeasurements) -> TriangleMeasurements:
    """Plan both needle paths of every measured foramen and recommend one (changed in place).

    Run :func:`spineai.planning.views.search_views` first (paths follow each triangle's best view;
    without it, the measured view is used).
    """
    measurements.skin_source = (
        "CT body outline (> -300 HU)"
        if measurements.ct is not None
        else "edge of the label map's field of view (no CT)"
    )
    for fm in measurements.measured:
        for kind, tri in fm.triangles.items():
            fm.paths[kind] = plan_path(measurements, fm, tri)
        choose_approach(fm)
    return measurements


def choose_approach(fm: ForamenMeasurement) -> None:
    """Set ``fm.recommended`` and ``fm.recommendation`` from its triangles' windows and paths.

    The safe triangle (subpedicular approach) is preferred; when it has no usable window or its path is
    not clear, Kambin's triangle is recommended if it has both, and the reason is given (Fan et al. 2019,
    Fig 6); otherwise nothing is recommended and both reasons are given.
    """
    ok = {}
    for k, tri in fm.triangles.items():
        path = fm.paths.get(k)
        if path is None:
            ok[k] = False
        elif tri.usable_view is None:  # no view search: judge by the measured view
            ok[k] = bool(tri.view is not None and tri.view.usable and path.safe)
        else:
            ok[k] = bool(tri.usable_view and path.safe)
    if ok.get("safe"):
        fm.recommended = "safe"
        fm.recommendation = "safe triangle (subpedicular approach): usable window and a clear path"
    elif ok.get("kambin"):
        fm.recommended = "kambin"
        fm.recommendation = "Kambin's triangle instead of the safe triangle, because " + _why_not(
            fm.triangles["safe"], fm.paths["safe"]
        )
    else:
        fm.recommended = None
        fm.recommendation = (
            "no straight path found: "
            + _why_not(fm.triangles["safe"], fm.paths["safe"])
            + "; and "
            + _why_not(fm.triangles["kambin"], fm.paths["kambin"])
        )
