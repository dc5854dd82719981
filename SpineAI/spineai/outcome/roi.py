"""Region of interest of the outcome model: 13 sagittal slices of the lumbar, sacral and paraspinal-muscle region.

Kim et al. (2022) fed their 3D CNN "13 slices of 100 x 40 resolution" cropped to "the lumbar, sacral, and
paraspinal muscles". Here that region is:

* cranio-caudal: from above the L3 body (the L3-L4 disc plus 1.15 disc spacings) to below the S1 body
  (the L5-S1 disc minus 1.0 disc spacing), i.e. L3..S1 with the L2-L3 and S1 margins;
* antero-posterior: from 22 mm in front of the most anterior disc centre to 80 mm behind the most
  posterior one (vertebral bodies, canal, posterior elements and the paraspinal muscles);
* left-right: 13 sagittal planes 4 mm apart (48 mm), centred on the spine's midline, which covers the
  neural foramina on both sides.

The box is axis-aligned in LPS and resampled (linear interpolation after Gaussian anti-aliasing) to an
array of shape ``(13, 100, 40)`` = (D: sagittal slices from the patient's left to right, H: superior to
inferior, W: anterior to posterior). Its grid is kept as a SimpleITK reference image so maps computed on
the ROI (Grad-CAM) can be resampled back onto the input volume.

The discs that place the box come from :func:`locate_discs` (an intensity localiser on the mid-sagittal
plane), from a phantom's truth (:func:`roi_box_from_truth`) or the box is given by hand (``bounds_mm``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..io import validate_image

__all__ = [
    "MIN_USABLE_SLICES",
    "ROI_SHAPE",
    "ROI_SLICE_SPACING_MM",
    "DiscLocalisation",
    "RoiBox",
    "RoiResult",
    "check_sagittal_t2",
    "extract_roi",
    "locate_discs",
    "normalise_roi",
    "roi_box_from_discs",
    "roi_box_from_truth",
    "roi_reference",
]

#: ROI array shape (D sagittal slices, H cranio-caudal, W antero-posterior), as in Kim et al. 2022
ROI_SHAPE: tuple[int, int, int] = (13, 100, 40)
#: spacing (mm) between the 13 sagittal planes of the ROI
ROI_SLICE_SPACING_MM = 4.0
#: fewest sagittal slices with signal an input must have
MIN_USABLE_SLICES = 13
#: disc names from caudal to cranial, as the localiser assigns them
DISC_ORDER: tuple[str, ...] = ("L5-S1", "L4-L5", "L3-L4", "L2-L3", "L1-L2", "T12-L1", "T11-T12")

_ROI_TOP_SPACINGS = 1.15
_ROI_BOTTOM_SPACINGS = 1.0
_ROI_ANTERIOR_MM = 22.0
_ROI_POSTERIOR_MM = 80.0


# ---------------------------------------------------------------------------------------------------------
# input checks
def _axis_letter(vec: Sequence[float]) -> str:
    v = np.asarray(vec, dtype=float)
    k = int(np.argmax(np.abs(v)))
    return ("x", "y", "z")[k]


def check_sagittal_t2(image: sitk.Image, name: str = "MRI") -> sitk.Image:
    """Refuse what the outcome model cannot read; return the volume reoriented to LPS (float32).

    Refused with an :class:`InputError` naming the problem and the fix: a 2D image; a CT (Hounsfield
    statistics: many voxels below -200 and bright bone); an axial or coronal series (the thick slice axis
    is not left-right); fewer than 13 sagittal slices with signal.

    Args:
        image: the volume, any orientation (SimpleITK, LPS geometry).
        name: what it is, for messages.
    """
    if image.GetDimension() != 3:
        validate_image(image, dims=3, name=name)  # raises the engine's 2D-vs-3D message
    validate_image(image, dims=3, name=name)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"The {name} has {image.GetNumberOfComponentsPerPixel()} values per voxel.",
            "pass a single-channel (grey) sagittal T2 volume",
        )
    arr = sitk.GetArrayViewFromImage(image)
    sample = np.asarray(arr[:: max(1, arr.shape[0] // 16)], dtype=np.float32)
    frac_low = float(np.mean(sample < -200.0))
    p99 = float(np.percentile(sample, 99.0))
    if frac_low > 0.02 and p99 > 150.0:
        raise InputError(
            f"The {name} looks like a CT in Hounsfield units ({100 * frac_low:.0f}% of voxels below -200, "
            f"99th percentile {p99:.0f}); the outcome model reads sagittal T2-weighted MRI.",
            "load the patient's lumbar sagittal T2 (turbo spin echo) MRI series instead; CT is read by "
            "'spineai segment'",
        )
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    thick = int(np.argmax(spacing))
    anisotropic = spacing[thick] > 1.25 * float(np.min(spacing))
    if anisotropic:
        axis = _axis_letter(direction[:, thick])
        if axis != "x":
            plane = "axial" if axis == "z" else "coronal"
            raise InputError(
                f"The {name} is an {plane} series (its {spacing[thick]:.1f} mm slice axis runs "
                f"{'superior-inferior' if axis == 'z' else 'antero-posterior'}); the outcome model needs "
                "sagittal slices.",
                "load the sagittal T2 series of the same study (slices stacked from the patient's left to "
                "right); a 3D isotropic acquisition also works",
            )
    lps = sitk.DICOMOrient(sitk.Cast(image, sitk.sitkFloat32), "LPS")
    usable = _usable_slices(lps)
    if usable.sum() < MIN_USABLE_SLICES:
        raise InputError(
            f"The {name} has only {int(usable.sum())} sagittal slice(s) with signal; the outcome model needs "
            f"at least {MIN_USABLE_SLICES} (its input is 13 sagittal slices across the spine).",
            "load the complete sagittal T2 series (all slices, typically 13-20 covering both neural "
            "foramina), not a single slice or a partial export",
        )
    return lps


def _usable_slices(lps: sitk.Image) -> np.ndarray:
    """Boolean per sagittal (x) slice of an LPS volume: does it hold signal?"""
    a = sitk.GetArrayViewFromImage(lps)  # [z, y, x]
    per_slice = np.percentile(np.asarray(a, dtype=np.float32).reshape(-1, a.shape[2]), 95.0, axis=0)
    top = float(np.max(per_slice)) if per_slice.size else 0.0
    return per_slice > max(1e-6, 0.1 * top)


# ---------------------------------------------------------------------------------------------------------
# localiser
@dataclass
class DiscLocalisation:
    """Disc centres found on the mid-sagittal plane (LPS, mm).

    Attributes:
        discs: ``{"L5-S1": [x, y, z], "L4-L5": [...], ...}``, caudal first.
        midline_x_mm: LPS x of the mid-sagittal plane.
        method: ``"intensity"`` (this localiser), ``"truth"`` (phantom) or ``"manual"``.
        scores: detector response per disc (relative units).
        warnings: anything the user should check.
    """

    discs: dict[str, list[float]]
    midline_x_mm: float
    method: str = "intensity"
    scores: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


_WORK_MM = 1.5  # working in-plane resolution of the localiser (mm)
_CANAL_TO_DISC_MM = 24.0  # canal centre line to disc centre, along the normal (typical adult lumbar spine)


def _box1d(a: np.ndarray, size: int, axis: int) -> np.ndarray:
    from scipy.ndimage import uniform_filter1d

    return uniform_filter1d(a, max(1, int(size)), axis=axis, mode="nearest")


def _canal_path(img: np.ndarray) -> tuple[np.ndarray, float]:
    """Column (anterior-posterior position, px) of the CSF-filled canal in every row, by dynamic programming.

    ``img`` is a normalised mid-sagittal plane, rows superior first, columns anterior first, at
    :data:`_WORK_MM`. Per row, the canal is a bright band (half-width 3-8 mm: CSF plus posterior epidural
    fat) brighter than both flanks, whose posterior side is tissue, not air (which rules out the
    subcutaneous fat). The path maximises the summed score with at most 2 px of shift per row (a column
    tilted up to ~60 degrees) and a small smoothness penalty.

    Returns:
        ``(columns per row (float px), mean score along the path)``.
    """
    n_rows, n_cols = img.shape
    score = np.full(img.shape, -1.0, dtype=np.float32)
    flank = max(2, int(round(6.0 / _WORK_MM)))
    gap = max(1, int(round(2.0 / _WORK_MM)))
    air_far = int(round(18.0 / _WORK_MM))
    cols = np.arange(n_cols)
    for half_mm in (3.0, 4.5, 6.0, 8.0):
        hw = max(1, int(round(half_mm / _WORK_MM)))
        core = _box1d(img, 2 * hw + 1, axis=1)
        side = _box1d(img, flank, axis=1)
        ant = np.take(side, np.clip(cols - hw - gap - flank // 2, 0, n_cols - 1), axis=1)
        post = np.take(side, np.clip(cols + hw + gap + flank // 2, 0, n_cols - 1), axis=1)
        behind = np.take(_box1d(img, 2 * flank, axis=1), np.clip(cols + hw + air_far, 0, n_cols - 1), axis=1)
        s = core - np.maximum(ant, post)
        s = np.where(np.minimum(post, behind) < 0.1, -1.0, s)  # air behind: subcutaneous fat, not the canal
        score = np.maximum(score, s.astype(np.float32))
    score = np.maximum(score, -0.2)
    max_shift, penalty = 2, 0.02
    acc = score[0].copy()
    back = np.zeros(img.shape, dtype=np.int16)
    for r in range(1, n_rows):
        best = np.full(n_cols, -np.inf, dtype=np.float32)
        arg = np.zeros(n_cols, dtype=np.int16)
        for d in range(-max_shift, max_shift + 1):
            shifted = np.full(n_cols, -np.inf, dtype=np.float32)
            if d >= 0:
                shifted[d:] = acc[: n_cols - d] if d else acc
            else:
                shifted[:d] = acc[-d:]
            shifted -= penalty * abs(d)
            better = shifted > best
            best[better] = shifted[better]
            arg[better] = d
        acc = best + score[r]
        back[r] = arg
    path = np.zeros(n_rows, dtype=np.int64)
    path[-1] = int(np.argmax(acc))
    for r in range(n_rows - 1, 0, -1):
        path[r - 1] = path[r] - back[r, path[r]]
    return path.astype(float), float(np.mean(score[np.arange(n_rows), path]))


def _disc_profile_response(samples: np.ndarray) -> np.ndarray:
    """Disc response along the vertebral column from intensity samples ``[arc position (1/mm), depth]``.

    Whatever the disc's signal (bright healthy nucleus, dark degenerated disc), the disc space is where
    the intensity changes: marrow -> endplate -> disc -> endplate -> marrow, while the vertebral bodies
    above and below are flat. The response is the edge energy (mean absolute derivative along the column,
    averaged over the depth lines) in 5 mm windows 3 mm above and below the point, the smaller of the two
    (a disc has an endplate on each side; a single edge is not a disc), minus the larger of the energies
    13 mm above and below (inside the neighbouring bodies).
    """
    from scipy.ndimage import gaussian_filter1d

    smooth = gaussian_filter1d(samples, 1.0, axis=0, mode="nearest")
    grad = np.abs(np.gradient(smooth, axis=0)).mean(axis=1)
    half = _box1d(grad, 5, axis=0)
    h = 3  # a disc has edges on both of its sides: energy in the upper AND the lower half-window
    upper = np.concatenate([np.full(h, np.inf), half[:-h]])
    lower = np.concatenate([half[h:], np.full(h, np.inf)])
    energy = np.minimum(upper, lower)
    body = _box1d(grad, 8, axis=0)
    off = 13
    above = np.concatenate([np.full(off, np.inf), body[:-off]])
    below = np.concatenate([body[off:], np.full(off, np.inf)])
    resp = energy - np.maximum(above, below)
    return np.where(np.isfinite(resp), resp, 0.0)


def _best_chain_1d(pos: np.ndarray, sc: np.ndarray, resp: np.ndarray) -> tuple[list[int], float]:
    """Best chain of disc candidates along the column (positions in mm, cranial first).

    Consecutive discs are 22-55 mm apart, each step is 0.72-1.38 times the previous one, and the response
    halfway between two discs (a vertebral body) is low.
    The score is the sum of responses minus a penalty per disc (weak peaks are left out). Returns the
    candidate indices caudal first and the chain score.
    """
    n = len(pos)
    penalty = 0.2 * float(np.percentile(sc, 90)) if n else 0.0
    best = sc - penalty
    prev = np.full(n, -1)
    step = np.zeros(n)
    for i in range(n):
        for j in range(i):
            dist = pos[i] - pos[j]
            if not 22.0 <= dist <= 55.0:
                continue
            if prev[j] >= 0 and not 0.72 <= dist / step[j] <= 1.38:  # vertebral heights change gradually
                continue
            mid = int(round(0.5 * (pos[i] + pos[j])))
            if resp[mid] > 0.5 * min(sc[i], sc[j]):
                continue
            cand = best[j] + sc[i] - penalty
            if cand > best[i]:
                best[i], prev[i], step[i] = cand, j, dist
    if n == 0:
        return [], 0.0
    end = int(np.argmax(best))
    chain = [end]
    while prev[chain[-1]] >= 0:
        chain.append(int(prev[chain[-1]]))
    return chain, float(best[end])


def _locate_on_slice(plane: np.ndarray) -> tuple[list[tuple[float, float]], list[float], float]:
    """Disc centres (row_mm, col_mm from the top-anterior voxel; caudal first) on one mid-sagittal plane.

    ``plane`` is at :data:`_WORK_MM`, rows superior first, columns anterior first.
    """
    from scipy.ndimage import gaussian_filter1d, map_coordinates
    from scipy.signal import find_peaks

    p1, p99 = np.percentile(plane, [1.0, 99.5])
    img = np.clip((plane - p1) / max(p99 - p1, 1e-6), 0.0, 1.5).astype(np.float32)
    path, canal_score = _canal_path(img)
    if canal_score <= 0.02:
        return [], [], 0.0
    rows = np.arange(img.shape[0], dtype=float)
    path = gaussian_filter1d(path, 6.0, mode="nearest")
    # arc length along the canal (mm), and unit tangent / anterior normal (row, col) per row
    d_col = np.gradient(path)
    seg = np.hypot(1.0, d_col)
    arc = np.concatenate([[0.0], np.cumsum(0.5 * (seg[1:] + seg[:-1]))]) * _WORK_MM
    tangent = np.stack([1.0 / seg, d_col / seg], axis=1)
    normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)  # rotate: points anterior (smaller col)
    s_grid = np.arange(0.0, arc[-1], 1.0)
    r_s = np.interp(s_grid, arc, rows)
    c_s = np.interp(s_grid, arc, path)
    n_s = np.stack([np.interp(s_grid, arc, normal[:, 0]), np.interp(s_grid, arc, normal[:, 1])], axis=1)
    depths = np.arange(16.0, 32.1, 2.0) / _WORK_MM  # 16-32 mm anterior of the canal: the column's middle
    rr = r_s[:, None] + n_s[:, :1] * depths[None, :]
    cc = c_s[:, None] + n_s[:, 1:] * depths[None, :]
    samples = map_coordinates(img, [rr.ravel(), cc.ravel()], order=1, mode="nearest").reshape(rr.shape)
    resp = np.clip(_disc_profile_response(samples), 0.0, None)
    # the dural sac ends at S1-S3: a disc less than 15 mm above the end of the CSF column is sacral (S1-S2)
    core = map_coordinates(img, [r_s, c_s], order=1, mode="nearest")
    core = _box1d(core, 9, axis=0)
    ref = float(np.percentile(core[: max(1, len(core) // 2)], 75))
    bright = _box1d((core >= 0.6 * ref).astype(np.float32), 21, axis=0) >= 0.7
    sac_end = float(np.flatnonzero(bright)[-1]) if bright.any() else float(len(core))
    resp[int(max(0.0, sac_end - 15.0)) :] = 0.0
    peaks, _ = find_peaks(resp, distance=15, height=0.1 * float(resp.max()) if resp.size else 0.0)
    if len(peaks) < 3:
        return [], [], 0.0
    chain, total = _best_chain_1d(peaks.astype(float), resp[peaks], resp)
    if len(chain) < 3:
        return [], [], 0.0
    centres = []
    scores = []
    off = _CANAL_TO_DISC_MM / _WORK_MM
    for k in chain:  # caudal first
        s_idx = int(peaks[k])
        r = r_s[s_idx] + n_s[s_idx, 0] * off
        c = c_s[s_idx] + n_s[s_idx, 1] * off
        centres.append((float(r * _WORK_MM), float(c * _WORK_MM)))
        scores.append(float(resp[s_idx]))
    return centres, scores, canal_score


def locate_discs(image: sitk.Image, *, checked: bool = False) -> DiscLocalisation:
    """Find the lumbosacral discs on a sagittal T2 volume from its intensity pattern.

    On each candidate plane (slices within 12 mm of the centre of the slab, resampled to 1.5 mm) the
    CSF-filled canal is traced (:func:`_canal_path`); the plane with the strongest canal is the midline.
    Along the column 16-32 mm in front of the canal a polarity-free disc detector
    (:func:`_disc_profile_response`) gives candidates, and the best cranio-caudal chain with plausible,
    regular spacing is kept, ignoring anything less than 15 mm above the end of the CSF column (the dural
    sac ends at S1-S3, so a disc there is the rudimentary S1-S2 disc); the disc centres are placed 24 mm in
    front of the canal. Its lowest disc is named
    L5-S1 (the fused sacrum below has no disc of that size), the others L4-L5, L3-L4, ... upwards. A
    transitional vertebra (L6, sacralised L5) shifts the names: check the result, or give the region by
    hand.

    Args:
        image: sagittal T2 volume (any orientation).
        checked: ``image`` already went through :func:`check_sagittal_t2` (LPS float32).

    Returns:
        :class:`DiscLocalisation` with at least L5-S1, L4-L5 and L3-L4.

    Raises:
        InputError: fewer than three discs found.
    """
    lps = image if checked else check_sagittal_t2(image)
    spacing = np.asarray(lps.GetSpacing())
    arr = sitk.GetArrayViewFromImage(lps)  # [z, y, x]
    usable = np.flatnonzero(_usable_slices(lps))
    centre = 0.5 * (usable[0] + usable[-1])
    half = max(1, int(round(12.0 / spacing[0])))
    step = max(1, int(round(2.0 / spacing[0])))
    candidates = [
        i
        for i in range(int(round(centre)) - half, int(round(centre)) + half + 1, step)
        if usable[0] <= i <= usable[-1]
    ]
    best: tuple[float, int, list, list] | None = None
    zoom = (spacing[2] / _WORK_MM, spacing[1] / _WORK_MM)
    from scipy.ndimage import zoom as _zoom

    avg = max(0, int(round(1.5 / spacing[0])))  # average +-1.5 mm around thin-slice planes
    for i in candidates:
        lo, hi = max(0, i - avg), min(arr.shape[2], i + avg + 1)
        plane = np.asarray(arr[:, :, lo:hi], dtype=np.float32).mean(axis=2)[::-1]  # rows: superior first
        small = _zoom(plane, zoom, order=1)
        pts, scores, total = _locate_on_slice(small)
        if len(pts) >= 3 and (best is None or total > best[0]):
            # output pixel r of scipy's corner-aligned zoom samples input row r * (n_in - 1) / (n_out - 1)
            fz = (plane.shape[0] - 1) / max(small.shape[0] - 1, 1) * spacing[2] / _WORK_MM
            fy = (plane.shape[1] - 1) / max(small.shape[1] - 1, 1) * spacing[1] / _WORK_MM
            best = (total, i, [(r * fz, c * fy) for r, c in pts], scores)
    if best is None:
        raise InputError(
            "Could not find the lumbosacral discs on the mid-sagittal plane of the MRI (fewer than three discs "
            "in a plausible column).",
            "check that the volume is a lumbar sagittal T2 covering L3 to the sacrum, or give the region by "
            "hand (--roi-mm X0 Y0 Z0 X1 Y1 Z1, LPS mm, or bounds_mm=...)",
        )
    _, i, pts, scores = best
    nz = arr.shape[0]
    z_top = lps.TransformIndexToPhysicalPoint((0, 0, nz - 1))[2]
    y_front = lps.TransformIndexToPhysicalPoint((0, 0, 0))[1]
    x_mid = lps.TransformIndexToPhysicalPoint((int(i), 0, 0))[0]
    discs: dict[str, list[float]] = {}
    disc_scores: dict[str, float] = {}
    for name, (row_mm, col_mm), s in zip(DISC_ORDER, pts, scores, strict=False):
        # rows run from the superior-most voxel centre downwards, columns from the anterior-most forwards
        z = z_top - row_mm
        y = y_front + col_mm
        discs[name] = [float(x_mid), float(y), float(z)]
        disc_scores[name] = float(s)
    warnings = []
    if len(pts) > len(DISC_ORDER):
        warnings.append(f"{len(pts)} discs in the column; only the lowest {len(DISC_ORDER)} are named")
    return DiscLocalisation(
        discs=discs, midline_x_mm=float(x_mid), method="intensity", scores=disc_scores, warnings=warnings
    )


# ---------------------------------------------------------------------------------------------------------
# the box and its grid
@dataclass(frozen=True)
class RoiBox:
    """Axis-aligned LPS box (mm) of the ROI: ``lower`` and ``upper`` corners of the sampled voxel centres."""

    lower: tuple[float, float, float]
    upper: tuple[float, float, float]
    source: str = "discs"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"lower_lps_mm": list(self.lower), "upper_lps_mm": list(self.upper), "source": self.source}


def roi_box_from_discs(
    discs: Mapping[str, Sequence[float]], midline_x_mm: float | None = None, source: str = "discs"
) -> RoiBox:
    """The L3..S1 + paraspinal-muscle box from disc centres (LPS mm); needs L3-L4, L4-L5 and L5-S1."""
    missing = [d for d in ("L3-L4", "L4-L5", "L5-S1") if d not in discs]
    if missing:
        raise InputError(
            f"The ROI needs the L3-L4, L4-L5 and L5-S1 disc centres; missing {', '.join(missing)}.",
            "locate the discs first (locate_discs) or give the region by hand (bounds_mm)",
        )
    c = {k: np.asarray(v, dtype=float) for k, v in discs.items()}
    step_up = float(np.linalg.norm(c["L3-L4"] - c["L4-L5"]))
    step_down = float(np.linalg.norm(c["L4-L5"] - c["L5-S1"]))
    lumbar = [c[k] for k in ("L3-L4", "L4-L5", "L5-S1")]
    x_mid = float(np.mean([p[0] for p in lumbar])) if midline_x_mm is None else float(midline_x_mm)
    z_top = float(c["L3-L4"][2] + _ROI_TOP_SPACINGS * step_up)
    z_bottom = float(c["L5-S1"][2] - _ROI_BOTTOM_SPACINGS * step_down)
    ys = [p[1] for p in lumbar]
    y_front = float(min(ys) - _ROI_ANTERIOR_MM)
    y_back = float(max(ys) + _ROI_POSTERIOR_MM)
    half = 0.5 * (ROI_SHAPE[0] - 1) * ROI_SLICE_SPACING_MM
    return RoiBox(lower=(x_mid - half, y_front, z_bottom), upper=(x_mid + half, y_back, z_top), source=source)


def roi_box_from_truth(truth: Mapping[str, Any]) -> RoiBox:
    """The ROI box of a phantom from its true disc centres."""
    discs = {k: v["centre_lps"] for k, v in truth["geometry"]["discs"].items()}
    return roi_box_from_discs(discs, source="truth")


def _box_from_bounds(bounds_mm: Sequence[float]) -> RoiBox:
    b = [float(v) for v in bounds_mm]
    if len(b) != 6 or not all(math.isfinite(v) for v in b):
        raise InputError(
            f"ROI bounds {bounds_mm} must be six finite numbers X0 Y0 Z0 X1 Y1 Z1 (LPS, mm).",
            "pass e.g. --roi-mm -24 -40 -90 24 110 70",
        )
    lo = np.minimum(b[:3], b[3:])
    hi = np.maximum(b[:3], b[3:])
    if np.any(hi - lo < np.array([8.0, 30.0, 50.0])):
        raise InputError(
            f"ROI bounds {bounds_mm} are too small (extent {tuple(np.round(hi - lo, 1))} mm).",
            "cover at least 8 mm left-right, 30 mm antero-posterior and 50 mm cranio-caudal: L3 to the sacrum "
            "and the paraspinal muscles",
        )
    return RoiBox(lower=tuple(lo), upper=tuple(hi), source="manual")  # type: ignore[arg-type]


#: LPS direction of the ROI grid axes (i = W: posterior, j = H: inferior, k = D: towards the patient's right)
_ROI_DIRECTION = (0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0)


def roi_reference(box: RoiBox) -> sitk.Image:
    """Empty float32 image with the ROI grid: size (W=40, H=100, D=13), orientation ``"PIR"``."""
    d, h, w = ROI_SHAPE
    lo, hi = np.asarray(box.lower), np.asarray(box.upper)
    spacing = (
        (hi[1] - lo[1]) / (w - 1),
        (hi[2] - lo[2]) / (h - 1),
        (hi[0] - lo[0]) / (d - 1) if d > 1 else ROI_SLICE_SPACING_MM,
    )
    ref = sitk.Image([w, h, d], sitk.sitkFloat32)
    ref.SetSpacing([float(s) for s in spacing])
    ref.SetDirection(_ROI_DIRECTION)
    ref.SetOrigin((float(hi[0]), float(lo[1]), float(hi[2])))  # left-most, anterior-most, superior-most
    return ref


@dataclass
class RoiResult:
    """The ROI of one volume.

    Attributes:
        array: float32, shape ``(13, 100, 40)`` (D left->right, H superior->inferior, W anterior->posterior),
            intensities scaled by :func:`normalise_roi`.
        reference: the ROI grid as a SimpleITK image (geometry only).
        box: the LPS box.
        localisation: disc centres used (``None`` for a hand-given box).
        warnings: anything the user should check (e.g. the box leaves the imaged slab).
    """

    array: np.ndarray
    reference: sitk.Image
    box: RoiBox
    localisation: DiscLocalisation | None = None
    warnings: list[str] = field(default_factory=list)


def normalise_roi(array: np.ndarray) -> np.ndarray:
    """Scale MR intensities to about [0, 1]: 0.5th percentile -> 0, 99.5th -> 1, clipped to [-0.2, 1.5]."""
    a = np.asarray(array, dtype=np.float32)
    p_lo, p_hi = np.percentile(a, [0.5, 99.5])
    return np.clip((a - p_lo) / max(float(p_hi - p_lo), 1e-6), -0.2, 1.5).astype(np.float32)


def extract_roi(
    image: sitk.Image,
    *,
    box: RoiBox | None = None,
    bounds_mm: Sequence[float] | None = None,
    localisation: DiscLocalisation | None = None,
    checked: bool = False,
) -> RoiResult:
    """Extract the ``(13, 100, 40)`` ROI from a sagittal T2 volume.

    Args:
        image: the volume (any orientation; checked with :func:`check_sagittal_t2` unless ``checked``).
        box: a ready box (e.g. :func:`roi_box_from_truth`).
        bounds_mm: a hand-given box ``(x0, y0, z0, x1, y1, z1)`` in LPS mm (the 13 slices span x0..x1).
        localisation: disc centres to build the box from (default: :func:`locate_discs`).
        checked: the image is already LPS float32 from :func:`check_sagittal_t2`.

    Returns:
        :class:`RoiResult`.
    """
    lps = image if checked else check_sagittal_t2(image)
    if box is None and bounds_mm is not None:
        box = _box_from_bounds(bounds_mm)
    if box is None:
        localisation = localisation if localisation is not None else locate_discs(lps, checked=True)
        box = roi_box_from_discs(localisation.discs, localisation.midline_x_mm, source=localisation.method)
    ref = roi_reference(box)
    warnings: list[str] = []
    # anti-aliasing: Gaussian with sigma = 0.4 x (ROI spacing - input spacing) along each LPS axis
    in_sp = np.asarray(lps.GetSpacing())
    roi_sp_lps = np.array([ref.GetSpacing()[2], ref.GetSpacing()[0], ref.GetSpacing()[1]])
    sigma = 0.4 * np.sqrt(np.clip(roi_sp_lps**2 - in_sp**2, 0.0, None))
    src = lps
    if np.any(sigma > 0.3 * in_sp):
        src = sitk.SmoothingRecursiveGaussian(lps, [float(max(s, 1e-3)) for s in sigma])
    # replicate edge slices so a box slightly wider than the slab does not sample zeros
    lo_b, hi_b = np.asarray(box.lower), np.asarray(box.upper)
    x0 = lps.TransformIndexToPhysicalPoint((0, 0, 0))[0]
    x1 = lps.TransformIndexToPhysicalPoint((lps.GetSize()[0] - 1, 0, 0))[0]
    outside = max(0.0, x0 - lo_b[0]) + max(0.0, hi_b[0] - x1)
    if outside > 0.5 * in_sp[0]:
        warnings.append(
            f"the ROI reaches {outside:.1f} mm beyond the imaged slab left-right; edge slices repeated"
        )
    pad = int(math.ceil(max(0.0, x0 - lo_b[0], hi_b[0] - x1) / in_sp[0])) + 1
    src = sitk.ZeroFluxNeumannPad(src, [pad, 0, 0], [pad, 0, 0])
    out = sitk.Resample(src, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(out)  # [D, H, W]
    return RoiResult(
        array=normalise_roi(arr), reference=ref, box=box, localisation=localisation, warnings=warnings
    )
