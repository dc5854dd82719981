"""SpineAI engine: lumbosacral CT segmentation, tESI triangle measurement and planning, lumbar grading.

Research use only; not for clinical decisions.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
