"""Level labels and input checks as the reports (and the Slicer module) show them.

A case carries (every key may be absent in older cases):

* ``levels``: the level numbering, :meth:`spineai.levels.LevelResult.to_dict` (``format:
  "spineai-levels"``: vertebrae with ``name``, ``confidence``, ``trusted``, ``flags``, ``verse_label``; the
  ``anchor``; ``transitional`` with ``castellvi`` per side and ``castellvi_type``; ``flagged``,
  ``warnings``, ``evidence``, ``override``), or ``{"flagged": true, "error": "<message>"}`` when the
  numbering failed;
* ``checks``: :meth:`spineai.checks.CheckResult.to_dict` of each input check (``name``, ``status`` ``ok`` /
  ``warning`` / ``error``, ``message``, ``fix``, ``details``).

:func:`read_levels` and :func:`read_checks` turn them into :class:`LevelLabels` and :class:`CheckInfo`
without ever failing on a missing or malformed key. :meth:`LevelLabels.concern` says why a level-named
measurement (``"L5-S1"``) must be checked: one of its vertebrae is not trusted (confidence < 0.8), is the
transitional vertebra, or holds two vertebrae (``merged``), or the numbering failed. Pure Python (standard
library only), so the Slicer module uses it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .html import banner, esc, table

__all__ = [
    "CONCERN_FLAGS",
    "LEVELS_BANNER",
    "CheckInfo",
    "LevelLabels",
    "VertebraInfo",
    "checks_banner_html",
    "checks_section_html",
    "levels_banner_html",
    "levels_section_html",
    "read_checks",
    "read_levels",
    "vertebrae_of_level",
]

#: the sentence every flagged case shows at the top of its report (and the Slicer module in red)
LEVELS_BANNER = "Check the level labels before acting on any level-named measurement."
#: vertebra flags that put the name of a level in doubt (``partial`` and ``rib_bearing`` do not)
CONCERN_FLAGS = ("transitional", "low_confidence", "merged")
#: plain words of the transitional kinds of ``LevelResult.transitional["kind"]``
KIND_TEXT = {
    "castellvi": "transitional vertebra with a Castellvi process",
    "six_lumbar_vertebrae": "six lumbar vertebrae (L6)",
    "lumbarised_S1": "lumbarised S1 (numbered L6)",
    "four_lumbar_vertebrae": "four lumbar vertebrae",
}
ANCHOR_TEXT = {
    "sacrum": "the sacrum (counted upward from it)",
    "last_rib": "the last rib-bearing vertebra, T12 (counted downward from it)",
    "both": "the sacrum and the last rib-bearing vertebra (T12)",
    "override": "a user override",
}
_VERTEBRA_RE = re.compile(r"\b([CTLS]\d{1,2})\b")


def vertebrae_of_level(level: str) -> list[str]:
    """The vertebra names in a level name: ``"L5-S1"`` -> ``["L5", "S1"]``, ``"L5"`` -> ``["L5"]``."""
    return _VERTEBRA_RE.findall(str(level or "").upper().replace("/", "-").replace("_", "-"))


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if f == f else None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if value is not None else ""
    if text in ("yes", "true", "1"):
        return True
    if text in ("no", "false", "0"):
        return False
    return None


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(s.strip() for s in value.split(",") if s.strip())
    if isinstance(value, Iterable):
        return tuple(str(v) for v in value if v is not None and str(v))
    return (str(value),)


def _sentences(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value.strip() else ()
    return _strings(value)


# ======================================================================================== level labels
@dataclass(frozen=True)
class VertebraInfo:
    """One vertebra of a numbering.

    Attributes:
        name: ``"L5"``, ``"L6"``, ``"S1"`` (the sacrum).
        confidence: 0..1 (``None`` when unknown).
        trusted: confidence >= 0.8 (``None`` when unknown).
        flags: ``transitional``, ``low_confidence``, ``partial``, ``rib_bearing``, ``merged``, ``override``.
        verse_label: VerSe label value (L6 = 25), ``None`` when unknown.
        castellvi: per side (``"left"``, ``"right"``) the Castellvi type of its lateral process, only for the
            transitional vertebra.
    """

    name: str
    confidence: float | None = None
    trusted: bool | None = None
    flags: tuple[str, ...] = ()
    verse_label: int | None = None
    castellvi: dict[str, str] = field(default_factory=dict)

    @property
    def concerns(self) -> list[str]:
        """Why this vertebra's name may be wrong (empty when it can be trusted)."""
        out = []
        if self.trusted is False or "low_confidence" in self.flags:
            conf = "" if self.confidence is None else f" (confidence {self.confidence:.2f})"
            out.append(f"{self.name} not trusted{conf}")
        if "transitional" in self.flags:
            out.append(f"{self.name} transitional")
        if "merged" in self.flags:
            out.append(f"{self.name} merged with a neighbour")
        return out

    @property
    def flagged(self) -> bool:
        return bool(self.concerns)


