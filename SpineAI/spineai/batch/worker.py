"""One case of a batch run, as executed by a worker (this process, a local process pool or a Dask worker).

:func:`process_case` is a plain top-level function of a picklable :class:`CaseTask`, so any executor can
run it. It writes the case's ``record.json`` before starting (``running``), after every step
(``steps_done``) and at the end (``done`` or ``failed``), runs :func:`spineai.api.run_case` into the case
folder, adds ground-truth scores and custom steps, and returns the final record.

Errors: an input problem (:class:`~spineai.errors.SpineAIError`, ``ValueError``, missing files) is
recorded as ``failed`` and returned: retrying would not help. Any other exception is recorded and then
re-raised so the executor may retry the case (Dask ``retries``, the local pool's resubmission).
"""

from __future__ import annotations

import contextlib
import io as _io
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SpineAIError
from .cohort import Case
from .record import SCHEMA, is_finished, now_iso, read_record, write_record

__all__ = ["CaseContext", "CaseTask", "process_case"]

#: errors that describe the input: recorded, never retried
EXPECTED_ERRORS = (SpineAIError, ValueError, FileNotFoundError, FileExistsError, PermissionError, KeyError)


@dataclass
class CaseContext:
    """What a custom step receives.

    Attributes:
        case: the :class:`~spineai.batch.cohort.Case` (inputs and metadata).
        folder: the case's output folder (``cases/<case_id>``); write files here.
        result: the :class:`~spineai.api.CaseOutput` of the built-in steps (``None`` if none ran).
        record: the case record so far (read-only view; steps done, attempts).
    """

    case: Case
    folder: Path
    result: Any
    record: Mapping[str, Any]


#: a custom step: called with the case's context, returns scalar results (or ``None``)
CustomStep = Callable[[CaseContext], "Mapping[str, Any] | None"]


@dataclass
class CaseTask:
    """Everything a worker needs to run one case (picklable).

    Attributes:
        case: the case.
        folder: its output folder.
        steps: built-in steps to run (:data:`spineai.api.CASE_STEPS`), in order.
        settings: keyword arguments of :func:`spineai.api.run_case` (weights, device, levels, ...).
        fingerprint: the inputs' fingerprint (:meth:`Case.fingerprint`).
        run_token: identifies this submission in the record.
        custom_steps: ``(name, function)`` pairs run after the built-in steps; the function must be
            importable by the workers (defined at module level).
        threads: PyTorch CPU threads while the case runs (``None``: leave the setting alone).
        quiet: silence the engine's progress output (parallel workers).
    """

    case: Case
    folder: Path
    steps: list[str]
    settings: dict[str, Any]
    fingerprint: str
    run_token: str
    custom_steps: tuple[tuple[str, CustomStep], ...] = ()
    threads: int | None = None
    quiet: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def all_steps(self) -> list[str]:
        """Built-in and custom step names (custom ones as ``custom:<name>``)."""
        return [*self.steps, *(f"custom:{name}" for name, _ in self.custom_steps)]


@contextlib.contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    """No engine progress output: ``SPINEAI_PROGRESS`` lines off, progress bars to a buffer."""
    previous = os.environ.pop("SPINEAI_PROGRESS", None)
    try:
        if enabled:
            with contextlib.redirect_stderr(_io.StringIO()):
                yield
        else:
            yield
    finally:
        if previous is not None:
            os.environ["SPINEAI_PROGRESS"] = previous


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    if not threads:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def level_columns(levels: Mapping[str, Any] | None, level: str) -> dict[str, Any]:
    """The level columns of one triangle row (``results.tsv``) from ``CaseOutput.levels``.

    ``level_confidence``: the lower of the two vertebrae's confidences (``None`` when the numbering did not
    run or failed, or names neither vertebra); ``level_trusted``: both vertebrae numbered and trusted;
    ``levels_flagged``: the case's numbering has low confidence somewhere or a transitional junction (or
    failed); ``castellvi``: the Castellvi type of the transitional vertebra (``None`` for type 0).
    Without the ``levels`` step every value is ``None``.
    """
    if levels is None:
        return {"level_confidence": None, "level_trusted": None, "levels_flagged": None, "castellvi": None}
    if "error" in levels:
        return {"level_confidence": None, "level_trusted": False, "levels_flagged": True, "castellvi": None}
    by_name = {v["name"]: v for v in levels.get("vertebrae") or []}
    pair = [by_name.get(n) for n in str(level).split("-")]
    found = [v for v in pair if v is not None]
    castellvi = (levels.get("transitional") or {}).get("castellvi_type")
    return {
        "level_confidence": round(min(float(v["confidence"]) for v in found), 3) if found else None,
        "level_trusted": len(found) == 2 and all(bool(v["trusted"]) for v in found),
        "levels_flagged": bool(levels.get("flagged")),
        "castellvi": None if castellvi in (None, "0") else castellvi,
    }


