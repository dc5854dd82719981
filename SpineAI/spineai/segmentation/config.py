"""Settings of a segmentation training run and the network widths: no torch import, so the command line
builds its help without loading torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .data import CROP_MARGIN_MM, CT_CLASS_NAMES, check_class_names

#: the paper's feature widths per resolution level
PAPER_FEATURES: tuple[int, ...] = (32, 64, 128, 256, 512)
#: the engine's default widths: a quarter of the paper's compute, fast enough for CPU inference
DEFAULT_FEATURES: tuple[int, ...] = (16, 32, 64, 128, 256)


@dataclass
class TrainConfig:
    """Every setting of a training run (defaults: the paper's, see module docstring).

    Attributes:
        class_names: output classes, background first.
        features: channels per U-Net level (paper: 32, 64, 128, 256, 512).
        norm: "batch" (paper) or "instance".
        patch_size: training patch (z, y, x) voxels at 1 mm.
        batch_size: patches per iteration.
        learning_rate: Adam learning rate.
        iterations: total training iterations.
        val_every: iterations between validations (and checkpoints).
        val_cases_per_round: validation cases drawn at random for each validation.
        val_fraction: share of cases held out for validation when ``val_cases`` is empty.
        val_cases: explicit validation case ids.
        val_overlap: overlap of validation windows (0 = tiles, the paper's stride = window).
        sampling: "class-balanced" or "uniform" patch centres.
        class_weighting: "inverse", "sqrt-inverse" or "none".
        max_class_weight_ratio: cap of largest / smallest class weight.
        noise_prob: probability of additive Gaussian noise per patch.
        noise_std: its SD in standardised units.
        flip_lr_prob: probability of a left-right flip (with left/right label swap).
        flip_ap_prob: probability of an antero-posterior flip.
        crop_margin_mm: margin kept around the labelled region.
        seed: random seed (sampling, augmentation, initialisation).
        device: "auto" (CUDA when available), "cpu" or "cuda".
        label_convention: convention of label files without sidecar (verse, canonical, or a JSON file).
        model_name: name written into the model card.
        init_weights: start from these weights (a ``.safetensors`` with its card, same classes and widths)
            instead of He initialisation, e.g. to fine-tune the shipped model on a site's own cases.
        max_minutes: stop at the first validation after this many minutes of training (the checkpoint
            is saved, so ``--resume`` continues); ``None`` runs all ``iterations``.
        prepare_workers: threads that prepare (read, resample, crop) the cases before training.
    """

    class_names: tuple[str, ...] = CT_CLASS_NAMES
    features: tuple[int, ...] = DEFAULT_FEATURES
    norm: str = "batch"
    patch_size: tuple[int, int, int] = (32, 64, 64)
    batch_size: int = 4
    learning_rate: float = 5e-4
    iterations: int = 20000
    val_every: int = 100
    val_cases_per_round: int = 6
    val_fraction: float = 0.2
    val_cases: tuple[str, ...] = ()
    val_overlap: float = 0.0
    sampling: str = "class-balanced"
    class_weighting: str = "inverse"
    max_class_weight_ratio: float = 50.0
    noise_prob: float = 0.5
    noise_std: float = 0.1
    flip_lr_prob: float = 0.5
    flip_ap_prob: float = 0.0
    crop_margin_mm: float = CROP_MARGIN_MM
    seed: int = 0
    device: str = "auto"
    label_convention: str | None = None
    model_name: str = "spinect_ct"
    init_weights: str | None = None
    max_minutes: float | None = None
    prepare_workers: int = 4

    def validate(self) -> None:
        """Raise :class:`InputError` for settings that cannot work."""
        check_class_names(self.class_names)
        divisor = 2 ** (len(self.features) - 1)
        if any(int(p) % divisor for p in self.patch_size):
            raise InputError(
                f"Patch size {tuple(self.patch_size)} is not divisible by {divisor} "
                f"({len(self.features) - 1} poolings of features {tuple(self.features)}).",
                f"use multiples of {divisor}, e.g. 32,64,64",
            )
        checks = [
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.learning_rate > 0, "--lr must be positive"),
            (self.iterations >= 1, "--iterations must be at least 1"),
            (self.val_every >= 1, "--val-every must be at least 1"),
            (0.0 <= self.val_fraction < 1.0, "--val-fraction must be in [0, 1)"),
            (0.0 <= self.val_overlap < 1.0, "--val-overlap must be in [0, 1)"),
            (self.sampling in ("class-balanced", "uniform"), "--sampling must be class-balanced or uniform"),
            (
                self.class_weighting in ("inverse", "sqrt-inverse", "none"),
                "--class-weighting must be inverse, sqrt-inverse or none",
            ),
            (self.max_class_weight_ratio >= 1, "--max-class-weight-ratio must be at least 1"),
            (
                all(0 <= p <= 1 for p in (self.noise_prob, self.flip_lr_prob, self.flip_ap_prob)),
                "probabilities must be in [0, 1]",
            ),
            (self.norm in ("batch", "instance"), "--norm must be batch or instance"),
            (self.max_minutes is None or self.max_minutes > 0, "--max-minutes must be positive"),
            (self.prepare_workers >= 1, "--prepare-workers must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(f"Invalid training setting: {message}.", "correct the option and run again")

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name: f for f in dataclasses.fields(cls)}
        values = {}
        for k, v in data.items():
            if k in known:
                values[k] = tuple(v) if isinstance(v, list) else v
        return cls(**values)
