"""``spineai demo``: the whole pipeline on a generated phantom, with the shipped weights.

Writes into a new folder (never into one that holds files, unless ``overwrite``) and returns a summary
of what it wrote and measured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .outputs import prepare_output_dir


@dataclass
class DemoSummary:
    """What the demo wrote and measured.

    Attributes:
        out: the output folder.
        files: output name -> path.
        lines: human-readable result lines (areas in mm2, Dice, ...).
        results: machine-readable results per step (``segmentation``: Dice; ``planning``: measurements).
    """

    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """The summary printed by ``spineai demo``."""
        out = [f"SpineAI demo results in {self.out.resolve()}"]
        out += [f"  {name:<22} {path}" for name, path in self.files.items()]
        out += [""] + self.lines if self.lines else []
        out.append("Research use only; not for clinical decisions.")
        return "\n".join(out)


def new_demo_folder(base: str | os.PathLike = "spineai-demo") -> Path:
    """A folder name that does not exist yet or is empty: ``base``, ``base-2``, ``base-3``, ..."""
    base = Path(base)
    candidate, n = base, 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _triangle_lines(truth: dict) -> list[str]:
    lines = ["Ground-truth triangles of the phantom (true area in mm2; standard 25 deg oblique view):"]
    for level, sides in truth.get("triangles", {}).items():
        for side, tri in sides.items():
            parts = []
            for kind in ("kambin", "safe"):
                if kind not in tri:
                    continue
                t = tri[kind]
                view = t.get("standard_view", {})
                if view.get("visible", True):
                    state = "open"
                else:
                    blockers = ", ".join(view.get("blocking_structures", [])) or "bone"
                    state = f"hidden by {blockers} ({100 * (1 - view.get('visible_fraction', 0)):.0f}%)"
                parts.append(f"{kind} {t['area_mm2']:5.1f} [{state}]")
            lines.append(f"  {level} {side:<5}: " + "; ".join(parts))
    return lines


def _installed(model_name: str) -> bool:
    """Whether the shipped model ``model_name`` (card + weights) is installed."""
    from .weights import MODELS_DIR

    return (MODELS_DIR / f"{model_name}.json").is_file() and (
        MODELS_DIR / f"{model_name}.safetensors"
    ).is_file()


def _segmentation_lines(pred: Any, case: Any) -> tuple[list[str], dict[str, Any]]:
    """Dice of the predicted label map against the phantom's truth (per structure and bone/nerve)."""
    import numpy as np
    import SimpleITK as sitk

    from . import anatomy
    from .segmentation.metrics import label_map_scores, three_class_scores

    pred_a = sitk.GetArrayFromImage(pred)
    true_a = sitk.GetArrayFromImage(case.labels)
    present = set(np.unique(true_a).tolist())
    names = {s.name: s.label for s in anatomy.STRUCTURES if s.label in present and s.label != 0}
    scores = label_map_scores(pred_a, true_a, names, case.labels.GetSpacing(), distances=False)
    three = three_class_scores(pred_a, true_a, case.labels.GetSpacing(), distances=False)
    dice = {n: s["dice"] for n, s in scores.items() if s["dice"] is not None}
    lines = ["CT segmentation with the shipped model, Dice against the phantom's truth:"]
    for group in ("bone", "nerve"):
        if group in three and three[group].get("dice") is not None:
            lines.append(f"  {group:<6} (paper's 3-class map) {three[group]['dice']:.3f}")
    row = ", ".join(f"{n} {d:.2f}" for n, d in dice.items())
    lines.append(f"  per structure: {row}")
    lines.append(f"  mean over {len(dice)} structures {float(np.mean(list(dice.values()))):.3f}")
    return lines, {"dice": dice, "three_class": {k: v.get("dice") for k, v in three.items()}}


