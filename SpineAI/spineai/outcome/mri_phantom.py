"""Synthetic sagittal T2 MRI of the lumbosacral spine, with pathology and a tESI outcome model.

A case is drawn in two steps, each reproducible from one integer seed:

1. :func:`sample_case` draws the *parameters*: anatomy (vertebral and disc sizes, lordosis, sacral slope,
   canal and soft-tissue dimensions), pose, imaging (contrast, bias field, noise), pathology per disc level
   (Pfirrmann degeneration, herniation type and position, central stenosis grade, foraminal stenosis
   grade per side), the symptomatic (injected) level and side, and the outcome of a transforaminal
   epidural steroid injection (``p_good``, the sampled good/poor label and the NRS-11 before and 2 months
   after) from the documented generative model below.
2. :func:`render_sagittal_t2` renders those parameters into a 3D sagittal T2-weighted volume (thick
   sagittal slices, in-plane ~1 mm, Rician noise, coil bias field, pose) with a canonical label map and a
   truth dict.

:func:`generate_sagittal_t2` does both. :func:`cohort_parameters` draws parameters only (no rendering), so
the Bayes-optimal AUC of the outcome model (:func:`bayes_ceiling_auc`) is cheap to compute on a large
sample.

Coordinate frame
----------------
LPS, mm: +x = patient left, +y = posterior, +z = superior. The volume's voxel axes point P, I, R
(orientation ``"PIR"``: columns anterior->posterior, rows superior->inferior, slices left->right), as a
sagittal DICOM series usually does. Every position in the truth dict is LPS (mm).

Tissue contrast (fast spin-echo T2, relative units before scaling)
----------------------------------------------------------------------
CSF 1.0; fat (subcutaneous, epidural, foraminal) 0.78-0.82; healthy nucleus pulposus 0.9, darker and
thinner with Pfirrmann grade; annulus 0.22; vertebral marrow 0.38-0.55 (intermediate); cortex and
endplates 0.08; muscle 0.22; nerve roots 0.3; flowing blood 0.05; air 0.

Foraminal stenosis (Lee et al., AJR 2010 grading, as the outcome literature uses it)
--------------------------------------------------------------------------------------
``none``: the exiting root sits in the upper foramen surrounded by fat; ``mild``: perineural fat
obliterated above and below the root (vertical); ``moderate``: fat obliterated all around the root
without morphological change; ``severe``: no fat and a flattened (collapsed) root. The obliterated
space is filled with low-signal tissue (osteophyte, ligamentum flavum and facet hypertrophy, disc).

Central stenosis narrows the dural sac at the disc level to 70 / 45 / 20 % of its antero-posterior
diameter (mild / moderate / severe), the lost CSF replaced by disc bulge in front and hypertrophied
ligamentum flavum behind. Herniation types: ``bulge`` (circumferential, ~2.5 mm beyond the margin),
``protrusion`` (focal, ~5 mm, base wider than dome), ``extrusion`` (focal, ~10 mm, dome wider than neck,
migrating 2-5 mm up or down, relatively T2-bright); position central, paracentral or foraminal.

Outcome model
-------------
See :data:`OUTCOME_MODEL` and ``docs/outcome.md``: ``p_good = P_F[foraminal grade] * M_H[herniation type]
* M_C[central grade]`` at the symptomatic level and side, good outcome = NRS-11 reduction >= 50 % at
2 months (Kim et al. 2022's definition).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import InputError

__all__ = [
    "CENTRAL_GRADES",
    "FORAMINAL_GRADES",
    "HERNIATION_TYPES",
    "LEVELS",
    "OUTCOME_MODEL",
    "PHANTOM_VERSION",
    "SagittalT2Case",
    "bayes_ceiling_auc",
    "cohort_parameters",
    "generate_sagittal_t2",
    "outcome_probability",
    "render_sagittal_t2",
    "sample_case",
    "write_sagittal_case",
]

PHANTOM_VERSION = "sagittal_t2/1"

#: lumbosacral disc levels carrying pathology, cranial to caudal
LEVELS: tuple[str, ...] = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
SIDES: tuple[str, ...] = ("left", "right")
FORAMINAL_GRADES: tuple[str, ...] = ("none", "mild", "moderate", "severe")
CENTRAL_GRADES: tuple[str, ...] = ("none", "mild", "moderate", "severe")
HERNIATION_TYPES: tuple[str, ...] = ("none", "bulge", "protrusion", "extrusion")
HERNIATION_POSITIONS: tuple[str, ...] = ("central", "paracentral", "foraminal")

#: the rendered column, cranial to caudal (S2..S4 are the fused sacral segments below S1)
_COLUMN: tuple[str, ...] = ("T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1", "S2", "S3", "S4")
_DISCS: tuple[tuple[str, str], ...] = tuple(zip(_COLUMN[:7], _COLUMN[1:8], strict=True))  # T11-T12 .. L5-S1

# ---------------------------------------------------------------------------------------------------------
# outcome model (numbers, sources and assumptions; repeated in docs/outcome.md)
OUTCOME_MODEL: dict[str, Any] = {
    "definition": "good outcome = NRS-11 reduction >= 50% at 2 months after TFESI (Kim et al., Pain Physician "
    "2022;25:587-592)",
    "p_good_by_foraminal_grade": {"none": 0.871, "mild": 0.871, "moderate": 0.871, "severe": 0.423},
    "herniation_factor": {"none": 1.0, "bulge": 1.0, "protrusion": 1.0, "extrusion": 0.65},
    "central_stenosis_factor": {"none": 1.0, "mild": 1.0, "moderate": 0.75, "severe": 0.5},
    "sources": {
        "p_good_by_foraminal_grade": "Chang & Lee, Pain Physician 2018;21:67-72 (ref. 7 of Kim et al.): >= 50% "
        "relief in 27/31 = 87.1% of mild-to-moderate and 11/26 = 42.3% of severe foraminal stenosis (3 months). "
        "Assumed: the same 2-month rate; no foraminal stenosis behaves like mild-to-moderate.",
        "herniation_factor": "Kwak, Jang & Chang, Pain Pract 2021;21:836-842 (ref. 12): extruded HLD responds "
        "worse than protruded HLD. The factor 0.65 (relative to bulge/protrusion) is an assumption; the "
        "direction is the paper's.",
        "central_stenosis_factor": "Do, Kim & Chang, Ann Palliat Med 2020;9:163-168 (ref. 20): epidural steroid "
        "injection has limited effect in moderate or severe central stenosis. Factors 0.75 (moderate) and "
        "0.5 (severe) are assumptions.",
        "root_levels": "Kim et al. 2022 injected roots L2:L3:L4:L5:S1 = 4:18:65:324:92; causes herniated disc "
        ": stenosis = 240:263.",
    },
    "root_level_weights": {"L2": 4, "L3": 18, "L4": 65, "L5": 324, "S1": 92},
    "cause_weights": {"herniated_disc": 240, "stenosis": 263},
}

_ROOT_TO_LEVEL = {"L2": "L2-L3", "L3": "L3-L4", "L4": "L4-L5", "L5": "L5-S1", "S1": "L5-S1"}

# pathology distributions at the symptomatic level (assumptions, documented in docs/outcome.md)
_HLD = {
    "herniation": (("bulge", "protrusion", "extrusion"), (0.2, 0.5, 0.3)),
    "foraminal_if_foraminal_hld": (("mild", "moderate", "severe"), (0.3, 0.35, 0.35)),
    "foraminal_otherwise": (FORAMINAL_GRADES, (0.45, 0.35, 0.15, 0.05)),
    "central": (CENTRAL_GRADES, (0.55, 0.3, 0.1, 0.05)),
    "pfirrmann": ((3, 4, 5), (0.4, 0.4, 0.2)),
}
_STENOSIS = {
    "herniation": (("none", "bulge", "protrusion"), (0.35, 0.55, 0.1)),
    "foraminal": (("mild", "moderate", "severe"), (0.25, 0.3, 0.45)),
    "central": (CENTRAL_GRADES, (0.25, 0.3, 0.25, 0.2)),
    "pfirrmann": ((3, 4, 5), (0.2, 0.5, 0.3)),
}
_BACKGROUND = {
    "foraminal": (FORAMINAL_GRADES, (0.7, 0.25, 0.05, 0.0)),
    "contralateral": (FORAMINAL_GRADES, (0.5, 0.35, 0.15, 0.0)),
    "central": (CENTRAL_GRADES, (0.8, 0.2, 0.0, 0.0)),
    "herniation": (HERNIATION_TYPES, (0.6, 0.35, 0.05, 0.0)),
}
_NRS_PRE = ((4, 5, 6, 7, 8, 9, 10), (0.08, 0.15, 0.2, 0.25, 0.18, 0.09, 0.05))


def outcome_probability(foraminal: str, herniation: str, central: str) -> float:
    """Probability of a good outcome given the pathology at the symptomatic level and side.

    ``p_good = P_F[foraminal] * M_H[herniation] * M_C[central]`` with the numbers of :data:`OUTCOME_MODEL`.
    """
    for value, allowed, what in (
        (foraminal, FORAMINAL_GRADES, "foraminal stenosis grade"),
        (herniation, HERNIATION_TYPES, "herniation type"),
        (central, CENTRAL_GRADES, "central stenosis grade"),
    ):
        if value not in allowed:
            raise InputError(f"Unknown {what} '{value}'.", f"use one of {', '.join(allowed)}")
    m = OUTCOME_MODEL
    return float(
        m["p_good_by_foraminal_grade"][foraminal]
        * m["herniation_factor"][herniation]
        * m["central_stenosis_factor"][central]
    )


def _choice(rng: np.random.Generator, spec: tuple[tuple[Any, ...], tuple[float, ...]]) -> Any:
    values, weights = spec
    w = np.asarray(weights, dtype=float)
    return values[int(rng.choice(len(values), p=w / w.sum()))]


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(stream), 20220587])


# ---------------------------------------------------------------------------------------------------------
# parameters
def _sample_anatomy(rng: np.random.Generator) -> dict[str, Any]:
    sacral_slope = float(rng.uniform(30.0, 48.0))
    lordosis = float(rng.uniform(35.0, 60.0))
    a_s1 = -sacral_slope
    a_l1 = a_s1 + lordosis
    angles = {"T11": a_l1 + 8.0, "T12": a_l1 + 4.0}
    for k, name in enumerate(("L1", "L2", "L3", "L4", "L5", "S1")):
        angles[name] = a_l1 - k * lordosis / 5.0
    for k, name in enumerate(("S2", "S3", "S4"), start=1):
        angles[name] = a_s1 + 12.0 * k
    size = float(rng.uniform(0.9, 1.1))
    vertebrae = {}
    for name in _COLUMN:
        if name in ("T11", "T12"):
            rx, ry, h = 19.0, 14.5, 23.0
        elif name == "S1":
            rx, ry, h = 25.0, 18.0, 27.0
        elif name in ("S2", "S3", "S4"):
            k = ("S2", "S3", "S4").index(name)
            rx, ry, h = (21.0, 17.0, 13.0)[k], (14.0, 11.0, 8.0)[k], (20.0, 16.0, 12.0)[k]
        else:
            k = ("L1", "L2", "L3", "L4", "L5").index(name)
            rx, ry, h = 21.0 + 0.8 * k, 15.5 + 0.4 * k, 26.0
        vertebrae[name] = {
            "half_width_mm": rx * size * float(rng.uniform(0.96, 1.04)),
            "half_depth_mm": ry * size * float(rng.uniform(0.96, 1.04)),
            "height_mm": h * size * float(rng.uniform(0.94, 1.06)),
            "angle_deg": angles[name],
            "marrow": float(rng.uniform(-0.03, 0.03)),
        }
    disc_heights = {
        "T11-T12": 6.0,
        "T12-L1": 7.0,
        "L1-L2": 8.5,
        "L2-L3": 9.5,
        "L3-L4": 10.5,
        "L4-L5": 11.0,
        "L5-S1": 10.5,
    }
    return {
        "sacral_slope_deg": sacral_slope,
        "lordosis_deg": lordosis,
        "vertebrae": vertebrae,
        "disc_height_mm": {k: v * size * float(rng.uniform(0.9, 1.1)) for k, v in disc_heights.items()},
        "sac_half_width_mm": float(rng.uniform(9.0, 11.0)),
        "sac_half_depth_mm": float(rng.uniform(6.5, 8.0)),
        "spinous_length_mm": float(rng.uniform(27.0, 35.0)),
        "muscle_over_spinous_mm": float(rng.uniform(3.0, 9.0)),
        "subcutaneous_fat_mm": float(rng.uniform(8.0, 35.0)),
        "marrow_signal": float(rng.uniform(0.38, 0.55)),
        "muscle_fat_infiltration": float(rng.uniform(0.0, 0.2)),
        "sacral_remnant_disc": bool(rng.random() < 0.3),
    }


def _sample_pose(rng: np.random.Generator) -> dict[str, float]:
    return {
        "sagittal_tilt_deg": float(rng.uniform(-12.0, 12.0)),  # about x (pitch)
        "coronal_tilt_deg": float(rng.uniform(-3.0, 3.0)),  # about y (roll)
        "axial_rotation_deg": float(rng.uniform(-4.0, 4.0)),  # about z (yaw)
        "shift_x_mm": float(rng.uniform(-4.0, 4.0)),
        "shift_y_mm": float(rng.uniform(-12.0, 12.0)),
        "shift_z_mm": float(rng.uniform(-18.0, 18.0)),
    }


def _sample_imaging(rng: np.random.Generator) -> dict[str, float]:
    return {
        "scale": float(rng.uniform(600.0, 1200.0)),
        "noise_sd": float(rng.uniform(0.015, 0.04)),  # relative to CSF signal
        "bias_posterior": float(rng.uniform(0.1, 0.35)),  # spine coil: brighter posteriorly
        "bias_coeffs": [float(v) for v in rng.normal(0.0, 0.1, 4)],
        "texture_sd": float(rng.uniform(0.02, 0.06)),
    }


def _normal_level(pfirrmann: int = 1) -> dict[str, Any]:
    return {
        "pfirrmann": pfirrmann,
        "herniation": {"type": "none", "position": "central", "side": None},
        "central_stenosis": "none",
        "foraminal_stenosis": {"left": "none", "right": "none"},
    }


def _sample_pathology(rng: np.random.Generator, age: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-level pathology and the symptomatic (injected) root, level and side."""
    roots = OUTCOME_MODEL["root_level_weights"]
    root = _choice(rng, (tuple(roots), tuple(roots.values())))
    level = _ROOT_TO_LEVEL[root]
    side = SIDES[int(rng.integers(0, 2))]
    causes = OUTCOME_MODEL["cause_weights"]
    cause = _choice(rng, (tuple(causes), tuple(causes.values())))
    q = float(np.clip(0.1 + 0.45 * (age - 20.0) / 60.0, 0.05, 0.6))
    levels: dict[str, Any] = {}
    for k, lv in enumerate(LEVELS):
        lvl = _normal_level(int(1 + rng.binomial(3, min(0.8, q + 0.04 * k))))
        herniation = _choice(rng, _BACKGROUND["herniation"])
        lvl["herniation"] = {
            "type": herniation,
            "position": "central" if herniation in ("none", "bulge") else "paracentral",
            "side": None if herniation in ("none", "bulge") else SIDES[int(rng.integers(0, 2))],
        }
        lvl["central_stenosis"] = _choice(rng, _BACKGROUND["central"])
        lvl["foraminal_stenosis"] = {s: _choice(rng, _BACKGROUND["foraminal"]) for s in SIDES}
        levels[lv] = lvl
    sym = levels[level]
    other = "right" if side == "left" else "left"
    sym["foraminal_stenosis"][other] = _choice(rng, _BACKGROUND["contralateral"])
    spec = _HLD if cause == "herniated_disc" else _STENOSIS
    sym["pfirrmann"] = int(_choice(rng, spec["pfirrmann"]))
    sym["central_stenosis"] = _choice(rng, spec["central"])
    htype = _choice(rng, spec["herniation"])
    if cause == "herniated_disc":
        if root == "L5" or root == "L2" or root == "L3" or root == "L4":
            position = "foraminal" if rng.random() < (0.6 if root == "L5" else 0.3) else "paracentral"
        else:  # S1 root: traversing, compressed by a paracentral L5-S1 herniation
            position = "paracentral"
        sym["herniation"] = {"type": htype, "position": position, "side": side}
        grade_spec = (
            _HLD["foraminal_if_foraminal_hld"] if position == "foraminal" else _HLD["foraminal_otherwise"]
        )
        sym["foraminal_stenosis"][side] = _choice(rng, grade_spec)
    else:
        sym["herniation"] = {
            "type": htype,
            "position": "central",
            "side": None if htype in ("none", "bulge") else side,
        }
        if htype == "protrusion":
            sym["herniation"]["position"] = "paracentral"
        sym["foraminal_stenosis"][side] = _choice(rng, _STENOSIS["foraminal"])
    patient = {"root": root, "level": level, "side": side, "cause": cause}
    return levels, patient


