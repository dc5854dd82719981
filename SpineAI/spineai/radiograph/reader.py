"""Per-level herniation reader on crops around each located disc (second stage of the disc-crops design).

The seed paper reads the whole radiograph with one EfficientNet. Trained from scratch on the CPU (no
ImageNet weights can be downloaded here), that design stays at chance on the synthetic cohort: it cannot
find the few-pixel narrowing of one disc space in the whole field. This design looks where the
information is:

1. the **disc locator** (:mod:`spineai.radiograph.discs`) finds the five disc centres on the prepared
   radiograph (CLAHE, letterbox);
2. the radiograph, contrast-enhanced at its own resolution (:func:`~spineai.radiograph.image.enhance`:
   percentile window and CLAHE), is cropped around each disc: a square of ``crop_px`` pixels of
   ``reader_pixel_mm`` mm (default 48 pixels of 1.5 mm = 72 mm), resampled bilinearly (Gaussian
   pre-filter when shrinking), standardised per crop. The pixel size comes from the image's spacing when
   it is known (DICOM, or given), else it is **estimated from the located discs**: their mean
   centre-to-centre distance is taken as :data:`TYPICAL_DISC_SPACING_MM`;
3. one shared small CNN (:class:`DiscReaderNet`, three 3 x 3 convolution blocks) reads every crop; the
   level is told to it either by **five outputs** (one per level, on shared features; default) or as
   **five constant input planes** (one-hot); its sigmoid is the level's herniation probability. The
   fold models of a four-fold cross-validation grouped by patient form a bagging ensemble (mean of the
   members' probabilities); a patient's probability is the mean over their images;
4. **Grad-CAM** (MONAI :class:`monai.visualize.GradCAM` on the reader's last convolution, ``conv3``) of a
   level, on that level's crop, is pasted back at the crop's place on the input image
   (:func:`paste_crop_map`).

The reader is trained on crops at the **true** disc centres, jittered by the locator's typical error
(``jitter_mm``, Gaussian per axis) and scaled by up to ``scale_jitter``, so that it tolerates the
locator; it is validated and evaluated on crops at the **located** centres.

:class:`DiscCropsEnsemble` holds the locator and the reader fold models in one module (one
``.safetensors`` file, one card, architecture :data:`DISC_ARCHITECTURE`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from .discs import DiscLocator, LocatedDiscs, locate_discs
from .network import LEVELS

__all__ = [
    "CROP_PX",
    "DISC_ARCHITECTURE",
    "READER_PIXEL_MM",
    "TYPICAL_DISC_SPACING_MM",
    "DiscCropsEnsemble",
    "DiscCropsTrainConfig",
    "DiscImages",
    "DiscReaderNet",
    "DiscReading",
    "build_disc_ensemble",
    "crop_at",
    "crop_step",
    "estimate_pixel_mm",
    "paste_crop_map",
    "read_disc_levels",
    "reader_gradcam",
    "train_disc_reader",
]

#: architecture identifier of the disc-crops design in model cards
DISC_ARCHITECTURE = "spineai.radiograph.DiscCropsEnsemble"
#: crop side (pixels) and pixel size (mm) of the reader's input
CROP_PX = 48
READER_PIXEL_MM = 1.5
#: disc centre-to-centre distance (mm) assumed when the image's pixel size is unknown. Median of the
#: in-plane distances between consecutive disc centres on the synthetic cohort's four views (400 patients);
#: real adult lumbar discs lie about 35-40 mm apart.
TYPICAL_DISC_SPACING_MM = 35.0
#: the reader's last convolution (Grad-CAM layer) inside one member
READER_GRADCAM_LAYER = "conv3"


# ------------------------------------------------------------------------------------------------- crops
def estimate_pixel_mm(centres_rc: np.ndarray, typical_spacing_mm: float = TYPICAL_DISC_SPACING_MM) -> float:
    """Pixel size (mm) implied by five disc centres ``(5, 2)`` (pixels) if they lie ``typical_spacing_mm`` apart."""
    c = np.asarray(centres_rc, dtype=float)
    d = float(np.mean(np.linalg.norm(np.diff(c, axis=0), axis=1)))
    if not np.isfinite(d) or d < 1.0:
        raise InputError(
            "The located discs coincide, so the image's scale cannot be estimated from them.",
            "pass the pixel size (--pixel-mm / pixel_mm=) or a radiograph in which L1 to S1 are visible",
        )
    return typical_spacing_mm / d


def crop_step(pixel_mm: float, reader_pixel_mm: float = READER_PIXEL_MM) -> float:
    """Input pixels per crop pixel."""
    return float(reader_pixel_mm) / float(pixel_mm)


def prefilter(enhanced: np.ndarray, step: float) -> np.ndarray:
    """Gaussian anti-aliasing before sampling every ``step`` input pixels (nothing when ``step <= 1``)."""
    from scipy.ndimage import gaussian_filter

    if step <= 1.0:
        return np.asarray(enhanced, dtype=np.float32)
    return gaussian_filter(np.asarray(enhanced, dtype=np.float32), sigma=0.5 * math.sqrt(step**2 - 1.0))


def crop_at(
    image: np.ndarray,
    centre_rc: Sequence[float],
    step: float,
    crop_px: int = CROP_PX,
    standardise: bool = True,
) -> np.ndarray:
    """A ``(crop_px, crop_px)`` crop of ``image`` centred at ``centre_rc`` (pixels), ``step`` pixels apart.

    Crop pixel ``(a, b)`` samples image position ``centre + ((a, b) - (crop_px - 1) / 2) * step``
    (bilinear; outside the image the border is repeated). With ``standardise`` the crop is shifted and
    scaled to zero mean and unit standard deviation (+1e-3).
    """
    from scipy.ndimage import map_coordinates

    offs = (np.arange(crop_px, dtype=np.float64) - (crop_px - 1) / 2.0) * float(step)
    rr = float(centre_rc[0]) + offs[:, None] + 0.0 * offs[None, :]
    cc = float(centre_rc[1]) + offs[None, :] + 0.0 * offs[:, None]
    out = map_coordinates(np.asarray(image, dtype=np.float32), [rr, cc], order=1, mode="nearest")
    if standardise:
        out = (out - out.mean()) / (out.std() + 1e-3)
    return out.astype(np.float32)


def paste_crop_map(
    crop_map: np.ndarray, centre_rc: Sequence[float], step: float, shape: tuple[int, int]
) -> np.ndarray:
    """A map on a crop (see :func:`crop_at`) put back at its place on an image of ``shape`` (zero elsewhere)."""
    from scipy.ndimage import map_coordinates

    n = crop_map.shape[0]
    half = (n - 1) / 2.0 * float(step)
    r0, r1 = (
        max(0, int(math.ceil(centre_rc[0] - half))),
        min(shape[0] - 1, int(math.floor(centre_rc[0] + half))),
    )
    c0, c1 = (
        max(0, int(math.ceil(centre_rc[1] - half))),
        min(shape[1] - 1, int(math.floor(centre_rc[1] + half))),
    )
    out = np.zeros(shape, dtype=np.float32)
    if r1 < r0 or c1 < c0:
        return out
    rr, cc = np.mgrid[r0 : r1 + 1, c0 : c1 + 1].astype(np.float64)
    a = (rr - centre_rc[0]) / step + (n - 1) / 2.0
    b = (cc - centre_rc[1]) / step + (n - 1) / 2.0
    out[r0 : r1 + 1, c0 : c1 + 1] = map_coordinates(
        np.asarray(crop_map, dtype=np.float32), [a, b], order=1, mode="constant", cval=0.0
    )
    return out


# --------------------------------------------------------------------------------------------------- network
class DiscReaderNet(nn.Module):
    """Small CNN reading one disc crop ``(B, 1, n, n)`` and its level index ``(B,)`` -> herniation logit ``(B,)``.

    Three blocks of 3 x 3 convolution, batch norm and ReLU (widths ``width``, ``2 width``, ``4 width``), max
    pooling after the first two, global average pooling after the last (``conv3``, the Grad-CAM layer).

    Args:
        width: channels of the first block.
        level_mode: ``"outputs"``: five outputs on shared features, the level picks one; ``"input"``: the
            level's one-hot code as five constant input planes, one output.
    """

    def __init__(self, width: int = 16, level_mode: str = "outputs") -> None:
        super().__init__()
        if level_mode not in ("outputs", "input"):
            raise ValueError(f"level_mode must be 'outputs' or 'input', got {level_mode!r}")
        self.config: dict[str, Any] = {"width": int(width), "level_mode": level_mode}
        w = int(width)
        c_in = 1 + (len(LEVELS) if level_mode == "input" else 0)
        self.conv1 = nn.Conv2d(c_in, w, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(w)
        self.conv2 = nn.Conv2d(w, 2 * w, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(2 * w)
        self.conv3 = nn.Conv2d(2 * w, 4 * w, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(4 * w)
        self.head = nn.Linear(4 * w, len(LEVELS) if level_mode == "outputs" else 1)

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """Logits ``(B,)`` of crops ``x`` ``(B, 1, n, n)`` at levels ``level`` ``(B,)`` (0 = L1-L2)."""
        import torch.nn.functional as F

        level = level.long()
        if self.config["level_mode"] == "input":
            planes = F.one_hot(level, len(LEVELS)).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
            x = torch.cat([x, planes], dim=1)
        h = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        h = F.max_pool2d(F.relu(self.bn2(self.conv2(h))), 2)
        h = F.relu(self.bn3(self.conv3(h)))
        out = self.head(h.mean(dim=(2, 3)))
        if self.config["level_mode"] == "outputs":
            return out.gather(1, level[:, None])[:, 0]
        return out[:, 0]


class _ReaderAtLevel(nn.Module):
    """One member at one fixed level, returning ``(B, 1)`` logits (what MONAI's Grad-CAM needs)."""

    def __init__(self, net: DiscReaderNet, level: int) -> None:
        super().__init__()
        self.net = net
        self.level = int(level)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, torch.full((x.shape[0],), self.level, dtype=torch.long))[:, None]


