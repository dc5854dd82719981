"""Grad-CAM of the axial and stenosis classifiers, mapped onto the working slice, and overlay pictures.

Grad-CAM (MONAI :class:`monai.visualize.GradCAM`) is computed on the last convolutional stage
(``backbone.layer4``) for one output index per input (the predicted grade of the grading explained),
upsampled bilinearly to the network input. MONAI's default post-processing maps (min, max) to (1, 0),
inverting the map; here the ReLU-ed map is kept and divided by its own maximum, so 1 marks the region
that raised the predicted grade's score most and 0 no positive evidence (the same convention as the
sagittal grader's maps). The map is then resampled from the network input onto the working slice
(:func:`input_map_to_working`) and from there onto the input's own geometry
(:meth:`~spineai.grading.axial.slices.AxialSlice.map_on_input`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["gradcam_maps", "input_map_to_working", "write_overlay_png"]


def gradcam_maps(
    net: torch.nn.Module, x: np.ndarray, class_indices: Sequence[int], layer: str = "backbone.layer4"
) -> np.ndarray:
    """Grad-CAM of each input for one output index each.

    Args:
        net: the classifier (evaluated in eval mode; its mode is restored).
        x: ``(n, 1, rows, cols)`` float32 inputs.
        class_indices: the output index to explain, one per input.
        layer: the target layer's name.

    Returns:
        ``(n, rows, cols)`` float32 maps in [0, 1] (zeros where the output had no positive evidence).
    """
    from monai.visualize import GradCAM

    cam = GradCAM(nn_module=net, target_layers=layer, postprocessing=lambda m: m)
    out = np.zeros((len(x), x.shape[-2], x.shape[-1]), dtype=np.float32)
    was_training = net.training
    net.eval()
    try:
        with torch.enable_grad():
            for i, idx in enumerate(class_indices):
                t = torch.from_numpy(np.ascontiguousarray(x[i : i + 1], dtype=np.float32))
                m = np.asarray(cam(x=t, class_idx=int(idx)).detach().cpu().numpy(), dtype=np.float32)[0, 0]
                m = np.maximum(m, 0.0)
                top = float(m.max())
                out[i] = m / top if top > 0 else 0.0
    finally:
        net.train(was_training)
        net.zero_grad(set_to_none=True)
    return out


def input_map_to_working(input_map: np.ndarray, geometry: Any, working_shape: tuple[int, int]) -> np.ndarray:
    """A map on the network input resampled onto the working slice (bilinear; 0 outside the input).

    Args:
        input_map: ``(S, S)`` map.
        geometry: the ``LocatorGeometry`` returned with the input (``input = scale * working + offset``).
        working_shape: ``(rows, cols)`` of the working slice.
    """
    from scipy import ndimage

    rr, cc = np.mgrid[0 : working_shape[0], 0 : working_shape[1]].astype(np.float64)
    ij = geometry.to_input(np.stack([rr, cc], axis=-1))
    return ndimage.map_coordinates(
        np.asarray(input_map, dtype=np.float32), [ij[..., 0], ij[..., 1]], order=1, mode="constant", cval=0.0
    ).astype(np.float32)


def write_overlay_png(
    slice_normalised: np.ndarray,
    heat: np.ndarray | None,
    path: str | os.PathLike,
    title: str,
    boxes: Sequence[tuple[Sequence[float], str]] = (),
    overwrite: bool = False,
) -> Path:
    """PNG of a working slice (radiological display) with a heat map and labelled boxes.

    Args:
        slice_normalised: ``(rows, cols)`` in [0, 1].
        heat: ``(rows, cols)`` in [0, 1], or ``None``.
        path: the PNG file (written atomically; not overwritten unless ``overwrite``).
        title: figure title.
        boxes: ``((row0, col0, row1, col1), label)`` in working pixels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...outputs import atomic_path

    rows, cols = slice_normalised.shape
    fig = plt.figure(figsize=(6.5 * cols / max(rows, cols), 6.5 * rows / max(rows, cols) / 0.92), dpi=110)
    ax = fig.add_axes((0.0, 0.0, 1.0, 0.92))
    ax.imshow(slice_normalised, cmap="gray", vmin=0, vmax=1, interpolation="bilinear")
    if heat is not None:
        ax.imshow(
            np.ma.masked_less_equal(heat, 0.02),
            cmap="jet",
            vmin=0,
            vmax=1,
            alpha=0.45,
            interpolation="bilinear",
        )
    for (r0, c0, r1, c1), label in boxes:
        ax.plot([c0, c1, c1, c0, c0], [r0, r0, r1, r1, r0], color="yellow", linewidth=0.8)
        if label:
            ax.text(
                c0,
                r0 - 1,
                label,
                color="yellow",
                fontsize=6,
                va="bottom",
                bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "linewidth": 0},
            )
    ax.text(2, rows - 3, "R", color="white", fontsize=8)
    ax.text(cols - 8, rows - 3, "L", color="white", fontsize=8)
    ax.set_axis_off()
    fig.suptitle(f"{title} - research use only", fontsize=8)
    with atomic_path(path, overwrite) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
