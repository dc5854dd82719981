"""SpineAISegmentation in Slicer on the engine's phantom: segment, check the nodes, correct, export, cancel;
measure the triangles and plan the needle on the current (corrected) segmentation; renumber the vertebrae.

Run headless (see docs/slicer.md)::

    Slicer --no-splash --no-main-window --testing \
      --additional-module-paths SpineAI SpineAISegmentation SpineAIGrading \
      --python-code "import slicer.testing; slicer.testing.runUnitTest(['SpineAISegmentation/Testing/Python'], 'SpineAISegmentationWorkflowTest')"
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest


def _dice(a, b) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * (a & b).sum() / total)


class SpineAISegmentationWorkflowTest(ScriptedLoadableModuleTest):
    """The segment -> correct -> export workflow with real nodes."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def _phantom(self, seed: int):
        import SpineAI

        return SpineAI.SpineAILogic().loadPhantom(seed=seed, timeout=600)

    def _requireShippedModel(self):
        from spineai.segmentation.inference import DEFAULT_MODEL
        from spineai.weights import MODELS_DIR

        if not (MODELS_DIR / f"{DEFAULT_MODEL}.json").is_file():
            self.skipTest(f"the engine ships no CT segmentation model ({DEFAULT_MODEL}) yet")

    def test_segment_correct_and_export_a_phantom(self):
        import SimpleITK as sitk
        from SpineAILib import labels

        import SpineAISegmentation

        self._requireShippedModel()
        volume = self._phantom(seed=5)
        phantomFolder = Path(volume.GetAttribute("SpineAI.PhantomFolder"))
        logic = SpineAISegmentation.SpineAISegmentationLogic()
        seg = logic.process(volume, device="cpu", mode="fast", showSurfaces=True, timeout=1800)

        # one named, coloured, tagged segment per structure of the engine's sidecar
        engineFolder = Path(seg.GetAttribute(SpineAISegmentation.ATTRIBUTE_ENGINE_OUTPUT))
        sidecar = labels.read_label_sidecar(engineFolder / "labels.json")
        segmentation = seg.GetSegmentation()
        names = sorted(
            segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())
        )
        self.assertEqual(names, sorted(s.name for s in sidecar.specs))
        self.assertIn("L5", names)
        self.assertIn("S1", names)
        for spec in sidecar.specs:
            segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(spec.name))
            np.testing.assert_allclose(segment.GetColor(), spec.color, atol=1e-3)
            if spec.terminology:
                self.assertEqual(logic.terminologyTag(segment), spec.terminology)
        self.assertEqual(seg.GetNodeReference(seg.GetReferenceImageGeometryReferenceRole()), volume)
        shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        self.assertEqual(
            shNode.GetItemParent(shNode.GetItemByDataNode(seg)),
            shNode.GetItemParent(shNode.GetItemByDataNode(volume)),
        )
        self.assertTrue(segmentation.ContainsRepresentation("Closed surface"))
        self.assertIsNotNone(logic.lastTable)
        self.assertFalse([w for w in logic.lastWarnings if "implausible" in w], logic.lastWarnings)
        self.assertEqual(logic.lastTable.GetNumberOfRows(), len(sidecar.specs))

        # agrees with the phantom's exact labels on the bones
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(phantomFolder / "labels.nii.gz")))
        for name in ("L5", "S1"):
            mask = slicer.util.arrayFromSegmentBinaryLabelmap(
                seg, segmentation.GetSegmentIdBySegmentName(name), volume
            )
            value = sidecar.by_name()[name].label
            self.assertGreater(_dice(mask, truth == value), 0.5, f"{name} disagrees with the phantom truth")

        # correct in the Segment Editor: it opens on this segmentation and CT
        editor = logic.openInSegmentEditor(seg, volume)
        self.assertEqual(editor.segmentationNode(), seg)
        self.assertEqual(editor.sourceVolumeNode(), volume)
        l5Id = segmentation.GetSegmentIdBySegmentName("L5")
        l5 = slicer.util.arrayFromSegmentBinaryLabelmap(seg, l5Id, volume)
        slices = np.nonzero(l5.any(axis=(1, 2)))[0]
        corrected = l5.copy()
        corrected[slices[0]] = 0  # an annotator erases the lowest L5 slice
        slicer.util.updateSegmentBinaryLabelmapFromArray(corrected, seg, l5Id, volume)

        table = logic.updateStructureTable(seg, volume, logic.lastTable)
        rows = {table.GetCellText(r, 0): r for r in range(table.GetNumberOfRows())}
        self.assertEqual(int(float(table.GetCellText(rows["L5"], 2))), int(corrected.sum()))

        # export for retraining: the layout training reads, the correction recorded
        folder = Path(slicer.util.tempDirectory("SpineAI-export-test-"))
        case = logic.exportForRetraining(volume, seg, folder, "phantom 5")
        self.assertEqual(case, folder / "phantom_5")
        for name in ("ct.nii.gz", "labels.nii.gz", "labels.json", "provenance.json"):
            self.assertTrue((case / name).is_file(), name)
        exported = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "labels.nii.gz")))
        self.assertEqual(int((exported == sidecar.by_name()["L5"].label).sum()), int(corrected.sum()))
        np.testing.assert_array_equal(
            sitk.GetArrayFromImage(sitk.ReadImage(str(case / "ct.nii.gz"))),
            slicer.util.arrayFromVolume(volume),
        )
        provenance = json.loads((case / "provenance.json").read_text(encoding="utf-8"))
        self.assertEqual(provenance["edited_segments"], ["L5"])
        self.assertTrue(provenance["edited_segments_known"])
        self.assertEqual(provenance["input_volume"], volume.GetName())
        again = logic.exportForRetraining(volume, seg, folder, "phantom 5")
        self.assertEqual(again, folder / "phantom_5_2")  # never overwritten

        from spineai.segmentation.data import find_cases

        self.assertEqual([c.case_id for c in find_cases(folder)], ["phantom_5", "phantom_5_2"])

    def _phantomSegmentation(self, volume):
        """The engine's segmentation when a CT model ships, else the phantom's exact labels as a segmentation."""
        import SpineAISegmentation
        from spineai.segmentation.inference import DEFAULT_MODEL
        from spineai.weights import MODELS_DIR

        logic = SpineAISegmentation.SpineAISegmentationLogic()
        if (MODELS_DIR / f"{DEFAULT_MODEL}.json").is_file():
            return logic.process(volume, device="cpu", mode="fast", showSurfaces=False, timeout=1800)
        folder = Path(volume.GetAttribute("SpineAI.PhantomFolder"))
        return logic.loadSegmentationResult(folder, volume, showSurfaces=False)

    def test_measure_and_plan_on_the_current_segmentation(self):
        from SpineAILib import planning

        import SpineAI
        import SpineAISegmentation

        volume = self._phantom(seed=5)
        seg = self._phantomSegmentation(volume)
        logic = SpineAISegmentation.SpineAISegmentationLogic()
        result = logic.measure(seg, volume, levels=["L5-S1"], sides=["left", "right"], timeout=1800)

        # markups: the engine's LPS points become RAS control points, one locked node per markup
        measurements = planning.read_measurements(result.folder / "measurements.json")
        triangles = {n.GetName(): n for n in result.nodesByRole("triangle")}
        measured = [fm for fm in measurements["foramina"] if fm["status"] == "ok"]
        self.assertTrue(measured, "no foramen of the phantom was measured")
        for fm in measured:
            for tri in fm["triangles"].values():
                node = triangles[tri["name"]]
                self.assertTrue(node.IsA("vtkMRMLMarkupsClosedCurveNode"))
                self.assertEqual(node.GetNumberOfControlPoints(), 3)
                np.testing.assert_allclose(
                    slicer.util.arrayFromMarkupsControlPoints(node),
                    np.asarray(tri["vertices_lps_mm"]) * [-1.0, -1.0, 1.0],
                    atol=1e-3,
                )
                self.assertTrue(node.GetLocked())
        needles = result.nodesByRole("needle")
        self.assertTrue(needles and all(n.IsA("vtkMRMLMarkupsLineNode") for n in needles))
        self.assertEqual(len(result.nodesByRole("entry_target")), len(needles))
        table = result.tableNode
        self.assertEqual(table.GetNumberOfRows(), 2 * len(measurements["foramina"]))
        self.assertEqual(table.GetColumnUnitLabel("area_mm2"), "mm2")
        self.assertEqual(table.GetColumnUnitLabel("min_distance_nerve_mm"), "mm")
        shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        self.assertEqual(shNode.GetItemParent(shNode.GetItemByDataNode(table)), result.folderItem)

        # the best C-arm view goes to a 3D camera: looking from the skin toward the target
        view = result.views[0]
        camera = logic.threeDCameraNode() or slicer.mrmlScene.AddNewNodeByClass("vtkMRMLCameraNode")
        logic.applyCarmView(view, camera)
        np.testing.assert_allclose(
            camera.GetFocalPoint(), np.asarray(view.target_lps) * [-1, -1, 1], atol=1e-6
        )
        seen = np.subtract(camera.GetFocalPoint(), camera.GetPosition())
        np.testing.assert_allclose(
            seen / np.linalg.norm(seen), np.asarray(view.direction_lps) * [-1, -1, 1], atol=1e-6
        )

        # plan at that view: needle line, entry and target points, clearances in the table
        plan = logic.plan(
            seg, volume, level=view.level, side=view.side, obliqueDeg=view.oblique_deg, tiltDeg=view.tilt_deg,
            timeout=1800,
        )  # fmt: skip
        (needle,) = [
            n for n in plan.nodesByRole("needle") if n.GetAttribute("SpineAI.Triangle") == view.triangle
        ]
        (points,) = [
            n for n in plan.nodesByRole("entry_target") if n.GetAttribute("SpineAI.Triangle") == view.triangle
        ]
        self.assertEqual(points.GetNthControlPointLabel(0), "entry")
        self.assertEqual(points.GetNthControlPointLabel(1), "target")
        np.testing.assert_allclose(
            slicer.util.arrayFromMarkupsControlPoints(points),
            slicer.util.arrayFromMarkupsControlPoints(needle),
        )
        columns = [plan.tableNode.GetColumnName(c) for c in range(plan.tableNode.GetNumberOfColumns())]
        for name in ("path_length_mm", "min_distance_nerve_mm", "min_distance_bone_mm", "path_safe"):
            self.assertIn(name, columns)
        # the earlier measurement's markups are hidden, not deleted
        self.assertFalse(any(n.GetDisplayVisibility() for n in result.markupNodes))
        self.assertIsNotNone(slicer.mrmlScene.GetNodeByID(result.markupNodes[0].GetID()))

        # a correction counts: erase the left L5 root and the left side can no longer be measured
        segmentation = seg.GetSegmentation()
        rootId = segmentation.GetSegmentIdBySegmentName("root_L5_left")
        empty = np.zeros_like(slicer.util.arrayFromSegmentBinaryLabelmap(seg, rootId, volume))
        slicer.util.updateSegmentBinaryLabelmapFromArray(empty, seg, rootId, volume)
        corrected = logic.measure(seg, volume, levels=["L5-S1"], sides=["left", "right"], timeout=1800)
        sides = {n.GetAttribute("SpineAI.Side") for n in corrected.nodesByRole("triangle")}
        self.assertNotIn("left", sides)
        self.assertTrue(any(line.startswith("L5-S1 left: not measured") for line in corrected.summary))

        # renumbering runs only when the engine has the command
        if "levels" in SpineAI.SpineAILogic().engineCommands():
            renumbered = logic.relabel(seg, volume, timeout=1800)
            self.assertNotEqual(renumbered, seg)
            self.assertGreater(renumbered.GetSegmentation().GetNumberOfSegments(), 0)
            self.assertIsNotNone(slicer.mrmlScene.GetNodeByID(seg.GetID()))  # the original is kept
            # the numbering comes with it: one table row per vertebra, and the new segmentation remembers it
            levels = logic.lastLevels
            self.assertIsNotNone(levels, "spineai levels wrote no levels.json")
            self.assertEqual(logic.lastLevelsTable.GetNumberOfRows(), len(levels.vertebrae))
            self.assertEqual(logic.levelsOfSegmentation(renumbered).names, levels.names)
            # measuring the renumbered segmentation gives each level's confidence and the check column
            remeasured = logic.measure(renumbered, volume, levels=["L5-S1"], sides=["right"], timeout=1800)
            self.assertIs(type(remeasured.levels), type(levels))
            names = [
                remeasured.tableNode.GetColumnName(c)
                for c in range(remeasured.tableNode.GetNumberOfColumns())
            ]
            self.assertIn("level_confidence", names)
            self.assertIn("level_check", names)

    def test_measure_refuses_a_missing_segmentation(self):
        import SpineAISegmentation

        volume = slicer.util.addVolumeFromArray(np.zeros((8, 8, 8), np.int16), name="CT")
        logic = SpineAISegmentation.SpineAISegmentationLogic()
        with self.assertRaisesRegex(ValueError, "No segmentation"):
            logic.measure(None, volume)
        seg = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "empty")
        with self.assertRaisesRegex(ValueError, "no segments"):
            logic.measure(seg, volume)

    def test_cancel_leaves_the_scene_unchanged(self):
        import SpineAISegmentation

        volume = self._phantom(seed=6)
        before = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")
        outcome = []
        logic = SpineAISegmentation.SpineAISegmentationLogic()
        job = logic.startSegmentation(
            volume, onDone=lambda node, result, error: outcome.append((node, result))
        )
        job.cancel()
        deadline = time.monotonic() + 120
        while not outcome and time.monotonic() < deadline:
            slicer.app.processEvents()
            time.sleep(0.05)
        self.assertTrue(outcome, "the cancelled segmentation never reported back")
        node, result = outcome[0]
        self.assertIsNone(node)
        self.assertTrue(result.cancelled)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"), before)

    def test_single_slice_and_label_map_inputs_are_refused(self):
        import SpineAISegmentation

        logic = SpineAISegmentation.SpineAISegmentationLogic()
        flat = slicer.util.addVolumeFromArray(np.zeros((1, 32, 32), np.int16), name="one slice")
        with self.assertRaisesRegex(ValueError, "single slice"):
            logic.process(flat)
        labelmap = slicer.util.addVolumeFromArray(
            np.zeros((8, 8, 8), np.uint8), name="labels", nodeClassName="vtkMRMLLabelMapVolumeNode"
        )
        with self.assertRaisesRegex(ValueError, "label map"):
            logic.process(labelmap)
