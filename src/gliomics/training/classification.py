"""Slice classification: labels from masks and the evaluation metrics (NumPy / sklearn).

Labels: a slice is *tumour* (1) when its mask has at least ``min_area_px``
tumour pixels, else *no tumour* (0). The mask is the one the model sees: the
array store's mask (resized to the model's input size by area averaging and
thresholding, :func:`gliomics.data.arrays.resize_mask`), or, in evaluation,
the true mask resized the same way (:func:`mask_areas`). Training,
validation and evaluation therefore label every slice identically;
``min_area_px = 1`` means "any tumour pixel", larger values ignore specks.

Metrics (:func:`slice_scores`), per slice, with ``pred = prob >= threshold``:

- ``accuracy``, ``precision`` (positive predictive value), ``sensitivity``
  (recall of tumour), ``specificity`` (recall of no tumour), ``f1``, from
  sklearn's ``confusion_matrix``/``classification_report``;
- ``roc_auc``: sklearn's ``roc_auc_score`` on the probabilities
  (threshold-free); None when only one class is present;
- the confusion matrix ``[[tn, fp], [fn, tp]]``.

Per patient (:func:`patient_scores`): a patient is tumour-positive when any
of its slices is (truth: any slice labelled 1; prediction: any slice with
``prob >= threshold``; score: the highest slice probability, for the
patient-level ROC AUC), plus each patient's own slice accuracy.
"""

from __future__ import annotations

import math

import numpy as np

THRESHOLD = 0.5


def slice_labels(tumour_pixels, min_area_px: int = 1) -> np.ndarray:
    """0/1 labels: ``tumour_pixels >= min_area_px`` (``min_area_px`` >= 1)."""
    from gliomics.errors import GliomicsError

    if int(min_area_px) < 1:
        raise GliomicsError(f"classifier.min_area_px must be >= 1, got {min_area_px}")
    return (np.asarray(tumour_pixels) >= int(min_area_px)).astype(np.int64)


def mask_areas(masks, size: int) -> np.ndarray:
    """Tumour pixels of each mask ``(n, H, W)`` after resizing to ``size`` as the array store does."""
    from gliomics.data.arrays import resize_mask

    return np.array([int(resize_mask(np.asarray(m), int(size)).sum()) for m in masks], dtype=np.int64)


def _ratio(num: float, den: float):
    return float(num / den) if den else None


def slice_scores(labels, probs, threshold: float = THRESHOLD) -> dict:
    """Per-slice classification scores (see the module docstring); JSON-safe."""
    from sklearn.metrics import classification_report, confusion_matrix, roc_auc_score

    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    pred = (probs >= threshold).astype(np.int64)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(labels, pred, labels=[0, 1]).ravel())
    report = classification_report(labels, pred, labels=[0, 1], output_dict=True, zero_division=0)
    both = len(np.unique(labels)) == 2
    return {
        "n_slices": int(len(labels)),
        "n_tumour_slices": int(labels.sum()),
        "threshold": float(threshold),
        "accuracy": float((tp + tn) / len(labels)) if len(labels) else None,
        "roc_auc": float(roc_auc_score(labels, probs)) if both else None,
        "precision": _ratio(tp, tp + fp),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "f1": float(report["1"]["f1-score"]),
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


def patient_scores(frame, threshold: float = THRESHOLD):
    """``(per_patient DataFrame, summary dict)`` from a per-slice frame (``patient, label, prob``).

    Columns: ``patient, n_slices, n_tumour_slices, label`` (any slice
    positive), ``max_prob``, ``pred`` (``max_prob >= threshold``),
    ``slice_accuracy``.
    """
    import pandas as pd

    rows = []
    for patient, group in frame.groupby("patient", sort=False):
        labels = group["label"].to_numpy(np.int64)
        probs = group["prob"].to_numpy(np.float64)
        rows.append({
            "patient": patient,
            "n_slices": len(group),
            "n_tumour_slices": int(labels.sum()),
            "label": int(labels.max()),
            "max_prob": float(probs.max()),
            "pred": int(probs.max() >= threshold),
            "slice_accuracy": float(((probs >= threshold).astype(np.int64) == labels).mean()),
        })
    table = pd.DataFrame(rows, columns=["patient", "n_slices", "n_tumour_slices", "label", "max_prob", "pred",
                                        "slice_accuracy"])
    scores = slice_scores(table["label"], table["max_prob"], threshold) if len(table) else {}
    worst = table.nsmallest(min(5, len(table)), "slice_accuracy")
    summary = {
        "n_patients": int(len(table)),
        "n_tumour_patients": int(table["label"].sum()),
        "accuracy": scores.get("accuracy"),
        "sensitivity": scores.get("sensitivity"),
        "specificity": scores.get("specificity"),
        "roc_auc": scores.get("roc_auc"),
        "mean_slice_accuracy": float(table["slice_accuracy"].mean()) if len(table) else None,
        "min_slice_accuracy": float(table["slice_accuracy"].min()) if len(table) else None,
        "worst_patients": [{"patient": p, "slice_accuracy": float(a)}
                           for p, a in worst[["patient", "slice_accuracy"]].itertuples(index=False)],
    }
    return table, summary


def nan_if_none(value) -> float:
    return math.nan if value is None else float(value)
