"""Grading of lumbar MRI with Grad-CAM: per-disc gradings of sagittal T2 slices; LDH, LCCS and LNRC of
axial T2 slices (``axial/``); two-stage stenosis detection and grading on axial slices (``stenosis/``).

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
- :func:`grade_axial` -> :class:`AxialGradingResult`, :func:`evaluate_axial`, :func:`generate_axial_t2`
  (``axial/``)
- :func:`grade_stenosis` -> :class:`StenosisResult`, :func:`evaluate_stenosis` (``stenosis/``)

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
    "grade_axial": "axial.predict",
    "AxialGradingResult": "axial.predict",
    "evaluate_axial": "axial.evaluate",
    "generate_axial_t2": "axial.phantom",
    "grade_stenosis": "stenosis.predict",
    "StenosisResult": "stenosis.predict",
    "evaluate_stenosis": "stenosis.evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
