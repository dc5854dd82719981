"""The HTML summary of a cohort (a ``spineai batch`` output folder), with a report per case.

Sections: the cohort (source, steps, runs), case counts and failures, the cases whose level labels are
flagged (low confidence, transitional anatomy with its Castellvi type, or a failed numbering; from each
case's ``case.json["levels"]`` or ``levels.json``, else the cohort's ``levels.tsv`` and the level columns of
``results.tsv``), the input-check warnings and errors counted per check, the distribution of Kambin's and
the safe triangle's true areas per level and side beside the paper's L5/S1 figures (Kambin 37.8 +- 20.9
mm2, safe 8.69 +- 2.24 mm2; Fan et al., AJNR 2019), the best C-arm windows and needle paths, the
evaluation against ground truth when the manifest gave one (triangle area errors against ``truth``,
Dice against ``reference``), outcome probabilities and grades when those steps ran, and the list of
cases with links to their own reports.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputExistsError
from ..outputs import write_text
from .case import REPORT_NAME, case_level_labels, find_case_files, write_case_report
from .html import banner, figure_img, page, read_table, table
from .levels import KIND_TEXT, LEVELS_BANNER, CheckInfo, LevelLabels, read_checks

__all__ = ["PAPER_AREAS_MM2", "cohort_level_labels", "cohort_report_html", "write_cohort_report"]

#: the paper's areas at L5/S1 (mean, SD, mm2), Fan et al., AJNR 2019
PAPER_AREAS_MM2 = {"kambin": (37.8, 20.9), "safe": (8.69, 2.24)}
KIND_TITLES = {"kambin": "Kambin's triangle", "safe": "Safe triangle"}


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _stats(values: Sequence[float]) -> dict[str, Any]:
    import numpy as np

    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return {"n": 0}
    return {
        "n": int(a.size),
        "mean": float(a.mean()),
        "sd": float(a.std(ddof=1)) if a.size > 1 else None,
        "median": float(np.median(a)),
        "min": float(a.min()),
        "max": float(a.max()),
    }


def _pm(s: dict[str, Any], digits: int = 1) -> str:
    if not s.get("n"):
        return ""
    sd = s.get("sd")
    return f"{s['mean']:.{digits}f}" + ("" if sd is None else f" +- {sd:.{digits}f}")


def _groups(
    rows: list[dict[str, str]], kind: str, column: str, only_flagged: bool = False
) -> dict[str, list[float]]:
    """``{"L5-S1 left": [values]}`` of ``column`` for triangle ``kind`` (measured rows only; with
    ``only_flagged``, only the rows whose level labels are in doubt)."""
    out: dict[str, list[float]] = {}
    for r in rows:
        if r.get("triangle") != kind or r.get("status") != "ok":
            continue
        if only_flagged and not r.get("_level_concern"):
            continue
        v = _float(r.get(column))
        if v is not None:
            out.setdefault(f"{r.get('level')} {r.get('side')}", []).append(v)
    return dict(sorted(out.items()))


def _area_figure(
    kind: str, groups: dict[str, list[float]], flagged: dict[str, list[float]] | None = None
) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    mean, sd = PAPER_AREAS_MM2[kind]
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * max(1, len(groups)), 4.0))
    labels = list(groups)
    ax.axhspan(mean - sd, mean + sd, color="tab:orange", alpha=0.18, label=f"paper L5/S1: {mean} +- {sd} mm2")
    ax.axhline(mean, color="tab:orange", lw=1.5)
    if labels:
        ax.boxplot([groups[k] for k in labels], showfliers=False, widths=0.5, medianprops={"color": "black"})
        rng = np.random.default_rng(0)
        for i, k in enumerate(labels, start=1):
            x = i + rng.uniform(-0.12, 0.12, len(groups[k]))
            ax.scatter(x, groups[k], s=14, color="tab:blue", zorder=3)
        marked = flagged or {}
        for i, k in enumerate(labels, start=1):
            if marked.get(k):
                ax.scatter(
                    [i] * len(marked[k]),
                    marked[k],
                    s=46,
                    marker="x",
                    color="tab:red",
                    zorder=4,
                    label="level labels flagged" if not any(marked.get(j) for j in labels[: i - 1]) else None,
                )
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=20)
    ax.set_ylabel("true area (mm2)")
    ax.set_title(f"{KIND_TITLES[kind]}: area per level and side")
    ax.legend(loc="upper right", fontsize=8)
    caption = f"{KIND_TITLES[kind]} areas (box: quartiles; dots: cases"
    caption += (
        "; red crosses: cases whose level labels are flagged)" if any((flagged or {}).values()) else ")"
    )
    return figure_img(fig, alt=f"{kind} areas", caption=caption)


def _truth_section(rows: list[dict[str, str]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [
        (r.get("triangle"), _float(r.get("area_mm2")), _float(r.get("truth_area_mm2")))
        for r in rows
        if r.get("status") == "ok"
    ]
    pairs = [(k, a, t) for k, a, t in pairs if a is not None and t is not None]
    if not pairs:
        return []
    out = ["<h2>Evaluation: measured areas against the truth</h2>"]
    table_rows = []
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    for kind in ("kambin", "safe"):
        sel = [(a, t) for k, a, t in pairs if k == kind]
        if not sel:
            continue
        diff = [a - t for a, t in sel]
        s = _stats(diff)
        mae = sum(abs(d) for d in diff) / len(diff)
        table_rows.append(
            {
                "triangle": KIND_TITLES[kind],
                "n": s["n"],
                "bias_mm2": f"{s['mean']:.2f}",
                "sd_mm2": "" if s.get("sd") is None else f"{s['sd']:.2f}",
                "mae_mm2": f"{mae:.2f}",
                "limits": ""
                if s.get("sd") is None
                else f"{s['mean'] - 1.96 * s['sd']:.2f} .. {s['mean'] + 1.96 * s['sd']:.2f}",
            }
        )
        ax.scatter([t for _, t in sel], [a for a, _ in sel], s=16, label=KIND_TITLES[kind])
    top = max(max(a, t) for _, a, t in pairs) * 1.05
    ax.plot([0, top], [0, top], color="grey", lw=1)
    ax.set_xlabel("truth area (mm2)")
    ax.set_ylabel("measured area (mm2)")
    ax.legend(fontsize=8)
    ax.set_title("measured vs truth")
    out.append(
        table(
            table_rows,
            ("triangle", "n", "bias_mm2", "sd_mm2", "mae_mm2", "limits"),
            headers={
                "bias_mm2": "bias (mm2)",
                "sd_mm2": "SD of difference (mm2)",
                "mae_mm2": "mean abs. error (mm2)",
                "limits": "95% limits of agreement (mm2)",
            },
        )
    )
    out.append(
        figure_img(fig, alt="measured vs truth", caption="Measured against truth areas; line = identity")
    )
    return out


def _dice_section(cases: list[dict[str, str]]) -> list[str]:
    rows = []
    for column, title in (
        ("dice_bone", "bone (paper's 3-class)"),
        ("dice_nerve", "nerve (paper's 3-class)"),
        ("dice_mean_structures", "mean over structures"),
    ):
        values = [v for v in (_float(c.get(column)) for c in cases) if v is not None]
        if values:
            s = _stats(values)
            rows.append({"class": title, "n": s["n"], "dice": _pm(s, 3), "min": f"{s['min']:.3f}"})
    if not rows:
        return []
    return [
        "<h2>Evaluation: segmentation against the reference</h2>",
        '<p class="note">Paper (Fan et al. 2019): Dice bone 0.945, nerve 0.905.</p>',
        table(rows, ("class", "n", "dice", "min"), headers={"dice": "Dice mean +- SD"}),
    ]


def _outcome_section(cases: list[dict[str, str]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = [v for v in (_float(c.get("outcome_probability_good")) for c in cases) if v is not None]
    if not values:
        return []
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(values, bins=min(20, max(5, len(values) // 2)), range=(0, 1), color="tab:green")
    ax.set_xlabel("probability of a good outcome")
    ax.set_ylabel("cases")
    good = sum(1 for c in cases if c.get("outcome_predicted_good") == "yes")
    return [
        "<h2>tESI outcome prediction</h2>",
        f"<p>{len(values)} case(s) predicted; {good} predicted good.</p>",
        figure_img(fig, alt="outcome probabilities", caption="Predicted probability of a good outcome"),
    ]


def _grades_section(out: Path) -> list[str]:
    columns, rows = read_table(out / "grades.tsv")
    if not rows or "pfirrmann" not in columns:
        return []
    levels = sorted({r.get("level", "") for r in rows})
    grades = sorted({r.get("pfirrmann", "") for r in rows}, key=lambda g: (len(g), g))
    table_rows = []
    for level in levels:
        row: dict[str, Any] = {"level": level}
        for g in grades:
            row[f"grade {g}"] = sum(1 for r in rows if r.get("level") == level and r.get("pfirrmann") == g)
        table_rows.append(row)
    return [
        "<h2>Pfirrmann grades per level (cases)</h2>",
        table(table_rows, ["level", *(f"grade {g}" for g in grades)]),
    ]


def _load_case_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cohort_level_labels(
    root: Path, case_ids: list[str], results: list[dict[str, str]]
) -> tuple[dict[str, LevelLabels], dict[str, list[CheckInfo]]]:
    """Per case, its level numbering and its input checks.

    The numbering comes from the case folder (``cases/<id>/case.json["levels"]``, else its ``levels.json``,
    as in the case report), else from the cohort's ``levels.tsv`` (one row per case and vertebra) with the
    ``castellvi`` column of ``results.tsv``; a case whose ``results.tsv`` rows say ``levels_flagged = yes``
    is flagged whatever the other sources say. Cases without any of them are left out.
    """
    _, level_rows = read_table(root / "levels.tsv")
    by_case: dict[str, list[dict[str, str]]] = {}
    for r in level_rows:
        by_case.setdefault(r.get("case_id", ""), []).append(r)
    levels: dict[str, LevelLabels] = {}
    checks: dict[str, list[CheckInfo]] = {}
    for cid in case_ids:
        folder = root / "cases" / cid
        data = _load_case_json(folder / "case.json")
        info = case_level_labels(find_case_files(folder), data) if folder.is_dir() else None
        case_results = [r for r in results if r.get("case_id") == cid]
        castellvi = next((r.get("castellvi") for r in case_results if r.get("castellvi")), None)
        if info is None and by_case.get(cid):
            info = LevelLabels.from_table_rows(by_case[cid], castellvi_type=castellvi)
        stated = any(str(r.get("levels_flagged", "")).lower() == "yes" for r in case_results)
        if info is None and (stated or castellvi):
            info = LevelLabels(flagged=stated, castellvi_type=castellvi)
        if info is not None and stated and not info.flagged:
            from dataclasses import replace

            info = replace(info, flagged=True)
        if info is not None:
            levels[cid] = info
        found = read_checks(data.get("checks"))
        if found:
            checks[cid] = found
    return levels, checks


def _row_concern(row: dict[str, str], info: LevelLabels | None) -> str:
    """Why a results row's level must be checked ("" when it need not)."""
    concern = info.concern(row.get("level", "")) if info is not None else ""
    if not concern and str(row.get("level_trusted", "")).lower() == "no":
        concern = f"level not trusted (confidence {row.get('level_confidence') or '?'})"
    if not concern and info is not None and info.flagged and not info.vertebrae:
        concern = "level labels of the case flagged"
    return concern


