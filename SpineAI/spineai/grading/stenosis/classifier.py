"""Stage 2 of the stenosis model: a classifier of each region's crop (normal/mild/moderate/severe).

Crop: a square centred on the region's box, its side :data:`CONTEXT` times the box's longer side (the
region with some surroundings), resampled bilinearly to ``crop_size x crop_size`` (default 64) from the
working slice normalised to [0, 1]. Crops of the patient's right side are mirrored left-right, so every
lateral recess and foramen is seen as a left one (the network learns one side per kind; the Grad-CAM
map is mirrored back). Crop sizes follow the boxes, so no pixel spacing is needed.

Network: a MONAI 2D ResNet backbone (:func:`monai.networks.nets.resnet10` by default, configurable as the
axial grader's) and one linear head per region kind (central canal, lateral recess, foramen; 4 grades
each); ``forward`` returns the heads' logits concatenated ``(B, 12)``, so one output index addresses one
grade of one kind (what Grad-CAM needs). The dichotomous grading is P(moderate) + P(severe).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..axial.grades import GRADES, REGION_KINDS

__all__ = [
    "CONTEXT",
    "GRADER_DEFAULTS",
    "CropFrame",
    "RoiGraderNet",
    "crop_frame",
    "head_index",
    "paste_crop_maps",
    "sample_crop",
]

#: crop side / longer box side, per region kind
CONTEXT: dict[str, float] = {"central_canal": 1.3, "lateral_recess": 1.8, "foramen": 1.4}
#: default architecture of the region classifier
GRADER_DEFAULTS: dict[str, Any] = {
    "depth": 10,
    "widen_factor": 0.125,
    "conv1_stride": 2,
    "no_max_pool": True,
    "dropout": 0.1,
    "crop_size": 64,
}


@dataclass(frozen=True)
class CropFrame:
    """A square crop of the working slice.

    Attributes:
        centre_rc: centre (row, col), working pixels.
        step: working pixels per crop pixel.
        size: crop side (pixels).
        mirror: the crop is mirrored left-right (a right-side region).
    """

    centre_rc: tuple[float, float]
    step: float
    size: int
    mirror: bool

    def coordinates(self) -> np.ndarray:
        """Working (row, col) of every crop pixel, ``(2, size, size)``."""
        t = (np.arange(self.size) - (self.size - 1) / 2.0) * self.step
        rows = self.centre_rc[0] + t[:, None] + 0 * t[None, :]
        cols = self.centre_rc[1] + (-t if self.mirror else t)[None, :] + 0 * t[:, None]
        return np.stack([rows, cols])

    def to_crop(self, rc: np.ndarray) -> np.ndarray:
        """Working (row, col) points ``(..., 2)`` -> crop (row, col)."""
        p = np.asarray(rc, dtype=np.float64)
        i = (p[..., 0] - self.centre_rc[0]) / self.step + (self.size - 1) / 2.0
        dj = (p[..., 1] - self.centre_rc[1]) / self.step
        j = (-dj if self.mirror else dj) + (self.size - 1) / 2.0
        return np.stack([i, j], axis=-1)

    def bounds(self) -> tuple[float, float, float, float]:
        """``(row0, col0, row1, col1)`` of the crop on the working slice."""
        h = self.size * self.step / 2.0
        return (self.centre_rc[0] - h, self.centre_rc[1] - h, self.centre_rc[0] + h, self.centre_rc[1] + h)


def crop_frame(
    box_rc: Sequence[float],
    kind: str,
    side: str | None,
    crop_size: int = 64,
    *,
    shift: Sequence[float] = (0.0, 0.0),
    scale: float = 1.0,
) -> CropFrame:
    """The crop of a region box ``(row0, col0, row1, col1)`` (working pixels), optionally jittered.

    Args:
        box_rc: the box.
        kind: region kind (``central_canal``, ``lateral_recess``, ``foramen``).
        side: ``"left"``, ``"right"`` or ``None``; right-side crops are mirrored.
        crop_size: crop side in pixels.
        shift: extra shift of the centre as fractions of the crop side (rows, cols).
        scale: extra scaling of the crop side.
    """
    r0, c0, r1, c1 = (float(v) for v in box_rc)
    side_px = CONTEXT[kind] * max(r1 - r0, c1 - c0, 1.0) * float(scale)
    centre = ((r0 + r1) / 2 + shift[0] * side_px, (c0 + c1) / 2 + shift[1] * side_px)
    return CropFrame(centre_rc=centre, step=side_px / crop_size, size=int(crop_size), mirror=side == "right")


def sample_crop(working_normalised: np.ndarray, frame: CropFrame) -> np.ndarray:
    """Bilinear crop ``(size, size)`` float32; outside the slice reads 0."""
    from scipy import ndimage

    return ndimage.map_coordinates(
        np.asarray(working_normalised, dtype=np.float32),
        frame.coordinates(),
        order=1,
        mode="constant",
        cval=0.0,
    ).astype(np.float32)


def paste_crop_maps(
    maps: Sequence[np.ndarray], frames: Sequence[CropFrame], shape: tuple[int, int]
) -> np.ndarray:
    """Crop maps pasted back onto a working slice of ``shape`` (bilinear; the larger value where they overlap)."""
    from scipy import ndimage

    out = np.zeros(shape, dtype=np.float32)
    for m, frame in zip(maps, frames, strict=True):
        r0, c0, r1, c1 = frame.bounds()
        a0, a1 = max(int(np.floor(r0)), 0), min(int(np.ceil(r1)) + 1, shape[0])
        b0, b1 = max(int(np.floor(c0)), 0), min(int(np.ceil(c1)) + 1, shape[1])
        if a1 <= a0 or b1 <= b0:
            continue
        rr, cc = np.mgrid[a0:a1, b0:b1].astype(np.float64)
        ij = frame.to_crop(np.stack([rr, cc], axis=-1))
        inside = (
            (ij[..., 0] >= -0.5)
            & (ij[..., 0] <= frame.size - 0.5)
            & (ij[..., 1] >= -0.5)
            & (ij[..., 1] <= frame.size - 0.5)
        )
        values = ndimage.map_coordinates(
            np.asarray(m, dtype=np.float32), [ij[..., 0], ij[..., 1]], order=1, mode="nearest"
        )
        out[a0:a1, b0:b1] = np.maximum(out[a0:a1, b0:b1], np.where(inside, values, 0.0))
    return out


def head_index(kind: str, grade: int) -> int:
    """Output index (in the concatenated logits) of ``grade`` for a region ``kind``."""
    return REGION_KINDS.index(kind) * len(GRADES) + int(grade)


class RoiGraderNet(torch.nn.Module):
    """MONAI ResNet backbone + one linear head per region kind. Input ``(B, 1, crop, crop)`` in [0, 1].

    Args:
        depth, widen_factor, conv1_stride, no_max_pool, dropout: the backbone (as
            :class:`~spineai.grading.axial.model.AxialGraderNet`).
        crop_size: crop side (pixels); recorded for inference.
    """

    def __init__(
        self,
        depth: int = 10,
        widen_factor: float = 0.125,
        conv1_stride: int = 2,
        no_max_pool: bool = True,
        dropout: float = 0.1,
        crop_size: int = 64,
    ) -> None:
        super().__init__()
        from monai.networks.nets import resnet

        self.config = {
            "depth": int(depth),
            "widen_factor": float(widen_factor),
            "conv1_stride": int(conv1_stride),
            "no_max_pool": bool(no_max_pool),
            "dropout": float(dropout),
            "crop_size": int(crop_size),
        }
        build = getattr(resnet, f"resnet{int(depth)}")
        self.backbone = build(
            spatial_dims=2,
            n_input_channels=1,
            feed_forward=False,
            widen_factor=float(widen_factor),
            conv1_t_stride=int(conv1_stride),
            no_max_pool=bool(no_max_pool),
        )
        with torch.no_grad():
            was = self.backbone.training
            self.backbone.eval()
            features = int(self.backbone(torch.zeros(1, 1, 32, 32)).shape[1])
            self.backbone.train(was)
        self.dropout = torch.nn.Dropout(self.config["dropout"])
        self.heads = torch.nn.ModuleDict({k: torch.nn.Linear(features, len(GRADES)) for k in REGION_KINDS})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenated logits ``(B, 12)``: central canal 0-3, lateral recess 0-3, foramen 0-3."""
        f = self.dropout(self.backbone(x))
        return torch.cat([self.heads[k](f) for k in REGION_KINDS], dim=1)

    @staticmethod
    def kind_logits(logits: torch.Tensor, kinds: Sequence[str]) -> torch.Tensor:
        """Each row's logits of its own kind, ``(B, 4)``."""
        idx = torch.tensor([REGION_KINDS.index(k) for k in kinds], dtype=torch.long)
        n = len(GRADES)
        cols = idx[:, None] * n + torch.arange(n)[None, :]
        return torch.gather(logits, 1, cols)
