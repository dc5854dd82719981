"""Measure and Plan of the SpineAISegmentation module, checked without Slicer.

- the command lines the module builds (``spineai measure``, ``plan``, ``levels``) and their validation;
- the engine's command list read in a child process, and option help read from ``--help`` texts;
- the pure conversions: markups LPS -> RAS, the result table with units, the C-arm views and the 3D camera
  pose (position = focal point - distance * direction, in RAS);
- the real engine on a phantom's truth label map written the way the module writes a (corrected)
  segmentation: ``measure`` then ``plan`` run as background processes and write exactly the files the
  module loads, whose points, names and numbers agree with each other;
- the level numbering as the module shows it (``SpineAISegmentationLib.levels``): the vertebra table with
  confidence and flags, the red warning of a flagged numbering, and the triangle table and summary lines
  marked level by level, from real ``label_levels`` results and from ``spineai levels`` run in the background.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "SpineAI"))  # SpineAILib sits beside the engine package, as in Slicer
sys.path.insert(0, str(REPO / "SpineAISegmentation"))  # the module's own Slicer-free helpers

from SpineAILib import commands, engine, export, frames, labels, planning, tables  # noqa: E402
from SpineAILib.process import BackgroundProcess  # noqa: E402
from SpineAISegmentationLib import levels as levelinfo  # noqa: E402


def _run(cmd: engine.EngineCommand, timeout: float = 300):
    updates: list = []
    lines: list[str] = []
    job = BackgroundProcess(on_progress=updates.append, on_line=lines.append, interval_ms=50)
    job.start(cmd.argv, cmd.env)
    return job.wait(timeout=timeout), updates, lines


# ================================================================================== command lines
def test_measure_and_plan_command_lines(tmp_path):
    cmd = engine.measure_command(
        tmp_path / "labels.nii.gz", tmp_path / "out", ct_path=tmp_path / "ct.nrrd", levels=["l5/s1", "L4-L5"],
        sides=["left"], python="/opt/Slicer/bin/PythonSlicer",
    )  # fmt: skip
    assert cmd.argv == (
        "/opt/Slicer/bin/PythonSlicer", "-m", "spineai", "measure", str(tmp_path / "labels.nii.gz"),
        "-o", str(tmp_path / "out"), "--ct", str(tmp_path / "ct.nrrd"), "--levels", "L5-S1", "L4-L5",
        "--sides", "left", "--no-images",
    )  # fmt: skip
    assert cmd.outputs == tmp_path / "out" and cmd.env["SPINEAI_PROGRESS"] == "lines"
    assert "--no-images" not in engine.measure_command("a", "b", images=True).argv
    plan = engine.plan_command("seg.nii.gz", "out", "L5-S1", "right", oblique_deg=32.5, tilt_deg=-7)
    assert plan.argv[3:] == (
        "plan", "seg.nii.gz", "-o", "out", "--level", "L5-S1", "--side", "right", "--oblique=32.5", "--tilt=-7",
        "--no-images",
    )  # fmt: skip
    # the engine's own parser reads the joined negative tilt as a value, not as an option
    from spineai.cli import build_parser

    parsed = build_parser().parse_args(list(plan.argv[3:]))
    assert parsed.tilt == -7.0 and parsed.oblique == 32.5 and parsed.side == "right"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"level": "L5"}, "not a spinal level"),
        ({"level": "L5-S1", "side": "both"}, "Side 'both'"),
        ({"oblique_deg": 50}, "outside 0..45"),
        ({"oblique_deg": -1}, "outside 0..45"),
        ({"tilt_deg": 46}, "outside -45..45"),
    ],
)
def test_plan_command_refuses_bad_values_in_plain_words(kwargs, message):
    args = {"level": "L5-S1", "side": "left", **kwargs}
    with pytest.raises(ValueError, match=message):
        engine.plan_command("seg.nii.gz", "out", **args)


def test_measure_command_refuses_empty_levels_and_unknown_sides():
    with pytest.raises(ValueError, match="No level"):
        engine.measure_command("a", "b", levels=[])
    with pytest.raises(ValueError, match="Side 'up'"):
        engine.measure_command("a", "b", sides=["up"])


def test_levels_command_passes_the_override_verbatim():
    cmd = engine.levels_command(
        "seg.nii.gz", "out", override="  lowest mobile vertebra is L6 ", ct_path="ct.nrrd"
    )
    assert cmd.argv[3:] == (
        "levels", "seg.nii.gz", "-o", "out", "--ct", "ct.nrrd", "--override", "lowest mobile vertebra is L6",
    )  # fmt: skip
    assert "--override" not in engine.levels_command("seg.nii.gz", "out", override="  ").argv


# ============================================================================== engine's commands
def _toy_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spineai")
    sub = parser.add_subparsers(dest="command")
    measure = sub.add_parser("measure")
    measure.add_argument("-o", "--out", help="output folder (new or empty)")
    measure.add_argument(
        "--levels", nargs="+", help="levels to measure, a long help sentence that argparse wraps onto a second "
        "line when the terminal is narrow enough to need it",
    )  # fmt: skip
    grade = sub.add_parser("grade").add_subparsers(dest="task")
    grade.add_parser("sagittal")
    return parser


def test_command_tree_lists_nested_commands_with_their_help():
    tree = commands.command_tree(_toy_parser())
    assert set(tree) == {"measure", "grade", "grade sagittal"}
    assert tree["measure"].startswith("usage: spineai measure")
    assert engine.offers_option(tree["measure"], "--levels")
    assert not engine.offers_option(tree["measure"], "--level")  # whole words only
    assert engine.option_help(tree["measure"], "--out") == "output folder (new or empty)"
    wrapped = engine.option_help(tree["measure"], "--levels")
    assert wrapped.startswith("levels to measure") and wrapped.endswith("enough to need it")
    assert engine.option_help(tree["measure"], "--missing") == ""


def test_probe_output_round_trip_and_refusals():
    line = commands.probe_line({"measure": "usage: spineai measure"}, version="9.9")
    assert commands.parse_probe_output(["noise", line]) == {"measure": "usage: spineai measure"}
    with pytest.raises(ValueError, match="did not list its commands"):
        commands.parse_probe_output(["Traceback (most recent call last):", "ImportError: torch"])
    with pytest.raises(ValueError, match="not valid JSON"):
        commands.parse_probe_output([commands.MARKER + " {broken"])
    with pytest.raises(ValueError, match="unknown format"):
        commands.parse_probe_output([commands.MARKER + ' {"format": "other", "commands": {}}'])


@pytest.mark.slow
def test_probe_in_a_child_process_lists_the_engine_parser_commands():
    result, _updates, lines = _run(engine.commands_probe(), timeout=300)
    assert result.succeeded, result.error
    found = commands.parse_probe_output(lines)
    from spineai.cli import build_parser

    assert found == commands.command_tree(build_parser())  # what `spineai <cmd> --help` would accept
    assert {"segment", "phantom", "measure", "plan"} <= set(found)
    assert engine.offers_option(found["plan"], "--oblique") and engine.offers_option(
        found["measure"], "--sides"
    )


# ===================================================================================== markups
def _markup(kind, name, points, frame="LPS", **extra):
    return {
        "type": kind,
        "name": name,
        "coordinateSystem": frame,
        "coordinateUnits": "mm",
        "controlPoints": [{"label": f"p{i}", "position": p} for i, p in enumerate(points)],
        "display": {"color": [0.1, 0.2, 0.3]},
        **extra,
    }


def test_markups_are_converted_from_lps_to_ras_and_classified():
    data = {
        "markups": [
            _markup("ClosedCurve", "Kambin L5-S1 left", [[10, -20, 30], [11, -21, 25], [15, -19, 24]],
                    measurements=[{"name": "area", "value": 12.5, "units": "mm2"}]),
            _markup("ClosedCurve", "Safe L4-L5 right (C-arm view)", [[1, 2, 3], [2, 3, 4], [3, 4, 6]]),
            _markup("Line", "Needle L6-S1 left (safe)", [[60, 40, 20], [20, -10, 15]]),
            _markup("Fiducial", "Entry/target L5-S1 right (kambin)", [[1, 1, 1], [2, 2, 2]]),
            _markup("Fiducial", "landmark", [[5, 6, 7]], frame="RAS"),
        ]
    }  # fmt: skip
    specs = planning.parse_markups(data)
    assert [s.node_class for s in specs] == [
        "vtkMRMLMarkupsClosedCurveNode", "vtkMRMLMarkupsClosedCurveNode", "vtkMRMLMarkupsLineNode",
        "vtkMRMLMarkupsFiducialNode", "vtkMRMLMarkupsFiducialNode",
    ]  # fmt: skip
    kambin = specs[0]
    assert kambin.points_ras.tolist() == [[-10, 20, 30], [-11, 21, 25], [-15, 19, 24]]
    assert (kambin.role, kambin.triangle, kambin.level, kambin.side) == (
        "triangle",
        "kambin",
        "L5-S1",
        "left",
    )
    assert kambin.measurements == {"area": (12.5, "mm2")} and kambin.point_labels == ("p0", "p1", "p2")
    assert (specs[1].role, specs[1].triangle, specs[1].side) == ("triangle_view", "safe", "right")
    assert (specs[2].role, specs[2].triangle, specs[2].level) == ("needle", "safe", "L6-S1")
    assert (specs[3].role, specs[3].triangle) == ("entry_target", "kambin")
    assert specs[4].role == "other" and specs[4].points_ras.tolist() == [[5, 6, 7]]  # RAS kept as is


@pytest.mark.parametrize(
    ("markup", "message"),
    [
        (_markup("Plane", "p", [[0, 0, 0]]), "type 'Plane'"),
        (_markup("Line", "l", [[0, 0, float("nan")], [1, 1, 1]]), "three finite numbers"),
        (_markup("Line", "l", [[0, 0], [1, 1, 1]]), "three finite numbers"),
        (_markup("Line", "l", []), "no control points"),
        (_markup("Line", "l", [[0, 0, 0]], frame="IJK"), "not LPS or RAS"),
        ({**_markup("Line", "l", [[0, 0, 0]]), "coordinateUnits": "um"}, "is not mm"),
    ],
)
def test_bad_markups_are_refused_naming_the_markup(markup, message):
    with pytest.raises(ValueError, match=message) as info:
        planning.parse_markups({"markups": [markup]}, source="x.mrk.json")
    assert "markups[0]" in str(info.value) and "spineai measure" in str(info.value)


# ================================================================================= views, camera
def _measurements() -> dict:
    def view(oblique, tilt, direction, window, usable=True):
        return {
            "oblique_deg": oblique,
            "tilt_deg": tilt,
            "patient_oblique_deg": oblique - 3,
            "patient_tilt_deg": tilt + 1,
            "direction_lps": direction,
            "window_mm2": window,
            "usable": usable,
        }

    tri = [[20.0, -15.0, 18.0], [21.0, -14.0, 10.0], [32.0, -13.0, 9.0]]
    return {
        "format": "spineai-triangle-measurements",
        "frame": "LPS",
        "foramina": [
            {"level": "L5-S1", "side": "left", "status": "ok", "recommended": "safe",
             "triangles": {
                 "kambin": {"area_mm2": 40.0, "vertices_lps_mm": tri, "best_view": view(10, 5, [-0.2, -0.98, 0], 60)},
                 "safe": {"area_mm2": 9.0, "vertices_lps_mm": tri, "best_view": view(40, 20, [-2, -2, -1], 30)},
             },
             "paths": {"safe": {"target_lps": [31, -18, 21], "length_mm": 77.2, "min_distance_nerve_mm": 4.61,
                                "min_distance_bone_mm": 6.2}}},
            {"level": "L5-S1", "side": "right", "status": "missing", "message": "no root_S1_right"},
        ],
    }  # fmt: skip


def test_carm_views_recommended_first_with_targets_and_unit_directions():
    views = planning.carm_views(_measurements())
    assert [(v.triangle, v.recommended) for v in views] == [("safe", True), ("kambin", False)]
    safe, kambin = views
    assert np.allclose(safe.direction_lps, np.array([-2, -2, -1]) / 3.0)
    assert safe.target_lps == (31.0, -18.0, 21.0)  # the planned needle target
    assert np.allclose(kambin.target_lps, [73 / 3, -14.0, 37 / 3])  # no path: the triangle's centroid
    assert (
        safe.label.startswith("L5-S1 left, safe triangle: oblique 40, tilt +20")
        and "recommended" in safe.label
    )
    assert planning.find_view(views, "L5-S1", "left") is safe
    assert planning.find_view(views, "L5-S1", "left", "kambin") is kambin
    assert planning.find_view(views, "L5-S1", "right") is None


def test_camera_looks_along_the_view_from_the_skin_side_with_the_head_up():
    direction_lps = np.array([-0.6, -0.78, -0.2])
    pose = planning.carm_camera_pose([31.0, -18.0, 21.0], direction_lps, distance_mm=250.0)
    assert pose.focal_point == (-31.0, 18.0, 21.0)  # LPS -> RAS
    unit_ras = frames.lps_to_ras_vectors(direction_lps / np.linalg.norm(direction_lps))
    assert np.allclose(pose.direction_of_projection, unit_ras)
    assert np.allclose(np.subtract(pose.focal_point, pose.position), 250.0 * unit_ras)
    # a left-sided needle runs toward the patient's right: the camera sits on the left (RAS x < 0), posterior
    assert pose.position[0] < pose.focal_point[0] and pose.position[1] < pose.focal_point[1]
    up = np.asarray(pose.view_up)
    assert np.isclose(np.linalg.norm(up), 1.0) and abs(float(up @ unit_ras)) < 1e-9 and up[2] > 0.9
    with pytest.raises(ValueError, match="no length"):
        planning.carm_camera_pose([0, 0, 0], [0, 0, 0])
    with pytest.raises(ValueError, match="positive number of mm"):
        planning.carm_camera_pose([0, 0, 0], [0, -1, 0], distance_mm=0)
    with pytest.raises(ValueError, match="along the view"):
        planning.carm_camera_pose([0, 0, 0], [0, 0, 1])


def test_summary_lines_give_areas_needle_and_reasons():
    lines = planning.summary_lines(_measurements())
    assert lines == [
        "L5-S1 left: Kambin 40.0 mm2, safe 9.0 mm2; needle (safe) 77 mm, 4.6 mm from nerve, 6.2 mm from bone",
        "L5-S1 right: not measured (no root_S1_right)",
    ]


def test_read_measurements_refuses_other_files(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a SpineAI triangle measurement file"):
        planning.read_measurements(tmp_path / "m.json")
    with pytest.raises(ValueError, match="do not exist"):
        planning.read_measurements(tmp_path / "absent.json")


# ===================================================================================== tables
def test_tsv_columns_are_typed_with_units_and_empty_numbers_are_nan():
    text = (
        "level\tarea_mm2\tbest_tilt_deg\tpath_safe\tcrossed\n"
        "L5-S1\t43.60\t\tyes\t\n"
        "L4-L5\t8.10\t-5.00\tno\tL5\n"
    )
    data = tables.parse_tsv(text)
    assert [(c.name, c.numeric, c.unit) for c in data.columns] == [
        ("level", False, ""), ("area_mm2", True, "mm2"), ("best_tilt_deg", True, "degrees"),
        ("path_safe", False, ""), ("crossed", False, ""),
    ]  # fmt: skip
    assert data.column("area_mm2") == [43.6, 8.1]
    assert np.isnan(data.column("best_tilt_deg")[0]) and data.column("best_tilt_deg")[1] == -5.0
    assert data.column("crossed") == ["", "L5"]
    with pytest.raises(KeyError, match="No column 'x'"):
        data.column("x")
    with pytest.raises(ValueError, match="is empty"):
        tables.parse_tsv("\n")
    with pytest.raises(ValueError, match="3 cells for 2 columns"):
        tables.parse_tsv("a\tb\n1\t2\t3\n")


def test_json_summary_becomes_an_item_value_table():
    data = tables.key_value_table(
        {"probability_good_outcome": 0.62, "model": {"name": "demo", "sha256": "ab"}, "roi": {"lower_mm": [1, 2, 3]},
         "files": {"gradcam": "gradcam.nii.gz"}},
        skip=("files",),
    )  # fmt: skip
    assert [c.name for c in data.columns] == ["Item", "Value"]
    assert [(r["Item"], r["Value"]) for r in data.rows] == [
        ("probability_good_outcome", "0.62"), ("model.name", "demo"), ("model.sha256", "ab"),
        ("roi.lower_mm (mm)", "1, 2, 3"),
    ]  # fmt: skip


# =========================================================================== label map for the engine
def test_label_map_for_the_engine_round_trips_and_refuses_unnamed_values(tmp_path):
    arr = np.zeros((5, 6, 7), np.uint16)
    arr[1:3, 2:4, 2:5] = labels.canonical_sidecar(["L5"]).specs[0].label
    m = frames.ijk_to_ras_from_geometry((4.0, -5.0, 6.0), (0.8, 0.9, 2.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    sidecar = labels.canonical_sidecar(["L5", "S1"])
    path, side = export.write_label_map(tmp_path / "labels.nii.gz", arr, m, sidecar)
    assert side == tmp_path / "labels.json" and labels.read_label_sidecar(side) == sidecar
    img = sitk.ReadImage(str(path))
    assert np.array_equal(sitk.GetArrayFromImage(img), arr) and np.allclose(img.GetOrigin(), (4.0, -5.0, 6.0))
    assert engine.find_label_map(tmp_path) == (path, side)
    from spineai import io

    read = io.read_labelmap(path)  # the engine reads the values through the sidecar
    assert "L5" in read.mapping.values.values()
    with pytest.raises(ValueError, match="no name in the sidecar"):
        export.write_label_map(tmp_path / "other.nii.gz", arr, m, labels.canonical_sidecar(["S1"]))
    with pytest.raises(ValueError, match="must end in .nii.gz"):
        export.write_label_map(tmp_path / "labels.nrrd", arr, m, sidecar)
    from spineai.errors import OutputExistsError

    with pytest.raises(OutputExistsError):
        export.write_label_map(path, arr, m, sidecar)  # never overwritten


def test_find_label_map_names_the_choices(tmp_path):
    with pytest.raises(ValueError, match="no label map"):
        engine.find_label_map(tmp_path)
    for name in ("a", "b"):
        (tmp_path / f"{name}.nii.gz").write_bytes(b"x")
        (tmp_path / f"{name}.json").write_text("{}")
    with pytest.raises(ValueError, match="several label maps"):
        engine.find_label_map(tmp_path)
    (tmp_path / "b.json").unlink()
    assert engine.find_label_map(tmp_path) == (tmp_path / "a.nii.gz", tmp_path / "a.json")


# ======================================================================= the real engine on a phantom
@pytest.fixture(scope="module")
def phantom_inputs(tmp_path_factory):
    """A phantom CT (NRRD, as the module writes it) and its truth labels re-written as the module writes the
    current segmentation: canonical values + sidecar from the reference volume's IJKToRAS."""
    try:
        from spineai.phantom import generate_ct_phantom  # noqa: F401
    except ImportError:
        pytest.skip("the engine has no phantom generator (spineai.phantom)")
    root = tmp_path_factory.mktemp("planning")
    result, _u, _l = _run(engine.phantom_command(root / "phantom", seed=3, spacing_mm=2.0), timeout=300)
    assert result.succeeded, result.error
    ct = sitk.ReadImage(str(root / "phantom" / "ct.nii.gz"))
    (root / "input").mkdir()
    sitk.WriteImage(ct, str(root / "input" / "ct.nrrd"))  # the module hands the engine an NRRD
    truth = sitk.ReadImage(str(root / "phantom" / "labels.nii.gz"))
    sidecar = labels.read_label_sidecar(root / "phantom" / "labels.json")
    m = frames.ijk_to_ras_from_geometry(ct.GetOrigin(), ct.GetSpacing(), ct.GetDirection())
    seg, _side = export.write_label_map(
        root / "input" / "labels.nii.gz", sitk.GetArrayFromImage(truth), m, sidecar
    )
    return {"root": root, "labels": seg, "ct": root / "input" / "ct.nrrd"}


