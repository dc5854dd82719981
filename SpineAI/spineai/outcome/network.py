"""The outcome 3D CNN (Kim et al., Pain Physician 2022): four convolution layers on a 13 x 100 x 40 ROI.

The paper gives: a custom 3D CNN of 4 layers, ReLU, dropout 0.1, input 100 (H) x 40 (W) x 13 (D) x 1,
output the probability of a good outcome (>= 50 % NRS-11 reduction at 2 months). Its figure (layer widths,
pooling) is not reproduced in the text; this implementation fixes them as follows and states it in the
model card:

* four 3x3x3 convolutions (``conv1`` .. ``conv4``), each followed by ReLU, optionally preceded by batch
  normalisation (default on; ``norm="none"`` gives the paper's plain layers);
* max pooling after ``conv1`` and ``conv2`` in-plane only (1x2x2: the 13 sagittal slices are kept, so the
  network can tell left from right foramina) and after ``conv3`` 2x2x2, so ``conv4`` works on a 6 x 12 x 5
  grid (the Grad-CAM resolution);
* global max pooling (a focal finding, e.g. one stenotic foramen, is not averaged away over the ROI;
  ``pooling="avg"`` gives global average pooling), dropout 0.1, a linear layer to two logits (poor, good);
  the probability of a good outcome is their softmax's second entry.

Tensors are ``(batch, 1, D=13, H=100, W=40)``: D sagittal slices from the patient's left to right, H
superior to inferior, W anterior to posterior (see :mod:`spineai.outcome.roi`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

#: architecture identifier stored in model cards
ARCHITECTURE = "spineai.outcome.OutcomeCNN3D"
#: the task name in model cards
TASK = "tesi_outcome"
#: output classes in logit order
CLASS_NAMES: tuple[str, str] = ("poor_outcome", "good_outcome")
DEFAULT_FEATURES: tuple[int, int, int, int] = (8, 16, 32, 64)
#: module whose output Grad-CAM explains (the last convolution layer, after its ReLU)
GRADCAM_LAYER = "conv4"


class OutcomeCNN3D(nn.Module):
    """Four-layer 3D CNN giving the logits of (poor, good) outcome.

    Args:
        features: output channels of conv1..conv4.
        dropout: dropout before the linear layer (0.1 as the paper).
        norm: ``"batch"`` (batch norm before each ReLU), ``"group"`` (group norm, 4 channels per group) or
            ``"none"`` (the paper's plain layers).
        in_channels: image channels (1).
        pooling: global pooling of ``conv4`` before the linear layer: ``"max"`` (default: a focal finding
            such as one stenotic foramen is not averaged away) or ``"avg"``.
    """

    def __init__(
        self,
        features: Sequence[int] = DEFAULT_FEATURES,
        dropout: float = 0.1,
        norm: str = "batch",
        in_channels: int = 1,
        pooling: str = "max",
    ) -> None:
        super().__init__()
        feats = [int(f) for f in features]
        if len(feats) != 4 or any(f < 1 for f in feats):
            raise ValueError(f"features must list four positive widths (conv1..conv4), got {features}")
        if norm not in ("batch", "group", "none"):
            raise ValueError(f"norm must be 'batch', 'group' or 'none', got {norm!r}")
        if pooling not in ("avg", "max"):
            raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.config: dict[str, Any] = {
            "features": feats,
            "dropout": float(dropout),
            "norm": norm,
            "in_channels": int(in_channels),
            "pooling": pooling,
        }
        chans = [int(in_channels), *feats]
        pools: list[tuple[int, int, int] | None] = [(1, 2, 2), (1, 2, 2), (2, 2, 2), None]
        for k in range(4):
            layers: list[nn.Module] = [nn.Conv3d(chans[k], chans[k + 1], kernel_size=3, padding=1)]
            if norm == "batch":
                layers.append(nn.BatchNorm3d(chans[k + 1]))
            elif (
                norm == "group"
            ):  # per-case normalisation: identical in training and inference, any batch size
                layers.append(nn.GroupNorm(max(1, chans[k + 1] // 4), chans[k + 1]))
            layers.append(nn.ReLU(inplace=False))
            setattr(self, f"conv{k + 1}", nn.Sequential(*layers))
            if pools[k] is not None:
                setattr(self, f"pool{k + 1}", nn.MaxPool3d(pools[k]))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feats[-1], len(CLASS_NAMES))
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Output of ``conv4``: ``(B, features[3], D', H', W')`` (6 x 12 x 5 for a 13 x 100 x 40 input)."""
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(x))
        x = self.pool3(self.conv3(x))
        return self.conv4(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 2)`` of (poor, good) for ``x`` of shape ``(B, 1, D, H, W)``."""
        f = self.features(x)
        if self.config["pooling"] == "max":
            pooled = torch.flatten(nn.functional.adaptive_max_pool3d(f, 1), 1)
        else:
            pooled = torch.flatten(nn.functional.adaptive_avg_pool3d(f, 1), 1)
        return self.classifier(self.dropout(pooled))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Probability of a good outcome, ``(B,)`` (evaluation mode is the caller's business)."""
        return torch.softmax(self.forward(x), dim=1)[:, 1]


def build_network(config: Mapping[str, Any] | None = None) -> OutcomeCNN3D:
    """The network from a model card's ``config`` (defaults for missing keys)."""
    cfg = dict(config or {})
    return OutcomeCNN3D(
        features=cfg.get("features", DEFAULT_FEATURES),
        dropout=float(cfg.get("dropout", 0.1)),
        norm=str(cfg.get("norm", "batch")),
        in_channels=int(cfg.get("in_channels", 1)),
        pooling=str(cfg.get("pooling", "max")),
    )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))
