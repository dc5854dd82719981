"""Cohort runs: the SpineAI workflow over many cases, resumable, locally or on a Dask cluster.

Public API (imported lazily, so ``import spineai.batch`` stays cheap):

- :func:`run_batch` -> :class:`BatchSummary` (``runner.py``)
- :func:`read_cohort`, :func:`read_manifest`, :func:`find_cases`, :class:`Case`, :class:`Cohort` (``cohort.py``)
- :func:`process_case`, :class:`CaseTask`, :class:`CaseContext` (``worker.py``)
- :func:`read_record`, :func:`is_finished` (``record.py``), :func:`write_tables` (``tables.py``)

See ``docs/batch.md``. Research use only; not for clinical decisions.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "run_batch": "runner",
    "BatchSummary": "runner",
    "read_cohort": "cohort",
    "read_manifest": "cohort",
    "find_cases": "cohort",
    "Case": "cohort",
    "Cohort": "cohort",
    "process_case": "worker",
    "CaseTask": "worker",
    "CaseContext": "worker",
    "read_record": "record",
    "is_finished": "record",
    "write_tables": "tables",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
