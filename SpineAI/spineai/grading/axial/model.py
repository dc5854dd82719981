"""The multi-task axial grader: a MONAI ResNet backbone and three parallel heads (LDH, LCCS, LNRC).

Architecture (seed 004): ResNet-50 (:func:`monai.networks.nets.resnet50`, ``spatial_dims=2``,
``n_input_channels=1``, ``feed_forward=False``: global-average-pooled features, no torchvision) -> a
2048-d feature -> three parallel fully-connected heads of 4 grades each. Depth (10/18/34/50/101/152),
width (``widen_factor``), the first convolution's stride and the max-pool are configurable so tests and
the CPU demo can use a small ResNet; the model card records the configuration. :data:`PAPER_CONFIG` is
the paper's network (ResNet-50, 224 x 224 input, the classic stride-2 stem); :data:`DEMO_CONFIG` the
shipped demo's.

``forward`` returns the heads' logits concatenated, ``(B, 12)`` in :data:`AXIAL_TASK_KEYS` order, so one
output index addresses one grade of one grading (what Grad-CAM needs); :meth:`AxialGraderNet.split`
cuts them per grading.

Input: the working slice (:mod:`.slices`) scaled to [0, 1] by its 0.5th/99.5th intensity percentiles and
fitted (aspect kept, zero padded) into ``input_size x input_size`` (:func:`prepare_axial_input`).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import WeightsError
from ...weights import ModelCard, check_card, load_card, load_into, model_weights_path
from .config import DEMO_CONFIG, PAPER_CONFIG
from .grades import AXIAL_TASK_KEYS, GRADES

__all__ = [
    "ARCHITECTURE",
    "DEMO_CONFIG",
    "GRADCAM_LAYER",
    "MODEL_NAME",
    "PAPER_CONFIG",
    "TASK",
    "AxialGraderNet",
    "class_names",
    "load_axial_model",
    "prepare_axial_input",
]

#: registry name of the shipped demo model
MODEL_NAME = "axial_grader_demo"
#: model-card task of every axial grading model
TASK = "axial_mri_grading"
ARCHITECTURE = "spineai.grading.axial.AxialGraderNet"
#: the last convolutional stage (Grad-CAM's target layer)
GRADCAM_LAYER = "backbone.layer4"
_DEPTHS = (10, 18, 34, 50, 101, 152)


class AxialGraderNet(torch.nn.Module):
    """MONAI ResNet backbone + three linear heads (LDH, LCCS, LNRC; 4 grades each).

    Args:
        depth: ResNet depth (10, 18, 34, 50, 101, 152).
        widen_factor: width multiplier of every stage (1.0: 64-128-256-512 planes).
        conv1_stride: stride of the first 7 x 7 convolution (2 as in He et al.; MONAI's default is 1).
        no_max_pool: drop the stem's max-pool (finer last feature map for Grad-CAM).
        dropout: dropout on the pooled feature before the heads.
        input_size: side of the square network input (pixels); recorded for inference.
    """

    def __init__(
        self,
        depth: int = 50,
        widen_factor: float = 1.0,
        conv1_stride: int = 2,
        no_max_pool: bool = False,
        dropout: float = 0.0,
        input_size: int = 224,
    ) -> None:
        super().__init__()
        from monai.networks.nets import resnet

        if int(depth) not in _DEPTHS:
            raise ValueError(f"ResNet depth {depth} is not one of {_DEPTHS}")
        self.config = {
            "depth": int(depth),
            "widen_factor": float(widen_factor),
            "conv1_stride": int(conv1_stride),
            "no_max_pool": bool(no_max_pool),
            "dropout": float(dropout),
            "input_size": int(input_size),
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
            self.feature_dim = int(self.backbone(torch.zeros(1, 1, 64, 64)).shape[1])
            self.backbone.train(was)
        self.dropout = torch.nn.Dropout(self.config["dropout"])
        self.heads = torch.nn.ModuleDict(
            {k: torch.nn.Linear(self.feature_dim, len(GRADES)) for k in AXIAL_TASK_KEYS}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenated logits ``(B, 12)``: LDH 0-3, LCCS 0-3, LNRC 0-3. ``x``: ``(B, 1, S, S)`` in [0, 1]."""
        f = self.dropout(self.backbone(x))
        return torch.cat([self.heads[k](f) for k in AXIAL_TASK_KEYS], dim=1)

    @staticmethod
    def split(logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """Concatenated logits -> ``{task: (B, 4)}``."""
        n = len(GRADES)
        return {k: logits[:, i * n : (i + 1) * n] for i, k in enumerate(AXIAL_TASK_KEYS)}


def class_names() -> list[str]:
    """Output names in order, ``"<task>=<grade>"``."""
    return [f"{k}={g}" for k in AXIAL_TASK_KEYS for g in GRADES]


def prepare_axial_input(working: np.ndarray, size: int) -> tuple[np.ndarray, Any]:
    """Network input ``(size, size)`` float32 in [0, 1] and the scaling geometry of a working slice.

    The geometry (``LocatorGeometry``: ``input = scale * working + offset`` per axis) maps input pixels
    back to the working slice.
    """
    from ..disc_detection import locator_input, normalise_slice

    return locator_input(normalise_slice(working), int(size))


_CACHE: dict[tuple[str, float, int], tuple[AxialGraderNet, ModelCard]] = {}
_LOCK = threading.Lock()


def load_axial_model(weights: str | os.PathLike | None = None) -> tuple[AxialGraderNet, ModelCard]:
    """Load an axial grader (verified against its card), in eval mode on the CPU.

    Args:
        weights: a ``.safetensors`` file with its card beside it; ``None``: the shipped demo model.

    Raises:
        WeightsError: missing, tampered or mismatched weights, or a card of another task.
    """
    path = Path(weights) if weights is not None else model_weights_path(MODEL_NAME)
    if not path.is_file():
        raise WeightsError(
            f"Axial grading weights '{path}' are missing.\n"
            "  Fix: reinstall spineai (the shipped demo is spineai/resources/models/axial_grader_demo.safetensors) "
            "or pass --weights with a model trained by 'spineai train grading-axial'."
        )
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime, stat.st_size)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        card = load_card(path)
        check_card(card, TASK, ARCHITECTURE, source=str(path))
        config = card.config if isinstance(card.config, dict) else {}
        try:
            net = AxialGraderNet(**config)
        except (TypeError, ValueError) as exc:
            raise WeightsError(
                f"The card of '{path}' describes an axial grader that cannot be built ({exc}).\n"
                "  Fix: use the card written together with the weights."
            ) from None
        load_into(net, path, card)
        net.eval()
        _CACHE[key] = (net, card)
        return net, card