def _planning_lines(result: Any, truth: dict, source: str) -> list[str]:
    """Areas, best C-arm view, needle path and clearances per foramen, beside the phantom's truth."""
    lines = [f"Triangles, best C-arm view and needle path (measured on the {source}):"]
    for fm in result.foramina:
        if not fm.ok:
            lines.append(f"  {fm.level} {fm.side:<5}: not measured ({fm.message})")
            continue
        parts = []
        for kind, tri in fm.triangles.items():
            true_area = (
                truth.get("triangles", {}).get(fm.level, {}).get(fm.side, {}).get(kind, {}).get("area_mm2")
            )
            ref = f" (truth {true_area:.1f})" if true_area is not None else ""
            text = f"{kind} {tri.area_mm2:5.1f} mm2{ref}"
            if tri.best_view is not None and tri.standard_view is not None:
                std, best = tri.standard_view, tri.best_view
                text += (
                    f"; standard view: {std.window.window_mm2:.1f} of {std.area_mm2:.1f} mm2 reachable; "
                    f"best view oblique {best.oblique_deg:.0f} deg, tilt {best.tilt_deg:+.0f} deg: "
                    f"{best.window.window_mm2:.1f} of {best.area_mm2:.1f} mm2"
                )
            parts.append(text)
        lines.append(f"  {fm.level} {fm.side}:")
        lines += [f"      {p}" for p in parts]
        path = fm.paths.get(fm.recommended) if fm.recommended else None
        if path is not None:
            reach = "reaches" if path.reaches_with_standard_needle else "does NOT reach"
            lines.append(
                f"      needle ({fm.recommended}): {path.length_mm:.0f} mm ({reach} with a 90 mm needle), "
                f"clearance nerve {path.min_distance_nerve_mm:.1f} mm / bone {path.min_distance_bone_mm:.1f} mm, "
                f"{'safe' if path.safe else 'NOT safe'}"
            )
    return lines


def _outcome_step(folder: Path, seed: int, overwrite: bool) -> tuple[list[str], dict[str, Path]]:
    """Synthetic sagittal T2 -> probability of a good tESI outcome with its Grad-CAM, beside the phantom's truth."""
    from .io import write_image
    from .outcome.mri_phantom import generate_sagittal_t2
    from .outcome.predict import predict_outcome

    case = generate_sagittal_t2(seed)
    mri_dir = folder / "mri"
    mri_dir.mkdir(exist_ok=True)
    files = {"sagittal T2": write_image(case.image, mri_dir / "sagittal_t2.nii.gz", overwrite=overwrite)}
    result = predict_outcome(case.image)
    files.update(
        {f"outcome {k}": Path(v) for k, v in result.save(folder / "outcome", overwrite=overwrite).items()}
    )
    truth = case.truth["outcome"]
    drivers = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in truth.get("drivers", {}).items())
    lines = [
        "tESI outcome from the sagittal T2 phantom (model trained on synthetic data only):",
        f"  probability of a good outcome (>= 50% NRS-11 reduction at 2 months) {result.probability_good:.2f} "
        f"(threshold {result.threshold:.2f}: {'good' if result.predicted_good else 'poor'} outcome predicted)",
        f"  phantom truth: generative probability {truth['p_good']:.2f} ({drivers}); drawn outcome "
        f"{'good' if truth['good_outcome'] else 'poor'}",
    ]
    return lines, files


def _axial_step(folder: Path, seed: int, overwrite: bool) -> tuple[list[str], dict[str, Path]]:
    """Axial T2 phantom slice -> LDH, LCCS and LNRC grades with Grad-CAM pictures, beside the phantom's truth."""
    from .grading.axial import generate_axial_t2, grade_axial
    from .io import write_image

    case = generate_axial_t2(seed)
    mri_dir = folder / "mri"  # shared with the outcome step; files are still never overwritten silently
    mri_dir.mkdir(exist_ok=True)
    files = {"axial T2": write_image(case.image, mri_dir / "axial_t2.nii.gz", overwrite=overwrite)}
    result = grade_axial(case.image)
    files.update(
        {
            f"axial {k}": Path(v)
            for k, v in result.write(folder / "axial_grading", overwrite=overwrite).items()
        }
    )
    truth = case.truth["grades"]
    row = ", ".join(f"{t.upper()} {result.grades[t]} (truth {truth[t]})" for t in ("ldh", "lccs", "lnrc"))
    return [
        "Axial T2 phantom slice graded (model trained on synthetic data only; grades 0-3):",
        f"  {row}",
    ], files


