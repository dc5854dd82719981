"""Training of the disc locator and of the multi-task disc classifier (CPU friendly, seeded).

Both loops use ``torch.set_num_threads(config.threads)`` (default 1) while they run and restore the
previous setting afterwards, so training shares a small machine politely.

Locator: foreground-weighted squared error of the two heat maps (:func:`heatmap_loss`), AdamW,
cosine learning-rate decay, augmentation by random rotation (+-12 deg), scaling (0.85-1.2), shift
(+-8 px), gamma (0.7-1.4), contrast and noise, and, for ``flip_probability`` of the samples, an
upside-down and/or mirrored copy whose L5/S1 map is empty (the L5/S1 channel thereby learns which way
up a picture is).

Classifier: summed cross-entropy of the eight heads, each class-weighted by the inverse square root of
its training frequency (rare grades count more; balanced accuracy is what is reported), AdamW, patches
re-sampled every epoch with jitter (centre +-6 % of the disc spacing, rotation +-8 deg, scale 0.9-1.1)
and intensity gamma; the epoch with the best mean balanced accuracy on the validation patients is kept.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ..progress import track
from .classifier import GRADER_DEFAULTS, PATCH_SHAPE, SagittalGraderNet, patch_frame, sample_patch
from .disc_detection import LOCATOR_DEFAULTS, DiscLocatorNet, locator_input, render_heatmaps
from .model import torch_threads
from .tasks import GRADING_TASKS, TASK_KEYS

__all__ = [
    "GraderTrainConfig",
    "LocatorTrainConfig",
    "PatchSample",
    "heatmap_loss",
    "train_grader",
    "train_locator",
]


# --------------------------------------------------------------------------------------------- locator
@dataclass
class LocatorTrainConfig:
    """Settings of :func:`train_locator` (defaults: the shipped model's recipe)."""

    iterations: int = 1200
    batch_size: int = 8
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    flip_probability: float = 0.25
    seed: int = 0
    threads: int = 1
    architecture: dict[str, Any] = field(default_factory=lambda: dict(LOCATOR_DEFAULTS))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def heatmap_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    channel_mask: torch.Tensor | None = None,
    foreground_weight: float = 30.0,
) -> torch.Tensor:
    """Foreground-weighted squared error between ``sigmoid(logits)`` and Gaussian heat-map targets.

    Pixels are weighted ``1 + foreground_weight * max_c target_c``: the neighbourhood of every disc
    counts more in *every* channel, so the few pixels near disc centres are not drowned by the
    background, and a response of the L5/S1 channel at another disc is penalised as strongly as a miss.
    The mean is scaled by 100 for readable numbers.

    Args:
        logits: ``(B, C, H, W)``.
        target: ``(B, C, H, W)`` in [0, 1].
        channel_mask: ``(B, C)`` 1 where a channel's target is known, 0 to ignore it.
    """
    weight = 1.0 + foreground_weight * target.amax(dim=1, keepdim=True)
    per = (torch.sigmoid(logits) - target) ** 2 * weight
    if channel_mask is not None:
        per = per * channel_mask[:, :, None, None]
        denominator = channel_mask.sum().clamp(min=1.0) * per.shape[-1] * per.shape[-2]
        return 100.0 * per.sum() / denominator
    return 100.0 * per.mean()


