"""Timings of the whole `associate` stage (files in, validated files out).

    python benchmarks/bench_associate_stage.py [--patients 110] [--n-boot 1000] [--repeat 3]

Simulates a 110-patient cohort with the 14 thesis feature columns
(``gliomics.stats.simulate_cohort``, its ``signal`` renamed
``margin_fluctuation``), writes ``features_truth.csv`` and ``data.csv``, and
times ``run_associate`` with the default parameters (7 cluster families + 2
extra outcomes, 4 groups, exact tests, 1000 bootstrap replicates, BCa):

* ``stage_s``: the stage without plots and without MLflow (read the CSVs,
  statistics, Great Expectations validation, atomic writes), in a process
  where the libraries are already imported (the repeats after a first,
  untimed warm-up run);
* ``plots_s``: the figures alone (the stage's own ``seconds.plots``: 8
  histogram grids, ROC curves, heat map);
* ``mlflow_first_s`` / ``mlflow_s``: the extra time of logging the run and
  its artifacts (first run in the process, then warm);
* ``*_cpu_s``: the same in CPU time of this process (``time.process_time``),
  a better guide than wall time when other jobs share the cores;
* ``first_call_s``: the first run in this process, and ``imports_s`` the
  import of the stage's libraries (pandas, SciPy, statsmodels, Great
  Expectations, matplotlib) before it -- what a fresh ``gliomics associate``
  pays once on top of ``stage_s``.

Prints a table and writes benchmarks/results/associate_stage.json.
Targets (issue 5): stage <= 5 s excluding plots, plots <= 30 s, on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=110)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "associate_stage.json")
    args = parser.parse_args()

    t0 = time.perf_counter()
    import matplotlib.figure  # noqa: F401  (the plotting library, as the stage imports it)

    from gliomics.config import AssociateParams
    from gliomics.stages.associate import THESIS_FEATURES, run_associate
    from gliomics.stats import simulate_cohort
    from gliomics.validation import associations  # noqa: F401  (Great Expectations)

    imports_s = time.perf_counter() - t0

    params = AssociateParams(n_boot=args.n_boot, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
        features, clinical = simulate_cohort(args.patients, 13, seed=args.seed)
        names = ["margin_fluctuation"] + [c for c in THESIS_FEATURES if c != "margin_fluctuation"]
        features = features.rename(columns=dict(zip(["signal"] + [f"noise_{i:02d}" for i in range(13)], names)))
        features.to_csv(tmp / "features_truth.csv", index=False)
        clinical.to_csv(tmp / "data.csv", index=False)
        inputs = (tmp / "features_truth.csv", tmp / "data.csv")

        t = time.perf_counter()
        first = run_associate(*inputs, tmp / "first", params, log_mlflow=False, plots=False)
        first_call_s = time.perf_counter() - t

        stage, stage_cpu, parts = [], [], []
        for i in range(args.repeat):
            t, c = time.perf_counter(), time.process_time()
            summary = run_associate(*inputs, tmp / f"stage{i}", params, log_mlflow=False, plots=False)
            stage.append(time.perf_counter() - t)
            stage_cpu.append(time.process_time() - c)
            parts.append(summary["seconds"])

        plots, plots_cpu = [], []
        for i in range(args.repeat):
            c = time.process_time()
            summary = run_associate(*inputs, tmp / f"plots{i}", params, log_mlflow=False, plots=True)
            plots.append(summary["seconds"]["plots"])
            plots_cpu.append(time.process_time() - c - stage_cpu[i])

        mlflow = []
        for i in range(2):
            t = time.perf_counter()
            summary = run_associate(*inputs, tmp / f"mlflow{i}", params, log_mlflow=True, plots=False)
            mlflow.append(time.perf_counter() - t - summary["seconds"]["total"])

    def stats(values):
        return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
                "max": round(max(values), 3)}

    results = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or 'cpu'}",
        "load_average_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "patients": args.patients,
        "features": len(THESIS_FEATURES),
        "outcomes": len(params.families) + len(params.extra_outcomes),
        "groups": 4,
        "n_boot": args.n_boot,
        "ci_method": params.ci_method,
        "repeat": args.repeat,
        "n_tests_freeman_halton": first["n_tests"],
        "n_tests_all_kinds": sum(v["n_tests"] for v in first["by_test"].values()),
        "n_auc_pairs": first["n_auc_pairs"],
        "imports_s": round(imports_s, 3),
        "first_call_s": round(first_call_s, 3),
        "stage_s": stats(stage),
        "stage_cpu_s": stats(stage_cpu),
        "stage_parts_s": {k: stats([p[k] for p in parts]) for k in ("read", "statistics", "validation", "write")},
        "plots_s": stats(plots),
        "plots_cpu_s_approx": stats(plots_cpu),
        "mlflow_first_s": round(mlflow[0], 3),
        "mlflow_s": round(mlflow[1], 3),
        "targets": {"stage_s": 5.0, "plots_s": 30.0},
    }
    print(f"{'imports (once per process)':34s} {results['imports_s']:7.2f} s")
    print(f"{'first call (no plots)':34s} {results['first_call_s']:7.2f} s")
    print(f"{'stage, no plots, no MLflow':34s} {results['stage_s']['median']:7.2f} s  (median of {args.repeat}; "
          f"target 5 s; CPU time {results['stage_cpu_s']['median']:.2f} s)")
    for k, v in results["stage_parts_s"].items():
        print(f"{'  ' + k:34s} {v['median']:7.2f} s")
    print(f"{'plots':34s} {results['plots_s']['median']:7.2f} s  (target 30 s; CPU time about "
          f"{results['plots_cpu_s_approx']['median']:.2f} s)")
    print(f"{'MLflow logging (first, then warm)':34s} {results['mlflow_first_s']:7.2f} s, {results['mlflow_s']:.2f} s")
    print(f"load average (1 min) at the end: {results['load_average_1min']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
