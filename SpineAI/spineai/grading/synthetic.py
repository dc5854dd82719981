"""A fast 2D synthetic mid-sagittal T2 slice with known disc positions and Pfirrmann grades.

Drawn in the upright display convention (superior at the top, anterior on the left): a curved column
of vertebral bodies (intermediate signal) and discs (nucleus brightness and height falling with the
Pfirrmann grade: grade 1 bright and tall, grade 5 dark and thin), a sacrum wedge below L5/S1, the
bright CSF of the canal behind the column, posterior elements, soft tissue and noise. Every position
is exact, so tests can check the locator, the patch geometry, Grad-CAM and the output files without
real data. It is not meant to train a model for real images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SyntheticSagittal", "synthetic_sagittal_slice"]

_NUCLEUS_SIGNAL = {1: 235.0, 2: 195.0, 3: 140.0, 4: 85.0, 5: 45.0}
_DISC_HEIGHT_FACTOR = {1: 1.0, 2: 1.0, 3: 0.9, 4: 0.75, 5: 0.55}


@dataclass
class SyntheticSagittal:
    """A synthetic slice and its truth.

    Attributes:
        image: uint8 array ``(rows, cols)``, upright (superior at the top, anterior on the left).
        discs_rc: disc centres ``(n, 2)`` (row, col), caudal first: index 0 is L5/S1 (IVD 1).
        pfirrmann: Pfirrmann grade of each disc, caudal first.
        spacing_mm: pixel size (mm), the same along rows and columns.
    """

    image: np.ndarray
    discs_rc: np.ndarray
    pfirrmann: list[int]
    spacing_mm: float


def _rotated_rect(centre: np.ndarray, axis: np.ndarray, half_len: float, half_wid: float) -> np.ndarray:
    """Corners (row, col) of a rectangle whose length runs along ``axis`` (unit, row/col)."""
    across = np.array([axis[1], -axis[0]])
    c = np.asarray(centre)
    return np.stack(
        [
            c + axis * half_len - across * half_wid,
            c + axis * half_len + across * half_wid,
            c - axis * half_len + across * half_wid,
            c - axis * half_len - across * half_wid,
        ]
    )


def synthetic_sagittal_slice(
    seed: int,
    shape: tuple[int, int] = (192, 160),
    n_discs: int = 6,
    pfirrmann: list[int] | None = None,
    noise: float = 8.0,
) -> SyntheticSagittal:
    """Draw one synthetic slice.

    Args:
        seed: random seed (anatomy, grades, noise).
        shape: (rows, cols) in pixels.
        n_discs: number of discs drawn above the sacrum (L5/S1 upwards).
        pfirrmann: grade per disc, caudal first (default: random, worse at the lower levels).
        noise: standard deviation of the added Gaussian noise (grey levels).
    """
    from scipy import ndimage
    from skimage.draw import ellipse, polygon

    rng = np.random.default_rng(seed)
    rows, cols = shape
    if pfirrmann is None:
        pfirrmann = [int(np.clip(rng.integers(1, 6) + (1 if i < 2 else 0), 1, 5)) for i in range(n_discs)]
    if len(pfirrmann) != n_discs:
        raise ValueError(f"{len(pfirrmann)} Pfirrmann grades given for {n_discs} discs")
    img = np.full(shape, 18.0)
    # body soft tissue with a smooth texture
    body = np.zeros(shape, dtype=bool)
    body[:, int(0.04 * cols) : int(0.92 * cols)] = True
    tissue = ndimage.gaussian_filter(rng.normal(0, 1, shape), 6) * 60 + 95
    img[body] = tissue[body]
    # column geometry (caudal to cranial); unit = vertebral period
    period = rows * rng.uniform(0.118, 0.132)
    disc_h = period * rng.uniform(0.22, 0.27)
    width = period * rng.uniform(1.25, 1.45)
    base_row = rows * rng.uniform(0.80, 0.84)
    base_col = cols * rng.uniform(0.42, 0.50)
    lordosis = rng.uniform(0.25, 0.45)
    centres = []
    axes = []
    for i in range(n_discs + 1):
        t = i * period
        r = base_row - t
        c = base_col - lordosis * period * np.sin(np.pi * i / (n_discs + 1)) * 1.2
        centres.append(np.array([r, c]))
    centres_arr = np.array(centres)
    for i in range(len(centres_arr)):
        lo = centres_arr[max(i - 1, 0)]
        hi = centres_arr[min(i + 1, len(centres_arr) - 1)]
        v = hi - lo
        axes.append(v / np.linalg.norm(v))
    # canal (bright CSF) behind the column
    canal_pts = [
        c + np.array([a[1], -a[0]]) * (0.5 * width + 0.18 * period)
        for c, a in zip(centres_arr, axes, strict=True)
    ]
    canal_line = np.array(canal_pts)
    rr = np.arange(rows)
    canal_col = np.interp(rr, canal_line[::-1, 0], canal_line[::-1, 1])
    for r in range(rows):
        c0 = int(round(canal_col[r]))
        img[r, max(c0, 0) : min(c0 + max(3, int(0.16 * period)), cols)] = 230.0
    # posterior elements (intermediate blobs) behind the canal
    for c, a in zip(centres_arr, axes, strict=True):
        post = c + np.array([a[1], -a[0]]) * (0.5 * width + 0.55 * period) - a * 0.45 * period
        er, ec = ellipse(post[0], post[1], 0.32 * period, 0.28 * period, shape=shape)
        img[er, ec] = 120.0
    discs = []
    # vertebral bodies: between consecutive disc centres; the lowest "body" is the sacrum wedge
    for i in range(n_discs):
        lower = centres_arr[i]
        upper = centres_arr[i + 1]
        mid = (lower + upper) / 2
        axis = (upper - lower) / np.linalg.norm(upper - lower)
        corners = _rotated_rect(mid, axis, 0.5 * (period - disc_h), 0.5 * width)
        pr, pc = polygon(corners[:, 0], corners[:, 1], shape=shape)
        img[pr, pc] = 118.0 + 8 * rng.normal()
    sac_axis = np.array([-np.cos(0.5), np.sin(0.5)])  # sacrum tilted posteriorly at the bottom
    sac_centre = centres_arr[0] - sac_axis * (0.5 * period + 0.5 * disc_h)
    corners = _rotated_rect(sac_centre, sac_axis, 0.5 * period, 0.55 * width)
    corners[2] += np.array([0.4 * period, 0.25 * width])  # wedge
    pr, pc = polygon(corners[:, 0], corners[:, 1], shape=shape)
    img[pr, pc] = 105.0
    # discs (annulus + nucleus)
    for i in range(n_discs):
        centre = centres_arr[i]
        axis = axes[i]
        grade = pfirrmann[i]
        h = disc_h * _DISC_HEIGHT_FACTOR[grade]
        corners = _rotated_rect(centre, axis, 0.5 * h, 0.48 * width)
        pr, pc = polygon(corners[:, 0], corners[:, 1], shape=shape)
        img[pr, pc] = 70.0
        nucleus = _rotated_rect(centre, axis, 0.38 * h, 0.3 * width)
        pr, pc = polygon(nucleus[:, 0], nucleus[:, 1], shape=shape)
        img[pr, pc] = _NUCLEUS_SIGNAL[grade]
        discs.append(centre)
    img = ndimage.gaussian_filter(img, 0.7) + rng.normal(0, noise, shape)
    image = np.clip(img, 0, 255).astype(np.uint8)
    return SyntheticSagittal(
        image=image,
        discs_rc=np.array(discs, dtype=np.float64),
        pfirrmann=list(pfirrmann),
        spacing_mm=float(rng.uniform(0.9, 1.2) * 300.0 / rows),
    )
