"""Pruned TPE search against the exhaustive grid, on one small space (issue 7).

    cd <project with data/raw, reports/validate/manifest.csv, reports/split/splits.csv>
    python <repo>/benchmarks/bench_tune_grid.py [--out benchmarks/results/tune_grid_<date>]
        [--tpe-trials 6] [--tpe-promote-top-k 1] [--no-register]

Both searches use the project's ``params.yaml`` with ``profile: cpu`` and the
same low-fidelity settings (``tune.cpu.low_fidelity``); only ``tune.cpu`` is
replaced:

* **grid**: ``sampler: grid``, no pruner, ``promote_top_k: 0`` - every point
  of :data:`SPACE` trained once at low fidelity (the exhaustive reference);
* **tpe**: seeded TPE (``startup_trials`` random first), Hyperband pruning on
  the per-epoch validation per-patient 3D Dice, ``--tpe-trials`` trials,
  ``promote_top_k`` from ``--tpe-promote-top-k`` (1): its best configuration is
  retrained at full fidelity (``train.cpu`` settings) and, unless
  ``--no-register``, scored on the internal test patients by
  ``gliomics register --promote never`` (0: neither).

Killed, it can simply be started again: both studies continue where they
stopped (a killed trial is failed and re-enqueued; finished ones are kept).

Each search is one ``gliomics tune`` subprocess (so every trial is in MLflow
and Optuna as a user would see it). Reported per search: wall seconds, the
summed trial seconds, trials complete/pruned/failed, the best low-fidelity
validation Dice and its configuration; for TPE also the grid's rank of the
configuration it found and the full-fidelity validation and internal-test
Dice. Writes ``<out>/summary.json`` (atomically) and prints it.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import yaml

from gliomics.io import write_json

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common.py beside this script, whatever the cwd
from _common import project_out_dir, run_logged  # noqa: E402

#: The small grid of the issue: 2 backbones x 2 activations x 2 poolings, one
#: loss, learning rate, batch size and augmentation.
SPACE = {
    "arch": ["Unet"],
    "backbone": ["resnet18", "resnet34"],
    "activation": ["relu", "elu"],
    "pooling": ["max", "avg"],
    "loss": ["bce_dice"],
    "learning_rate": [0.001],
    "batch_size": [16],
    "augment_strength": [1.0],
}
SEARCHED = ("backbone", "activation", "pooling")


def tune_settings(base: dict, kind: str, tpe_trials: int, tpe_promote_top_k: int = 1) -> dict:
    settings = copy.deepcopy(base)
    settings["space"] = copy.deepcopy(SPACE)
    settings["model_options"] = {}
    if kind == "grid":
        settings.update(study_name="bench-grid", sampler="grid", n_trials=8, timeout=0,
                        pruner={"name": "none"}, promote_top_k=0)
    else:
        settings.update(study_name="bench-tpe", sampler="tpe", n_trials=tpe_trials, timeout=0, startup_trials=3,
                        pruner={"name": "hyperband", "min_resource": 1, "reduction_factor": 3},
                        promote_top_k=tpe_promote_top_k)
    return settings


def trial_stats(reports: Path) -> dict:
    trials = pd.read_csv(reports / "trials.csv")
    low = trials[trials["fidelity"] == "low"]
    finished = low[low["state"].isin(["COMPLETE", "PRUNED"])]
    best = finished.loc[finished["value"].idxmax()]
    config = {k: best.get(f"param_{k}") for k in SEARCHED}
    return {
        "trials": int(len(low)),
        "complete": int((low["state"] == "COMPLETE").sum()),
        "pruned": int((low["state"] == "PRUNED").sum()),
        "failed": int((low["state"] == "FAIL").sum()),
        "low_trial_seconds": round(float(low["duration_s"].sum()), 1),
        "best_low_val_dice_3d": round(float(best["value"]), 4),
        "best_config": config,
        "table": low.to_dict(orient="records"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    parser.add_argument("--out", default=f"benchmarks/results/tune_grid_{date}")
    parser.add_argument("--tpe-trials", type=int, default=6)
    parser.add_argument("--tpe-promote-top-k", type=int, default=1)
    parser.add_argument("--no-register", action="store_true")
    args = parser.parse_args()
    out = project_out_dir("bench_tune_grid", args.out)
    if out is None:
        return
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["profile"] = "cpu"
    result = {"date": date, "space": SPACE, "low_fidelity": params["tune"]["cpu"]["low_fidelity"],
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    for kind in ("grid", "tpe"):
        variant = copy.deepcopy(params)
        variant["tune"]["cpu"] = tune_settings(params["tune"]["cpu"], kind, args.tpe_trials,
                                                  args.tpe_promote_top_k)
        params_file = out / f"params_{kind}.yaml"
        params_file.write_text(yaml.safe_dump(variant, sort_keys=False))
        reports = out / kind
        seconds = run_logged(["gliomics", "--params", str(params_file), "tune", "--reports", str(reports),
                              "--out", str(out / f"{kind}_model")], out / f"{kind}.log")
        entry = {"wall_seconds": round(seconds, 1), **trial_stats(reports)}
        entry["best_json"] = json.loads((reports / "best.json").read_text())
        result[kind] = entry
        print(f"{kind}: {entry['trials']} trials ({entry['pruned']} pruned) in {seconds:.0f} s; best low-fidelity "
              f"val Dice {entry['best_low_val_dice_3d']:.3f} {entry['best_config']}", flush=True)
    grid_values = sorted(((r["value"], tuple(r.get(f"param_{k}") for k in SEARCHED)) for r in result["grid"]["table"]),
                         reverse=True)
    tpe_config = tuple(result["tpe"]["best_config"][k] for k in SEARCHED)
    ranks = [i + 1 for i, (_, config) in enumerate(grid_values) if config == tpe_config]
    result["tpe"]["grid_rank_of_best_config"] = ranks[0] if ranks else None
    result["cost_ratio_tpe_over_grid"] = round(result["tpe"]["low_trial_seconds"]
                                               / max(result["grid"]["low_trial_seconds"], 1e-9), 3)
    if not args.no_register and args.tpe_promote_top_k > 0:
        seconds = run_logged(["gliomics", "--params", str(out / "params_tpe.yaml"), "register", "--best",
                              str(out / "tpe" / "best.json"), "--out", str(out / "tpe_register"), "--promote",
                              "never"], out / "register.log")
        registered = json.loads((out / "tpe_register" / "registered.json").read_text())
        result["tpe"]["register"] = {"seconds": round(seconds, 1), **registered}
    result["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json(out / "summary.json", result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("grid", "tpe")}, indent=2, default=str))


if __name__ == "__main__":
    main()
