"""What every ``spineai`` sub-command shares: the expected errors and how a command reports them.

An expected error (bad input, an existing output, a missing file) becomes one paragraph on stderr,
``spineai <command>: error: <problem and fix>``, and exit code 1; ``--debug`` or the environment variable
``SPINEAI_DEBUG`` adds the traceback. Anything else is a bug and propagates with its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable

from .errors import SpineAIError

__all__ = ["EXPECTED_ERRORS", "guarded"]

#: errors a command reports in plain words instead of a traceback
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    SpineAIError,
    FileExistsError,
    FileNotFoundError,
    ValueError,
    PermissionError,
)


def guarded(command: str, run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a command: expected errors become one paragraph on stderr and exit code 1."""

    def func(args: argparse.Namespace) -> int:
        try:
            return int(run(args) or 0)
        except EXPECTED_ERRORS as exc:
            if getattr(args, "debug", False) or os.environ.get("SPINEAI_DEBUG"):
                traceback.print_exc()
            print(f"spineai {command}: error: {exc}", file=sys.stderr)
            return 1

    return func
