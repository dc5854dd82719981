"""Errors raised by the engine.

Every error a user can trigger says *what* is wrong and *how to fix it*. They subclass
``ValueError`` (bad input) or ``FileExistsError`` (refusing to overwrite) so generic callers,
such as a Slicer module's ``tryWithErrorDisplay``, handle them without knowing this module.
"""

from __future__ import annotations


class SpineAIError(Exception):
    """Base class of every error the engine raises on purpose."""


class InputError(SpineAIError, ValueError):
    """Bad input: the message names the problem and the fix.

    Args:
        problem: what is wrong, naming the file, structure or parameter concerned.
        fix: what the user should do about it.
    """

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        message = problem if not fix else f"{problem}\n  Fix: {fix}"
        super().__init__(message)


class OutputExistsError(SpineAIError, FileExistsError):
    """An output would overwrite something that already exists."""

    def __init__(self, path: object) -> None:
        self.path = path
        super().__init__(
            f"Output '{path}' already exists and was left untouched.\n"
            "  Fix: choose another output path, or pass --overwrite (overwrite=True) to replace it."
        )


class WeightsError(SpineAIError, ValueError):
    """Missing, tampered, truncated or mismatched model weights."""
