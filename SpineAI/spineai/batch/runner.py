"""Run the SpineAI workflow over a cohort: resumable, one case per task, on this machine or a Dask cluster.

:func:`run_batch` reads the cohort (:mod:`~spineai.batch.cohort`), claims the output folder
(``cohort.json``), runs every case that is not finished (:mod:`~spineai.batch.record`) with
:func:`~spineai.batch.worker.process_case`, and rebuilds the tables (:mod:`~spineai.batch.tables`) and
the HTML reports (:mod:`spineai.reports`) from all case records.

Executors:

* ``workers=1`` (default): the cases run one after another in this process;
* ``workers=N``: a pool of N worker processes (``concurrent.futures.ProcessPoolExecutor``, spawned); a
  worker that dies (killed, out of memory) breaks the pool: a new pool is started, the cases that were
  running are retried up to ``retries`` times, then recorded as failed;
* ``scheduler="tcp://host:port"`` (or a ``distributed.Client``): one Dask task per case
  (``client.submit(..., retries=retries)``); Dask reschedules the case of a worker that died (up to its
  ``distributed.scheduler.allowed-failures``) and the case is recorded as failed after that. The workers
  must see the input and output folders at the same paths (a shared file system).

Output folder::

    OUT/cohort.json                 identity of the cohort (inputs hash, steps, settings) and run history
    OUT/cases/<case_id>/record.json status, steps done, timestamps, error, results (see record.py)
    OUT/cases/<case_id>/...         the case's files (segmentation/, levels/, planning/, grading/, outcome/,
                                    grading_axial/, stenosis/, radiograph/, case.json)
    OUT/results.tsv, results.csv    one row per case, level, side and triangle (with the level columns)
    OUT/cases.tsv, failures.tsv     one row per case; one row per failed case
    OUT/levels.tsv                  one row per case and vertebra (levels)
    OUT/grades.tsv                  one row per case and disc (grade-sagittal)
    OUT/grading_axial.tsv           one row per case and grading (grade-axial)
    OUT/stenosis.tsv                one row per case and region (stenosis)
    OUT/radiograph.tsv              one row per case and level (radiograph)
    OUT/report.html                 cohort summary; OUT/cases/<case_id>/report.html per case
    OUT/superseded/<time>/          earlier content moved aside by --overwrite (nothing is deleted)
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api import (
    CASE_STEPS,
    CT_STEPS,
    DEFAULT_LEVELS,
    DEFAULT_SIDES,
    DEFAULT_STEPS,
    INPUT_TITLES,
    Result,
    check_steps,
)
from ..errors import InputError
from ..outputs import write_json
from .cohort import Cohort, read_cohort
from .record import now_iso, read_record, write_record
from .worker import CaseTask, CustomStep, needed_inputs, process_case

__all__ = ["COHORT_SCHEMA", "BatchSummary", "run_batch"]

COHORT_SCHEMA = "spineai.batch.cohort/1"
COHORT_NAME = "cohort.json"
SUPERSEDED = "superseded"
#: seconds to wait for a Dask scheduler before giving up
SCHEDULER_TIMEOUT_S = 10.0


@dataclass
class BatchSummary(Result):
    """What a :func:`run_batch` call did.

    Attributes:
        out: the output folder.
        cases: cases in the cohort.
        done: cases finished (in this run or before).
        failed: cases failed (or never finished), listed in ``failures.tsv``.
        skipped: cases already finished before this run (not run again).
        ran: cases run in this run.
        executor: ``"serial"``, ``"local pool of N workers"`` or ``"dask <address>"``.
        duration_s: wall time of this run (s).
        cases_per_min: throughput of this run (cases run per minute of wall time).
        failures: ``[{"case_id", "step", "error"}]`` of the failed cases.
        files: the tables and reports written.
    """

    out: Path
    cases: int
    done: int
    failed: int
    skipped: int
    ran: int
    executor: str
    duration_s: float
    cases_per_min: float | None
    failures: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    def text(self) -> str:
        """Summary lines for the command line."""
        lines = [
            f"Cohort of {self.cases} case(s) in {self.out.resolve()}",
            f"  done {self.done}, failed {self.failed} (ran {self.ran} now, {self.skipped} finished before)"
            f" with {self.executor} in {self.duration_s:.1f} s"
            + (f" ({self.cases_per_min:.1f} cases/min)" if self.cases_per_min else ""),
        ]
        for f in self.failures[:20]:
            lines.append(
                f"  failed: {f['case_id']} ({f.get('step') or 'start'}): {f.get('error') or ''}"[:300]
            )
        if len(self.failures) > 20:
            lines.append(f"  ... and {len(self.failures) - 20} more in failures.tsv")
        for name, path in self.files.items():
            lines.append(f"  {name:<14} {path}")
        lines.append("Research use only; not for clinical decisions.")
        return "\n".join(lines)


# ======================================================================================= out folder
def _stamp() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S_%fZ")


def _move_aside(out: Path, names: Sequence[str] | None = None) -> Path:
    """Move ``names`` (default: everything but ``superseded``) of ``out`` into ``out/superseded/<time>/``."""
    target = out / SUPERSEDED / _stamp()
    target.mkdir(parents=True, exist_ok=False)
    for entry in sorted(out.iterdir()) if names is None else [out / n for n in names]:
        if entry.name == SUPERSEDED or not entry.exists():
            continue
        dest = target / entry.relative_to(out)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(entry), str(dest))
    return target


def _read_cohort_json(out: Path) -> dict[str, Any] | None:
    import json

    p = out / COHORT_NAME
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == COHORT_SCHEMA else None


def _claim_out(
    out: Path, identity: str, resume: bool, overwrite: bool
) -> tuple[dict[str, Any] | None, Path | None]:
    """Check that ``out`` may hold this cohort; returns (previous cohort.json to continue, folder moved aside).

    Raises:
        InputError: ``out`` holds another cohort (without ``resume``/``overwrite``) or non-batch files.
    """
    if out.exists() and not out.is_dir():
        raise InputError(
            f"--out '{out}' is a file, not a folder.", "choose a folder for the cohort's outputs"
        )
    if not out.exists() or not any(e.name != SUPERSEDED for e in out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return None, None
    previous = _read_cohort_json(out)
    if overwrite:
        return None, _move_aside(out)
    if previous is None:
        raise InputError(
            f"--out '{out}' holds files but no {COHORT_NAME}: it is not the output folder of a batch run.",
            "choose a new --out folder, or pass --overwrite (its content is moved into "
            f"{out / SUPERSEDED}/<time>/, nothing is deleted)",
        )
    if previous.get("identity") == identity or resume:
        return previous, None
    raise InputError(
        f"--out '{out}' holds another cohort ({previous.get('source', {}).get('cases', '?')} cases from "
        f"'{previous.get('source', {}).get('source', '?')}', steps {','.join(previous.get('steps', []))}).",
        "pass --resume to continue there with this input (finished cases whose inputs are unchanged are kept), "
        f"--overwrite to start over (the previous results are moved into {out / SUPERSEDED}/<time>/), "
        "or choose another --out",
    )


# ========================================================================================= executors
def _failure_record(task: CaseTask, message: str, error_type: str) -> dict[str, Any]:
    """Mark ``task``'s case failed for a reason the worker could not record itself (it died)."""
    rec = read_record(task.folder) or {
        "schema": "spineai.batch.record/1",
        "case_id": task.case.case_id,
        "steps": task.all_steps(),
        "steps_done": [],
        "current_step": None,
        "started": None,
        "attempts": 0,
        "fingerprint": task.fingerprint,
        "inputs": task.case.inputs(),
        "metadata": dict(task.case.metadata),
        "results": None,
    }
    rec.update(
        status="failed",
        finished=now_iso(),
        run_token=task.run_token,
        error={"type": error_type, "message": message, "step": rec.get("current_step")},
    )
    write_record(task.folder, rec)
    return rec


