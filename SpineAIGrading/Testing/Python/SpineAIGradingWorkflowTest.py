"""SpineAIGrading in Slicer: one panel per grading model the engine provides, none invented.

Run headless (see docs/slicer.md)::

    Slicer --no-splash --no-main-window --testing \
      --additional-module-paths SpineAI SpineAISegmentation SpineAIGrading \
      --python-code "import slicer.testing; slicer.testing.runUnitTest(['SpineAIGrading/Testing/Python'], 'SpineAIGradingWorkflowTest')"
"""

from __future__ import annotations

from pathlib import Path

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest


class SpineAIGradingWorkflowTest(ScriptedLoadableModuleTest):
    """Panels follow the engine's model list and the family filter."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def test_panels_follow_the_engine_and_the_family_filter(self):
        from SpineAILib import tables

        import SpineAIGrading

        widget = slicer.util.getModuleWidget("SpineAIGrading")
        widget.initializeParameterNode()
        for family in tables.GRADING_FILTERS:
            widget._parameterNode.family = family
            widget.updatePanels()
            expected = SpineAIGrading.SpineAIGradingLogic.gradingModels(family, verify=False)
            self.assertEqual(len(widget.panels), len(expected), family)
            self.assertEqual(widget.ui.noModelsLabel.visible, not expected)
            if not expected:
                self.assertEqual(
                    widget.ui.noModelsLabel.text, SpineAIGrading.SpineAIGradingLogic.noModelsText(family)
                )

    def test_site_trained_grading_model_gets_a_panel(self):
        import torch

        import SpineAI
        from spineai.segmentation.network import ARCHITECTURE, build_network
        from spineai.weights import save_weights

        hub = SpineAI.SpineAILogic()
        previous = hub.userModelsFolder()
        folder = Path(slicer.util.tempDirectory("SpineAI-grading-test-"))
        try:
            torch.manual_seed(0)
            net = build_network({"out_channels": 4, "features": [4, 8]})
            card = {
                "name": "site_axial_grader",
                "task": "axial_mri_grading",
                "architecture": ARCHITECTURE,
                "config": net.config,
                "training_data": "test card",
            }
            weights, _card = save_weights(net, folder / "run" / "grader.safetensors", card)
            hub.setUserModelsFolder(folder / "models")
            hub.loadSiteWeights(weights)
            widget = slicer.util.getModuleWidget("SpineAIGrading")
            widget.initializeParameterNode()
            widget._parameterNode.family = "axial"
            widget.updatePanels()
            titles = [panel.text for panel in widget.panels]
            self.assertTrue(any(t.startswith("site_axial_grader") for t in titles), titles)
            widget._parameterNode.family = "outcome"
            widget.updatePanels()
            self.assertFalse(any(p.text.startswith("site_axial_grader") for p in widget.panels))
        finally:
            hub.setUserModelsFolder(previous)
