"""Grading of lumbar MRI: per-disc gradings of sagittal T2 slices with Grad-CAM.

Public API (imported lazily, so ``import spineai.grading`` does not load PyTorch):

- :func:`grade_sagittal` -> :class:`SagittalGradingResult` of :class:`DiscGrade` (``sagittal.py``)
- :func:`evaluate_sagittal` (``evaluation.py``)
- :data:`GRADING_TASKS`, :func:`level_name` (``tasks.py``)
- :func:`read_sagittal_folder`, :func:`patient_split` (``datasets.py``)
- :func:`grading_metrics`, :func:`gwet_ac1`, :func:`gwet_ac1_from_table`, :func:`confusion` (``metrics.py``)
- :func:`train_locator`, :func:`train_grader`, :class:`LocatorTrainConfig`, :class:`GraderTrainConfig`
  (``train.py``)
- :class:`SagittalGradingModel`, :func:`load_grading_model` (``model.py``)
- :func:`synthetic_sagittal_slice` (``synthetic.py``)

Research use only; not for clinical decisions.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "grade_sagittal": "sagittal",
    "SagittalGradingResult": "sagittal",
    "DiscGrade": "sagittal",
    "evaluate_sagittal": "evaluation",
    "GRADING_TASKS": "tasks",
    "TASK_KEYS": "tasks",
    "level_name": "tasks",
    "read_sagittal_folder": "datasets",
    "patient_split": "datasets",
    "grading_metrics": "metrics",
    "gwet_ac1": "metrics",
    "gwet_ac1_from_table": "metrics",
    "confusion": "metrics",
    "train_locator": "train",
    "train_grader": "train",
    "LocatorTrainConfig": "train",
    "GraderTrainConfig": "train",
    "SagittalGradingModel": "model",
    "load_grading_model": "model",
    "synthetic_sagittal_slice": "synthetic",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
