"""Shared pytest fixtures: paths to the public data beside the repository, temporary output folders."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (public spine data); skips the test with the reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public test data not found at {SHARED_DATA} (it sits beside the repository in CI)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch CPU thread for a module's tests (the machines running the suite are shared: more threads
    only spin); restores the previous setting afterwards. Use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