class DiscCropsEnsemble(nn.Module):
    """The disc locator and the reader fold models (bagging ensemble) in one module.

    Args:
        n_members: reader fold models.
        reader_width, level_mode: as :class:`DiscReaderNet`.
        crop_px, reader_pixel_mm: the reader's crop (pixels) and pixel size (mm).
        locator_channels, locator_size, sigma_px: as :class:`~spineai.radiograph.discs.DiscLocator`.
        typical_spacing_mm: disc spacing assumed when the pixel size is unknown.
    """

    def __init__(
        self,
        n_members: int = 4,
        reader_width: int = 16,
        level_mode: str = "outputs",
        crop_px: int = CROP_PX,
        reader_pixel_mm: float = READER_PIXEL_MM,
        locator_channels: Sequence[int] = (16, 32, 64, 128),
        locator_size: int = 128,
        sigma_px: float = 2.0,
        typical_spacing_mm: float = TYPICAL_DISC_SPACING_MM,
    ) -> None:
        super().__init__()
        if n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {n_members}")
        self.config: dict[str, Any] = {
            "design": "disc-crops",
            "n_members": int(n_members),
            "reader_width": int(reader_width),
            "level_mode": level_mode,
            "crop_px": int(crop_px),
            "reader_pixel_mm": float(reader_pixel_mm),
            "locator_channels": [int(c) for c in locator_channels],
            "locator_size": int(locator_size),
            "sigma_px": float(sigma_px),
            "typical_spacing_mm": float(typical_spacing_mm),
            "image_size": int(locator_size),
        }
        self.locator = DiscLocator(locator_channels, locator_size, sigma_px)
        self.members = nn.ModuleList(DiscReaderNet(reader_width, level_mode) for _ in range(int(n_members)))

    @torch.no_grad()
    def read_crops(self, crops: np.ndarray) -> np.ndarray:
        """Member probabilities ``(M, 5)`` of one image's five crops ``(5, n, n)`` (L1-L2 first)."""
        x = torch.from_numpy(np.asarray(crops, dtype=np.float32))[:, None]
        lv = torch.arange(len(LEVELS))
        return np.stack([torch.sigmoid(m.eval()(x, lv)).numpy() for m in self.members])


