"""Benchmark of the level labelling, the Castellvi assessment, laterality under flips, and the morphometry.

``labels`` (default): a cohort of phantoms (2 mm voxels), each numbered by :func:`spineai.levels.label_levels`
from its truth label map with every vertebra, disc and root label scrambled (only which voxels form one
structure is known) and its CT:

* ``lumbar_only``: default phantoms (L3..S1, no T12/L1 in view) and whole-lumbar ones cut to L3..S1;
* ``lumbar_only_castellvi``: Castellvi types with the same lumbar-only field of view;
* ``transitional``: T12 (with ribs) to the sacrum with an L6, a lumbarised S1 or a Castellvi type;
* ``whole_normal``: T12 to the sacrum, normal junction;
* ``ambiguous`` (reported apart, not in the pass rate): an L6 or a lumbarised S1 with a lumbar-only field of
  view, which no count from the sacrum can tell from a normal spine; the tool must flag them instead.

Reported: share of cases with every vertebra (>= 1 ml in view) correctly named, disc and root agreement,
the Castellvi type per side of the Castellvi cases, and the flags. Then every ``--flip-every``-th case is
re-stored mirrored (voxels flipped left-right under the same header), with a negative-x direction, and in
RAS and PIR axis order: every Castellvi side and every renamed root side must follow the anatomy.

``morphometry``: ``--cases`` phantoms at ``--spacing`` (L4..S1), measured by
:func:`spineai.levels.measure_morphometry` and compared with :func:`spineai.phantom.morphometry.morphometry_truth`:
the share of measurements within 1 mm or 10 %.

``real``: VerSe subject 014 and the TPTBox L2-L4 sample from ``../shared/data`` (when present).

Usage::

    python benchmarks/bench_levels.py labels [--flip-every 4] [--json out.json]
    python benchmarks/bench_levels.py morphometry [--cases 10] [--spacing 1.0] [--json out.json]
    python benchmarks/bench_levels.py real
    python benchmarks/bench_levels.py all [--json out.json]

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ct"
LUMBAR_FOV = ("L3", "L4", "L5", "S1")


def cohort() -> list[dict]:
    """The labelling cohort: (group, seed, variant, field of view)."""
    out = []
    for seed in range(100, 112):
        out.append(dict(group="lumbar_only", seed=seed, variant=None, fov=None))
    for seed in range(120, 124):
        out.append(dict(group="lumbar_only", seed=seed, variant="whole_lumbar", fov=LUMBAR_FOV))
    for seed, v in zip(
        range(130, 134), ("castellvi_IIa", "castellvi_IIIb", "castellvi_Ib", "castellvi_IV"), strict=True
    ):
        out.append(dict(group="lumbar_only_castellvi", seed=seed, variant=v, fov=LUMBAR_FOV))
    transitional = [
        "L6",
        "L6",
        "L6",
        "lumbarised_S1",
        "lumbarised_S1",
        "lumbarised_S1",
        "castellvi_Ia",
        "castellvi_Ib",
        "castellvi_IIa",
        "castellvi_IIb",
        "castellvi_IIIa",
        "castellvi_IIIb",
        "castellvi_IV",
        "castellvi_IV",
    ]
    for seed, v in zip(range(140, 140 + len(transitional)), transitional, strict=True):
        out.append(dict(group="transitional", seed=seed, variant=v, fov=None))
    for seed in range(160, 166):
        out.append(dict(group="whole_normal", seed=seed, variant="whole_lumbar", fov=None))
    for seed, v in zip(range(170, 174), ("L6", "L6", "lumbarised_S1", "lumbarised_S1"), strict=True):
        fov = ("L3", "L4", "L5", "L6", "S1")
        out.append(dict(group="ambiguous", seed=seed, variant=v, fov=fov))
    return out


def _phantom(spec: dict, spacing: float = 2.0):
    from spineai.phantom import generate_ct_phantom

    kw = {}
    if spec["variant"]:
        kw["variant"] = spec["variant"]
    if spec["fov"]:
        kw["fov_levels"] = spec["fov"]
    return generate_ct_phantom(spec["seed"], spacing_mm=spacing, progress=False, **kw)


def _sides(result) -> dict:
    """Castellvi type per side and the mean LPS x of each renamed root (laterality check)."""
    from spineai.anatomy import BY_LABEL

    arr = sitk.GetArrayViewFromImage(result.labelmap.image)
    img = result.labelmap.image
    roots = {}
    for v in np.unique(arr):
        s = BY_LABEL.get(int(v))
        if s is not None and s.kind == "root":
            idx = np.argwhere(np.asarray(arr) == v)[::5, ::-1].astype(float)
            pts = np.asarray([img.TransformContinuousIndexToPhysicalPoint(p.tolist()) for p in idx])
            roots[s.name] = float(pts[:, 0].mean())
    cast = {s: e["type"] for s, e in result.transitional.get("castellvi", {}).items()}
    return dict(castellvi=cast, roots=roots)


def _mirror(img: sitk.Image) -> sitk.Image:
    out = sitk.GetImageFromArray(np.ascontiguousarray(sitk.GetArrayFromImage(img)[:, :, ::-1]))
    out.CopyInformation(img)
    return out


def _negative_x(img: sitk.Image) -> sitk.Image:
    out = sitk.GetImageFromArray(np.ascontiguousarray(sitk.GetArrayFromImage(img)[:, :, ::-1]))
    out.SetSpacing(img.GetSpacing())
    out.SetOrigin(img.TransformIndexToPhysicalPoint((img.GetSize()[0] - 1, 0, 0)))
    d = np.asarray(img.GetDirection()).reshape(3, 3).copy()
    d[:, 0] *= -1
    out.SetDirection(tuple(d.ravel()))
    return out


def _lr_errors(base: dict, other: dict, mirrored: bool) -> list[str]:
    """Left/right disagreements of ``other`` with ``base`` (sides swapped when ``mirrored``)."""
    swap = {"left": "right", "right": "left"}
    errors = []
    for side, t in base["castellvi"].items():
        want = swap[side] if mirrored else side
        if other["castellvi"].get(want) != t:
            errors.append(f"castellvi {side}: {t} -> {want} got {other['castellvi'].get(want)}")
    for name, x in other["roots"].items():
        if name.endswith("_left"):
            right = name.replace("_left", "_right")
            if right in other["roots"] and not x > other["roots"][right]:
                errors.append(f"{name} lies right of {right}")
    return errors


def labels_benchmark(flip_every: int = 4) -> dict:
    from spineai import io
    from spineai.levels import label_levels
    from spineai.phantom.scramble import level_agreement, scramble_level_labels

    rows = []
    flips = dict(cases=0, variants=0, errors=[])
    specs = cohort()
    t_label = []
    for n, spec in enumerate(specs):
        case = _phantom(spec)
        truth = case.truth["level_truth"]
        scrambled = scramble_level_labels(case.labels, spec["seed"])
        t0 = time.perf_counter()
        result = label_levels(scrambled, ct=case.image)
        t_label.append(time.perf_counter() - t0)
        agree = level_agreement(case.labels, result.labelmap.image)
        tr = truth["transitional"]
        cast_truth = tr["castellvi"] if tr["kind"] == "castellvi" else None
        cast_got = {s: e["type"] for s, e in result.transitional.get("castellvi", {}).items()}
        row = dict(
            **{k: spec[k] for k in ("group", "seed", "variant")},
            vertebrae_correct=agree["vertebrae_correct"],
            discs_correct=agree["discs_correct"],
            roots_correct=agree["roots_correct"],
            wrong=agree["wrong"],
            names=result.names,
            truth_kind=tr["kind"],
            kind=result.transitional.get("kind"),
            castellvi_truth=cast_truth,
            castellvi=cast_got,
            castellvi_type=result.transitional.get("castellvi_type"),
            castellvi_type_truth=tr["castellvi_type"],
            flagged=result.flagged,
            untrusted=[v.name for v in result.vertebrae if not v.trusted],
        )
        rows.append(row)
        print(
            f"{spec['group']:<22} seed {spec['seed']} {str(spec['variant']):<15} "
            f"{'OK ' if row['vertebrae_correct'] else 'BAD'} {' '.join(result.names):<36} "
            f"castellvi {row['castellvi_type']} (truth {tr['castellvi_type']}) flagged={row['flagged']}",
            flush=True,
        )
        if flip_every and n % flip_every == 0 and spec["group"] != "ambiguous":
            base = _sides(result)
            flips["cases"] += 1
            variants = {
                "mirrored": (_mirror(scrambled), _mirror(case.image), True),
                "negative_x": (_negative_x(scrambled), _negative_x(case.image), False),
                "RAS": (io.reorient(scrambled, "RAS"), io.reorient(case.image, "RAS"), False),
                "PIR": (io.reorient(scrambled, "PIR"), io.reorient(case.image, "PIR"), False),
            }
            for name, (lab, ct, mirrored) in variants.items():
                other = _sides(label_levels(lab, ct=ct))
                flips["variants"] += 1
                for e in _lr_errors(base, other, mirrored):
                    flips["errors"].append(f"seed {spec['seed']} {name}: {e}")
    main = [r for r in rows if r["group"] != "ambiguous"]
    castellvi_rows = [r for r in main if r["castellvi_truth"]]
    sides = [
        (r["castellvi_truth"][s], r["castellvi"].get(s)) for r in castellvi_rows for s in ("left", "right")
    ]
    trans_sides = [(t, g) for t, g in sides if t != "0"]
    summary = dict(
        cases=len(main),
        by_group={g: sum(1 for r in main if r["group"] == g) for g in sorted({r["group"] for r in main})},
        vertebrae_all_correct=sum(r["vertebrae_correct"] for r in main) / len(main),
        discs_all_correct=sum(r["discs_correct"] for r in main) / len(main),
        roots_all_correct=sum(r["roots_correct"] for r in main) / len(main),
        castellvi_side_accuracy_all_sides=sum(t == g for t, g in sides) / max(len(sides), 1),
        castellvi_side_accuracy_transitional_sides=sum(t == g for t, g in trans_sides)
        / max(len(trans_sides), 1),
        castellvi_type_accuracy=sum(r["castellvi_type"] == r["castellvi_type_truth"] for r in castellvi_rows)
        / max(len(castellvi_rows), 1),
        castellvi_sides=len(sides),
        transitional_sides=len(trans_sides),
        transitional_kind_accuracy=sum(
            r["kind"] == r["truth_kind"] for r in main if r["group"] == "transitional"
        )
        / max(1, sum(r["group"] == "transitional" for r in main)),
        false_transitional=sum(1 for r in main if r["truth_kind"] is None and r["kind"] is not None),
        ambiguous_cases=sum(r["group"] == "ambiguous" for r in rows),
        ambiguous_correct=sum(r["vertebrae_correct"] for r in rows if r["group"] == "ambiguous"),
        flips=dict(
            cases=flips["cases"], restored_variants=flips["variants"], left_right_errors=len(flips["errors"])
        ),
        label_levels_seconds_median=float(np.median(t_label)),
    )
    return dict(summary=summary, flip_errors=flips["errors"], cases=rows)


def morphometry_benchmark(cases: int = 10, spacing: float = 1.0, seed: int = 200) -> dict:
    from spineai.levels.morphometry import measure_morphometry
    from spineai.phantom import generate_ct_phantom
    from spineai.phantom.morphometry import morphometry_truth

    levels = ["L4-L5", "L5-S1"]
    per: dict[str, list] = {}
    not_enclosed = 0
    for s in range(seed, seed + cases):
        case = generate_ct_phantom(s, spacing_mm=spacing, progress=False, fov_levels=("L4", "L5", "S1"))
        truth = morphometry_truth(case.anatomy, levels)
        m = measure_morphometry(case.labels, levels=levels)
        for lv in levels:
            t, g = truth[lv], m.get(lv)
            pairs = [
                (f"disc_{k}", t["disc_height_mm"][k], g.disc_height_mm.get(k)) for k in t["disc_height_mm"]
            ]
            pairs += [
                ("canal_area_mm2", t["canal_area_mm2"], g.canal_area_mm2),
                ("canal_ap_mm", t["canal_ap_mm"], g.canal_ap_mm),
            ]
            for side in ("left", "right"):
                both_open = t["foramen"][side].get("status") != "ok" and g.foramen[side].get("status") != "ok"
                if both_open:
                    not_enclosed += 1
                else:
                    for k in ("height_mm", "width_mm", "area_mm2"):
                        pairs.append((f"foramen_{k}", t["foramen"][side].get(k), g.foramen[side].get(k)))
                pairs.append(
                    (
                        "lateral_recess_depth_mm",
                        t["lateral_recess_depth_mm"][side],
                        g.lateral_recess_depth_mm[side],
                    )
                )
            for name, tv, gv in pairs:
                ok = (
                    tv is not None
                    and gv is not None
                    and (abs(gv - tv) <= 1.0 or abs(gv - tv) <= 0.1 * abs(tv))
                )
                per.setdefault(name, []).append((ok, None if tv is None or gv is None else gv - tv))
        print(f"morphometry seed {s}: done", flush=True)
    table = {}
    for name, v in per.items():
        d = [e for _, e in v if e is not None]
        table[name] = dict(
            n=len(v),
            within=sum(o for o, _ in v) / len(v),
            bias=float(np.mean(d)) if d else None,
            max_abs=float(np.max(np.abs(d))) if d else None,
        )
    total = sum(len(v) for v in per.values())
    good = sum(o for v in per.values() for o, _ in v)
    return dict(
        spacing_mm=spacing,
        cases=cases,
        measurements=total,
        within_1mm_or_10pct=good / total,
        foramina_not_enclosed_in_both=not_enclosed,
        per_measure=table,
    )


def real_benchmark() -> dict:
    from spineai import io
    from spineai.errors import InputError
    from spineai.levels import label_levels
    from spineai.phantom.scramble import level_agreement, scramble_level_labels

    out: dict = {}
    v = DATA / "verse014"
    if v.is_dir():
        ref = io.read_labelmap(v / "sub-verse014_seg-vert_msk.nii.gz", mapping="verse").canonical().image
        r = label_levels(scramble_level_labels(ref, 1), ct=v / "sub-verse014_ct.nii.gz")
        out["verse014"] = dict(
            names=r.names,
            agree=level_agreement(ref, r.labelmap.image)["vertebrae_correct"],
            anchor=r.anchor["method"],
            castellvi=r.transitional.get("castellvi_type"),
        )
    t = DATA / "tptbox_l2_l4"
    if t.is_dir():
        ref = (
            io.read_labelmap(t / "sub-ct_seg-vert_label-22_msk.nii.gz", mapping="tptbox_vertebra")
            .canonical()
            .image
        )
        ct = t / "sub-ct_label-22_ct.nii.gz"
        try:
            label_levels(ref, ct=ct)
            refused = False
        except InputError:
            refused = True
        r = label_levels(scramble_level_labels(ref, 1), ct=ct, override="lowest=L4")
        out["tptbox_l2_l4"] = dict(
            refused_without_override=refused,
            names_with_override=r.names,
            agree=level_agreement(ref, r.labelmap.image)["vertebrae_correct"],
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", nargs="?", default="labels", choices=("labels", "morphometry", "real", "all"))
    p.add_argument("--flip-every", type=int, default=4)
    p.add_argument("--cases", type=int, default=10)
    p.add_argument("--spacing", type=float, default=1.0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    out: dict = {}
    if args.task in ("labels", "all"):
        out["labels"] = labels_benchmark(args.flip_every)
        print(json.dumps(out["labels"]["summary"], indent=2))
        for e in out["labels"]["flip_errors"]:
            print("  L/R error:", e)
    if args.task in ("morphometry", "all"):
        out["morphometry"] = morphometry_benchmark(args.cases, args.spacing)
        print(json.dumps({k: v for k, v in out["morphometry"].items()}, indent=2))
    if args.task in ("real", "all"):
        out["real"] = real_benchmark()
        print(json.dumps(out["real"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
