"""The HTML summary of a cohort (a ``spineai batch`` output folder), with a report per case.

Sections: the cohort (source, steps, runs), case counts and failures, the distribution of Kambin's and
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
from .case import REPORT_NAME, write_case_report
from .html import figure_img, page, read_table, table

__all__ = ["PAPER_AREAS_MM2", "cohort_report_html", "write_cohort_report"]

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


def _groups(rows: list[dict[str, str]], kind: str, column: str) -> dict[str, list[float]]:
    """``{"L5-S1 left": [values]}`` of ``column`` for triangle ``kind`` (measured rows only)."""
    out: dict[str, list[float]] = {}
    for r in rows:
        if r.get("triangle") != kind or r.get("status") != "ok":
            continue
        v = _float(r.get(column))
        if v is not None:
            out.setdefault(f"{r.get('level')} {r.get('side')}", []).append(v)
    return dict(sorted(out.items()))


def _area_figure(kind: str, groups: dict[str, list[float]]) -> str:
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
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=20)
    ax.set_ylabel("true area (mm2)")
    ax.set_title(f"{KIND_TITLES[kind]}: area per level and side")
    ax.legend(loc="upper right", fontsize=8)
    return figure_img(
        fig, alt=f"{kind} areas", caption=f"{KIND_TITLES[kind]} areas (box: quartiles; dots: cases)"
    )


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

    if results:
        body.append("<h2>Triangle areas</h2>")
        body.append(
            '<p class="note">True areas (reference view) of every measured foramen. The shaded band is the '
            "paper's mean +- SD at L5/S1 (Fan et al., AJNR 2019: Kambin 37.8 +- 20.9 mm2, safe 8.69 +- 2.24 mm2), "
            "measured by hand on 3D renderings.</p>"
        )
        summary_rows = []
        for kind in ("kambin", "safe"):
            groups = _groups(results, kind, "area_mm2")
            body.append(_area_figure(kind, groups))
            windows = _groups(results, kind, "best_window_mm2")
            for key, values in groups.items():
                s = _stats(values)
                usable = [
                    r
                    for r in results
                    if r.get("triangle") == kind and f"{r.get('level')} {r.get('side')}" == key
                ]
                n_usable = sum(1 for r in usable if r.get("usable_view") == "yes")
                mean, sd = PAPER_AREAS_MM2[kind]
                summary_rows.append(
                    {
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
        body.append(
            table(
                summary_rows,
                ("triangle", "foramen", "n", "area", "median", "range", "paper", "best_window", "usable"),
                headers={
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
            report = root / "cases" / c.get("case_id", "") / REPORT_NAME
            c["report"] = f"cases/{c.get('case_id')}/{REPORT_NAME}" if report.is_file() else ""
        body.append("<h2>Cases</h2>")
        columns = [
            col
            for col in (
                "case_id",
                "status",
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
        body.append(table(cases, columns, links={"case_id": "report"}))
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
