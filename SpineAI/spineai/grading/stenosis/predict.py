"""Detection and grading of stenosis in five regions of an axial slice: :func:`grade_stenosis`.

Steps: read the working slice (:func:`~spineai.grading.axial.slices.read_axial_slice`); stage 1 finds the
five regions as boxes (:mod:`.detector`) on the slice scaled into its input; a slice on which no central
canal is recognised (peak heat below ``min_confidence``) is refused; stage 2 grades each region's crop
(:mod:`.classifier`), averaging the probabilities over the crop and four slightly shifted or scaled copies
(:data:`TEST_TIME_VARIANTS`, the jitter of training); the dichotomous grading is P(moderate) + P(severe)
>= 0.5; Grad-CAM for each region's predicted grade is pasted back through its crop and resampled onto
the input's geometry (one map holding all five regions).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from ...errors import InputError
from ...weights import INTENDED_USE
from ..axial.grades import DICHOTOMOUS_POSITIVE, GRADES, REGIONS, STENOSIS_NAMES
from .classifier import CropFrame, RoiGraderNet, crop_frame, head_index, sample_crop
from .detector import decode_boxes

__all__ = ["TEST_TIME_VARIANTS", "RegionGrade", "StenosisResult", "grade_stenosis", "predict_regions"]

#: crop variants averaged at inference: (shift rows, shift cols as fractions of the crop side, scale)
TEST_TIME_VARIANTS = (
    (0.0, 0.0, 1.0),
    (0.04, 0.0, 1.0),
    (-0.04, 0.0, 1.0),
    (0.0, 0.04, 0.94),
    (0.0, -0.04, 1.06),
)


@dataclass
class RegionGrade:
    """One region's detection and grade.

    Attributes:
        region: ``central_canal``, ``lateral_recess_left``, ... (left = the patient's left).
        title: human-readable name.
        box_index: ``[x0, y0, x1, y1]`` in input pixel indices (x = column).
        box_mm: the box's corners ``[x0, y0, x1, y1]`` in LPS mm (a picture's own pixel grid).
        confidence: the detector's peak heat (0..1).
        grade: 0 normal, 1 mild, 2 moderate, 3 severe.
        probabilities: ``{"0": p, ..., "3": p}``.
        p_moderate_severe: P(2) + P(3), the dichotomous score.
        gradcam_peak_index: input index of the region's Grad-CAM maximum (when explained).
    """

    region: str
    title: str
    box_index: list[float]
    box_mm: list[float]
    confidence: float
    grade: int
    probabilities: dict[str, float]
    p_moderate_severe: float
    gradcam_peak_index: list[float] | None = None

    @property
    def moderate_or_severe(self) -> bool:
        """The dichotomous grading (normal/mild vs moderate/severe)."""
        return self.grade in DICHOTOMOUS_POSITIVE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "region": self.region,
            "title": self.title,
            "box_index": list(self.box_index),
            "box_mm": list(self.box_mm),
            "confidence": self.confidence,
            "grade": self.grade,
            "grade_name": STENOSIS_NAMES[self.grade],
            "probabilities": dict(self.probabilities),
            "p_moderate_severe": self.p_moderate_severe,
            "moderate_or_severe": self.moderate_or_severe,
            "gradcam_peak_index": self.gradcam_peak_index,
        }


@dataclass
class StenosisResult:
    """What :func:`grade_stenosis` found.

    Attributes:
        source, input_kind, input_size, graded_slice: the input (as :class:`~spineai.grading.axial.AxialGradingResult`).
        regions: the five regions in :data:`~spineai.grading.axial.grades.REGIONS` order.
        notes: what was decided, in words.
        model: name, version, SHA-256 and file of the weights.
        heatmap: Grad-CAM of every region's predicted grade on the input's geometry (float32 0..1), or ``None``.
    """

    source: str | None
    input_kind: str
    input_size: list[int]
    graded_slice: int | None
    regions: list[RegionGrade]
    notes: list[str]
    model: dict[str, Any]
    heatmap: sitk.Image | None = field(default=None, repr=False)
    _overlay: dict[str, Any] = field(default_factory=dict, repr=False)
    intended_use: str = INTENDED_USE

    def region(self, key: str) -> RegionGrade:
        """The result of region ``key``."""
        for r in self.regions:
            if r.region == key:
                return r
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without the heat-map image)."""
        return {
            "source": self.source,
            "input_kind": self.input_kind,
            "input_size": list(self.input_size),
            "graded_slice": self.graded_slice,
            "regions": [r.to_dict() for r in self.regions],
            "notes": list(self.notes),
            "model": dict(self.model),
            "grades": {"0": "normal", "1": "mild", "2": "moderate", "3": "severe"},
            "dichotomous": "normal/mild (0-1) vs moderate/severe (2-3)",
            "intended_use": self.intended_use,
        }

    def table_rows(self) -> list[dict[str, Any]]:
        """One flat row per region."""
        rows = []
        for r in self.regions:
            row: dict[str, Any] = {
                "region": r.region,
                "grade": r.grade,
                "grade_name": STENOSIS_NAMES[r.grade],
            }
            row["moderate_or_severe"] = int(r.moderate_or_severe)
            row["p_moderate_severe"] = round(r.p_moderate_severe, 4)
            for g in GRADES:
                row[f"p_{g}"] = round(r.probabilities[str(g)], 4)
            row["confidence"] = round(r.confidence, 4)
            for name, v in zip(("x0", "y0", "x1", "y1"), r.box_index, strict=True):
                row[f"box_{name}"] = round(v, 2)
            rows.append(row)
        return rows

    def write(self, out_dir: str | os.PathLike, overwrite: bool = False) -> dict[str, Path]:
        """Write ``stenosis.tsv``, ``stenosis.json`` and, with Grad-CAM, ``gradcam_stenosis.nii.gz`` (input
        geometry) and ``gradcam_stenosis.png`` (boxes, grades and map) into ``out_dir``."""
        from ...io import write_image
        from ...outputs import prepare_output_dir, write_json, write_text
        from ..axial.explain import write_overlay_png

        folder = prepare_output_dir(out_dir, overwrite=overwrite)
        rows = self.table_rows()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        written = {
            "table_tsv": write_text(folder / "stenosis.tsv", buffer.getvalue(), overwrite=overwrite),
            "table_json": write_json(folder / "stenosis.json", self.to_dict(), overwrite=overwrite),
        }
        if self.heatmap is not None:
            written["gradcam"] = write_image(
                self.heatmap, folder / "gradcam_stenosis.nii.gz", overwrite=overwrite
            )
        if self._overlay:
            boxes = [
                (tuple(b), f"{r.region.replace('_', ' ')}: {STENOSIS_NAMES[r.grade]}")
                for b, r in zip(self._overlay["boxes"], self.regions, strict=True)
            ]
            written["overlay"] = write_overlay_png(
                self._overlay["slice"],
                self._overlay.get("map"),
                folder / "gradcam_stenosis.png",
                "Stenosis: detected regions, grades and Grad-CAM",
                boxes=boxes,
                overwrite=overwrite,
            )
        return written


