"""Benchmark of triangle measurement, C-arm view search and needle planning (speed and accuracy).

``speed`` (default): one 1 mm phantom case (L3..S1, both sides of L4-L5 and L5-S1), timed step by step:
``measure_triangles``, ``search_views`` and ``plan_paths`` (best of ``--repeats``). The baseline,
measured in the same run, is an exhaustive search of the same C-arm range on a dense 2.5 degree grid
with the fine ray sampling; reported are both times, their ratio and the windows each search finds.

``accuracy``: ``--cases`` phantom cases (seeds ``--seed`` ..), each measured from its ground-truth label
map alone and compared with the phantom's analytic truth (``truth["triangles"]``): the share of
triangles whose three vertices all lie within 1.5 mm of the truth, whose area lies within
max(10 %, 2 mm2) of it, and both; per kind (Kambin, safe), with the mean absolute area error. Also the
agreement of the standard-view visibility (a triangle counts as visible when at least half of it is
reachable, the phantom's rule) and the foramina that could not be measured.

Usage::

    python benchmarks/bench_planning.py speed [--seed 3] [--repeats 2] [--json out.json]
    python benchmarks/bench_planning.py accuracy [--cases 30] [--seed 100] [--spacing 1.0] [--json out.json]

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _phantom(seed: int, spacing: float = 1.0, **overrides):
    from spineai.phantom import generate_ct_phantom

    return generate_ct_phantom(seed=seed, progress=False, spacing_mm=(spacing,) * 3, **overrides)


def speed(seed: int, repeats: int) -> dict:
    from spineai.planning import measure_triangles, plan_paths, search_views
    from spineai.planning import views as V
    from spineai.planning.construct import level_view, triangles_in_view
    from spineai.planning.window import window_area

    case = _phantom(seed)
    best = {"measure_s": np.inf, "search_s": np.inf, "paths_s": np.inf}
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = measure_triangles(case.labels, ct=case.image)
        t1 = time.perf_counter()
        search_views(result)
        t2 = time.perf_counter()
        plan_paths(result)
        t3 = time.perf_counter()
        best = {k: min(best[k], v) for k, v in zip(best, (t1 - t0, t2 - t1, t3 - t2), strict=True)}
    assert result is not None
    best["total_s"] = best["measure_s"] + best["search_s"] + best["paths_s"]
    # baseline: dense exhaustive grid
    t0 = time.perf_counter()
    dense: dict[tuple[str, str, str], float] = {}
    for fm in result.measured:
        for ob in np.arange(0.0, 45.0 + 1e-9, 2.5):
            for ti in np.arange(-30.0, 30.0 + 1e-9, 2.5):
                tris = triangles_in_view(fm.parts, level_view(fm.parts, float(ob), float(ti)))
                for k in ("kambin", "safe"):
                    w = window_area(tris[k], result.occluders, V.FINE_SAMPLES)
                    key = (fm.level, fm.side, k)
                    dense[key] = max(dense.get(key, 0.0), w)
    t_dense = time.perf_counter() - t0
    found = {f"{t.level} {t.side} {t.kind}": round(t.best_view.window_mm2, 1) for t in result.triangles()}
    ratio = {
        f"{k[0]} {k[1]} {k[2]}": round(found[f"{k[0]} {k[1]} {k[2]}"] / max(v, 1e-9), 3)
        for k, v in dense.items()
    }
    return dict(
        seed=seed,
        **{k: round(v, 3) for k, v in best.items()},
        baseline_dense_grid_search_s=round(t_dense, 3),
        search_speedup_vs_dense_grid=round(t_dense / best["search_s"], 1),
        best_window_mm2=found,
        window_found_over_dense_grid=ratio,
    )


def _edge_errors(parts, kind: str, truth_tri: dict) -> dict[str, float]:
    """Measured minus true support (mm) of each edge, along the truth's edge direction."""
    from spineai.planning.parts import voxel_support

    out = {}
    for e in truth_tri["edges"]:
        u = np.asarray(e["support_direction_lps"], float)
        if e["name"] == "hypotenuse":
            seg = parts.exiting
            mine = max(float(u @ seg.a), float(u @ seg.b)) + seg.radius
        elif kind == "kambin" and e["name"] == "base":
            mine = parts.lower_frame.body.support(u)
        elif kind == "safe" and e["name"] == "height":
            mine = parts.upper_frame.body.support(u)
        else:
            pts = (
                parts.upper_pedicle
                if kind == "safe"
                else np.vstack([parts.lower_sap, parts.traversing_above])
            )
            mine = voxel_support(pts, u, parts.voxel_axes)
        out[e["name"]] = round(mine - float(e["support_value_mm"]), 2)
    return out


