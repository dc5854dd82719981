"""SpineAIGrading: run the grading, outcome and radiograph models the SpineAI engine provides.

One panel per model command the engine offers AND has a model for (``SpineAILib.grading.GRADING_COMMANDS``:
sagittal disc grading, tESI outcome, axial grading, stenosis, and herniation per level from a lumbar
radiograph). A panel picks the model (shipped or site-trained, with its model card), offers the options the
engine's command accepts, and runs it in a background process (progress, Cancel, errors in plain words).
Results: a table node, and each Grad-CAM heat map as a scalar volume shown as a coloured foreground overlay
on the input, with an opacity slider. Never a panel for a model that does not exist.

The radiograph panel runs the engine's shipped model by default (``radiograph_hnp_demo``: a disc locator
finds the five discs, a small reader reads a 72 mm crop around each; trained on synthetic radiographs only).
Its pixel size is the one typed in the panel, else the volume's spacing when that is known (a DICOM); a
picture loaded from PNG/JPEG has no pixel size, so it is handed to the engine as a PNG and the engine
estimates the pixel size from the located discs, with a warning in the log.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import ctk
import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from SpineAILib import grading, models, tables
from SpineAILib.process import BackgroundProcess, ProcessResult, python_executable_for_slicer

#: attributes of a loaded heat map: what it explains, and the input volume it belongs to
ATTRIBUTE_HEATMAP = "SpineAI.HeatMap"
ATTRIBUTE_HEATMAP_OF = "SpineAI.HeatMapOf"
#: colour table of the heat maps (Slicer's blue -> red rainbow), and a fallback present in every Slicer
HEATMAP_COLOR_NODE_IDS = ("vtkMRMLColorTableNodeFileColdToHotRainbow.txt", "vtkMRMLColorTableNodeRainbow")
#: heat map values below this are transparent, so the input shows through
HEATMAP_THRESHOLD = 0.05


#
# SpineAIGrading
#


class SpineAIGrading(ScriptedLoadableModule):
    """Module description shown in Slicer's module panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SpineAI Grading")
        self.parent.categories = [_("SpineAI")]
        self.parent.dependencies = ["SpineAI"]
        self.parent.contributors = ["SpineAI contributors"]
        self.parent.helpText = _(
            "Lumbar MRI grading, tESI outcome prediction and radiograph models of the SpineAI engine, each run "
            "in a background process with a Grad-CAM heat map over the input. A panel appears only for a model "
            "the engine provides. Research use only, not for clinical decisions."
        )
        self.parent.acknowledgementText = _(
            "Models after Kim et al. (Pain Physician 2022), SpineNet-style sagittal grading trained on SPIDER, "
            "axial multi-task grading with ResNet-50, two-stage stenosis grading (Hallinan et al., Radiology "
            "2021), and per-level herniation from lumbar radiographs: the seed paper read the whole radiograph "
            "with EfficientNet-B5; the shipped model instead locates the five discs and reads a crop around each "
            "with a small CNN (trained on synthetic radiographs only; EfficientNet models of the paper's design "
            "still load as site weights)."
        )


#
# SpineAIGradingParameterNode
#


@parameterNodeWrapper
class SpineAIGradingParameterNode:
    """Parameters saved with the scene (each panel's options are stored beside them as
    ``<command key>.<option key>`` parameters of the same node).

    inputVolume: the image to grade (sagittal T2, axial T2 or radiograph, as the panel says).
    resultsTable: the table of the last result.
    heatmapVolume: the Grad-CAM heat map shown over the input.
    overlayOpacity: opacity of the heat map overlay, 0..1.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    resultsTable: vtkMRMLTableNode
    heatmapVolume: vtkMRMLScalarVolumeNode
    overlayOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5


def _hubLogic():
    import SpineAI

    return SpineAI.SpineAILogic()


class GradingResult:
    """What one panel run put into the scene.

    Attributes:
        key: the registry key (``"sagittal"``, ``"outcome"``, ...).
        folder: the engine's output folder.
        tableNode: per-item table (or the summary as items).
        heatmaps: ``{what it explains: scalar volume node}``, on the input's geometry.
        summary: one plain line ("" when the command writes no summary).
    """

    def __init__(self, key: str, folder, tableNode, heatmaps: dict, summary: str) -> None:
        self.key = key
        self.folder = Path(folder)
        self.tableNode = tableNode
        self.heatmaps = dict(heatmaps)
        self.summary = summary


#
# SpineAIGradingWidget
#


class _Panel:
    """The widgets of one command's panel."""

    def __init__(
        self, plan: grading.PanelPlan, button, modelComboBox, optionWidgets: dict, runButton
    ) -> None:
        self.plan = plan
        self.button = button
        self.modelComboBox = modelComboBox
        self.optionWidgets = optionWidgets
        self.runButton = runButton

    @property
    def key(self) -> str:
        return self.plan.entry.key

    def selectedModel(self):
        index = self.modelComboBox.currentIndex
        return self.plan.models[index] if 0 <= index < len(self.plan.models) else None

    def optionValues(self) -> dict:
        values = {}
        for option, widget in self.optionWidgets.items():
            if option.kind == "bool":
                values[option.key] = bool(widget.checked)
            elif option.kind == "choice":
                values[option.key] = widget.currentText
            else:
                values[option.key] = widget.text
        return values


class SpineAIGradingWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module's panel: one collapsible panel per available model command."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self.panels: list[_Panel] = []
        self._job: BackgroundProcess | None = None
        self._jobKey = ""
        self._probeJob = None
        self._engineCommands: dict[str, str] | None = None
        self._probeError = ""
        self._shownHeatmap = None
        self._shownOpacity = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineAIGrading.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SpineAIGradingLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.refreshButton.connect("clicked(bool)", self.onRefresh)
        self.ui.openHubButton.connect("clicked(bool)", self.onOpenHub)
        self.ui.heatmapSelector.addAttribute("vtkMRMLScalarVolumeNode", ATTRIBUTE_HEATMAP)
        self.ui.progressBar.hide()

        self.initializeParameterNode()
        self.ui.noModelsLabel.text = _("Checking which commands the SpineAI engine offers...")
        self._probeJob = _hubLogic().startEngineCommandsProbe(onDone=self._onEngineCommands)

    def cleanup(self) -> None:
        for job in (self._job, self._probeJob):
            if job is not None and job.running:
                job.cancel()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified
            )

    def onSceneStartClose(self, caller, event) -> None:
        if self._job is not None and self._job.running:
            self._job.cancel()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            for volume in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
                if not volume.IsA("vtkMRMLLabelMapVolumeNode") and not volume.GetAttribute(ATTRIBUTE_HEATMAP):
                    self._parameterNode.inputVolume = volume
                    break

    def setParameterNode(self, inputParameterNode: SpineAIGradingParameterNode | None) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified
            )
        self._parameterNode = inputParameterNode
        self._shownHeatmap = None
        self._shownOpacity = None
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self._onParameterNodeModified()

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p is None:
            return
        self.ui.resultsTableView.setMRMLTableNode(p.resultsTable)
        heatmap, opacity = p.heatmapVolume, float(p.overlayOpacity)
        if heatmap is not self._shownHeatmap:
            self._shownHeatmap = heatmap
            if heatmap is not None:
                self.logic.showHeatmap(heatmap, self.logic.heatmapInput(heatmap) or p.inputVolume, opacity)
        elif opacity != self._shownOpacity:
            self.logic.setOverlayOpacity(opacity)
        self._shownOpacity = opacity
        self._updateRunButtons()

    # ------------------------------------------------------------------ panels
    def _onEngineCommands(self, found, error: str) -> None:
        self._engineCommands = found
        self._probeError = error
        self.updatePanels()

    def onRefresh(self) -> None:
        """List the engine's commands and the installed models again, and rebuild the panels."""
        if self._probeJob is not None and self._probeJob.running:
            return
        self.ui.noModelsLabel.text = _("Checking which commands the SpineAI engine offers...")
        self._probeJob = _hubLogic().startEngineCommandsProbe(onDone=self._onEngineCommands, refresh=True)

    def onOpenHub(self) -> None:
        if slicer.util.mainWindow():
            slicer.util.selectModule("SpineAI")

    def updatePanels(self) -> None:
        """Rebuild one panel per registry command that the engine has and a model exists for."""
        layout = self.ui.panelsWidget.layout()
        for panel in self.panels:
            layout.removeWidget(panel.button)
            panel.button.deleteLater()
        self.panels = []
        if self._engineCommands is None:
            self.ui.noModelsLabel.text = _(
                "The SpineAI engine's commands could not be listed: {error}"
            ).format(error=self._probeError or _("unknown reason"))
            self.ui.noModelsLabel.visible = True
            return
        try:
            plans = self.logic.panelPlans(self._engineCommands)
        except Exception as exc:  # the engine could not list its models: say why instead of an empty list
            self.ui.noModelsLabel.text = _("The SpineAI engine could not list its models: {error}").format(
                error=str(exc)
            )
            self.ui.noModelsLabel.visible = True
            return
        for plan in plans:
            if plan.available:
                panel = self._buildPanel(plan)
                layout.addWidget(panel.button)
                self.panels.append(panel)
        self.ui.noModelsLabel.text = self.logic.unavailableText(plans)
        self.ui.noModelsLabel.visible = bool(self.ui.noModelsLabel.text)
        self._updateRunButtons()

    def _buildPanel(self, plan: grading.PanelPlan) -> _Panel:
        entry = plan.entry
        helpText = self._engineCommands.get(entry.name, "")
        button = ctk.ctkCollapsibleButton()
        button.text = _(entry.title)
        button.objectName = f"panel_{entry.key}"
        form = qt.QFormLayout(button)
        description = qt.QLabel(_("Input: {what}.").format(what=_(entry.input_description)))
        description.wordWrap = True
        form.addRow(description)

        modelComboBox = qt.QComboBox()
        modelComboBox.objectName = f"{entry.key}ModelComboBox"
        for row in tables.model_rows(plan.models):
            modelComboBox.addItem(f"{row['Model']} ({row['Source']}; weights {row['Weights']})")
        form.addRow(_("Model:"), modelComboBox)
        card = qt.QLabel()
        card.wordWrap = True
        card.textInteractionFlags = qt.Qt.TextSelectableByMouse
        form.addRow(card)

        def showCard(index=None) -> None:
            models_ = plan.models
            i = modelComboBox.currentIndex
            if 0 <= i < len(models_):
                details = dict(tables.card_details(models_[i]))
                card.text = _("Trained on: {data}\nFigures: {figures}\nChecksum: {status}. {use}.").format(
                    data=details["Training data"],
                    figures=details["Figures"],
                    status=details["Checksum"],
                    use=details["Intended use"],
                )

        modelComboBox.connect("currentIndexChanged(int)", showCard)
        showCard()

        optionWidgets = {}
        for option in plan.options:
            tooltip = grading.option_tooltip(helpText, option)
            stored = self.logic.storedOption(self._parameterNode, entry.key, option)
            if option.kind == "bool":
                widget = qt.QCheckBox()
                widget.checked = bool(stored)
                widget.connect(
                    "toggled(bool)",
                    lambda value, k=entry.key, o=option: self.logic.storeOption(
                        self._parameterNode, k, o, value
                    ),
                )
            elif option.kind == "choice":
                widget = qt.QComboBox()
                for choice in option.choices:
                    widget.addItem(choice)
                widget.currentIndex = max(
                    0, list(option.choices).index(stored) if stored in option.choices else 0
                )
                widget.connect(
                    "currentTextChanged(QString)",
                    lambda value, k=entry.key, o=option: self.logic.storeOption(
                        self._parameterNode, k, o, value
                    ),
                )
            else:
                widget = qt.QLineEdit()
                widget.text = str(stored)
                if option.kind == "number":
                    widget.placeholderText = _("empty: from the image's spacing when known")
                widget.connect(
                    "textChanged(QString)",
                    lambda value, k=entry.key, o=option: self.logic.storeOption(
                        self._parameterNode, k, o, value
                    ),
                )
            widget.objectName = f"{entry.key}_{option.key}"
            widget.toolTip = tooltip
            form.addRow(_(option.label) + ":", widget)
            optionWidgets[option] = widget

        runButton = qt.QPushButton(_("Run"))
        runButton.objectName = f"{entry.key}RunButton"
        form.addRow(runButton)
        panel = _Panel(plan, button, modelComboBox, optionWidgets, runButton)
        runButton.connect("clicked(bool)", lambda checked=False, pn=panel: self.onRun(pn))
        return panel

    def _updateRunButtons(self) -> None:
        running = self._job is not None and self._job.running
        hasInput = bool(self._parameterNode and self._parameterNode.inputVolume)
        for panel in self.panels:
            if running and self._jobKey == panel.key:
                panel.runButton.text = _("Cancel")
                panel.runButton.enabled = True
                panel.runButton.toolTip = _("Stop it (the background process is killed)")
            else:
                panel.runButton.text = _("Run")
                panel.runButton.enabled = hasInput and not running
                panel.runButton.toolTip = (
                    _("Run {command} in a background process").format(
                        command=f"spineai {panel.plan.entry.name}"
                    )
                    if hasInput
                    else _("Select the input image first")
                )

    # ------------------------------------------------------------------ run
    def onRun(self, panel: _Panel) -> None:
        if self._job is not None and self._job.running:
            if self._jobKey == panel.key:
                self._job.cancel()
                self.ui.statusLabel.text = _("Cancelling...")
            return
        p = self._parameterNode
        try:
            with slicer.util.tryWithErrorDisplay(_("The model could not start."), waitCursor=True):
                self.ui.logTextEdit.clear()
                self.ui.progressBar.value = 0
                self.ui.progressBar.show()
                self.ui.statusLabel.text = _("Starting the SpineAI engine...")
                self._jobKey = panel.key
                self._job = self.logic.startGrading(
                    panel.plan.entry,
                    p.inputVolume,
                    model=panel.selectedModel(),
                    options=panel.optionValues(),
                    offered=panel.plan.options,
                    onProgress=self._onProgress,
                    onLine=self.ui.logTextEdit.appendPlainText,
                    onDone=self._onDone,
                )
        except Exception:  # already shown to the user and logged by tryWithErrorDisplay
            self._job = None
            self._jobKey = ""
            self.ui.progressBar.hide()
            self.ui.statusLabel.text = _("The model could not start.")
        self._updateRunButtons()

    def _onProgress(self, update) -> None:
        self.ui.progressBar.value = int(round(update.percent))
        self.ui.statusLabel.text = update.message

    def _onDone(self, gradingResult, result: ProcessResult, error: str) -> None:
        self.ui.progressBar.hide()
        self._job = None
        self._jobKey = ""
        if result.cancelled:
            self.ui.statusLabel.text = _("Cancelled; nothing was changed.")
        elif gradingResult is None:
            self.ui.statusLabel.text = _("The model failed.")
            slicer.util.errorDisplay(_("The model failed:\n\n{error}").format(error=error))
        else:
            p = self._parameterNode
            if p is not None:
                p.resultsTable = gradingResult.tableNode
                if gradingResult.heatmaps:
                    p.heatmapVolume = next(iter(gradingResult.heatmaps.values()))
            done = _("Done in {seconds:.0f} s.").format(seconds=result.seconds)
            self.ui.statusLabel.text = f"{done} {gradingResult.summary}".strip()
        self._updateRunButtons()