def _run_serial(tasks: Sequence[CaseTask], retries: int) -> Iterator[dict[str, Any]]:
    for task in tasks:
        for attempt in range(retries + 1):
            try:
                yield process_case(task)
                break
            except Exception as exc:  # recorded by the worker; retried, then reported as recorded
                if attempt >= retries:
                    rec = read_record(task.folder)
                    yield rec if rec is not None else _failure_record(task, str(exc), type(exc).__name__)


def _dead_worker_pids(processes: Any) -> set[int] | None:
    """Pids of a broken pool's workers that died on their own (not stopped by the pool), ``None`` if unknown.

    ``processes`` is the pool's pid -> process mapping, read before the pool was shut down and checked
    after (so every worker has been joined and its exit code is final). When one worker dies, the pool
    stops the others with SIGTERM; their cases are not to blame.
    """
    import signal

    if not isinstance(processes, dict) or not processes:
        return None
    dead = {
        int(pid) for pid, p in processes.items() if p.exitcode is not None and p.exitcode != -signal.SIGTERM
    }
    return dead or None


def _run_pool(tasks: Sequence[CaseTask], workers: int, retries: int) -> Iterator[dict[str, Any]]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    pending = {t.case.case_id: t for t in tasks}
    troubles: Counter[str] = Counter()
    context = multiprocessing.get_context("spawn")
    rounds_without_progress = 0
    round_number = 0
    while pending:
        round_number += 1
        progress = False
        submitted = {
            cid: dataclasses.replace(t, run_token=f"{t.run_token}.{round_number}")
            for cid, t in pending.items()
        }
        pool = ProcessPoolExecutor(max_workers=min(workers, len(submitted)), mp_context=context)
        broken = False
        try:
            futures = {pool.submit(process_case, t): cid for cid, t in submitted.items()}
            for future in as_completed(futures):
                cid = futures[future]
                try:
                    record = future.result()
                except BrokenProcessPool:
                    broken = True
                    continue
                except Exception as exc:
                    troubles[cid] += 1
                    progress = True
                    if troubles[cid] <= retries:
                        continue
                    record = read_record(submitted[cid].folder) or _failure_record(
                        submitted[cid], str(exc), type(exc).__name__
                    )
                del pending[cid]
                progress = True
                yield record
            workers_seen = dict(getattr(pool, "_processes", None) or {}) if broken else {}
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        # exit codes are read after the shutdown joined the workers: read earlier, a worker that has just
        # died may not have been reaped yet, and every running case would be blamed
        dead = _dead_worker_pids(workers_seen) if broken else None
        if broken:
            for cid in list(pending):
                task = submitted[cid]
                rec = read_record(task.folder)
                if rec is None or rec.get("status") != "running" or rec.get("run_token") != task.run_token:
                    continue  # had not started: resubmitted without penalty
                if dead is not None and (rec.get("worker") or {}).get("pid") not in dead:
                    continue  # its worker was stopped because another one died: no penalty
                troubles[cid] += 1
                progress = True
                if troubles[cid] > retries:
                    del pending[cid]
                    yield _failure_record(
                        task,
                        f"the worker process died (killed or out of memory) while running this case "
                        f"{troubles[cid]} time(s)",
                        "WorkerDied",
                    )
        rounds_without_progress = 0 if progress else rounds_without_progress + 1
        if rounds_without_progress >= 3:
            for cid in list(pending):
                yield _failure_record(
                    pending.pop(cid),
                    "the worker processes kept stopping before this case could run (the process pool broke "
                    "repeatedly)",
                    "WorkerStartFailed",
                )