def _levels_section(levels: dict[str, LevelLabels], n_cases: int, links: dict[str, str]) -> list[str]:
    if not levels:
        return []
    flagged = {cid: info for cid, info in levels.items() if info.flagged}
    out = [
        "<h2>Level labels</h2>",
        f"<p><b>{len(flagged)}</b> of {len(levels)} case(s) with a level numbering have flagged level labels"
        + (f" ({n_cases - len(levels)} case(s) have none recorded)" if n_cases > len(levels) else "")
        + ".</p>",
    ]
    if not flagged:
        return out
    out.append(banner(f"{len(flagged)} case(s) with flagged level labels. {LEVELS_BANNER}", sorted(flagged)))
    kinds: dict[str, int] = {}
    for info in flagged.values():
        if info.error:
            key = "numbering failed"
        elif info.castellvi_type not in (None, "", "0"):
            key = f"Castellvi type {info.castellvi_type}"
        elif info.transitional_kind:
            key = KIND_TEXT.get(info.transitional_kind, info.transitional_kind)
        elif info.untrusted:
            key = "low confidence only"
        else:
            key = "flagged"
        kinds[key] = kinds.get(key, 0) + 1
    rows = []
    for cid in sorted(flagged):
        info = flagged[cid]
        rows.append(
            {
                "case_id": cid,
                "report": links.get(cid, ""),
                "transitional": info.transitional_text,
                "castellvi_type": info.castellvi_type or "",
                "untrusted": ", ".join(info.untrusted),
                "lowest_confidence": ""
                if info.lowest_confidence is None
                else f"{info.lowest_confidence:.2f}",
                "anchor": info.anchor_text if (info.anchor_method or info.override) else "",
                "reason": " ".join(info.reasons()),
            }
        )
    columns = [
        c
        for c in (
            "case_id",
            "transitional",
            "castellvi_type",
            "untrusted",
            "lowest_confidence",
            "anchor",
            "reason",
        )
        if c == "case_id" or any(r[c] for r in rows)
    ]
    out.append(
        table(
            rows,
            columns,
            headers={
                "castellvi_type": "Castellvi type",
                "untrusted": "levels not trusted",
                "lowest_confidence": "lowest confidence",
                "anchor": "numbered from",
            },
            links={"case_id": "report"},
        )
    )
    out.append("<h3>Why they are flagged (cases)</h3>")
    out.append(
        table(
            [{"reason": k, "cases": v} for k, v in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))],
            ("reason", "cases"),
        )
    )
    return out


