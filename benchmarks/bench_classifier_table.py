"""The thesis' activation x pooling table of the slice classifier, every cell trained (issue 16).

    cd <project with data/raw, reports/validate/manifest.csv, reports/split/splits.csv>
    python <repo>/benchmarks/bench_classifier_table.py [--out benchmarks/results/classifier_table_<date>]
        [--epochs 5] [--steps-per-epoch 100] [--top 3] [--seeds 0 1] [--activations ...] [--poolings ...]

Every cell of :data:`ACTIVATIONS` x :data:`POOLINGS` is one grid trial of ``gliomics tune --task classifier``
(``tune_classifier.cpu`` replaced: ``sampler: grid``, no pruner, ``promote_top_k: 0``) with the project's
``classifier.cpu`` model and training (ResNet-18, 128 px, bf16 where the CPU has it, missing-sequence
augmentation, cosine schedule), on **all** training patients, scored on the validation fold (fold 0) at its best
epoch. The per-cell budget is a number of training slices (``--epochs`` x ``--steps-per-epoch`` x 32), not
minutes: on a machine whose load changes, equal minutes give unequal cells (measured for the fold ensemble,
2026-12-05); the seconds each cell took are reported beside it.

Seed ``--seeds[0]`` trains every cell; each further seed retrains the ``--top`` best cells (one study per cell
and seed, so a killed run continues where it stopped: finished trials are kept in the Optuna database). The
table gives per cell the validation ROC AUC (mean and spread over its seeds), accuracy at 0.5 and F1 at the best
epoch (from the trial's MLflow run), epochs, seconds and run ids. Writes ``<out>/table.csv``,
``<out>/summary.json`` (atomically) and prints the table.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import yaml

from gliomics.io import write_csv, write_json

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common.py beside this script, whatever the cwd
from _common import cpu_description, project_out_dir, run_logged  # noqa: E402

ACTIVATIONS = ["relu", "sigmoid", "elu", "leaky_relu", "swish", "gelu"]
POOLINGS = ["avg", "max"]


def table_params(params: dict, *, activations, poolings, seed: int, epochs: int, steps: int, name: str) -> dict:
    """``params`` (profile cpu) with ``tune_classifier.cpu`` the grid of ``activations`` x ``poolings`` at the
    cell budget and ``classifier.cpu.seed`` = ``seed``."""
    variant = copy.deepcopy(params)
    variant["profile"] = "cpu"
    variant["classifier"]["cpu"]["seed"] = int(seed)
    tune = copy.deepcopy(variant["tune_classifier"]["cpu"])
    tune.update(study_name=name, sampler="grid", n_trials=len(activations) * len(poolings), timeout=0,
                pruner={"name": "none"}, promote_top_k=0)
    tune["space"] = {**tune["space"], "activation": list(activations), "pooling": list(poolings)}
    tune["low_fidelity"] = {"image_size": variant["classifier"]["cpu"]["image_size"], "train_patient_fraction": 1.0,
                            "epochs": int(epochs), "steps_per_epoch": int(steps)}
    variant["tune_classifier"]["cpu"] = tune
    return variant


def best_epoch_scores(run_id: str) -> dict:
    """Validation accuracy and F1 at the epoch of the best validation ROC AUC of one trial's MLflow run."""
    import mlflow

    client = mlflow.MlflowClient()
    auc = client.get_metric_history(run_id, "val_roc_auc")
    if not auc:
        return {}
    best = max(auc, key=lambda m: (m.value, -m.step))
    scores = {"best_epoch": best.step}
    for key in ("val_accuracy", "val_f1"):
        values = {m.step: m.value for m in client.get_metric_history(run_id, key)}
        scores[key] = values.get(best.step)
    return scores


def run_grid(params: dict, out: Path, name: str, **grid) -> pd.DataFrame:
    """One ``gliomics tune --task classifier`` of a grid; its trials (low fidelity) with their scores."""
    params_file = out / f"params_{name}.yaml"
    params_file.write_text(yaml.safe_dump(table_params(params, name=name, **grid), sort_keys=False))
    reports = out / name
    seconds = run_logged(["gliomics", "--params", str(params_file), "tune", "--task", "classifier", "--reports",
                          str(reports), "--out", str(out / f"{name}_model")], out / f"{name}.log")
    trials = pd.read_csv(reports / "trials.csv")
    trials = trials[(trials["fidelity"] == "low") & (trials["state"] == "COMPLETE")].copy()
    rows = []
    for trial in trials.to_dict("records"):
        # A one-value choice is fixed, not searched: the trials table has no column for it.
        cell = {key: trial.get(f"param_{key}", grid[f"{key}s"][0]) for key in ("activation", "pooling")}
        rows.append({**cell,
                     "seed": grid["seed"], "val_roc_auc": trial["value"], "epochs_run": trial["epochs_run"],
                     "seconds": trial["duration_s"], "mlflow_run_id": trial["mlflow_run_id"],
                     **best_epoch_scores(str(trial["mlflow_run_id"]))})
    print(f"{name}: {len(rows)} cells in {seconds:.0f} s", flush=True)
    return pd.DataFrame(rows)


def summarise(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: mean and spread (max - min) of the validation ROC AUC over its seeds, sorted best first."""
    grouped = cells.groupby(["activation", "pooling"])
    table = grouped.agg(val_roc_auc_mean=("val_roc_auc", "mean"), val_roc_auc_min=("val_roc_auc", "min"),
                        val_roc_auc_max=("val_roc_auc", "max"), seeds=("seed", "count"),
                        val_accuracy_mean=("val_accuracy", "mean"), val_f1_mean=("val_f1", "mean"),
                        seconds_mean=("seconds", "mean")).reset_index()
    table["val_roc_auc_spread"] = table["val_roc_auc_max"] - table["val_roc_auc_min"]
    return table.sort_values("val_roc_auc_mean", ascending=False).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    parser.add_argument("--out", default=f"benchmarks/results/classifier_table_{date}")
    parser.add_argument("--epochs", type=int, default=5)  # tune_classifier.cpu's cell budget
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--top", type=int, default=3, help="cells retrained with each further seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--activations", nargs="+", default=ACTIVATIONS)
    parser.add_argument("--poolings", nargs="+", default=POOLINGS)
    args = parser.parse_args()
    out = project_out_dir("bench_classifier_table", args.out)
    if out is None:
        return
    from gliomics import tracking

    tracking.configure()
    params = yaml.safe_load(Path("params.yaml").read_text())
    budget = {"epochs": args.epochs, "steps": args.steps_per_epoch}
    slices = args.epochs * args.steps_per_epoch * int(params["classifier"]["cpu"]["batch_size"])
    started = time.time()
    first, *others = args.seeds
    cells = run_grid(params, out, f"table-seed{first}", activations=args.activations, poolings=args.poolings,
                     seed=first, **budget)
    top = summarise(cells).head(args.top)
    for seed in others:
        for cell in top.to_dict("records"):
            name = f"table-seed{seed}-{cell['activation']}-{cell['pooling']}"
            cells = pd.concat([cells, run_grid(params, out, name, activations=[cell["activation"]],
                                               poolings=[cell["pooling"]], seed=seed, **budget)])
    write_csv(out / "cells.csv", cells)
    table = summarise(cells)
    write_csv(out / "table.csv", table)
    write_json(out / "summary.json", {
        "date": date, "machine": cpu_description(), "seeds": args.seeds, "top": args.top,
        "slices_per_cell": slices, "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
        "model": params["classifier"]["cpu"]["model"], "wall_seconds": round(time.time() - started, 1),
        "table": table.to_dict(orient="records")})
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