@pytest.fixture(scope="module")
def measured(phantom_inputs):
    out = phantom_inputs["root"] / "measure"
    cmd = engine.measure_command(
        phantom_inputs["labels"], out, ct_path=phantom_inputs["ct"], levels=["L5-S1"], sides=["left"]
    )
    result, updates, _lines = _run(cmd, timeout=600)
    assert result.succeeded, result.error + "\n" + "\n".join(result.output[-20:])
    assert updates and updates[-1].percent == 100.0
    return engine.PlanningOutputs(out).check()


@pytest.mark.slow
def test_measure_writes_what_the_module_loads_and_it_agrees(measured):
    specs = planning.read_markups(measured.markups)
    data = planning.read_measurements(measured.measurements)
    table = tables.read_tsv(measured.table)
    by_name = {s.name: s for s in specs}
    for fm in data["foramina"]:
        assert fm["status"] == "ok", fm
        for tri in fm["triangles"].values():
            spec = by_name[tri["name"]]
            assert spec.role == "triangle" and spec.node_class == "vtkMRMLMarkupsClosedCurveNode"
            assert np.allclose(spec.points_ras, frames.lps_to_ras(tri["vertices_lps_mm"]), atol=1e-3)
            assert spec.measurements["area"][0] == pytest.approx(tri["area_mm2"], abs=1e-3)
    needles = [s for s in specs if s.role == "needle"]
    assert needles and all(
        s.node_class == "vtkMRMLMarkupsLineNode" and len(s.points_ras) == 2 for s in needles
    )
    assert len(data["foramina"]) == 1 and len(table.rows) == 2  # one row per level, side and triangle
    units = {c.name: c.unit for c in table.columns}
    assert units["area_mm2"] == "mm2" and units["best_oblique_deg"] == "degrees"
    assert units["min_distance_nerve_mm"] == "mm"
    areas = {(r["side"], r["triangle"]): r["area_mm2"] for r in table.rows}
    for fm in data["foramina"]:
        for kind, tri in fm["triangles"].items():
            assert areas[(fm["side"], kind)] == pytest.approx(tri["area_mm2"], abs=0.01)
    views = planning.carm_views(data)
    assert views and views[0].recommended
    for view in views:
        pose = planning.carm_camera_pose(view.target_lps, view.direction_lps)
        assert np.allclose(pose.direction_of_projection, frames.lps_to_ras_vectors(view.direction_lps))
        # the camera is behind the patient's back (posterior, RAS y smaller) looking anteriorly
        assert pose.position[1] < pose.focal_point[1]