def _checks_section(checks: dict[str, list[CheckInfo]], links: dict[str, str]) -> list[str]:
    if not checks:
        return []
    counts: dict[str, dict[str, int]] = {}
    problems = []
    for cid in sorted(checks):
        for c in checks[cid]:
            entry = counts.setdefault(c.name, {"ok": 0, "warning": 0, "error": 0})
            entry[c.status if c.status in entry else "warning"] += 1
            if c.problem:
                problems.append(
                    {
                        "case_id": cid,
                        "report": links.get(cid, ""),
                        "check": c.name,
                        "status": c.status,
                        "message": c.message,
                        "fix": c.fix or "",
                        "_class": "flagged" if c.status == "error" else "",
                    }
                )
    n_warn = sum(1 for p in problems if p["status"] == "warning")
    n_err = sum(1 for p in problems if p["status"] == "error")
    cases_with = len({p["case_id"] for p in problems})
    out = [
        "<h2>Input checks</h2>",
        f"<p>{len(checks)} case(s) checked: <b>{n_warn}</b> warning(s) and <b>{n_err}</b> error(s) in "
        f"{cases_with} case(s).</p>",
        table(
            [{"check": k, **v} for k, v in sorted(counts.items())],
            ("check", "ok", "warning", "error"),
            headers={"ok": "passed", "warning": "warnings", "error": "errors"},
        ),
    ]
    if problems:
        out.append(
            table(
                problems,
                ("case_id", "check", "status", "message", "fix"),
                links={"case_id": "report"},
                row_class="_class",
            )
        )
    return out


