"""Segmenter quality per time budget: which model is best when every candidate gets the same minutes here.

Run in a project clone holding the real cohort and its split:

    python benchmarks/bench_segmenter_budget.py --minutes 25 [--configs unet16 unet24 ...] [--out DIR]

For each configuration (``CONFIGS``: plain U-Net with 16/24/32 base filters at 128 px, 16 filters at 96 and
160 px, Unet-ResNet18/34 at 128 px; each the ``train.cpu`` recipe otherwise) it runs, as a user would,
``gliomics train`` with ``budget_minutes = --minutes`` (calibrated on this machine: the epochs that fit) and
``gliomics evaluate`` on the split's internal test patients, then records the seconds per training image,
images seen, validation and internal-test per-patient 3D Dice. Rows are written to ``summary.json`` after each
configuration, and a configuration already there is skipped, so an interrupted run continues. The CPU's flags
are recorded with the numbers: the same budget buys ten times more images on a CPU with AMX than without bf16.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import project_out_dir, resumable_summary, run_logged  # noqa: E402

PLAIN = {"arch": "plain_unet", "depth": 4, "activation": "relu", "pooling": "max", "bn_momentum": 0.9}
CONFIGS = {
    "unet16": {"model": {**PLAIN, "base_filters": 16}, "image_size": 128},
    "unet24": {"model": {**PLAIN, "base_filters": 24}, "image_size": 128},
    "unet32": {"model": {**PLAIN, "base_filters": 32}, "image_size": 128},
    "unet16_96px": {"model": {**PLAIN, "base_filters": 16}, "image_size": 96},
    "unet16_160px": {"model": {**PLAIN, "base_filters": 16}, "image_size": 160},
    "unet_resnet18": {"model": {"arch": "Unet", "backbone": "resnet18"}, "image_size": 128},
    "unet_resnet34": {"model": {"arch": "Unet", "backbone": "resnet34"}, "image_size": 128},
}


def params_for(base: dict, config: dict, minutes: float) -> dict:
    """params.yaml contents: the base file whose ``cpu`` profile is train.cpu + the configuration + budget."""
    params = copy.deepcopy(base)
    params["train"]["cpu"] = {**params["train"]["cpu"], **config, "budget_minutes": minutes, "xla": False}
    params["profile"] = "cpu"
    return params


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=25.0, help="training budget per configuration")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--out", default=f"benchmarks/results/segmenter_budget_{time.strftime('%Y-%m-%d')}")
    args = parser.parse_args()
    out = project_out_dir("bench_segmenter_budget", args.out)
    if out is None:
        return 0
    from gliomics.io import write_json

    summary_path, summary = resumable_summary(out, {"minutes": args.minutes, "rows": {}})
    base = yaml.safe_load(Path("params.yaml").read_text())
    for name in args.configs:
        if name in summary["rows"]:
            print(f"{name}: already measured, skipped")
            continue
        work = out / name
        work.mkdir(parents=True, exist_ok=True)
        params_file = work / "params.yaml"
        params_file.write_text(yaml.safe_dump(params_for(base, CONFIGS[name], args.minutes), sort_keys=False))
        common = ["--params", str(params_file)]
        train_seconds = run_logged(["gliomics", *common, "train", "--out", str(work / "model"),
                                    "--checkpoints", str(work / "checkpoints"), "--reports", str(work / "train")],
                                   work / "train.log")
        run_logged(["gliomics", *common, "evaluate", "--model", str(work / "model"), "--split",
                    "reports/split/splits.csv", "--part", "test", "--out", str(work / "evaluate")],
                   work / "evaluate.log")
        metrics = json.loads((work / "train" / "metrics.json").read_text())
        evaluation = json.loads((work / "evaluate" / "summary.json").read_text())
        row = {"config": CONFIGS[name], "train_wall_seconds": round(train_seconds, 1),
               "seconds_per_image": metrics["seconds_per_image"], "precision": metrics["precision"],
               "epochs_run": metrics["epochs_run"], "total_steps": metrics["total_steps"],
               "images_seen": metrics["total_steps"] * int(base["train"]["cpu"]["batch_size"]),
               "best_val_dice_3d": metrics["best_val_dice_3d"], "test_mean_dice_3d": evaluation["mean_dice_3d"],
               "test_median_dice_3d": evaluation["median_dice_3d"], "test_by_sequences": evaluation["by_sequences"]}
        summary["rows"][name] = row
        write_json(summary_path, summary)
        print(f"{name}: {row['images_seen']} images at {row['seconds_per_image']:.3f} s/img; validation "
              f"{row['best_val_dice_3d']:.3f}, internal test {row['test_mean_dice_3d']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