#
# SpineAIGradingLogic
#


class SpineAIGradingLogic(ScriptedLoadableModuleLogic):
    """Which model commands can run, and running them; usable from the Python console without the GUI::

    logic = slicer.util.getModuleLogic("SpineAIGrading")
    result = logic.grade("sagittal", slicer.util.getNode("T2 sagittal"), options={"gradcam": "all"})
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self) -> SpineAIGradingParameterNode:
        return SpineAIGradingParameterNode(super().getParameterNode())

    # ------------------------------------------------------------------ models and panels
    @staticmethod
    def gradingModels(family: str = "all", verify: bool = True) -> list:
        """Installed grading models (``SpineAILib.models.InstalledModel``) of ``family``."""
        return tables.grading_models(_hubLogic().installedModels(verify=verify), family)

    @staticmethod
    def panelPlans(engineCommands=None, verify: bool = True) -> list:
        """One ``SpineAILib.grading.PanelPlan`` per registry command (available or not, and why).

        Args:
            engineCommands: the engine's commands (default: listed now, waiting for the probe).
            verify: check every weights file's SHA-256 against its card.
        """
        hub = _hubLogic()
        found = engineCommands if engineCommands is not None else hub.engineCommands()
        return grading.plan_panels(found, hub.installedModels(verify=verify))

    @staticmethod
    def unavailableText(plans) -> str:
        """Why the missing panels are missing, one line each ("" when every command has a panel)."""
        lines = [plan.reason for plan in plans if not plan.available]
        if lines and not any(plan.available for plan in plans):
            lines.insert(0, _("No grading, outcome or radiograph model can run with this engine yet."))
        return "\n".join(lines)

    # ------------------------------------------------------------------ options stored in the scene
    @staticmethod
    def _optionParameter(key: str, option: grading.OptionSpec) -> str:
        return f"{key}.{option.key}"

    def storedOption(self, parameterNode, key: str, option: grading.OptionSpec):
        """A panel option's value saved in the scene (the option's default when never set)."""
        if parameterNode is None:
            return option.default
        text = parameterNode.parameterNode.GetParameter(self._optionParameter(key, option))
        if not text:
            return option.default
        if option.kind == "bool":
            return text == "true"
        return text

    def storeOption(self, parameterNode, key: str, option: grading.OptionSpec, value) -> None:
        """Save a panel option's value in the scene's parameter node."""
        if parameterNode is None:
            return
        text = ("true" if value else "false") if option.kind == "bool" else str(value)
        parameterNode.parameterNode.SetParameter(self._optionParameter(key, option), text)

    # ------------------------------------------------------------------ input
    @staticmethod
    def checkInputVolume(inputVolume) -> None:
        """Raise ``ValueError`` naming the problem and the fix for an image no model can read."""
        if inputVolume is None:
            raise ValueError(_("No input image: select the MRI or radiograph to grade."))
        if inputVolume.IsA("vtkMRMLLabelMapVolumeNode") or inputVolume.GetAttribute(ATTRIBUTE_HEATMAP):
            raise ValueError(
                _(
                    "'{name}' is a label map or a heat map, not an image: select the MRI or radiograph."
                ).format(name=inputVolume.GetName())
            )
        image = inputVolume.GetImageData()
        if image is None:
            raise ValueError(
                _("'{name}' has no voxels: load the image again.").format(name=inputVolume.GetName())
            )
        if image.GetNumberOfScalarComponents() != 1:
            raise ValueError(
                _(
                    "'{name}' has {n} components per voxel (a colour image): convert it to grey levels first "
                    "(Vector to Scalar Volume module)."
                ).format(name=inputVolume.GetName(), n=image.GetNumberOfScalarComponents())
            )
        if inputVolume.GetParentTransformNode():
            raise ValueError(
                _("'{name}' is under a transform. Harden the transform (Data module) first.").format(
                    name=inputVolume.GetName()
                )
            )

    @staticmethod
    def writeInputVolume(inputVolume, path: Path) -> Path:
        """Write the volume as NRRD for the engine without changing the node's own storage."""
        storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
        storage.SetFileName(str(path))
        storage.UseCompressionOff()
        if not storage.WriteData(inputVolume):
            raise RuntimeError(_("Could not write the input image to {path}.").format(path=str(path)))
        return path

    # ------------------------------------------------------------------ run
    @staticmethod
    def radiographPixelMm(inputVolume) -> str:
        """The volume's pixel size (mm) as text for ``--pixel-mm``, or "" when its spacing is not a real one
        (a picture file, or Slicer's placeholder 1 x 1 mm): ``SpineAILib.grading.radiograph_pixel_mm``."""
        storage = inputVolume.GetStorageNode()
        fileName = storage.GetFileName() if storage is not None else None
        return grading.radiograph_pixel_mm(
            inputVolume.GetSpacing(), inputVolume.GetImageData().GetDimensions(), fileName
        )

    def _command(self, entry, inputVolume, model, options, offered):
        if isinstance(entry, str):
            entry = grading.command_by_key(entry)
        self.checkInputVolume(inputVolume)
        weights = None
        if model is not None:
            weights = models.weights_file(model) if hasattr(model, "card") else Path(model)
        folder = Path(slicer.util.tempDirectory(f"SpineAI-{entry.key}-"))
        options = dict(options or {})
        pixelOption = next((o for o in entry.options if o.key == grading.PIXEL_MM_OPTION), None)
        pictureInput = False
        if pixelOption is not None and not str(options.get(pixelOption.key) or "").strip():
            known = self.radiographPixelMm(inputVolume)
            if known:
                options[pixelOption.key] = known  # the DICOM's (or file's) pixel size sizes the disc crops
            else:  # no pixel size: as a PNG, so that the engine estimates it instead of trusting 1 mm
                pictureInput = True
        if pictureInput:
            inputPath = grading.write_picture_input(
                slicer.util.arrayFromVolume(inputVolume), folder / "input.png"
            )
        else:
            inputPath = self.writeInputVolume(inputVolume, folder / "input.nrrd")
        outputDir = folder / "result"
        command = grading.build_command(
            entry,
            inputPath,
            outputDir,
            weights=weights,
            options=options,
            offered=offered,
            python=python_executable_for_slicer(),
        )
        return entry, command, outputDir

    def startGrading(
        self,
        entry,
        inputVolume,
        model=None,
        options=None,
        offered=None,
        onProgress=None,
        onLine=None,
        onDone=None,
    ) -> BackgroundProcess:
        """Run one registry command on ``inputVolume`` in the background.

        Args:
            entry: a ``SpineAILib.grading.GradingCommand`` or its key (``"sagittal"``).
            model: an ``InstalledModel``, a ``.safetensors`` path, or ``None`` for the engine's default.
            options: ``{option key: value}``; offered: the options the engine accepts (default all).
            onDone: ``onDone(GradingResult or None, ProcessResult, error text)`` on the GUI thread.
        """
        entry, command, outputDir = self._command(entry, inputVolume, model, options, offered)

        def finished(result: ProcessResult) -> None:
            loaded, error = None, result.error
            if result.succeeded:
                try:
                    loaded = self.loadGradingResult(entry, outputDir, inputVolume)
                except Exception as exc:  # reported to the user by onDone
                    logging.exception("SpineAI: loading the %s result failed", entry.key)
                    error = str(exc)
            if onDone:
                onDone(loaded, result, error)

        return _hubLogic().startEngine(command, onProgress=onProgress, onLine=onLine, onFinished=finished)

    def grade(
        self, entry, inputVolume, model=None, options=None, offered=None, timeout=None
    ) -> GradingResult:
        """Run and wait (console, scripts, tests); returns the :class:`GradingResult`.

        Raises:
            ValueError: bad input; RuntimeError: the engine failed (its plain-words error) or was cancelled.
        """
        entry, command, outputDir = self._command(entry, inputVolume, model, options, offered)
        result = _hubLogic().runEngine(command, timeout=timeout)
        if not result.succeeded:
            raise RuntimeError(result.error or _("The model run was cancelled."))
        return self.loadGradingResult(entry, outputDir, inputVolume)

    # ------------------------------------------------------------------ results
    def loadGradingResult(self, entry, outputDir: str | os.PathLike, inputVolume) -> GradingResult:
        """Load a run's table and heat maps; the first heat map is shown over the input."""
        if isinstance(entry, str):
            entry = grading.command_by_key(entry)
        outputs = grading.find_outputs(entry, outputDir).check()
        data = grading.result_table(outputs)
        baseName = inputVolume.GetName() if inputVolume is not None else "SpineAI"
        tableNode = slicer.mrmlScene.AddNewNodeByClass(
            "vtkMRMLTableNode", slicer.mrmlScene.GenerateUniqueName(f"{baseName} {entry.key}")
        )
        _hubLogic().fillResultTable(tableNode, data, tableNode.GetName())
        heatmaps = {}
        for name, path in outputs.heatmaps.items():
            heatmaps[name] = self.loadHeatmap(path, inputVolume, f"{baseName} Grad-CAM {name}", name)
        shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        if inputVolume is not None:
            parentItem = shNode.GetItemParent(shNode.GetItemByDataNode(inputVolume))
            for node in [tableNode, *heatmaps.values()]:
                shNode.SetItemParent(shNode.GetItemByDataNode(node), parentItem)
        if heatmaps:
            self.showHeatmap(
                next(iter(heatmaps.values())), inputVolume, self.getParameterNode().overlayOpacity
            )
        return GradingResult(entry.key, outputs.folder, tableNode, heatmaps, grading.summary_text(outputs))

    @staticmethod
    def loadHeatmap(path, inputVolume, name: str, explains: str):
        """Load a Grad-CAM map (0..1, on the input's geometry) as a scalar volume with a colour table."""
        colorId = next(
            (i for i in HEATMAP_COLOR_NODE_IDS if slicer.mrmlScene.GetNodeByID(i) is not None),
            HEATMAP_COLOR_NODE_IDS[-1],
        )
        node = slicer.util.loadVolume(str(path), {"name": name, "show": False, "singleFile": True})
        node.SetAttribute(ATTRIBUTE_HEATMAP, explains)
        if inputVolume is not None:
            node.SetAttribute(ATTRIBUTE_HEATMAP_OF, inputVolume.GetID())
            heat, image = node.GetImageData(), inputVolume.GetImageData()
            if heat is not None and image is not None and heat.GetDimensions() == image.GetDimensions():
                # the engine writes every map on the input's own pixel grid; an input handed over as a picture
                # (no geometry) gets the input's placement back here
                ijkToRas = vtk.vtkMatrix4x4()
                inputVolume.GetIJKToRASMatrix(ijkToRas)
                node.SetIJKToRASMatrix(ijkToRas)
        display = node.GetDisplayNode()
        display.SetAndObserveColorNodeID(colorId)
        display.SetAutoWindowLevel(False)
        display.SetWindowLevelMinMax(0.0, 1.0)
        display.SetAutoThreshold(False)
        display.SetThreshold(HEATMAP_THRESHOLD, 1.0)
        display.SetApplyThreshold(True)
        return node

    @staticmethod
    def heatmapInput(heatmapNode):
        """The input volume a heat map was computed on (``None`` when unknown or removed)."""
        nodeId = heatmapNode.GetAttribute(ATTRIBUTE_HEATMAP_OF) if heatmapNode is not None else None
        return slicer.mrmlScene.GetNodeByID(nodeId) if nodeId else None

    @staticmethod
    def showHeatmap(heatmapNode, inputVolume, opacity: float = 0.5) -> None:
        """Show the heat map as the foreground layer over the input in every slice view."""
        slicer.util.setSliceViewerLayers(
            background=inputVolume if inputVolume is not None else "keep-current",
            foreground=heatmapNode,
            foregroundOpacity=float(opacity),
        )

    @staticmethod
    def setOverlayOpacity(opacity: float) -> None:
        """Opacity of the foreground (heat map) layer in every slice view, 0..1."""
        slicer.util.setSliceViewerLayers(foregroundOpacity=float(opacity))


