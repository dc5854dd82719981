"""Progress reporting for long steps: a tqdm bar for people, parseable lines for the Slicer modules.

When the environment variable ``SPINEAI_PROGRESS=lines`` is set (the Slicer modules set it when they
run the CLI in a background process), every update is also printed to stderr as one line::

    PROGRESS <percent 0-100> <message>

which the GUI parses to drive its progress bar without scraping tqdm's terminal output.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def _lines_enabled() -> bool:
    return os.environ.get("SPINEAI_PROGRESS", "").lower() == "lines"


def report(percent: float, message: str) -> None:
    """Emit one machine-readable progress line (only when ``SPINEAI_PROGRESS=lines``)."""
    if _lines_enabled():
        print(f"PROGRESS {max(0.0, min(100.0, percent)):.1f} {message}", file=sys.stderr, flush=True)


def track(
    iterable: Iterable[T], desc: str, total: int | None = None, disable: bool | None = None
) -> Iterator[T]:
    """Iterate with a progress bar (and progress lines for the Slicer modules).

    Args:
        iterable: the items.
        desc: short description shown before the bar.
        total: number of items when ``iterable`` has no ``len``.
        disable: force the bar off (``None``: on when stderr is a terminal, or lines are enabled).
    """
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    lines = _lines_enabled()
    bar = tqdm(
        iterable,
        desc=desc,
        total=total,
        disable=disable if disable is not None else (lines or None),
        leave=False,
        dynamic_ncols=True,
    )
    for i, item in enumerate(bar):
        if lines and total:
            report(100.0 * i / total, desc)
        yield item
    if lines:
        report(100.0, desc)
