"""A CT given beside a label map is used on the label map's grid: as it is, resampled, or refused."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from spineai import io
from spineai.errors import InputError


def _image(size=(20, 20, 10), spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0), value=100.0):
    img = sitk.Image(size, sitk.sitkFloat32)
    img += value
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    return img


def test_a_ct_on_the_same_grid_is_used_as_it_is(tmp_path):
    labels = _image()
    ct = _image()
    notes: list[str] = []
    assert io.ct_on_label_grid(ct, labels, resample=True, notes=notes) is ct
    assert notes == []
    assert io.ct_on_label_grid(None, labels, resample=False) is None
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(ct, str(path))
    read = io.ct_on_label_grid(path, labels, resample=False)
    assert read.GetSize() == labels.GetSize()


def test_a_ct_on_another_grid_is_resampled_when_asked_and_refused_otherwise():
    labels = _image()
    ct = _image(size=(40, 40, 20), spacing=(0.5, 0.5, 1.0), origin=(-5.0, 0.0, 0.0))
    assert io.grid_differences(ct, labels)  # size, spacing and origin differ

    notes: list[str] = []
    on_grid = io.ct_on_label_grid(ct, labels, resample=True, notes=notes)
    assert io.grid_differences(on_grid, labels) == []
    values = sitk.GetArrayFromImage(on_grid)  # (z, y, x); the CT covers x < 14.75 mm only
    assert np.allclose(values[:, :, :14], 100.0)
    assert np.allclose(values[:, :, 16:], -1024.0)  # outside the CT: air
    assert notes and "resampled" in notes[0]

    with pytest.raises(InputError, match="grid does not match") as err:
        io.ct_on_label_grid(ct, labels, resample=False)
    assert "spacing" in err.value.problem and "resample_like" in err.value.fix


def test_something_that_is_not_a_ct_is_refused():
    with pytest.raises(InputError, match="Cannot use list"):
        io.ct_on_label_grid([1, 2], _image(), resample=True)
