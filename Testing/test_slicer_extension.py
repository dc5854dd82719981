"""The 3D Slicer extension, checked without Slicer.

- every ``.ui`` is valid Qt Designer XML and loads with Qt (PySide6, offscreen), custom ctk/qMRML widgets
  standing in as the Qt classes they extend; every ``self.ui.<name>`` the module code uses exists with a
  fitting class; every ``SlicerParameterName`` is a field of the module's ``@parameterNodeWrapper`` class and
  sits on a widget Slicer's GUI connectors can bind to that field's type;
- every module file compiles; the CMake files list every script and resource that exists and nothing else;
- the Slicer-free helpers in ``SpineAILib`` (LPS/RAS, sidecar -> segments, tables, export, process runner,
  dependencies, site weights) behave as documented;
- the background command lines the modules build run for real against the engine CLI and produce the files
  the module then loads.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import py_compile
import re
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "SpineAI"))  # SpineAILib sits beside the engine package, as in Slicer

from SpineAILib import dependencies, engine, export, frames, labels, models, tables  # noqa: E402
from SpineAILib.process import CANCELLED, BackgroundProcess, kill_process_tree, run_to_completion  # noqa: E402

from spineai import anatomy  # noqa: E402

MODULES = ("SpineAI", "SpineAISegmentation", "SpineAIGrading")


def _module_file(module: str) -> Path:
    return REPO / module / f"{module}.py"


def _ui_file(module: str) -> Path:
    return REPO / module / "Resources" / "UI" / f"{module}.ui"


# ============================================================================================ .ui files
#: Qt classes the .ui files may use without declaring them
QT_CLASSES = {
    "QWidget", "QLabel", "QPushButton", "QToolButton", "QComboBox", "QCheckBox", "QSpinBox", "QDoubleSpinBox",
    "QLineEdit", "QPlainTextEdit", "QTextEdit", "QProgressBar", "QTableWidget", "QTableView", "QGroupBox",
    "QFrame", "QSlider", "QRadioButton",
}  # fmt: skip


def _custom_widgets(root: ET.Element) -> dict[str, str]:
    return {cw.findtext("class"): cw.findtext("extends") for cw in root.iter("customwidget")}


def _qt_base(cls: str, custom: dict[str, str]) -> str:
    while cls in custom:
        cls = custom[cls]
    return cls


def _ui_widgets(module: str) -> dict[str, str]:
    """{objectName: class} of every named widget of a module's .ui."""
    root = ET.parse(_ui_file(module)).getroot()
    return {w.get("name"): w.get("class") for w in root.iter("widget")}


@pytest.mark.parametrize("module", MODULES)
def test_ui_is_valid_designer_xml_with_declared_custom_widgets(module):
    root = ET.parse(_ui_file(module)).getroot()
    assert root.tag == "ui" and root.get("version") == "4.0"
    assert root.findtext("class") == module
    top = root.find("widget")
    assert top.get("class") == "qMRMLWidget" and top.get("name") == module
    custom = _custom_widgets(root)
    for cls, base in custom.items():
        assert base in QT_CLASSES, f"{cls} must extend a Qt class, not {base}"
        header = next(
            cw.findtext("header") for cw in root.iter("customwidget") if cw.findtext("class") == cls
        )
        assert header == f"{cls}.h"
    used = {w.get("class") for w in root.iter("widget")}
    undeclared = used - QT_CLASSES - set(custom)
    assert not undeclared, (
        f"{module}.ui uses classes neither Qt nor declared in <customwidgets>: {undeclared}"
    )
    unused = set(custom) - used
    assert not unused, f"{module}.ui declares custom widgets it does not use: {unused}"
    names = [w.get("name") for w in root.iter("widget")]
    assert len(names) == len(set(names)), "widget names must be unique"


def _load_ui_with_qt(xml_bytes: bytes):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    pyside = pytest.importorskip(
        "PySide6", reason="PySide6 is needed to load .ui files (pip install PySide6-Essentials)"
    )
    del pyside
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtUiTools import QUiLoader
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    buffer = QBuffer()
    buffer.setData(QByteArray(xml_bytes))
    buffer.open(QIODevice.ReadOnly)
    loader = QUiLoader()
    widget = loader.load(buffer)
    return app, widget, loader.errorString()


@pytest.mark.parametrize("module", MODULES)
def test_ui_loads_with_qt_custom_widgets_as_their_base_classes(module):
    tree = ET.parse(_ui_file(module))
    root = tree.getroot()
    custom = _custom_widgets(root)
    expected = {}
    for w in root.iter("widget"):
        expected[w.get("name")] = _qt_base(w.get("class"), custom)
        w.set("class", expected[w.get("name")])
    root.remove(root.find("customwidgets"))
    _app, widget, error = _load_ui_with_qt(ET.tostring(root, encoding="utf-8"))
    assert widget is not None, error
    from PySide6 import QtWidgets

    for name, cls in expected.items():
        if name == module:
            continue
        child = widget.findChild(QtWidgets.QWidget, name)
        assert child is not None, f"{name} missing after loading {module}.ui"
        assert isinstance(child, getattr(QtWidgets, cls)), f"{name} is {type(child).__name__}, expected {cls}"
    # dynamic properties survive (connectGui finds widgets by them)
    for w in root.iter("widget"):
        for prop in w.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                child = widget.findChild(QtWidgets.QWidget, w.get("name"))
                assert child.property("SlicerParameterName") == prop.findtext("string")
    widget.deleteLater()


@pytest.mark.parametrize("module", MODULES)
def test_mrml_widgets_receive_the_scene(module):
    root = ET.parse(_ui_file(module)).getroot()
    custom = _custom_widgets(root)
    mrml = {
        w.get("name")
        for w in root.iter("widget")
        if w.get("class").startswith("qMRML") and w.get("name") != module
    }
    connected = {
        c.findtext("receiver")
        for c in root.iter("connection")
        if c.findtext("sender") == module
        and c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
        and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"
    }
    assert mrml == connected, f"MRML widgets without the scene connection: {mrml - connected}"
    assert all(name in {w.get("name") for w in root.iter("widget")} for name in connected)
    assert custom  # every module uses at least the qMRMLWidget container


