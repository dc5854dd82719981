"""SpineAI engine: lumbosacral CT segmentation, tESI triangle measurement and planning, lumbar grading.

One call per capability (see :mod:`spineai.api`, loaded on first use so ``import spineai`` stays cheap)::

    import spineai
    seg = spineai.segment("ct.nii.gz", "seg-out")
    plan = spineai.plan_injection(seg.labels, "ct.nii.gz", "plan-out")
    case = spineai.run_case("ct.nii.gz", "case-out")          # segment, levels, measure, plan
    axial = spineai.grade_axial("l45_axial.nii.gz", "axial-out")
    cohort = spineai.run_batch("manifest.csv", "cohort-out", steps=("levels", "measure", "plan"))

Research use only; not for clinical decisions.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it (imported on first attribute access)
_LAZY = {
    "segment": "spineai.api",
    "measure_triangles": "spineai.api",
    "plan_injection": "spineai.api",
    "grade_sagittal": "spineai.api",
    "predict_outcome": "spineai.api",
    "grade_axial": "spineai.api",
    "grade_stenosis": "spineai.api",
    "read_radiograph": "spineai.api",
    "run_case": "spineai.api",
    "load_image": "spineai.api",
    "load_segmentation": "spineai.api",
    "run_batch": "spineai.batch",
    "write_report": "spineai.reports",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
