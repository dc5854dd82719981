"""Model weights and model cards, for every model of the product.

A model is two files side by side:

- ``<stem>.safetensors``: the state dict in safetensors format (floating-point tensors in fp16 unless
  asked otherwise). Loading never unpickles anything.
- ``<stem>.json``: the model card: name, version, task, architecture and its configuration, class
  names, input spacing and intensity normalisation, what it was trained on and how, measured figures,
  the SHA-256 and size of the weights file, intended use (research only), creation date and library
  versions.

:func:`load_state_dict` checks the weights file against its card (presence, size, SHA-256) *before*
reading it, so a missing, truncated or tampered file is refused with a :class:`~spineai.errors.WeightsError`
naming the file and the fix. Site-trained weights (``spineai train ...``) are written and loaded the same
way as shipped ones. Shipped cards and weights live in ``spineai/resources/models/`` and are listed by
:func:`list_models`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import WeightsError
from .outputs import atomic_path, check_writable, write_json

#: folder of the model cards (and weight files) shipped with the engine
MODELS_DIR = Path(__file__).resolve().parent / "resources" / "models"
#: the statement every card carries
INTENDED_USE = "research use only, not for clinical decisions"
#: version of the card layout written by this module
CARD_SCHEMA = "spineai.model_card/1"
WEIGHTS_SUFFIX = ".safetensors"


@dataclass
class ModelCard:
    """What a weights file is, how it was made and how it must be used.

    Attributes:
        name: model name, e.g. ``"spinect_ct_demo"`` (registry key).
        version: model version string.
        task: what the model does, e.g. ``"ct_segmentation"``.
        architecture: architecture identifier, e.g. ``"spineai.segmentation.SpineUNet3D"``.
        config: keyword arguments that rebuild the architecture.
        class_names: output classes in output-channel order.
        input: input contract, e.g. ``{"modality": "CT", "spacing_mm": [1, 1, 1], "intensity": {...}}``.
        training_data: what the weights were trained on (free text or structured).
        training_recipe: hyper-parameters of the run.
        metrics: measured figures (with the data they were measured on).
        weights_file: file name of the weights, relative to the card's folder.
        sha256: SHA-256 of the weights file (hex).
        size_bytes: size of the weights file.
        intended_use: always :data:`INTENDED_USE`.
        created: ISO-8601 creation time (UTC).
        library_versions: versions of Python, torch, MONAI, ... that wrote the file.
        extra: anything else a model needs (kept verbatim).
    """

    name: str
    task: str
    architecture: str
    config: dict[str, Any]
    class_names: list[str] = field(default_factory=list)
    version: str = "1.0"
    input: dict[str, Any] = field(default_factory=dict)
    training_data: Any = ""
    training_recipe: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    weights_file: str = ""
    sha256: str = ""
    size_bytes: int = 0
    intended_use: str = INTENDED_USE
    created: str = ""
    library_versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    schema: str = CARD_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the card."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "model card") -> ModelCard:
        """Card from a dict; a :class:`WeightsError` names missing or unknown fields."""
        if not isinstance(data, Mapping):
            raise WeightsError(
                f"{source} is not a JSON object.\n  Fix: use a card written by spineai.weights."
            )
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("name", "task", "architecture", "config") if k not in data]
        if missing:
            raise WeightsError(
                f"{source} lacks the field(s) {', '.join(missing)}.\n"
                "  Fix: use the card written beside the weights by 'spineai train' or spineai.weights.save_weights."
            )
        unknown = sorted(set(data) - known)
        values = {k: v for k, v in data.items() if k in known}
        card = cls(**values)
        if unknown:
            card.extra = {**card.extra, "unknown_fields": {k: data[k] for k in unknown}}
        return card


def card_path_for(weights_path: str | os.PathLike) -> Path:
    """The card file that belongs to a weights file: ``model.safetensors`` -> ``model.json``."""
    p = Path(weights_path)
    return p.with_suffix(".json") if p.suffix == WEIGHTS_SUFFIX else p.with_name(p.name + ".json")


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries that matter for reproducing a model."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for dist in ("spineai", "torch", "monai", "numpy", "SimpleITK", "safetensors"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    if "spineai" not in versions:
        from . import __version__

        versions["spineai"] = __version__
    return versions


def _state_dict(model_or_state: Any) -> dict[str, Any]:
    import torch

    state = model_or_state.state_dict() if hasattr(model_or_state, "state_dict") else dict(model_or_state)
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise TypeError(f"state dict entries {bad[:5]} are not tensors; only tensors can be saved")
    return state


def save_weights(
    model_or_state: Any,
    path: str | os.PathLike,
    card: ModelCard | Mapping[str, Any],
    overwrite: bool = False,
    dtype: str = "float16",
) -> tuple[Path, Path]:
    """Write ``<path>`` (safetensors) and its card ``<stem>.json`` atomically.

    Args:
        model_or_state: a ``torch.nn.Module`` or a state dict of tensors.
        path: weights file, ending in ``.safetensors``.
        card: the card; ``weights_file``, ``sha256``, ``size_bytes``, ``created``, ``library_versions``
            and ``intended_use`` are filled in here.
        overwrite: replace existing files.
        dtype: storage type of floating-point tensors: ``"float16"`` (shipped weights) or ``"float32"``
            (exact training checkpoints). Integer buffers (batch-norm counters) are kept as they are.

    Returns:
        ``(weights_path, card_path)``.
    """
    import torch
    from safetensors.torch import save_file

    weights_path = Path(path)
    if weights_path.suffix != WEIGHTS_SUFFIX:
        raise ValueError(f"weights file '{weights_path}' must end in {WEIGHTS_SUFFIX}")
    card_file = card_path_for(weights_path)
    check_writable(weights_path, overwrite)
    check_writable(card_file, overwrite)
    target = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    tensors = {
        k: (v.detach().to("cpu", target) if v.is_floating_point() else v.detach().to("cpu"))
        .contiguous()
        .clone()
        for k, v in _state_dict(model_or_state).items()
    }
    card_obj = card if isinstance(card, ModelCard) else ModelCard.from_dict(card)
    card_obj = ModelCard.from_dict(card_obj.to_dict())  # private copy
    with atomic_path(weights_path, overwrite) as tmp:
        save_file(
            tensors,
            str(tmp),
            metadata={"name": card_obj.name, "architecture": card_obj.architecture, "dtype": dtype},
        )
        card_obj.sha256 = file_sha256(tmp)
        card_obj.size_bytes = tmp.stat().st_size
    card_obj.weights_file = weights_path.name
    card_obj.intended_use = INTENDED_USE
    card_obj.created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    card_obj.library_versions = library_versions()
    card_obj.extra = {**card_obj.extra, "weights_dtype": dtype}
    write_json(card_file, card_obj.to_dict(), overwrite=overwrite)
    return weights_path, card_file


def load_card(path: str | os.PathLike) -> ModelCard:
    """Read a model card; ``path`` may be the card itself or its weights file."""
    p = Path(path)
    card_file = card_path_for(p) if p.suffix == WEIGHTS_SUFFIX else p
    if not card_file.is_file():
        raise WeightsError(
            f"Model card '{card_file}' not found.\n"
            f"  Fix: keep the card JSON written by training beside the weights file ({p.name}); a weights file "
            "without its card cannot be verified and is not loaded."
        )
    try:
        data = json.loads(card_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(
            f"Model card '{card_file}' cannot be read as JSON ({exc}).\n"
            "  Fix: restore the card written beside the weights (re-install the package or re-run training)."
        ) from None
    return ModelCard.from_dict(data, source=f"model card '{card_file}'")


def weights_path_for(card: ModelCard, card_dir: str | os.PathLike) -> Path:
    """Absolute path of the weights file a card describes (relative to the card's folder)."""
    if not card.weights_file:
        raise WeightsError(
            f"Model card '{card.name}' names no weights file.\n  Fix: use the card written with the weights."
        )
    return Path(card_dir) / card.weights_file


def verify_weights(weights_path: str | os.PathLike, card: ModelCard) -> None:
    """Check presence, size and SHA-256 of ``weights_path`` against ``card`` (raises :class:`WeightsError`)."""
    p = Path(weights_path)
    if not p.is_file():
        raise WeightsError(
            f"Weights file '{p}' for model '{card.name}' is missing.\n"
            "  Fix: restore the file next to its card, pass the right path with --weights, or train the model "
            "('spineai train ...')."
        )
    if not card.sha256:
        raise WeightsError(
            f"Model card for '{p}' has no SHA-256, so the weights cannot be verified.\n"
            "  Fix: use the card written with the weights by spineai.weights.save_weights."
        )
    size = p.stat().st_size
    if card.size_bytes and size < card.size_bytes:
        raise WeightsError(
            f"Weights file '{p}' is truncated ({size} of {card.size_bytes} bytes).\n"
            "  Fix: copy or download the file again; an interrupted copy leaves a short file."
        )
    digest = file_sha256(p)
    if digest != card.sha256:
        raise WeightsError(
            f"Weights file '{p}' does not match its model card (SHA-256 {digest[:12]}..., card says "
            f"{card.sha256[:12]}...): it was modified, corrupted or belongs to another card.\n"
            "  Fix: restore the original file, or use the card written together with these weights."
        )


def load_state_dict(
    weights_path: str | os.PathLike,
    card: ModelCard | None = None,
    device: str = "cpu",
    float_dtype: str = "float32",
) -> dict[str, Any]:
    """Verify and load a state dict (no unpickling).

    Args:
        weights_path: the ``.safetensors`` file.
        card: its card; read from beside the file when ``None``.
        device: where to put the tensors.
        float_dtype: floating-point tensors are converted to this type (``"float32"``).

    Raises:
        WeightsError: missing, truncated, tampered or unreadable file.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    card = card if card is not None else load_card(weights_path)
    verify_weights(weights_path, card)
    try:
        tensors = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(
            f"Weights file '{weights_path}' is not a readable safetensors file ({exc}).\n"
            "  Fix: use a .safetensors file written by spineai (pickled .pt/.pth checkpoints are refused)."
        ) from None
    target = getattr(torch, float_dtype)
    return {k: (v.to(device, target) if v.is_floating_point() else v.to(device)) for k, v in tensors.items()}


def load_into(
    model: Any, weights_path: str | os.PathLike, card: ModelCard | None = None, device: str = "cpu"
) -> Any:
    """Load verified weights into ``model`` (strict); a mismatch is a :class:`WeightsError`."""
    state = load_state_dict(weights_path, card, device=device)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(
        k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong_shape:
            k = wrong_shape[0]
            parts.append(
                f"{len(wrong_shape)} of another shape (e.g. {k}: file {tuple(state[k].shape)}, "
                f"model {tuple(expected[k].shape)})"
            )
        raise WeightsError(
            f"Weights file '{weights_path}' does not fit the architecture its card describes: "
            f"{'; '.join(parts)} tensors.\n"
            "  Fix: use the card written together with these weights, or weights trained for this model."
        )
    model.load_state_dict(state, strict=True)
    return model


def check_card(card: ModelCard, task: str, architecture: str, source: str = "") -> None:
    """Refuse a card made for another task or architecture."""
    where = f" ({source})" if source else ""
    if card.task != task or card.architecture != architecture:
        raise WeightsError(
            f"Model '{card.name}'{where} is a {card.task} model of architecture {card.architecture}; "
            f"this step needs a {task} model of architecture {architecture}.\n"
            "  Fix: pass weights trained for this step."
        )
    if (
        card.class_names
        and "out_channels" in card.config
        and int(card.config["out_channels"]) != len(card.class_names)
    ):
        raise WeightsError(
            f"Model card '{card.name}'{where} lists {len(card.class_names)} classes but its network has "
            f"{card.config['out_channels']} outputs.\n  Fix: use the card written together with the weights."
        )


# ------------------------------------------------------------------------------------------- registry
def _card_files(models_dir: Path) -> list[Path]:
    return sorted(p for p in models_dir.glob("*.json") if p.is_file()) if models_dir.is_dir() else []


def list_models(task: str | None = None, models_dir: str | os.PathLike | None = None) -> list[ModelCard]:
    """Cards of the shipped models (optionally of one ``task``), sorted by name."""
    folder = Path(models_dir) if models_dir is not None else MODELS_DIR
    cards = [load_card(p) for p in _card_files(folder)]
    return sorted((c for c in cards if task is None or c.task == task), key=lambda c: c.name)


def load_model_card(name: str, models_dir: str | os.PathLike | None = None) -> ModelCard:
    """The card of the shipped model ``name``."""
    folder = Path(models_dir) if models_dir is not None else MODELS_DIR
    for p in _card_files(folder):
        card = load_card(p)
        if card.name == name:
            return card
    names = [c.name for c in list_models(models_dir=folder)]
    raise WeightsError(
        f"No shipped model named '{name}' in {folder}.\n"
        f"  Fix: use one of {names or 'the models you trained (pass --weights PATH)'}."
    )


def model_weights_path(name: str, models_dir: str | os.PathLike | None = None) -> Path:
    """Path of the weights file of the shipped model ``name`` (it may be absent; loading checks)."""
    folder = Path(models_dir) if models_dir is not None else MODELS_DIR
    return weights_path_for(load_model_card(name, folder), folder)