def build_disc_ensemble(config: dict[str, Any] | None = None) -> DiscCropsEnsemble:
    """The ensemble from a model card's ``config``."""
    cfg = dict(config or {})
    return DiscCropsEnsemble(
        n_members=int(cfg.get("n_members", 4)),
        reader_width=int(cfg.get("reader_width", 16)),
        level_mode=str(cfg.get("level_mode", "outputs")),
        crop_px=int(cfg.get("crop_px", CROP_PX)),
        reader_pixel_mm=float(cfg.get("reader_pixel_mm", READER_PIXEL_MM)),
        locator_channels=tuple(cfg.get("locator_channels", (16, 32, 64, 128))),
        locator_size=int(cfg.get("locator_size", 128)),
        sigma_px=float(cfg.get("sigma_px", 2.0)),
        typical_spacing_mm=float(cfg.get("typical_spacing_mm", TYPICAL_DISC_SPACING_MM)),
    )


# --------------------------------------------------------------------------------------------- inference
@dataclass
class DiscReading:
    """The disc-crops model's reading of one image.

    Attributes:
        probabilities: ``(5,)`` ensemble probability per level; member_probabilities: ``(M, 5)``.
        centres_rc: ``(5, 2)`` disc centres ``(row, column)`` on the given image (pixels).
        located: the locator's output (``None`` when the centres were given).
        pixel_mm: pixel size used for the crops; scale_source: ``"image spacing"``, ``"given"`` or
            ``"estimated from the located discs"``.
        step: image pixels per crop pixel; crops: ``(5, n, n)`` standardised crops.
        network_input: the locator's prepared ``(size, size)`` input; box: its letterbox.
    """

    probabilities: np.ndarray
    member_probabilities: np.ndarray
    centres_rc: np.ndarray
    located: LocatedDiscs | None
    pixel_mm: float
    scale_source: str
    step: float
    crops: np.ndarray = field(repr=False)
    network_input: np.ndarray | None = field(default=None, repr=False)
    box: Any = None


