"""Files of a level labelling: the relabelled segmentation, ``levels.json`` and ``levels.tsv``.

:func:`write_levels_outputs` writes (atomically; nothing existing is replaced unless ``overwrite``):

* ``labels.seg.nrrd``: the relabelled segmentation for 3D Slicer (named, coloured segments; the CT's grid
  as reference geometry when a CT was given);
* ``labels.nii.gz`` + ``labels.json``: the same as NIfTI with its canonical label sidecar;
* ``levels.json``: :meth:`LevelResult.to_dict` (names, confidence, flags, Castellvi, evidence, warnings);
* ``levels.tsv``: one row per vertebra (name, VerSe label, input name, confidence, trusted, flags,
  Castellvi per side, volume, disc below);
* with measurements: ``measurements.json`` (:func:`spineai.planning.measure_triangles` on the relabelled
  map, so every level name follows the numbering) and ``morphometry.json``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..outputs import check_writable, prepare_output_dir, write_json, write_text
from .labelling import LevelResult

TSV_COLUMNS = (
    "name",
    "verse_label",
    "input_name",
    "confidence",
    "trusted",
    "flags",
    "castellvi_left",
    "castellvi_right",
    "volume_ml",
    "disc_below_mm",
)


def levels_tsv(result: LevelResult) -> str:
    """``levels.tsv`` text (tab-separated, header line first)."""
    lines = ["\t".join(TSV_COLUMNS)]
    for row in result.table_rows():
        lines.append("\t".join(str(row[c]) for c in TSV_COLUMNS))
    return "\n".join(lines) + "\n"


def triangle_levels(result: LevelResult) -> list[str]:
    """The two lowest disc levels of the numbering (where the triangles are measured), e.g. ``L4-L5``, ``L5-S1``."""
    names = result.names
    pairs = [f"{names[i]}-{names[i + 1]}" for i in range(len(names) - 1)]
    return pairs[-2:]


def remeasure(
    result: LevelResult, levels: Sequence[str] | None = None, sides: Sequence[str] = ("left", "right")
):
    """Kambin's and the safe triangle on the relabelled map (names follow the numbering and any override).

    Args:
        result: a :class:`LevelResult`.
        levels: levels to measure (default :func:`triangle_levels`).
        sides: patient sides.

    Returns:
        :class:`spineai.planning.TriangleMeasurements`.
    """
    from ..planning import measure_triangles

    return measure_triangles(
        result.labelmap, ct=result.ct, levels=list(levels or triangle_levels(result)), sides=sides
    )


def write_levels_outputs(
    result: LevelResult,
    out_dir: str | os.PathLike,
    overwrite: bool = False,
    *,
    triangles: Any = None,
    morphometry: Any = None,
) -> dict[str, Path]:
    """Write the outputs listed in the module docstring into ``out_dir`` (new or empty unless ``overwrite``).

    Args:
        result: output of :func:`spineai.levels.label_levels`.
        out_dir: folder.
        overwrite: replace files of the same names.
        triangles: optional :class:`spineai.planning.TriangleMeasurements` of the relabelled map.
        morphometry: optional :class:`spineai.levels.morphometry.Morphometry` of the relabelled map.

    Returns:
        file name -> path.

    Raises:
        OutputExistsError: the folder is not empty (or a file exists) and ``overwrite`` is False.
    """
    from .. import io

    out = prepare_output_dir(out_dir, overwrite=overwrite)
    names = ["labels.seg.nrrd", "labels.nii.gz", "labels.json", "levels.json", "levels.tsv"]
    if triangles is not None:
        names.append("measurements.json")
    if morphometry is not None:
        names.append("morphometry.json")
    for n in names:
        check_writable(out / n, overwrite)
    written: dict[str, Path] = {}
    written["labels.seg.nrrd"] = io.write_seg_nrrd(
        result.labelmap, out / "labels.seg.nrrd", overwrite=overwrite, reference=result.ct, keep_empty=False
    )
    img, side = io.write_labelmap_nifti(result.labelmap, out / "labels.nii.gz", overwrite=overwrite)
    written["labels.nii.gz"], written["labels.json"] = Path(img), Path(side)
    written["levels.json"] = write_json(out / "levels.json", result.to_dict(), overwrite=overwrite)
    written["levels.tsv"] = write_text(out / "levels.tsv", levels_tsv(result), overwrite=overwrite)
    if triangles is not None:
        written["measurements.json"] = write_json(
            out / "measurements.json", triangles.to_dict(), overwrite=overwrite
        )
    if morphometry is not None:
        written["morphometry.json"] = write_json(
            out / "morphometry.json", morphometry.to_dict(), overwrite=overwrite
        )
    return written
