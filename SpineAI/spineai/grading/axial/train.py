"""Training of the multi-task axial grader (seed 004's recipe, every setting overridable).

Recipe: summed cross-entropy of the three heads (a blank grade in the manifest is ignored by its head),
Adam (initial learning rate 1e-3, weight decay 1e-4; the paper gives only the initial rate, here it
decays along a cosine over the epochs, or stays constant with ``lr_schedule="constant"``), batch 16, 100 epochs, on-line augmentation by a random
rotation of -15..15 degrees and a random crop (a square of 80-100 % of the side at a random position,
resized back to the input size). The epoch with the best mean accuracy of the three gradings on the
validation images is kept. ``torch.set_num_threads(config.threads)`` (default 1) while training; the
previous setting is restored. ``max_minutes`` stops training early at an epoch boundary.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import InputError
from ...progress import track
from ..model import torch_threads
from .data import AxialRecord
from .grades import AXIAL_TASK_KEYS
from .model import PAPER_CONFIG, AxialGraderNet, prepare_axial_input

__all__ = [
    "AxialTrainConfig",
    "augment_batch",
    "predict_probabilities",
    "prepare_arrays",
    "train_axial_from_folder",
    "train_axial_grader",
]


@dataclass
class AxialTrainConfig:
    """Settings of :func:`train_axial_grader` (defaults: the paper's recipe and network)."""

    epochs: int = 100
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"
    rotation_deg: float = 15.0
    crop_scale: tuple[float, float] = (0.8, 1.0)
    seed: int = 0
    threads: int = 1
    max_minutes: float | None = None
    architecture: dict[str, Any] = field(default_factory=lambda: dict(PAPER_CONFIG))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def prepare_arrays(
    records: Sequence[AxialRecord], size: int, progress: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Network inputs ``(N, size, size)`` uint8 (0..255 = 0..1) and grades ``(N, 3)`` (-1 = not graded).

    A row's ``roi`` box, when given, is read instead of the whole slice.
    """
    from .slices import crop_to_box, read_axial_slice

    x = np.zeros((len(records), size, size), dtype=np.uint8)
    y = np.full((len(records), len(AXIAL_TASK_KEYS)), -1, dtype=np.int64)
    for i, rec in enumerate(
        track(records, desc="reading axial slices", disable=None if progress is None else not progress)
    ):
        ws = read_axial_slice(rec.image, slice_index=rec.slice_index, check_sagittal_picture=False)
        work = ws.array if rec.roi is None else crop_to_box(ws, rec.roi)[0]
        arr, _geo = prepare_axial_input(work, size)
        x[i] = np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)
        for j, key in enumerate(AXIAL_TASK_KEYS):
            g = rec.grades.get(key)
            y[i, j] = -1 if g is None else int(g)
    return x, y


def augment_batch(
    x: torch.Tensor, rotation_deg: float, crop_scale: tuple[float, float], generator: torch.Generator
) -> torch.Tensor:
    """Random rotation (+-``rotation_deg``) and random square crop (side fraction in ``crop_scale``, random
    position, resized back), bilinear, zero outside. ``x``: ``(B, 1, S, S)``."""
    import torch.nn.functional as F

    b = x.shape[0]
    angle = (torch.rand(b, generator=generator) * 2 - 1) * np.deg2rad(rotation_deg)
    lo, hi = crop_scale
    scale = lo + torch.rand(b, generator=generator) * (hi - lo)
    shift = (torch.rand(b, 2, generator=generator) * 2 - 1) * (1 - scale)[:, None]
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], dim=1), torch.stack([sin, cos, shift[:, 1]], dim=1)], dim=1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _as_float(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    return t[:, None]


def predict_probabilities(net: AxialGraderNet, x: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Softmax probabilities ``{task: (N, 4)}`` of inputs ``(N, S, S)`` (uint8 or float in [0, 1])."""
    was = net.training
    net.eval()
    out: dict[str, list[np.ndarray]] = {k: [] for k in AXIAL_TASK_KEYS}
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            logits = net(_as_float(x[start : start + batch_size]))
            for k, v in AxialGraderNet.split(logits).items():
                out[k].append(torch.softmax(v, dim=1).numpy())
    net.train(was)
    return {k: np.concatenate(v) if v else np.zeros((0, 4)) for k, v in out.items()}


def _val_score(net: AxialGraderNet, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, float]]:
    probs = predict_probabilities(net, x)
    acc = {}
    for j, k in enumerate(AXIAL_TASK_KEYS):
        known = y[:, j] >= 0
        acc[k] = (
            float(np.mean(np.argmax(probs[k][known], axis=1) == y[known, j])) if known.any() else float("nan")
        )
    values = [v for v in acc.values() if np.isfinite(v)]
    return (float(np.mean(values)) if values else float("nan")), acc


def train_axial_grader(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray | None = None,
    val_y: np.ndarray | None = None,
    config: AxialTrainConfig | None = None,
    *,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[AxialGraderNet, dict[str, Any]]:
    """Train an :class:`AxialGraderNet`.

    Args:
        train_x: inputs ``(N, S, S)`` (uint8 0..255 or float 0..1), ``S`` = the architecture's input size.
        train_y: grades ``(N, 3)`` (LDH, LCCS, LNRC; -1 = not graded).
        val_x, val_y: validation images (the best epoch by mean accuracy is kept); ``None``: the last epoch.
        config: the recipe (default :class:`AxialTrainConfig`).
        progress: progress bar over epochs (``None``: when interactive).
        log: called with one line per epoch.

    Returns:
        ``(network in eval mode, history)``: history has per-epoch ``loss``, validation accuracies, the
        chosen epoch, the number of training steps and the wall time.
    """
    cfg = config or AxialTrainConfig()
    size = int(cfg.architecture.get("input_size", PAPER_CONFIG["input_size"]))
    if train_x.ndim != 3 or train_x.shape[1:] != (size, size):
        raise ValueError(f"training inputs must be (N, {size}, {size}), got {train_x.shape}")
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    history: dict[str, Any] = {"epochs": [], "config": cfg.to_dict()}
    start = time.monotonic()
    with torch_threads(cfg.threads):
        net = AxialGraderNet(**cfg.architecture)
        optimiser = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        if cfg.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"unknown lr_schedule '{cfg.lr_schedule}'; use cosine or constant")
        scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(cfg.epochs, 1))
            if cfg.lr_schedule == "cosine"
            else None
        )
        labels = torch.from_numpy(np.asarray(train_y, dtype=np.int64))
        best_state, best_score, best_epoch = None, -np.inf, None
        steps = 0
        for epoch in track(
            range(cfg.epochs),
            desc="training axial grader",
            disable=None if progress is None else not progress,
        ):
            net.train()
            order = rng.permutation(len(train_x))
            losses = []
            for s in range(0, len(order), cfg.batch_size):
                idx = order[s : s + cfg.batch_size]
                if len(idx) < 2:
                    continue
                xb = augment_batch(_as_float(train_x[idx]), cfg.rotation_deg, cfg.crop_scale, generator)
                logits = AxialGraderNet.split(net(xb))
                loss = sum(
                    torch.nn.functional.cross_entropy(logits[k], labels[idx, j], ignore_index=-1)
                    for j, k in enumerate(AXIAL_TASK_KEYS)
                    if bool((labels[idx, j] >= 0).any())
                )
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                losses.append(float(loss.detach()))
                steps += 1
            if scheduler is not None:
                scheduler.step()
            entry: dict[str, Any] = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else None}
            if val_x is not None and val_y is not None and len(val_x):
                score, acc = _val_score(net, val_x, val_y)
                entry.update({"val_mean_accuracy": score, "val_accuracy": acc})
                if score > best_score:
                    best_score, best_epoch = score, epoch + 1
                    best_state = copy.deepcopy(net.state_dict())
            entry["minutes"] = (time.monotonic() - start) / 60.0
            history["epochs"].append(entry)
            if log:
                extra = f", val acc {entry['val_mean_accuracy']:.3f}" if "val_mean_accuracy" in entry else ""
                log(f"epoch {epoch + 1}: loss {entry['loss']:.4f}{extra} ({entry['minutes']:.1f} min)")
            if cfg.max_minutes is not None and entry["minutes"] >= cfg.max_minutes:
                history["stopped_early"] = (
                    f"time limit of {cfg.max_minutes} minutes reached after epoch {epoch + 1}"
                )
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
    history.update(
        {
            "best_epoch": best_epoch if best_epoch is not None else len(history["epochs"]),
            "best_val_mean_accuracy": None if best_epoch is None else float(best_score),
            "steps": steps,
            "wall_minutes": (time.monotonic() - start) / 60.0,
            "train_images": int(len(train_x)),
            "val_images": 0 if val_x is None else int(len(val_x)),
        }
    )
    return net, history


