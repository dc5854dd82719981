"""Disc locator: finds every intervertebral disc on a sagittal T2 slice and names it by level.

Network
-------
A 2D MONAI U-Net (:class:`monai.networks.nets.UNet`) reads the slice scaled to fit a square of
``size`` pixels (default 128; aspect kept, zero padded) and outputs two heat maps (logits):

* channel 0, **disc centres**: a Gaussian blob (sigma 2.5 px) at the centre of every disc;
* channel 1, **L5/S1**: a blob at the centre of the lowest disc above the sacrum only.

It is trained on upright slices (superior at the top, anterior on the left). During training a quarter
of the slices are also shown flipped (upside down and/or mirrored) with an *empty* L5/S1 channel, so the
L5/S1 channel also tells whether a picture is the right way up.

Decoding and level order
------------------------
1. Disc candidates are the local maxima of ``sigmoid(channel 0)`` above ``threshold`` (default 0.3),
   at least 4 px apart, refined to sub-pixel by the heat-weighted centroid of their 3x3 neighbourhood.
2. The disc column: a quadratic ``col = f(row)`` is fitted through the candidates and the worst
   outlier is dropped while it lies more than 0.6 median disc spacings off the curve. At least three
   discs must remain, with a median heat of at least 0.5, running from head to foot (within 35 degrees
   of the vertical; from L5/S1 upwards turning by at most 45 degrees from one disc to the next) and
   regularly spaced (no gap under half the median; gaps of one spacing varying by
   less than 35 %), before and after the levels are named, otherwise there is no disc column (an axial
   slice, another body region, or no spine) and the slice is refused.
3. Level order: the disc where ``sigmoid(channel 1)`` is highest (and above ``l5s1_threshold``) is
   **IVD 1 = L5/S1**, the lowest disc above the sacrum. Candidates below it (sacral segments) are
   discarded; the discs above are numbered upwards in the order of the column. A gap larger than 1.6
   times the median spacing between two consecutive discs counts as a missed disc, so the numbering
   skips a number there instead of shifting every level above. Without a recognisable L5/S1 (not in the
   field of view) levels cannot be named and the slice is refused, unless ``require_l5s1=False``, in
   which case the lowest disc found is called IVD 1 and the result says so.

Coordinates are (row, column) pixels of the upright working slice unless stated otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from .tasks import level_name, level_structure

__all__ = [
    "LOCATOR_DEFAULTS",
    "DiscDetection",
    "DiscLocalisation",
    "DiscLocatorNet",
    "LocatorGeometry",
    "build_locator",
    "decode_heatmaps",
    "locator_input",
    "name_levels",
    "normalise_slice",
    "render_heatmaps",
]

#: default architecture of the locator
LOCATOR_DEFAULTS: dict[str, Any] = {
    "size": 128,
    "channels": [16, 32, 64, 128, 128],
    "strides": [2, 2, 2, 2],
    "num_res_units": 1,
}
DISC_SIGMA_PX = 2.5
L5S1_SIGMA_PX = 3.0


# ------------------------------------------------------------------------------------------ network
def build_locator(
    size: int = 128,
    channels: Sequence[int] = (16, 32, 64, 128, 128),
    strides: Sequence[int] = (2, 2, 2, 2),
    num_res_units: int = 1,
) -> DiscLocatorNet:
    """A fresh :class:`DiscLocatorNet` (see the module docstring)."""
    return DiscLocatorNet(size=size, channels=channels, strides=strides, num_res_units=num_res_units)


class DiscLocatorNet(torch.nn.Module):
    """2D U-Net with two heat-map outputs (disc centres, L5/S1). Input ``(B, 1, size, size)`` in [0, 1].

    Args:
        size: side of the square input (pixels).
        channels, strides, num_res_units: passed to :class:`monai.networks.nets.UNet`.
    """

    def __init__(
        self,
        size: int = 128,
        channels: Sequence[int] = (16, 32, 64, 128, 128),
        strides: Sequence[int] = (2, 2, 2, 2),
        num_res_units: int = 1,
    ) -> None:
        super().__init__()
        from monai.networks.nets import UNet

        factor = int(np.prod(strides))
        if size % factor:
            raise ValueError(
                f"locator size {size} must be a multiple of {factor} (the product of the strides)"
            )
        self.config = {
            "size": int(size),
            "channels": [int(c) for c in channels],
            "strides": [int(s) for s in strides],
            "num_res_units": int(num_res_units),
        }
        self.unet = UNet(
            spatial_dims=2,
            in_channels=1,
            out_channels=2,
            channels=tuple(self.config["channels"]),
            strides=tuple(self.config["strides"]),
            num_res_units=self.config["num_res_units"],
            norm="instance",
        )

    def forward(self, x: Any) -> Any:
        """Heat-map logits ``(B, 2, size, size)``."""
        return self.unet(x)


# ------------------------------------------------------------------------------------- preprocessing
def normalise_slice(array: np.ndarray) -> np.ndarray:
    """Intensities mapped to [0, 1] by the slice's 0.5th and 99.5th percentiles (float32, same shape)."""
    a = np.asarray(array, dtype=np.float32)
    lo, hi = np.percentile(a, [0.5, 99.5])
    if not math.isfinite(float(hi - lo)) or hi - lo < 1e-6:
        return np.zeros_like(a)
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class LocatorGeometry:
    """How a working slice was scaled and padded into the locator's square input.

    ``input = scale * slice + offset`` for (row, col) pixel coordinates, per axis.
    """

    scale_rc: tuple[float, float]
    offset_rc: tuple[float, float]
    size: int

    def to_input(self, rc: np.ndarray) -> np.ndarray:
        """Slice (row, col) -> locator input (row, col)."""
        return np.asarray(rc, dtype=np.float64) * np.asarray(self.scale_rc) + np.asarray(self.offset_rc)

    def to_slice(self, rc: np.ndarray) -> np.ndarray:
        """Locator input (row, col) -> slice (row, col)."""
        return (np.asarray(rc, dtype=np.float64) - np.asarray(self.offset_rc)) / np.asarray(self.scale_rc)


