"""SpineAIGrading: the grading, outcome and radiograph models the SpineAI engine provides.

One panel per installed grading model (tESI outcome, axial MRI grading, radiograph herniation, stenosis,
sagittal disc grading), showing its model card: what it was trained on, its measured figures, the state of
its weights and its intended use. Only models the engine actually lists appear; with none, the module says
so plainly.
"""

from __future__ import annotations

from typing import Annotated

import ctk
import qt
import slicer
import vtk
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from SpineAILib import tables

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
            "Lumbar MRI grading, tESI outcome prediction and radiograph models of the SpineAI engine, each "
            "with its model card. Research use only, not for clinical decisions."
        )
        self.parent.acknowledgementText = _(
            "Models after Kim et al. (Pain Physician 2022), axial multi-task grading with ResNet-50, "
            "EfficientNet radiograph herniation and two-stage stenosis grading (Hallinan et al., Radiology 2021)."
        )


#
# SpineAIGradingParameterNode
#


@parameterNodeWrapper
class SpineAIGradingParameterNode:
    """Parameters saved with the scene.

    family: which grading family to list ("all" or one of tables.GRADING_FAMILIES' keys).
    """

    family: Annotated[str, Choice(list(tables.GRADING_FILTERS))] = "all"


#
# SpineAIGradingWidget
#


class SpineAIGradingWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module's panel: one collapsible panel per grading model."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self.panels: list = []

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineAIGrading.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SpineAIGradingLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.refreshButton.connect("clicked(bool)", self.updatePanels)
        self.ui.openHubButton.connect("clicked(bool)", self.onOpenHub)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updatePanels)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode: SpineAIGradingParameterNode | None) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updatePanels)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updatePanels)
            self.updatePanels()

    def onOpenHub(self) -> None:
        if slicer.util.mainWindow():
            slicer.util.selectModule("SpineAI")

    def updatePanels(self, caller=None, event=None) -> None:
        """Rebuild one panel per grading model of the selected family."""
        family = self._parameterNode.family if self._parameterNode else "all"
        layout = self.ui.panelsWidget.layout()
        for panel in self.panels:
            layout.removeWidget(panel)
            panel.deleteLater()
        self.panels = []
        try:
            installed = self.logic.gradingModels(family)
        except Exception as exc:  # the engine could not list its models: say why instead of an empty list
            installed = []
            self.ui.noModelsLabel.text = _("The SpineAI engine could not list its models: {error}").format(
                error=str(exc)
            )
        else:
            self.ui.noModelsLabel.text = self.logic.noModelsText(family)
        for row, model in zip(tables.model_rows(installed), installed, strict=True):
            panel = ctk.ctkCollapsibleButton()
            panel.text = f"{row['Model']} ({tables.grading_family(row['Task'])})"
            panel.objectName = f"panel_{model.card.name}"
            form = qt.QFormLayout(panel)
            for column in tables.MODEL_TABLE_COLUMNS[1:]:
                value = qt.QLabel(row[column] or _("not stated"))
                value.wordWrap = True
                value.textInteractionFlags = qt.Qt.TextSelectableByMouse
                form.addRow(_(column) + ":", value)
            description = tables.card_dict(model.card).get("extra", {}).get("description")
            if description:
                label = qt.QLabel(str(description))
                label.wordWrap = True
                form.addRow(_("Description") + ":", label)
            layout.addWidget(panel)
            self.panels.append(panel)
        self.ui.noModelsLabel.visible = not self.panels


#
# SpineAIGradingLogic
#


class SpineAIGradingLogic(ScriptedLoadableModuleLogic):
    """Which grading models the engine provides (shipped and site-trained), usable from the console."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self) -> SpineAIGradingParameterNode:
        return SpineAIGradingParameterNode(super().getParameterNode())

    @staticmethod
    def gradingModels(family: str = "all", verify: bool = True) -> list:
        """Installed grading models (``SpineAILib.models.InstalledModel``) of ``family``."""
        import SpineAI

        return tables.grading_models(SpineAI.SpineAILogic().installedModels(verify=verify), family)

    @staticmethod
    def noModelsText(family: str) -> str:
        if family == "all":
            return _(
                "This SpineAI engine provides no grading, outcome or radiograph models yet. Models appear here "
                "when the engine ships them or when weights trained with 'spineai train ...' are loaded in the "
                "SpineAI module."
            )
        title = dict((key, title) for key, title, _words in tables.GRADING_FAMILIES)[family]
        return _("No '{family}' model is installed.").format(family=title)


#
# SpineAIGradingTest
#


class SpineAIGradingTest(ScriptedLoadableModuleTest):
    """The panels match the engine's grading models exactly."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_panels_match_engine_models()

    def test_panels_match_engine_models(self):
        from spineai import weights

        expected = sorted(c.name for c in tables.grading_models(weights.list_models()))
        logic = SpineAIGradingLogic()
        shipped = sorted(m.card.name for m in logic.gradingModels(verify=False) if m.source == "shipped")
        self.assertEqual(shipped, expected)
        widget = slicer.util.getModuleWidget("SpineAIGrading")
        widget.updatePanels()
        self.assertEqual(len(widget.panels), len(logic.gradingModels(verify=False)))
        self.assertEqual(widget.ui.noModelsLabel.visible, not widget.panels)
