"""The radiograph herniation network: MONAI EfficientNet with five per-level outputs (and optional age).

After the seed paper (lumbar HNP from plain radiographs): an EfficientNet backbone (B5 in the paper,
ImageNet-pretrained there; here ``pretrained=False``, nothing is downloaded), one grey input channel, five
logits, one per disc level L1-L2 .. L5-S1, each turned into a probability by a sigmoid (multi-label: a
patient may have several herniated levels; binary cross-entropy per level), and optionally a second task,
age regression, from the same pooled features (the paper's "multitask learning with age").

``model_name`` is any of MONAI's ``efficientnet-b0`` .. ``efficientnet-b8``. With ``width_multiplier`` 1
the backbone is :class:`monai.networks.nets.EfficientNetBN` itself. A ``width_multiplier`` below 1 builds
MONAI's :class:`monai.networks.nets.EfficientNet` with the same blocks and depth and that many times the
model's channel widths: the shipped CPU demo uses EfficientNet-B0 at half width (1.07 M parameters per
model instead of 4.0 M, so a four-model ensemble stays under 10 MB in fp16 and trains on one CPU thread).

Tensors are ``(batch, 1, H, W)`` with H from the patient's head (row 0) to the feet and W as displayed.
The output is a dict-free tuple: ``(level_logits (B, 5), age (B,) or None)``.

:class:`RadiographEnsemble` holds the fold models of a cross-validation (bagging ensemble): its probability
is the mean of its members' sigmoid probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "AGE_MEAN",
    "AGE_SD",
    "ARCHITECTURE",
    "GRADCAM_LAYER",
    "LEVELS",
    "LEVEL_COLUMNS",
    "TASK",
    "RadiographEnsemble",
    "RadiographNet",
    "build_ensemble",
    "count_parameters",
]

#: architecture identifier stored in model cards
ARCHITECTURE = "spineai.radiograph.RadiographEnsemble"
#: task name in model cards
TASK = "radiograph_hnp"
#: disc levels, cranial to caudal, in output order
LEVELS: tuple[str, ...] = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
#: manifest column of each level's herniation label
LEVEL_COLUMNS: tuple[str, ...] = ("hnp_L1_2", "hnp_L2_3", "hnp_L3_4", "hnp_L4_5", "hnp_L5_S1")
#: module (inside one member) whose output Grad-CAM explains: the last convolution of EfficientNet
GRADCAM_LAYER = "backbone._conv_head"
#: age standardisation of the regression head (years): target = (age - AGE_MEAN) / AGE_SD
AGE_MEAN = 50.0
AGE_SD = 15.0

# EfficientNet-B0 block layout as MONAI's EfficientNetBN defines it (repeats, kernel, stride, expansion,
# input/output filters, squeeze-excitation ratio); the model's width/depth coefficients scale it.
_BLOCKS = [
    "r1_k3_s11_e1_i32_o16_se0.25",
    "r2_k3_s22_e6_i16_o24_se0.25",
    "r2_k5_s22_e6_i24_o40_se0.25",
    "r3_k3_s22_e6_i40_o80_se0.25",
    "r3_k5_s11_e6_i80_o112_se0.25",
    "r4_k5_s22_e6_i112_o192_se0.25",
    "r1_k3_s11_e6_i192_o320_se0.25",
]


def _backbone(
    model_name: str, width_multiplier: float, n_outputs: int, bn_momentum: float = 0.01
) -> nn.Module:
    from monai.networks.nets import EfficientNet, EfficientNetBN
    from monai.networks.nets.efficientnet import efficientnet_params

    if model_name not in efficientnet_params:
        raise ValueError(f"model_name {model_name!r} is not one of {', '.join(efficientnet_params)}")
    if not 0.1 <= width_multiplier <= 1.0:
        raise ValueError(f"width_multiplier must be in [0.1, 1], got {width_multiplier}")
    norm = ("batch", {"eps": 1e-3, "momentum": float(bn_momentum)})
    if width_multiplier == 1.0:
        return EfficientNetBN(
            model_name, pretrained=False, spatial_dims=2, in_channels=1, num_classes=n_outputs, norm=norm
        )
    width, depth, image_size, dropout, drop_connect = efficientnet_params[model_name]
    return EfficientNet(
        _BLOCKS,
        spatial_dims=2,
        in_channels=1,
        num_classes=n_outputs,
        width_coefficient=width * width_multiplier,
        depth_coefficient=depth,
        dropout_rate=dropout,
        image_size=image_size,
        drop_connect_rate=drop_connect,
        norm=norm,
    )


class RadiographNet(nn.Module):
    """EfficientNet with five herniation logits (L1-L2 .. L5-S1) and an optional age head.

    Args:
        model_name: MONAI EfficientNet name, ``"efficientnet-b5"`` as the paper, ``"efficientnet-b0"`` the
            smallest.
        width_multiplier: channel-width factor on top of the model's own (1 = the standard model).
        age_task: add the age-regression head (standardised age, see :data:`AGE_MEAN`, :data:`AGE_SD`).
        bn_momentum: batch-norm running-statistics momentum (MONAI's and TensorFlow's 0.01 by default; a
            short CPU training needs PyTorch's 0.1 for the running statistics to settle in a few hundred steps).
    """

    def __init__(
        self,
        model_name: str = "efficientnet-b5",
        width_multiplier: float = 1.0,
        age_task: bool = False,
        bn_momentum: float = 0.01,
    ) -> None:
        super().__init__()
        if not 0.0 < bn_momentum <= 1.0:
            raise ValueError(f"bn_momentum must be in (0, 1], got {bn_momentum}")
        self.config: dict[str, Any] = {
            "model_name": model_name,
            "width_multiplier": float(width_multiplier),
            "age_task": bool(age_task),
            "bn_momentum": float(bn_momentum),
        }
        self.backbone = _backbone(model_name, float(width_multiplier), len(LEVELS), float(bn_momentum))
        n_features = self.backbone._fc.in_features
        self.age_head = nn.Linear(n_features, 1) if age_task else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(level logits (B, 5), standardised age (B,) or None)`` for ``x`` of shape ``(B, 1, H, W)``."""
        b = self.backbone
        h = b._swish(b._bn0(b._conv_stem(b._conv_stem_padding(x))))
        h = b._blocks(h)
        h = b._swish(b._bn1(b._conv_head(b._conv_head_padding(h))))
        pooled = b._dropout(b._avg_pooling(h).flatten(start_dim=1))
        logits = b._fc(pooled)
        age = self.age_head(pooled)[:, 0] if self.age_head is not None else None
        return logits, age


class _LevelLogits(nn.Module):
    """The level logits of one member only (what Grad-CAM needs: a module returning ``(B, classes)``)."""

    def __init__(self, net: RadiographNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0]


class RadiographEnsemble(nn.Module):
    """Bagging ensemble of fold models: mean of the members' sigmoid probabilities.

    Args:
        n_members: fold models (4 for four-fold cross-validation; 1 for a single model).
        model_name, width_multiplier, age_task, bn_momentum: as :class:`RadiographNet`.
        image_size: side (pixels) of the square network input the members were trained on.
    """

    def __init__(
        self,
        n_members: int = 4,
        model_name: str = "efficientnet-b5",
        width_multiplier: float = 1.0,
        age_task: bool = False,
        image_size: int = 456,
        bn_momentum: float = 0.01,
    ) -> None:
        super().__init__()
        if n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {n_members}")
        if image_size < 32:
            raise ValueError(f"image_size must be >= 32 pixels, got {image_size}")
        self.config: dict[str, Any] = {
            "n_members": int(n_members),
            "model_name": model_name,
            "width_multiplier": float(width_multiplier),
            "age_task": bool(age_task),
            "image_size": int(image_size),
            "bn_momentum": float(bn_momentum),
        }
        self.members = nn.ModuleList(
            RadiographNet(model_name, width_multiplier, age_task, bn_momentum) for _ in range(int(n_members))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean probability per level ``(B, 5)`` over the members."""
        return torch.stack([torch.sigmoid(m(x)[0]) for m in self.members]).mean(dim=0)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(mean probability (B, 5), per-member probabilities (M, B, 5), mean age in years (B,) or None)``."""
        outs = [m(x) for m in self.members]
        probs = torch.stack([torch.sigmoid(o[0]) for o in outs])
        age = None
        if self.config["age_task"]:
            age = torch.stack([o[1] for o in outs]).mean(dim=0) * AGE_SD + AGE_MEAN
        return probs.mean(dim=0), probs, age

    def member_logits(self, k: int) -> nn.Module:
        """Member ``k`` as a module returning its level logits only (for Grad-CAM)."""
        return _LevelLogits(self.members[k])


def build_ensemble(config: Mapping[str, Any] | None = None) -> RadiographEnsemble:
    """The ensemble from a model card's ``config`` (defaults for missing keys)."""
    cfg = dict(config or {})
    return RadiographEnsemble(
        n_members=int(cfg.get("n_members", 4)),
        model_name=str(cfg.get("model_name", "efficientnet-b5")),
        width_multiplier=float(cfg.get("width_multiplier", 1.0)),
        age_task=bool(cfg.get("age_task", False)),
        image_size=int(cfg.get("image_size", 456)),
        bn_momentum=float(cfg.get("bn_momentum", 0.01)),
    )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def level_names(levels: Sequence[str] = LEVELS) -> list[str]:
    """Level names as a list (for cards and reports)."""
    return list(levels)
