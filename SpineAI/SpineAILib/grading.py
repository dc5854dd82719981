"""The grading, outcome and radiograph commands the Grading module can show, as a small registry.

Each :class:`GradingCommand` says which engine command to run (``spineai grade sagittal``), which model
family it needs (``SpineAILib.tables.GRADING_FAMILIES``), the options a panel may offer, and which output
files hold its table, its summary and its Grad-CAM heat maps. A panel appears only when

1. the engine's command line has the command (see :mod:`SpineAILib.commands`), and
2. a model of its family is installed (shipped with the engine or loaded as site weights).

Options are offered only when the command's own ``--help`` lists their flag, so an engine that grows or
drops an option never receives one it does not know. A new command (axial grading, stenosis, radiograph)
needs one registry entry.

Every panel runs the model chosen in it; the engine's shipped models (the radiograph panel's
``radiograph_hnp_demo``, a disc locator with a per-level crop reader trained on synthetic radiographs only) are
installed models like any other, so no panel needs site weights. The radiograph panel also passes the pixel
size (``--pixel-mm``) that sizes the reader's 72 mm disc crops: typed by the user, else taken from the
volume's spacing when that is known (:func:`radiograph_pixel_mm`). A picture (PNG/JPEG/...) carries no pixel
size, and Slicer gives it 1 mm: such a volume is handed to the engine as a picture
(:func:`write_picture_input`), so that the engine estimates the pixel size from the located discs (with a
warning) instead of taking 1 mm for the truth.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engine import EngineCommand, _engine_env, offers_option, option_help
from .tables import TableData, grading_family, key_value_table, read_tsv


@dataclass(frozen=True)
class OptionSpec:
    """One command-line option a panel offers.

    Attributes:
        key: parameter name (stored in the scene's parameter node).
        flag: the option, e.g. ``"--gradcam"``.
        kind: ``"bool"`` (a flag without value), ``"choice"`` (one of ``choices``), ``"number"`` (a finite
            positive number, e.g. a pixel size in mm; empty for none) or ``"text"``.
        label: what the panel calls it.
        default: the value a new panel starts with (``bool`` for a flag, else text).
        choices: the values of a ``"choice"`` option.
    """

    key: str
    flag: str
    kind: str
    label: str
    default: str | bool = ""
    choices: tuple[str, ...] = ()

    def argv(self, value: Any) -> list[str]:
        """The command-line words for ``value`` ([] for an unset flag or empty text).

        Raises:
            ValueError: a choice outside ``choices``; a number that is not a finite positive number.
        """
        if self.kind == "bool":
            return [self.flag] if _as_bool(value) else []
        text = str(value if value is not None else "").strip()
        if not text:
            return []
        if self.kind == "choice" and text not in self.choices:
            raise ValueError(f"{self.label} '{text}' is not one of {', '.join(self.choices)}.")
        if self.kind == "number":
            try:
                number = float(text)
            except ValueError:
                number = float("nan")
            if not (math.isfinite(number) and number > 0):
                raise ValueError(
                    f"{self.label} '{text}' is not a positive number: type e.g. 0.15, or leave it empty."
                )
        return [f"{self.flag}={text}"]


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


@dataclass(frozen=True)
class GradingCommand:
    """One engine command shown as a panel.

    Attributes:
        key: short name (``"sagittal"``), also the panel's object name suffix.
        command: the command words after ``spineai`` (``("grade", "sagittal")``).
        title: panel title.
        family: model family key (``tables.GRADING_FAMILIES``) whose models it runs.
        input_description: what the input volume must be.
        table_files: file-name patterns of its per-item table (TSV), first match wins.
        summary_files: file-name patterns of its JSON summary, first match wins.
        heatmap_files: file-name patterns of its Grad-CAM volumes (on the input's geometry).
        options: what the panel may offer (each only if the command's ``--help`` lists the flag).
        output_flag, weights_flag: how the command takes its output folder and the model weights.
    """

    key: str
    command: tuple[str, ...]
    title: str
    family: str
    input_description: str
    table_files: tuple[str, ...] = ()
    summary_files: tuple[str, ...] = ()
    heatmap_files: tuple[str, ...] = ("gradcam*.nii.gz", "gradcam*.nrrd")
    options: tuple[OptionSpec, ...] = field(default_factory=tuple)
    output_flag: str = "-o"
    weights_flag: str = "--weights"

    @property
    def name(self) -> str:
        """The command as typed: ``"grade sagittal"``."""
        return " ".join(self.command)


_SAGITTAL_GRADINGS = (
    "pfirrmann",
    "modic",
    "up_endplate",
    "low_endplate",
    "spondylolisthesis",
    "herniation",
    "narrowing",
    "bulging",
    "all",
    "none",
)

#: the radiograph panel's pixel-size option (``--pixel-mm``): empty = from the volume's spacing when known
PIXEL_MM_OPTION = "pixelMm"
#: files that carry no pixel size: Slicer gives such a volume 1 mm spacing
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")

#: every command a panel can exist for (a panel appears only for those the engine has, with a model)
GRADING_COMMANDS: tuple[GradingCommand, ...] = (
    GradingCommand(
        key="sagittal",
        command=("grade", "sagittal"),
        title="Sagittal MRI disc grading (Pfirrmann, Modic, herniation, ...)",
        family="sagittal",
        input_description="a sagittal T2-weighted lumbar MRI (the mid-sagittal slice is graded)",
        table_files=("grades.tsv",),
        summary_files=("grades.json",),
        options=(
            OptionSpec("gradcam", "--gradcam", "choice", "Grad-CAM of", "pfirrmann", _SAGITTAL_GRADINGS),
            OptionSpec("allowMissingL5S1", "--allow-missing-l5s1", "bool", "Grade without L5/S1", False),
        ),
    ),
    GradingCommand(
        key="outcome",
        command=("outcome",),
        title="tESI outcome (sagittal T2)",
        family="outcome",
        input_description="a sagittal T2-weighted lumbar MRI volume (at least 13 sagittal slices)",
        summary_files=("outcome.json",),
        options=(
            OptionSpec(
                "gradcamClass",
                "--gradcam-class",
                "choice",
                "Grad-CAM of",
                "predicted",
                ("predicted", "poor", "good"),
            ),
            OptionSpec("device", "--device", "choice", "Device", "cpu", ("cpu", "cuda")),
        ),
    ),
    GradingCommand(
        key="axial",
        command=("grade", "axial"),
        title="Axial MRI grading (LDH, LCCS, LNRC)",
        family="axial",
        input_description="an axial T2-weighted lumbar MRI slice at a disc level, or an axial volume",
        table_files=("grades.tsv", "*.tsv"),
        summary_files=("grades.json", "*.json"),
        options=(OptionSpec("device", "--device", "choice", "Device", "cpu", ("cpu", "cuda")),),
    ),
    GradingCommand(
        key="stenosis",
        command=("grade", "stenosis"),
        title="Stenosis detection and grading",
        family="stenosis",
        input_description="an axial T2-weighted lumbar MRI slice at a disc level",
        table_files=("stenosis.tsv", "*.tsv"),
        summary_files=("stenosis.json", "*.json"),
        options=(OptionSpec("device", "--device", "choice", "Device", "cpu", ("cpu", "cuda")),),
    ),
    GradingCommand(
        key="radiograph",
        command=("radiograph",),
        title="Herniation from radiographs (per level, read disc by disc)",
        family="radiograph",
        input_description=(
            "a lumbar radiograph (AP, lateral or oblique; one grey-level image). The shipped model finds the "
            "five discs, then reads a 72 mm crop around each (trained on synthetic radiographs only)"
        ),
        table_files=("radiograph.tsv", "*.tsv"),
        summary_files=("radiograph.json", "*.json"),
        options=(
            OptionSpec(
                "gradcamLevel",
                "--gradcam-level",
                "choice",
                "Grad-CAM of",
                "max",
                ("max", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"),
            ),
            OptionSpec(PIXEL_MM_OPTION, "--pixel-mm", "number", "Pixel size (mm)", ""),
            OptionSpec("device", "--device", "choice", "Device", "cpu", ("cpu", "cuda")),
        ),
    ),
)


def command_by_key(key: str) -> GradingCommand:
    """The registry entry ``key`` (``"sagittal"``, ``"outcome"``, ...)."""
    for entry in GRADING_COMMANDS:
        if entry.key == key:
            return entry
    raise KeyError(f"No grading command '{key}'; known: {', '.join(e.key for e in GRADING_COMMANDS)}.")


def models_for(entry: GradingCommand, installed: Iterable[Any]) -> list[Any]:
    """The installed models (``InstalledModel`` or cards with ``task``) of the entry's family."""
    out = []
    for item in installed:
        card = getattr(item, "card", item)
        task = card.get("task", "") if isinstance(card, Mapping) else getattr(card, "task", "")
        if grading_family(str(task)) == entry.family:
            out.append(item)
    return out


@dataclass(frozen=True)
class PanelPlan:
    """What the Grading module shows for one registry entry.

    Attributes:
        entry: the registry entry.
        models: installed models it can run (empty when ``available`` is False).
        options: the options the engine's command accepts.
        available: a panel is shown.
        reason: why not, in plain words ("" when available).
    """

    entry: GradingCommand
    models: tuple[Any, ...]
    options: tuple[OptionSpec, ...]
    available: bool
    reason: str = ""


def plan_panels(
    engine_commands: Mapping[str, str],
    installed: Sequence[Any],
    registry: Sequence[GradingCommand] = GRADING_COMMANDS,
) -> list[PanelPlan]:
    """One :class:`PanelPlan` per registry entry, in registry order.

    Args:
        engine_commands: ``{command path: --help text}`` of the engine (:mod:`SpineAILib.commands`).
        installed: installed models (shipped and site), e.g. ``SpineAILib.models.installed_models()``.
    """
    plans = []
    for entry in registry:
        help_text = engine_commands.get(entry.name)
        if help_text is None:
            plans.append(
                PanelPlan(entry, (), (), False, f"This engine has no 'spineai {entry.name}' command yet.")
            )
            continue
        found = tuple(models_for(entry, installed))
        options = tuple(o for o in entry.options if offers_option(help_text, o.flag))
        if not found:
            plans.append(
                PanelPlan(
                    entry,
                    (),
                    options,
                    False,
                    f"'spineai {entry.name}' is available but no {entry.family} model is installed: ship one "
                    "with the engine, or train one with 'spineai train ...' and load it in the SpineAI module.",
                )
            )
            continue
        plans.append(PanelPlan(entry, found, options, True))
    return plans


def build_command(
    entry: GradingCommand,
    input_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    options: Mapping[str, Any] | None = None,
    offered: Sequence[OptionSpec] | None = None,
    python: str | None = None,
    root: str | os.PathLike | None = None,
) -> EngineCommand:
    """The command line of one panel run.

    Args:
        entry: the registry entry.
        input_path: the input image the module wrote (NRRD).
        output_dir: new folder for the outputs.
        weights: ``.safetensors`` with its card beside it; ``None``: the engine's default model.
        options: ``{option key: value}``; options not in ``offered`` are not passed.
        offered: the options the engine accepts (default: all of the entry's).

    Raises:
        ValueError: an unknown option key, or a choice outside its values.
    """
    allowed = {o.key: o for o in (entry.options if offered is None else offered)}
    known = {o.key for o in entry.options}
    argv = [
        python or sys.executable,
        "-m",
        "spineai",
        *entry.command,
        str(input_path),
        entry.output_flag,
        str(output_dir),
    ]
    if weights is not None and str(weights) not in ("", "."):
        argv += [entry.weights_flag, str(weights)]
    for key, value in (options or {}).items():
        if key not in known:
            raise ValueError(f"'{entry.name}' has no option '{key}'; known: {', '.join(sorted(known))}.")
        if key in allowed:
            argv += allowed[key].argv(value)
    return EngineCommand(tuple(argv), _engine_env(None if root is None else Path(root)), Path(output_dir))


def radiograph_pixel_mm(
    spacing_mm: Sequence[float], size: Sequence[int], file_name: str | None = None
) -> str:
    """The pixel size (mm) to pass as ``--pixel-mm`` for a radiograph volume, or ``""`` when it is unknown.

    Args:
        spacing_mm: the volume's spacing (mm, Slicer's IJK order: columns, rows, slices).
        size: its dimensions in the same order (a radiograph: ``(columns, rows, 1)``).
        file_name: the file it was loaded from (``None`` for a DICOM-loaded or computed volume).

    Returns:
        the geometric mean of the two in-plane spacings (the axes longer than one voxel) as text, e.g.
        ``"0.15"``; ``""`` when the spacing is not a real pixel size: the volume comes from a picture file
        (PNG, JPEG, BMP, GIF, TIFF carry none) or its in-plane spacing is exactly 1 x 1 mm (what Slicer gives an
        image without geometry).
    """
    if file_name and str(file_name).lower().endswith(PICTURE_SUFFIXES):
        return ""
    axes = [k for k in range(min(len(spacing_mm), len(size))) if int(size[k]) > 1][:2]
    if len(axes) < 2:
        axes = [0, 1]
    plane = [float(spacing_mm[k]) for k in axes]
    if not all(math.isfinite(v) and v > 0 for v in plane) or plane == [1.0, 1.0]:
        return ""
    return f"{math.sqrt(plane[0] * plane[1]):.10g}"


def write_picture_input(pixels: Any, path: str | os.PathLike) -> Path:
    """Write a radiograph's grey levels as a 16-bit PNG, for an input whose pixel size is unknown.

    A PNG carries no pixel spacing, so the engine then estimates it from the located discs instead of
    reading Slicer's placeholder 1 mm as the truth. The grey levels are mapped linearly onto 0..65535 (the
    engine windows each radiograph by its own percentiles, so a linear map changes nothing it reads).

    Args:
        pixels: the image ``[rows, columns]``, or ``[1, rows, columns]`` as ``slicer.util.arrayFromVolume``
            gives a one-slice volume (row 0 at the top as displayed).
        path: the ``.png`` to write.

    Raises:
        ValueError: not one 2D grey image, or not a finite image with more than one grey level.
    """
    import numpy as np
    import SimpleITK as sitk

    a = np.asarray(pixels, dtype=np.float64)
    a = a.reshape(a.shape[-2:]) if a.ndim == 3 and a.shape[0] == 1 else a
    if a.ndim != 2:
        raise ValueError(
            f"The radiograph has shape {tuple(np.shape(pixels))}: one grey-level image is needed, not a volume."
        )
    if not np.all(np.isfinite(a)) or float(a.max()) <= float(a.min()):
        raise ValueError("The radiograph is blank or holds non-finite values: load it again.")
    scaled = np.round((a - a.min()) / (a.max() - a.min()) * 65535.0).astype(np.uint16)
    out = Path(path)
    sitk.WriteImage(sitk.GetImageFromArray(scaled), str(out))
    return out


def option_tooltip(help_text: str, option: OptionSpec) -> str:
    """The engine's own help sentence for an option (for the panel's tool tip)."""
    return option_help(help_text, option.flag)


# ---------------------------------------------------------------------------------------------- outputs
def _first_match(folder: Path, patterns: Sequence[str]) -> Path | None:
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    for pattern in patterns:
        hits = fnmatch.filter(names, pattern)
        if hits:
            return folder / hits[0]
    return None


@dataclass(frozen=True)
class GradingOutputs:
    """The files one run wrote: its table, its summary and its heat maps (``{name: path}``)."""

    folder: Path
    table: Path | None
    summary: Path | None
    heatmaps: dict[str, Path]

    def check(self) -> GradingOutputs:
        """Raise ``ValueError`` when the run wrote neither a table nor a summary."""
        if self.table is None and self.summary is None:
            raise ValueError(
                f"The engine finished but wrote no result table or summary in '{self.folder}'. Check the engine "
                "log; update the SpineAI extension if the engine is newer than the module."
            )
        return self


def heatmap_name(path: str | os.PathLike) -> str:
    """What a heat map explains, from its file name: ``gradcam_pfirrmann.nii.gz`` -> ``"pfirrmann"``,
    ``gradcam.nii.gz`` -> ``"gradcam"``."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name[len("gradcam_") :] if name.startswith("gradcam_") else name


def find_outputs(entry: GradingCommand, folder: str | os.PathLike) -> GradingOutputs:
    """The outputs of one run of ``entry`` in ``folder`` (heat maps sorted by name)."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"Output folder '{root}' does not exist; check the engine log.")
    heatmaps: dict[str, Path] = {}
    names = sorted(p.name for p in root.iterdir() if p.is_file())
    for pattern in entry.heatmap_files:
        for hit in fnmatch.filter(names, pattern):
            heatmaps.setdefault(heatmap_name(hit), root / hit)
    return GradingOutputs(
        root, _first_match(root, entry.table_files), _first_match(root, entry.summary_files), heatmaps
    )


def result_table(outputs: GradingOutputs) -> TableData:
    """The table the module shows: the per-item TSV when there is one, else the JSON summary as items."""
    if outputs.table is not None:
        return read_tsv(outputs.table)
    if outputs.summary is None:
        raise ValueError(f"No result table or summary in '{outputs.folder}'.")
    try:
        data = json.loads(outputs.summary.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"'{outputs.summary}' is not valid JSON ({exc}).") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"'{outputs.summary}' does not hold a JSON object.")
    return key_value_table(data, skip=("files",))


def summary_text(outputs: GradingOutputs) -> str:
    """A short plain-words result line from the JSON summary ("" when there is none).

    Outcome: ``"P(good outcome) 0.62 (threshold 0.50): good outcome"``; radiograph: the probability per level,
    the levels called positive and, for the disc-crops design, the discs the locator was unsure of (confidence
    below 0.2) and where the pixel size came from; gradings: the number of graded items and the notes.
    """
    if outputs.summary is None:
        return ""
    try:
        data = json.loads(outputs.summary.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return ""
    if not isinstance(data, Mapping):
        return ""
    if "probability_good_outcome" in data:
        return (
            f"P(good outcome) {float(data['probability_good_outcome']):.2f} "
            f"(threshold {float(data.get('threshold', 0.5)):.2f}): {data.get('predicted', '')}"
        )
    probabilities = data.get("probabilities")
    if isinstance(probabilities, Mapping) and probabilities:
        levels = ", ".join(f"{level} {float(p):.2f}" for level, p in probabilities.items())
        positive = data.get("levels_called_positive") or []
        called = ", ".join(str(level) for level in positive) if positive else "none"
        text = f"P(herniation): {levels}; called positive: {called}"
        discs = data.get("discs")
        if isinstance(discs, list) and discs and all(isinstance(d, Mapping) for d in discs):
            unsure = [
                str(d.get("level"))
                for d in discs
                if isinstance(d.get("confidence"), (int, float)) and float(d["confidence"]) < 0.2
            ]
            source = discs[0].get("scale_source")
            if any(d.get("source") == "given" for d in discs):
                text += "; discs as given"
            else:
                text += f"; discs unsure: {', '.join(unsure)}" if unsure else "; all discs located"
            text += f" (pixel size: {source})" if source else ""
        return text
    parts = []
    if isinstance(data.get("discs"), list):
        parts.append(f"{len(data['discs'])} discs graded")
    notes = data.get("notes")
    if isinstance(notes, list) and notes:
        parts.append("; ".join(str(n) for n in notes))
    return ". ".join(parts)