def _level_summary(levels: Mapping[str, Any] | None) -> dict[str, Any]:
    """Per-case values of ``cases.tsv`` from ``CaseOutput.levels``."""
    if levels is None:
        return {}
    if "error" in levels:
        return {"levels_flagged": True, "levels_error": levels["error"]}
    transitional = levels.get("transitional") or {}
    castellvi = transitional.get("castellvi_type")
    return {
        "levels_flagged": bool(levels.get("flagged")),
        "levels_anchor": (levels.get("anchor") or {}).get("method"),
        "vertebrae_numbered": ",".join(v["name"] for v in levels.get("vertebrae") or []),
        "transitional": transitional.get("kind"),
        "castellvi": None if castellvi in (None, "0") else castellvi,
    }


def _case_results(result: Any, case: Case) -> tuple[dict[str, Any], dict[str, Any]]:
    """(results for the tables, evaluation) of a finished :class:`~spineai.api.CaseOutput`."""
    from ..api import _jsonable
    from .evaluation import add_truth_areas, read_truth_areas, segmentation_scores

    triangles: list[dict[str, Any]] = []
    grades: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"segmentation_source": result.segmentation_source}
    evaluation: dict[str, Any] = {}
    blocks: dict[str, Any] = {}
    if result.segmentation is not None:
        summary["structures_found"] = len(result.segmentation.structures)
        summary["segmentation_warnings"] = len(result.segmentation.warnings)
    flagged_checks = sorted({c["name"] for c in result.checks if c.get("status") != "ok"})
    if flagged_checks:
        summary["checks_flagged"] = ",".join(flagged_checks)
    summary.update(_level_summary(result.levels))
    if result.level_result is not None:
        blocks["levels"] = _jsonable(result.level_result.table_rows())
    if result.triangles is not None:
        from ..planning.tables import table_rows

        triangles = _jsonable(table_rows(result.triangles.measurements))
        for row in triangles:
            row.update(level_columns(result.levels, row.get("level", "")))
        summary["foramina_measured"] = len(result.triangles.measurements.measured)
        summary["foramina_requested"] = len(result.triangles.measurements.foramina)
        if case.truth is not None:
            add_truth_areas(triangles, read_truth_areas(case.truth))
            errors = [abs(r["area_error_mm2"]) for r in triangles if r.get("area_error_mm2") is not None]
            evaluation["triangles"] = {
                "compared": len(errors),
                "mean_absolute_error_mm2": (sum(errors) / len(errors)) if errors else None,
            }
    if result.grades is not None:
        grades = _jsonable(result.grades.engine.table_rows())
        summary["discs_graded"] = len(result.grades.discs)
    if result.outcome is not None:
        summary["outcome_probability_good"] = result.outcome.probability_good
        summary["outcome_predicted_good"] = result.outcome.predicted_good
    if result.axial is not None:
        rows = []
        for g in result.axial.gradings:
            row = {"grading": g.grading, "grade": g.grade, "grade_name": g.grade_name}
            row.update({f"p_{k}": v for k, v in g.probabilities.items()})
            row.update(p_grade_2_or_3=g.p_grade_2_or_3, grade_2_or_3=g.grade_2_or_3)
            row["graded_slice"] = result.axial.graded_slice
            rows.append(row)
            summary[f"axial_{g.grading}"] = g.grade
        blocks["grading_axial"] = _jsonable(rows)
    if result.stenosis is not None:
        rows = _jsonable(result.stenosis.engine.table_rows())
        for row, region in zip(rows, result.stenosis.regions, strict=True):
            for name, v in zip(("x0", "y0", "x1", "y1"), region.box_lps_mm, strict=True):
                row[f"box_{name}_mm"] = v
        blocks["stenosis"] = rows
        summary["stenosis_moderate_severe"] = ",".join(
            r.region for r in result.stenosis.regions if r.moderate_or_severe
        )
    if result.radiograph is not None:
        blocks["radiograph"] = _jsonable(
            [
                {
                    "level": lv.level,
                    "probability": lv.probability,
                    "threshold": lv.threshold,
                    "herniation": lv.herniation,
                }
                for lv in result.radiograph.levels
            ]
        )
        summary["radiograph_positive_levels"] = ",".join(result.radiograph.positive_levels())
    if case.reference is not None:
        labels = result.segmentation.labels if result.segmentation is not None else case.segmentation
        if labels is not None:
            scores = segmentation_scores(labels, case.reference)
            evaluation["segmentation"] = scores
            for group in ("bone", "nerve"):
                if group in scores:
                    summary[f"dice_{group}"] = scores[group]["dice"]
            dice = [s["dice"] for s in scores["structures"].values() if s["dice"] is not None]
            summary["dice_mean_structures"] = (sum(dice) / len(dice)) if dice else None
    return {"triangles": triangles, "grades": grades, "case": summary, **blocks}, evaluation


