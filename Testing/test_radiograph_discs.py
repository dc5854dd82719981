"""Disc-crops design: heat-map targets, disc projection, locator training and order, crops, Grad-CAM, site training."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image

from spineai.cli import main
from spineai.errors import InputError
from spineai.radiograph.data import DISC_COLUMNS, read_radiograph_manifest
from spineai.radiograph.discs import (
    LocatorTrainConfig,
    decode_heatmaps,
    grid_to_input,
    heatmap_targets,
    input_to_grid,
    locate_discs,
    locator_loss,
    project_disc_centres,
    train_disc_locator,
)
from spineai.radiograph.image import prepare_input
from spineai.radiograph.network import LEVEL_COLUMNS, LEVELS, TASK
from spineai.radiograph.predict import load_radiograph_model, read_radiograph
from spineai.radiograph.reader import (
    DISC_ARCHITECTURE,
    DiscCropsEnsemble,
    DiscReaderNet,
    crop_at,
    estimate_pixel_mm,
    paste_crop_map,
)
from spineai.weights import save_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DISC_ROWS = (14.0, 26.0, 38.0, 50.0, 62.0)  # a 80-row synthetic "spine": discs 12 px apart


def _spine(rows: int = 80, cols: int = 64, seed: int = 0, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bright vertebrae with dark disc spaces at DISC_ROWS (+ shift); returns (uint8 image, (5, 2) row/col centres)."""
    rng = np.random.default_rng(seed)
    img = np.full((rows, cols), 60.0) + rng.normal(0, 3, (rows, cols))
    centres = np.array([[r + shift, cols / 2 - 0.5] for r in DISC_ROWS])
    for k in range(6):
        top = int(DISC_ROWS[0] + shift - 12 + 12 * k + 3)
        img[max(0, top) : max(0, top + 8), cols // 2 - 10 : cols // 2 + 10] += 130
    return np.clip(img, 0, 255).astype(np.uint8), centres


def test_heatmap_targets_peak_at_the_disc_centre():
    centres = np.array([[10.0, 20.0], [20.5, 16.0], [np.nan, np.nan], [40.0, 8.0], [50.0, 30.0]])
    t = heatmap_targets(centres, 64, sigma_px=2.0)
    assert t.shape == (5, 64, 64)
    for k in (0, 1, 3, 4):
        assert t[k].sum() == pytest.approx(1.0, abs=1e-5)
        r, c = np.unravel_index(int(np.argmax(t[k])), t[k].shape)
        assert abs(r - centres[k, 0]) <= 0.5 and abs(c - centres[k, 1]) <= 0.5
    assert t[2].sum() == 0.0  # not annotated: no target, no loss
    logits = torch.from_numpy(np.log(t + 1e-9))[None]
    flat = torch.zeros_like(logits)
    assert float(locator_loss(logits, torch.from_numpy(t)[None])) < float(
        locator_loss(flat, torch.from_numpy(t)[None])
    )


def test_letterbox_mapping_is_exact_both_ways():
    img = np.zeros((200, 100), dtype=np.float32)
    img[150, 30] = 1000.0  # a bright dot
    x, box = prepare_input(img, 64)
    g = input_to_grid(np.array([150.0, 30.0]), box)
    r, c = np.unravel_index(int(np.argmax(x)), x.shape)
    assert abs(r - g[0]) <= 1.0 and abs(c - g[1]) <= 1.0
    back = grid_to_input(g, box)
    assert np.allclose(back, [150.0, 30.0], atol=1e-6)


def test_projected_disc_centres_fall_on_the_disc_spaces():
    from spineai.radiograph.phantom import render_radiograph_patient, sample_radiograph_patient

    patient = sample_radiograph_patient(7)
    for lv in LEVELS:
        patient["levels"][lv].update(hnp=0, degeneration=0.0, herniation=None)
    case = render_radiograph_patient(patient, views=("lateral",), image_px=120, spacing_mm=2.5)
    g = case.truth["image"]
    rc = project_disc_centres(
        case.truth["disc_centres_lps_mm"], "lateral", g["centre_lps_mm"], g["pixel_mm"], g["image_px"]
    )
    assert np.all(np.diff(rc[:, 0]) > 0)  # L1-L2 at the top
    img = case.images["lateral"].astype(float)

    def window(r: float, c: float) -> float:
        r0, c0 = int(round(r)), int(round(c))
        return float(img[r0 - 1 : r0 + 2, c0 - 2 : c0 + 3].mean())

    bodies = 0.5 * (rc[1:] + rc[:-1])  # vertebral bodies L2..L5 between the discs
    for k in (1, 2, 3):  # interior discs: darker (less bone) than the bodies above and below
        assert window(*rc[k]) < window(*bodies[k - 1]) and window(*rc[k]) < window(*bodies[k])
    # the intensity profile down the spine has its dip at the projected disc row (within 1.5 pixels)
    for k in (1, 2, 3):
        r, c = rc[k]
        rows = np.arange(int(r) - 4, int(r) + 6)
        profile = [window(float(rr), c) for rr in rows]
        assert abs(rows[int(np.argmin(profile))] - r) <= 1.5


def test_decoding_keeps_cranio_caudal_order():
    size = 48
    rows = [8.0, 16.0, 24.0, 32.0, 40.0]
    maps = np.stack([heatmap_targets(np.array([[r, 20.0]] * 5), size)[0] for r in rows]).astype(np.float64)
    # L2-L3's strongest peak lies above L1-L2 (a confusion); a weaker one sits where it belongs
    wrong = heatmap_targets(np.array([[4.0, 20.0]] * 5), size)[0]
    maps[1] = 0.7 * wrong + 0.3 * maps[1]
    centres, conf, enforced, in_order = decode_heatmaps(maps)
    assert in_order and enforced
    assert abs(centres[1, 0] - 16.0) < 1.0 and np.allclose(
        centres[[0, 2, 3, 4], 0], [8, 24, 32, 40], atol=0.6
    )
    assert np.all((conf > 0) & (conf <= 1)) and conf[1] < conf[0]
    ordered, _c, enforced2, in_order2 = decode_heatmaps(
        np.stack([heatmap_targets(np.array([[r, 20.0]] * 5), size)[0] for r in rows])
    )
    assert in_order2 and not enforced2 and np.allclose(ordered[:, 0], rows, atol=0.6)


def test_locator_trains_its_loss_falls_and_its_discs_come_out_in_order():
    size = 32
    images, centres = [], []
    for i in range(24):
        img, c = _spine(seed=i, shift=int(i % 5) - 2)
        x, box = prepare_input(img, size)
        images.append(x)
        centres.append(input_to_grid(c, box))
    cfg = LocatorTrainConfig(
        channels=(8, 16, 32), image_size=size, epochs=14, batch_size=8, learning_rate=1e-2, augment=False
    )
    locator, history = train_disc_locator(np.stack(images), np.stack(centres), cfg)
    losses = [h["train_loss"] for h in history]
    assert losses[-1] < losses[0] - 0.3
    img, true = _spine(seed=99)
    x, box = prepare_input(img, size)
    found = locate_discs(locator, x, box)
    assert found.in_order and found.input_rc.shape == (5, 2)
    assert np.all(np.diff(found.input_rc[:, 0]) > 0)
    assert np.median(np.abs(found.input_rc[:, 0] - true[:, 0])) < 6.0  # rows within half a disc spacing
    with pytest.raises(InputError, match="prepare_input"):
        locate_discs(locator, np.zeros((16, 16), dtype=np.float32))


def test_crops_are_taken_at_the_disc_and_maps_paste_back_there():
    yy, xx = np.mgrid[0:120, 0:90]
    img = np.exp(-((yy - 70.0) ** 2 + (xx - 40.0) ** 2) / (2 * 1.5**2)).astype(np.float32)  # a bright dot
    for step in (1.0, 2.0, 0.5):
        crop = crop_at(img, (70.0, 40.0), step, 16, standardise=False)
        r, c = np.unravel_index(int(np.argmax(crop)), crop.shape)
        assert (r, c) in {(7, 7), (7, 8), (8, 7), (8, 8)}  # the crop's centre
    off = crop_at(img, (66.0, 40.0), 1.0, 16, standardise=False)  # dot 4 px below the crop centre
    r, _c = np.unravel_index(int(np.argmax(off)), off.shape)
    assert r in (11, 12)
    std = crop_at(img, (70.0, 40.0), 1.0, 16)
    assert abs(float(std.mean())) < 1e-4 and std.std() == pytest.approx(1.0, abs=0.01)
    cam = np.zeros((16, 16), dtype=np.float32)
    cam[7:9, 7:9] = 1.0
    pasted = paste_crop_map(cam, (70.0, 40.0), 2.0, img.shape)
    r, c = np.unravel_index(int(np.argmax(pasted)), pasted.shape)
    assert abs(r - 70) <= 1 and abs(c - 40) <= 1
    assert np.all(pasted[:50] == 0) and np.all(pasted[:, 60:] == 0)  # nothing outside the 30 px crop
    assert estimate_pixel_mm(np.array([[0, 0], [10, 0], [20, 0], [30, 0], [40, 0]]), 35.0) == pytest.approx(
        3.5
    )


def test_reader_level_modes():
    x = torch.randn(6, 1, 48, 48)
    lv = torch.tensor([0, 1, 2, 3, 4, 0])
    for mode in ("outputs", "input"):
        net = DiscReaderNet(width=4, level_mode=mode).eval()
        out = net(x, lv)
        assert out.shape == (6,)
        assert not torch.allclose(net(x[:1].repeat(5, 1, 1, 1), torch.arange(5)), out[:1].repeat(5))
    with pytest.raises(ValueError, match="level_mode"):
        DiscReaderNet(level_mode="both")


@pytest.fixture(scope="module")
def tiny_disc_model(tmp_path_factory):
    torch.manual_seed(0)
    ens = DiscCropsEnsemble(
        n_members=2, reader_width=4, locator_channels=(4, 8, 16), locator_size=64, crop_px=24
    ).eval()
    card = {
        "name": "tiny_discs",
        "task": TASK,
        "architecture": DISC_ARCHITECTURE,
        "config": ens.config,
        "class_names": list(LEVELS),
        "training_data": "unit test (random weights)",
        "extra": {"thresholds": dict.fromkeys(LEVELS, 0.5)},
    }
    path, _ = save_weights(ens, tmp_path_factory.mktemp("w") / "tiny_discs.safetensors", card)
    return path


def test_disc_model_reads_a_radiograph_and_gradcam_stays_in_its_crop(tiny_disc_model, tmp_path):
    model = load_radiograph_model(tiny_disc_model)
    assert model.design == "disc-crops" and len(model.ensemble.members) == 2
    img, centres = _spine(rows=160, cols=120)
    given_xy = np.array([[60.0, 30 + 20 * k] for k in range(5)])
    res = read_radiograph(img, weights=model, disc_centres=given_xy, pixel_mm=1.0, gradcam_level="L3-L4")
    assert [d["level"] for d in res.discs] == list(LEVELS)
    assert (
        res.discs[2]["row"] == 70.0 and res.discs[2]["column"] == 60.0 and res.discs[2]["source"] == "given"
    )
    assert res.discs[0]["scale_source"] == "given" and res.discs[0]["pixel_mm"] == 1.0
    heat = sitk.GetArrayFromImage(res.heatmap)
    assert heat.shape == img.shape and heat.max() > 0
    x0, y0, x1, y1 = res.discs[2]["crop_pixels_x0_y0_x1_y1"]  # 24 crop px of 1.5 mm at 1 mm pixels = 36 px
    assert x1 - x0 == pytest.approx(34.5) and y1 - y0 == pytest.approx(34.5)
    outside = heat.copy()
    outside[int(np.floor(y0)) : int(np.ceil(y1)) + 1, int(np.floor(x0)) : int(np.ceil(x1)) + 1] = 0
    assert np.all(outside == 0)  # Grad-CAM of L3-L4 lands inside L3-L4's crop only
    means = np.mean(res.member_probabilities, axis=0)
    assert np.allclose(means, [res.probabilities[lv] for lv in LEVELS], atol=1e-6)
    # without given centres the locator finds them (random weights here: in order, or a warning says so)
    located = read_radiograph(img, weights=model)
    assert len(located.discs) == 5 and all(0 <= d["confidence"] <= 1 for d in located.discs)
    rows = [d["row"] for d in located.discs]
    assert np.all(np.diff(rows) > 0) or any("order" in w for w in located.warnings)
    assert any("estimated from the disc spacing" in w for w in located.warnings)
    written = res.save(tmp_path / "out")
    summary = json.loads(written["summary"].read_text())
    assert summary["design"] == "disc-crops" and len(summary["discs"]) == 5
    assert written["overlay"].stat().st_size > 1000


def test_disc_positions_in_mm_when_the_spacing_is_known(tiny_disc_model):
    img, _ = _spine(rows=160, cols=120)
    image = sitk.GetImageFromArray(img.astype(np.float32))
    image.SetSpacing((0.5, 0.5))
    image.SetOrigin((10.0, 20.0))
    import spineai.radiograph.image as image_module
    from spineai.radiograph.image import LoadedRadiograph

    loaded = LoadedRadiograph(image=image, source=None, info={"pixel_spacing_known": True})
    original = image_module.load_radiograph
    image_module.load_radiograph = lambda *_a, **_k: loaded
    try:
        res = read_radiograph(
            image, weights=tiny_disc_model, disc_centres=np.array([[60.0, 30 + 20 * k] for k in range(5)])
        )
    finally:
        image_module.load_radiograph = original
    d = res.discs[1]
    assert d["x_mm"] == pytest.approx(10.0 + 0.5 * 60) and d["y_mm"] == pytest.approx(20.0 + 0.5 * 50)
    assert d["scale_source"] == "image spacing" and d["pixel_mm"] == pytest.approx(0.5)


def test_bad_disc_input_is_refused(tiny_disc_model, tmp_path):
    img, _ = _spine(rows=160, cols=120)
    with pytest.raises(InputError, match="disc_centres"):
        read_radiograph(img, weights=tiny_disc_model, disc_centres=np.zeros((4, 2)))
    with pytest.raises(InputError, match="pixel_mm"):
        read_radiograph(img, weights=tiny_disc_model, pixel_mm=-1.0)
    png = tmp_path / "a.png"
    Image.fromarray(img).save(png)
    header = ["patient_id", "image", *LEVEL_COLUMNS, "pixel_mm", *DISC_COLUMNS]
    rows = [
        ["p1", "a.png", 0, 0, 0, 1, 0, "0.2", *range(10)],
        ["p2", "a.png", 0, 0, 0, 1, 0, "", 1, 2, "", "", "", "", "", "", "", ""],
        ["p3", "a.png", 0, 0, 0, 1, 0, "-3", *[""] * 10],
    ]
    with open(tmp_path / "m.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([header, *rows])
    with pytest.raises(InputError) as exc:
        read_radiograph_manifest(tmp_path / "m.csv")
    text = str(exc.value)
    assert "row 3 (patient 'p2')" in text and "all five discs" in text and "pixel_mm -3" in text
    records, _ = read_radiograph_manifest(tmp_path / "m.csv", skip_bad_rows=True)
    assert records[0].pixel_mm == 0.2 and records[0].disc_xy[1].tolist() == [2.0, 3.0]


def _site_manifest(folder, n_patients: int = 8, with_discs: bool = True):
    folder.mkdir(parents=True, exist_ok=True)
    header = ["patient_id", "image", "view", *LEVEL_COLUMNS] + (list(DISC_COLUMNS) if with_discs else [])
    rows = [header]
    for i in range(n_patients):
        img, centres = _spine(rows=80, cols=64, seed=i, shift=int(i % 3) - 1)
        Image.fromarray(img).save(folder / f"p{i}.png")
        labels = [0, 0, int(i % 2), int(i % 3 == 0), 0]
        xy = [v for r, c in centres for v in (f"{c:.1f}", f"{r:.1f}")]
        rows.append([f"p{i}", f"p{i}.png", "ap", *labels] + (xy if with_discs else []))
    with open(folder / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return folder / "manifest.csv"


def test_site_training_with_and_without_disc_positions(tmp_path, tiny_disc_model, capsys):
    manifest = _site_manifest(tmp_path / "site")
    argv = [
        "train",
        "radiograph",
        "--data",
        str(manifest),
        "--folds",
        "2",
        "--epochs",
        "1",
        "--batch-size",
        "8",
    ]
    assert main([*argv, "--out", str(tmp_path / "run1"), "--locator-epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "trained on the manifest's disc positions" in printed and "L5-S1" in printed
    model = load_radiograph_model(tmp_path / "run1" / "model.safetensors")
    assert model.design == "disc-crops" and model.card.architecture == DISC_ARCHITECTURE
    assert "departs from the seed paper" in model.card.extra["departure_from_the_paper"]
    no_discs = _site_manifest(tmp_path / "site2", with_discs=False)
    argv2 = ["train", "radiograph", "--data", str(no_discs), "--folds", "2", "--epochs", "1"]
    assert main([*argv2, "--out", str(tmp_path / "run2"), "--locator", str(tiny_disc_model)]) == 0
    assert str(tiny_disc_model) in capsys.readouterr().out
    assert main([*argv2, "--out", str(tmp_path / "run3"), "--locator-epochs", "1"]) == 1
    assert "disc positions of every image" in capsys.readouterr().err
    assert (
        main(
            [
                "evaluate",
                "radiograph",
                "--data",
                str(manifest),
                "--weights",
                str(tmp_path / "run1" / "model.safetensors"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "disc locator: median confidence" in out and "median distance to the manifest's disc positions" in out
    )
