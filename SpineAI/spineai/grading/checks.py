"""Plausibility checks of the images given to the sagittal grader (refusals with a clear reason).

These checks run before any network and need only numpy: a slice that is too small or implausibly
stretched, and CT data recognised from Hounsfield-unit statistics.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_ASPECT", "MIN_SIDE_PX", "ct_problem", "slice_shape_problem"]

#: smallest side (pixels) of a slice that can show a column of discs
MIN_SIDE_PX = 64
#: largest height/width (or width/height) ratio of a plausible sagittal slice with square pixels
MAX_ASPECT = 3.0


def slice_shape_problem(rows: int, cols: int, spacing_rc_mm: tuple[float, float] = (1.0, 1.0)) -> str | None:
    """Why a 2D slice of ``rows x cols`` pixels cannot be a sagittal spine slice, or ``None`` if it can.

    Args:
        rows, cols: size in pixels.
        spacing_rc_mm: pixel size (row, column) in mm; the aspect ratio is judged physically.
    """
    if min(rows, cols) < MIN_SIDE_PX:
        return (
            f"the slice is only {cols} x {rows} pixels (width x height); at least {MIN_SIDE_PX} pixels are "
            "needed on each side to show a column of lumbar discs"
        )
    height_mm = rows * float(spacing_rc_mm[0])
    width_mm = cols * float(spacing_rc_mm[1])
    aspect = max(height_mm, width_mm) / max(min(height_mm, width_mm), 1e-9)
    if aspect > MAX_ASPECT:
        return (
            f"the slice is {cols} x {rows} pixels, an aspect ratio of {aspect:.1f}:1, which no sagittal spine "
            "field of view has; its pixels are probably not square (the picture was stretched when exported)"
        )
    return None


def ct_problem(values: np.ndarray) -> str | None:
    """A description of why ``values`` look like CT in Hounsfield units, or ``None``.

    CT has air at about -1000 HU and bone above +150 HU; magnitude MRI is non-negative. A slice or
    volume with more than 2 % of its voxels below -200 and a 99th percentile above 150 is called CT.

    Args:
        values: the image's voxel values, any shape (a subsample is enough).
    """
    v = np.asarray(values, dtype=np.float32).ravel()
    if v.size == 0:
        return None
    if v.size > 400_000:
        v = v[:: v.size // 400_000 + 1]
    frac_low = float(np.mean(v < -200.0))
    p99 = float(np.percentile(v, 99.0))
    if frac_low > 0.02 and p99 > 150.0:
        return (
            f"the image looks like a CT in Hounsfield units ({100 * frac_low:.0f}% of voxels below -200, "
            f"99th percentile {p99:.0f}), not a T2-weighted MRI"
        )
    return None
