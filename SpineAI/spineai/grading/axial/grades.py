"""The axial gradings: LDH, LCCS and LNRC (per slice) and the stenosis of five regions of interest.

Definitions (as the project specification states them, after the cited grading systems):

* **LDH**, lumbar disc herniation (Mysliwiec et al.): the herniation's posterior extent measured against
  the *intra-facet line*, the line across the canal between the medial edges of the left and right facet
  joint articulations. 0 none; 1 extends less than 50 % of the distance from the non-herniated posterior
  disc margin to the line; 2 50 % or more of that distance; 3 beyond the line.
* **LCCS**, lumbar central canal stenosis (Lee et al., from the cauda equina and the CSF around it):
  0 normal; 1 CSF space reduced, every cauda equina root still separated by CSF; 2 some roots aggregated;
  3 all roots as one bundle (no CSF between them).
* **LNRC**, lumbar nerve-root compromise by disc material (Pfirrmann et al.): 0 none (epidural fat between
  disc and root preserved); 1 contact (no fat between them, root in its normal position); 2 root
  deviated dorsally; 3 root compressed between disc and canal wall (flattened). Graded for the
  traversing root on each side; the slice's LNRC is the worse side.
* **Stenosis** of five regions (after Hallinan et al., Radiology 2021): the central canal (Lee's grades,
  the same as LCCS), the left and right lateral recess (subarticular zone, after Bartynski and Lin:
  0 normal; 1 recess narrowed, root neither displaced nor deformed; 2 root displaced; 3 root compressed)
  and the left and right neural foramen (Lee et al.: 0 perineural fat all around the exiting root;
  1 fat obliterated in two opposing directions; 2 fat obliterated all around, root not deformed; 3 root
  collapsed or deformed). Each region also has the dichotomous grading normal/mild (0-1) vs
  moderate/severe (2-3).

Left and right are the patient's sides (LPS: left = +x).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AXIAL_TASKS",
    "AXIAL_TASK_KEYS",
    "DICHOTOMOUS_POSITIVE",
    "GRADES",
    "REGIONS",
    "REGION_KINDS",
    "STENOSIS_NAMES",
    "AxialTask",
    "Region",
    "axial_task",
    "parse_grade",
    "region",
]

#: every grading here has four ordered grades
GRADES: tuple[int, ...] = (0, 1, 2, 3)
#: grades counted as positive by the dichotomous gradings (0-1 vs 2-3)
DICHOTOMOUS_POSITIVE: tuple[int, ...] = (2, 3)
#: names of the four stenosis grades
STENOSIS_NAMES: tuple[str, ...] = ("normal", "mild", "moderate", "severe")


@dataclass(frozen=True)
class AxialTask:
    """One of the three per-slice gradings of the multi-task grader.

    Attributes:
        key: identifier in outputs and manifests (``"ldh"``).
        title: human-readable name.
        grade_names: meaning of grades 0..3.
    """

    key: str
    title: str
    grade_names: tuple[str, ...]

    @property
    def grades(self) -> tuple[int, ...]:
        """The grade values, 0..3 (the head's output order)."""
        return GRADES


#: the three heads, in the network's output order
AXIAL_TASKS: tuple[AxialTask, ...] = (
    AxialTask(
        "ldh",
        "Lumbar disc herniation (LDH)",
        (
            "none",
            "< 50% to the intra-facet line",
            ">= 50% to the intra-facet line",
            "beyond the intra-facet line",
        ),
    ),
    AxialTask(
        "lccs",
        "Lumbar central canal stenosis (LCCS)",
        ("normal", "CSF reduced, roots separate", "some roots aggregated", "all roots bundled"),
    ),
    AxialTask(
        "lnrc",
        "Lumbar nerve-root compromise (LNRC)",
        ("none", "contact", "dorsal deviation", "compression"),
    ),
)
AXIAL_TASK_KEYS: tuple[str, ...] = tuple(t.key for t in AXIAL_TASKS)


@dataclass(frozen=True)
class Region:
    """One region of interest of the stenosis model.

    Attributes:
        key: identifier (``"foramen_left"``).
        kind: ``"central_canal"``, ``"lateral_recess"`` or ``"foramen"`` (the classifier head).
        side: ``"left"``, ``"right"`` or ``None``.
        title: human-readable name.
    """

    key: str
    kind: str
    side: str | None
    title: str


#: the five regions, in the detector's channel order
REGIONS: tuple[Region, ...] = (
    Region("central_canal", "central_canal", None, "central canal"),
    Region("lateral_recess_left", "lateral_recess", "left", "left lateral recess"),
    Region("lateral_recess_right", "lateral_recess", "right", "right lateral recess"),
    Region("foramen_left", "foramen", "left", "left neural foramen"),
    Region("foramen_right", "foramen", "right", "right neural foramen"),
)
#: classifier heads of the stenosis model, in output order
REGION_KINDS: tuple[str, ...] = ("central_canal", "lateral_recess", "foramen")


def axial_task(key: str) -> AxialTask:
    """The task ``key`` (``ldh``, ``lccs`` or ``lnrc``); a ``ValueError`` names the choices."""
    for task in AXIAL_TASKS:
        if task.key == key:
            return task
    raise ValueError(f"unknown axial grading '{key}'; choose from {', '.join(AXIAL_TASK_KEYS)}")


def region(key: str) -> Region:
    """The region ``key``; a ``ValueError`` names the choices."""
    for r in REGIONS:
        if r.key == key:
            return r
    raise ValueError(f"unknown region '{key}'; choose from {', '.join(r.key for r in REGIONS)}")


_WORDS = {"normal": 0, "none": 0, "mild": 1, "moderate": 2, "severe": 3}


def parse_grade(text: str) -> int | None:
    """A grade from a manifest cell: ``0``..``3`` (also ``2.0``) or a stenosis word; ``None`` if blank.

    Raises:
        ValueError: anything else (the caller names the row and column).
    """
    value = str(text).strip().lower()
    if value in ("", "na", "n/a", "nan"):
        return None
    if value in _WORDS:
        return _WORDS[value]
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"'{text}' is not a grade") from None
    if number != int(number) or int(number) not in GRADES:
        raise ValueError(f"'{text}' is not a grade")
    return int(number)
