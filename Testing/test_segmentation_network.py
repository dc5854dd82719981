"""The SPINECT 3D U-Net: the paper's parameter count, shapes, depth/width, He initialisation."""

from __future__ import annotations

import math

import pytest
import torch

from spineai.segmentation.data import CT_CLASS_NAMES
from spineai.segmentation.network import (
    DEFAULT_FEATURES,
    PAPER_FEATURES,
    SpineUNet3D,
    build_network,
    count_parameters,
)


def test_paper_shape_has_the_classic_parameter_count():
    # SPEC: "a classic 3D U-Net with 32-64-128-256-512 features and batch norm has 22,581,283"
    model = build_network({"out_channels": 3, "features": list(PAPER_FEATURES)}, init=False)
    assert count_parameters(model) == 22_581_283


def test_default_network_is_a_quarter_width_model_with_one_output_per_class():
    model = build_network({"out_channels": len(CT_CLASS_NAMES)})
    assert model.config["features"] == list(DEFAULT_FEATURES)
    n = count_parameters(model)
    assert 5_000_000 < n < 6_000_000  # 16-32-64-128-256: about a quarter of the paper's 22.6 M
    x = torch.zeros(1, 1, 32, 64, 64)
    with torch.no_grad():
        out = model.eval()(x)
    assert out.shape == (1, len(CT_CLASS_NAMES), 32, 64, 64)
    probs = model.predict_proba(x)
    assert torch.allclose(probs.sum(dim=1), torch.ones(1, 32, 64, 64), atol=1e-5)


def test_depth_and_width_are_configurable():
    shallow = SpineUNet3D(out_channels=4, features=(4, 8, 16))
    assert shallow.divisor == 4
    assert len(shallow.upsamplers) == 2  # one skip concatenation per pooling
    out = shallow(torch.zeros(2, 1, 8, 12, 16))
    assert out.shape == (2, 4, 8, 12, 16)
    paper = SpineUNet3D(out_channels=3, features=PAPER_FEATURES)
    assert len(paper.upsamplers) == 4  # the paper's 4 skip concatenations
    assert paper.divisor == 16


def test_convolutions_are_he_initialised_and_biases_zero():
    torch.manual_seed(0)
    model = build_network({"out_channels": 5, "features": [8, 16, 32]})
    conv = model.encoders[2][1].conv  # 32 -> 32, 3x3x3: fan_in = 32 * 27
    expected_std = math.sqrt(2.0 / (32 * 27))
    assert float(conv.weight.detach().std()) == pytest.approx(expected_std, rel=0.05)
    assert float(conv.bias.detach().abs().max()) == 0.0


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="out_channels"):
        SpineUNet3D(out_channels=1)
    with pytest.raises(ValueError, match="features"):
        SpineUNet3D(out_channels=3, features=(16,))
    with pytest.raises(ValueError, match="unknown network settings"):
        build_network({"out_channels": 3, "dropout": 0.1})
