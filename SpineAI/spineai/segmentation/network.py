"""The SPINECT 3D U-Net (Fan et al., AJNR 2019) built from MONAI blocks.

Architecture (paper Fig 2, SPEC section 1): an encoder of ``len(features)`` resolution levels, each two
3x3x3 convolutions with batch norm and ReLU, separated by 2x2x2 max pooling; a decoder that upsamples
with a 2x2x2 stride-2 transposed convolution (halving the channels), concatenates the encoder features
of the same resolution (4 skip concatenations for 5 levels) and applies two 3x3x3 conv + batch norm +
ReLU; a final 1x1x1 convolution to one channel per class. ``forward`` returns logits (what the
weighted softmax cross-entropy of training needs); :meth:`SpineUNet3D.predict_proba` adds the paper's
softmax layer.

With the paper's features 32-64-128-256-512, one input channel and 3 output classes the network has
22,581,283 trainable parameters (the paper reports 22,581,411 for its Keras model).

Tensors are ``(batch, channel, D, H, W)``; in the engine's canonical orientation D runs inferior to
superior (z), H anterior to posterior (y) and W right to left (x), in 1 mm voxels (LPS frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.networks.blocks import Convolution, UpSample
from torch import nn

from .config import DEFAULT_FEATURES as DEFAULT_FEATURES
from .config import PAPER_FEATURES as PAPER_FEATURES

#: architecture identifier stored in model cards
ARCHITECTURE = "spineai.segmentation.SpineUNet3D"


class _DoubleConv(nn.Sequential):
    """Two 3x3x3 convolutions, each followed by batch norm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, norm: str, act: str) -> None:
        super().__init__(
            Convolution(3, in_channels, out_channels, kernel_size=3, norm=norm, act=act, adn_ordering="NDA"),
            Convolution(3, out_channels, out_channels, kernel_size=3, norm=norm, act=act, adn_ordering="NDA"),
        )


class SpineUNet3D(nn.Module):
    """Classic 3D U-Net with configurable width and depth.

    Args:
        out_channels: number of output classes (background included).
        in_channels: number of image channels (1 for CT).
        features: channels per resolution level, shallowest first; ``len(features) - 1`` poolings and
            skip concatenations. Every spatial input size must be divisible by ``2 ** (len(features) - 1)``.
        norm: MONAI norm name ("batch" as the paper; "instance" is accepted for small batches).
        act: MONAI activation name ("relu" as the paper).

    Input ``(B, in_channels, D, H, W)``; output logits ``(B, out_channels, D, H, W)``.
    """

    def __init__(
        self,
        out_channels: int,
        in_channels: int = 1,
        features: Sequence[int] = DEFAULT_FEATURES,
        norm: str = "batch",
        act: str = "relu",
    ) -> None:
        super().__init__()
        features = tuple(int(f) for f in features)
        if len(features) < 2 or any(f < 1 for f in features):
            raise ValueError(f"features must list at least two positive widths, got {features}")
        if out_channels < 2:
            raise ValueError(
                f"out_channels must be at least 2 (background and one structure), got {out_channels}"
            )
        self.config: dict[str, Any] = {
            "in_channels": int(in_channels),
            "out_channels": int(out_channels),
            "features": list(features),
            "norm": norm,
            "act": act,
        }
        self.encoders = nn.ModuleList()
        channels = in_channels
        for width in features:
            self.encoders.append(_DoubleConv(channels, width, norm, act))
            channels = width
        self.pool = nn.MaxPool3d(kernel_size=2, stride=2)
        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for deeper, width in zip(features[:0:-1], features[-2::-1], strict=True):
            self.upsamplers.append(UpSample(3, deeper, width, scale_factor=2, mode="deconv"))
            self.decoders.append(_DoubleConv(2 * width, width, norm, act))
        self.head = Convolution(3, features[0], out_channels, kernel_size=1, conv_only=True)

    @property
    def divisor(self) -> int:
        """Every spatial input size must be a multiple of this (2 ** number of poolings)."""
        return 2 ** (len(self.config["features"]) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, C, D, H, W)`` for an image batch ``(B, in_channels, D, H, W)``."""
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for upsample, decoder in zip(self.upsamplers, self.decoders, strict=True):
            x = decoder(torch.cat([skips.pop(), upsample(x)], dim=1))
        return self.head(x)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (the paper's final softmax layer), ``(B, C, D, H, W)``."""
        return torch.softmax(self.forward(x), dim=1)


def fold_batch_norm_(model: nn.Module) -> nn.Module:
    """Fold every batch norm into the convolution before it, for inference (in place; returns ``model``).

    In eval mode a batch norm is a fixed per-channel affine map, so ``conv -> BN`` equals one convolution
    with rescaled weights and a shifted bias (:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`); the norm
    becomes an identity. Same output up to float rounding, a quarter less CPU time for this U-Net. The
    model is put in eval mode and must not be trained afterwards.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    for module in model.modules():
        if not isinstance(module, Convolution):
            continue
        conv, adn = getattr(module, "conv", None), getattr(module, "adn", None)
        norm = getattr(adn, "N", None)
        if isinstance(conv, nn.Conv3d) and isinstance(norm, nn.BatchNorm3d) and norm.track_running_stats:
            module.conv = fuse_conv_bn_eval(conv, norm)
            adn.N = nn.Identity()
    return model


def he_init_(model: nn.Module) -> nn.Module:
    """He (Kaiming normal, fan-in, ReLU gain) initialisation of every convolution; zero biases.

    Batch-norm layers start at weight 1, bias 0. Returns the model (modified in place).
    """
    for module in model.modules():
        if isinstance(module, nn.Conv3d | nn.ConvTranspose3d):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm3d | nn.InstanceNorm3d) and module.affine:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


def build_network(config: dict[str, Any], init: bool = True) -> SpineUNet3D:
    """A :class:`SpineUNet3D` from a config dict (as stored in a model card), He-initialised."""
    known = {"in_channels", "out_channels", "features", "norm", "act"}
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"unknown network settings {sorted(unknown)}; known: {sorted(known)}")
    model = SpineUNet3D(
        out_channels=int(config["out_channels"]),
        in_channels=int(config.get("in_channels", 1)),
        features=tuple(config.get("features", DEFAULT_FEATURES)),
        norm=str(config.get("norm", "batch")),
        act=str(config.get("act", "relu")),
    )
    return he_init_(model) if init else model


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``; batch-norm running statistics are not parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
