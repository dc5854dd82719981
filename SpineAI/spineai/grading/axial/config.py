"""Network configurations of the axial grader (no PyTorch import, so the command line builds fast).

:data:`PAPER_CONFIG` is seed 004's network: ResNet-50 (2048-d feature) on a 224 x 224 input with the classic
stride-2 stem. :data:`DEMO_CONFIG` is the shipped CPU demo's: ResNet-10 at 1/8 width (64-d feature), no
max-pool (an 8 x 8 last feature map for Grad-CAM), 128 x 128 input. Keys are the keyword arguments of
:class:`~spineai.grading.axial.model.AxialGraderNet`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEMO_CONFIG", "PAPER_CONFIG"]

#: the paper's network: ResNet-50, 2048-d feature, 224 x 224 input
PAPER_CONFIG: dict[str, Any] = {
    "depth": 50,
    "widen_factor": 1.0,
    "conv1_stride": 2,
    "no_max_pool": False,
    "dropout": 0.0,
    "input_size": 224,
}
#: the shipped CPU demo: ResNet-10 at 1/8 width (64-d feature), no max-pool, 128 x 128 input
DEMO_CONFIG: dict[str, Any] = {
    "depth": 10,
    "widen_factor": 0.125,
    "conv1_stride": 2,
    "no_max_pool": True,
    "dropout": 0.1,
    "input_size": 128,
}
