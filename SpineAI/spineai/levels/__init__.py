"""Level labels you can trust: vertebra numbering with evidence, transitional anatomy, overrides, morphometry.

>>> from spineai.levels import label_levels, measure_morphometry  # doctest: +SKIP
>>> result = label_levels("case01/labels.nii.gz", ct="case01/ct.nii.gz")  # doctest: +SKIP
>>> result.names, result.transitional["castellvi_type"]  # doctest: +SKIP

Modules: :mod:`~spineai.levels.instances` (vertebrae of a label map and their frames),
:mod:`~.labelling` (:func:`label_levels`), :mod:`~.override`, :mod:`~.relabel`, :mod:`~.outputs`,
:mod:`~.morphometry` (:func:`measure_morphometry`) and :mod:`~.cli`. See ``docs/levels.md`` and
``docs/morphometry.md``. Coordinates are LPS (mm); sides are the patient's (left = LPS +x).
"""

from __future__ import annotations

from .labelling import LevelResult, VertebraLevel, label_levels
from .morphometry import LevelMorphometry, Morphometry, measure_morphometry, write_morphometry
from .outputs import remeasure, triangle_levels, write_levels_outputs
from .override import parse_override

__all__ = [
    "LevelMorphometry",
    "LevelResult",
    "Morphometry",
    "VertebraLevel",
    "label_levels",
    "measure_morphometry",
    "parse_override",
    "remeasure",
    "triangle_levels",
    "write_levels_outputs",
    "write_morphometry",
]