@pytest.mark.slow
def test_plan_at_the_best_view_gives_the_needle_and_its_clearances(phantom_inputs, measured):
    views = planning.carm_views(planning.read_measurements(measured.measurements))
    best = planning.find_view(views, "L5-S1", "left")
    assert best is not None
    out = phantom_inputs["root"] / "plan"
    cmd = engine.plan_command(
        phantom_inputs["labels"], out, "L5-S1", "left", oblique_deg=best.oblique_deg,
        tilt_deg=best.tilt_deg, ct_path=phantom_inputs["ct"],
    )  # fmt: skip
    result, _updates, _lines = _run(cmd, timeout=600)
    assert result.succeeded, result.error
    outputs = engine.PlanningOutputs(out).check()
    specs = planning.read_markups(outputs.markups)
    assert {s.side for s in specs} == {"left"} and {s.level for s in specs} == {"L5-S1"}
    needle = next(s for s in specs if s.role == "needle" and s.triangle == best.triangle)
    points = next(s for s in specs if s.role == "entry_target" and s.triangle == best.triangle)
    assert points.point_labels == ("entry", "target") and np.allclose(points.points_ras, needle.points_ras)
    data = planning.read_measurements(outputs.measurements)
    path = data["foramina"][0]["paths"][best.triangle]
    assert np.allclose(needle.points_ras[1], frames.lps_to_ras(path["target_lps"]), atol=1e-3)
    row = next(r for r in tables.read_tsv(outputs.table).rows if r["triangle"] == best.triangle)
    assert row["path_length_mm"] == pytest.approx(path["length_mm"], abs=0.01)
    assert row["min_distance_nerve_mm"] == pytest.approx(path["min_distance_nerve_mm"], abs=0.01)
    assert row["best_oblique_deg"] == pytest.approx(best.oblique_deg, abs=0.01)
    (planned,) = [v for v in planning.carm_views(data) if v.triangle == best.triangle]
    assert planned.oblique_deg == pytest.approx(best.oblique_deg, abs=0.01)


