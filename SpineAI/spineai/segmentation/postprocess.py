"""Post-processing of predicted label maps.

The network decides voxel by voxel, so a structure can come out with small detached islands (a speck of
"root_L5_left" in the psoas, a fragment of L4 inside L5). Every canonical structure the CT model predicts
is a single connected body, so by default only the largest 26-connected component of each label is
kept; the removed voxels become background. The network also tells lumbar vertebrae apart less surely
than discs (the bodies look alike), so the vertebrae are then named by the discs around them
(:func:`relabel_vertebrae_by_discs`). Arrays are ``(z, y, x)``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage

from .. import anatomy

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


#: a disc smaller than this (voxels of the 1 mm working grid, i.e. mm3) is too small to define a plane
MIN_DISC_VOXELS = 500
#: share of a disc's in-plane radius (from its centre) within which vertebra voxels count as vertebral body
BODY_RADIUS_FRACTION = 0.8
#: vertebral-body voxels closer than this to a disc plane (voxels) are not used as seeds
SEED_MARGIN = 2.0
#: a vertebra with fewer body seeds than this share of its own voxels keeps its voxels as they are
MIN_SEED_SHARE = 0.05


def _disc_planes(labels: np.ndarray) -> list[tuple[str, str, np.ndarray, np.ndarray, float]]:
    """``(upper, lower, centre, normal toward the head, in-plane radius)`` of each labelled disc.

    Coordinates are voxel indices ``(z, y, x)`` of an isotropic grid in canonical orientation (array axis 0
    toward the head, as on the LPS working grid). The normal is the disc's smallest principal axis (a disc
    is a thin slab), oriented toward the head. Discs are returned in anatomical order from the head down.
    """
    planes = []
    for disc in anatomy.structures_of_kind("disc"):
        coords = np.argwhere(labels == disc.label)
        if len(coords) < MIN_DISC_VOXELS:
            continue
        upper, lower = disc.name[len("disc_") :].split("_")
        centre = coords.mean(axis=0)
        _, _, axes = np.linalg.svd(coords - centre, full_matrices=False)
        normal = axes[2] if axes[2][0] >= 0 else -axes[2]
        in_plane = (coords - centre) - np.outer((coords - centre) @ normal, normal)
        radius = float(np.quantile(np.linalg.norm(in_plane, axis=1), 0.9))
        planes.append((upper, lower, centre, normal, radius))
    return planes


def relabel_vertebrae_by_discs(labels: np.ndarray) -> np.ndarray:
    """Give every lumbar vertebra voxel the name of the vertebra its discs say it belongs to.

    A network that names discs reliably may still spread one vertebra's name over its neighbour (the
    vertebral bodies look alike, while each disc has its own place above the sacrum). The discs then
    decide: each vertebral-body voxel (within ``BODY_RADIUS_FRACTION`` of the in-plane radius
    of its nearest disc, measured from that disc's axis) takes the name of the vertebra on its side of that
    disc (the disc ``disc_L3_L4`` has L3 above and L4 below); the posterior elements then take the name of
    the body they are connected to, by flooding the union of lumbar vertebra voxels from the named bodies
    (nearest body along the bone, :func:`skimage.segmentation.watershed` on a flat image). The sacrum, the
    other structures and the bone/background boundary are not changed; only names move between lumbar
    vertebrae. Nothing changes when no disc is labelled or when the discs are not in anatomical order from
    the head down. A voxel not connected to any body keeps its name. A vertebra whose body the network
    missed (fewer body seeds than ``MIN_SEED_SHARE`` of its voxels) is left out of the flooding and keeps
    its voxels: its neighbours do not take it over.

    Args:
        labels: canonical label array ``(z, y, x)`` on an isotropic grid whose axis 0 points toward the head
            (the 1 mm LPS working grid of :func:`~spineai.segmentation.data.to_working_grid`).

    Returns:
        A new array; equal to ``labels`` except for the names of lumbar vertebra voxels.
    """
    from skimage.segmentation import watershed

    out = np.array(labels, copy=True)
    lumbar = {s.label: s.name for s in anatomy.structures_of_kind("vertebra")}
    discs = [s.label for s in anatomy.structures_of_kind("disc")]
    box = ndimage.find_objects(np.isin(out, [*lumbar, *discs]).astype(np.uint8))
    if not box:
        return out
    region = out[box[0]]  # a view: the changes below land in ``out``
    planes = _disc_planes(region)
    if not planes:
        return out
    # the discs' centres must descend (along the spine) in their anatomical order
    axis = np.mean([p[3] for p in planes], axis=0)
    heights = [float(p[2] @ axis) for p in planes]
    if any(b >= a for a, b in zip(heights, heights[1:], strict=False)):
        return out
    union = np.isin(region, list(lumbar))
    if not union.any():
        return out
    coords = np.argwhere(union)
    centres = np.array([p[2] for p in planes])
    nearest = np.argmin(((coords[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2), axis=1)
    markers = np.zeros(region.shape, dtype=np.int32)
    for index, (upper, lower, centre, normal, radius) in enumerate(planes):
        mine = coords[nearest == index]
        offset = mine - centre
        height = offset @ normal
        off_axis = np.linalg.norm(offset - np.outer(height, normal), axis=1)
        body = off_axis <= BODY_RADIUS_FRACTION * radius
        for name, side in ((upper, height > SEED_MARGIN), (lower, height < -SEED_MARGIN)):
            value = anatomy.structure(name).label
            if value not in lumbar:
                continue  # the sacrum keeps its own voxels
            seeds = mine[body & side]
            markers[seeds[:, 0], seeds[:, 1], seeds[:, 2]] = value
    # a vertebra whose body the network missed (no seed, or only a sliver of one) keeps what it has
    for value in lumbar:
        own = union & (region == value)
        if own.any() and (markers == value).sum() < MIN_SEED_SHARE * own.sum():
            union &= ~own
            markers[own] = 0
    if not markers.any():
        return out
    flooded = watershed(np.zeros(region.shape, dtype=np.uint8), markers=markers, mask=union)
    reached = union & (flooded > 0)
    region[reached] = flooded[reached]
    return out
