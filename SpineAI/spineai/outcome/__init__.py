"""Prediction of transforaminal epidural steroid injection (tESI) outcome from sagittal T2 MRI (Kim et al. 2022).

Public API (imported lazily, so ``import spineai.outcome`` does not load PyTorch):

- :func:`predict_outcome` -> :class:`OutcomeResult` (``predict.py``), :func:`load_outcome_model`
- :func:`train_outcome`, :func:`train_outcome_from_data`, :class:`OutcomeTrainConfig` (``train.py``)
- :func:`evaluate_outcome` (``evaluate.py``)
- :class:`OutcomeCNN3D`, :func:`build_network` (``network.py``)
- :func:`extract_roi`, :func:`locate_discs`, :func:`check_sagittal_t2` (``roi.py``)
- :func:`generate_sagittal_t2`, :func:`sample_case`, :func:`outcome_probability`, :func:`bayes_ceiling_auc`
  (``mri_phantom.py``: synthetic sagittal T2 phantom and the cohort's generative outcome model)

Research use only; not for clinical decisions.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "predict_outcome": "predict",
    "OutcomeResult": "predict",
    "load_outcome_model": "predict",
    "train_outcome": "train",
    "train_outcome_from_data": "train",
    "OutcomeTrainConfig": "train",
    "evaluate_outcome": "evaluate",
    "OutcomeCNN3D": "network",
    "build_network": "network",
    "extract_roi": "roi",
    "locate_discs": "roi",
    "check_sagittal_t2": "roi",
    "generate_sagittal_t2": "mri_phantom",
    "sample_case": "mri_phantom",
    "outcome_probability": "mri_phantom",
    "bayes_ceiling_auc": "mri_phantom",
    "write_sagittal_case": "mri_phantom",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
