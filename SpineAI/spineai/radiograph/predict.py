"""Per-level herniation probabilities from one lumbar radiograph, with a Grad-CAM heat map on its own grid.

Two designs load through the same call, told apart by the model card's architecture:

* **disc crops** (:data:`~spineai.radiograph.reader.DISC_ARCHITECTURE`, the shipped demo's): a disc locator
  finds the five disc centres (:mod:`spineai.radiograph.discs`), a small reader reads a crop around each
  (:mod:`spineai.radiograph.reader`); Grad-CAM of a level is computed on its crop and pasted back at the
  crop's place; the located centres are reported (pixels, and mm when the pixel spacing is known) and
  drawn on the overlay. This departs from the seed paper's whole-image design, which stayed at chance
  when trained from scratch on the CPU (docs/radiograph.md);
* **whole image** (:data:`~spineai.radiograph.network.ARCHITECTURE`, the paper's):

:func:`read_radiograph` reads and checks the radiograph (:func:`~spineai.radiograph.image.load_radiograph`:
colour photographs, volumes and other body regions are refused), optionally crops it to the lumbar spine
from vertebra boxes, prepares it as the paper did (CLAHE, letterbox resize), runs the bagging ensemble of
the fold models (mean of their sigmoid probabilities per level L1-L2 .. L5-S1), calls each level positive
at or above its threshold (the model card's: the mean of the folds' Youden-optimal thresholds), and
computes Grad-CAM (MONAI's :class:`monai.visualize.GradCAM` on the last convolution layer,
``backbone._conv_head``, of every member, averaged) for one level. The map is brought back through the
letterbox and the crop onto the input's pixel grid, so it overlays the radiograph in 3D Slicer.
:meth:`RadiographResult.save` writes ``radiograph.json``, ``gradcam_<level>.nrrd`` (the input's geometry)
and ``gradcam_overlay.png``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..outputs import atomic_path, write_json

__all__ = [
    "DEFAULT_MODEL",
    "RadiographModel",
    "RadiographResult",
    "gradcam_level_map",
    "load_radiograph_model",
    "predict_arrays",
    "read_radiograph",
]

#: the shipped demo model (trained on synthetic DRRs of the CT phantom)
DEFAULT_MODEL = "radiograph_hnp_demo"
RESEARCH_USE = "Research use only; not for clinical decisions."


@dataclass
class RadiographModel:
    """A loaded ensemble with its card.

    Attributes:
        ensemble: :class:`~spineai.radiograph.network.RadiographEnsemble` in evaluation mode.
        card: its model card; weights_path: the verified file.
        thresholds: decision threshold per level (L1-L2 .. L5-S1).
        image_size: side of the network input (pixels; the locator's for the disc-crops design).
        design: ``"disc-crops"`` or ``"whole-image"``.
    """

    ensemble: Any
    card: Any
    weights_path: Path
    thresholds: list[float]
    image_size: int
    design: str = "whole-image"

    def summary(self) -> dict[str, Any]:
        """Name, file, checksum, thresholds, training-data statement and intended use."""
        td = self.card.training_data
        statement = td.get("statement") if isinstance(td, dict) else td
        c = self.ensemble.config
        if self.design == "disc-crops":
            network = (
                f"disc locator (MONAI UNet, {self.image_size} px) + per-level reader on "
                f"{c['crop_px']} px crops of {c['reader_pixel_mm']:g} mm, {c['n_members']} fold models"
            )
        else:
            network = (
                f"{c['model_name']} x{c['width_multiplier']:g} width, {c['n_members']} fold models, "
                f"{self.image_size} px"
            )
        return {
            "name": self.card.name,
            "design": self.design,
            "weights": str(self.weights_path),
            "sha256": self.card.sha256,
            "network": network,
            "thresholds": dict(zip(self.card.class_names, self.thresholds, strict=True)),
            "training_data": statement,
            "intended_use": self.card.intended_use,
        }


def load_radiograph_model(weights: str | os.PathLike | None = None, device: str = "cpu") -> RadiographModel:
    """Load and verify the shipped demo ensemble or site weights (``.safetensors`` with its ``.json`` card).

    Raises:
        WeightsError: missing, tampered or mismatched weights, or a card of another task.
    """
    from ..errors import WeightsError
    from ..weights import check_card, load_card, load_into, model_weights_path
    from .network import ARCHITECTURE, LEVELS, TASK, build_ensemble
    from .reader import DISC_ARCHITECTURE, build_disc_ensemble

    if weights is None:
        try:
            path = model_weights_path(DEFAULT_MODEL)
        except WeightsError as exc:
            raise WeightsError(
                f"{exc}\n  No radiograph model is installed: train one with 'spineai train radiograph' and pass "
                "--weights (weights=)."
            ) from None
    else:
        path = Path(weights)
    card = load_card(path)
    disc_design = card.architecture == DISC_ARCHITECTURE
    check_card(card, TASK, DISC_ARCHITECTURE if disc_design else ARCHITECTURE, source=str(path))
    ens = build_disc_ensemble(card.config) if disc_design else build_ensemble(card.config)
    load_into(ens, path, card, device=device)
    ens.eval()
    thr = card.extra.get("thresholds", {}) if isinstance(card.extra, dict) else {}
    thresholds = [float(thr.get(lv, 0.5)) for lv in LEVELS]
    return RadiographModel(
        ensemble=ens,
        card=card,
        weights_path=path,
        thresholds=thresholds,
        image_size=int(ens.config["image_size"]),
        design="disc-crops" if disc_design else "whole-image",
    )


def predict_arrays(model: RadiographModel, x: np.ndarray, device: str = "cpu", batch: int = 32) -> np.ndarray:
    """Ensemble probabilities ``(N, 5)`` of prepared images ``(N, size, size)`` (whole-image design)."""
    import torch

    if model.design != "whole-image":
        raise InputError(
            "predict_arrays reads prepared whole images; this model reads disc crops.",
            "use read_radiograph (or reader.read_disc_levels) for a disc-crops model",
        )

    ens = model.ensemble.to(device)
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            t = torch.from_numpy(np.asarray(x[i : i + batch], dtype=np.float32)).unsqueeze(1).to(device)
            out.append(ens(t).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 5))


def gradcam_level_map(model: RadiographModel, x: np.ndarray, level_index: int) -> np.ndarray:
    """Grad-CAM of one level on one prepared image ``(size, size)``: mean over the members, in [0, 1].

    Each member's map is MONAI's :class:`~monai.visualize.GradCAM` of that level's logit on the member's last
    convolution (``net.backbone._conv_head``), ReLU-ed and upsampled to the input grid; the members' maps are
    averaged and scaled to a maximum of 1 (all zeros when no member found positive evidence).
    """
    import torch

    from .network import GRADCAM_LAYER

    t = torch.from_numpy(np.asarray(x, dtype=np.float32))[None, None]
    members = [model.ensemble.member_logits(k) for k in range(len(model.ensemble.members))]
    return _ensemble_gradcam(members, t, f"net.{GRADCAM_LAYER}", int(level_index))


def _ensemble_gradcam(members: Sequence[Any], x: Any, target_layer: str, class_idx: int) -> np.ndarray:
    """Summed Grad-CAM of an ensemble on one input ``x`` ``(1, 1, H, W)``: a ``(H, W)`` map in [0, 1].

    For each member (a module returning ``(1, C)`` logits), MONAI's :class:`~monai.visualize.GradCAM` of
    logit ``class_idx`` on ``target_layer`` (no MONAI rescaling), negatives clipped to 0 and scaled to a
    maximum of 1; the members' maps are summed and the sum scaled to a maximum of 1 (all zeros when no
    member found positive evidence).
    """
    import torch
    from monai.visualize import GradCAM

    total = np.zeros(tuple(x.shape[2:]), dtype=np.float32)
    for member in members:
        member = member.eval()
        cam = GradCAM(nn_module=member, target_layers=target_layer, postprocessing=lambda a: a)
        with torch.enable_grad():
            raw = cam(x, class_idx=class_idx)
        m = np.clip(np.nan_to_num(raw.detach().cpu().numpy()[0, 0].astype(np.float32)), 0.0, None)
        top = float(m.max())
        total += m / top if top > 0 else m
        member.zero_grad(set_to_none=True)
    top = float(total.max())
    return total / top if top > 0 else total


@dataclass
class RadiographResult:
    """Prediction for one radiograph (JSON-ready with :meth:`to_dict`).

    Attributes:
        probabilities: level -> ensemble probability of a herniation at that level.
        thresholds: level -> decision threshold; predicted: level -> ``probability >= threshold``.
        member_probabilities: per fold model, its five probabilities.
        age_estimate_years: the age head's estimate (models with the age task), else ``None``.
        model: name, weights, checksum, thresholds, training-data statement.
        input: path, size, spacing and reading details of the input.
        crop: the lumbar crop (pixels ``x0, y0, x1, y1``) when vertebra boxes were given, else ``None``.
        gradcam_level: level the heat map explains, or ``None``.
        warnings: what the user should check.
        heatmap: Grad-CAM on the input's grid (float32 0..1), ``None`` without Grad-CAM.
        network_input, network_heatmap: the prepared ``(size, size)`` image and its map.
        image: the (grey) input image.
        discs: disc-crops design: per level the located (or given) disc centre on the input image
            (``row``, ``column`` pixels; ``x_mm``, ``y_mm`` physical when the pixel spacing is known), the
            locator's confidence, the crop (pixels), and ``order_enforced``; ``None`` for the whole-image design.
        design: ``"disc-crops"`` or ``"whole-image"``.
    """

    probabilities: dict[str, float]
    thresholds: dict[str, float]
    predicted: dict[str, bool]
    member_probabilities: list[list[float]]
    age_estimate_years: float | None
    model: dict[str, Any]
    input: dict[str, Any]
    crop: dict[str, Any] | None
    gradcam_level: str | None
    warnings: list[str] = field(default_factory=list)
    heatmap: sitk.Image | None = field(default=None, repr=False)
    network_input: np.ndarray | None = field(default=None, repr=False)
    network_heatmap: np.ndarray | None = field(default=None, repr=False)
    image: sitk.Image | None = field(default=None, repr=False)
    discs: list[dict[str, Any]] | None = None
    design: str = "whole-image"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays)."""
        return {
            "probabilities": dict(self.probabilities),
            "thresholds": dict(self.thresholds),
            "predicted_herniation": {lv: bool(v) for lv, v in self.predicted.items()},
            "levels_called_positive": [lv for lv, v in self.predicted.items() if v],
            "member_probabilities": [list(map(float, m)) for m in self.member_probabilities],
            "age_estimate_years": self.age_estimate_years,
            "label_definition": "herniated nucleus pulposus at the level on MRI (seed paper's labels)",
            "model": self.model,
            "input": self.input,
            "crop": self.crop,
            "gradcam_level": self.gradcam_level,
            "design": self.design,
            "discs": self.discs,
            "warnings": list(self.warnings),
            "intended_use": RESEARCH_USE,
        }

    def save(self, out: str | os.PathLike, overwrite: bool = False) -> dict[str, Path]:
        """Write ``radiograph.json``, ``gradcam_<level>.nrrd`` (input geometry) and ``gradcam_overlay.png``."""
        from ..io import write_image
        from ..outputs import prepare_output_dir

        folder = prepare_output_dir(out, overwrite=overwrite)
        written: dict[str, Path] = {}
        if self.heatmap is not None and self.gradcam_level is not None:
            name = f"gradcam_{self.gradcam_level.replace('-', '_')}.nrrd"
            written["gradcam"] = write_image(self.heatmap, folder / name, overwrite=overwrite)
            if self.image is not None:
                written["overlay"] = _overlay_png(self, folder / "gradcam_overlay.png", overwrite)
        summary = self.to_dict()
        summary["files"] = {k: v.name for k, v in written.items()}
        written["summary"] = write_json(folder / "radiograph.json", summary, overwrite=overwrite)
        return written


