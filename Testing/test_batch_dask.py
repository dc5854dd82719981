"""Cohort runs on a Dask cluster: a real ``distributed.LocalCluster`` of two worker processes.

The Dask run must give the same results table as the local run, survive a worker killed in the middle of
a case (Dask reschedules the case; the finished cases stay as they are) and refuse an unreachable
scheduler with a clear error.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from test_batch import CORRUPT_CASE, FAST, GOOD_CASES, kill_worker_once, make_phantom_cohort, read_rows

from spineai.batch import read_record, run_batch
from spineai.errors import InputError

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return make_phantom_cohort(tmp_path_factory.mktemp("dask_cohort"))


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, silence_logs=50
    ) as c:
        yield c


def test_dask_run_matches_the_local_run_and_survives_a_killed_worker(cohort, cluster, tmp_path):
    local = run_batch(cohort, tmp_path / "local", **FAST)
    assert (local.done, local.failed) == (GOOD_CASES, 1)

    out = tmp_path / "dask"
    kill = {"kill": partial(kill_worker_once, str(tmp_path), "case_2")}
    summary = run_batch(cohort, out, scheduler=cluster.scheduler_address, custom_steps=kill, **FAST)
    assert summary.executor.startswith("dask tcp://")
    failures = read_rows(out / "failures.tsv") if (out / "failures.tsv").is_file() else []
    assert (summary.done, summary.failed) == (GOOD_CASES, 1), [f["error"] for f in failures]
    assert (tmp_path / "killed-case_2").is_file()  # a worker process did die in the middle of case_2
    killed = read_record(out / "cases" / "case_2")
    assert killed["status"] == "done" and killed["attempts"] == 2
    assert killed["steps_done"] == ["levels", "measure", "plan", "custom:kill"]
    for i in range(GOOD_CASES):
        rec = read_record(out / "cases" / f"case_{i}")
        assert rec["status"] == "done" and rec["results"]["triangles"]
    assert (out / "results.tsv").read_text() == (tmp_path / "local" / "results.tsv").read_text()
    assert [f["case_id"] for f in read_rows(out / "failures.tsv")] == [CORRUPT_CASE]

    # a re-run on the cluster redoes nothing that finished
    finished = {f"case_{i}": read_record(out / "cases" / f"case_{i}")["finished"] for i in range(GOOD_CASES)}
    again = run_batch(cohort, out, scheduler=cluster.scheduler_address, custom_steps=kill, **FAST)
    assert (again.skipped, again.ran) == (GOOD_CASES, 1)
    assert {c: read_record(out / "cases" / c)["finished"] for c in finished} == finished


def test_an_unreachable_scheduler_is_a_clear_error(cohort, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"Cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9") as err:
        run_batch(cohort, out, scheduler="tcp://127.0.0.1:9", scheduler_timeout_s=1.0, **FAST)
    assert "dask scheduler" in str(err.value) and "Fix:" in str(err.value)
    assert not out.exists()  # nothing was claimed or written
    with pytest.raises(InputError, match="not a Dask scheduler address"):
        run_batch(cohort, out, scheduler="nowhere", **FAST)
