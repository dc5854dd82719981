"""The paper's validation, automated: triangle areas measured on a model's segmentation vs on reference masks.

Fan et al. (AJNR 2019) measured Kambin's and the safe triangle on their network's segmentation and on
the manual segmentation of the same test cases and reported mean +- SD of both, a paired t-test
(P = .30 Kambin, .79 safe) and the intraclass correlation (0.98 Kambin, 0.96 safe).
:func:`evaluate_triangle_agreement` does the same for any folder of CT + reference label maps: it
segments each CT with a model, measures every foramen on both label maps with
:func:`spineai.planning.measure_triangles`, pairs the triangles measured on both and reports, per kind:

* ``n`` pairs, mean +- SD of the areas on the segmentation and on the reference (mm2);
* paired t-test (:func:`scipy.stats.ttest_rel`): t and two-sided P;
* ICC(2,1) (two-way random effects, absolute agreement, single measurement; Shrout & Fleiss 1979,
  McGraw & Wong 1996 "ICC(A,1)") and ICC(3,1) (consistency) with their 95% confidence intervals
  (F-distribution limits of McGraw & Wong);
* Bland-Altman bias and 95% limits of agreement (mm2).

Areas are the triangles' true areas (reference view, mm2), see :mod:`spineai.planning.triangles`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["icc", "paired_agreement", "evaluate_triangle_agreement", "PAPER_AGREEMENT"]

#: the paper's figures (Fan et al. 2019): mean +- SD of the manual measurement, paired-t P, ICC
PAPER_AGREEMENT: dict[str, dict[str, float]] = {
    "kambin": {"mean_mm2": 37.8, "sd_mm2": 20.9, "paired_t_p": 0.30, "icc": 0.98},
    "safe": {"mean_mm2": 8.69, "sd_mm2": 2.24, "paired_t_p": 0.79, "icc": 0.96},
}


def icc(ratings: Any, alpha: float = 0.05) -> dict[str, Any]:
    """Intraclass correlations of ``ratings`` with shape ``(n_targets, k_raters)``.

    Two-way ANOVA mean squares (rows = targets, columns = raters / methods), then

    * ``icc2_1`` = (MSR - MSE) / (MSR + (k-1) MSE + k (MSC - MSE) / n)  (absolute agreement);
    * ``icc3_1`` = (MSR - MSE) / (MSR + (k-1) MSE)  (consistency);

    each with a ``(1 - alpha)`` confidence interval (McGraw & Wong 1996, cases 2A and 3).

    Returns:
        dict with ``icc2_1``, ``icc2_1_ci``, ``icc3_1``, ``icc3_1_ci``, ``n``, ``k``; values are ``None``
        when fewer than two targets or raters are given or the targets do not vary.
    """
    from scipy import stats

    x = np.asarray(ratings, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"ratings must be (targets, raters), got shape {x.shape}")
    n, k = x.shape
    out: dict[str, Any] = {"n": int(n), "k": int(k), "icc2_1": None, "icc2_1_ci": None}
    out.update(icc3_1=None, icc3_1_ci=None)
    if n < 2 or k < 2:
        return out
    grand = x.mean()
    ss_rows = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((x - grand) ** 2).sum() - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    if msr <= 0:
        return out
    icc3 = (msr - mse) / (msr + (k - 1) * mse)
    icc2 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    out["icc3_1"], out["icc2_1"] = float(icc3), float(icc2)
    df1, df2 = n - 1, (n - 1) * (k - 1)
    if mse > 0:
        f_obs = msr / mse
        f_lo = f_obs / stats.f.ppf(1 - alpha / 2, df1, df2)
        f_hi = f_obs * stats.f.ppf(1 - alpha / 2, df2, df1)
        out["icc3_1_ci"] = [float((f_lo - 1) / (f_lo + k - 1)), float((f_hi - 1) / (f_hi + k - 1))]
        # McGraw & Wong case 2A: approximate degrees of freedom of the denominator
        a = k * icc2 / (n * (1 - icc2)) if icc2 < 1 else np.inf
        b = 1 + k * icc2 * (n - 1) / (n * (1 - icc2)) if icc2 < 1 else np.inf
        if np.isfinite(a) and np.isfinite(b):
            v_num = (a * msc + b * mse) ** 2
            v_den = (a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1))
            v = v_num / v_den if v_den > 0 else np.inf
            fs_hi = stats.f.ppf(1 - alpha / 2, n - 1, v)
            fs_lo = stats.f.ppf(1 - alpha / 2, v, n - 1)
            lo = n * (msr - fs_hi * mse) / (fs_hi * (k * msc + (k * n - k - n) * mse) + n * msr)
            hi = n * (fs_lo * msr - mse) / (k * msc + (k * n - k - n) * mse + n * fs_lo * msr)
            out["icc2_1_ci"] = [float(lo), float(hi)]
    return out


def paired_agreement(measured: Sequence[float], reference: Sequence[float]) -> dict[str, Any]:
    """Agreement of paired measurements (e.g. areas in mm2 on a segmentation and on reference masks).

    Returns:
        dict with ``n``, ``measured`` / ``reference`` (mean, sd in the input's unit), ``paired_t``
        (t, p; ``None`` below 2 pairs or with identical pairs), ``icc`` (see :func:`icc`),
        ``bland_altman`` (bias = mean(measured - reference), 95% limits of agreement).
    """
    from scipy import stats

    m = np.asarray(measured, dtype=float)
    r = np.asarray(reference, dtype=float)
    if m.shape != r.shape or m.ndim != 1:
        raise ValueError(
            f"paired measurements must be two 1-D arrays of one length, got {m.shape}, {r.shape}"
        )
    n = int(m.size)

    def describe(v: np.ndarray) -> dict[str, float | None]:
        return {
            "mean": float(v.mean()) if n else None,
            "sd": float(v.std(ddof=1)) if n > 1 else None,
        }

    out: dict[str, Any] = {"n": n, "measured": describe(m), "reference": describe(r), "paired_t": None}
    diff = m - r
    if n >= 2 and np.ptp(diff) > 0:
        t = stats.ttest_rel(m, r)
        out["paired_t"] = {"t": float(t.statistic), "p": float(t.pvalue)}
    out["icc"] = icc(np.stack([m, r], axis=1)) if n else icc(np.zeros((0, 2)))
    if n >= 2:
        bias, sd = float(diff.mean()), float(diff.std(ddof=1))
        out["bland_altman"] = {"bias": bias, "sd": sd, "limits": [bias - 1.96 * sd, bias + 1.96 * sd]}
    else:
        out["bland_altman"] = None
    return out


def evaluate_triangle_agreement(
    data_dir: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    device: str | None = "auto",
    label_convention: str | None = None,
    levels: Sequence[str] = ("L4-L5", "L5-S1"),
    sides: Sequence[str] = ("left", "right"),
    json_out: str | os.PathLike | None = None,
    overwrite: bool = False,
    mirror_tta: bool = False,
) -> dict[str, Any]:
    """Segment every case of ``data_dir`` and compare triangle areas on the segmentation and on its labels.

    Args:
        data_dir: folder of cases laid out as ``spineai evaluate segmentation`` reads them (CT + label map;
            see :func:`spineai.segmentation.data.find_cases`), e.g. phantoms written by ``spineai phantom``.
        weights: segmentation weights (default: the shipped CT model).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        label_convention: convention of the reference label maps when they carry no mapping.
        levels, sides: foramina to compare.
        json_out: also write the report there (JSON).
        overwrite: replace an existing ``json_out``.
        mirror_tta: segment with left-right test-time augmentation
            (:func:`~spineai.segmentation.inference.segment`).

    Returns:
        ``{"cases": [...], "pairs": [...], "summary": {kind: paired_agreement}, "paper": PAPER_AGREEMENT}``;
        each pair: case, level, side, kind, ``area_segmentation_mm2``, ``area_reference_mm2``. A foramen
        measured on only one of the two maps is listed under the case's ``unpaired`` with the reason.
    """
    from ..outputs import check_writable, write_json
    from ..progress import track
    from ..segmentation.data import find_cases, read_canonical_labels
    from ..segmentation.inference import load_segmentation_model, segment
    from .triangles import measure_triangles

    if json_out is not None:
        check_writable(json_out, overwrite)
    cases = find_cases(data_dir, label_convention)
    loaded = load_segmentation_model(weights, device)
    pairs: list[dict[str, Any]] = []
    per_case: list[dict[str, Any]] = []
    for case in track(cases, desc="segmenting and measuring cases"):
        t0 = time.perf_counter()
        seg = segment(case.image, model=loaded, mirror_tta=mirror_tta)
        reference = read_canonical_labels(case.labels, case.mapping)
        on_seg = measure_triangles(seg.labels, levels=levels, sides=sides)
        on_ref = measure_triangles(reference, levels=levels, sides=sides)
        unpaired: list[str] = []
        for fm_ref in on_ref.foramina:
            fm_seg = on_seg.get(fm_ref.level, fm_ref.side)
            if not (fm_ref.ok and fm_seg.ok):
                why = fm_seg.message if fm_ref.ok else f"reference: {fm_ref.message}"
                unpaired.append(f"{fm_ref.level} {fm_ref.side}: {why}")
                continue
            for kind, tri_ref in fm_ref.triangles.items():
                tri_seg = fm_seg.triangles.get(kind)
                if tri_seg is None:
                    unpaired.append(f"{fm_ref.level} {fm_ref.side} {kind}: not measured on the segmentation")
                    continue
                pairs.append(
                    {
                        "case": case.case_id,
                        "level": fm_ref.level,
                        "side": fm_ref.side,
                        "kind": kind,
                        "area_segmentation_mm2": float(tri_seg.area_mm2),
                        "area_reference_mm2": float(tri_ref.area_mm2),
                    }
                )
        per_case.append(
            {"case": case.case_id, "unpaired": unpaired, "seconds": round(time.perf_counter() - t0, 2)}
        )
    summary = {}
    for kind in ("kambin", "safe"):
        rows = [p for p in pairs if p["kind"] == kind]
        summary[kind] = paired_agreement(
            [p["area_segmentation_mm2"] for p in rows], [p["area_reference_mm2"] for p in rows]
        )
    report = {
        "data": str(data_dir),
        "model": {"name": loaded.card.name, "sha256": loaded.card.sha256},
        "mirror_tta": bool(mirror_tta),
        "cases": per_case,
        "pairs": pairs,
        "summary": summary,
        "paper": PAPER_AGREEMENT,
    }
    if json_out is not None:
        write_json(json_out, report, overwrite=overwrite)
    return report


def format_agreement(summary: dict[str, Any]) -> str:
    """Plain-text table of :func:`evaluate_triangle_agreement`'s ``summary`` beside the paper's figures."""

    def f(v: Any, fmt: str = ".2f") -> str:
        return "n/a" if v is None else format(v, fmt)

    lines = [
        f"{'triangle':<8} {'n':>3}  {'segmentation mm2':>17}  {'reference mm2':>15}  {'paired-t P':>10}  "
        f"{'ICC(2,1) [95% CI]':>22}  {'paper: P, ICC':>14}"
    ]
    for kind, s in summary.items():
        m, r, t, ic = s["measured"], s["reference"], s["paired_t"], s["icc"]
        ci = ic.get("icc2_1_ci")
        ci_text = f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
        paper = PAPER_AGREEMENT.get(kind, {})
        lines.append(
            f"{kind:<8} {s['n']:>3}  {f(m['mean'], '.1f'):>7} +- {f(m['sd'], '.1f'):<6}  "
            f"{f(r['mean'], '.1f'):>6} +- {f(r['sd'], '.1f'):<5}  {f(t['p'] if t else None, '.3f'):>10}  "
            f"{f(ic.get('icc2_1'), '.3f'):>6} {ci_text:>15}  "
            f"{paper.get('paired_t_p', float('nan')):.2f}, {paper.get('icc', float('nan')):.2f}"
        )
    return "\n".join(lines)