def _overlay_png(result: RadiographResult, path: Path, overwrite: bool) -> Path:
    """The radiograph with the heat map, and the five probabilities as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert result.image is not None and result.heatmap is not None
    a = sitk.GetArrayFromImage(result.image)
    h = sitk.GetArrayFromImage(result.heatmap)
    sp = result.image.GetSpacing()
    fig, axes = plt.subplots(1, 2, figsize=(11, 6), gridspec_kw={"width_ratios": [3, 2]})
    lo, hi = np.percentile(a, [0.5, 99.5])
    axes[0].imshow(a, cmap="gray", vmin=lo, vmax=hi, aspect=sp[1] / sp[0])
    axes[0].imshow(np.ma.masked_less(h, 0.05), cmap="jet", alpha=0.4, vmin=0, vmax=1, aspect=sp[1] / sp[0])
    if result.crop is not None:
        x0, y0, x1, y1 = result.crop["pixels_x0_y0_x1_y1"]
        axes[0].add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="yellow", lw=1.0))
    for disc in result.discs or []:
        colour = "#ff4040" if disc["level"] == result.gradcam_level else "#40ff40"
        axes[0].plot(disc["column"], disc["row"], "+", color=colour, ms=9, mew=1.5)
        axes[0].annotate(
            f"{disc['level']} {disc['confidence']:.2f}"
            if disc.get("confidence") is not None
            else disc["level"],
            (disc["column"], disc["row"]),
            xytext=(8, 0),
            textcoords="offset points",
            color=colour,
            fontsize=7,
            va="center",
        )
        if disc["level"] == result.gradcam_level and "crop_pixels_x0_y0_x1_y1" in disc:
            cx0, cy0, cx1, cy1 = disc["crop_pixels_x0_y0_x1_y1"]
            axes[0].add_patch(
                plt.Rectangle((cx0, cy0), cx1 - cx0, cy1 - cy0, fill=False, ec=colour, lw=0.8, ls="--")
            )
    where = (
        "on its disc crop, mean of the fold readers; +: discs"
        if result.design == "disc-crops"
        else "last convolution, mean of the fold models"
    )
    axes[0].set_title(f"Grad-CAM of {result.gradcam_level} ({where})", fontsize=9)
    axes[0].axis("off")
    levels = list(result.probabilities)
    probs = [result.probabilities[lv] for lv in levels]
    colours = ["#d62728" if result.predicted[lv] else "#1f77b4" for lv in levels]
    axes[1].barh(levels[::-1], probs[::-1], color=colours[::-1])
    for lv in levels:
        axes[1].plot(
            [result.thresholds[lv]] * 2, [levels[::-1].index(lv) - 0.4, levels[::-1].index(lv) + 0.4], "k-"
        )
    axes[1].set_xlim(0, 1)
    axes[1].set_xlabel("probability of herniation (black: threshold; red: called positive)")
    fig.suptitle(f"{result.model.get('name', '')}: {RESEARCH_USE}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path, overwrite) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path


def read_radiograph(
    image: sitk.Image | np.ndarray | str | os.PathLike,
    *,
    weights: str | os.PathLike | RadiographModel | None = None,
    boxes: str | os.PathLike | np.ndarray | None = None,
    gradcam: bool = True,
    gradcam_level: str = "max",
    thresholds: Sequence[float] | None = None,
    device: str = "cpu",
    pixel_mm: float | None = None,
    disc_centres: np.ndarray | None = None,
) -> RadiographResult:
    """Probability of a herniated disc at each lumbar level from one radiograph, with Grad-CAM.

    Args:
        image: a file (PNG/JPEG/BMP/TIFF, 2D DICOM), a 2D ``sitk.Image`` or a numpy array.
        weights: a loaded :class:`RadiographModel`, a ``.safetensors`` path (with its card), or ``None`` for
            the shipped demo model (disc crops, trained on synthetic DRRs).
        boxes: vertebra boxes: a YOLO ``.txt`` file or an ``(n, 4)`` array ``(x0, y0, x1, y1)`` in pixels;
            the image is cropped to the five lowest (L1..L5, see
            :func:`~spineai.radiograph.image.lumbar_crop_from_boxes`); fewer than five boxes are refused.
        gradcam: compute the heat map.
        gradcam_level: ``"max"`` (the most probable level) or a level name (``"L4-L5"``).
        thresholds: five decision thresholds (default: the model card's).
        device: ``"cpu"`` or ``"cuda"`` (the disc-crops design runs on the CPU).
        pixel_mm: disc-crops design: the pixel size (mm) when the file does not carry it (a PNG/JPEG); by
            default the DICOM spacing when known, else estimated from the located discs.
        disc_centres: disc-crops design: ``(5, 2)`` disc centres ``(x = column, y = row)`` in pixels of
            ``image``, L1-L2 first, to read instead of the located ones.

    Returns:
        :class:`RadiographResult`.

    Raises:
        InputError: a volume, a colour photograph, another body region, fewer than five vertebra boxes, an
            unknown level, a bad pixel size or disc array.
        WeightsError: missing or tampered weights.
    """
    from .image import load_radiograph, lumbar_crop_from_boxes, read_yolo_boxes
    from .network import LEVELS

    if gradcam_level != "max" and gradcam_level not in LEVELS:
        raise InputError(
            f"gradcam_level '{gradcam_level}' is not a level.", f"use max or one of {', '.join(LEVELS)}"
        )
    if pixel_mm is not None and not (np.isfinite(float(pixel_mm)) and 0.01 <= float(pixel_mm) <= 10.0):
        raise InputError(
            f"pixel_mm={pixel_mm!r} is not a pixel size in mm.", "pass the detector pixel size, e.g. 0.15"
        )
    loaded = load_radiograph(image)
    img = loaded.image
    cols, rows = img.GetSize()
    crop = None
    warnings = list(loaded.warnings)
    region = img
    x0 = y0 = 0
    if boxes is not None:
        b = (
            read_yolo_boxes(boxes, cols, rows)
            if not isinstance(boxes, np.ndarray)
            else np.asarray(boxes, float)
        )
        x0, y0, x1, y1 = lumbar_crop_from_boxes(b, cols, rows)
        region = sitk.RegionOfInterest(img, [x1 - x0, y1 - y0], [x0, y0])
        crop = {
            "pixels_x0_y0_x1_y1": [x0, y0, x1, y1],
            "source": "five lowest vertebra boxes taken as L1..L5",
            "n_boxes": int(len(b)),
        }
        warnings = [w for w in warnings if "body-part" not in w]
    model = weights if isinstance(weights, RadiographModel) else load_radiograph_model(weights, device=device)
    thr = list(model.thresholds) if thresholds is None else [float(t) for t in thresholds]
    if len(thr) != len(LEVELS):
        raise InputError(
            f"{len(thr)} thresholds given for {len(LEVELS)} levels.", "give one threshold per level"
        )
    if model.design == "disc-crops":
        probs, members, age, heat_region, grid_map, x, discs, level = _read_disc_crops(
            model, loaded, region, (x0, y0), pixel_mm, disc_centres, gradcam, gradcam_level, warnings
        )
    else:
        if disc_centres is not None:
            warnings.append(
                "disc_centres are used by disc-crops models only; this model reads the whole image"
            )
        probs, members, age, heat_region, grid_map, x, level = _read_whole_image(
            model, region, gradcam, gradcam_level, device
        )
        discs = None
    heat = None
    if heat_region is not None:
        full = np.zeros((rows, cols), dtype=np.float32)
        if crop is None:
            full[:] = heat_region
        else:
            x0, y0, x1, y1 = crop["pixels_x0_y0_x1_y1"]
            full[y0:y1, x0:x1] = heat_region
        heat = sitk.GetImageFromArray(full)
        heat.CopyInformation(img)
    if crop is None and rows > 1.6 * cols:
        warnings.append(
            "the image is much taller than wide (a whole-spine radiograph?): the model reads lumbar "
            "views; pass the vertebra boxes (--boxes) to crop it to L1..S1"
        )
    card_td = model.card.training_data
    if isinstance(card_td, dict) and str(card_td.get("kind", "")).upper() == "SYNTHETIC":
        warnings.append(
            "the model was trained on synthetic radiographs (DRRs of phantoms) only: its probabilities "
            "are a demonstration, not a clinical estimate"
        )
    return RadiographResult(
        probabilities={lv: float(probs[k]) for k, lv in enumerate(LEVELS)},
        thresholds={lv: float(thr[k]) for k, lv in enumerate(LEVELS)},
        predicted={lv: bool(probs[k] >= thr[k]) for k, lv in enumerate(LEVELS)},
        member_probabilities=np.asarray(members).tolist(),
        age_estimate_years=age,
        model=model.summary(),
        input={
            "path": loaded.source,
            "size": [cols, rows],
            "spacing_mm": list(img.GetSpacing()),
            "reading": loaded.info,
        },
        crop=crop,
        gradcam_level=level,
        warnings=warnings,
        heatmap=heat,
        network_input=x,
        network_heatmap=grid_map,
        image=img,
        discs=discs,
        design=model.design,
    )


def _read_whole_image(
    model: RadiographModel, region: sitk.Image, gradcam: bool, gradcam_level: str, device: str
) -> tuple[
    np.ndarray, np.ndarray, float | None, np.ndarray | None, np.ndarray | None, np.ndarray, str | None
]:
    """The paper's design: ``(probs (5,), members (M, 5), age, map on region, grid map, input, level)``."""
    import torch

    from .image import map_to_input, prepare_input
    from .network import LEVELS

    x, box = prepare_input(region, model.image_size)
    with torch.no_grad():
        mean, members, age = model.ensemble.to(device).predict(torch.from_numpy(x)[None, None].to(device))
    probs = mean.cpu().numpy()[0]
    on_region = grid_map = level = None
    if gradcam:
        k = int(np.argmax(probs)) if gradcam_level == "max" else LEVELS.index(gradcam_level)
        level = LEVELS[k]
        grid_map = gradcam_level_map(model, x, k)
        on_region = map_to_input(grid_map, box)
    age_years = None if age is None else float(age.cpu().numpy()[0])
    return probs, members.cpu().numpy()[:, 0], age_years, on_region, grid_map, x, level


def _read_disc_crops(
    model: RadiographModel,
    loaded: Any,
    region: sitk.Image,
    offset_xy: tuple[int, int],
    pixel_mm: float | None,
    disc_centres: np.ndarray | None,
    gradcam: bool,
    gradcam_level: str,
    warnings: list[str],
) -> tuple[Any, ...]:
    """Disc-crops design: locate, crop, read; Grad-CAM of one level pasted back at its crop's place."""
    from .network import LEVELS
    from .reader import paste_crop_map, read_disc_levels, reader_gradcam

    ens = model.ensemble.to("cpu")
    centres_rc = None
    if disc_centres is not None:
        xy = np.asarray(disc_centres, dtype=float)
        if xy.shape != (len(LEVELS), 2) or not np.all(np.isfinite(xy)):
            raise InputError(
                f"disc_centres of shape {xy.shape} were given; five finite (x, y) pixel positions are needed.",
                "give the centres of L1-L2, L2-L3, L3-L4, L4-L5 and L5-S1 as (column, row) pixels",
            )
        centres_rc = xy[:, ::-1] - np.array([offset_xy[1], offset_xy[0]], dtype=float)
    spacing_known = bool(loaded.info.get("pixel_spacing_known"))
    if pixel_mm is not None:
        px, src = float(pixel_mm), "given"
    elif spacing_known:
        sp = region.GetSpacing()
        px, src = float(np.sqrt(sp[0] * sp[1])), "image spacing"
    else:
        px, src = None, ""
    reading = read_disc_levels(ens, region, pixel_mm=px, pixel_mm_source=src, centres_rc=centres_rc)
    located = reading.located
    rows, cols = sitk.GetArrayViewFromImage(region).shape
    n = int(ens.config["crop_px"])
    half = (n - 1) / 2.0 * reading.step
    discs = []
    for k, lv in enumerate(LEVELS):
        r, c = (float(v) for v in reading.centres_rc[k])
        full_r, full_c = r + offset_xy[1], c + offset_xy[0]
        entry: dict[str, Any] = {
            "level": lv,
            "row": full_r,
            "column": full_c,
            "source": "located" if located is not None else "given",
            "confidence": None if located is None else float(located.confidence[k]),
            "crop_pixels_x0_y0_x1_y1": [full_c - half, full_r - half, full_c + half, full_r + half],
        }
        if spacing_known:
            x_mm, y_mm = loaded.image.TransformContinuousIndexToPhysicalPoint((full_c, full_r))
            entry.update({"x_mm": float(x_mm), "y_mm": float(y_mm)})
        discs.append(entry)
    if located is not None:
        for d in discs:
            d["order_enforced"] = bool(located.order_enforced)
        if not located.in_order:
            warnings.append("the located discs are not in cranio-caudal order: the levels may be mislabelled")
        elif located.order_enforced:
            warnings.append(
                "a disc's strongest heat-map peak broke the cranio-caudal order; the best ordered peaks were used"
            )
        weak = [LEVELS[k] for k in range(len(LEVELS)) if located.confidence[k] < 0.2]
        if weak:
            warnings.append(
                f"the disc locator is unsure of {', '.join(weak)} (confidence below 0.2): check the located discs "
                "on the overlay, or pass disc_centres"
            )
    if reading.scale_source.startswith("estimated"):
        warnings.append(
            f"the pixel size is unknown: {reading.pixel_mm:.3f} mm was estimated from the disc spacing "
            f"(discs taken {ens.config['typical_spacing_mm']:g} mm apart); pass pixel_mm (--pixel-mm) if known"
        )
    for d in discs:
        d["pixel_mm"] = reading.pixel_mm
        d["scale_source"] = reading.scale_source
    probs = reading.probabilities
    on_region = crop_map = level = None
    if gradcam:
        k = int(np.argmax(probs)) if gradcam_level == "max" else LEVELS.index(gradcam_level)
        level = LEVELS[k]
        crop_map = reader_gradcam(ens, reading.crops[k], k)
        on_region = paste_crop_map(crop_map, reading.centres_rc[k], reading.step, (rows, cols))
    return probs, reading.member_probabilities, None, on_region, crop_map, reading.network_input, discs, level
