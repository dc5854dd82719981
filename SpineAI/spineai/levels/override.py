"""User overrides of the vertebra numbering: "the lowest mobile vertebra is L6", "shift every label by +1".

An override replaces the automatic anchor of :func:`spineai.levels.label_levels`; the label map is then
relabelled (vertebrae, discs, roots) by the overridden names, and measurements named by level (triangles,
morphometry) are derived from the relabelled map, so their names follow the override.

Forms (API and ``--override`` on the command line):

* ``"lowest=L6"`` / ``{"lowest": "L6"}``: the lowest mobile vertebra (the one above the sacrum, or the
  lowest in view when there is no sacrum) is L6; the others are counted upward from it.
* ``"shift=+1"`` / ``{"shift": 1}``: every vertebra one level lower than the automatic numbering (L5 becomes
  L6, L4 becomes L5, ...); ``-1`` one level higher (L1 becomes T12). Needs an automatic numbering.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError

_FIX = "write the override as 'lowest=L6' (the lowest mobile vertebra is L6) or 'shift=+1' / 'shift=-1'"


def parse_override(override: Any) -> dict[str, Any] | None:
    """``None``, ``{"lowest": name}`` or ``{"shift": k}`` from a string or dictionary.

    Raises:
        InputError: anything else, a name that is not a mobile vertebra, or a shift of 0 or beyond +-3.
    """
    from .labelling import COLUMN

    if override is None:
        return None
    if isinstance(override, str):
        text = override.strip().replace(" ", "")
        if "=" not in text:
            raise InputError(f"Override '{override}' is not understood.", _FIX)
        key, value = text.split("=", 1)
        data: dict[str, Any] = {key.lower(): value}
    elif isinstance(override, dict):
        data = {str(k).lower(): v for k, v in override.items()}
    else:
        raise InputError(f"Override {override!r} is not understood.", _FIX)
    if set(data) == {"lowest"}:
        name = str(data["lowest"]).upper()
        if name not in COLUMN:
            raise InputError(
                f"Override lowest={data['lowest']!r}: not a mobile vertebra.",
                "name a vertebra from C1 to L6, e.g. lowest=L5 or lowest=L6",
            )
        return {"lowest": name}
    if set(data) == {"shift"}:
        try:
            k = int(str(data["shift"]))
        except ValueError:
            raise InputError(f"Override shift={data['shift']!r} is not a whole number.", _FIX) from None
        if k == 0 or abs(k) > 3:
            raise InputError(f"Override shift={k} is out of range.", "shift by +1 or -1 (at most 3 levels)")
        return {"shift": k}
    raise InputError(f"Override {override!r} is not understood.", _FIX)


def shifted(name: str, k: int) -> str:
    """The vertebra ``k`` levels below ``name`` (negative: above) in the column T1..L5, L6 (L6 only lowest).

    Raises:
        InputError: when the result would be below L6 or above C1.
    """
    from .labelling import COLUMN

    i = COLUMN.index(name) + k
    if i >= len(COLUMN):
        raise InputError(
            f"Shifting {name} by {k:+d} goes below L6.",
            "a spine has at most six lumbar vertebrae here; use a smaller shift",
        )
    if i < 0:
        raise InputError(f"Shifting {name} by {k:+d} goes above C1.", "use a smaller shift")
    return COLUMN[i]


def apply_override(
    parsed: dict[str, Any],
    automatic: list[str],
    count: int,
    automatic_error: Exception | None,
    evidence: list[str],
) -> tuple[list[str], dict[str, Any]]:
    """Names of the ``count`` column positions (cranial to caudal) under an override, and the anchor.

    Args:
        parsed: output of :func:`parse_override`.
        automatic: the automatic names (empty when the automatic numbering failed).
        count: number of column positions.
        automatic_error: why the automatic numbering failed (``None`` when it did not).
        evidence: list to which the override is appended.

    Raises:
        InputError: a shift without an automatic numbering, or a name that cannot be the lowest.
    """
    from .labelling import _names_up_from

    if "lowest" in parsed:
        lowest = parsed["lowest"]
        names = _names_up_from(lowest, count)
        evidence.append(f"override: the lowest mobile vertebra is {lowest}")
        return names, dict(method="override", lowest=lowest, automatic=automatic[-1] if automatic else None)
    k = int(parsed["shift"])
    if not automatic:
        raise InputError(
            f"Override shift={k:+d} needs an automatic numbering to shift, but none was possible "
            f"({automatic_error}).",
            "name the lowest vertebra instead, e.g. --override lowest=L5",
        )
    lowest = shifted(automatic[-1], k)
    names = _names_up_from(lowest, count)
    evidence.append(f"override: every vertebra shifted by {k:+d} level(s) ({automatic[-1]} -> {lowest})")
    return names, dict(method="override", shift=k, lowest=lowest, automatic=automatic[-1])
