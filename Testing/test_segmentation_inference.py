"""Inference: the combined algorithm, fast windows, geometry back to the input grid, checks and outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage
from test_segmentation_fixtures import (
    TINY_CLASSES,
    ThresholdNet,
    single_torch_thread,  # noqa: F401
    synthetic_case,
    threshold_model,
    tiny_weights,
)

from spineai import anatomy, io
from spineai.errors import InputError, OutputExistsError, WeightsError
from spineai.segmentation.inference import (
    check_ct_image,
    count_windows,
    fast_windows,
    locate_spine_region,
    predict_classes,
    segment,
)
from spineai.segmentation.postprocess import component_counts

pytestmark = pytest.mark.usefixtures("single_torch_thread")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
L5 = anatomy.structure("L5").label


def _bone_mask(image: sitk.Image, hu: float = 300.0) -> np.ndarray:
    return sitk.GetArrayFromImage(image) > hu


class _CountingSoftmaxNet:
    """Returns, for every window, one-hot class 1 everywhere; counts the windows it saw."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += x.shape[0]
        out = torch.zeros((x.shape[0], 2, *x.shape[2:]))
        out[:, 1] = 5.0
        return out


def test_combined_algorithm_sums_window_softmax_and_argmaxes():
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(20, 24, 28)).astype(np.float32)
    net = ThresholdNet(0.3, num_classes=3, target_class=2)
    expected = (volume > 0.3).astype(np.uint8) * 2
    tiles = predict_classes(
        net, volume, (8, 8, 8), overlap=0.0, blend="constant"
    )  # the paper: stride = window
    assert np.array_equal(tiles, expected)
    blended = predict_classes(net, volume, (16, 16, 16), overlap=0.25, blend="gaussian")
    assert np.array_equal(blended, expected)


def test_class_weight_correction_divides_the_probabilities_by_the_training_weights():
    # ThresholdNet's logit for class 2 is 10 * (x - 0.3): at x = 0.35 it is 0.5, so p2 / p0 = e^0.5 = 1.65
    volume = np.full((8, 8, 8), 0.35, dtype=np.float32)
    volume[:4] = 0.40  # logit 1.0: p2 / p0 = 2.72
    net = ThresholdNet(0.3, num_classes=3, target_class=2)
    raw = predict_classes(net, volume, (8, 8, 8))
    assert set(np.unique(raw)) == {2}
    # trained with class 2 weighted twice class 0: the corrected odds are 0.82 (x = 0.35) and 1.36 (x = 0.40)
    corrected = predict_classes(net, volume, (8, 8, 8), logit_offsets=np.log([1.0, 1.0, 2.0]))
    assert np.all(corrected[:4] == 2) and np.all(corrected[4:] == 0)


class _OneSidedNet:
    """Sees only the first half of its window along x (the patient's right on the LPS grid): bright voxels
    there are class 2 ("right"); on the other half every class is equally likely."""

    def __call__(self, x):
        logits = torch.zeros((x.shape[0], 3, *x.shape[2:]))
        half = x.shape[4] // 2
        bright = x[:, 0, :, :, :half] > 0.5
        logits[:, 2, :, :, :half] = torch.where(bright, 8.0, -8.0)
        return logits


def test_mirror_tta_lets_a_one_sided_network_find_the_mirror_structure():
    volume = np.zeros((8, 8, 16), dtype=np.float32)
    volume[2:6, 2:6, 2:5] = 1.0  # a structure on the right (low x) ...
    volume[2:6, 2:6, 11:14] = 1.0  # ... and its mirror image on the left
    right, left = np.zeros_like(volume, bool), np.zeros_like(volume, bool)
    right[2:6, 2:6, 2:5] = left[2:6, 2:6, 11:14] = True
    net = _OneSidedNet()
    plain = predict_classes(net, volume, (8, 8, 16))
    assert np.all(plain[right] == 2) and np.all(plain[left] == 0)  # the blind side is missed
    # classes: 0 background, 1 left, 2 right; the mirror image's "right" is the CT's "left"
    mirrored = predict_classes(net, volume, (8, 8, 16), mirror_permutation=[0, 2, 1])
    assert np.all(mirrored[right] == 2) and np.all(mirrored[left] == 1)
    assert np.all(mirrored[~(left | right)] == 0)
    net.config = {"out_channels": 3}
    with pytest.raises(ValueError, match="3-class"):
        predict_classes(net, volume, (8, 8, 16), mirror_permutation=[0, 1])


