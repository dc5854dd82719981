"""Training and inference data for the CT segmentation model: classes, case discovery, preprocessing.

Frames and axes: images are brought to the engine's canonical orientation (``spineai.io.to_canonical``:
voxel axes along patient x, y, z of the LPS frame) and resampled to 1 mm; arrays are indexed
``(z, y, x)``, so array axis 0 runs inferior -> superior, axis 1 anterior -> posterior and axis 2
right -> left. A 32 x 64 x 64 patch is therefore 32 mm cranio-caudal, 64 mm antero-posterior, 64 mm
left-right, the paper's D x H x W.

Intensity standardisation (the paper's "standardization", made reproducible): Hounsfield units are
clipped to the window [-1000, 2000] HU (air to dense cortical bone; metal and beam-hardening streaks
beyond it carry no anatomy) and z-scored with a *fixed* mean and standard deviation measured once over
the labelled region of the training set (nnU-Net's scheme for CT), stored in the model card and applied
unchanged at inference. A per-volume z-score would instead depend on how much air and abdomen the field
of view happens to contain.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from .. import anatomy
from ..errors import InputError

#: output classes of the CT model, in output-channel order (index 0 = background)
CT_CLASS_NAMES: tuple[str, ...] = (
    "background",
    "L3",
    "L4",
    "L5",
    "S1",
    "ilium_left",
    "ilium_right",
    "disc_L3_L4",
    "disc_L4_L5",
    "disc_L5_S1",
    "dural_sac",
    "root_L3_left",
    "root_L3_right",
    "root_L4_left",
    "root_L4_right",
    "root_L5_left",
    "root_L5_right",
    "root_S1_left",
    "root_S1_right",
)
#: the network works on 1 mm isotropic voxels
WORKING_SPACING_MM: tuple[float, float, float] = (1.0, 1.0, 1.0)
#: HU window of the intensity standardisation
HU_WINDOW: tuple[float, float] = (-1000.0, 2000.0)
#: margin (mm) kept around the labelled region when cropping training cases
CROP_MARGIN_MM = 16.0

IMAGE_NAMES = ("ct.nii.gz", "ct.nii", "ct.nrrd", "ct.mha", "image.nii.gz", "image.nii", "image.nrrd")
LABEL_NAMES = ("labels.nii.gz", "labels.nii", "labels.nrrd", "labels.seg.nrrd", "labels.mha")


# ---------------------------------------------------------------------------------------------- classes
def check_class_names(class_names: Sequence[str]) -> tuple[str, ...]:
    """Validate an output class list: ``background`` first, then distinct canonical structure names."""
    names = tuple(class_names)
    if not names or names[0] != "background":
        raise InputError(
            f"Class list {list(names)} must start with 'background'.",
            "put 'background' first, then canonical structure names",
        )
    if len(set(names)) != len(names):
        raise InputError(f"Class list {list(names)} repeats a name.", "list each structure once")
    for name in names[1:]:
        anatomy.structure(name)  # raises InputError with the known names
    return names


def class_lookup(class_names: Sequence[str]) -> np.ndarray:
    """Lookup table canonical label value (0..255) -> class index; structures not listed map to 0."""
    lut = np.zeros(256, dtype=np.uint8)
    for index, name in enumerate(class_names):
        if index:
            lut[anatomy.structure(name).label] = index
    return lut


def class_values(class_names: Sequence[str]) -> np.ndarray:
    """Canonical label value of each class index (background -> 0)."""
    return np.array([0] + [anatomy.structure(n).label for n in class_names[1:]], dtype=np.uint8)


def mirrored_name(name: str) -> str:
    """The structure's mirror image across the mid-sagittal plane (``ilium_left`` <-> ``ilium_right``)."""
    for a, b in (("_left", "_right"), ("_right", "_left")):
        if name.endswith(a):
            return name[: -len(a)] + b
    return name


