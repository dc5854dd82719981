"""Synthetic lumbosacral CT phantom with exact labels and analytic ground-truth triangles.

>>> from spineai.phantom import generate_ct_phantom  # doctest: +SKIP
>>> case = generate_ct_phantom(seed=3, spacing_mm=(0.7, 0.7, 3.0))  # doctest: +SKIP
>>> case.truth["triangles"]["L5-S1"]["left"]["kambin"]["area_mm2"]  # doctest: +SKIP

See ``docs/phantom.md`` for the anatomy, the frames and the triangle construction.
"""

from __future__ import annotations

from .ct import PhantomCase, build_truth, generate_ct_phantom, level_truth, render, write_phantom_case
from .geometry import Anatomy, build_anatomy
from .params import (
    VARIANTS,
    DiscParams,
    ForamenParams,
    Herniation,
    HUParams,
    PhantomParams,
    RootParams,
    Stenosis,
    TransitionalParams,
    VertebraParams,
    castellvi_type,
    sample_params,
    validate_params,
)
from .truth import all_triangles, reference_view, triangles_in_view

__all__ = [
    "Anatomy",
    "DiscParams",
    "ForamenParams",
    "HUParams",
    "Herniation",
    "PhantomCase",
    "PhantomParams",
    "RootParams",
    "Stenosis",
    "TransitionalParams",
    "VARIANTS",
    "VertebraParams",
    "all_triangles",
    "build_anatomy",
    "build_truth",
    "castellvi_type",
    "generate_ct_phantom",
    "level_truth",
    "reference_view",
    "render",
    "sample_params",
    "triangles_in_view",
    "validate_params",
    "write_phantom_case",
]
