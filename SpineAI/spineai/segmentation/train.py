"""Train the SPINECT CT segmentation network on any folder of image/label pairs.

Defaults follow the paper (Fan et al., AJNR 2019) and SPEC section 1; every one can be overridden
(``spineai train segmentation --help``):

- data: 1 mm resampling (linear for CT, nearest neighbour for labels), cropping to the labelled region
  plus 16 mm, HU clipped to [-1000, 2000] and z-scored with mean/SD measured on the training labels
  (stored in the model card);
- random 32 x 64 x 64 (z, y, x) patches; "class-balanced" sampling centres each patch on a voxel of a
  class drawn with equal probability among the classes present in the case (MONAI
  ``generate_label_classes_crop_centers``; small nerve roots are thus seen as often as the sacrum);
- minibatch 4, Adam, learning rate 5e-4, He initialisation;
- weighted softmax cross-entropy: class weights = inverse class frequency measured on 64 sampled
  training patches (so they reflect what the network actually sees), normalised to a voxel-weighted
  mean of 1 and capped at 50 times the smallest weight (uncapped inverse frequency over-grows tiny
  structures);
- augmentation: additive Gaussian noise (probability 0.5, SD 0.1 in standardised units, i.e. about
  0.1 x the training SD in HU) and left-right flips (probability 0.5) that also swap left and right
  labels (``root_L5_left`` <-> ``root_L5_right``, ``ilium_left`` <-> ``ilium_right``), so the flipped
  patch remains anatomically labelled. The paper's "vertical" flip of the axial image is the
  antero-posterior flip: it keeps every label valid but shows vertebral bodies behind the canal, which no
  CT does, so it is off by default (``--flip-ap-prob``). A cranio-caudal flip is not offered: it would put
  L5 above L4 and the network would lose the level order it needs to name vertebrae;
- validation every 100 iterations on up to 6 randomly chosen validation cases with the paper's combined
  algorithm (tiled windows of the patch size, summed softmax, argmax); the weights with the best mean
  Dice over the foreground classes are kept.

Outputs in ``OUT``: ``model.safetensors`` + ``model.json`` (best weights, fp16, with card),
``checkpoints/last.safetensors`` + ``last.json`` (fp32) + ``last_optimizer.pt`` + ``last_state.json``
(resume), ``train.log``, ``metrics.tsv`` and ``metrics.json`` (one row per validation).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..outputs import atomic_path, prepare_output_dir, write_json, write_text
from .config import TrainConfig as TrainConfig
from .data import (
    WORKING_SPACING_MM,
    CaseFiles,
    IntensityNormalization,
    PreparedCase,
    find_cases,
    left_right_permutation,
    prepare_case,
)
from .network import ARCHITECTURE, build_network, count_parameters

STATE_SCHEMA = "spineai.segmentation.train_state/1"


@dataclass
class TrainResult:
    """What a training run produced."""

    out_dir: Path
    weights_path: Path | None
    card_path: Path | None
    best_mean_dice: float
    best_iteration: int
    iterations_done: int
    history: list[dict[str, Any]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


# ------------------------------------------------------------------------------------------- sampling
class PatchSampler:
    """Random training batches from prepared cases (patch sampling, noise and flips).

    Args:
        cases: prepared training cases.
        config: training configuration.
        intensity: standardisation applied to the HU patches.
        rng: numpy random state (kept in checkpoints).
    """

    def __init__(
        self,
        cases: Sequence[PreparedCase],
        config: TrainConfig,
        intensity: IntensityNormalization,
        rng: np.random.RandomState,
    ) -> None:
        self.cases = list(cases)
        self.config = config
        self.intensity = intensity
        self.rng = rng
        self.lr_perm = left_right_permutation(config.class_names)

    def _center(self, case: PreparedCase) -> tuple[int, ...]:
        from monai.transforms.utils import generate_label_classes_crop_centers

        shape = case.classes.shape
        size = self.config.patch_size
        if self.config.sampling == "uniform":
            return tuple(
                int(self.rng.randint(s // 2, n - (s - s // 2) + 1)) for s, n in zip(size, shape, strict=True)
            )
        ratios = [1.0 if len(idx) else 0.0 for idx in case.class_indices]
        centers = generate_label_classes_crop_centers(
            size, 1, shape, case.class_indices, ratios, self.rng, warn=False
        )
        return tuple(int(c) for c in centers[0])

    def patch(self, case: PreparedCase) -> tuple[np.ndarray, np.ndarray]:
        """One augmented (image, classes) patch ``(z, y, x)`` from ``case``."""
        center = self._center(case)
        size = self.config.patch_size
        box = tuple(slice(c - s // 2, c - s // 2 + s) for c, s in zip(center, size, strict=True))
        image = self.intensity.apply(case.hu[box])
        classes = case.classes[box].astype(np.int64)
        if self.rng.rand() < self.config.flip_lr_prob:
            image = image[:, :, ::-1]
            classes = self.lr_perm[classes[:, :, ::-1]]
        if self.rng.rand() < self.config.flip_ap_prob:
            image = image[:, ::-1, :]
            classes = classes[:, ::-1, :]
        if self.rng.rand() < self.config.noise_prob:
            image = image + self.rng.normal(0.0, self.config.noise_std, image.shape).astype(np.float32)
        return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(classes)

    def batch(self) -> tuple[np.ndarray, np.ndarray]:
        """``(B, 1, D, H, W)`` float32 images and ``(B, D, H, W)`` int64 classes."""
        picks = self.rng.randint(0, len(self.cases), self.config.batch_size)
        pairs = [self.patch(self.cases[i]) for i in picks]
        return np.stack([p[0] for p in pairs])[:, None], np.stack([p[1] for p in pairs])


def class_weights(frequencies: np.ndarray, method: str = "inverse", max_ratio: float = 50.0) -> np.ndarray:
    """Cross-entropy class weights from voxel frequencies (fractions summing to 1).

    ``inverse``: w_c proportional to 1 / f_c; ``sqrt-inverse``: to 1 / sqrt(f_c); ``none``: all 1.
    Weights are capped at ``max_ratio`` times the smallest, and normalised so that the voxel-weighted mean
    ``sum_c f_c w_c`` is 1 (the loss keeps the scale of an unweighted cross-entropy). Classes never seen
    get the largest weight.
    """
    f = np.asarray(frequencies, dtype=np.float64)
    if method == "none":
        return np.ones_like(f, dtype=np.float32)
    seen = f > 0
    if not seen.any():
        return np.ones_like(f, dtype=np.float32)
    raw = np.zeros_like(f)
    raw[seen] = 1.0 / (f[seen] if method == "inverse" else np.sqrt(f[seen]))
    raw[~seen] = raw[seen].max()
    raw = np.minimum(raw, raw[seen].min() * max_ratio)
    raw /= float((f * raw).sum())
    return raw.astype(np.float32)


# ----------------------------------------------------------------------------------------- validation
def dice_per_class(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> dict[int, float]:
    """Dice of each foreground class present in ``truth`` or ``pred`` (class index -> Dice)."""
    out = {}
    for c in range(1, num_classes):
        p, t = pred == c, truth == c
        n = int(p.sum()) + int(t.sum())
        if n:
            out[c] = 2.0 * float(np.logical_and(p, t).sum()) / n
    return out


def validate(
    network: Any,
    cases: Sequence[PreparedCase],
    config: TrainConfig,
    intensity: IntensityNormalization,
    device: str,
    class_weights: np.ndarray | None = None,
) -> dict[str, Any]:
    """Mean Dice per class over ``cases`` with the paper's combined algorithm (tiled patch-size windows).

    With ``class_weights`` the softmax is divided by them, as inference does by default
    (:func:`~spineai.segmentation.inference.predict_classes`), so the weights kept are the best as used.
    """
    from .inference import predict_classes

    network.eval()
    scores: dict[int, list[float]] = {}
    for case in cases:
        pred = predict_classes(
            network,
            intensity.apply(case.hu),
            config.patch_size,
            config.val_overlap,
            "constant",
            device=device,
            logit_offsets=None if class_weights is None else np.log(class_weights),
        )
        for c, d in dice_per_class(pred, case.classes, len(config.class_names)).items():
            scores.setdefault(c, []).append(d)
    network.train()
    per_class = {config.class_names[c]: float(np.mean(v)) for c, v in sorted(scores.items())}
    mean = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return {"mean_dice": mean, "dice": per_class, "cases": [c.case_id for c in cases]}


def metrics_tsv(history: Sequence[dict[str, Any]], class_names: Sequence[str]) -> str:
    """Tab-separated table of validation records: iteration, loss, mean Dice, Dice per class, seconds."""
    header = [
        "iteration",
        "train_loss",
        "val_mean_dice",
        *[f"dice_{n}" for n in class_names[1:]],
        "elapsed_s",
    ]
    rows = ["\t".join(header)]
    for h in history:
        dice = h.get("val_dice", {})
        rows.append(
            "\t".join(
                [
                    str(h["iteration"]),
                    f"{h['train_loss']:.5f}",
                    f"{h['val_mean_dice']:.4f}",
                    *[(f"{dice[n]:.4f}" if n in dice else "") for n in class_names[1:]],
                    f"{h['elapsed_s']:.1f}",
                ]
            )
        )
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------------------------------------- split
def split_cases(cases: Sequence[CaseFiles], config: TrainConfig) -> tuple[list[CaseFiles], list[CaseFiles]]:
    """Training and validation cases: ``config.val_cases`` or a seeded random ``val_fraction``."""
    by_id = {c.case_id: c for c in cases}
    if config.val_cases:
        unknown = [v for v in config.val_cases if v not in by_id]
        if unknown:
            raise InputError(
                f"Validation case(s) {unknown} are not in the data folder.", f"choose among {sorted(by_id)}"
            )
        val = [by_id[v] for v in config.val_cases]
    else:
        if len(cases) < 2:
            return list(cases), list(cases)
        n_val = max(1, int(round(config.val_fraction * len(cases)))) if config.val_fraction > 0 else 0
        order = np.random.RandomState(config.seed).permutation(len(cases))
        val = [cases[i] for i in sorted(order[:n_val])]
    val_ids = {c.case_id for c in val}
    train = [c for c in cases if c.case_id not in val_ids]
    if not train:
        raise InputError(
            "No training cases are left after holding out the validation cases.",
            "add cases or lower --val-fraction / shorten --val-cases",
        )
    return train, (val or train)


# --------------------------------------------------------------------------------------------- training
def _resolve_device(device: str) -> str:
    from .inference import resolve_device

    return resolve_device(device)


def _make_logger(path: Path) -> logging.Logger:
    logger = logging.getLogger(f"spineai.train.{path.resolve()}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger


def _card(
    config: TrainConfig,
    intensity: IntensityNormalization,
    train_ids: Sequence[str],
    data_dir: Path,
    metrics: dict[str, Any],
    network: Any,
    training_data: str | None = None,
    class_weights: np.ndarray | None = None,
) -> dict[str, Any]:
    recipe_weights = (
        {}
        if class_weights is None
        else {"class_weights": dict(zip(config.class_names, map(float, class_weights), strict=True))}
    )
    return {
        "name": config.model_name,
        "version": "1.0",
        "task": "ct_segmentation",
        "architecture": ARCHITECTURE,
        "config": dict(network.config),
        "class_names": list(config.class_names),
        "input": {
            "modality": "CT",
            "units": "HU",
            "spacing_mm": list(WORKING_SPACING_MM),
            "orientation": "canonical (spineai.io.to_canonical), arrays (z, y, x)",
            "patch_size": list(config.patch_size),
            "intensity": intensity.to_dict(),
        },
        "training_data": training_data
        or {"folder": str(data_dir), "cases": len(train_ids), "case_ids": list(train_ids)},
        "training_recipe": {
            **config.to_dict(),
            "optimizer": "Adam",
            "loss": "weighted softmax cross-entropy",
            "initialisation": "He (kaiming normal, fan-in)",
            "parameters": count_parameters(network),
            **recipe_weights,
        },
        "metrics": metrics,
    }


def _save_checkpoint(
    out: Path, network: Any, optimizer: Any, state: dict[str, Any], card: dict[str, Any]
) -> None:
    import torch

    from ..weights import save_weights

    ckpt = out / "checkpoints"
    ckpt.mkdir(exist_ok=True)
    save_weights(
        network,
        ckpt / "last.safetensors",
        {**card, "name": f"{card['name']}_checkpoint"},
        overwrite=True,
        dtype="float32",
    )
    with atomic_path(ckpt / "last_optimizer.pt", overwrite=True) as tmp:
        torch.save({"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}, tmp)
    write_json(ckpt / "last_state.json", state, overwrite=True)


def _rng_to_json(rng: np.random.RandomState) -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = rng.get_state()
    return {
        "name": name,
        "keys": keys.tolist(),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _rng_from_json(data: dict[str, Any]) -> np.random.RandomState:
    rng = np.random.RandomState()
    rng.set_state(
        (
            data["name"],
            np.array(data["keys"], dtype=np.uint32),
            data["pos"],
            data["has_gauss"],
            data["cached_gaussian"],
        )
    )
    return rng


def _initial_state(config: TrainConfig, device: str) -> dict[str, Any]:
    """The state dict of ``config.init_weights``, checked against the run's classes and widths."""
    from ..weights import list_models, load_card, load_state_dict, model_weights_path

    path = Path(config.init_weights or "")
    if not path.is_file():
        shipped = [c.name for c in list_models("ct_segmentation")]
        if str(config.init_weights) not in shipped:
            raise InputError(
                f"Initial weights '{path}' do not exist.",
                f"give an existing .safetensors file (with its .json card) or a shipped model name {shipped}",
            )
        path = model_weights_path(str(config.init_weights))
    card = load_card(path)
    classes = tuple(card.class_names or ())
    features = tuple(card.config.get("features", ()))
    norm = card.config.get("norm", "batch")
    if classes != tuple(config.class_names) or features != tuple(config.features) or norm != config.norm:
        raise InputError(
            f"Initial weights '{path}' do not fit this run: they have classes {list(classes)}, widths "
            f"{list(features)} and {norm} norm; the run has {list(config.class_names)}, "
            f"{list(config.features)} and {config.norm} norm.",
            "train with the same --classes, --features and --norm as those weights, or drop --init-weights",
        )
    return load_state_dict(path, card, device=device)


