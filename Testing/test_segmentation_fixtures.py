"""Small synthetic lumbosacral-like CT cases for the segmentation tests (shared helpers, plus their checks).

Each case is a tiny volume in Hounsfield units with exactly known labels: a body of soft tissue in air,
two "vertebrae" (L5 above S1) of bone, a disc between them, a dural sac behind them, and two nerve roots
running laterally in fat, the left one at larger LPS x (the patient's left). Nothing here is anatomy; it
only has to be learnable in a few iterations and carry the label conventions the pipeline must keep.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from spineai import anatomy, io

#: classes the tiny test models predict
TINY_CLASSES = ("background", "L5", "S1", "disc_L5_S1", "dural_sac", "root_L5_left", "root_L5_right")


def synthetic_case(
    seed: int = 0,
    shape_zyx: tuple[int, int, int] = (40, 48, 56),
    spacing=(1.0, 1.0, 1.0),
    noise_hu: float = 15.0,
) -> tuple[sitk.Image, np.ndarray]:
    """(CT image in HU, canonical label array (z, y, x)) with identity direction (LPS)."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape_zyx
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    cx, cy = nx / 2 + rng.uniform(-2, 2), ny / 2 + rng.uniform(-2, 2)
    hu = np.full(shape_zyx, -1000.0)
    labels = np.zeros(shape_zyx, np.uint8)
    body = ((x - cx) / (nx * 0.46)) ** 2 + ((y - cy) / (ny * 0.46)) ** 2 <= 1
    hu[body] = 40.0
    fat = body & (np.abs(y - cy) < ny * 0.25) & (np.abs(x - cx) < nx * 0.42)
    hu[fat] = -100.0
    # vertebrae: L5 in the upper half, S1 in the lower, a disc between (z runs inferior -> superior)
    mid = nz // 2 + int(rng.integers(-2, 3))
    column = (np.abs(x - cx) <= 8) & (np.abs(y - (cy - 4)) <= 7)
    l5 = column & (z >= mid + 2) & (z < nz - 3)
    disc = column & (z >= mid - 1) & (z < mid + 2)
    s1 = column & (z >= 3) & (z < mid - 1)
    hu[l5 | s1] = 700.0
    hu[disc] = 90.0
    labels[l5] = anatomy.structure("L5").label
    labels[s1] = anatomy.structure("S1").label
    labels[disc] = anatomy.structure("disc_L5_S1").label
    sac = ((x - cx) ** 2 + (y - (cy + 7)) ** 2 <= 9) & (z >= 3) & (z < nz - 3)
    hu[sac] = 10.0
    labels[sac] = anatomy.structure("dural_sac").label
    # roots: short tubes running laterally from the sac at the disc level
    for side, sign in (("left", 1), ("right", -1)):
        tube = ((z - mid) ** 2 + (y - (cy + 5)) ** 2 <= 4) & (sign * (x - cx) > 4) & (sign * (x - cx) < 16)
        hu[tube] = 60.0
        labels[tube] = anatomy.structure(f"root_L5_{side}").label
    hu += rng.normal(0, noise_hu, shape_zyx)
    image = sitk.GetImageFromArray(hu.astype(np.int16))
    image.SetSpacing(spacing)
    image.SetOrigin((-nx / 2.0, -ny / 2.0, 100.0))
    return image, labels


def label_image(labels: np.ndarray, like: sitk.Image) -> sitk.Image:
    out = sitk.GetImageFromArray(labels.astype(np.uint8))
    out.CopyInformation(like)
    return out


def write_case(folder: Path, seed: int = 0, **kwargs) -> Path:
    """Write ``folder/ct.nii.gz``, ``labels.nii.gz`` and ``labels.json`` (canonical values)."""
    image, labels = synthetic_case(seed, **kwargs)
    folder.mkdir(parents=True, exist_ok=True)
    io.write_image(image, folder / "ct.nii.gz")
    mapping = anatomy.LabelMapping("spineai", {anatomy.structure(n).label: n for n in TINY_CLASSES[1:]})
    io.write_labelmap_nifti(io.LabelMap(label_image(labels, image), mapping), folder / "labels.nii.gz")
    return folder


