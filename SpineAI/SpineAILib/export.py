"""Corrected cases exported for retraining, laid out for ``spineai train segmentation --data FOLDER``.

Layout (one folder per case, never overwriting an existing one)::

    FOLDER/<case>/ct.nii.gz          the CT volume (HU), LPS geometry from Slicer's IJKToRAS
    FOLDER/<case>/labels.nii.gz      the corrected label map in canonical label values (uint16)
    FOLDER/<case>/labels.json        its sidecar (names, colours, terminology)
    FOLDER/<case>/provenance.json    who exported it, when, from which segmentation, which segments changed

The case folder is first written under a temporary name and renamed when complete, so an interrupted
export never leaves a half-written case that training would pick up.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .frames import geometry_from_ijk_to_ras
from .labels import LabelSidecar

CT_NAME = "ct.nii.gz"
LABELS_NAME = "labels.nii.gz"
SIDECAR_NAME = "labels.json"
PROVENANCE_NAME = "provenance.json"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_case_name(name: str) -> str:
    """A folder-safe case name: letters, digits, ``._-``; other runs become ``_`` (never empty)."""
    cleaned = _UNSAFE.sub("_", name.strip()).strip("._")
    return cleaned or "case"


def free_case_dir(root: str | os.PathLike, name: str) -> Path:
    """``root/<name>``, or ``root/<name>_2``, ``_3``... : the first that does not exist yet."""
    root = Path(root)
    base = safe_case_name(name)
    candidate = root / base
    n = 2
    while candidate.exists():
        candidate = root / f"{base}_{n}"
        n += 1
    return candidate


def compose_label_array(
    masks: Mapping[str, np.ndarray], label_values: Mapping[str, int], shape: Sequence[int] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Merge per-segment binary masks into one label array with canonical values.

    Args:
        masks: ``{segment name: boolean or 0/1 array [k, j, i]}`` on the reference grid.
        label_values: ``{segment name: label value}`` (see ``labels.label_values_for_segments``).
        shape: the grid shape when ``masks`` is empty.

    Returns:
        ``(labels uint16 [k, j, i], overlapping names)``. Where segments overlap, the later one in
        ``masks`` wins; the names involved in any overlap are reported so the user can be told.
    """
    if masks:
        shapes = {np.shape(m) for m in masks.values()}
        if len(shapes) != 1:
            raise ValueError(
                f"Segment masks have different shapes {sorted(shapes)}; export them on one reference grid."
            )
        grid = shapes.pop()
    elif shape is not None:
        grid = tuple(int(s) for s in shape)
    else:
        raise ValueError("No segments to export and no grid shape given.")
    out = np.zeros(grid, dtype=np.uint16)
    overlapping: set[str] = set()
    owner = np.full(grid, -1, dtype=np.int32)
    names = list(masks)
    for idx, name in enumerate(names):
        if name not in label_values:
            raise ValueError(f"No label value for segment '{name}'.")
        m = np.asarray(masks[name]) > 0
        clash = m & (owner >= 0)
        if clash.any():
            overlapping.add(name)
            overlapping.update(names[i] for i in np.unique(owner[clash]).tolist())
        out[m] = int(label_values[name])
        owner[m] = idx
    return out, sorted(overlapping)


def edited_structures(
    original: np.ndarray, corrected: np.ndarray, names_by_label: Mapping[int, str]
) -> list[str]:
    """Structures whose voxels differ between the engine's label map and the corrected one.

    Args:
        original, corrected: label arrays on the same grid.
        names_by_label: names of the label values that may appear (others are reported as ``label_<v>``).

    Returns:
        sorted names of structures that gained or lost voxels.
    """
    a = np.asarray(original)
    b = np.asarray(corrected)
    if a.shape != b.shape:
        raise ValueError(f"Label maps differ in shape {a.shape} vs {b.shape}; compare them on one grid.")
    diff = a != b
    if not diff.any():
        return []
    changed = set(np.unique(a[diff]).tolist()) | set(np.unique(b[diff]).tolist())
    changed.discard(0)
    return sorted(names_by_label.get(int(v), f"label_{int(v)}") for v in changed)


def engine_labels_on_grid(
    path: str | os.PathLike, ijk_to_ras: np.ndarray, shape: Sequence[int], tolerance_mm: float = 1e-3
) -> np.ndarray | None:
    """The engine's label map as an array ``[k, j, i]`` when it lies exactly on the export grid, else ``None``.

    The engine writes its labels on the input CT's grid; if the user resampled or cropped the CT since,
    the grids differ and the changed structures cannot be told voxel by voxel.
    """
    import SimpleITK as sitk

    p = Path(path)
    if not p.is_file():
        return None
    img = sitk.ReadImage(str(p))
    if tuple(reversed(img.GetSize())) != tuple(int(s) for s in shape):
        return None
    want = geometry_from_ijk_to_ras(ijk_to_ras)
    same = (
        np.allclose(img.GetOrigin(), want.origin, atol=tolerance_mm)
        and np.allclose(img.GetSpacing(), want.spacing, atol=tolerance_mm)
        and np.allclose(img.GetDirection(), want.direction, atol=1e-4)
    )
    return sitk.GetArrayFromImage(img) if same else None


