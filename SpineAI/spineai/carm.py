"""C-arm view convention for transforaminal injections of a prone patient.

A view is one unit vector in the patient's LPS frame (+x patient left, +y posterior, +z superior): the
**line of sight from the skin toward the target**, which is also the direction in which the needle is
advanced in the coaxial ("tunnel view") technique. The photons of a C-arm whose tube is under the table
travel the opposite way (anterior to posterior); only the line matters for what overlaps what.

Angles (degrees):

* ``oblique_deg``: rotation of the C-arm about the patient's cranio-caudal axis toward the side of the
  injection (ipsilateral). 0 is the straight posteroanterior view (needle direction ``(0, -1, 0)``);
  the standard tESI view is 25; at most 45. The needle entry moves to the ipsilateral side, so the
  needle runs anteromedially: for a **left** injection its x component is negative (it moves toward
  the patient's right as it goes in), for a right injection positive.
* ``tilt_deg``: cranio-caudal tilt. **Positive = cranial**: the image intensifier (and the skin entry
  point) is moved toward the patient's head, so the line of sight and the needle run caudally as they
  go in (negative z component). Negative = caudal tilt (needle runs cranially). Used to square an
  endplate or to pass under a high iliac crest.

In formulas, with ``s = +1`` for left and ``-1`` for right::

    entry = ( s*sin(oblique)*cos(tilt),  cos(oblique)*cos(tilt),  sin(tilt) )   # target -> skin
    view  = -entry                                                            # skin -> target

3D Slicer's world frame is RAS: convert with :func:`lps_to_ras` (negate x and y).
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

STANDARD_OBLIQUE_DEG = 25.0
MAX_OBLIQUE_DEG = 45.0
MAX_TILT_DEG = 45.0
_SIDES = {"left": 1.0, "right": -1.0}


def _side_sign(side: str) -> float:
    try:
        return _SIDES[side]
    except (KeyError, TypeError):
        raise InputError(
            f"Side {side!r} is not 'left' or 'right'.", "pass side='left' or side='right'"
        ) from None


def view_direction_lps(oblique_deg: float, tilt_deg: float, side: str) -> np.ndarray:
    """Unit LPS vector of the line of sight / needle direction from the skin toward the target.

    Args:
        oblique_deg: ipsilateral oblique rotation, 0 (posteroanterior) .. 45 degrees.
        tilt_deg: cranio-caudal tilt, -45 .. 45 degrees; positive = cranial (needle runs caudally).
        side: ``"left"`` or ``"right"``, the side of the injection.

    Returns:
        shape (3,), unit length, LPS.

    Raises:
        InputError: side not left/right, or an angle out of range or not finite.
    """
    s = _side_sign(side)
    ob, ti = float(oblique_deg), float(tilt_deg)
    if not np.isfinite(ob) or not 0.0 <= ob <= MAX_OBLIQUE_DEG:
        raise InputError(
            f"Oblique angle {oblique_deg!r} degrees is outside 0..{MAX_OBLIQUE_DEG:g}.",
            "use 0 for a posteroanterior view, 25 for the standard oblique, at most 45",
        )
    if not np.isfinite(ti) or abs(ti) > MAX_TILT_DEG:
        raise InputError(
            f"Tilt {tilt_deg!r} degrees is outside -{MAX_TILT_DEG:g}..{MAX_TILT_DEG:g}.",
            "use a cranio-caudal tilt between -45 (caudal) and 45 (cranial)",
        )
    o, t = np.radians(ob), np.radians(ti)
    entry = np.array([s * np.sin(o) * np.cos(t), np.cos(o) * np.cos(t), np.sin(t)])
    return -entry


def standard_view(side: str) -> np.ndarray:
    """The standard tESI view: 25 degrees ipsilateral oblique, no tilt (LPS unit vector, skin -> target)."""
    return view_direction_lps(STANDARD_OBLIQUE_DEG, 0.0, side)


def angles_from_direction(direction_lps: np.ndarray, side: str) -> tuple[float, float]:
    """Inverse of :func:`view_direction_lps`: ``(oblique_deg, tilt_deg)`` of a skin -> target direction.

    The oblique angle may come out negative (contralateral) or beyond 45 for directions outside the
    clinical range; no range check is made here.
    """
    s = _side_sign(side)
    d = np.asarray(direction_lps, dtype=float)
    n = float(np.linalg.norm(d))
    if d.shape != (3,) or not np.isfinite(n) or n == 0.0:
        raise InputError(
            f"Direction {direction_lps!r} is not a finite non-zero 3-vector.", "pass (x, y, z) in LPS"
        )
    e = -d / n
    tilt = np.degrees(np.arcsin(np.clip(e[2], -1.0, 1.0)))
    oblique = np.degrees(np.arctan2(s * e[0], e[1]))
    return float(oblique), float(tilt)


def lps_to_ras(vector: np.ndarray) -> np.ndarray:
    """LPS vector (or point) to Slicer's RAS: negate x and y."""
    v = np.array(vector, dtype=float)
    v[..., 0] *= -1.0
    v[..., 1] *= -1.0
    return v


def entry_point(target_lps: np.ndarray, direction_lps: np.ndarray, depth_mm: float) -> np.ndarray:
    """Skin-side point ``depth_mm`` back from ``target_lps`` along the line of sight (LPS, mm)."""
    d = np.asarray(direction_lps, dtype=float)
    return np.asarray(target_lps, dtype=float) - float(depth_mm) * d / np.linalg.norm(d)
