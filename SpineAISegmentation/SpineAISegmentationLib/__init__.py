"""Slicer-free helpers of the SpineAISegmentation module (no ``slicer``, ``qt``, ``ctk`` or MRML imports), tested
with plain pytest:

- :mod:`SpineAISegmentationLib.levels`: the level numbering of ``spineai levels`` (``levels.json``) as the
  module shows it: a table of the vertebrae with their confidence and flags, the warning of a flagged
  numbering, and the triangle table and summary lines annotated level by level.
"""

from __future__ import annotations