def test_mirror_tta_keeps_a_symmetric_network_s_labels_and_is_recorded():
    image, _ = synthetic_case(2)
    plain = segment(image, model=threshold_model(), postprocess=False)
    mirrored = segment(image, model=threshold_model(), postprocess=False, mirror_tta=True)
    assert np.array_equal(sitk.GetArrayFromImage(plain.labels), sitk.GetArrayFromImage(mirrored.labels))
    assert mirrored.model["mirror_tta"] is True and plain.model["mirror_tta"] is False


def test_precision_is_bf16_on_cuda_and_float32_on_the_cpu_unless_forced():
    from spineai.segmentation.inference import resolve_precision

    assert resolve_precision("auto", "cpu") == "float32"
    assert resolve_precision("auto", "cuda") == "bf16"
    assert resolve_precision("float32", "cuda") == "float32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(InputError, match="precision 'half'"):
        resolve_precision("half", "cpu")
    image, _ = synthetic_case(2)
    with pytest.raises(InputError, match="precision"):
        segment(image, model=threshold_model(), precision="fp8")
    assert segment(image, model=threshold_model(), postprocess=False).model["precision"] == "float32"


def test_bf16_autocast_on_the_cpu_keeps_clear_decisions():
    volume = np.random.default_rng(3).normal(size=(16, 16, 16)).astype(np.float32)
    volume[np.abs(volume - 0.3) < 0.05] = 0.0  # no voxel within bf16 rounding of the threshold
    net = ThresholdNet(0.3, num_classes=3, target_class=2)
    full = predict_classes(net, volume, (16, 16, 16), amp=False)
    half = predict_classes(net, volume, (16, 16, 16), amp=True)
    assert np.array_equal(full, half) and set(np.unique(full)) == {0, 2}
    result = segment(synthetic_case(2)[0], model=threshold_model(), precision="bf16", postprocess=False)
    assert result.model["precision"] == "bf16"