@dataclass(frozen=True)
class LevelLabels:
    """A case's level numbering in the form the reports show (see the module docstring).

    Attributes:
        vertebrae: cranial to caudal.
        flagged: whether the levels must be checked before acting on a level-named measurement.
        error: why the numbering failed (``None`` when it did not).
        anchor_method: ``"sacrum"``, ``"last_rib"``, ``"both"``, ``"override"`` (``None`` when unknown).
        override: the override rule in words (``"lowest=L6"``, ``"shift=+1"``), ``None`` without one.
        lumbar_count: number of lumbar vertebrae when both ends of the lumbar spine were seen.
        transitional_vertebra: the lowest mobile vertebra assessed for transitional anatomy.
        transitional_kind: ``castellvi``, ``six_lumbar_vertebrae``, ``lumbarised_S1``,
            ``four_lumbar_vertebrae`` or ``None`` (a normal junction).
        castellvi: per side the Castellvi type (``"0"``, ``"I"``, ``"II"``, ``"III"``, ``"not assessable"``).
        castellvi_type: the case's Castellvi type (``"0"``, ``"Ia"`` ... ``"IV"``).
        warnings, evidence: plain sentences of the numbering.
    """

    vertebrae: tuple[VertebraInfo, ...] = ()
    flagged: bool = False
    error: str | None = None
    anchor_method: str | None = None
    override: str | None = None
    lumbar_count: int | None = None
    transitional_vertebra: str | None = None
    transitional_kind: str | None = None
    castellvi: dict[str, str] = field(default_factory=dict)
    castellvi_type: str | None = None
    warnings: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()

    # ------------------------------------------------------------------------------------ readers
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LevelLabels:
        """From ``levels.json`` / ``case.json["levels"]`` (any key may be missing)."""
        transitional = data.get("transitional") if isinstance(data.get("transitional"), Mapping) else {}
        sides = transitional.get("castellvi") if isinstance(transitional.get("castellvi"), Mapping) else {}
        castellvi = {}
        for side, entry in sides.items():
            kind = entry.get("type") if isinstance(entry, Mapping) else entry
            if kind is not None:
                castellvi[str(side)] = str(kind)
        lowest = transitional.get("vertebra")
        vertebrae = []
        for v in data.get("vertebrae") or []:
            if not isinstance(v, Mapping) or not v.get("name"):
                continue
            label = v.get("verse_label")
            vertebrae.append(
                VertebraInfo(
                    name=str(v["name"]),
                    confidence=_float(v.get("confidence")),
                    trusted=_bool(v.get("trusted")),
                    flags=_strings(v.get("flags")),
                    verse_label=int(label) if _float(label) is not None else None,
                    castellvi=dict(castellvi) if v.get("name") == lowest else {},
                )
            )
        anchor = data.get("anchor") if isinstance(data.get("anchor"), Mapping) else {}
        override = data.get("override")
        if isinstance(override, Mapping):
            override = ", ".join(
                f"{k}={v:+d}" if k == "shift" and isinstance(v, int) else f"{k}={v}"
                for k, v in override.items()
            )
        count = _float(data.get("lumbar_count"))
        error = data.get("error")
        kind = transitional.get("kind")
        info = cls(
            vertebrae=tuple(vertebrae),
            flagged=False,
            error=str(error) if error else None,
            anchor_method=str(anchor["method"]) if anchor.get("method") else None,
            override=str(override) if override else None,
            lumbar_count=int(count) if count is not None else None,
            transitional_vertebra=str(lowest) if lowest else None,
            transitional_kind=str(kind) if kind else None,
            castellvi=castellvi,
            castellvi_type=str(transitional["castellvi_type"])
            if transitional.get("castellvi_type") is not None
            else None,
            warnings=_sentences(data.get("warnings")),
            evidence=_sentences(data.get("evidence")),
        )
        stated = _bool(data.get("flagged"))
        flagged = bool(stated) or info._derived_flag()
        return _replace(info, flagged=flagged)

    @classmethod
    def from_table_rows(
        cls, rows: Sequence[Mapping[str, Any]], castellvi_type: str | None = None
    ) -> LevelLabels:
        """From the rows of ``levels.tsv`` (``LevelResult.table_rows()``: ``name``, ``confidence``,
        ``trusted``, ``flags``, ``castellvi_left``, ``castellvi_right``, ...), e.g. a cohort's ``levels.tsv``."""
        vertebrae = []
        lowest, castellvi = None, {}
        for r in rows:
            if not r.get("name"):
                continue
            sides = {s: str(r.get(f"castellvi_{s}") or "") for s in ("left", "right")}
            sides = {s: t for s, t in sides.items() if t}
            if sides:
                lowest, castellvi = str(r["name"]), sides
            label = _float(r.get("verse_label"))
            vertebrae.append(
                VertebraInfo(
                    name=str(r["name"]),
                    confidence=_float(r.get("confidence")),
                    trusted=_bool(r.get("trusted")),
                    flags=_strings(r.get("flags")),
                    verse_label=int(label) if label is not None else None,
                    castellvi=sides,
                )
            )
        kind = None
        if any("transitional" in v.flags for v in vertebrae):
            transitional = [v for v in vertebrae if "transitional" in v.flags]
            kind = "castellvi" if any(t not in ("0", "not assessable") for t in castellvi.values()) else None
            lowest = lowest or transitional[0].name
        info = cls(
            vertebrae=tuple(vertebrae),
            transitional_vertebra=lowest,
            transitional_kind=kind,
            castellvi=castellvi,
            castellvi_type=castellvi_type or None,
        )
        return _replace(info, flagged=info._derived_flag())

    def _derived_flag(self) -> bool:
        return (
            self.error is not None
            or any(v.flagged for v in self.vertebrae)
            or bool(self.transitional_kind)
            or (self.castellvi_type not in (None, "", "0"))
        )

    # ------------------------------------------------------------------------------------ queries
    @property
    def names(self) -> list[str]:
        return [v.name for v in self.vertebrae]

    def get(self, name: str) -> VertebraInfo | None:
        for v in self.vertebrae:
            if v.name == name:
                return v
        return None

    @property
    def anchor_text(self) -> str:
        """How the numbering was anchored, in words (sacrum / last rib / both / override)."""
        if self.anchor_method == "override" or (self.override and not self.anchor_method):
            return f"a user override ({self.override})" if self.override else ANCHOR_TEXT["override"]
        return ANCHOR_TEXT.get(self.anchor_method or "", self.anchor_method or "not recorded")

    @property
    def transitional_text(self) -> str:
        """The transitional anatomy in words ("" for a normal junction)."""
        if not self.transitional_kind and self.castellvi_type in (None, "", "0"):
            return ""
        parts = []
        where = f" at {self.transitional_vertebra}" if self.transitional_vertebra else ""
        if self.transitional_kind:
            parts.append(f"{KIND_TEXT.get(self.transitional_kind, self.transitional_kind)}{where}")
        if self.castellvi_type not in (None, ""):
            sides = ", ".join(f"{s} {t}" for s, t in sorted(self.castellvi.items()))
            parts.append(f"Castellvi type {self.castellvi_type}" + (f" ({sides})" if sides else ""))
        elif self.castellvi:
            parts.append("Castellvi " + ", ".join(f"{s} {t}" for s, t in sorted(self.castellvi.items())))
        return "; ".join(parts)

    @property
    def untrusted(self) -> list[str]:
        return [v.name for v in self.vertebrae if v.trusted is False or "low_confidence" in v.flags]

    @property
    def lowest_confidence(self) -> float | None:
        values = [v.confidence for v in self.vertebrae if v.confidence is not None]
        return min(values) if values else None

    def reasons(self) -> list[str]:
        """Why the case is flagged, one sentence each (empty when it is not)."""
        out = []
        if self.error:
            out.append(f"The level numbering failed: {self.error}")
        if self.transitional_text:
            out.append(f"Transitional lumbosacral anatomy: {self.transitional_text}.")
        low = self.untrusted
        if low:
            out.append(f"Low confidence (below 0.8) in the name of {', '.join(low)}.")
        merged = [v.name for v in self.vertebrae if "merged" in v.flags]
        if merged:
            out.append(f"One segment holds two vertebrae at {', '.join(merged)} (named by the lower one).")
        if self.flagged and not out:
            out.append("The level numbering was flagged.")
        return out

    def concern(self, level: str) -> str:
        """Why a measurement named by ``level`` (``"L5-S1"``, ``"L5"``) must be checked ("" when it need not).

        A level is of concern when the numbering failed, when one of its vertebrae is not in the numbering,
        when its two vertebrae are not neighbours in the numbering (``L5-S1`` of a spine numbered with an
        L6), or when one of them is not trusted, transitional or merged.
        """
        if self.error:
            return "level numbering failed"
        names = vertebrae_of_level(level)
        if not names or not self.vertebrae:
            return ""
        out = []
        for name in names:
            v = self.get(name)
            if v is None:
                out.append(f"{name} is not in the numbering")
            else:
                out.extend(v.concerns)
        known = self.names
        if len(names) == 2 and all(n in known for n in names):
            upper, lower = (known.index(n) for n in names)
            if lower - upper != 1:
                out.append(f"{names[0]} and {names[1]} are not neighbours in the numbering")
        if self.castellvi_type not in (None, "", "0") and self.transitional_vertebra in names:
            out.append(f"Castellvi {self.castellvi_type}")
        return "; ".join(dict.fromkeys(out))


