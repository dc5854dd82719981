"""Phantom label maps with their level names scrambled, and how well a numbering recovered them.

A numbering is tested from a truth label map whose names carry no information: every vertebra (and the
sacrum) gets another vertebra's label, every disc another disc's, every root another root's (any level,
either side), drawn at random; only *which voxels form one structure* survives. :func:`level_agreement`
then compares a relabelled map with the truth, structure by structure.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk

from ..anatomy import BY_LABEL


def scramble_level_labels(labels: sitk.Image, seed: int) -> sitk.Image:
    """``labels`` with vertebra/sacrum, disc and root label values permuted at random within their kind.

    The vertebrae and the sacrum draw from every canonical vertebra label (C1..L6, S1), so the scrambled
    names may even be cervical; other structures (iliac bones, dural sac) keep their labels.
    """
    arr = sitk.GetArrayViewFromImage(labels)
    present = set(np.flatnonzero(np.bincount(np.asarray(arr).ravel(), minlength=256)).tolist())
    rng = np.random.default_rng([int(seed), 0x5C4A])
    lut = np.arange(256, dtype=np.uint8)
    for kinds in (("vertebra", "sacrum"), ("disc",), ("root",)):
        pool = [s.label for s in BY_LABEL.values() if s.kind in kinds and s.label < 256]
        here = sorted(v for v in pool if v in present)
        new = rng.permutation(pool)[: len(here)]
        for a, b in zip(here, new, strict=True):
            lut[a] = b
    out = sitk.GetImageFromArray(lut[np.asarray(arr)])
    out.CopyInformation(labels)
    return out


def level_agreement(truth: sitk.Image, result: sitk.Image, min_ml: float = 1.0) -> dict[str, Any]:
    """Compare a relabelled map with the truth: per truth vertebra/disc/root (at least ``min_ml``), the
    name most of its voxels carry in ``result``.

    Returns:
        ``{"vertebrae": {name: got}, "discs": {...}, "roots": {...}, "vertebrae_correct": bool,
        "discs_correct": bool, "roots_correct": bool, "wrong": [(truth, got), ...]}``; ``got`` is ``None``
        for background.
    """
    t = sitk.GetArrayViewFromImage(truth)
    r = sitk.GetArrayViewFromImage(result)
    ml = float(np.prod(truth.GetSpacing())) / 1000.0
    out: dict[str, Any] = {"vertebrae": {}, "discs": {}, "roots": {}, "wrong": []}
    for value in np.flatnonzero(np.bincount(np.asarray(t).ravel(), minlength=256)):
        s = BY_LABEL.get(int(value))
        if s is None or s.kind not in ("vertebra", "sacrum", "disc", "root"):
            continue
        mask = np.asarray(t) == value
        if mask.sum() * ml < min_ml and s.kind != "root":
            continue
        vals, counts = np.unique(np.asarray(r)[mask], return_counts=True)
        top = int(vals[np.argmax(counts)])
        got = BY_LABEL[top].name if top in BY_LABEL else None
        key = {"vertebra": "vertebrae", "sacrum": "vertebrae", "disc": "discs", "root": "roots"}[s.kind]
        out[key][s.name] = got
        if got != s.name:
            out["wrong"].append((s.name, got))
    for key in ("vertebrae", "discs", "roots"):
        out[f"{key}_correct"] = all(k == v for k, v in out[key].items())
    return out