def left_right_permutation(class_names: Sequence[str]) -> np.ndarray:
    """Class index -> index of its mirror class (identity for midline structures).

    A left-right flip of the image must relabel ``root_L5_left`` as ``root_L5_right``; this permutation
    does that. A class whose mirror is not in the list keeps its index (and should not be flipped).
    """
    index = {n: i for i, n in enumerate(class_names)}
    return np.array([index.get(mirrored_name(n), i) for i, n in enumerate(class_names)], dtype=np.int64)


# ------------------------------------------------------------------------------------------- intensity
@dataclass
class IntensityNormalization:
    """Clip to a HU window, then z-score with fixed statistics (see module docstring).

    Attributes:
        clip_low_hu: lower clip (HU).
        clip_high_hu: upper clip (HU).
        mean_hu: mean of the clipped training foreground (HU).
        std_hu: its standard deviation (HU).
    """

    clip_low_hu: float = HU_WINDOW[0]
    clip_high_hu: float = HU_WINDOW[1]
    mean_hu: float = 0.0
    std_hu: float = 1000.0

    def apply(self, hu: np.ndarray) -> np.ndarray:
        """Standardised float32 array of the same shape."""
        out = np.clip(np.asarray(hu, dtype=np.float32), self.clip_low_hu, self.clip_high_hu)
        out -= np.float32(self.mean_hu)
        out /= np.float32(max(self.std_hu, 1e-3))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "clip_then_zscore_fixed",
            "clip_low_hu": self.clip_low_hu,
            "clip_high_hu": self.clip_high_hu,
            "mean_hu": self.mean_hu,
            "std_hu": self.std_hu,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IntensityNormalization:
        return cls(
            float(data["clip_low_hu"]),
            float(data["clip_high_hu"]),
            float(data["mean_hu"]),
            float(data["std_hu"]),
        )

    @classmethod
    def fit(
        cls,
        arrays: Sequence[np.ndarray],
        masks: Sequence[np.ndarray] | None = None,
        window: tuple[float, float] = HU_WINDOW,
        max_voxels: int = 2_000_000,
        seed: int = 0,
    ) -> IntensityNormalization:
        """Measure mean and SD of the clipped HU inside ``masks`` (labelled voxels) over all cases."""
        rng = np.random.default_rng(seed)
        samples = []
        per_case = max(1, max_voxels // max(1, len(arrays)))
        for i, arr in enumerate(arrays):
            values = arr[masks[i]] if masks is not None else arr.ravel()
            if values.size == 0:
                values = arr.ravel()
            if values.size > per_case:
                values = values[rng.integers(0, values.size, per_case)]
            samples.append(np.clip(values.astype(np.float32), *window))
        pooled = np.concatenate(samples)
        return cls(window[0], window[1], float(pooled.mean()), float(max(pooled.std(), 1.0)))


# --------------------------------------------------------------------------------------------- geometry
def to_working_grid(
    image: sitk.Image, is_label: bool = False, spacing_mm: Sequence[float] = WORKING_SPACING_MM
) -> sitk.Image:
    """Canonical (LPS) orientation, then ``spacing_mm`` (linear for images, nearest neighbour for labels).

    Voxels outside the original field of view become air (-1024 HU) in images, background in labels.
    """
    from .. import io

    canonical, _code = io.to_canonical(image)
    return io.resample_to_spacing(
        canonical,
        tuple(float(s) for s in spacing_mm),
        is_label=is_label,
        default_value=0.0 if is_label else -1024.0,
    )


def bounding_box(mask: np.ndarray, margin: Sequence[int] | int = 0) -> tuple[slice, ...] | None:
    """Slices of the bounding box of ``mask`` grown by ``margin`` voxels (clipped to the array); None if empty."""
    if not mask.any():
        return None
    margins = [margin] * mask.ndim if isinstance(margin, int) else list(margin)
    out = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        out.append(
            slice(
                max(0, int(hit[0]) - margins[axis]), min(mask.shape[axis], int(hit[-1]) + 1 + margins[axis])
            )
        )
    return tuple(out)


def pad_to_at_least(
    array: np.ndarray, shape: Sequence[int], value: float
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Pad ``array`` symmetrically to at least ``shape``; returns the padded array and the leading pad."""
    pads = [max(0, int(s) - n) for s, n in zip(shape, array.shape, strict=True)]
    if not any(pads):
        return array, (0,) * array.ndim
    before = tuple(p // 2 for p in pads)
    return np.pad(
        array, [(b, p - b) for b, p in zip(before, pads, strict=True)], constant_values=value
    ), before


# -------------------------------------------------------------------------------------- case discovery
@dataclass
class CaseFiles:
    """One training/evaluation case on disk.

    Attributes:
        case_id: name of the case (folder name or nnU-Net case identifier).
        image: CT file (HU).
        labels: label map file.
        mapping: label mapping given for the whole data set (``--label-convention`` or nnU-Net's
            ``dataset.json``); ``None`` means the file's own sidecar/header is used.
    """

    case_id: str
    image: Path
    labels: Path
    mapping: Any = None


def _first_existing(folder: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def _nnunet_mapping(dataset_json: Path) -> Any:
    """LabelMapping from nnU-Net's dataset.json ``labels`` (v2: name -> value; v1: "value" -> name)."""
    data = json.loads(dataset_json.read_text(encoding="utf-8"))
    labels = data.get("labels")
    if not isinstance(labels, dict):
        return None
    if all(isinstance(v, int) for v in labels.values()):
        by_value = {int(v): str(k) for k, v in labels.items()}
    else:
        by_value = {int(k): str(v) for k, v in labels.items()}
    names = {v: n for v, n in by_value.items() if v != 0 and n != "background"}
    unknown = [n for n in names.values() if n not in anatomy.BY_NAME]
    if unknown:
        return None  # not canonical names: the caller needs --label-convention
    return anatomy.LabelMapping(f"nnunet_{dataset_json.parent.name}", names)


def resolve_convention(convention: str | os.PathLike | None) -> Any:
    """A label mapping from a ``--label-convention`` value: a convention name (``verse``, ``canonical``,
    ``totalseg_v2``, ...) or a JSON sidecar file mapping label values to canonical names."""
    from .. import io

    if convention is None:
        return None
    text = str(convention)
    if text.lower().endswith(".json"):
        return anatomy.LabelMapping.load_json(text)
    return io.resolve_mapping(text)


def find_cases(
    data_dir: str | os.PathLike, label_convention: str | os.PathLike | None = None
) -> list[CaseFiles]:
    """Image/label pairs in ``data_dir``.

    Layouts (checked in this order):

    1. nnU-Net: ``imagesTr/<case>_0000.nii.gz`` with ``labelsTr/<case>.nii.gz`` (label names from
       ``dataset.json`` when they are canonical, else from ``label_convention``);
    2. one folder per case: ``<case>/ct.nii.gz`` + ``<case>/labels.nii.gz`` (+ ``labels.json`` sidecar);
    3. ``data_dir`` itself is one case folder.

    Raises:
        InputError: no folder, no pairs, or an image without labels.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(f"Data folder '{root}' does not exist.", "pass the folder that holds the cases")
    mapping = resolve_convention(label_convention)
    cases: list[CaseFiles] = []
    if (root / "imagesTr").is_dir():
        ds_json = root / "dataset.json"
        ds_mapping = mapping
        if ds_mapping is None and ds_json.is_file():
            ds_mapping = _nnunet_mapping(ds_json)
        if ds_mapping is None:
            raise InputError(
                f"nnU-Net data set '{root}' does not name its labels with canonical structure names.",
                "pass --label-convention (e.g. verse, canonical, or a JSON file of value -> canonical name)",
            )
        for image in sorted((root / "imagesTr").glob("*_0000.nii*")):
            case_id = image.name.split("_0000.nii")[0]
            label = _first_existing(root / "labelsTr", (f"{case_id}.nii.gz", f"{case_id}.nii"))
            if label is None:
                raise InputError(
                    f"Image '{image}' has no label file in {root / 'labelsTr'}.",
                    f"add labelsTr/{case_id}.nii.gz or remove the image",
                )
            cases.append(CaseFiles(case_id, image, label, ds_mapping))
    else:
        folders = (
            [root] if _first_existing(root, IMAGE_NAMES) else sorted(p for p in root.iterdir() if p.is_dir())
        )
        for folder in folders:
            image = _first_existing(folder, IMAGE_NAMES)
            if image is None:
                continue
            label = _first_existing(folder, LABEL_NAMES)
            if label is None:
                raise InputError(
                    f"Case folder '{folder}' has an image ({image.name}) but no label map.",
                    f"add one of {', '.join(LABEL_NAMES)} or move the folder out of {root}",
                )
            cases.append(CaseFiles(folder.name, image, label, mapping))
    if not cases:
        raise InputError(
            f"No image/label pairs found in '{root}'.",
            "use one folder per case with ct.nii.gz and labels.nii.gz (+ labels.json), or the nnU-Net layout "
            "imagesTr/<case>_0000.nii.gz + labelsTr/<case>.nii.gz",
        )
    return cases


def read_canonical_labels(path: str | os.PathLike, mapping: Any = None) -> sitk.Image:
    """Label map file -> image of canonical label values (uint8), using its sidecar/header or ``mapping``."""
    from .. import io

    return io.read_labelmap(path, mapping=mapping).canonical().image


# --------------------------------------------------------------------------------------- prepared cases
@dataclass
class PreparedCase:
    """A case on the 1 mm working grid, cropped to its labels plus margin.

    Attributes:
        case_id: name.
        hu: CT in HU, int16, ``(z, y, x)``.
        classes: class index per voxel, uint8, ``(z, y, x)``.
        spacing_mm: voxel spacing (x, y, z).
        class_indices: per class, flat indices of (a random subset of) its voxels, for patch sampling.
    """

    case_id: str
    hu: np.ndarray
    classes: np.ndarray
    spacing_mm: tuple[float, float, float] = WORKING_SPACING_MM
    class_indices: list[np.ndarray] = field(default_factory=list)

    def present_classes(self) -> list[int]:
        return [i for i, idx in enumerate(self.class_indices) if len(idx)]


def prepare_case(
    case: CaseFiles,
    class_names: Sequence[str],
    patch_size: Sequence[int],
    margin_mm: float = CROP_MARGIN_MM,
    max_samples_per_class: int = 20_000,
) -> PreparedCase:
    """Read, reorient, resample to 1 mm, crop to the labelled region plus ``margin_mm``, map to classes."""
    from monai.transforms.utils import map_classes_to_indices

    from .. import io

    image = io.read_image(case.image, dims=3, name="CT")
    hu_img = to_working_grid(image, is_label=False)
    labels = read_canonical_labels(case.labels, case.mapping)
    labels_canonical, _ = io.to_canonical(labels)
    labels_img = io.resample_like(labels_canonical, hu_img, is_label=True)
    hu = sitk.GetArrayFromImage(hu_img)
    canonical = sitk.GetArrayFromImage(labels_img).astype(np.int64)
    classes = class_lookup(class_names)[np.clip(canonical, 0, 255)]
    if not classes.any():
        present = sorted(int(v) for v in np.unique(canonical) if v)
        raise InputError(
            f"Case '{case.case_id}' ({case.labels}) has none of the model's structures "
            f"(label values present: {present or 'none'}).",
            "check the label convention (--label-convention) or the labels.json sidecar of this case",
        )
    margin = [int(round(margin_mm / s)) for s in hu_img.GetSpacing()[::-1]]
    box = bounding_box(classes > 0, margin)
    hu = np.clip(hu[box], -1024, 3071).astype(np.int16)
    classes = classes[box]
    hu, _ = pad_to_at_least(hu, patch_size, -1000)
    classes, _ = pad_to_at_least(classes, patch_size, 0)
    # MONAI subsamples each class's voxel list evenly (deterministic) to bound memory
    indices = map_classes_to_indices(
        classes[None], num_classes=len(class_names), max_samples_per_class=max_samples_per_class
    )
    return PreparedCase(
        case.case_id,
        hu,
        classes,
        tuple(hu_img.GetSpacing()),
        [np.asarray(i, dtype=np.int64) for i in indices],
    )
