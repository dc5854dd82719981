"""Search of the C-arm view that opens each triangle's accessible window the most.

For every measured foramen the C-arm is swept over ipsilateral oblique 0..45 degrees and cranio-caudal
tilt -30..+30 degrees (positive = cranial), in the level's frame (C-arm squared to the inferior endplate
of the upper vertebra; :func:`spineai.planning.construct.level_view`):

1. **coarse grid**: every 5 degrees (10 x 13 views), both triangles at once, windows sampled with 6 x 6
   sub-triangles (36 rays per triangle);
2. **refinement**, per triangle, from the best grid view: a pattern search with steps of 2.5, 1.25 and
   0.625 degrees over the 8 neighbouring views (10 x 10 rays), kept inside the range;
3. the best view and the standard view (25 degrees oblique, no tilt) are reported with 16 x 16 rays.

The score is the accessible window (mm2); among equal windows the view nearer the standard one wins.
A triangle whose best window is not usable (:data:`spineai.planning.window.USABLE_WINDOW_MM2`, a 1 mm
needle) is flagged with the structures that hide it at its best view, e.g. ``ilium_left`` for a high
iliac crest (the paper's Fig 6: then switch to the other triangle).
"""

from __future__ import annotations

import numpy as np

from ..carm import STANDARD_OBLIQUE_DEG
from ..progress import track
from .construct import KINDS, level_view, triangles_in_view
from .parts import ForamenParts
from .triangles import KIND_TITLES, REPORT_SAMPLES, TriangleMeasurements, view_assessment
from .window import USABLE_WINDOW_MM2, Occluders, window_area

OBLIQUE_RANGE_DEG = (0.0, 45.0)
TILT_RANGE_DEG = (-30.0, 30.0)
COARSE_STEP_DEG = 5.0
COARSE_SAMPLES = 6
FINE_SAMPLES = 10
REFINE_STEPS_DEG = (2.5, 1.25, 0.625)
#: mm2 of window traded for one degree of distance from the standard view (tie-break only)
_PREFERENCE = 1e-3


def _score(window_mm2: float, oblique: float, tilt: float) -> float:
    return window_mm2 - _PREFERENCE * np.hypot(oblique - STANDARD_OBLIQUE_DEG, tilt)


def _evaluate(
    parts: ForamenParts, occ: Occluders, oblique: float, tilt: float, n: int, kinds: tuple[str, ...] = KINDS
) -> dict[str, float]:
    tris = triangles_in_view(parts, level_view(parts, oblique, tilt))
    return {k: window_area(tris[k], occ, n) for k in kinds}


def search_foramen(
    parts: ForamenParts,
    occ: Occluders,
    oblique_range: tuple[float, float] = OBLIQUE_RANGE_DEG,
    tilt_range: tuple[float, float] = TILT_RANGE_DEG,
) -> dict[str, tuple[float, float]]:
    """Best ``(oblique_deg, tilt_deg)`` (level frame) per triangle kind of one foramen."""
    ob_lo, ob_hi = oblique_range
    ti_lo, ti_hi = tilt_range
    obs = np.arange(ob_lo, ob_hi + 1e-9, COARSE_STEP_DEG)
    tis = np.arange(ti_lo, ti_hi + 1e-9, COARSE_STEP_DEG)
    best: dict[str, tuple[float, float, float]] = {k: (-np.inf, STANDARD_OBLIQUE_DEG, 0.0) for k in KINDS}
    for ob in obs:
        for ti in tis:
            w = _evaluate(parts, occ, float(ob), float(ti), COARSE_SAMPLES)
            for k in KINDS:
                s = _score(w[k], ob, ti)
                if s > best[k][0]:
                    best[k] = (s, float(ob), float(ti))
    out: dict[str, tuple[float, float]] = {}
    for k in KINDS:
        _, ob, ti = best[k]
        cur = _score(_evaluate(parts, occ, ob, ti, FINE_SAMPLES, (k,))[k], ob, ti)
        for step in REFINE_STEPS_DEG:
            moved = True
            while moved:
                moved = False
                cands = []
                for dob in (-step, 0.0, step):
                    for dti in (-step, 0.0, step):
                        if dob == 0.0 and dti == 0.0:
                            continue
                        o2 = float(np.clip(ob + dob, ob_lo, ob_hi))
                        t2 = float(np.clip(ti + dti, ti_lo, ti_hi))
                        if (o2, t2) != (ob, ti):
                            cands.append((o2, t2))
                for o2, t2 in dict.fromkeys(cands):
                    s = _score(_evaluate(parts, occ, o2, t2, FINE_SAMPLES, (k,))[k], o2, t2)
                    if s > cur + 1e-9:
                        cur, ob, ti, moved = s, o2, t2, True
        out[k] = (ob, ti)
    return out


def describe_blocked(kind: str, level: str, side: str, view) -> str:
    win = view.window
    title = KIND_TITLES[kind]
    if view.degenerate or win.area_mm2 <= 0:
        return (
            f"{title} triangle {level} {side} does not open in any view searched: the exiting root touches the "
            + ("superior endplate of the lower vertebra" if kind == "kambin" else "pedicle")
        )
    blockers = ", ".join(f"{name} ({share:.0%})" for name, share in win.blocked_by.items()) or "nothing"
    return (
        f"{title} triangle {level} {side}: no C-arm view (oblique 0-45, tilt -30..30) gives a usable window "
        f"(at least {USABLE_WINDOW_MM2:g} mm2 and room for a 1 mm needle); the best one "
        f"(oblique {view.oblique_deg:.1f}, tilt {view.tilt_deg:+.1f}) leaves {win.window_mm2:.1f} mm2 "
        f"and is hidden by {blockers}"
    )


def search_views(
    measurements: TriangleMeasurements,
    oblique_range: tuple[float, float] = OBLIQUE_RANGE_DEG,
    tilt_range: tuple[float, float] = TILT_RANGE_DEG,
) -> TriangleMeasurements:
    """Fill ``standard_view``, ``best_view``, ``usable_view`` and ``blocked_reason`` of every triangle.

    Args:
        measurements: result of :func:`spineai.planning.triangles.measure_triangles` (changed in place).
        oblique_range, tilt_range: searched C-arm angles (degrees, level frame).

    Returns:
        the same object.
    """
    occ = measurements.occluders
    if occ is None:
        return measurements
    for fm in track(measurements.measured, desc="C-arm view search"):
        parts = fm.parts
        assert parts is not None
        std = view_assessment(
            parts, level_view(parts, STANDARD_OBLIQUE_DEG, 0.0), occ, "standard", n=REPORT_SAMPLES
        )
        best_angles = search_foramen(parts, occ, oblique_range, tilt_range)
        for kind, tri in fm.triangles.items():
            ob, ti = best_angles[kind]
            best = view_assessment(parts, level_view(parts, ob, ti), occ, "best", n=REPORT_SAMPLES)[kind]
            if best.window_mm2 < std[kind].window_mm2:
                best = std[kind]
                best = type(best)(**{**best.__dict__, "name": "best"})
            tri.standard_view = std[kind]
            tri.best_view = best
            tri.usable_view = bool(best.usable)
            tri.blocked_reason = None if best.usable else describe_blocked(kind, fm.level, fm.side, best)
    return measurements