# ============================================================================== module code vs .ui
#: name suffix -> widget classes a widget with that name may be (longest suffix first)
SUFFIX_CLASSES = (
    ("CollapsibleButton", {"ctkCollapsibleButton"}),
    ("DirectoryButton", {"ctkDirectoryButton"}),
    ("Button", {"QPushButton", "QToolButton"}),
    ("Selector", {"qMRMLNodeComboBox"}),
    ("ComboBox", {"QComboBox", "ctkComboBox"}),
    ("CheckBox", {"QCheckBox", "ctkCheckBox"}),
    ("SpinBox", {"QSpinBox", "QDoubleSpinBox", "ctkDoubleSpinBox"}),
    ("SliderWidget", {"ctkSliderWidget"}),
    ("PathLineEdit", {"ctkPathLineEdit"}),
    ("LineEdit", {"QLineEdit"}),
    ("Label", {"QLabel"}),
    ("ProgressBar", {"QProgressBar"}),
    ("TableWidget", {"QTableWidget"}),
    ("TableView", {"qMRMLTableView"}),
    ("TextEdit", {"QPlainTextEdit", "QTextEdit"}),
    ("Widget", {"QWidget"}),
)


def _expected_classes(name: str) -> set[str]:
    for suffix, classes in SUFFIX_CLASSES:
        if name.lower().endswith(suffix.lower()):
            return classes
    raise AssertionError(
        f"widget name '{name}' has no recognised suffix (e.g. ...Button, ...Selector, ...Label)"
    )


def _ui_names_used(module: str) -> set[str]:
    tree = ast.parse(_module_file(module).read_text(encoding="utf-8"))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "ui"
    }


@pytest.mark.parametrize("module", MODULES)
def test_every_ui_name_the_code_uses_exists_with_a_fitting_class(module):
    widgets = _ui_widgets(module)
    used = _ui_names_used(module)
    assert used, f"{module}.py uses no self.ui widgets"
    for name in sorted(used):
        assert name in widgets, f"{module}.py uses self.ui.{name}, which {module}.ui does not define"
        assert widgets[name] in _expected_classes(name), f"self.ui.{name} is a {widgets[name]}"
    for name, cls in widgets.items():
        if name != module and not name.endswith("Label"):
            assert cls in _expected_classes(name), f"{name} in {module}.ui is a {cls}"


def _parameter_fields(module: str) -> dict[str, str]:
    """{field: annotation source} of the module's @parameterNodeWrapper class."""
    tree = ast.parse(_module_file(module).read_text(encoding="utf-8"))
    classes = [
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        and any(ast.unparse(d) == "parameterNodeWrapper" for d in node.decorator_list)
    ]
    assert len(classes) == 1, f"{module}.py must have one @parameterNodeWrapper class"
    return {
        stmt.target.id: ast.unparse(stmt.annotation)
        for stmt in classes[0].body
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
    }


def _connector_classes(annotation: str) -> set[str]:
    """Widget classes Slicer's parameterNodeWrapper GUI connectors bind to a field of this type
    (from Base/Python/slicer/parameterNodeWrapper/guiConnectors.py)."""
    if "vtkMRML" in annotation:
        return {"qMRMLNodeComboBox"}
    if "Choice(" in annotation:
        return {"QComboBox", "ctkComboBox"}
    base = re.sub(r"^Annotated\[([\w.]+),.*\]$", r"\1", annotation)
    return {
        "bool": {"QCheckBox", "ctkCheckBox", "QPushButton", "ctkCheckablePushButton"},
        "int": {
            "QSpinBox",
            "QSlider",
            "QDoubleSpinBox",
            "ctkSliderWidget",
            "ctkDoubleSpinBox",
            "qMRMLSliderWidget",
        },
        "float": {
            "QDoubleSpinBox",
            "ctkSliderWidget",
            "ctkDoubleSpinBox",
            "ctkDoubleSlider",
            "qMRMLSliderWidget",
        },
        "str": {"QLineEdit", "QLabel", "QTextEdit"},
        "pathlib.Path": {"ctkPathLineEdit", "ctkDirectoryButton"},
        "Path": {"ctkPathLineEdit", "ctkDirectoryButton"},
    }.get(base, set())


@pytest.mark.parametrize("module", MODULES)
def test_parameter_names_are_wrapper_fields_on_bindable_widgets(module):
    fields = _parameter_fields(module)
    root = ET.parse(_ui_file(module)).getroot()
    bound = {}
    for w in root.iter("widget"):
        for prop in w.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                assert prop.get("stdset") == "0", "SlicerParameterName must be a dynamic property (stdset=0)"
                bound[prop.findtext("string")] = (w.get("name"), w.get("class"))
    assert bound, f"{module}.ui binds no widget to the parameter node"
    for parameter, (name, cls) in bound.items():
        assert parameter in fields, (
            f"{name} is bound to '{parameter}', not a field of the parameter node class"
        )
        assert cls in _connector_classes(fields[parameter]), (
            f"{name} ({cls}) cannot be bound to {parameter}: {fields[parameter]}"
        )


# ======================================================================================= compilation
def _extension_python_files() -> list[Path]:
    files = [_module_file(m) for m in MODULES]
    files += sorted((REPO / "SpineAI" / "SpineAILib").glob("*.py"))
    for m in MODULES:
        files += sorted((REPO / m / "Testing" / "Python").glob("*.py"))
    return files


def test_every_extension_python_file_compiles(tmp_path):
    files = _extension_python_files()
    assert len(files) >= 3 + 9 + 3
    for f in files:
        py_compile.compile(str(f), cfile=str(tmp_path / (f.stem + ".pyc")), doraise=True)


def test_slicer_free_helpers_do_not_import_slicer():
    forbidden = ("slicer", "qt", "ctk", "vtk", "PythonQt", "SpineAI")
    for f in sorted((REPO / "SpineAI" / "SpineAILib").glob("*.py")):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module.split(".")[0]]
            assert not any(n in forbidden for n in names), f"{f.name} imports {names}"


