"""The per-case record ``cases/<case_id>/record.json``: what decides whether a case is finished.

Schema ``spineai.batch.record/1`` (timestamps ISO 8601 UTC with microseconds)::

    {
      "schema": "spineai.batch.record/1",
      "case_id": "case_0001",
      "status": "running" | "done" | "failed" | "interrupted",
      "steps": ["measure", "plan"],          # requested
      "steps_done": ["measure", "plan"],     # finished, in order
      "current_step": null,                  # the step running (or that failed)
      "started": "2025-01-01T10:00:00.000000+00:00",
      "finished": "2025-01-01T10:00:04.123456+00:00",
      "duration_s": 4.12,
      "attempts": 1,                         # starts of this case with these inputs
      "run_token": "...",                    # which submission wrote the record
      "fingerprint": "<sha256 of the inputs' paths, sizes, times>",
      "inputs": {"image": ..., "segmentation": ..., "mri": ..., "axial": ..., "radiograph": ...,
                 "reference": ..., "truth": ...},      # (+ "level_override" when the manifest gives one)
      "metadata": {...},                     # the manifest's extra columns
      "worker": {"host": ..., "pid": ...},
      "error": null | {"type": ..., "message": ..., "step": ..., "traceback": ...},
      "results": {"triangles": [...], "grades": [...], "case": {...},   # rows of the tables; the
                  "levels": [...], "grading_axial": [...],              # later keys only for the
                  "stenosis": [...], "radiograph": [...]},              # steps that ran
      "evaluation": {...},                   # when a reference / truth was given
      "custom": {...}                        # results of custom steps
    }

A case is **finished** when its record says ``done`` for the same input fingerprint and every requested
step is in ``steps_done``; anything else (no record, ``running`` left by a crash or an interruption,
``failed``, other inputs or more steps) is run again. Records written before a results key existed
(``levels``, the level columns of ``triangles``, ...) are read as they are: the tables leave those cells
empty.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..outputs import write_json

SCHEMA = "spineai.batch.record/1"
RECORD_NAME = "record.json"
STATUSES = ("running", "done", "failed", "interrupted")


def now_iso() -> str:
    """The current time, UTC, ISO 8601 with microseconds (sortable)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def read_record(folder: str | Path) -> dict[str, Any] | None:
    """The record in ``folder`` (``None`` when absent or unreadable: the case then counts as not run)."""
    p = Path(folder) / RECORD_NAME
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == SCHEMA else None


def write_record(folder: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` atomically to ``folder/record.json`` (replacing the previous one)."""
    return write_json(Path(folder) / RECORD_NAME, record, overwrite=True)


def is_finished(record: dict[str, Any] | None, fingerprint: str, steps: Iterable[str]) -> bool:
    """Whether ``record`` shows the case done for these inputs and every one of ``steps``."""
    if not record or record.get("status") != "done" or record.get("fingerprint") != fingerprint:
        return False
    return set(steps) <= set(record.get("steps_done") or [])