def accuracy(cases: int, seed0: int, spacing: float) -> dict:
    from spineai.planning import measure_triangles

    rows = []
    vis = []
    failures = []
    misses: list[dict] = []
    t_measure = []
    for s in range(seed0, seed0 + cases):
        case = _phantom(s, spacing)
        t0 = time.perf_counter()
        res = measure_triangles(case.labels)
        t_measure.append(time.perf_counter() - t0)
        for fm in res.foramina:
            truth = case.truth["triangles"].get(fm.level, {}).get(fm.side)
            if truth is None:
                continue
            if not fm.ok:
                failures.append(f"seed {s} {fm.level} {fm.side}: {fm.status}")
                continue
            for kind, tri in fm.triangles.items():
                t = truth[kind]
                err = float(
                    np.linalg.norm(np.asarray(t["vertices_lps_mm"]) - tri.vertices_lps_mm, axis=1).max()
                )
                ta, ma = float(t["area_mm2"]), float(tri.area_mm2)
                rows.append((kind, err, ta, ma))
                if err > 1.5 or abs(ma - ta) > max(0.1 * ta, 2.0):
                    misses.append(
                        dict(
                            seed=s,
                            level=fm.level,
                            side=fm.side,
                            triangle=kind,
                            true_area_mm2=round(ta, 2),
                            measured_area_mm2=round(ma, 2),
                            max_vertex_error_mm=round(err, 2),
                            edge_errors_mm=_edge_errors(fm.parts, kind, t),
                            pathology=[
                                p["kind"]
                                for p in case.truth.get("pathology", [])
                                if p.get("level") == fm.level and p.get("side") == fm.side
                            ],
                        )
                    )
                sv = t.get("standard_view")
                if sv is not None and tri.view is not None:
                    vis.append((bool(sv["visible"]), bool(tri.view.window.visible_fraction >= 0.5)))
        print(f"seed {s}: measured {len(res.measured)}/{len(res.foramina)} foramina", file=sys.stderr)
    out: dict = dict(
        cases=cases,
        first_seed=seed0,
        spacing_mm=spacing,
        triangles=len(rows),
        not_measured=failures,
        mean_measure_s=round(float(np.mean(t_measure)), 3),
        outside_tolerance=misses,
    )
    for kind in ("all", "kambin", "safe"):
        sel = [r for r in rows if kind == "all" or r[0] == kind]
        if not sel:
            continue
        err = np.array([r[1] for r in sel])
        ta = np.array([r[2] for r in sel])
        ma = np.array([r[3] for r in sel])
        v_ok = err <= 1.5
        a_ok = np.abs(ma - ta) <= np.maximum(0.1 * ta, 2.0)
        out[kind] = dict(
            n=len(sel),
            vertices_within_1_5mm=round(float(v_ok.mean()), 4),
            area_within_tolerance=round(float(a_ok.mean()), 4),
            both=round(float((v_ok & a_ok).mean()), 4),
            median_vertex_error_mm=round(float(np.median(err)), 3),
            mean_abs_area_error_mm2=round(float(np.mean(np.abs(ma - ta))), 3),
            mean_true_area_mm2=round(float(ta.mean()), 2),
        )
    if vis:
        agree = np.mean([a == b for a, b in vis])
        out["standard_view_visibility_agreement"] = round(float(agree), 4)
        out["standard_view_truth_visible"] = int(sum(a for a, _ in vis))
        out["standard_view_measured_visible"] = int(sum(b for _, b in vis))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="mode")
    ps = sub.add_parser("speed")
    ps.add_argument("--seed", type=int, default=3)
    ps.add_argument("--repeats", type=int, default=2)
    ps.add_argument("--json", default=None)
    pa = sub.add_parser("accuracy")
    pa.add_argument("--cases", type=int, default=30)
    pa.add_argument("--seed", type=int, default=100)
    pa.add_argument("--spacing", type=float, default=1.0)
    pa.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.mode in (None, "speed"):
        res = speed(getattr(args, "seed", 3), getattr(args, "repeats", 2))
    else:
        res = accuracy(args.cases, args.seed, args.spacing)
    text = json.dumps(res, indent=2)
    print(text)
    if getattr(args, "json", None):
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
