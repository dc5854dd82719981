"""Training of the two stages of the stenosis model (CPU friendly, seeded).

Both loops run with ``torch.set_num_threads(config.threads)`` (default 1) and restore the setting.

Detector: :func:`~spineai.grading.stenosis.detector.detector_loss`, AdamW with cosine decay, batches of
slices scaled into the detector's input and augmented by a random rotation (+-10 degrees), scaling
(0.9-1.1) and shift (+-6 pixels) applied to the image and its box centres (no flips: left and right must
stay apart). The iteration with the best mean box IoU on the validation slices is kept (checked every
``val_every`` iterations).

Classifier: crops of every annotated region (:mod:`~spineai.grading.stenosis.classifier`) re-sampled each
epoch with jitter (centre +-8 % of the crop side, side x 0.88-1.12, intensity gamma 0.8-1.25) so it
tolerates the detector's errors; cross-entropy of the region's own head; Adam; the epoch with the best
mean accuracy over the three region kinds on the validation crops (from the reference boxes) is kept.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...progress import track
from ..axial.data import AxialRecord
from ..axial.grades import REGION_KINDS, REGIONS
from ..model import torch_threads
from .classifier import CONTEXT, GRADER_DEFAULTS, RoiGraderNet, crop_frame, sample_crop
from .detector import DETECTOR_DEFAULTS, RoiDetectorNet, decode_boxes, detector_loss, detector_targets

__all__ = [
    "DetectorTrainConfig",
    "RoiGraderTrainConfig",
    "StenosisSample",
    "box_iou",
    "prepare_samples",
    "region_crops",
    "train_detector",
    "train_roi_grader",
    "train_stenosis_from_folder",
]

CONTEXT_TEXT = ", ".join(f"{k} {v}" for k, v in CONTEXT.items())


@dataclass
class StenosisSample:
    """One slice prepared for training or evaluation.

    Attributes:
        working: normalised working slice (uint8, 0..255 = 0..1).
        detector_input: the slice in the detector's square input (uint8).
        geometry: ``LocatorGeometry`` (``input = scale * working + offset``).
        boxes: ``(5, 4)`` reference boxes ``(row0, col0, row1, col1)`` in working pixels (NaN: none).
        grades: ``(5,)`` reference grades (-1: none).
        pixel_mm: working pixel size (``None`` for pictures).
        line: manifest line; ``patient``: patient id.
    """

    working: np.ndarray
    detector_input: np.ndarray
    geometry: Any
    boxes: np.ndarray
    grades: np.ndarray
    pixel_mm: float | None
    line: int = 0
    patient: str = ""


def _box_to_working(ws: Any, box: Sequence[float]) -> np.ndarray:
    x0, y0, x1, y1 = (float(v) for v in box)
    dims = ws.image.GetDimension()
    extra = [] if dims == 2 else [ws.input_index((0.0, 0.0))[2]]
    pts = np.array(
        [ws.working_from_input_index([x, y, *extra]) for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))]
    )
    return np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])


def prepare_samples(
    records: Sequence[AxialRecord], detector_size: int, progress: bool | None = None
) -> list[StenosisSample]:
    """Read every row's slice, its reference boxes (mapped to working pixels) and region grades.

    Boxes of a 3D volume refer to its graded slice (x, y = the first two index axes of the volume).
    """
    from ..axial.model import prepare_axial_input
    from ..axial.slices import read_axial_slice
    from ..disc_detection import normalise_slice

    samples = []
    for rec in track(
        records, desc="reading axial slices", disable=None if progress is None else not progress
    ):
        ws = read_axial_slice(rec.image, slice_index=rec.slice_index, check_sagittal_picture=False)
        det, geo = prepare_axial_input(ws.array, detector_size)
        boxes = np.full((len(REGIONS), 4), np.nan)
        grades = np.full(len(REGIONS), -1, dtype=np.int64)
        for k, region in enumerate(REGIONS):
            entry = rec.regions.get(region.key) or {}
            if entry.get("box") is not None:
                boxes[k] = _box_to_working(ws, entry["box"])
            if entry.get("grade") is not None:
                grades[k] = int(entry["grade"])
        samples.append(
            StenosisSample(
                working=np.round(normalise_slice(ws.array) * 255).astype(np.uint8),
                detector_input=np.round(np.clip(det, 0, 1) * 255).astype(np.uint8),
                geometry=geo,
                boxes=boxes,
                grades=grades,
                pixel_mm=ws.pixel_mm,
                line=rec.line,
                patient=rec.patient,
            )
        )
    return samples


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes ``(row0, col0, row1, col1)``."""
    r0, c0 = max(a[0], b[0]), max(a[1], b[1])
    r1, c1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(r1 - r0, 0.0) * max(c1 - c0, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _input_boxes(sample: StenosisSample) -> np.ndarray:
    """Reference boxes in detector-input pixels ``(5, 4)``."""
    out = np.full((len(REGIONS), 4), np.nan)
    for k, box in enumerate(sample.boxes):
        if np.all(np.isfinite(box)):
            lo = sample.geometry.to_input(np.array([box[0], box[1]]))
            hi = sample.geometry.to_input(np.array([box[2], box[3]]))
            out[k] = [lo[0], lo[1], hi[0], hi[1]]
    return out


# ------------------------------------------------------------------------------------------ detector
@dataclass
class DetectorTrainConfig:
    """Settings of :func:`train_detector`."""

    iterations: int = 1500
    batch_size: int = 16
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    rotation_deg: float = 10.0
    scale: tuple[float, float] = (0.9, 1.1)
    shift_px: float = 6.0
    val_every: int = 100
    seed: int = 0
    threads: int = 1
    max_minutes: float | None = None
    architecture: dict[str, Any] = field(default_factory=lambda: dict(DETECTOR_DEFAULTS))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _augment_detector(
    images: np.ndarray, boxes: np.ndarray, cfg: DetectorTrainConfig, rng: np.random.Generator
) -> tuple[torch.Tensor, np.ndarray]:
    """Random rotation/scale/shift of a batch ``(B, S, S)`` and its boxes ``(B, 5, 4)`` (input pixels)."""
    import torch.nn.functional as F

    b, size = images.shape[0], images.shape[-1]
    x = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
    angle = np.deg2rad(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg, b))
    zoom = rng.uniform(cfg.scale[0], cfg.scale[1], b)  # > 1 magnifies
    shift = rng.uniform(-cfg.shift_px, cfg.shift_px, (b, 2))  # (rows, cols) in output pixels
    theta = np.zeros((b, 2, 3), dtype=np.float32)
    out_boxes = np.full_like(boxes, np.nan)
    centre = (size - 1) / 2.0
    for i in range(b):
        c, s = math.cos(angle[i]), math.sin(angle[i])
        # output (x, y) normalised -> input normalised: p_in = R p_out / zoom - shift_n
        a = np.array([[c, -s], [s, c]]) / zoom[i]
        t = -a @ (np.array([shift[i, 1], shift[i, 0]]) * 2.0 / size)
        theta[i, :, :2] = a
        theta[i, :, 2] = t
        inv = np.linalg.inv(a)
        for k in range(boxes.shape[1]):
            box = boxes[i, k]
            if not np.all(np.isfinite(box)):
                continue
            cr, cc = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            p_in = np.array([(cc - centre) / (size / 2.0), (cr - centre) / (size / 2.0)])
            p_out = inv @ (p_in - t)
            ocol, orow = p_out * (size / 2.0) + centre
            h, w = (box[2] - box[0]) * zoom[i], (box[3] - box[1]) * zoom[i]
            out_boxes[i, k] = [orow - h / 2, ocol - w / 2, orow + h / 2, ocol + w / 2]
    grid = F.affine_grid(torch.from_numpy(theta), [b, 1, size, size], align_corners=False)
    xa = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    gamma = torch.from_numpy(rng.uniform(0.8, 1.25, (b, 1, 1, 1)).astype(np.float32))
    return xa.clamp(0, 1) ** gamma, out_boxes


