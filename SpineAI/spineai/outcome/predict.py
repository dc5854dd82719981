"""Outcome prediction on one sagittal T2 volume, with a Grad-CAM heat map on the input's own grid.

:func:`predict_outcome` checks the image (:func:`~spineai.outcome.roi.check_sagittal_t2`), extracts the ROI
(localiser or a hand-given box), runs the CNN and, unless disabled, computes Grad-CAM (MONAI's
:class:`monai.visualize.GradCAM` on the last convolution layer, ``conv4``) for the predicted class (or a
chosen one), resamples the map from the ROI grid back onto the input volume (same size, spacing, origin
and direction, so 3D Slicer overlays it on the input) and returns an :class:`OutcomeResult`.
:meth:`OutcomeResult.save` writes ``outcome.json``, ``gradcam.nii.gz`` and ``gradcam_overlay.png``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..outputs import atomic_path, write_json

__all__ = [
    "DEFAULT_MODEL",
    "OutcomeModel",
    "OutcomeResult",
    "gradcam_roi",
    "load_outcome_model",
    "predict_outcome",
]

#: the shipped demo model (trained on synthetic phantoms)
DEFAULT_MODEL = "outcome_demo"
RESEARCH_USE = "Research use only; not for clinical decisions."


@dataclass
class OutcomeModel:
    """A loaded outcome network with its card.

    Attributes:
        network: :class:`~spineai.outcome.network.OutcomeCNN3D` in evaluation mode.
        card: its :class:`~spineai.weights.ModelCard`.
        weights_path: the verified weights file.
        threshold: decision threshold on the probability of a good outcome (the card's validation Youden
            threshold, else 0.5).
    """

    network: Any
    card: Any
    weights_path: Path
    threshold: float

    def summary(self) -> dict[str, Any]:
        """Name, file, threshold and the card's training data statement."""
        td = self.card.training_data
        statement = td.get("statement") if isinstance(td, dict) else td
        return {
            "name": self.card.name,
            "weights": str(self.weights_path),
            "sha256": self.card.sha256,
            "threshold": self.threshold,
            "training_data": statement,
            "intended_use": self.card.intended_use,
        }


def load_outcome_model(weights: str | os.PathLike | None = None, device: str = "cpu") -> OutcomeModel:
    """Load and verify the shipped demo model or site weights (``.safetensors`` with its ``.json`` card).

    Raises:
        WeightsError: missing, tampered or mismatched weights, or a card of another task.
    """
    from ..weights import check_card, load_card, load_into, model_weights_path
    from .network import ARCHITECTURE, TASK, build_network

    path = model_weights_path(DEFAULT_MODEL) if weights is None else Path(weights)
    card = load_card(path)
    check_card(card, TASK, ARCHITECTURE, source=str(path))
    net = build_network(card.config)
    load_into(net, path, card, device=device)
    net.eval()
    threshold = float(card.extra.get("decision_threshold", 0.5)) if isinstance(card.extra, dict) else 0.5
    return OutcomeModel(network=net, card=card, weights_path=path, threshold=threshold)


def gradcam_roi(network: Any, roi: np.ndarray, class_index: int) -> np.ndarray:
    """Grad-CAM of ``class_index`` (0 poor, 1 good) on one ROI ``(13, 100, 40)``, upsampled to the ROI, in [0, 1].

    Uses :class:`monai.visualize.GradCAM` with ``target_layers="conv4"`` (the last convolution + ReLU).
    An all-zero map (no positive evidence) stays zero.
    """
    import torch
    from monai.visualize import GradCAM

    from .network import GRADCAM_LAYER

    network.eval()
    x = torch.from_numpy(np.asarray(roi, dtype=np.float32))[None, None]
    cam = GradCAM(nn_module=network, target_layers=GRADCAM_LAYER, postprocessing=lambda a: a)
    with torch.enable_grad():
        raw = cam(x, class_idx=int(class_index))
    m = raw.detach().cpu().numpy()[0, 0].astype(np.float32)
    m = np.clip(np.nan_to_num(m, nan=0.0), 0.0, None)
    top = float(m.max())
    return m / top if top > 0 else m