def locator_input(slice_normalised: np.ndarray, size: int = 128) -> tuple[np.ndarray, LocatorGeometry]:
    """Scale a normalised upright slice to fit ``size x size`` (aspect kept, centred, zero padded).

    Returns:
        ``(input (size, size) float32, geometry)``.
    """
    from scipy import ndimage

    a = np.asarray(slice_normalised, dtype=np.float32)
    rows, cols = a.shape
    scale = size / max(rows, cols)
    new_r = max(1, int(round(rows * scale)))
    new_c = max(1, int(round(cols * scale)))
    # area-averaging before the zoom avoids aliasing when shrinking a large slice
    if scale < 0.5:
        a = ndimage.uniform_filter(a, size=int(round(1 / scale)))
    zoomed = ndimage.zoom(a, (new_r / rows, new_c / cols), order=1, mode="nearest", grid_mode=True)
    out = np.zeros((size, size), dtype=np.float32)
    r0 = (size - new_r) // 2
    c0 = (size - new_c) // 2
    out[r0 : r0 + new_r, c0 : c0 + new_c] = zoomed[:new_r, :new_c]
    sr = new_r / rows
    sc = new_c / cols
    # grid_mode zoom maps pixel centre x to (x + 0.5) * s - 0.5
    geometry = LocatorGeometry(
        scale_rc=(float(sr), float(sc)), offset_rc=(r0 + 0.5 * sr - 0.5, c0 + 0.5 * sc - 0.5), size=size
    )
    return out, geometry


def render_heatmaps(
    discs_rc: np.ndarray,
    l5s1_index: int | None,
    size: int,
    disc_sigma: float = DISC_SIGMA_PX,
    l5s1_sigma: float = L5S1_SIGMA_PX,
) -> np.ndarray:
    """Training targets ``(2, size, size)`` in [0, 1]: Gaussian blobs at ``discs_rc`` (locator pixels).

    Args:
        discs_rc: disc centres ``(n, 2)`` in locator input pixels.
        l5s1_index: row of ``discs_rc`` that is L5/S1, or ``None`` (channel 1 stays empty).
        size: side of the square.
    """
    rr, cc = np.mgrid[0:size, 0:size].astype(np.float32)
    target = np.zeros((2, size, size), dtype=np.float32)
    for i, (r, c) in enumerate(np.asarray(discs_rc, dtype=np.float32).reshape(-1, 2)):
        d2 = (rr - r) ** 2 + (cc - c) ** 2
        ri, ci = int(round(float(r))), int(round(float(c)))
        inside = 0 <= ri < size and 0 <= ci < size
        target[0] = np.maximum(target[0], np.exp(-d2 / (2 * disc_sigma**2)))
        if inside:
            target[0, ri, ci] = 1.0  # the pixel nearest the centre is the positive one
        if l5s1_index is not None and i == l5s1_index:
            target[1] = np.exp(-d2 / (2 * l5s1_sigma**2))
            if inside:
                target[1, ri, ci] = 1.0
    return target