def test_loaded_cpu_models_fold_batch_norm_and_go_channels_last_with_unchanged_output(tmp_path: Path):
    import copy

    from spineai.segmentation.inference import LoadedModel, load_segmentation_model
    from spineai.segmentation.network import build_network

    reference = build_network({"out_channels": 3, "features": [4, 8]}).eval()
    # running statistics away from (0, 1), so that folding them in is not a no-op
    for bn in (m for m in reference.modules() if isinstance(m, torch.nn.BatchNorm3d)):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    stub = threshold_model()
    model = LoadedModel(
        copy.deepcopy(reference),
        stub.card,
        stub.weights_path,
        stub.class_names,
        stub.intensity,
        (8, 8, 8),
        "cpu",
    )
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in model.network.modules())
    conv = next(m for m in model.network.modules() if isinstance(m, torch.nn.Conv3d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    x = torch.randn(2, 1, 16, 16, 16)
    with torch.inference_mode():
        assert torch.allclose(model.network(x), reference(x), atol=1e-4)
    loaded = load_segmentation_model(tiny_weights(tmp_path), "cpu")
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in loaded.network.modules())


def test_loaded_model_reads_its_training_weights_from_the_card():
    model = threshold_model()
    assert model.class_weights is None and model.logit_offsets() is None  # card without weights: raw
    weights = {n: float(i + 1) for i, n in enumerate(model.class_names)}
    model.card.training_recipe = {"class_weights": weights}
    assert np.allclose(model.logit_offsets(), np.log(np.arange(1, len(model.class_names) + 1)))
    assert model.logit_offsets(class_weight_correction=False) is None
    model.card.training_recipe = {"class_weights": {model.class_names[0]: 1.0}}  # incomplete: unusable
    assert model.logit_offsets() is None


def test_large_volumes_accumulate_in_half_precision_with_the_same_labels(monkeypatch):
    from spineai.segmentation import inference

    rng = np.random.default_rng(1)
    volume = (rng.choice([-1.0, 1.0], size=(16, 20, 24)) * rng.uniform(0.5, 2.0, (16, 20, 24))).astype(
        np.float32
    )
    net = ThresholdNet(0.0, num_classes=3, target_class=2)
    net.config = {"out_channels": 3}
    full = predict_classes(net, volume, (8, 8, 8), overlap=0.5, blend="gaussian")
    monkeypatch.setattr(inference, "ACCUMULATOR_LIMIT_BYTES", 0)
    half = predict_classes(net, volume, (8, 8, 8), overlap=0.5, blend="gaussian")
    assert np.array_equal(full, half) and np.array_equal(full, (volume > 0).astype(np.uint8) * 2)


def test_window_count_matches_monai():
    net = _CountingSoftmaxNet()
    shape = (37, 70, 90)
    window, overlap = fast_windows(shape, 16, max_window=(32, 48, 64))
    assert all(w % 16 == 0 for w in window)
    predict_classes(net, np.zeros(shape, np.float32), window, overlap, "gaussian")
    assert net.calls == count_windows(shape, window, overlap)
    assert net.calls == 2 * 2 * 2  # the fewest windows of at most 32 x 48 x 64 that cover the volume
    single = fast_windows((30, 40, 50), 16)
    assert single == ((32, 48, 64), (0.0, 0.0, 0.0))  # one window, rounded up to multiples of 16


def test_spine_region_contains_all_bone():
    image, labels = synthetic_case(1, shape_zyx=(40, 64, 96))
    hu = sitk.GetArrayFromImage(image)
    box = locate_spine_region(hu.astype(np.float32))  # bone + 25 mm reaches the roots and the dural sac
    inside = np.zeros(hu.shape, bool)
    inside[box] = True
    assert inside[labels > 0].all()
    assert inside.sum() < 0.8 * inside.size  # the air around the body is dropped


def test_segment_returns_labels_on_the_input_grid_for_any_orientation():
    image, _ = synthetic_case(0, spacing=(0.7, 0.7, 1.5), shape_zyx=(30, 50, 60))
    # store the same CT as PIR (like the VerSe files): axes permuted and flipped
    pir = io.reorient(image, "PIR")
    for candidate in (image, pir):
        result = segment(candidate, model=threshold_model(300.0, "L5"), mode="fast", postprocess=False)
        assert result.labels.GetSize() == candidate.GetSize()
        assert result.labels.GetSpacing() == pytest.approx(candidate.GetSpacing())
        assert np.allclose(result.labels.GetDirection(), candidate.GetDirection())
        predicted = sitk.GetArrayFromImage(result.labels) == L5
        truth = _bone_mask(candidate)
        dice = 2 * (predicted & truth).sum() / (predicted.sum() + truth.sum())
        assert dice > 0.9  # 1 mm round trip of a per-voxel rule
        assert result.working_labels.GetSpacing() == pytest.approx((1.0, 1.0, 1.0))
        assert result.structures == ["L5"]


def test_fast_and_paper_modes_agree_for_a_per_voxel_network():
    image, _ = synthetic_case(2)
    fast = segment(image, model=threshold_model(), mode="fast", postprocess=False)
    paper = segment(image, model=threshold_model(), mode="paper", postprocess=False)
    assert np.array_equal(sitk.GetArrayFromImage(fast.labels), sitk.GetArrayFromImage(paper.labels))


def test_missing_s1_is_a_warning_and_an_error_when_required():
    image, _ = synthetic_case(0)
    result = segment(image, model=threshold_model(300.0, "L5"))
    assert not result.has("S1")
    assert any("S1 was not found in the field of view" in w for w in result.warnings)
    with pytest.raises(InputError, match="S1 is not in the segmented field of view"):
        result.require_levels(["L5-S1"])
    result.require_levels(["L5"])
    with pytest.raises(InputError, match="S1"):
        segment(image, model=threshold_model(300.0, "L5"), require_levels=("L5", "S1"))


def test_postprocessing_keeps_the_largest_component():
    image, _ = synthetic_case(0)
    arr = sitk.GetArrayFromImage(image)
    arr[2:5, 2:5, 2:5] = 800  # a detached bony speck outside the body
    speck = sitk.GetImageFromArray(arr)
    speck.CopyInformation(image)
    raw = segment(speck, model=threshold_model(), mode="paper", postprocess=False)
    clean = segment(speck, model=threshold_model(), mode="paper", postprocess=True)
    raw_arr, clean_arr = sitk.GetArrayFromImage(raw.labels), sitk.GetArrayFromImage(clean.labels)
    assert raw_arr[3, 3, 3] == L5 and clean_arr[3, 3, 3] == 0
    # the threshold rule finds both bony blocks (L5 and S1) and the speck; one body of "L5" remains
    assert component_counts(raw_arr)[L5] == 3 and component_counts(clean_arr)[L5] == 1
    assert np.all(raw_arr[clean_arr == L5] == L5)
    sizes = np.bincount(ndimage.label(raw_arr == L5, structure=np.ones((3, 3, 3)))[0].ravel())[1:]
    assert (clean_arr == L5).sum() == sizes.max()


def test_three_class_map_follows_the_paper():
    image, _ = synthetic_case(0)
    result = segment(image, model=threshold_model())
    three = sitk.GetArrayFromImage(result.three_class())
    assert set(np.unique(three)) <= {0, 1, 2}
    assert np.array_equal(three == 1, sitk.GetArrayFromImage(result.labels) == L5)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda a: np.abs(a) + 5.0, "does not look like a CT"),  # MRI-like: no negative values
        (lambda a: np.where(a > 300, 100.0, a), "no bone"),
    ],
)
def test_wrong_modality_is_explained(make, message):
    image, _ = synthetic_case(0)
    arr = make(sitk.GetArrayFromImage(image).astype(np.float32))
    other = sitk.GetImageFromArray(arr.astype(np.float32))
    other.CopyInformation(image)
    with pytest.raises(InputError, match=message):
        check_ct_image(other)