def _augment_locator(
    image: np.ndarray, points: np.ndarray, rng: np.random.Generator, strong: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Random affine (about the centre) + intensity changes of one locator input and its points."""
    from scipy import ndimage

    size = image.shape[0]
    angle = np.deg2rad(rng.uniform(-12, 12)) if strong else 0.0
    scale = rng.uniform(0.85, 1.2) if strong else 1.0
    shift = rng.uniform(-8, 8, size=2) if strong else np.zeros(2)
    c = (size - 1) / 2.0
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * scale
    # output = rot @ (input - c) + c + shift ; affine_transform needs input = inv @ output + offset
    inv = np.linalg.inv(rot)
    offset = np.array([c, c]) - inv @ (np.array([c, c]) + shift)
    out = ndimage.affine_transform(image, inv, offset=offset, order=1, mode="constant", cval=0.0)
    pts = (np.asarray(points) - c) @ rot.T + c + shift
    gamma = rng.uniform(0.7, 1.4)
    out = np.clip(out, 0, 1) ** gamma
    out = out * rng.uniform(0.85, 1.15) + rng.uniform(-0.05, 0.05)
    out = out + rng.normal(0, rng.uniform(0, 0.03), out.shape)
    return np.clip(out, 0, 1).astype(np.float32), pts


def train_locator(
    slices: Sequence[np.ndarray],
    discs_rc: Sequence[np.ndarray],
    l5s1_known: Sequence[bool],
    config: LocatorTrainConfig | None = None,
    progress: bool | None = None,
    initial_state: dict[str, Any] | None = None,
) -> tuple[DiscLocatorNet, dict[str, Any]]:
    """Train a disc locator (from scratch, or further from ``initial_state``).

    Args:
        slices: upright working slices normalised to [0, 1] (e.g. by
            :func:`~spineai.grading.disc_detection.normalise_slice`), each ``(rows, cols)``.
        discs_rc: disc centres per slice, ``(n, 2)`` (row, col) in slice pixels, **caudal first**.
        l5s1_known: per slice, whether ``discs_rc[0]`` is L5/S1 (otherwise the L5/S1 map is not trained
            on that slice).
        config: training settings.
        progress: show a progress bar (``None``: when interactive).
        initial_state: a state dict to start from (fine-tuning), e.g. ``model.state_dict()``.

    Returns:
        ``(model in eval mode, history)``; ``history["loss"]`` holds the loss of every iteration.
    """
    cfg = config or LocatorTrainConfig()
    if not (len(slices) == len(discs_rc) == len(l5s1_known)) or not slices:
        raise ValueError("slices, discs_rc and l5s1_known must be non-empty and of the same length")
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    size = int(cfg.architecture.get("size", 128))
    prepared = []
    for s, d in zip(slices, discs_rc, strict=True):
        x, geo = locator_input(s, size)
        prepared.append((x, geo.to_input(np.asarray(d, dtype=np.float64).reshape(-1, 2))))
    model = DiscLocatorNet(**{**LOCATOR_DEFAULTS, **cfg.architecture})
    if initial_state is not None:
        model.load_state_dict(initial_state)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda it: 0.5 * (1 + math.cos(math.pi * min(it, cfg.iterations) / cfg.iterations))
    )
    history: dict[str, Any] = {"loss": [], "config": cfg.to_dict(), "n_slices": len(slices)}
    flips = ("flip_vertical", "flip_horizontal", "rotate_180")
    with torch_threads(cfg.threads):
        model.train()
        for _ in track(
            range(cfg.iterations),
            desc="training disc locator",
            disable=None if progress is None else not progress,
        ):
            xs, ts, ms = [], [], []
            for idx in rng.integers(0, len(prepared), size=cfg.batch_size):
                x, pts = prepared[int(idx)]
                x, pts = _augment_locator(x, pts, rng)
                known = bool(l5s1_known[int(idx)])
                flip = flips[int(rng.integers(0, 3))] if rng.random() < cfg.flip_probability else None
                if flip in ("flip_vertical", "rotate_180"):
                    x = x[::-1]
                    pts = pts.copy()
                    pts[:, 0] = size - 1 - pts[:, 0]
                if flip in ("flip_horizontal", "rotate_180"):
                    x = x[:, ::-1]
                    pts = pts.copy()
                    pts[:, 1] = size - 1 - pts[:, 1]
                target = render_heatmaps(pts, 0 if (known and flip is None) else None, size)
                xs.append(np.ascontiguousarray(x)[None])
                ts.append(target)
                # a flipped slice *teaches* an empty L5/S1 map; an unknown L5/S1 is ignored
                ms.append([1.0, 1.0 if (known or flip is not None) else 0.0])
            xb = torch.from_numpy(np.stack(xs))
            tb = torch.from_numpy(np.stack(ts))
            mb = torch.tensor(ms, dtype=torch.float32)
            loss = heatmap_loss(model(xb), tb, mb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            history["loss"].append(float(loss.detach()))
    model.eval()
    return model, history


# ------------------------------------------------------------------------------------------ classifier
@dataclass
class PatchSample:
    """One graded disc on a working slice, for classifier training.

    Attributes:
        slice_index: index into the list of slices.
        centre_rc: disc centre, working-slice pixels.
        axis_rc: cranial direction along the spine.
        spacing_px: local disc spacing, pixels.
        targets: ``{task_key: grade value}``; a missing key is not trained on.
        patient: patient identifier (for grouping).
        ivd: IVD number.
    """

    slice_index: int
    centre_rc: tuple[float, float]
    axis_rc: tuple[float, float]
    spacing_px: float
    targets: dict[str, int]
    patient: str = ""
    ivd: int = 0


@dataclass
class GraderTrainConfig:
    """Settings of :func:`train_grader` (defaults: the shipped model's recipe)."""

    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-3
    jitter: bool = True
    seed: int = 0
    threads: int = 1
    architecture: dict[str, Any] = field(default_factory=lambda: dict(GRADER_DEFAULTS))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _target_matrix(samples: Sequence[PatchSample]) -> np.ndarray:
    """Class indices ``(n, n_tasks)``; -1 where a grade is missing."""
    out = np.full((len(samples), len(GRADING_TASKS)), -1, dtype=np.int64)
    for i, s in enumerate(samples):
        for j, task in enumerate(GRADING_TASKS):
            if task.key in s.targets:
                out[i, j] = task.index_of(s.targets[task.key])
    return out


def _class_weights(targets: np.ndarray) -> list[torch.Tensor]:
    weights = []
    for j, task in enumerate(GRADING_TASKS):
        col = targets[:, j]
        counts = np.array([(col == k).sum() for k in range(task.n_classes)], dtype=np.float64)
        w = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1.0)), 0.0)
        if w.sum() > 0:
            w = w / (w * counts).sum() * counts.sum()
        weights.append(torch.tensor(w, dtype=torch.float32))
    return weights


