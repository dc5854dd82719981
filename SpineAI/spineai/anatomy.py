"""Canonical lumbosacral anatomy: structure names, label values and colours.

Every label map the engine reads or writes is expressed in these canonical names. Label values here
are the engine's own convention; other conventions (VerSe, TotalSegmentator v2, TPTBox, the SPINECT
paper's 3-class bone/nerve map) are converted through explicit mappings.

Levels are written ``L4-L5`` / ``L5-S1`` in measurements; sides are ``left``/``right`` of the
patient (LPS frame: +x is the patient's left).
"""

from __future__ import annotations

from dataclasses import dataclass


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
)

BY_NAME: dict[str, Structure] = {s.name: s for s in STRUCTURES}
BY_LABEL: dict[int, Structure] = {s.label: s for s in STRUCTURES}

#: vertebrae from cranial to caudal (L6 only where present)
VERTEBRAE_ORDER: tuple[str, ...] = ("T12", "L1", "L2", "L3", "L4", "L5", "L6", "S1")
#: the levels at which triangles are measured
TRIANGLE_LEVELS: tuple[str, ...] = ("L4-L5", "L5-S1")
SIDES: tuple[str, ...] = ("left", "right")


def structure(name: str) -> Structure:
    """Look up a canonical structure by name, with a helpful error for unknown names."""
    try:
        return BY_NAME[name]
    except KeyError:
        from .errors import InputError

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
