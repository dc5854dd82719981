"""The eight per-disc gradings of sagittal lumbar MRI and the naming of disc levels.

Gradings follow the SPIDER radiological gradings (van der Graaf et al., Scientific Data 2024), one row
per patient and intervertebral disc (IVD). The CSV column names are SPIDER's own spelling (including
``"Pfirrman grade"``).

Disc levels are numbered like SPIDER's IVD labels: **IVD 1 is L5/S1, the lowest disc above the sacrum**,
and the numbers count upwards (2 = L4/L5, 3 = L3/L4, 4 = L2/L3, 5 = L1/L2, 6 = T12/L1, 7 = T11/T12, ...).
The anatomical names assume the usual five lumbar vertebrae; with a transitional (sixth lumbar or
sacralised fifth) vertebra the numbers stay right (counted from the sacrum) but the names shift.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..anatomy import disc_name

__all__ = [
    "GRADING_TASKS",
    "TASK_KEYS",
    "GradingTask",
    "level_name",
    "level_structure",
    "task_by_key",
]


@dataclass(frozen=True)
class GradingTask:
    """One grading predicted per disc.

    Attributes:
        key: short identifier used in outputs (``"pfirrmann"``).
        column: column name in ``radiological_gradings.csv``.
        title: human-readable name.
        grades: the allowed grade values, in order (the network's output classes).
        grade_names: a short meaning of each grade.
        ordinal: whether the grades are ordered (weighted kappa is meaningful).
    """

    key: str
    column: str
    title: str
    grades: tuple[int, ...]
    grade_names: tuple[str, ...]
    ordinal: bool

    @property
    def n_classes(self) -> int:
        """Number of grades (network outputs of this head)."""
        return len(self.grades)

    def index_of(self, grade: int) -> int:
        """Output index of a grade value (raises ``ValueError`` for an unknown grade)."""
        return self.grades.index(int(grade))


_BINARY = (0, 1)
_NO_YES = ("absent", "present")

#: the gradings, in the network's head order
GRADING_TASKS: tuple[GradingTask, ...] = (
    GradingTask(
        "modic", "Modic", "Modic change", (0, 1, 2, 3), ("none", "type 1", "type 2", "type 3"), False
    ),
    GradingTask(
        "up_endplate", "UP endplate", "Upper endplate change / Schmorl node", _BINARY, _NO_YES, False
    ),
    GradingTask(
        "low_endplate", "LOW endplate", "Lower endplate change / Schmorl node", _BINARY, _NO_YES, False
    ),
    GradingTask("spondylolisthesis", "Spondylolisthesis", "Spondylolisthesis", _BINARY, _NO_YES, False),
    GradingTask("herniation", "Disc herniation", "Disc herniation", _BINARY, _NO_YES, False),
    GradingTask("narrowing", "Disc narrowing", "Disc narrowing", _BINARY, _NO_YES, False),
    GradingTask("bulging", "Disc bulging", "Disc bulging", _BINARY, _NO_YES, False),
    GradingTask(
        "pfirrmann",
        "Pfirrman grade",
        "Pfirrmann grade",
        (1, 2, 3, 4, 5),
        ("I", "II", "III", "IV", "V"),
        True,
    ),
)

TASK_KEYS: tuple[str, ...] = tuple(t.key for t in GRADING_TASKS)


def task_by_key(key: str) -> GradingTask:
    """The grading task called ``key`` (raises ``KeyError`` naming the known keys)."""
    for task in GRADING_TASKS:
        if task.key == key:
            return task
    raise KeyError(f"unknown grading '{key}'; known: {', '.join(TASK_KEYS)}")


# vertebrae from the sacrum upwards: the disc with IVD number k lies between _UPWARD[k] (above) and
# _UPWARD[k - 1] (below)
_UPWARD = ("S1", "L5", "L4", "L3", "L2", "L1") + tuple(f"T{i}" for i in range(12, 0, -1))


def level_name(ivd: int) -> str:
    """Level name of IVD number ``ivd`` (1 = L5/S1): ``1 -> "L5-S1"``, ``6 -> "T12-L1"``."""
    if not 1 <= int(ivd) < len(_UPWARD):
        raise ValueError(f"IVD number {ivd} is outside 1..{len(_UPWARD) - 1}")
    return f"{_UPWARD[ivd]}-{_UPWARD[ivd - 1]}"


def level_structure(ivd: int) -> str:
    """Canonical structure name of IVD number ``ivd``: ``1 -> "disc_L5_S1"``."""
    upper, lower = level_name(ivd).split("-")
    return disc_name(upper, lower)
