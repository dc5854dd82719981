"""Training of the radiograph herniation model: k-fold cross-validation grouped by patient, bagging ensemble.

Recipe (seed paper, with its defaults): EfficientNet (B5 there), binary cross-entropy with logits per level
L1-L2 .. L5-S1 (positive levels weighted by the training fold's negative/positive ratio, at most 10, since
herniation is rare at the upper levels), optional age regression as a second task (mean squared error on
the standardised age, weight ``age_weight``), Adam with cosine annealing and warm restarts, CLAHE and
resizing only (no flips or rotations: the levels must keep their order).

Four-fold cross-validation grouped by patient (:func:`spineai.stats.grouped_kfold`, stratified by "any
herniation"): every patient's images lie in one validation fold only. Each fold trains its own model and
keeps the epoch with the best mean per-level AUC on its validation patients (image probabilities averaged
per patient); on those patients it picks each level's Youden-optimal threshold and reports precision,
recall, F1 and AUC per level (the paper's Table 3). The folds' models form the bagging ensemble (mean of
their probabilities) with, per level, the mean of the folds' thresholds as the decision threshold.

Resumable: each finished fold is saved in the run folder (``fold_<k>.safetensors`` + card, fp32) and is
reused when training is started again with the same settings and data.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..outputs import write_json, write_text

__all__ = ["RadiographTrainConfig", "RadiographTrainResult", "train_radiograph", "train_radiograph_arrays"]


@dataclass
class RadiographTrainConfig:
    """Training settings (defaults: the paper's where it gives them).

    Attributes:
        model_name: MONAI EfficientNet (``efficientnet-b5`` as the paper).
        width_multiplier: channel-width factor (1 = the standard model; the CPU demo uses 0.5).
        image_size: square network input (pixels; 456 is B5's native size).
        folds: cross-validation folds (4).
        epochs: epochs per fold.
        batch_size: images per step.
        learning_rate: Adam learning rate (paper 3e-5 with ImageNet weights; from scratch 1e-3 learns faster).
        restart_epochs: epochs of the first cosine cycle (warm restarts double it each time).
        age_task: add the age-regression task.
        age_weight: weight of the age loss.
        augment: random zoom (0.9-1.1), shift (up to 6 % of the side) and contrast/brightness jitter of each
            training image; never flips or rotations, so the levels keep their order (off: the paper's
            CLAHE and resizing only).
        max_pos_weight: upper bound of a level's positive-class weight.
        bn_momentum: batch-norm momentum (0.01 as MONAI/TensorFlow; 0.1 for short runs).
        seed: random seed (folds, initialisation, batches).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        num_threads: CPU threads for PyTorch.
        model_card_name: name written in the model card.
    """

    model_name: str = "efficientnet-b5"
    width_multiplier: float = 1.0
    image_size: int = 456
    folds: int = 4
    epochs: int = 10
    batch_size: int = 8
    learning_rate: float = 3e-5
    restart_epochs: int = 5
    age_task: bool = False
    age_weight: float = 0.2
    augment: bool = False
    max_pos_weight: float = 10.0
    bn_momentum: float = 0.01
    seed: int = 0
    device: str = "cpu"
    num_threads: int = 1
    model_card_name: str = "radiograph_hnp_site"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass
class RadiographTrainResult:
    """What training produced.

    Attributes:
        weights_path, card_path: the ensemble's weights and card.
        thresholds: per level, the mean of the folds' Youden thresholds.
        folds: per fold: best epoch, thresholds, per-level validation figures.
        cross_validation: figures of the pooled out-of-fold patient predictions.
        model: the ensemble (CPU, evaluation mode).
    """

    weights_path: Path | None
    card_path: Path | None
    thresholds: list[float]
    folds: list[dict[str, Any]]
    cross_validation: dict[str, Any]
    model: Any = field(default=None, repr=False)


def _device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"Device '{name}' was requested but no CUDA GPU is available.", "use --device cpu")
    return torch.device(name)


def _predict_members(net: Any, x: np.ndarray, device: Any, batch: int = 32) -> np.ndarray:
    import torch

    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            t = torch.from_numpy(np.asarray(x[i : i + batch], dtype=np.float32)).unsqueeze(1).to(device)
            out.append(torch.sigmoid(net(t)[0]).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 5))


def _mean_auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    aucs = [roc_auc_score(y[:, k], p[:, k]) for k in range(y.shape[1]) if 0 < y[:, k].sum() < len(y)]
    return float(np.mean(aucs)) if aucs else float("nan")


def _youden_thresholds(y: np.ndarray, p: np.ndarray) -> list[float]:
    from ..stats import youden_threshold

    out = []
    for k in range(y.shape[1]):
        if 0 < y[:, k].sum() < len(y):
            out.append(youden_threshold(y[:, k], p[:, k]).threshold)
        else:  # one class only in this fold: no ROC; the neutral threshold
            out.append(0.5)
    return out


def _fingerprint(cfg: RadiographTrainConfig, arrays: Any) -> dict[str, Any]:
    import hashlib

    h = hashlib.sha256()
    h.update(np.ascontiguousarray(arrays.x[:, ::8, ::8]).tobytes())
    h.update(np.ascontiguousarray(arrays.labels).tobytes())
    h.update("\n".join(arrays.patients).encode())
    return {**cfg.to_dict(), "n_images": int(len(arrays.x)), "data_sha256": h.hexdigest()}


def _fold_summary(
    info: dict[str, Any],
    fold: int,
    p_val: np.ndarray,
    patients: Any,
    labels: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
) -> dict[str, Any]:
    """A fold's record: ``info`` plus its sizes, its Youden thresholds and its per-level validation report,
    from the image probabilities ``p_val`` ``(len(val_idx), 5)`` averaged per validation patient."""
    from .evaluate import level_report, patient_means

    _ids, pm, ym = patient_means(p_val, [patients[i] for i in val_idx], labels[val_idx])
    thresholds = _youden_thresholds(ym, pm)
    return {
        **info,
        "fold": fold,
        "n_train_images": int(len(train_idx)),
        "n_val_images": int(len(val_idx)),
        "n_val_patients": int(len(ym)),
        "thresholds": thresholds,
        "validation": level_report(ym, pm, thresholds),
    }


def _cross_validation(
    folds: list[dict[str, Any]], oof: np.ndarray, patients: Any, labels: np.ndarray, what: str
) -> tuple[list[float], dict[str, Any], tuple[Any, np.ndarray, np.ndarray]]:
    """Ensemble thresholds (mean of the folds'), the out-of-fold per-level report at them (described by
    ``what``), and the out-of-fold ``(patient ids, patient probabilities, patient labels)``."""
    from .evaluate import level_report, patient_means
    from .network import LEVELS

    thresholds = [float(np.mean([f["thresholds"][k] for f in folds])) for k in range(len(LEVELS))]
    ids, pm, ym = patient_means(oof, patients, labels)
    cv = level_report(ym, pm, thresholds)
    cv["what"] = what
    return thresholds, cv, (ids, pm, ym)


def _record_epoch(
    net: Any,
    p_val: np.ndarray,
    val_patients: list[str],
    val_labels: np.ndarray,
    fold: int,
    epoch: int,
    losses: list[float],
    t0: float,
    best: tuple[float, Any, int],
    history: list[dict[str, Any]],
    log: list[str],
) -> tuple[dict[str, Any], tuple[float, Any, int]]:
    """Score one epoch on its validation patients, record it and keep the best weights.

    Args:
        net: the fold's network (its ``state_dict`` is copied when the epoch is the best so far).
        p_val: ``(N, 5)`` probabilities of the validation images; ``val_patients`` and ``val_labels``
            ``(N, 5)``: their patients and labels (image probabilities are averaged per patient).
        fold, epoch: where the epoch stands; losses: its training losses; t0: the fold's start (``time.time``).
        best: ``(score, state_dict, epoch)`` so far; history and log: appended to in place.

    Returns:
        ``(row, best)``: the epoch's record (fold, epoch, train_loss, val_mean_auc, seconds since ``t0``)
        and the updated best (an epoch without a finite mean AUC scores -1).
    """
    from .evaluate import patient_means

    _ids, pm, ym = patient_means(p_val, val_patients, val_labels)
    auc = _mean_auc(ym, pm)
    row = {
        "fold": fold,
        "epoch": epoch,
        "train_loss": float(np.mean(losses)) if losses else float("nan"),
        "val_mean_auc": auc,
        "seconds": time.time() - t0,
    }
    history.append(row)
    log.append(" ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    score = auc if math.isfinite(auc) else -1.0
    if score > best[0]:
        best = (score, copy.deepcopy(net.state_dict()), epoch)
    return row, best


def augment_batch(x: Any, rng: np.random.Generator) -> Any:
    """Zoom, shift and contrast jitter of a batch ``(N, 1, H, W)`` (tensor, input scale [-0.5, 0.5]).

    Per image: zoom 0.9-1.1 and a shift of up to 6 % of the side (bilinear, border pixels repeated), then
    ``x * c + b`` with contrast ``c`` in 0.85-1.15 and brightness ``b`` in -0.05..0.05. No flip or
    rotation: the lumbar levels keep their order from top to bottom.
    """
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    zoom = rng.uniform(0.9, 1.1, n)
    shift = rng.uniform(-0.12, 0.12, (n, 2))  # normalised coordinates span 2: 0.12 = 6 % of the side
    theta = np.zeros((n, 2, 3), dtype=np.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / zoom
    theta[:, :, 2] = shift
    grid = F.affine_grid(torch.from_numpy(theta).to(x.device), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    contrast = torch.from_numpy(rng.uniform(0.85, 1.15, (n, 1, 1, 1)).astype(np.float32)).to(x.device)
    brightness = torch.from_numpy(rng.uniform(-0.05, 0.05, (n, 1, 1, 1)).astype(np.float32)).to(x.device)
    return out * contrast + brightness


def _train_fold(
    cfg: RadiographTrainConfig,
    arrays: Any,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    fold: int,
    device: Any,
    log: list[str],
) -> tuple[Any, dict[str, Any]]:
    import torch

    from .network import AGE_MEAN, AGE_SD, RadiographNet

    torch.manual_seed(cfg.seed * 1000 + fold)
    rng = np.random.default_rng([cfg.seed, fold])
    net = RadiographNet(cfg.model_name, cfg.width_multiplier, cfg.age_task, cfg.bn_momentum).to(device)
    y = arrays.labels.astype(np.float32)
    pos = y[train_idx].sum(axis=0)
    pos_weight = np.clip((len(train_idx) - pos) / np.maximum(pos, 1.0), 1.0, cfg.max_pos_weight)
    bce = torch.nn.BCEWithLogitsLoss(pos_weight=torch.from_numpy(pos_weight.astype(np.float32)).to(device))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    steps_per_epoch = max(1, math.ceil(len(train_idx) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        opt, T_0=max(1, cfg.restart_epochs * steps_per_epoch), T_mult=2
    )
    ages = (arrays.ages - AGE_MEAN) / AGE_SD
    best = (-math.inf, None, 0)
    history = []
    t0 = time.time()
    val_patients = [arrays.patients[i] for i in val_idx]
    from tqdm.auto import tqdm

    from ..progress import report

    bar = tqdm(range(1, cfg.epochs + 1), desc=f"fold {fold} epochs", dynamic_ncols=True, leave=False)
    for epoch in bar:
        report(
            100.0 * (fold * cfg.epochs + epoch - 1) / (cfg.folds * cfg.epochs), f"fold {fold} epoch {epoch}"
        )
        net.train()
        order = rng.permutation(train_idx)
        losses = []
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            xb = torch.from_numpy(arrays.x[idx].astype(np.float32)).unsqueeze(1).to(device)
            if cfg.augment:
                xb = augment_batch(xb, rng)
            yb = torch.from_numpy(y[idx]).to(device)
            logits, age = net(xb)
            loss = bce(logits, yb)
            if cfg.age_task and age is not None:
                a = ages[idx]
                known = np.isfinite(a)
                if known.any():
                    target = torch.from_numpy(a[known].astype(np.float32)).to(device)
                    loss = loss + cfg.age_weight * torch.mean(
                        (age[torch.from_numpy(known).to(device)] - target) ** 2
                    )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        p_val = _predict_members(net, arrays.x[val_idx], device)
        row, best = _record_epoch(
            net, p_val, val_patients, arrays.labels[val_idx], fold, epoch, losses, t0, best, history, log
        )
        bar.set_postfix(loss=f"{row['train_loss']:.4f}", val_auc=f"{row['val_mean_auc']:.3f}")
    net.load_state_dict(best[1])
    net = net.to("cpu").eval()
    return net, {
        "best_epoch": best[2],
        "best_val_mean_auc": best[0],
        "history": history,
        "pos_weight": pos_weight.tolist(),
    }


def train_radiograph_arrays(
    arrays: Any,
    config: RadiographTrainConfig | None = None,
    out: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    training_data: Any = "",
    extra_card: dict[str, Any] | None = None,
) -> RadiographTrainResult:
    """Cross-validate, build the ensemble and (with ``out``) write it with its card.

    Args:
        arrays: :class:`~spineai.radiograph.data.RadiographArrays` (labels required).
        config: settings.
        out: run folder: ``model.safetensors`` + ``model.json`` (fp16 ensemble), ``fold_<k>.*`` (fp32,
            for resuming), ``cv_patients.csv`` (out-of-fold patient probabilities), ``history.tsv``,
            ``train.log``. A folder holding a run of other settings is refused unless ``overwrite``.
        overwrite: allow replacing another run's files.
        training_data: description for the model card.
        extra_card: fields merged into the card.
    """
    import torch

    from ..outputs import check_writable
    from ..stats import grouped_kfold
    from ..weights import load_card, load_into, save_weights
    from .network import ARCHITECTURE, LEVELS, TASK, RadiographEnsemble, RadiographNet, count_parameters

    cfg = config or RadiographTrainConfig()
    if np.any(arrays.labels < 0):
        raise InputError(
            "Some images have no herniation labels.", "fill hnp_L1_2 .. hnp_L5_S1 for every image"
        )
    if cfg.folds < 2 or cfg.epochs < 1 or cfg.batch_size < 2 or cfg.learning_rate <= 0:
        raise InputError(
            f"Invalid settings: folds {cfg.folds}, epochs {cfg.epochs}, batch {cfg.batch_size}, "
            f"learning rate {cfg.learning_rate}.",
            "use folds >= 2, epochs >= 1, batch >= 2, lr > 0",
        )
    if cfg.age_task and not np.any(np.isfinite(arrays.ages)):
        raise InputError(
            "The age task was requested but no image has an age.", "fill the manifest's age column"
        )
    if arrays.x.shape[1:] != (cfg.image_size, cfg.image_size):
        raise InputError(
            f"Images of {arrays.x.shape[1:]} pixels for a network input of {cfg.image_size}.",
            "prepare the arrays with the configured image_size",
        )
    n_patients = len(set(arrays.patients))
    if n_patients < cfg.folds:
        raise InputError(f"{n_patients} patient(s) for {cfg.folds} folds.", "add patients or use fewer folds")
    out_dir = Path(out) if out is not None else None
    fingerprint = _fingerprint(cfg, arrays)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        marker = out_dir / "run.json"
        if (
            marker.is_file()
            and json.loads(marker.read_text(encoding="utf-8")) != fingerprint
            and not overwrite
        ):
            raise InputError(
                f"'{out_dir}' holds a run of other settings or data.",
                "use a new --out folder, or --overwrite to replace that run",
            )
        if not marker.is_file() and any(out_dir.iterdir()) and not overwrite:
            from ..errors import OutputExistsError

            raise OutputExistsError(out_dir)
        for name in ("model.safetensors", "model.json"):
            check_writable(out_dir / name, True)
        write_json(marker, fingerprint, overwrite=True)
    torch.set_num_threads(max(1, int(cfg.num_threads)))
    device = _device(cfg.device)
    any_hnp = (arrays.labels.max(axis=1) > 0).astype(int)
    splits = grouped_kfold(np.asarray(arrays.patients), n_splits=cfg.folds, y=any_hnp, seed=cfg.seed)
    log = [f"{len(arrays.x)} images of {n_patients} patients, {cfg.folds} folds; {cfg.to_dict()}"]
    members, folds = [], []
    oof = np.zeros(arrays.labels.shape, dtype=float)
    for k, (train_idx, val_idx) in enumerate(splits):
        fold_file = out_dir / f"fold_{k}.safetensors" if out_dir is not None else None
        fold_json = out_dir / f"fold_{k}_summary.json" if out_dir is not None else None
        if fold_file is not None and fold_file.is_file() and fold_json is not None and fold_json.is_file():
            card = load_card(fold_file)
            net = load_into(
                RadiographNet(cfg.model_name, cfg.width_multiplier, cfg.age_task, cfg.bn_momentum),
                fold_file,
                card,
            ).eval()
            info = json.loads(fold_json.read_text(encoding="utf-8"))
            log.append(f"fold {k}: reused {fold_file.name}")
        else:
            net, info = _train_fold(cfg, arrays, train_idx, val_idx, k, device, log)
            if fold_file is not None:
                save_weights(
                    net,
                    fold_file,
                    {
                        "name": f"{cfg.model_card_name}_fold{k}",
                        "task": TASK + "_fold",
                        "architecture": "spineai.radiograph.RadiographNet",
                        "config": net.config,
                        "class_names": list(LEVELS),
                    },
                    overwrite=True,
                    dtype="float32",
                )
        p_val = _predict_members(net, arrays.x[val_idx], torch.device("cpu"))
        oof[val_idx] = p_val
        info = _fold_summary(info, k, p_val, arrays.patients, arrays.labels, train_idx, val_idx)
        if fold_json is not None:
            write_json(fold_json, info, overwrite=True)
        folds.append(info)
        members.append(net)
    ensemble = RadiographEnsemble(
        n_members=cfg.folds,
        model_name=cfg.model_name,
        width_multiplier=cfg.width_multiplier,
        age_task=cfg.age_task,
        image_size=cfg.image_size,
        bn_momentum=cfg.bn_momentum,
    )
    for k, net in enumerate(members):
        ensemble.members[k].load_state_dict(net.state_dict())
    ensemble.eval()
    thresholds, cv, (ids, pm, ym) = _cross_validation(
        folds,
        oof,
        arrays.patients,
        arrays.labels,
        "out-of-fold patient probabilities (each patient scored by the fold model that did not train on "
        "it) at the ensemble thresholds",
    )
    result = RadiographTrainResult(
        weights_path=None,
        card_path=None,
        thresholds=thresholds,
        folds=folds,
        cross_validation=cv,
        model=ensemble,
    )
    if out_dir is None:
        return result
    card = {
        "name": cfg.model_card_name,
        "task": TASK,
        "architecture": ARCHITECTURE,
        "config": ensemble.config,
        "class_names": list(LEVELS),
        "input": {
            "modality": "plain radiograph (CR/DX), lumbar spine, AP / lateral / oblique views",
            "image_size": [cfg.image_size, cfg.image_size],
            "preprocessing": "grey (colour only when the channels are equal); 0.5th-99.5th percentile to [0, 1]; "
            "CLAHE (skimage equalize_adapthist, clip 0.01); letterbox resize to the square input; minus 0.5",
            "orientation": "as displayed: head at the top; no flips or rotations",
        },
        "training_data": training_data,
        "training_recipe": {
            **cfg.to_dict(),
            "optimizer": "Adam, cosine annealing with warm restarts (T_mult 2)",
            "loss": "binary cross-entropy with logits per level (positive weight neg/pos, at most "
            f"{cfg.max_pos_weight:g})"
            + (f" + {cfg.age_weight:g} x MSE of the standardised age" if cfg.age_task else ""),
            "cross_validation": f"{cfg.folds}-fold, grouped by patient, stratified by any herniation",
            "model_selection": "per fold: the epoch with the best mean per-level AUC on its validation patients",
            "ensemble": "bagging: mean of the fold models' probabilities; threshold per level = mean of the folds' "
            "Youden-optimal thresholds",
            "parameters_per_member": count_parameters(members[0]),
            "n_images": int(len(arrays.x)),
            "n_patients": n_patients,
        },
        "metrics": {
            "cross_validation_folds": [
                {
                    "fold": f["fold"],
                    "best_epoch": f["best_epoch"],
                    "thresholds": f["thresholds"],
                    "validation": f["validation"],
                }
                for f in folds
            ],
            "cross_validation_out_of_fold": cv,
        },
        "extra": {
            "thresholds": dict(zip(LEVELS, thresholds, strict=True)),
            "fold_thresholds": [f["thresholds"] for f in folds],
        },
    }
    if extra_card:
        for key, value in extra_card.items():
            if isinstance(value, dict) and isinstance(card.get(key), dict):
                card[key] = {**card[key], **value}
            else:
                card[key] = value
    weights, card_path = save_weights(ensemble, out_dir / "model.safetensors", card, overwrite=True)
    lines = ["patient_id," + ",".join(LEVELS) + "," + ",".join(f"label_{lv}" for lv in LEVELS)]
    lines += [
        f"{pid}," + ",".join(f"{v:.5f}" for v in pm[i]) + "," + ",".join(str(int(v)) for v in ym[i])
        for i, pid in enumerate(ids)
    ]
    write_text(out_dir / "cv_patients.csv", "\n".join(lines) + "\n", overwrite=True)
    rows = [h for f in folds for h in f.get("history", [])]
    write_text(
        out_dir / "history.tsv",
        "fold\tepoch\ttrain_loss\tval_mean_auc\tseconds\n"
        + "".join(
            f"{h['fold']}\t{h['epoch']}\t{h['train_loss']:.5f}\t{h['val_mean_auc']:.5f}\t{h['seconds']:.1f}\n"
            for h in rows
        ),
        overwrite=True,
    )
    write_text(out_dir / "train.log", "\n".join(log) + "\n", overwrite=True)
    result.weights_path, result.card_path = weights, card_path
    return result


def train_radiograph(
    data: str | os.PathLike,
    out: str | os.PathLike,
    config: RadiographTrainConfig | None = None,
    *,
    skip_bad_rows: bool = False,
    overwrite: bool = False,
) -> tuple[RadiographTrainResult, list[str]]:
    """Train from a manifest CSV (or a folder with ``manifest.csv``); see :mod:`spineai.radiograph.data`.

    Returns:
        ``(result, problems)``: problems lists skipped rows and unreadable images.
    """
    from .data import load_radiograph_data, prepare_arrays

    cfg = config or RadiographTrainConfig()
    records, problems = load_radiograph_data(data, skip_bad_rows=skip_bad_rows)
    arrays = prepare_arrays(records, cfg.image_size)
    problems = problems + [f"unreadable: {f}" for f in arrays.failed]
    if len(set(arrays.patients)) < cfg.folds:
        raise InputError(
            f"Only {len(set(arrays.patients))} usable patient(s) in '{data}' for {cfg.folds} folds.",
            "train on tens of patients at least",
        )
    result = train_radiograph_arrays(
        arrays,
        cfg,
        out,
        overwrite=overwrite,
        training_data={
            "source": str(data),
            "images": int(len(arrays.x)),
            "patients": len(set(arrays.patients)),
            "skipped": problems[:50],
        },
    )
    return result, problems


#: training designs: the product's disc crops (default) and the seed paper's whole image
DESIGNS: tuple[str, ...] = ("disc-crops", "whole-image")


def train_radiograph_discs(
    data: str | os.PathLike,
    out: str | os.PathLike,
    config: Any = None,
    *,
    locator: str | os.PathLike | None = None,
    locator_epochs: int = 0,
    skip_bad_rows: bool = False,
    overwrite: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """Train the disc-crops design on a site's manifest (see :mod:`spineai.radiograph.reader`).

    The discs are found by a locator: the one inside the shipped model (or ``locator``: a disc-crops model
    or a stand-alone locator file), or, with ``locator_epochs > 0``, a new one trained on the manifest's
    disc positions (``disc_L1_L2_x`` .. ``disc_L5_S1_y``; every image needs them then). Training crops are
    taken at the manifest's disc positions where given, else at the located ones; validation crops always at
    the located ones. The manifest's ``pixel_mm``, else the DICOM spacing, else the disc spacing, sets the
    scale. Writes ``OUT/model.safetensors`` + ``model.json`` (fp16: locator and fold readers),
    ``cv_patients.csv`` and ``train.log``.

    Returns:
        ``(summary: weights, card, thresholds, cross-validation figures, locator source; problems)``.

    Raises:
        InputError: no locator available, missing disc positions for locator training, too few patients.
    """
    import SimpleITK as sitk

    from ..errors import SpineAIError
    from ..outputs import check_output_dir
    from ..weights import save_weights
    from .data import load_radiograph_data
    from .discs import LocatorTrainConfig, input_to_grid, train_disc_locator
    from .image import load_radiograph, prepare_input
    from .network import LEVELS
    from .predict import DEFAULT_MODEL
    from .reader import (
        DiscCropsTrainConfig,
        disc_model_card,
        load_locator,
        prepare_disc_images,
        train_disc_reader,
    )

    cfg = config or DiscCropsTrainConfig()
    out_dir = Path(out)
    check_output_dir(out_dir, overwrite)
    records, problems = load_radiograph_data(data, skip_bad_rows=skip_bad_rows)
    images, kept = [], []
    for rec in records:
        try:
            loaded = load_radiograph(rec.image)
        except SpineAIError as exc:
            problems.append(f"unreadable: row {rec.row} ({rec.image.name}): {str(exc).splitlines()[0]}")
            continue
        px = rec.pixel_mm
        if not np.isfinite(px) and loaded.info.get("pixel_spacing_known"):
            sp = loaded.image.GetSpacing()
            px = float(np.sqrt(sp[0] * sp[1]))
        rec.pixel_mm = px
        images.append(sitk.GetArrayFromImage(loaded.image).astype(np.float32))
        kept.append(rec)
    n_patients = len({r.patient_id for r in kept})
    if n_patients < cfg.folds:
        raise InputError(
            f"Only {n_patients} usable patient(s) in '{data}' for {cfg.folds} folds.",
            "train on tens of patients at least",
        )
    true_rc = np.stack(
        [r.disc_xy[:, ::-1] if r.disc_xy is not None else np.full((len(LEVELS), 2), np.nan) for r in kept]
    )
    if locator_epochs > 0:
        if np.isnan(true_rc).any():
            raise InputError(
                "Training a disc locator needs the disc positions of every image (manifest columns disc_L1_L2_x .. "
                "disc_L5_S1_y); some images have none.",
                "add the positions to every row, or leave out --locator-epochs to use the shipped locator",
            )
        lcfg = LocatorTrainConfig(epochs=int(locator_epochs), seed=cfg.seed, num_threads=cfg.num_threads)
        prepared = [prepare_input(img, lcfg.image_size) for img in images]
        grid = np.stack([input_to_grid(c, p[1]) for c, p in zip(true_rc, prepared, strict=True)])
        loc, history = train_disc_locator(np.stack([p[0] for p in prepared]), grid, lcfg)
        locator_source: dict[str, Any] = {
            "source": "trained on the manifest's disc positions",
            "history": history,
        }
    else:
        if locator is None:
            from ..weights import MODELS_DIR, WeightsError, model_weights_path

            try:
                locator_path = model_weights_path(DEFAULT_MODEL)
            except WeightsError:
                locator_path = MODELS_DIR / f"{DEFAULT_MODEL}.safetensors"
            if not locator_path.is_file():
                raise InputError(
                    "No disc locator is available: the shipped radiograph model is not installed and no --locator "
                    "was given.",
                    "pass --locator MODEL.safetensors (a disc-crops model), or give every image's disc positions in "
                    "the manifest and --locator-epochs N to train one, or use --design whole-image",
                )
        else:
            locator_path = Path(locator)
        loc = load_locator(locator_path)
        locator_source = {"source": str(locator_path)}
    data_imgs = prepare_disc_images(
        images,
        loc,
        np.stack([r.labels for r in kept]),
        [r.patient_id for r in kept],
        [r.view for r in kept],
        true_rc=true_rc,
        pixel_mm=[r.pixel_mm for r in kept],
        reader_pixel_mm=cfg.reader_pixel_mm,
    )
    log: list[str] = [f"{len(kept)} images of {n_patients} patients; locator {locator_source['source']}"]
    ens, summary = train_disc_reader(data_imgs, loc, cfg, log=log)
    card = disc_model_card(
        ens,
        summary,
        cfg,
        n_images=len(kept),
        n_patients=n_patients,
        training_data={
            "source": str(data),
            "images": len(kept),
            "patients": n_patients,
            "skipped": problems[:50],
        },
        locator_info=locator_source,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    weights, card_path = save_weights(ens, out_dir / "model.safetensors", card, overwrite=overwrite)
    oof = summary["oof"]
    lines = ["patient_id," + ",".join(LEVELS) + "," + ",".join(f"label_{lv}" for lv in LEVELS)]
    lines += [
        f"{pid},"
        + ",".join(f"{v:.5f}" for v in oof["probabilities"][i])
        + ","
        + ",".join(str(int(v)) for v in oof["labels"][i])
        for i, pid in enumerate(oof["patients"])
    ]
    write_text(out_dir / "cv_patients.csv", "\n".join(lines) + "\n", overwrite=overwrite)
    write_text(out_dir / "train.log", "\n".join(log) + "\n", overwrite=overwrite)
    return {
        "weights_path": weights,
        "card_path": card_path,
        "thresholds": summary["thresholds"],
        "cross_validation": summary["cross_validation"],
        "folds": summary["folds"],
        "locator": locator_source["source"],
        "model": ens,
    }, problems