@pytest.mark.slow
def test_measure_without_l5_s1_fails_and_says_why_in_plain_words(tmp_path):
    arr = np.zeros((6, 6, 6), np.uint16)
    arr[2:4, 2:4, 2:4] = labels.canonical_sidecar(["L3"]).specs[0].label
    seg, _ = export.write_label_map(
        tmp_path / "labels.nii.gz", arr, np.eye(4), labels.canonical_sidecar(["L3"])
    )
    out = tmp_path / "out"
    result, _u, _l = _run(engine.measure_command(seg, out, levels=["L5-S1"], sides=["left"]), timeout=300)
    assert not result.succeeded and "Traceback" not in result.error
    assert "L5 and S1 are not in the label map" in result.error
    # the module explains the failure from the files the engine still wrote
    lines = planning.summary_lines(planning.read_measurements(out / "measurements.json"))
    assert lines == [
        "L5-S1 left: not measured (L5-S1 is outside the field of view: L5 and S1 are not in the label map)"
    ]


# ============================================================================ level numbering (Lib)
TRIANGLE_TSV = (
    "level\tside\ttriangle\tarea_mm2\tpath_safe\n"
    "L4-L5\tleft\tkambin\t41.20\tyes\n"
    "L5-S1\tleft\tsafe\t9.10\tyes\n"
    "L5-S1\tright\tsafe\t8.70\tno\n"
)


