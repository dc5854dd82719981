"""Multi-task disc classifier and the disc patches it reads.

Patch
-----
Each disc is read through a rectangle aligned with the spine at that disc (:class:`PatchFrame`):
``PATCH_HEIGHT_SPACINGS`` (1.0) local disc spacings along the spine, so it reaches the middle of the
vertebral bodies above and below (endplates and Modic changes are in view), and
``PATCH_WIDTH_SPACINGS`` (1.6) spacings across it, shifted ``PATCH_POSTERIOR_SHIFT`` (0.1) spacings
posteriorly so the canal behind the disc (herniation, bulging) is in view. It is resampled (bilinear) to
``PATCH_SHAPE`` = 64 x 96 pixels with the cranial direction up and posterior on the right, from the
slice normalised to [0, 1] by its own 0.5/99.5 percentiles. Sizes are in units of the disc spacing, so no
pixel spacing is needed (PNG slices carry none).

Network
-------
:class:`SagittalGraderNet`: a MONAI 2D ResNet backbone (:class:`monai.networks.nets.ResNet`, basic
blocks, ``feed_forward=False``: global-average-pooled features) with dropout and one linear head per
grading (:data:`~spineai.grading.tasks.GRADING_TASKS`). ``forward`` returns the heads' logits
concatenated, ``(B, sum of classes)``, so one output index addresses one grade of one grading
(what Grad-CAM needs); :meth:`SagittalGraderNet.split` cuts them per grading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .tasks import GRADING_TASKS, TASK_KEYS

__all__ = [
    "GRADER_DEFAULTS",
    "PATCH_SHAPE",
    "PatchFrame",
    "SagittalGraderNet",
    "head_offsets",
    "patch_frame",
    "sample_patch",
]

PATCH_SHAPE = (64, 96)
PATCH_HEIGHT_SPACINGS = 1.0
PATCH_WIDTH_SPACINGS = 1.6
PATCH_POSTERIOR_SHIFT = 0.1
#: default architecture of the classifier
GRADER_DEFAULTS: dict[str, Any] = {
    "block_inplanes": [24, 48, 96, 192],
    "layers": [1, 1, 1, 1],
    "dropout": 0.2,
}
#: name of the last convolutional stage (Grad-CAM's target layer)
GRADCAM_LAYER = "backbone.layer4"


@dataclass(frozen=True)
class PatchFrame:
    """A disc's patch rectangle on the working slice.

    Attributes:
        centre_rc: patch centre (row, col), working-slice pixels.
        axis_rc: unit vector towards the head (cranial) along the spine.
        across_rc: unit vector towards posterior, perpendicular to ``axis_rc``.
        step_rc: working-slice pixels per patch pixel, along and across the spine.
        shape: patch size (rows, cols).
    """

    centre_rc: tuple[float, float]
    axis_rc: tuple[float, float]
    across_rc: tuple[float, float]
    step_rc: tuple[float, float]
    shape: tuple[int, int] = PATCH_SHAPE

    def coordinates(self) -> np.ndarray:
        """Working-slice (row, col) of every patch pixel, ``(2, rows, cols)``."""
        rows, cols = self.shape
        i = (np.arange(rows) - (rows - 1) / 2.0) * self.step_rc[0]
        j = (np.arange(cols) - (cols - 1) / 2.0) * self.step_rc[1]
        down = -np.asarray(self.axis_rc)  # patch rows run caudally
        across = np.asarray(self.across_rc)
        centre = np.asarray(self.centre_rc)
        pts = (
            centre[:, None, None]
            + down[:, None, None] * i[None, :, None]
            + across[:, None, None] * j[None, None, :]
        )
        return pts

    def to_patch(self, rc: np.ndarray) -> np.ndarray:
        """Working-slice (row, col) points ``(..., 2)`` -> patch (row, col) coordinates ``(..., 2)``."""
        d = np.asarray(rc, dtype=np.float64) - np.asarray(self.centre_rc)
        i = (d @ -np.asarray(self.axis_rc)) / self.step_rc[0] + (self.shape[0] - 1) / 2.0
        j = (d @ np.asarray(self.across_rc)) / self.step_rc[1] + (self.shape[1] - 1) / 2.0
        return np.stack([i, j], axis=-1)

    def corners(self) -> np.ndarray:
        """The rectangle's four corners (row, col), ``(4, 2)``: cranial-anterior, cranial-posterior,
        caudal-posterior, caudal-anterior."""
        rows, cols = self.shape
        hi = (rows / 2.0) * self.step_rc[0]
        wi = (cols / 2.0) * self.step_rc[1]
        c = np.asarray(self.centre_rc)
        up = np.asarray(self.axis_rc)
        post = np.asarray(self.across_rc)
        return np.stack(
            [
                c + up * hi - post * wi,
                c + up * hi + post * wi,
                c - up * hi + post * wi,
                c - up * hi - post * wi,
            ]
        )

    def contains(self, rc: np.ndarray) -> np.ndarray:
        """Whether working-slice points ``(..., 2)`` lie inside the rectangle."""
        ij = self.to_patch(rc)
        return (
            (ij[..., 0] >= -0.5)
            & (ij[..., 0] <= self.shape[0] - 0.5)
            & (ij[..., 1] >= -0.5)
            & (ij[..., 1] <= self.shape[1] - 0.5)
        )


def patch_frame(
    centre_rc: Sequence[float],
    axis_rc: Sequence[float],
    spacing_px: float,
    *,
    rotate_deg: float = 0.0,
    scale: float = 1.0,
    shift_spacings: Sequence[float] = (0.0, 0.0),
    shape: tuple[int, int] = PATCH_SHAPE,
) -> PatchFrame:
    """The patch rectangle of a disc (optionally perturbed, for training augmentation).

    Args:
        centre_rc: disc centre (row, col), working-slice pixels.
        axis_rc: direction towards the head along the spine (need not be unit length).
        spacing_px: local disc spacing, working-slice pixels.
        rotate_deg: extra rotation of the rectangle (degrees, positive = counter-clockwise on screen).
        scale: extra scaling of the rectangle.
        shift_spacings: extra shift (along the spine, across) in disc spacings.
        shape: patch size in pixels.
    """
    a = np.asarray(axis_rc, dtype=np.float64)
    norm = float(np.linalg.norm(a))
    a = a / norm if norm > 0 else np.array([-1.0, 0.0])
    if rotate_deg:
        t = np.deg2rad(rotate_deg)
        # rotation in (x = col, y = -row) screen coordinates
        x, y = a[1], -a[0]
        x, y = x * np.cos(t) - y * np.sin(t), x * np.sin(t) + y * np.cos(t)
        a = np.array([-y, x])
    across = np.array([a[1], -a[0]])  # posterior for an anterior-left, superior-up slice
    s = float(spacing_px) * float(scale)
    centre = (
        np.asarray(centre_rc, dtype=np.float64)
        + across * PATCH_POSTERIOR_SHIFT * s
        + a * float(shift_spacings[0]) * s
        + across * float(shift_spacings[1]) * s
    )
    step = (PATCH_HEIGHT_SPACINGS * s / shape[0], PATCH_WIDTH_SPACINGS * s / shape[1])
    return PatchFrame(
        centre_rc=(float(centre[0]), float(centre[1])),
        axis_rc=(float(a[0]), float(a[1])),
        across_rc=(float(across[0]), float(across[1])),
        step_rc=(float(step[0]), float(step[1])),
        shape=shape,
    )


def sample_patch(slice_normalised: np.ndarray, frame: PatchFrame) -> np.ndarray:
    """Bilinear patch ``frame.shape`` (float32) from a normalised slice; outside the slice reads 0."""
    from scipy import ndimage

    coords = frame.coordinates()
    return ndimage.map_coordinates(
        np.asarray(slice_normalised, dtype=np.float32), coords, order=1, mode="constant", cval=0.0
    ).astype(np.float32)


def head_offsets() -> dict[str, tuple[int, int]]:
    """``{task_key: (first output index, number of classes)}`` in the concatenated logits."""
    out = {}
    start = 0
    for task in GRADING_TASKS:
        out[task.key] = (start, task.n_classes)
        start += task.n_classes
    return out


class SagittalGraderNet(torch.nn.Module):
    """MONAI ResNet backbone + one linear head per grading. Input ``(B, 1, 64, 96)`` in [0, 1].

    Args:
        block_inplanes: feature widths of the four residual stages.
        layers: residual blocks per stage.
        dropout: dropout before the heads.
    """

    def __init__(
        self,
        block_inplanes: Sequence[int] = (24, 48, 96, 192),
        layers: Sequence[int] = (1, 1, 1, 1),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        from monai.networks.nets import ResNet

        self.config = {
            "block_inplanes": [int(c) for c in block_inplanes],
            "layers": [int(n) for n in layers],
            "dropout": float(dropout),
        }
        self.backbone = ResNet(
            block="basic",
            layers=self.config["layers"],
            block_inplanes=self.config["block_inplanes"],
            spatial_dims=2,
            n_input_channels=1,
            conv1_t_size=5,
            conv1_t_stride=1,
            feed_forward=False,
        )
        features = self.config["block_inplanes"][-1]
        self.dropout = torch.nn.Dropout(self.config["dropout"])
        self.heads = torch.nn.ModuleDict(
            {t.key: torch.nn.Linear(features, t.n_classes) for t in GRADING_TASKS}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenated logits of every head, ``(B, sum of classes)`` in :data:`TASK_KEYS` order."""
        f = self.dropout(self.backbone(x))
        return torch.cat([self.heads[k](f) for k in TASK_KEYS], dim=1)

    @staticmethod
    def split(logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """Concatenated logits -> ``{task_key: (B, n_classes)}``."""
        return {k: logits[:, s : s + n] for k, (s, n) in head_offsets().items()}
