"""SpineAIGrading in Slicer: panels only for commands the engine has and models that exist; grading a synthetic
sagittal T2 with Grad-CAM gives a table node and heat map volumes shown over the input with an opacity slider;
a synthetic lateral radiograph is read disc by disc by the shipped model, as a picture (pixel size estimated by
the engine) and as a volume with its spacing (pixel size passed), the heat map on the input's grid each time.

Run headless (see docs/slicer.md)::

    Slicer --no-splash --no-main-window --testing \
      --additional-module-paths SpineAI SpineAISegmentation SpineAIGrading \
      --python-code "import slicer.testing; slicer.testing.runUnitTest(['SpineAIGrading/Testing/Python'], 'SpineAIGradingWorkflowTest')"
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest


def _ijkToRas(volume) -> np.ndarray:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


class SpineAIGradingWorkflowTest(ScriptedLoadableModuleTest):
    """Panels follow the engine; a grading run creates the nodes the user sees."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def _sagittalT2(self, seed: int = 3):
        from spineai.outcome.mri_phantom import generate_sagittal_t2, write_sagittal_case

        folder = Path(slicer.util.tempDirectory("SpineAI-t2-")) / "case"
        write_sagittal_case(generate_sagittal_t2(seed), folder)
        return slicer.util.loadVolume(str(folder / "t2_sagittal.nii.gz"), {"name": f"T2 phantom {seed}"})

    def test_panels_follow_the_engine_commands_and_the_installed_models(self):
        import SpineAI
        import SpineAIGrading

        found = SpineAI.SpineAILogic().engineCommands(timeout=600)
        widget = slicer.util.getModuleWidget("SpineAIGrading")
        widget.initializeParameterNode()
        widget._onEngineCommands(found, "")
        plans = SpineAIGrading.SpineAIGradingLogic.panelPlans(found, verify=False)
        shown = sorted(panel.key for panel in widget.panels)
        self.assertEqual(shown, sorted(plan.entry.key for plan in plans if plan.available))
        for plan in plans:
            if plan.entry.name not in found:
                self.assertFalse(
                    plan.available, plan.entry.key
                )  # never a panel for a command the engine lacks
            if not plan.available:
                self.assertIn(plan.reason, widget.ui.noModelsLabel.text)
        self.assertEqual(widget.ui.noModelsLabel.visible, any(not plan.available for plan in plans))

    def test_sagittal_grading_with_gradcam_overlay(self):
        import SpineAIGrading

        logic = SpineAIGrading.SpineAIGradingLogic()
        plans = {plan.entry.key: plan for plan in logic.panelPlans()}
        plan = plans["sagittal"]
        if not plan.available:
            self.skipTest(plan.reason)
        volume = self._sagittalT2()
        result = logic.grade(
            "sagittal",
            volume,
            model=plan.models[0],
            options={"gradcam": "all", "allowMissingL5S1": True},
            offered=plan.options,
            timeout=1800,
        )
        # a table node: one row per disc, grades as numbers
        table = result.tableNode
        self.assertGreater(table.GetNumberOfRows(), 0)
        columns = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
        self.assertIn("level", columns)
        self.assertIn("pfirrmann", columns)
        self.assertIn("discs graded", result.summary)
        # one heat map volume per grading, on the input's own grid, coloured, zero shown transparent
        self.assertIn("pfirrmann", result.heatmaps)
        self.assertGreater(len(result.heatmaps), 1)
        for heatmap in result.heatmaps.values():
            self.assertEqual(heatmap.GetImageData().GetDimensions(), volume.GetImageData().GetDimensions())
            np.testing.assert_allclose(_ijkToRas(heatmap), _ijkToRas(volume), atol=1e-4)
            self.assertEqual(logic.heatmapInput(heatmap), volume)
            display = heatmap.GetDisplayNode()
            self.assertTrue(display.GetApplyThreshold())
            self.assertAlmostEqual(display.GetWindowLevelMax(), 1.0)
            self.assertGreater(float(slicer.util.arrayFromVolume(heatmap).max()), 0.0)

        # the module's panel: heat map as foreground over the input, opacity from the slider
        widget = slicer.util.getModuleWidget("SpineAIGrading")
        widget.initializeParameterNode()
        parameters = widget._parameterNode
        parameters.inputVolume = volume
        parameters.heatmapVolume = result.heatmaps["pfirrmann"]
        widget.ui.overlayOpacitySliderWidget.value = 0.25
        self.assertAlmostEqual(parameters.overlayOpacity, 0.25)
        for composite in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode"):
            self.assertEqual(composite.GetForegroundVolumeID(), result.heatmaps["pfirrmann"].GetID())
            self.assertEqual(composite.GetBackgroundVolumeID(), volume.GetID())
            self.assertAlmostEqual(composite.GetForegroundOpacity(), 0.25)

    def test_outcome_with_gradcam_when_a_model_is_installed(self):
        import SpineAIGrading

        logic = SpineAIGrading.SpineAIGradingLogic()
        plan = {p.entry.key: p for p in logic.panelPlans()}["outcome"]
        if not plan.available:
            self.assertTrue(plan.reason)
            self.skipTest(plan.reason)
        volume = self._sagittalT2(seed=4)
        result = logic.grade("outcome", volume, model=plan.models[0], options={"gradcamClass": "predicted"},
                             offered=plan.options, timeout=1800)  # fmt: skip
        self.assertTrue(result.summary.startswith("P(good outcome)"))
        self.assertIn("gradcam", result.heatmaps)
        np.testing.assert_allclose(_ijkToRas(result.heatmaps["gradcam"]), _ijkToRas(volume), atol=1e-4)
        items = [result.tableNode.GetCellText(r, 0) for r in range(result.tableNode.GetNumberOfRows())]
        self.assertIn("probability_good_outcome", items)

    def test_radiograph_read_disc_by_disc_with_the_shipped_model(self):
        import SimpleITK as sitk

        import SpineAIGrading
        from spineai.radiograph.phantom import render_radiograph_patient

        logic = SpineAIGrading.SpineAIGradingLogic()
        plan = {p.entry.key: p for p in logic.panelPlans()}["radiograph"]
        if not plan.available:
            self.skipTest(plan.reason)
        self.assertIn("radiograph_hnp_demo", [m.card.name for m in plan.models])
        model = next(m for m in plan.models if m.card.name == "radiograph_hnp_demo")
        case = render_radiograph_patient(3, views=("lateral",))
        folder = Path(slicer.util.tempDirectory("SpineAI-radiograph-"))
        sitk.WriteImage(sitk.GetImageFromArray(case.images["lateral"]), str(folder / "lateral.png"))
        spaced = sitk.GetImageFromArray(case.images["lateral"])
        spaced.SetSpacing((case.pixel_mm, case.pixel_mm))
        sitk.WriteImage(spaced, str(folder / "lateral.nrrd"))
        # a picture carries no pixel size: the engine estimates it from the located discs
        picture = slicer.util.loadVolume(
            str(folder / "lateral.png"), {"name": "lateral png", "singleFile": True}
        )
        self.assertEqual(logic.radiographPixelMm(picture), "")
        fromPicture = logic.grade("radiograph", picture, model=model, offered=plan.options, timeout=1800)
        self.assertTrue(fromPicture.summary.startswith("P(herniation): L1-L2"), fromPicture.summary)
        self.assertIn("estimated from the located discs", fromPicture.summary)
        # a volume with its spacing: that pixel size is passed (--pixel-mm)
        volume = slicer.util.loadVolume(str(folder / "lateral.nrrd"), {"name": "lateral", "singleFile": True})
        self.assertAlmostEqual(float(logic.radiographPixelMm(volume)), case.pixel_mm, places=4)
        result = logic.grade("radiograph", volume, model=model, offered=plan.options, timeout=1800)
        self.assertIn("pixel size: given", result.summary)
        for read, image in ((fromPicture, picture), (result, volume)):
            self.assertEqual(len(read.heatmaps), 1)  # Grad-CAM of the most probable level, on its disc crop
            heatmap = next(iter(read.heatmaps.values()))
            self.assertEqual(heatmap.GetImageData().GetDimensions(), image.GetImageData().GetDimensions())
            np.testing.assert_allclose(_ijkToRas(heatmap), _ijkToRas(image), atol=1e-4)
            items = [read.tableNode.GetCellText(r, 0) for r in range(read.tableNode.GetNumberOfRows())]
            self.assertIn("design", items)
            self.assertTrue(any(item.startswith("discs.") for item in items), items)

    def test_bad_inputs_are_refused_before_anything_runs(self):
        import SpineAIGrading

        logic = SpineAIGrading.SpineAIGradingLogic()
        with self.assertRaisesRegex(ValueError, "No input image"):
            logic.grade("sagittal", None)
        labelmap = slicer.util.addVolumeFromArray(
            np.zeros((4, 8, 8), np.uint8), name="labels", nodeClassName="vtkMRMLLabelMapVolumeNode"
        )
        with self.assertRaisesRegex(ValueError, "label map or a heat map"):
            logic.grade("sagittal", labelmap)
