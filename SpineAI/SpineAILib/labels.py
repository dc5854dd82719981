"""Segment names, colours and terminology from the engine's label-map sidecar (``labels.json``).

The engine writes every label map with a JSON sidecar::

    {"convention": "spineai",
     "labels": {"6": {"name": "L5", "rgb": [200, 160, 100],
                      "terminology": "Segmentation category and type - ...~SCT^123037004^Anatomical Structure~..."}}}

The Slicer module turns it into one segment per label value: named by the canonical structure name,
coloured (Slicer wants 0..1 floats), and tagged with a Slicer terminology entry. The same sidecar is
written back when a corrected segmentation is exported for retraining.

A Slicer terminology entry is one string of seven ``~``-separated fields::

    context~category~type~typeModifier~regionContext~region~regionModifier

where context fields are names and the others are ``scheme^value^meaning`` code triples (empty triples
are ``^^``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the name of a sidecar beside a label map
SIDECAR_NAME = "labels.json"


@dataclass(frozen=True)
class CodedTerm:
    """One code of a terminology entry (e.g. ``SCT^49668003^L5 vertebra``)."""

    scheme: str
    value: str
    meaning: str

    def is_empty(self) -> bool:
        return not (self.scheme or self.value or self.meaning)

    def serialize(self) -> str:
        return f"{self.scheme}^{self.value}^{self.meaning}"


@dataclass(frozen=True)
class TerminologyEntry:
    """A parsed Slicer terminology entry (the value of a segment's ``TerminologyEntry`` tag)."""

    context: str
    category: CodedTerm
    type: CodedTerm
    type_modifier: CodedTerm
    region_context: str
    region: CodedTerm
    region_modifier: CodedTerm

    def serialize(self) -> str:
        """The entry as Slicer stores it in a segment tag."""
        return "~".join(
            [
                self.context,
                self.category.serialize(),
                self.type.serialize(),
                self.type_modifier.serialize(),
                self.region_context,
                self.region.serialize(),
                self.region_modifier.serialize(),
            ]
        )


def _coded(text: str, field: str, entry: str) -> CodedTerm:
    parts = text.split("^")
    if len(parts) != 3:
        raise ValueError(
            f"Terminology entry field '{field}' is '{text}', not 'scheme^value^meaning', in entry '{entry}'. "
            "Fix the sidecar's terminology string (seven '~'-separated fields, codes as scheme^value^meaning)."
        )
    return CodedTerm(*(p.strip() for p in parts))


def parse_terminology_entry(entry: str) -> TerminologyEntry:
    """Parse and validate a Slicer terminology entry string.

    Raises:
        ValueError: naming the malformed part, when there are not seven fields, a code is not a
            ``scheme^value^meaning`` triple, or the category or type code is missing.
    """
    if not isinstance(entry, str) or not entry.strip():
        raise ValueError("Terminology entry is empty; give a full Slicer terminology string or leave it out.")
    fields = entry.split("~")
    if len(fields) != 7:
        raise ValueError(
            f"Terminology entry '{entry}' has {len(fields)} '~'-separated fields, Slicer expects 7 "
            "(context~category~type~typeModifier~regionContext~region~regionModifier)."
        )
    parsed = TerminologyEntry(
        context=fields[0].strip(),
        category=_coded(fields[1], "category", entry),
        type=_coded(fields[2], "type", entry),
        type_modifier=_coded(fields[3], "type modifier", entry),
        region_context=fields[4].strip(),
        region=_coded(fields[5], "region", entry),
        region_modifier=_coded(fields[6], "region modifier", entry),
    )
    for name, code in (("category", parsed.category), ("type", parsed.type)):
        if not (code.scheme and code.value):
            raise ValueError(
                f"Terminology entry '{entry}' has no {name} code (scheme and value are required). "
                "Use a code from a terminology Slicer knows, or one from the extension's .term.json."
            )
    if not parsed.context:
        raise ValueError(f"Terminology entry '{entry}' has no context name (its first field).")
    return parsed


@dataclass(frozen=True)
class SegmentSpec:
    """What one label value becomes in Slicer.

    Attributes:
        label: label value in the label map (1..65535).
        name: canonical structure name (segment name and segment ID).
        rgb: colour, 0..255 per channel.
        terminology: Slicer terminology entry string, or ``None`` when the sidecar has none.
    """

    label: int
    name: str
    rgb: tuple[int, int, int]
    terminology: str | None = None

    @property
    def color(self) -> tuple[float, float, float]:
        """Colour as Slicer's 0..1 floats (``segment.SetColor``)."""
        return (self.rgb[0] / 255.0, self.rgb[1] / 255.0, self.rgb[2] / 255.0)


@dataclass(frozen=True)
class LabelSidecar:
    """A parsed ``labels.json``: its convention name and one spec per label value (sorted by value)."""

    convention: str
    specs: tuple[SegmentSpec, ...]

    def by_name(self) -> dict[str, SegmentSpec]:
        return {s.name: s for s in self.specs}

    def by_label(self) -> dict[int, SegmentSpec]:
        return {s.label: s for s in self.specs}

    def to_dict(self) -> dict[str, Any]:
        """The sidecar as JSON-ready data (the inverse of :func:`parse_label_sidecar`)."""
        labels: dict[str, Any] = {}
        for s in self.specs:
            item: dict[str, Any] = {"name": s.name, "rgb": list(s.rgb)}
            if s.terminology:
                item["terminology"] = s.terminology
            labels[str(s.label)] = item
        return {"convention": self.convention, "labels": labels}


_NAME_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


def _parse_rgb(value: Any, where: str) -> tuple[int, int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ValueError(f"{where}: 'rgb' must be three numbers 0..255, got {value!r}.")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 255:
            raise ValueError(f"{where}: 'rgb' must be three numbers 0..255, got {value!r}.")
        out.append(int(round(v)))
    return (out[0], out[1], out[2])


def parse_label_sidecar(data: Mapping[str, Any], source: str = "labels.json") -> LabelSidecar:
    """Validate sidecar data and return one :class:`SegmentSpec` per label value.

    Args:
        data: the decoded JSON.
        source: where it came from, for error messages.

    Raises:
        ValueError: saying which entry is wrong and how, for a missing ``labels`` table, a label value
            that is not a positive integer, a missing or duplicated name, a bad colour or a malformed
            terminology entry.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("labels"), Mapping):
        raise ValueError(
            f"{source} has no 'labels' table. It must look like "
            '{"convention": ..., "labels": {"6": {"name": "L5", "rgb": [200, 160, 100]}}}.'
        )
    convention = str(data.get("convention") or "unspecified")
    specs: list[SegmentSpec] = []
    seen: dict[str, int] = {}
    for key, item in data["labels"].items():
        where = f"{source}, label '{key}'"
        try:
            value = int(str(key))
        except ValueError:
            raise ValueError(f"{where}: label values must be integers, got '{key}'.") from None
        if not 0 < value <= 65535:
            raise ValueError(f"{where}: label values must be 1..65535 (0 is background), got {value}.")
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: expected an object with 'name' and 'rgb', got {item!r}.")
        name = item.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(
                f"{where}: 'name' must be a canonical structure name (letters, digits, _), got {name!r}."
            )
        if name in seen:
            raise ValueError(
                f"{where}: name '{name}' is already used by label {seen[name]}; names must be unique."
            )
        seen[name] = value
        rgb = _parse_rgb(item.get("rgb"), where)
        terminology = item.get("terminology") or None
        if terminology is not None:
            try:
                parse_terminology_entry(terminology)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
        specs.append(SegmentSpec(label=value, name=name, rgb=rgb, terminology=terminology))
    if not specs:
        raise ValueError(f"{source} lists no labels; the segmentation would be empty.")
    specs.sort(key=lambda s: s.label)
    return LabelSidecar(convention=convention, specs=tuple(specs))


def read_label_sidecar(path: str | os.PathLike) -> LabelSidecar:
    """Read and validate a ``labels.json`` file (see :func:`parse_label_sidecar`)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"Label sidecar '{p}' does not exist; the engine writes it beside labels.nii.gz.")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"Label sidecar '{p}' is not valid JSON ({exc}).") from None
    return parse_label_sidecar(data, source=str(p))


