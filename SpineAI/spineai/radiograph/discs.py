"""Disc locator for lumbar radiographs: one heat map per disc (L1-L2 .. L5-S1), peaks kept in cranio-caudal order.

The first stage of the disc-crops design (:mod:`spineai.radiograph.reader` is the second). A narrow MONAI
:class:`monai.networks.nets.UNet` reads the preprocessed radiograph (CLAHE and letterbox,
:func:`~spineai.radiograph.image.prepare_input`, ``size x size`` pixels) and outputs five logit maps, one per
disc. Each map is turned into a probability distribution over the pixels (spatial softmax) and trained
with the cross-entropy against a normalised Gaussian (``sigma_px``) centred on the true disc centre; so the
located centre is the peak of that distribution, refined to sub-pixel by the probability-weighted mean in a
5 x 5 window, and its **confidence** is the probability mass within ``2 sigma`` of it (0..1: 1 when the
network is sure of one place).

**Cranio-caudal order.** Levels must come out L1-L2 above L2-L3 ... above L5-S1 (image rows grow
caudally: the radiograph is displayed head up). :func:`decode_heatmaps` keeps up to eight local maxima per
level and chooses, by dynamic programming, the combination with the largest summed log-confidence whose
rows increase from level to level by at least ``min_gap_px``; ``order_enforced`` says when that choice
differs from each map's own maximum.

Geometry: arrays are ``[row, column]``, row 0 at the top; :class:`~spineai.radiograph.image.Letterbox` maps
between the network grid and the input image (:func:`grid_to_input`, :func:`input_to_grid`).
:func:`project_disc_centres` projects LPS disc centres (mm) onto the synthetic radiographs of
:mod:`spineai.radiograph.phantom` (the DRR geometry of :func:`spineai.planning.drr.drr`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from .image import Letterbox
from .network import LEVELS

__all__ = [
    "DiscLocator",
    "LocatedDiscs",
    "LocatorTrainConfig",
    "decode_heatmaps",
    "grid_to_input",
    "heatmap_targets",
    "input_to_grid",
    "locate_discs",
    "localisation_errors",
    "locator_loss",
    "project_disc_centres",
    "train_disc_locator",
]

#: default network input of the locator (pixels) and Gaussian width of its targets (network pixels)
LOCATOR_SIZE = 128
HEATMAP_SIGMA_PX = 2.0


# ------------------------------------------------------------------------------------------------ geometry
def project_disc_centres(
    centres_lps_mm: Mapping[str, Sequence[float]],
    view: str,
    centre_lps_mm: Sequence[float],
    pixel_mm: float,
    image_px: int,
) -> np.ndarray:
    """Image position ``(row, column)`` of each disc centre on a synthetic radiograph of :mod:`.phantom`.

    The phantom renders parallel projections (:func:`spineai.planning.drr.drr`) with row 0 at the top
    (largest LPS z), the column along the view's lateral axis, pixel ``(r, c)`` at
    ``centre + (c - (n-1)/2) * pixel * lateral - (r - (n-1)/2) * pixel * up``.

    Args:
        centres_lps_mm: level -> disc centre (LPS, mm) (``truth["disc_centres_lps_mm"]``).
        view: ``ap``, ``lateral``, ``oblique_left`` or ``oblique_right``.
        centre_lps_mm: the picture's centre (``truth["image"]["centre_lps_mm"]``).
        pixel_mm: pixel size (mm); image_px: image side (pixels).

    Returns:
        ``(5, 2)`` float array of ``(row, column)`` in image pixels, L1-L2 first.
    """
    from .phantom import _view_axes

    _ray, lateral = _view_axes(view)
    up = np.array([0.0, 0.0, 1.0])
    c0 = np.asarray(centre_lps_mm, dtype=float)
    half = (int(image_px) - 1) / 2.0
    out = np.zeros((len(LEVELS), 2))
    for k, lv in enumerate(LEVELS):
        d = np.asarray(centres_lps_mm[lv], dtype=float) - c0
        out[k] = (half - float(d @ up) / pixel_mm, half + float(d @ lateral) / pixel_mm)
    return out


def input_to_grid(rc: np.ndarray, box: Letterbox) -> np.ndarray:
    """Input-image ``(row, column)`` pixel positions -> network-grid positions (pixel centres map exactly)."""
    rc = np.asarray(rc, dtype=float)
    inner_r, inner_c = box.inner
    sr, sc = inner_r / box.rows, inner_c / box.cols
    return np.stack([(rc[..., 0] + 0.5) * sr - 0.5 + box.top, (rc[..., 1] + 0.5) * sc - 0.5 + box.left], -1)


def grid_to_input(rc: np.ndarray, box: Letterbox) -> np.ndarray:
    """Network-grid ``(row, column)`` positions -> input-image pixel positions (inverse of :func:`input_to_grid`)."""
    rc = np.asarray(rc, dtype=float)
    inner_r, inner_c = box.inner
    sr, sc = inner_r / box.rows, inner_c / box.cols
    return np.stack([(rc[..., 0] - box.top + 0.5) / sr - 0.5, (rc[..., 1] - box.left + 0.5) / sc - 0.5], -1)


def heatmap_targets(centres_rc: np.ndarray, size: int, sigma_px: float = HEATMAP_SIGMA_PX) -> np.ndarray:
    """Gaussian heat maps ``(5, size, size)`` (each summing to 1) peaking at the disc centres (grid pixels).

    Args:
        centres_rc: ``(5, 2)`` ``(row, column)`` on the network grid; a row of NaN gives an all-zero map
            (that disc is not annotated: it adds nothing to the loss).
        size: grid side (pixels); sigma_px: Gaussian standard deviation (pixels).
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.zeros((len(centres_rc), size, size), dtype=np.float32)
    for k, (r, c) in enumerate(np.asarray(centres_rc, dtype=float)):
        if not (np.isfinite(r) and np.isfinite(c)):
            continue
        g = np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2.0 * sigma_px**2))
        total = float(g.sum())
        if total > 1e-6:
            out[k] = g / total
    return out


