"""The level numbering of ``spineai levels`` as the SpineAISegmentation module shows it (no Slicer imports).

``spineai levels`` writes ``levels.json`` (:meth:`spineai.levels.LevelResult.to_dict`, ``format:
"spineai-levels"``) beside the renumbered segmentation. The module reads it with :func:`read_levels_file`
(a :class:`spineai.reports.levels.LevelLabels`, the same reading the HTML reports use) and shows:

- :func:`levels_table`: one row per vertebra, cranial to caudal: name, VerSe label, confidence (0..1),
  trusted, flags, Castellvi type per side (the transitional vertebra) and what to check;
- :func:`warning_text`: the red warning of a flagged numbering (low confidence, transitional anatomy, a
  failed numbering), "" when the levels can be trusted;
- :func:`annotate_planning_table` and :func:`annotate_summary`: the triangle table and the one-line
  summaries of a measurement, each level with its confidence and a mark when its labels are in doubt.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from SpineAILib.tables import ColumnSpec, TableData

from spineai.reports.levels import LEVELS_BANNER, LevelLabels, read_levels, vertebrae_of_level

__all__ = [
    "LEVELS_FILE",
    "LEVEL_CHECK_COLUMN",
    "LEVEL_CONFIDENCE_COLUMN",
    "annotate_planning_table",
    "annotate_summary",
    "find_levels_file",
    "level_confidence",
    "levels_table",
    "read_levels_file",
    "status_text",
    "warning_text",
]

LEVELS_FILE = "levels.json"
#: columns added to the triangle table of a measurement whose segmentation was renumbered
LEVEL_CONFIDENCE_COLUMN = "level_confidence"
LEVEL_CHECK_COLUMN = "level_check"
#: the mark of a level whose labels must be checked (in tables and summary lines)
MARK = "⚠"


def find_levels_file(folders: Iterable[str | os.PathLike | None]) -> Path | None:
    """The first ``levels.json`` of ``spineai levels`` among ``folders`` (or files), ``None`` when none has one."""
    for entry in folders:
        if not entry:
            continue
        p = Path(entry)
        candidate = p if p.suffix == ".json" else p / LEVELS_FILE
        if candidate.is_file():
            return candidate
    return None


def read_levels_file(path: str | os.PathLike | None) -> LevelLabels | None:
    """The numbering in a ``levels.json`` (``None`` when ``path`` is ``None``).

    Raises:
        ValueError: the file is missing, is not JSON, or is not a ``spineai levels`` result.
    """
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"The level file '{p}' does not exist; run 'Renumber vertebrae' again.")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"The level file '{p}' is not valid JSON ({exc}); run 'Renumber vertebrae' again."
        ) from exc
    if not isinstance(data, dict) or (data.get("format") != "spineai-levels" and "error" not in data):
        raise ValueError(f"'{p}' is not a 'spineai levels' result (no format 'spineai-levels').")
    return read_levels(data)


def warning_text(info: LevelLabels | None) -> str:
    """The warning of a flagged numbering, in plain words ("" when there is nothing to check)."""
    if info is None or not info.flagged:
        return ""
    return f"{MARK} Level labels flagged. " + " ".join(info.reasons()) + f" {LEVELS_BANNER}"


def status_text(info: LevelLabels | None) -> str:
    """One line on the numbering: its anchor and each vertebra with its confidence (e.g. ``L5 0.90``)."""
    if info is None:
        return ""
    if info.error and not info.vertebrae:
        return f"The vertebrae could not be numbered: {info.error}"
    names = ", ".join(
        v.name + ("" if v.confidence is None else f" {v.confidence:.2f}") + (f" {MARK}" if v.flagged else "")
        for v in info.vertebrae
    )
    return f"Numbered from {info.anchor_text}: {names}."


def levels_table(info: LevelLabels) -> TableData:
    """One row per vertebra (cranial to caudal) for a ``vtkMRMLTableNode``: ``Vertebra``, ``VerSe label``,
    ``Confidence`` (0..1; NaN when unknown), ``Trusted``, ``Flags``, ``Castellvi`` (per side, the transitional
    vertebra only) and ``Check`` (why its name may be wrong)."""
    columns = (
        ColumnSpec("Vertebra", False),
        ColumnSpec("VerSe label", True),
        ColumnSpec("Confidence", True),
        ColumnSpec("Trusted", False),
        ColumnSpec("Flags", False),
        ColumnSpec("Castellvi", False),
        ColumnSpec("Check", False),
    )
    rows = []
    for v in info.vertebrae:
        rows.append(
            {
                "Vertebra": v.name,
                "VerSe label": float(v.verse_label) if v.verse_label is not None else math.nan,
                "Confidence": v.confidence if v.confidence is not None else math.nan,
                "Trusted": "" if v.trusted is None else ("yes" if v.trusted else "no"),
                "Flags": ", ".join(v.flags),
                "Castellvi": ", ".join(f"{s} {t}" for s, t in sorted(v.castellvi.items())),
                "Check": f"{MARK} " + "; ".join(v.concerns) if v.flagged else "",
            }
        )
    return TableData(columns, tuple(rows))


def level_confidence(info: LevelLabels, level: str) -> float:
    """The lowest confidence of the vertebrae of ``level`` (``"L5-S1"``); NaN when one is unknown."""
    values = []
    for name in vertebrae_of_level(level):
        v = info.get(name)
        if v is None or v.confidence is None:
            return math.nan
        values.append(v.confidence)
    return min(values) if values else math.nan


def annotate_planning_table(data: TableData, info: LevelLabels | None) -> TableData:
    """The triangle table with, after its ``level`` column, the level's confidence (``level_confidence``,
    the lower of its two vertebrae) and ``level_check`` (the mark and the reason, "" when the level can be
    trusted). Unchanged without a numbering or a ``level`` column."""
    names = [c.name for c in data.columns]
    if info is None or "level" not in names or LEVEL_CHECK_COLUMN in names:
        return data
    at = names.index("level") + 1
    columns = (
        *data.columns[:at],
        ColumnSpec(LEVEL_CONFIDENCE_COLUMN, True),
        ColumnSpec(LEVEL_CHECK_COLUMN, False),
        *data.columns[at:],
    )
    rows = []
    for row in data.rows:
        level = str(row.get("level", ""))
        concern = info.concern(level)
        rows.append(
            {
                **row,
                LEVEL_CONFIDENCE_COLUMN: level_confidence(info, level),
                LEVEL_CHECK_COLUMN: f"{MARK} check: {concern}" if concern else "",
            }
        )
    return TableData(tuple(columns), tuple(rows))


def annotate_summary(lines: Sequence[str], info: LevelLabels | None) -> list[str]:
    """The summary lines of a measurement (``"L5-S1 left: Kambin ..."``) with the mark and the reason after
    each line whose level's labels are in doubt."""
    if info is None:
        return list(lines)
    out = []
    for line in lines:
        level = line.split(" ", 1)[0]
        concern = info.concern(level) if vertebrae_of_level(level) else ""
        out.append(f"{line} {MARK} check the level: {concern}" if concern else line)
    return out
