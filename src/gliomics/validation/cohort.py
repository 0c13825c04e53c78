"""Validation of a cohort in the Kaggle layout (Great Expectations suites) and its slice manifest: the
``validate`` stage, and ``ingest`` before it replaces ``data/raw``."""

from __future__ import annotations

import time
from pathlib import Path

import mlflow
import pandas as pd

from gliomics import io, layout
from gliomics.data.kaggle import CLINICAL_FILE, patient_of, read_clinical_text, resolve_cohort_dir, scan_cohort
from gliomics.data.manifest import build_manifest
from gliomics.errors import GliomicsError, ValidationFailed
from gliomics.progress import progress
from gliomics.tracking import stage_run, summary_metrics
from gliomics.validation.gx import run_checks
from gliomics.validation.inputs import clinical_suite, folders_suite, manifest_suite

MANIFEST = "manifest.csv"
RESULTS = "gx_results.json"
SUMMARY = "summary.json"
DATA_DOCS = "data_docs"


def validate_cohort(data_dir: str | Path, out_dir: str | Path = layout.VALIDATE, *, log_mlflow: bool = True,
                    profile: str | None = None) -> dict:
    """Validate the cohort at ``data_dir``; write manifest, GX results, Data Docs.

    On success writes ``manifest.csv``, ``gx_results.json``, ``summary.json``
    and ``data_docs/`` under ``out_dir`` and returns the summary. On failure
    writes the GX results, summary and Data Docs (so the problems can be
    read), removes any earlier ``manifest.csv`` (it no longer describes the
    data, and must not look valid), and raises :class:`ValidationFailed`
    with one line per problem.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    root = resolve_cohort_dir(data_dir)
    slices, warnings, folder_names = scan_cohort(root)
    if not slices:
        raise GliomicsError(f"{root}: no slices found (expected TCGA_*/<folder>_<n>.tif)")
    with progress("reading slices", len(slices)) as update:
        manifest = build_manifest(slices, root, progress=update)

    problems: list[str] = []
    suites = []
    csv_path = root / CLINICAL_FILE
    clinical_patients = None
    try:
        clinical = read_clinical_text(csv_path)
    except GliomicsError as exc:
        problems.append(str(exc))
    else:
        clinical_patients = set(clinical["Patient"]) if "Patient" in clinical.columns else None
        suites.append(clinical_suite(clinical, csv_path, {patient_of(f) for f in folder_names}))
    suites.append(folders_suite(_folders_table(folder_names, manifest), root, clinical_patients))
    suites.append(manifest_suite(manifest, root))

    with io.atomic_path(out_dir / DATA_DOCS) as docs_dir:
        outcomes = run_checks(suites, data_docs_dir=docs_dir)
    for outcome in outcomes:
        problems.extend(outcome.problems)
    problems = list(dict.fromkeys(problems))  # one line per problem, in order

    summary = {
        "data_dir": str(root),
        "success": not problems,
        "n_problems": len(problems),
        "n_patients": int(manifest["patient"].nunique()),
        "n_slices": int(len(manifest)),
        "n_tumour_slices": int((manifest["tumour_pixels"].fillna(0) > 0).sum()),
        "n_ignored_files": len(warnings),
    }
    seconds = round(time.perf_counter() - started, 2)
    io.write_json(out_dir / RESULTS, {o.name: o.result for o in outcomes})
    io.write_json(out_dir / SUMMARY, summary | {"problems": problems[:200]})
    if problems:
        (out_dir / MANIFEST).unlink(missing_ok=True)
    else:
        io.write_csv(out_dir / MANIFEST, manifest)

    if log_mlflow:
        _log(root, out_dir, summary | {"seconds": seconds}, profile)
    if problems:
        raise ValidationFailed(
            problems, f"{root}: validation failed with {len(problems)} problem(s); see {out_dir / DATA_DOCS}/index.html"
        )
    return summary | {"seconds": seconds, "warnings": warnings}


def _folders_table(folder_names: list[str], manifest):
    """One row per patient folder: slice count, highest number, missing numbers."""
    numbers = manifest.groupby("folder")["slice"].apply(set).to_dict()
    rows = []
    for folder in folder_names:
        found = numbers.get(folder, set())
        top = max(found, default=0)
        missing = sorted(set(range(1, top + 1)) - found)
        rows.append({
            "folder": folder,
            "patient": patient_of(folder),
            "n_slices": len(found),
            "max_slice": top,
            "missing_slices": _ranges(missing) if missing else None,
        })
    return pd.DataFrame(rows, columns=["folder", "patient", "n_slices", "max_slice", "missing_slices"])


def _ranges(numbers: list[int]) -> str:
    """[2, 3, 4, 7] → '2-4, 7'."""
    parts, start = [], numbers[0]
    for previous, current in zip(numbers, numbers[1:] + [None]):
        if current != previous + 1 if current is not None else True:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
            start = current
    return ", ".join(parts)


def _log(root: Path, out_dir: Path, summary: dict, profile: str | None) -> None:
    with stage_run("validate", data_dir=root, params={"data_dir": str(root)}, profile=profile):
        mlflow.log_metrics(summary_metrics(summary))
        mlflow.set_tag("validation", "passed" if summary["success"] else "failed")
        for name in (SUMMARY, RESULTS, MANIFEST):
            if (out_dir / name).exists():
                mlflow.log_artifact(str(out_dir / name))