@pytest.fixture(scope="module")
def numberings(tmp_path_factory):
    """Real numberings written as ``spineai levels`` writes levels.json: a Castellvi IV phantom numbered without
    its CT (no rib in view: flagged, low confidence) and a normal phantom numbered with it (trusted)."""
    from spineai.levels import label_levels
    from spineai.phantom import generate_ct_phantom

    root = tmp_path_factory.mktemp("levels")
    out = {}
    for name, seed, variant, with_ct in (("castellvi", 5, "castellvi_IV", False), ("normal", 3, None, True)):
        case = generate_ct_phantom(
            seed, spacing_mm=2.0, progress=False, **({"variant": variant} if variant else {})
        )
        result = label_levels(case.labels, ct=case.image if with_ct else None)
        folder = root / name
        folder.mkdir()
        (folder / "levels.json").write_text(json.dumps(result.to_dict()), encoding="utf-8")
        out[name] = (result, folder)
    return out


def test_flagged_numbering_gives_a_vertebra_table_a_red_warning_and_marked_rows(numberings):
    result, folder = numberings["castellvi"]
    assert result.flagged and not result.get("L5").trusted and result.transitional["castellvi_type"] == "IV"
    path = levelinfo.find_levels_file([None, folder / "absent", folder])
    assert path == folder / "levels.json"
    info = levelinfo.read_levels_file(path)
    table = levelinfo.levels_table(info)
    assert [c.name for c in table.columns] == [
        "Vertebra", "VerSe label", "Confidence", "Trusted", "Flags", "Castellvi", "Check",
    ]  # fmt: skip
    assert table.column("Vertebra") == result.names
    assert table.column("Confidence") == pytest.approx([round(v.confidence, 3) for v in result.vertebrae])
    assert table.column("Trusted") == ["yes" if v.trusted else "no" for v in result.vertebrae]
    assert table.column("VerSe label") == [float(v.verse_label) for v in result.vertebrae]
    for row, v in zip(table.rows, result.vertebrae, strict=True):
        assert row["Flags"] == ", ".join(v.flags)
        assert row["Check"].startswith("⚠") == (not v.trusted or "transitional" in v.flags)
    l5 = table.rows[result.names.index("L5")]
    assert l5["Castellvi"] == "left II, right III" and "L5 transitional" in l5["Check"]
    warning = levelinfo.warning_text(info)
    assert warning.startswith("⚠ Level labels flagged.")
    assert "Castellvi type IV (left II, right III)" in warning and "Low confidence" in warning
    assert warning.endswith("Check the level labels before acting on any level-named measurement.")
    # the triangle table: each level's confidence (the lower of its two vertebrae) and the mark
    data = levelinfo.annotate_planning_table(tables.parse_tsv(TRIANGLE_TSV), info)
    assert [c.name for c in data.columns][:4] == ["level", "level_confidence", "level_check", "side"]
    assert [c.numeric for c in data.columns][1:3] == [True, False]
    l5_conf = round(result.get("L5").confidence, 3)
    assert data.column("level_confidence") == pytest.approx(
        [min(round(result.get("L4").confidence, 3), l5_conf), l5_conf, l5_conf]
    )
    assert all(c.startswith("⚠ check: ") and "L5 not trusted" in c for c in data.column("level_check"))
    assert (
        "Castellvi IV" in data.column("level_check")[1] and "L4 not trusted" in data.column("level_check")[0]
    )
    assert data.column("area_mm2") == [41.2, 9.1, 8.7]  # the measurement itself is unchanged
    assert levelinfo.annotate_planning_table(data, info) is data  # annotated once only
    lines = levelinfo.annotate_summary(
        ["L5-S1 left: Kambin 40.0 mm2, safe 9.0 mm2", "No foramen could be measured."], info
    )
    assert lines[0].startswith("L5-S1 left: Kambin 40.0 mm2, safe 9.0 mm2 ⚠ check the level: L5 not trusted")
    assert lines[1] == "No foramen could be measured."


