"""What the slice-classifier gate does to segmentation (issue 8).

    cd <project with data/raw and reports/split/splits.csv>
    python <repo>/benchmarks/bench_gate.py --segmenter URI --classifier URI
        [--part test] [--thresholds 0.5 0.2] [--out benchmarks/results/gate_<date>]

Runs ``gliomics evaluate`` on the split's ``--part`` patients once without a
gate and once per ``--thresholds`` value with ``--gate`` (each a subprocess,
logged to MLflow like a user's run; ``segment.gate_threshold`` is set through
a copy of params.yaml). Reports per run: mean/median per-patient 3D Dice, the
wall time of the command and the stage's own seconds, slices skipped; and
per patient the Dice change. Writes ``<out>/summary.json`` and prints it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import yaml

from gliomics.io import write_json

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common.py beside this script, whatever the cwd
from _common import project_out_dir, run_logged  # noqa: E402


def evaluate(segmenter: str, out: Path, part: str, params_file: Path, gate: str | None) -> dict:
    command = ["gliomics", "--params", str(params_file), "evaluate", "--model", segmenter, "--split",
               "reports/split/splits.csv", "--part", part, "--out", str(out)]
    if gate:
        command += ["--gate", gate]
    seconds = run_logged(command, out.with_suffix(".log"))
    summary = json.loads((out / "summary.json").read_text())
    summary["command_seconds"] = round(seconds, 1)
    return summary


def main() -> None:
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segmenter", required=True)
    parser.add_argument("--classifier", required=True)
    parser.add_argument("--part", default="test")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.5])
    parser.add_argument("--out", default=f"benchmarks/results/gate_{date}")
    args = parser.parse_args()
    out = project_out_dir("bench_gate", args.out)
    if out is None:
        return
    params = yaml.safe_load(Path("params.yaml").read_text())
    runs = {"no_gate": (None, None)} | {f"gate_{t:g}": (args.classifier, t) for t in args.thresholds}
    result = {"date": date, "segmenter": args.segmenter, "classifier": args.classifier, "part": args.part, "runs": {}}
    tables = {}
    for name, (gate, threshold) in runs.items():
        if threshold is not None:
            params.setdefault("segment", {})["gate_threshold"] = threshold
        params_file = out / f"params_{name}.yaml"
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        summary = evaluate(args.segmenter, out / name, args.part, params_file, gate)
        keep = ("n_patients", "n_slices", "mean_dice_3d", "median_dice_3d", "seconds", "command_seconds",
                "gate_threshold", "gate_slices", "gate_skipped_slices")
        result["runs"][name] = {k: summary.get(k) for k in keep}
        tables[name] = pd.read_csv(out / name / "per_patient.csv").set_index("patient")["dice_3d"]
        print(name, json.dumps(result["runs"][name]), flush=True)
    frame = pd.DataFrame(tables)
    for name in runs:
        if name != "no_gate":
            frame[f"delta_{name}"] = frame[name] - frame["no_gate"]
    result["per_patient"] = frame.round(4).reset_index().to_dict(orient="records")
    write_json(out / "summary.json", result)


if __name__ == "__main__":
    main()