# ============================================================================================= CMake
def _cmake_eval(path: Path) -> dict[str, list[str]]:
    """Evaluate the set/list/file(GLOB_RECURSE) commands of a module CMakeLists.txt."""
    text = re.sub(r"#[^\n]*", "", path.read_text(encoding="utf-8"))
    variables: dict[str, list[str]] = {}

    def expand(token: str) -> list[str]:
        m = re.fullmatch(r"\$\{(\w+)\}", token)
        if m:
            return list(variables.get(m.group(1), []))
        return [re.sub(r"\$\{(\w+)\}", lambda mm: " ".join(variables.get(mm.group(1), [])), token)]

    for command, args in re.findall(r"(\w+)\s*\(([^()]*)\)", text):
        tokens = re.findall(r'"[^"]*"|\S+', args)
        tokens = [t.strip('"') for t in tokens]
        if command == "set" and tokens:
            variables[tokens[0]] = [x for t in tokens[1:] for x in expand(t)]
        elif command == "list" and tokens[0] == "APPEND":
            variables.setdefault(tokens[1], []).extend(x for t in tokens[2:] for x in expand(t))
        elif command == "list" and tokens[0] == "FILTER":
            var, mode, _regex_kw, regex = tokens[1], tokens[2], tokens[3], tokens[4]
            pattern = re.compile(regex.replace("\\\\", "\\"))
            exclude = mode == "EXCLUDE"
            variables[var] = [v for v in variables.get(var, []) if bool(pattern.search(v)) != exclude]
        elif command == "file" and tokens[0] == "GLOB_RECURSE":
            var = tokens[1]
            rest = [t for t in tokens[2:] if t not in ("CONFIGURE_DEPENDS",)]
            assert rest[0] == "RELATIVE"
            patterns = rest[2:]
            found = []
            for pattern in patterns:
                folder, glob = pattern.rsplit("/", 1)
                found += [
                    p.relative_to(path.parent).as_posix()
                    for p in (path.parent / folder).rglob(glob)
                    if p.is_file()
                ]
            variables[var] = sorted(found)
    return variables


