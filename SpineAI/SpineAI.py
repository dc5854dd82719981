"""SpineAI hub module: case setup, dependency install, installed models and the way into the workflow modules.

The heavy work (segmentation, phantom generation) runs in the ``spineai`` engine in a background process;
this module only wires the GUI. The engine package travels with the extension, beside this file.
"""

from __future__ import annotations

import html
import importlib.metadata
import importlib.util
import logging
import os
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from SpineAILib import commands, dependencies, engine, models, tables
from SpineAILib.process import BackgroundProcess, ProcessResult, python_executable_for_slicer

#: application settings (per user) shared by the SpineAI modules
SETTINGS_DEVICE = "SpineAI/Device"
SETTINGS_USER_MODELS_DIR = "SpineAI/UserModelsFolder"
SETTINGS_LAST_EXPORT_DIR = "SpineAI/LastExportFolder"

#: the engine's commands (``{command path: --help text}``), listed once per Slicer session by a child process
_engineCommands: dict[str, str] | None = None
#: commands the hub names in its workflow section (when the engine has them)
WORKFLOW_COMMANDS = (
    "segment",
    "measure",
    "plan",
    "levels",
    "grade sagittal",
    "grade axial",
    "grade stenosis",
    "outcome",
    "radiograph",
)


#
# SpineAI
#