def write_dataset(root: Path, seeds=(0, 1, 2), **kwargs) -> Path:
    for s in seeds:
        write_case(root / f"case{s:02d}", seed=s, **kwargs)
    return root


def test_synthetic_case_has_left_root_at_larger_lps_x():
    image, labels = synthetic_case(3)
    left = np.argwhere(labels == anatomy.structure("root_L5_left").label)[:, 2].mean()
    right = np.argwhere(labels == anatomy.structure("root_L5_right").label)[:, 2].mean()
    x_left = image.TransformContinuousIndexToPhysicalPoint((float(left), 0.0, 0.0))[0]
    x_right = image.TransformContinuousIndexToPhysicalPoint((float(right), 0.0, 0.0))[0]
    assert x_left > x_right
    assert set(np.unique(labels)) == {0} | {anatomy.structure(n).label for n in TINY_CLASSES[1:]}


class ThresholdNet:
    """A per-voxel stand-in for the U-Net: class 1 where the standardised input exceeds a threshold.

    Because it looks at one voxel at a time, its prediction does not depend on how the volume is cut
    into windows, which lets tests check the window assembly, orientation and resampling exactly.
    """

    divisor = 4

    def __init__(self, threshold: float, num_classes: int = len(TINY_CLASSES), target_class: int = 1) -> None:
        self.threshold = float(threshold)
        self.num_classes = num_classes
        self.target_class = target_class

    def __call__(self, x):
        import torch

        logits = torch.zeros((x.shape[0], self.num_classes, *x.shape[2:]), dtype=x.dtype, device=x.device)
        logits[:, self.target_class] = 10.0 * (x[:, 0] - self.threshold)
        return logits

    def eval(self):
        return self

    def to(self, _device):
        return self


def threshold_model(hu_threshold: float = 300.0, target: str = "L5"):
    """A LoadedModel whose network labels every voxel above ``hu_threshold`` HU as ``target``."""
    from types import SimpleNamespace

    from spineai.segmentation.data import IntensityNormalization
    from spineai.segmentation.inference import LoadedModel

    intensity = IntensityNormalization(-1000.0, 2000.0, 0.0, 1000.0)
    threshold = (hu_threshold - intensity.mean_hu) / intensity.std_hu
    card = SimpleNamespace(name="threshold_stub", version="0", sha256="", task="ct_segmentation")
    return LoadedModel(
        ThresholdNet(threshold, target_class=TINY_CLASSES.index(target)),
        card,
        Path("stub"),
        TINY_CLASSES,
        intensity,
        (16, 32, 32),
        "cpu",
    )


def tiny_weights(folder: Path, features=(4, 8), seed: int = 0) -> Path:
    """Random-initialised tiny network saved as weights + card, for plumbing tests."""
    import torch

    from spineai.segmentation.data import IntensityNormalization
    from spineai.segmentation.network import ARCHITECTURE, build_network
    from spineai.weights import save_weights

    torch.manual_seed(seed)
    net = build_network({"out_channels": len(TINY_CLASSES), "features": list(features)})
    card = {
        "name": "tiny_test_model",
        "task": "ct_segmentation",
        "architecture": ARCHITECTURE,
        "config": net.config,
        "class_names": list(TINY_CLASSES),
        "input": {
            "modality": "CT",
            "spacing_mm": [1, 1, 1],
            "patch_size": [16, 32, 32],
            "intensity": IntensityNormalization(mean_hu=0.0, std_hu=1000.0).to_dict(),
        },
        "training_data": "none (random initialisation, for tests)",
    }
    weights, _card = save_weights(net, folder / "tiny.safetensors", card)
    return weights


@pytest.fixture(scope="module")
def single_torch_thread():
    """Run a module's tiny networks on one thread: on a shared machine extra threads only contend."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
