"""Training of the outcome 3D CNN (Kim et al. 2022 recipe) on ROI arrays.

Recipe (paper, Table 1): Adam, learning rate 1e-4, batch size 4, ReLU, dropout 0.1, rotation augmentation
by an angle drawn from [-20, -10, -5, 5, 10, 20] degrees, binary outcome (softmax cross-entropy over
poor/good). Validation: a patient-grouped 20 % split (one fold of 5, :func:`spineai.stats.grouped_kfold`);
after every epoch the validation AUC is measured and the best epoch's weights are kept. The Youden-optimal
threshold on the validation set is stored in the model card as the default operating point.

Rotation is physical: the ROI's H (cranio-caudal) and W (antero-posterior) axes have different voxel sizes,
so the sampling grid is rotated in millimetres, not in voxels.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..outputs import prepare_output_dir, write_json, write_text

__all__ = [
    "OutcomeTrainConfig",
    "OutcomeTrainResult",
    "rotate_batch",
    "train_outcome",
    "train_outcome_from_data",
]

#: the paper's rotation angles (degrees)
PAPER_ROTATIONS: tuple[float, ...] = (-20.0, -10.0, -5.0, 5.0, 10.0, 20.0)
#: nominal physical size (mm) of the ROI's H and W extents, for physically correct rotation
ROI_EXTENT_HW_MM: tuple[float, float] = (150.0, 125.0)


@dataclass
class OutcomeTrainConfig:
    """Training settings (defaults: the paper's where it gives them).

    Attributes:
        epochs: passes over the training set.
        batch_size: cases per step (4).
        learning_rate: Adam learning rate (1e-4).
        rotation_angles: augmentation angles in degrees (the paper's six).
        rotation_prob: share of training samples rotated (the rest are shown as they are).
        features, dropout, norm, pooling: network settings (see :class:`~spineai.outcome.network.OutcomeCNN3D`).
        val_fraction: held-out share for model selection (0.2 = one of five patient-grouped folds).
        seed: random seed (split, initialisation, batches, augmentation).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        num_threads: CPU threads for PyTorch (1 keeps a shared machine responsive).
        keep_best: keep the epoch with the best validation AUC (else the last epoch).
        model_name: name in the model card.
    """

    epochs: int = 20
    batch_size: int = 4
    learning_rate: float = 1e-4
    rotation_angles: tuple[float, ...] = PAPER_ROTATIONS
    rotation_prob: float = 0.5
    features: tuple[int, ...] = (8, 16, 32, 64)
    dropout: float = 0.1
    norm: str = "batch"
    pooling: str = "max"
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "cpu"
    num_threads: int = 1
    keep_best: bool = True
    model_name: str = "outcome_tesi_site"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["rotation_angles"] = list(self.rotation_angles)
        d["features"] = list(self.features)
        return d


@dataclass
class OutcomeTrainResult:
    """What training produced.

    Attributes:
        weights_path, card_path: the best epoch's weights and card (``None`` when no output folder).
        best_epoch: 1-based epoch with the best validation AUC.
        best_val_auc: that AUC.
        threshold: Youden-optimal probability threshold on the validation set.
        history: per-epoch dicts (train loss, validation loss and AUC).
        model: the trained network (best epoch), on the CPU.
        val_indices: validation case indices.
    """

    weights_path: Path | None
    card_path: Path | None
    best_epoch: int
    best_val_auc: float
    threshold: float
    history: list[dict[str, float]]
    model: Any = field(repr=False, default=None)
    val_indices: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=int))


def _device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"Device '{name}' was requested but no CUDA GPU is available.", "use --device cpu")
    return torch.device(name)


def rotate_batch(
    x: Any, angles_deg: Sequence[float], extent_hw_mm: tuple[float, float] = ROI_EXTENT_HW_MM
) -> Any:
    """Rotate ROI tensors ``(B, C, D, H, W)`` in the sagittal (H-W) plane by a physical angle per sample.

    Linear interpolation, border values repeated. Angle 0 leaves a sample unchanged.
    """
    import torch
    import torch.nn.functional as F

    b = x.shape[0]
    theta = torch.zeros((b, 3, 4), dtype=x.dtype, device=x.device)
    sh, sw = extent_hw_mm[0] / 2.0, extent_hw_mm[1] / 2.0
    for k, a in enumerate(angles_deg):
        c, s = math.cos(math.radians(a)), math.sin(math.radians(a))
        # grid coordinates (w, h, d) in [-1, 1]; physical rotation: u' = S^-1 R S u with S = diag(sw, sh)
        theta[k, 0, 0] = c
        theta[k, 0, 1] = -s * sh / sw
        theta[k, 1, 0] = s * sw / sh
        theta[k, 1, 1] = c
        theta[k, 2, 2] = 1.0
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _predict(model: Any, x: np.ndarray, device: Any, batch: int = 16) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            t = torch.from_numpy(np.asarray(x[i : i + batch], dtype=np.float32)).unsqueeze(1).to(device)
            out.append(torch.softmax(model(t), dim=1)[:, 1].cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _split(
    y: np.ndarray, groups: Sequence[str], val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    from ..stats import grouped_kfold

    if not 0.0 < val_fraction < 1.0:
        raise InputError(f"val_fraction {val_fraction} is not in (0, 1).", "use e.g. 0.2")
    n_splits = max(2, int(round(1.0 / val_fraction)))
    folds = grouped_kfold(np.asarray(groups), n_splits=n_splits, y=y, seed=seed)
    return folds[0]


def train_outcome(
    x: np.ndarray,
    y: np.ndarray,
    groups: Sequence[str] | None = None,
    config: OutcomeTrainConfig | None = None,
    out: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    training_data: Any = "",
    extra_card: dict[str, Any] | None = None,
    val_indices: np.ndarray | None = None,
    max_steps: int | None = None,
    soft_targets: np.ndarray | None = None,
) -> OutcomeTrainResult:
    """Train the outcome CNN on ROI arrays and (with ``out``) write the best weights and their card.

    Args:
        x: ROIs ``(N, 13, 100, 40)`` (float16/32, normalised by :func:`~spineai.outcome.roi.normalise_roi`).
        y: labels ``(N,)``, 1 good / 0 poor.
        groups: patient id per case (default: every case its own patient).
        config: settings.
        out: run folder (new or empty): ``model.safetensors`` + ``model.json``, ``train.log``,
            ``history.tsv``, ``validation.json``.
        overwrite: allow a non-empty ``out``.
        training_data: description for the model card.
        extra_card: fields merged into the card (``metrics``, ``extra``, ``training_recipe`` ...).
        val_indices: explicit validation cases (default: a patient-grouped ``val_fraction`` split).
        max_steps: stop after this many optimiser steps (quick checks).
        soft_targets: optional probability of a good outcome per case ``(N,)`` in [0, 1], used as the
            training target (cross-entropy against ``(1 - q, q)``) instead of the 0/1 labels. Only synthetic
            cohorts know it (the generative ``p_good``); it removes the label noise of the Bernoulli draw.
            Model selection and the threshold still use the 0/1 labels of the validation cases.
    """
    import torch

    from ..stats import delong_ci, youden_threshold
    from ..weights import save_weights
    from .network import ARCHITECTURE, CLASS_NAMES, TASK, build_network, count_parameters

    cfg = config or OutcomeTrainConfig()
    xa = np.asarray(x)
    ya = np.asarray(y).astype(np.int64)
    if xa.ndim != 4 or xa.shape[0] != ya.shape[0]:
        raise InputError(
            f"ROI array of shape {xa.shape} for {ya.shape[0]} labels.",
            "pass x of shape (N, 13, 100, 40) and one label per case",
        )
    if cfg.batch_size < 1 or cfg.epochs < 1 or cfg.learning_rate <= 0:
        raise InputError(
            f"Invalid training settings: epochs {cfg.epochs}, batch {cfg.batch_size}, "
            f"learning rate {cfg.learning_rate}.",
            "use positive values",
        )
    groups = list(groups) if groups is not None else [str(i) for i in range(len(ya))]
    qa = None
    if soft_targets is not None:
        qa = np.asarray(soft_targets, dtype=np.float32)
        if qa.shape != ya.shape or not np.all(np.isfinite(qa)) or qa.min() < 0 or qa.max() > 1:
            raise InputError(
                f"soft_targets of shape {qa.shape} for {ya.shape[0]} labels, or values outside [0, 1].",
                "pass one probability of a good outcome per case",
            )
    if val_indices is None:
        train_idx, val_idx = _split(ya, groups, cfg.val_fraction, cfg.seed)
    else:
        val_idx = np.asarray(val_indices, dtype=int)
        train_idx = np.setdiff1d(np.arange(len(ya)), val_idx)
    for part, idx in (("training", train_idx), ("validation", val_idx)):
        if len(np.unique(ya[idx])) < 2:
            raise InputError(
                f"The {part} set has only one outcome class ({len(idx)} cases).",
                "add cases of both outcomes (good and poor)",
            )
    out_dir = prepare_output_dir(out, overwrite=overwrite) if out is not None else None
    torch.set_num_threads(max(1, int(cfg.num_threads)))
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = _device(cfg.device)
    model = build_network(
        {"features": cfg.features, "dropout": cfg.dropout, "norm": cfg.norm, "pooling": cfg.pooling}
    ).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    loss_fn = torch.nn.CrossEntropyLoss()
    history: list[dict[str, float]] = []
    best = (-1.0, math.inf)
    best_state = copy.deepcopy(model.state_dict())
    best_epoch = 0
    steps = 0
    log_lines = [f"training {len(train_idx)} cases, validating {len(val_idx)}; {cfg.to_dict()}"]
    t0 = time.time()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = rng.permutation(train_idx)
        losses = []
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            xb = torch.from_numpy(xa[idx].astype(np.float32)).unsqueeze(1).to(device)
            if qa is None:
                yb = torch.from_numpy(ya[idx]).to(device)
            else:
                q = torch.from_numpy(qa[idx])
                yb = torch.stack([1.0 - q, q], dim=1).to(device)
            if cfg.rotation_angles and cfg.rotation_prob > 0:
                angles = [
                    float(rng.choice(cfg.rotation_angles)) if rng.random() < cfg.rotation_prob else 0.0
                    for _ in idx
                ]
                if any(angles):
                    xb = rotate_batch(xb, angles)
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        p_val = _predict(model, xa[val_idx], device)
        eps = 1e-6
        val_loss = float(
            -np.mean(ya[val_idx] * np.log(p_val + eps) + (1 - ya[val_idx]) * np.log(1 - p_val + eps))
        )
        from sklearn.metrics import roc_auc_score

        val_auc = float(roc_auc_score(ya[val_idx], p_val))
        row = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)) if losses else float("nan"),
            "val_loss": val_loss,
            "val_auc": val_auc,
            "seconds": time.time() - t0,
        }
        history.append(row)
        log_lines.append(
            " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
        )
        if not cfg.keep_best or val_auc > best[0] or (val_auc == best[0] and val_loss < best[1]):
            best = (val_auc, val_loss)
            best_state = copy.deepcopy(model.state_dict())
            best_epoch = epoch
        if max_steps is not None and steps >= max_steps:
            break
    model.load_state_dict(best_state)
    model = model.to("cpu").eval()
    p_val = _predict(model, xa[val_idx], torch.device("cpu"))
    choice = youden_threshold(ya[val_idx], p_val)
    try:
        val_auc_ci: dict[str, Any] | None = delong_ci(ya[val_idx], p_val).to_dict()
    except InputError:  # fewer than two cases of a class: no interval
        val_auc_ci = None
    result = OutcomeTrainResult(
        weights_path=None,
        card_path=None,
        best_epoch=best_epoch,
        best_val_auc=best[0],
        threshold=choice.threshold,
        history=history,
        model=model,
        val_indices=val_idx,
    )
    if out_dir is None:
        return result
    card = {
        "name": cfg.model_name,
        "task": TASK,
        "architecture": ARCHITECTURE,
        "config": model.config,
        "class_names": list(CLASS_NAMES),
        "input": {
            "modality": "MR",
            "sequence": "T2-weighted sagittal (turbo spin echo)",
            "roi_shape_dhw": [13, 100, 40],
            "roi": "L3..S1 with the paraspinal muscles: 13 sagittal planes 4 mm apart centred on the midline "
            "(D, left to right), superior to inferior (H), anterior to posterior (W); see spineai.outcome.roi",
            "intensity": "0.5th percentile of the ROI -> 0, 99.5th -> 1, clipped to [-0.2, 1.5]",
        },
        "training_data": training_data,
        "training_recipe": {
            **cfg.to_dict(),
            "optimizer": "Adam",
            "loss": "softmax cross-entropy (poor, good)"
            + ("" if qa is None else " against soft targets (1 - p_good, p_good)"),
            "model_selection": "best validation AUC over epochs" if cfg.keep_best else "last epoch",
            "parameters": count_parameters(model),
            "n_train": int(len(train_idx)),
            "n_validation": int(len(val_idx)),
            "best_epoch": best_epoch,
        },
        "metrics": {
            "validation": {
                "auc": val_auc_ci,
                "youden_threshold": choice.to_dict(),
                "n_good": int(ya[val_idx].sum()),
                "n_poor": int(len(val_idx) - ya[val_idx].sum()),
            },
        },
        "extra": {"decision_threshold": choice.threshold},
    }
    if extra_card:
        for key, value in extra_card.items():
            if isinstance(value, dict) and isinstance(card.get(key), dict):
                card[key] = {**card[key], **value}
            else:
                card[key] = value
    weights, card_path = save_weights(model, out_dir / "model.safetensors", card, overwrite=overwrite)
    header = "epoch\ttrain_loss\tval_loss\tval_auc\tseconds\n"
    write_text(
        out_dir / "history.tsv",
        header
        + "".join(
            f"{h['epoch']}\t{h['train_loss']:.5f}\t{h['val_loss']:.5f}\t{h['val_auc']:.5f}\t{h['seconds']:.1f}\n"
            for h in history
        ),
        overwrite=overwrite,
    )
    write_text(out_dir / "train.log", "\n".join(log_lines) + "\n", overwrite=overwrite)
    write_json(
        out_dir / "validation.json",
        {"indices": val_idx.tolist(), "probabilities": p_val.tolist(), "labels": ya[val_idx].tolist()},
        overwrite=overwrite,
    )
    result.weights_path, result.card_path = weights, card_path
    return result


def train_outcome_from_data(
    data: str | os.PathLike,
    out: str | os.PathLike,
    config: OutcomeTrainConfig | None = None,
    *,
    roi: str = "auto",
    skip_bad_rows: bool = False,
    overwrite: bool = False,
) -> tuple[OutcomeTrainResult, list[str]]:
    """Train from a manifest CSV or a folder of cases (see :mod:`spineai.outcome.data`).

    Returns:
        ``(result, problems)``: problems lists skipped manifest rows and cases whose ROI failed.
    """
    from .data import load_cases, rois_for_cases

    out_dir = Path(out)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        from ..errors import OutputExistsError

        raise OutputExistsError(out_dir)  # refuse before the slow part
    cases, problems = load_cases(data, skip_bad_rows=skip_bad_rows)
    rois = rois_for_cases(cases, roi=roi)
    problems = problems + [f"ROI failed: {f}" for f in rois.failed]
    if len(rois.y) < 10:
        raise InputError(f"Only {len(rois.y)} usable case(s) in '{data}'.", "train on at least tens of cases")
    cfg = config or OutcomeTrainConfig()
    result = train_outcome(
        rois.x,
        rois.y,
        rois.groups,
        cfg,
        out,
        overwrite=overwrite,
        training_data={"source": str(data), "cases": len(rois.y), "skipped": problems[:50]},
    )
    return result, problems