def _connect(scheduler: Any, timeout_s: float) -> tuple[Any, bool]:
    """(client, whether this call created it) for a scheduler address or an existing client."""
    try:
        from distributed import Client
    except ImportError:
        raise InputError(
            "Running on a Dask cluster needs the 'distributed' package, which is not installed.",
            "pip install 'dask[distributed]', or leave out --scheduler to run on this machine",
        ) from None
    if isinstance(scheduler, Client):
        return scheduler, False
    address = str(scheduler).strip()
    if "://" not in address and ":" not in address:
        raise InputError(
            f"'{address}' is not a Dask scheduler address.",
            "give it as tcp://host:port (the address 'dask scheduler' prints), e.g. tcp://10.0.0.5:8786",
        )
    try:
        return Client(address, timeout=timeout_s), True
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(
            f"Cannot reach the Dask scheduler at {address} within {timeout_s:g} s ({exc}).",
            "start it with 'dask scheduler' and workers with 'dask worker <address>', check the host, port and "
            "firewall, or leave out --scheduler to run on this machine",
        ) from None


def _run_dask(tasks: Sequence[CaseTask], client: Any, retries: int) -> Iterator[dict[str, Any]]:
    """One Dask task per case on ``client``; yields each case's final record as it completes."""
    from distributed import as_completed

    futures = {
        client.submit(
            process_case,
            task,
            key=f"spineai-case-{task.case.case_id}-{task.run_token}",
            retries=retries,
            pure=False,
        ): task
        for task in tasks
    }
    try:
        for future in as_completed(list(futures)):
            task = futures[future]
            try:
                record = future.result()
            except Exception as exc:
                rec = read_record(task.folder)
                if (
                    rec is not None
                    and rec.get("status") == "failed"
                    and rec.get("run_token") == task.run_token
                ):
                    record = rec
                else:
                    record = _failure_record(
                        task,
                        f"the Dask worker running this case died or was lost (killed or out of memory) and the "
                        f"scheduler gave up ({type(exc).__name__}: {exc})",
                        type(exc).__name__,
                    )
            yield record
    finally:
        client.cancel([f for f in futures if not f.done()])