def _tracked_files(folder: Path) -> list[str]:
    """Files of the working tree under ``folder`` that git does not ignore (relative POSIX paths)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "."],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return sorted(line for line in out.splitlines() if (folder / line).is_file())
    except (OSError, subprocess.CalledProcessError):
        skip = ("__pycache__", ".egg-info", ".pyc")
        return sorted(
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and not any(s in str(p) for s in skip)
        )


def test_extension_cmake_has_metadata_and_adds_every_module():
    text = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    for key in (
        "EXTENSION_HOMEPAGE",
        "EXTENSION_CATEGORY",
        "EXTENSION_CONTRIBUTORS",
        "EXTENSION_DESCRIPTION",
        "EXTENSION_ICONURL",
        "EXTENSION_SCREENSHOTURLS",
        "EXTENSION_DEPENDS",
    ):
        assert re.search(rf"set\({key}\s", text), key
    assert re.search(r'set\(EXTENSION_DEPENDS "PyTorch"\)', text)
    order = [
        text.index("find_package(Slicer REQUIRED)"),
        text.index("include(${Slicer_USE_FILE})"),
        *(text.index(f"add_subdirectory({m})") for m in MODULES),
        text.index("include(${Slicer_EXTENSION_GENERATE_CONFIG})"),
        text.index("include(${Slicer_EXTENSION_CPACK})"),
    ]
    assert order == sorted(order)
    # the icon and screenshot the URLs name exist in the repository
    assert (REPO / "Resources" / "SpineAI.png").is_file()
    assert (REPO / "Resources" / "Screenshots" / "SpineAISegmentation.png").is_file()
    assert "Resources/SpineAI.png" in text and "Resources/Screenshots/SpineAISegmentation.png" in text


def _cmake_metadata(tmp_path: Path, **defines: str) -> dict[str, str]:
    """Run the top-level CMakeLists' meta-information block in CMake script mode and return its values."""
    import shutil

    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed; the metadata block is checked where it is")
    text = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    block = text[text.index("# Extension meta-information") : text.index("# Extension dependencies")]
    names = ("EXTENSION_HOMEPAGE", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_README_FILE",
             "EXTENSION_LICENSE_FILE", "EXTENSION_DEPENDS")  # fmt: skip
    script = tmp_path / "meta.cmake"
    script.write_text(
        f"set(CMAKE_CURRENT_SOURCE_DIR {REPO.as_posix()})\n"
        + block
        + "".join(f'message(STATUS "{n}=${{{n}}}")\n' for n in names),
        encoding="utf-8",
    )
    argv = [cmake, *(f"-D{k}={v}" for k, v in defines.items()), "-P", str(script)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    values = {}
    for line in (out.stdout + out.stderr).splitlines():
        m = re.match(r"^(?:-- )?(EXTENSION_\w+)=(.*)$", line.strip())
        if m:
            values[m.group(1)] = m.group(2)
    return values


def test_extension_links_are_empty_unless_the_repository_url_is_set(tmp_path):
    values = _cmake_metadata(tmp_path)
    assert (
        values["EXTENSION_HOMEPAGE"]
        == values["EXTENSION_ICONURL"]
        == values["EXTENSION_SCREENSHOTURLS"]
        == ""
    )
    assert Path(values["EXTENSION_README_FILE"]) == REPO / "README.md" and (REPO / "README.md").is_file()
    assert Path(values["EXTENSION_LICENSE_FILE"]) == REPO / "LICENSE" and (REPO / "LICENSE").is_file()
    assert values["EXTENSION_DEPENDS"] == "PyTorch"
    url = "https://example.org/team/SlicerSpineAI"
    values = _cmake_metadata(tmp_path, SPINEAI_REPOSITORY_URL=url + "/")
    assert values["EXTENSION_HOMEPAGE"] == f"{url}/blob/main/docs/slicer.md"
    for key, path in (("EXTENSION_ICONURL", "Resources/SpineAI.png"),
                      ("EXTENSION_SCREENSHOTURLS", "Resources/Screenshots/SpineAISegmentation.png")):  # fmt: skip
        assert values[key] == f"{url}/raw/main/{path}" and (REPO / path).is_file()
    assert (REPO / "docs" / "slicer.md").is_file()
    text = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "github.com/SpineAI" not in text, "no made-up repository address"


@pytest.mark.parametrize("module", MODULES)
def test_module_cmake_lists_every_script_and_resource_and_nothing_else(module):
    folder = REPO / module
    variables = _cmake_eval(folder / "CMakeLists.txt")
    assert variables["MODULE_NAME"] == [module]
    scripts = set(variables["MODULE_PYTHON_SCRIPTS"])
    resources = set(variables["MODULE_PYTHON_RESOURCES"])
    files = [f for f in _tracked_files(folder) if not f.startswith("Testing/")]
    want_scripts = {f for f in files if f.endswith(".py")}
    want_resources = {
        f for f in files if f.startswith("Resources/") or f.startswith("spineai/resources/")
    } - want_scripts
    assert scripts == want_scripts, (
        f"scripts: missing {want_scripts - scripts}, extra {scripts - want_scripts}"
    )
    assert resources == want_resources, (
        f"resources: missing {want_resources - resources}, extra {resources - want_resources}"
    )
    text = (folder / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "WITH_GENERIC_TESTS" in text and "slicerMacroBuildScriptedModule(" in text
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text
    for needed in (f"Resources/Icons/{module}.png", f"Resources/UI/{module}.ui"):
        assert needed in resources


def test_engine_package_travels_with_the_hub_module():
    variables = _cmake_eval(REPO / "SpineAI" / "CMakeLists.txt")
    scripts = set(variables["MODULE_PYTHON_SCRIPTS"])
    for name in ("spineai/__init__.py", "spineai/__main__.py", "spineai/cli.py", "spineai/anatomy.py"):
        assert name in scripts
    resources = set(variables["MODULE_PYTHON_RESOURCES"])
    assert "spineai/resources/SpineAI.term.json" in resources


@pytest.mark.parametrize("module", MODULES)
def test_workflow_tests_are_registered_and_are_slicer_tests(module):
    testing = REPO / module / "Testing"
    assert (testing / "CMakeLists.txt").read_text(encoding="utf-8").strip() == "add_subdirectory(Python)"
    registered = re.findall(
        r"slicer_add_python_unittest\(SCRIPT (\S+)\)", (testing / "Python" / "CMakeLists.txt").read_text()
    )
    present = sorted(p.name for p in (testing / "Python").glob("*.py"))
    assert sorted(registered) == present and present
    for name in present:
        tree = ast.parse((testing / "Python" / name).read_text(encoding="utf-8"))
        classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
        slicer_tests = [
            c for c in classes if any(ast.unparse(b) == "ScriptedLoadableModuleTest" for b in c.bases)
        ]
        assert slicer_tests, f"{name} defines no ScriptedLoadableModuleTest"
        methods = [f.name for c in slicer_tests for f in c.body if isinstance(f, ast.FunctionDef)]
        assert any(m.startswith("test_") for m in methods)


@pytest.mark.parametrize("module", MODULES)
def test_icons_are_real_128px_pictures(module):
    from PIL import Image

    with Image.open(REPO / module / "Resources" / "Icons" / f"{module}.png") as img:
        assert img.size == (128, 128)
        arr = np.asarray(img.convert("RGBA"))
    assert len(np.unique(arr.reshape(-1, 4), axis=0)) > 20, "icon looks blank"


# ==================================================================================== LPS <-> RAS
def test_lps_ras_points_flip_x_and_y():
    lps = np.array([[10.0, -20.0, 30.0], [-1.5, 2.5, -3.5]])
    ras = frames.lps_to_ras(lps)
    assert ras.tolist() == [[-10.0, 20.0, 30.0], [1.5, -2.5, -3.5]]
    assert np.allclose(frames.ras_to_lps(ras), lps)
    assert frames.lps_to_ras([1, 2, 3]).tolist() == [-1.0, -2.0, 3.0]
    with pytest.raises(ValueError, match="shape"):
        frames.lps_to_ras([[1, 2]])
    with pytest.raises(ValueError, match="NaN"):
        frames.ras_to_lps([np.nan, 0, 0])


def test_ijk_to_ras_matches_simpleitk_physical_points_for_an_oblique_image():
    img = sitk.Image(5, 6, 7, sitk.sitkInt16)
    img.SetSpacing((0.7, 0.9, 2.5))
    img.SetOrigin((12.0, -34.0, 56.0))
    angle = np.deg2rad(20)
    direction = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    direction = direction @ np.diag([1, -1, 1])  # a flipped axis too
    img.SetDirection(tuple(direction.reshape(-1)))
    m = frames.ijk_to_ras_from_geometry(img.GetOrigin(), img.GetSpacing(), img.GetDirection())
    for index in ((0, 0, 0), (4, 5, 6), (2, 1, 3)):
        ras = m @ np.array([*index, 1.0])
        lps = img.TransformIndexToPhysicalPoint(index)
        assert np.allclose(ras[:3], frames.lps_to_ras(lps))
    g = frames.geometry_from_ijk_to_ras(m)
    assert np.allclose(g.origin, img.GetOrigin()) and np.allclose(g.spacing, img.GetSpacing())
    assert np.allclose(g.direction, img.GetDirection())
    copy = sitk.Image(5, 6, 7, sitk.sitkInt16)
    frames.geometry_to_sitk(copy, g)
    assert np.allclose(
        copy.TransformIndexToPhysicalPoint((4, 5, 6)), img.TransformIndexToPhysicalPoint((4, 5, 6))
    )
    with pytest.raises(ValueError, match="zero-length"):
        frames.geometry_from_ijk_to_ras(np.diag([1.0, 0.0, 1.0, 1.0]))


# ============================================================================= sidecar -> segments
def test_engine_sidecar_gives_named_coloured_tagged_segments(tmp_path):
    from spineai import io

    arr = np.zeros((4, 5, 6), np.uint8)
    arr[1, 1:3, 1:4] = anatomy.structure("L5").label
    arr[2, 2:4, 2:5] = anatomy.structure("root_L5_left").label
    image = sitk.GetImageFromArray(arr)
    mapping = anatomy.LabelMapping(
        "spineai", {anatomy.structure(n).label: n for n in ("L5", "S1", "root_L5_left")}
    )
    io.write_labelmap_nifti(io.LabelMap(image, mapping), tmp_path / "labels.nii.gz")
    sidecar = labels.read_label_sidecar(tmp_path / "labels.json")
    assert [s.name for s in sidecar.specs] == ["L5", "S1", "root_L5_left"]
    for spec in sidecar.specs:
        s = anatomy.structure(spec.name)
        assert spec.label == s.label and spec.rgb == tuple(s.rgb)
        assert spec.color == pytest.approx(tuple(c / 255 for c in s.rgb))
        assert spec.terminology == anatomy.terminology_entry(spec.name)
        entry = labels.parse_terminology_entry(spec.terminology)
        assert entry.serialize() == spec.terminology
        assert entry.context in (anatomy.SPINEAI_CONTEXT, anatomy.SLICER_DICOM_CONTEXT)
    root = labels.parse_terminology_entry(sidecar.by_name()["root_L5_left"].terminology)
    assert root.type.meaning == "Spinal nerve root" and root.type_modifier.meaning == "Left"
    assert root.context == anatomy.SPINEAI_CONTEXT, "nerve roots need the extension's own terminology"
    rows = labels.colour_table_entries(sidecar.specs)
    assert rows[0][:2] == (anatomy.structure("L5").label, "L5") and rows[0][5] == 1.0
    assert labels.parse_label_sidecar(sidecar.to_dict()) == sidecar


def test_every_canonical_terminology_entry_parses_and_is_in_the_shipped_term_json():
    term = anatomy.load_terminology_json()
    types = {
        (t["CodingSchemeDesignator"], t["CodeValue"])
        for cat in term["SegmentationCodes"]["Category"]
        for t in cat.get("Type", [])
    }
    for s in anatomy.STRUCTURES:
        entry = labels.parse_terminology_entry(anatomy.terminology_entry(s.name))
        if entry.context == term["SegmentationCategoryTypeContextName"]:
            assert (entry.type.scheme, entry.type.value) in types, s.name


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "no 'labels' table"),
        ({"labels": {}}, "lists no labels"),
        ({"labels": {"x": {"name": "L5", "rgb": [1, 2, 3]}}}, "must be integers"),
        ({"labels": {"0": {"name": "L5", "rgb": [1, 2, 3]}}}, "0 is background"),
        ({"labels": {"6": {"name": "L 5", "rgb": [1, 2, 3]}}}, "canonical structure name"),
        ({"labels": {"6": {"name": "L5", "rgb": [1, 2]}}}, "three numbers"),
        ({"labels": {"6": {"name": "L5", "rgb": [1, 2, 300]}}}, "0..255"),
        (
            {"labels": {"6": {"name": "L5", "rgb": [1, 2, 3]}, "7": {"name": "L5", "rgb": [1, 2, 3]}}},
            "unique",
        ),
        ({"labels": {"6": {"name": "L5", "rgb": [1, 2, 3], "terminology": "a~b"}}}, "7"),
    ],
)
def test_bad_sidecars_are_refused_with_the_reason(data, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        labels.parse_label_sidecar(data)


def test_terminology_without_type_code_is_refused():
    with pytest.raises(ValueError, match="no type code"):
        labels.parse_terminology_entry("ctx~SCT^1^Cat~^^~^^~rc~^^~^^")


def test_segment_names_map_to_canonical_values_for_export():
    sidecar = labels.canonical_sidecar(["L5", "S1"])
    values = labels.label_values_for_segments(["S1", "L5", "root_S1_right"], sidecar)
    assert values == {
        "S1": anatomy.structure("S1").label,
        "L5": anatomy.structure("L5").label,
        "root_S1_right": anatomy.structure("root_S1_right").label,
    }
    with pytest.raises(ValueError, match="not a canonical SpineAI structure"):
        labels.label_values_for_segments(["Segment_1"], sidecar)


# ============================================================================================ tables
def test_structure_table_volumes_and_extent_on_axial_and_sagittal_grids():
    arr = np.zeros((10, 8, 6), np.uint8)
    arr[2:7, 1:3, 1:4] = 6  # 5 slices x 2 x 3 voxels
    specs = labels.canonical_sidecar(["L5", "S1"]).specs
    axial = np.diag([0.5, 0.5, 2.0, 1.0])
    rows = {r["Structure"]: r for r in tables.structure_rows(arr, axial, specs)}
    assert rows["L5"]["Voxels"] == 30 and rows["L5"]["Volume"] == pytest.approx(30 * 0.5 * 0.5 * 2.0)
    assert rows["L5"]["Cranio-caudal extent"] == pytest.approx(5 * 2.0)
    assert rows["S1"]["Voxels"] == 0 and rows["S1"]["Cranio-caudal extent"] == 0
    assert tables.missing_structures(rows.values(), ["L5", "S1"]) == ["S1"]
    # sagittal acquisition: the i axis runs superior, k runs left-right
    sagittal = np.array([[0, 0, -2.0, 0], [0, -0.5, 0, 0], [0.5, 0, 0, 0], [0, 0, 0, 1.0]])
    rows = {r["Structure"]: r for r in tables.structure_rows(arr, sagittal, specs)}
    assert rows["L5"]["Cranio-caudal extent"] == pytest.approx(3 * 0.5)
    assert rows["L5"]["Volume"] == pytest.approx(30 * 0.5 * 0.5 * 2.0)
    assert [c for c, _ in tables.STRUCTURE_TABLE_COLUMNS] == list(rows["L5"])


def test_model_table_rows_from_real_cards_and_grading_filter(tmp_path):
    torch = pytest.importorskip("torch")
    from spineai.segmentation.network import ARCHITECTURE, build_network
    from spineai.weights import list_models, save_weights

    torch.manual_seed(0)
    net = build_network({"out_channels": 3, "features": [4, 8]})
    card = {
        "name": "site_ct",
        "task": "ct_segmentation",
        "architecture": ARCHITECTURE,
        "config": net.config,
        "class_names": ["background", "L5", "S1"],
        "training_data": "12 local CTs",
        "metrics": {"dice_bone": 0.91},
    }
    save_weights(net, tmp_path / "site_ct.safetensors", card)
    grading = dict(card, name="axial_grader", task="axial_mri_grading")
    save_weights(net, tmp_path / "axial_grader.safetensors", grading)
    cards = list_models(models_dir=tmp_path)
    rows = tables.model_rows(cards)
    assert [r["Model"] for r in rows] == ["axial_grader 1.0", "site_ct 1.0"]
    assert rows[1]["Training data"] == "12 local CTs" and rows[1]["Figures"] == "dice_bone: 0.91"
    assert rows[1]["Intended use"] == "research use only, not for clinical decisions"
    assert set(rows[0]) == set(tables.MODEL_TABLE_COLUMNS)
    assert [c.name for c in tables.grading_models(cards)] == ["axial_grader"]
    assert tables.grading_models(cards, "outcome") == []
    with pytest.raises(ValueError, match="Unknown grading family"):
        tables.grading_models(cards, "bogus")


# ==================================================================================== site weights
def test_site_weights_are_verified_copied_and_never_overwritten(tmp_path):
    torch = pytest.importorskip("torch")
    from spineai.errors import WeightsError
    from spineai.segmentation.network import ARCHITECTURE, build_network
    from spineai.weights import save_weights

    torch.manual_seed(0)
    net = build_network({"out_channels": 3, "features": [4, 8]})
    card = {"name": "site", "task": "ct_segmentation", "architecture": ARCHITECTURE, "config": net.config}
    src = tmp_path / "run"
    weights, _ = save_weights(net, src / "model.safetensors", card)
    user = tmp_path / "user models"
    copy, card_copy = models.install_site_weights(weights, user)
    assert copy.read_bytes() == weights.read_bytes() and card_copy.is_file()
    found = models.installed_models(user)
    site = [m for m in found if m.source == "site"]
    assert [m.card.name for m in site] == ["site"] and site[0].verified
    with pytest.raises(FileExistsError):
        models.install_site_weights(weights, user)
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    (tampered / "model.safetensors").write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    (tampered / "model.json").write_bytes((src / "model.json").read_bytes())
    other = tmp_path / "other"
    with pytest.raises(WeightsError, match="does not match its model card"):
        models.install_site_weights(tampered / "model.safetensors", other)
    assert not other.exists() or not any(other.iterdir())
    (user / "model.safetensors").write_bytes(b"broken")
    assert models.weights_status(site[0].card, user).startswith("Weights file")
    with pytest.raises(ValueError, match="pickled"):
        models.install_site_weights(tmp_path / "model.pt", user)


# ============================================================================================ export
def test_compose_label_array_reports_overlaps_and_edits():
    a = np.zeros((3, 4, 5), bool)
    a[0, :2] = True
    b = np.zeros_like(a)
    b[0, 1:3] = True
    out, overlaps = export.compose_label_array({"L5": a, "S1": b}, {"L5": 6, "S1": 8})
    assert out.dtype == np.uint16 and out[0, 0, 0] == 6 and out[0, 1, 0] == 8 and out[0, 2, 0] == 8
    assert overlaps == ["L5", "S1"]
    original = np.where(a, 6, 0)
    assert export.edited_structures(original, out, {6: "L5", 8: "S1"}) == ["L5", "S1"]
    assert export.edited_structures(out, out, {}) == []
    with pytest.raises(ValueError, match="different shapes"):
        export.compose_label_array({"L5": a, "S1": b[:1]}, {"L5": 6, "S1": 8})


def test_exported_case_is_read_by_the_training_data_reader(tmp_path):
    ct = np.random.default_rng(0).normal(0, 100, (6, 7, 8)).astype(np.int16)
    lab = np.zeros(ct.shape, np.uint16)
    lab[1:3, 2:5, 2:6] = anatomy.structure("L5").label
    lab[3:5, 2:5, 2:6] = anatomy.structure("root_L5_right").label
    m = frames.ijk_to_ras_from_geometry((5.0, -6.0, 7.0), (0.8, 0.9, 2.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    sidecar = labels.canonical_sidecar(["L5", "root_L5_right"])
    prov = export.provenance_record("seg (engine)", ["L5"], "0.1.0", "CT 1", user="alice")
    root = tmp_path / "training data"
    case = export.write_training_case(root, "CT 1/axial", ct, lab, m, sidecar, prov)
    assert case == root / "CT_1_axial" and export.is_training_case(case)
    again = export.write_training_case(root, "CT 1/axial", ct, lab, m, sidecar, prov)
    assert again == root / "CT_1_axial_2", "an existing case must never be overwritten"
    assert not [p for p in root.iterdir() if p.name.startswith(".")], "temporary folders must not remain"
    img = sitk.ReadImage(str(case / "ct.nii.gz"))
    assert np.allclose(img.GetOrigin(), (5.0, -6.0, 7.0)) and np.allclose(img.GetSpacing(), (0.8, 0.9, 2.0))
    assert np.array_equal(sitk.GetArrayFromImage(img), ct)
    saved = json.loads((case / "provenance.json").read_text())
    assert saved["exported_by"] == "alice" and saved["edited_segments"] == ["L5"] and saved["corrected"]
    assert saved["engine_version"] == "0.1.0" and saved["exported_at"]
    from spineai.segmentation.data import find_cases, read_canonical_labels

    cases = find_cases(root)
    assert [c.case_id for c in cases] == ["CT_1_axial", "CT_1_axial_2"]
    read = sitk.GetArrayFromImage(read_canonical_labels(cases[0].labels, cases[0].mapping))
    assert np.array_equal(read, lab)
    on_grid = export.engine_labels_on_grid(case / "labels.nii.gz", m, lab.shape)
    assert on_grid is not None and np.array_equal(on_grid, lab)
    shifted = m.copy()
    shifted[0, 3] += 1.0
    assert export.engine_labels_on_grid(case / "labels.nii.gz", shifted, lab.shape) is None
    with pytest.raises(ValueError, match="no name in the sidecar"):
        export.write_training_case(root, "x", ct, lab, m, labels.canonical_sidecar(["L5"]), prov)


# ================================================================================== engine commands
def test_segment_command_line_and_environment(tmp_path):
    cmd = engine.segment_command(
        tmp_path / "in.nrrd", tmp_path / "out", device="cuda", mode="paper", weights=tmp_path / "w.safetensors",
        surfaces=False, python="/opt/Slicer/bin/PythonSlicer",
    )  # fmt: skip
    assert cmd.argv[:4] == ("/opt/Slicer/bin/PythonSlicer", "-m", "spineai", "segment")
    assert cmd.argv[4:] == (
        str(tmp_path / "in.nrrd"), "-o", str(tmp_path / "out"), "--device", "cuda", "--mode", "paper",
        "--weights", str(tmp_path / "w.safetensors"), "--no-surfaces",
    )  # fmt: skip
    assert cmd.env["SPINEAI_PROGRESS"] == "lines"
    assert cmd.env["PYTHONPATH"].split(os.pathsep)[0] == str(REPO / "SpineAI")
    assert (Path(cmd.env["PYTHONPATH"].split(os.pathsep)[0]) / "spineai" / "__init__.py").is_file()
    assert "--weights" not in engine.segment_command("a", "b", weights=".").argv
    assert (
        "--mirror-tta" not in cmd.argv
        and "--mirror-tta" in engine.segment_command("a", "b", mirror_tta=True).argv
    )
    with pytest.raises(ValueError, match="Device 'gpu'"):
        engine.segment_command("a", "b", device="gpu")
    with pytest.raises(ValueError, match="Mode"):
        engine.segment_command("a", "b", mode="slow")


def test_segment_outputs_read_the_engine_warnings(tmp_path):
    outputs = engine.SegmentOutputs(tmp_path)
    assert outputs.warnings() == []  # no summary yet
    outputs.summary.write_text('{"warnings": ["S1 was not found in the field of view."]}', encoding="utf-8")
    assert outputs.warnings() == ["S1 was not found in the field of view."]
    outputs.summary.write_text("{not json", encoding="utf-8")
    assert outputs.warnings() == []


def test_progress_lines_and_plain_errors_are_parsed():
    assert engine.parse_progress_line("PROGRESS 42.5 segmenting (window 3/8)") == engine.ProgressUpdate(
        42.5, "segmenting (window 3/8)"
    )
    assert engine.parse_progress_line("PROGRESS 140 done").percent == 100.0
    assert engine.parse_progress_line("progress is good") is None
    lines = [
        "PROGRESS 5 reading CT",
        "spineai segment: error: The CT 'x.nrrd' is 2D (one slice).",
        "  Fix: pass a 3D CT with several slices",
        "other",
    ]
    assert (
        engine.error_message(lines)
        == "The CT 'x.nrrd' is 2D (one slice).\nFix: pass a 3D CT with several slices"
    )
    crash = [
        "PROGRESS 5 reading",
        "Traceback (most recent call last):",
        '  File "a.py"',
        "MemoryError: out of memory",
    ]
    assert engine.error_message(crash).endswith("MemoryError: out of memory")
    assert "exit code 3" in engine.error_message(["PROGRESS 1 x"], 3)


# ==================================================================================== process runner
def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_background_process_reports_progress_lines_and_result_through_a_timer():
    timers: list = []
    updates, lines, finished = [], [], []
    job = BackgroundProcess(
        on_progress=updates.append,
        on_line=lines.append,
        on_finished=finished.append,
        schedule=lambda ms, fn: timers.append(fn),
    )
    job.start(
        _python(
            """
            import sys
            print("PROGRESS 10 reading", file=sys.stderr, flush=True)
            print("hello from the engine", flush=True)
            print("PROGRESS 100 done", file=sys.stderr, flush=True)
            """
        ),
        {"SPINEAI_PROGRESS": "lines"},
    )
    deadline = time.monotonic() + 30
    while timers and time.monotonic() < deadline:  # the GUI event loop, run by hand
        timers.pop(0)()
        time.sleep(0.01)
    assert not job.running and finished and finished[0].succeeded
    assert [u.percent for u in updates] == [10.0, 100.0] and updates[0].message == "reading"
    assert lines == ["hello from the engine"]
    assert finished[0].output[-1] == "PROGRESS 100 done"


def test_failed_command_gives_the_engine_error_in_plain_words():
    result = run_to_completion(
        _python(
            """
            import sys
            print("spineai segment: error: Input 'ct.nrrd' does not exist.", file=sys.stderr)
            print("  Fix: pick an existing CT file", file=sys.stderr)
            sys.exit(1)
            """
        ),
        timeout=30,
    )
    assert result.returncode == 1 and not result.succeeded and not result.cancelled
    assert result.error == "Input 'ct.nrrd' does not exist.\nFix: pick an existing CT file"


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("without_psutil", [False, True])
def test_cancel_kills_the_whole_process_tree(monkeypatch, without_psutil):
    pytest.importorskip("psutil")
    lines: list[str] = []
    job = BackgroundProcess(on_line=lines.append, interval_ms=20)
    job.start(
        _python(
            """
            import subprocess, sys, time
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
            print(child.pid, flush=True)
            time.sleep(120)
            """
        )
    )
    deadline = time.monotonic() + 30
    while not lines and time.monotonic() < deadline:
        job.poll()
        time.sleep(0.02)
    assert lines, "the child did not start"
    grandchild = int(lines[0])
    assert _alive(grandchild)
    if without_psutil:
        monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil raises ImportError
    job.cancel()
    result = job.wait(timeout=30)
    monkeypatch.delitem(sys.modules, "psutil", raising=False)
    assert result.cancelled and result.returncode == CANCELLED and result.error == ""
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild), "the grandchild survived the cancel"
    kill_process_tree(job.pid)  # already gone: no error


# ===================================================================================== dependencies
def test_requirements_cover_the_engine_and_leave_slicer_packages_alone():
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11")

    reqs = dependencies.read_requirements(REPO / "SpineAI" / "Resources" / "requirements.txt")
    names = {dependencies.requirement_name(r) for r in reqs}
    assert not names & dependencies.SLICER_OWNED, "never reinstall Slicer's own packages (or torch)"
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    engine_names = {dependencies.requirement_name(r) for r in project}
    assert engine_names - dependencies.SLICER_OWNED <= names
    statuses = dependencies.check_requirements(reqs)
    assert [s.requirement for s in statuses] == reqs
    assert all(s.satisfied for s in statuses), [s for s in statuses if not s.satisfied]


def test_missing_and_old_packages_are_reported():
    import importlib.metadata

    installed = {"monai": "1.2.0"}

    def version_of(name):
        if name in installed:
            return installed[name]
        raise importlib.metadata.PackageNotFoundError(name)

    statuses = dependencies.check_requirements(["monai>=1.3", "tqdm>=4.65"], version_of)
    assert [(s.installed, s.satisfied) for s in statuses] == [("1.2.0", False), (None, False)]
    assert dependencies.unsatisfied(statuses) == ["monai>=1.3", "tqdm>=4.65"]


# ============================================================== the real engine, as the modules run it
@functools.cache
def _engine_offers(subcommand: str) -> bool:
    cmd = engine.help_command(subcommand)
    return subprocess.run(cmd.argv, env=cmd.environment(), capture_output=True, timeout=120).returncode == 0


def _run(cmd: engine.EngineCommand, timeout: float = 600):
    updates = []
    job = BackgroundProcess(on_progress=updates.append, interval_ms=50)
    job.start(cmd.argv, cmd.env)
    return job.wait(timeout=timeout), updates


def _check_segment_outputs(out: Path) -> labels.LabelSidecar:
    outputs = engine.SegmentOutputs(out).check()
    sidecar = labels.read_label_sidecar(outputs.sidecar)
    lab = sitk.ReadImage(str(outputs.labels))
    values = set(np.unique(sitk.GetArrayFromImage(lab)).tolist()) - {0}
    assert values <= set(sidecar.by_label()), "label values without a name in labels.json"
    import nrrd

    header = nrrd.read_header(str(outputs.segmentation))
    segments = {}
    for key, value in header.items():
        m = re.fullmatch(r"Segment(\d+)_(Name|Color|Tags)", key)
        if m:
            segments.setdefault(int(m.group(1)), {})[m.group(2)] = value
    by_name = sidecar.by_name()
    assert {s["Name"] for s in segments.values()} <= set(by_name)
    for seg in segments.values():
        spec = by_name[seg["Name"]]
        assert np.allclose([float(c) for c in seg["Color"].split()], spec.color, atol=1e-3)
        assert f"TerminologyEntry:{spec.terminology}" in seg["Tags"]
    rows = tables.structure_rows(
        sitk.GetArrayFromImage(lab),
        frames.ijk_to_ras_from_geometry(lab.GetOrigin(), lab.GetSpacing(), lab.GetDirection()),
        sidecar.specs,
    )
    assert len(rows) == len(sidecar.specs)
    return sidecar


def test_segment_command_refuses_a_missing_input_in_plain_words(tmp_path):
    if not _engine_offers("segment"):
        pytest.skip("this engine has no 'spineai segment' command yet; the test runs once it exists")
    cmd = engine.segment_command(tmp_path / "absent.nrrd", tmp_path / "out", device="cpu", surfaces=False)
    result, _updates = _run(cmd, timeout=300)
    assert result.returncode != 0 and not result.cancelled
    assert "absent.nrrd" in result.error and "Traceback" not in result.error
    assert not (tmp_path / "out" / "labels.nii.gz").exists()


@pytest.mark.slow
def test_segment_command_runs_and_writes_what_the_module_loads(tmp_path):
    """The command the Segmentation module builds, on a small synthetic CT written as NRRD (as the module
    writes its input), with a tiny site model passed by --weights."""
    if not _engine_offers("segment"):
        pytest.skip("this engine has no 'spineai segment' command yet; the test runs once it exists")
    try:
        from test_segmentation_fixtures import tiny_weights, write_case
    except ImportError as exc:
        pytest.skip(f"the engine's synthetic-case test helpers are not available ({exc})")
    case = write_case(tmp_path / "case", seed=1)
    ct = sitk.ReadImage(str(case / "ct.nii.gz"))
    sitk.WriteImage(ct, str(tmp_path / "input.nrrd"))  # the module hands the engine an NRRD
    weights = tiny_weights(tmp_path / "model")
    out = tmp_path / "result"
    cmd = engine.segment_command(
        tmp_path / "input.nrrd", out, device="cpu", mode="fast", weights=weights, surfaces=False
    )
    result, updates = _run(cmd, timeout=600)
    assert result.succeeded, result.error + "\n" + "\n".join(result.output[-20:])
    assert updates and updates[-1].percent == 100.0
    assert [u.percent for u in updates] == sorted(u.percent for u in updates)
    sidecar = _check_segment_outputs(out)
    assert "L5" in sidecar.by_name()
    assert not (out / "surfaces").exists(), "--no-surfaces was passed"
    lab = sitk.ReadImage(str(out / "labels.nii.gz"))
    assert lab.GetSize() == ct.GetSize() and np.allclose(lab.GetOrigin(), ct.GetOrigin())


def test_phantom_command_writes_what_the_hub_loads(tmp_path):
    """The hub's "Generate phantom CT": the command runs in the background with progress and writes the CT."""
    try:
        from spineai.phantom import generate_ct_phantom  # noqa: F401
    except ImportError:
        pytest.skip("the engine has no phantom generator yet (spineai.phantom); the test runs once it exists")
    out = tmp_path / "phantom"
    result, _updates = _run(engine.phantom_command(out, seed=2), timeout=300)
    assert result.succeeded, result.error
    ct = sitk.ReadImage(str(out / "ct.nii.gz"))
    assert ct.GetDimension() == 3
    hu = sitk.GetArrayViewFromImage(ct)
    assert hu.min() < -500 and hu.max() > 300
    assert json.loads((out / "truth.json").read_text())["seed"] == 2
    sidecar = labels.read_label_sidecar(out / "labels.json")
    assert {"L5", "S1", "root_L5_left", "root_L5_right"} <= set(sidecar.by_name())
    again, _ = _run(engine.phantom_command(out, seed=2), timeout=300)
    assert not again.succeeded and "already exists" in again.error, (
        "an existing phantom must not be overwritten"
    )


@pytest.mark.slow
def test_phantom_and_shipped_model_run_as_the_module_runs_them(tmp_path):
    """Phantom -> NRRD -> ``spineai segment`` with the shipped model, once the engine provides both."""
    try:
        from spineai.phantom import generate_ct_phantom  # noqa: F401
    except ImportError:
        pytest.skip("the engine has no phantom generator yet (spineai.phantom); the test runs once it exists")
    from spineai.segmentation.inference import DEFAULT_MODEL
    from spineai.weights import MODELS_DIR

    if not (MODELS_DIR / f"{DEFAULT_MODEL}.json").is_file():
        pytest.skip(
            f"no shipped CT segmentation model ({DEFAULT_MODEL}.json) yet; the test runs once it ships"
        )
    result, _ = _run(engine.phantom_command(tmp_path / "phantom", seed=3, spacing_mm=1.5), timeout=300)
    assert result.succeeded, result.error
    ct = sitk.ReadImage(str(tmp_path / "phantom" / "ct.nii.gz"))
    sitk.WriteImage(ct, str(tmp_path / "input.nrrd"))
    result, updates = _run(engine.segment_command(tmp_path / "input.nrrd", tmp_path / "out", surfaces=False))
    assert result.succeeded, result.error
    sidecar = _check_segment_outputs(tmp_path / "out")
    assert {"L5", "S1"} <= set(sidecar.by_name())
