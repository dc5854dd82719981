"""Per-image latency of the axial grader and the stenosis model, as ratios to a baseline measured in the same run.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_axial_latency.py --images 20 --json latency.json

Measured on phantom slices (``generate_axial_t2``), one PyTorch thread, after two warm-up images:

* ``paper_network_forward``: the paper's network (ResNet-50, 2048-d feature, three heads) on one
  224 x 224 input, forward only: the **baseline** (the paper reports 11 ms per image on an RTX 2080 Ti);
* ``demo_network_forward``: the shipped demo network (ResNet-10 at 1/8 width) on one 128 x 128 input;
* ``grade_axial``: the whole call on an in-memory slice: input checks, normalisation, forward, without
  and with Grad-CAM of the three gradings;
* ``grade_stenosis``: both stages (detection, five crops x five test-time variants), without and with
  Grad-CAM.

Every figure is the median over ``--images`` slices, in milliseconds, with its ratio to the baseline.
Timings depend on the machine and its load; the ratios are what to compare between runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "SpineAI"))

from spineai.grading.axial.model import DEMO_CONFIG, PAPER_CONFIG, AxialGraderNet  # noqa: E402
from spineai.grading.axial.phantom import generate_axial_t2  # noqa: E402
from spineai.grading.axial.predict import grade_axial  # noqa: E402
from spineai.grading.stenosis.predict import grade_stenosis  # noqa: E402


def _median_ms(fn, inputs, warmup: int = 2) -> float:
    for x in inputs[:warmup]:
        fn(x)
    times = []
    for x in inputs:
        t0 = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=20, help="slices to time (default 20)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    slices = [generate_axial_t2(500_000 + i).image for i in range(args.images)]

    paper = AxialGraderNet(**PAPER_CONFIG).eval()
    demo = AxialGraderNet(**DEMO_CONFIG).eval()
    x_paper = [torch.rand(1, 1, PAPER_CONFIG["input_size"], PAPER_CONFIG["input_size"]) for _ in slices]
    x_demo = [torch.rand(1, 1, DEMO_CONFIG["input_size"], DEMO_CONFIG["input_size"]) for _ in slices]
    with torch.no_grad():
        baseline = _median_ms(paper, x_paper)
        demo_ms = _median_ms(demo, x_demo)
    rows = {
        "paper_network_forward": baseline,
        "demo_network_forward": demo_ms,
        "grade_axial": _median_ms(
            lambda im: grade_axial(im, gradcam=None, check_sagittal_picture=False), slices
        ),
        "grade_axial_with_gradcam": _median_ms(
            lambda im: grade_axial(im, check_sagittal_picture=False), slices
        ),
        "grade_stenosis": _median_ms(
            lambda im: grade_stenosis(im, gradcam=False, check_sagittal_picture=False), slices
        ),
        "grade_stenosis_with_gradcam": _median_ms(
            lambda im: grade_stenosis(im, check_sagittal_picture=False), slices
        ),
    }
    report = {
        "images": args.images,
        "threads": 1,
        "baseline": "paper_network_forward (ResNet-50, 224 x 224, forward only)",
        "median_ms": rows,
        "ratio_to_baseline": {k: v / baseline for k, v in rows.items()},
        "paper_ms_per_image": 11,
    }
    width = max(len(k) for k in rows)
    print(f"{'step':<{width}}  median ms  x baseline")
    for k, v in rows.items():
        print(f"{k:<{width}}  {v:9.1f}  {v / baseline:10.2f}")
    print("(the paper: 11 ms per image on an RTX 2080 Ti; here one CPU thread)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