def read_disc_levels(
    model: DiscCropsEnsemble,
    image: Any,
    *,
    pixel_mm: float | None = None,
    pixel_mm_source: str = "given",
    centres_rc: np.ndarray | None = None,
) -> DiscReading:
    """Locate the discs on one radiograph (unless given), crop them and read each level.

    Args:
        model: the ensemble.
        image: 2D grey image (``sitk.Image`` or ``(rows, cols)`` array, bone bright).
        pixel_mm: the image's pixel size (mm) when known; else estimated from the located discs.
        pixel_mm_source: how ``pixel_mm`` is known (reported).
        centres_rc: ``(5, 2)`` disc centres (pixels) to use instead of the locator's.
    """
    import SimpleITK as sitk

    from .image import enhance, prepare_input

    arr = (
        sitk.GetArrayFromImage(image)
        if isinstance(image, sitk.Image)
        else np.asarray(image, dtype=np.float32)
    )
    cfg = model.config
    x, box = prepare_input(arr, int(cfg["locator_size"]))
    located = None
    if centres_rc is None:
        located = locate_discs(model.locator, x, box)
        centres = located.input_rc
    else:
        centres = np.asarray(centres_rc, dtype=float).reshape(len(LEVELS), 2)
    if pixel_mm is None:
        pixel_mm = estimate_pixel_mm(centres, float(cfg["typical_spacing_mm"]))
        source = (
            "estimated from the located discs" if located is not None else "estimated from the given discs"
        )
    else:
        source = pixel_mm_source
    step = crop_step(float(pixel_mm), float(cfg["reader_pixel_mm"]))
    enhanced = prefilter(enhance(arr), step)
    crops = np.stack([crop_at(enhanced, c, step, int(cfg["crop_px"])) for c in centres])
    members = model.read_crops(crops)
    return DiscReading(
        probabilities=members.mean(axis=0),
        member_probabilities=members,
        centres_rc=centres,
        located=located,
        pixel_mm=float(pixel_mm),
        scale_source=source,
        step=step,
        crops=crops,
        network_input=x,
        box=box,
    )


def reader_gradcam(model: DiscCropsEnsemble, crop: np.ndarray, level_index: int) -> np.ndarray:
    """Grad-CAM of one level on its crop ``(n, n)``: MONAI GradCAM on ``conv3`` of every member, mean, max 1."""
    from .predict import _ensemble_gradcam

    t = torch.from_numpy(np.asarray(crop, dtype=np.float32))[None, None]
    members = [_ReaderAtLevel(member, level_index) for member in model.members]
    return _ensemble_gradcam(members, t, f"net.{READER_GRADCAM_LAYER}", 0)


