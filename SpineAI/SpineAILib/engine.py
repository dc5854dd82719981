"""The engine command lines the Slicer modules run in a background process, and how to read their output.

The modules never run heavy work in Slicer's GUI thread: they write the input to a temporary file, run
``<python> -m spineai <command> ...`` (Slicer's ``PythonSlicer`` inside Slicer), read its progress lines and
load the files it wrote. The engine package travels with the extension (installed beside the modules), so
the child process finds it through ``PYTHONPATH``; no separate installation is needed.

Progress protocol (``spineai.progress``): with ``SPINEAI_PROGRESS=lines`` in the environment the engine
prints ``PROGRESS <percent> <message>`` lines on stderr. On failure it exits non-zero and prints
``spineai <command>: error: <problem>`` followed by an indented ``Fix: <what to do>`` line.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEVICES: tuple[str, ...] = ("cpu", "cuda")
SEGMENT_MODES: tuple[str, ...] = ("fast", "paper")

_PROGRESS_RE = re.compile(r"^\s*PROGRESS\s+([-+]?\d+(?:\.\d+)?)\s*(.*?)\s*$")
_ERROR_RE = re.compile(r"^spineai(?: [\w-]+)*: error: (.*)$")


def engine_root() -> Path:
    """The folder that contains the ``spineai`` package (put on the child process's ``PYTHONPATH``).

    In the source tree and in an installed extension alike, ``SpineAILib`` and ``spineai`` are siblings.
    """
    return Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class EngineCommand:
    """A command line to run and the environment variables to add for it.

    Attributes:
        argv: program and arguments (no shell quoting needed).
        env: variables to add to (or override in) the inherited environment.
        outputs: the folder the command writes, when it has one.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    outputs: Path | None = None

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The full environment for the child: ``base`` (default ``os.environ``) updated with :attr:`env`."""
        merged = dict(os.environ if base is None else base)
        merged.update(self.env)
        return merged


def _engine_env(root: Path | None = None, base_pythonpath: str | None = None) -> dict[str, str]:
    root = engine_root() if root is None else Path(root)
    existing = os.environ.get("PYTHONPATH", "") if base_pythonpath is None else base_pythonpath
    parts = [str(root)] + [p for p in existing.split(os.pathsep) if p and Path(p) != root]
    return {
        "PYTHONPATH": os.pathsep.join(parts),
        "SPINEAI_PROGRESS": "lines",
        "PYTHONUNBUFFERED": "1",
        # the child reads and writes UTF-8 whatever the user's locale (paths with accents, error texts)
        "PYTHONIOENCODING": "utf-8",
    }


def _check_choice(value: str, choices: Sequence[str], what: str) -> str:
    if value not in choices:
        raise ValueError(f"{what} '{value}' is not one of {', '.join(choices)}.")
    return value


def segment_command(
    input_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    device: str = "cpu",
    mode: str = "fast",
    overwrite: bool = False,
    weights: str | os.PathLike | None = None,
    surfaces: bool = True,
    mirror_tta: bool = False,
    python: str | None = None,
    root: str | os.PathLike | None = None,
) -> EngineCommand:
    """The ``spineai segment`` command the Segmentation module runs.

    Args:
        input_path: CT volume file the module wrote (NRRD), HU.
        output_dir: new folder for ``segmentation.seg.nrrd``, ``labels.nii.gz``, ``labels.json``, ``surfaces/``.
        device: ``"cpu"`` or ``"cuda"``.
        mode: ``"fast"`` (coarser, for CPUs) or ``"paper"`` (the paper's sliding-window configuration).
        overwrite: allow replacing files in an existing ``output_dir``.
        weights: site-trained ``.safetensors`` (card beside it); ``None``: the engine's shipped model.
        surfaces: let the engine write ``surfaces/*.vtp`` (Slicer builds its own closed surfaces, so the
            module passes ``False`` to save time).
        mirror_tta: left-right test-time augmentation (``--mirror-tta``): twice the inference time.
        python: interpreter (Slicer: ``PythonSlicer``); default: the running one.
        root: folder holding the ``spineai`` package; default :func:`engine_root`.
    """
    _check_choice(device, DEVICES, "Device")
    _check_choice(mode, SEGMENT_MODES, "Mode")
    argv = [
        python or sys.executable,
        "-m",
        "spineai",
        "segment",
        str(input_path),
        "-o",
        str(output_dir),
        "--device",
        device,
        "--mode",
        mode,
    ]
    if weights is not None and str(weights) not in ("", "."):
        argv += ["--weights", str(weights)]
    if not surfaces:
        argv.append("--no-surfaces")
    if mirror_tta:
        argv.append("--mirror-tta")
    if overwrite:
        argv.append("--overwrite")
    return EngineCommand(tuple(argv), _engine_env(None if root is None else Path(root)), Path(output_dir))


def phantom_command(
    output_dir: str | os.PathLike,
    seed: int = 7,
    spacing_mm: float | None = None,
    overwrite: bool = False,
    python: str | None = None,
    root: str | os.PathLike | None = None,
) -> EngineCommand:
    """The ``spineai phantom`` command (a synthetic lumbosacral CT with exact labels) for demos and tests."""
    if int(seed) < 0:
        raise ValueError(f"Phantom seed must be 0 or more, got {seed}.")
    argv = [
        python or sys.executable,
        "-m",
        "spineai",
        "phantom",
        "-o",
        str(output_dir),
        "--seed",
        str(int(seed)),
    ]
    if overwrite:
        argv.append("--overwrite")
    return EngineCommand(tuple(argv), _engine_env(None if root is None else Path(root)), Path(output_dir))


def help_command(
    subcommand: str, python: str | None = None, root: str | os.PathLike | None = None
) -> EngineCommand:
    """``spineai <subcommand> --help``: exits 0 only when this engine offers the subcommand."""
    argv = (python or sys.executable, "-m", "spineai", *subcommand.split(), "--help")
    return EngineCommand(argv, _engine_env(None if root is None else Path(root)))


#: patient sides the planning commands accept
SIDES: tuple[str, ...] = ("left", "right")
#: C-arm angle limits of the engine (``spineai.carm``), degrees
MAX_OBLIQUE_DEG = 45.0
MAX_TILT_DEG = 45.0
_LEVEL_RE = re.compile(r"^(?:T1[0-2]|T[1-9]|L[1-6]|S1)-(?:T1[0-2]|T[1-9]|L[1-6]|S1)$")


def _check_levels(levels: Iterable[str]) -> list[str]:
    out = []
    for level in levels:
        text = str(level).strip().upper().replace("/", "-")
        if not _LEVEL_RE.match(text):
            raise ValueError(
                f"'{level}' is not a spinal level. Name a level by its two vertebrae, e.g. L4-L5 or L5-S1."
            )
        if text not in out:
            out.append(text)
    if not out:
        raise ValueError("No level given. Name at least one level, e.g. L5-S1.")
    return out


def _check_sides(sides: Iterable[str]) -> list[str]:
    out = []
    for side in sides:
        _check_choice(side, SIDES, "Side")
        if side not in out:
            out.append(side)
    if not out:
        raise ValueError("No side given. Choose left, right or both.")
    return out


def measure_command(
    segmentation_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    ct_path: str | os.PathLike | None = None,
    levels: Sequence[str] = ("L4-L5", "L5-S1"),
    sides: Sequence[str] = SIDES,
    images: bool = False,
    overwrite: bool = False,
    python: str | None = None,
    root: str | os.PathLike | None = None,
) -> EngineCommand:
    """The ``spineai measure`` command: Kambin's and the safe triangle, best C-arm view, needle path.

    Args:
        segmentation_path: canonical label map (``.nii.gz`` with its ``.json`` sidecar) on the CT's grid.
        output_dir: new folder for ``measurements.json``, ``measurements.tsv`` and ``planning.mrk.json``.
        ct_path: the CT (HU) on the same grid; gives the skin for the needle entry.
        levels: levels such as ``"L5-S1"``; sides: ``"left"`` and/or ``"right"`` (the patient's).
        images: also render the C-arm pictures and the 3D picture (seconds each; Slicer shows its own 3D).
    """
    argv = [
        python or sys.executable,
        "-m",
        "spineai",
        "measure",
        str(segmentation_path),
        "-o",
        str(output_dir),
    ]
    if ct_path is not None:
        argv += ["--ct", str(ct_path)]
    argv += ["--levels", *_check_levels(levels), "--sides", *_check_sides(sides)]
    if not images:
        argv.append("--no-images")
    if overwrite:
        argv.append("--overwrite")
    return EngineCommand(tuple(argv), _engine_env(None if root is None else Path(root)), Path(output_dir))


def plan_command(
    segmentation_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    level: str,
    side: str,
    oblique_deg: float = 25.0,
    tilt_deg: float = 0.0,
    ct_path: str | os.PathLike | None = None,
    images: bool = False,
    overwrite: bool = False,
    python: str | None = None,
    root: str | os.PathLike | None = None,
) -> EngineCommand:
    """The ``spineai plan`` command: one level and side seen at one C-arm view, with the needle path.

    Args:
        level: e.g. ``"L5-S1"``; side: ``"left"`` or ``"right"`` (the patient's).
        oblique_deg: ipsilateral oblique in the level's frame, 0..45 degrees.
        tilt_deg: cranio-caudal tilt, -45..45 degrees, positive = cranial.
    """
    (level_text,) = _check_levels([level])
    _check_choice(side, SIDES, "Side")
    oblique, tilt = float(oblique_deg), float(tilt_deg)
    if not (0.0 <= oblique <= MAX_OBLIQUE_DEG):
        raise ValueError(f"Oblique angle {oblique:g} degrees is outside 0..{MAX_OBLIQUE_DEG:g}.")
    if not (-MAX_TILT_DEG <= tilt <= MAX_TILT_DEG):
        raise ValueError(f"Tilt {tilt:g} degrees is outside -{MAX_TILT_DEG:g}..{MAX_TILT_DEG:g}.")
    argv = [python or sys.executable, "-m", "spineai", "plan", str(segmentation_path), "-o", str(output_dir)]
    if ct_path is not None:
        argv += ["--ct", str(ct_path)]
    # "--tilt=-5": a negative value joined to its flag is never mistaken for an option
    argv += ["--level", level_text, "--side", side, f"--oblique={oblique:g}", f"--tilt={tilt:g}"]
    if not images:
        argv.append("--no-images")
    if overwrite:
        argv.append("--overwrite")
    return EngineCommand(tuple(argv), _engine_env(None if root is None else Path(root)), Path(output_dir))


def levels_command(
    segmentation_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    override: str | None = None,
    ct_path: str | os.PathLike | None = None,
    python: str | None = None,
    root: str | os.PathLike | None = None,
) -> EngineCommand:
    """The ``spineai levels`` command: number the vertebrae from the sacrum up, or as the user overrides.

    Args:
        override: the user's statement passed verbatim to ``--override`` (for example that the lowest
            mobile vertebra is L6, or a shift of all labels by +1); ``None`` or blank: automatic.
    """
    argv = [
        python or sys.executable,
        "-m",
        "spineai",
        "levels",
        str(segmentation_path),
        "-o",
        str(output_dir),
    ]
    if ct_path is not None:
        argv += ["--ct", str(ct_path)]
    if override is not None and str(override).strip():
        argv += ["--override", str(override).strip()]
    return EngineCommand(tuple(argv), _engine_env(None if root is None else Path(root)), Path(output_dir))


def commands_probe(python: str | None = None, root: str | os.PathLike | None = None) -> EngineCommand:
    """A child process that prints every command this engine offers (see :mod:`SpineAILib.commands`).

    Running it in a separate process keeps torch and the engine out of Slicer's own process until needed.
    """
    argv = (python or sys.executable, "-m", "SpineAILib.commands")
    return EngineCommand(argv, _engine_env(None if root is None else Path(root)))


def option_help(help_text: str, flag: str) -> str:
    """The help sentence of option ``flag`` in an argparse ``--help`` text ("" when the option is absent).

    Args:
        help_text: the command's ``--help`` output.
        flag: e.g. ``"--override"``.
    """
    lines = help_text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not re.match(rf"^(?:-\w[ ,\w]*, )?{re.escape(flag)}(?:[ =]|$)", stripped):
            continue
        parts = re.split(r"\s{2,}", stripped, maxsplit=1)
        text = [parts[1]] if len(parts) > 1 else []
        indent = len(line) - len(line.lstrip())
        for follow in lines[i + 1 :]:
            f_indent = len(follow) - len(follow.lstrip())
            if not follow.strip() or f_indent <= indent:
                break
            text.append(follow.strip())
        return " ".join(text)
    return ""


def offers_option(help_text: str, flag: str) -> bool:
    """Whether a ``--help`` text lists the option ``flag`` (as a whole word)."""
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text) is not None


@dataclass(frozen=True)
class ProgressUpdate:
    """One parsed ``PROGRESS`` line: ``percent`` in 0..100 and the step's message."""

    percent: float
    message: str


def parse_progress_line(line: str) -> ProgressUpdate | None:
    """Parse ``PROGRESS <percent> <message>``; ``None`` for any other line. Percent is clamped to 0..100."""
    m = _PROGRESS_RE.match(line)
    if not m:
        return None
    percent = min(100.0, max(0.0, float(m.group(1))))
    return ProgressUpdate(percent, m.group(2))


def error_message(lines: Iterable[str], returncode: int | None = None) -> str:
    """A plain-words error from the engine's output, for a message box.

    Prefers the engine's own ``error:`` paragraph (with its ``Fix:`` line); otherwise the last few
    meaningful lines (a crash's exception line comes last), never the progress lines.
    """
    text = [ln.rstrip() for ln in lines if ln is not None]
    for i, ln in enumerate(text):
        m = _ERROR_RE.match(ln.strip())
        if m:
            msg = [m.group(1).strip()]
            for follow in text[i + 1 :]:
                if follow.startswith((" ", "\t")) and follow.strip():
                    msg.append(follow.strip())
                else:
                    break
            return "\n".join(msg)
    useful = [ln for ln in text if ln.strip() and parse_progress_line(ln) is None]
    if useful:
        return "\n".join(useful[-3:])
    if returncode is not None:
        return f"The SpineAI engine stopped with exit code {returncode} without a message."
    return "The SpineAI engine stopped without a message."


@dataclass(frozen=True)
class SegmentOutputs:
    """The files ``spineai segment`` writes into its output folder."""

    folder: Path

    @property
    def segmentation(self) -> Path:
        return self.folder / "segmentation.seg.nrrd"

    @property
    def labels(self) -> Path:
        return self.folder / "labels.nii.gz"

    @property
    def sidecar(self) -> Path:
        return self.folder / "labels.json"

    @property
    def surfaces(self) -> Path:
        return self.folder / "surfaces"

    @property
    def summary(self) -> Path:
        return self.folder / "segmentation.json"

    def warnings(self) -> list[str]:
        """The engine's warnings about this result (``segmentation.json``): structures not found, an
        anatomically implausible segmentation; empty when the summary is absent or unreadable."""
        try:
            data = json.loads(self.summary.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        found = data.get("warnings", []) if isinstance(data, dict) else []
        return [str(w) for w in found] if isinstance(found, list) else []

    def missing(self) -> list[Path]:
        """The required files that are absent (the label map and its sidecar)."""
        return [p for p in (self.labels, self.sidecar) if not p.is_file()]

    def check(self) -> SegmentOutputs:
        """Raise ``ValueError`` naming the missing files, or return ``self``."""
        missing = self.missing()
        if missing:
            names = ", ".join(p.name for p in missing)
            raise ValueError(
                f"The engine finished but did not write {names} in '{self.folder}'. "
                "Check the log above; update the SpineAI extension if the engine is older than the module."
            )
        return self

    def surface_files(self) -> dict[str, Path]:
        """``{structure name: .vtp path}`` for the smoothed surfaces the engine wrote (may be empty)."""
        if not self.surfaces.is_dir():
            return {}
        return {p.name[: -len(".vtp")]: p for p in sorted(self.surfaces.glob("*.vtp"))}


@dataclass(frozen=True)
class PlanningOutputs:
    """The files ``spineai measure`` and ``spineai plan`` write into their output folder."""

    folder: Path

    @property
    def measurements(self) -> Path:
        return self.folder / "measurements.json"

    @property
    def table(self) -> Path:
        return self.folder / "measurements.tsv"

    @property
    def markups(self) -> Path:
        return self.folder / "planning.mrk.json"

    def check(self) -> PlanningOutputs:
        """Raise ``ValueError`` naming the missing files, or return ``self``."""
        missing = [p.name for p in (self.measurements, self.table, self.markups) if not p.is_file()]
        if missing:
            raise ValueError(
                f"The engine finished but did not write {', '.join(missing)} in '{self.folder}'. "
                "Check the engine log; update the SpineAI extension if the engine is older than the module."
            )
        return self


def find_label_map(folder: str | os.PathLike, preferred: str = "labels.nii.gz") -> tuple[Path, Path]:
    """A label map with its ``.json`` sidecar in an engine output folder (the relabelled map of
    ``spineai levels``, the result of ``spineai segment``).

    Returns:
        ``(label map, sidecar)``: ``preferred`` when present, else the only NIfTI with a sidecar.

    Raises:
        ValueError: none, or several candidates and none is ``preferred``.
    """
    root = Path(folder)

    def sidecar_of(p: Path) -> Path:
        return p.with_name(p.name[: -len(".nii.gz")] + ".json")

    first = root / preferred
    if first.is_file() and sidecar_of(first).is_file():
        return first, sidecar_of(first)
    candidates = sorted(p for p in root.glob("*.nii.gz") if sidecar_of(p).is_file())
    if len(candidates) == 1:
        return candidates[0], sidecar_of(candidates[0])
    if not candidates:
        raise ValueError(
            f"'{root}' holds no label map with a .json sidecar (e.g. labels.nii.gz + labels.json). "
            "Check the engine log."
        )
    raise ValueError(
        f"'{root}' holds several label maps ({', '.join(p.name for p in candidates)}) and no "
        f"{preferred}; pick one by hand (Add Data)."
    )