def predict_regions(
    model: Any,
    working_normalised: np.ndarray,
    detector_input: np.ndarray,
    geometry: Any,
    variants: bool = True,
) -> tuple[list[np.ndarray], list[float], np.ndarray, list[CropFrame]]:
    """Both stages on one prepared slice.

    Args:
        model: a :class:`~spineai.grading.stenosis.model.StenosisModel`.
        working_normalised: the working slice in [0, 1].
        detector_input: the slice in the detector's input ``(S, S)`` in [0, 1].
        geometry: its ``LocatorGeometry``.
        variants: average over :data:`TEST_TIME_VARIANTS`.

    Returns:
        ``(boxes in working pixels (row0, col0, row1, col1), confidences, probabilities (5, 4), crop frames)``.
    """
    with torch.no_grad():
        out = model.detector(torch.from_numpy(np.asarray(detector_input, np.float32)[None, None])).numpy()[0]
    boxes, conf = [], []
    for det in decode_boxes(out):
        r0, c0, r1, c1 = det.box()
        lo = geometry.to_slice(np.array([r0, c0]))
        hi = geometry.to_slice(np.array([r1, c1]))
        boxes.append(np.array([lo[0], lo[1], hi[0], hi[1]]))
        conf.append(det.confidence)
    size = int(model.grader.config["crop_size"])
    frames = [crop_frame(b, r.kind, r.side, size) for b, r in zip(boxes, REGIONS, strict=True)]
    chosen = TEST_TIME_VARIANTS if variants else TEST_TIME_VARIANTS[:1]
    crops, kinds = [], []
    for sr, sc, scale in chosen:
        for b, r in zip(boxes, REGIONS, strict=True):
            crops.append(
                sample_crop(
                    working_normalised, crop_frame(b, r.kind, r.side, size, shift=(sr, sc), scale=scale)
                )[None]
            )
            kinds.append(r.kind)
    with torch.no_grad():
        logits = RoiGraderNet.kind_logits(model.grader(torch.from_numpy(np.stack(crops))), kinds)
    probs = torch.softmax(logits, dim=1).numpy().reshape(len(chosen), len(REGIONS), len(GRADES)).mean(axis=0)
    return boxes, conf, probs, frames


