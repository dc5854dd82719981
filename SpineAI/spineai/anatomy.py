"""Canonical lumbosacral anatomy: structure names, label values, colours, terminology and label conventions.

Every label map the engine reads or writes is expressed in these canonical names. Label values here
are the engine's own convention; other conventions (VerSe, TotalSegmentator v2, TPTBox, the SPINECT
paper's 3-class bone/nerve map) are converted through explicit :class:`LabelMapping` tables, and a
label value a table does not list is an error, never a guess.

Frame and sides: the engine works in LPS (SimpleITK's physical frame: +x is the patient's left, +y
posterior, +z superior). ``left`` and ``right`` in a name are always the *patient's* sides, so a
``*_left`` structure lies at larger LPS x than its ``*_right`` mirror. Levels are written ``L4-L5`` /
``L5-S1`` in measurements.

Terminology: each structure has a Slicer terminology entry (the string stored in a segment's
``TerminologyEntry`` tag) built from SNOMED CT codes. Codes found in Slicer's default
"DICOM master list" context refer to that context; the others live in the extension's own context,
``resources/SpineAI.term.json`` (see :func:`load_terminology_json`). Sources of every code are listed
in ``docs/anatomy.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError


@dataclass(frozen=True)
class Structure:
    """One canonical structure.

    Attributes:
        name: canonical name, e.g. ``"root_L5_left"``.
        label: label value in canonical label maps (1..255).
        rgb: display colour, 0..255 per channel.
        kind: ``"vertebra"``, ``"sacrum"``, ``"ilium"``, ``"disc"``, ``"dural_sac"``, ``"root"``,
            ``"subregion"`` or ``"class"`` (the paper's 3-class mode).
    """

    name: str
    label: int
    rgb: tuple[int, int, int]
    kind: str

    @property
    def side(self) -> str | None:
        """``"left"`` / ``"right"`` (the patient's side; LPS +x is left) or ``None`` for midline structures."""
        for side in SIDES:
            if self.name.endswith("_" + side):
                return side
        return None


_VERTEBRA_RGB = {
    "T12": (220, 190, 150),
    "L1": (241, 214, 145),
    "L2": (216, 176, 120),
    "L3": (255, 226, 160),
    "L4": (230, 200, 130),
    "L5": (200, 160, 100),
    "L6": (250, 180, 110),
}

STRUCTURES: tuple[Structure, ...] = (
    Structure("T12", 1, _VERTEBRA_RGB["T12"], "vertebra"),
    Structure("L1", 2, _VERTEBRA_RGB["L1"], "vertebra"),
    Structure("L2", 3, _VERTEBRA_RGB["L2"], "vertebra"),
    Structure("L3", 4, _VERTEBRA_RGB["L3"], "vertebra"),
    Structure("L4", 5, _VERTEBRA_RGB["L4"], "vertebra"),
    Structure("L5", 6, _VERTEBRA_RGB["L5"], "vertebra"),
    Structure("L6", 7, _VERTEBRA_RGB["L6"], "vertebra"),
    Structure("S1", 8, (212, 188, 102), "sacrum"),
    Structure("ilium_left", 9, (177, 122, 101), "ilium"),
    Structure("ilium_right", 10, (160, 110, 90), "ilium"),
    Structure("disc_T12_L1", 11, (80, 130, 200), "disc"),
    Structure("disc_L1_L2", 12, (90, 140, 210), "disc"),
    Structure("disc_L2_L3", 13, (100, 150, 220), "disc"),
    Structure("disc_L3_L4", 14, (110, 160, 230), "disc"),
    Structure("disc_L4_L5", 15, (70, 120, 220), "disc"),
    Structure("disc_L5_S1", 16, (60, 100, 200), "disc"),
    Structure("disc_L5_L6", 17, (120, 170, 235), "disc"),
    Structure("disc_L6_S1", 18, (50, 90, 190), "disc"),
    Structure("dural_sac", 19, (120, 220, 160), "dural_sac"),
    Structure("root_L3_left", 20, (255, 250, 110), "root"),
    Structure("root_L3_right", 21, (255, 240, 90), "root"),
    Structure("root_L4_left", 22, (255, 230, 60), "root"),
    Structure("root_L4_right", 23, (255, 215, 40), "root"),
    Structure("root_L5_left", 24, (255, 190, 30), "root"),
    Structure("root_L5_right", 25, (255, 170, 20), "root"),
    Structure("root_S1_left", 26, (250, 140, 20), "root"),
    Structure("root_S1_right", 27, (240, 120, 10), "root"),
    Structure("root_L6_left", 28, (255, 205, 80), "root"),
    Structure("root_L6_right", 29, (255, 185, 70), "root"),
    Structure("bone", 30, (241, 214, 145), "class"),
    Structure("nerve", 31, (255, 210, 30), "class"),
    # a 13th thoracic vertebra (VerSe / TPTBox label 28), present in a few per cent of people
    Structure("T13", 32, (210, 180, 140), "vertebra"),
    # vertebral sub-regions (TPTBox convention, mapped); values mirror TPTBox's 41..50
    Structure("vertebral_arch", 41, (200, 150, 110), "subregion"),
    Structure("spinous_process", 42, (190, 120, 90), "subregion"),
    Structure("transverse_process_left", 43, (220, 130, 130), "subregion"),
    Structure("transverse_process_right", 44, (200, 110, 110), "subregion"),
    Structure("superior_articular_process_left", 45, (130, 200, 130), "subregion"),
    Structure("superior_articular_process_right", 46, (110, 180, 110), "subregion"),
    Structure("inferior_articular_process_left", 47, (130, 130, 220), "subregion"),
    Structure("inferior_articular_process_right", 48, (110, 110, 200), "subregion"),
    Structure("vertebral_body_cortex", 49, (230, 220, 200), "subregion"),
    Structure("vertebral_body", 50, (240, 230, 210), "subregion"),
    # cervical and upper thoracic vertebrae, so whole-spine label maps (VerSe, TotalSegmentator) convert
    Structure("C1", 51, (255, 250, 200), "vertebra"),
    Structure("C2", 52, (250, 245, 195), "vertebra"),
    Structure("C3", 53, (245, 240, 190), "vertebra"),
    Structure("C4", 54, (240, 235, 185), "vertebra"),
    Structure("C5", 55, (235, 230, 180), "vertebra"),
    Structure("C6", 56, (230, 225, 175), "vertebra"),
    Structure("C7", 57, (225, 220, 170), "vertebra"),
    Structure("T1", 58, (236, 212, 150), "vertebra"),
    Structure("T2", 59, (232, 208, 146), "vertebra"),
    Structure("T3", 60, (228, 204, 142), "vertebra"),
    Structure("T4", 61, (224, 200, 138), "vertebra"),
    Structure("T5", 62, (220, 196, 134), "vertebra"),
    Structure("T6", 63, (216, 192, 130), "vertebra"),
    Structure("T7", 64, (212, 188, 126), "vertebra"),
    Structure("T8", 65, (208, 184, 122), "vertebra"),
    Structure("T9", 66, (204, 180, 118), "vertebra"),
    Structure("T10", 67, (200, 176, 114), "vertebra"),
    Structure("T11", 68, (196, 172, 110), "vertebra"),
)

BY_NAME: dict[str, Structure] = {s.name: s for s in STRUCTURES}
BY_LABEL: dict[int, Structure] = {s.label: s for s in STRUCTURES}

#: every kind a structure can have
KINDS: tuple[str, ...] = ("vertebra", "sacrum", "ilium", "disc", "dural_sac", "root", "subregion", "class")
#: vertebrae from cranial to caudal (L6 only where present)
VERTEBRAE_ORDER: tuple[str, ...] = ("T12", "L1", "L2", "L3", "L4", "L5", "L6", "S1")
#: the whole column from cranial to caudal, including the supernumerary T13 and L6
SPINE_ORDER: tuple[str, ...] = (
    *(f"C{i}" for i in range(1, 8)),
    *(f"T{i}" for i in range(1, 14)),
    *(f"L{i}" for i in range(1, 7)),
    "S1",
)
#: vertebrae that only some people have; neighbours skip them unless they are present
OPTIONAL_VERTEBRAE: frozenset[str] = frozenset({"T13", "L6"})
#: the levels at which triangles are measured
TRIANGLE_LEVELS: tuple[str, ...] = ("L4-L5", "L5-S1")
SIDES: tuple[str, ...] = ("left", "right")
#: name used in label mappings for label value 0
BACKGROUND = "background"


def structure(name: str) -> Structure:
    """Look up a canonical structure by name, with a helpful error for unknown names."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise InputError(
            f"Unknown structure name '{name}'.",
            f"use one of the canonical names: {', '.join(BY_NAME)}",
        ) from None


def root_name(level: str, side: str) -> str:
    """Canonical name of the nerve root of vertebra ``level`` on ``side`` (e.g. ``root_L5_left``)."""
    return f"root_{level}_{side}"


def disc_name(upper: str, lower: str) -> str:
    """Canonical name of the disc between two vertebrae (e.g. ``disc_L5_S1``)."""
    return f"disc_{upper}_{lower}"


def structures_of_kind(kind: str) -> tuple[Structure, ...]:
    """All canonical structures of one kind (see :data:`KINDS`), in label-value order.

    Raises:
        InputError: for a kind that does not exist.
    """
    if kind not in KINDS:
        raise InputError(f"Unknown structure kind '{kind}'.", f"use one of: {', '.join(KINDS)}")
    return tuple(sorted((s for s in STRUCTURES if s.kind == kind), key=lambda s: s.label))


def _column(name: str, present: Iterable[str] | None) -> list[str]:
    if name not in SPINE_ORDER:
        raise InputError(
            f"'{name}' is not a vertebra of the column.",
            f"use one of: {', '.join(SPINE_ORDER)}",
        )
    have = set(present or ())
    return [v for v in SPINE_ORDER if v not in OPTIONAL_VERTEBRAE or v == name or v in have]


def vertebra_below(name: str, present: Iterable[str] | None = None) -> str | None:
    """The next vertebra caudal to ``name`` (``S1`` stands for the sacrum), or ``None`` below S1.

    The supernumerary vertebrae T13 and L6 count only when listed in ``present`` (e.g. the names found
    in a label map), or when ``name`` is one of them: ``vertebra_below("L5")`` is ``"S1"``, but
    ``vertebra_below("L5", present={"L6"})`` is ``"L6"``.

    Raises:
        InputError: when ``name`` is not a vertebra (:data:`SPINE_ORDER`).
    """
    column = _column(name, present)
    i = column.index(name)
    return column[i + 1] if i + 1 < len(column) else None


def vertebra_above(name: str, present: Iterable[str] | None = None) -> str | None:
    """The next vertebra cranial to ``name``, or ``None`` above C1; T13/L6 as in :func:`vertebra_below`."""
    column = _column(name, present)
    i = column.index(name)
    return column[i - 1] if i > 0 else None


# ================================================================================= Slicer terminology
#: terminology context of the extension's own ``SpineAI.term.json``
SPINEAI_CONTEXT = "Segmentation category and type - SpineAI"
#: Slicer's default segmentation context that already holds some of the codes
SLICER_DICOM_CONTEXT = "Segmentation category and type - DICOM master list"
#: Slicer's default anatomic-region context
REGION_CONTEXT = "Anatomic codes - DICOM master list"
#: schema URL Slicer accepts for a segmentation terminology context
TERMINOLOGY_SCHEMA = (
    "https://raw.githubusercontent.com/qiicr/dcmqi/master/doc/schemas/segment-context-schema.json#"
)
#: package-relative path of the extension's terminology context
TERMINOLOGY_RESOURCE = "resources/SpineAI.term.json"


@dataclass(frozen=True)
class Code:
    """One coded concept (DICOM "code sequence item"): ``SCT^49668003^L5 vertebra``."""

    coding_scheme: str
    code_value: str
    code_meaning: str

    def __str__(self) -> str:
        return f"{self.coding_scheme}^{self.code_value}^{self.code_meaning}"

    @property
    def key(self) -> tuple[str, str]:
        """(scheme, value): what Slicer compares when it looks a code up (the meaning is not compared)."""
        return (self.coding_scheme, self.code_value)

    def as_dict(self) -> dict[str, str]:
        return {
            "coding_scheme": self.coding_scheme,
            "code_value": self.code_value,
            "code_meaning": self.code_meaning,
        }


def _sct(value: str, meaning: str) -> Code:
    return Code("SCT", value, meaning)


_ANATOMICAL_STRUCTURE = _sct("123037004", "Anatomical Structure")
_TISSUE = _sct("85756007", "Tissue")
_LEFT = _sct("7771000", "Left")
_RIGHT = _sct("24028007", "Right")
_SURFACE = _sct("410679008", "Surface")
_SIDE_CODE = {"left": _LEFT, "right": _RIGHT}

# SNOMED CT codes of the vertebrae (DICOM CID 7603 "Vertebra"); T13 and L6 have no code of their own and
# use the regional "Bone structure of thoracic/lumbar vertebra" concepts with a meaning naming the level.
_VERTEBRA_CODE: dict[str, Code] = {
    "C1": _sct("14806007", "C1 vertebra"),
    "C2": _sct("39976000", "C2 vertebra"),
    "C3": _sct("113205007", "C3 vertebra"),
    "C4": _sct("5329002", "C4 vertebra"),
    "C5": _sct("36978003", "C5 vertebra"),
    "C6": _sct("36054005", "C6 vertebra"),
    "C7": _sct("87391001", "C7 vertebra"),
    "T1": _sct("64864005", "T1 vertebra"),
    "T2": _sct("53733008", "T2 vertebra"),
    "T3": _sct("1626008", "T3 vertebra"),
    "T4": _sct("73071006", "T4 vertebra"),
    "T5": _sct("56401006", "T5 vertebra"),
    "T6": _sct("45296009", "T6 vertebra"),
    "T7": _sct("62487009", "T7 vertebra"),
    "T8": _sct("11068009", "T8 vertebra"),
    "T9": _sct("82687006", "T9 vertebra"),
    "T10": _sct("7610001", "T10 vertebra"),
    "T11": _sct("12989004", "T11 vertebra"),
    "T12": _sct("23215003", "T12 vertebra"),
    "T13": _sct("35769007", "Thoracic vertebra (T13, supernumerary)"),
    "L1": _sct("66794005", "L1 vertebra"),
    "L2": _sct("14293000", "L2 vertebra"),
    "L3": _sct("36470004", "L3 vertebra"),
    "L4": _sct("11994002", "L4 vertebra"),
    "L5": _sct("49668003", "L5 vertebra"),
    "L6": _sct("73903008", "Lumbar vertebra (L6, supernumerary)"),
    # canonical S1 holds the sacrum (or its S1 segment), so it is coded as the sacrum
    "S1": _sct("54735007", "Sacrum"),
}
# DICOM CID 7604 "Intervertebral Disc"; discs next to L6 have no own code: generic disc + region
_DISC_CODE: dict[str, Code] = {
    "disc_T12_L1": _sct("76206002", "T12/L1 disc"),
    "disc_L1_L2": _sct("80064006", "L1/L2 disc"),
    "disc_L2_L3": _sct("67459009", "L2/L3 disc"),
    "disc_L3_L4": _sct("62551000", "L3/L4 disc"),
    "disc_L4_L5": _sct("84020006", "L4/L5 disc"),
    "disc_L5_S1": _sct("715056000", "L5/S1 disc"),
}
_INTERVERTEBRAL_DISC = _sct("360499006", "Intervertebral disc")
_SPINAL_NERVE_ROOT = _sct("69733000", "Spinal nerve root")
_SPINAL_DURA_MATER = _sct("37554007", "Spinal dura mater")
_ILIUM = _sct("22356005", "Ilium")
_VERTEBRAL_BODY = _sct("3572006", "Vertebral body")
# DICOM CID 6115 "Osseous Anatomy Modifier"
_SUBREGION_CODE: dict[str, Code] = {
    "vertebral_arch": _sct("40265002", "Arch of vertebra"),
    "spinous_process": _sct("55678000", "Spinous process of vertebra"),
    "transverse_process": _sct("73400003", "Transverse process of vertebra"),
    "superior_articular_process": _sct("317665004", "Superior articular process of vertebra"),
    "inferior_articular_process": _sct("317766009", "Inferior articular process of vertebra"),
}
_BONE_TISSUE = _sct("272673000", "Bone")
_NERVE_TISSUE = _sct("119410002", "Nerve")

#: (category, type, type modifier) keys present in Slicer's default DICOM master list context
_IN_SLICER_DICOM_MASTER: frozenset[tuple[tuple[str, str], tuple[str, str], tuple[str, str] | None]] = (
    frozenset(
        {
            (_ANATOMICAL_STRUCTURE.key, _VERTEBRA_CODE["S1"].key, None),
            (_ANATOMICAL_STRUCTURE.key, _ILIUM.key, _LEFT.key),
            (_ANATOMICAL_STRUCTURE.key, _ILIUM.key, _RIGHT.key),
            (_TISSUE.key, _BONE_TISSUE.key, None),
            (_TISSUE.key, _NERVE_TISSUE.key, None),
        }
    )
)


@dataclass(frozen=True)
class _Terminology:
    category: Code
    type: Code
    modifier: Code | None = None
    region: Code | None = None

    @property
    def context(self) -> str:
        key = (self.category.key, self.type.key, self.modifier.key if self.modifier else None)
        if self.region is None and key in _IN_SLICER_DICOM_MASTER:
            return SLICER_DICOM_CONTEXT
        return SPINEAI_CONTEXT


def _terminology_of(s: Structure) -> _Terminology:
    name = s.name
    side = _SIDE_CODE.get(s.side) if s.side else None
    if s.kind in ("vertebra", "sacrum"):
        return _Terminology(_ANATOMICAL_STRUCTURE, _VERTEBRA_CODE[name])
    if s.kind == "ilium":
        return _Terminology(_ANATOMICAL_STRUCTURE, _ILIUM, side)
    if s.kind == "disc":
        if name in _DISC_CODE:
            return _Terminology(_ANATOMICAL_STRUCTURE, _DISC_CODE[name])
        upper = name.split("_")[1]
        return _Terminology(_ANATOMICAL_STRUCTURE, _INTERVERTEBRAL_DISC, region=_VERTEBRA_CODE[upper])
    if s.kind == "dural_sac":
        return _Terminology(_ANATOMICAL_STRUCTURE, _SPINAL_DURA_MATER)
    if s.kind == "root":
        level = name.split("_")[1]
        return _Terminology(_ANATOMICAL_STRUCTURE, _SPINAL_NERVE_ROOT, side, region=_VERTEBRA_CODE[level])
    if s.kind == "subregion":
        if name == "vertebral_body":
            return _Terminology(_ANATOMICAL_STRUCTURE, _VERTEBRAL_BODY)
        if name == "vertebral_body_cortex":
            return _Terminology(_ANATOMICAL_STRUCTURE, _VERTEBRAL_BODY, _SURFACE)
        base = name[: -len("_" + s.side)] if s.side else name
        return _Terminology(_ANATOMICAL_STRUCTURE, _SUBREGION_CODE[base], side)
    if s.kind == "class":
        return _Terminology(_TISSUE, _BONE_TISSUE if name == "bone" else _NERVE_TISSUE)
    raise AssertionError(f"no terminology rule for kind {s.kind}")  # every kind in KINDS is handled above


_TERMINOLOGY: dict[str, _Terminology] = {s.name: _terminology_of(s) for s in STRUCTURES}


def terminology_fields(name: str) -> dict[str, Any]:
    """The terminology of a canonical structure, field by field.

    Returns:
        ``{"context", "category", "type", "type_modifier", "region_context", "region",
        "region_modifier"}``; each code is a dict ``{"coding_scheme", "code_value", "code_meaning"}``
        or ``None`` when absent. Nerve roots and the discs next to L6 carry their level as the anatomic
        region (the vertebra under whose pedicle the root exits, or the vertebra above the disc).

    Raises:
        InputError: for a name that is not canonical.
    """
    term = _TERMINOLOGY[structure(name).name]
    return {
        "context": term.context,
        "category": term.category.as_dict(),
        "type": term.type.as_dict(),
        "type_modifier": term.modifier.as_dict() if term.modifier else None,
        "region_context": REGION_CONTEXT,
        "region": term.region.as_dict() if term.region else None,
        "region_modifier": None,
    }


def _code_str(code: Code | None) -> str:
    return str(code) if code is not None else "^^"


def terminology_entry(name: str) -> str:
    """The Slicer ``TerminologyEntry`` tag string of a canonical structure.

    Seven ``~``-separated fields, as ``vtkSlicerTerminologiesModuleLogic::SerializeTerminologyEntry``
    writes them: context ~ category ~ type ~ type modifier ~ region context ~ region ~ region modifier,
    each code as ``scheme^value^meaning`` and ``^^`` when absent, e.g.::

        Segmentation category and type - SpineAI~SCT^123037004^Anatomical Structure~SCT^49668003^L5
        vertebra~^^~Anatomic codes - DICOM master list~^^~^^

    Raises:
        InputError: for a name that is not canonical.
    """
    term = _TERMINOLOGY[structure(name).name]
    parts = (
        term.context,
        _code_str(term.category),
        _code_str(term.type),
        _code_str(term.modifier),
        REGION_CONTEXT,
        _code_str(term.region),
        _code_str(None),
    )
    return "~".join(parts)


def parse_terminology_entry(entry: str) -> dict[str, Any]:
    """Split a ``TerminologyEntry`` string into the fields of :func:`terminology_fields`.

    Raises:
        InputError: when the string does not have seven ``~``-separated fields with
            ``scheme^value^meaning`` codes, or has no category or type.
    """
    parts = entry.split("~")
    fix = "give the full Slicer string: context~category~type~modifier~region context~region~region modifier"
    if len(parts) != 7:
        raise InputError(
            f"Terminology entry has {len(parts)} '~'-separated fields instead of 7: {entry!r}.", fix
        )

    def code(text: str, field: str) -> dict[str, str] | None:
        items = text.split("^")
        if len(items) != 3:
            raise InputError(f"Terminology field '{field}' is not scheme^value^meaning: {text!r}.", fix)
        if not items[0] and not items[1]:
            return None
        return {"coding_scheme": items[0], "code_value": items[1], "code_meaning": items[2]}

    out = {
        "context": parts[0],
        "category": code(parts[1], "category"),
        "type": code(parts[2], "type"),
        "type_modifier": code(parts[3], "type modifier"),
        "region_context": parts[4],
        "region": code(parts[5], "region"),
        "region_modifier": code(parts[6], "region modifier"),
    }
    if out["category"] is None or out["type"] is None:
        raise InputError(f"Terminology entry {entry!r} has no category or type.", fix)
    return out


def name_from_terminology(entry: str) -> str:
    """The canonical structure a ``TerminologyEntry`` string describes (codes compared by scheme and value).

    Lets a segment renamed by an annotator be recognised by its terminology.

    Raises:
        InputError: when the string is malformed or matches no canonical structure.
    """
    fields = parse_terminology_entry(entry)

    def key(code: dict[str, str] | None) -> tuple[str, str] | None:
        return (code["coding_scheme"], code["code_value"]) if code else None

    wanted = (
        key(fields["category"]),
        key(fields["type"]),
        key(fields["type_modifier"]),
        key(fields["region"]),
    )
    for s in STRUCTURES:
        term = _TERMINOLOGY[s.name]
        have = (
            term.category.key,
            term.type.key,
            term.modifier.key if term.modifier else None,
            term.region.key if term.region else None,
        )
        if have == wanted:
            return s.name
    raise InputError(
        f"Terminology entry {entry!r} matches no canonical SpineAI structure.",
        "choose the segment's terminology from the SpineAI context, or rename the segment to a canonical name",
    )


def build_terminology_json() -> dict[str, Any]:
    """The extension's Slicer terminology context, built from the structure table.

    Layout of Slicer's ``*.term.json`` files (dcmqi ``segment-context-schema``): ``SegmentationCodes ->
    Category[] -> Type[] -> Modifier[]``. It holds every category, type and modifier code any
    structure's entry uses (also those in Slicer's DICOM master list, so the extension's colours are
    offered there too) and the vertebra codes used as anatomic regions. A type's
    ``recommendedDisplayRGBValue`` is the colour of the first structure with that code; segments carry
    their own colour from :data:`STRUCTURES`.
    """
    categories: dict[tuple[str, str], dict[str, Any]] = {}
    types: dict[tuple[tuple[str, str], tuple[str, str]], dict[str, Any]] = {}

    def entry(code: Code) -> dict[str, Any]:
        out: dict[str, Any] = {
            "CodeMeaning": code.code_meaning,
            "CodingSchemeDesignator": code.coding_scheme,
            "CodeValue": code.code_value,
        }
        if code.coding_scheme == "SCT":
            out["SNOMEDCTConceptID"] = code.code_value
        return out

    # a (type, modifier) used by exactly one structure without a region gets that structure's name as
    # its "3dSlicerLabel", so Slicer assigns the terminology to a segment named like the structure
    users: dict[tuple[Any, ...], list[Structure]] = {}
    for s in STRUCTURES:
        term = _TERMINOLOGY[s.name]
        users.setdefault(
            (term.category.key, term.type.key, term.modifier.key if term.modifier else None), []
        ).append(s)

    def label_for(key: tuple[Any, ...]) -> str | None:
        owners = users[key]
        if len(owners) == 1 and _TERMINOLOGY[owners[0].name].region is None:
            return owners[0].name
        return None

    for s in sorted(STRUCTURES, key=lambda s: s.label):
        term = _TERMINOLOGY[s.name]
        cat = categories.get(term.category.key)
        if cat is None:
            cat = entry(term.category)
            cat["showAnatomy"] = term.category.key == _TISSUE.key
            cat["Type"] = []
            categories[term.category.key] = cat
        tkey = (term.category.key, term.type.key)
        typ = types.get(tkey)
        if typ is None:
            typ = entry(term.type)
            typ["paired"] = "U"
            types[tkey] = typ
            cat["Type"].append(typ)
        key = (term.category.key, term.type.key, term.modifier.key if term.modifier else None)
        if term.modifier is None:
            typ.setdefault("recommendedDisplayRGBValue", list(s.rgb))
            slicer_label = label_for(key)
            if slicer_label:
                typ["3dSlicerLabel"] = slicer_label
        else:
            if term.modifier.key in (_LEFT.key, _RIGHT.key):
                typ["paired"] = "Y"
            modifiers = typ.setdefault("Modifier", [])
            if all((m["CodingSchemeDesignator"], m["CodeValue"]) != term.modifier.key for m in modifiers):
                mod = entry(term.modifier)
                mod["recommendedDisplayRGBValue"] = list(s.rgb)
                slicer_label = label_for(key)
                if slicer_label:
                    mod["3dSlicerLabel"] = slicer_label
                modifiers.append(mod)
    return {
        "SegmentationCategoryTypeContextName": SPINEAI_CONTEXT,
        "@schema": TERMINOLOGY_SCHEMA,
        "SegmentationCodes": {"Category": list(categories.values())},
    }


def terminology_json_path() -> Path:
    """Path of the shipped ``SpineAI.term.json`` (load it in Slicer with the Terminologies module)."""
    return Path(str(resources.files("spineai").joinpath(TERMINOLOGY_RESOURCE)))


def load_terminology_json() -> dict[str, Any]:
    """The shipped Slicer terminology context ``resources/SpineAI.term.json``, parsed.

    Raises:
        InputError: when the file is missing or not valid JSON (a broken installation).
    """
    path = terminology_json_path()
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"Terminology file '{path}' is missing.",
            "reinstall the spineai package (pip install --force-reinstall)",
        ) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"Terminology file '{path}' is not valid JSON ({exc}).", "reinstall the spineai package"
        ) from None


def write_terminology_json(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write :func:`build_terminology_json` to ``path`` (atomically; refuses to overwrite by default)."""
    from .outputs import write_json

    return write_json(path, build_terminology_json(), overwrite=overwrite)


# ==================================================================================== label mappings
_CHUNK = 1 << 22  # voxels per block when scanning large label maps (bounds temporary memory)


def _integer_labels(array: np.ndarray, what: str) -> np.ndarray:
    """``array`` as a non-negative integer array (floats must hold whole numbers), else InputError."""
    arr = np.asarray(array)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise InputError(
                f"{what} holds non-integer or NaN values; a label map must hold whole label numbers.",
                "pass the label map itself (not a probability map or a resampled image interpolated linearly)",
            )
        arr = arr.astype(np.int64)
    elif not np.issubdtype(arr.dtype, np.integer):
        raise InputError(
            f"{what} has data type {arr.dtype}, not integer labels.", "pass an integer label map"
        )
    if arr.size and np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
        raise InputError(
            f"{what} holds negative values (min {int(arr.min())}).", "pass a label map of values >= 0"
        )
    return arr


def _present_values(flat: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a flat non-negative integer array, scanned block by block."""
    if flat.size == 0:
        return np.zeros(0, dtype=np.int64)
    top = int(flat.max())
    if top < (1 << 16):
        seen = np.zeros(top + 1, dtype=bool)
        for start in range(0, flat.size, _CHUNK):
            block = flat[start : start + _CHUNK].astype(np.intp, copy=False)
            seen |= np.bincount(block, minlength=top + 1) > 0
        return np.flatnonzero(seen)
    return np.unique(np.concatenate([np.unique(flat[i : i + _CHUNK]) for i in range(0, flat.size, _CHUNK)]))


def _apply_lut(flat: np.ndarray, lut: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty(flat.size, dtype=lut.dtype)
    for start in range(0, flat.size, _CHUNK):
        out[start : start + _CHUNK] = lut[flat[start : start + _CHUNK]]
    return out.reshape(shape)


def _fmt_values(values: Iterable[int], names: Mapping[int, str] | None = None) -> str:
    items = [f"{v} ({names[v]})" if names and v in names else str(v) for v in values]
    return ", ".join(items)


@dataclass(frozen=True)
class LabelMapping:
    """An explicit table from one label convention's values to canonical structure names.

    Value 0 is background in every convention and is not listed. A file value may map to
    :data:`BACKGROUND` to drop that class on purpose. Several file values may map to the same
    canonical name (TotalSegmentator's ``sacrum`` and ``vertebrae_S1`` both become ``S1``); converting
    back then uses the first value listed for that name.

    Attributes:
        source: the convention's name, e.g. ``"verse"`` (written as ``"convention"`` in sidecars).
        values: file label value (>= 1) -> canonical name.
    """

    source: str
    values: dict[int, str]

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise InputError(f"Label convention name {self.source!r} is empty.", "give the convention a name")
        clean: dict[int, str] = {}
        for raw, name in dict(self.values).items():
            if isinstance(raw, bool) or not isinstance(raw, (int, np.integer)) or int(raw) < 1:
                raise InputError(
                    f"Label convention '{self.source}': label value {raw!r} is not an integer >= 1.",
                    "list label values 1, 2, ... (0 is always background and is not listed)",
                )
            if name != BACKGROUND and name not in BY_NAME:
                raise InputError(
                    f"Label convention '{self.source}': value {int(raw)} maps to '{name}', not a canonical name.",
                    f"map it to '{BACKGROUND}' or to one of: {', '.join(BY_NAME)}",
                )
            clean[int(raw)] = name
        object.__setattr__(self, "values", dict(sorted(clean.items())))

    def __hash__(self) -> int:
        return hash((self.source, tuple(self.values.items())))

    # ------------------------------------------------------------------ conversion
    def _canonical_lut(self, top: int) -> np.ndarray:
        lut = np.zeros(max(top, max(self.values, default=0)) + 1, dtype=np.uint8)
        for value, name in self.values.items():
            lut[value] = 0 if name == BACKGROUND else BY_NAME[name].label
        return lut

    def to_canonical(self, array: np.ndarray, *, drop_unmapped: bool = False) -> np.ndarray:
        """Convert a label map in this convention to canonical label values.

        Args:
            array: label map of any shape (integer, or float holding whole numbers).
            drop_unmapped: set values this table does not list to background instead of raising
                (e.g. the organs of a TotalSegmentator ``total`` output). Off by default: nothing is
                dropped unless asked for.

        Returns:
            uint8 array of canonical label values, same shape.

        Raises:
            InputError: a value present in ``array`` is not in the table (listing those values), or
                ``array`` is not an integer label map.
        """
        arr = _integer_labels(array, f"Label map in the '{self.source}' convention")
        flat = arr.reshape(-1)
        present = _present_values(flat)
        unknown = [int(v) for v in present if v != 0 and int(v) not in self.values]
        if unknown and not drop_unmapped:
            raise InputError(
                f"Label values {_fmt_values(unknown)} occur in the label map but are not part of the "
                f"'{self.source}' convention (it lists {_fmt_values(self.values, self.values)}).",
                "check that the file really uses this convention (pick another with get_mapping()), "
                "relabel or remove those classes, or pass drop_unmapped=True to treat them as background",
            )
        top = int(present[-1]) if present.size else 0
        return _apply_lut(flat, self._canonical_lut(top), arr.shape)

    def from_canonical(self, array: np.ndarray, *, drop_unmapped: bool = False) -> np.ndarray:
        """Convert a canonical label map to this convention's values (the first value listed per name).

        Args:
            array: canonical label map of any shape.
            drop_unmapped: write structures this convention cannot represent as background instead
                of raising.

        Returns:
            uint8 array (uint16 when a value exceeds 255), same shape.

        Raises:
            InputError: a value is not a canonical label, or a structure present has no value in
                this convention (naming them).
        """
        arr = _integer_labels(array, "Canonical label map")
        flat = arr.reshape(-1)
        present = [int(v) for v in _present_values(flat) if v != 0]
        not_canonical = [v for v in present if v not in BY_LABEL]
        if not_canonical:
            raise InputError(
                f"Values {_fmt_values(not_canonical)} in the label map are not canonical label values.",
                "convert the label map to canonical values first (LabelMapping.to_canonical)",
            )
        inverse: dict[int, int] = {}
        for value, name in self.values.items():
            if name != BACKGROUND:
                inverse.setdefault(BY_NAME[name].label, value)
        missing = [v for v in present if v not in inverse]
        if missing and not drop_unmapped:
            names = {v: BY_LABEL[v].name for v in missing}
            raise InputError(
                f"Structures {_fmt_values(missing, names)} have no label value in the '{self.source}' convention.",
                "remove them first, pass drop_unmapped=True to write them as background, "
                "or keep the canonical convention",
            )
        dtype = np.uint8 if max(inverse.values(), default=0) <= 255 else np.uint16
        lut = np.zeros(max(max(present, default=0), max(BY_LABEL)) + 1, dtype=dtype)
        for canonical_value, file_value in inverse.items():
            lut[canonical_value] = file_value
        return _apply_lut(flat, lut, arr.shape)

    # ------------------------------------------------------------------ description
    def names(self) -> list[str]:
        """Canonical names this convention can express, in order of their first label value."""
        out: list[str] = []
        for name in self.values.values():
            if name != BACKGROUND and name not in out:
                out.append(name)
        return out

    def to_json(self) -> dict[str, Any]:
        """The label sidecar: ``{"convention": ..., "labels": {"<value>": {"name", "rgb", "terminology"}}}``.

        ``rgb`` and ``terminology`` come from the canonical table (for viewers such as Slicer); reading
        a sidecar uses only the names.
        """
        labels: dict[str, dict[str, Any]] = {}
        for value, name in self.values.items():
            if name == BACKGROUND:
                labels[str(value)] = {"name": BACKGROUND, "rgb": [0, 0, 0], "terminology": ""}
            else:
                labels[str(value)] = {
                    "name": name,
                    "rgb": list(BY_NAME[name].rgb),
                    "terminology": terminology_entry(name),
                }
        return {"convention": self.source, "labels": labels}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str) -> LabelMapping:
        """Read a sidecar written by :meth:`to_json` (a dict, or its JSON text).

        Raises:
            InputError: malformed sidecar, a key that is not an integer >= 1, or a non-canonical name.
        """
        fix = (
            'write it as {"convention": "<name>", "labels": {"6": {"name": "L5"}, ...}} with canonical names'
        )
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise InputError(f"Label sidecar is not valid JSON ({exc}).", fix) from None
        if not isinstance(data, Mapping) or not isinstance(data.get("labels"), Mapping):
            raise InputError("Label sidecar has no 'labels' table.", fix)
        source = data.get("convention") or "unspecified"
        values: dict[int, str] = {}
        for key, item in data["labels"].items():
            try:
                value = int(str(key))
            except ValueError:
                raise InputError(f"Label sidecar key {key!r} is not an integer label value.", fix) from None
            name = item.get("name") if isinstance(item, Mapping) else item
            if not isinstance(name, str):
                raise InputError(f"Label sidecar entry {key!r} has no 'name'.", fix)
            if value == 0:
                if name != BACKGROUND:
                    raise InputError(f"Label sidecar maps value 0 to '{name}'; 0 is always background.", fix)
                continue
            values[value] = name
        return cls(str(source), values)

    def save_json(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write :meth:`to_json` to ``path`` atomically (refusing to overwrite unless ``overwrite``)."""
        from .outputs import write_json

        return write_json(path, self.to_json(), overwrite=overwrite)

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> LabelMapping:
        """Read a sidecar file written by :meth:`save_json`.

        Raises:
            InputError: missing or malformed file.
        """
        p = Path(path)
        if not p.is_file():
            raise InputError(
                f"Label sidecar '{p}' does not exist.", "pass the labels.json written with the label map"
            )
        return cls.from_json(p.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------- predefined mappings
#: identity over the canonical table
CANONICAL = LabelMapping("spineai", {s.label: s.name for s in STRUCTURES})

#: VerSe (Sekuboyina et al.): 1-7 C1-C7, 8-19 T1-T12, 20-24 L1-L5, 25 L6, 26 sacrum, 28 T13;
#: 27 (coccyx) has no canonical structure and raises
_VERSE_VALUES: dict[int, str] = {
    **{i: f"C{i}" for i in range(1, 8)},
    **{7 + i: f"T{i}" for i in range(1, 13)},
    **{19 + i: f"L{i}" for i in range(1, 6)},
    25: "L6",
    26: "S1",
    28: "T13",
}
VERSE = LabelMapping("verse", _VERSE_VALUES)
#: TPTBox vertebra instances (``TPTBox.core.vert_constants``): same numbering as VerSe
TPTBOX_VERTEBRA = LabelMapping("tptbox_vertebra", _VERSE_VALUES)
#: TPTBox ``Location`` sub-regions 41..50. 43/45/47 (``*_Left``) lie at larger LPS x (the patient's left)
#: on the shared TPTBox sample; 49 (``Vertebra_Corpus_border``) is the cortical shell around 50
#: (``Vertebra_Corpus``), so the whole vertebral body is 49 + 50.
TPTBOX_SUBREGION = LabelMapping(
    "tptbox_subregion",
    {
        41: "vertebral_arch",
        42: "spinous_process",
        43: "transverse_process_left",
        44: "transverse_process_right",
        45: "superior_articular_process_left",
        46: "superior_articular_process_right",
        47: "inferior_articular_process_left",
        48: "inferior_articular_process_right",
        49: "vertebral_body_cortex",
        50: "vertebral_body",
    },
)
#: the SPINECT paper's (seed 003) classes: 0 background, 1 bone, 2 nerve
PAPER_3CLASS = LabelMapping("paper_3class", {1: "bone", 2: "nerve"})

#: TotalSegmentator v2 class name -> canonical name. ``hip_*`` is the whole hip bone (ilium, ischium and
#: pubis), mapped to ``ilium_*``; ``spinal_cord`` is mapped to ``dural_sac``, the closest canonical
#: structure in the lumbar canal (a proxy: it is not a dural-sac label). Both ``sacrum`` and
#: ``vertebrae_S1`` become ``S1``.
TOTALSEG_V2_NAMES: dict[str, str] = {
    **{f"vertebrae_C{i}": f"C{i}" for i in range(1, 8)},
    **{f"vertebrae_T{i}": f"T{i}" for i in range(1, 13)},
    **{f"vertebrae_L{i}": f"L{i}" for i in range(1, 6)},
    "vertebrae_S1": "S1",
    "sacrum": "S1",
    "hip_left": "ilium_left",
    "hip_right": "ilium_right",
    "spinal_cord": "dural_sac",
}
#: label ids of those classes in TotalSegmentator's ``total`` task (``totalsegmentator/map_to_binary.py``,
#: ``class_map["total"]``); its other 93 classes (organs, vessels, ribs, muscles...) are not mapped
TOTALSEG_V2_TOTAL_IDS: dict[int, str] = {
    25: "sacrum",
    26: "vertebrae_S1",
    **{27 + i: f"vertebrae_L{5 - i}" for i in range(5)},
    **{32 + i: f"vertebrae_T{12 - i}" for i in range(12)},
    **{44 + i: f"vertebrae_C{7 - i}" for i in range(7)},
    77: "hip_left",
    78: "hip_right",
    79: "spinal_cord",
}
TOTALSEG_V2 = LabelMapping("totalseg_v2", {v: TOTALSEG_V2_NAMES[n] for v, n in TOTALSEG_V2_TOTAL_IDS.items()})


def totalseg_to_canonical(class_name: str) -> str:
    """Canonical name of a TotalSegmentator v2 class (e.g. ``"vertebrae_L5"`` -> ``"L5"``).

    Raises:
        InputError: for a class with no canonical counterpart.
    """
    try:
        return TOTALSEG_V2_NAMES[class_name]
    except KeyError:
        raise InputError(
            f"TotalSegmentator class '{class_name}' has no canonical SpineAI structure.",
            f"use one of: {', '.join(TOTALSEG_V2_NAMES)}",
        ) from None


#: registry of the predefined conventions (names are matched case-insensitively; '-' equals '_')
MAPPINGS: dict[str, LabelMapping] = {
    "canonical": CANONICAL,
    "spineai": CANONICAL,
    "verse": VERSE,
    "totalseg_v2": TOTALSEG_V2,
    "tptbox_vertebra": TPTBOX_VERTEBRA,
    "tptbox_subregion": TPTBOX_SUBREGION,
    "paper_3class": PAPER_3CLASS,
}


def get_mapping(name: str) -> LabelMapping:
    """A predefined label convention by name (see :data:`MAPPINGS`).

    Raises:
        InputError: for an unknown name, listing the known ones.
    """
    key = str(name).strip().lower().replace("-", "_")
    try:
        return MAPPINGS[key]
    except KeyError:
        raise InputError(
            f"Unknown label convention '{name}'.",
            f"use one of: {', '.join(MAPPINGS)}; or a labels.json sidecar (LabelMapping.load_json)",
        ) from None


# ================================================================================ the paper's classes
#: canonical kinds that are bone / nerve in the SPINECT paper's 3-class map (seed 003)
BONE_KINDS: frozenset[str] = frozenset({"vertebra", "sacrum", "ilium", "subregion"})
NERVE_KINDS: frozenset[str] = frozenset({"root", "dural_sac"})


def to_three_class(canonical: np.ndarray, discs_as: str = "background") -> np.ndarray:
    """Canonical label map -> the paper's classes: 0 background, 1 bone, 2 nerve.

    Bone = vertebrae, sacrum, ilium and vertebral sub-regions; nerve = nerve roots *and* the dural sac
    (the paper's manual nerve masks include the dural sac: its Fig 5 marks "the compressed dura" on
    the nerve renderings). The paper did not segment discs, so they are background by default;
    ``discs_as="bone"`` merges them into bone instead. Canonical ``bone``/``nerve`` stay 1/2.

    Args:
        canonical: canonical label map, any shape.
        discs_as: ``"background"`` or ``"bone"``.

    Returns:
        uint8 array of 0/1/2, same shape.

    Raises:
        InputError: a value is not a canonical label, or ``discs_as`` is not one of the two choices.
    """
    if discs_as not in ("background", "bone"):
        raise InputError(f"discs_as={discs_as!r} is not supported.", "use 'background' or 'bone'")
    arr = _integer_labels(canonical, "Canonical label map")
    flat = arr.reshape(-1)
    present = [int(v) for v in _present_values(flat) if v != 0]
    unknown = [v for v in present if v not in BY_LABEL]
    if unknown:
        raise InputError(
            f"Values {_fmt_values(unknown)} in the label map are not canonical label values.",
            "convert the label map to canonical values first (LabelMapping.to_canonical)",
        )
    lut = np.zeros(max(max(present, default=0), max(BY_LABEL)) + 1, dtype=np.uint8)
    for s in STRUCTURES:
        if s.kind in BONE_KINDS or (s.kind == "disc" and discs_as == "bone") or s.name == "bone":
            lut[s.label] = 1
        elif s.kind in NERVE_KINDS or s.name == "nerve":
            lut[s.label] = 2
    return _apply_lut(flat, lut, arr.shape)