# ---------------------------------------------------------------------------------------------- training
@dataclass
class DiscImages:
    """Images prepared for training or scoring the reader.

    Attributes:
        enhanced: per image, the contrast-enhanced radiograph (float16, its own grid), anti-aliased for
            its crop step.
        step: ``(N,)`` image pixels per crop pixel.
        true_rc: ``(N, 5, 2)`` disc centres given with the data (NaN where unknown), pixels.
        located_rc: ``(N, 5, 2)`` the locator's centres, pixels; located_confidence ``(N, 5)``.
        labels: ``(N, 5)``; patients, views: per image; pixel_mm ``(N,)`` and scale_source per image.
    """

    enhanced: list[np.ndarray]
    step: np.ndarray
    true_rc: np.ndarray
    located_rc: np.ndarray
    located_confidence: np.ndarray
    labels: np.ndarray
    patients: list[str]
    views: list[str]
    pixel_mm: np.ndarray
    scale_source: list[str] = field(default_factory=list)


def prepare_disc_images(
    images: Sequence[np.ndarray],
    locator: DiscLocator,
    labels: np.ndarray,
    patients: Sequence[str],
    views: Sequence[str] | None = None,
    *,
    true_rc: np.ndarray | None = None,
    pixel_mm: Sequence[float] | None = None,
    reader_pixel_mm: float = READER_PIXEL_MM,
    typical_spacing_mm: float = TYPICAL_DISC_SPACING_MM,
) -> DiscImages:
    """Locate the discs on every image and prepare it for cropping.

    Args:
        images: 2D grey arrays (bone bright).
        locator: the disc locator.
        labels: ``(N, 5)`` herniation labels; patients, views: per image.
        true_rc: ``(N, 5, 2)`` known disc centres (pixels; NaN rows unknown), used for training crops and
            for the scale when the pixel size is unknown.
        pixel_mm: per image pixel size (NaN unknown: estimated from the known, else the located, centres).
    """
    from ..progress import track
    from .image import enhance, prepare_input

    n = len(images)
    true = np.full((n, len(LEVELS), 2), np.nan) if true_rc is None else np.asarray(true_rc, dtype=float)
    spacing = np.full(n, np.nan) if pixel_mm is None else np.asarray(pixel_mm, dtype=float)
    located = np.zeros((n, len(LEVELS), 2))
    conf = np.zeros((n, len(LEVELS)))
    enhanced, steps, used, sources = [], np.zeros(n), np.zeros(n), []
    size = int(locator.config["image_size"])
    for i in track(range(n), desc="locating discs"):
        arr = np.asarray(images[i], dtype=np.float32)
        x, box = prepare_input(arr, size)
        found = locate_discs(locator, x, box)
        located[i], conf[i] = found.input_rc, found.confidence
        if np.isfinite(spacing[i]):
            used[i], src = spacing[i], "given"
        elif np.all(np.isfinite(true[i])):
            used[i], src = estimate_pixel_mm(true[i], typical_spacing_mm), "estimated from the given discs"
        else:
            used[i], src = (
                estimate_pixel_mm(found.input_rc, typical_spacing_mm),
                "estimated from the located discs",
            )
        steps[i] = crop_step(used[i], reader_pixel_mm)
        enhanced.append(prefilter(enhance(arr), steps[i]).astype(np.float16))
        sources.append(src)
    return DiscImages(
        enhanced=enhanced,
        step=steps,
        true_rc=true,
        located_rc=located,
        located_confidence=conf,
        labels=np.asarray(labels),
        patients=[str(p) for p in patients],
        views=list(views) if views is not None else [""] * n,
        pixel_mm=used,
        scale_source=sources,
    )


@dataclass
class DiscCropsTrainConfig:
    """Settings of the disc reader's cross-validated training.

    Attributes:
        folds: cross-validation folds grouped by patient (4, as the paper).
        epochs, batch_size, learning_rate: Adam, cosine decay; each fold keeps its best epoch.
        reader_width, level_mode, crop_px, reader_pixel_mm: as :class:`DiscReaderNet` / the crops.
        jitter_mm: standard deviation (mm, per axis) of the random shift of training crops around the true
            disc centres (the locator's typical error); scale_jitter: crops scaled by up to this fraction.
        max_pos_weight: upper bound of a level's positive-class weight (negatives / positives of the fold).
        seed, num_threads, model_card_name: as usual.
    """

    folds: int = 4
    epochs: int = 15
    batch_size: int = 64
    learning_rate: float = 2e-3
    reader_width: int = 16
    level_mode: str = "outputs"
    crop_px: int = CROP_PX
    reader_pixel_mm: float = READER_PIXEL_MM
    jitter_mm: float = 3.0
    scale_jitter: float = 0.07
    max_pos_weight: float = 10.0
    seed: int = 0
    num_threads: int = 1
    model_card_name: str = "radiograph_hnp_site"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _train_crops(
    data: DiscImages, pairs: np.ndarray, cfg: DiscCropsTrainConfig, rng: np.random.Generator
) -> np.ndarray:
    """Jittered crops ``(B, 1, n, n)`` for ``(image, level)`` pairs at the true (else located) centres."""
    out = np.zeros((len(pairs), 1, cfg.crop_px, cfg.crop_px), dtype=np.float32)
    for j, (i, k) in enumerate(pairs):
        centre = data.true_rc[i, k] if np.all(np.isfinite(data.true_rc[i, k])) else data.located_rc[i, k]
        shift = rng.normal(0.0, cfg.jitter_mm, 2) / data.pixel_mm[i]
        scale = 1.0 + rng.uniform(-cfg.scale_jitter, cfg.scale_jitter)
        out[j, 0] = crop_at(data.enhanced[i], centre + shift, data.step[i] * scale, cfg.crop_px)
    return out


