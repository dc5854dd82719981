"""Write ``docs/api_reference.md``: the reference of the one-call Python API, generated from its docstrings.

Every public name of :mod:`spineai.api` (``__all__``) gets its signature and its docstring verbatim: functions
with their parameters, result dataclasses with their fields and types, constants with their values. The
test suite regenerates the page and fails when the committed copy differs, so the reference cannot drift
from the code.

Usage::

    python docs/make_api_reference.py            # rewrite docs/api_reference.md
    python docs/make_api_reference.py --check    # exit 1 when the page is out of date
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "api_reference.md"

HEADER = """# Python API reference (`spineai`)

Generated from the docstrings of `spineai.api` by `python docs/make_api_reference.py`; do not edit by hand.
The guide with examples is [api.md](api.md). Coordinates are LPS (mm) unless a name says otherwise; areas
mm2, angles degrees. Research use only; not for clinical decisions.
"""


def _doc(obj: object) -> str:
    return inspect.cleandoc(obj.__doc__ or "(no description)")


def _annotation(tp: object) -> str:
    return tp if isinstance(tp, str) else getattr(tp, "__name__", repr(tp))


def _function(name: str, fn: object) -> list[str]:
    sig = str(inspect.signature(fn))
    return [f"## `{name}`", "", "```python", f"spineai.{name}{sig}", "```", "", _doc(fn), ""]


def _class(name: str, cls: type) -> list[str]:
    lines = [f"## class `{name}`", ""]
    bases = [b.__name__ for b in cls.__bases__ if b is not object]
    if bases:
        lines += [f"Subclass of {', '.join(f'`{b}`' for b in bases)}.", ""]
    lines += [_doc(cls), ""]
    if dataclasses.is_dataclass(cls):
        fields = [f for f in dataclasses.fields(cls) if f.metadata.get("json", True)]
        if fields:
            lines += ["| field | type |", "|---|---|"]
            # a union's "|" would end the table cell: escape it
            lines += [f"| `{f.name}` | `{_annotation(f.type).replace('|', chr(92) + '|')}` |" for f in fields]
            lines.append("")
    methods = [
        (n, m)
        for n, m in vars(cls).items()
        if not n.startswith("_") and (inspect.isfunction(m) or isinstance(m, (classmethod, property)))
    ]
    for n, m in methods:
        target = m.fget if isinstance(m, property) else getattr(m, "__func__", m)
        sig = "" if isinstance(m, property) else str(inspect.signature(target))
        lines += [f"- `{name}.{n}{sig}`: {_doc(target).splitlines()[0]}"]
    if methods:
        lines.append("")
    return lines


def build() -> str:
    """The page's text (markdown)."""
    sys.path.insert(0, str(REPO / "SpineAI"))
    from spineai import api

    lines = [HEADER]
    names = list(api.__all__)
    functions = [n for n in names if inspect.isfunction(getattr(api, n))]
    classes = [n for n in names if inspect.isclass(getattr(api, n))]
    constants = [n for n in names if n not in functions and n not in classes]
    lines += ["# Functions", ""]
    for n in functions:
        lines += _function(n, getattr(api, n))
    lines += ["# Results", ""]
    for n in classes:
        lines += _class(n, getattr(api, n))
    lines += ["# Constants", ""]
    for n in constants:
        lines += [f"- `{n}` = `{getattr(api, n)!r}`"]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only check that the page is up to date")
    args = parser.parse_args(argv)
    text = build()
    if args.check:
        if not PAGE.is_file() or PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE} is out of date: run python docs/make_api_reference.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
