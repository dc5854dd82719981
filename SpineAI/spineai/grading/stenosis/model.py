"""The two-stage stenosis model (region detector + region classifier) and its verified loading.

Both networks live in one :class:`StenosisModel`, stored as one safetensors file with its model card
(``spineai.weights``): the shipped ``spineai/resources/models/stenosis_demo.safetensors`` + ``.json``, or
a site's own file written by ``spineai train stenosis``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import torch

from ...errors import WeightsError
from ...weights import ModelCard, check_card, load_card, load_into, model_weights_path
from ..axial.grades import GRADES, REGION_KINDS
from .classifier import GRADER_DEFAULTS, RoiGraderNet
from .detector import DETECTOR_DEFAULTS, RoiDetectorNet

__all__ = ["ARCHITECTURE", "MODEL_NAME", "TASK", "StenosisModel", "class_names", "load_stenosis_model"]

#: registry name of the shipped demo model
MODEL_NAME = "stenosis_demo"
#: model-card task of every stenosis model
TASK = "axial_stenosis_detection_grading"
ARCHITECTURE = "spineai.grading.stenosis.StenosisModel"


class StenosisModel(torch.nn.Module):
    """Region detector and region classifier together (one weights file).

    Args:
        detector: keyword arguments of :class:`~spineai.grading.stenosis.detector.RoiDetectorNet`.
        grader: keyword arguments of :class:`~spineai.grading.stenosis.classifier.RoiGraderNet`.
    """

    def __init__(self, detector: dict[str, Any] | None = None, grader: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.detector = RoiDetectorNet(**{**DETECTOR_DEFAULTS, **(detector or {})})
        self.grader = RoiGraderNet(**{**GRADER_DEFAULTS, **(grader or {})})

    @property
    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this model (the card's ``config``)."""
        return {"detector": dict(self.detector.config), "grader": dict(self.grader.config)}


def class_names() -> list[str]:
    """Classifier outputs in order, ``"<kind>=<grade>"``."""
    return [f"{k}={g}" for k in REGION_KINDS for g in GRADES]


_CACHE: dict[tuple[str, float, int], tuple[StenosisModel, ModelCard]] = {}
_LOCK = threading.Lock()


def load_stenosis_model(weights: str | os.PathLike | None = None) -> tuple[StenosisModel, ModelCard]:
    """Load a stenosis model (verified against its card), in eval mode on the CPU.

    Args:
        weights: a ``.safetensors`` file with its card; ``None``: the shipped demo model.

    Raises:
        WeightsError: missing, tampered or mismatched weights, or a card of another task.
    """
    path = Path(weights) if weights is not None else model_weights_path(MODEL_NAME)
    if not path.is_file():
        raise WeightsError(
            f"Stenosis weights '{path}' are missing.\n"
            "  Fix: reinstall spineai (the shipped demo is spineai/resources/models/stenosis_demo.safetensors) "
            "or pass --weights with a model trained by 'spineai train stenosis'."
        )
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime, stat.st_size)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        card = load_card(path)
        check_card(card, TASK, ARCHITECTURE, source=str(path))
        config = card.config if isinstance(card.config, dict) else {}
        try:
            model = StenosisModel(detector=config.get("detector"), grader=config.get("grader"))
        except (TypeError, ValueError) as exc:
            raise WeightsError(
                f"The card of '{path}' describes a stenosis model that cannot be built ({exc}).\n"
                "  Fix: use the card written together with the weights."
            ) from None
        load_into(model, path, card)
        model.eval()
        _CACHE[key] = (model, card)
        return model, card