def grade_stenosis(
    image: str | os.PathLike | sitk.Image | np.ndarray,
    *,
    weights: str | os.PathLike | None = None,
    gradcam: bool = True,
    slice_index: int | None = None,
    min_confidence: float = 0.2,
    check_sagittal_picture: bool = True,
    threads: int | None = 1,
) -> StenosisResult:
    """Detect the central canal, lateral recesses and neural foramina on an axial slice and grade each.

    Args:
        image: a file, a ``SimpleITK.Image`` (2D or 3D) or a 2D array ``(rows, cols)`` in the radiological
            display (anterior at the top, patient's right on the left).
        weights: model weights; ``None``: the shipped demo model.
        gradcam: compute Grad-CAM of every region's predicted grade.
        slice_index: for a 3D volume, the axial slice (default: the middle one, noted).
        min_confidence: refuse the slice when the central canal's detection heat is below this.
        check_sagittal_picture: refuse 2D pictures that show a column of discs.
        threads: PyTorch threads while grading (restored afterwards).

    Returns:
        A :class:`StenosisResult`.

    Raises:
        InputError: CT, sagittal/coronal input, too small a slice, no central canal recognised.
        WeightsError: missing or tampered weights.
    """
    from ..axial.explain import gradcam_maps
    from ..axial.model import prepare_axial_input
    from ..axial.slices import read_axial_slice
    from ..disc_detection import normalise_slice
    from ..model import torch_threads
    from .classifier import paste_crop_maps
    from .model import load_stenosis_model

    model, card = load_stenosis_model(weights)
    ws = read_axial_slice(image, slice_index=slice_index, check_sagittal_picture=check_sagittal_picture)
    notes = list(ws.notes)
    norm = normalise_slice(ws.array)
    det_in, geo = prepare_axial_input(ws.array, int(model.detector.config["size"]))
    with torch_threads(threads):
        boxes, conf, probs, frames = predict_regions(model, norm, det_in, geo)
        if conf[0] < min_confidence:
            raise InputError(
                f"No spinal canal was recognised on the slice (detection confidence {conf[0]:.2f} < {min_confidence}); "
                "it does not look like an axial lumbar MRI slice at a disc level.",
                "pass an axial T2-weighted slice through a lumbar disc (or the axial series with --slice)",
            )
        grades = [int(np.argmax(p)) for p in probs]
        heat_input = None
        working_map = None
        peaks: list[list[float] | None] = [None] * len(REGIONS)
        if gradcam:
            crops = np.stack([sample_crop(norm, f)[None] for f in frames]).astype(np.float32)
            idx = [head_index(r.kind, g) for r, g in zip(REGIONS, grades, strict=True)]
            maps = gradcam_maps(model.grader, crops, idx)
            working_map = paste_crop_maps(maps, frames, norm.shape)
            heat_input = ws.map_on_input(working_map)
            for k, (m, f) in enumerate(zip(maps, frames, strict=True)):
                i, j = np.unravel_index(int(np.argmax(m)), m.shape)
                rc = f.coordinates()[:, i, j]
                peaks[k] = ws.input_index((float(rc[0]), float(rc[1])))
    regions = []
    for k, region in enumerate(REGIONS):
        b = boxes[k]
        corners = [ws.input_index((b[0], b[1])), ws.input_index((b[2], b[3]))]
        mm = [ws.physical((b[0], b[1])), ws.physical((b[2], b[3]))]
        xs, ys = sorted([corners[0][0], corners[1][0]]), sorted([corners[0][1], corners[1][1]])
        mx, my = sorted([mm[0][0], mm[1][0]]), sorted([mm[0][1], mm[1][1]])
        regions.append(
            RegionGrade(
                region=region.key,
                title=region.title,
                box_index=[xs[0], ys[0], xs[1], ys[1]],
                box_mm=[mx[0], my[0], mx[1], my[1]],
                confidence=float(conf[k]),
                grade=grades[k],
                probabilities={str(g): float(v) for g, v in zip(GRADES, probs[k], strict=True)},
                p_moderate_severe=float(sum(probs[k][g] for g in DICHOTOMOUS_POSITIVE)),
                gradcam_peak_index=peaks[k],
            )
        )
        if conf[k] < min_confidence:
            notes.append(
                f"the {region.title} was detected with low confidence ({conf[k]:.2f}); check its box"
            )
    result = StenosisResult(
        source=ws.source,
        input_kind=ws.kind,
        input_size=[int(s) for s in ws.image.GetSize()],
        graded_slice=ws.slice_index if ws.kind == "volume" else None,
        regions=regions,
        notes=notes,
        model={
            "name": card.name,
            "version": card.version,
            "sha256": card.sha256,
            "weights_file": card.weights_file,
        },
        heatmap=heat_input,
    )
    result._overlay = {
        "slice": norm,
        "map": working_map,
        "boxes": [tuple(float(v) for v in b) for b in boxes],
    }
    return result
