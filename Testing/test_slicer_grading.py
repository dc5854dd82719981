"""The SpineAIGrading module's panel registry, checked without Slicer.

- the registry: one entry per model command, each naming a model family the model cards use;
- a panel only for a command the engine's parser has AND a model of its family is installed;
- options offered only when the command's ``--help`` lists them; the command line the module builds;
- the outputs the module loads (table, summary, Grad-CAM heat maps) found and read;
- the radiograph panel: available with the shipped disc-crops model alone, its pixel size passed from a known
  spacing, a picture (no pixel size) handed over as a PNG;
- for real: ``spineai grade sagittal`` with the shipped model on a synthetic sagittal T2 volume,
  ``spineai outcome`` with site weights, each given the NRRD the module writes, and ``spineai radiograph``
  with the shipped model on a synthetic lateral radiograph given as NRRD with ``--pixel-mm`` and as PNG; the
  heat maps lie on the input's geometry so Slicer overlays them without resampling.
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
            assert option.flag.startswith("--") and option.kind in ("bool", "choice", "number", "text")
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
    # disc-crops design: the discs the locator was unsure of, and where the pixel size came from
    summary["discs"] = [
        {"level": "L4-L5", "confidence": 0.9, "source": "located", "scale_source": "given"},
        {"level": "L5-S1", "confidence": 0.1, "source": "located", "scale_source": "given"},
    ]
    (tmp_path / "radiograph.json").write_text(json.dumps(summary))
    assert grading.summary_text(outputs).endswith("; discs unsure: L5-S1 (pixel size: given)")
    summary["discs"][1]["confidence"] = 0.5
    (tmp_path / "radiograph.json").write_text(json.dumps(summary))
    assert grading.summary_text(outputs).endswith("; all discs located (pixel size: given)")


# ============================================================================ the radiograph panel
def test_radiograph_panel_offers_the_pixel_size_and_checks_it():
    entry = grading.command_by_key("radiograph")
    help_text = "usage: spineai radiograph [--gradcam-level L] [--pixel-mm PIXEL_MM] [--device DEVICE]"
    plan = grading.plan_panels({"radiograph": help_text}, [_model("radiograph_hnp", "radiograph_hnp_demo")])[
        -1
    ]
    assert plan.entry is entry and plan.available
    assert [o.key for o in plan.options] == ["gradcamLevel", grading.PIXEL_MM_OPTION, "device"]
    cmd = grading.build_command(entry, "in.nrrd", "out", options={"pixelMm": "0.15", "gradcamLevel": "L4-L5"})
    assert set(cmd.argv[-2:]) == {"--pixel-mm=0.15", "--gradcam-level=L4-L5"}
    assert "--weights" not in cmd.argv  # no model chosen: the engine's shipped model
    assert not any(
        a.startswith("--pixel-mm") for a in grading.build_command(entry, "i", "o", {"pixelMm": " "}).argv
    )
    for bad in ("abc", "-0.2", "0", "nan", "inf"):
        with pytest.raises(ValueError, match="is not a positive number"):
            grading.build_command(entry, "i", "o", options={"pixelMm": bad})
    old_engine = grading.plan_panels(
        {"radiograph": "usage: spineai radiograph [--device DEVICE]"}, plan.models
    )
    assert [o.key for o in old_engine[-1].options] == ["device"]  # an engine without --pixel-mm never gets it


def test_radiograph_pixel_size_comes_only_from_a_real_spacing():
    assert grading.radiograph_pixel_mm((0.15, 0.15, 1.0), (2000, 2500, 1), "/data/lumbar.nrrd") == "0.15"
    assert float(grading.radiograph_pixel_mm((0.1, 0.2, 1.0), (20, 30, 1), None)) == pytest.approx(
        np.sqrt(0.02)
    )
    assert (
        grading.radiograph_pixel_mm((1.0, 0.14, 0.14), (1, 40, 50), None) == "0.14"
    )  # the two in-plane axes
    assert grading.radiograph_pixel_mm((0.15, 0.15, 1.0), (20, 30, 1), "/data/lumbar.PNG") == ""  # a picture
    assert grading.radiograph_pixel_mm((1.0, 1.0, 1.0), (20, 30, 1), None) == ""  # Slicer's placeholder
    assert grading.radiograph_pixel_mm((0.0, 0.15, 1.0), (20, 30, 1), None) == ""


def test_a_picture_input_reaches_the_engine_without_a_pixel_size(tmp_path):
    from spineai.radiograph.image import load_radiograph

    pixels = np.arange(12 * 20, dtype=np.float32).reshape(1, 12, 20) * 0.5 - 40.0  # [1, rows, columns]
    path = grading.write_picture_input(pixels, tmp_path / "input.png")
    loaded = load_radiograph(path)
    assert not loaded.info["pixel_spacing_known"]
    back = sitk.GetArrayFromImage(loaded.image)
    assert back.shape == (12, 20) and back[0, 0] == back.min() and back[-1, -1] == back.max()
    assert np.corrcoef(back.ravel(), pixels.ravel())[0, 1] > 0.9999  # a linear map of the grey levels
    with pytest.raises(ValueError, match="not a volume"):
        grading.write_picture_input(np.zeros((3, 4, 5)), tmp_path / "v.png")
    with pytest.raises(ValueError, match="blank"):
        grading.write_picture_input(np.ones((4, 5)), tmp_path / "b.png")


def test_radiograph_panel_appears_with_the_shipped_model():
    from SpineAILib import commands

    from spineai.cli import build_parser
    from spineai.radiograph.predict import DEFAULT_MODEL

    installed = models.installed_models(None, verify=False)
    if not any(m.card.name == DEFAULT_MODEL for m in installed):
        pytest.skip(f"the shipped radiograph model {DEFAULT_MODEL} is not installed")
    plan = {p.entry.key: p for p in grading.plan_panels(commands.command_tree(build_parser()), installed)}[
        "radiograph"
    ]
    assert plan.available, plan.reason
    assert DEFAULT_MODEL in [m.card.name for m in plan.models]
    assert grading.PIXEL_MM_OPTION in [o.key for o in plan.options]  # this engine takes --pixel-mm


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


@pytest.mark.slow
def test_radiograph_runs_with_the_shipped_model_on_what_the_module_writes(tmp_path):
    """As the module hands a radiograph over: a volume with its spacing as NRRD plus --pixel-mm, a picture as
    PNG without; both are read disc by disc and the heat map lies on the input's own grid."""
    from SpineAILib import commands

    from spineai.cli import build_parser
    from spineai.radiograph.phantom import render_radiograph_patient

    plan = {
        p.entry.key: p
        for p in grading.plan_panels(
            commands.command_tree(build_parser()), models.installed_models(None, verify=True)
        )
    }["radiograph"]
    if not plan.available:
        pytest.skip(f"no radiograph panel in this engine: {plan.reason}")
    model = next(m for m in plan.models if m.card.name == "radiograph_hnp_demo")
    assert model.verified, model.status
    case = render_radiograph_patient(3, views=("lateral",), image_px=128)
    volume = sitk.GetImageFromArray(case.images["lateral"][None].astype(np.int16))  # a one-slice volume
    volume.SetSpacing((case.pixel_mm, case.pixel_mm, 1.0))
    volume.SetOrigin((-120.0, -120.0, 0.0))
    sitk.WriteImage(volume, str(tmp_path / "input.nrrd"))
    pixel_mm = grading.radiograph_pixel_mm(
        volume.GetSpacing(), volume.GetSize(), str(tmp_path / "input.nrrd")
    )
    assert float(pixel_mm) == pytest.approx(case.pixel_mm)
    picture = grading.write_picture_input(case.images["lateral"], tmp_path / "input.png")
    read = {}
    for name, source, options in (
        ("volume", tmp_path / "input.nrrd", {"pixelMm": pixel_mm}),
        ("picture", picture, {}),
    ):
        cmd = grading.build_command(
            plan.entry, source, tmp_path / name, weights=models.weights_file(model), options=options,
            offered=plan.options,
        )  # fmt: skip
        result, _updates = _run(cmd, timeout=600)
        assert result.succeeded, result.error + "\n" + "\n".join(result.output[-20:])
        outputs = grading.find_outputs(plan.entry, tmp_path / name).check()
        assert len(outputs.heatmaps) == 1
        heat = sitk.ReadImage(str(next(iter(outputs.heatmaps.values()))))
        assert heat.GetSize()[:2] == (128, 128)
        values = sitk.GetArrayViewFromImage(heat)
        assert 0.0 <= values.min() and values.max() <= 1.0 + 1e-6
        read[name] = json.loads(outputs.summary.read_text())
        assert read[name]["design"] == "disc-crops" and [d["level"] for d in read[name]["discs"]] == [
            "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1",
        ]  # fmt: skip
        items = {r["Item"] for r in grading.result_table(outputs).rows}
        assert "probabilities.L4-L5" in items and "design" in items
    assert {d["scale_source"] for d in read["volume"]["discs"]} == {"given"}
    assert [d["pixel_mm"] for d in read["volume"]["discs"]] == pytest.approx([case.pixel_mm] * 5)
    assert read["volume"]["discs"][0]["x_mm"] == pytest.approx(
        -120.0 + read["volume"]["discs"][0]["column"] * case.pixel_mm
    )
    assert read["picture"]["discs"][0]["scale_source"].startswith("estimated")
    assert "x_mm" not in read["picture"]["discs"][0]
    rows = [[d["row"] for d in read[n]["discs"]] for n in ("volume", "picture")]
    assert np.allclose(rows[0], rows[1], atol=0.5)  # the same discs found in both hand-overs
