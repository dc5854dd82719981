"""Write the numbering into the label map: vertebrae, discs and nerve roots renamed by position (LPS, mm).

* **Vertebrae**: every voxel of an instance (and of its small fragments) gets the canonical label of its
  new name; vertebra voxels in pieces too small to be a vertebra (< 1 ml, not attached to a named
  vertebra's label) become background.
* **Discs**: each connected disc component is named after the two vertebrae nearest to it (both within
  6 mm; they must be neighbours in the column): ``disc_<upper>_<lower>``; when only one vertebra touches it
  (the other is cut by the field of view), after that vertebra and its neighbour above or below, by the
  side of its body the disc lies on.
* **Nerve roots**: the voxels of each root label form one root, or two when at least a fifth of them lie
  on each side of the midline (one label used for both sides); its side is the side of the midline it lies
  on (along the patient's left-right axis: LPS +x is the patient's left), whatever the input called it.
  Its **exit** is the median of the cranial quarter of its voxels that lie lateral of the midline by 0.7 of
  the nearest vertebral body's half-width (at least 16 mm) up to 8 mm beyond that body's border: beside
  the bodies, where a root leaves the foramen under the pedicle of its own vertebra, before it descends.
  It belongs to the lowest vertebra whose body centre lies above its exit (or less than 3 mm below), or to
  ``S1`` when the exit lies below the top of the sacrum, or when the root does not reach that band in view
  but lies mostly below the top of the sacrum.
* Other structures (iliac bones, dural sac, sub-regions, 3-class ``nerve``) are copied unchanged.

A disc or root whose new name has no canonical structure (e.g. ``disc_T11_T12``, ``root_L2_left``) becomes
background, with a note.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy.spatial import cKDTree

from ..anatomy import BY_LABEL, BY_NAME, SIDES, vertebra_above, vertebra_below
from .instances import Grid

#: band of lateral distance from the midline in which a root leaves the foramen: from the larger of 16 mm and
#: 0.7 of the nearest vertebral body's half-width (clear of the lateral recess, where the roots descend) to
#: 8 mm beyond that body's border
ROOT_EXIT_BAND_MM = (16.0, 32.0)
ROOT_EXIT_BAND_FRACTION = 0.7
ROOT_EXIT_BEYOND_BODY_MM = 8.0
#: a disc must lie this close (mm) to both vertebrae it is named after
DISC_CONTACT_MM = 6.0


def _tree(points: np.ndarray) -> cKDTree:
    step = max(1, len(points) // 20000)
    return cKDTree(points[::step])


def relabel(
    image: sitk.Image,
    array: np.ndarray,
    grid: Grid,
    levels: list[Any],
    discs: list[dict[str, Any]],
    sacrum_top: float | None,
) -> tuple[sitk.Image, list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """The relabelled canonical image, the disc and root renamings, and notes.

    Args:
        image: the input canonical label image (geometry source).
        array: its voxels (z, y, x).
        grid: its grid.
        levels: :class:`~spineai.levels.labelling.VertebraLevel` list, cranial to caudal (sacrum last when
            present), each with its instance.
        discs: disc components (label, flat indices, centre).
        sacrum_top: ``axis . p`` (mm) of the top of the sacrum along the lowest mobile vertebra's axis, or
            ``None``.
    """
    notes: list[str] = []
    out = np.zeros(array.shape, dtype=np.uint8)
    flat_out = out.reshape(-1)
    kinds = np.zeros(256, dtype=object)
    for value, s in BY_LABEL.items():
        if value < 256:
            kinds[value] = s.kind
    # keep everything that is not a vertebra, sacrum, disc or root
    for value in np.flatnonzero(np.bincount(array.ravel().astype(np.int64), minlength=256)):
        if value == 0:
            continue
        s = BY_LABEL.get(int(value))
        if s is None or s.kind in ("vertebra", "sacrum", "disc", "root") or s.name == "bone":
            continue
        flat_out[array.ravel() == value] = value
    # vertebrae
    for lv in levels:
        inst = lv.instance
        flat_out[inst.flat] = lv.label
        if inst.fragments.size:
            flat_out[inst.fragments] = lv.label
    # discs
    disc_info = []
    named = [lv for lv in levels if lv.instance is not None]
    trees = [_tree(lv.instance.points) for lv in named]
    for d in discs:
        pts = grid.points(d["flat"][:: max(1, d["flat"].size // 3000)])
        dist = np.array([float(np.median(t.query(pts, k=1)[0])) for t in trees])
        order = np.argsort(dist)
        entry: dict[str, Any] = dict(input_name=d["input_name"], centre_lps=d["centre"].tolist(), name=None)
        contact = DISC_CONTACT_MM + float(grid.spacing.max()) * 2
        pair = None
        if len(order) >= 2 and dist[order[1]] <= contact:
            i, j = sorted(order[:2])
            if j == i + 1:
                pair = (named[i].name, named[j].name)
        elif len(order) >= 1 and dist[order[0]] <= contact:
            # one neighbour in view (the other cut by the field of view): above or below it?
            lv = named[order[0]]
            names = [x.name for x in named]
            above = float((d["centre"] - lv.instance.body_centre()) @ lv.instance.axis) > 0
            other = (
                vertebra_above(lv.name, present=names) if above else vertebra_below(lv.name, present=names)
            )
            if other is not None:
                pair = (other, lv.name) if above else (lv.name, other)
        if pair is not None:
            name = f"disc_{pair[0]}_{pair[1]}"
            if name in BY_NAME:
                flat_out[d["flat"]] = BY_NAME[name].label
                entry["name"] = name
            else:
                notes.append(f"a disc between {pair[0]} and {pair[1]} has no canonical name: left out")
        else:
            notes.append(
                f"disc component '{d['input_name']}' lies between no two neighbouring vertebrae: left out"
            )
        disc_info.append(entry)
    # roots
    root_info = _relabel_roots(array, grid, levels, sacrum_top, flat_out, notes)
    result = sitk.GetImageFromArray(out)
    result.CopyInformation(image)
    return result, disc_info, root_info, notes


def _relabel_roots(
    array: np.ndarray,
    grid: Grid,
    levels: list[Any],
    sacrum_top: float | None,
    flat_out: np.ndarray,
    notes: list[str],
) -> list[dict[str, Any]]:
    mobile = [lv for lv in levels if lv.name != "S1"]
    if not mobile:
        return []
    centres = np.array([lv.instance.body_centre() for lv in mobile])
    axes = np.array([lv.instance.axis for lv in mobile])
    lats = np.array([lv.instance.lateral for lv in mobile])
    half_widths = np.array([lv.instance.body_half_width() for lv in mobile])
    low_axis = axes[-1]
    info = []
    values = [s.label for s in BY_LABEL.values() if s.kind == "root"]
    present = set(np.flatnonzero(np.bincount(array.ravel().astype(np.int64), minlength=256)).tolist())
    for value in values:
        if value not in present:
            continue
        flat = np.flatnonzero(array.ravel() == value)
        pts = grid.points(flat)
        # nearest level (along its axis) of every voxel, and the lateral offset from its body centre
        t_rel = np.stack([(pts - c) @ a for c, a in zip(centres, axes, strict=True)], axis=1)
        x_rel = np.stack([(pts - c) @ lat for c, lat in zip(centres, lats, strict=True)], axis=1)
        nearest = np.argmin(np.abs(t_rel), axis=1)
        x = x_rel[np.arange(len(pts)), nearest]
        band_lo = np.maximum(ROOT_EXIT_BAND_MM[0], ROOT_EXIT_BAND_FRACTION * half_widths[nearest])
        band_hi = half_widths[nearest] + ROOT_EXIT_BEYOND_BODY_MM
        # one root per side of the midline; a few voxels across it (where the root leaves the dural sac)
        # belong to the root on the other side
        n_left = int(np.count_nonzero(x > 0))
        split = min(n_left, len(x) - n_left) >= 0.2 * len(x)
        for side in SIDES:
            sx = 1.0 if side == "left" else -1.0
            if split:
                mine = sx * x > 0
            else:
                main_left = n_left >= len(x) - n_left
                mine = np.full(len(x), main_left == (side == "left"))
            if np.count_nonzero(mine) == 0:
                continue
            entry: dict[str, Any] = dict(input_name=BY_LABEL[value].name, side=side, name=None)
            band = mine & (sx * x >= band_lo) & (sx * x <= band_hi)
            below_sacrum = sacrum_top is not None and float(np.mean(pts[mine] @ low_axis < sacrum_top)) >= 0.6
            if np.count_nonzero(band) < 3 and below_sacrum:
                # a root running mostly inside the sacrum whose exit is out of view: an S1 root
                name = f"root_S1_{side}"
                flat_out[flat[mine]] = BY_NAME[name].label
                entry["name"] = name
                info.append(entry)
                continue
            if np.count_nonzero(band) < 3:
                notes.append(
                    f"root '{BY_LABEL[value].name}' ({side} part) does not reach the foramen in view: left out"
                )
                flat_out[flat[mine]] = 0
                info.append(entry)
                continue
            # the cranial quarter of the band: where the root passes under the pedicle, before it descends
            t_band = pts[band] @ low_axis
            top = pts[band][t_band >= np.percentile(t_band, 75)]
            exit_pt = np.median(top, axis=0)
            owner = None
            for k in range(len(mobile)):
                if float((exit_pt - centres[k]) @ axes[k]) < 3.0:
                    owner = k
            name = None
            if sacrum_top is not None and float(exit_pt @ low_axis) < sacrum_top - 2.0:
                name = f"root_S1_{side}"
            elif owner is not None:
                name = f"root_{mobile[owner].name}_{side}"
            entry["exit_lps"] = exit_pt.tolist()
            if name is not None and name in BY_NAME:
                flat_out[flat[mine]] = BY_NAME[name].label
                entry["name"] = name
            else:
                flat_out[flat[mine]] = 0
                notes.append(
                    f"root '{BY_LABEL[value].name}' ({side} part) exits where no canonical root is named"
                    + (f" ({name})" if name else "")
                    + ": left out"
                )
            info.append(entry)
    # two inputs renamed to the same root: report it (the voxels are merged under one name)
    names = [e["name"] for e in info if e["name"]]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        notes.append(f"several root labels were renamed to the same root ({', '.join(dup)}); they are merged")
    return info
