"""Grad-CAM of the outcome model lands back on the full sagittal volume, where the evidence is.

A hand-set network whose only evidence is a bright blob placed at a known LPS point (the patient's left
L4-L5 foramen of a phantom) must give a heat map, on the input's own grid, that peaks at that point and is
zero outside the ROI: this checks the ROI -> volume resampling (no swapped or flipped axes). The files are
written beside the PNG as NIfTI with the input's geometry.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from spineai.outcome.mri_phantom import generate_sagittal_t2
from spineai.outcome.network import ARCHITECTURE, CLASS_NAMES, TASK, build_network
from spineai.outcome.predict import predict_outcome
from spineai.weights import save_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _blob_detector() -> torch.nn.Module:
    """conv1..conv4 pass one channel through (centre tap 1); conv1 keeps only values above 1.3 (the blob,
    clipped at 1.5 by the ROI normalisation; tissue stays below); P(good) rises with the blob's maximum."""
    net = build_network({"features": [1, 1, 1, 1], "norm": "none", "dropout": 0.0})
    with torch.no_grad():
        for k in range(1, 5):
            conv = getattr(net, f"conv{k}")[0]
            conv.weight.zero_()
            conv.weight[0, 0, 1, 1, 1] = 1.0
            conv.bias.fill_(-1.3 if k == 1 else 0.0)
        net.classifier.weight.copy_(torch.tensor([[0.0], [10.0]]))
        net.classifier.bias.zero_()
    return net.eval()


@pytest.fixture(scope="module")
def case_with_blob():
    case = generate_sagittal_t2(11)
    img = case.image
    centre = np.asarray(case.truth["geometry"]["foramina"]["L4-L5"]["left"]["centre_lps"], dtype=float)
    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    top = float(arr.max())
    idx = np.indices(arr.shape)  # [k, j, i] of the PIR volume
    pts = np.stack([idx[2].ravel(), idx[1].ravel(), idx[0].ravel()], axis=1).astype(float)
    m = np.asarray(img.GetDirection()).reshape(3, 3) @ np.diag(img.GetSpacing())
    lps = pts @ m.T + np.asarray(img.GetOrigin())
    inside = np.all(np.abs(lps - centre) <= 5.0, axis=1).reshape(arr.shape)
    arr[inside] = 5.0 * top
    out = sitk.GetImageFromArray(arr.astype(np.int16) if top * 5 < 32000 else arr)
    out.CopyInformation(img)
    return out, centre


def test_heat_map_peaks_at_the_evidence_on_the_full_volume(tmp_path, case_with_blob):
    image, centre = case_with_blob
    net = _blob_detector()
    card = {
        "name": "blob",
        "task": TASK,
        "architecture": ARCHITECTURE,
        "config": net.config,
        "class_names": list(CLASS_NAMES),
        "training_data": "hand-set test network",
    }
    weights, _ = save_weights(net, tmp_path / "blob.safetensors", card, dtype="float32")
    res = predict_outcome(image, weights=weights, gradcam_class="good")
    heat = res.heatmap
    assert heat.GetSize() == image.GetSize() and heat.GetSpacing() == image.GetSpacing()
    assert heat.GetOrigin() == image.GetOrigin() and heat.GetDirection() == image.GetDirection()
    h = sitk.GetArrayFromImage(heat)
    assert h.max() > 0.5
    peak_idx = np.unravel_index(int(np.argmax(h)), h.shape)
    peak = np.asarray(heat.TransformIndexToPhysicalPoint(tuple(int(v) for v in peak_idx[::-1])))
    # conv4 cells are 8 mm (left-right) x 12.5 mm (cranio-caudal) x 25 mm (antero-posterior)
    assert abs(peak[0] - centre[0]) <= 8.0, (peak, centre)  # on the left, not mirrored to the right
    assert abs(peak[2] - centre[2]) <= 13.0, (peak, centre)
    assert abs(peak[1] - centre[1]) <= 25.0, (peak, centre)
    mirrored = centre * np.array([-1, 1, 1]) + np.array([2 * res.roi["midline_x_mm"], 0, 0])
    mi = heat.TransformPhysicalPointToIndex(tuple(float(v) for v in mirrored))
    assert h[mi[2], mi[1], mi[0]] < 0.2 * h.max()  # the other side's foramen is cold
    # zero outside the ROI box
    lo, hi = np.asarray(res.roi["lower_lps_mm"]), np.asarray(res.roi["upper_lps_mm"])
    far = np.asarray(heat.TransformIndexToPhysicalPoint((0, 0, 0)))
    assert np.any((far < lo - 5) | (far > hi + 5)) and h[0, 0, 0] == 0.0
    written = res.save(tmp_path / "out")
    assert (
        written["gradcam"].name == "gradcam.nii.gz" and written["overlay"].parent == written["gradcam"].parent
    )
    back = sitk.ReadImage(str(written["gradcam"]))
    assert back.GetSize() == image.GetSize()
    assert np.allclose(back.GetSpacing(), image.GetSpacing()) and np.allclose(
        back.GetOrigin(), image.GetOrigin()
    )