def process_case(task: CaseTask) -> dict[str, Any]:
    """Run one case into ``task.folder`` and return its final record (see :mod:`spineai.batch.record`).

    Raises:
        Exception: only errors that are not input problems (after recording them), so that the executor
            can retry the case.
    """
    from ..api import run_case

    folder = Path(task.folder)
    folder.mkdir(parents=True, exist_ok=True)
    previous = read_record(folder)
    if (
        previous is not None
        and previous.get("run_token") == task.run_token
        and is_finished(previous, task.fingerprint, task.all_steps())
    ):
        # finished in this very run: a scheduler recomputing a result lost with a dead worker (Dask does)
        # gets the record back instead of the case being redone
        return previous
    same_inputs = previous is not None and previous.get("fingerprint") == task.fingerprint
    attempts = (int(previous.get("attempts", 0)) if same_inputs and previous else 0) + 1
    case = task.case
    t0 = time.perf_counter()
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "case_id": case.case_id,
        "status": "running",
        "steps": task.all_steps(),
        "steps_done": [],
        "current_step": None,
        "started": now_iso(),
        "finished": None,
        "duration_s": None,
        "attempts": attempts,
        "run_token": task.run_token,
        "fingerprint": task.fingerprint,
        "inputs": case.inputs(),
        "metadata": dict(case.metadata),
        "worker": {"host": socket.gethostname(), "pid": os.getpid()},
        "error": None,
        "results": None,
    }
    remaining = list(task.all_steps())
    record["current_step"] = remaining[0] if remaining else None
    write_record(folder, record)

    def step_done(step: str) -> None:
        record["steps_done"].append(step)
        if step in remaining:
            remaining.remove(step)
        record["current_step"] = remaining[0] if remaining else None
        write_record(folder, record)

    def finish(status: str, error: BaseException | None = None, with_traceback: bool = False) -> None:
        record["status"] = status
        record["finished"] = now_iso()
        record["duration_s"] = round(time.perf_counter() - t0, 3)
        if error is not None:
            record["error"] = {
                "type": type(error).__name__,
                "message": str(error),
                "step": record["current_step"],
            }
            if with_traceback:
                record["error"]["traceback"] = traceback.format_exc()[-4000:]
        write_record(folder, record)

    try:
        with _quiet(task.quiet), _torch_threads(task.threads):
            result = None
            if task.steps:
                result = run_case(
                    case.image if _needs_ct(task.steps) else None,
                    folder,
                    segmentation=case.segmentation,
                    **step_inputs(case, task.steps),
                    level_override=case.level_override,
                    steps=task.steps,
                    overwrite=True,
                    on_step=step_done,
                    **task.settings,
                )
                record["results"], evaluation = _case_results(result, case)
                if evaluation:
                    record["evaluation"] = evaluation
            custom: dict[str, Any] = {}
            for name, function in task.custom_steps:
                context = CaseContext(case=case, folder=folder, result=result, record=dict(record))
                value = function(context)
                custom[name] = {} if value is None else dict(value)
                record["custom"] = custom
                step_done(f"custom:{name}")
    except KeyboardInterrupt as exc:
        finish("interrupted", exc)
        raise
    except EXPECTED_ERRORS as exc:
        finish("failed", exc)
        return record
    except Exception as exc:
        finish("failed", exc, with_traceback=True)
        raise
    finish("done")
    return record


def _needs_ct(steps: Sequence[str]) -> bool:
    from ..api import CT_STEPS

    return any(s in CT_STEPS for s in steps)


def needed_inputs(steps: Sequence[str]) -> list[str]:
    """The non-CT inputs (``mri``, ``axial``, ``radiograph``) ``steps`` read, in that order."""
    from ..api import STEP_INPUTS

    wanted = {STEP_INPUTS[s] for s in steps if s in STEP_INPUTS}
    return [k for k in ("mri", "axial", "radiograph") if k in wanted]


def step_inputs(case: Case, steps: Sequence[str]) -> dict[str, Path | None]:
    """``mri=``, ``axial=``, ``radiograph=`` of :func:`spineai.api.run_case` for ``case``.

    Each is its manifest column; a case without it reads ``image`` instead when the run has no CT step and
    needs only that one kind of input (an MRI-only or radiograph-only cohort from a folder).
    """
    needed = needed_inputs(steps)
    fallback = not _needs_ct(steps) and len(needed) == 1
    out: dict[str, Path | None] = {}
    for kind in ("mri", "axial", "radiograph"):
        value = getattr(case, kind)
        if value is None and fallback and kind in needed:
            value = case.image
        out[kind] = value
    return out