def train_axial_from_folder(
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: AxialTrainConfig | None = None,
    *,
    name: str = "axial_grader",
    val_fraction: float = 0.15,
    split_seed: int = 2024,
    training_data: Any = None,
    overwrite: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train on a manifest folder and write ``<out_dir>/<name>.safetensors`` with its model card.

    The rows are split by patient (:func:`~spineai.grading.axial.data.split_records`; a ``split`` column
    wins); the validation rows choose the epoch and give the card's figures (:func:`axial_metrics`).

    Args:
        data: folder with ``manifest.csv`` (image, ldh, lccs, lnrc) or the CSV.
        out_dir: output folder (created; existing weights are refused unless ``overwrite``).
        config: the recipe (default: the paper's, ResNet-50).
        name: model name and file stem.
        val_fraction: share of patients held out for validation.
        split_seed: seed of the patient split.
        training_data: what the card says the data is (default: the manifest path and counts).
        overwrite: replace existing weights and card.
        progress, log: progress bar and per-epoch log lines.

    Returns:
        ``{"weights": path, "card": path, "history": ..., "metrics": ...}``.
    """
    from ...outputs import check_writable
    from ...weights import ModelCard, save_weights
    from .data import read_manifest, split_records
    from .evaluate import axial_metrics
    from .model import ARCHITECTURE, TASK, class_names

    cfg = config or AxialTrainConfig()
    folder = Path(out_dir)
    weights_path = folder / f"{name}.safetensors"
    check_writable(weights_path, overwrite)
    check_writable(folder / f"{name}.json", overwrite)
    manifest = read_manifest(data, need="grades")
    parts = split_records(manifest.records, val_fraction=val_fraction, seed=split_seed)
    if not parts["train"]:
        raise InputError(
            f"No training rows in '{manifest.path}' after the split.",
            "add rows or lower the validation share",
        )
    size = int(cfg.architecture.get("input_size", PAPER_CONFIG["input_size"]))
    train_x, train_y = prepare_arrays(parts["train"], size, progress=progress)
    val_x, val_y = prepare_arrays(parts["val"], size, progress=progress) if parts["val"] else (None, None)
    net, history = train_axial_grader(train_x, train_y, val_x, val_y, cfg, progress=progress, log=log)
    metrics: dict[str, Any] = {}
    if val_x is not None:
        with torch_threads(cfg.threads):
            probs = predict_probabilities(net, val_x)
        truth, pred, prob = {}, {}, {}
        for j, key in enumerate(AXIAL_TASK_KEYS):
            known = val_y[:, j] >= 0
            truth[key] = val_y[known, j].tolist()
            pred[key] = np.argmax(probs[key][known], axis=1).tolist()
            prob[key] = probs[key][known]
        metrics = {"validation": {"images": int(len(val_x)), "metrics": axial_metrics(truth, pred, prob)}}
    card = ModelCard(
        name=name,
        task=TASK,
        architecture=ARCHITECTURE,
        config=dict(net.config),
        class_names=class_names(),
        input={
            "modality": "MRI, T2-weighted, one axial slice at a lumbar disc level",
            "orientation": "reoriented to LPS: rows anterior->posterior, columns patient right->left",
            "intensity": "per-slice linear scaling of the 0.5th-99.5th percentiles to [0, 1]",
            "network_input": f"slice fitted into {size} x {size} pixels, aspect kept, zero padded",
        },
        training_data=training_data
        or {
            "manifest": str(manifest.path),
            "train_images": len(parts["train"]),
            "val_images": len(parts["val"]),
            "split": {"by": "patient", "val_fraction": val_fraction, "seed": split_seed},
        },
        training_recipe={
            **cfg.to_dict(),
            **{k: history[k] for k in ("best_epoch", "steps", "wall_minutes", "train_images", "val_images")},
        },
        metrics=metrics,
        extra={
            "history": history["epochs"],
            **({"stopped_early": history["stopped_early"]} if "stopped_early" in history else {}),
        },
    )
    folder.mkdir(parents=True, exist_ok=True)
    w, c = save_weights(net, weights_path, card, overwrite=overwrite)
    return {"weights": w, "card": c, "history": history, "metrics": metrics}