#
# SpineAIGradingTest
#


class SpineAIGradingTest(ScriptedLoadableModuleTest):
    """Panels follow the registry, the engine's commands and the installed models; results become nodes."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_panels_exist_only_for_commands_with_models()
        self.setUp()
        self.test_heatmap_is_a_coloured_foreground_overlay()

    def test_panels_exist_only_for_commands_with_models(self):
        logic = SpineAIGradingLogic()
        fake = {"grade sagittal": "usage: spineai grade sagittal [--gradcam GRADCAM]"}
        plans = {plan.entry.key: plan for plan in logic.panelPlans(fake, verify=False)}
        self.assertFalse(plans["outcome"].available)  # the engine "has" no outcome command here
        self.assertIn("no 'spineai outcome'", plans["outcome"].reason)
        sagittalModels = logic.gradingModels("sagittal", verify=False)
        self.assertEqual(plans["sagittal"].available, bool(sagittalModels))
        if sagittalModels:
            self.assertEqual([o.key for o in plans["sagittal"].options], ["gradcam"])

    def test_heatmap_is_a_coloured_foreground_overlay(self):
        import numpy as np
        import SimpleITK as sitk

        folder = Path(slicer.util.tempDirectory("SpineAI-heatmap-test-"))
        heat = np.zeros((6, 20, 30), np.float32)
        heat[3, 5:10, 10:20] = 1.0
        image = sitk.GetImageFromArray(heat)
        image.SetSpacing((0.9, 0.9, 4.0))
        sitk.WriteImage(image, str(folder / "gradcam_pfirrmann.nii.gz"))
        mri = slicer.util.addVolumeFromArray(np.ones((6, 20, 30), np.int16), name="T2")
        logic = SpineAIGradingLogic()
        node = logic.loadHeatmap(
            folder / "gradcam_pfirrmann.nii.gz", mri, "T2 Grad-CAM pfirrmann", "pfirrmann"
        )
        logic.showHeatmap(node, mri, 0.3)
        composite = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSliceCompositeNode")
        if composite is not None:  # slice views exist (not in every headless set-up)
            self.assertEqual(composite.GetForegroundVolumeID(), node.GetID())
            self.assertAlmostEqual(composite.GetForegroundOpacity(), 0.3)
        display = node.GetDisplayNode()
        self.assertEqual(display.GetWindow(), 1.0)
        self.assertTrue(display.GetApplyThreshold())
        self.assertEqual(logic.heatmapInput(node), mri)
