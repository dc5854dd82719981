"""Segment lumbosacral bones, discs, dural sac and nerve roots on CT with the SPINECT U-Net.

Pipeline of :func:`segment`:

1. read and check the input (3D, finite, plausible spacing, CT in Hounsfield units, big enough);
2. canonical orientation, 1 mm resampling (linear), the model card's intensity standardisation;
3. sliding-window inference (MONAI ``SlidingWindowInferer``), then argmax:

   - ``mode="paper"``: the paper's "combined algorithm" (Table 1): windows of the training patch size
     (32 x 64 x 64) tiled without overlap (``overlap=0``, ``mode="constant"``); each window's softmax is
     added into a summed-probability volume at its location and every voxel takes the class of largest
     sum;
   - in both modes the softmax is divided by the class weights the network was trained with, when its card
     records them (``class_weight_correction``, on by default; see :func:`predict_classes`), so the
     up-weighted thin roots are not drawn too thick;
   - ``mode="fast"`` (default): the volume is first cropped to the bony region (voxels above 250 HU inside
     the body, 25 mm margin), which drops the air and the anterior abdomen; windows then cover that
     crop with as few tiles as fit in memory (at most 96 x 160 x 160 voxels each, sizes multiples of 16),
     overlapping only as much as needed and blended with Gaussian weights; on CUDA the network runs under
     bf16 autocast (``precision``);

   - ``mirror_tta=True`` (off by default) also passes every window mirrored left-right and averages;

4. optional post-processing (on by default): largest connected component per structure, then each lumbar
   vertebra named by the discs above and below it (a body between ``disc_L3_L4`` and ``disc_L4_L5`` is L4,
   its posterior elements follow it along the bone), which repairs a vertebra whose name the network
   spread over its neighbour;
5. the 1 mm label map is resampled (nearest neighbour) onto the input's own grid.

:meth:`SegmentationResult.save` writes ``segmentation.seg.nrrd`` (named, coloured segments), ``labels.nii.gz``
+ ``labels.json``, ``segmentation.json`` (model, structures, volumes, warnings, timings) and smoothed
surfaces ``surfaces/<structure>.vtp`` (LPS, mm).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from .. import anatomy
from ..errors import InputError, WeightsError
from ..progress import report
from .data import (
    IntensityNormalization,
    bounding_box,
    check_class_names,
    class_values,
    left_right_permutation,
    to_working_grid,
)
from .network import ARCHITECTURE, build_network, fold_batch_norm_

#: task name in model cards of this model
TASK = "ct_segmentation"
#: name of the shipped default model (``spineai/resources/models/<name>.json``)
DEFAULT_MODEL = "spinect_ct_demo"
MODES = ("fast", "paper")
#: numeric precision of the network: "auto" (bf16 autocast on CUDA, float32 on the CPU), or forced. bf16 on
#: the development CPU (AVX512-BF16) was no faster than float32 once the batch norms were folded.
PRECISIONS = ("auto", "float32", "bf16")
#: largest window of the fast mode (voxels, z y x); bounds memory
FAST_MAX_WINDOW: tuple[int, int, int] = (96, 160, 160)
#: HU above which a voxel counts as bone when locating the spine region (fast mode)
BONE_HU = 250.0
#: margin around the bony region kept by the fast mode (mm)
REGION_MARGIN_MM = 25.0
#: smallest volume (mm3) for a predicted structure to count as present in the field of view
MIN_PRESENT_MM3 = 100.0
#: above this size (bytes, float32) the summed-probability volume is accumulated in float16
ACCUMULATOR_LIMIT_BYTES = 1 << 30
#: plausible voxel spacing (mm)
SPACING_RANGE_MM = (0.05, 10.0)


# ---------------------------------------------------------------------------------------------- checks
def check_ct_image(image: sitk.Image, name: str = "input", min_extent_mm: float = 16.0) -> None:
    """Refuse inputs the CT model cannot segment, with the reason and the fix.

    Checks: 3D scalar image; finite values; spacing within 0.05..10 mm; at least ``min_extent_mm`` along
    every axis; Hounsfield units of a CT (some voxels below -100 HU: fat or air; some above 300 HU: bone).
    An MRI (no negative values), a radiograph (2D) or a CT saved without its rescale slope/intercept fails
    the last check.
    """
    from .. import io

    if image.GetDimension() != 3:
        raise InputError(
            f"{name} is a {image.GetDimension()}D image; the CT model needs a 3D CT volume.",
            "load the lumbosacral CT series (a radiograph belongs to 'spineai radiograph')",
        )
    io.validate_image(image, dims=3, name=name)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"{name} has {image.GetNumberOfComponentsPerPixel()} components per voxel (colour?).",
            "use the original greyscale CT in Hounsfield units",
        )
    spacing = image.GetSpacing()
    if any(not (SPACING_RANGE_MM[0] <= s <= SPACING_RANGE_MM[1]) for s in spacing):
        raise InputError(
            f"{name} has an implausible voxel spacing {tuple(round(s, 4) for s in spacing)} mm "
            f"(expected {SPACING_RANGE_MM[0]}..{SPACING_RANGE_MM[1]} mm).",
            "fix the spacing in the file header (e.g. Slicer's Volumes module > Volume Information) or re-export "
            "the CT from DICOM",
        )
    extent = [n * s for n, s in zip(image.GetSize(), spacing, strict=True)]
    if min(extent) < min_extent_mm or min(image.GetSize()) < 2:
        raise InputError(
            f"{name} is too small for the network: it spans {tuple(round(e, 1) for e in extent)} mm "
            f"({image.GetSize()} voxels); at least {min_extent_mm:.0f} mm along every axis is needed.",
            "use a CT covering L3 to the sacrum (typically 150 mm or more cranio-caudally)",
        )
    array = sitk.GetArrayViewFromImage(image)
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(array.size - finite.sum())
        raise InputError(
            f"{name} contains {bad} NaN or infinite voxel values.",
            "re-export the CT; values must be finite Hounsfield units",
        )
    sample = array.ravel()[:: max(1, array.size // 2_000_000)].astype(np.float32)
    below = float((sample < -100).mean())
    above = float((sample > 300).mean())
    if below < 0.002:
        lo, hi = float(sample.min()), float(sample.max())
        raise InputError(
            f"{name} does not look like a CT in Hounsfield units: its intensities run from {lo:.0f} to {hi:.0f} "
            "with no fat or air (a CT has air near -1000 HU and fat near -100 HU). It may be an MRI or a "
            "radiograph, or a CT stored without its rescale slope/intercept.",
            "give the CT model a CT series (MRI goes to 'spineai grade'); for raw CT values apply the DICOM "
            "rescale (HU = slope x value + intercept)",
        )
    if above < 0.0005:
        raise InputError(
            f"{name} has almost no voxels above 300 HU, so no bone is in view (or it is not a CT).",
            "use a lumbosacral CT that includes the vertebrae and sacrum",
        )


# ---------------------------------------------------------------------------------------------- model
@dataclass
class LoadedModel:
    """A network ready for inference with its card and input contract.

    A torch network is prepared for inference when wrapped: eval mode, batch norms folded into their
    convolutions (:func:`~spineai.segmentation.network.fold_batch_norm_`) and, on the CPU, weights stored
    channels-last (NDHWC), the layout oneDNN convolves fastest. Each cuts the CPU time by about a quarter
    on the development machine, with the same labels.
    """

    network: Any
    card: Any
    weights_path: Path
    class_names: tuple[str, ...]
    intensity: IntensityNormalization
    patch_size: tuple[int, int, int]
    device: str

    def __post_init__(self) -> None:
        import torch

        if isinstance(self.network, torch.nn.Module):
            fold_batch_norm_(self.network)
            if self.device == "cpu":
                self.network.to(memory_format=torch.channels_last_3d)

    @property
    def class_weights(self) -> np.ndarray | None:
        """The cross-entropy class weights the network was trained with (model card), in class order, or
        ``None`` when the card does not record them."""
        recorded = (getattr(self.card, "training_recipe", None) or {}).get("class_weights")
        if not isinstance(recorded, dict) or any(n not in recorded for n in self.class_names):
            return None
        return np.array([float(recorded[n]) for n in self.class_names], dtype=np.float32)

    def logit_offsets(self, class_weight_correction: bool = True) -> np.ndarray | None:
        """``log(w_c)`` per class, to subtract from the logits (see :func:`predict_classes`), or ``None``."""
        weights = self.class_weights if class_weight_correction else None
        if weights is None or not np.all(weights > 0):
            return None
        return np.log(weights).astype(np.float32)


def resolve_precision(precision: str, device: str) -> str:
    """``"float32"`` or ``"bf16"`` for ``precision`` in :data:`PRECISIONS` (see there)."""
    if precision not in PRECISIONS:
        raise InputError(f"Unknown precision '{precision}'.", f"use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bf16" if device.startswith("cuda") else "float32"


def resolve_device(device: str | None = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when available else ``"cpu"``; an unavailable ``"cuda"`` is an InputError."""
    import torch

    choice = (device or "auto").lower()
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(
            "CUDA was requested but no CUDA GPU is available to PyTorch.",
            "run with --device cpu, or install a CUDA build of PyTorch on a machine with a GPU",
        )
    if choice != "cpu" and not choice.startswith("cuda"):
        raise InputError(f"Unknown device '{device}'.", "use cpu, cuda or auto")
    return choice