@dataclass
class OutcomeResult:
    """Prediction for one volume (JSON-serialisable with :meth:`to_dict`).

    Attributes:
        probability_good: probability of a good outcome (>= 50 % NRS-11 reduction at 2 months).
        threshold: decision threshold used.
        predicted_good: ``probability_good >= threshold``.
        model: name, weights, SHA-256, training-data statement of the model.
        roi: the LPS box (mm) and how it was found; the disc centres when the localiser placed it.
        gradcam_class: class the heat map explains (``"poor_outcome"`` or ``"good_outcome"``), or ``None``.
        input: path (when read from a file), size, spacing and orientation of the input.
        warnings: what the user should check.
        heatmap: Grad-CAM on the input grid (float32 0..1), ``None`` without Grad-CAM.
        roi_array, roi_heatmap: the ROI and its map, ``(13, 100, 40)``.
        image: the input volume (for pictures).
    """

    probability_good: float
    threshold: float
    predicted_good: bool
    model: dict[str, Any]
    roi: dict[str, Any]
    gradcam_class: str | None
    input: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    heatmap: sitk.Image | None = field(default=None, repr=False)
    roi_array: np.ndarray | None = field(default=None, repr=False)
    roi_heatmap: np.ndarray | None = field(default=None, repr=False)
    image: sitk.Image | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays)."""
        return {
            "probability_good_outcome": self.probability_good,
            "threshold": self.threshold,
            "predicted": "good outcome" if self.predicted_good else "poor outcome",
            "outcome_definition": ">= 50% NRS-11 reduction 2 months after transforaminal epidural steroid injection",
            "model": self.model,
            "roi": self.roi,
            "gradcam_class": self.gradcam_class,
            "input": self.input,
            "warnings": list(self.warnings),
            "intended_use": RESEARCH_USE,
        }

    def save(self, out: str | os.PathLike, overwrite: bool = False) -> dict[str, Path]:
        """Write ``outcome.json``, ``gradcam.nii.gz`` (input geometry) and ``gradcam_overlay.png`` into ``out``."""
        from ..io import write_image
        from ..outputs import prepare_output_dir

        folder = prepare_output_dir(out, overwrite=overwrite)
        written: dict[str, Path] = {}
        if self.heatmap is not None:
            written["gradcam"] = write_image(self.heatmap, folder / "gradcam.nii.gz", overwrite=overwrite)
            if self.image is not None:
                written["overlay"] = _overlay_png(self, folder / "gradcam_overlay.png", overwrite=overwrite)
        summary = self.to_dict()
        summary["files"] = {k: v.name for k, v in written.items()}
        written["summary"] = write_json(folder / "outcome.json", summary, overwrite=overwrite)
        return written


def _overlay_png(result: OutcomeResult, path: Path, overwrite: bool) -> Path:
    """Mid-sagittal and both foraminal planes of the input with the heat map (superior up, anterior left)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert result.image is not None and result.heatmap is not None
    img = sitk.DICOMOrient(sitk.Cast(result.image, sitk.sitkFloat32), "LPS")
    cam = sitk.DICOMOrient(result.heatmap, "LPS")
    a = sitk.GetArrayFromImage(img)  # [z, y, x]
    h = sitk.GetArrayFromImage(cam)
    lo, hi = np.asarray(result.roi["lower_lps_mm"]), np.asarray(result.roi["upper_lps_mm"])
    mid = 0.5 * (lo[0] + hi[0])
    planes = [
        ("patient's right foramina", mid - 20.0),
        ("midline", mid),
        ("patient's left foramina", mid + 20.0),
    ]
    sp = img.GetSpacing()
    fig, axes = plt.subplots(1, 3, figsize=(13, 5.2))
    vmax = float(np.percentile(a, 99.5))
    for ax, (title, x_mm) in zip(axes, planes, strict=True):
        ix = int(
            np.clip(
                round(img.TransformPhysicalPointToContinuousIndex((x_mm, 0.0, 0.0))[0]), 0, a.shape[2] - 1
            )
        )
        ax.imshow(a[::-1, :, ix], cmap="gray", vmin=0, vmax=vmax, aspect=sp[2] / sp[1])
        ax.imshow(
            np.ma.masked_less(h[::-1, :, ix], 0.05),
            cmap="jet",
            alpha=0.45,
            vmin=0,
            vmax=1,
            aspect=sp[2] / sp[1],
        )
        x_real = img.TransformIndexToPhysicalPoint((ix, 0, 0))[0]
        ax.set_title(f"{title} (x = {x_real:.0f} mm)", fontsize=9)
        ax.axis("off")
    verdict = "good" if result.predicted_good else "poor"
    fig.suptitle(
        f"P(good outcome) = {result.probability_good:.2f} (threshold {result.threshold:.2f}: {verdict}); "
        f"Grad-CAM of {result.gradcam_class}. {RESEARCH_USE}",
        fontsize=9,
    )
    fig.tight_layout()
    with atomic_path(path, overwrite) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path


