"""End to end through the command-line parsers: train outcome -> evaluate outcome -> outcome (with Grad-CAM)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import SimpleITK as sitk

from spineai.outcome.cli import add_evaluate_parser, add_outcome_parser, add_train_parser
from spineai.outcome.mri_phantom import generate_sagittal_t2, write_sagittal_case


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spineai")
    sub = parser.add_subparsers(dest="command")
    add_outcome_parser(sub)
    train = sub.add_parser("train").add_subparsers(dest="task")
    add_train_parser(train)
    evaluate = sub.add_parser("evaluate").add_subparsers(dest="task")
    add_evaluate_parser(evaluate)
    return parser


def _run(parser, argv) -> int:
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantoms")
    for seed in range(500, 512):
        case = generate_sagittal_t2(seed, spacing_mm=(4.0, 1.5, 1.5), slice_subsamples=1)
        write_sagittal_case(case, folder / f"case_{seed}")
    return folder


def test_help_texts_carry_an_example():
    parser = _parser()
    for argv in (["outcome", "--help"], ["train", "outcome", "--help"], ["evaluate", "outcome", "--help"]):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(argv)
        assert exc.value.code == 0


def test_train_evaluate_predict(tmp_path, cohort, capsys):
    parser = _parser()
    run = tmp_path / "run"
    assert (
        _run(
            parser,
            [
                "train",
                "outcome",
                "--data",
                str(cohort),
                "--out",
                str(run),
                "--epochs",
                "1",
                "--val-fraction",
                "0.34",
                "--roi",
                "truth",
            ],
        )
        == 0
    )
    assert (run / "model.safetensors").is_file() and (run / "model.json").is_file()
    card = json.loads((run / "model.json").read_text())
    assert card["task"] == "tesi_outcome" and card["training_data"]["cases"] == 12
    # a second run into the same folder is refused, nothing overwritten
    sha = card["sha256"]
    assert _run(parser, ["train", "outcome", "--data", str(cohort), "--out", str(run), "--epochs", "1"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert json.loads((run / "model.json").read_text())["sha256"] == sha

    report_dir = tmp_path / "eval"
    assert (
        _run(
            parser,
            [
                "evaluate",
                "outcome",
                "--data",
                str(cohort),
                "--weights",
                str(run / "model.safetensors"),
                "--out",
                str(report_dir),
                "--threshold",
                "0.5",
            ],
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "DeLong" in out and "accuracy" in out
    report = json.loads((report_dir / "evaluation.json").read_text())
    assert report["n"] + len(report["excluded"]) == 12
    assert report["threshold"] == {"value": 0.5, "source": "given"}
    assert 0.0 <= report["auc"]["ci_low"] <= report["auc"]["auc"] <= report["auc"]["ci_high"] <= 1.0
    assert (report_dir / "roc.png").stat().st_size > 1000
    lines = (report_dir / "predictions.csv").read_text().splitlines()
    assert lines[0] == "case_id,label,probability_good" and len(lines) == report["n"] + 1

    image_path = cohort / "case_500" / "t2_sagittal.nii.gz"
    pred_dir = tmp_path / "pred"
    assert (
        _run(
            parser,
            [
                "outcome",
                str(image_path),
                "-o",
                str(pred_dir),
                "--weights",
                str(run / "model.safetensors"),
                "--gradcam-class",
                "poor",
            ],
        )
        == 0
    )
    summary = json.loads((pred_dir / "outcome.json").read_text())
    assert 0.0 <= summary["probability_good_outcome"] <= 1.0 and summary["gradcam_class"] == "poor_outcome"
    assert summary["intended_use"].startswith("Research use only")
    image = sitk.ReadImage(str(image_path))
    heat = sitk.ReadImage(str(pred_dir / "gradcam.nii.gz"))
    assert heat.GetSize() == image.GetSize()
    np.testing.assert_allclose(heat.GetSpacing(), image.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(heat.GetOrigin(), image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(heat.GetDirection(), image.GetDirection(), atol=1e-6)
    h = sitk.GetArrayFromImage(heat)
    assert h.min() >= 0.0 and h.max() <= 1.0 + 1e-6
    assert (pred_dir / "gradcam_overlay.png").stat().st_size > 5000
    # the heat map is zero outside the ROI box
    lo, hi = np.asarray(summary["roi"]["lower_lps_mm"]), np.asarray(summary["roi"]["upper_lps_mm"])
    far = heat.TransformPhysicalPointToIndex(
        (float(lo[0] + hi[0]) / 2, float(hi[1] + 15.0), float(hi[2] + 15.0))
    )
    assert heat.GetPixel(far) == 0.0
