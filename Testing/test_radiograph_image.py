"""Reading and preparing radiographs: grey/colour decisions, refusals of the wrong input, CLAHE, letterbox, boxes."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from spineai.errors import InputError
from spineai.radiograph.image import (
    load_radiograph,
    lumbar_crop_from_boxes,
    map_to_input,
    prepare_input,
    read_yolo_boxes,
)


def _spine_like(rows: int = 200, cols: int = 120, seed: int = 0) -> np.ndarray:
    """A grey picture with bright 'vertebrae' stacked down the middle (uint8)."""
    rng = np.random.default_rng(seed)
    img = np.full((rows, cols), 60.0) + rng.normal(0, 4, (rows, cols))
    for k in range(5):
        r0 = 20 + 34 * k
        img[r0 : r0 + 24, cols // 2 - 18 : cols // 2 + 18] += 120
    return np.clip(img, 0, 255).astype(np.uint8)


def test_grey_radiograph_saved_as_rgb_jpeg_is_converted(tmp_path):
    grey = _spine_like()
    path = tmp_path / "xray.jpg"
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(path, quality=90)
    loaded = load_radiograph(path)
    arr = sitk.GetArrayFromImage(loaded.image)
    assert arr.shape == grey.shape
    assert loaded.info["colour_channels_merged"] is True
    assert np.abs(arr - grey.astype(float)).mean() < 3.0  # JPEG loss only
    assert any("body-part" in w for w in loaded.warnings)  # a picture cannot be checked for its region


def test_colour_photograph_is_refused(tmp_path):
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    photo[..., 0] = 200  # strongly red
    path = tmp_path / "photo.jpg"
    Image.fromarray(photo).save(path)
    with pytest.raises(InputError) as exc:
        load_radiograph(path)
    assert "colour picture" in str(exc.value) and "radiograph" in (exc.value.fix or "")
    with pytest.raises(InputError, match="colour"):
        load_radiograph(photo)  # the same array in memory


def test_transparent_picture_is_refused(tmp_path):
    rgba = np.zeros((50, 50, 4), dtype=np.uint8)
    rgba[..., :3] = _spine_like(50, 50)[..., None]
    rgba[..., 3] = 255
    rgba[:10, :10, 3] = 0
    path = tmp_path / "edited.png"
    Image.fromarray(rgba).save(path)
    with pytest.raises(InputError, match="transparent"):
        load_radiograph(path)


def test_volumes_are_refused_in_memory_and_from_a_file(tmp_path):
    vol = sitk.GetImageFromArray(np.zeros((20, 64, 64), dtype=np.int16))
    with pytest.raises(InputError, match="3D volume"):
        load_radiograph(vol)
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(vol, str(path))
    with pytest.raises(InputError) as exc:
        load_radiograph(path)
    assert "CT or MR series" in str(exc.value) and "spineai segment" in (exc.value.fix or "")


def _dicom(path, *, body_part: str, modality: str = "DX", spacing: float = 0.5, size=(400, 300)) -> None:
    img = sitk.GetImageFromArray((np.random.default_rng(0).random(size) * 1000).astype(np.uint16))
    img.SetSpacing((spacing, spacing))
    img.SetMetaData("0008|0060", modality)
    if body_part:
        img.SetMetaData("0018|0015", body_part)
    img.SetMetaData("0028|0030", f"{spacing}\\{spacing}")
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


def test_radiograph_of_another_region_is_refused(tmp_path):
    _dicom(tmp_path / "chest" / "x.dcm", body_part="CHEST")
    with pytest.raises(InputError) as exc:
        load_radiograph(tmp_path / "chest" / "x.dcm")
    assert "CHEST" in str(exc.value) and "lumbar" in (exc.value.fix or "")
    _dicom(tmp_path / "lumbar" / "x.dcm", body_part="LSPINE")
    ok = load_radiograph(tmp_path / "lumbar" / "x.dcm")
    assert ok.image.GetSize() == (300, 400) and ok.image.GetSpacing() == (0.5, 0.5)
    assert ok.info["body_part"] == "LSPINE" and not ok.warnings


def test_a_ct_dicom_and_a_tiny_field_are_refused(tmp_path):
    _dicom(tmp_path / "ct" / "x.dcm", body_part="LSPINE", modality="CT")
    with pytest.raises(InputError, match="CT image"):
        load_radiograph(tmp_path / "ct" / "x.dcm")
    _dicom(tmp_path / "finger" / "x.dcm", body_part="", spacing=0.1, size=(300, 200))  # 30 x 20 mm
    with pytest.raises(InputError, match="too small a field"):
        load_radiograph(tmp_path / "finger" / "x.dcm")


def test_prepare_input_applies_clahe_and_a_reversible_letterbox():
    grey = _spine_like(200, 100).astype(np.float32)
    x, box = prepare_input(grey, 64)
    assert x.shape == (64, 64) and x.dtype == np.float32
    assert -0.5 - 1e-6 <= x.min() and x.max() <= 0.5 + 1e-6
    assert box.scale == pytest.approx(64 / 200) and box.inner == (64, 32) and box.left == 16 and box.top == 0
    assert np.all(x[:, :16] == -0.5) and np.all(x[:, 48:] == -0.5)  # padding, no distortion
    # CLAHE raises local contrast: the faint texture of the soft-tissue background is stretched
    full, full_box = prepare_input(grey, 200)  # no downsampling: compare pixel for pixel
    inside = full[:, full_box.left : full_box.left + 100] + 0.5
    lo, hi = np.percentile(grey, [0.5, 99.5])
    plain = np.clip((grey - lo) / (hi - lo), 0, 1)
    background = grey < 100
    assert np.std(inside[background]) > 1.5 * np.std(plain[background])
    # a blob on the network grid maps back to the same place on the input
    grid = np.zeros((64, 64), dtype=np.float32)
    grid[40:44, 30:34] = 1.0
    back = map_to_input(grid, box)
    assert back.shape == grey.shape
    r, c = np.unravel_index(int(np.argmax(back)), back.shape)
    assert abs(r - 42 / box.scale) < 6 and abs(c - (32 - 16) / box.scale) < 6


def test_yolo_boxes_and_lumbar_crop(tmp_path):
    lines = [f"0 0.5 {0.1 + 0.05 * k:.3f} 0.12 0.04" for k in range(16)]
    path = tmp_path / "boxes.txt"
    path.write_text("\n".join(lines[::-1]) + "\n")  # any order in the file
    boxes = read_yolo_boxes(path, 200, 400)
    assert boxes.shape == (16, 4) and np.all(np.diff(boxes[:, 1]) > 0)  # sorted top to bottom
    x0, y0, x1, y1 = lumbar_crop_from_boxes(boxes, 200, 400)
    lumbar = boxes[-5:]
    assert y0 <= lumbar[0, 1] and y1 >= lumbar[-1, 3]  # L1..L5 inside, sacrum margin below
    assert y0 > boxes[-6, 1]  # the thoracic boxes are left out
    assert 0 <= x0 < 100 < x1 <= 200
    with pytest.raises(InputError, match="not in view"):
        lumbar_crop_from_boxes(boxes[:3], 200, 400)
    bad = tmp_path / "bad.txt"
    bad.write_text("0 0.5 oops 0.1 0.1\n")
    with pytest.raises(InputError, match="line|Line"):
        read_yolo_boxes(bad, 200, 400)
