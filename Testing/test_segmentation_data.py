"""Case discovery, label conventions, class tables, 1 mm preprocessing and anatomically correct flips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_segmentation_fixtures import (
    TINY_CLASSES,
    label_image,
    single_torch_thread,  # noqa: F401
    synthetic_case,
    write_case,
)

from spineai import anatomy, io
from spineai.errors import InputError
from spineai.segmentation.data import (
    CT_CLASS_NAMES,
    IntensityNormalization,
    PreparedCase,
    check_class_names,
    class_lookup,
    class_values,
    find_cases,
    left_right_permutation,
    prepare_case,
)
from spineai.segmentation.train import PatchSampler, TrainConfig

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_ct_classes_are_canonical_and_mirror_pairs_swap():
    assert check_class_names(CT_CLASS_NAMES)[0] == "background"
    for name in (
        "L3",
        "L4",
        "L5",
        "S1",
        "ilium_left",
        "ilium_right",
        "disc_L4_L5",
        "disc_L5_S1",
        "dural_sac",
        "root_L4_left",
        "root_L5_right",
        "root_S1_left",
    ):
        assert name in CT_CLASS_NAMES
    perm = left_right_permutation(CT_CLASS_NAMES)
    idx = CT_CLASS_NAMES.index
    assert perm[idx("root_L5_left")] == idx("root_L5_right")
    assert perm[idx("ilium_right")] == idx("ilium_left")
    assert perm[idx("L5")] == idx("L5") and perm[idx("dural_sac")] == idx("dural_sac")
    assert np.array_equal(perm[perm], np.arange(len(CT_CLASS_NAMES)))


def test_class_tables_roundtrip_canonical_values():
    lut = class_lookup(TINY_CLASSES)
    values = class_values(TINY_CLASSES)
    for i, name in enumerate(TINY_CLASSES[1:], start=1):
        assert lut[anatomy.structure(name).label] == i
        assert values[i] == anatomy.structure(name).label
    assert lut[anatomy.structure("L4").label] == 0  # not a class of this model: background
    with pytest.raises(InputError, match="background"):
        check_class_names(("L5", "background"))
    with pytest.raises(InputError, match="Unknown structure"):
        check_class_names(("background", "L9"))


def test_case_folders_with_sidecars_are_found(tmp_path: Path):
    write_case(tmp_path / "b", seed=1)
    write_case(tmp_path / "a", seed=0)
    (tmp_path / "notes").mkdir()
    cases = find_cases(tmp_path)
    assert [c.case_id for c in cases] == ["a", "b"]
    assert cases[0].image.name == "ct.nii.gz" and cases[0].labels.name == "labels.nii.gz"
    assert [c.case_id for c in find_cases(tmp_path / "a")] == ["a"]  # a single case folder


def test_nnunet_layout_uses_dataset_json_names(tmp_path: Path):
    image, labels = synthetic_case(0)
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    io.write_image(image, tmp_path / "imagesTr" / "spine_001_0000.nii.gz")
    # nnU-Net numbering 1..6 for our canonical structures
    values = {name: i for i, name in enumerate(TINY_CLASSES)}
    remapped = np.zeros_like(labels)
    for name, v in values.items():
        if v:
            remapped[labels == anatomy.structure(name).label] = v
    io.write_image(label_image(remapped, image), tmp_path / "labelsTr" / "spine_001.nii.gz")
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": values}))
    cases = find_cases(tmp_path)
    assert [c.case_id for c in cases] == ["spine_001"]
    prepared = prepare_case(cases[0], TINY_CLASSES, (16, 32, 32))
    assert set(np.unique(prepared.classes)) == set(range(len(TINY_CLASSES)))


def test_nnunet_without_canonical_names_needs_a_convention(tmp_path: Path):
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "vertebra": 1}}))
    with pytest.raises(InputError, match="--label-convention"):
        find_cases(tmp_path)


def test_missing_labels_and_empty_folders_are_explained(tmp_path: Path):
    with pytest.raises(InputError, match="No image/label pairs"):
        find_cases(tmp_path)
    case = tmp_path / "c1"
    case.mkdir()
    image, _ = synthetic_case(0)
    io.write_image(image, case / "ct.nii.gz")
    with pytest.raises(InputError, match="no label map"):
        find_cases(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        find_cases(tmp_path / "nowhere")


def test_label_convention_verse_is_applied(tmp_path: Path):
    image, labels = synthetic_case(0)
    verse = np.zeros_like(labels)
    verse[labels == anatomy.structure("L5").label] = 24  # VerSe: 24 = L5, 26 = sacrum
    verse[labels == anatomy.structure("S1").label] = 26
    folder = tmp_path / "v1"
    folder.mkdir()
    io.write_image(image, folder / "ct.nii.gz")
    io.write_image(label_image(verse, image), folder / "labels.nii.gz")
    with pytest.raises(InputError):  # no sidecar and no convention: nothing is guessed
        prepare_case(find_cases(tmp_path)[0], TINY_CLASSES, (16, 32, 32))
    case = find_cases(tmp_path, label_convention="verse")[0]
    prepared = prepare_case(case, TINY_CLASSES, (16, 32, 32))
    assert set(np.unique(prepared.classes)) == {0, TINY_CLASSES.index("L5"), TINY_CLASSES.index("S1")}
    with pytest.raises(InputError, match="Unknown label convention"):
        find_cases(tmp_path, label_convention="nonsense")


def test_prepare_case_resamples_to_1mm_and_crops_to_labels(tmp_path: Path):
    write_case(tmp_path / "c", seed=2, spacing=(0.8, 0.8, 2.0), shape_zyx=(20, 60, 70))
    case = find_cases(tmp_path)[0]
    prepared = prepare_case(case, TINY_CLASSES, (16, 32, 32), margin_mm=4.0)
    assert prepared.spacing_mm == pytest.approx((1.0, 1.0, 1.0))
    assert prepared.hu.dtype == np.int16 and prepared.classes.shape == prepared.hu.shape
    # the labelled region of the original (70 x 60 x 20 voxels at 0.8/0.8/2 mm) fits in 1 mm voxels + margin
    image, labels = synthetic_case(2, spacing=(0.8, 0.8, 2.0), shape_zyx=(20, 60, 70))
    nz = np.argwhere(labels > 0)
    extent_mm = (nz.max(0) - nz.min(0) + 1) * np.array([2.0, 0.8, 0.8])
    # (arrays smaller than a patch are padded with air up to the patch size)
    assert np.all(np.array(prepared.hu.shape) <= np.maximum(extent_mm + 2 * 4.0 + 3, (16, 32, 32)))
    assert np.all(np.array(prepared.hu.shape) >= np.minimum(extent_mm, (16, 32, 32)))
    # volumes survive nearest-neighbour resampling (thin roots on 2 mm slices least precisely)
    for i, name in enumerate(TINY_CLASSES[1:], start=1):
        true_mm3 = (labels == anatomy.structure(name).label).sum() * 0.8 * 0.8 * 2.0
        tolerance = 0.35 if name.startswith("root") else 0.15
        assert (prepared.classes == i).sum() == pytest.approx(true_mm3, rel=tolerance), name
    assert all(len(idx) for idx in prepared.class_indices)


def test_intensity_standardisation_is_fixed_and_clipped():
    norm = IntensityNormalization.fit([np.array([[-3000.0, 0.0, 100.0, 5000.0]])])
    assert norm.clip_low_hu == -1000 and norm.clip_high_hu == 2000
    assert norm.mean_hu == pytest.approx(np.mean([-1000, 0, 100, 2000]))
    out = norm.apply(np.array([-5000.0, 2000.0, 9999.0]))
    assert out[0] == pytest.approx((-1000 - norm.mean_hu) / norm.std_hu)
    assert out[1] == out[2]
    assert IntensityNormalization.from_dict(norm.to_dict()) == norm


def _lateral_case() -> PreparedCase:
    classes = np.zeros((16, 16, 32), np.uint8)
    classes[6:10, 6:10, 24:30] = TINY_CLASSES.index("root_L5_left")  # large x: patient's left (LPS)
    classes[6:10, 6:10, 2:8] = TINY_CLASSES.index("L5")
    hu = np.where(classes > 0, 500, 0).astype(np.int16)
    hu[6:10, 6:10, 24:30] = 60
    from monai.transforms.utils import map_classes_to_indices

    indices = [np.asarray(i) for i in map_classes_to_indices(classes[None], num_classes=len(TINY_CLASSES))]
    return PreparedCase("lateral", hu, classes, (1.0, 1.0, 1.0), indices)


def test_left_right_flip_swaps_left_and_right_labels():
    case = _lateral_case()
    cfg = TrainConfig(
        class_names=TINY_CLASSES,
        features=(4, 8),
        patch_size=(16, 16, 32),
        flip_lr_prob=1.0,
        noise_prob=0.0,
        batch_size=1,
    )
    sampler = PatchSampler([case], cfg, IntensityNormalization(), np.random.RandomState(0))
    image, classes = sampler.patch(case)
    left, right = TINY_CLASSES.index("root_L5_left"), TINY_CLASSES.index("root_L5_right")
    assert not (classes == left).any()
    xs = np.argwhere(classes == right)[:, 2]
    assert xs.size and xs.max() < 16  # the mirrored root now lies on the right (small x) and is named right
    assert (np.argwhere(classes == TINY_CLASSES.index("L5"))[:, 2] >= 16).all()
    # the image moved with its labels
    assert image[8, 8, 5] == pytest.approx(IntensityNormalization().apply(np.array([60.0]))[0])


def test_without_flip_patch_matches_case():
    case = _lateral_case()
    cfg = TrainConfig(
        class_names=TINY_CLASSES,
        features=(4, 8),
        patch_size=(16, 16, 32),
        flip_lr_prob=0.0,
        noise_prob=0.0,
        batch_size=2,
    )
    sampler = PatchSampler([case], cfg, IntensityNormalization(), np.random.RandomState(0))
    images, classes = sampler.batch()
    assert images.shape == (2, 1, 16, 16, 32) and classes.shape == (2, 16, 16, 32)
    assert np.array_equal(classes[0], case.classes)


def test_class_balanced_sampling_centres_small_structures():
    classes = np.zeros((64, 64, 64), np.uint8)
    classes[30:32, 30:32, 30:32] = 5  # one tiny root
    hu = np.zeros_like(classes, dtype=np.int16)
    from monai.transforms.utils import map_classes_to_indices

    idx = [
        np.asarray(i)
        for i in map_classes_to_indices(
            classes[None], num_classes=len(TINY_CLASSES), max_samples_per_class=5000
        )
    ]
    case = PreparedCase("tiny", hu, classes, (1.0, 1.0, 1.0), idx)
    cfg = TrainConfig(
        class_names=TINY_CLASSES, features=(4, 8), patch_size=(16, 16, 16), flip_lr_prob=0.0, noise_prob=0.0
    )
    hits = sum(
        int(
            (
                PatchSampler([case], cfg, IntensityNormalization(), np.random.RandomState(s)).patch(case)[1]
                == 5
            ).any()
        )
        for s in range(40)
    )
    # two classes present (background, root): about half the patches are centred on the root
    assert hits >= 10
    uniform = TrainConfig(
        class_names=TINY_CLASSES,
        features=(4, 8),
        patch_size=(16, 16, 16),
        flip_lr_prob=0.0,
        noise_prob=0.0,
        sampling="uniform",
    )
    hits_u = sum(
        int(
            (
                PatchSampler([case], uniform, IntensityNormalization(), np.random.RandomState(s)).patch(case)[
                    1
                ]
                == 5
            ).any()
        )
        for s in range(40)
    )
    assert hits_u < hits


def test_sitk_roundtrip_of_written_case_keeps_geometry(tmp_path: Path):
    folder = write_case(tmp_path / "g", seed=4)
    ct = sitk.ReadImage(str(folder / "ct.nii.gz"))
    lm = io.read_labelmap(folder / "labels.nii.gz")
    assert ct.GetSize() == lm.image.GetSize()
    assert set(lm.structures_present()) == set(TINY_CLASSES[1:])


def test_real_verse_case_is_prepared_in_canonical_orientation():
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ct" / "verse014"
    if not shared.is_dir():
        pytest.skip(f"public test data not found at {shared}")
    from spineai.segmentation.data import CaseFiles

    case = CaseFiles(
        "verse014",
        shared / "sub-verse014_ct.nii.gz",
        shared / "sub-verse014_seg-vert_msk.nii.gz",
        io.resolve_mapping("verse"),
    )
    prepared = prepare_case(case, CT_CLASS_NAMES, (32, 64, 64))
    idx = CT_CLASS_NAMES.index
    present = set(np.unique(prepared.classes).tolist())
    assert {idx("L3"), idx("L4"), idx("L5")} <= present  # L1, L2 are not classes of the CT model: background
    centroid = {n: np.argwhere(prepared.classes == idx(n)).mean(axis=0) for n in ("L3", "L4", "L5")}
    # array axis 0 runs inferior -> superior after to_canonical (the file is stored PIR)
    assert centroid["L5"][0] < centroid["L4"][0] < centroid["L3"][0]
    verse = sitk.GetArrayFromImage(sitk.ReadImage(str(case.labels)))
    l4_mm3 = (verse == 23).sum() * np.prod(sitk.ReadImage(str(case.labels)).GetSpacing())
    assert (prepared.classes == idx("L4")).sum() == pytest.approx(l4_mm3, rel=0.05)
    assert prepared.hu.max() > 300 and prepared.hu.min() < -100
