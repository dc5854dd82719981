"""Grading of one axial T2 slice: :func:`grade_axial` -> :class:`AxialGradingResult`.

Steps: read the working slice (:func:`~spineai.grading.axial.slices.read_axial_slice`: pictures, 2D images,
a 3D axial volume's middle slice; CT, sagittal and coronal inputs refused); optionally crop it to a region
of interest given as a box (the paper graded boxes drawn around the canal); scale it into the network's
square input (:func:`~spineai.grading.axial.model.prepare_axial_input`); the three heads give each grading's
four probabilities, the grade is the most probable one and the dichotomous grading (0-1 vs 2-3) comes
with P(2) + P(3); Grad-CAM per requested grading for the predicted grade, resampled onto the working slice
and onto the input's own geometry (:mod:`.explain`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from ...errors import InputError
from ...weights import INTENDED_USE
from .grades import AXIAL_TASK_KEYS, AXIAL_TASKS, DICHOTOMOUS_POSITIVE, GRADES, axial_task

__all__ = ["AxialGradingResult", "grade_axial"]


@dataclass
class AxialGradingResult:
    """What :func:`grade_axial` found (``to_dict`` is JSON-ready; the heat maps are images).

    Attributes:
        source: the input file, if any.
        input_kind: ``"picture"``, ``"slice"`` or ``"volume"``.
        input_size: size of the input image (SimpleITK order).
        graded_slice: for a volume, the graded axial slice (LPS z index after reorientation).
        grades: ``{ldh|lccs|lnrc: 0..3}``.
        probabilities: ``{task: {"0": p, ..., "3": p}}``.
        dichotomous: ``{task: {"p_grade_2_or_3": p, "grade_2_or_3": bool}}``.
        roi_index: the graded box ``[x0, y0, x1, y1]`` in input pixel indices, or ``None`` (whole slice).
        notes: what was decided, in words.
        model: name, version, SHA-256, file and configuration of the weights.
        gradcam_tasks: gradings explained by Grad-CAM.
        gradcam_peak_index: ``{task: input index of the map's maximum}``.
        heatmaps: ``{task: Grad-CAM image on the input's geometry}`` (float32, 0..1).
    """

    source: str | None
    input_kind: str
    input_size: list[int]
    graded_slice: int | None
    grades: dict[str, int]
    probabilities: dict[str, dict[str, float]]
    dichotomous: dict[str, dict[str, Any]]
    roi_index: list[float] | None
    notes: list[str]
    model: dict[str, Any]
    gradcam_tasks: list[str]
    gradcam_peak_index: dict[str, list[float]] = field(default_factory=dict)
    heatmaps: dict[str, sitk.Image] = field(default_factory=dict, repr=False)
    _overlay: dict[str, Any] = field(default_factory=dict, repr=False)
    intended_use: str = INTENDED_USE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without the heat-map images)."""
        return {
            "source": self.source,
            "input_kind": self.input_kind,
            "input_size": list(self.input_size),
            "graded_slice": self.graded_slice,
            "grades": dict(self.grades),
            "grade_names": {k: axial_task(k).grade_names[g] for k, g in self.grades.items()},
            "probabilities": {k: dict(v) for k, v in self.probabilities.items()},
            "dichotomous": {k: dict(v) for k, v in self.dichotomous.items()},
            "roi_index": self.roi_index,
            "notes": list(self.notes),
            "model": dict(self.model),
            "gradcam_tasks": list(self.gradcam_tasks),
            "gradcam_peak_index": {k: list(v) for k, v in self.gradcam_peak_index.items()},
            "gradings": {t.key: {"title": t.title, "grade_names": list(t.grade_names)} for t in AXIAL_TASKS},
            "intended_use": self.intended_use,
        }

    def write(self, out_dir: str | os.PathLike, overwrite: bool = False) -> dict[str, Path]:
        """Write ``grades.json`` and, per explained grading, ``gradcam_<task>.nii.gz`` (on the input's
        geometry, for a colour overlay in 3D Slicer) and ``gradcam_<task>.png`` into ``out_dir`` (new or
        empty unless ``overwrite``).

        Returns:
            ``{name: path}`` of the files written.
        """
        from ...io import write_image
        from ...outputs import prepare_output_dir, write_json
        from .explain import write_overlay_png

        folder = prepare_output_dir(out_dir, overwrite=overwrite)
        written = {"grades_json": write_json(folder / "grades.json", self.to_dict(), overwrite=overwrite)}
        overlay = self._overlay
        for key, image in self.heatmaps.items():
            written[f"gradcam_{key}"] = write_image(
                image, folder / f"gradcam_{key}.nii.gz", overwrite=overwrite
            )
            if overlay:
                grade = self.grades[key]
                written[f"overlay_{key}"] = write_overlay_png(
                    overlay["slice"],
                    overlay["maps"].get(key),
                    folder / f"gradcam_{key}.png",
                    f"Grad-CAM {axial_task(key).title}: grade {grade} ({axial_task(key).grade_names[grade]})",
                    boxes=overlay.get("boxes", ()),
                    overwrite=overwrite,
                )
        return written


def _tasks(gradcam: Sequence[str] | None) -> list[str]:
    if not gradcam:
        return []
    out = []
    for key in gradcam:
        if key not in AXIAL_TASK_KEYS:
            raise InputError(
                f"Unknown grading '{key}' for Grad-CAM.", f"choose from {', '.join(AXIAL_TASK_KEYS)}"
            )
        out.append(key)
    return out


def grade_axial(
    image: str | os.PathLike | sitk.Image | np.ndarray,
    *,
    weights: str | os.PathLike | None = None,
    gradcam: Sequence[str] | None = AXIAL_TASK_KEYS,
    slice_index: int | None = None,
    roi: Sequence[float] | None = None,
    check_sagittal_picture: bool = True,
    threads: int | None = 1,
) -> AxialGradingResult:
    """Grade LDH, LCCS and LNRC on an axial T2 slice at a lumbar disc level.

    Args:
        image: a file (PNG/JPG, NIfTI, NRRD, MHA, DICOM), a ``SimpleITK.Image`` (2D or 3D) or a 2D array
            ``(rows, cols)`` in the radiological display (anterior at the top, patient's right on the left).
        weights: model weights (``.safetensors`` with its card); ``None``: the shipped demo model.
        gradcam: gradings to explain (``"ldh"``, ``"lccs"``, ``"lnrc"``); ``None`` or empty for none.
        slice_index: for a 3D volume, the axial slice to grade (default: the middle one, noted).
        roi: optional region of interest ``[x0, y0, x1, y1]`` in input pixel indices (x = column); the
            crop is graded instead of the whole slice.
        check_sagittal_picture: refuse 2D pictures on which a column of discs (a sagittal slice) is found.
        threads: PyTorch threads while grading (restored afterwards); ``None`` leaves the setting alone.

    Returns:
        An :class:`AxialGradingResult`.

    Raises:
        InputError: CT, sagittal/coronal input, too small or stretched slices, an empty ROI, unknown gradings.
        WeightsError: missing or tampered weights.
    """
    from ..model import torch_threads
    from .explain import gradcam_maps, input_map_to_working
    from .model import GRADCAM_LAYER, AxialGraderNet, load_axial_model, prepare_axial_input
    from .slices import crop_to_box, read_axial_slice

    tasks = _tasks(gradcam)
    net, card = load_axial_model(weights)
    ws = read_axial_slice(image, slice_index=slice_index, check_sagittal_picture=check_sagittal_picture)
    notes = list(ws.notes)
    work = ws.array
    r0 = c0 = 0
    roi_index = None
    if roi is not None:
        work, r0, c0 = crop_to_box(ws, roi)
        roi_index = [float(v) for v in roi]
        notes.append(
            f"graded the region of interest {[round(v, 1) for v in roi_index]} (input pixel indices)"
        )
    size = int(net.config["input_size"])
    x, geo = prepare_axial_input(work, size)
    batch = x[None, None].astype(np.float32)
    with torch_threads(threads):
        with torch.no_grad():
            logits = net(torch.from_numpy(batch))
        split = {k: torch.softmax(v, dim=1).numpy()[0] for k, v in AxialGraderNet.split(logits).items()}
        grades = {k: int(np.argmax(p)) for k, p in split.items()}
        maps_working: dict[str, np.ndarray] = {}
        heatmaps: dict[str, sitk.Image] = {}
        peaks: dict[str, list[float]] = {}
        for i, key in enumerate(AXIAL_TASK_KEYS):
            if key not in tasks:
                continue
            index = i * len(GRADES) + grades[key]
            m = gradcam_maps(net, batch, [index], layer=GRADCAM_LAYER)[0]
            crop_map = input_map_to_working(m, geo, work.shape)
            full = np.zeros(ws.array.shape, dtype=np.float32)
            full[r0 : r0 + work.shape[0], c0 : c0 + work.shape[1]] = crop_map
            maps_working[key] = full
            heatmaps[key] = ws.map_on_input(full)
            peak = np.unravel_index(int(np.argmax(full)), full.shape)
            peaks[key] = ws.input_index((float(peak[0]), float(peak[1])))
    from ..disc_detection import normalise_slice

    boxes = []
    if roi_index is not None:
        boxes.append(((r0, c0, r0 + work.shape[0] - 1, c0 + work.shape[1] - 1), "ROI"))
    result = AxialGradingResult(
        source=ws.source,
        input_kind=ws.kind,
        input_size=[int(s) for s in ws.image.GetSize()],
        graded_slice=ws.slice_index if ws.kind == "volume" else None,
        grades=grades,
        probabilities={
            k: {str(g): float(v) for g, v in zip(GRADES, p, strict=True)} for k, p in split.items()
        },
        dichotomous={
            k: {
                "p_grade_2_or_3": float(sum(p[g] for g in DICHOTOMOUS_POSITIVE)),
                "grade_2_or_3": bool(grades[k] in DICHOTOMOUS_POSITIVE),
            }
            for k, p in split.items()
        },
        roi_index=roi_index,
        notes=notes,
        model={
            "name": card.name,
            "version": card.version,
            "sha256": card.sha256,
            "weights_file": card.weights_file,
            "config": dict(net.config),
        },
        gradcam_tasks=tasks,
        gradcam_peak_index=peaks,
        heatmaps=heatmaps,
    )
    result._overlay = {"slice": normalise_slice(ws.array), "maps": maps_working, "boxes": boxes}
    return result
