"""Figures of a CT segmentation model on a hard phantom test set: Dice, level labels, triangle agreement.

The test set (seeds 3000.., never used for training, which uses seeds 1000-1227) mixes ordinary cases
with the hard ones named in docs/segmentation.md: foraminal stenosis, a high iliac crest, anisotropic
0.7 x 0.7 x 3 mm spacing and a strongly rotated pose. For each case it reports

* Dice per structure and the paper's bone / nerve Dice (``spineai evaluate segmentation``);
* whether every vertebra got its own level label (the predicted component of each true vertebra carries
  the right name, and no vertebra label lands mostly on another vertebra);
* Kambin's and safe-triangle areas measured on the segmentation vs on the truth masks
  (``spineai evaluate triangles``: paired t-test, ICC).

Usage::

    python benchmarks/eval_segmentation_phantoms.py --work seg-eval [--weights W] [--json seg-eval/figures.json]
        [--mirror-tta]

Not part of the test suite (minutes per case on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

#: (name, seed, overrides) of the hard test set
CASES: tuple[tuple[str, int, dict], ...] = (
    ("ordinary_a", 3000, {}),
    ("ordinary_b", 3001, {}),
    ("ordinary_c", 3002, {}),
    ("ordinary_d", 3003, {}),
    ("stenosis_l5s1_left", 3004, {"stenoses": "L5-S1/left/0.8"}),
    ("stenosis_l4l5_right", 3005, {"stenoses": "L4-L5/right/0.9"}),
    ("high_iliac_crest_a", 3006, {"iliac_crest_height_mm": 60.0}),
    ("high_iliac_crest_b", 3007, {"iliac_crest_height_mm": 58.0}),
    ("anisotropic_a", 3008, {"spacing_mm": (0.7, 0.7, 3.0)}),
    ("anisotropic_b", 3009, {"spacing_mm": (0.7, 0.7, 3.0)}),
    ("rotated_a", 3010, {"pose_rotation_deg": (14.0, -14.0, 12.0)}),
    ("rotated_b", 3011, {"pose_rotation_deg": (-14.0, 12.0, -14.0)}),
)


def _overrides(raw: dict) -> dict:
    from spineai.phantom.params import Stenosis

    out = dict(raw)
    if "stenoses" in out:
        level, side, severity = out["stenoses"].split("/")
        out["stenoses"] = (Stenosis(level, side, float(severity)),)
    return out


def write_test_set(folder: Path) -> None:
    """Write the hard phantom test set into ``folder`` (one case folder each; existing cases are kept)."""
    from spineai.phantom import generate_ct_phantom, write_phantom_case

    folder.mkdir(parents=True, exist_ok=True)
    for name, seed, raw in CASES:
        case_dir = folder / name
        if (case_dir / "labels.json").is_file():
            continue
        write_phantom_case(
            generate_ct_phantom(seed, progress=False, **_overrides(raw)), case_dir, overwrite=True
        )


def level_labels_correct(pred: np.ndarray, true: np.ndarray, vertebrae: dict[str, int]) -> dict:
    """Whether each true vertebra is labelled with its own name (majority of its voxels) and vice versa."""
    wrong: list[str] = []
    for name, value in vertebrae.items():
        in_true = true == value
        if not in_true.any():
            continue
        values, counts = np.unique(pred[in_true], return_counts=True)
        names = {v: n for n, v in vertebrae.items()}
        bone = [(c, v) for v, c in zip(values, counts, strict=True) if v in names]
        if not bone or max(bone)[1] != value:
            got = names.get(max(bone)[1], "none") if bone else "none"
            wrong.append(f"{name} labelled {got}")
    return {"correct": not wrong, "errors": wrong}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True, help="folder for the test set and reports")
    parser.add_argument("--weights", type=Path, default=None, help="weights (default: the shipped model)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=None, help="figures (default WORK/figures.json)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse WORK/segmentation.json of an earlier run of the same weights",
    )
    parser.add_argument(
        "--mirror-tta", action="store_true", help="segment with left-right test-time augmentation"
    )
    args = parser.parse_args(argv)

    import SimpleITK as sitk

    from spineai import anatomy
    from spineai.planning.agreement import evaluate_triangle_agreement, format_agreement
    from spineai.segmentation.data import read_canonical_labels
    from spineai.segmentation.metrics import evaluate_segmentation, format_table

    data = args.work / "phantoms"
    write_test_set(data)
    seg_json = args.work / "segmentation.json"
    if args.reuse and seg_json.is_file():
        report = json.loads(seg_json.read_text())
    else:
        report = evaluate_segmentation(
            data,
            weights=args.weights,
            device=args.device,
            json_out=seg_json,
            overwrite=True,
            mirror_tta=args.mirror_tta,
        )
    print(format_table(report["summary"]["structures"]))
    print(format_table(report["summary"]["three_class"]))

    # level labels: segment again is wasteful; the evaluation kept no arrays, so compare on saved labels
    from spineai.segmentation.inference import load_segmentation_model, segment

    loaded = load_segmentation_model(args.weights, args.device)
    from spineai.errors import InputError
    from spineai.levels import label_levels

    vertebrae = {
        n: anatomy.structure(n).label
        for n in loaded.class_names[1:]  # [0] is background
        if anatomy.structure(n).kind in ("vertebra", "sacrum")
    }
    levels, numbered = {}, {}
    for name, _seed, _raw in CASES:
        seg = segment(data / name / "ct.nii.gz", model=loaded, mirror_tta=args.mirror_tta)
        truth = sitk.GetArrayFromImage(read_canonical_labels(data / name / "labels.nii.gz"))
        levels[name] = level_labels_correct(sitk.GetArrayFromImage(seg.labels), truth, vertebrae)
        # what every measurement uses: the model's vertebrae renumbered from the sacrum (spineai levels)
        try:
            result = label_levels(seg.labels, ct=data / name / "ct.nii.gz")
            relabelled = sitk.GetArrayFromImage(result.labelmap.canonical().image)
            numbered[name] = level_labels_correct(relabelled, truth, vertebrae)
            numbered[name]["flagged"] = bool(result.flagged)
        except InputError as exc:
            numbered[name] = {
                "correct": False,
                "errors": [f"numbering refused: {exc.problem}"],
                "flagged": True,
            }
        print(
            f"{name}: model labels {'correct' if levels[name]['correct'] else levels[name]['errors']}; "
            f"after numbering {'correct' if numbered[name]['correct'] else numbered[name]['errors']}"
        )
    agreement = evaluate_triangle_agreement(
        data,
        weights=args.weights,
        device=args.device,
        json_out=args.work / "triangles.json",
        overwrite=True,
        mirror_tta=args.mirror_tta,
    )
    print(format_agreement(agreement["summary"]))
    three = report["summary"]["three_class"]
    figures = {
        "cases": [c[0] for c in CASES],
        "mirror_tta": bool(args.mirror_tta),
        "dice_bone": three["bone"]["dice"],
        "dice_nerve": three["nerve"]["dice"],
        "dice_per_structure": {n: s["dice"] for n, s in report["summary"]["structures"].items()},
        "levels_correct_fraction": float(np.mean([v["correct"] for v in levels.values()])),
        "levels": levels,
        "levels_after_numbering_correct_fraction": float(np.mean([v["correct"] for v in numbered.values()])),
        "levels_after_numbering": numbered,
        "triangle_agreement": agreement["summary"],
        "unpaired_foramina": {c["case"]: c["unpaired"] for c in agreement["cases"] if c["unpaired"]},
    }
    out = args.json or args.work / "figures.json"
    out.write_text(json.dumps(figures, indent=2))
    print(
        f"bone Dice {three['bone']['dice']['mean']:.3f}, nerve Dice {three['nerve']['dice']['mean']:.3f}, "
        f"levels correct {100 * figures['levels_correct_fraction']:.0f}% (model), "
        f"{100 * figures['levels_after_numbering_correct_fraction']:.0f}% (after numbering) -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
