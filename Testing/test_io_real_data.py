"""Image I/O on real public CT (VerSe'19 subject 014, a TPTBox sample, a TotalSegmentator DICOM series).

The data live outside the repository in ``../shared/data``; every test skips when it is absent.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from spineai import anatomy
from spineai import io as sio

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VERSE = DATA / "ct" / "verse014"
TPTBOX = DATA / "ct" / "tptbox_l2_l4"
DICOM = DATA / "ct" / "dicom_series_t11_t12"

pytestmark = pytest.mark.shared_data


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not available: {path} (the shared data folder ../shared/data is absent)")
    return path


@pytest.fixture(scope="module")
def verse_ct() -> sitk.Image:
    return sio.read_image(_need(VERSE / "sub-verse014_ct.nii.gz"), name="CT")


@pytest.fixture(scope="module")
def verse_labels() -> sio.LabelMap:
    return sio.read_labelmap(_need(VERSE / "sub-verse014_seg-vert_msk.nii.gz"), mapping="verse")


def _centroids(lm: sio.LabelMap) -> dict[str, np.ndarray]:
    """LPS centroid (mm) of every structure present."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(lm.image)
    return {lm.mapping.values[v]: np.asarray(stats.GetCentroid(v)) for v in stats.GetLabels()}


def test_verse_ct_and_labels(verse_ct, verse_labels):
    assert verse_ct.GetSize() == (186, 186, 40)
    assert sio.orientation_code(verse_ct) == "PIR"
    np.testing.assert_allclose(verse_ct.GetSpacing(), (1.0, 1.0, 2.0), atol=1e-5)
    hu = sitk.GetArrayViewFromImage(verse_ct)
    assert -1050 < np.percentile(hu, 1) < -950  # air in HU
    assert 500 < np.percentile(hu, 99.9) < 3100  # cortical bone, not raw stored values
    assert verse_labels.structures_present() == ["L1", "L2", "L3", "L4", "L5"]
    assert verse_labels.image.GetSize() == verse_ct.GetSize()
    np.testing.assert_allclose(verse_labels.image.GetOrigin(), verse_ct.GetOrigin(), atol=1e-4)

    centroids = _centroids(verse_labels)
    z = [centroids[n][2] for n in ("L1", "L2", "L3", "L4", "L5")]
    assert centroids["L1"][2] > centroids["L5"][2] + 100  # L1 is cranial (+z in LPS) of L5
    assert all(a > b for a, b in zip(z, z[1:], strict=False))  # strictly descending L1 -> L5
    # lumbar vertebral bodies are anterior (-y) of the skin behind them: the CT's posterior edge
    # (largest LPS y) lies behind every vertebra
    _, upper = sio.physical_bounds_mm(verse_ct)
    assert all(c[1] < upper[1] for c in centroids.values())