class SpineAI(ScriptedLoadableModule):
    """Module description shown in Slicer's module panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SpineAI")
        self.parent.categories = [_("SpineAI")]
        self.parent.dependencies = []
        self.parent.contributors = ["SpineAI contributors"]
        self.parent.helpText = _(
            "Start here: pick or generate a lumbosacral CT, install what SpineAI needs, see the installed "
            "models and their model cards, load weights trained at your site, and open the workflow modules "
            "(segmentation and correction; grading). Research use only, not for clinical decisions. SpineAI "
            "sends nothing anywhere."
        )
        self.parent.acknowledgementText = _(
            "Built on 3D Slicer, MONAI, PyTorch and SimpleITK. The segmentation follows Fan et al., AJNR 2019 "
            "(SPINECT): bones and nerve roots for Kambin's and the safe triangle."
        )


#
# SpineAIParameterNode
#


@parameterNodeWrapper
class SpineAIParameterNode:
    """Hub parameters, saved with the scene.

    inputVolume: the lumbosacral CT of the current case.
    phantomSeed: seed of the synthetic phantom CT the hub can generate (same seed, same phantom).
    """

    inputVolume: vtkMRMLScalarVolumeNode
    phantomSeed: Annotated[int, WithinRange(0, 99999)] = 7


#
# SpineAIWidget
#


class SpineAIWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The hub's panel."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._phantomJob = None
        self._probeJob = None
        self._installed: list = []

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineAI.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SpineAILogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.loadPhantomButton.connect("clicked(bool)", self.onLoadPhantom)
        self.ui.segmentCaseButton.connect("clicked(bool)", self.onSegmentCase)
        self.ui.checkDependenciesButton.connect("clicked(bool)", self.onCheckDependencies)
        self.ui.installDependenciesButton.connect("clicked(bool)", self.onInstallDependencies)
        self.ui.refreshModelsButton.connect("clicked(bool)", self.onRefreshModels)
        self.ui.loadSiteWeightsButton.connect("clicked(bool)", self.onLoadSiteWeights)
        self.ui.openSegmentationButton.connect(
            "clicked(bool)", lambda: self.openModule("SpineAISegmentation")
        )
        self.ui.openGradingButton.connect("clicked(bool)", lambda: self.openModule("SpineAIGrading"))

        self.ui.userModelsDirectoryButton.directory = str(self.logic.userModelsFolder())
        self.ui.userModelsDirectoryButton.connect("directoryChanged(QString)", self.onUserModelsFolderChanged)

        self.ui.modelsTableWidget.setColumnCount(len(tables.MODEL_TABLE_COLUMNS))
        self.ui.modelsTableWidget.setHorizontalHeaderLabels([_(c) for c in tables.MODEL_TABLE_COLUMNS])
        self.ui.modelsTableWidget.connect("itemSelectionChanged()", self.onModelSelectionChanged)
        self.ui.progressBar.hide()

        self.initializeParameterNode()
        self.onCheckDependencies()
        self.onRefreshModels()
        self._probeJob = self.logic.startEngineCommandsProbe(onDone=self._showEngineCommands)

    def cleanup(self) -> None:
        for job in (self._phantomJob, self._probeJob):
            if job is not None and job.running:
                job.cancel()
        self.removeObservers()

    def _showEngineCommands(self, found, error: str) -> None:
        if found is None:
            self.ui.engineCommandsLabel.text = _("The engine's commands could not be listed: {error}").format(
                error=error
            )
            return
        offered = [c for c in WORKFLOW_COMMANDS if c in found]
        missing = [c for c in WORKFLOW_COMMANDS if c not in found]
        text = _("This engine offers: {commands}.").format(commands=", ".join(offered) or _("none"))
        if missing:
            text += " " + _("Not (yet) in this engine: {commands}.").format(commands=", ".join(missing))
        self.ui.engineCommandsLabel.text = text

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode and not firstVolumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode: SpineAIParameterNode | None) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
            self._updateButtons()

    def _updateButtons(self, caller=None, event=None) -> None:
        busy = self._phantomJob is not None and self._phantomJob.running
        hasVolume = bool(self._parameterNode and self._parameterNode.inputVolume)
        self.ui.segmentCaseButton.enabled = hasVolume and not busy
        self.ui.segmentCaseButton.toolTip = (
            _("Open the segmentation module with this CT selected")
            if hasVolume
            else _("Select or load a CT first")
        )
        self.ui.loadPhantomButton.text = _("Cancel") if busy else _("Generate phantom CT")

    # ------------------------------------------------------------------ case
    def onLoadPhantom(self) -> None:
        if self._phantomJob is not None and self._phantomJob.running:
            self._phantomJob.cancel()
            return
        seed = int(self._parameterNode.phantomSeed)
        self.ui.progressBar.value = 0
        self.ui.progressBar.show()
        self.ui.caseStatusLabel.text = _("Generating phantom {seed}...").format(seed=seed)

        def onProgress(update):
            self.ui.progressBar.value = int(update.percent)
            self.ui.caseStatusLabel.text = update.message

        def onDone(volumeNode, result: ProcessResult):
            self.ui.progressBar.hide()
            self._updateButtons()
            if result.cancelled:
                self.ui.caseStatusLabel.text = _("Phantom generation cancelled.")
            elif volumeNode is None:
                self.ui.caseStatusLabel.text = _("Phantom generation failed.")
                slicer.util.errorDisplay(
                    _("The phantom could not be generated:\n\n{error}").format(error=result.error)
                )
            else:
                self._parameterNode.inputVolume = volumeNode
                self.ui.caseStatusLabel.text = _("Loaded {name}.").format(name=volumeNode.GetName())

        try:
            with slicer.util.tryWithErrorDisplay(
                _("Failed to start the phantom generator."), waitCursor=True
            ):
                self._phantomJob = self.logic.startPhantom(seed, onProgress=onProgress, onDone=onDone)
        except Exception:  # already shown to the user and logged by tryWithErrorDisplay
            self._phantomJob = None
            self.ui.progressBar.hide()
            self.ui.caseStatusLabel.text = _("The phantom generator could not start.")
        self._updateButtons()

    def onSegmentCase(self) -> None:
        volume = self._parameterNode.inputVolume if self._parameterNode else None
        with slicer.util.tryWithErrorDisplay(_("Failed to open the segmentation module."), waitCursor=True):
            self.logic.selectVolumeInSegmentation(volume)
            self.openModule("SpineAISegmentation")

    def openModule(self, moduleName: str) -> None:
        if slicer.util.mainWindow():
            slicer.util.selectModule(moduleName)

    # ------------------------------------------------------------------ dependencies
    def onCheckDependencies(self) -> None:
        report = self.logic.dependencyReport()
        lines = []
        for name, installed, ok in report:
            mark = "&#10003;" if ok else "&#10007;"
            lines.append(f"{mark} {name}: {installed or _('not installed')}")
        self.ui.dependencyStatusLabel.text = "<br>".join(lines)
        self.ui.installDependenciesButton.enabled = not all(ok for _n, _i, ok in report)

    def onInstallDependencies(self) -> None:
        with slicer.util.tryWithErrorDisplay(
            _("Failed to install the Python packages SpineAI needs."), waitCursor=True
        ):
            self.logic.ensureDependencies(askConfirmation=True)
        self.onCheckDependencies()

    # ------------------------------------------------------------------ models
    def onUserModelsFolderChanged(self, path: str) -> None:
        self.logic.setUserModelsFolder(path)
        self.onRefreshModels()

    def onRefreshModels(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to list the installed models."), waitCursor=True):
            installed = self.logic.installedModels()
            self._installed = installed
            rows = tables.model_rows(installed)
            table = self.ui.modelsTableWidget
            table.setRowCount(len(rows))
            for r, row in enumerate(rows):
                for c, column in enumerate(tables.MODEL_TABLE_COLUMNS):
                    item = qt.QTableWidgetItem(row[column])
                    item.setToolTip(row[column])
                    table.setItem(r, c, item)
            table.resizeColumnsToContents()
            table.visible = bool(rows)
            self.ui.noModelsLabel.visible = not rows
            self.ui.noModelsLabel.text = _(
                "No models are installed: the engine ships none yet and the user models folder holds none. "
                "Train one with 'spineai train ...' and load it with 'Load site weights'."
            )
            self.ui.modelCardLabel.visible = bool(rows)
            if rows:
                table.selectRow(0)
            self.onModelSelectionChanged()

    def onModelSelectionChanged(self) -> None:
        """Show the full model card of the selected model."""
        row = self.ui.modelsTableWidget.currentRow()
        if not self._installed or row is None or not 0 <= row < len(self._installed):
            self.ui.modelCardLabel.text = _("Select a model to see its model card.")
            return
        self.ui.modelCardLabel.text = self.logic.modelCardHtml(self._installed[row])

    def onLoadSiteWeights(self) -> None:
        path = qt.QFileDialog.getOpenFileName(
            slicer.util.mainWindow(),
            _("Load site weights (the model card JSON must be beside the file)"),
            str(Path.home()),
            _("SpineAI weights (*.safetensors)"),
        )
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("These weights were not loaded."), waitCursor=True):
            weightsCopy, _cardCopy = self.logic.loadSiteWeights(path)
            slicer.util.infoDisplay(
                _("Verified against its model card and copied to:\n{path}").format(path=str(weightsCopy))
            )
        self.onRefreshModels()


#
# SpineAILogic
#


class SpineAILogic(ScriptedLoadableModuleLogic):
    """Hub logic, usable from the Python console without the GUI; also used by the other SpineAI modules
    to run engine commands in the background."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self) -> SpineAIParameterNode:
        return SpineAIParameterNode(super().getParameterNode())

    # ------------------------------------------------------------------ settings
    @staticmethod
    def userModelsFolder() -> Path:
        """The user models folder (application setting, default ``~/.spineai/models``)."""
        return Path(slicer.util.settingsValue(SETTINGS_USER_MODELS_DIR, str(models.DEFAULT_USER_MODELS_DIR)))

    @staticmethod
    def setUserModelsFolder(path: str | os.PathLike) -> None:
        qt.QSettings().setValue(SETTINGS_USER_MODELS_DIR, str(path))

    @staticmethod
    def defaultDevice() -> str:
        """The device the user chose last (application setting), ``"cpu"`` by default."""
        device = str(slicer.util.settingsValue(SETTINGS_DEVICE, "cpu"))
        return device if device in engine.DEVICES else "cpu"

    @staticmethod
    def setDefaultDevice(device: str) -> None:
        if device in engine.DEVICES:
            qt.QSettings().setValue(SETTINGS_DEVICE, device)

    # ------------------------------------------------------------------ background engine runs
    @staticmethod
    def _launch(argv, env):
        return slicer.util.launchConsoleProcess(list(argv), updateEnvironment=dict(env))

    def startEngine(
        self, command: engine.EngineCommand, onProgress=None, onLine=None, onFinished=None
    ) -> BackgroundProcess:
        """Start an engine command in the background; callbacks run on the GUI thread (QTimer)."""
        job = BackgroundProcess(
            on_progress=onProgress,
            on_line=onLine if onLine is not None else logging.info,
            on_finished=onFinished,
            launcher=self._launch,
            schedule=qt.QTimer.singleShot,
        )
        return job.start(command.argv, command.env)

    def runEngine(self, command: engine.EngineCommand, timeout: float | None = None) -> ProcessResult:
        """Run an engine command and wait for it, keeping the GUI responsive (console and tests)."""
        job = BackgroundProcess(on_line=logging.info, launcher=self._launch, schedule=None)
        job.start(command.argv, command.env)
        return job.wait(timeout=timeout, idle=slicer.app.processEvents)

    # ------------------------------------------------------------------ which commands the engine has
    @staticmethod
    def cachedEngineCommands() -> dict[str, str] | None:
        """The engine's commands when already listed in this session, else ``None``."""
        return _engineCommands

    def startEngineCommandsProbe(self, onDone=None, refresh: bool = False) -> BackgroundProcess | None:
        """List the engine's commands in a child process (torch and the engine stay out of Slicer's process).

        ``onDone(commands or None, error text)`` runs on the GUI thread; at once when already listed (then
        no process is started and ``None`` is returned).
        """
        global _engineCommands
        if _engineCommands is not None and not refresh:
            if onDone:
                onDone(dict(_engineCommands), "")
            return None
        lines: list[str] = []

        def finished(result: ProcessResult) -> None:
            global _engineCommands
            found, error = None, result.error
            if result.succeeded:
                try:
                    found = commands.parse_probe_output(lines)
                    _engineCommands = found
                except ValueError as exc:
                    error = str(exc)
            elif result.cancelled:
                error = _("cancelled")
            if onDone:
                onDone(None if found is None else dict(found), error)

        def keep(line: str) -> None:
            lines.append(line)
            if not line.startswith(commands.MARKER):
                logging.info(line)

        job = BackgroundProcess(
            on_line=keep, on_finished=finished, launcher=self._launch, schedule=qt.QTimer.singleShot
        )
        probe = engine.commands_probe(python=python_executable_for_slicer())
        return job.start(probe.argv, probe.env)

    def engineCommands(self, refresh: bool = False, timeout: float | None = 300) -> dict[str, str]:
        """The engine's commands ``{command path: --help text}``, waiting for the probe (console and tests).

        Raises:
            RuntimeError: the probe failed (its plain-words error).
        """
        global _engineCommands
        if _engineCommands is not None and not refresh:
            return dict(_engineCommands)
        lines: list[str] = []
        job = BackgroundProcess(on_line=lambda line: lines.append(line), launcher=self._launch, schedule=None)
        probe = engine.commands_probe(python=python_executable_for_slicer())
        job.start(probe.argv, probe.env)
        result = job.wait(timeout=timeout, idle=slicer.app.processEvents)
        if not result.succeeded:
            raise RuntimeError(
                _("The engine's commands could not be listed:\n{error}").format(error=result.error)
            )
        try:
            _engineCommands = commands.parse_probe_output(lines)
        except ValueError as exc:
            raise RuntimeError(str(exc)) from None
        return dict(_engineCommands)

    # ------------------------------------------------------------------ phantom
    def startPhantom(self, seed: int = 7, onProgress=None, onDone=None) -> BackgroundProcess:
        """Generate the engine's synthetic lumbosacral CT in the background and load it as a volume.

        ``onDone(volumeNode or None, ProcessResult)`` is called on the GUI thread.
        """
        folder = Path(slicer.util.tempDirectory("SpineAI-phantom-")) / "phantom"
        command = engine.phantom_command(folder, seed=seed, python=python_executable_for_slicer())

        def finished(result: ProcessResult) -> None:
            volume = None
            if result.succeeded:
                try:
                    volume = self.loadPhantomVolume(folder, seed)
                except Exception as exc:  # shown to the user through onDone
                    logging.error(str(exc))
                    result = ProcessResult(1, False, str(exc), result.output, result.seconds)
            if onDone:
                onDone(volume, result)

        return self.startEngine(command, onProgress=onProgress, onFinished=finished)

    def loadPhantom(self, seed: int = 7, timeout: float | None = 600) -> vtkMRMLScalarVolumeNode:
        """Generate and load a phantom CT, waiting for it (console and tests)."""
        folder = Path(slicer.util.tempDirectory("SpineAI-phantom-")) / "phantom"
        result = self.runEngine(
            engine.phantom_command(folder, seed=seed, python=python_executable_for_slicer()), timeout
        )
        if not result.succeeded:
            raise RuntimeError(_("The phantom could not be generated:\n{error}").format(error=result.error))
        return self.loadPhantomVolume(folder, seed)

    @staticmethod
    def loadPhantomVolume(folder: Path, seed: int) -> vtkMRMLScalarVolumeNode:
        ct = Path(folder) / "ct.nii.gz"
        if not ct.is_file():
            raise RuntimeError(_("The phantom generator did not write {path}.").format(path=str(ct)))
        volume = slicer.util.loadVolume(str(ct), {"name": f"SpineAI phantom {seed}"})
        volume.SetAttribute("SpineAI.PhantomFolder", str(folder))
        return volume

    @staticmethod
    def selectVolumeInSegmentation(volume) -> None:
        """Make ``volume`` the input of the SpineAISegmentation module."""
        if not volume:
            raise ValueError(_("Select or load a CT volume first."))
        import SpineAISegmentation

        parameterNode = SpineAISegmentation.SpineAISegmentationLogic().getParameterNode()
        parameterNode.inputVolume = volume

    # ------------------------------------------------------------------ dependencies
    @staticmethod
    def requirementsPath() -> Path:
        return Path(__file__).resolve().parent / "Resources" / "requirements.txt"

    def dependencyReport(self) -> list[tuple[str, str | None, bool]]:
        """``(requirement, installed version, satisfied)`` for torch and every line of requirements.txt."""
        report: list[tuple[str, str | None, bool]] = []
        try:
            torchVersion = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            torchVersion = None
        report.append(("torch (PyTorch extension)", torchVersion, torchVersion is not None))
        statuses = dependencies.check_requirements(dependencies.read_requirements(self.requirementsPath()))
        report.extend((s.requirement, s.installed, s.satisfied) for s in statuses)
        return report

    @staticmethod
    def ensureTorch(askConfirmation: bool = True) -> None:
        """Install torch through the PyTorch extension (it picks the CUDA build matching the driver)."""
        try:
            importlib.metadata.version("torch")
            return
        except importlib.metadata.PackageNotFoundError:
            pass
        if importlib.util.find_spec("PyTorchUtils") is None:
            raise RuntimeError(
                _(
                    "SpineAI needs PyTorch. Install the 'PyTorch' extension from the Extensions Manager, restart "
                    "Slicer, then press 'Install' again."
                )
            )
        import PyTorchUtils

        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
            askConfirmation=askConfirmation, torchVersionRequirement=">=2.1"
        )
        if torch is None:
            raise RuntimeError(_("PyTorch was not installed; SpineAI cannot run without it."))

    def ensureDependencies(self, askConfirmation: bool = True) -> None:
        """Install what is missing: torch (PyTorch extension), then requirements.txt.

        Slicer >= 5.12: ``slicer.packaging.pip_ensure`` (asks, installs, offers a restart). Older Slicer: a
        confirmation, then ``slicer.util.pip_install`` with a progress message. Runs on the GUI thread.
        """
        self.ensureTorch(askConfirmation)
        requirementsPath = self.requirementsPath()
        try:
            import slicer.packaging as packaging
        except ImportError:
            packaging = None
        if packaging is not None and hasattr(packaging, "pip_ensure"):
            packaging.pip_ensure(packaging.load_requirements(str(requirementsPath)), requester="SpineAI")
            return
        missing = dependencies.unsatisfied(
            dependencies.check_requirements(dependencies.read_requirements(requirementsPath))
        )
        if not missing:
            return
        if slicer.app.testingEnabled():
            logging.info("Testing mode: not installing %s", ", ".join(missing))
            return
        if askConfirmation and not slicer.util.confirmOkCancelDisplay(
            _(
                "SpineAI needs these Python packages:\n\n{packages}\n\nInstall them now (a few minutes)?"
            ).format(packages="\n".join(missing))
        ):
            raise RuntimeError(_("Installation of the required Python packages was cancelled."))
        message = _("Installing {packages}. This may take a few minutes...").format(
            packages=", ".join(missing)
        )
        dialog = getattr(slicer.util, "MessageDialog", None)
        if dialog is not None:
            with dialog(message), slicer.util.WaitCursor():
                slicer.util.pip_install(missing)
        else:
            slicer.util.showStatusMessage(message)
            slicer.util.pip_install(missing)

    # ------------------------------------------------------------------ models
    def installedModels(self, verify: bool = True) -> list[models.InstalledModel]:
        """Shipped and site models with their weights status (``"verified"`` or why not)."""
        return models.installed_models(self.userModelsFolder(), verify=verify)

    def loadSiteWeights(self, weightsFile: str | os.PathLike):
        """Verify site weights with the engine and copy them with their card into the user models folder."""
        return models.install_site_weights(weightsFile, self.userModelsFolder())

    @staticmethod
    def fillResultTable(tableNode, data: tables.TableData, name: str):
        """Fill (or create) a table node from ``SpineAILib.tables.TableData``: numeric columns as doubles
        (NaN where empty), the others as text, each column with its unit. Used by the workflow modules."""
        if tableNode is None:
            tableNode = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLTableNode", slicer.mrmlScene.GenerateUniqueName(name)
            )
        tableNode.RemoveAllColumns()
        for column in data.columns:
            array = vtk.vtkDoubleArray() if column.numeric else vtk.vtkStringArray()
            array.SetName(column.name)
            for row in data.rows:
                array.InsertNextValue(float(row[column.name]) if column.numeric else str(row[column.name]))
            tableNode.AddColumn(array)
            if column.unit:
                tableNode.SetColumnUnitLabel(column.name, column.unit)
        tableNode.Modified()
        return tableNode

    @staticmethod
    def modelCardHtml(installedModel) -> str:
        """The model card of one installed model as a small HTML table (hub's detail view)."""
        rows = "".join(
            f"<tr><td valign='top'><b>{html.escape(_(field))}</b></td><td>{html.escape(text)}</td></tr>"
            for field, text in tables.card_details(installedModel)
        )
        return f"<table cellspacing='2'>{rows}</table>"


#
# SpineAITest
#


class SpineAITest(ScriptedLoadableModuleTest):
    """Quick checks of the hub logic inside Slicer (the phantom workflow is in Testing/Python)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_dependency_report_covers_requirements()
        self.setUp()
        self.test_models_listed_with_weights_status()

    def test_dependency_report_covers_requirements(self):
        logic = SpineAILogic()
        report = logic.dependencyReport()
        names = [name for name, _installed, _ok in report]
        self.assertEqual(names[0], "torch (PyTorch extension)")
        self.assertEqual(names[1:], dependencies.read_requirements(logic.requirementsPath()))

    def test_models_listed_with_weights_status(self):
        from spineai import weights

        logic = SpineAILogic()
        installed = logic.installedModels()
        shipped = [m for m in installed if m.source == "shipped"]
        self.assertEqual(sorted(m.card.name for m in shipped), sorted(c.name for c in weights.list_models()))
        for m in installed:
            self.assertTrue(m.status)
        self.assertEqual(len(tables.model_rows(installed)), len(installed))