def _detector_scores(net: RoiDetectorNet, samples: Sequence[StenosisSample]) -> dict[str, float]:
    net.eval()
    ious, errors = [], []
    with torch.no_grad():
        for s0 in range(0, len(samples), 32):
            chunk = samples[s0 : s0 + 32]
            x = torch.from_numpy(np.stack([s.detector_input for s in chunk]).astype(np.float32) / 255.0)[
                :, None
            ]
            out = net(x).numpy()
            for s, o in zip(chunk, out, strict=True):
                ref = _input_boxes(s)
                for det, box in zip(decode_boxes(o), ref, strict=True):
                    if np.all(np.isfinite(box)):
                        ious.append(box_iou(det.box(), box))
                        errors.append(
                            math.hypot(
                                det.centre_rc[0] - (box[0] + box[2]) / 2,
                                det.centre_rc[1] - (box[1] + box[3]) / 2,
                            )
                        )
    return {
        "mean_iou": float(np.mean(ious)) if ious else float("nan"),
        "mean_centre_error_px": float(np.mean(errors)) if errors else float("nan"),
    }


def train_detector(
    train: Sequence[StenosisSample],
    val: Sequence[StenosisSample] | None = None,
    config: DetectorTrainConfig | None = None,
    *,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[RoiDetectorNet, dict[str, Any]]:
    """Train the region detector; returns ``(network in eval mode, history)``."""
    cfg = config or DetectorTrainConfig()
    size = int(cfg.architecture.get("size", DETECTOR_DEFAULTS["size"]))
    usable = [s for s in train if np.isfinite(s.boxes).all(axis=1).any()]
    if not usable:
        raise ValueError("no training slice has a region box")
    images = np.stack([s.detector_input for s in usable])
    if images.shape[1:] != (size, size):
        raise ValueError(f"detector inputs must be {size} x {size}, got {images.shape[1:]}")
    boxes = np.stack([_input_boxes(s) for s in usable])
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    history: dict[str, Any] = {"config": cfg.to_dict(), "checks": []}
    start = time.monotonic()
    with torch_threads(cfg.threads):
        net = RoiDetectorNet(**cfg.architecture)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.iterations, 1))
        best_state, best_iou, best_it = None, -1.0, None
        losses: list[float] = []
        done = 0
        for it in track(
            range(cfg.iterations),
            desc="training region detector",
            disable=None if progress is None else not progress,
        ):
            net.train()
            idx = rng.integers(len(images), size=cfg.batch_size)
            x, bx = _augment_detector(images[idx], boxes[idx], cfg, rng)
            targets = [detector_targets(b, size) for b in bx]
            heat = torch.from_numpy(np.stack([t[0] for t in targets]))
            sizes = torch.from_numpy(np.stack([t[1] for t in targets]))
            known = torch.from_numpy(np.stack([t[2] for t in targets]))
            loss = detector_loss(net(x), heat, sizes, known)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            done = it + 1
            last = done == cfg.iterations
            out_of_time = cfg.max_minutes is not None and (time.monotonic() - start) / 60.0 >= cfg.max_minutes
            if done % cfg.val_every == 0 or last or out_of_time:
                entry = {"iteration": done, "loss": float(np.mean(losses[-cfg.val_every :]))}
                if val:
                    entry.update(_detector_scores(net, val))
                    if entry["mean_iou"] > best_iou:
                        best_iou, best_it = entry["mean_iou"], done
                        best_state = copy.deepcopy(net.state_dict())
                entry["minutes"] = (time.monotonic() - start) / 60.0
                history["checks"].append(entry)
                if log:
                    extra = (
                        f", val IoU {entry['mean_iou']:.3f}, centre error {entry['mean_centre_error_px']:.2f} px"
                        if val
                        else ""
                    )
                    log(
                        f"detector iteration {done}: loss {entry['loss']:.3f}{extra} ({entry['minutes']:.1f} min)"
                    )
            if out_of_time:
                history["stopped_early"] = (
                    f"time limit of {cfg.max_minutes} minutes reached at iteration {done}"
                )
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
    history.update(
        {
            "iterations_done": done,
            "best_iteration": best_it if best_it is not None else done,
            "best_val_mean_iou": None if best_it is None else float(best_iou),
            "wall_minutes": (time.monotonic() - start) / 60.0,
            "train_slices": len(usable),
        }
    )
    return net, history


