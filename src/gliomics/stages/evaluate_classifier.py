"""``gliomics evaluate --task classifier``: per-slice scores of a slice classifier on a labelled cohort.

``data_dir`` is any folder in the Kaggle ``kaggle_3m`` layout; every slice
needs its mask (the truth). The model is any slice classifier URI
(:func:`gliomics.models.gate.load_classifier`). Labels:
``tumour pixels >= min_area_px`` in the true mask resized to the model's
input size, exactly as training labelled the array store's slices
(:mod:`gliomics.training.classification`).

Outputs (each written atomically) under ``out_dir``:

* ``per_slice.csv``: ``patient, slice, label, prob`` (one row per slice,
  patients in folder order, slices in slice order);
* ``per_patient.csv``: ``patient, n_slices, n_tumour_slices, label, max_prob,
  pred, slice_accuracy`` (a patient is positive when any slice is);
* ``summary.json``: ``n_slices, accuracy, roc_auc, f1, sensitivity,
  specificity`` plus ``precision, n_tumour_slices, threshold,
  confusion_matrix`` ([[tn, fp], [fn, tp]]), ``classification_report``
  (sklearn's, as a dict), ``patient`` (per-patient numbers, see
  :func:`gliomics.training.classification.patient_scores`), ``n_patients,
  min_area_px, model_uri, data_dir, seconds``;
* ``confusion_matrix.png`` and ``roc.png`` (sklearn displays);
* ``roc.csv``: ``fpr, tpr, threshold``, the ROC curve's points (sklearn's
  ``roc_curve``) for ``dvc plots show`` / ``dvc plots diff``; empty when the
  cohort holds one class only.
"""

from __future__ import annotations

import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import classification_report, roc_curve

from gliomics import io
from gliomics.data.cohort_io import cohort_patients
from gliomics.models.gate import load_classifier
from gliomics.report.classifier_plots import plot_confusion_matrix, plot_roc
from gliomics.tracking import stage_run, summary_metrics
from gliomics.training.classification import classify_slices, patient_scores, slice_labels, slice_scores

PER_SLICE = "per_slice.csv"
PER_PATIENT = "per_patient.csv"
SUMMARY = "summary.json"
CONFUSION_PNG = "confusion_matrix.png"
ROC_PNG = "roc.png"
ROC_CSV = "roc.csv"


def roc_points(labels, probs):
    """The ROC curve as a table ``fpr, tpr, threshold`` (sklearn ``roc_curve``); no rows for one class.

    The first threshold (sklearn's ``inf``, the "predict nothing" corner) is written as 1.0 so that
    the CSV stays plain numbers.
    """
    labels = np.asarray(labels, dtype=int)
    if len(np.unique(labels)) < 2:
        return pd.DataFrame(columns=["fpr", "tpr", "threshold"])
    fpr, tpr, thresholds = roc_curve(labels, np.asarray(probs, dtype=float))
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.minimum(thresholds, 1.0)})


def run_evaluate_classifier(data_dir: str | Path, model_uri: str, out_dir: str | Path, *, patients=None,
                            min_area_px: int = 1, threshold: float | None = None, log_mlflow: bool = True,
                            profile: str | None = None, batch_size: int = 16, from_segmenter: bool = False) -> dict:
    """Score the slice classifier ``model_uri`` on the labelled cohort at ``data_dir``; write OUT files.

    ``from_segmenter``: ``model_uri`` is a segmenter, and a slice's score its largest tumour probability
    (:class:`gliomics.models.gate.SegmenterSliceScore`); ``threshold`` defaults to the model's own (0.5).
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    slice_labels([], min_area_px)  # checks min_area_px before any work
    root, by_folder = cohort_patients(data_dir, need_masks=True, patients=patients)
    model, preprocessing, _ = load_classifier(model_uri, from_segmenter=from_segmenter)
    threshold = float(preprocessing.threshold if threshold is None else threshold)

    per_slice = classify_slices(root, by_folder, model, preprocessing, min_area_px=min_area_px,
                                batch_size=batch_size)

    labels, probs = per_slice["label"].to_numpy(), per_slice["prob"].to_numpy()
    summary = slice_scores(labels, probs, threshold)
    per_patient, patient_summary = patient_scores(per_slice, threshold)
    summary.update(
        classification_report=classification_report(labels, (probs >= threshold).astype(int), labels=[0, 1],
                                                     target_names=["no tumour", "tumour"], output_dict=True,
                                                     zero_division=0),
        patient=patient_summary,
        n_patients=int(len(per_patient)),
        min_area_px=int(min_area_px),
        model_uri=str(model_uri) if isinstance(model_uri, (str, Path)) else " + ".join(map(str, model_uri)),
        slice_score="segmenter max probability" if from_segmenter else "classifier probability",
        data_dir=str(root),
        seconds=round(time.perf_counter() - started, 2),
    )
    io.write_csv(out_dir / PER_SLICE, per_slice[["patient", "slice", "label", "prob"]])
    io.write_csv(out_dir / PER_PATIENT, per_patient)
    io.write_json(out_dir / SUMMARY, summary)
    plot_confusion_matrix(labels, probs, threshold, out_dir / CONFUSION_PNG)
    plot_roc(labels, probs, out_dir / ROC_PNG)
    io.write_csv(out_dir / ROC_CSV, roc_points(labels, probs))
    if log_mlflow:
        _log(root, out_dir, summary, profile)
    return summary


def _log(root: Path, out_dir: Path, summary: dict, profile: str | None) -> None:
    params = {"model_uri": summary["model_uri"], "threshold": summary["threshold"],
              "min_area_px": summary["min_area_px"]}
    with stage_run("evaluate_classifier", data_dir=root, params=params, profile=profile):
        mlflow.log_metrics({**summary_metrics(summary), **summary_metrics(summary["patient"], "patient_")})
        for name in (PER_SLICE, PER_PATIENT, SUMMARY, CONFUSION_PNG, ROC_PNG):
            mlflow.log_artifact(str(out_dir / name))
