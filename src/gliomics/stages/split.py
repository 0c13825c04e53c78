"""``gliomics split``: patient-level test set and cross-validation folds."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd

from gliomics import io, layout
from gliomics.config import SplitParams
from gliomics.data.kaggle import CLINICAL_FILE, HISTOLOGY_NAMES, institution_of, read_clinical, resolve_cohort_dir
from gliomics.data.splits import patient_splits
from gliomics.errors import GliomicsError
from gliomics.tracking import stage_run

SPLITS = "splits.csv"
SUMMARY = "summary.json"


def split_cohort(data_dir: str | Path, manifest_path: str | Path, params: SplitParams,
                 out_dir: str | Path = layout.SPLIT, *, log_mlflow: bool = True, profile: str | None = None) -> dict:
    """Split the validated cohort's patients; write ``splits.csv`` and ``summary.json``."""
    manifest_path = Path(manifest_path)
    if not manifest_path.exists():
        raise GliomicsError(f"{manifest_path}: missing; run `gliomics validate` first (the split uses validated data only)")
    manifest = pd.read_csv(manifest_path)
    root = resolve_cohort_dir(data_dir)
    clinical = read_clinical(root / CLINICAL_FILE).set_index("Patient")
    patients = sorted(manifest["patient"].unique())
    unknown = [p for p in patients if p not in clinical.index]
    if unknown:
        raise GliomicsError(f"{manifest_path}: patients not in {root / CLINICAL_FILE}: {', '.join(unknown[:5])}; "
                            "re-run `gliomics validate`")
    histology = [clinical.at[p, "histological_type"] for p in patients]
    try:
        splits = patient_splits(
            patients,
            histology,
            [institution_of(p) for p in patients],
            test_fraction=params.test_fraction,
            n_folds=params.n_folds,
            seed=params.seed,
            use_institution=params.stratify_institution,
        )
    except ValueError as exc:
        raise GliomicsError(f"split: {exc}") from None
    splits["histological_type"] = splits["patient"].map(clinical["histological_type"]).astype("Int64")
    tumour_slices = manifest[manifest["tumour_pixels"] > 0].groupby("patient").size()
    splits["n_slices"] = splits["patient"].map(manifest.groupby("patient").size()).astype(int)
    splits["n_tumour_slices"] = splits["patient"].map(tumour_slices).fillna(0).astype(int)

    counts = splits.groupby("part").agg(patients=("patient", "size"), slices=("n_slices", "sum"),
                                        tumour_slices=("n_tumour_slices", "sum"))
    by_histology = pd.crosstab(splits["part"], splits["histological_type"].map(HISTOLOGY_NAMES).fillna("NA"))
    summary = {
        "n_patients": len(splits),
        "n_test_patients": int((splits["part"] == "test").sum()),
        "n_folds": params.n_folds,
        "seed": params.seed,
        "parts": counts.to_dict(orient="index"),
        "histology_by_part": by_histology.to_dict(orient="index"),
    }
    out_dir = Path(out_dir)
    io.write_csv(out_dir / SPLITS, splits)
    io.write_json(out_dir / SUMMARY, summary)
    if log_mlflow:
        with stage_run("split", data_dir=root, params=vars(params), profile=profile):
            mlflow.log_metrics({"n_patients": len(splits), "n_test_patients": summary["n_test_patients"]})
            mlflow.log_artifact(str(out_dir / SPLITS))
            mlflow.log_artifact(str(out_dir / SUMMARY))
    return summary


