"""The demo's radiograph step: a phantom lateral radiograph read per disc by the shipped model, with its heat map."""

from __future__ import annotations

import json

import pytest
import SimpleITK as sitk

from spineai.demo import _installed, _radiograph_step
from spineai.radiograph.network import LEVELS
from spineai.radiograph.predict import DEFAULT_MODEL

pytestmark = [
    pytest.mark.skipif(
        not _installed(DEFAULT_MODEL), reason=f"shipped radiograph model '{DEFAULT_MODEL}' absent"
    ),
    pytest.mark.usefixtures("one_torch_thread"),
]


def test_radiograph_step_writes_the_reading_and_its_heat_map(tmp_path):
    (tmp_path / "phantom").mkdir()
    lines, files = _radiograph_step(tmp_path, 7, overwrite=False)
    assert (tmp_path / "phantom" / "radiograph_lateral.png").is_file()
    heat = [p for k, p in files.items() if k == "radiograph gradcam"]
    assert (
        heat and heat[0].name.startswith("gradcam_L") and sitk.ReadImage(str(heat[0])).GetSize() == (160, 160)
    )
    assert files["radiograph overlay"].stat().st_size > 1000
    summary = json.loads(files["radiograph summary"].read_text())
    assert summary["design"] == "disc-crops" and [d["level"] for d in summary["discs"]] == list(LEVELS)
    assert "read per disc" in lines[0] and len(lines) == 1 + len(LEVELS)
    assert all("phantom truth" in line and "mm from its true centre" in line for line in lines[1:])
    with pytest.raises(FileExistsError):
        _radiograph_step(tmp_path, 7, overwrite=False)
