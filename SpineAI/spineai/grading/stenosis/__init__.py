"""Two-stage detection and grading of lumbar stenosis on axial MRI (seed 001, after Hallinan et al.).

Stage 1 detects five regions of interest as boxes (central canal, left/right lateral recess, left/right
neural foramen); stage 2 grades each region's crop normal / mild / moderate / severe.

Public API (imported lazily):

- :func:`grade_stenosis` -> :class:`StenosisResult` of :class:`RegionGrade` (``predict.py``)
- :func:`evaluate_stenosis`, :func:`stenosis_metrics` (``evaluate.py``)
- :func:`train_detector`, :func:`train_roi_grader`, :func:`train_stenosis_from_folder`,
  :class:`DetectorTrainConfig`, :class:`RoiGraderTrainConfig` (``train.py``)
- :class:`StenosisModel`, :func:`load_stenosis_model` (``model.py``)

Research use only; not for clinical decisions.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "grade_stenosis": "predict",
    "StenosisResult": "predict",
    "RegionGrade": "predict",
    "evaluate_stenosis": "evaluate",
    "stenosis_metrics": "evaluate",
    "train_detector": "train",
    "train_roi_grader": "train",
    "train_stenosis_from_folder": "train",
    "DetectorTrainConfig": "train",
    "RoiGraderTrainConfig": "train",
    "StenosisModel": "model",
    "load_stenosis_model": "model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
