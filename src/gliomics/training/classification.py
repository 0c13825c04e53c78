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

The decision threshold (:func:`choose_threshold`, setting
``classifier.<profile>.threshold``): training samples ``tumour_fraction``
(50 %) tumour slices, but a cohort has ~1/3, so the sigmoid's 0.5 is not the
accuracy-optimal cut for real class balance. With ``validation`` (the
default) the threshold is the one that maximises the accuracy over the
*validation* patients' slices (never the test patients), predicted by the
best model; a number fixes it (0.5: the old behaviour). It is stored as the
model's ``Preprocessing.threshold`` (so evaluate, the gate and analyze use
it) and recorded as a :class:`ThresholdChoice`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report, confusion_matrix, roc_auc_score

from gliomics.data.arrays import resize_mask
from gliomics.data.cohort_io import read_images, read_masks
from gliomics.errors import GliomicsError
from gliomics.models.gate import predict_slices
from gliomics.models.inference import check_image_shapes
from gliomics.progress import progress

THRESHOLD = 0.5
#: ``classifier.<profile>.threshold`` value that chooses the threshold on the validation slices.
VALIDATION = "validation"
#: Attribute of a Keras model that carries its :class:`ThresholdChoice` from training to saving.
_THRESHOLD_ATTRIBUTE = "_gliomics_threshold_choice"


def slice_labels(tumour_pixels, min_area_px: int = 1) -> np.ndarray:
    """0/1 labels: ``tumour_pixels >= min_area_px`` (``min_area_px`` >= 1)."""
    if int(min_area_px) < 1:
        raise GliomicsError(f"classifier.min_area_px must be >= 1, got {min_area_px}")
    return (np.asarray(tumour_pixels) >= int(min_area_px)).astype(np.int64)


def mask_areas(masks, size: int) -> np.ndarray:
    """Tumour pixels of each mask ``(n, H, W)`` after resizing to ``size`` as the array store does."""
    return np.array([int(resize_mask(np.asarray(m), int(size)).sum()) for m in masks], dtype=np.int64)


def _ratio(num: float, den: float):
    return float(num / den) if den else None


def slice_scores(labels, probs, threshold: float = THRESHOLD) -> dict:
    """Per-slice classification scores (see the module docstring); JSON-safe."""
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


# ------------------------------------------------------------------ decision threshold


@dataclass(frozen=True)
class ThresholdChoice:
    """The decision threshold of a trained classifier and the validation numbers behind it."""

    threshold: float
    method: str  # "validation" (chosen on the validation slices) or "fixed" (the setting's number)
    val_accuracy_at_default: float | None  # validation accuracy at 0.5
    val_accuracy: float | None  # validation accuracy at ``threshold``
    n_val_slices: int
    val_patients: tuple = ()

    def metrics(self) -> dict:
        """The MLflow metrics / metrics.json keys: ``threshold, val_accuracy_at_0.5, val_accuracy_at_threshold``."""
        return {"threshold": self.threshold, "val_accuracy_at_0.5": self.val_accuracy_at_default,
                "val_accuracy_at_threshold": self.val_accuracy}

    def to_dict(self) -> dict:
        """JSON-safe (model metadata ``threshold_selection``)."""
        return {**asdict(self), "val_patients": list(self.val_patients)}


def threshold_setting(value) -> float | None:
    """``classifier.threshold`` -> None (choose on validation) or the fixed threshold in [0, 1]."""
    if value == VALIDATION:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= float(value) <= 1.0:
        return float(value)
    raise GliomicsError(f"classifier.threshold must be {VALIDATION!r} or a number in [0, 1], got {value!r}")


def _accuracy(labels: np.ndarray, probs: np.ndarray, threshold: float) -> float | None:
    return float(np.mean((probs >= threshold).astype(np.int64) == labels)) if len(labels) else None


def best_accuracy_threshold(labels, probs) -> float:
    """The threshold ``t`` maximising the accuracy of ``prob >= t``; ties: the one closest to 0.5.

    Candidates: 0.5 and the midpoints between consecutive distinct
    probabilities (the finite thresholds of sklearn's
    ``roc_curve(drop_intermediate=False)``, each moved halfway down to the
    next lower score, so that no
    slice sits exactly on the threshold and a re-prediction with float
    noise does not flip it). Between two candidates the accuracy is constant,
    so these reach every achievable confusion matrix except "all positive" /
    "all negative". Without both classes, 0.5.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if len(np.unique(labels)) < 2:
        return THRESHOLD
    distinct = np.unique(probs)  # ascending
    candidates = np.append((distinct[:-1] + distinct[1:]) / 2, THRESHOLD)
    # Correct calls per candidate, from sorted scores (exact integer counts, so ties are ties).
    positives, negatives = np.sort(probs[labels == 1]), np.sort(probs[labels == 0])
    true_pos = len(positives) - np.searchsorted(positives, candidates, side="left")  # prob >= t
    true_neg = np.searchsorted(negatives, candidates, side="left")  # prob < t
    correct = true_pos + true_neg
    best = np.flatnonzero(correct == correct.max())
    # Closest to 0.5; an exact tie in distance goes to the higher threshold.
    order = np.lexsort((-candidates[best], np.abs(candidates[best] - THRESHOLD)))
    return float(candidates[best[order[0]]])


def choose_threshold(labels, probs, setting=VALIDATION, val_patients=()) -> ThresholdChoice:
    """The :class:`ThresholdChoice` for validation ``labels``/``probs`` and a ``classifier.threshold`` setting."""
    fixed = threshold_setting(setting)
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    threshold = best_accuracy_threshold(labels, probs) if fixed is None else fixed
    return ThresholdChoice(threshold=threshold, method=VALIDATION if fixed is None else "fixed",
                           val_accuracy_at_default=_accuracy(labels, probs, THRESHOLD),
                           val_accuracy=_accuracy(labels, probs, threshold), n_val_slices=int(len(labels)),
                           val_patients=tuple(str(p) for p in val_patients))


def attach_threshold(model, choice: ThresholdChoice):
    """Let ``choice`` travel with ``model`` (e.g. through a tuning trial) to
    :func:`gliomics.training.export.save_classifier`; returns ``model``."""
    object.__setattr__(model, _THRESHOLD_ATTRIBUTE, choice)  # a plain attribute: Keras does not track it
    return model


def attached_threshold(model) -> ThresholdChoice | None:
    """The :class:`ThresholdChoice` attached by :func:`attach_threshold`, if any."""
    return getattr(model, _THRESHOLD_ATTRIBUTE, None)


def classify_slices(root: Path, by_folder: dict, model, preprocessing, *, min_area_px: int = 1,
                    batch_size: int = 16):
    """Per-slice frame ``patient, slice, label, prob`` of the cohort folders ``by_folder``
    (from :func:`gliomics.data.cohort_io.cohort_patients` with ``need_masks=True``)."""
    frames = []
    with progress("classifying slices", len(by_folder)) as update:
        for i, (folder, folder_slices) in enumerate(by_folder.items(), 1):
            images = read_images(folder_slices, root)
            shape = check_image_shapes(images, str(root / folder))
            masks = read_masks(folder_slices, shape, root)
            probs = predict_slices(model, preprocessing, images, batch_size=batch_size)
            labels = slice_labels(mask_areas(masks, preprocessing.image_size), min_area_px)
            frames.append(pd.DataFrame({"patient": folder_slices[0].patient,
                                        "slice": [s.slice for s in folder_slices], "label": labels,
                                        "prob": probs}))
            update(i, len(by_folder))
    return pd.concat(frames, ignore_index=True)
