"""Which commands this engine offers, read from its own command-line parser.

The Slicer modules show a panel or a button for an engine command only when the engine has it. Importing
the engine's parser imports torch and MONAI, so the modules ask a child process
(``python -m SpineAILib.commands``, see :func:`SpineAILib.engine.commands_probe`) which prints one line::

    SPINEAI_COMMANDS {"format": "spineai-commands", "version": "0.1.0", "commands": {"grade sagittal": "<help>", ...}}

``commands`` maps every command path (``"measure"``, ``"grade sagittal"``, ``"train outcome"``) to its
``--help`` text, so a module can also check which options a command accepts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping

#: first word of the line the probe prints
MARKER = "SPINEAI_COMMANDS"
FORMAT = "spineai-commands"


def command_tree(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Every sub-command path of ``parser`` with its help text, e.g. ``{"grade sagittal": "usage: ..."}``.

    Parent commands that only choose a task (``"grade"``, ``"train"``) are listed too.
    """
    found: dict[str, str] = {}

    def walk(p: argparse.ArgumentParser, prefix: tuple[str, ...]) -> None:
        for action in p._actions:  # argparse keeps sub-parsers only in this list
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    path = (*prefix, name)
                    found[" ".join(path)] = sub.format_help()
                    walk(sub, path)

    walk(parser, ())
    return found


def engine_commands() -> dict[str, str]:
    """:func:`command_tree` of the installed engine's ``spineai`` parser (imports the engine)."""
    from spineai.cli import build_parser

    return command_tree(build_parser())


def probe_line(commands: Mapping[str, str], version: str = "") -> str:
    """The single line the probe prints."""
    payload = {"format": FORMAT, "version": version, "commands": dict(commands)}
    return f"{MARKER} {json.dumps(payload, ensure_ascii=True)}"


def parse_probe_output(lines: Iterable[str]) -> dict[str, str]:
    """The ``{command: help text}`` the probe printed (the last marker line wins).

    Raises:
        ValueError: no marker line, or a malformed one (an engine older than the module, or a crash).
    """
    payload = None
    for line in lines:
        if line.startswith(MARKER + " "):
            payload = line[len(MARKER) + 1 :]
    if payload is None:
        raise ValueError(
            "The SpineAI engine did not list its commands; its output is in the log. Check that the engine "
            "package sits beside the SpineAI module and that its dependencies are installed (SpineAI module, "
            "Dependencies)."
        )
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise ValueError(f"The engine's command list is not valid JSON ({exc}).") from None
    if (
        not isinstance(data, dict)
        or data.get("format") != FORMAT
        or not isinstance(data.get("commands"), dict)
    ):
        raise ValueError("The engine's command list has an unknown format; update the SpineAI extension.")
    return {str(k): str(v) for k, v in data["commands"].items()}


def main() -> int:
    """Print the probe line for the installed engine; exit code 0."""
    import spineai

    print(probe_line(engine_commands(), getattr(spineai, "__version__", "")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
