"""``gliomics summary``: what the pipeline produced, in a few lines."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gliomics.tracking import tracking_uri


def print_summary(reports: Path) -> None:
    """Print the summaries of the stages that have run, then where to look next."""
    console = Console()
    table = Table(title="gliomics pipeline", show_lines=False)
    table.add_column("stage")
    table.add_column("result")
    for stage, (relative, describe) in _DESCRIBERS.items():
        path = reports / relative
        if path.exists():
            table.add_row(stage, describe(json.loads(path.read_text())))
        else:
            table.add_row(stage, "[dim]not run[/dim]")
    console.print(table)
    console.print(f"MLflow store: {tracking_uri()}")
    console.print("Open the MLflow UI:  [bold]gliomics ui[/bold]   (then browse http://127.0.0.1:5000)")
    docs = reports / "validate" / "data_docs" / "index.html"
    if docs.exists():
        console.print(f"Data validation report: {docs}")


def _validate(s: dict) -> str:
    state = "passed" if s.get("success") else f"FAILED ({s.get('n_problems')} problems)"
    return f"{s['n_patients']} patients, {s['n_slices']} slices, {s['n_tumour_slices']} with tumour: {state}"


def _split(s: dict) -> str:
    parts = ", ".join(f"{k} {v['patients']}" for k, v in sorted(s["parts"].items()))
    return f"{s['n_patients']} patients by patient: {parts}"


def _features(s: dict) -> str:
    missing = f"; no features for {', '.join(s['not_ok'])}" if s.get("not_ok") else ""
    return f"{s['n_ok']} of {s['n_patients']} patients with features ({s['masks']} masks){missing}"


def _associate(s: dict) -> str:
    return (f"{s['n_tests']} tests: {s['n_significant_bonferroni']} significant after Bonferroni, "
            f"{s['n_significant_fdr']} after FDR; {s['n_auc_top']} feature-cluster pairs with high AUC")


def _train(s: dict) -> str:
    return (f"{s['epochs_run']} epochs in {s['seconds']:.0f} s ({s['precision']}); best validation per-patient "
            f"3D Dice {s['best_val_dice_3d']:.3f} ({s['n_train_patients']} training, {s['n_val_patients']} "
            "validation patients)")


def _evaluate(s: dict) -> str:
    return (f"internal test: {s['n_patients']} patients, per-patient 3D Dice mean {s['mean_dice_3d']:.3f}, "
            f"median {s['median_dice_3d']:.3f}")


#: stage → (its summary under reports/, how to say it in one line)
_DESCRIBERS = {
    "validate": ("validate/summary.json", _validate),
    "split": ("split/summary.json", _split),
    "features": ("features/summary_truth.json", _features),
    "associate": ("associations/truth/summary.json", _associate),
    "train": ("train/metrics.json", _train),
    "evaluate": ("evaluate/summary.json", _evaluate),
}
