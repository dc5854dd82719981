"""Axial lumbar MRI: LDH, LCCS and LNRC grading (seed 004) and the synthetic axial T2 phantom.

Public API (imported lazily, so ``import spineai.grading.axial`` does not load PyTorch):

- :func:`grade_axial` -> :class:`AxialGradingResult` (``predict.py``)
- :func:`evaluate_axial`, :func:`axial_metrics` (``evaluate.py``)
- :func:`train_axial_grader`, :func:`train_axial_from_folder`, :class:`AxialTrainConfig` (``train.py``)
- :class:`AxialGraderNet`, :func:`load_axial_model`, :data:`PAPER_CONFIG`, :data:`DEMO_CONFIG` (``model.py``)
- :func:`read_axial_slice`, :class:`AxialSlice` (``slices.py``); :func:`read_manifest` (``data.py``)
- :func:`generate_axial_t2`, :func:`design_axial_case`, :func:`write_axial_case`,
  :func:`write_axial_dataset`, :class:`AxialT2Case` (``phantom.py``)
- :data:`AXIAL_TASKS`, :data:`REGIONS` (``grades.py``)

Research use only; not for clinical decisions.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "grade_axial": "predict",
    "AxialGradingResult": "predict",
    "evaluate_axial": "evaluate",
    "axial_metrics": "evaluate",
    "train_axial_grader": "train",
    "train_axial_from_folder": "train",
    "AxialTrainConfig": "train",
    "AxialGraderNet": "model",
    "load_axial_model": "model",
    "PAPER_CONFIG": "model",
    "DEMO_CONFIG": "model",
    "read_axial_slice": "slices",
    "AxialSlice": "slices",
    "read_manifest": "data",
    "generate_axial_t2": "phantom",
    "design_axial_case": "phantom",
    "write_axial_case": "phantom",
    "write_axial_dataset": "phantom",
    "AxialT2Case": "phantom",
    "AXIAL_TASKS": "grades",
    "REGIONS": "grades",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