# ------------------------------------------------------------------------------------------ decoding
@dataclass
class DiscDetection:
    """One disc found on the working slice.

    Attributes:
        ivd: IVD number (1 = L5/S1, counting upwards).
        level: level name, e.g. ``"L4-L5"``.
        structure: canonical structure name, e.g. ``"disc_L4_L5"``.
        row, col: centre in the upright working slice (pixels).
        confidence: peak of the disc heat map there (0..1).
        l5s1_score: the L5/S1 heat map there (0..1).
        axis_rc: unit vector (row, col) along the spine towards the head (cranial) at this disc.
        spacing_px: local distance to the neighbouring discs (working-slice pixels).
    """

    ivd: int
    level: str
    structure: str
    row: float
    col: float
    confidence: float
    l5s1_score: float
    axis_rc: tuple[float, float]
    spacing_px: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass
class DiscLocalisation:
    """Discs found on one slice (caudal first) and how their levels were decided."""

    discs: list[DiscDetection]
    l5s1_found: bool
    notes: list[str] = field(default_factory=list)
    candidates: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "discs": [d.to_dict() for d in self.discs],
            "l5s1_found": self.l5s1_found,
            "notes": list(self.notes),
            "candidates": self.candidates,
        }


def _peaks(heat: np.ndarray, threshold: float, min_distance: int) -> np.ndarray:
    from skimage.feature import peak_local_max

    coords = peak_local_max(heat, min_distance=min_distance, threshold_abs=threshold, exclude_border=False)
    refined = []
    for r, c in coords:
        r0, r1 = max(0, r - 1), min(heat.shape[0], r + 2)
        c0, c1 = max(0, c - 1), min(heat.shape[1], c + 2)
        w = heat[r0:r1, c0:c1]
        gr, gc = np.mgrid[r0:r1, c0:c1]
        refined.append((float((w * gr).sum() / w.sum()), float((w * gc).sum() / w.sum())))
    return np.asarray(refined, dtype=np.float64).reshape(-1, 2)


def _column_inliers(points: np.ndarray) -> np.ndarray:
    """Indices of the points that form one smooth disc column (quadratic col = f(row))."""
    keep = np.arange(len(points))
    while len(keep) >= 4:
        pts = points[keep]
        order = np.argsort(pts[:, 0])
        gaps = np.linalg.norm(np.diff(pts[order], axis=0), axis=1)
        spacing = float(np.median(gaps)) if gaps.size else 1.0
        coef = np.polyfit(pts[:, 0], pts[:, 1], deg=2 if len(keep) >= 5 else 1)
        resid = np.abs(np.polyval(coef, pts[:, 0]) - pts[:, 1])
        worst = int(np.argmax(resid))
        if resid[worst] <= 0.6 * spacing:
            break
        keep = np.delete(keep, worst)
    return keep


