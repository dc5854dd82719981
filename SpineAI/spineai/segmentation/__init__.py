"""CT segmentation of lumbosacral bones, discs, dural sac and nerve roots (the SPINECT 3D U-Net).

Public API (imported lazily, so ``import spineai.segmentation`` does not load PyTorch):

- :func:`segment` -> :class:`SegmentationResult` (``inference.py``)
- :func:`train_segmentation`, :class:`TrainConfig` (``train.py``)
- :func:`evaluate_segmentation` (``metrics.py``)
- :class:`SpineUNet3D`, :func:`build_network`, :func:`count_parameters` (``network.py``)
- :data:`CT_CLASS_NAMES` (``data.py``)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "segment": "inference",
    "SegmentationResult": "inference",
    "load_segmentation_model": "inference",
    "train_segmentation": "train",
    "TrainConfig": "train",
    "evaluate_segmentation": "metrics",
    "SpineUNet3D": "network",
    "build_network": "network",
    "count_parameters": "network",
    "CT_CLASS_NAMES": "data",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