def _radiograph_step(folder: Path, seed: int, overwrite: bool) -> tuple[list[str], dict[str, Path]]:
    """A synthetic lateral radiograph (DRR of the phantom) read by the shipped disc-crops model, beside its truth."""
    import numpy as np

    from .outputs import atomic_path
    from .radiograph.discs import project_disc_centres
    from .radiograph.network import LEVELS
    from .radiograph.phantom import _png_bytes, render_radiograph_patient
    from .radiograph.predict import read_radiograph

    case = render_radiograph_patient(int(seed), views=("lateral",))
    png = folder / "phantom" / "radiograph_lateral.png"
    with atomic_path(png, overwrite) as tmp:
        tmp.write_bytes(_png_bytes(case.images["lateral"]))
    result = read_radiograph(case.images["lateral"], pixel_mm=case.pixel_mm)
    files = {"radiograph (phantom)": png}
    files.update(
        {
            f"radiograph {k}": Path(v)
            for k, v in result.save(folder / "radiograph", overwrite=overwrite).items()
        }
    )
    g = case.truth["image"]
    true_rc = project_disc_centres(
        case.truth["disc_centres_lps_mm"], "lateral", g["centre_lps_mm"], g["pixel_mm"], g["image_px"]
    )
    lines = ["Lateral radiograph of the phantom (DRR) read per disc (model trained on synthetic data only):"]
    for k, lv in enumerate(LEVELS):
        d = result.discs[k] if result.discs else None
        where = ""
        if d is not None:
            err = float(np.hypot(d["row"] - true_rc[k, 0], d["column"] - true_rc[k, 1])) * case.pixel_mm
            where = f"; disc located {err:.1f} mm from its true centre (confidence {d['confidence']:.2f})"
        truth = "herniated" if case.truth["levels"][lv]["hnp"] else "intact"
        call = "herniation" if result.predicted[lv] else "no herniation"
        lines.append(f"  {lv}: P = {result.probabilities[lv]:.2f} -> {call} (phantom truth: {truth}){where}")
    return lines, files


def _levels_lines(labels: Any, ct: Any, source: str) -> list[str]:
    """Vertebra numbering from the sacrum with confidence and the transitional assessment (never silent)."""
    from .errors import InputError
    from .levels import label_levels

    try:
        result = label_levels(labels, ct=ct)
    except InputError as exc:
        return [f"Level labelling of the {source}: not possible ({exc})"]
    names = ", ".join(f"{v.name} {v.confidence:.2f}" for v in result.vertebrae)
    castellvi = result.transitional.get("castellvi_type")
    lines = [
        f"Levels of the {source}, numbered from the {result.anchor.get('method', 'sacrum')} (confidence): {names}",
        f"  lumbosacral junction: Castellvi type {castellvi if castellvi is not None else 'not assessable'}"
        + (f" ({result.transitional['kind']})" if result.transitional.get("kind") else ""),
    ]
    flagged = [f"{v.name}: {', '.join(v.flags)}" for v in result.vertebrae if v.flags]
    lines += [f"  flagged: {'; '.join(flagged)}"] if flagged else []
    lines += [f"  warning: {w}" for w in result.warnings]
    return lines