def _nifti_ras_affine(path: Path) -> tuple[np.ndarray, str]:
    """Voxel -> RAS affine of a NIfTI-1 file, parsed by hand (sform if set, else qform)."""
    raw = gzip.open(path).read(348)
    qform_code, sform_code = struct.unpack("<hh", raw[252:256])
    if sform_code > 0:
        affine = np.eye(4)
        affine[:3, :] = np.asarray(struct.unpack("<12f", raw[280:328])).reshape(3, 4)
        return affine, "sform"
    assert qform_code > 0
    qfac, dx, dy, dz = struct.unpack("<4f", raw[76:92])
    b, c, d = struct.unpack("<3f", raw[256:268])
    a = np.sqrt(max(0.0, 1.0 - (b * b + c * c + d * d)))
    rotation = np.array(
        [
            [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
            [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
            [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ]
    )
    affine = np.eye(4)
    affine[:3, :3] = rotation * [dx, dy, (-1.0 if qfac < 0 else 1.0) * dz]
    affine[:3, 3] = struct.unpack("<3f", raw[268:280])
    return affine, "qform"


@pytest.mark.parametrize("filename", ["sub-verse014_ct.nii.gz", "sub-verse014_seg-vert_msk.nii.gz"])
def test_verse_nifti_header_is_ras_and_read_as_lps(filename):
    path = _need(VERSE / filename)
    affine, form = _nifti_ras_affine(path)
    img = sio.read_image(path)
    # the file's affine maps voxel -> RAS; SimpleITK's geometry maps voxel -> LPS (x, y negated)
    np.testing.assert_allclose(img.GetOrigin(), affine[:3, 3] * [-1, -1, 1], atol=1e-3, err_msg=form)
    lps = np.asarray(img.GetDirection()).reshape(3, 3) * img.GetSpacing()
    np.testing.assert_allclose(lps, np.diag([-1.0, -1.0, 1.0]) @ affine[:3, :3], atol=1e-4, err_msg=form)
    for index in [(0, 0, 0), (185, 0, 39), (90, 120, 20)]:
        ras = affine @ np.array([*index, 1.0])
        np.testing.assert_allclose(img.TransformIndexToPhysicalPoint(index), ras[:3] * [-1, -1, 1], atol=1e-3)


def _vertebral_body_centroid(mask: sitk.Image, radius_mm: float = 7.0) -> np.ndarray:
    """LPS centroid of the vertebral body of a one-vertebra mask.

    The body is the only part of a lumbar vertebra thicker than ~14 mm in every direction, so a
    morphological opening with a 7 mm ball removes the posterior elements (pedicles, laminae,
    processes) and leaves it as the largest component.
    """
    radius = [max(1, int(round(radius_mm / s))) for s in mask.GetSpacing()]
    opened = sitk.BinaryMorphologicalOpening(mask, radius, sitk.sitkBall)
    largest = sitk.RelabelComponent(sitk.ConnectedComponent(opened))
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(largest)
    return np.asarray(stats.GetCentroid(1))


def test_verse_centroid_json_convention(verse_labels):
    """The VerSe centroid file gives continuous voxel indices (X, Y, Z) of the image reoriented to the
    axis code in its first entry (here PIR, the image's own), at the image's own spacing (1, 1, 2 mm).

    Proof: with that reading every centroid lands within 2 mm of the vertebral body's centroid
    computed from the mask, while the "1 mm isotropic grid" reading misses by more than 10 mm (its
    Z, the left-right index, would be halved)."""
    path = _need(VERSE / "sub-verse014_seg-vb_ctd.json")
    native = sio.read_verse_centroids(path, verse_labels.image)
    one_mm = sio.read_verse_centroids(path, verse_labels.image, centroid_spacing_mm=1.0)
    assert sorted(native) == ["L1", "L2", "L3", "L4", "L5"]
    for name, point in native.items():
        value = verse_labels.value_of(name)
        lower, upper = _bbox_mm(verse_labels.image, value, margin_mm=15.0)
        mask = sio.crop_to_bounds_mm(
            sitk.BinaryThreshold(verse_labels.image, value, value, 1, 0), lower, upper
        )
        body = _vertebral_body_centroid(mask)
        assert np.linalg.norm(point - body) < 2.0, (name, point, body)
        assert np.linalg.norm(one_mm[name] - body) > 10.0
        # the body lies anterior (-y in LPS) of the whole vertebra's centroid, as anatomy says
        assert body[1] < _centroids(verse_labels)[name][1] - 5.0


def _bbox_mm(img: sitk.Image, value: int, margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.BinaryThreshold(img, value, value, 1, 0))
    x, y, z, sx, sy, sz = stats.GetBoundingBox(1)
    corners = [
        img.TransformIndexToPhysicalPoint((i, j, k))
        for i in (x, x + sx - 1)
        for j in (y, y + sy - 1)
        for k in (z, z + sz - 1)
    ]
    pts = np.asarray(corners)
    return pts.min(axis=0) - margin_mm, pts.max(axis=0) + margin_mm


def test_tptbox_sample():
    ct = sio.read_image(_need(TPTBOX / "sub-ct_label-22_ct.nii.gz"), name="CT")
    vert = sio.read_labelmap(TPTBOX / "sub-ct_seg-vert_label-22_msk.nii.gz", mapping="tptbox_vertebra")
    sub = sio.read_labelmap(TPTBOX / "sub-ct_seg-subreg_label-22_msk.nii.gz", mapping="tptbox_subregion")
    assert ct.GetSize() == (73, 47, 73) and sio.orientation_code(ct) == "PIR"
    np.testing.assert_allclose(ct.GetSpacing(), (1.5, 1.5, 1.5))
    assert vert.structures_present() == ["L2", "L3", "L4"]
    c = _centroids(vert)
    assert c["L2"][2] > c["L3"][2] > c["L4"][2]
    s = _centroids(sub)
    # LPS: the spinous process is posterior (+y) of the body; the left processes are at +x
    assert s["spinous_process"][1] > s["vertebral_body"][1] + 20
    assert s["transverse_process_left"][0] > s["transverse_process_right"][0] + 30
    assert s["superior_articular_process_left"][0] > s["superior_articular_process_right"][0]
    # in canonical values the sub-regions keep their voxels
    canon = sub.canonical()
    np.testing.assert_array_equal(
        canon.array() == anatomy.BY_NAME["spinous_process"].label,
        sub.array() == sub.value_of("spinous_process"),
    )


def test_dicom_series():
    img = sio.read_image(_need(DICOM), name="CT")
    assert img.GetSize() == (512, 512, 20)
    np.testing.assert_allclose(img.GetSpacing(), (0.9765625, 0.9765625, 2.0), atol=1e-3)
    assert sio.orientation_code(img) == "LPS"
    hu = sitk.GetArrayViewFromImage(img)
    assert -1100 <= hu.min() <= -990  # air / outside the field of view, after rescale to HU
    assert np.percentile(hu, 5) < -900  # a large share of air around the body
    assert 300 < np.percentile(hu, 99.5) < 3100  # bone, not raw stored values
    # a single file of the folder reads the same series
    one = sio.read_image(sorted(DICOM.iterdir())[5])
    assert one.GetSize() == img.GetSize()


def test_verse_labels_as_slicer_segmentation(tmp_path, verse_ct, verse_labels):
    canon = verse_labels.canonical()
    # VerSe lists the whole spine; write only the five lumbar vertebrae present
    path = sio.write_seg_nrrd(canon, tmp_path / "verse014.seg.nrrd", reference=verse_ct, keep_empty=False)
    back = sio.read_seg_nrrd(path)
    np.testing.assert_array_equal(back.array(), canon.array())
    np.testing.assert_allclose(back.image.GetOrigin(), canon.image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(back.image.GetSpacing(), canon.image.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(back.image.GetDirection(), canon.image.GetDirection(), atol=1e-6)
    lumbar = ["L1", "L2", "L3", "L4", "L5"]
    assert back.mapping.values == {anatomy.BY_NAME[n].label: n for n in lumbar}
    assert back.mapping.source == anatomy.CANONICAL.source
    # the VerSe file values survive the round trip through canonical labels
    np.testing.assert_array_equal(verse_labels.mapping.from_canonical(back.array()), verse_labels.array())

    nrrd = pytest.importorskip("nrrd", reason="pynrrd (dev dependency) checks the header independently")
    data, header = nrrd.read(str(path))
    assert header["space"] == "left-posterior-superior"
    assert header["type"] in ("unsigned char", "uint8")
    assert header["dimension"] == 3
    assert list(header["sizes"]) == list(verse_ct.GetSize())
    np.testing.assert_allclose(header["space origin"], verse_ct.GetOrigin(), atol=1e-4)
    lps = np.asarray(verse_ct.GetDirection()).reshape(3, 3) * verse_ct.GetSpacing()
    np.testing.assert_allclose(np.asarray(header["space directions"]).T, lps, atol=1e-4)
    # pynrrd returns the array in (x, y, z) order
    np.testing.assert_array_equal(np.transpose(data, (2, 1, 0)), canon.array())
    names = [header[f"Segment{i}_Name"] for i in range(len(lumbar))]
    assert names == lumbar
    assert "Segment5_Name" not in header
    for i, name in enumerate(names):
        assert int(header[f"Segment{i}_LabelValue"]) == anatomy.BY_NAME[name].label
        assert header[f"Segment{i}_Layer"] == "0"
        assert header[f"Segment{i}_Tags"].startswith("TerminologyEntry:")
    assert header["Segmentation_MasterRepresentation"] == "Binary labelmap"
    assert header["Segmentation_ReferenceImageExtentOffset"] == "0 0 0"
