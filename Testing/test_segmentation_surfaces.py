"""Surface models: 1.5 mm median kernel as Slicer computes it, closed meshes, LPS coordinates, file tags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from spineai.segmentation.postprocess import component_counts, keep_largest_component
from spineai.segmentation.surfaces import (
    label_surfaces,
    median_kernel_voxels,
    surface_volume_mm3,
    write_surfaces,
)


def _sphere_labels(spacing=(0.7, 0.7, 1.0), radius_mm=8.0):
    shape_zyx = (int(40 / spacing[2]), int(40 / spacing[1]), int(40 / spacing[0]))
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape_zyx], indexing="ij")
    c = [n / 2 for n in shape_zyx]
    r2 = ((z - c[0]) * spacing[2]) ** 2 + ((y - c[1]) * spacing[1]) ** 2 + ((x - c[2]) * spacing[0]) ** 2
    arr = np.where(r2 <= radius_mm**2, 6, 0).astype(np.uint8)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin((5.0, -20.0, 100.0))
    centre = np.array(img.TransformContinuousIndexToPhysicalPoint([c[2], c[1], c[0]]))
    return img, centre


def test_median_kernel_follows_slicer_rule():
    assert median_kernel_voxels(1.5, (1.0, 1.0, 1.0)) == (1, 1, 1)  # 1 mm voxels: no median
    assert median_kernel_voxels(1.5, (0.7, 0.7, 3.0)) == (3, 3, 1)
    assert median_kernel_voxels(1.5, (0.3, 0.5, 0.7)) == (5, 3, 3)


@pytest.mark.parametrize("orientation", ["LPS", "RAS", "PIR"])
def test_sphere_surface_has_the_right_volume_and_position(orientation):
    from spineai import io

    img, centre = _sphere_labels()
    img = io.reorient(img, orientation)  # same voxels, axes permuted/flipped: the surface must not move
    surfaces = label_surfaces(img, {6: "L5", 7: "L6"})
    assert list(surfaces) == ["L5"]  # absent labels give no surface
    poly = surfaces["L5"]
    analytic = 4 / 3 * np.pi * 8.0**3
    assert surface_volume_mm3(poly) == pytest.approx(analytic, rel=0.08)
    bounds = np.array(poly.GetBounds()).reshape(3, 2)
    assert np.allclose(bounds.mean(axis=1), centre, atol=0.8)  # LPS mm, whatever the direction matrix
    assert np.allclose(bounds[:, 1] - bounds[:, 0], 16.0, atol=1.6)


def test_surface_files_carry_the_lps_tag(tmp_path: Path):
    import vtk

    img, _ = _sphere_labels()
    written = write_surfaces(label_surfaces(img, {6: "L5"}), tmp_path, formats=("vtp", "stl"))
    assert [p.name for p in written["L5"]] == ["L5.vtp", "L5.stl"]
    reader = vtk.vtkXMLPolyDataReader()
    reader.SetFileName(str(tmp_path / "L5.vtp"))
    reader.Update()
    assert reader.GetOutput().GetFieldData().GetAbstractArray("SPACE").GetValue(0) == "LPS"
    stl = vtk.vtkSTLReader()
    stl.SetFileName(str(tmp_path / "L5.stl"))
    stl.Update()
    assert "SPACE=LPS" in stl.GetHeader()
    assert stl.GetOutput().GetNumberOfCells() > 100


def test_keep_largest_component_per_label():
    a = np.zeros((20, 20, 20), np.uint8)
    a[2:8, 2:8, 2:8] = 5
    a[15:17, 15:17, 15:17] = 5  # small island of 5
    a[10:12, 2:6, 2:6] = 24
    a[0, 19, 19] = 24  # speck of 24
    b = keep_largest_component(a)
    assert component_counts(a) == {5: 2, 24: 2}
    assert component_counts(b) == {5: 1, 24: 1}
    assert (b == 5).sum() == 216 and (b == 24).sum() == 32
    assert keep_largest_component(a, label_values=[24])[16, 16, 16] == 5  # only the listed labels change