def run_demo(
    out: str | os.PathLike | None = None,
    seed: int = 7,
    overwrite: bool = False,
    device: str = "auto",
) -> DemoSummary:
    """Generate a phantom CT and run every available step on it.

    Steps: phantom (CT, truth labels, ground-truth triangles, picture) -> CT segmentation with the shipped
    model and its Dice against the truth -> triangles, best C-arm view and needle path measured on that
    segmentation (Slicer markups, table, C-arm pictures, 3D rendering) -> a synthetic sagittal T2 and the
    probability of a good injection outcome with its Grad-CAM heat map -> an axial T2 slice graded for
    LDH, LCCS and LNRC with Grad-CAM pictures -> a lateral radiograph of the phantom (DRR) read per disc
    (located discs, five herniation probabilities, Grad-CAM). A step whose model is not installed
    is reported as skipped; planning then uses the phantom's truth label map and says so.

    Args:
        out: output folder; default a new ``./spineai-demo[-N]``.
        seed: phantom seed (the same seed gives the same case).
        overwrite: allow writing into an existing non-empty ``out``.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` for the networks.
    """
    from .phantom import generate_ct_phantom, write_phantom_case
    from .pictures import orthogonal_slices_png
    from .progress import report

    folder = prepare_output_dir(out if out is not None else new_demo_folder(), overwrite=overwrite)
    summary = DemoSummary(out=folder)

    report(2.0, "generating the phantom CT")
    case = generate_ct_phantom(seed)
    written = write_phantom_case(case, folder / "phantom", overwrite=overwrite)
    summary.files.update({f"phantom {k}": Path(v) for k, v in written.items()})
    summary.files["picture"] = orthogonal_slices_png(
        case.image,
        folder / "phantom_slices.png",
        labels=case.labels,
        title=f"SpineAI phantom (seed {seed}): CT with ground-truth labels",
        overwrite=overwrite,
    )
    summary.lines += _triangle_lines(case.truth)

    labels, source = case.labels, "phantom's ground-truth label map"
    if _installed("spinect_ct_demo"):
        from .segmentation.inference import segment

        report(10.0, "segmenting the phantom CT")
        seg = segment(case.image, device=device)
        seg_files = seg.save(folder / "segmentation", overwrite=overwrite)
        summary.files.update({f"segmentation {k}": Path(v) for k, v in seg_files.items()})
        summary.files["segmentation picture"] = orthogonal_slices_png(
            case.image,
            folder / "segmentation_slices.png",
            labels=seg.labels,
            title=f"SpineAI phantom (seed {seed}): CT with the model's segmentation",
            overwrite=overwrite,
        )
        lines, scores = _segmentation_lines(seg.labels, case)
        summary.lines += [""] + lines + [f"  warning: {w}" for w in seg.warnings]
        summary.results["segmentation"] = scores
        labels, source = seg.labels, "model's segmentation"
    else:
        summary.lines += [
            "",
            "CT segmentation skipped: the shipped CT model 'spinect_ct_demo' is not installed "
            "(train it with 'python benchmarks/train_demo_segmentation.py --install').",
        ]

    summary.lines += [""] + _levels_lines(labels, case.image, source)

    from .planning.case import plan_case, write_case_outputs

    report(60.0, "measuring triangles, searching views, planning needles")
    result = plan_case(labels, ct=case.image)
    plan_files = write_case_outputs(result, folder / "planning", overwrite=overwrite)
    summary.files.update({f"planning {k}": Path(v) for k, v in plan_files.items()})
    summary.lines += [""] + _planning_lines(result, case.truth, source)
    summary.lines += [f"  note: {w}" for w in result.warnings]
    summary.results["planning"] = result.to_dict()

    from .radiograph.predict import DEFAULT_MODEL as RADIOGRAPH_MODEL

    # steps that need a shipped model: (model, progress %, progress message, step name, step)
    optional_steps = (
        ("outcome_demo", 85.0, "predicting the injection outcome from a sagittal T2 phantom", "Outcome prediction",
         _outcome_step),
        ("axial_grader_demo", 92.0, "grading an axial T2 phantom slice", "Axial grading", _axial_step),
        (RADIOGRAPH_MODEL, 96.0, "reading a phantom radiograph per disc", "Radiograph reading", _radiograph_step),
    )  # fmt: skip
    for model_name, percent, message, step_name, step in optional_steps:
        if _installed(model_name):
            report(percent, message)
            lines, files = step(folder, seed, overwrite)
            summary.lines += [""] + lines
            summary.files.update(files)
        else:
            summary.lines += ["", f"{step_name} skipped: the shipped model '{model_name}' is not installed."]
    report(100.0, "demo done")
    return summary
