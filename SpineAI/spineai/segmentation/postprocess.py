"""Post-processing of predicted label maps.

The network decides voxel by voxel, so a structure can come out with small detached islands (a speck of
"root_L5_left" in the psoas, a fragment of L4 inside L5). Every canonical structure the CT model predicts
is a single connected body, so by default only the largest 26-connected component of each label is
kept; the removed voxels become background. Arrays are ``(z, y, x)``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage

_CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


def keep_largest_component(labels: np.ndarray, label_values: Iterable[int] | None = None) -> np.ndarray:
    """Keep only the largest 26-connected component of each label value.

    Args:
        labels: integer label array ``(z, y, x)``; 0 is background.
        label_values: labels to clean (default: every non-zero value present).

    Returns:
        A new array of the same shape and dtype; voxels of removed components are 0.
    """
    out = np.array(labels, copy=True)
    values = np.unique(out) if label_values is None else np.asarray(sorted(set(label_values)))
    values = values[values != 0]
    if values.size == 0:
        return out
    # bounding boxes of all labels in one pass (find_objects indexes by label value - 1)
    boxes = ndimage.find_objects(np.where(np.isin(out, values), out, 0).astype(np.int64, copy=False))
    for value in values:
        box = boxes[int(value) - 1] if int(value) - 1 < len(boxes) else None
        if box is None:
            continue
        region = out[box]
        mask = region == value
        components, count = ndimage.label(mask, structure=_CONNECTIVITY_26)
        if count <= 1:
            continue
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        region[mask & (components != int(np.argmax(sizes)))] = 0
    return out


def component_counts(labels: np.ndarray) -> dict[int, int]:
    """Number of 26-connected components per non-zero label value."""
    counts: dict[int, int] = {}
    for value in np.unique(labels):
        if value == 0:
            continue
        counts[int(value)] = int(ndimage.label(labels == value, structure=_CONNECTIVITY_26)[1])
    return counts