def test_bad_geometry_and_values_are_explained():
    image, _ = synthetic_case(0)
    flat = sitk.GetImageFromArray(sitk.GetArrayFromImage(image)[10])
    with pytest.raises(InputError, match="2D"):
        check_ct_image(flat)
    tiny = sitk.GetImageFromArray(np.full((6, 6, 6), 500, np.int16))
    with pytest.raises(InputError, match="too small for the network"):
        check_ct_image(tiny)
    absurd = sitk.Image(image)
    absurd.SetSpacing((50.0, 50.0, 50.0))
    with pytest.raises(InputError, match="spacing"):
        check_ct_image(absurd)
    arr = sitk.GetArrayFromImage(image).astype(np.float32)
    arr[5, 5, 5] = np.nan
    nan = sitk.GetImageFromArray(arr)
    nan.CopyInformation(image)
    with pytest.raises(InputError, match="NaN"):
        check_ct_image(nan)


def test_weights_problems_are_weights_errors(tmp_path: Path):
    image, _ = synthetic_case(0)
    with pytest.raises(WeightsError, match="missing|not found"):
        segment(image, weights=tmp_path / "absent.safetensors")
    weights = tiny_weights(tmp_path)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match its model card"):
        segment(image, weights=weights)
    other = tmp_path / "other"
    other.mkdir()
    w2 = tiny_weights(other)
    card = json.loads(w2.with_suffix(".json").read_text())
    card["task"] = "mri_grading"
    w2.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="needs a ct_segmentation model"):
        segment(image, weights=w2)