# -------------------------------------------------------------------------------------- classifier
@dataclass
class RoiGraderTrainConfig:
    """Settings of :func:`train_roi_grader`."""

    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    jitter_shift: float = 0.08
    jitter_scale: tuple[float, float] = (0.88, 1.12)
    gamma: tuple[float, float] = (0.8, 1.25)
    seed: int = 0
    threads: int = 1
    max_minutes: float | None = None
    architecture: dict[str, Any] = field(default_factory=lambda: dict(GRADER_DEFAULTS))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def region_crops(
    samples: Sequence[StenosisSample],
    crop_size: int,
    rng: np.random.Generator | None = None,
    cfg: RoiGraderTrainConfig | None = None,
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Crops of every region that has a box and a grade: ``(n, 1, c, c)`` float32, kinds, grades ``(n,)``.

    With ``rng`` the crops are jittered (``cfg``'s shift, scale and gamma); without, they are exact.
    """
    crops, kinds, grades = [], [], []
    for s in samples:
        working = s.working.astype(np.float32) / 255.0
        for k, region in enumerate(REGIONS):
            if s.grades[k] < 0 or not np.all(np.isfinite(s.boxes[k])):
                continue
            if rng is not None and cfg is not None:
                frame = crop_frame(
                    s.boxes[k],
                    region.kind,
                    region.side,
                    crop_size,
                    shift=rng.uniform(-cfg.jitter_shift, cfg.jitter_shift, 2),
                    scale=rng.uniform(*cfg.jitter_scale),
                )
                crop = sample_crop(working, frame) ** rng.uniform(*cfg.gamma)
            else:
                crop = sample_crop(working, crop_frame(s.boxes[k], region.kind, region.side, crop_size))
            crops.append(crop[None])
            kinds.append(region.kind)
            grades.append(int(s.grades[k]))
    if not crops:
        return np.zeros((0, 1, crop_size, crop_size), np.float32), [], np.zeros(0, np.int64)
    return np.stack(crops).astype(np.float32), kinds, np.asarray(grades, dtype=np.int64)


def _grader_accuracy(net: RoiGraderNet, x: np.ndarray, kinds: list[str], y: np.ndarray) -> dict[str, float]:
    net.eval()
    preds = []
    with torch.no_grad():
        for s in range(0, len(x), 128):
            logits = RoiGraderNet.kind_logits(net(torch.from_numpy(x[s : s + 128])), kinds[s : s + 128])
            preds.append(logits.argmax(dim=1).numpy())
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    out = {}
    for kind in REGION_KINDS:
        m = np.array([k == kind for k in kinds])
        out[kind] = float(np.mean(pred[m] == y[m])) if m.any() else float("nan")
    return out


def train_roi_grader(
    train: Sequence[StenosisSample],
    val: Sequence[StenosisSample] | None = None,
    config: RoiGraderTrainConfig | None = None,
    *,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[RoiGraderNet, dict[str, Any]]:
    """Train the region classifier; returns ``(network in eval mode, history)``."""
    cfg = config or RoiGraderTrainConfig()
    crop_size = int(cfg.architecture.get("crop_size", GRADER_DEFAULTS["crop_size"]))
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    val_x, val_k, val_y = region_crops(val or [], crop_size)
    history: dict[str, Any] = {"config": cfg.to_dict(), "epochs": []}
    start = time.monotonic()
    with torch_threads(cfg.threads):
        net = RoiGraderNet(**cfg.architecture)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        best_state, best_score, best_epoch = None, -1.0, None
        n_crops = 0
        for epoch in track(
            range(cfg.epochs),
            desc="training region classifier",
            disable=None if progress is None else not progress,
        ):
            x, kinds, y = region_crops(train, crop_size, rng, cfg)
            if not len(x):
                raise ValueError("no training region has both a box and a grade")
            n_crops = len(x)
            net.train()
            order = rng.permutation(len(x))
            losses = []
            for s in range(0, len(order), cfg.batch_size):
                idx = order[s : s + cfg.batch_size]
                if len(idx) < 2:
                    continue
                logits = RoiGraderNet.kind_logits(net(torch.from_numpy(x[idx])), [kinds[i] for i in idx])
                loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y[idx]))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
            entry: dict[str, Any] = {"epoch": epoch + 1, "loss": float(np.mean(losses))}
            if len(val_x):
                acc = _grader_accuracy(net, val_x, val_k, val_y)
                score = float(np.nanmean(list(acc.values())))
                entry.update({"val_accuracy": acc, "val_mean_accuracy": score})
                if score > best_score:
                    best_score, best_epoch = score, epoch + 1
                    best_state = copy.deepcopy(net.state_dict())
            entry["minutes"] = (time.monotonic() - start) / 60.0
            history["epochs"].append(entry)
            if log:
                extra = f", val acc {entry['val_mean_accuracy']:.3f}" if "val_mean_accuracy" in entry else ""
                log(
                    f"classifier epoch {epoch + 1}: loss {entry['loss']:.4f}{extra} ({entry['minutes']:.1f} min)"
                )
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
            "train_crops_per_epoch": n_crops,
            "val_crops": int(len(val_x)),
            "wall_minutes": (time.monotonic() - start) / 60.0,
        }
    )
    return net, history


def train_stenosis_from_folder(
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    detector_config: DetectorTrainConfig | None = None,
    grader_config: RoiGraderTrainConfig | None = None,
    *,
    name: str = "stenosis",
    val_fraction: float = 0.15,
    split_seed: int = 2024,
    training_data: Any = None,
    overwrite: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train both stages on a manifest folder and write ``<out_dir>/<name>.safetensors`` with its card.

    Rows are split by patient (a ``split`` column wins); the validation rows choose the detector's
    iteration and the classifier's epoch, and give the card's figures (both stages run end to end on them,
    :func:`~spineai.grading.stenosis.evaluate.stenosis_metrics`).

    Returns:
        ``{"weights": path, "card": path, "history": {...}, "metrics": ...}``.
    """
    from ...errors import InputError
    from ...outputs import check_writable
    from ...weights import ModelCard, save_weights
    from ..axial.data import read_manifest, split_records
    from .evaluate import stenosis_metrics
    from .model import ARCHITECTURE, TASK, StenosisModel, class_names
    from .predict import predict_regions

    det_cfg = detector_config or DetectorTrainConfig()
    cls_cfg = grader_config or RoiGraderTrainConfig()
    folder = Path(out_dir)
    weights_path = folder / f"{name}.safetensors"
    check_writable(weights_path, overwrite)
    check_writable(folder / f"{name}.json", overwrite)
    manifest = read_manifest(data, need="regions")
    parts = split_records(manifest.records, val_fraction=val_fraction, seed=split_seed)
    if not parts["train"]:
        raise InputError(
            f"No training rows in '{manifest.path}' after the split.",
            "add rows or lower the validation share",
        )
    size = int(det_cfg.architecture.get("size", DETECTOR_DEFAULTS["size"]))
    train = prepare_samples(parts["train"], size, progress=progress)
    val = prepare_samples(parts["val"], size, progress=progress) if parts["val"] else []
    detector, det_hist = train_detector(train, val, det_cfg, progress=progress, log=log)
    grader, cls_hist = train_roi_grader(train, val, cls_cfg, progress=progress, log=log)
    model = StenosisModel(detector=dict(detector.config), grader=dict(grader.config))
    model.detector.load_state_dict(detector.state_dict())
    model.grader.load_state_dict(grader.state_dict())
    model.eval()
    metrics: dict[str, Any] = {}
    if val:
        rows = []
        with torch_threads(cls_cfg.threads):
            for s in val:
                boxes, _conf, probs, _f = predict_regions(
                    model,
                    s.working.astype(np.float32) / 255.0,
                    s.detector_input.astype(np.float32) / 255.0,
                    s.geometry,
                )
                for k, region in enumerate(REGIONS):
                    ref = s.boxes[k]
                    ok = bool(np.all(np.isfinite(ref)))
                    err = (
                        math.hypot(
                            (boxes[k][0] + boxes[k][2] - ref[0] - ref[2]) / 2,
                            (boxes[k][1] + boxes[k][3] - ref[1] - ref[3]) / 2,
                        )
                        if ok
                        else None
                    )
                    rows.append(
                        {
                            "region": region.key,
                            "reference_grade": int(s.grades[k]) if s.grades[k] >= 0 else None,
                            "predicted_grade": int(np.argmax(probs[k])),
                            "probabilities": [float(v) for v in probs[k]],
                            "iou": box_iou(boxes[k], ref) if ok else None,
                            "centre_error_px": err,
                            "centre_error_mm": None
                            if err is None or s.pixel_mm is None
                            else err * s.pixel_mm,
                        }
                    )
        metrics = {"validation": {"images": len(val), "metrics": stenosis_metrics(rows)}}
    card = ModelCard(
        name=name,
        task=TASK,
        architecture=ARCHITECTURE,
        config=model.config,
        class_names=class_names(),
        input={
            "modality": "MRI, T2-weighted, one axial slice at a lumbar disc level",
            "orientation": "reoriented to LPS: rows anterior->posterior, columns patient right->left",
            "intensity": "per-slice linear scaling of the 0.5th-99.5th percentiles to [0, 1]",
            "detector_input": f"slice fitted into {size} x {size} pixels, aspect kept, zero padded",
            "crop": f"square around each detected box (side x {CONTEXT_TEXT}), {model.grader.config['crop_size']} px; "
            "right-side regions mirrored",
            "regions": [r.key for r in REGIONS],
        },
        training_data=training_data
        or {
            "manifest": str(manifest.path),
            "train_images": len(parts["train"]),
            "val_images": len(parts["val"]),
            "split": {"by": "patient", "val_fraction": val_fraction, "seed": split_seed},
        },
        training_recipe={"detector": det_cfg.to_dict(), "classifier": cls_cfg.to_dict()},
        metrics=metrics,
        extra={
            "detector_history": det_hist["checks"],
            "classifier_history": cls_hist["epochs"],
            "detector_best_iteration": det_hist["best_iteration"],
            "classifier_best_epoch": cls_hist["best_epoch"],
            "wall_minutes": det_hist["wall_minutes"] + cls_hist["wall_minutes"],
        },
    )
    folder.mkdir(parents=True, exist_ok=True)
    w, c = save_weights(model, weights_path, card, overwrite=overwrite)
    return {
        "weights": w,
        "card": c,
        "history": {"detector": det_hist, "classifier": cls_hist},
        "metrics": metrics,
    }
