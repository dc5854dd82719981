"""Stage 1 of the stenosis model: a heat-map detector of the five regions of interest as boxes.

Choice: a centre heat-map network with box-size regression (the "objects as points" idea) rather than an
anchor-based detector such as MONAI's RetinaNet. Every axial slice at a disc level has exactly one of each
of the five regions (central canal, left/right lateral recess, left/right neural foramen), so detection is
a per-class peak search, not a variable-count problem; a small U-Net trains in minutes on a CPU and its
decoding needs no anchors or non-maximum suppression.

Network: MONAI :class:`~monai.networks.nets.UNet` (2D, channels 8-16-32-64, strides 2, one residual unit
per level, instance norm) on the working slice scaled to fit ``size x size`` (default 96; aspect kept,
zero padded). Output ``(B, 15, size, size)``: five heat-map logits (one per region, in
:data:`~spineai.grading.axial.grades.REGIONS` order) and, per region, the box width and height as
fractions of ``size`` (read at the peak).

Targets: a Gaussian (sigma 2 input pixels) at each box centre; sizes at the pixels where the target heat
exceeds 0.5. Loss: foreground-weighted squared error of the sigmoid heat maps plus the L1 error of the
sizes at those pixels (:func:`detector_loss`). Decoding (:func:`decode_boxes`): per region the maximum
of its heat map, refined to sub-pixel by the heat-weighted centroid of its 3 x 3 neighbourhood; the peak
height is the region's confidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..axial.grades import REGIONS

__all__ = [
    "DETECTOR_DEFAULTS",
    "DetectedBox",
    "RoiDetectorNet",
    "decode_boxes",
    "detector_loss",
    "detector_targets",
]

N_REGIONS = len(REGIONS)
#: default architecture of the detector
DETECTOR_DEFAULTS: dict[str, Any] = {
    "size": 96,
    "channels": [8, 16, 32, 64],
    "strides": [2, 2, 2],
    "num_res_units": 1,
}
HEAT_SIGMA_PX = 2.0


class RoiDetectorNet(torch.nn.Module):
    """Heat maps and box sizes of the five regions. Input ``(B, 1, size, size)`` in [0, 1].

    Args:
        size: side of the square input (pixels).
        channels: U-Net feature widths per level.
        strides: U-Net down-sampling strides.
        num_res_units: residual units per level.
    """

    def __init__(
        self,
        size: int = 96,
        channels: Sequence[int] = (8, 16, 32, 64),
        strides: Sequence[int] = (2, 2, 2),
        num_res_units: int = 1,
    ) -> None:
        super().__init__()
        from monai.networks.layers import Norm
        from monai.networks.nets import UNet

        self.config = {
            "size": int(size),
            "channels": [int(c) for c in channels],
            "strides": [int(s) for s in strides],
            "num_res_units": int(num_res_units),
        }
        self.net = UNet(
            spatial_dims=2,
            in_channels=1,
            out_channels=3 * N_REGIONS,
            channels=self.config["channels"],
            strides=self.config["strides"],
            num_res_units=self.config["num_res_units"],
            norm=Norm.INSTANCE,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 15, S, S)``: heat logits (5), then box width and height fractions (5 x 2)."""
        return self.net(x)


def detector_targets(boxes_input: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets of one slice.

    Args:
        boxes_input: ``(5, 4)`` boxes ``(row0, col0, row1, col1)`` in detector-input pixels; NaN rows =
            region not annotated.
        size: input side.

    Returns:
        ``(heat (5, S, S), sizes (10, S, S), known (5,))``.
    """
    rr, cc = np.mgrid[0:size, 0:size].astype(np.float32)
    heat = np.zeros((N_REGIONS, size, size), dtype=np.float32)
    sizes = np.zeros((2 * N_REGIONS, size, size), dtype=np.float32)
    known = np.zeros(N_REGIONS, dtype=np.float32)
    for k, box in enumerate(np.asarray(boxes_input, dtype=np.float64)):
        if not np.all(np.isfinite(box)):
            continue
        r0, c0, r1, c1 = box
        cr, cc_ = (r0 + r1) / 2, (c0 + c1) / 2
        heat[k] = np.exp(-((rr - cr) ** 2 + (cc - cc_) ** 2) / (2 * HEAT_SIGMA_PX**2))
        sizes[2 * k] = (c1 - c0) / size
        sizes[2 * k + 1] = (r1 - r0) / size
        known[k] = 1.0
    return heat, sizes, known


def detector_loss(
    output: torch.Tensor,
    heat: torch.Tensor,
    sizes: torch.Tensor,
    known: torch.Tensor,
    foreground_weight: float = 30.0,
    size_weight: float = 5.0,
) -> torch.Tensor:
    """Foreground-weighted squared error of the heat maps + L1 of the box sizes near the centres.

    Args:
        output: ``(B, 15, S, S)`` network output.
        heat: ``(B, 5, S, S)`` target heat maps.
        sizes: ``(B, 10, S, S)`` target sizes.
        known: ``(B, 5)`` 1 where the region is annotated.
    """
    logits = output[:, :N_REGIONS]
    pred_sizes = output[:, N_REGIONS:]
    weight = 1.0 + foreground_weight * heat
    per = (torch.sigmoid(logits) - heat) ** 2 * weight * known[:, :, None, None]
    heat_term = 100.0 * per.sum() / (known.sum().clamp(min=1.0) * heat.shape[-1] * heat.shape[-2])
    mask = (heat > 0.5).float() * known[:, :, None, None]
    mask2 = mask.repeat_interleave(2, dim=1)
    size_term = (torch.abs(pred_sizes - sizes) * mask2).sum() / mask2.sum().clamp(min=1.0)
    return heat_term + size_weight * size_term


@dataclass(frozen=True)
class DetectedBox:
    """One detected region in detector-input pixels.

    Attributes:
        region: region key.
        centre_rc: (row, col) of the centre.
        size_rc: (height, width).
        confidence: peak heat (0..1).
    """

    region: str
    centre_rc: tuple[float, float]
    size_rc: tuple[float, float]
    confidence: float

    def box(self) -> tuple[float, float, float, float]:
        """``(row0, col0, row1, col1)``."""
        (r, c), (h, w) = self.centre_rc, self.size_rc
        return (r - h / 2, c - w / 2, r + h / 2, c + w / 2)


def decode_boxes(output: np.ndarray) -> list[DetectedBox]:
    """Boxes of the five regions from one slice's output ``(15, S, S)`` (heat logits and sizes)."""
    size = output.shape[-1]
    heat = 1.0 / (1.0 + np.exp(-output[:N_REGIONS]))
    boxes = []
    for k, region in enumerate(REGIONS):
        h = heat[k]
        r, c = np.unravel_index(int(np.argmax(h)), h.shape)
        r0, r1 = max(r - 1, 0), min(r + 2, size)
        c0, c1 = max(c - 1, 0), min(c + 2, size)
        w = h[r0:r1, c0:c1]
        rr, cc = np.mgrid[r0:r1, c0:c1]
        total = float(w.sum())
        cr = float((w * rr).sum() / total) if total > 0 else float(r)
        ccen = float((w * cc).sum() / total) if total > 0 else float(c)
        width = max(float(output[N_REGIONS + 2 * k, r, c]) * size, 1.0)
        height = max(float(output[N_REGIONS + 2 * k + 1, r, c]) * size, 1.0)
        boxes.append(DetectedBox(region.key, (cr, ccen), (height, width), float(h[r, c])))
    return boxes
