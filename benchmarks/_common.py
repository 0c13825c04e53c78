"""Helpers shared by the benchmark scripts.

The scripts run with the working folder in a project clone (``python <repo>/benchmarks/x.py``), so they import
this module by its path beside them, not as a package.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def run_logged(command: list[str], log: Path) -> float:
    """Run ``command`` with its output (stdout and stderr) in ``log``; return its wall seconds.

    A failing command ends the benchmark with a message naming the command, its exit code and the log.
    """
    started = time.perf_counter()
    with open(log, "w") as handle:
        code = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if code != 0:
        sys.exit(f"{' '.join(command)} failed (exit {code}); see {log}")
    return seconds


def project_out_dir(script: str, out: str) -> Path | None:
    """The created output folder, or ``None`` (with a line saying why) when the working folder has no split.

    The benchmarks on real data run in a project after ``dvc repro split``; elsewhere they skip cleanly.
    """
    if not Path("reports/split/splits.csv").exists():
        print(f"{script}: no reports/split/splits.csv here (run in a project after `dvc repro split`); skipped")
        return None
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    return path


def resumable_summary(out: Path, fresh: dict) -> tuple[Path, dict]:
    """``(out/summary.json, its content)``: the summary an interrupted run left, else ``fresh`` with the date and
    this machine's CPU (a benchmark then skips what is already in it and saves after each measurement)."""
    import json

    from bench_shipped_segmenter import cpu_description

    path = out / "summary.json"
    if path.exists():
        return path, json.loads(path.read_text())
    return path, {"date": time.strftime("%Y-%m-%d"), "machine": cpu_description(), **fresh}