def _sample_outcome(
    rng: np.random.Generator, levels: Mapping[str, Any], patient: Mapping[str, Any]
) -> dict[str, Any]:
    sym = levels[patient["level"]]
    foraminal = sym["foraminal_stenosis"][patient["side"]]
    herniation = sym["herniation"]["type"]
    central = sym["central_stenosis"]
    p_good = outcome_probability(foraminal, herniation, central)
    good = bool(rng.random() < p_good)
    pre = int(_choice(rng, _NRS_PRE))
    half = pre // 2  # post <= half  <=>  reduction >= 50 %
    post = int(rng.integers(0, half + 1)) if good else int(rng.integers(half + 1, min(10, pre + 1) + 1))
    reduction = 100.0 * (pre - post) / pre
    assert (reduction >= 50.0) == good
    return {
        "p_good": p_good,
        "good_outcome": good,
        "label": int(good),
        "nrs_pre": pre,
        "nrs_post_2_months": post,
        "nrs_reduction_percent": reduction,
        "drivers": {"foraminal_stenosis": foraminal, "herniation": herniation, "central_stenosis": central},
    }


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _check_pathology(levels: Mapping[str, Any]) -> None:
    for lv, p in levels.items():
        if lv not in LEVELS:
            raise InputError(
                f"Unknown disc level '{lv}' in the pathology.", f"use one of {', '.join(LEVELS)}"
            )
        if p["central_stenosis"] not in CENTRAL_GRADES:
            raise InputError(
                f"{lv}: unknown central stenosis grade '{p['central_stenosis']}'.",
                f"use one of {', '.join(CENTRAL_GRADES)}",
            )
        for s in SIDES:
            if p["foraminal_stenosis"][s] not in FORAMINAL_GRADES:
                raise InputError(
                    f"{lv} {s}: unknown foraminal grade '{p['foraminal_stenosis'][s]}'.",
                    f"use one of {', '.join(FORAMINAL_GRADES)}",
                )
        h = p["herniation"]
        if h["type"] not in HERNIATION_TYPES or h["position"] not in HERNIATION_POSITIONS:
            raise InputError(
                f"{lv}: unknown herniation {h}.",
                f"type in {HERNIATION_TYPES}, position in {HERNIATION_POSITIONS}",
            )
        if int(p["pfirrmann"]) not in (1, 2, 3, 4, 5):
            raise InputError(f"{lv}: Pfirrmann grade {p['pfirrmann']} is not 1..5.", "use 1..5")