def _axes_and_spacings(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cranial unit vectors and local spacings for a column ordered caudal first."""
    n = len(points)
    axes = np.zeros((n, 2))
    spacings = np.zeros(n)
    for i in range(n):
        lo = points[max(i - 1, 0)]
        hi = points[min(i + 1, n - 1)]
        v = hi - lo
        norm = np.linalg.norm(v)
        axes[i] = v / norm if norm > 0 else (-1.0, 0.0)
        neighbours = [np.linalg.norm(points[j] - points[i]) for j in (i - 1, i + 1) if 0 <= j < n]
        spacings[i] = float(np.mean(neighbours)) if neighbours else 0.0
    return axes, spacings


def name_levels(
    points_rc: np.ndarray,
    l5s1_scores: np.ndarray,
    confidences: np.ndarray,
    *,
    l5s1_threshold: float = 0.3,
    require_l5s1: bool = True,
    lowest_ivd: int | None = None,
    min_discs: int = 3,
) -> DiscLocalisation:
    """Order a disc column and number it from L5/S1 upwards (see the module docstring).

    Args:
        points_rc: disc centres ``(n, 2)`` (any order), working-slice pixels.
        l5s1_scores: L5/S1 heat at each centre, ``(n,)``.
        confidences: disc heat at each centre, ``(n,)``.
        l5s1_threshold: smallest L5/S1 score that identifies L5/S1.
        require_l5s1: refuse (``InputError``) a column without a recognisable L5/S1.
        lowest_ivd: number of the lowest disc when it is known (e.g. disc positions given by hand);
            overrides the L5/S1 channel.
        min_discs: fewest discs that make a column (fewer: ``InputError``).

    Returns:
        The named discs, caudal first.
    """
    pts = np.asarray(points_rc, dtype=np.float64).reshape(-1, 2)
    notes: list[str] = []
    if len(pts) < min_discs:
        raise InputError(
            f"No column of intervertebral discs was found on the slice ({len(pts)} disc-like spot(s)); it does "
            "not look like a sagittal lumbar spine MRI (an axial or coronal slice, another body region, "
            "or an empty image).",
            "pass a mid-sagittal T2-weighted slice of the lumbar spine (or the sagittal T2 volume) showing the "
            "discs from L5/S1 upwards",
        )
    order = np.argsort(-pts[:, 0])  # caudal (larger row) first
    pts = pts[order]
    l5 = np.asarray(l5s1_scores, dtype=np.float64)[order]
    conf = np.asarray(confidences, dtype=np.float64)[order]
    if lowest_ivd is not None:
        start, base = 0, int(lowest_ivd)
        l5s1_found = base == 1
    else:
        best = int(np.argmax(l5)) if len(l5) else 0
        l5s1_found = bool(len(l5) and l5[best] >= l5s1_threshold)
        if l5s1_found:
            start, base = best, 1
            if best > 0:
                notes.append(f"{best} disc-like spot(s) below L5/S1 (sacral segments) were left out")
        elif require_l5s1:
            raise InputError(
                "The L5/S1 disc (the lowest disc above the sacrum) was not recognised on the slice, so the disc "
                f"levels cannot be named (highest L5/S1 score {float(l5.max()) if len(l5) else 0.0:.2f}, needed "
                f"{l5s1_threshold:.2f}).",
                "include the sacrum and L5/S1 in the slice (a lumbar sagittal T2 from the sacrum upwards); for a "
                "picture, keep superior at the top and anterior on the left",
            )
        else:
            start, base = 0, 1
            notes.append("L5/S1 was not recognised; levels are counted from the lowest disc found")
    pts, l5, conf = pts[start:], l5[start:], conf[start:]
    gaps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    median_gap = float(np.median(gaps)) if gaps.size else 0.0
    numbers = [base]
    for gap in gaps:
        step = max(1, int(round(gap / median_gap))) if median_gap > 0 and gap > 1.6 * median_gap else 1
        if step > 1:
            notes.append(f"{step - 1} disc(s) between IVD {numbers[-1]} and the next one were not found")
        numbers.append(numbers[-1] + step)
    axes, spacings = _axes_and_spacings(pts)
    discs = []
    for k, (p, a, s, c, l5v) in enumerate(zip(pts, axes, spacings, conf, l5, strict=True)):
        ivd = numbers[k]
        try:
            name, structure = level_name(ivd), level_structure(ivd)
        except ValueError:
            continue
        discs.append(
            DiscDetection(
                ivd=ivd,
                level=name,
                structure=structure,
                row=float(p[0]),
                col=float(p[1]),
                confidence=float(c),
                l5s1_score=float(l5v),
                axis_rc=(float(a[0]), float(a[1])),
                spacing_px=float(s),
            )
        )
    return DiscLocalisation(discs=discs, l5s1_found=l5s1_found, notes=notes, candidates=len(points_rc))


def _sample(heat: np.ndarray, rc: np.ndarray) -> np.ndarray:
    """Max of ``heat`` in the 3x3 neighbourhood of each (row, col)."""
    out = []
    for r, c in np.asarray(rc).reshape(-1, 2):
        ri, ci = int(round(r)), int(round(c))
        r0, r1 = max(0, ri - 1), min(heat.shape[0], ri + 2)
        c0, c1 = max(0, ci - 1), min(heat.shape[1], ci + 2)
        out.append(float(heat[r0:r1, c0:c1].max()) if r1 > r0 and c1 > c0 else 0.0)
    return np.asarray(out)


def _column_problem(points_rc: np.ndarray, confidences: np.ndarray, check_turns: bool = True) -> str | None:
    """Why disc-like spots do not form a column of discs (``None`` if they do).

    A column has at least three spots, a median heat of at least 0.5, runs from head to foot (within 35
    degrees of the vertical), turns by at most 45 degrees from one disc to the next, and is regularly
    spaced: sorted along the column, no gap is shorter than half the median gap, and the gaps of about one
    disc spacing (< 1.6 median; longer ones are missed discs) vary by less than 35 % (coefficient of
    variation). The turning limit is only checked with ``check_turns`` (the discs from L5/S1 upwards;
    the sacrum below L5/S1 turns sharply).
    """
    n = len(points_rc)
    if n < 3:
        return f"{n} disc-like spot(s)"
    conf = float(np.median(confidences))
    if conf < 0.5:
        return f"the disc-like spots are faint (median heat {conf:.2f}, a disc column has at least 0.50)"
    pts = np.asarray(points_rc)[np.argsort(np.asarray(points_rc)[:, 0])]
    span = pts[-1] - pts[0]
    if abs(span[1]) > 0.7 * abs(span[0]):
        return "the disc-like spots do not run from head to foot (more than 35 degrees off the vertical)"
    steps = np.diff(pts, axis=0)
    gaps = np.linalg.norm(steps, axis=1)
    if check_turns and len(steps) >= 2:
        unit = steps / np.maximum(gaps[:, None], 1e-9)
        turn = np.degrees(np.arccos(np.clip(np.sum(unit[1:] * unit[:-1], axis=1), -1.0, 1.0)))
        if float(turn.max()) > 45.0:
            return f"the disc-like spots zig-zag (the column turns by {float(turn.max()):.0f} degrees between discs)"
    ratio = gaps / np.median(gaps)
    single = gaps[ratio < 1.6]
    if np.any(ratio < 0.5) or (len(single) >= 2 and float(np.std(single) / np.mean(single)) > 0.35):
        return "the disc-like spots are irregularly spaced"
    return None


def decode_heatmaps(
    heat: np.ndarray,
    geometry: LocatorGeometry,
    *,
    threshold: float = 0.3,
    l5s1_threshold: float = 0.3,
    require_l5s1: bool = True,
) -> DiscLocalisation:
    """Discs from the two heat maps (probabilities, ``(2, size, size)``) of one slice.

    Positions are returned in working-slice pixels (``geometry`` undoes the scaling into the locator).
    """
    peaks = _peaks(heat[0], threshold, min_distance=4)
    if len(peaks) >= 3:
        peaks = peaks[_column_inliers(peaks)]
    l5 = _sample(heat[1], peaks)
    conf = _sample(heat[0], peaks)
    problem = _column_problem(peaks, conf, check_turns=False)
    if problem is not None:
        raise InputError(
            f"No column of intervertebral discs was found on the slice ({problem}); it does not look like a "
            "sagittal lumbar spine MRI (an axial or coronal slice, another body region, or an empty image).",
            "pass a mid-sagittal T2-weighted slice of the lumbar spine (or the sagittal T2 volume) showing the "
            "discs from L5/S1 upwards",
        )
    loc = name_levels(
        geometry.to_slice(peaks), l5, conf, l5s1_threshold=l5s1_threshold, require_l5s1=require_l5s1
    )
    loc.candidates = len(peaks)
    named = np.array([[d.row, d.col] for d in loc.discs]).reshape(-1, 2)
    problem = _column_problem(named, np.array([d.confidence for d in loc.discs]))
    if problem is not None:
        raise InputError(
            f"No column of intervertebral discs was found above the L5/S1 candidate ({problem}); the slice does "
            "not look like a sagittal lumbar spine MRI.",
            "pass a mid-sagittal T2-weighted slice of the lumbar spine showing the discs from L5/S1 upwards",
        )
    return loc


def column_score(heat: np.ndarray, threshold: float = 0.3) -> float:
    """How clearly a slice shows an upright disc column: the L5/S1 heat of the disc named L5/S1.

    0 when the heat maps show no plausible disc column (see :func:`decode_heatmaps`) or no L5/S1.
    """
    identity = LocatorGeometry(scale_rc=(1.0, 1.0), offset_rc=(0.0, 0.0), size=heat.shape[-1])
    try:
        loc = decode_heatmaps(heat, identity, threshold=threshold, l5s1_threshold=0.0, require_l5s1=False)
    except InputError:
        return 0.0
    return float(loc.discs[0].l5s1_score) if loc.discs else 0.0
