"""Benchmark: the engine's default CT segmentation against the paper's configuration, in the same run.

One 1 mm lumbosacral phantom CT (L3..S1) is segmented twice, each in its own process so peak memory is
measured per configuration:

- ``default``: the default network width (16-32-64-128-256) with the fast mode (crop to the bony region,
  few large Gaussian-blended windows);
- ``paper``: the paper's full-width network (32-64-128-256-512) with its combined algorithm (32x64x64
  windows tiled without overlap, summed softmax, argmax).

Both networks are He-initialised (speed and memory do not depend on the trained values), on the same
device. Reported: wall time of ``segment()`` (best of ``--repeats``), its inference part, peak resident
memory of the process (``resource.ru_maxrss``), parameter memory, and the ratios default / paper.

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
    "default": {"features": (16, 32, 64, 128, 256), "mode": "fast"},
    "paper": {"features": (32, 64, 128, 256, 512), "mode": "paper"},
}


def _worker(config_name: str, ct_path: str, device: str, repeats: int) -> dict:
    import SimpleITK as sitk
    import torch

    from spineai.segmentation.data import CT_CLASS_NAMES, IntensityNormalization
    from spineai.segmentation.inference import LoadedModel, resolve_device, segment
    from spineai.segmentation.network import build_network, count_parameters

    config = CONFIGS[config_name]
    dev = resolve_device(device)
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
    image = sitk.ReadImage(ct_path)
    times, inference = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        result = segment(image, mode=config["mode"], model=model)
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
        inference.append(result.timings_s["inference"])
    return {
        "config": config_name,
        "features": list(config["features"]),
        "mode": config["mode"],
        "device": dev,
        "parameters": count_parameters(network),
        "parameter_mb": count_parameters(network) * 4 / 2**20,
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
    d, p = rows["default"], rows["paper"]
    print(
        f"{'config':<9}{'net':<22}{'mode':<7}{'params':>11}{'seconds':>9}{'inference':>11}{'peak RSS MB':>13}"
    )
    for r in (d, p):
        net = "-".join(map(str, r["features"]))
        print(
            f"{r['config']:<9}{net:<22}{r['mode']:<7}{r['parameters']:>11,}{r['seconds']:>9.2f}"
            f"{r['inference_seconds']:>11.2f}{r['peak_rss_mb']:>13.0f}"
        )
    ratios = {
        "wall_time_default_over_paper": d["seconds"] / p["seconds"],
        "inference_time_default_over_paper": d["inference_seconds"] / p["inference_seconds"],
        "peak_rss_default_over_paper": d["peak_rss_mb"] / p["peak_rss_mb"],
    }
    for key, value in ratios.items():
        print(f"{key}: {value:.3f}")
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
