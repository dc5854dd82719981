"""The SpineAIGrading module's panel registry, checked without Slicer.

- the registry: one entry per model command, each naming a model family the model cards use;
- a panel only for a command the engine's parser has AND a model of its family is installed;
- options offered only when the command's ``--help`` lists them; the command line the module builds;
- the outputs the module loads (table, summary, Grad-CAM heat maps) found and read;
- for real: ``spineai grade sagittal`` with the shipped model on a synthetic sagittal T2 volume, and
  ``spineai outcome`` with site weights, each given the NRRD the module writes; the heat maps lie on the
  input's geometry so Slicer overlays them without resampling.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "SpineAI"))  # SpineAILib sits beside the engine package, as in Slicer

from SpineAILib import engine, grading, models, tables  # noqa: E402
from SpineAILib.process import BackgroundProcess  # noqa: E402


def _model(task: str, name: str = "m"):
    return SimpleNamespace(
        card=SimpleNamespace(name=name, task=task), folder=Path("."), source="site", status="verified"
    )


def _run(cmd: engine.EngineCommand, timeout: float = 300):
    updates: list = []
    job = BackgroundProcess(on_progress=updates.append, interval_ms=50)
    job.start(cmd.argv, cmd.env)
    return job.wait(timeout=timeout), updates


# ======================================================================================= registry
def test_registry_keys_commands_and_families_are_consistent():
    keys = [e.key for e in grading.GRADING_COMMANDS]
    assert len(keys) == len(set(keys)) and {"sagittal", "outcome", "axial", "stenosis", "radiograph"} <= set(
        keys
    )
    families = {key for key, _title, _words in tables.GRADING_FAMILIES}
    for entry in grading.GRADING_COMMANDS:
        assert entry.family in families, entry.key
        assert entry.table_files or entry.summary_files, entry.key
        assert entry.name == " ".join(entry.command)
        for option in entry.options:
            assert option.flag.startswith("--") and option.kind in ("bool", "choice", "text")
            if option.kind == "choice":
                assert option.default in option.choices
    assert grading.command_by_key("outcome").command == ("outcome",)
    with pytest.raises(KeyError, match="No grading command 'x'"):
        grading.command_by_key("x")


@pytest.mark.parametrize(
    ("task", "family"),
    [
        ("sagittal_disc_grading", "sagittal"),
        ("tesi_outcome", "outcome"),
        ("axial_mri_grading", "axial"),
        ("axial_stenosis", "stenosis"),
        ("radiograph_herniation", "radiograph"),
        ("ct_segmentation", None),
    ],
)
def test_model_tasks_map_to_families(task, family):
    assert tables.grading_family(task) == family


def test_panels_need_the_command_and_a_model_of_its_family():
    engine_commands = {
        "grade sagittal": "usage: spineai grade sagittal [--gradcam GRADCAM] [--allow-missing-l5s1]",
        "outcome": "usage: spineai outcome [--device DEVICE]",
        "grade axial": "usage: spineai grade axial",
    }
    installed = [
        _model("sagittal_disc_grading", "sag"),
        _model("ct_segmentation", "ct"),
        _model("tesi_outcome"),
    ]
    plans = {p.entry.key: p for p in grading.plan_panels(engine_commands, installed)}
    assert plans["sagittal"].available and [m.card.name for m in plans["sagittal"].models] == ["sag"]
    assert [o.key for o in plans["sagittal"].options] == ["gradcam", "allowMissingL5S1"]
    assert plans["outcome"].available and [o.key for o in plans["outcome"].options] == ["device"]
    assert not plans["axial"].available and "no axial model is installed" in plans["axial"].reason
    for key in ("stenosis", "radiograph"):
        assert not plans[key].available and "has no 'spineai" in plans[key].reason and not plans[key].models
    assert not any(p.available for p in grading.plan_panels({}, installed))  # no command, no panel


def test_command_line_passes_weights_and_only_options_the_engine_offers(tmp_path):
    entry = grading.command_by_key("sagittal")
    offered = [o for o in entry.options if o.key == "gradcam"]
    cmd = grading.build_command(
        entry, tmp_path / "in.nrrd", tmp_path / "out", weights=tmp_path / "w.safetensors",
        options={"gradcam": "all", "allowMissingL5S1": True}, offered=offered, python="/opt/PythonSlicer",
    )  # fmt: skip
    assert cmd.argv == (
        "/opt/PythonSlicer", "-m", "spineai", "grade", "sagittal", str(tmp_path / "in.nrrd"), "-o",
        str(tmp_path / "out"), "--weights", str(tmp_path / "w.safetensors"), "--gradcam=all",
    )  # fmt: skip
    assert cmd.env["SPINEAI_PROGRESS"] == "lines" and cmd.outputs == tmp_path / "out"
    full = grading.build_command(entry, "in.nrrd", "out", options={"allowMissingL5S1": True, "gradcam": ""})
    assert full.argv[-1] == "--allow-missing-l5s1" and "--weights" not in full.argv
    assert (
        "--allow-missing-l5s1"
        not in grading.build_command(entry, "i", "o", options={"allowMissingL5S1": "false"}).argv
    )
    with pytest.raises(ValueError, match="'grade sagittal' has no option 'device'"):
        grading.build_command(entry, "i", "o", options={"device": "cpu"})
    with pytest.raises(ValueError, match="Grad-CAM of 'everything' is not one of"):
        grading.build_command(entry, "i", "o", options={"gradcam": "everything"})


def test_option_tooltips_come_from_the_engine_help():
    entry = grading.command_by_key("outcome")
    device = next(o for o in entry.options if o.key == "device")
    help_text = "options:\n  --device DEVICE       cpu or cuda\n  --overwrite           replace files\n"
    assert grading.option_tooltip(help_text, device) == "cpu or cuda"


# ======================================================================================== outputs
def test_outputs_found_by_pattern_and_heat_maps_named(tmp_path):
    entry = grading.command_by_key("sagittal")
    (tmp_path / "grades.tsv").write_text(
        "ivd\tlevel\tpfirrmann\tp_pfirrmann_1\n1\tL5-S1\t3\t0.1\n2\tL4-L5\t2\t0.7\n"
    )
    (tmp_path / "grades.json").write_text(json.dumps({"discs": [{}, {}], "notes": ["graded slice 7"]}))
    for name in ("gradcam_pfirrmann.nii.gz", "gradcam_modic.nii.gz", "gradcam_pfirrmann.png"):
        (tmp_path / name).write_bytes(b"x")
    outputs = grading.find_outputs(entry, tmp_path).check()
    assert outputs.table == tmp_path / "grades.tsv" and outputs.summary == tmp_path / "grades.json"
    assert outputs.heatmaps == {
        "modic": tmp_path / "gradcam_modic.nii.gz", "pfirrmann": tmp_path / "gradcam_pfirrmann.nii.gz",
    }  # fmt: skip
    table = grading.result_table(outputs)
    assert table.column("level") == ["L5-S1", "L4-L5"] and table.column("pfirrmann") == [3.0, 2.0]
    assert grading.summary_text(outputs) == "2 discs graded. graded slice 7"
    assert (
        grading.heatmap_name("gradcam.nii.gz") == "gradcam"
        and grading.heatmap_name("a/gradcam_x.nrrd") == "x"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="wrote no result table or summary"):
        grading.find_outputs(entry, empty).check()
    with pytest.raises(ValueError, match="does not exist"):
        grading.find_outputs(entry, tmp_path / "absent")


def test_outcome_summary_becomes_items_and_one_line(tmp_path):
    entry = grading.command_by_key("outcome")
    summary = {"probability_good_outcome": 0.734, "threshold": 0.5, "predicted": "good outcome",
               "model": {"name": "demo"}, "files": {"gradcam": "gradcam.nii.gz"}}  # fmt: skip
    (tmp_path / "outcome.json").write_text(json.dumps(summary))
    (tmp_path / "gradcam.nii.gz").write_bytes(b"x")
    outputs = grading.find_outputs(entry, tmp_path)
    assert outputs.table is None and outputs.heatmaps == {"gradcam": tmp_path / "gradcam.nii.gz"}
    items = dict((r["Item"], r["Value"]) for r in grading.result_table(outputs).rows)
    assert (
        items["probability_good_outcome"] == "0.734"
        and items["model.name"] == "demo"
        and "files.gradcam" not in items
    )
    assert grading.summary_text(outputs) == "P(good outcome) 0.73 (threshold 0.50): good outcome"


def test_radiograph_summary_names_levels_and_positives(tmp_path):
    entry = grading.command_by_key("radiograph")
    summary = {"probabilities": {"L4-L5": 0.71, "L5-S1": 0.2}, "levels_called_positive": ["L4-L5"]}
    (tmp_path / "radiograph.json").write_text(json.dumps(summary))
    (tmp_path / "gradcam_L4-L5.nrrd").write_bytes(b"x")
    outputs = grading.find_outputs(entry, tmp_path)
    assert outputs.heatmaps == {"L4-L5": tmp_path / "gradcam_L4-L5.nrrd"}
    assert grading.summary_text(outputs) == "P(herniation): L4-L5 0.71, L5-S1 0.20; called positive: L4-L5"


# ============================================================================= the real engine
@pytest.fixture(scope="module")
def sagittal_t2(tmp_path_factory):
    """A synthetic sagittal T2 volume written as NRRD, as the module writes its input."""
    from spineai.outcome.mri_phantom import generate_sagittal_t2

    folder = tmp_path_factory.mktemp("t2")
    case = generate_sagittal_t2(3, spacing_mm=(4.0, 1.5, 1.5), slice_subsamples=1)
    sitk.WriteImage(case.image, str(folder / "input.nrrd"))
    return folder / "input.nrrd"


def _same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-3)
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-5)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)
    )


@pytest.mark.slow
def test_grade_sagittal_runs_with_the_shipped_model_and_writes_what_the_module_loads(sagittal_t2, tmp_path):
    from SpineAILib import commands

    from spineai.cli import build_parser

    installed = models.installed_models(None, verify=True)
    plans = {p.entry.key: p for p in grading.plan_panels(commands.command_tree(build_parser()), installed)}
    plan = plans["sagittal"]
    if not plan.available:
        pytest.skip(f"no sagittal grading panel in this engine: {plan.reason}")
    model = plan.models[0]
    assert model.verified, model.status
    cmd = grading.build_command(
        plan.entry, sagittal_t2, tmp_path / "out", weights=models.weights_file(model),
        options={"gradcam": "pfirrmann", "allowMissingL5S1": True}, offered=plan.options,
    )  # fmt: skip
    result, _updates = _run(cmd, timeout=600)
    assert result.succeeded, result.error + "\n" + "\n".join(result.output[-20:])
    outputs = grading.find_outputs(plan.entry, tmp_path / "out").check()
    assert list(outputs.heatmaps) == ["pfirrmann"]
    heat = sitk.ReadImage(str(outputs.heatmaps["pfirrmann"]))
    assert _same_grid(heat, sitk.ReadImage(str(sagittal_t2)))  # overlays the input without resampling
    values = sitk.GetArrayViewFromImage(heat)
    assert 0.0 <= values.min() and values.max() <= 1.0 + 1e-6 and values.max() > 0.1
    table = grading.result_table(outputs)
    assert table.rows and {"level", "pfirrmann"} <= {c.name for c in table.columns}
    assert next(c for c in table.columns if c.name == "pfirrmann").numeric
    assert grading.summary_text(outputs).startswith(f"{len(table.rows)} discs graded")


@pytest.mark.slow
def test_outcome_runs_with_site_weights_and_its_heat_map_overlays_the_input(sagittal_t2, tmp_path):
    torch = pytest.importorskip("torch")
    from spineai.outcome.network import ARCHITECTURE, TASK, build_network
    from spineai.weights import load_card, save_weights

    torch.manual_seed(0)
    net = build_network({"features": [2, 2, 2, 2]})
    card = {"name": "site_outcome", "task": TASK, "architecture": ARCHITECTURE, "config": net.config,
            "training_data": "untrained network for a command-line test"}  # fmt: skip
    weights, _card = save_weights(net, tmp_path / "model" / "site_outcome.safetensors", card)
    site = models.InstalledModel(
        card=load_card(weights), folder=weights.parent, source="site", status="verified"
    )
    entry = grading.command_by_key("outcome")
    assert grading.models_for(entry, [site]) == [site] and models.weights_file(site) == weights
    cmd = grading.build_command(
        entry,
        sagittal_t2,
        tmp_path / "out",
        weights=weights,
        options={"gradcamClass": "poor", "device": "cpu"},
    )
    result, _updates = _run(cmd, timeout=600)
    assert result.succeeded, result.error + "\n" + "\n".join(result.output[-20:])
    outputs = grading.find_outputs(entry, tmp_path / "out").check()
    assert _same_grid(sitk.ReadImage(str(outputs.heatmaps["gradcam"])), sitk.ReadImage(str(sagittal_t2)))
    items = {r["Item"]: r["Value"] for r in grading.result_table(outputs).rows}
    assert 0.0 <= float(items["probability_good_outcome"]) <= 1.0 and items["gradcam_class"] == "poor_outcome"
    assert grading.summary_text(outputs).startswith("P(good outcome)")