def _patches(
    slices: Sequence[np.ndarray], samples: Sequence[PatchSample], rng: np.random.Generator | None
) -> np.ndarray:
    out = np.empty((len(samples), 1, *PATCH_SHAPE), dtype=np.float32)
    for i, s in enumerate(samples):
        if rng is None:
            frame = patch_frame(s.centre_rc, s.axis_rc, s.spacing_px)
            patch = sample_patch(slices[s.slice_index], frame)
        else:
            frame = patch_frame(
                s.centre_rc,
                s.axis_rc,
                s.spacing_px,
                rotate_deg=rng.uniform(-8, 8),
                scale=rng.uniform(0.9, 1.1),
                shift_spacings=rng.uniform(-0.06, 0.06, size=2),
            )
            patch = np.clip(sample_patch(slices[s.slice_index], frame), 0, 1) ** rng.uniform(0.8, 1.25)
        out[i, 0] = patch
    return out


def predict_patches(
    model: SagittalGraderNet, patches: np.ndarray, batch_size: int = 64
) -> dict[str, np.ndarray]:
    """Class probabilities per grading, ``{task_key: (n, n_classes)}``, for patches ``(n, 1, 64, 96)``."""
    model.eval()
    outs: dict[str, list[np.ndarray]] = {k: [] for k in TASK_KEYS}
    with torch.no_grad():
        for start in range(0, len(patches), batch_size):
            logits = model(torch.from_numpy(np.ascontiguousarray(patches[start : start + batch_size])))
            for k, v in SagittalGraderNet.split(logits).items():
                outs[k].append(torch.softmax(v, dim=1).numpy())
    return {
        k: (np.concatenate(v) if v else np.zeros((0, t.n_classes)))
        for (k, v), t in zip(outs.items(), GRADING_TASKS, strict=True)
    }


