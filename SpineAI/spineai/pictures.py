"""Pictures for people: orthogonal slices with a label overlay, drawn with matplotlib (no display needed).

Slices are shown in radiological convention from an LPS-reoriented copy of the volume: axial with the
patient's right on the viewer's left and anterior at the top; coronal and sagittal with superior at the top
(sagittal: anterior on the viewer's left).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .anatomy import BY_LABEL
from .outputs import atomic_path


def _lps(img: sitk.Image) -> sitk.Image:
    return sitk.DICOMOrient(img, "LPS")


def label_colours_rgba(labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGBA overlay (float, 0..1) of a canonical label array; background is transparent.

    Args:
        labels: integer array of canonical label values, any shape.
        alpha: opacity of labelled pixels.

    Returns:
        array of shape ``labels.shape + (4,)``.
    """
    lut = np.zeros((256, 4), dtype=np.float32)
    for value, s in BY_LABEL.items():
        if 0 < value < 256:
            lut[value, :3] = np.asarray(s.rgb, dtype=np.float32) / 255.0
            lut[value, 3] = alpha
    return lut[np.clip(labels, 0, 255).astype(np.intp)]


def orthogonal_slices_png(
    image: sitk.Image,
    path: str | os.PathLike,
    labels: sitk.Image | None = None,
    center_lps_mm: Sequence[float] | None = None,
    window_hu: tuple[float, float] = (-250.0, 1250.0),
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a PNG with axial, coronal and sagittal slices through ``center_lps_mm`` (LPS, mm).

    Args:
        image: 3D scalar image (CT in HU, or any modality with ``window_hu`` adapted).
        path: PNG file to create (written atomically; refuses to overwrite unless ``overwrite``).
        labels: optional canonical label map on the same grid, drawn as a coloured overlay.
        center_lps_mm: slice position in physical LPS mm; default: centroid of the labels, else image centre.
        window_hu: display window (low, high) in image units.
        title: optional figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = _lps(image)
    arr = sitk.GetArrayFromImage(img).astype(np.float32)  # z, y, x  (S, P, L increasing)
    lab = sitk.GetArrayFromImage(_lps(labels)).astype(np.int32) if labels is not None else None
    sx, sy, sz = img.GetSpacing()
    if center_lps_mm is None:
        if lab is not None and lab.any():
            idx = np.argwhere(lab > 0).mean(axis=0)[::-1]
            center_lps_mm = img.TransformContinuousIndexToPhysicalPoint([float(v) for v in idx])
        else:
            center_lps_mm = img.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in img.GetSize()])
    ci = img.TransformPhysicalPointToContinuousIndex([float(v) for v in center_lps_mm])
    ix, iy, iz = (int(np.clip(round(c), 0, n - 1)) for c, n in zip(ci, img.GetSize(), strict=True))

    views = [
        ("axial", arr[iz], None if lab is None else lab[iz], sy / sx, False),
        ("coronal", arr[:, iy, :], None if lab is None else lab[:, iy, :], sz / sx, True),
        ("sagittal", arr[:, :, ix], None if lab is None else lab[:, :, ix], sz / sy, True),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 5), dpi=100)
    for ax, (name, sl, ls, aspect, flip_up) in zip(axes, views, strict=True):
        if flip_up:  # superior at the top
            sl = sl[::-1]
            ls = None if ls is None else ls[::-1]
        ax.imshow(
            sl, cmap="gray", vmin=window_hu[0], vmax=window_hu[1], aspect=aspect, interpolation="nearest"
        )
        if ls is not None:
            ax.imshow(label_colours_rgba(ls), aspect=aspect, interpolation="nearest")
        ax.set_title(name)
        ax.set_axis_off()
    axes[0].text(0.01, 0.5, "R", color="w", transform=axes[0].transAxes, fontsize=12, va="center")
    axes[0].text(0.97, 0.5, "L", color="w", transform=axes[0].transAxes, fontsize=12, va="center")
    axes[2].text(0.01, 0.5, "A", color="w", transform=axes[2].transAxes, fontsize=12, va="center")
    axes[2].text(0.97, 0.5, "P", color="w", transform=axes[2].transAxes, fontsize=12, va="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path, overwrite) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