def sample_case(
    seed: int,
    *,
    pathology: Mapping[str, Any] | None = None,
    symptomatic: Mapping[str, str] | None = None,
    normal: bool = False,
) -> dict[str, Any]:
    """Draw every parameter of one case (no rendering).

    Anatomy, pose, imaging, pathology and outcome use separate random streams of ``seed``, so overriding
    the pathology leaves the anatomy and pose of the case unchanged.

    Args:
        seed: case seed (>= 0).
        pathology: per-level overrides merged onto the sampled pathology, e.g.
            ``{"L5-S1": {"foraminal_stenosis": {"left": "severe"}}}``.
        symptomatic: override of the symptomatic level/side, e.g. ``{"level": "L5-S1", "side": "left"}``.
        normal: start from a spine without pathology (Pfirrmann 1, nothing else) before the overrides.

    Returns:
        JSON-ready dict with ``seed``, ``age``, ``anatomy``, ``pose``, ``imaging``, ``pathology`` (per
        level), ``patient`` (root, level, side, cause) and ``outcome`` (p_good, label, NRS-11).
    """
    if int(seed) < 0:
        raise InputError(f"Seed {seed} is negative.", "use a seed >= 0")
    age = float(np.clip(_rng(seed, 0).normal(59.2, 14.4), 20.0, 79.0))  # Kim et al. 2022 cohort
    anatomy = _sample_anatomy(_rng(seed, 1))
    pose = _sample_pose(_rng(seed, 2))
    imaging = _sample_imaging(_rng(seed, 3))
    levels, patient = _sample_pathology(_rng(seed, 4), age)
    if normal:
        levels = {lv: _normal_level(1) for lv in LEVELS}
    if pathology:
        _merge(levels, pathology)
    if symptomatic:
        patient = {**patient, **dict(symptomatic)}
        if patient["level"] not in LEVELS or patient["side"] not in SIDES:
            raise InputError(
                f"Symptomatic level/side {dict(symptomatic)} is not valid.",
                f"level in {LEVELS}, side in {SIDES}",
            )
    _check_pathology(levels)
    for lv in LEVELS:  # a foraminal herniation always narrows its foramen
        h = levels[lv]["herniation"]
        if h["type"] in ("protrusion", "extrusion") and h["position"] == "foraminal" and h["side"] in SIDES:
            if levels[lv]["foraminal_stenosis"][h["side"]] == "none":
                levels[lv]["foraminal_stenosis"][h["side"]] = "mild"
    outcome = _sample_outcome(_rng(seed, 5), levels, patient)
    return {
        "version": PHANTOM_VERSION,
        "seed": int(seed),
        "age": age,
        "anatomy": anatomy,
        "pose": pose,
        "imaging": imaging,
        "pathology": levels,
        "patient": patient,
        "outcome": outcome,
    }


