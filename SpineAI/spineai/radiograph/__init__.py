"""Lumbar disc herniation per level from plain radiographs (after the seed paper: CLAHE, 4-fold bagging).

Two designs: the shipped **disc crops** (a disc locator, then a small reader of a crop around each disc;
``discs.py``, ``reader.py``) and the paper's **whole image** EfficientNet (``network.py``), which stayed at
chance when trained from scratch on the CPU. Public API (imported lazily, so ``import spineai.radiograph``
does not load PyTorch):

- :func:`read_radiograph` -> :class:`RadiographResult` (``predict.py``), :func:`load_radiograph_model`
- :class:`DiscLocator`, :func:`locate_discs`, :func:`project_disc_centres` (``discs.py``)
- :class:`DiscCropsEnsemble`, :func:`read_disc_levels` (``reader.py``)
- :func:`train_radiograph_discs` (disc crops), :func:`train_radiograph`, :func:`train_radiograph_arrays`,
  :class:`RadiographTrainConfig` (whole image) (``train.py``)
- :func:`evaluate_radiograph` (``evaluate.py``)
- :class:`RadiographNet`, :class:`RadiographEnsemble`, :data:`LEVELS` (``network.py``)
- :func:`load_radiograph`, :func:`prepare_input`, :func:`read_yolo_boxes` (``image.py``)
- :func:`sample_radiograph_patient`, :func:`render_radiograph_patient`, :func:`write_radiograph_cohort`
  (``phantom.py``: DRRs of the CT phantom with degenerated, herniated discs)

Research use only; not for clinical decisions.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "read_radiograph": "predict",
    "RadiographResult": "predict",
    "load_radiograph_model": "predict",
    "train_radiograph": "train",
    "train_radiograph_discs": "train",
    "DiscLocator": "discs",
    "locate_discs": "discs",
    "project_disc_centres": "discs",
    "DiscCropsEnsemble": "reader",
    "read_disc_levels": "reader",
    "train_radiograph_arrays": "train",
    "RadiographTrainConfig": "train",
    "evaluate_radiograph": "evaluate",
    "RadiographNet": "network",
    "RadiographEnsemble": "network",
    "LEVELS": "network",
    "load_radiograph": "image",
    "prepare_input": "image",
    "read_yolo_boxes": "image",
    "sample_radiograph_patient": "phantom",
    "render_radiograph_patient": "phantom",
    "write_radiograph_cohort": "phantom",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