def located_crops(data: DiscImages, crop_px: int = CROP_PX) -> np.ndarray:
    """Crops ``(N, 5, n, n)`` at the located centres (no jitter): what the model sees in use."""
    return np.stack(
        [
            np.stack([crop_at(data.enhanced[i], c, data.step[i], crop_px) for c in data.located_rc[i]])
            for i in range(len(data.enhanced))
        ]
    ).astype(np.float16)


def _predict(net: DiscReaderNet, crops: np.ndarray, batch: int = 256) -> np.ndarray:
    """Probabilities ``(N, 5)`` of crops ``(N, 5, n, n)``."""
    net.eval()
    n = len(crops)
    flat = crops.reshape(n * len(LEVELS), 1, *crops.shape[2:])
    levels = np.tile(np.arange(len(LEVELS)), n)
    out = []
    with torch.no_grad():
        for i in range(0, len(flat), batch):
            xb = torch.from_numpy(flat[i : i + batch].astype(np.float32))
            out.append(torch.sigmoid(net(xb, torch.from_numpy(levels[i : i + batch]))).numpy())
    return np.concatenate(out).reshape(n, len(LEVELS)) if out else np.zeros((0, len(LEVELS)))


def _train_reader_fold(
    cfg: DiscCropsTrainConfig,
    data: DiscImages,
    val_crops: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    fold: int,
    log: list[str],
) -> tuple[DiscReaderNet, dict[str, Any]]:
    from .train import _record_epoch

    torch.manual_seed(cfg.seed * 1000 + fold)
    rng = np.random.default_rng([cfg.seed, fold, 7])
    net = DiscReaderNet(cfg.reader_width, cfg.level_mode)
    y = data.labels.astype(np.float32)
    pos = y[train_idx].sum(axis=0)
    pos_weight = np.clip((len(train_idx) - pos) / np.maximum(pos, 1.0), 1.0, cfg.max_pos_weight)
    pairs = np.array([(i, k) for i in train_idx for k in range(len(LEVELS))])
    opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, weight_decay=1e-4)
    steps = max(1, cfg.epochs * math.ceil(len(pairs) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    val_patients = [data.patients[i] for i in val_idx]
    best: tuple[float, Any, int] = (-math.inf, None, 0)
    history = []
    t0 = time.time()
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        order = rng.permutation(len(pairs))
        losses = []
        for s in range(0, len(order), cfg.batch_size):
            batch = pairs[order[s : s + cfg.batch_size]]
            if len(batch) < 2:
                continue
            xb = torch.from_numpy(_train_crops(data, batch, cfg, rng))
            lv = torch.from_numpy(batch[:, 1].astype(np.int64))
            yb = torch.from_numpy(y[batch[:, 0], batch[:, 1]])
            w = torch.where(yb > 0.5, torch.from_numpy(pos_weight[batch[:, 1]].astype(np.float32)), 1.0)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xb, lv), yb, weight=w)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        p_val = _predict(net, val_crops[val_idx])
        _row, best = _record_epoch(
            net, p_val, val_patients, data.labels[val_idx], fold, epoch, losses, t0, best, history, log
        )
    net.load_state_dict(best[1])
    return net.eval(), {
        "best_epoch": best[2],
        "best_val_mean_auc": best[0],
        "history": history,
        "pos_weight": pos_weight.tolist(),
    }