def colour_table_entries(specs: Iterable[SegmentSpec]) -> list[tuple[int, str, float, float, float, float]]:
    """Rows for a temporary Slicer colour table that names the label values on import.

    Returns:
        ``(label, name, r, g, b, a)`` with colour components 0..1 and opacity 1, sorted by label.
    """
    return [(s.label, s.name, *s.color, 1.0) for s in sorted(specs, key=lambda s: s.label)]


def canonical_sidecar(names: Iterable[str] | None = None) -> LabelSidecar:
    """A sidecar in the engine's canonical convention, for the given structure names (default: all).

    Uses :mod:`spineai.anatomy` (values, colours) and its ``terminology_entry`` when the engine has it.

    Raises:
        ValueError: for a name that is not canonical, naming the valid ones.
    """
    from spineai import anatomy

    term = getattr(anatomy, "terminology_entry", None)
    chosen = list(names) if names is not None else [s.name for s in anatomy.STRUCTURES]
    specs = []
    for name in chosen:
        s = anatomy.BY_NAME.get(name)
        if s is None:
            raise ValueError(
                f"Segment '{name}' is not a canonical SpineAI structure. Rename it to one of: "
                f"{', '.join(anatomy.BY_NAME)}; or remove it before exporting."
            )
        specs.append(SegmentSpec(s.label, s.name, tuple(s.rgb), term(s.name) if term else None))
    specs.sort(key=lambda s: s.label)
    return LabelSidecar(convention="spineai", specs=tuple(specs))


def label_values_for_segments(
    segment_names: Iterable[str], sidecar: LabelSidecar | None = None
) -> dict[str, int]:
    """Label value for each segment name when a (corrected) segmentation is written as a label map.

    Names are looked up in ``sidecar`` first (the engine's output the segmentation came from), then in the
    engine's canonical table, so segments an annotator added with a canonical name are kept.

    Raises:
        ValueError: for a name that is neither, saying how to fix it.
    """
    known = sidecar.by_name() if sidecar is not None else {}
    out: dict[str, int] = {}
    unknown = []
    for name in segment_names:
        if name in known:
            out[name] = known[name].label
        else:
            unknown.append(name)
    if unknown:
        canonical = canonical_sidecar(unknown)
        out.update({s.name: s.label for s in canonical.specs})
    values = list(out.values())
    if len(set(values)) != len(values):
        dup = sorted({n for n, v in out.items() if values.count(v) > 1})
        raise ValueError(
            f"Segments {dup} map to the same label value; rename or merge them before exporting."
        )
    return out
