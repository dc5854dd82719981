"""``spineai demo``: the whole pipeline on a generated phantom, with the shipped weights.

Writes into a new folder (never into one that holds files, unless ``overwrite``) and returns a summary
of what it wrote and measured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .outputs import prepare_output_dir


@dataclass
class DemoSummary:
    """What the demo wrote and measured.

    Attributes:
        out: the output folder.
        files: output name -> path.
        lines: human-readable result lines (areas in mm2, Dice, ...).
    """

    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

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


def run_demo(out: str | os.PathLike | None = None, seed: int = 7, overwrite: bool = False) -> DemoSummary:
    """Generate a phantom CT and run every available step on it.

    Args:
        out: output folder; default a new ``./spineai-demo[-N]``.
        seed: phantom seed (the same seed gives the same case).
        overwrite: allow writing into an existing non-empty ``out``.
    """
    from .phantom import generate_ct_phantom, write_phantom_case
    from .pictures import orthogonal_slices_png

    folder = prepare_output_dir(out if out is not None else new_demo_folder(), overwrite=overwrite)
    summary = DemoSummary(out=folder)

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
    return summary
