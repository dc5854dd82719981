"""SpineAI hub in Slicer: generate the engine's phantom CT in the background, load it, hand it to segmentation.

Run headless (see docs/slicer.md)::

    Slicer --no-splash --no-main-window --testing \
      --additional-module-paths SpineAI SpineAISegmentation SpineAIGrading \
      --python-code "import slicer.testing; slicer.testing.runUnitTest(['SpineAI/Testing/Python'], 'SpineAIWorkflowTest')"
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest


class SpineAIWorkflowTest(ScriptedLoadableModuleTest):
    """Phantom case set-up through the hub."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def test_phantom_case_is_loaded_and_handed_to_segmentation(self):
        import SpineAI
        import SpineAISegmentation

        logic = SpineAI.SpineAILogic()
        volume = logic.loadPhantom(seed=3, timeout=600)
        self.assertEqual(volume.GetName(), "SpineAI phantom 3")
        voxels = slicer.util.arrayFromVolume(volume)
        self.assertEqual(voxels.ndim, 3)
        self.assertLess(float(voxels.min()), -500.0)  # air, HU
        self.assertGreater(float(voxels.max()), 300.0)  # bone, HU
        folder = Path(volume.GetAttribute("SpineAI.PhantomFolder"))
        truth = json.loads((folder / "truth.json").read_text(encoding="utf-8"))
        self.assertEqual(truth["seed"], 3)

        widget = slicer.util.getModuleWidget("SpineAI")
        widget._parameterNode.inputVolume = volume
        self.assertTrue(widget.ui.segmentCaseButton.enabled)
        widget.onSegmentCase()
        segmentationParameters = SpineAISegmentation.SpineAISegmentationLogic().getParameterNode()
        self.assertEqual(segmentationParameters.inputVolume, volume)

    def test_cancelled_phantom_generation_adds_nothing(self):
        import SpineAI

        before = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
        outcome = []
        job = SpineAI.SpineAILogic().startPhantom(
            seed=4, onDone=lambda volume, result: outcome.append((volume, result))
        )
        job.cancel()
        deadline = time.monotonic() + 60
        while not outcome and time.monotonic() < deadline:
            slicer.app.processEvents()
            time.sleep(0.05)
        self.assertTrue(outcome, "the cancelled job never reported back")
        volume, result = outcome[0]
        self.assertIsNone(volume)
        self.assertTrue(result.cancelled)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"), before)

    def test_dependency_report_and_models_table(self):
        import SpineAI

        widget = slicer.util.getModuleWidget("SpineAI")
        widget.onCheckDependencies()
        self.assertIn("torch", widget.ui.dependencyStatusLabel.text)
        widget.onRefreshModels()
        installed = SpineAI.SpineAILogic().installedModels()
        self.assertEqual(widget.ui.modelsTableWidget.rowCount, len(installed))
        self.assertEqual(widget.ui.noModelsLabel.visible, not installed)

    def test_model_card_of_the_selected_model_is_shown(self):
        import SpineAI

        widget = slicer.util.getModuleWidget("SpineAI")
        widget.onRefreshModels()
        installed = SpineAI.SpineAILogic().installedModels()
        if not installed:
            self.assertFalse(widget.ui.modelCardLabel.visible)
            return
        widget.ui.modelsTableWidget.selectRow(0)
        widget.onModelSelectionChanged()
        text = widget.ui.modelCardLabel.text
        card = installed[0].card
        for expected in (
            "Training data",
            "SHA-256",
            "Checksum",
            "Intended use",
            card.name,
            installed[0].status,
        ):
            self.assertIn(expected, text)

    def test_engine_commands_are_listed_in_a_child_process(self):
        import SpineAI

        logic = SpineAI.SpineAILogic()
        found = logic.engineCommands(refresh=True, timeout=600)
        self.assertIn("segment", found)
        self.assertIn("measure", found)
        self.assertTrue(found["measure"].startswith("usage: spineai measure"))
        self.assertEqual(SpineAI.SpineAILogic.cachedEngineCommands(), found)
        widget = slicer.util.getModuleWidget("SpineAI")
        widget._showEngineCommands(found, "")
        self.assertIn("measure", widget.ui.engineCommandsLabel.text)
        reported = []
        self.assertIsNone(logic.startEngineCommandsProbe(onDone=lambda c, e: reported.append(c)))  # cached
        self.assertEqual(reported, [found])