def train_disc_reader(
    data: DiscImages,
    locator: DiscLocator,
    config: DiscCropsTrainConfig | None = None,
    *,
    log: list[str] | None = None,
) -> tuple[DiscCropsEnsemble, dict[str, Any]]:
    """Four-fold cross-validation grouped by patient of the disc reader; the folds form the ensemble.

    Each fold trains on jittered crops at the true centres of its training images and, after every epoch,
    scores its validation patients on crops at the located centres (image probabilities averaged per
    patient); it keeps the epoch with the best mean per-level AUC and picks each level's Youden threshold
    there. The ensemble's threshold per level is the mean of the folds'.

    Returns:
        ``(ensemble with the locator, summary: folds, thresholds, out-of-fold report, located crops' use)``.
    """
    from ..stats import grouped_kfold
    from .train import _cross_validation, _fold_summary

    cfg = config or DiscCropsTrainConfig()
    log = log if log is not None else []
    if np.any(data.labels < 0):
        raise InputError(
            "Some images have no herniation labels.", "fill hnp_L1_2 .. hnp_L5_S1 for every image"
        )
    n_patients = len(set(data.patients))
    if cfg.folds < 2 or n_patients < cfg.folds:
        raise InputError(
            f"{n_patients} patient(s) for {cfg.folds} folds.", "add patients or use fewer folds (>= 2)"
        )
    torch.set_num_threads(max(1, int(cfg.num_threads)))
    val_crops = located_crops(data, cfg.crop_px)
    any_hnp = (data.labels.max(axis=1) > 0).astype(int)
    splits = grouped_kfold(np.asarray(data.patients), n_splits=cfg.folds, y=any_hnp, seed=cfg.seed)
    members, folds = [], []
    oof = np.zeros(data.labels.shape, dtype=float)
    for k, (train_idx, val_idx) in enumerate(splits):
        net, info = _train_reader_fold(cfg, data, val_crops, train_idx, val_idx, k, log)
        p_val = _predict(net, val_crops[val_idx])
        oof[val_idx] = p_val
        folds.append(_fold_summary(info, k, p_val, data.patients, data.labels, train_idx, val_idx))
        members.append(net)
    ens = DiscCropsEnsemble(
        n_members=cfg.folds,
        reader_width=cfg.reader_width,
        level_mode=cfg.level_mode,
        crop_px=cfg.crop_px,
        reader_pixel_mm=cfg.reader_pixel_mm,
        locator_channels=locator.config["channels"],
        locator_size=int(locator.config["image_size"]),
        sigma_px=float(locator.config["sigma_px"]),
    )
    ens.locator.load_state_dict(locator.state_dict())
    for k, net in enumerate(members):
        ens.members[k].load_state_dict(net.state_dict())
    ens.eval()
    thresholds, cv, (ids, pm, ym) = _cross_validation(
        folds,
        oof,
        data.patients,
        data.labels,
        "out-of-fold patient probabilities on crops at the located disc centres (each patient scored by the "
        "fold model that did not train on it) at the ensemble thresholds",
    )
    return ens, {
        "thresholds": thresholds,
        "folds": folds,
        "cross_validation": cv,
        "oof": {"patients": ids, "probabilities": pm, "labels": ym},
    }


#: task and architecture of a stand-alone locator file (the locator inside a disc-crops model loads too)
LOCATOR_TASK = "radiograph_disc_locator"
LOCATOR_ARCHITECTURE = "spineai.radiograph.DiscLocator"


def save_locator(
    locator: DiscLocator, path: Any, card_extra: dict[str, Any] | None = None
) -> tuple[Any, Any]:
    """Write a stand-alone locator (fp32 safetensors + card)."""
    from ..weights import save_weights

    card = {
        "name": "radiograph_disc_locator",
        "task": LOCATOR_TASK,
        "architecture": LOCATOR_ARCHITECTURE,
        "config": locator.config,
        "class_names": list(LEVELS),
        **(card_extra or {}),
    }
    return save_weights(locator, path, card, overwrite=True, dtype="float32")


