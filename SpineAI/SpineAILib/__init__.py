"""Slicer-free helpers shared by the SpineAI Slicer modules.

Everything here imports without Slicer (no ``slicer``, ``qt``, ``ctk`` or MRML), so it is tested with plain
pytest and reused from Slicer's Python console:

- :mod:`SpineAILib.frames`: LPS (engine, SimpleITK) <-> RAS (Slicer) conversion of points and image geometry.
- :mod:`SpineAILib.labels`: segment names, colours and terminology from the engine's ``labels.json`` sidecar.
- :mod:`SpineAILib.engine`: the engine command lines the modules run in a background process (segment, measure,
  plan, levels, phantom), progress-line parsing, plain-words error extraction and the expected output files.
- :mod:`SpineAILib.commands`: which commands (and options) the installed engine offers, read from its parser in
  a child process.
- :mod:`SpineAILib.planning`: the engine's triangle markups (LPS -> RAS), C-arm views and the 3D camera pose.
- :mod:`SpineAILib.grading`: the registry of grading/outcome/radiograph panels, their command lines and outputs.
- :mod:`SpineAILib.process`: a background process runner with progress, cancel (whole process tree) and a
  pluggable timer, so the GUI never freezes.
- :mod:`SpineAILib.tables`: rows and columns of the tables the modules show (structure volumes, model cards,
  the engine's TSV and JSON results with units).
- :mod:`SpineAILib.export`: corrected cases laid out for ``spineai train segmentation --data FOLDER``, with
  provenance.
- :mod:`SpineAILib.dependencies`: which Python requirements are missing.
"""

from __future__ import annotations