def predict_outcome(
    image_or_path: sitk.Image | str | os.PathLike,
    *,
    weights: str | os.PathLike | OutcomeModel | None = None,
    roi_bounds_mm: Any | None = None,
    gradcam: bool = True,
    gradcam_class: str = "predicted",
    threshold: float | None = None,
    device: str = "cpu",
) -> OutcomeResult:
    """Probability of a good tESI outcome from a sagittal T2 MRI, with a Grad-CAM heat map.

    Args:
        image_or_path: a SimpleITK volume or a file/DICOM folder.
        weights: a loaded :class:`OutcomeModel`, a ``.safetensors`` path (with its card), or ``None`` for the
            shipped demo model (trained on synthetic data).
        roi_bounds_mm: hand-given ROI box ``(x0, y0, z0, x1, y1, z1)`` (LPS mm) instead of the localiser.
        gradcam: compute the heat map.
        gradcam_class: ``"predicted"``, ``"poor"`` or ``"good"``: the class the map explains.
        threshold: decision threshold (default: the model card's validation Youden threshold).
        device: ``"cpu"`` or ``"cuda"``.

    Returns:
        :class:`OutcomeResult`.

    Raises:
        InputError: 2D image, CT, axial/coronal series, fewer than 13 sagittal slices, discs not found.
        WeightsError: missing or tampered weights.
    """
    import torch

    from ..io import read_image, resample_like
    from .network import CLASS_NAMES
    from .roi import check_sagittal_t2, extract_roi

    if gradcam_class not in ("predicted", "poor", "good"):
        raise InputError(f"gradcam_class '{gradcam_class}' is unknown.", "use predicted, poor or good")
    source: str | None = None
    if isinstance(image_or_path, sitk.Image):
        image = image_or_path
    else:
        source = str(image_or_path)
        image = read_image(image_or_path, dims=None, name="MRI")
    lps = check_sagittal_t2(image)
    model = weights if isinstance(weights, OutcomeModel) else load_outcome_model(weights, device=device)
    roi = extract_roi(lps, bounds_mm=roi_bounds_mm, checked=True)
    net = model.network
    x = torch.from_numpy(roi.array)[None, None]
    with torch.no_grad():
        prob = float(torch.softmax(net(x), dim=1)[0, 1])
    thr = model.threshold if threshold is None else float(threshold)
    predicted_good = prob >= thr
    heat = roi_heat = None
    cls_name = None
    if gradcam:
        cls = {"poor": 0, "good": 1}.get(gradcam_class, int(predicted_good))
        cls_name = CLASS_NAMES[cls]
        roi_heat = gradcam_roi(net, roi.array, cls)
        cam_img = sitk.GetImageFromArray(roi_heat.astype(np.float32))
        cam_img.CopyInformation(roi.reference)
        heat = resample_like(cam_img, image, interpolator="linear", default_value=0.0)
    roi_info = roi.box.to_dict()
    if roi.localisation is not None:
        roi_info["discs_lps_mm"] = roi.localisation.discs
        roi_info["midline_x_mm"] = roi.localisation.midline_x_mm
    warnings = list(roi.warnings) + (list(roi.localisation.warnings) if roi.localisation else [])
    card_td = model.card.training_data
    if isinstance(card_td, dict) and str(card_td.get("kind", "")).upper() == "SYNTHETIC":
        warnings.append(
            "the model was trained on synthetic phantoms only: its probability is a demonstration, "
            "not a clinical estimate"
        )
    return OutcomeResult(
        probability_good=prob,
        threshold=thr,
        predicted_good=bool(predicted_good),
        model=model.summary(),
        roi=roi_info,
        gradcam_class=cls_name,
        input={
            "path": source,
            "size": list(image.GetSize()),
            "spacing_mm": list(image.GetSpacing()),
            "orientation": sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(
                image.GetDirection()
            ),
        },
        warnings=warnings,
        heatmap=heat,
        roi_array=roi.array,
        roi_heatmap=roi_heat,
        image=image,
    )