def train_segmentation(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TrainConfig | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    training_data: str | None = None,
    on_validation: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train (or resume training of) the CT segmentation network.

    Args:
        data_dir: folder of cases (see :func:`spineai.segmentation.data.find_cases`).
        out_dir: run folder (new or empty; with ``resume`` the folder of the interrupted run).
        config: settings; with ``resume`` the saved settings are used, except ``iterations`` and ``device``
            when given here.
        resume: continue from ``out_dir/checkpoints`` at the saved iteration.
        overwrite: allow a non-empty ``out_dir`` for a new run.
        progress: show the tqdm bar (default: when interactive).
        training_data: free-text description of the data for the model card.
        on_validation: called with each validation record.

    Returns:
        :class:`TrainResult`; ``losses`` holds the training loss of each iteration run in this call.
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from ..progress import report
    from ..weights import load_card, load_state_dict, save_weights

    data_dir = Path(data_dir)
    out = Path(out_dir)
    state_file = out / "checkpoints" / "last_state.json"
    if resume:
        if not state_file.is_file():
            raise InputError(
                f"Nothing to resume in '{out}': {state_file} is missing.",
                "start a new run without --resume, or point --out at the interrupted run's folder",
            )
        saved = json.loads(state_file.read_text(encoding="utf-8"))
        requested = config
        config = TrainConfig.from_dict(saved["config"])
        if requested is not None:
            config = dataclasses.replace(
                config,
                iterations=requested.iterations,
                device=requested.device,
                max_minutes=requested.max_minutes,
                prepare_workers=requested.prepare_workers,
            )
        start_iteration = int(saved["iteration"])
    else:
        config = config or TrainConfig()
        saved = None
        start_iteration = 0
    config.validate()
    if not resume:
        prepare_output_dir(out, overwrite=overwrite)
    logger = _make_logger(out / "train.log")
    device = _resolve_device(config.device)
    torch.manual_seed(config.seed)
    rng = np.random.RandomState(config.seed)

    cases = find_cases(data_dir, config.label_convention)
    if saved is not None:
        by_id = {c.case_id: c for c in cases}
        missing = [c for c in saved["train_cases"] + saved["val_cases"] if c not in by_id]
        if missing:
            raise InputError(
                f"Cases {missing[:5]} of the interrupted run are no longer in '{data_dir}'.",
                "resume with the same data folder",
            )
        train_files = [by_id[c] for c in saved["train_cases"]]
        val_files = [by_id[c] for c in saved["val_cases"]]
    else:
        train_files, val_files = split_cases(cases, config)
    logger.info(
        "%s run: %d training, %d validation cases; device %s",
        "resumed" if resume else "new",
        len(train_files),
        len(val_files),
        device,
    )

    report(0.0, "preparing cases")
    unique = list({c.case_id: c for c in train_files + val_files}.values())
    with ThreadPoolExecutor(max_workers=config.prepare_workers) as pool:
        jobs = pool.map(
            lambda case: prepare_case(case, config.class_names, config.patch_size, config.crop_margin_mm),
            unique,
        )
        prepared: dict[str, PreparedCase] = {
            case.case_id: done
            for case, done in zip(
                unique,
                tqdm(
                    jobs,
                    total=len(unique),
                    desc="preparing cases",
                    leave=False,
                    disable=not progress if progress is not None else None,
                ),
                strict=True,
            )
        }
    train_cases = [prepared[c.case_id] for c in train_files]
    val_cases = [prepared[c.case_id] for c in val_files]
    if {c.case_id for c in val_files} <= {c.case_id for c in train_files}:
        logger.warning(
            "validation uses training cases (too few cases to hold any out): its Dice is optimistic"
        )

    if saved is not None:
        intensity = IntensityNormalization.from_dict(saved["intensity"])
    else:
        intensity = IntensityNormalization.fit(
            [c.hu for c in train_cases], [c.classes > 0 for c in train_cases]
        )
    network = build_network(
        {"out_channels": len(config.class_names), "features": list(config.features), "norm": config.norm}
    ).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    if saved is not None:
        ckpt = out / "checkpoints"
        network.load_state_dict(
            load_state_dict(ckpt / "last.safetensors", load_card(ckpt / "last.json"), device=device)
        )
        blob = torch.load(ckpt / "last_optimizer.pt", map_location=device, weights_only=True)
        optimizer.load_state_dict(blob["optimizer"])
        torch.set_rng_state(blob["torch_rng"].cpu())
        rng = _rng_from_json(saved["numpy_rng"])
        weights = np.array(saved["class_weights"], dtype=np.float32)
        history = list(saved.get("history", []))
        best_dice, best_iteration = float(saved["best_mean_dice"]), int(saved["best_iteration"])
    else:
        sampler0 = PatchSampler(
            train_cases,
            dataclasses.replace(config, flip_lr_prob=0.0, flip_ap_prob=0.0, noise_prob=0.0),
            intensity,
            rng,
        )
        counts = np.zeros(len(config.class_names))
        for _ in range(max(1, 64 // config.batch_size)):
            counts += np.bincount(sampler0.batch()[1].ravel(), minlength=len(config.class_names))
        weights = class_weights(counts / counts.sum(), config.class_weighting, config.max_class_weight_ratio)
        history, best_dice, best_iteration = [], -1.0, 0
        if config.init_weights:
            network.load_state_dict(_initial_state(config, device))
            logger.info("initialised from %s", config.init_weights)
    logger.info("config %s", json.dumps(config.to_dict()))
    logger.info(
        "intensity %s; class weights %s",
        intensity.to_dict(),
        dict(zip(config.class_names, np.round(weights, 4).tolist(), strict=True)),
    )
    logger.info("network %s: %d parameters", network.config, count_parameters(network))

    sampler = PatchSampler(train_cases, config, intensity, rng)
    weight_t = torch.from_numpy(weights).to(device)
    network.train()
    losses: list[float] = []
    window_losses: list[float] = []
    started = time.perf_counter()
    last_val = history[-1]["val_mean_dice"] if history else float("nan")
    bar = tqdm(
        range(start_iteration, config.iterations),
        desc="training",
        initial=start_iteration,
        total=config.iterations,
        dynamic_ncols=True,
        disable=not progress if progress is not None else None,
    )
    train_ids = [c.case_id for c in train_cases]
    stopped_at = max(start_iteration, config.iterations)
    for iteration in bar:
        images, targets = sampler.batch()
        x = torch.from_numpy(images).to(device)
        y = torch.from_numpy(targets).to(device)
        logits = network(x)
        loss = F.cross_entropy(logits, y, weight=weight_t)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = float(loss.detach())
        losses.append(value)
        window_losses.append(value)
        bar.set_postfix(loss=f"{value:.4f}", val_dice=f"{last_val:.3f}")
        done = iteration + 1
        if done % config.val_every and done != config.iterations:
            continue
        pick = rng.permutation(len(val_cases))[: config.val_cases_per_round]
        val = validate(network, [val_cases[i] for i in sorted(pick)], config, intensity, device, weights)
        last_val = val["mean_dice"]
        record = {
            "iteration": done,
            "train_loss": float(np.mean(window_losses)),
            "val_mean_dice": val["mean_dice"],
            "val_dice": val["dice"],
            "val_cases": val["cases"],
            "elapsed_s": round(time.perf_counter() - started, 1),
        }
        window_losses = []
        history.append(record)
        improved = val["mean_dice"] > best_dice
        if improved:
            best_dice, best_iteration = val["mean_dice"], done
        metrics = {
            "best_validation": {
                "iteration": best_iteration,
                "mean_dice": best_dice,
                "dice": val["dice"] if improved else None,
                "method": "combined algorithm, tiled patch-size windows",
                "cases": len(val_cases),
            }
        }
        card = _card(config, intensity, train_ids, data_dir, metrics, network, training_data, weights)
        if improved:
            save_weights(network, out / "model.safetensors", card, overwrite=True, dtype="float16")
        state = {
            "schema": STATE_SCHEMA,
            "iteration": done,
            "config": config.to_dict(),
            "intensity": intensity.to_dict(),
            "class_weights": weights.tolist(),
            "train_cases": [c.case_id for c in train_files],
            "val_cases": [c.case_id for c in val_files],
            "best_mean_dice": best_dice,
            "best_iteration": best_iteration,
            "numpy_rng": _rng_to_json(rng),
            "history": history,
        }
        _save_checkpoint(out, network, optimizer, state, card)
        write_text(out / "metrics.tsv", metrics_tsv(history, config.class_names), overwrite=True)
        write_json(
            out / "metrics.json",
            {
                "schema": "spineai.segmentation.train_metrics/1",
                "history": history,
                "best_iteration": best_iteration,
                "best_mean_dice": best_dice,
            },
            overwrite=True,
        )
        logger.info(
            "iteration %d: loss %.4f, validation mean Dice %.4f%s",
            done,
            record["train_loss"],
            val["mean_dice"],
            " (best, saved)" if improved else "",
        )
        report(100.0 * done / config.iterations, f"training iteration {done}/{config.iterations}")
        if on_validation is not None:
            on_validation(record)
        if config.max_minutes is not None and time.perf_counter() - started > 60.0 * config.max_minutes:
            stopped_at = done
            logger.info("time limit of %g minutes reached at iteration %d", config.max_minutes, done)
            break
    bar.close()
    logger.info(
        "%s at iteration %d; best validation mean Dice %.4f at iteration %d",
        "finished" if stopped_at == config.iterations else "stopped (resume to continue)",
        stopped_at,
        best_dice,
        best_iteration,
    )
    weights_path = out / "model.safetensors"
    return TrainResult(
        out,
        weights_path if weights_path.is_file() else None,
        (out / "model.json") if weights_path.is_file() else None,
        best_dice,
        best_iteration,
        stopped_at,
        history,
        losses,
    )
