"""The segment / train segmentation / evaluate segmentation parsers, run directly (no top-level CLI)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_segmentation_fixtures import (
    TINY_CLASSES,
    single_torch_thread,  # noqa: F401
    synthetic_case,
    tiny_weights,
    write_case,
    write_dataset,
)

from spineai import io
from spineai.segmentation.cli import add_evaluate_parser, add_segment_parser, add_train_parser

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spineai")
    sub = parser.add_subparsers(dest="command")
    add_segment_parser(sub)
    train = sub.add_parser("train").add_subparsers(dest="task")
    add_train_parser(train)
    evaluate = sub.add_parser("evaluate").add_subparsers(dest="task")
    add_evaluate_parser(evaluate)
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize("argv", [["segment"], ["train", "segmentation"], ["evaluate", "segmentation"]])
def test_help_has_an_example(argv, capsys):
    with pytest.raises(SystemExit) as info:
        _parser().parse_args([*argv, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "example:" in text and "spineai " + " ".join(argv) in text


def test_segment_writes_outputs_and_progress_lines(tmp_path: Path, capsys, monkeypatch):
    weights = tiny_weights(tmp_path)
    ct = write_case(tmp_path / "case", seed=0) / "ct.nii.gz"
    monkeypatch.setenv("SPINEAI_PROGRESS", "lines")
    code = _run(
        [
            "segment",
            str(ct),
            "-o",
            str(tmp_path / "out"),
            "--weights",
            str(weights),
            "--device",
            "cpu",
            "--stl",
            "--mirror-tta",
            "--precision",
            "float32",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    progress = [line for line in captured.err.splitlines() if line.startswith("PROGRESS ")]
    assert progress and progress[-1].startswith("PROGRESS 100.0")
    percents = [float(line.split()[1]) for line in progress]
    assert percents == sorted(percents)
    out = tmp_path / "out"
    assert (out / "segmentation.seg.nrrd").is_file() and (out / "labels.json").is_file()
    labels = sitk.ReadImage(str(out / "labels.nii.gz"))
    assert labels.GetSize() == sitk.ReadImage(str(ct)).GetSize()
    model = json.loads((out / "segmentation.json").read_text())["model"]
    assert model["name"] == "tiny_test_model"
    assert model["mirror_tta"] is True and model["precision"] == "float32"
    assert "Research use only" in captured.out


def test_precision_choices_are_the_engine_s():
    from spineai.segmentation.inference import PRECISIONS

    parser = _parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["segment", "ct.nii.gz", "-o", "out", "--precision", "fp8"])
    for choice in PRECISIONS:
        assert (
            parser.parse_args(["segment", "ct.nii.gz", "-o", "out", "--precision", choice]).precision
            == choice
        )
        args = parser.parse_args(["evaluate", "segmentation", "--data", "d", "--precision", choice])
        assert args.precision == choice


def test_segment_errors_are_one_paragraph_with_exit_code_1(tmp_path: Path, capsys):
    weights = tiny_weights(tmp_path)
    image, _ = synthetic_case(0)
    mri = sitk.GetImageFromArray(np.abs(sitk.GetArrayFromImage(image)).astype(np.int16))
    mri.CopyInformation(image)
    io.write_image(mri, tmp_path / "mri.nii.gz")
    code = _run(
        ["segment", str(tmp_path / "mri.nii.gz"), "-o", str(tmp_path / "o"), "--weights", str(weights)]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("spineai segment: error:") and "MRI" in err and "Fix:" in err
    assert "\n\n" not in err.strip() and "Traceback" not in err
    code = _run(
        ["segment", str(tmp_path / "absent.nii.gz"), "-o", str(tmp_path / "o2"), "--weights", str(weights)]
    )
    assert code == 1 and "does not exist" in capsys.readouterr().err


def test_segment_refuses_a_used_output_folder(tmp_path: Path, capsys):
    weights = tiny_weights(tmp_path)
    ct = write_case(tmp_path / "case", seed=0) / "ct.nii.gz"
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert _run(["segment", str(ct), "-o", str(out), "--weights", str(weights)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (
        _run(["segment", str(ct), "-o", str(out), "--weights", str(weights), "--overwrite", "--no-surfaces"])
        == 0
    )
    assert (out / "mine.txt").read_text() == "keep"


def test_train_and_resume_from_the_command_line(tmp_path: Path, capsys):
    data = write_dataset(tmp_path / "data", seeds=(0, 1))
    out = tmp_path / "run"
    common = [
        "train",
        "segmentation",
        "--data",
        str(data),
        "--out",
        str(out),
        "--classes",
        *TINY_CLASSES[1:],
        "--features",
        "4,8",
        "--patch-size",
        "16,32,32",
        "--batch-size",
        "2",
        "--val-every",
        "5",
        "--device",
        "cpu",
    ]
    assert _run([*common, "--iterations", "5"]) == 0
    assert "best validation mean Dice" in capsys.readouterr().out
    assert json.loads((out / "checkpoints" / "last_state.json").read_text())["iteration"] == 5
    assert _run([*common, "--iterations", "10", "--resume"]) == 0
    state = json.loads((out / "checkpoints" / "last_state.json").read_text())
    assert state["iteration"] == 10 and [h["iteration"] for h in state["history"]] == [5, 10]
    paper = [a for a in common if a not in ("--features", "4,8")]
    args = _parser().parse_args([*paper, "--paper-width", "--lr", "1e-3", "--flip-ap-prob", "0.2"])
    assert tuple(args.features) == (32, 64, 128, 256, 512) and args.lr == 1e-3 and args.flip_ap_prob == 0.2


def test_evaluate_prints_table_and_writes_json(tmp_path: Path, capsys):
    data = write_dataset(tmp_path / "data", seeds=(0,))
    weights = tiny_weights(tmp_path)
    report = tmp_path / "eval.json"
    code = _run(
        [
            "evaluate",
            "segmentation",
            "--data",
            str(data),
            "--weights",
            str(weights),
            "--json",
            str(report),
            "--device",
            "cpu",
            "--no-distances",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Dice" in out and "bone" in out and "nerve" in out
    assert json.loads(report.read_text())["cases"][0]["case"] == "case00"
