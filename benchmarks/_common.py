"""Helpers shared by the benchmark scripts.

The scripts run with the working folder in a project clone (``python <repo>/benchmarks/x.py``), so they import
this module by its path beside them, not as a package.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
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
    path = out / "summary.json"
    if path.exists():
        return path, json.loads(path.read_text())
    return path, {"date": time.strftime("%Y-%m-%d"), "machine": cpu_description(), **fresh}


CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_description() -> dict:
    from gliomics.training.fit import cpu_flags

    flags = cpu_flags()
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": model or platform.processor(), "flags": sorted(f for f in CPU_FLAGS if f in flags)}


def flair_only_copy(data: Path, patients: list[str], dest: Path) -> Path:
    """``dest/kaggle_3m`` holding ``patients`` of ``data`` with channels 0 and 2 replaced by channel 1 (FLAIR)."""
    import tifffile

    from gliomics.data.kaggle import resolve_cohort_dir, slices_by_folder

    root = resolve_cohort_dir(data)
    out = dest / "kaggle_3m"
    for folder, slices in slices_by_folder(root).items():
        if slices[0].patient not in patients:
            continue
        (out / folder).mkdir(parents=True, exist_ok=True)
        for s in slices:
            image = tifffile.imread(s.image)
            image[..., 0] = image[..., 1]
            image[..., 2] = image[..., 1]
            tifffile.imwrite(out / folder / s.image.name, image)
            shutil.copyfile(s.mask, out / folder / s.mask.name)
    return out


LICENCE = ("Trained on the TCGA-LGG \"LGG Segmentation Dataset\" (Buda, Saha, Mazurowski; CC BY-NC-SA 4.0): "
           "cite Buda et al., Computers in Biology and Medicine 109 (2019) 218-225, and Mazurowski et al., "
           "J Neurooncol 133 (2017) 27-35. The model is a derivative of that data and shares its licence: "
           "non-commercial use, attribution, share alike.")


def training_run(experiment: str, train_reports: Path, run_id: str | None = None) -> dict:
    """The MLflow run ``run_id`` (default: the last training here, experiment ``train`` or ``train_classifier``)
    and the metrics.json of its reports."""
    import mlflow

    from gliomics import tracking

    tracking.configure()
    if run_id:
        run = {"run_id": run_id, **{f"params.{k}": v for k, v in mlflow.get_run(run_id).data.params.items()}}
    else:
        runs = mlflow.search_runs(experiment_names=[experiment], order_by=["attributes.start_time DESC"],
                                  max_results=1)
        run = runs.iloc[0].to_dict() if len(runs) else {}
    metrics = json.loads((train_reports / "metrics.json").read_text())
    return {"run_id": run.get("run_id", "?"), "params": {k.removeprefix("params."): v for k, v in run.items()
                                                        if k.startswith("params.")}, "metrics": metrics}


def segmenter_as_slice_classifier(model: str, data: Path, splits: str, out: Path, validated: bool = True) -> dict:
    """Slice classification by the segmenter's largest tumour probability, scored on the test patients at 0.5
    and, with ``validated``, at the threshold chosen on the validation fold (0, best accuracy); a final fit,
    trained on fold 0, has no validation patients to choose it on."""
    import pandas as pd

    from gliomics.training.classification import best_accuracy_threshold

    common = ["gliomics", "evaluate", "--task", "classifier", "--from-segmenter", "--data", str(data), "--model",
              model, "--split", splits]
    thresholds = [("threshold_0.5", 0.5)]
    if validated:
        run_logged([*common, "--part", "fold0", "--out", str(out / "slices_val")], out / "slices_val.log")
        val = pd.read_csv(out / "slices_val" / "per_slice.csv")
        thresholds.append(("threshold_validation",
                           float(best_accuracy_threshold(val["label"].to_numpy(), val["prob"].to_numpy()))))
    result = {}
    for name, value in thresholds:
        run_logged([*common, "--part", "test", "--threshold", str(value), "--out", str(out / f"slices_{name}")],
                   out / f"slices_{name}.log")
        summary = json.loads((out / f"slices_{name}" / "summary.json").read_text())
        result[name] = {k: summary[k] for k in ("threshold", "accuracy", "roc_auc", "sensitivity", "specificity",
                                                 "n_slices")}
        print(f"segmenter as slice classifier, {name}: accuracy {summary['accuracy']:.3f}, ROC AUC "
              f"{summary['roc_auc']:.3f} at {value:.3f}", flush=True)
    return result


def shipping_parser(description: str, what: str, *, model: str, train_reports: str,
                    several: bool = False) -> argparse.ArgumentParser:
    """The options both shipping benchmarks take: the trained model, where its 16-bit copy goes, the cohort, the
    split, the output folder (``benchmarks/results/shipped_<what>_<date>``) and the training run's reports.
    With ``several``, ``--model`` and ``--train-reports`` take one value per member of an ensemble, and
    ``--train-runs`` names each member's MLflow run (default: the last training run)."""
    parser = argparse.ArgumentParser(description=description)
    many = {"nargs": "+"} if several else {}
    parser.add_argument("--model", default=[model] if several else model, help="the trained model folder(s)", **many)
    parser.add_argument("--ship", required=True, help="where the 16-bit copy goes (replaced)")
    parser.add_argument("--data", default="data/raw")
    parser.add_argument("--splits", default="reports/split/splits.csv")
    parser.add_argument("--out", default=f"benchmarks/results/shipped_{what}_{time.strftime('%Y-%m-%d')}")
    parser.add_argument("--train-reports", default=[train_reports] if several else train_reports,
                        help="the training run's reports (model card)", **many)
    if several:
        parser.add_argument("--train-runs", nargs="+", help="each member's MLflow training run id")
    return parser


def ship_copy(model, ship: Path, half: bool = True) -> dict:
    """Export the trained ``model`` (one folder, or several: packed into one model that averages them) to
    ``ship`` for shipping (float32 compute, 16-bit weights with ``half``); its storage numbers."""
    from gliomics.training.export import export_model, pack_ensemble

    several = not isinstance(model, (str, Path))
    storage = (pack_ensemble(model, ship, half=half) if several and len(model) > 1
               else export_model(model[0] if several else model, ship, half=half))
    print(f"shipped copy (float32 compute, {16 if half else 32}-bit weights): {storage}", flush=True)
    return storage
