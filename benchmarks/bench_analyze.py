"""`gliomics analyze` on one real patient: the whole command's wall time, and the stage's own steps.

    python benchmarks/bench_analyze.py [--input DIR] [--model DIR] [--reference CSV]
        [--associations DIR] [--clinical CSV] [--splits CSV] [--repeat 3] [--params YAML] [--pythonpath SRC] [--label NAME]

Runs the command as a user does (a fresh process each time: interpreter
start, imports, model load, inference, features, report), ``--repeat``
times, and records each run's wall time and CPU time (user, system) and
peak memory of the child process. Then one more fresh process calls
``run_analyze`` directly and records the stage's own step timings and the
import time before it. ``--pythonpath`` puts another source tree first (to
time an older version back to back with this one under the same load).
Prints and saves ``benchmarks/results/analyze_<date>[_<label>].json``.
Target (issue 9): under 30 s wall per patient on 2 cores with the ``cpu``
champion. Skips (exit 0) when the patient folder or model is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULTS = {
    "input": "/tmp/lgg88/kaggle_3m/TCGA_CS_4941_19960909",
    "model": "/tmp/cpurun/models/segmenter",
    "reference": "/tmp/cpurun/reports/features/features_truth.csv",
    "associations": "/tmp/cpurun/reports/associations/truth",
    "clinical": "/tmp/cpurun/data/raw/data.csv",
    "splits": "/tmp/cpurun/reports/split/splits.csv",
}
#: Run in a fresh interpreter: import time, then the stage's own step timings.
STAGE_SCRIPT = """
import json, sys, time
started = time.perf_counter()
from gliomics.config import load_params
from gliomics.stages.analyze import run_analyze
imported = time.perf_counter() - started
summary = run_analyze(*sys.argv[1:3], load_params(sys.argv[7]), model_uri=sys.argv[3], reference_csv=sys.argv[4],
                      associations=sys.argv[5], clinical_csv=sys.argv[6], splits_csv=sys.argv[8])
print(json.dumps({"import_s": round(imported, 2), "stage_s": summary["seconds"], "steps_s": summary["timings"],
                  "n_slices": summary["n_slices"], "n_tumour_slices": summary["n_tumour_slices"],
                  "tumour_voxels": summary["tumour_voxels"]}))
"""


def _timed_child(command: list[str], env: dict) -> dict:
    """Wall time, CPU (user, system) and peak memory of one child process (``os.wait4``)."""
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr, cwd=HERE.parent)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        text, errors = stdout.read().decode(), stderr.read().decode()
    if process.returncode != 0:
        sys.exit(f"failed ({process.returncode}): {' '.join(command)}\n{errors[-2000:]}")
    return {"wall_s": round(wall, 2), "user_s": round(usage.ru_utime, 2), "system_s": round(usage.ru_stime, 2),
            "max_rss_mb": round(usage.ru_maxrss / 1024), "stdout": text.strip().splitlines()[-1:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in DEFAULTS.items():
        parser.add_argument(f"--{name}", default=default, help="default: %(default)s")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: %(default)s)")
    parser.add_argument("--pythonpath", help="source tree to put first on PYTHONPATH (an older version)")
    parser.add_argument("--label", default="", help="suffix of the results file name")
    args = parser.parse_args()

    missing = [f"--{name} {getattr(args, name)}" for name in ("input", "model")
               if not Path(getattr(args, name)).exists()]
    if missing:
        print(f"bench_analyze: skipped, not found: {', '.join(missing)}")
        return
    env = dict(os.environ)
    if args.pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (args.pythonpath, env.get("PYTHONPATH")) if p)
    scratch = Path(tempfile.mkdtemp(prefix="bench_analyze_"))
    inputs = [args.model, args.reference, args.associations, args.clinical]
    command_runs = []
    load_before = os.getloadavg()[0]
    try:
        for i in range(args.repeat):
            out = scratch / f"out{i}"
            run = _timed_child([sys.executable, "-m", "gliomics.cli", "--params", args.params, "analyze", "--input",
                                args.input, "--out", str(out), "--model", args.model, "--reference", args.reference,
                                "--associations", args.associations, "--clinical", args.clinical,
                                "--splits", args.splits], env)
            command_runs.append(run)
            print(f"command run {i + 1}: {run['wall_s']:.1f} s wall, {run['user_s']:.1f} user + "
                  f"{run['system_s']:.1f} system CPU", flush=True)
        stage = _timed_child([sys.executable, "-c", STAGE_SCRIPT, args.input, str(scratch / "stage"), *inputs,
                              args.params, args.splits], env)
        stage_result = json.loads(stage["stdout"][0])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    walls = [r["wall_s"] for r in command_runs]
    results = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "source": args.pythonpath or "installed gliomics",
        "inputs": {name: getattr(args, name) for name in DEFAULTS},
        "command": {"runs": command_runs, "wall_s_median": statistics.median(walls), "wall_s_min": min(walls)},
        "stage_in_fresh_process": {**stage_result, "process_wall_s": stage["wall_s"],
                                   "process_cpu_s": round(stage["user_s"] + stage["system_s"], 2)},
        "target_s": 30,
    }
    print(json.dumps(results, indent=2))
    name = f"analyze_{results['date']}" + (f"_{args.label}" if args.label else "") + ".json"
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / name).write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved benchmarks/results/{name}")


if __name__ == "__main__":
    main()
