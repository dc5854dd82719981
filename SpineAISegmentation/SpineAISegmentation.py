"""SpineAISegmentation: segment lumbosacral bones and nerve roots on CT, correct them, measure Kambin's and the
safe triangle, plan the C-arm view and the needle path, and export corrected cases for retraining.

Segment runs ``spineai segment`` in a background process (progress bar, Cancel kills the process tree) and
loads the result as a segmentation node: one named, coloured segment per canonical structure with its
terminology tag, the input volume as reference geometry, under the input's study, with smoothed 3D
surfaces. "Correct in Segment Editor" opens Slicer's Segment Editor on it.

Measure and Plan hand the CURRENT segmentation (corrections included) to ``spineai measure`` / ``spineai
plan`` as a canonical label map, and load what the engine writes: the triangles and needle paths as markups
(the engine's LPS points converted to RAS), a table of areas, angles and clearances, and the best C-arm view
applied to the 3D view's camera. "Renumber vertebrae" runs ``spineai levels`` when the engine has it and
shows each vertebra's confidence and flags; a flagged numbering (low confidence, transitional anatomy) is
shown in red in the panel and in a warning, and the triangle table of a renumbered segmentation carries
each level's confidence and a mark where the level labels must be checked.
"Export for retraining" writes the CT, the corrected canonical label map with its sidecar, and a provenance
record in the layout ``spineai train segmentation --data FOLDER`` reads.
"""

from __future__ import annotations

import logging
import os
import pathlib
from pathlib import Path
from typing import Annotated

import numpy as np
import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from SpineAILib import engine, export, labels, planning, tables
from SpineAILib.process import BackgroundProcess, ProcessResult, python_executable_for_slicer
from SpineAISegmentationLib import levels as levelinfo

#: segment node attributes recording where a segmentation came from
ATTRIBUTE_ENGINE_OUTPUT = "SpineAI.EngineOutputFolder"
ATTRIBUTE_ENGINE_VERSION = "SpineAI.EngineVersion"
#: application setting: the site weights file the user chose last
SETTINGS_WEIGHTS_FILE = "SpineAI/SegmentationWeightsFile"
#: the label map file an engine result was loaded from (when it is not ``<output folder>/labels.nii.gz``)
ATTRIBUTE_ENGINE_LABELS = "SpineAI.EngineLabelMap"
#: attributes of the nodes a measurement or plan created
ATTRIBUTE_ROLE = "SpineAI.Role"
ATTRIBUTE_RUN = "SpineAI.PlanningRun"
ATTRIBUTE_SOURCE = "SpineAI.SourceSegmentation"
ATTRIBUTE_MEASUREMENTS = "SpineAI.MeasurementsFile"
#: the ``levels.json`` of the numbering a segmentation (or a measurement of it) carries
ATTRIBUTE_LEVELS_FILE = "SpineAI.LevelsFile"
#: structures every lumbosacral result must contain for triangle measurement
REQUIRED_FOR_TRIANGLES = ("L5", "S1")
#: levels the Plan section offers (L6 levels for a sixth lumbar vertebra)
PLAN_LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1", "L5-L6", "L6-S1")
MEASURE_SIDES = ("both", "left", "right")


#
# SpineAISegmentation
#