def test_save_writes_slicer_files_and_lps_surfaces(tmp_path: Path):
    image, _ = synthetic_case(0)
    result = segment(image, model=threshold_model())
    written = result.save(tmp_path / "out", surface_formats=("vtp", "stl"))
    out = tmp_path / "out"
    for name in (
        "segmentation.seg.nrrd",
        "labels.nii.gz",
        "labels.json",
        "segmentation.json",
        "surfaces/L5.vtp",
        "surfaces/L5.stl",
    ):
        assert (out / name).is_file(), name
    assert written["labels"] == out / "labels.nii.gz"
    labelmap = io.read_labelmap(out / "labels.nii.gz")
    assert labelmap.structures_present() == ["L5"]
    assert set(labelmap.mapping.names()) == set(TINY_CLASSES[1:])  # every class named in labels.json
    seg = io.read_seg_nrrd(out / "segmentation.seg.nrrd")
    assert seg.structures_present() == ["L5"]
    summary = json.loads((out / "segmentation.json").read_text())
    assert summary["structures"]["L5"]["label"] == L5 and summary["frame"] == "LPS"
    assert summary["intended_use"].startswith("research use only")

    import vtk

    reader = vtk.vtkXMLPolyDataReader()
    reader.SetFileName(str(out / "surfaces" / "L5.vtp"))
    reader.Update()
    poly = reader.GetOutput()
    assert poly.GetFieldData().GetAbstractArray("SPACE").GetValue(0) == "LPS"
    bounds = np.array(poly.GetBounds()).reshape(3, 2)
    idx = np.argwhere(sitk.GetArrayFromImage(result.labels) == L5)
    lo = np.array(result.labels.TransformIndexToPhysicalPoint([int(v) for v in idx.min(0)[::-1]]))
    hi = np.array(result.labels.TransformIndexToPhysicalPoint([int(v) for v in idx.max(0)[::-1]]))
    assert np.allclose(bounds[:, 0], np.minimum(lo, hi), atol=1.5)
    assert np.allclose(bounds[:, 1], np.maximum(lo, hi), atol=1.5)
    with pytest.raises(OutputExistsError):
        result.save(out)


def test_real_ct_passes_the_checks_and_mri_is_refused():
    if not SHARED.is_dir():
        pytest.skip(f"public test data not found at {SHARED}")
    ct = io.read_image(SHARED / "ct" / "verse014" / "sub-verse014_ct.nii.gz")
    check_ct_image(ct, "VerSe 014")
    crop = io.read_image(SHARED / "ct" / "tptbox_l2_l4" / "sub-ct_label-22_ct.nii.gz")
    check_ct_image(crop, "TPTBox crop")  # a tight crop without air still has fat below -100 HU
    mri = io.read_image(SHARED / "ivd_sagittal_t2" / "11_image.nii.gz")
    with pytest.raises(InputError, match="MRI"):
        check_ct_image(mri, "sagittal T2")


def test_default_model_comes_from_the_registry(tmp_path: Path, monkeypatch):
    import spineai.weights as weights_module
    from spineai.weights import load_card, save_weights

    image, _ = synthetic_case(0)
    monkeypatch.setattr(weights_module, "MODELS_DIR", tmp_path / "models")
    with pytest.raises(WeightsError, match="No shipped CT segmentation model") as info:
        segment(image)
    assert "train_demo_segmentation.py" in str(info.value) and "--weights" in str(info.value)
    trained = tiny_weights(tmp_path)
    card = load_card(trained)
    card.name = "spinect_ct_demo"
    from spineai.weights import load_state_dict

    save_weights(load_state_dict(trained), tmp_path / "models" / "spinect_ct_demo.safetensors", card)
    result = segment(image, device="cpu")
    assert result.model["name"] == "spinect_ct_demo"
    assert result.model["sha256"] == load_card(tmp_path / "models" / "spinect_ct_demo.safetensors").sha256


def test_postprocessing_names_the_vertebrae_by_their_discs(monkeypatch):
    from spineai.segmentation import postprocess as post

    seen: list[np.ndarray] = []

    def spy(labels: np.ndarray) -> np.ndarray:
        seen.append(labels.copy())
        return post.keep_largest_component(labels)

    monkeypatch.setattr(post, "relabel_vertebrae_by_discs", spy)
    image, _ = synthetic_case(0)
    segment(image, model=threshold_model(), mode="paper", postprocess=False)
    assert seen == []
    segment(image, model=threshold_model(), mode="paper", postprocess=True)
    # called once, on the canonical label values of the 1 mm working grid (not on class indices)
    assert len(seen) == 1 and L5 in np.unique(seen[0])