def cohort_report_html(cohort_dir: str | os.PathLike) -> str:
    """The HTML text of the cohort summary of a ``spineai batch`` output folder."""
    root = Path(cohort_dir)
    cohort_file = root / "cohort.json"
    if not cohort_file.is_file():
        raise InputError(
            f"'{root}' holds no cohort.json: it is not the output folder of 'spineai batch'.",
            "give the folder passed as --out to 'spineai batch', or a single case folder",
        )
    cohort = json.loads(cohort_file.read_text(encoding="utf-8"))
    _, results = read_table(root / "results.tsv")
    _, cases = read_table(root / "cases.tsv")
    _, failures = read_table(root / "failures.tsv")
    n_cases = len(cohort.get("case_ids") or cases)
    n_done = sum(1 for c in cases if c.get("status") == "done")
    case_ids = [str(c) for c in cohort.get("case_ids") or []] or [c.get("case_id", "") for c in cases]
    links = {
        cid: f"cases/{cid}/{REPORT_NAME}"
        for cid in case_ids
        if (root / "cases" / cid / REPORT_NAME).is_file()
    }
    levels, checks = cohort_level_labels(root, case_ids, results)
    for r in results:
        r["_level_concern"] = _row_concern(r, levels.get(r.get("case_id", "")))
    body: list[str] = []

    source = cohort.get("source") or {}
    body.append("<h2>Cohort</h2>")
    body.append(
        table(
            [
                {"field": "source", "value": f"{source.get('kind', '')} {source.get('source', '')}"},
                {"field": "steps", "value": ", ".join(cohort.get("steps") or [])},
                {"field": "cases", "value": n_cases},
                {"field": "finished", "value": n_done},
                {"field": "failed or not finished", "value": len(failures)},
                {"field": "inputs hash", "value": cohort.get("inputs_hash")},
            ],
            ("field", "value"),
        )
    )
    runs = cohort.get("runs") or []
    if runs:
        body.append("<h3>Runs</h3>")
        body.append(
            table(
                runs,
                (
                    "started",
                    "finished",
                    "status",
                    "executor",
                    "ran",
                    "skipped",
                    "done",
                    "failed",
                    "duration_s",
                ),
            )
        )

    if failures:
        body.append(f'<h2 class="bad">Failures ({len(failures)})</h2>')
        body.append(table(failures, ("case_id", "status", "step", "error_type", "error", "attempts")))
    body += _levels_section(levels, n_cases, links)
    body += _checks_section(checks, links)

    if results:
        body.append("<h2>Triangle areas</h2>")
        body.append(
            '<p class="note">True areas (reference view) of every measured foramen. The shaded band is the '
            "paper's mean +- SD at L5/S1 (Fan et al., AJNR 2019: Kambin 37.8 +- 20.9 mm2, safe 8.69 +- 2.24 mm2), "
            "measured by hand on 3D renderings.</p>"
        )
        summary_rows = []
        any_levels = bool(levels) or any("level_trusted" in r for r in results)
        for kind in ("kambin", "safe"):
            groups = _groups(results, kind, "area_mm2")
            body.append(_area_figure(kind, groups, _groups(results, kind, "area_mm2", only_flagged=True)))
            windows = _groups(results, kind, "best_window_mm2")
            for key, values in groups.items():
                s = _stats(values)
                usable = [
                    r
                    for r in results
                    if r.get("triangle") == kind and f"{r.get('level')} {r.get('side')}" == key
                ]
                n_usable = sum(1 for r in usable if r.get("usable_view") == "yes")
                n_flagged = sum(1 for r in usable if r.get("_level_concern"))
                mean, sd = PAPER_AREAS_MM2[kind]
                summary_rows.append(
                    {
                        "level_labels": (f"⚠ {n_flagged}/{len(usable)} flagged" if n_flagged else "ok")
                        if any_levels
                        else "",
                        "_class": "flagged" if n_flagged else "",
                        "triangle": KIND_TITLES[kind],
                        "foramen": key,
                        "n": s["n"],
                        "area": _pm(s),
                        "median": f"{s['median']:.1f}",
                        "range": f"{s['min']:.1f} .. {s['max']:.1f}",
                        "paper": f"{mean} +- {sd}" if key.startswith("L5-S1") else "",
                        "best_window": _pm(_stats(windows.get(key, []))),
                        "usable": f"{n_usable}/{len(usable)}"
                        if any(r.get("usable_view") for r in usable)
                        else "",
                    }
                )
        summary_columns = [
            "triangle",
            "foramen",
            "n",
            "area",
            "median",
            "range",
            "paper",
            "best_window",
            "usable",
        ]
        if any_levels:
            summary_columns.insert(2, "level_labels")
            body.append(
                '<p class="note">Level labels: how many of the measured foramina of the row are named by a level '
                "whose labels are flagged (a vertebra not trusted, transitional or merged, or a failed numbering); "
                "their areas are marked with red crosses in the plots.</p>"
            )
        body.append(
            table(
                summary_rows,
                summary_columns,
                row_class="_class",
                cell_class={"level_labels": "mark"},
                headers={
                    "level_labels": "level labels",
                    "area": "area mean +- SD (mm2)",
                    "median": "median (mm2)",
                    "range": "range (mm2)",
                    "paper": "paper L5/S1 (mm2)",
                    "best_window": "best window mean +- SD (mm2)",
                    "usable": "usable view",
                },
            )
        )
        body += _truth_section(results)
    body += _dice_section(cases)
    body += _outcome_section(cases)
    body += _grades_section(root)

    if cases:
        for c in cases:
            cid = c.get("case_id", "")
            c["report"] = links.get(cid, "")
            info = levels.get(cid)
            c["level_labels"] = "" if info is None else ("⚠ flagged" if info.flagged else "ok")
            c["castellvi"] = "" if info is None else (info.castellvi_type or "")
            problems = [k for k in checks.get(cid, []) if k.problem]
            c["input_checks"] = (
                ", ".join(f"{k.name} {k.status}" for k in problems)
                if problems
                else ("ok" if cid in checks else "")
            )
            c["_class"] = "flagged" if info is not None and info.flagged else ""
        body.append("<h2>Cases</h2>")
        columns = [
            col
            for col in (
                "case_id",
                "status",
                "level_labels",
                "castellvi",
                "input_checks",
                "steps_done",
                "attempts",
                "duration_s",
                "foramina_measured",
                "outcome_probability_good",
                "dice_bone",
                "dice_nerve",
                "error",
            )
            if any(c.get(col) for c in cases)
        ]
        body.append(
            table(
                cases,
                columns,
                links={"case_id": "report"},
                row_class="_class",
                cell_class={"level_labels": "mark"},
                headers={"level_labels": "level labels", "input_checks": "input checks"},
            )
        )
    return page("SpineAI cohort report", body, subtitle=str(root.resolve()))


def write_cohort_report(
    cohort_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    case_reports: bool = True,
) -> Path:
    """Write the cohort summary (default ``cohort_dir/report.html``) and, with ``case_reports``, every case's
    ``cases/<case_id>/report.html``; returns the summary's path.

    Raises:
        InputError: ``cohort_dir`` is not a batch output folder.
        OutputExistsError: a report exists and ``overwrite`` is False.
    """
    root = Path(cohort_dir)
    target = Path(out) if out is not None else root / REPORT_NAME
    if target.exists() and not overwrite:
        raise OutputExistsError(target)
    if case_reports and (root / "cohort.json").is_file():
        ids = json.loads((root / "cohort.json").read_text(encoding="utf-8")).get("case_ids") or []
        folders = [root / "cases" / c for c in ids if (root / "cases" / c).is_dir()]
        existing = [f / REPORT_NAME for f in folders if (f / REPORT_NAME).exists()]
        if existing and not overwrite:  # refuse before writing anything
            raise OutputExistsError(existing[0])
        from ..progress import track

        for folder in track(folders, desc="case reports"):
            write_case_report(folder, overwrite=overwrite)
    return write_text(target, cohort_report_html(root), overwrite=overwrite)
