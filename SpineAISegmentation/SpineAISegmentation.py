"""SpineAISegmentation: segment lumbosacral bones and nerve roots on CT, correct them, export them for retraining.

Segment runs ``spineai segment`` in a background process (progress bar, Cancel kills the process tree) and
loads the result as a segmentation node: one named, coloured segment per canonical structure with its
terminology tag, the input volume as reference geometry, under the input's study, with smoothed 3D
surfaces. "Correct in Segment Editor" opens Slicer's Segment Editor on it; "Export for retraining" writes
the CT, the corrected canonical label map with its sidecar, and a provenance record in the layout
``spineai train segmentation --data FOLDER`` reads.
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
from SpineAILib import engine, export, labels, tables
from SpineAILib.process import BackgroundProcess, ProcessResult, python_executable_for_slicer

#: segment node attributes recording where a segmentation came from
ATTRIBUTE_ENGINE_OUTPUT = "SpineAI.EngineOutputFolder"
ATTRIBUTE_ENGINE_VERSION = "SpineAI.EngineVersion"
#: application setting: the site weights file the user chose last
SETTINGS_WEIGHTS_FILE = "SpineAI/SegmentationWeightsFile"
#: structures every lumbosacral result must contain for triangle measurement
REQUIRED_FOR_TRIANGLES = ("L5", "S1")


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
    showSurfaces: build and show smoothed 3D surfaces of the segments.
    surfaceSmoothing: Slicer's closed-surface smoothing factor 0..1.
    exportFolder: training data folder for "Export for retraining".
    caseName: case folder name for the export (default: the volume's name).
    resultsTable: table of structure volumes of the last result.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    device: Annotated[str, Choice(list(engine.DEVICES))] = "cpu"
    mode: Annotated[str, Choice(list(engine.SEGMENT_MODES))] = "fast"
    showSurfaces: bool = True
    surfaceSmoothing: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    exportFolder: pathlib.Path
    caseName: str = ""
    resultsTable: vtkMRMLTableNode


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
        self.ui.progressBar.hide()
        # site weights are a per-user choice (application settings), not part of the scene
        self.ui.weightsPathLineEdit.currentPath = self.logic.userWeightsFile()
        self.ui.weightsPathLineEdit.connect("currentPathChanged(QString)", self.logic.setUserWeightsFile)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._job is not None and self._job.running:
            self._job.cancel()
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

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p is None:
            return
        running = self._job is not None and self._job.running
        self.logic.rememberUserDefaults(p)
        if running:
            self.ui.applyButton.text = _("Cancel")
            self.ui.applyButton.toolTip = _("Stop the segmentation (the background process is killed)")
            self.ui.applyButton.enabled = True
        else:
            self.ui.applyButton.text = _("Segment")
            self.ui.applyButton.enabled = bool(p.inputVolume)
            self.ui.applyButton.toolTip = (
                _("Segment bones, discs, dural sac and nerve roots in a background process")
                if p.inputVolume
                else _("Select a CT volume")
            )
        hasResult = bool(p.outputSegmentation and p.inputVolume)
        for button in (self.ui.correctButton, self.ui.updateTableButton, self.ui.exportButton):
            button.enabled = hasResult and not running
        self.ui.resultsTableView.setMRMLTableNode(p.resultsTable)
        if p.outputSegmentation:
            self.ui.outputSegmentationSelector.baseName = p.outputSegmentation.GetName()
        elif p.inputVolume:
            self.ui.outputSegmentationSelector.baseName = _("{volume} SpineAI").format(
                volume=p.inputVolume.GetName()
            )

    # ------------------------------------------------------------------ segment / cancel
    def onApplyButton(self) -> None:
        if self._job is not None and self._job.running:
            self._job.cancel()
            self.ui.statusLabel.text = _("Cancelling...")
            return
        p = self._parameterNode
        try:
            with slicer.util.tryWithErrorDisplay(_("Segmentation could not start."), waitCursor=True):
                _hubLogic().ensureDependencies(askConfirmation=True)
                self.ui.logTextEdit.clear()
                self.ui.progressBar.value = 0
                self.ui.progressBar.show()
                self.ui.statusLabel.text = _("Starting the SpineAI engine...")
                self._job = self.logic.startSegmentation(
                    p.inputVolume,
                    p.outputSegmentation,
                    device=p.device,
                    mode=p.mode,
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
            self.ui.statusLabel.text = done
        self._job = None
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
        onProgress=None,
        onLine=None,
        onDone=None,
    ) -> BackgroundProcess:
        """Start ``spineai segment`` in the background; the result is loaded on the GUI thread when it ends.

        ``onDone(segmentationNode or None, ProcessResult, error text)`` is called once (also on cancel).
        """
        self.checkInputVolume(inputVolume)
        command, outputDir = self._prepare(inputVolume, device, mode, weights)

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

    def _prepare(self, inputVolume, device: str, mode: str) -> tuple[engine.EngineCommand, Path]:
        folder = Path(slicer.util.tempDirectory("SpineAI-segment-"))
        inputPath = self.writeInputVolume(inputVolume, folder / "input.nrrd")
        outputDir = folder / "result"
        command = engine.segment_command(
            inputPath, outputDir, device=device, mode=mode, python=python_executable_for_slicer()
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
    ):
        """Segment and wait (console, scripts, tests); returns the segmentation node.

        Raises:
            ValueError: bad input.
            RuntimeError: the engine failed (its plain-words error) or was cancelled.
        """
        self.checkInputVolume(inputVolume)
        command, outputDir = self._prepare(inputVolume, device, mode, weights)
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
        """Load the engine's ``labels.nii.gz`` + ``labels.json`` as a segmentation node.

        One segment per sidecar entry (empty ones too, ready to be painted), named and coloured from the
        sidecar with its terminology tag; the input volume is the reference geometry; the node goes under
        the input's study and gets the input's parent transform; smoothed surfaces are shown on request.
        """
        registerTerminology()
        outputs = engine.SegmentOutputs(Path(outputDir)).check()
        sidecar = labels.read_label_sidecar(outputs.sidecar)
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
            str(outputs.labels), {"name": "SpineAI labels (import)", "show": False}
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
                    _("Slicer could not import the label map {path}.").format(path=str(outputs.labels))
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

        segmentationNode.SetAttribute(ATTRIBUTE_ENGINE_OUTPUT, str(Path(outputDir).resolve()))
        segmentationNode.SetAttribute(ATTRIBUTE_ENGINE_VERSION, str(spineai.__version__))

        if showSurfaces:
            segmentation.SetConversionParameter("Smoothing factor", f"{float(smoothing):g}")
            segmentationNode.CreateClosedSurfaceRepresentation()
            segmentationNode.GetDisplayNode().SetVisibility3D(True)

        self.lastTable = self._fillTable(None, rows, f"{segmentationNode.GetName()} structures")
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
    def _engineSidecar(segmentationNode) -> labels.LabelSidecar | None:
        folder = segmentationNode.GetAttribute(ATTRIBUTE_ENGINE_OUTPUT)
        if folder and (Path(folder) / labels.SIDECAR_NAME).is_file():
            return labels.read_label_sidecar(Path(folder) / labels.SIDECAR_NAME)
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
        if engineFolder:
            original = export.engine_labels_on_grid(
                Path(engineFolder) / "labels.nii.gz", ijkToRasArray, labelArray.shape
            )
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