def _replace(info: LevelLabels, **changes: Any) -> LevelLabels:
    from dataclasses import replace

    return replace(info, **changes)


def read_levels(data: Any) -> LevelLabels | None:
    """:class:`LevelLabels` of ``case.json["levels"]`` (or ``levels.json``); ``None`` when absent or not a dict."""
    if not isinstance(data, Mapping) or not data:
        return None
    return LevelLabels.from_dict(data)


# ========================================================================================= input checks
@dataclass(frozen=True)
class CheckInfo:
    """One input check: ``name`` (``hounsfield``, ``field_of_view``, ...), ``status`` (``ok``, ``warning``,
    ``error``), ``message`` and ``fix`` (``None`` when nothing is to be done)."""

    name: str
    status: str
    message: str
    fix: str | None = None

    @property
    def problem(self) -> bool:
        return self.status in ("warning", "error")


def read_checks(data: Any) -> list[CheckInfo]:
    """:class:`CheckInfo` of each entry of ``case.json["checks"]`` (missing or malformed entries skipped)."""
    if not isinstance(data, (list, tuple)):
        return []
    out = []
    for entry in data:
        if not isinstance(entry, Mapping) or not entry.get("name"):
            continue
        status = str(entry.get("status") or "ok").lower()
        fix = entry.get("fix")
        out.append(
            CheckInfo(str(entry["name"]), status, str(entry.get("message") or ""), str(fix) if fix else None)
        )
    return out