def test_trusted_numbering_shows_no_warning_and_no_marks(numberings):
    result, folder = numberings["normal"]
    info = levelinfo.read_levels_file(levelinfo.find_levels_file([folder]))
    assert not info.flagged and levelinfo.warning_text(info) == ""
    assert levelinfo.levels_table(info).column("Check") == [""] * len(result.names)
    data = levelinfo.annotate_planning_table(tables.parse_tsv(TRIANGLE_TSV), info)
    assert data.column("level_check") == ["", "", ""]
    assert data.column("level_confidence")[1] == pytest.approx(round(result.get("L5").confidence, 3))
    status = levelinfo.status_text(info)
    assert status.startswith("Numbered from the sacrum") and "⚠" not in status
    assert all(f"{v.name} {v.confidence:.2f}" in status for v in result.vertebrae)
    lines = ["L5-S1 left: Kambin 40.0 mm2"]
    assert levelinfo.annotate_summary(lines, info) == lines == levelinfo.annotate_summary(lines, None)
    assert levelinfo.annotate_planning_table(data, None) is data and levelinfo.warning_text(None) == ""


def test_level_files_that_cannot_be_read_are_refused_in_plain_words(tmp_path):
    assert levelinfo.read_levels_file(None) is None and levelinfo.find_levels_file([tmp_path, None]) is None
    with pytest.raises(ValueError, match="does not exist"):
        levelinfo.read_levels_file(tmp_path / "levels.json")
    (tmp_path / "levels.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        levelinfo.read_levels_file(tmp_path / "levels.json")
    (tmp_path / "levels.json").write_text(json.dumps({"format": "spineai-triangle-measurements"}))
    with pytest.raises(ValueError, match="not a 'spineai levels' result"):
        levelinfo.read_levels_file(tmp_path / "levels.json")


def test_segmentation_lib_imports_no_slicer():
    import ast

    forbidden = ("slicer", "qt", "ctk", "vtk", "PythonQt", "SpineAISegmentation")
    files = sorted((REPO / "SpineAISegmentation" / "SpineAISegmentationLib").glob("*.py"))
    assert len(files) >= 2
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module.split(".")[0]]
            assert not any(n in forbidden for n in names), f"{f.name} imports {names}"


