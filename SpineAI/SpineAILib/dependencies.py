"""Which of the extension's Python requirements are missing or too old.

Inside Slicer >= 5.12 the hub calls ``slicer.packaging.pip_ensure``, which does this check itself; this
module gives the same answer on older Slicer versions and shows the status before anything is installed.
torch is not listed in ``requirements.txt``: it comes through the PyTorch extension, which picks the
build that matches the GPU driver.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

#: packages Slicer ships and an extension must never reinstall
SLICER_OWNED: frozenset[str] = frozenset({"simpleitk", "vtk", "numpy", "scipy", "requests", "torch"})


def read_requirements(path: str | os.PathLike) -> list[str]:
    """Requirement lines of a requirements file (comments, blank lines and ``-`` options skipped)."""
    lines = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            lines.append(line)
    return lines


def requirement_name(requirement: str) -> str:
    """Normalised distribution name of a requirement line (``scikit-image>=0.21`` -> ``scikit-image``)."""
    m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not m:
        raise ValueError(f"Cannot read a package name from requirement '{requirement}'.")
    return re.sub(r"[-_.]+", "-", m.group(1)).lower()


@dataclass(frozen=True)
class RequirementStatus:
    """One requirement and what is installed: ``installed`` is ``None`` when absent."""

    requirement: str
    installed: str | None
    satisfied: bool


def check_requirements(
    requirements: Iterable[str],
    version_of: Callable[[str], str] = importlib.metadata.version,
) -> list[RequirementStatus]:
    """Compare requirement lines with the installed versions.

    Args:
        requirements: lines such as ``"monai>=1.3"``.
        version_of: ``version_of(name) -> version``, raising ``PackageNotFoundError`` when absent.
    """
    try:
        from packaging.requirements import Requirement
    except ImportError:  # very old environments: presence only
        Requirement = None  # noqa: N806
    out = []
    for line in requirements:
        name = requirement_name(line)
        try:
            installed = version_of(name)
        except importlib.metadata.PackageNotFoundError:
            out.append(RequirementStatus(line, None, False))
            continue
        ok = True
        if Requirement is not None:
            req = Requirement(line)
            ok = req.specifier.contains(installed, prereleases=True)
        out.append(RequirementStatus(line, installed, ok))
    return out


def unsatisfied(statuses: Iterable[RequirementStatus]) -> list[str]:
    """The requirement lines that need installing or upgrading."""
    return [s.requirement for s in statuses if not s.satisfied]
