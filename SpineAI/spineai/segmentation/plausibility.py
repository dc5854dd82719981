"""Anatomical plausibility of a predicted label map: warnings when a segmentation cannot be right.

A network can fail silently on CTs unlike those it was trained on (the shipped phantom-trained weights on
patient CT, for one), and a wrong segmentation drawn in colour looks as convincing as a right one. A few
facts hold for every lumbosacral spine whatever its size, pose or pathology, and are checked here on the
1 mm working grid (axis 0 points toward the head):

- **order**: the vertebrae follow each other from the head down, L1 above L2 ... above L5 above S1, and
  each disc lies between its two vertebrae (centroids along the cranio-caudal axis);
- **height**: no lumbar vertebra, processes included, is taller than ``MAX_VERTEBRA_HEIGHT_MM`` along the
  cranio-caudal axis (adult lumbar vertebrae are about 35-55 mm high with their processes, a tilted one a
  little more; twice that means one name spread over two vertebrae or more);
- **size**: neighbouring lumbar vertebrae have similar volumes: the larger of two neighbours is at most
  ``MAX_NEIGHBOUR_VOLUME_RATIO`` times the smaller (a vertebra cut by the edge of the field of view is
  exempt).

Each broken fact gives one plain-words warning naming the structures; the result is kept (nothing is
refused), because the user may still want to look at it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .. import anatomy

#: the tallest a lumbar vertebra (body and processes, in any pose) can be along the cranio-caudal axis, mm:
#: about two vertebrae; more means one name spread over several vertebrae
MAX_VERTEBRA_HEIGHT_MM = 100.0
#: the most two neighbouring lumbar vertebrae's volumes can differ (ratio larger / smaller)
MAX_NEIGHBOUR_VOLUME_RATIO = 2.5
#: structures smaller than this (mm3) are not checked (specks are left to the field-of-view warnings)
MIN_CHECKED_MM3 = 1000.0
#: order tolerance along the cranio-caudal axis, mm (centroids of neighbours may be this close)
ORDER_TOLERANCE_MM = 2.0

ADVICE = (
    "the segmentation cannot be right; the model was probably not trained on CTs like this one: check it "
    "slice by slice before any measurement, or use weights trained on such CTs (spineai train segmentation)"
)


def plausibility_warnings(labels: np.ndarray, spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0)) -> list[str]:
    """Plain-words warnings for anatomically impossible predictions (see the module docstring).

    Args:
        labels: canonical label array ``(z, y, x)`` whose axis 0 points toward the head (the LPS working
            grid of :func:`~spineai.segmentation.data.to_working_grid`).
        spacing_zyx: voxel size in mm.

    Returns:
        Warnings (empty when every check passes); each ends with what to do.
    """
    spacing = np.asarray(spacing_zyx, dtype=float)
    voxel_mm3 = float(np.prod(spacing))
    order = [n for n in anatomy.VERTEBRAE_ORDER if n in anatomy.BY_NAME]
    values = {n: anatomy.structure(n).label for n in order}
    discs = {s.name: s.label for s in anatomy.structures_of_kind("disc")}
    present = np.bincount(labels.ravel(), minlength=256)
    big = {n: v for n, v in {**values, **discs}.items() if present[v] * voxel_mm3 >= MIN_CHECKED_MM3}
    if not big:
        return []
    index = list(big.values())
    centres = ndimage.center_of_mass(np.ones_like(labels, dtype=np.uint8), labels, index)
    z_mm = {n: float(c[0]) * spacing[0] for n, c in zip(big, centres, strict=True)}
    boxes = ndimage.find_objects(labels, max_label=max(index))
    problems: list[str] = []

    # order along the cranio-caudal axis (higher z = more cranial)
    vertebrae = [n for n in order if n in big]
    for upper, lower in zip(vertebrae, vertebrae[1:], strict=False):
        if z_mm[upper] < z_mm[lower] - ORDER_TOLERANCE_MM:
            problems.append(
                f"{upper} lies below {lower} ({z_mm[lower] - z_mm[upper]:.0f} mm; vertebrae follow each other "
                "from the head down)"
            )
    for name in discs:
        if name not in big:
            continue
        upper, lower = name.split("_")[1:3]
        if (
            upper in big
            and lower in big
            and not (z_mm[lower] - ORDER_TOLERANCE_MM <= z_mm[name] <= z_mm[upper] + ORDER_TOLERANCE_MM)
        ):
            problems.append(f"{name} does not lie between {upper} and {lower}")

    # height and neighbour volumes of the lumbar vertebrae (the sacrum is larger by nature)
    lumbar = [n for n in vertebrae if anatomy.structure(n).kind == "vertebra"]
    for name in lumbar:
        box = boxes[big[name] - 1]
        height = (box[0].stop - box[0].start) * spacing[0]
        if height > MAX_VERTEBRA_HEIGHT_MM:
            problems.append(
                f"{name} is {height:.0f} mm high (one name spread over several vertebrae: a lumbar vertebra "
                "is about 35-55 mm high with its processes)"
            )
    edge = {n for n in lumbar if _touches_edge(boxes[big[n] - 1], labels.shape)}
    for a, b in zip(lumbar, lumbar[1:], strict=False):
        if a in edge or b in edge or anatomy.VERTEBRAE_ORDER.index(b) - anatomy.VERTEBRAE_ORDER.index(a) != 1:
            continue
        va, vb = float(present[big[a]]), float(present[big[b]])
        ratio = max(va, vb) / min(va, vb)
        if ratio > MAX_NEIGHBOUR_VOLUME_RATIO:
            problems.append(
                f"{a} and {b} differ {ratio:.1f}-fold in volume ({va * voxel_mm3 / 1000:.0f} and "
                f"{vb * voxel_mm3 / 1000:.0f} ml; neighbouring vertebrae are of similar size)"
            )
    if not problems:
        return []
    return [f"The segmentation is anatomically implausible: {'; '.join(problems)}. Fix: {ADVICE}."]


def _touches_edge(box: tuple[slice, ...], shape: Sequence[int]) -> bool:
    """Whether a bounding box reaches the first or last plane of the volume along any axis."""
    return any(s.start == 0 or s.stop >= n for s, n in zip(box, shape, strict=True))
