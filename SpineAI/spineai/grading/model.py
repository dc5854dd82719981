"""The sagittal grading model (disc locator + disc classifier) and its verified loading.

Both networks live in one :class:`SagittalGradingModel`, stored as one safetensors file with its model
card (``spineai.weights``): the shipped ``spineai/resources/models/sagittal_grader.safetensors`` +
``sagittal_grader.json``, or a site's own file of the same kind.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..errors import WeightsError
from ..weights import ModelCard, check_card, load_card, load_into, model_weights_path
from .classifier import GRADER_DEFAULTS, SagittalGraderNet
from .disc_detection import LOCATOR_DEFAULTS, DiscLocatorNet
from .tasks import GRADING_TASKS

__all__ = [
    "torch_threads",
    "ARCHITECTURE",
    "MODEL_NAME",
    "TASK",
    "SagittalGradingModel",
    "class_names",
    "load_grading_model",
]

#: registry name of the shipped model
MODEL_NAME = "sagittal_grader"
#: model-card task of every sagittal grading model
TASK = "sagittal_disc_grading"
ARCHITECTURE = "spineai.grading.SagittalGradingModel"


class SagittalGradingModel(torch.nn.Module):
    """Disc locator and disc classifier together (one weights file).

    Args:
        locator: keyword arguments of :class:`~spineai.grading.disc_detection.DiscLocatorNet`.
        grader: keyword arguments of :class:`~spineai.grading.classifier.SagittalGraderNet`.
    """

    def __init__(self, locator: dict[str, Any] | None = None, grader: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.locator = DiscLocatorNet(**{**LOCATOR_DEFAULTS, **(locator or {})})
        self.grader = SagittalGraderNet(**{**GRADER_DEFAULTS, **(grader or {})})

    @property
    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this model (the card's ``config``)."""
        return {"locator": dict(self.locator.config), "grader": dict(self.grader.config)}


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``torch.set_num_threads(n)`` and restore the previous setting (``None``: unchanged).

    These networks are small: one thread is fastest on a shared machine, where several threads per
    process compete with other processes for the same cores.
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def class_names() -> list[str]:
    """Output names of the classifier in output order, ``"<task>=<grade>"``."""
    return [f"{t.key}={g}" for t in GRADING_TASKS for g in t.grades]


_CACHE: dict[tuple[str, float, int], tuple[SagittalGradingModel, ModelCard]] = {}
_LOCK = threading.Lock()


def load_grading_model(weights: str | os.PathLike | None = None) -> tuple[SagittalGradingModel, ModelCard]:
    """Load (verified against its card) a sagittal grading model, in eval mode on the CPU.

    Args:
        weights: a ``.safetensors`` file with its card beside it; ``None``: the shipped model.

    Returns:
        ``(model, card)``; repeated calls with an unchanged file return the cached model.

    Raises:
        WeightsError: missing, tampered or mismatched weights, or a card of another task.
    """
    path = Path(weights) if weights is not None else model_weights_path(MODEL_NAME)
    if not path.is_file():
        raise WeightsError(
            f"Sagittal grading weights '{path}' are missing.\n"
            "  Fix: reinstall spineai (the shipped model is spineai/resources/models/sagittal_grader.safetensors) "
            "or pass --weights with a model trained by benchmarks/train_sagittal_grader.py."
        )
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime, stat.st_size)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        card = load_card(path)
        check_card(card, TASK, ARCHITECTURE, source=str(path))
        config = card.config if isinstance(card.config, dict) else {}
        model = SagittalGradingModel(locator=config.get("locator"), grader=config.get("grader"))
        load_into(model, path, card)
        model.eval()
        _CACHE[key] = (model, card)
        return model, card
