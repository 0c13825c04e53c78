"""nnU-Net's inference tricks, measured: what a cross-validation fold ensemble and flip TTA add, and cost.

Run in a project clone holding the real cohort and its split:

    python benchmarks/bench_fold_ensemble.py --params P --folds 0 1 2 [--model-0 DIR] [--out DIR]

For each fold k (``gliomics train --fold k --params P``: the same recipe and budget, validated on fold k and
trained on the other training folds; the internal test patients are never read) it trains one model, unless
``--model-k`` names one already trained (e.g. the budget benchmark's model of fold 0). Then
``gliomics evaluate`` on the split's internal test patients scores: each fold model alone, each with flip TTA,
the ensemble of all folds (probabilities averaged), and the ensemble with TTA; with the per-patient Dice, the
evaluation's seconds per patient and the validation Dice of each fold. Rows go to ``summary.json`` as they are
measured; an interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import project_out_dir, resumable_summary, run_logged  # noqa: E402

SPLITS = "reports/split/splits.csv"


def train_fold(params: str, fold: int, work: Path) -> dict:
    """Train fold ``fold`` into ``work`` (skipped when its model exists); its metrics."""
    model = work / "model"
    if not (model / "MLmodel").exists():
        run_logged(["gliomics", "--params", params, "train", "--fold", str(fold), "--out", str(model),
                    "--checkpoints", str(work / "checkpoints"), "--reports", str(work / "train")],
                   work / "train.log")
    metrics = json.loads((work / "train" / "metrics.json").read_text())
    return {"model": str(model), "best_val_dice_3d": metrics["best_val_dice_3d"],
            "total_steps": metrics["total_steps"], "seconds_per_image": metrics["seconds_per_image"]}


def evaluate(params: str, models: list[str], out: Path, tta: bool) -> dict:
    """Internal-test scores of ``models`` (one, or an ensemble) with or without TTA."""
    out.parent.mkdir(parents=True, exist_ok=True)
    seconds = run_logged(["gliomics", "--params", params, "evaluate", "--model", *models, "--split", SPLITS,
                          "--part", "test", "--out", str(out), "--no-mlflow", "--tta" if tta else "--no-tta"],
                         out.parent / f"{out.name}.log")
    summary = json.loads((out / "summary.json").read_text())
    import pandas as pd

    table = pd.read_csv(out / "per_patient.csv")
    return {"mean_dice_3d": summary["mean_dice_3d"], "median_dice_3d": summary["median_dice_3d"],
            "min_dice_3d": float(table["dice_3d"].min()), "n_below_0_5": int((table["dice_3d"] < 0.5).sum()),
            "by_sequences": summary.get("by_sequences"), "wall_seconds": round(seconds, 1),
            "seconds_per_patient": round(seconds / max(len(table), 1), 2),
            "per_patient": dict(zip(table["patient"], table["dice_3d"].round(4)))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, help="params file whose profile block is the recipe")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2])
    for k in range(10):
        parser.add_argument(f"--model-{k}", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=f"benchmarks/results/fold_ensemble_{time.strftime('%Y-%m-%d')}")
    args = parser.parse_args()
    out = project_out_dir("bench_fold_ensemble", args.out)
    if out is None:
        return 0
    from gliomics.io import write_json

    summary_path, summary = resumable_summary(out, {"params": args.params, "folds": {}, "evaluations": {}})

    def save() -> None:
        write_json(summary_path, summary)

    models = []
    for fold in args.folds:
        given = getattr(args, f"model_{fold}")
        work = out / f"fold{fold}"
        work.mkdir(parents=True, exist_ok=True)
        if str(fold) not in summary["folds"]:
            summary["folds"][str(fold)] = ({"model": given, "given": True} if given
                                           else train_fold(args.params, fold, work))
            save()
        models.append(summary["folds"][str(fold)]["model"])
        print(f"fold {fold}: {summary['folds'][str(fold)]}", flush=True)

    plans = {f"fold{f}": [m] for f, m in zip(args.folds, models)}
    plans[f"ensemble_{len(models)}"] = models
    for name, members in plans.items():
        for tta in (False, True):
            key = f"{name}{'_tta' if tta else ''}"
            if key in summary["evaluations"]:
                continue
            summary["evaluations"][key] = {"members": members, "tta": tta,
                                           **evaluate(args.params, members, out / "evaluate" / key, tta)}
            save()
            row = summary["evaluations"][key]
            print(f"{key}: mean {row['mean_dice_3d']:.3f} median {row['median_dice_3d']:.3f} "
                  f"min {row['min_dice_3d']:.3f}, {row['seconds_per_patient']} s/patient", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
