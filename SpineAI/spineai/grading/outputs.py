"""Files written for one graded slice: table (TSV + JSON), Grad-CAM images and PNG overlays.

Every file is written atomically and nothing existing is replaced unless ``overwrite`` (see
:mod:`spineai.outputs`).

* ``grades.tsv``: one row per disc (IVD number, level, structure, position, confidence, every grade and
  every grade's probability);
* ``grades.json``: :meth:`SagittalGradingResult.to_dict` (notes, model, per-disc grades and probabilities);
* ``gradcam_<grading>.nii.gz``: the Grad-CAM map (float32, 0..1) on the input's own geometry (a 2D image
  for a picture; for a volume, a volume that is zero except on the graded sagittal slice), ready to be
  shown over the input as a colour overlay (3D Slicer: load as a volume, choose it as foreground);
* ``gradcam_<grading>.png``: the upright working slice with the map, the disc patches and each disc's
  level and predicted grade.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..outputs import atomic_path, prepare_output_dir, write_json, write_text
from .tasks import task_by_key

if TYPE_CHECKING:
    from .sagittal import SagittalGradingResult

__all__ = ["write_grading_outputs", "write_overlay_png"]


def _tsv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def write_overlay_png(
    result: SagittalGradingResult, grading: str, path: str | os.PathLike, overwrite: bool = False
) -> Path:
    """PNG of the upright graded slice with the Grad-CAM map of ``grading`` and the disc patches."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    overlay = result._overlay
    task = task_by_key(grading)
    slice_ = overlay["slice"]
    heat = overlay["maps"].get(grading)
    rows, cols = slice_.shape
    fig = plt.figure(figsize=(7.0 * cols / max(rows, cols), 7.0 * rows / max(rows, cols) / 0.93), dpi=110)
    ax = fig.add_axes((0.0, 0.0, 1.0, 0.93))
    ax.imshow(slice_, cmap="gray", vmin=0, vmax=1, interpolation="bilinear")
    if heat is not None:
        masked = np.ma.masked_less_equal(heat, 0.02)
        ax.imshow(masked, cmap="jet", vmin=0, vmax=1, alpha=0.45, interpolation="bilinear")
    by_level = {d.level: d for d in result.discs}
    for corners, (r, c), level in zip(overlay["corners"], overlay["centres"], overlay["labels"], strict=True):
        closed = np.vstack([corners, corners[:1]])
        ax.plot(closed[:, 1], closed[:, 0], color="white", linewidth=0.6, alpha=0.8)
        ax.plot([c], [r], marker="+", color="yellow", markersize=6)
        grade = by_level[level].grades[grading] if level in by_level else None
        text = level if grade is None else f"{level}  {task.grade_names[task.index_of(grade)]}"
        ax.text(
            c - 0.12 * cols,
            r,
            text,
            color="yellow",
            fontsize=7,
            ha="right",
            va="center",
            bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "linewidth": 0},
        )
    ax.set_axis_off()
    fig.suptitle(f"Grad-CAM: {task.title} (predicted grade) - research use only", fontsize=8)
    with atomic_path(path, overwrite) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def write_grading_outputs(
    result: SagittalGradingResult, out_dir: str | os.PathLike, overwrite: bool = False
) -> dict[str, Path]:
    """Write the files listed in the module docstring into ``out_dir`` (new or empty unless ``overwrite``)."""
    from ..io import write_image

    folder = prepare_output_dir(out_dir, overwrite=overwrite)
    written = {
        "table_tsv": write_text(folder / "grades.tsv", _tsv(result.table_rows()), overwrite=overwrite),
        "table_json": write_json(folder / "grades.json", result.to_dict(), overwrite=overwrite),
    }
    for key, image in result.heatmaps.items():
        written[f"gradcam_{key}"] = write_image(image, folder / f"gradcam_{key}.nii.gz", overwrite=overwrite)
        written[f"overlay_{key}"] = write_overlay_png(
            result, key, folder / f"gradcam_{key}.png", overwrite=overwrite
        )
    return written
