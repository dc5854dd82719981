"""Benchmark: the engine's default CT segmentation against the paper's configuration, in the same run.

One 1 mm lumbosacral phantom CT (L3..S1, never used for training) is segmented in three configurations,
each in its own process so peak memory is measured per configuration:

- ``default``: what ``spineai segment`` runs: the shipped weights (default width 16-32-64-128-256) with the
  fast mode (crop to the bony region, few large Gaussian-blended windows);
- ``paper``: the paper's full-width network (32-64-128-256-512) with its combined algorithm (32x64x64
  windows tiled without overlap, summed softmax, argmax). No full-width weights are trained, so this
  network is He-initialised: its speed and memory do not depend on the trained values, but it has no Dice;
- ``paper_windows``: the shipped weights with the paper's windows, so the accuracy cost of the fast mode's
  windows is measured on the same network (Dice of ``default`` minus Dice of ``paper_windows``).

Reported: wall time of ``segment()`` (best of ``--repeats``), its inference part, peak resident memory of
the process (``resource.ru_maxrss``), parameter memory, bone and nerve Dice against the phantom's truth
(trained weights only) and the ratios default / paper.

Usage::

    python benchmarks/bench_segmentation.py [--seed 7] [--device cpu] [--repeats 1] [--json out.json]

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

CONFIGS = {
    "default": {"features": (16, 32, 64, 128, 256), "mode": "fast", "weights": "shipped"},
    "paper": {"features": (32, 64, 128, 256, 512), "mode": "paper", "weights": "he-init"},
    "paper_windows": {"features": (16, 32, 64, 128, 256), "mode": "paper", "weights": "shipped"},
}


def _worker(config_name: str, ct_path: str, device: str, repeats: int) -> dict:
    import SimpleITK as sitk
    import torch

    from spineai.segmentation.data import CT_CLASS_NAMES, IntensityNormalization
    from spineai.segmentation.inference import LoadedModel, load_segmentation_model, resolve_device, segment
    from spineai.segmentation.network import build_network, count_parameters

    config = CONFIGS[config_name]
    dev = resolve_device(device)
    if config["weights"] == "shipped":
        model = load_segmentation_model(None, dev)
        network = model.network
        assert tuple(network.config["features"]) == config["features"], "shipped width changed"
    else:
        torch.manual_seed(0)
        network = build_network({"out_channels": len(CT_CLASS_NAMES), "features": list(config["features"])})
        network.eval().to(dev)
        card = SimpleNamespace(name=f"bench_{config_name}", version="0", sha256="")
        model = LoadedModel(
            network,
            card,
            Path("random-init"),
            CT_CLASS_NAMES,
            IntensityNormalization(0.0, 1000.0),
            (32, 64, 64),
            dev,
        )
    # counted on the network as built: inference folds its batch norms into the convolutions
    built = build_network({"out_channels": len(CT_CLASS_NAMES), "features": list(config["features"])})
    parameters = count_parameters(built)
    image = sitk.ReadImage(ct_path)
    times, inference = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        result = segment(image, mode=config["mode"], model=model)
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
        inference.append(result.timings_s["inference"])
    dice = {}
    if config["weights"] == "shipped":  # the paper's bone / nerve Dice against the phantom's truth
        from spineai.segmentation.metrics import three_class_scores

        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(Path(ct_path).with_name("labels.nii.gz"))))
        pred = sitk.GetArrayFromImage(result.labels)
        scores = three_class_scores(pred, truth, result.labels.GetSpacing(), distances=False)
        dice = {group: scores[group]["dice"] for group in ("bone", "nerve")}
    return {
        "config": config_name,
        "weights": config["weights"],
        "dice": dice,
        "features": list(config["features"]),
        "mode": config["mode"],
        "device": dev,
        "parameters": parameters,
        "parameter_mb": parameters * 4 / 2**20,
        "seconds": min(times),
        "inference_seconds": min(inference),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "peak_gpu_mb": (torch.cuda.max_memory_allocated() / 2**20) if dev.startswith("cuda") else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=7, help="phantom seed")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--repeats", type=int, default=1, help="runs per configuration (best is reported)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--worker", nargs=2, metavar=("CONFIG", "CT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker[0], args.worker[1], args.device, args.repeats)))
        return 0

    from spineai import io
    from spineai.phantom import generate_ct_phantom

    case = generate_ct_phantom(args.seed, spacing_mm=(1.0, 1.0, 1.0))
    with tempfile.TemporaryDirectory() as tmp:
        ct = Path(tmp) / "ct.nii.gz"
        io.write_image(case.image, ct)
        io.write_image(case.labels, ct.with_name("labels.nii.gz"))
        size = case.image.GetSize()
        print(
            f"phantom seed {args.seed}: {size[0]} x {size[1]} x {size[2]} voxels at 1 mm, device {args.device}"
        )
        rows = {}
        for name in CONFIGS:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    name,
                    str(ct),
                    "--device",
                    args.device,
                    "--repeats",
                    str(args.repeats),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            rows[name] = json.loads(out.stdout.strip().splitlines()[-1])
    d, p, w = rows["default"], rows["paper"], rows["paper_windows"]
    print(
        f"{'config':<15}{'net':<22}{'mode':<7}{'weights':<9}{'params':>11}{'seconds':>9}{'inference':>11}"
        f"{'peak RSS MB':>13}{'Dice bone':>11}{'Dice nerve':>12}"
    )
    for r in (d, p, w):
        net = "-".join(map(str, r["features"]))
        dice = "".join(
            f"{r['dice'][g]:>{width}.3f}" if g in r["dice"] else f"{'-':>{width}}"
            for g, width in (("bone", 11), ("nerve", 12))
        )
        print(
            f"{r['config']:<15}{net:<22}{r['mode']:<7}{r['weights']:<9}{r['parameters']:>11,}"
            f"{r['seconds']:>9.2f}{r['inference_seconds']:>11.2f}{r['peak_rss_mb']:>13.0f}{dice}"
        )
    ratios = {
        "wall_time_default_over_paper": d["seconds"] / p["seconds"],
        "inference_time_default_over_paper": d["inference_seconds"] / p["inference_seconds"],
        "peak_rss_default_over_paper": d["peak_rss_mb"] / p["peak_rss_mb"],
        # the fast mode's windows vs the paper's, same trained network: the accuracy cost of the speed-up
        "dice_bone_default_minus_paper_windows": d["dice"]["bone"] - w["dice"]["bone"],
        "dice_nerve_default_minus_paper_windows": d["dice"]["nerve"] - w["dice"]["nerve"],
    }
    for key, value in ratios.items():
        print(f"{key}: {value:+.3f}" if key.startswith("dice") else f"{key}: {value:.3f}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"phantom_seed": args.seed, "size": list(size), "runs": rows, "ratios": ratios}, indent=2
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
