"""Weights + model cards: fp16 safetensors, SHA-256 verified before loading, clear errors, registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from spineai.errors import OutputExistsError, WeightsError
from spineai.segmentation.network import ARCHITECTURE, build_network
from spineai.weights import (
    INTENDED_USE,
    check_card,
    file_sha256,
    list_models,
    load_card,
    load_into,
    load_model_card,
    load_state_dict,
    model_weights_path,
    save_weights,
)


def _card(net) -> dict:
    return {
        "name": "unit_model",
        "task": "ct_segmentation",
        "architecture": ARCHITECTURE,
        "config": net.config,
        "class_names": ["background", "L5", "S1"],
        "input": {"spacing_mm": [1, 1, 1]},
        "training_data": "random initialisation",
        "training_recipe": {"iterations": 0},
        "metrics": {"dice": None},
    }


@pytest.fixture()
def saved(tmp_path: Path):
    torch.manual_seed(1)
    net = build_network({"out_channels": 3, "features": [4, 8]})
    weights, card = save_weights(net, tmp_path / "unit.safetensors", _card(net))
    return net, weights, card


def test_save_writes_fp16_safetensors_and_a_complete_card(saved):
    net, weights, card_file = saved
    assert card_file == weights.with_suffix(".json")
    card = json.loads(card_file.read_text())
    assert card["sha256"] == file_sha256(weights)
    assert card["size_bytes"] == weights.stat().st_size
    assert card["intended_use"] == INTENDED_USE == "research use only, not for clinical decisions"
    assert card["weights_file"] == "unit.safetensors"
    assert card["created"] and {"torch", "monai", "python"} <= set(card["library_versions"])
    for key in (
        "name",
        "version",
        "task",
        "architecture",
        "config",
        "class_names",
        "input",
        "training_data",
        "training_recipe",
        "metrics",
    ):
        assert key in card
    from safetensors.torch import load_file

    raw = load_file(str(weights))
    conv = "encoders.0.0.conv.weight"
    assert raw[conv].dtype == torch.float16
    assert raw["encoders.0.0.adn.N.num_batches_tracked"].dtype == torch.int64


def test_roundtrip_loads_the_same_network(saved):
    net, weights, _ = saved
    fresh = build_network(net.config, init=True)
    load_into(fresh, weights)
    for key, value in net.state_dict().items():
        loaded = fresh.state_dict()[key]
        if value.is_floating_point():
            assert torch.allclose(loaded, value, atol=2e-3, rtol=2e-3), key  # fp16 storage
        else:
            assert torch.equal(loaded, value)


def test_existing_files_are_not_overwritten(saved):
    net, weights, _ = saved
    with pytest.raises(OutputExistsError):
        save_weights(net, weights, _card(net))
    save_weights(net, weights, _card(net), overwrite=True)


def test_tampered_file_is_refused_before_loading(saved):
    _, weights, _ = saved
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match its model card") as info:
        load_state_dict(weights)
    assert str(weights) in str(info.value) and "Fix:" in str(info.value)


def test_truncated_and_missing_files_are_named(saved):
    _, weights, _ = saved
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(WeightsError, match="truncated"):
        load_state_dict(weights)
    card = load_card(weights)
    weights.unlink()
    with pytest.raises(WeightsError, match="missing"):
        load_state_dict(weights, card)


def test_weights_without_card_are_refused(tmp_path: Path):
    from safetensors.torch import save_file

    lone = tmp_path / "lone.safetensors"
    save_file({"w": torch.zeros(2)}, str(lone))
    with pytest.raises(WeightsError, match="card"):
        load_state_dict(lone)


def test_pickle_checkpoints_are_never_loaded(tmp_path: Path, saved):
    # a .pt file renamed next to a valid card: the checksum fails first, nothing is unpickled
    _, weights, _ = saved
    evil = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(2)}, evil)
    weights.write_bytes(evil.read_bytes())
    with pytest.raises(WeightsError):
        load_state_dict(weights)


def test_architecture_mismatch_is_a_weights_error(saved):
    _, weights, _ = saved
    wider = build_network({"out_channels": 3, "features": [8, 16]})
    with pytest.raises(WeightsError, match="does not fit the architecture"):
        load_into(wider, weights)
    card = load_card(weights)
    with pytest.raises(WeightsError, match="needs a mri_grading model"):
        check_card(card, "mri_grading", ARCHITECTURE)
    card.class_names = ["background", "L5"]
    with pytest.raises(WeightsError, match="lists 2 classes"):
        check_card(card, "ct_segmentation", ARCHITECTURE)


def test_registry_lists_and_finds_shipped_cards(tmp_path: Path):
    net = build_network({"out_channels": 3, "features": [4, 8]})
    save_weights(net, tmp_path / "a_model.safetensors", {**_card(net), "name": "a_model"})
    save_weights(net, tmp_path / "b_model.safetensors", {**_card(net), "name": "b_model", "task": "other"})
    assert [c.name for c in list_models(models_dir=tmp_path)] == ["a_model", "b_model"]
    assert [c.name for c in list_models("ct_segmentation", models_dir=tmp_path)] == ["a_model"]
    assert load_model_card("b_model", tmp_path).task == "other"
    assert model_weights_path("a_model", tmp_path) == tmp_path / "a_model.safetensors"
    with pytest.raises(WeightsError, match="No shipped model named 'c_model'"):
        load_model_card("c_model", tmp_path)


def test_shipped_cards_are_valid():
    for card in list_models():  # whatever is installed in spineai/resources/models
        assert card.intended_use == INTENDED_USE
        assert card.sha256 and card.weights_file