def load_locator(path: Any) -> DiscLocator:
    """The locator of a stand-alone locator file or of a disc-crops model file (verified by SHA-256).

    Raises:
        WeightsError: missing or tampered file, or a card of another kind of model.
    """
    from ..errors import WeightsError
    from ..weights import load_card, load_into, load_state_dict

    card = load_card(path)
    if card.architecture == LOCATOR_ARCHITECTURE:
        cfg = card.config
        return load_into(
            DiscLocator(cfg["channels"], int(cfg["image_size"]), float(cfg["sigma_px"])), path, card
        ).eval()
    if card.architecture == DISC_ARCHITECTURE:
        ens = build_disc_ensemble(card.config)
        state = load_state_dict(path, card)
        ens.locator.load_state_dict(
            {k[len("locator.") :]: v for k, v in state.items() if k.startswith("locator.")}
        )
        return ens.locator.eval()
    raise WeightsError(
        f"'{path}' holds a {card.architecture} model, not a disc locator.\n"
        "  Fix: pass a disc-crops radiograph model or a locator file (--locator)."
    )


def disc_model_card(
    ens: DiscCropsEnsemble,
    summary: dict[str, Any],
    cfg: DiscCropsTrainConfig,
    *,
    n_images: int,
    n_patients: int,
    training_data: Any = "",
    locator_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The model card of a trained disc-crops ensemble (thresholds, per-fold and out-of-fold figures)."""
    from .network import TASK

    return {
        "name": cfg.model_card_name,
        "task": TASK,
        "architecture": DISC_ARCHITECTURE,
        "config": ens.config,
        "class_names": list(LEVELS),
        "input": {
            "modality": "plain radiograph (CR/DX), lumbar spine, AP / lateral / oblique views",
            "image_size": [ens.config["locator_size"], ens.config["locator_size"]],
            "locator_preprocessing": "grey; 0.5th-99.5th percentile to [0, 1]; CLAHE (clip 0.01); letterbox to "
            f"{ens.config['locator_size']} px; minus 0.5",
            "reader_crops": f"{ens.config['crop_px']} x {ens.config['crop_px']} pixels of "
            f"{ens.config['reader_pixel_mm']:g} mm around each disc, from the CLAHE-enhanced image at its own "
            "resolution; standardised per crop; pixel size from the image spacing, else estimated from the "
            f"discs ({ens.config['typical_spacing_mm']:g} mm apart)",
            "orientation": "as displayed: head at the top; no flips or rotations",
        },
        "design": "disc-crops",
        "training_data": training_data,
        "training_recipe": {
            **cfg.to_dict(),
            "locator": locator_info or {},
            "loss": "binary cross-entropy with logits per crop (positives weighted by the fold's negative/positive "
            f"ratio of the level, at most {cfg.max_pos_weight:g})",
            "cross_validation": f"{cfg.folds}-fold, grouped by patient, stratified by any herniation",
            "model_selection": "per fold: the epoch with the best mean per-level AUC on its validation patients "
            "(crops at the located disc centres, image probabilities averaged per patient)",
            "ensemble": "bagging: mean of the fold readers' probabilities; threshold per level = mean of the "
            "folds' Youden-optimal thresholds",
            "parameters_per_reader": int(sum(p.numel() for p in ens.members[0].parameters())),
            "parameters_locator": int(sum(p.numel() for p in ens.locator.parameters())),
            "n_images": int(n_images),
            "n_patients": int(n_patients),
        },
        "metrics": {
            "cross_validation_folds": [
                {
                    "fold": f["fold"],
                    "best_epoch": f["best_epoch"],
                    "thresholds": f["thresholds"],
                    "validation": f["validation"],
                }
                for f in summary["folds"]
            ],
            "cross_validation_out_of_fold": summary["cross_validation"],
        },
        "extra": {
            "thresholds": dict(zip(LEVELS, summary["thresholds"], strict=True)),
            "fold_thresholds": [f["thresholds"] for f in summary["folds"]],
            "departure_from_the_paper": DEPARTURE,
        },
    }


#: what every disc-crops card says about the seed paper's design
DEPARTURE = (
    "This model departs from the seed paper's design (one EfficientNet-B5 reading the whole radiograph). "
    "Trained from scratch on the CPU (no ImageNet weights), the whole-image network stayed at chance on the "
    "synthetic cohort (mean per-level AUC about 0.5 with 64 and with 400 patients): it cannot find the "
    "few-pixel narrowing of one disc space in the whole field. A disc locator followed by a small reader of "
    "a crop around each disc learns it (docs/radiograph.md). Everything around it is the paper's: CLAHE, no "
    "flips, per-level outputs, 4-fold cross-validation grouped by patient, bagging, per-patient mean, "
    "per-fold Youden thresholds, Grad-CAM on the last convolution."
)