def write_label_map(
    path: str | os.PathLike,
    labels: np.ndarray,
    ijk_to_ras: np.ndarray,
    sidecar: LabelSidecar,
) -> tuple[Path, Path]:
    """Write a canonical label map (NIfTI, uint16, LPS geometry) and its ``.json`` sidecar for the engine.

    Used to hand the current (possibly corrected) segmentation to ``spineai measure``, ``plan`` and
    ``levels``, which read the label values through the sidecar.

    Args:
        path: the label map file, ending in ``.nii.gz`` (the sidecar goes beside it: ``labels.json``).
        labels: label values ``[k, j, i]``, 0..65535.
        ijk_to_ras: the grid's 4x4 IJKToRAS matrix (Slicer), converted to LPS geometry.
        sidecar: names, colours and terminology of every value present.

    Returns:
        ``(label map, sidecar)`` paths.

    Raises:
        ValueError: not 3D, values out of range, a value the sidecar does not name, a wrong file ending.
    """
    import SimpleITK as sitk

    from spineai.outputs import atomic_path, write_json

    target = Path(path)
    if not target.name.endswith(".nii.gz"):
        raise ValueError(f"'{target.name}' must end in .nii.gz (its sidecar is named after it).")
    arr = np.asarray(labels)
    if arr.ndim != 3:
        raise ValueError(f"The label map must be 3D [k, j, i], got shape {arr.shape}.")
    if arr.size and (arr.min() < 0 or arr.max() > 65535):
        raise ValueError("Label values must be 0..65535.")
    unnamed = sorted(set(np.unique(arr).tolist()) - {0} - set(sidecar.by_label()))
    if unnamed:
        raise ValueError(f"Label values {unnamed} have no name in the sidecar; name every segment.")
    geometry = geometry_from_ijk_to_ras(ijk_to_ras)
    img = sitk.Cast(sitk.GetImageFromArray(arr.astype(np.uint16)), sitk.sitkUInt16)
    img.SetOrigin(geometry.origin)
    img.SetSpacing(geometry.spacing)
    img.SetDirection(geometry.direction)
    side = target.with_name(target.name[: -len(".nii.gz")] + ".json")
    with atomic_path(target) as tmp:
        sitk.WriteImage(img, str(tmp), useCompression=True)
    write_json(side, sidecar.to_dict())
    return target, side


def provenance_record(
    source_segmentation: str,
    edited_segments: Iterable[str],
    engine_version: str,
    input_volume: str,
    user: str | None = None,
    when: _dt.datetime | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Who exported the case, when, from what, and which segments an annotator changed.

    Args:
        source_segmentation: name (and where known, the engine output folder) of the segmentation.
        edited_segments: structures changed relative to the engine's output (empty: exported as predicted).
        engine_version: ``spineai.__version__`` of the engine that produced the prediction.
        input_volume: name of the CT volume.
        user: exporting user's login name (default: the current user).
        when: export time (default: now, in UTC, ISO 8601).
    """
    when = when or _dt.datetime.now(_dt.timezone.utc)
    edited = sorted(set(edited_segments))
    if user is None:
        try:
            user = getpass.getuser()
        except (OSError, KeyError):
            user = "unknown"
    record: dict[str, Any] = {
        "exported_by": user,
        "exported_at": when.isoformat(timespec="seconds"),
        "input_volume": input_volume,
        "source_segmentation": source_segmentation,
        "edited_segments": edited,
        "corrected": bool(edited),
        "engine_version": engine_version,
        "tool": "SpineAI Slicer extension, SpineAISegmentation module",
    }
    if extra:
        record.update(dict(extra))
    return record


def write_training_case(
    root: str | os.PathLike,
    case_name: str,
    ct: np.ndarray,
    labels: np.ndarray,
    ijk_to_ras: np.ndarray,
    sidecar: LabelSidecar,
    provenance: Mapping[str, Any],
) -> Path:
    """Write one case folder for retraining (see the module docstring for the layout).

    Args:
        root: the training data folder (created if needed).
        case_name: wanted case folder name; a free variant is used if it exists.
        ct: CT voxels ``[k, j, i]`` in HU.
        labels: canonical label values ``[k, j, i]`` on the same grid.
        ijk_to_ras: the volume's 4x4 IJKToRAS matrix (Slicer), converted to LPS geometry for NIfTI.
        sidecar: names and colours of the label values present.
        provenance: see :func:`provenance_record`.

    Returns:
        the case folder that was created.
    """
    import SimpleITK as sitk

    from spineai.outputs import write_json

    ct = np.asarray(ct)
    labels = np.asarray(labels)
    if ct.ndim != 3 or labels.shape != ct.shape:
        raise ValueError(f"CT {ct.shape} and label map {labels.shape} must be 3D arrays of the same shape.")
    if labels.min() < 0 or labels.max() > 65535:
        raise ValueError("Label values must be 0..65535.")
    present = set(np.unique(labels).tolist()) - {0}
    unnamed = sorted(present - set(sidecar.by_label()))
    if unnamed:
        raise ValueError(f"Label values {unnamed} have no name in the sidecar; name every exported segment.")
    geometry = geometry_from_ijk_to_ras(ijk_to_ras)

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    dest = free_case_dir(root, case_name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=root))
    try:
        for array, name, pixel in (
            (ct, CT_NAME, None),
            (labels.astype(np.uint16), LABELS_NAME, sitk.sitkUInt16),
        ):
            img = sitk.GetImageFromArray(array)
            if pixel is not None:
                img = sitk.Cast(img, pixel)
            img.SetOrigin(geometry.origin)
            img.SetSpacing(geometry.spacing)
            img.SetDirection(geometry.direction)
            sitk.WriteImage(img, str(tmp / name), useCompression=True)
        write_json(tmp / SIDECAR_NAME, sidecar.to_dict())
        write_json(tmp / PROVENANCE_NAME, dict(provenance))
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def is_training_case(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds the three files training reads."""
    p = Path(folder)
    return all((p / n).is_file() for n in (CT_NAME, LABELS_NAME, SIDECAR_NAME))
