"""Benchmark of cohort throughput: the same cohort run serially, with 2 local workers and on a Dask cluster.

The cohort: ``--cases`` phantom CTs (``--spacing`` mm) with their exact label maps in the manifest's
``segmentation`` column, steps ``measure,plan`` (triangles, C-arm view search, needle paths), no pictures
and no reports, so the figure is the planning throughput. Each configuration runs the whole cohort
into a fresh output folder, in the same process run:

* ``serial``: ``workers=1`` (the baseline; cases one after another in this process);
* ``local pool x2``: ``workers=2`` (``ProcessPoolExecutor``, spawned workers, start-up included);
* ``dask LocalCluster x2``: ``distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1)``
  (cluster start-up excluded, connection included).

Reported: wall time, cases per minute and the speed-up against the serial run, and whether every
configuration wrote the same ``results.tsv``.

Usage::

    python benchmarks/bench_batch.py [--cases 8] [--spacing 1.5] [--json out.json]

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def make_cohort(root: Path, cases: int, spacing: float, seed: int) -> Path:
    from spineai.phantom import generate_ct_phantom, write_phantom_case

    lines = ["case_id,image,segmentation"]
    for i in range(cases):
        folder = root / f"case_{i:03d}"
        write_phantom_case(generate_ct_phantom(seed + i, spacing_mm=(spacing,) * 3, progress=False), folder)
        lines.append(f"case_{i:03d},{folder / 'ct.nii.gz'},{folder / 'labels.nii.gz'}")
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def run(manifest: Path, out: Path, **kwargs) -> dict:
    from spineai.batch import run_batch

    t0 = time.perf_counter()
    summary = run_batch(
        manifest, out, steps=("measure", "plan"), images=False, report=False, progress=False, **kwargs
    )
    seconds = time.perf_counter() - t0
    return {
        "seconds": round(seconds, 2),
        "cases_per_min": round(60.0 * summary.ran / seconds, 2),
        "done": summary.done,
        "failed": summary.failed,
        "results": (out / "results.tsv").read_text(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=8, help="phantom cases in the cohort (default 8)")
    parser.add_argument("--spacing", type=float, default=1.5, help="phantom voxel spacing, mm (default 1.5)")
    parser.add_argument("--seed", type=int, default=200, help="seed of the first phantom")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    from distributed import LocalCluster

    with tempfile.TemporaryDirectory(prefix="spineai-bench-batch-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        manifest = make_cohort(root / "cohort", args.cases, args.spacing, args.seed)
        print(f"cohort: {args.cases} phantom cases at {args.spacing} mm in {time.perf_counter() - t0:.1f} s")
        figures: dict[str, dict] = {}
        figures["serial"] = run(manifest, root / "serial", workers=1, threads_per_worker=1)
        figures["local pool x2"] = run(manifest, root / "pool", workers=2, threads_per_worker=1)
        with LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, silence_logs=50
        ) as cluster:
            figures["dask LocalCluster x2"] = run(
                manifest, root / "dask", scheduler=cluster.scheduler_address
            )
    base = figures["serial"]
    same = all(f["results"] == base["results"] for f in figures.values())
    print(f"{'configuration':<22}{'wall s':>9}{'cases/min':>11}{'speed-up':>10}  done/failed")
    for name, f in figures.items():
        print(
            f"{name:<22}{f['seconds']:>9.1f}{f['cases_per_min']:>11.1f}{base['seconds'] / f['seconds']:>10.2f}"
            f"  {f['done']}/{f['failed']}"
        )
    print(f"identical results.tsv in every configuration: {same}")
    print(f"machine: {os.cpu_count()} CPU cores, Python {sys.version.split()[0]}")
    if args.json is not None:
        report = {
            "cases": args.cases,
            "spacing_mm": args.spacing,
            "cpu_cores": os.cpu_count(),
            "identical_results": same,
            "configurations": {
                k: {kk: vv for kk, vv in v.items() if kk != "results"}
                | {"speedup_vs_serial": round(base["seconds"] / v["seconds"], 3)}
                for k, v in figures.items()
            },
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