def default_weights_path() -> Path:
    """Weights file of the shipped default model (:data:`DEFAULT_MODEL`)."""
    from ..weights import MODELS_DIR, load_card, weights_path_for

    card_file = MODELS_DIR / f"{DEFAULT_MODEL}.json"
    if not card_file.is_file():
        raise WeightsError(
            f"No shipped CT segmentation model: {card_file} is not installed.\n"
            "  Fix: pass --weights PATH to weights trained with 'spineai train segmentation', or create the demo "
            "weights with 'python benchmarks/train_demo_segmentation.py'."
        )
    return weights_path_for(load_card(card_file), MODELS_DIR)


def load_segmentation_model(
    weights: str | os.PathLike | None = None, device: str | None = "auto"
) -> LoadedModel:
    """Verified CT segmentation network from ``weights`` (``.safetensors`` with its card, or the card).

    ``None`` loads the shipped default model. Raises :class:`WeightsError` for a missing, truncated,
    tampered or mismatched file.
    """
    from ..weights import WEIGHTS_SUFFIX, check_card, load_card, load_into, weights_path_for

    dev = resolve_device(device)
    if weights is None:
        weights_path = default_weights_path()
    else:
        p = Path(weights)
        weights_path = weights_path_for(load_card(p), p.parent) if p.suffix == ".json" else p
        if weights_path.suffix != WEIGHTS_SUFFIX:
            raise WeightsError(
                f"Weights file '{weights_path}' is not a .safetensors file.\n"
                "  Fix: pass the .safetensors file written by 'spineai train segmentation' (its .json card "
                "beside it); pickled .pt/.pth files are refused."
            )
    card = load_card(weights_path)
    check_card(card, TASK, ARCHITECTURE, source=str(weights_path))
    try:
        class_names = check_class_names(card.class_names)
    except InputError as exc:
        raise WeightsError(f"Model card of '{weights_path}' lists invalid classes: {exc.problem}") from None
    network = build_network(card.config, init=False)
    load_into(network, weights_path, card)
    network.eval().to(dev)
    contract = card.input or {}
    try:
        intensity = IntensityNormalization.from_dict(contract["intensity"])
        patch = tuple(int(v) for v in contract["patch_size"])
    except (KeyError, TypeError, ValueError):
        raise WeightsError(
            f"Model card of '{weights_path}' lacks its input contract (input.intensity, input.patch_size).\n"
            "  Fix: use the card written together with the weights by 'spineai train segmentation'."
        ) from None
    return LoadedModel(network, card, Path(weights_path), class_names, intensity, patch, dev)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------- sliding window