def cohort_parameters(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Parameters of cases ``seed .. seed+n-1`` (no images; fast)."""
    return [sample_case(s) for s in range(int(seed), int(seed) + int(n))]


def bayes_ceiling_auc(p_good: Any, labels: Any | None = None) -> float:
    """AUC of the true ``p_good`` as a score: the best any predictor can reach on this cohort.

    Without ``labels`` the *expected* AUC over outcome draws: every case counts as a positive with weight
    ``p`` and as a negative with weight ``1 - p``, ties count 1/2 (exact for the given ``p`` values). With
    ``labels`` the AUC of ``p_good`` against the sampled labels of this particular set.
    """
    p = np.asarray(p_good, dtype=float)
    if labels is not None:
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(np.asarray(labels).astype(int), p))
    values, counts = np.unique(p, return_counts=True)
    pos = counts * values
    neg = counts * (1.0 - values)
    neg_below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])
    num = float(np.sum(pos * (neg_below + 0.5 * neg)))
    return num / float(pos.sum() * neg.sum())


# ---------------------------------------------------------------------------------------------------------
# geometry of the column (body frame: LPS mm, origin at the centre of the L5-S1 disc, before pose)
@dataclass
class _Segment:
    name: str
    centre: np.ndarray  # body frame (mm)
    angle_deg: float  # tilt of the up axis towards posterior (+) / anterior (-)
    rx: float
    ry: float
    h: float

    @property
    def up(self) -> np.ndarray:
        a = math.radians(self.angle_deg)
        return np.array([0.0, math.sin(a), math.cos(a)])

    @property
    def back(self) -> np.ndarray:
        a = math.radians(self.angle_deg)
        return np.array([0.0, math.cos(a), -math.sin(a)])


def _unit(angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([0.0, math.sin(a), math.cos(a)])


def _build_column(
    anatomy: Mapping[str, Any], pathology: Mapping[str, Any]
) -> tuple[dict[str, _Segment], dict[str, _Segment]]:
    """Vertebra and disc frames, chained from the L5-S1 disc up and from S1 down."""
    v = anatomy["vertebrae"]
    pf_factor = {1: 1.0, 2: 1.0, 3: 0.85, 4: 0.65, 5: 0.4}

    def disc_height(name: str) -> float:
        h = anatomy["disc_height_mm"][name]
        if name in pathology:
            h *= pf_factor[int(pathology[name]["pfirrmann"])]
        return h

    vert: dict[str, _Segment] = {}
    discs: dict[str, _Segment] = {}

    def seg(name: str, centre: np.ndarray) -> _Segment:
        p = v[name]
        return _Segment(name, centre, p["angle_deg"], p["half_width_mm"], p["half_depth_mm"], p["height_mm"])

    # L5-S1 disc centred at the origin
    a_l5, a_s1 = v["L5"]["angle_deg"], v["S1"]["angle_deg"]
    hd = disc_height("L5-S1")
    a_d = 0.5 * (a_l5 + a_s1)
    discs["L5-S1"] = _Segment(
        "L5-S1",
        np.zeros(3),
        a_d,
        0.5 * (v["L5"]["half_width_mm"] + v["S1"]["half_width_mm"]),
        0.5 * (v["L5"]["half_depth_mm"] + v["S1"]["half_depth_mm"]),
        hd,
    )
    s1_top = -_unit(a_d) * hd / 2.0
    vert["S1"] = seg("S1", s1_top - _unit(a_s1) * v["S1"]["height_mm"] / 2.0)
    top = _unit(a_d) * hd / 2.0
    # upwards
    names_up = ("L5", "L4", "L3", "L2", "L1", "T12", "T11")
    for k, name in enumerate(names_up):
        vert[name] = seg(name, top + _unit(v[name]["angle_deg"]) * v[name]["height_mm"] / 2.0)
        if k + 1 < len(names_up):
            upper = names_up[k + 1]
            dname = f"{upper}-{name}"
            vtop = vert[name].centre + vert[name].up * vert[name].h / 2.0
            a_d = 0.5 * (v[upper]["angle_deg"] + v[name]["angle_deg"])
            hd = disc_height(dname)
            discs[dname] = _Segment(
                dname,
                vtop + _unit(a_d) * hd / 2.0,
                a_d,
                0.5 * (v[upper]["half_width_mm"] + v[name]["half_width_mm"]),
                0.5 * (v[upper]["half_depth_mm"] + v[name]["half_depth_mm"]),
                hd,
            )
            top = vtop + _unit(a_d) * hd
    # downwards through the fused sacrum (1.5 mm remnant discs)
    below = vert["S1"]
    for name in ("S2", "S3", "S4"):
        bottom = below.centre - below.up * below.h / 2.0
        a = v[name]["angle_deg"]
        vert[name] = seg(
            name, bottom - _unit(0.5 * (a + below.angle_deg)) * 1.5 - _unit(a) * v[name]["height_mm"] / 2.0
        )
        below = vert[name]
    return vert, discs


def _rotation(pose: Mapping[str, float]) -> np.ndarray:
    ax, ay, az = (
        math.radians(pose[k]) for k in ("sagittal_tilt_deg", "coronal_tilt_deg", "axial_rotation_deg")
    )
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


# body origin (L5-S1 disc centre) relative to the centre of the field of view, before the pose shift
_BODY_OFFSET = np.array([0.0, -20.0, -55.0])


# ---------------------------------------------------------------------------------------------------------
# rendering
class _Canvas:
    """Fine LPS-aligned grid ``[z, y, x]`` (x super-sampled within each slice) painted structure by structure."""

    def __init__(self, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray, rot: np.ndarray, shift: np.ndarray):
        self.xs, self.ys, self.zs = xs, ys, zs
        self.rot, self.shift = rot, shift
        self.value = np.zeros((zs.size, ys.size, xs.size), dtype=np.float32)
        self.label = np.zeros((zs.size, ys.size, xs.size), dtype=np.uint8)

    def world(self, body: np.ndarray) -> np.ndarray:
        return body @ self.rot.T + self.shift

    def block(self, corners_body: np.ndarray) -> tuple[tuple[slice, slice, slice], np.ndarray] | None:
        """Index block covering the world image of body-frame ``corners`` and its voxels' body coordinates."""
        w = self.world(corners_body)
        lo, hi = w.min(axis=0), w.max(axis=0)
        sl = []
        for axis, coords in ((2, self.zs), (1, self.ys), (0, self.xs)):
            i0 = int(np.searchsorted(coords, lo[axis], side="left"))
            i1 = int(np.searchsorted(coords, hi[axis], side="right"))
            if i1 <= i0:
                return None
            sl.append(slice(i0, i1))
        z, y, x = np.meshgrid(self.zs[sl[0]], self.ys[sl[1]], self.xs[sl[2]], indexing="ij")
        pts = np.stack([x, y, z], axis=-1).astype(np.float64) - self.shift
        body = pts @ self.rot  # inverse rotation: R^T applied to row vectors
        return (sl[0], sl[1], sl[2]), body

    def full_block(self) -> tuple[tuple[slice, slice, slice], np.ndarray]:
        """The whole grid and its voxels' body coordinates."""
        z, y, x = np.meshgrid(self.zs, self.ys, self.xs, indexing="ij")
        pts = np.stack([x, y, z], axis=-1).astype(np.float64) - self.shift
        return (slice(None), slice(None), slice(None)), pts @ self.rot

    def paint(
        self,
        sl: tuple[slice, slice, slice],
        mask: np.ndarray,
        value: float | np.ndarray,
        label: int | None = None,
    ) -> None:
        if not mask.any():
            return
        region = self.value[sl]
        region[mask] = value if np.isscalar(value) else np.asarray(value)[mask]
        if label is not None:
            self.label[sl][mask] = label


def _local(body: np.ndarray, seg: _Segment) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = body - seg.centre
    return d[..., 0], d @ seg.back, d @ seg.up


def _box_corners(
    seg: _Segment, x: tuple[float, float], y: tuple[float, float], z: tuple[float, float]
) -> np.ndarray:
    pts = []
    for a in x:
        for b in y:
            for c in z:
                pts.append(seg.centre + np.array([a, 0.0, 0.0]) + seg.back * b + seg.up * c)
    return np.asarray(pts)


def _ellipse(u: np.ndarray, v: np.ndarray, ru: float, rv: float) -> np.ndarray:
    return (u / max(ru, 1e-6)) ** 2 + (v / max(rv, 1e-6)) ** 2 <= 1.0


def _label_of(name: str) -> int | None:
    from .. import anatomy

    return anatomy.BY_NAME[name].label if name in anatomy.BY_NAME else None


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma: tuple[float, ...]) -> np.ndarray:
    """Unit-variance Gaussian random field; very smooth axes are drawn on a coarser grid and interpolated."""
    from scipy.ndimage import gaussian_filter, zoom

    factor = [max(1, int(s // 2)) for s in sigma]
    coarse = tuple(-(-n // f) + (1 if f > 1 else 0) for n, f in zip(shape, factor, strict=True))
    f = gaussian_filter(
        rng.standard_normal(coarse).astype(np.float32),
        [s / k for s, k in zip(sigma, factor, strict=True)],
        mode="wrap",
    )
    if any(k > 1 for k in factor):
        f = zoom(f, list(factor), order=1)[tuple(slice(0, n) for n in shape)]
    sd = float(f.std())
    return f / sd if sd > 0 else f


@dataclass
class SagittalT2Case:
    """A rendered phantom.

    Attributes:
        image: sagittal T2 volume (int16, orientation ``"PIR"``, LPS geometry in mm).
        labels: canonical label map on the same grid (uint8; vertebrae T12..S1, discs, dural sac, roots).
        truth: parameters plus rendered geometry (LPS mm): vertebra and disc centres, foramen centres per
            level and side, the L3..S1 region of interest.
    """

    image: sitk.Image
    labels: sitk.Image
    truth: dict[str, Any] = field(default_factory=dict)


def render_sagittal_t2(
    params: Mapping[str, Any],
    *,
    spacing_mm: tuple[float, float, float] = (4.0, 0.9, 0.9),
    n_slices: int = 15,
    fov_mm: tuple[float, float] = (260.0, 260.0),
    slice_subsamples: int = 3,
    noise: bool = True,
) -> SagittalT2Case:
    """Render case parameters (from :func:`sample_case`) into a sagittal T2 volume.

    Args:
        params: case parameters.
        spacing_mm: (slice spacing = thickness, antero-posterior, cranio-caudal) voxel size in mm.
        n_slices: number of sagittal slices (centred on x = 0 of the field of view).
        fov_mm: (antero-posterior, cranio-caudal) field of view in mm.
        slice_subsamples: sub-positions averaged across each slice's thickness (partial volume).
        noise: add Rician noise (the bias field and texture are always applied).

    Returns:
        :class:`SagittalT2Case`; image size (AP, SI, slices) in PIR order.
    """
    from scipy.ndimage import gaussian_filter

    ds, dy, dz = (float(s) for s in spacing_mm)
    if min(ds, dy, dz) <= 0 or n_slices < 1 or slice_subsamples < 1:
        raise InputError(
            f"Invalid phantom grid: spacing {spacing_mm} mm, {n_slices} slices.",
            "use positive spacings and at least one slice",
        )
    ny, nz = (int(round(f / s)) for f, s in zip(fov_mm, (dy, dz), strict=True))
    ys = (np.arange(ny) - (ny - 1) / 2.0) * dy
    zs = (np.arange(nz) - (nz - 1) / 2.0) * dz
    centres_x = (np.arange(n_slices) - (n_slices - 1) / 2.0) * ds
    sub = (np.arange(slice_subsamples) + 0.5) / slice_subsamples - 0.5
    xs = (centres_x[:, None] + sub[None, :] * ds).ravel()

    an, pose, imaging, path = params["anatomy"], params["pose"], params["imaging"], params["pathology"]
    rot = _rotation(pose)
    shift = _BODY_OFFSET + np.array([pose["shift_x_mm"], pose["shift_y_mm"], pose["shift_z_mm"]])
    canvas = _Canvas(xs, ys, zs, rot, shift)
    vert, discs = _build_column(an, path)
    tex_rng = _rng(params["seed"], 6)

    rsx, rsy = an["sac_half_width_mm"], an["sac_half_depth_mm"]
    marrow = an["marrow_signal"]

    def canal_y(seg: _Segment) -> float:  # canal centre, local y
        return seg.ry + 2.0 + rsy

    # ---- pass 1: soft tissue, in the body frame, along a curve through the column
    order = [vert[n] for n in _COLUMN]
    zc = np.array([s.centre[2] for s in order])[::-1]
    front = np.array([(s.centre - s.back * s.ry)[1] for s in order])[::-1]
    canal = np.array([(s.centre + s.back * canal_y(s))[1] for s in order])[::-1]
    tip_len = an["spinous_length_mm"] + rsy + 3.0 + 12.0
    tips = np.array([(s.centre + s.back * (canal_y(s) + tip_len))[1] for s in order])[::-1]
    sl, body = canvas.full_block()
    bx_, by_, bz_ = body[..., 0], body[..., 1], body[..., 2]
    f_front = np.interp(bz_, zc, front)
    f_canal = np.interp(bz_, zc, canal)
    f_tip = np.interp(bz_, zc, tips)
    muscle_back = f_tip + an["muscle_over_spinous_mm"]
    skin = muscle_back + an["subcutaneous_fat_mm"] - 0.006 * bx_**2
    inside = by_ < skin
    texture = _smooth_field(tex_rng, canvas.value.shape, (6.0, 6.0, 2.0))
    canvas.paint(sl, inside, np.float32(0.3) + 0.05 * texture)  # abdomen/pelvis, intermediate
    bowel = _smooth_field(tex_rng, canvas.value.shape, (5.0, 5.0, 2.0))
    canvas.paint(sl, inside & (by_ < f_front - 25.0) & (bowel > 1.8), 0.7)  # fluid-filled bowel
    canvas.paint(sl, inside & (by_ < f_front - 25.0) & (bowel < -2.0), 0.03)  # bowel gas
    psoas = (
        inside & (np.abs(bx_) > 16.0) & (np.abs(bx_) < 55.0) & (by_ > f_front - 8.0) & (by_ < f_canal - 4.0)
    )
    canvas.paint(sl, psoas & (bz_ > vert["S1"].centre[2]), 0.22)
    posterior = inside & (by_ > f_canal + 4.0)
    fatty = _smooth_field(tex_rng, canvas.value.shape, (1.0, 4.0, 1.0))
    muscle_val = np.where(fatty > 2.2 - 3.0 * an["muscle_fat_infiltration"], 0.6, 0.22).astype(np.float32)
    canvas.paint(sl, posterior & (by_ < muscle_back), muscle_val)  # paraspinal muscles
    canvas.paint(sl, inside & (by_ >= muscle_back) & (by_ < muscle_back + 1.2), 0.1)  # thoracolumbar fascia
    canvas.paint(sl, inside & (by_ >= muscle_back + 1.2), 0.8)  # subcutaneous fat
    canvas.paint(sl, inside & (by_ >= skin - 1.5), 0.4)  # skin
    l4 = vert["L4"].centre[2]
    aorta = ((bx_ - 14.0) ** 2 + (by_ - (f_front - 12.0)) ** 2 <= 10.0**2) & (bz_ > l4)
    canvas.paint(sl, inside & aorta, 0.05)
    ivc = ((bx_ + 16.0) ** 2 + (by_ - (f_front - 10.0)) ** 2 <= 9.0**2) & (bz_ > l4 - 10.0)
    canvas.paint(sl, inside & ivc, 0.12)
    del body, bx_, by_, bz_, f_front, f_canal, f_tip, muscle_back, skin, inside, texture, bowel, fatty

    # ---- pass 2: vertebrae with posterior elements
    bxw = rsx + 4.0  # bony canal half width
    byw = rsy + 3.0  # bony canal half depth
    truth_vert: dict[str, Any] = {}
    for name in _COLUMN:
        s = vert[name]
        sacral = name.startswith("S") and name != "S1"
        ext_y = canal_y(s) + tip_len + 3.0
        blk = canvas.block(
            _box_corners(
                s,
                (-max(s.rx, bxw + 14.0) - 1, max(s.rx, bxw + 14.0) + 1),
                (-s.ry - 1, ext_y),
                (-s.h / 2 - 12, s.h / 2 + 12),
            )
        )
        truth_vert[name] = {
            "centre_lps": canvas.world(s.centre),
            "up": rot @ s.up,
            "height_mm": s.h,
            "half_depth_mm": s.ry,
            "half_width_mm": s.rx,
        }
        if blk is None:
            continue
        sl, body = blk
        lx, ly, lz = _local(body, s)
        lab = (
            _label_of(name)
            if name in ("T12", "L1", "L2", "L3", "L4", "L5", "S1")
            else (_label_of("S1") if sacral else _label_of(name))
        )
        m_val = marrow + an["vertebrae"][name]["marrow"]
        # fused sacral segments: marrow continuous with the segment above (no endplates between them)
        top = s.h / 2 + 3.5 if sacral else s.h / 2 - 1.3
        body_m = _ellipse(lx, ly, s.rx, s.ry) & (lz >= -s.h / 2) & (lz <= (top if sacral else s.h / 2))
        canvas.paint(sl, body_m, 0.08, lab)  # cortex / endplates
        inner = _ellipse(lx, ly, s.rx - 1.3, s.ry - 1.3) & (lz >= -s.h / 2 + 1.3) & (lz <= top)
        canvas.paint(sl, inner, m_val, lab)
        cy = canal_y(s)
        # pedicles
        ped = ((np.abs(lx) - (bxw + 4.0)) / 4.5) ** 2 + ((lz - (s.h / 2 - 9.0)) / 8.0) ** 2 <= 1.0
        ped &= (ly > s.ry - 3.0) & (ly < cy + 3.0)
        canvas.paint(sl, ped, m_val - 0.05, lab)
        # laminae, spinous process, articular processes
        lam = (
            (np.abs(lx) < bxw + 7.0)
            & (ly > cy + byw - 1.0)
            & (ly < cy + byw + 6.0)
            & (lz > -s.h / 2 - 5.0)
            & (lz < s.h / 2 - 5.0)
        )
        canvas.paint(sl, lam & ~_ellipse(lx, ly - cy, bxw, byw), m_val - 0.08, lab)
        sp_len = an["spinous_length_mm"] * (0.6 if name.startswith("S") else 1.0)
        sp_y = ly - (cy + byw + 4.0 + sp_len / 2)
        sp_h = 0.3 * s.h
        sp = (np.abs(lx) < 3.5) & (np.abs(sp_y) < sp_len / 2) & (np.abs(lz + 5.0 + 0.15 * sp_y) < sp_h)
        canvas.paint(sl, sp, 0.08, lab)
        canvas.paint(
            sl,
            sp & (np.abs(sp_y) < sp_len / 2 - 1.3) & (np.abs(lz + 5.0 + 0.15 * sp_y) < sp_h - 1.3),
            m_val - 0.05,
            lab,
        )
        lateral = (np.abs(lx) > bxw + 2.0) & (np.abs(lx) < bxw + 12.0) & (ly > cy) & (ly < cy + byw + 6.0)
        sap = lateral & (lz > s.h / 2 - 6.0) & (lz < s.h / 2 + 8.0)
        iap = lateral & (lz > -s.h / 2 - 9.0) & (lz < -s.h / 2 + 5.0) & (ly > cy + 3.0)
        if not sacral:
            canvas.paint(sl, sap | iap, 0.3, lab)
        elif name == "S2" and an["sacral_remnant_disc"]:  # rudimentary S1-S2 disc, thin and low signal
            canvas.paint(
                sl, _ellipse(lx, ly, s.rx - 2.0, s.ry - 2.0) & (lz > s.h / 2) & (lz < s.h / 2 + 1.6), 0.4
            )
        # canal contents at this level
        bony = _ellipse(lx, ly - cy, bxw, byw) & (np.abs(lz) <= s.h / 2 + 0.5)
        canvas.paint(sl, bony & (ly > cy), 0.78)  # posterior epidural fat
        canvas.paint(sl, bony & (ly <= cy), 0.3)  # anterior epidural space (venous plexus, PLL)
        if name not in ("S3", "S4"):
            sac = _ellipse(lx, ly - cy, rsx * (0.6 if sacral else 1.0), rsy * (0.6 if sacral else 1.0)) & (
                np.abs(lz) <= s.h / 2 + 0.5
            )
            canvas.paint(sl, sac, 1.0, _label_of("dural_sac"))
            if name in ("T11", "T12"):  # spinal cord and conus
                canvas.paint(sl, _ellipse(lx, ly - cy, 4.5, 4.0) & (np.abs(lz) <= s.h / 2 + 0.5), 0.42)
            elif not sacral:  # cauda equina, lying dorsally
                for x0 in (-5.5, -2.5, 2.5, 5.5):
                    canvas.paint(sl, _ellipse(lx - x0, ly - cy - 0.35 * rsy, 0.9, 0.9) & sac, 0.3)
        del body, lx, ly, lz

    # ---- pass 3: discs, foramina, stenoses, herniations
    truth_discs: dict[str, Any] = {}
    truth_foramina: dict[str, Any] = {}
    nucleus_by_pf = {1: 0.92, 2: 0.82, 3: 0.58, 4: 0.36, 5: 0.2}
    for upper, lower in _DISCS:
        dname = f"{upper}-{lower}"
        d = discs[dname]
        vu, vl = vert[upper], vert[lower]
        pth = path.get(dname, _normal_level(1))
        blk = canvas.block(
            _box_corners(
                d,
                (-(bxw + 18.0), bxw + 18.0),
                (-d.ry - 4, canal_y(d) + byw + 8),
                (-d.h / 2 - 16, d.h / 2 + 16),
            )
        )
        truth_discs[dname] = {"centre_lps": canvas.world(d.centre), "up": rot @ d.up, "height_mm": d.h}
        if blk is None:
            continue
        sl, body = blk
        lx, ly, lz = _local(body, d)
        _, _, lz_u = _local(body, vu)
        _, _, lz_l = _local(body, vl)
        between = (lz_u < -vu.h / 2) & (lz_l > vl.h / 2)
        lab = _label_of(f"disc_{upper}_{lower}")
        disc = between & _ellipse(lx, ly, d.rx, d.ry)
        canvas.paint(sl, disc, 0.22, lab)  # annulus
        pf = int(pth["pfirrmann"])
        nucleus = between & (
            ((lx / (0.7 * d.rx)) ** 2 + ((ly - 0.05 * d.ry) / (0.68 * d.ry)) ** 2 + (lz / (0.45 * d.h)) ** 2)
            <= 1.0
        )
        canvas.paint(sl, nucleus, nucleus_by_pf[pf], lab)
        if pf == 2:  # intranuclear cleft
            canvas.paint(sl, nucleus & (np.abs(lz) < 0.6), 0.45, lab)
        cy = canal_y(d)
        # canal at the disc level, with central stenosis
        bony = _ellipse(lx, ly - cy, bxw, byw) & (np.abs(lz) <= d.h / 2 + 3.0) & ~disc
        canvas.paint(sl, bony & (ly > cy), 0.78)
        canvas.paint(sl, bony & (ly <= cy), 0.3)
        canvas.paint(
            sl,
            _ellipse(lx, ly - cy, rsx, rsy) & (np.abs(lz) <= d.h / 2 + 3.0) & ~disc,
            1.0,
            _label_of("dural_sac"),
        )
        factor = {"none": 1.0, "mild": 0.7, "moderate": 0.45, "severe": 0.2}[pth["central_stenosis"]]
        if factor < 1.0:
            g = np.exp(-((lz / 6.0) ** 2))
            sy = rsy * (1.0 - (1.0 - factor) * g)
            sx = rsx * (1.0 - (1.0 - math.sqrt(factor)) * g)
            old = _ellipse(lx, ly - cy, rsx, rsy) & (np.abs(lz) <= d.h / 2 + 8.0)
            new = (lx / sx) ** 2 + ((ly - cy) / sy) ** 2 <= 1.0
            lost = old & ~new
            canvas.paint(sl, lost & (ly < cy), 0.25)  # disc bulge and posterior longitudinal ligament
            canvas.paint(sl, lost & (ly >= cy), 0.1)  # hypertrophied ligamentum flavum
            canvas.label[sl][lost & (canvas.label[sl] == _label_of("dural_sac"))] = 0
        if dname not in ("T11-T12",):
            for x0 in (-5.5, -2.5, 2.5, 5.5):  # cauda equina continues through the disc level
                strands = _ellipse(lx - x0, ly - cy - 0.35 * rsy * factor, 0.9, 0.9) & (
                    np.abs(lz) <= d.h / 2 + 3.0
                )
                canvas.paint(sl, strands & (canvas.label[sl] == _label_of("dural_sac")), 0.3)
        # foramina
        truth_foramina[dname] = {}
        for side in SIDES:
            sgn = 1.0 if side == "left" else -1.0  # LPS +x is the patient's left
            grade = pth["foraminal_stenosis"][side] if dname in path else "none"
            ax_ = np.abs(lx) - bxw
            lateral = (sgn * lx > 0) & (ax_ > -1.0) & (ax_ < 15.0)
            fy0, fz0, fay, faz = d.ry + 5.0, d.h / 2 + 3.0, 5.5, 10.0  # ~11 x 20 mm (AP x cranio-caudal)
            foramen = lateral & _ellipse(ly - fy0, lz - fz0, fay, faz)
            run = np.clip(ax_, 0.0, None)
            ry0 = fy0 + 0.5 - 0.25 * run
            rz0 = d.h / 2 + 5.5 - 0.45 * run
            canvas.paint(sl, foramen, 0.14)  # encroaching low-signal tissue (visible where fat is lost)
            scale = {"none": (1.0, 1.0), "mild": (1.0, 0.62), "moderate": (0.68, 0.5), "severe": (0.0, 0.0)}[
                grade
            ]
            if scale[0] > 0:
                if grade == "none":
                    fat = foramen
                else:  # the remaining fat hugs the root
                    fat = lateral & _ellipse(ly - ry0, lz - rz0, fay * scale[0], faz * scale[1]) & foramen
                canvas.paint(sl, fat, 0.8)
            root_name = f"root_{upper}_{side}"
            r_y, r_z = (3.4, 1.5) if grade == "severe" else (2.6, 2.6)
            root = lateral & _ellipse(ly - ry0, lz - rz0, r_y, r_z)
            canvas.paint(sl, root, 0.3, _label_of(root_name))
            centre_body = d.centre + np.array([sgn * (bxw + 6.0), 0, 0]) + d.back * fy0 + d.up * fz0
            truth_foramina[dname][side] = {
                "grade": grade,
                "centre_lps": canvas.world(centre_body),
                "half_height_mm": faz,
                "half_depth_mm": fay,
                "lateral_range_mm": [bxw - 1.0, bxw + 15.0],
                "root": root_name,
            }
        # herniation
        h = pth["herniation"]
        if h["type"] != "none":
            sgn = 0.0 if h["side"] not in SIDES else (1.0 if h["side"] == "left" else -1.0)
            x0 = {"central": 0.0, "paracentral": 7.0, "foraminal": bxw + 5.0}[h["position"]] * sgn
            if h["type"] == "bulge":
                hern = (
                    _ellipse(lx, ly, d.rx + 1.0, d.ry + 2.5)
                    & ~_ellipse(lx, ly, d.rx, d.ry)
                    & (np.abs(lz) < 0.4 * d.h)
                    & (ly > 0)
                )
                val = 0.25
            elif h["type"] == "protrusion":
                hern = ((lx - x0) / 7.0) ** 2 + ((ly - d.ry - 1.0) / 4.5) ** 2 + (
                    lz / (0.4 * d.h)
                ) ** 2 <= 1.0
                val = 0.3
            else:
                mig = (2.0 + 3.0 * float(_rng(params["seed"], 7).random())) * (
                    1.0 if _rng(params["seed"], 8).random() < 0.5 else -1.0
                )
                hern = ((lx - x0) / 6.0) ** 2 + ((ly - d.ry - 3.5) / 6.5) ** 2 + (
                    (lz - mig) / (0.45 * d.h + 5.0)
                ) ** 2 <= 1.0
                val = 0.5
            hern &= ly > 0
            canvas.paint(sl, hern, val, lab)
        del body, lx, ly, lz, lz_u, lz_l

    # ---- image formation: partial volume across the slice, blur, texture, bias field, Rician noise
    value = canvas.value.reshape(zs.size, ys.size, n_slices, slice_subsamples).mean(axis=3)
    labels = canvas.label.reshape(zs.size, ys.size, n_slices, slice_subsamples)[..., slice_subsamples // 2]
    value = gaussian_filter(value, (0.45, 0.45, 0.0))
    tex = _smooth_field(tex_rng, value.shape, (3.0, 3.0, 0.7))
    value = value * (1.0 + imaging["texture_sd"] * tex)
    zn = (zs / (0.5 * fov_mm[1]))[:, None, None]
    yn = (ys / (0.5 * fov_mm[0]))[None, :, None]
    c = imaging["bias_coeffs"]
    bias = np.exp(imaging["bias_posterior"] * yn + c[0] * zn + c[1] * zn**2 + c[2] * yn * zn + c[3] * yn**2)
    value = value * bias.astype(np.float32)
    if noise:
        nrng = _rng(params["seed"], 9)
        sd = imaging["noise_sd"]
        re = value + nrng.normal(0.0, sd, value.shape).astype(np.float32)
        im = nrng.normal(0.0, sd, value.shape).astype(np.float32)
        value = np.sqrt(re * re + im * im)
    arr = np.clip(np.rint(value * imaging["scale"]), 0, 32767).astype(np.int16)
    origin = (float(centres_x[0]), float(ys[0]), float(zs[0]))
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((ds, dy, dz))
    img.SetOrigin(origin)
    lab_img = sitk.GetImageFromArray(labels)
    lab_img.CopyInformation(img)
    img = sitk.DICOMOrient(img, "PIR")
    lab_img = sitk.DICOMOrient(lab_img, "PIR")

    truth = _jsonable(copy.deepcopy(dict(params)))
    truth["grid"] = {
        "orientation": "PIR",
        "size_ijk": list(img.GetSize()),
        "spacing_mm": list(img.GetSpacing()),
        "slice_thickness_mm": ds,
        "n_slices": n_slices,
        "midline_x_mm": float(canvas.world(np.zeros(3))[0]),
    }
    truth["geometry"] = _jsonable({"vertebrae": truth_vert, "discs": truth_discs, "foramina": truth_foramina})
    truth["roi_levels"] = ["L3", "L4", "L5", "S1"]
    return SagittalT2Case(image=img, labels=lab_img, truth=truth)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [float(v) for v in obj.ravel()]
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def generate_sagittal_t2(
    seed: int = 0,
    *,
    pathology: Mapping[str, Any] | None = None,
    symptomatic: Mapping[str, str] | None = None,
    normal: bool = False,
    **render_options: Any,
) -> SagittalT2Case:
    """Sample and render one case; see :func:`sample_case` and :func:`render_sagittal_t2` for the options.

    Example:
        >>> case = generate_sagittal_t2(3, pathology={"L5-S1": {"foraminal_stenosis": {"left": "severe"}}})
        >>> case.truth["outcome"]["p_good"]  # doctest: +SKIP
    """
    params = sample_case(seed, pathology=pathology, symptomatic=symptomatic, normal=normal)
    return render_sagittal_t2(params, **render_options)


def iter_cohort(n: int, seed: int = 0, **render_options: Any) -> Iterator[SagittalT2Case]:
    """Render cases ``seed .. seed+n-1`` one by one."""
    for s in range(int(seed), int(seed) + int(n)):
        yield generate_sagittal_t2(s, **render_options)


def write_sagittal_case(
    case: SagittalT2Case, folder: str | os.PathLike, overwrite: bool = False
) -> dict[str, Path]:
    """Write ``t2_sagittal.nii.gz``, ``labels.nii.gz`` (+ ``labels.json``) and ``truth.json`` into ``folder``."""
    from ..anatomy import get_mapping
    from ..io import write_image
    from ..outputs import write_json

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "image": write_image(case.image, out / "t2_sagittal.nii.gz", overwrite=overwrite),
        "labels": write_image(case.labels, out / "labels.nii.gz", overwrite=overwrite),
    }
    paths["labels_json"] = get_mapping("canonical").save_json(out / "labels.json", overwrite=overwrite)
    paths["truth"] = write_json(out / "truth.json", case.truth, overwrite=overwrite)
    return paths
