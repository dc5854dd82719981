"""The engine never imports Slicer, and the code base stays lint-clean."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENGINE = REPO / "SpineAI" / "spineai"
FORBIDDEN = ("slicer", "qt", "ctk", "mrml", "vtkSlicer", "vtkMRML", "PythonQt", "SegmentEditorEffects")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_engine_has_no_slicer_import():
    files = sorted(ENGINE.rglob("*.py"))
    assert files, "engine package not found"
    offenders = {
        str(f.relative_to(REPO)): sorted(m for m in _imported_modules(f) if m.startswith(FORBIDDEN))
        for f in files
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"engine files import Slicer/Qt modules: {offenders}"


def test_ruff_lint_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    targets = [
        p
        for p in ("SpineAI", "SpineAISegmentation", "SpineAIGrading", "Testing", "benchmarks")
        if (REPO / p).exists()
    ]
    result = subprocess.run([ruff, "check", *targets], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
