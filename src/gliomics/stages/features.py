"""``gliomics features``: one row of radiomic features per patient."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import mlflow
import pandas as pd

from gliomics import io
from gliomics.config import FeaturesParams
from gliomics.data.kaggle import CLINICAL_FILE, read_clinical, resolve_cohort_dir, slices_by_folder
from gliomics.errors import GliomicsError, ValidationFailed
from gliomics.features import ALL_COLUMNS, FEATURE_COLUMNS
from gliomics.features.cohort import cohort_rows
from gliomics.features.patient import feature_settings
from gliomics.progress import progress
from gliomics.report.features_plots import feature_histograms
from gliomics.tracking import stage_run
from gliomics.validation.features import features_suite
from gliomics.validation.gx import run_checks

MASK_SOURCES = ("truth", "predicted")


def compute_table(root: Path, params: FeaturesParams, progress_callback=None, *, workers: int | None = None):
    """The features table of every patient folder under ``root`` (one process per core)."""
    rows = cohort_rows(slices_by_folder(root), feature_settings(params), progress_callback,
                       workers=workers or os.cpu_count() or 1)
    table = pd.DataFrame(rows, columns=["patient", "folder", *ALL_COLUMNS])
    clinical_path = root / CLINICAL_FILE
    if clinical_path.exists():
        clinical = read_clinical(clinical_path).set_index("Patient")
        table.insert(2, "histological_type", table["patient"].map(clinical["histological_type"]).astype("Int64"))
    else:
        table.insert(2, "histological_type", pd.array([pd.NA] * len(table), dtype="Int64"))
    return table


def run_features(data_dir: str | Path, masks: str, out: str | Path, params: FeaturesParams, *,
                 log_mlflow: bool = True, profile: str | None = None) -> dict:
    """Compute, validate and write the features table; log it to MLflow.

    ``masks`` names the source of the masks in ``data_dir``: ``truth`` (the
    cohort's own) or ``predicted`` (a ``gliomics segment`` output folder in
    the same layout). Patients whose mask is empty or too small get NaN
    features, a ``status`` saying why, and a warning.
    """
    if masks not in MASK_SOURCES:
        raise GliomicsError(f"--masks must be one of {', '.join(MASK_SOURCES)}, got {masks!r}")
    started = time.perf_counter()
    root = resolve_cohort_dir(data_dir)
    out = Path(out)
    with progress("patients", 0) as update:
        table = compute_table(root, params, update)
    seconds = round(time.perf_counter() - started, 2)

    clinical_path = root / CLINICAL_FILE
    clinical_patients = set(read_clinical(clinical_path)["Patient"]) if clinical_path.exists() else None
    (outcome,) = run_checks([features_suite(table, FEATURE_COLUMNS, out, clinical_patients)])
    if not outcome.success:
        out.unlink(missing_ok=True)
        raise ValidationFailed(outcome.problems, f"{out}: features table failed validation "
                                                 f"({len(outcome.problems)} problem(s))")
    not_ok = table.loc[table["status"] != "ok", ["patient", "status"]]
    if len(not_ok):
        warnings.warn("features: no or partial features for " +
                      "; ".join(f"{p} ({s})" for p, s in not_ok.itertuples(index=False)), stacklevel=2)
    io.write_csv(out, table)
    summary = {
        "masks": masks,
        "n_patients": int(len(table)),
        "n_ok": int((table["status"] == "ok").sum()),
        "not_ok": dict(not_ok.itertuples(index=False)),
        "seconds": seconds,
    }
    io.write_json(out.with_name(f"summary_{masks}.json"), {k: v for k, v in summary.items() if k != "seconds"})
    if log_mlflow:
        _log(root, out, table, params, summary, profile)
    return summary


def _log(root, out: Path, table, params: FeaturesParams, summary: dict, profile) -> None:
    with stage_run("features", data_dir=root, params={"masks": summary["masks"], **vars(params)},
                   profile=profile):
        mlflow.log_metrics({"n_patients": summary["n_patients"], "n_ok": summary["n_ok"],
                            "seconds": summary["seconds"]})
        mlflow.log_artifact(str(out))
        figure = feature_histograms(table, FEATURE_COLUMNS)
        mlflow.log_figure(figure, f"figures/features_{summary['masks']}_histograms.png")