# ============================================================================================== run
def _identity(cohort: Cohort, steps: Sequence[str], settings: Mapping[str, Any]) -> str:
    import hashlib
    import json

    payload = json.dumps(
        {"inputs": cohort.inputs_hash(), "steps": list(steps), "settings": settings}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _check_segmentation_weights(weights: Any) -> None:
    """Refuse a run that would segment without weights, before any case starts (each would fail alike)."""
    if weights is None:
        from ..segmentation.inference import default_weights_path

        default_weights_path()  # WeightsError with the fix when no model is installed
    elif not Path(weights).is_file():
        raise InputError(
            f"Segmentation weights '{weights}' do not exist.",
            "pass the .safetensors file written by 'spineai train segmentation' (its .json card beside it)",
        )


def _resolved(path: Any) -> str | None:
    return None if path is None else str(Path(path).resolve())


#: settings added after the first cohorts were run: in the identity only when set, so that the output
#: folders of earlier runs keep their identity
_LATER_SETTINGS = ("axial_weights", "stenosis_weights", "radiograph_weights")


def _identity_settings(
    settings: Mapping[str, Any], wanted: Sequence[str], names: list[str]
) -> dict[str, Any]:
    """The settings that change results, as they enter the cohort's identity."""
    out = {k: v for k, v in settings.items() if k not in ("device", "images", "surfaces")}
    for key in _LATER_SETTINGS:
        if out.get(key) is None:
            out.pop(key, None)
    if out.get("levels") is None:  # without numbering, "the lowest two levels" are the default levels
        out["levels"] = list(DEFAULT_LEVELS) if "levels" not in wanted else "lowest two of the numbering"
    out["custom_steps"] = names
    return out


def _check_inputs_of_steps(cohort: Cohort, wanted: Sequence[str]) -> None:
    """Refuse a run whose steps need a column (``mri``, ``axial``, ``radiograph``) no case gives."""
    needed = needed_inputs(wanted)
    with_ct = any(s in CT_STEPS for s in wanted)
    if not needed or (not with_ct and len(needed) == 1):
        return  # CT only, or one kind of input read from ``image``
    missing = [kind for kind in needed if not any(getattr(c, kind) is not None for c in cohort.cases)]
    if missing:
        what = ", ".join(f"'{k}' ({INPUT_TITLES[k]})" for k in missing)
        raise InputError(
            f"The steps {', '.join(wanted)} read different images, but the cohort names no {what}: the 'image' "
            "column can stand for only one of them.",
            f"add the column(s) {', '.join(missing)} to the manifest with each case's image, or run those steps "
            "separately",
        )


def run_batch(
    source: str | os.PathLike | Cohort,
    out: str | os.PathLike,
    *,
    steps: Sequence[str] = DEFAULT_STEPS,
    workers: int = 1,
    scheduler: Any = None,
    resume: bool = False,
    overwrite: bool = False,
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    fast: bool = True,
    levels: Sequence[str] | None = None,
    sides: Sequence[str] = DEFAULT_SIDES,
    images: bool = True,
    surfaces: bool = True,
    grading_weights: str | os.PathLike | None = None,
    outcome_weights: str | os.PathLike | None = None,
    axial_weights: str | os.PathLike | None = None,
    stenosis_weights: str | os.PathLike | None = None,
    radiograph_weights: str | os.PathLike | None = None,
    label_convention: str | None = None,
    retries: int = 1,
    report: bool = True,
    custom_steps: Mapping[str, CustomStep] | Sequence[tuple[str, CustomStep]] | None = None,
    threads_per_worker: int | None = None,
    scheduler_timeout_s: float = SCHEDULER_TIMEOUT_S,
    progress: bool = True,
    on_case: Callable[[dict[str, Any]], None] | None = None,
) -> BatchSummary:
    """Run ``steps`` over every case of a cohort into ``out``; resumable (``spineai batch``).

    Args:
        source: folder of images (searched recursively), CSV/TSV manifest, or a :class:`Cohort`.
        out: output folder (layout in the module docstring).
        steps: built-in steps (:data:`spineai.api.CASE_STEPS`): ``segment``, ``levels``, ``measure``,
            ``plan``, ``grade-sagittal``, ``outcome``, ``grade-axial``, ``stenosis``, ``radiograph`` (default
            ``segment``, ``levels``, ``measure``, ``plan``). With a manifest ``segmentation`` column,
            ``levels``/``measure``/``plan`` use it and ``segment`` is skipped; ``levels`` numbers the
            vertebrae (with the manifest's ``level_override``) and the measurements use the new names.
        workers: local worker processes (1: in this process).
        scheduler: Dask scheduler address (``tcp://host:port``) or a ``distributed.Client``; overrides
            ``workers``.
        resume: continue in an ``out`` holding another cohort (finished cases with unchanged inputs kept).
        overwrite: start over: everything in ``out`` is first moved into ``out/superseded/<time>/``.
        weights, device, fast, surfaces: CT segmentation (see :func:`spineai.api.segment`).
        levels, sides, images: triangle measurement and planning (``levels=None``: the two lowest disc
            levels of each case's numbering; L4-L5, L5-S1 without the ``levels`` step).
        grading_weights, outcome_weights, axial_weights, stenosis_weights: MRI model weights (``None``:
            shipped demo models).
        radiograph_weights: the radiograph model for the ``radiograph`` step (``None``: the shipped
            disc-crops model ``radiograph_hnp_demo``, trained on synthetic radiographs only).
        label_convention: naming of manifest segmentations without a sidecar.
        retries: extra attempts of a case after an unexpected error or a dead worker (input problems are
            never retried).
        report: write the HTML reports at the end.
        custom_steps: ``{name: function(CaseContext) -> dict | None}`` run per case after the built-in
            steps; functions must be defined at module level (workers import them).
        threads_per_worker: PyTorch threads per case (default: CPU cores / workers locally; the worker's
            own setting on Dask).
        scheduler_timeout_s: how long to try to reach the Dask scheduler.
        progress: show a progress bar (cases done / to do, ETA).
        on_case: called with each case's final record as it finishes.

    Returns:
        :class:`BatchSummary`.

    Raises:
        InputError: bad cohort (see :mod:`spineai.batch.cohort`), unknown steps, conflicting options,
            ``out`` holding another cohort, unreachable scheduler.
    """
    t_start = time.perf_counter()
    if resume and overwrite:
        raise InputError("--resume and --overwrite were both given.", "choose one: continue, or start over")
    if workers < 1:
        raise InputError(f"--workers {workers} is not a number of processes.", "use 1 or more")
    if retries < 0:
        raise InputError(f"--retries {retries} is negative.", "use 0 (no retry) or more")
    wanted = check_steps(steps)
    custom = list(custom_steps.items()) if isinstance(custom_steps, Mapping) else list(custom_steps or [])
    names = [name for name, _ in custom]
    if len(set(names)) != len(names) or any(not n or n in CASE_STEPS for n in names):
        raise InputError(
            f"Custom step names {names} repeat, are empty or clash with built-in steps.", "rename them"
        )
    no_ct = not any(s in CT_STEPS for s in wanted)
    cohort = source if isinstance(source, Cohort) else read_cohort(source, pictures=no_ct)
    _check_inputs_of_steps(cohort, wanted)
    if "segment" in wanted and any(c.segmentation is None for c in cohort.cases):
        _check_segmentation_weights(weights)
    if "radiograph" in wanted:
        from ..api import resolve_radiograph_weights

        resolve_radiograph_weights(radiograph_weights)  # the shipped model's files missing: refused up front
        if radiograph_weights is not None and not Path(radiograph_weights).is_file():
            raise InputError(
                f"Radiograph weights '{radiograph_weights}' do not exist.",
                "pass the .safetensors file written by 'spineai train radiograph' (its .json card beside it)",
            )
    settings = {
        "weights": _resolved(weights),
        "device": device,
        "fast": bool(fast),
        "levels": None if levels is None else list(levels),
        "sides": list(sides),
        "images": bool(images),
        "surfaces": bool(surfaces),
        "grading_weights": _resolved(grading_weights),
        "outcome_weights": _resolved(outcome_weights),
        "axial_weights": _resolved(axial_weights),
        "stenosis_weights": _resolved(stenosis_weights),
        "radiograph_weights": _resolved(radiograph_weights),
        "label_convention": label_convention,
    }
    identity = _identity(cohort, wanted, _identity_settings(settings, wanted, names))
    out = Path(out).resolve()
    client, owned = _connect(scheduler, scheduler_timeout_s) if scheduler is not None else (None, False)
    try:
        return _run(
            cohort,
            out,
            wanted,
            custom,
            settings,
            identity,
            resume,
            overwrite,
            workers,
            client,
            retries,
            report,
            threads_per_worker,
            progress,
            on_case,
            t_start,
        )
    finally:
        if owned:
            client.close()


def _run(
    cohort: Cohort,
    out: Path,
    wanted: list[str],
    custom: list[tuple[str, CustomStep]],
    settings: dict[str, Any],
    identity: str,
    resume: bool,
    overwrite: bool,
    workers: int,
    client: Any,
    retries: int,
    report: bool,
    threads_per_worker: int | None,
    progress: bool,
    on_case: Callable[[dict[str, Any]], None] | None,
    t_start: float,
) -> BatchSummary:
    names = [name for name, _ in custom]
    previous, moved = _claim_out(out, identity, resume, overwrite)

    run_token = uuid.uuid4().hex[:12]
    if client is not None:
        executor_name = f"dask {getattr(client.scheduler, 'address', '')}".strip()
    elif workers > 1:
        executor_name = f"local pool of {workers} workers"
    else:
        executor_name = "serial"
    run_entry: dict[str, Any] = {
        "run_token": run_token,
        "started": now_iso(),
        "finished": None,
        "status": "running",
        "executor": executor_name,
        "steps": wanted,
        "moved_aside": None if moved is None else str(moved),
    }
    cohort_json: dict[str, Any] = {
        "schema": COHORT_SCHEMA,
        "identity": identity,
        "inputs_hash": cohort.inputs_hash(),
        "steps": wanted,
        "custom_steps": names,
        "settings": settings,
        "source": cohort.to_dict(),
        "case_ids": [c.case_id for c in cohort.cases],
        "created": (previous or {}).get("created") or now_iso(),
        "spineai_version": _version(),
        "runs": [*((previous or {}).get("runs") or []), run_entry],
    }
    write_json(out / COHORT_NAME, cohort_json, overwrite=True)

    # which cases to run
    all_steps = [*wanted, *(f"custom:{n}" for n in names)]
    tasks: list[CaseTask] = []
    skipped = 0
    local = client is None
    threads = threads_per_worker
    if threads is None and local:
        threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    from .record import is_finished

    for case in cohort.cases:
        folder = out / "cases" / case.case_id
        fingerprint = case.fingerprint()
        rec = read_record(folder)
        if is_finished(rec, fingerprint, all_steps):
            skipped += 1
            continue
        if rec is not None and rec.get("status") == "done":
            _move_aside(out, [f"cases/{case.case_id}"])  # finished with other inputs or steps: keep it
        tasks.append(
            CaseTask(
                case=case,
                folder=folder,
                steps=list(wanted),
                settings=dict(settings),
                fingerprint=fingerprint,
                run_token=run_token,
                custom_steps=tuple(custom),
                threads=threads,
                quiet=True,
            )
        )

    results: Iterator[dict[str, Any]]
    if client is not None:
        results = _run_dask(tasks, client, retries)
    elif workers > 1 and len(tasks) > 1:
        results = _run_pool(tasks, workers, retries)
    else:
        results = _run_serial(tasks, retries)
    if progress and tasks:
        from ..progress import track

        results = track(
            results, desc=f"cases ({skipped} done before)" if skipped else "cases", total=len(tasks)
        )

    t_run = time.perf_counter()
    ran = 0
    status = "finished"
    try:
        for record in results:
            ran += 1
            if on_case is not None:
                on_case(record)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except BaseException:
        status = "stopped by an error"
        raise
    finally:
        run_seconds = time.perf_counter() - t_run
        from .tables import collect_rows, write_tables

        files = write_tables(out, cohort)
        rows = collect_rows(out, cohort)
        done = sum(1 for r in rows["records"].values() if r is not None and r.get("status") == "done")
        run_entry.update(
            finished=now_iso(),
            status=status,
            ran=ran,
            skipped=skipped,
            done=done,
            failed=len(cohort.cases) - done,
            duration_s=round(time.perf_counter() - t_start, 3),
        )
        write_json(out / COHORT_NAME, cohort_json, overwrite=True)
    if report:
        from ..reports import write_cohort_report

        files["report.html"] = write_cohort_report(out, overwrite=True, case_reports=True)
    failures = [
        {"case_id": f["case_id"], "step": f.get("step"), "error": f.get("error")} for f in rows["failures"]
    ]
    return BatchSummary(
        out=out,
        cases=len(cohort.cases),
        done=done,
        failed=len(cohort.cases) - done,
        skipped=skipped,
        ran=ran,
        executor=run_entry["executor"],
        duration_s=round(time.perf_counter() - t_start, 3),
        cases_per_min=(60.0 * ran / run_seconds) if ran and run_seconds > 0 else None,
        failures=failures,
        files=files,
    )


def _version() -> str:
    from .. import __version__

    return __version__
