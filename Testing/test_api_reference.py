"""The generated API reference (docs/api_reference.md) matches the docstrings of spineai.api."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location(
        "make_api_reference", REPO / "docs" / "make_api_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_committed_api_reference_is_generated_from_the_current_docstrings():
    generator = _generator()
    committed = (REPO / "docs" / "api_reference.md").read_text(encoding="utf-8")
    assert committed == generator.build(), (
        "docs/api_reference.md is stale: run python docs/make_api_reference.py"
    )


def test_reference_documents_every_public_api_name_with_its_signature():
    from spineai import api

    text = _generator().build()
    for name in api.__all__:
        assert f"`{name}`" in text, name
    assert "spineai.run_case(ct" in text and "| `area_mm2` | `float \\| None` |" in text