# =============================================================================================== HTML
def levels_banner_html(info: LevelLabels | None) -> str:
    """The red banner of a flagged case ("" when the case is not flagged or has no numbering)."""
    if info is None or not info.flagged:
        return ""
    return banner(f"Level labels flagged. {LEVELS_BANNER}", info.reasons())


def checks_banner_html(checks: Sequence[CheckInfo]) -> str:
    """The orange banner of a case whose input checks found errors ("" otherwise)."""
    errors = [c for c in checks if c.status == "error"]
    if not errors:
        return ""
    return banner(
        f"{len(errors)} input check(s) failed: see 'Input checks' before trusting the results.",
        [f"{c.name}: {c.message}" for c in errors],
        caution=True,
    )


def levels_section_html(info: LevelLabels | None) -> list[str]:
    """The "Level labels" section: vertebrae with confidence and trusted flag, anchor, Castellvi per side."""
    if info is None:
        return []
    out = ["<h2>Level labels</h2>"]
    if info.error:
        out.append(f'<p class="bad">The level numbering failed: {esc(info.error)}</p>')
    if info.vertebrae:
        count = f" {info.lumbar_count} lumbar vertebrae." if info.lumbar_count else ""
        out.append(f"<p>Numbered from {esc(info.anchor_text)}.{esc(count)}</p>")
        if info.override:
            out.append(f"<p>Override applied: <b>{esc(info.override)}</b>.</p>")
        rows = []
        for v in info.vertebrae:
            rows.append(
                {
                    "vertebra": v.name,
                    "verse_label": v.verse_label,
                    "confidence": "" if v.confidence is None else f"{v.confidence:.2f}",
                    "trusted": "" if v.trusted is None else ("yes" if v.trusted else "no"),
                    "flags": ", ".join(v.flags),
                    "castellvi": ", ".join(f"{s} {t}" for s, t in sorted(v.castellvi.items())),
                    "check": ("⚠ " + "; ".join(v.concerns)) if v.flagged else "",
                    "_class": "flagged" if v.flagged else "",
                }
            )
        columns = ["vertebra", "verse_label", "confidence", "trusted", "flags", "castellvi", "check"]
        if not any(r["castellvi"] for r in rows):
            columns.remove("castellvi")
        if not any(r["check"] for r in rows):
            columns.remove("check")
        out.append(
            table(
                rows,
                columns,
                headers={
                    "verse_label": "VerSe label",
                    "castellvi": "Castellvi per side",
                    "check": "check",
                },
                row_class="_class",
                cell_class={"check": "mark"},
            )
        )
        junction = info.transitional_text
        if junction:
            out.append(f'<p class="bad">Transitional lumbosacral junction: {esc(junction)}.</p>')
        elif info.castellvi:
            sides = ", ".join(f"{s} {t}" for s, t in sorted(info.castellvi.items()))
            at = f" at {info.transitional_vertebra}" if info.transitional_vertebra else ""
            out.append(f"<p>Lumbosacral junction{esc(at)}: normal (Castellvi {esc(sides)}).</p>")
    if info.warnings:
        out.append('<ul class="warn">' + "".join(f"<li>{esc(w)}</li>" for w in info.warnings) + "</ul>")
    if info.evidence:
        out.append(
            "<details><summary>Evidence of the numbering</summary><ul>"
            + "".join(f"<li>{esc(e)}</li>" for e in info.evidence)
            + "</ul></details>"
        )
    return out


def checks_section_html(checks: Sequence[CheckInfo]) -> list[str]:
    """The "Input checks" section: each warning and error with its fix; the passed checks named below."""
    if not checks:
        return []
    problems = [c for c in checks if c.problem]
    passed = [c.name for c in checks if not c.problem]
    out = ["<h2>Input checks</h2>"]
    if problems:
        rows = [
            {
                "check": c.name,
                "status": c.status,
                "message": c.message,
                "fix": c.fix or "",
                "_class": "flagged" if c.status == "error" else "",
            }
            for c in sorted(problems, key=lambda c: (c.status != "error", c.name))
        ]
        out.append(table(rows, ("check", "status", "message", "fix"), row_class="_class"))
    else:
        out.append('<p class="good">Every input check passed.</p>')
    if passed and problems:
        out.append(f'<p class="note">Passed: {esc(", ".join(passed))}.</p>')
    elif passed:
        out.append(f'<p class="note">Checked: {esc(", ".join(passed))}.</p>')
    return out
