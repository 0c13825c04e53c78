"""The `cpu` profile search on the real data, then `register` (issue 7).

    cd <project with profile: cpu, data/raw, reports/validate/manifest.csv, reports/split/splits.csv>
    python <repo>/benchmarks/bench_tune_cpu.py [--out benchmarks/results/tune_cpu_<date>] [--summarise-only]

Runs the commands of the ``tune`` and ``register`` stages of ``dvc.yaml`` as
they are (``tune.cpu`` settings of the project's ``params.yaml``: low-fidelity
trials until the budget, the best configuration retrained with ``train.cpu``
settings, then scored on the internal test patients and registered as a
``gliomics-segmenter`` version, ``register.promote`` deciding the alias), and
records when each began and ended in ``<out>/times.json``.

Reported: the search's wall seconds (low-fidelity phase and full-fidelity
retrain separately, from the trials table), trials complete/pruned/failed,
the best low-fidelity configuration, the retrained model's validation and
internal-test mean per-patient 3D Dice, the registered version and the MLflow
run ids. Writes ``<out>/summary.json`` (atomically) and prints it.

``--summarise-only`` rebuilds the summary from the outputs already there
(``reports/tune``, ``reports/register``, ``<out>/times.json``) without
running anything: the search is resumable, so a run that was interrupted is
finished by running this script again without it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from gliomics.io import write_json

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common.py beside this script, whatever the cwd
from _common import project_out_dir, run_logged  # noqa: E402

TUNE = ["gliomics", "tune", "--data", "data/raw", "--manifest", "reports/validate/manifest.csv",
        "--splits", "reports/split/splits.csv", "--reports", "reports/tune", "--out", "models/tuned"]
REGISTER = ["gliomics", "register", "--best", "reports/tune/best.json", "--data", "data/raw",
            "--splits", "reports/split/splits.csv", "--out", "reports/register"]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def phase_stats(trials: pd.DataFrame) -> dict:
    """Counts and summed trial seconds of one fidelity's rows of ``trials.csv``."""
    states = trials["state"].value_counts()
    return {"trials": int(len(trials)), "complete": int(states.get("COMPLETE", 0)),
            "pruned": int(states.get("PRUNED", 0)), "failed": int(states.get("FAIL", 0)),
            "trial_seconds": round(float(trials["duration_s"].sum()), 1)}


def summarise(reports: Path, register_dir: Path, times: dict) -> dict:
    trials = pd.read_csv(reports / "trials.csv")
    best = json.loads((reports / "best.json").read_text())
    low = trials[trials["fidelity"] == "low"]
    finished = low[low["state"].isin(["COMPLETE", "PRUNED"])]
    best_low = finished.loc[finished["value"].idxmax()]
    param_columns = [c for c in trials.columns if c.startswith("param_")]
    summary = {
        "times": times,
        "low": {**phase_stats(low), "best_val_dice_3d": round(float(best_low["value"]), 4),
                "best_trial": int(best_low["number"]),
                "best_params": {c[len("param_"):]: best_low[c] for c in param_columns if pd.notna(best_low[c])}},
        "full": phase_stats(trials[trials["fidelity"] == "full"]),
        "best": {k: best.get(k) for k in ("fidelity", "params", "val_dice_3d", "promoted_from",
                                           "study_name", "parent_run_id", "model_uri", "seconds")},
        "table": trials.to_dict(orient="records"),
    }
    if "tuned" in times and "start" in times:
        summary["tune_wall_seconds"] = (datetime.fromisoformat(times["tuned"])
                                        - datetime.fromisoformat(times["start"])).total_seconds()
    if (register_dir / "registered.json").exists():
        summary["register"] = json.loads((register_dir / "registered.json").read_text())
        if "end" in times and "tuned" in times:
            summary["register"]["wall_seconds"] = (datetime.fromisoformat(times["end"])
                                                   - datetime.fromisoformat(times["tuned"])).total_seconds()
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    parser.add_argument("--out", default=f"benchmarks/results/tune_cpu_{date}")
    parser.add_argument("--summarise-only", action="store_true")
    args = parser.parse_args()
    out = project_out_dir("bench_tune_cpu", args.out)
    if out is None:
        return
    times_file = out / "times.json"
    if args.summarise_only:
        times = json.loads(times_file.read_text()) if times_file.exists() else {}
    else:
        times = {"start": now()}
        write_json(times_file, times)
        run_logged(TUNE, out / "tune.log")
        times["tuned"] = now()
        write_json(times_file, times)
        run_logged(REGISTER, out / "register.log")
        times["end"] = now()
        write_json(times_file, times)
    summary = summarise(Path("reports/tune"), Path("reports/register"), times)
    write_json(out / "summary.json", summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "table"}, indent=2, default=str))


if __name__ == "__main__":
    main()
