"""Grad-CAM of the disc classifier (MONAI's :class:`monai.visualize.GradCAM`) mapped onto the slice.

For each disc, Grad-CAM is computed on the last convolutional stage of the classifier
(``backbone.layer4``, :data:`~spineai.grading.classifier.GRADCAM_LAYER`) for the grade the model predicted
for the chosen grading (one output of the concatenated logits), upsampled bilinearly to the 64 x 96
patch. MONAI's default post-processing maps (min, max) to (1, 0), i.e. it *inverts* the map; here the
ReLU-ed map is kept as is and divided by its own maximum, so 1 marks the region that raised the
predicted grade's score most and 0 marks no positive evidence. Each disc's map is then pasted back
through its patch rectangle (bilinear) onto the working slice; where patches overlap the larger value
is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .classifier import GRADCAM_LAYER, PatchFrame, SagittalGraderNet

__all__ = ["disc_gradcams", "paste_patch_maps"]


def disc_gradcams(grader: SagittalGraderNet, patches: np.ndarray, class_indices: Sequence[int]) -> np.ndarray:
    """Grad-CAM of each patch for one output index each.

    Args:
        grader: the classifier (left in eval mode).
        patches: ``(n, 1, rows, cols)`` float32 patches.
        class_indices: output index (in the concatenated logits) to explain, one per patch.

    Returns:
        ``(n, rows, cols)`` maps in [0, 1] (all zeros where the grade had no positive evidence).
    """
    from monai.visualize import GradCAM

    cam = GradCAM(nn_module=grader, target_layers=GRADCAM_LAYER, postprocessing=lambda x: x)
    maps = np.zeros((len(patches), patches.shape[-2], patches.shape[-1]), dtype=np.float32)
    was_training = grader.training
    grader.eval()
    try:
        with torch.enable_grad():
            for i, idx in enumerate(class_indices):
                x = torch.from_numpy(np.ascontiguousarray(patches[i : i + 1], dtype=np.float32))
                m = cam(x=x, class_idx=int(idx))
                arr = np.asarray(m.detach().cpu().numpy(), dtype=np.float32)[0, 0]
                arr = np.maximum(arr, 0.0)
                top = float(arr.max())
                maps[i] = arr / top if top > 0 else 0.0
    finally:
        grader.train(was_training)
        grader.zero_grad(set_to_none=True)
    return maps


def paste_patch_maps(maps: np.ndarray, frames: Sequence[PatchFrame], shape: tuple[int, int]) -> np.ndarray:
    """Paste patch maps ``(n, rows, cols)`` back onto a working slice of ``shape`` (max where they overlap)."""
    from scipy import ndimage

    out = np.zeros(shape, dtype=np.float32)
    for m, frame in zip(maps, frames, strict=True):
        corners = frame.corners()
        r0 = max(int(np.floor(corners[:, 0].min())) - 1, 0)
        r1 = min(int(np.ceil(corners[:, 0].max())) + 2, shape[0])
        c0 = max(int(np.floor(corners[:, 1].min())) - 1, 0)
        c1 = min(int(np.ceil(corners[:, 1].max())) + 2, shape[1])
        if r1 <= r0 or c1 <= c0:
            continue
        rr, cc = np.mgrid[r0:r1, c0:c1]
        ij = frame.to_patch(np.stack([rr, cc], axis=-1).astype(np.float64))
        inside = frame.contains(np.stack([rr, cc], axis=-1).astype(np.float64))
        values = ndimage.map_coordinates(m, [ij[..., 0], ij[..., 1]], order=1, mode="nearest")
        values = np.where(inside, values, 0.0)
        out[r0:r1, c0:c1] = np.maximum(out[r0:r1, c0:c1], values)
    return out