# --------------------------------------------------------------------------------------------------- network
class DiscLocator(nn.Module):
    """MONAI UNet with one logit map per disc (L1-L2 .. L5-S1).

    Args:
        channels: UNet feature channels per resolution (each further one halves the resolution).
        image_size: side of the square input (pixels) the locator was trained on.
        sigma_px: Gaussian width of the training targets (grid pixels).

    Input ``(B, 1, H, W)`` (prepared radiograph, [-0.5, 0.5]); output ``(B, 5, H, W)`` logits.
    """

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 64, 128),
        image_size: int = LOCATOR_SIZE,
        sigma_px: float = HEATMAP_SIGMA_PX,
    ) -> None:
        super().__init__()
        from monai.networks.nets import UNet

        chans = tuple(int(c) for c in channels)
        if len(chans) < 2 or image_size % (2 ** (len(chans) - 1)):
            raise ValueError(f"channels {chans} and image_size {image_size} do not fit a UNet")
        self.config: dict[str, Any] = {
            "channels": list(chans),
            "image_size": int(image_size),
            "sigma_px": float(sigma_px),
        }
        self.net = UNet(
            spatial_dims=2,
            in_channels=1,
            out_channels=len(LEVELS),
            channels=chans,
            strides=(2,) * (len(chans) - 1),
            num_res_units=1,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logit maps ``(B, 5, H, W)``."""
        return self.net(x)


def locator_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each level's spatial softmax against its target distribution (mean over maps).

    Maps whose target is all zero (disc not annotated) are left out.
    """
    b, k = logits.shape[:2]
    logp = torch.log_softmax(logits.reshape(b, k, -1), dim=-1)
    t = targets.reshape(b, k, -1)
    per_map = -(t * logp).sum(dim=-1)
    annotated = t.sum(dim=-1) > 0.5
    if not bool(annotated.any()):
        return per_map.sum() * 0.0
    return per_map[annotated].mean()


# ---------------------------------------------------------------------------------------------- decoding
@dataclass
class LocatedDiscs:
    """Disc centres found by the locator.

    Attributes:
        grid_rc: ``(5, 2)`` ``(row, column)`` on the network grid, L1-L2 first.
        input_rc: ``(5, 2)`` ``(row, column)`` on the image the locator was given (pixels).
        confidence: ``(5,)`` probability mass within 2 sigma of each centre (0..1).
        order_enforced: the cranio-caudal order constraint changed at least one level's choice.
        in_order: the centres' rows increase from L1-L2 to L5-S1.
        probability_maps: ``(5, size, size)`` spatial-softmax maps (each sums to 1), for display.
    """

    grid_rc: np.ndarray
    input_rc: np.ndarray
    confidence: np.ndarray
    order_enforced: bool
    in_order: bool
    probability_maps: np.ndarray | None = field(default=None, repr=False)


def _candidates(p: np.ndarray, radius: float, k_max: int) -> list[tuple[float, float, float]]:
    """Local maxima of one probability map: ``(row, column, mass within radius)``, best first."""
    from scipy.ndimage import maximum_filter, uniform_filter

    r = max(1, int(round(radius)))
    mass = uniform_filter(p.astype(np.float64), size=2 * r + 1, mode="constant") * (2 * r + 1) ** 2
    peaks = (mass == maximum_filter(mass, size=2 * r + 1, mode="constant")) & (mass > 1e-4)
    rows, cols = np.nonzero(peaks)
    order = np.argsort(-mass[rows, cols])[:k_max]
    out = []
    for i in order:
        r0, c0 = int(rows[i]), int(cols[i])
        ra, rb = max(0, r0 - 2), min(p.shape[0], r0 + 3)
        ca, cb = max(0, c0 - 2), min(p.shape[1], c0 + 3)
        w = p[ra:rb, ca:cb].astype(np.float64)
        yy, xx = np.mgrid[ra:rb, ca:cb]
        s = float(w.sum())
        rr, cc = (float((w * yy).sum() / s), float((w * xx).sum() / s)) if s > 0 else (float(r0), float(c0))
        out.append((rr, cc, float(min(1.0, mass[r0, c0]))))
    if not out:  # flat map: its maximum
        r0, c0 = np.unravel_index(int(np.argmax(p)), p.shape)
        out.append((float(r0), float(c0), float(p.max())))
    return out


def decode_heatmaps(
    probability_maps: np.ndarray,
    sigma_px: float = HEATMAP_SIGMA_PX,
    min_gap_px: float = 2.0,
    candidates: int = 8,
) -> tuple[np.ndarray, np.ndarray, bool, bool]:
    """Disc centres from five probability maps, in cranio-caudal order.

    Args:
        probability_maps: ``(5, H, W)``, each summing to 1 (spatial softmax).
        sigma_px: the locator's Gaussian width (the confidence is the mass within ``2 sigma``).
        min_gap_px: smallest row step from one level to the next.
        candidates: local maxima kept per level.

    Returns:
        ``(centres (5, 2) row/column, confidence (5,), order_enforced, in_order)``.
    """
    maps = np.asarray(probability_maps, dtype=np.float64)
    cands = [_candidates(m, 2.0 * sigma_px, candidates) for m in maps]
    n = len(cands)
    # dynamic programming over the levels: best log-confidence sum with rows increasing by >= min_gap_px
    score = [np.array([np.log(max(c[2], 1e-9)) for c in cands[0]])]
    back: list[np.ndarray] = []
    for k in range(1, n):
        prev_rows = np.array([c[0] for c in cands[k - 1]])
        cur = np.full(len(cands[k]), -np.inf)
        arg = np.full(len(cands[k]), -1)
        for j, (r, _c, conf) in enumerate(cands[k]):
            ok = (r - prev_rows >= min_gap_px) & np.isfinite(score[-1])
            if ok.any():
                i = int(np.argmax(np.where(ok, score[-1], -np.inf)))
                cur[j] = score[-1][i] + np.log(max(conf, 1e-9))
                arg[j] = i
        score.append(cur)
        back.append(arg)
    best_first = [c[0] for c in cands]
    if not np.isfinite(score[-1]).any():  # no ordered combination: each map's maximum, flagged
        chosen = best_first
    else:
        idx = [int(np.argmax(score[-1]))]
        for k in range(n - 1, 0, -1):
            idx.append(int(back[k - 1][idx[-1]]))
        idx = idx[::-1]
        chosen = [cands[k][i] for k, i in enumerate(idx)]
    centres = np.array([[c[0], c[1]] for c in chosen])
    conf = np.array([c[2] for c in chosen])
    enforced = any(a is not b for a, b in zip(chosen, best_first, strict=True))
    in_order = bool(np.all(np.diff(centres[:, 0]) > 0))
    return centres, conf, enforced, in_order


@torch.no_grad()
def locate_discs(locator: DiscLocator, x: np.ndarray, box: Letterbox | None = None) -> LocatedDiscs:
    """Locate the five discs on one prepared radiograph ``x`` ``(size, size)`` (see :func:`prepare_input`).

    Args:
        locator: the trained locator (evaluation mode is set here).
        x: prepared image on the network grid.
        box: its letterbox (to give the centres on the input image too); ``None``: ``input_rc`` = ``grid_rc``.
    """
    locator.eval()
    size = int(locator.config["image_size"])
    if x.shape != (size, size):
        raise InputError(
            f"The locator reads {size} x {size} pixel inputs; an array of {x.shape} was given.",
            f"prepare the radiograph with prepare_input(image, {size})",
        )
    logits = locator(torch.from_numpy(np.asarray(x, dtype=np.float32))[None, None])[0]
    p = torch.softmax(logits.reshape(len(LEVELS), -1), dim=-1).reshape(logits.shape).cpu().numpy()
    centres, conf, enforced, in_order = decode_heatmaps(p, float(locator.config["sigma_px"]))
    input_rc = grid_to_input(centres, box) if box is not None else centres.copy()
    return LocatedDiscs(
        grid_rc=centres,
        input_rc=input_rc,
        confidence=conf,
        order_enforced=enforced,
        in_order=in_order,
        probability_maps=p.astype(np.float32),
    )


# ---------------------------------------------------------------------------------------------- training
@dataclass
class LocatorTrainConfig:
    """Settings of :func:`train_disc_locator`.

    Attributes:
        channels, image_size, sigma_px: as :class:`DiscLocator`.
        epochs, batch_size, learning_rate: Adam with cosine decay.
        augment: random zoom 0.8-1.25, shift up to 10 % of the side, rotation up to 8 degrees, contrast
            jitter; the targets move with the image (no flips: the levels keep their order).
        seed, num_threads: reproducibility and CPU threads.
    """

    channels: tuple[int, ...] = (16, 32, 64, 128)
    image_size: int = LOCATOR_SIZE
    sigma_px: float = HEATMAP_SIGMA_PX
    epochs: int = 12
    batch_size: int = 16
    learning_rate: float = 2e-3
    augment: bool = True
    seed: int = 0
    num_threads: int = 1


def _affine_pair(
    x: torch.Tensor, t: torch.Tensor, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random zoom/shift/rotation of images ``x`` and target maps ``t``; contrast jitter of ``x``."""
    import torch.nn.functional as F

    n = x.shape[0]
    zoom = np.exp(rng.uniform(np.log(0.8), np.log(1.25), n))
    angle = np.radians(rng.uniform(-8.0, 8.0, n))
    shift = rng.uniform(-0.2, 0.2, (n, 2))
    theta = np.zeros((n, 2, 3), dtype=np.float32)
    theta[:, 0, 0] = np.cos(angle) / zoom
    theta[:, 0, 1] = -np.sin(angle) / zoom
    theta[:, 1, 0] = np.sin(angle) / zoom
    theta[:, 1, 1] = np.cos(angle) / zoom
    theta[:, :, 2] = shift
    grid = F.affine_grid(torch.from_numpy(theta), list(x.shape), align_corners=False)
    # the letterbox padding (-0.5) continues outside the image
    xa = F.grid_sample(x + 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 0.5
    tg = F.grid_sample(t, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    total = tg.sum(dim=(2, 3), keepdim=True)
    orig = t.sum(dim=(2, 3), keepdim=True)
    # a disc moved out of the field is no longer annotated
    tg = torch.where((total > 0.5 * orig) & (orig > 0.5), tg / total.clamp_min(1e-8), torch.zeros_like(tg))
    contrast = torch.from_numpy(rng.uniform(0.8, 1.2, (n, 1, 1, 1)).astype(np.float32))
    return xa * contrast, tg


def train_disc_locator(
    x: np.ndarray,
    centres_grid: np.ndarray,
    config: LocatorTrainConfig | None = None,
    *,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    log: list[str] | None = None,
) -> tuple[DiscLocator, list[dict[str, float]]]:
    """Train a disc locator on prepared radiographs with known disc centres.

    Args:
        x: ``(N, size, size)`` prepared images (:func:`~spineai.radiograph.image.prepare_input`).
        centres_grid: ``(N, 5, 2)`` disc centres ``(row, column)`` on the grid (NaN: not annotated).
        config: settings.
        validation: optional ``(x_val, centres_val)``: the median localisation error (grid pixels) is
            reported after every epoch.
        log: lines appended per epoch.

    Returns:
        ``(locator in evaluation mode, history: epoch, train_loss, val_median_error_px)``.
    """
    import time

    from ..progress import track

    cfg = config or LocatorTrainConfig()
    if x.ndim != 3 or x.shape[1:] != (cfg.image_size, cfg.image_size):
        raise InputError(
            f"Locator training images of shape {x.shape[1:]} for an input of {cfg.image_size} pixels.",
            f"prepare the radiographs with prepare_input(image, {cfg.image_size})",
        )
    if centres_grid.shape != (len(x), len(LEVELS), 2):
        raise InputError(
            f"Disc centres of shape {centres_grid.shape} for {len(x)} images.",
            "give five (row, column) centres per image",
        )
    torch.set_num_threads(max(1, int(cfg.num_threads)))
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    locator = DiscLocator(cfg.channels, cfg.image_size, cfg.sigma_px)
    targets = np.stack([heatmap_targets(c, cfg.image_size, cfg.sigma_px) for c in centres_grid])
    opt = torch.optim.Adam(locator.parameters(), lr=cfg.learning_rate)
    steps = max(1, cfg.epochs * int(np.ceil(len(x) / cfg.batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.learning_rate, total_steps=steps)
    history: list[dict[str, float]] = []
    t0 = time.time()
    for epoch in track(range(1, cfg.epochs + 1), desc="disc locator epochs"):
        locator.train()
        losses = []
        order = rng.permutation(len(x))
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            if len(idx) < 2:
                continue
            xb = torch.from_numpy(x[idx].astype(np.float32))[:, None]
            tb = torch.from_numpy(targets[idx])
            if cfg.augment:
                xb, tb = _affine_pair(xb, tb, rng)
            loss = locator_loss(locator(xb), tb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched.last_epoch + 1 < steps:
                sched.step()
            losses.append(float(loss.detach()))
        row = {"epoch": float(epoch), "train_loss": float(np.mean(losses)), "seconds": time.time() - t0}
        if validation is not None:
            errors = localisation_errors(locator, validation[0], validation[1])
            row["val_median_error_px"] = float(np.nanmedian(errors))
        history.append(row)
        if log is not None:
            log.append(" ".join(f"{k} {v:.4f}" for k, v in row.items()))
    return locator.eval(), history


def localisation_errors(locator: DiscLocator, x: np.ndarray, centres_grid: np.ndarray) -> np.ndarray:
    """Distance (grid pixels) between located and true centres, ``(N, 5)`` (NaN where not annotated)."""
    out = np.full(centres_grid.shape[:2], np.nan)
    for i in range(len(x)):
        found = locate_discs(locator, np.asarray(x[i], dtype=np.float32))
        out[i] = np.linalg.norm(found.grid_rc - centres_grid[i], axis=-1)
    return out