def test_module_shows_levels_in_red_and_warns_through_slicer_util():
    """The widget keeps the logic in the Lib: the warning labels are red in the .ui, and the module shows the
    Lib's text with slicer.util.warningDisplay and a status message."""
    import ast
    import xml.etree.ElementTree as ET

    ui = ET.parse(REPO / "SpineAISegmentation" / "Resources" / "UI" / "SpineAISegmentation.ui").getroot()
    widgets = {w.get("name"): w for w in ui.iter("widget")}
    for name in ("levelsWarningLabel", "planningLevelsWarningLabel"):
        style = next(
            p.findtext("string") for p in widgets[name].findall("property") if p.get("name") == "styleSheet"
        )
        assert "#b00000" in style and widgets[name].get("class") == "QLabel"
    assert widgets["levelsTableView"].get("class") == "qMRMLTableView"
    source = (REPO / "SpineAISegmentation" / "SpineAISegmentation.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert {"slicer.util.warningDisplay", "slicer.util.showStatusMessage", "levelinfo.warning_text"} <= calls
    assert {
        "levelinfo.annotate_planning_table",
        "levelinfo.annotate_summary",
        "levelinfo.levels_table",
    } <= calls


@pytest.mark.slow
def test_levels_command_in_the_background_writes_what_the_module_reads(phantom_inputs, measured):
    out = phantom_inputs["root"] / "levels"
    cmd = engine.levels_command(phantom_inputs["labels"], out, ct_path=phantom_inputs["ct"])
    result, _updates, _lines = _run(cmd, timeout=600)
    assert result.succeeded, result.error
    info = levelinfo.read_levels_file(levelinfo.find_levels_file([out]))
    assert info.names[-3:] == ["L4", "L5", "S1"] and info.anchor_method in ("sacrum", "both")
    assert not info.flagged and levelinfo.warning_text(info) == ""
    assert engine.find_label_map(out)[0].name == "labels.nii.gz"  # the renumbered map the module loads
    data = levelinfo.annotate_planning_table(tables.read_tsv(measured.table), info)
    assert data.column("level") == ["L5-S1", "L5-S1"] and data.column("level_check") == ["", ""]
    assert all(0.8 <= c <= 1.0 for c in data.column("level_confidence"))
