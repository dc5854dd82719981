"""Digitally reconstructed radiographs (DRR) of the planned C-arm view, with the triangles and the needle.

A DRR here is a **parallel** projection: for every detector pixel, the attenuation coefficient is summed
along a straight ray parallel to the view (trilinear samples every ``step_mm``),

    mu(HU) = mu_water * max(0, 1 + HU / 1000),   mu_water = 0.02 / mm (about 70 keV),

and the pixel holds the line integral ``sum mu * step`` (the log of the attenuation). Pictures window it
between its 1st and 99.7th percentiles, like the automatic brightness control of a C-arm: bone is bright,
as on a monitor set to "white bone". Without a CT a synthetic volume is made from the label map (bone 700 HU, disc 80 HU, nerve
40 HU, dural sac 10 HU, everything else water) and the picture says so.

Image axes: the detector plane is spanned by the triangles' ``lateral`` and ``up`` axes
(:mod:`spineai.planning.construct`); the picture is displayed posteroanterior, as the operator of a
prone patient sees it: the patient's left on the left, cranial at the top.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..anatomy import BY_LABEL, NERVE_KINDS
from ..outputs import atomic_path
from .construct import image_axes, triangles_in_view
from .parts import unit
from .triangles import KIND_TITLES, ForamenMeasurement, TriangleMeasurements
from .volume import BONE_KINDS_BLOCKING

MU_WATER_PER_MM = 0.02
_SYNTHETIC_HU = {"bone": 700.0, "disc": 80.0, "nerve": 40.0, "dural_sac": 10.0}


def synthetic_ct(labels: sitk.Image) -> sitk.Image:
    """A CT-like volume (HU) from a canonical label map: bone 700, disc 80, roots 40, dural sac 10, else 0."""
    arr = sitk.GetArrayViewFromImage(labels)
    lut = np.zeros(int(arr.max()) + 1 if arr.size else 1, dtype=np.float32)
    for v in range(len(lut)):
        s = BY_LABEL.get(v)
        if s is None:
            continue
        if s.kind in BONE_KINDS_BLOCKING or s.name == "bone":
            lut[v] = _SYNTHETIC_HU["bone"]
        elif s.kind == "disc":
            lut[v] = _SYNTHETIC_HU["disc"]
        elif s.kind == "dural_sac":
            lut[v] = _SYNTHETIC_HU["dural_sac"]
        elif s.kind in NERVE_KINDS or s.name == "nerve":
            lut[v] = _SYNTHETIC_HU["nerve"]
    out = sitk.GetImageFromArray(lut[np.asarray(arr)])
    out.CopyInformation(labels)
    return out


def drr(
    ct: sitk.Image,
    view: np.ndarray,
    lateral: np.ndarray,
    up: np.ndarray,
    centre: np.ndarray,
    size_mm: float = 110.0,
    pixel_mm: float = 0.7,
    step_mm: float = 1.0,
) -> np.ndarray:
    """Parallel-beam DRR of ``ct`` along ``view`` (see the module docstring).

    Args:
        ct: CT volume in HU (any orientation; LPS physical frame).
        view: LPS direction of the rays (skin -> target).
        lateral, up: unit LPS detector axes (orthogonal to ``view``).
        centre: LPS point at the centre of the picture (mm).
        size_mm: width and height of the picture (mm).
        pixel_mm: pixel size (mm).
        step_mm: sampling step along each ray (mm).

    Returns:
        (n, n) line integrals of the attenuation (dimensionless); row 0 is the top (largest ``up``), column
        0 the smallest ``lateral`` coordinate.
    """
    from scipy.ndimage import map_coordinates

    v = unit(view)
    arr = sitk.GetArrayViewFromImage(ct).astype(np.float32, copy=False)
    mu = np.clip(1.0 + arr / 1000.0, 0.0, None) * MU_WATER_PER_MM
    origin = np.asarray(ct.GetOrigin(), float)
    m = np.asarray(ct.GetDirection(), float).reshape(3, 3) @ np.diag(ct.GetSpacing())
    inv = np.linalg.inv(m)
    size = np.asarray(ct.GetSize())
    corners = np.array(
        [[a, b, c] for a in (0, size[0] - 1) for b in (0, size[1] - 1) for c in (0, size[2] - 1)]
    )
    corners_lps = origin + corners @ m.T
    t_proj = (corners_lps - centre) @ v
    ts = np.arange(float(t_proj.min()), float(t_proj.max()) + step_mm, step_mm)
    n = int(round(size_mm / pixel_mm))
    coords = (np.arange(n) - (n - 1) / 2.0) * pixel_mm
    out = np.zeros((n, n), dtype=np.float64)
    rows_per_chunk = max(1, int(2_000_000 // max(1, n * len(ts))))
    for r0 in range(0, n, rows_per_chunk):
        rows = np.arange(r0, min(n, r0 + rows_per_chunk))
        w = -coords[rows]  # row 0 at the top: largest "up"
        pix = (
            centre[None, None, :]
            + w[:, None, None] * up[None, None, :]
            + coords[None, :, None] * lateral[None, None, :]
        )
        pts = pix[:, :, None, :] + ts[None, None, :, None] * v[None, None, None, :]
        idx = (pts - origin) @ inv.T  # (rows, n, T, 3) as (i, j, k)
        sample = map_coordinates(
            mu,
            [idx[..., 2].ravel(), idx[..., 1].ravel(), idx[..., 0].ravel()],
            order=1,
            mode="constant",
            cval=0.0,
        )
        out[rows] = sample.reshape(len(rows), n, len(ts)).sum(axis=2) * step_mm
    return out


def _window(img: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(img, [1.0, 99.7])
    return float(lo), float(max(hi, lo + 1e-6))


def _to_screen(q: np.ndarray, side: str) -> np.ndarray:
    """Image coordinates (lateral, up) -> screen (x, y) of a posteroanterior display (patient left on the left)."""
    s = 1.0 if side == "left" else -1.0
    q = np.asarray(q, float).reshape(-1, 2)
    return np.column_stack([-s * q[:, 0], q[:, 1]])


def render_carm_png(
    result: TriangleMeasurements,
    fm: ForamenMeasurement,
    path: str | os.PathLike,
    overwrite: bool = False,
    size_mm: float = 110.0,
) -> Path:
    """PNG of what the C-arm shows at the planned view of one foramen, plus a perpendicular view of the needle.

    Left panel: DRR at the recommended path's view (or the safe triangle's best view) with both triangles
    outlined (Kambin green, safe blue; the accessible part filled) and the needle end-on (coaxial
    "tunnel view") at its target. Right panel: DRR along the perpendicular ``lateral`` axis, showing the
    needle from the skin entry to the target.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = fm.parts
    assert parts is not None
    kind = fm.recommended or "safe"
    tri = fm.triangles[kind]
    view = tri.best_view or tri.view
    assert view is not None
    v = view.direction_lps
    lateral, up = image_axes(parts.axis, parts.lateral_side, v)
    centre = parts.exiting.midpoint
    synthetic = result.ct is None
    ct = result.ct if result.ct is not None else synthetic_ct(result.volume.image)
    img = drr(ct, v, lateral, up, centre, size_mm=size_mm)
    tris = triangles_in_view(parts, v)
    path_obj = fm.paths.get(kind)

    fig, axes = plt.subplots(1, 2, figsize=(12, 6.2), dpi=110)
    ax = axes[0]
    half = size_mm / 2.0
    s = 1.0 if fm.side == "left" else -1.0
    shown = img[:, ::-1] if s > 0 else img  # screen x = -s * lateral
    lo_, hi_ = _window(img)
    ax.imshow(shown, cmap="gray", extent=(-half, half, -half, half), origin="upper", vmin=lo_, vmax=hi_)
    colours = {"kambin": "#33cc55", "safe": "#3399ff"}
    for k, t in tris.items():
        if t.degenerate:
            continue
        q = t.vertices_image - np.array([np.dot(lateral, centre - t.origin), np.dot(up, centre - t.origin)])
        sc = _to_screen(q, fm.side)
        ax.fill(sc[:, 0], sc[:, 1], color=colours[k], alpha=0.25 if k == kind else 0.12)
        ax.plot(
            *np.vstack([sc, sc[:1]]).T,
            color=colours[k],
            lw=1.8,
            label=f"{KIND_TITLES[k]} ({t.area_mm2:.0f} mm2 in this view)",
        )
    if path_obj is not None:
        qt = np.array(
            [[np.dot(lateral, path_obj.target_lps - centre), np.dot(up, path_obj.target_lps - centre)]]
        )
        st = _to_screen(qt, fm.side)[0]
        ax.plot(st[0], st[1], marker="o", ms=9, mfc="none", mec="#ff4030", mew=2.2)
        ax.plot(
            st[0],
            st[1],
            marker="+",
            ms=14,
            color="#ff4030",
            mew=1.6,
            label=f"needle end-on ({'safe' if path_obj.safe else 'BLOCKED'})",
        )
    ax.set_xlim(-half, half)
    ax.set_ylim(-half, half)
    ax.set_title(
        f"{fm.level} {fm.side}: C-arm {view.oblique_deg:.0f} deg oblique, tilt {view.tilt_deg:+.0f} deg\n"
        f"(level frame; patient frame {view.patient_oblique_deg:.0f} / {view.patient_tilt_deg:+.0f} deg)",
        fontsize=10,
    )
    ax.set_xlabel("patient left  <-  mm  ->  patient right")
    ax.set_ylabel("caudal  <-  mm  ->  cranial")
    ax.legend(loc="lower left", fontsize=8, framealpha=0.7)

    # perpendicular view: look along the lateral axis; screen x = along the needle's plane, y = up
    ax2 = axes[1]
    v2 = lateral
    lat2 = unit(np.cross(up, v2))
    centre2 = centre if path_obj is None else 0.5 * (path_obj.entry_lps + path_obj.target_lps)
    size2 = size_mm if path_obj is None else max(size_mm, path_obj.length_mm + 40.0)
    half2 = size2 / 2.0
    img2 = drr(ct, v2, lat2, up, centre2, size_mm=size2, pixel_mm=max(0.7, size2 / 160.0))
    lo2, hi2 = _window(img2)
    ax2.imshow(img2, cmap="gray", extent=(-half2, half2, -half2, half2), origin="upper", vmin=lo2, vmax=hi2)
    if path_obj is not None:
        pe = np.array([np.dot(lat2, path_obj.entry_lps - centre2), np.dot(up, path_obj.entry_lps - centre2)])
        pt = np.array(
            [np.dot(lat2, path_obj.target_lps - centre2), np.dot(up, path_obj.target_lps - centre2)]
        )
        reach = "reaches" if path_obj.reaches_with_standard_needle else "longer than"
        ax2.plot(
            [pe[0], pt[0]],
            [pe[1], pt[1]],
            color="#ff4030",
            lw=2.0,
            label=f"needle {path_obj.length_mm:.0f} mm ({reach} a 90 mm needle)",
        )
        ax2.plot(pt[0], pt[1], marker="o", color="#ff4030", ms=5)
        ax2.plot(pe[0], pe[1], marker="s", color="#ff4030", ms=5)
    for k, t in tris.items():
        if t.degenerate:
            continue
        pts = t.vertices_lps
        q = np.column_stack([(pts - centre2) @ lat2, (pts - centre2) @ up])
        ax2.plot(*np.vstack([q, q[:1]]).T, color=colours[k], lw=1.2)
    ax2.set_xlim(-half2, half2)
    ax2.set_ylim(-half2, half2)
    ax2.set_title("perpendicular view: needle in profile (square = skin entry, dot = target)", fontsize=10)
    ax2.set_xlabel("mm in the plane of the needle")
    ax2.set_ylabel("caudal  <-  mm  ->  cranial")
    ax2.legend(loc="lower left", fontsize=8, framealpha=0.7)
    note = "synthetic radiograph from the label map (no CT)" if synthetic else "DRR from the CT"
    fig.suptitle(f"{note}; {fm.recommendation}", fontsize=8, wrap=True)
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