def _mean_balanced_accuracy(probs: dict[str, np.ndarray], targets: np.ndarray) -> float:
    values = []
    for j, task in enumerate(GRADING_TASKS):
        y = targets[:, j]
        ok = y >= 0
        if not ok.any():
            continue
        pred = probs[task.key][ok].argmax(1)
        recalls = [float((pred[y[ok] == k] == k).mean()) for k in np.unique(y[ok])]
        values.append(float(np.mean(recalls)))
    return float(np.mean(values)) if values else float("nan")


def train_grader(
    slices: Sequence[np.ndarray],
    samples: Sequence[PatchSample],
    config: GraderTrainConfig | None = None,
    val_samples: Sequence[PatchSample] | None = None,
    progress: bool | None = None,
) -> tuple[SagittalGraderNet, dict[str, Any]]:
    """Train the multi-task disc classifier.

    Args:
        slices: normalised upright working slices (see :func:`train_locator`); samples index into it.
        samples: training discs.
        config: training settings.
        val_samples: validation discs (other patients); the epoch with the best mean balanced accuracy
            over the eight gradings is kept. Without them the last epoch is kept.
        progress: show a progress bar.

    Returns:
        ``(model in eval mode, history)`` with per-epoch ``loss`` and ``val_mean_balanced_accuracy``.
    """
    cfg = config or GraderTrainConfig()
    if not samples:
        raise ValueError("no training samples")
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    targets = _target_matrix(samples)
    weights = _class_weights(targets)
    model = SagittalGraderNet(**{**GRADER_DEFAULTS, **cfg.architecture})
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(samples) / cfg.batch_size))
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.learning_rate, total_steps=total, pct_start=0.15
    )
    losses = [torch.nn.CrossEntropyLoss(weight=w, ignore_index=-1) for w in weights]
    val_patches = _patches(slices, val_samples, None) if val_samples else None
    val_targets = _target_matrix(val_samples) if val_samples else None
    history: dict[str, Any] = {
        "loss": [],
        "val_mean_balanced_accuracy": [],
        "config": cfg.to_dict(),
        "n_train": len(samples),
        "n_val": len(val_samples or []),
    }
    best_state, best_score = None, -1.0
    with torch_threads(cfg.threads):
        for epoch in track(
            range(cfg.epochs),
            desc="training disc classifier",
            disable=None if progress is None else not progress,
        ):
            model.train()
            order = rng.permutation(len(samples))
            epoch_loss = []
            for start in range(0, len(order), cfg.batch_size):
                idx = order[start : start + cfg.batch_size]
                batch = [samples[i] for i in idx]
                x = torch.from_numpy(_patches(slices, batch, rng if cfg.jitter else None))
                y = torch.from_numpy(targets[idx])
                parts = SagittalGraderNet.split(model(x))
                loss = sum(
                    loss_fn(parts[t.key], y[:, j]) if bool((y[:, j] >= 0).any()) else parts[t.key].sum() * 0.0
                    for j, (t, loss_fn) in enumerate(zip(GRADING_TASKS, losses, strict=True))
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                epoch_loss.append(float(loss.detach()))
            history["loss"].append(float(np.mean(epoch_loss)))
            if val_patches is not None and val_targets is not None:
                score = _mean_balanced_accuracy(predict_patches(model, val_patches), val_targets)
                history["val_mean_balanced_accuracy"].append(score)
                if score > best_score:
                    best_score, best_state = score, copy.deepcopy(model.state_dict())
                    history["best_epoch"] = epoch
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history
