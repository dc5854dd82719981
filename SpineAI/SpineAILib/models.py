"""Installed models as the hub shows them, and site weights added by a user.

Two places hold models, both read with the engine's ``spineai.weights``:

- the models shipped with the engine (``spineai/resources/models/``), and
- a user models folder (default ``~/.spineai/models``, changeable in the hub), where "Load site weights"
  copies weights trained at the user's site (``spineai train ...`` writes ``<stem>.safetensors`` and its
  model card ``<stem>.json``).

A weights file is only accepted when the engine verifies it against its card (size and SHA-256); it is
copied under its own name and nothing existing is ever overwritten.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: default user models folder (the hub stores the user's choice in the application settings)
DEFAULT_USER_MODELS_DIR = Path.home() / ".spineai" / "models"


@dataclass(frozen=True)
class InstalledModel:
    """One model card found in a folder, with the result of checking its weights.

    Attributes:
        card: the engine's ``ModelCard``.
        folder: the folder holding the card (and, normally, the weights).
        source: ``"shipped"`` or ``"site"``.
        status: ``"verified"``, or the first line of the engine's refusal (missing, truncated, mismatch).
    """

    card: Any
    folder: Path
    source: str
    status: str

    @property
    def verified(self) -> bool:
        return self.status == "verified"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def weights_status(card: Any, folder: str | os.PathLike) -> str:
    """``"verified"`` when the card's weights file is present and matches its SHA-256, else why not."""
    from spineai import weights

    try:
        weights.verify_weights(weights.weights_path_for(card, folder), card)
    except Exception as exc:  # the engine's WeightsError, or an I/O error reading the file
        return _first_line(exc)
    return "verified"


def installed_models(user_dir: str | os.PathLike | None = None, verify: bool = True) -> list[InstalledModel]:
    """Models shipped with the engine and those in the user models folder, each with its weights status.

    Args:
        user_dir: the user models folder (skipped when ``None`` or absent).
        verify: compute SHA-256 of every weights file (reads each file once).
    """
    from spineai import weights

    found: list[InstalledModel] = []
    folders: list[tuple[Path, str]] = [(Path(weights.MODELS_DIR), "shipped")]
    if user_dir is not None and Path(user_dir).is_dir():
        folders.append((Path(user_dir), "site"))
    for folder, source in folders:
        for card in weights.list_models(models_dir=folder):
            status = weights_status(card, folder) if verify else "not checked"
            found.append(InstalledModel(card=card, folder=folder, source=source, status=status))
    return found


def weights_file(model: InstalledModel) -> Path:
    """The weights file of an installed model (``--weights`` of an engine command), beside its card."""
    from spineai import weights

    return weights.weights_path_for(model.card, model.folder)


def install_site_weights(weights_file: str | os.PathLike, user_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Validate site-trained weights with the engine and copy them (and their card) into ``user_dir``.

    Args:
        weights_file: a ``.safetensors`` file written by ``spineai train``; its card ``<stem>.json`` must
            be beside it.
        user_dir: the user models folder (created if needed).

    Returns:
        ``(weights copy, card copy)``.

    Raises:
        spineai.errors.WeightsError: no card, unreadable card, missing, truncated or tampered weights.
        FileExistsError: a file of that name is already in ``user_dir`` (nothing is overwritten).
        ValueError: the file is already in ``user_dir``.
    """
    from spineai import weights
    from spineai.outputs import atomic_path, check_writable

    src = Path(weights_file).resolve()
    if src.suffix != weights.WEIGHTS_SUFFIX:
        raise ValueError(
            f"'{src.name}' is not a {weights.WEIGHTS_SUFFIX} file. Pick the weights written by 'spineai train' "
            "(pickled .pt/.pth checkpoints are refused because loading them could run code)."
        )
    card = weights.load_card(src)
    if card.weights_file and card.weights_file != src.name:
        raise ValueError(
            f"The card beside '{src.name}' describes '{card.weights_file}'. Keep each weights file with its own card."
        )
    weights.verify_weights(src, card)
    dest_dir = Path(user_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    if src.parent == dest_dir.resolve():
        raise ValueError(f"'{src.name}' is already in the user models folder '{dest_dir}'.")
    dest_weights = check_writable(dest_dir / src.name)
    dest_card = check_writable(weights.card_path_for(dest_weights))
    with atomic_path(dest_weights) as tmp:
        shutil.copyfile(src, tmp)
        weights.verify_weights(tmp, card)  # the copy is complete and intact before it gets its name
    try:
        with atomic_path(dest_card) as tmp:
            shutil.copyfile(weights.card_path_for(src), tmp)
    except BaseException:
        dest_weights.unlink(missing_ok=True)
        raise
    return dest_weights, dest_card