class SpineAISegmentation(ScriptedLoadableModule):
    """Module description shown in Slicer's module panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SpineAI Segmentation")
        self.parent.categories = [_("SpineAI")]
        self.parent.dependencies = ["SpineAI"]
        self.parent.contributors = ["SpineAI contributors"]
        self.parent.helpText = _(
            "Segment lumbosacral bones, discs, dural sac and nerve roots on CT with the SpineAI engine (in a "
            "background process), correct the result in the Segment Editor, and export corrected cases for "
            "retraining. Research use only, not for clinical decisions."
        )
        self.parent.acknowledgementText = _(
            "Segmentation after Fan et al., AJNR 2019 (SPINECT: 3D U-Net for bone and nerve on CT)."
        )
        slicer.app.connect("startupCompleted()", registerTerminology)


_terminologyRegistered = False


def registerTerminology() -> None:
    """Register the engine's terminology context (lumbar levels, sacrum, ilium, discs, dural sac, nerve roots
    by level and side) with Slicer once, so segment tags resolve and the terminology selector lists them."""
    global _terminologyRegistered
    if _terminologyRegistered:
        return
    try:
        from spineai import anatomy

        path = anatomy.terminology_json_path()
        terminologies = slicer.modules.terminologies.logic()
    except (ImportError, AttributeError) as exc:
        logging.warning("SpineAI terminology not registered: %s", exc)
        return
    if path.is_file() and terminologies.LoadTerminologyFromFile(str(path)):
        _terminologyRegistered = True


#
# SpineAISegmentationParameterNode
#


@parameterNodeWrapper
class SpineAISegmentationParameterNode:
    """Parameters saved with the scene.

    inputVolume: the CT to segment (HU).
    outputSegmentation: where the result goes (a new node when empty).
    device: "cpu" or "cuda" (the user's last choice is the default for new scenes).
    mode: "fast" (coarser, for CPUs) or "paper" (the paper's sliding-window inference).
    mirrorTTA: also segment the left-right mirror image and average (slightly better roots, twice the time).
    showSurfaces: build and show smoothed 3D surfaces of the segments.
    surfaceSmoothing: Slicer's closed-surface smoothing factor 0..1.
    exportFolder: training data folder for "Export for retraining".
    caseName: case folder name for the export (default: the volume's name).
    resultsTable: table of structure volumes of the last result.
    measureLevels: levels to measure, separated by spaces ("L4-L5 L5-S1").
    measureSides: "both", "left" or "right" (the patient's).
    planLevel, planSide: the foramen of the injection to plan.
    planOblique: ipsilateral C-arm oblique in the level's frame, 0..45 degrees.
    planTilt: cranio-caudal tilt, -45..45 degrees, positive = cranial.
    planningTable: table of the last measurement or plan (areas mm2, angles degrees, clearances mm).
    levelsOverride: the user's statement for vertebra renumbering ("" = automatic).
    levelsTable: table of the last renumbering (vertebra, confidence, trusted, flags, Castellvi).
    """

    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    device: Annotated[str, Choice(list(engine.DEVICES))] = "cpu"
    mode: Annotated[str, Choice(list(engine.SEGMENT_MODES))] = "fast"
    mirrorTTA: bool = False
    showSurfaces: bool = True
    surfaceSmoothing: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    exportFolder: pathlib.Path
    caseName: str = ""
    resultsTable: vtkMRMLTableNode
    measureLevels: str = "L4-L5 L5-S1"
    measureSides: Annotated[str, Choice(list(MEASURE_SIDES))] = "both"
    planLevel: Annotated[str, Choice(list(PLAN_LEVELS))] = "L5-S1"
    planSide: Annotated[str, Choice(list(engine.SIDES))] = "left"
    planOblique: Annotated[float, WithinRange(0.0, engine.MAX_OBLIQUE_DEG)] = 25.0
    planTilt: Annotated[float, WithinRange(-engine.MAX_TILT_DEG, engine.MAX_TILT_DEG)] = 0.0
    planningTable: vtkMRMLTableNode
    levelsOverride: str = ""
    levelsTable: vtkMRMLTableNode


def _hubLogic():
    import SpineAI

    return SpineAI.SpineAILogic()


#
# SpineAISegmentationWidget
#


class SpineAISegmentationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module's panel."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job: BackgroundProcess | None = None
        self._jobKind = ""  # "segment", "measure", "plan" or "levels" while a job runs
        self._engineCommands: dict[str, str] | None = None
        self._probeJob = None
        self._views: list[planning.CarmView] = []
        self._viewsTable = None
        self._levelsSource = None  # the segmentation whose level warning is shown

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineAISegmentation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SpineAISegmentationLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.correctButton.connect("clicked(bool)", self.onCorrectButton)
        self.ui.updateTableButton.connect("clicked(bool)", self.onUpdateTableButton)
        self.ui.exportButton.connect("clicked(bool)", self.onExportButton)
        self.ui.measureButton.connect("clicked(bool)", self.onMeasureButton)
        self.ui.planButton.connect("clicked(bool)", self.onPlanButton)
        self.ui.bestViewButton.connect("clicked(bool)", self.onBestViewButton)
        self.ui.showViewButton.connect("clicked(bool)", self.onShowViewButton)
        self.ui.relabelButton.connect("clicked(bool)", self.onRelabelButton)
        self.ui.progressBar.hide()
        self.ui.measureProgressBar.hide()
        self.ui.levelsCollapsibleButton.hide()  # shown when the engine has 'spineai levels'
        self.ui.levelsWarningLabel.hide()
        self.ui.planningLevelsWarningLabel.hide()
        # site weights are a per-user choice (application settings), not part of the scene
        self.ui.weightsPathLineEdit.currentPath = self.logic.userWeightsFile()
        self.ui.weightsPathLineEdit.connect("currentPathChanged(QString)", self.logic.setUserWeightsFile)

        self.initializeParameterNode()
        self.ui.measureStatusLabel.text = _("Checking which commands the SpineAI engine offers...")
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
        self.logic.applyUserDefaults(self._parameterNode)
        if not self._parameterNode.inputVolume:
            for volume in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
                if not volume.IsA("vtkMRMLLabelMapVolumeNode"):
                    self._parameterNode.inputVolume = volume
                    break

    def setParameterNode(self, inputParameterNode: SpineAISegmentationParameterNode | None) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified
            )
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self._onParameterNodeModified()

    # ------------------------------------------------------------------ engine commands
    def _onEngineCommands(self, found, error: str) -> None:
        self._engineCommands = found
        if found is None:
            self.ui.measureStatusLabel.text = _(
                "The SpineAI engine's commands could not be listed: {error}"
            ).format(error=error)
        else:
            missing = [c for c in ("measure", "plan") if c not in found]
            self.ui.measureStatusLabel.text = (
                _("This engine has no '{commands}' command; update the SpineAI engine.").format(
                    commands="', '".join(missing)
                )
                if missing
                else ""
            )
            self.ui.levelsCollapsibleButton.visible = "levels" in found
            helpText = engine.option_help(found.get("levels", ""), "--override")
            if helpText:
                self.ui.levelsOverrideLineEdit.toolTip = helpText
        self._onParameterNodeModified()

    def _engineHas(self, command: str) -> bool:
        return self._engineCommands is not None and command in self._engineCommands

    # ------------------------------------------------------------------ state -> buttons
    def _setRunButton(self, button, kind: str, idleText: str, idleTip: str, ready: bool, why: str) -> None:
        running = self._job is not None and self._job.running
        if running and self._jobKind == kind:
            button.text = _("Cancel")
            button.toolTip = _("Stop it (the background process is killed)")
            button.enabled = True
        else:
            button.text = idleText
            button.enabled = ready and not running
            button.toolTip = idleTip if ready else why

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p is None:
            return
        running = self._job is not None and self._job.running
        self.logic.rememberUserDefaults(p)
        self._setRunButton(
            self.ui.applyButton,
            "segment",
            _("Segment"),
            _("Segment bones, discs, dural sac and nerve roots in a background process"),
            bool(p.inputVolume),
            _("Select a CT volume"),
        )
        hasResult = bool(p.outputSegmentation and p.inputVolume)
        for button in (self.ui.correctButton, self.ui.updateTableButton, self.ui.exportButton):
            button.enabled = hasResult and not running
        noSegmentation = _("Segment the CT first (or select a segmentation and its CT)")
        self._setRunButton(
            self.ui.measureButton,
            "measure",
            _("Measure triangles"),
            _("Measure Kambin's and the safe triangle on the current segmentation (background process)"),
            hasResult and self._engineHas("measure"),
            noSegmentation if not hasResult else _("This engine has no 'spineai measure' command"),
        )
        self._setRunButton(
            self.ui.planButton,
            "plan",
            _("Plan needle path"),
            _("Evaluate this C-arm view and plan the needle path (background process)"),
            hasResult and self._engineHas("plan"),
            noSegmentation if not hasResult else _("This engine has no 'spineai plan' command"),
        )
        self._setRunButton(
            self.ui.relabelButton,
            "levels",
            _("Renumber vertebrae"),
            _("Number the vertebrae with the engine (background process); the current segmentation is kept"),
            hasResult and self._engineHas("levels"),
            noSegmentation if not hasResult else _("This engine has no 'spineai levels' command"),
        )
        self.ui.resultsTableView.setMRMLTableNode(p.resultsTable)
        self.ui.planningTableView.setMRMLTableNode(p.planningTable)
        self.ui.levelsTableView.setMRMLTableNode(p.levelsTable)
        if p.outputSegmentation is not self._levelsSource:
            self._levelsSource = p.outputSegmentation
            self._showLevelsWarning(self.logic.levelsOfSegmentation(p.outputSegmentation), popup=False)
        if p.planningTable is not self._viewsTable:
            self._viewsTable = p.planningTable
            self._setViews(self.logic.viewsOfTable(p.planningTable))
        self.ui.bestViewButton.enabled = bool(self._views) and not running
        self.ui.showViewButton.enabled = bool(self._views)
        if p.outputSegmentation:
            self.ui.outputSegmentationSelector.baseName = p.outputSegmentation.GetName()
        elif p.inputVolume:
            self.ui.outputSegmentationSelector.baseName = _("{volume} SpineAI").format(
                volume=p.inputVolume.GetName()
            )

    def _showLevelsWarning(self, levels, popup: bool) -> None:
        """Show (in red, and with ``popup`` as a warning dialog and status message) why the numbering is
        flagged; hide the warning when the levels can be trusted or are unknown."""
        text = levelinfo.warning_text(levels)
        for label in (self.ui.levelsWarningLabel, self.ui.planningLevelsWarningLabel):
            label.text = text
            label.visible = bool(text)
        if text and popup:
            slicer.util.showStatusMessage(text, 15000)
            slicer.util.warningDisplay(text, windowTitle=_("SpineAI: check the level labels"))

    def _setViews(self, views) -> None:
        self._views = list(views)
        self.ui.carmViewComboBox.clear()
        for view in self._views:
            self.ui.carmViewComboBox.addItem(view.label)

    def _cancelRunning(self, statusLabel) -> bool:
        """Cancel the running job when its own button was pressed again; True when it did."""
        if self._job is not None and self._job.running:
            self._job.cancel()
            statusLabel.text = _("Cancelling...")
            return True
        return False

    # ------------------------------------------------------------------ segment / cancel
    def onApplyButton(self) -> None:
        if self._cancelRunning(self.ui.statusLabel):
            return
        p = self._parameterNode
        try:
            with slicer.util.tryWithErrorDisplay(_("Segmentation could not start."), waitCursor=True):
                _hubLogic().ensureDependencies(askConfirmation=True)
                self.ui.logTextEdit.clear()
                self.ui.progressBar.value = 0
                self.ui.progressBar.show()
                self.ui.statusLabel.text = _("Starting the SpineAI engine...")
                self._jobKind = "segment"
                self._job = self.logic.startSegmentation(
                    p.inputVolume,
                    p.outputSegmentation,
                    device=p.device,
                    mode=p.mode,
                    mirrorTTA=p.mirrorTTA,
                    weights=self.ui.weightsPathLineEdit.currentPath or None,
                    showSurfaces=p.showSurfaces,
                    smoothing=p.surfaceSmoothing,
                    onProgress=self._onProgress,
                    onLine=self._onLine,
                    onDone=self._onDone,
                )
        except Exception:  # already shown to the user and logged by tryWithErrorDisplay
            self._job = None
            self.ui.progressBar.hide()
            self.ui.statusLabel.text = _("Segmentation could not start.")
        self._onParameterNodeModified()

    def _onProgress(self, update) -> None:
        self.ui.progressBar.value = int(round(update.percent))
        self.ui.statusLabel.text = update.message

    def _onLine(self, line: str) -> None:
        self.ui.logTextEdit.appendPlainText(line)

    def _onDone(self, segmentationNode, result: ProcessResult, error: str) -> None:
        self.ui.progressBar.hide()
        p = self._parameterNode
        if result.cancelled:
            self.ui.statusLabel.text = _("Cancelled; nothing was changed.")
        elif segmentationNode is None:
            self.ui.statusLabel.text = _("Segmentation failed.")
            slicer.util.errorDisplay(_("Segmentation failed:\n\n{error}").format(error=error))
        else:
            if p is not None:
                p.outputSegmentation = segmentationNode
                p.resultsTable = self.logic.lastTable
            missing = self.logic.lastMissing
            done = _("Done in {seconds:.0f} s.").format(seconds=result.seconds)
            if missing:
                done += " " + _("Not found: {names}. Check the field of view or correct them.").format(
                    names=", ".join(missing)
                )
            implausible = [w for w in self.logic.lastWarnings if "implausible" in w]
            if implausible:
                done += " " + _("The result is anatomically implausible: check it before any measurement.")
                slicer.util.warningDisplay("\n\n".join(implausible), windowTitle=_("SpineAI Segmentation"))
            self.ui.statusLabel.text = done
        self._job = None
        self._jobKind = ""
        self._onParameterNodeModified()

    # ------------------------------------------------------------------ measure / plan
    def _startPlanningJob(self, kind: str, start) -> None:
        try:
            with slicer.util.tryWithErrorDisplay(_("The engine could not start."), waitCursor=True):
                self.ui.logTextEdit.clear()
                self.ui.measureProgressBar.value = 0
                self.ui.measureProgressBar.show()
                self.ui.measureStatusLabel.text = _("Writing the current segmentation for the engine...")
                self._jobKind = kind
                self._job = start()
        except Exception:  # already shown to the user and logged by tryWithErrorDisplay
            self._job = None
            self._jobKind = ""
            self.ui.measureProgressBar.hide()
            self.ui.measureStatusLabel.text = _("The engine could not start.")
        self._onParameterNodeModified()

    def onMeasureButton(self) -> None:
        if self._cancelRunning(self.ui.measureStatusLabel):
            return
        p = self._parameterNode
        sides = engine.SIDES if p.measureSides == "both" else (p.measureSides,)
        self._startPlanningJob(
            "measure",
            lambda: self.logic.startMeasure(
                p.outputSegmentation,
                p.inputVolume,
                levels=p.measureLevels.replace(",", " ").split(),
                sides=sides,
                onProgress=self._onMeasureProgress,
                onLine=self._onLine,
                onDone=self._onPlanningDone,
            ),
        )

    def onPlanButton(self) -> None:
        if self._cancelRunning(self.ui.measureStatusLabel):
            return
        p = self._parameterNode
        self._startPlanningJob(
            "plan",
            lambda: self.logic.startPlan(
                p.outputSegmentation,
                p.inputVolume,
                level=p.planLevel,
                side=p.planSide,
                obliqueDeg=p.planOblique,
                tiltDeg=p.planTilt,
                onProgress=self._onMeasureProgress,
                onLine=self._onLine,
                onDone=self._onPlanningDone,
            ),
        )

    def _onMeasureProgress(self, update) -> None:
        self.ui.measureProgressBar.value = int(round(update.percent))
        self.ui.measureStatusLabel.text = update.message

    def _onPlanningDone(self, planningResult, result: ProcessResult, error: str) -> None:
        self.ui.measureProgressBar.hide()
        kind = self._jobKind
        self._job = None
        self._jobKind = ""
        if result.cancelled:
            self.ui.measureStatusLabel.text = _("Cancelled; nothing was changed.")
        elif planningResult is None:
            self.ui.measureStatusLabel.text = _("The {kind} failed.").format(kind=kind)
            slicer.util.errorDisplay(_("The {kind} failed:\n\n{error}").format(kind=kind, error=error))
        else:
            p = self._parameterNode
            self._viewsTable = planningResult.tableNode
            self._setViews(planningResult.views)
            if p is not None:
                p.planningTable = planningResult.tableNode
            lines = planningResult.summary or [_("No foramen could be measured.")]
            self.ui.measureStatusLabel.text = "\n".join(lines)
            self._showLevelsWarning(planningResult.levels, popup=True)
            if self._views:
                with slicer.util.tryWithErrorDisplay(
                    _("Could not move the 3D view's camera."), waitCursor=False
                ):
                    self.logic.applyCarmView(self._views[0])
        self._onParameterNodeModified()

    def onBestViewButton(self) -> None:
        p = self._parameterNode
        view = planning.find_view(self._views, p.planLevel, p.planSide)
        if view is None:
            self.ui.measureStatusLabel.text = _(
                "No measured view for {level} {side}: measure that level and side first."
            ).format(level=p.planLevel, side=p.planSide)
            return
        p.planOblique = min(max(view.oblique_deg, 0.0), engine.MAX_OBLIQUE_DEG)
        p.planTilt = min(max(view.tilt_deg, -engine.MAX_TILT_DEG), engine.MAX_TILT_DEG)

    def onShowViewButton(self) -> None:
        index = self.ui.carmViewComboBox.currentIndex
        if not 0 <= index < len(self._views):
            return
        with slicer.util.tryWithErrorDisplay(_("Could not move the 3D view's camera."), waitCursor=False):
            self.logic.applyCarmView(self._views[index])

    # ------------------------------------------------------------------ levels
    def onRelabelButton(self) -> None:
        if self._cancelRunning(self.ui.levelsStatusLabel):
            return
        p = self._parameterNode
        try:
            with slicer.util.tryWithErrorDisplay(_("Vertebra renumbering could not start."), waitCursor=True):
                self.ui.logTextEdit.clear()
                self.ui.levelsStatusLabel.text = _("Renumbering the vertebrae...")
                self._jobKind = "levels"
                self._job = self.logic.startRelabel(
                    p.outputSegmentation,
                    p.inputVolume,
                    override=p.levelsOverride,
                    onProgress=self._onLevelsProgress,
                    onLine=self._onLine,
                    onDone=self._onRelabelDone,
                )
        except Exception:  # already shown to the user and logged by tryWithErrorDisplay
            self._job = None
            self._jobKind = ""
            self.ui.levelsStatusLabel.text = _("Vertebra renumbering could not start.")
        self._onParameterNodeModified()

    def _onLevelsProgress(self, update) -> None:
        self.ui.levelsStatusLabel.text = update.message

    def _onRelabelDone(self, segmentationNode, result: ProcessResult, error: str) -> None:
        self._job = None
        self._jobKind = ""
        if result.cancelled:
            self.ui.levelsStatusLabel.text = _("Cancelled; nothing was changed.")
        elif segmentationNode is None:
            self.ui.levelsStatusLabel.text = _("Renumbering failed.")
            slicer.util.errorDisplay(_("Vertebra renumbering failed:\n\n{error}").format(error=error))
        else:
            p = self._parameterNode
            levels = self.logic.lastLevels
            self._levelsSource = segmentationNode
            if p is not None:
                p.outputSegmentation = segmentationNode
                p.resultsTable = self.logic.lastTable
                p.levelsTable = self.logic.lastLevelsTable
            self.ui.levelsStatusLabel.text = (
                _(
                    "Renumbered into '{name}'; the previous segmentation is kept. Measure again to name the "
                    "triangles by the new levels."
                ).format(name=segmentationNode.GetName())
                + "\n"
                + levelinfo.status_text(levels)
            )
            self._showLevelsWarning(levels, popup=True)
        self._onParameterNodeModified()

    # ------------------------------------------------------------------ correct / table / export
    def onCorrectButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not open the Segment Editor."), waitCursor=True):
            self.logic.openInSegmentEditor(p.outputSegmentation, p.inputVolume)

    def onUpdateTableButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not measure the segments."), waitCursor=True):
            p.resultsTable = self.logic.updateStructureTable(
                p.outputSegmentation, p.inputVolume, p.resultsTable
            )

    def onExportButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Export for retraining failed."), waitCursor=True):
            folder = self.logic.exportForRetraining(
                p.inputVolume, p.outputSegmentation, p.exportFolder, p.caseName
            )
            self.ui.statusLabel.text = _("Exported to {folder}").format(folder=str(folder))
            slicer.util.showStatusMessage(self.ui.statusLabel.text, 5000)


class PlanningResult:
    """What one ``spineai measure`` or ``spineai plan`` run put into the scene.

    Attributes:
        folder: the engine's output folder (measurements.json/.tsv, planning.mrk.json).
        kind: ``"measure"`` or ``"plan"``.
        markupNodes: triangles (closed curves), needle paths (lines), entry/target points (point lists).
        tableNode: areas (mm2), angles (degrees), clearances (mm) per level, side and triangle.
        views: :class:`SpineAILib.planning.CarmView` per measured triangle, recommended first.
        summary: one plain line per level and side (marked where the level labels must be checked).
        folderItem: the subject hierarchy folder holding the nodes.
        levels: the numbering of the measured segmentation (:class:`spineai.reports.levels.LevelLabels`),
            ``None`` when it was not renumbered.
    """

    def __init__(self, folder, kind, markupNodes, tableNode, views, summary, folderItem, levels=None) -> None:
        self.folder = Path(folder)
        self.kind = kind
        self.markupNodes = list(markupNodes)
        self.tableNode = tableNode
        self.views = list(views)
        self.summary = list(summary)
        self.folderItem = folderItem
        self.levels = levels

    @property
    def levelsWarning(self) -> str:
        """Why the level labels must be checked ("" when they need not be)."""
        return levelinfo.warning_text(self.levels)

    def nodesByRole(self, role: str) -> list:
        """The markups nodes of one role: ``"triangle"``, ``"triangle_view"``, ``"needle"``, ``"entry_target"``."""
        return [n for n in self.markupNodes if n.GetAttribute(ATTRIBUTE_ROLE) == role]


#
# SpineAISegmentationLogic
#


class SpineAISegmentationLogic(ScriptedLoadableModuleLogic):
    """Segment, load, correct and export; usable from the Python console without the GUI::

    logic = slicer.util.getModuleLogic("SpineAISegmentation")
    seg = logic.process(slicer.util.getNode("CT"), device="cpu", mode="fast")
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.lastTable = None
        self.lastMissing: list[str] = []
        self.lastWarnings: list[str] = []
        self.lastLevels = None
        self.lastLevelsTable = None

    def getParameterNode(self) -> SpineAISegmentationParameterNode:
        return SpineAISegmentationParameterNode(super().getParameterNode())

    # ------------------------------------------------------------------ user defaults (QSettings)
    @staticmethod
    def applyUserDefaults(parameterNode: SpineAISegmentationParameterNode) -> None:
        """Fill a new scene's device and export folder from the user's last choices (application settings)."""
        import SpineAI

        node = parameterNode.parameterNode
        if node.GetAttribute("SpineAI.UserDefaultsApplied") != "1":
            node.SetAttribute("SpineAI.UserDefaultsApplied", "1")
            parameterNode.device = SpineAI.SpineAILogic.defaultDevice()
        if str(parameterNode.exportFolder) in ("", "."):
            default = Path.home() / "SpineAI-training-data"
            parameterNode.exportFolder = Path(
                slicer.util.settingsValue(SpineAI.SETTINGS_LAST_EXPORT_DIR, str(default))
            )

    @staticmethod
    def userWeightsFile() -> str:
        """The site weights the user chose last ("" = the engine's shipped model)."""
        return str(slicer.util.settingsValue(SETTINGS_WEIGHTS_FILE, ""))

    @staticmethod
    def setUserWeightsFile(path: str) -> None:
        qt.QSettings().setValue(SETTINGS_WEIGHTS_FILE, str(path or ""))

    @staticmethod
    def rememberUserDefaults(parameterNode: SpineAISegmentationParameterNode) -> None:
        import SpineAI

        settings = qt.QSettings()
        if settings.value(SpineAI.SETTINGS_DEVICE) != parameterNode.device:
            SpineAI.SpineAILogic.setDefaultDevice(parameterNode.device)
        folder = str(parameterNode.exportFolder)
        if folder not in ("", ".") and settings.value(SpineAI.SETTINGS_LAST_EXPORT_DIR) != folder:
            settings.setValue(SpineAI.SETTINGS_LAST_EXPORT_DIR, folder)

    # ------------------------------------------------------------------ input checks
    @staticmethod
    def checkInputVolume(inputVolume) -> None:
        """Raise ``ValueError`` naming the problem and the fix for a volume the engine cannot segment."""
        if inputVolume is None:
            raise ValueError(_("No input volume: select a CT volume."))
        if inputVolume.IsA("vtkMRMLLabelMapVolumeNode"):
            raise ValueError(
                _("'{name}' is a label map, not a CT: select the CT volume.").format(
                    name=inputVolume.GetName()
                )
            )
        image = inputVolume.GetImageData()
        if image is None:
            raise ValueError(
                _("'{name}' has no voxels: load the CT again.").format(name=inputVolume.GetName())
            )
        dims = image.GetDimensions()
        if min(dims) < 2:
            raise ValueError(
                _(
                    "'{name}' is {dims} voxels: a 3D CT with several slices is needed, not a single slice."
                ).format(name=inputVolume.GetName(), dims="x".join(str(d) for d in dims))
            )
        if image.GetNumberOfScalarComponents() != 1:
            raise ValueError(
                _("'{name}' has {n} components per voxel: a grey-level CT (HU) is needed.").format(
                    name=inputVolume.GetName(), n=image.GetNumberOfScalarComponents()
                )
            )

    @staticmethod
    def writeInputVolume(inputVolume, path: Path) -> Path:
        """Write the volume as NRRD for the engine without changing the node's own storage."""
        storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
        storage.SetFileName(str(path))
        storage.UseCompressionOff()
        if not storage.WriteData(inputVolume):
            raise RuntimeError(_("Could not write the input volume to {path}.").format(path=str(path)))
        return path

    # ------------------------------------------------------------------ run
    def startSegmentation(
        self,
        inputVolume,
        outputSegmentation=None,
        device: str = "cpu",
        mode: str = "fast",
        weights=None,
        showSurfaces: bool = True,
        smoothing: float = 0.5,
        mirrorTTA: bool = False,
        onProgress=None,
        onLine=None,
        onDone=None,
    ) -> BackgroundProcess:
        """Start ``spineai segment`` in the background; the result is loaded on the GUI thread when it ends.

        ``onDone(segmentationNode or None, ProcessResult, error text)`` is called once (also on cancel).
        """
        self.checkInputVolume(inputVolume)
        command, outputDir = self._prepare(inputVolume, device, mode, weights, mirrorTTA)

        def finished(result: ProcessResult) -> None:
            segmentation, error = None, result.error
            if result.succeeded:
                try:
                    segmentation = self.loadSegmentationResult(
                        outputDir,
                        inputVolume,
                        outputSegmentation,
                        showSurfaces=showSurfaces,
                        smoothing=smoothing,
                    )
                except Exception as exc:  # reported to the user by onDone
                    logging.exception("SpineAI: loading the segmentation failed")
                    error = str(exc)
            if onDone:
                onDone(segmentation, result, error)

        return _hubLogic().startEngine(command, onProgress=onProgress, onLine=onLine, onFinished=finished)

    def _prepare(
        self, inputVolume, device: str, mode: str, weights=None, mirrorTTA: bool = False
    ) -> tuple[engine.EngineCommand, Path]:
        folder = Path(slicer.util.tempDirectory("SpineAI-segment-"))
        inputPath = self.writeInputVolume(inputVolume, folder / "input.nrrd")
        outputDir = folder / "result"
        command = engine.segment_command(
            inputPath,
            outputDir,
            device=device,
            mode=mode,
            weights=weights or None,
            mirror_tta=mirrorTTA,
            python=python_executable_for_slicer(),
        )
        return command, outputDir

    def process(
        self,
        inputVolume,
        outputSegmentation=None,
        device: str = "cpu",
        mode: str = "fast",
        weights=None,
        showSurfaces: bool = True,
        smoothing: float = 0.5,
        timeout: float | None = None,
        mirrorTTA: bool = False,
    ):
        """Segment and wait (console, scripts, tests); returns the segmentation node.

        Raises:
            ValueError: bad input.
            RuntimeError: the engine failed (its plain-words error) or was cancelled.
        """
        self.checkInputVolume(inputVolume)
        command, outputDir = self._prepare(inputVolume, device, mode, weights, mirrorTTA)
        result = _hubLogic().runEngine(command, timeout=timeout)
        if not result.succeeded:
            raise RuntimeError(result.error or _("Segmentation was cancelled."))
        return self.loadSegmentationResult(
            outputDir, inputVolume, outputSegmentation, showSurfaces, smoothing
        )

    # ------------------------------------------------------------------ load
    def loadSegmentationResult(
        self,
        outputDir: str | os.PathLike,
        inputVolume,
        segmentationNode=None,
        showSurfaces: bool = True,
        smoothing: float = 0.5,
    ):
        """Load the engine's ``labels.nii.gz`` + ``labels.json`` of an output folder as a segmentation node.

        One segment per sidecar entry (empty ones too, ready to be painted), named and coloured from the
        sidecar with its terminology tag; the input volume is the reference geometry; the node goes under
        the input's study and gets the input's parent transform; smoothed surfaces are shown on request.
        """
        outputs = engine.SegmentOutputs(Path(outputDir)).check()
        node = self.loadLabelMap(
            outputs.labels, outputs.sidecar, inputVolume, segmentationNode, showSurfaces, smoothing
        )
        self.lastWarnings = outputs.warnings()  # after loadLabelMap, which resets them
        for warning in self.lastWarnings:
            logging.warning(f"SpineAI segmentation: {warning}")
        return node

    def loadLabelMap(
        self,
        labelsPath: str | os.PathLike,
        sidecarPath: str | os.PathLike,
        inputVolume,
        segmentationNode=None,
        showSurfaces: bool = True,
        smoothing: float = 0.5,
    ):
        """Load a canonical label map with its ``.json`` sidecar as a segmentation node (see
        :meth:`loadSegmentationResult`); ``segmentationNode`` None: a new node named after the input."""
        registerTerminology()
        labelsPath = Path(labelsPath)
        if not labelsPath.is_file():
            raise ValueError(_("The label map {path} does not exist.").format(path=str(labelsPath)))
        sidecar = labels.read_label_sidecar(sidecarPath)
        byLabel = sidecar.by_label()

        if segmentationNode is None:
            segmentationNode = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLSegmentationNode",
                slicer.mrmlScene.GenerateUniqueName(f"{inputVolume.GetName()} SpineAI"),
            )
        segmentationNode.CreateDefaultDisplayNodes()
        segmentation = segmentationNode.GetSegmentation()
        segmentation.RemoveAllSegments()
        segmentationNode.SetNodeReferenceID(
            segmentationNode.GetReferenceImageGeometryReferenceRole(), inputVolume.GetID()
        )
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(inputVolume)

        labelmapNode = slicer.util.loadLabelVolume(
            str(labelsPath), {"name": "SpineAI labels (import)", "show": False}
        )
        colorNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLColorTableNode", "SpineAI labels (import)")
        try:
            colorNode.SetTypeToUser()
            colorNode.SetNumberOfColors(max(byLabel) + 1)
            for value, name, r, g, b, a in labels.colour_table_entries(sidecar.specs):
                colorNode.SetColor(value, name, r, g, b, a)
            labelmapNode.GetDisplayNode().SetAndObserveColorNodeID(colorNode.GetID())
            labelArray = slicer.util.arrayFromVolume(labelmapNode)
            ijkToRas = vtk.vtkMatrix4x4()
            labelmapNode.GetIJKToRASMatrix(ijkToRas)
            rows = tables.structure_rows(labelArray, slicer.util.arrayFromVTKMatrix(ijkToRas), sidecar.specs)
            unknown = sorted(set(np.unique(labelArray).tolist()) - set(byLabel) - {0})
            if unknown:
                raise ValueError(
                    _("The label map holds values {values} that labels.json does not name.").format(
                        values=unknown
                    )
                )
            if not slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(
                labelmapNode, segmentationNode
            ):
                raise RuntimeError(
                    _("Slicer could not import the label map {path}.").format(path=str(labelsPath))
                )
        finally:
            slicer.mrmlScene.RemoveNode(labelmapNode)
            slicer.mrmlScene.RemoveNode(colorNode)
            if hasattr(segmentationNode, "SetLabelmapConversionColorTableNodeID"):
                segmentationNode.SetLabelmapConversionColorTableNodeID(None)

        self.applySidecar(segmentationNode, sidecar)

        if inputVolume.GetParentTransformNode():
            segmentationNode.SetAndObserveTransformNodeID(inputVolume.GetTransformNodeID())
        shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        studyItem = shNode.GetItemParent(shNode.GetItemByDataNode(inputVolume))
        shNode.SetItemParent(shNode.GetItemByDataNode(segmentationNode), studyItem)

        import spineai

        segmentationNode.SetAttribute(ATTRIBUTE_ENGINE_OUTPUT, str(labelsPath.parent.resolve()))
        segmentationNode.SetAttribute(ATTRIBUTE_ENGINE_LABELS, str(labelsPath.resolve()))
        segmentationNode.SetAttribute(ATTRIBUTE_ENGINE_VERSION, str(spineai.__version__))

        if showSurfaces:
            segmentation.SetConversionParameter("Smoothing factor", f"{float(smoothing):g}")
            segmentationNode.CreateClosedSurfaceRepresentation()
            segmentationNode.GetDisplayNode().SetVisibility3D(True)

        self.lastTable = self._fillTable(None, rows, f"{segmentationNode.GetName()} structures")
        self.lastWarnings = []
        self.lastMissing = tables.missing_structures(
            rows, [n for n in REQUIRED_FOR_TRIANGLES if n in sidecar.by_name()]
        )
        return segmentationNode

    @staticmethod
    def applySidecar(segmentationNode, sidecar: labels.LabelSidecar) -> None:
        """Name, colour and tag every segment from the sidecar; add empty segments for absent structures."""
        segmentation = segmentationNode.GetSegmentation()
        byLabel = sidecar.by_label()
        found = set()
        for index in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(index)
            spec = byLabel.get(int(segment.GetLabelValue())) if hasattr(segment, "GetLabelValue") else None
            if spec is None:
                spec = sidecar.by_name().get(segment.GetName())
            if spec is None:
                continue
            found.add(spec.label)
            segment.SetName(spec.name)
            segment.SetColor(*spec.color)
            if spec.terminology:
                segment.SetTag(segment.GetTerminologyEntryTagName(), spec.terminology)
        for spec in sidecar.specs:
            if spec.label in found:
                continue
            segmentId = segmentation.AddEmptySegment(spec.name, spec.name, spec.color)
            segment = segmentation.GetSegment(segmentId)
            if spec.terminology:
                segment.SetTag(segment.GetTerminologyEntryTagName(), spec.terminology)

    @staticmethod
    def terminologyTag(segment) -> str:
        """The segment's ``TerminologyEntry`` tag ("" when absent)."""
        value = vtk.mutable("")
        segment.GetTag(segment.GetTerminologyEntryTagName(), value)
        return str(value)

    # ------------------------------------------------------------------ table
    @staticmethod
    def _fillTable(tableNode, rows, name: str):
        if tableNode is None:
            tableNode = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLTableNode", slicer.mrmlScene.GenerateUniqueName(name)
            )
        tableNode.RemoveAllColumns()
        for column, unit in tables.STRUCTURE_TABLE_COLUMNS:
            array = vtk.vtkStringArray() if column == "Structure" else vtk.vtkDoubleArray()
            array.SetName(column)
            for row in rows:
                array.InsertNextValue(row[column] if column == "Structure" else float(row[column]))
            tableNode.AddColumn(array)
            if unit:
                tableNode.SetColumnUnitLabel(column, unit)
        tableNode.Modified()
        return tableNode

    def updateStructureTable(self, segmentationNode, referenceVolume, tableNode=None):
        """Re-measure the (corrected) segments on the reference volume's grid into ``tableNode``."""
        labelArray, sidecar, _overlaps = self._labelArray(segmentationNode, referenceVolume)
        ijkToRas = vtk.vtkMatrix4x4()
        referenceVolume.GetIJKToRASMatrix(ijkToRas)
        rows = tables.structure_rows(labelArray, slicer.util.arrayFromVTKMatrix(ijkToRas), sidecar.specs)
        return self._fillTable(tableNode, rows, f"{segmentationNode.GetName()} structures")

    @staticmethod
    def fillResultTable(tableNode, data: tables.TableData, name: str):
        """Fill (or create) a table node from ``SpineAILib.tables.TableData`` (see the hub's logic)."""
        return _hubLogic().fillResultTable(tableNode, data, name)

    # ------------------------------------------------------------------ measure and plan
    def checkSegmentationAndVolume(self, segmentationNode, volumeNode) -> None:
        """Raise ``ValueError`` naming the problem and the fix when a segmentation cannot be measured."""
        if segmentationNode is None:
            raise ValueError(_("No segmentation: segment the CT first, or select a segmentation."))
        self.checkInputVolume(volumeNode)
        for node in (volumeNode, segmentationNode):
            if node.GetParentTransformNode():
                raise ValueError(
                    _(
                        "'{name}' is under a transform. Harden the transform (Data module) first, so the engine "
                        "measures the true geometry."
                    ).format(name=node.GetName())
                )
        if segmentationNode.GetSegmentation().GetNumberOfSegments() == 0:
            raise ValueError(
                _("'{name}' has no segments: segment the CT first.").format(name=segmentationNode.GetName())
            )

    def writeEngineInputs(self, segmentationNode, volumeNode, folder: str | os.PathLike) -> tuple[Path, Path]:
        """Write the CURRENT segmentation (corrections included) as a canonical label map with its sidecar on
        the CT's grid, and the CT beside it, for the engine.

        Returns:
            ``(label map .nii.gz, CT .nrrd)``.
        """
        self.checkSegmentationAndVolume(segmentationNode, volumeNode)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        labelArray, sidecar, overlaps = self._labelArray(segmentationNode, volumeNode)
        if not labelArray.any():
            raise ValueError(
                _("'{name}' is empty: paint or segment the structures first.").format(
                    name=segmentationNode.GetName()
                )
            )
        if overlaps:
            logging.warning("SpineAI: overlapping segments %s; the later segment wins", ", ".join(overlaps))
        ijkToRas = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(ijkToRas)
        labelsPath, _sidecarPath = export.write_label_map(
            folder / "labels.nii.gz", labelArray, slicer.util.arrayFromVTKMatrix(ijkToRas), sidecar
        )
        return labelsPath, self.writeInputVolume(volumeNode, folder / "ct.nrrd")

    def _planningCommand(self, kind: str, segmentationNode, volumeNode, **options):
        folder = Path(slicer.util.tempDirectory(f"SpineAI-{kind}-"))
        labelsPath, ctPath = self.writeEngineInputs(segmentationNode, volumeNode, folder / "input")
        outputDir = folder / "result"
        python = python_executable_for_slicer()
        if kind == "measure":
            command = engine.measure_command(labelsPath, outputDir, ct_path=ctPath, python=python, **options)
        else:
            command = engine.plan_command(labelsPath, outputDir, ct_path=ctPath, python=python, **options)
        return command, outputDir

    def _startPlanning(self, kind, segmentationNode, volumeNode, options, onProgress, onLine, onDone):
        command, outputDir = self._planningCommand(kind, segmentationNode, volumeNode, **options)

        def finished(result: ProcessResult) -> None:
            loaded, error = None, result.error
            if result.succeeded:
                try:
                    loaded = self.loadPlanningResult(outputDir, segmentationNode, volumeNode, kind)
                except Exception as exc:  # reported to the user by onDone
                    logging.exception("SpineAI: loading the %s failed", kind)
                    error = str(exc)
            elif not result.cancelled:
                error = self.planningFailure(outputDir) or error
            if onDone:
                onDone(loaded, result, error)

        return _hubLogic().startEngine(command, onProgress=onProgress, onLine=onLine, onFinished=finished)

    def _runPlanning(self, kind, segmentationNode, volumeNode, options, timeout):
        command, outputDir = self._planningCommand(kind, segmentationNode, volumeNode, **options)
        result = _hubLogic().runEngine(command, timeout=timeout)
        if not result.succeeded:
            if result.cancelled:
                raise RuntimeError(_("The {kind} was cancelled.").format(kind=kind))
            raise RuntimeError(self.planningFailure(outputDir) or result.error)
        return self.loadPlanningResult(outputDir, segmentationNode, volumeNode, kind)

    @staticmethod
    def planningFailure(outputDir) -> str:
        """Why no foramen could be measured, from the files the engine still wrote ("" when there are none)."""
        path = engine.PlanningOutputs(Path(outputDir)).measurements
        if not path.is_file():
            return ""
        try:
            lines = planning.summary_lines(planning.read_measurements(path))
        except ValueError:
            return ""
        return "\n".join([_("No level could be measured:"), *lines]) if lines else ""

    def startMeasure(
        self,
        segmentationNode,
        volumeNode,
        levels=("L4-L5", "L5-S1"),
        sides=engine.SIDES,
        onProgress=None,
        onLine=None,
        onDone=None,
    ) -> BackgroundProcess:
        """Start ``spineai measure`` on the current segmentation in the background.

        ``onDone(PlanningResult or None, ProcessResult, error text)`` runs on the GUI thread (also on cancel).
        """
        options = {"levels": list(levels), "sides": list(sides)}
        return self._startPlanning(
            "measure", segmentationNode, volumeNode, options, onProgress, onLine, onDone
        )

    def measure(
        self, segmentationNode, volumeNode, levels=("L4-L5", "L5-S1"), sides=engine.SIDES, timeout=None
    ):
        """Measure and wait (console, scripts, tests); returns the :class:`PlanningResult`.

        Raises:
            ValueError: bad input; RuntimeError: the engine failed (its plain-words error) or was cancelled.
        """
        options = {"levels": list(levels), "sides": list(sides)}
        return self._runPlanning("measure", segmentationNode, volumeNode, options, timeout)

    def startPlan(
        self,
        segmentationNode,
        volumeNode,
        level: str = "L5-S1",
        side: str = "left",
        obliqueDeg: float = 25.0,
        tiltDeg: float = 0.0,
        onProgress=None,
        onLine=None,
        onDone=None,
    ) -> BackgroundProcess:
        """Start ``spineai plan`` (one level and side at one C-arm view) in the background; see
        :meth:`startMeasure` for ``onDone``."""
        options = {"level": level, "side": side, "oblique_deg": obliqueDeg, "tilt_deg": tiltDeg}
        return self._startPlanning("plan", segmentationNode, volumeNode, options, onProgress, onLine, onDone)

    def plan(
        self,
        segmentationNode,
        volumeNode,
        level="L5-S1",
        side="left",
        obliqueDeg=25.0,
        tiltDeg=0.0,
        timeout=None,
    ):
        """Plan and wait (console, scripts, tests); returns the :class:`PlanningResult`."""
        options = {"level": level, "side": side, "oblique_deg": obliqueDeg, "tilt_deg": tiltDeg}
        return self._runPlanning("plan", segmentationNode, volumeNode, options, timeout)

    @staticmethod
    def createMarkupNode(spec: planning.MarkupSpec):
        """One locked markups node from a :class:`SpineAILib.planning.MarkupSpec` (RAS control points)."""
        node = slicer.mrmlScene.AddNewNodeByClass(spec.node_class, spec.name)
        node.CreateDefaultDisplayNodes()
        if spec.markup_type in ("ClosedCurve", "Curve"):
            node.SetCurveTypeToLinear()  # a triangle's sides are straight
        slicer.util.updateMarkupsControlPointsFromArray(node, np.asarray(spec.points_ras, dtype=float))
        for index, (label, description) in enumerate(
            zip(spec.point_labels, spec.point_descriptions, strict=True)
        ):
            node.SetNthControlPointLabel(index, label)
            if description:
                node.SetNthControlPointDescription(index, description)
        node.SetFixedNumberOfControlPoints(True)
        node.SetLocked(True)
        node.SetDescription(spec.description)
        for key, value in (
            (ATTRIBUTE_ROLE, spec.role),
            ("SpineAI.Level", spec.level),
            ("SpineAI.Side", spec.side),
            ("SpineAI.Triangle", spec.triangle),
        ):
            node.SetAttribute(key, value)
        display = node.GetDisplayNode()
        display.SetSelectedColor(*spec.colour)
        display.SetColor(*spec.colour)
        display.SetPropertiesLabelVisibility(spec.role in ("triangle", "needle"))
        display.SetPointLabelsVisibility(spec.role == "entry_target")
        if spec.markup_type == "ClosedCurve":
            area = node.GetMeasurement("area")
            if area is not None:
                area.SetEnabled(True)
        if spec.role == "triangle_view":
            node.SetDisplayVisibility(False)  # the triangle as seen from its best view; shown on request
        return node

    def loadPlanningResult(
        self, outputDir, segmentationNode, volumeNode, kind: str = "measure"
    ) -> PlanningResult:
        """Load what ``spineai measure``/``plan`` wrote: markups (LPS -> RAS), the table, the C-arm views.

        Earlier measurement markups of the same segmentation are hidden (not deleted); the new nodes go
        into one subject hierarchy folder under the CT's study.
        """
        outputs = engine.PlanningOutputs(Path(outputDir)).check()
        specs = planning.read_markups(outputs.markups)
        measurements = planning.read_measurements(outputs.measurements)
        levelsFile = levelinfo.find_levels_file(
            [
                outputs.folder,
                segmentationNode.GetAttribute(ATTRIBUTE_LEVELS_FILE) if segmentationNode else None,
            ]
        )
        levels = self._readLevels(levelsFile)
        data = levelinfo.annotate_planning_table(tables.read_tsv(outputs.table), levels)
        sourceId = segmentationNode.GetID() if segmentationNode is not None else ""

        for node in slicer.util.getNodesByClass("vtkMRMLMarkupsNode"):
            if node.GetAttribute(ATTRIBUTE_SOURCE) == sourceId and node.GetAttribute(ATTRIBUTE_RUN):
                node.SetDisplayVisibility(False)

        segName = segmentationNode.GetName() if segmentationNode is not None else "SpineAI"
        title = (
            _("{segmentation} triangles").format(segmentation=segName)
            if kind == "measure"
            else _("{segmentation} plan").format(segmentation=segName)
        )
        shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        parentItem = shNode.GetItemParent(shNode.GetItemByDataNode(volumeNode)) if volumeNode else 0
        folderItem = shNode.CreateFolderItem(parentItem or shNode.GetSceneItemID(), title)

        markupNodes = []
        for spec in specs:
            node = self.createMarkupNode(spec)
            node.SetAttribute(ATTRIBUTE_RUN, str(outputs.folder))
            node.SetAttribute(ATTRIBUTE_SOURCE, sourceId)
            shNode.SetItemParent(shNode.GetItemByDataNode(node), folderItem)
            markupNodes.append(node)
        tableNode = self.fillResultTable(None, data, title)
        tableNode.SetAttribute(ATTRIBUTE_MEASUREMENTS, str(outputs.measurements))
        tableNode.SetAttribute(ATTRIBUTE_SOURCE, sourceId)
        if levels is not None:
            tableNode.SetAttribute(ATTRIBUTE_LEVELS_FILE, str(levelsFile))
        shNode.SetItemParent(shNode.GetItemByDataNode(tableNode), folderItem)
        return PlanningResult(
            folder=outputs.folder,
            kind=kind,
            markupNodes=markupNodes,
            tableNode=tableNode,
            views=planning.carm_views(measurements),
            summary=levelinfo.annotate_summary(planning.summary_lines(measurements), levels),
            folderItem=folderItem,
            levels=levels,
        )

    @staticmethod
    def viewsOfTable(tableNode) -> list:
        """The C-arm views of the measurement a table came from (empty when its files are gone)."""
        path = tableNode.GetAttribute(ATTRIBUTE_MEASUREMENTS) if tableNode is not None else None
        if not path or not Path(path).is_file():
            return []
        try:
            return planning.carm_views(planning.read_measurements(path))
        except ValueError as exc:
            logging.warning("SpineAI: %s", exc)
            return []

    @staticmethod
    def threeDCameraNode():
        """The camera of the first 3D view (the layout's; headless: the scene's first view or camera)."""
        cameras = slicer.modules.cameras.logic()
        layoutManager = slicer.app.layoutManager()
        if layoutManager is not None and layoutManager.threeDViewCount > 0:
            viewNode = layoutManager.threeDWidget(0).threeDView().mrmlViewNode()
            camera = cameras.GetViewActiveCameraNode(viewNode)
            if camera is not None:
                return camera
        viewNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLViewNode")
        if viewNode is not None:
            camera = cameras.GetViewActiveCameraNode(viewNode)
            if camera is not None:
                return camera
        return slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLCameraNode")

    def applyCarmView(self, view: planning.CarmView, cameraNode=None, distanceMm: float | None = None):
        """Point a 3D camera along a C-arm view: from the skin toward the target, patient's head up.

        Args:
            view: a :class:`SpineAILib.planning.CarmView` (LPS; converted to RAS here).
            cameraNode: the camera to move (default: the first 3D view's).
            distanceMm: camera distance from the target (default ``planning.DEFAULT_CAMERA_DISTANCE_MM``).

        Returns:
            the camera node.
        """
        cameraNode = cameraNode or self.threeDCameraNode()
        if cameraNode is None:
            raise ValueError(_("There is no 3D view whose camera could show the C-arm view."))
        pose = planning.carm_camera_pose(
            view.target_lps,
            view.direction_lps,
            planning.DEFAULT_CAMERA_DISTANCE_MM if distanceMm is None else distanceMm,
        )
        cameraNode.SetFocalPoint(*pose.focal_point)
        cameraNode.SetPosition(*pose.position)
        cameraNode.SetViewUp(*pose.view_up)
        cameraNode.ResetClippingRange()
        return cameraNode

    # ------------------------------------------------------------------ vertebra levels
    def _levelsCommand(self, segmentationNode, volumeNode, override: str):
        folder = Path(slicer.util.tempDirectory("SpineAI-levels-"))
        labelsPath, ctPath = self.writeEngineInputs(segmentationNode, volumeNode, folder / "input")
        outputDir = folder / "result"
        command = engine.levels_command(
            labelsPath, outputDir, override=override, ct_path=ctPath, python=python_executable_for_slicer()
        )
        return command, outputDir

    def startRelabel(
        self, segmentationNode, volumeNode, override: str = "", onProgress=None, onLine=None, onDone=None
    ) -> BackgroundProcess:
        """Start ``spineai levels`` on the current segmentation; the renumbered map is loaded as a NEW node.

        ``onDone(new segmentation node or None, ProcessResult, error text)`` runs on the GUI thread.
        """
        command, outputDir = self._levelsCommand(segmentationNode, volumeNode, override)

        def finished(result: ProcessResult) -> None:
            loaded, error = None, result.error
            if result.succeeded:
                try:
                    loaded = self.loadRelabelResult(outputDir, volumeNode, segmentationNode)
                except Exception as exc:  # reported to the user by onDone
                    logging.exception("SpineAI: loading the renumbered segmentation failed")
                    error = str(exc)
            if onDone:
                onDone(loaded, result, error)

        return _hubLogic().startEngine(command, onProgress=onProgress, onLine=onLine, onFinished=finished)

    def relabel(self, segmentationNode, volumeNode, override: str = "", timeout=None):
        """Renumber and wait (console, scripts, tests); returns the new segmentation node."""
        command, outputDir = self._levelsCommand(segmentationNode, volumeNode, override)
        result = _hubLogic().runEngine(command, timeout=timeout)
        if not result.succeeded:
            raise RuntimeError(result.error or _("Renumbering was cancelled."))
        return self.loadRelabelResult(outputDir, volumeNode, segmentationNode)

    def loadRelabelResult(self, outputDir, volumeNode, sourceSegmentation=None):
        """Load the renumbered label map of ``spineai levels`` as a new segmentation node."""
        labelsPath, sidecarPath = engine.find_label_map(outputDir)
        name = slicer.mrmlScene.GenerateUniqueName(
            f"{sourceSegmentation.GetName()} renumbered"
            if sourceSegmentation
            else f"{volumeNode.GetName()} levels"
        )
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        node = self.loadLabelMap(labelsPath, sidecarPath, volumeNode, node)
        levelsFile = levelinfo.find_levels_file([outputDir])
        self.lastLevels = self._readLevels(levelsFile)
        self.lastLevelsTable = None
        if self.lastLevels is not None:
            node.SetAttribute(ATTRIBUTE_LEVELS_FILE, str(levelsFile))
            self.lastLevelsTable = self.fillResultTable(
                None, levelinfo.levels_table(self.lastLevels), f"{node.GetName()} levels"
            )
            self.lastLevelsTable.SetAttribute(ATTRIBUTE_LEVELS_FILE, str(levelsFile))
            self.lastLevelsTable.SetAttribute(ATTRIBUTE_SOURCE, node.GetID())
        return node

    @staticmethod
    def _readLevels(levelsFile):
        """The numbering in a ``levels.json`` (``None`` when there is none or it cannot be read)."""
        try:
            return levelinfo.read_levels_file(levelsFile)
        except ValueError as exc:
            logging.warning("SpineAI: %s", exc)
            return None

    def levelsOfSegmentation(self, segmentationNode):
        """The numbering a (renumbered) segmentation carries (``None`` when it was not renumbered)."""
        if segmentationNode is None:
            return None
        return self._readLevels(
            levelinfo.find_levels_file([segmentationNode.GetAttribute(ATTRIBUTE_LEVELS_FILE)])
        )

    # ------------------------------------------------------------------ correct
    @staticmethod
    def openInSegmentEditor(segmentationNode, volumeNode):
        """Open the Segment Editor with this segmentation and its CT selected; returns the editor widget."""
        if segmentationNode is None or volumeNode is None:
            raise ValueError(_("Segment a CT first: the Segment Editor needs the segmentation and its CT."))
        if slicer.util.mainWindow():
            slicer.util.selectModule("SegmentEditor")
        editor = slicer.util.getModuleWidget("SegmentEditor").editor
        editor.setSegmentationNode(segmentationNode)
        if hasattr(editor, "setSourceVolumeNode"):
            editor.setSourceVolumeNode(volumeNode)
        else:  # Slicer < 5.4
            editor.setMasterVolumeNode(volumeNode)
        return editor

    # ------------------------------------------------------------------ export
    @staticmethod
    def _engineLabelMap(segmentationNode) -> Path | None:
        """The label map file the segmentation was loaded from, when it came from the engine."""
        path = segmentationNode.GetAttribute(ATTRIBUTE_ENGINE_LABELS)
        if path:
            return Path(path)
        folder = segmentationNode.GetAttribute(ATTRIBUTE_ENGINE_OUTPUT)
        return Path(folder) / "labels.nii.gz" if folder else None

    @classmethod
    def _engineSidecar(cls, segmentationNode) -> labels.LabelSidecar | None:
        path = cls._engineLabelMap(segmentationNode)
        if path is None:
            return None
        sidecar = path.with_name(path.name[: -len(".nii.gz")] + ".json")
        if sidecar.is_file():
            return labels.read_label_sidecar(sidecar)
        return None

    def _labelArray(self, segmentationNode, referenceVolume):
        """The segmentation as one canonical label array on the reference volume's grid."""
        segmentation = segmentationNode.GetSegmentation()
        engineSidecar = self._engineSidecar(segmentationNode)
        ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
        names = [segmentation.GetSegment(i).GetName() for i in ids]
        values = labels.label_values_for_segments(names, engineSidecar)
        masks = {
            name: slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, referenceVolume)
            for segmentId, name in zip(ids, names, strict=True)
        }
        shape = slicer.util.arrayFromVolume(referenceVolume).shape
        labelArray, overlaps = export.compose_label_array(masks, values, shape=shape)
        specs = []
        known = engineSidecar.by_name() if engineSidecar else {}
        canonical = (
            labels.canonical_sidecar([n for n in names if n not in known]).by_name()
            if len(known) < len(names)
            else {}
        )
        for name in names:
            specs.append(known.get(name) or canonical[name])
        specs.sort(key=lambda s: s.label)
        convention = engineSidecar.convention if engineSidecar else "spineai"
        return labelArray, labels.LabelSidecar(convention, tuple(specs)), overlaps

    def exportForRetraining(self, volumeNode, segmentationNode, folder, caseName: str = "") -> Path:
        """Write ``folder/<case>/ct.nii.gz, labels.nii.gz, labels.json, provenance.json`` (never overwriting).

        Returns:
            the case folder.
        """
        if volumeNode is None or segmentationNode is None:
            raise ValueError(_("Select the CT and its segmentation before exporting."))
        if str(folder) in ("", "."):
            raise ValueError(_("Choose the training data folder to export into."))
        for node in (volumeNode, segmentationNode):
            if node.GetParentTransformNode():
                raise ValueError(
                    _(
                        "'{name}' is under a transform. Harden the transform (Data module) before exporting, so the "
                        "exported CT and labels keep their true geometry."
                    ).format(name=node.GetName())
                )
        labelArray, sidecar, overlaps = self._labelArray(segmentationNode, volumeNode)
        ct = slicer.util.arrayFromVolume(volumeNode)
        ijkToRas = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(ijkToRas)
        ijkToRasArray = slicer.util.arrayFromVTKMatrix(ijkToRas)

        edited = None
        engineFolder = segmentationNode.GetAttribute(ATTRIBUTE_ENGINE_OUTPUT)
        engineLabels = self._engineLabelMap(segmentationNode)
        if engineLabels is not None:
            original = export.engine_labels_on_grid(engineLabels, ijkToRasArray, labelArray.shape)
            if original is not None:
                names = {s.label: s.name for s in sidecar.specs}
                engineSidecar = self._engineSidecar(segmentationNode)
                if engineSidecar:
                    names.update({s.label: s.name for s in engineSidecar.specs})
                edited = export.edited_structures(original, labelArray, names)
        import spineai

        provenance = export.provenance_record(
            source_segmentation=f"{segmentationNode.GetName()} ({engineFolder or 'not produced by the engine'})",
            edited_segments=edited or [],
            engine_version=segmentationNode.GetAttribute(ATTRIBUTE_ENGINE_VERSION)
            or str(spineai.__version__),
            input_volume=volumeNode.GetName(),
            extra={
                "edited_segments_known": edited is not None,
                "overlapping_segments": overlaps,
                "slicer_version": slicer.app.applicationVersion,
            },
        )
        return export.write_training_case(
            folder, caseName or volumeNode.GetName(), ct, labelArray, ijkToRasArray, sidecar, provenance
        )


#
# SpineAISegmentationTest
#


class SpineAISegmentationTest(ScriptedLoadableModuleTest):
    """Loading an engine result into MRML, without running the engine (the full workflow on a phantom is in
    Testing/Python/SpineAISegmentationWorkflowTest.py)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_load_result_names_colours_terminology()
        self.setUp()
        self.test_planning_files_become_ras_markups_table_and_camera()
        self.setUp()
        self.test_levels_file_marks_the_planning_table_and_warns()

    def test_load_result_names_colours_terminology(self):
        import json

        import SimpleITK as sitk

        folder = Path(slicer.util.tempDirectory("SpineAI-test-"))
        ct = np.full((12, 16, 20), -1000, dtype=np.int16)
        lab = np.zeros(ct.shape, dtype=np.uint8)
        lab[2:6, 4:10, 5:12] = 6  # L5
        lab[7:11, 4:10, 5:12] = 8  # S1
        ct[lab > 0] = 700
        sidecar = labels.canonical_sidecar(["L5", "S1", "root_L5_left"])
        for array, name in ((ct, "ct.nii.gz"), (lab, "labels.nii.gz")):
            img = sitk.GetImageFromArray(array)
            img.SetSpacing((0.8, 0.8, 2.0))
            img.SetOrigin((10.0, -20.0, 30.0))
            sitk.WriteImage(img, str(folder / name))
        (folder / "labels.json").write_text(json.dumps(sidecar.to_dict()), encoding="utf-8")

        volume = slicer.util.loadVolume(str(folder / "ct.nii.gz"))
        logic = SpineAISegmentationLogic()
        seg = logic.loadSegmentationResult(folder, volume, showSurfaces=True)
        segmentation = seg.GetSegmentation()
        names = sorted(
            segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())
        )
        self.assertEqual(names, ["L5", "S1", "root_L5_left"])
        for spec in sidecar.specs:
            segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(spec.name))
            for got, want in zip(segment.GetColor(), spec.color, strict=True):
                self.assertAlmostEqual(got, want, places=3)
            if spec.terminology:
                self.assertEqual(logic.terminologyTag(segment), spec.terminology)
        self.assertEqual(seg.GetNodeReference(seg.GetReferenceImageGeometryReferenceRole()), volume)
        l5 = slicer.util.arrayFromSegmentBinaryLabelmap(
            seg, segmentation.GetSegmentIdBySegmentName("L5"), volume
        )
        self.assertEqual(int(l5.sum()), int((lab == 6).sum()))
        self.assertTrue(seg.GetSegmentation().ContainsRepresentation("Closed surface"))
        rows = {r["Structure"]: r for r in _tableRows(logic.lastTable)}
        self.assertAlmostEqual(rows["L5"]["Volume"], float((lab == 6).sum()) * 0.8 * 0.8 * 2.0, places=3)
        self.assertEqual(rows["root_L5_left"]["Voxels"], 0.0)

    def test_planning_files_become_ras_markups_table_and_camera(self):
        folder = Path(slicer.util.tempDirectory("SpineAI-planning-test-"))
        truth = _writePlanningFolder(folder)
        volume = slicer.util.addVolumeFromArray(np.zeros((8, 8, 8), np.int16), name="CT")
        seg = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "CT SpineAI")
        logic = SpineAISegmentationLogic()
        result = logic.loadPlanningResult(folder, seg, volume, "measure")

        (triangle,) = result.nodesByRole("triangle")
        self.assertEqual(triangle.GetName(), "Safe L5-S1 left")
        self.assertTrue(triangle.IsA("vtkMRMLMarkupsClosedCurveNode"))
        points = slicer.util.arrayFromMarkupsControlPoints(triangle)
        ax, ay, az = truth["apex"]
        np.testing.assert_allclose(points[0], [-ax, -ay, az])  # LPS -> RAS
        self.assertEqual(triangle.GetNthControlPointLabel(0), "corner")
        (needle,) = result.nodesByRole("needle")
        self.assertTrue(needle.IsA("vtkMRMLMarkupsLineNode"))
        ex, ey, ez = truth["entry"]
        np.testing.assert_allclose(slicer.util.arrayFromMarkupsControlPoints(needle)[0], [-ex, -ey, ez])

        table = result.tableNode
        self.assertEqual(table.GetNumberOfRows(), 1)
        self.assertEqual(table.GetColumnUnitLabel("area_mm2"), "mm2")
        self.assertAlmostEqual(table.GetTable().GetColumnByName("area_mm2").GetValue(0), 40.0)

        (view,) = result.views
        self.assertTrue(view.recommended)
        camera = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLCameraNode")
        logic.applyCarmView(view, camera, distanceMm=300.0)
        tx, ty, tz = truth["target"]
        np.testing.assert_allclose(camera.GetFocalPoint(), [-tx, -ty, tz], atol=1e-6)
        seen = np.subtract(camera.GetFocalPoint(), camera.GetPosition())
        dx, dy, dz = truth["direction"]
        np.testing.assert_allclose(seen / np.linalg.norm(seen), [-dx, -dy, dz], atol=1e-6)
        self.assertAlmostEqual(float(np.linalg.norm(seen)), 300.0, places=3)

    def test_levels_file_marks_the_planning_table_and_warns(self):
        import json

        folder = Path(slicer.util.tempDirectory("SpineAI-levels-test-"))
        _writePlanningFolder(folder / "measure")
        vertebrae = [
            ("L4", 0.59, False, ["low_confidence"], 23),
            ("L5", 0.60, False, ["transitional", "low_confidence"], 24),
            ("S1", 0.97, True, [], 26),
        ]
        levels = {
            "format": "spineai-levels",
            "anchor": {"method": "sacrum", "sacrum": True, "last_rib_bearing": None},
            "vertebrae": [
                {"name": n, "confidence": c, "trusted": t, "flags": f, "verse_label": v}
                for n, c, t, f, v in vertebrae
            ],
            "transitional": {
                "vertebra": "L5",
                "kind": "castellvi",
                "castellvi": {"left": {"type": "II"}, "right": {"type": "III"}},
                "castellvi_type": "IV",
            },
            "flagged": True,
        }
        (folder / "levels.json").write_text(json.dumps(levels), encoding="utf-8")
        volume = slicer.util.addVolumeFromArray(np.zeros((8, 8, 8), np.int16), name="CT")
        seg = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "CT SpineAI renumbered")
        logic = SpineAISegmentationLogic()
        self.assertIsNone(logic.levelsOfSegmentation(seg))  # not renumbered: nothing to show
        seg.SetAttribute(ATTRIBUTE_LEVELS_FILE, str(folder / "levels.json"))
        self.assertEqual(logic.levelsOfSegmentation(seg).names, ["L4", "L5", "S1"])

        result = logic.loadPlanningResult(folder / "measure", seg, volume, "measure")
        self.assertIn("Castellvi type IV (left II, right III)", result.levelsWarning)
        table = result.tableNode.GetTable()
        self.assertTrue(
            table.GetColumnByName("level_check").GetValue(0).startswith("⚠ check: L5 not trusted")
        )
        self.assertAlmostEqual(table.GetColumnByName("level_confidence").GetValue(0), 0.60, places=6)
        self.assertAlmostEqual(table.GetColumnByName("area_mm2").GetValue(0), 40.0)
        self.assertIn("check the level", result.summary[0])
        self.assertEqual(result.tableNode.GetAttribute(ATTRIBUTE_LEVELS_FILE), str(folder / "levels.json"))

        levelsTable = logic.fillResultTable(None, levelinfo.levels_table(result.levels), "levels")
        self.assertEqual(levelsTable.GetNumberOfRows(), 3)
        self.assertEqual(levelsTable.GetTable().GetColumnByName("Vertebra").GetValue(1), "L5")
        self.assertAlmostEqual(
            levelsTable.GetTable().GetColumnByName("Confidence").GetValue(1), 0.60, places=6
        )


def _writePlanningFolder(folder: Path) -> dict:
    """A minimal ``spineai measure`` output (one foramen, LPS mm) for the in-module test."""
    import json

    apex, medial, lateral = [20.0, -15.0, 18.0], [21.0, -14.0, 10.0], [32.0, -13.0, 9.0]
    entry, target = [80.0, 40.0, 28.0], [31.0, -18.0, 21.0]
    direction = (np.subtract(target, entry) / np.linalg.norm(np.subtract(target, entry))).tolist()

    def point(label, pos):
        return {"id": label, "label": label, "position": pos, "positionStatus": "defined"}

    markups = {
        "@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/"
        "Schema/markups-schema-v1.0.3.json#",
        "markups": [
            {
                "type": "ClosedCurve",
                "name": "Safe L5-S1 left",
                "coordinateSystem": "LPS",
                "coordinateUnits": "mm",
                "controlPoints": [point("corner", apex), point("medial", medial), point("lateral", lateral)],
                "measurements": [{"name": "area", "value": 40.0, "units": "mm2"}],
                "display": {"color": [0.2, 0.55, 1.0]},
            },
            {
                "type": "Line",
                "name": "Needle L5-S1 left (safe)",
                "coordinateSystem": "LPS",
                "coordinateUnits": "mm",
                "controlPoints": [point("entry", entry), point("target", target)],
                "display": {"color": [1.0, 0.25, 0.2]},
            },
        ],
    }
    view = {
        "oblique_deg": 30.0,
        "tilt_deg": 5.0,
        "patient_oblique_deg": 28.0,
        "patient_tilt_deg": 6.0,
        "direction_lps": direction,
        "window_mm2": 35.0,
        "usable": True,
    }
    measurements = {
        "format": "spineai-triangle-measurements",
        "frame": "LPS",
        "foramina": [
            {
                "level": "L5-S1",
                "side": "left",
                "status": "ok",
                "triangles": {
                    "safe": {
                        "name": "Safe L5-S1 left",
                        "area_mm2": 40.0,
                        "vertices_lps_mm": [apex, medial, lateral],
                        "best_view": view,
                    }
                },
                "paths": {
                    "safe": {
                        "target_lps": target,
                        "entry_lps": entry,
                        "length_mm": 77.0,
                        "min_distance_nerve_mm": 4.0,
                        "min_distance_bone_mm": 5.0,
                    }
                },
                "recommended": "safe",
            }
        ],
    }
    table = (
        "level\tside\ttriangle\tarea_mm2\tbest_oblique_deg\tpath_safe\nL5-S1\tleft\tsafe\t40.00\t30.00\tyes\n"
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "planning.mrk.json").write_text(json.dumps(markups), encoding="utf-8")
    (folder / "measurements.json").write_text(json.dumps(measurements), encoding="utf-8")
    (folder / "measurements.tsv").write_text(table, encoding="utf-8")
    return {"apex": apex, "entry": entry, "target": target, "direction": direction}


def _tableRows(tableNode) -> list[dict]:
    """Rows of a table node as dicts (numbers as float)."""
    table = tableNode.GetTable()
    columns = [table.GetColumn(c) for c in range(table.GetNumberOfColumns())]
    rows = []
    for r in range(table.GetNumberOfRows()):
        row = {}
        for column in columns:
            value = column.GetValue(r)
            row[column.GetName()] = value if isinstance(value, str) else float(value)
        rows.append(row)
    return rows