def fast_windows(
    shape: Sequence[int], divisor: int, max_window: Sequence[int] = FAST_MAX_WINDOW
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Window size and per-axis overlap covering ``shape`` with the fewest windows of at most ``max_window``.

    Window sizes are multiples of ``divisor``; the overlap is the smallest that makes the tiles meet.
    """
    window, overlap = [], []
    for size, largest in zip(shape, max_window, strict=True):
        largest = max(divisor, (int(largest) // divisor) * divisor)
        count = max(1, math.ceil(size / largest))
        w = min(largest, int(math.ceil(math.ceil(size / count) / divisor) * divisor))
        w = max(w, divisor)
        if count == 1 or w >= size:
            window.append(w)
            overlap.append(0.0)
            continue
        # MONAI steps by int(w * (1 - overlap)); aim half a voxel above the step so rounding cannot shorten it
        step = math.ceil((size - w) / (count - 1))
        window.append(w)
        overlap.append(max(0.0, 1.0 - (step + 0.5) / w))
    return tuple(window), tuple(overlap)


def count_windows(shape: Sequence[int], window: Sequence[int], overlap: Sequence[float]) -> int:
    """Number of windows MONAI's sliding window visits for ``shape``."""
    total = 1
    for size, w, o in zip(shape, window, overlap, strict=True):
        size = max(size, w)
        step = w if w == size else max(1, int(w * (1 - o)))
        total *= max(1, math.ceil((size - w) / step) + 1)
    return total


def predict_classes(
    network: Any,
    volume: np.ndarray,
    window: Sequence[int],
    overlap: float | Sequence[float] = 0.0,
    blend: str = "constant",
    device: str = "cpu",
    sw_batch_size: int = 1,
    amp: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
    logit_offsets: Sequence[float] | np.ndarray | None = None,
    mirror_permutation: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Class index per voxel by sliding-window inference and argmax of the summed softmax.

    Args:
        network: model returning logits ``(B, C, D, H, W)``.
        volume: standardised image ``(z, y, x)`` float32.
        window: window size (z, y, x) in voxels.
        overlap: overlap fraction(s) between windows (0 = tiles, the paper's stride = window).
        blend: ``"constant"`` (plain sum: the paper's combined algorithm) or ``"gaussian"``.
        device: where the network runs.
        sw_batch_size: windows per forward pass.
        amp: bf16 autocast (default: on for CUDA, off on the CPU).
        progress: called with (windows done, windows total).
        logit_offsets: per class, subtracted from the logits before the softmax. With ``log(w_c)`` of the
            class weights of a weighted cross-entropy this undoes the weighting's shift of the decision
            boundaries towards the up-weighted (small) classes: a network trained with weights ``w_c``
            estimates posteriors proportional to ``w_c p(c | x)``, so dividing by ``w_c`` restores
            ``p(c | x)`` (prior correction). ``None``: the raw softmax, as the paper.
        mirror_permutation: left-right test-time augmentation. Each window is also passed mirrored across
            its x axis (the patient's left-right axis on the canonical LPS grid), the mirrored output is
            mirrored back, its channels are permuted by this class index -> mirror class index map
            (:func:`~spineai.segmentation.data.left_right_permutation`: ``root_L5_left`` <-> ``root_L5_right``)
            and the two softmaxes are averaged. Twice the network time. ``None``: no augmentation.

    Returns:
        uint8 class indices ``(z, y, x)``.
    """
    import torch
    from monai.inferers import SlidingWindowInferer

    overlaps = tuple(overlap) if isinstance(overlap, Sequence) else (float(overlap),) * 3
    total = count_windows(volume.shape, window, overlaps)
    done = [0]
    use_amp = (device.startswith("cuda")) if amp is None else amp

    # MONAI accumulates in the input's dtype: half precision halves the summed-probability volume, used
    # when it would exceed ACCUMULATOR_LIMIT_BYTES in single precision (argmax ties aside, same result)
    classes = getattr(network, "config", {}).get("out_channels", None)
    half = classes is not None and 4 * int(classes) * int(np.prod(volume.shape)) > ACCUMULATOR_LIMIT_BYTES
    out_dtype = torch.float16 if half else torch.float32

    offsets = (
        None
        if logit_offsets is None
        else torch.as_tensor(np.asarray(logit_offsets, dtype=np.float32)).view(1, -1, 1, 1, 1).to(device)
    )

    mirror = None
    if mirror_permutation is not None:
        mirror = torch.as_tensor(np.asarray(mirror_permutation, dtype=np.int64))
        if classes is not None and mirror.numel() != int(classes):
            raise ValueError(f"mirror_permutation has {mirror.numel()} entries for a {classes}-class network")

    def probabilities(x: torch.Tensor) -> torch.Tensor:
        if use_amp:
            with torch.autocast("cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16):
                logits = network(x)
        else:
            logits = network(x)
        logits = logits.float() if offsets is None else logits.float() - offsets
        return torch.softmax(logits, dim=1)

    def softmax_network(x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        prob = probabilities(x)
        if mirror is not None:
            # output channel c of the mirrored window is the mirror class of c: index it back
            mirrored = torch.flip(probabilities(torch.flip(x, dims=[4])), dims=[4])
            prob = 0.5 * (prob + mirrored[:, mirror.to(mirrored.device)])
        done[0] += x.shape[0]
        if progress is not None:
            progress(min(done[0], total), total)
        return prob.to(out_dtype)

    inferer = SlidingWindowInferer(
        roi_size=tuple(int(w) for w in window),
        sw_batch_size=sw_batch_size,
        overlap=overlaps,
        mode=blend,
        padding_mode="constant",
        cval=float(volume.min()),
        sw_device=device,
        device="cpu",
    )
    x = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None, None].to(out_dtype)
    with torch.inference_mode():
        summed = inferer(x, softmax_network)
    return summed[0].argmax(dim=0).to(torch.uint8).numpy()


def locate_spine_region(
    hu: np.ndarray, spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0), margin_mm: float = REGION_MARGIN_MM
) -> tuple[slice, ...]:
    """Bounding box (slices, z y x) of the bony region inside the body, grown by ``margin_mm``.

    Body: voxels above -500 HU, largest connected component. Bone: body voxels above 250 HU in
    components of at least 500 mm3 (drops calcifications and contrast specks). Falls back to the body box,
    then to the whole volume.
    """
    from scipy import ndimage

    full = tuple(slice(0, n) for n in hu.shape)
    voxel_mm3 = float(np.prod(spacing_zyx))
    body = hu > -500
    labelled, count = ndimage.label(body)
    if count == 0:
        return full
    if count > 1:
        sizes = np.bincount(labelled.ravel())
        sizes[0] = 0
        body = labelled == int(np.argmax(sizes))
    bone = (hu > BONE_HU) & body
    labelled, count = ndimage.label(bone)
    if count:
        sizes = np.bincount(labelled.ravel())
        keep = np.flatnonzero(sizes * voxel_mm3 >= 500.0)
        keep = keep[keep != 0]
        bone = np.isin(labelled, keep) if keep.size else bone
    margin = [int(math.ceil(margin_mm / s)) for s in spacing_zyx]
    box = bounding_box(bone, margin) or bounding_box(body, margin)
    return box if box is not None else full


# --------------------------------------------------------------------------------------------- result
@dataclass
class SegmentationResult:
    """Output of :func:`segment`.

    Attributes:
        labels: canonical label values (uint8) on the input's own grid (LPS physical frame).
        working_labels: the same on the 1 mm canonical grid the network saw.
        class_names: the model's classes (background first).
        structures: canonical names of the structures predicted (>= 100 mm3), cranial to caudal.
        volumes_mm3: predicted volume of every present structure (mm3, on the 1 mm grid).
        warnings: plain-words warnings (e.g. L5 or S1 not in the field of view).
        model: name, version, weights path and SHA-256 of the model used.
        mode: ``"fast"`` or ``"paper"``.
        timings_s: seconds per step.
    """

    labels: sitk.Image
    working_labels: sitk.Image
    class_names: tuple[str, ...]
    structures: list[str]
    volumes_mm3: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    mode: str = "fast"
    timings_s: dict[str, float] = field(default_factory=dict)

    def has(self, structure: str) -> bool:
        """Whether ``structure`` (canonical name) was predicted."""
        return structure in self.structures

    def require_levels(self, levels: Iterable[str]) -> None:
        """Raise :class:`InputError` unless every vertebra of ``levels`` was found.

        ``levels`` are vertebrae (``"L5"``, ``"S1"``) or intervertebral levels (``"L5-S1"``).
        """
        needed: list[str] = []
        for level in levels:
            for part in str(level).replace("/", "-").split("-"):
                if part and part not in needed:
                    needed.append(part)
        missing = [v for v in needed if not self.has(v)]
        if missing:
            raise InputError(
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in the segmented field of view "
                f"(found: {', '.join(self.structures) or 'nothing'}).",
                "use a CT whose field of view covers L3 to the sacrum (S1), or measure at a level that is in view",
            )

    def mapping(self) -> anatomy.LabelMapping:
        """Canonical label values of the model's classes -> names (the ``labels.json`` sidecar)."""
        return anatomy.LabelMapping(
            anatomy.CANONICAL.source, {anatomy.structure(n).label: n for n in self.class_names[1:]}
        )

    def three_class(self) -> sitk.Image:
        """The paper's 3-class map (background, bone, nerve) of :attr:`labels` (``anatomy.to_three_class``)."""
        array = anatomy.to_three_class(sitk.GetArrayViewFromImage(self.labels))
        out = sitk.GetImageFromArray(np.asarray(array).astype(np.uint8))
        out.CopyInformation(self.labels)
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (model, mode, structures with volumes, warnings, timings)."""
        return {
            "schema": "spineai.segmentation.result/1",
            "model": self.model,
            "mode": self.mode,
            "structures": {
                n: {"label": anatomy.structure(n).label, "volume_mm3": round(self.volumes_mm3[n], 1)}
                for n in self.structures
            },
            "warnings": list(self.warnings),
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
            "frame": "LPS",
            "intended_use": "research use only, not for clinical decisions",
        }

    def surfaces(self, kernel_mm: float = 1.5, smoothing: float = 0.5) -> dict[str, Any]:
        """Smoothed surfaces (vtkPolyData, LPS mm) of every present structure (see ``surfaces.py``)."""
        from .surfaces import label_surfaces

        names = {anatomy.structure(n).label: n for n in self.structures}
        return label_surfaces(self.labels, names, kernel_mm=kernel_mm, smoothing=smoothing)

    def save(
        self,
        out_dir: str | os.PathLike,
        overwrite: bool = False,
        surfaces: bool = True,
        surface_formats: Sequence[str] = ("vtp",),
    ) -> dict[str, Path]:
        """Write the result files into ``out_dir`` (new or empty unless ``overwrite``); returns name -> path."""
        from .. import io
        from ..outputs import prepare_output_dir, write_json
        from .surfaces import write_surfaces

        folder = prepare_output_dir(out_dir, overwrite=overwrite)
        labelmap = io.LabelMap(self.labels, self.mapping())
        written: dict[str, Path] = {}
        report(92.0, "writing segmentation files")
        written["segmentation"] = Path(
            io.write_seg_nrrd(labelmap, folder / "segmentation.seg.nrrd", overwrite=overwrite)
        )
        written["labels"], written["labels_json"] = (
            Path(p) for p in io.write_labelmap_nifti(labelmap, folder / "labels.nii.gz", overwrite=overwrite)
        )
        written["summary"] = write_json(folder / "segmentation.json", self.summary(), overwrite=overwrite)
        if surfaces and self.structures:
            report(95.0, "building surface models")
            paths = write_surfaces(
                self.surfaces(), folder / "surfaces", formats=surface_formats, overwrite=overwrite
            )
            for name, files in paths.items():
                for f in files:
                    written[f"surface {name}{f.suffix}"] = f
        report(100.0, "segmentation written")
        return written


# ---------------------------------------------------------------------------------------------- segment
def _read_input(image_or_path: Any) -> tuple[sitk.Image, str]:
    if isinstance(image_or_path, sitk.Image):
        return image_or_path, "input image"
    from .. import io

    path = Path(image_or_path)
    if not path.exists():
        raise InputError(f"Input '{path}' does not exist.", "check the path of the CT file or DICOM folder")
    return io.read_image(path, dims=3, name="CT"), f"input '{path.name}'"


def segment(
    image_or_path: sitk.Image | str | os.PathLike,
    weights: str | os.PathLike | None = None,
    device: str | None = "auto",
    mode: str = "fast",
    postprocess: bool = True,
    require_levels: Iterable[str] | None = None,
    model: LoadedModel | None = None,
    class_weight_correction: bool = True,
    mirror_tta: bool = False,
    precision: str = "auto",
) -> SegmentationResult:
    """Segment a lumbosacral CT.

    Args:
        image_or_path: CT (SimpleITK image in HU, or a file / DICOM folder path).
        weights: ``.safetensors`` weights (card beside) or card; ``None``: the shipped default model.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        mode: ``"fast"`` (default) or ``"paper"`` (the paper's combined algorithm, see module docstring).
        postprocess: keep only the largest connected component of each structure, then name each lumbar
            vertebra by the discs above and below it
            (:func:`~spineai.segmentation.postprocess.relabel_vertebrae_by_discs`).
        require_levels: vertebrae or levels that must be in view (e.g. ``("L5", "S1")``); missing ones raise
            :class:`InputError` after inference.
        model: an already loaded model (overrides ``weights`` and ``device``).
        class_weight_correction: divide the network's probabilities by the class weights it was trained
            with (recorded in its card; :func:`predict_classes`), which stops the up-weighted thin roots
            from growing too thick; ``False`` gives the raw softmax, as the paper. Cards without recorded
            weights are used raw.
        mirror_tta: left-right test-time augmentation: average the network's output on the CT and on its
            mirror image (left and right structures swapped back; :func:`predict_classes`). Slightly better
            nerve roots at twice the inference time; off by default.
        precision: ``"auto"`` (default: bf16 autocast on CUDA, float32 on the CPU), ``"float32"`` or
            ``"bf16"`` (:data:`PRECISIONS`).

    Returns:
        :class:`SegmentationResult` with canonical labels on the input's grid.
    """
    from .plausibility import plausibility_warnings
    from .postprocess import keep_largest_component, relabel_vertebrae_by_discs

    if mode not in MODES:
        raise InputError(f"Unknown segmentation mode '{mode}'.", f"use one of {', '.join(MODES)}")
    resolve_precision(precision, "cpu")  # an unknown precision fails before any work
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    report(0.0, "reading CT")
    image, name = _read_input(image_or_path)
    check_ct_image(image, name)
    timings["read_and_check"] = time.perf_counter() - t0

    t = time.perf_counter()
    loaded = model if model is not None else load_segmentation_model(weights, device)
    timings["load_model"] = time.perf_counter() - t

    t = time.perf_counter()
    report(5.0, "resampling to 1 mm")
    work = to_working_grid(sitk.Cast(image, sitk.sitkFloat32), is_label=False)
    hu = sitk.GetArrayFromImage(work)
    spacing_zyx = tuple(work.GetSpacing())[::-1]
    box = locate_spine_region(hu, spacing_zyx) if mode == "fast" else tuple(slice(0, n) for n in hu.shape)
    volume = loaded.intensity.apply(hu[box])
    timings["preprocess"] = time.perf_counter() - t

    t = time.perf_counter()
    divisor = loaded.network.divisor
    if mode == "paper":
        window, overlap, blend = loaded.patch_size, (0.0, 0.0, 0.0), "constant"
    else:
        window, overlap = fast_windows(volume.shape, divisor)
        blend = "gaussian"

    def progress(done: int, total: int) -> None:
        report(10.0 + 75.0 * done / max(total, 1), f"segmenting (window {done}/{total})")

    offsets = loaded.logit_offsets(class_weight_correction)
    used_precision = resolve_precision(precision, loaded.device)
    classes = predict_classes(
        loaded.network,
        volume,
        window,
        overlap,
        blend,
        device=loaded.device,
        progress=progress,
        logit_offsets=offsets,
        mirror_permutation=left_right_permutation(loaded.class_names) if mirror_tta else None,
        amp=used_precision == "bf16",
    )
    timings["inference"] = time.perf_counter() - t

    t = time.perf_counter()
    if postprocess:
        report(86.0, "post-processing")
        classes = keep_largest_component(classes)
    full = np.zeros(hu.shape, dtype=np.uint8)
    full[box] = class_values(loaded.class_names)[classes]
    if postprocess:
        full = relabel_vertebrae_by_discs(full)  # 1 mm isotropic LPS grid: the head at high axis-0 indices
    working_labels = sitk.GetImageFromArray(full)
    working_labels.CopyInformation(work)
    from .. import io

    labels = io.resample_like(working_labels, image, is_label=True)
    labels = sitk.Cast(labels, sitk.sitkUInt8)
    timings["postprocess_and_resample"] = time.perf_counter() - t

    voxel_mm3 = float(np.prod(work.GetSpacing()))
    counts = np.bincount(full.ravel(), minlength=256)
    volumes = {n: float(counts[anatomy.structure(n).label]) * voxel_mm3 for n in loaded.class_names[1:]}
    present = [n for n in loaded.class_names[1:] if volumes[n] >= MIN_PRESENT_MM3]
    # on the working grid (the head at high axis-0 indices); stray specks of a raw output are not anatomy
    warnings = plausibility_warnings(full if postprocess else keep_largest_component(full), spacing_zyx)
    for level in ("L5", "S1"):
        if level in loaded.class_names and level not in present:
            warnings.append(
                f"{level} was not found in the field of view; measurements at the "
                f"{'L4-L5 and ' if level == 'L5' else ''}L5-S1 level{'s' if level == 'L5' else ''} are not possible."
            )
    card = loaded.card
    result = SegmentationResult(
        labels=labels,
        working_labels=working_labels,
        class_names=loaded.class_names,
        structures=present,
        volumes_mm3={n: volumes[n] for n in present},
        warnings=warnings,
        model={
            "name": card.name,
            "version": card.version,
            "weights": str(loaded.weights_path),
            "sha256": card.sha256,
            "device": loaded.device,
            "class_weight_correction": offsets is not None,
            "mirror_tta": bool(mirror_tta),
            "precision": used_precision,
        },
        mode=mode,
        timings_s={**timings, "total": time.perf_counter() - t0},
    )
    report(90.0, "segmentation done")
    if require_levels:
        result.require_levels(require_levels)
    return result
