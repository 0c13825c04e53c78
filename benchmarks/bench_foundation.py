"""Foundation timings: fresh setup, demo `dvc repro`, no-op repro, validate on real data.

    python benchmarks/bench_foundation.py [--skip-setup] [--real DIR]

Works in a fresh `git clone` of this repository (what a new user gets), so
uncommitted changes are not measured. Prints a table and writes
benchmarks/results/foundation.json. Targets (issue 3): demo `dvc repro`
<= 180 s after setup, no-op <= 5 s, validate 88 real patients <= 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
RESTORE = PROJECT.parent / "shared" / "data" / "restore_lgg.py"


def timed(command: list[str], cwd: Path, env: dict | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    print(f"{seconds:8.1f} s  {' '.join(command)}", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-setup", action="store_true", help="reuse this checkout's .venv (symlinked)")
    parser.add_argument("--real", type=Path, help="a restored real cohort (default: restore into a temp dir)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gliomics-bench-"))
    clone = work / "gliomics"
    subprocess.run(["git", "clone", "-q", str(PROJECT), str(clone)], check=True)
    results: dict = {"date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                     "python": platform.python_version()}
    if args.skip_setup:
        (clone / ".venv").symlink_to(PROJECT / ".venv")
        subprocess.run(["touch", str(PROJECT / ".venv" / ".installed")], check=True)
    else:
        results["fresh_setup_s"] = timed(["make", "setup"], clone)
    env = dict(os.environ, PATH=f"{clone / '.venv' / 'bin'}:{os.environ['PATH']}")
    env.pop("MLFLOW_TRACKING_URI", None)
    results["demo_synth_s"] = timed(["gliomics", "synth", "--out", "data/raw"], clone, env)
    results["demo_dvc_repro_s"] = timed(["dvc", "repro"], clone, env)
    results["demo_make_demo_s"] = results["demo_synth_s"] + results["demo_dvc_repro_s"]
    results["noop_dvc_repro_s"] = timed(["dvc", "repro"], clone, env)

    real = args.real
    if real is None and RESTORE.exists():
        real = work / "real"
        results["restore_real_s"] = timed([sys.executable, str(RESTORE), str(real)], work)
    if real is not None:
        results["validate_real_88_s"] = timed(
            ["gliomics", "validate", "--data", str(real), "--out", str(work / "validate-real")], clone, env
        )
        summary = json.loads((work / "validate-real" / "summary.json").read_text())
        results["validate_real_patients"] = summary["n_patients"]
        results["validate_real_slices"] = summary["n_slices"]

    out = HERE / "results" / "foundation.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
