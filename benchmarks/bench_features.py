"""Features stage speed on the real cohort: all 88 patients, all columns.

    python benchmarks/bench_features.py [--data DIR] [--repeat 3]

Restores the 88-patient working copy from ../shared when --data is not
given. Times `compute_table` (reading the tifs and computing every column,
one process per core) and the whole `run_features` stage without MLflow
(adds the Great Expectations validation and the CSV). Prints and saves
benchmarks/results/features.json. Target (issue 4): <= 10 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESTORE = HERE.parent.parent / "shared" / "data" / "restore_lgg.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = args.data
    if data is None:
        data = Path(tempfile.mkdtemp()) / "real"
        subprocess.run([sys.executable, str(RESTORE), str(data)], check=True)

    from gliomics.config import FeaturesParams
    from gliomics.data.kaggle import resolve_cohort_dir
    from gliomics.stages.features import compute_table, run_features

    root = resolve_cohort_dir(data)
    params = FeaturesParams()
    compute_s, stage_s, one_process_s = [], [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        table = compute_table(root, params)
        compute_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        compute_table(root, params, workers=1)
        one_process_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        run_features(root, "truth", Path(tempfile.mkdtemp()) / "features_truth.csv", params, log_mlflow=False)
        stage_s.append(time.perf_counter() - t)
    results = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average_1min": os.getloadavg()[0],
        "patients": int(len(table)),
        "columns": int(table.shape[1]),
        "compute_table_s": {"median": statistics.median(compute_s), "min": min(compute_s)},
        "compute_table_one_process_s": {"median": statistics.median(one_process_s), "min": min(one_process_s)},
        "run_features_no_mlflow_s": {"median": statistics.median(stage_s), "min": min(stage_s)},
        "target_s": 10,
    }
    out = HERE / "results" / "features.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
