"""Segmentation metrics: tf.keras training metrics and NumPy evaluation metrics.

Importing this module does not import TensorFlow (the Keras metrics import it
when first called) nor pandas (imported by ``per_patient_scores``).

Keras metrics (for ``model.compile(metrics=[...])``), per slice: each returns
one value per image of the batch, so Keras' running mean weights every slice
equally over an epoch. ``y_pred`` is cast to float32 (mixed precision safe).

- ``dice_coefficient`` / ``iou_score``: hard, ``y_pred > 0.5``;
- ``soft_dice_coefficient`` / ``soft_iou_score``: on the probabilities.

They use a tiny smooth term (1e-6), so an empty slice predicted empty scores
exactly 1 and any other slice matches the exact Dice/IoU to ~1e-6. Note that
this per-slice mean counts empty-and-correct slices as 1, unlike
``per_slice_dice`` below; it is a training monitor, not the reported number.

NumPy evaluation metrics (volumes shaped ``(n_slices, H, W)``, boolean or 0/1):

- ``dice_3d``/``iou_3d``: over the whole volume; two empty volumes score 1,
  one empty and one not 0.
- ``per_slice_dice``: Dice per slice, averaged only over the slices with
  tumour in the truth or in the prediction (slices empty in both are not
  counted, since counting them as 1 inflates the mean); NaN if there are none.
- ``hausdorff_95``: 95th percentile of the symmetric surface distance (the
  MedPy ``hd95`` definition: the distances from each surface voxel of one mask
  to the nearest surface voxel of the other, both directions pooled, then the
  95th percentile), in units of ``spacing`` (default 1 per axis: pixels).
  A surface voxel is a mask voxel with a face neighbour (6-connectivity in 3D)
  outside the mask or outside the array. NaN when either mask is empty.
- ``postprocess``: threshold, fill holes slice by slice, keep the largest 3D
  connected component (26-connectivity), as Buda et al. (2019) did.
- ``per_patient_scores`` → a DataFrame; ``summarise`` → a JSON-safe dict.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

KERAS_SMOOTH = 1e-6
THRESHOLD = 0.5

PER_PATIENT_COLUMNS = [
    "patient", "n_slices", "true_voxels", "pred_voxels", "dice_3d", "iou_3d", "hd95_px",
]
EXTRA_COLUMNS = ["n_scored_slices", "mean_slice_dice"]


# --------------------------------------------------------------------------
# Keras training metrics (TensorFlow imported lazily)
# --------------------------------------------------------------------------

def _keras_overlap(y_true, y_pred, hard: bool, iou: bool):
    import tensorflow as tf  # here: the NumPy metrics below serve evaluate and analyze without TensorFlow

    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    if hard:
        y_true = tf.cast(y_true > THRESHOLD, tf.float32)
        y_pred = tf.cast(y_pred > THRESHOLD, tf.float32)
    axes = tf.range(1, tf.rank(y_true))
    inter = tf.reduce_sum(y_true * y_pred, axis=axes)
    total = tf.reduce_sum(y_true, axis=axes) + tf.reduce_sum(y_pred, axis=axes)
    if iou:
        return (inter + KERAS_SMOOTH) / (total - inter + KERAS_SMOOTH)
    return (2.0 * inter + KERAS_SMOOTH) / (total + KERAS_SMOOTH)


def dice_coefficient(y_true, y_pred):
    """Hard per-slice Dice (prediction thresholded at 0.5), one value per image."""
    return _keras_overlap(y_true, y_pred, hard=True, iou=False)


def iou_score(y_true, y_pred):
    """Hard per-slice IoU (prediction thresholded at 0.5), one value per image."""
    return _keras_overlap(y_true, y_pred, hard=True, iou=True)


def soft_dice_coefficient(y_true, y_pred):
    """Soft per-slice Dice on the probabilities, one value per image."""
    return _keras_overlap(y_true, y_pred, hard=False, iou=False)


def soft_iou_score(y_true, y_pred):
    """Soft per-slice IoU on the probabilities, one value per image."""
    return _keras_overlap(y_true, y_pred, hard=False, iou=True)


def keras_metrics() -> list:
    """The training metrics, ready for ``model.compile(metrics=...)``."""
    return [dice_coefficient, iou_score, soft_dice_coefficient, soft_iou_score]


def keras_metrics_by_name() -> dict:
    """The training metrics by function name (for ``custom_objects``)."""
    return {fn.__name__: fn for fn in keras_metrics()}


# --------------------------------------------------------------------------
# NumPy evaluation metrics
# --------------------------------------------------------------------------

def _pair(truth, pred) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(truth).astype(bool)
    pred = np.asarray(pred).astype(bool)
    if truth.shape != pred.shape:
        raise ValueError(f"truth shape {truth.shape} != prediction shape {pred.shape}")
    return truth, pred


def dice_3d(truth, pred) -> float:
    """Dice ``2|T∩P| / (|T| + |P|)`` over the whole volume; 1.0 if both are empty."""
    truth, pred = _pair(truth, pred)
    total = int(truth.sum()) + int(pred.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(truth, pred).sum()) / total


def iou_3d(truth, pred) -> float:
    """IoU ``|T∩P| / |T∪P|`` over the whole volume; 1.0 if both are empty."""
    truth, pred = _pair(truth, pred)
    union = int(np.logical_or(truth, pred).sum())
    if union == 0:
        return 1.0
    return int(np.logical_and(truth, pred).sum()) / union


def slice_dice_scores(truth_volume, pred_volume) -> np.ndarray:
    """Dice of each slice (axis 0) with tumour in truth or prediction (others dropped)."""
    truth, pred = _pair(truth_volume, pred_volume)
    if truth.ndim < 2:
        raise ValueError(f"expected a volume (n_slices, ...), got shape {truth.shape}")
    flat_t = truth.reshape(truth.shape[0], -1)
    flat_p = pred.reshape(pred.shape[0], -1)
    sums = flat_t.sum(axis=1) + flat_p.sum(axis=1)
    keep = sums > 0
    inter = np.logical_and(flat_t, flat_p).sum(axis=1)
    return 2.0 * inter[keep] / sums[keep]


def per_slice_dice(truth_volume, pred_volume) -> float:
    """Mean slice Dice over slices with tumour in truth or prediction; NaN if none."""
    scores = slice_dice_scores(truth_volume, pred_volume)
    return float(scores.mean()) if scores.size else math.nan


def _surface(mask: np.ndarray) -> np.ndarray:
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    eroded = ndimage.binary_erosion(mask, structure=structure, border_value=0)
    return mask & ~eroded


def _spacing(spacing, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) == ndim:
        return spacing
    if len(spacing) > ndim:  # e.g. the default (1, 1, 1) on a 2D mask
        return spacing[-ndim:]
    raise ValueError(f"spacing {spacing} has fewer entries than the mask has axes ({ndim})")


def surface_distances(truth, pred, spacing: Sequence[float] | None = (1, 1, 1)) -> np.ndarray:
    """Distances from each surface voxel of each mask to the other's surface, pooled."""
    truth, pred = _pair(truth, pred)
    sampling = _spacing(spacing, truth.ndim)
    s_t, s_p = _surface(truth), _surface(pred)
    d_to_p = ndimage.distance_transform_edt(~s_p, sampling=sampling)
    d_to_t = ndimage.distance_transform_edt(~s_t, sampling=sampling)
    return np.concatenate([d_to_p[s_t], d_to_t[s_p]])


def hausdorff_95(truth, pred, spacing: Sequence[float] | None = (1, 1, 1)) -> float:
    """95th percentile symmetric surface distance (units of ``spacing``); NaN if a mask is empty."""
    truth, pred = _pair(truth, pred)
    if not truth.any() or not pred.any():
        return math.nan
    return float(np.percentile(surface_distances(truth, pred, spacing), 95))


def per_patient_scores(truth_by_patient: Mapping[str, np.ndarray],
                       pred_by_patient: Mapping[str, np.ndarray],
                       spacing: Sequence[float] | None = (1, 1, 1)):
    """One row per patient (sorted by id): the PER_PATIENT_COLUMNS, then EXTRA_COLUMNS.

    Volumes are ``(n_slices, H, W)`` boolean/0-1 masks (threshold probabilities
    with ``postprocess`` first). ``n_scored_slices`` is the number of slices
    with tumour in truth or prediction and ``mean_slice_dice`` their mean
    Dice (NaN if none).
    """
    missing = sorted(set(truth_by_patient) ^ set(pred_by_patient))
    if missing:
        raise ValueError(f"patients not in both truth and prediction: {missing}")
    rows = []
    for patient in sorted(truth_by_patient):
        truth, pred = _pair(truth_by_patient[patient], pred_by_patient[patient])
        slice_scores = slice_dice_scores(truth, pred)
        rows.append({
            "patient": patient,
            "n_slices": int(truth.shape[0]),
            "true_voxels": int(truth.sum()),
            "pred_voxels": int(pred.sum()),
            "dice_3d": dice_3d(truth, pred),
            "iou_3d": iou_3d(truth, pred),
            "hd95_px": hausdorff_95(truth, pred, spacing),
            "n_scored_slices": int(slice_scores.size),
            "mean_slice_dice": float(slice_scores.mean()) if slice_scores.size else math.nan,
        })
    return pd.DataFrame(rows, columns=PER_PATIENT_COLUMNS + EXTRA_COLUMNS)


def _num(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def summarise(table) -> dict:
    """Cohort summary of a ``per_patient_scores`` table (JSON-safe: NaN becomes None).

    Keys: ``n_patients``, ``mean_dice_3d``, ``median_dice_3d``, ``mean_iou_3d``,
    ``median_hd95_px`` (over patients where it is defined) and, when the table
    has the slice columns, ``mean_slice_dice``: the mean over *all scored
    slices* of all patients (each patient weighted by its scored slices).
    """
    n = int(len(table))
    out: dict = {"n_patients": n}
    if n == 0:
        out.update(mean_dice_3d=None, median_dice_3d=None, mean_iou_3d=None,
                   median_hd95_px=None)
        return out
    dice = table["dice_3d"].to_numpy(dtype=float)
    out["mean_dice_3d"] = _num(np.mean(dice))
    out["median_dice_3d"] = _num(np.median(dice))
    out["mean_iou_3d"] = _num(np.mean(table["iou_3d"].to_numpy(dtype=float)))
    hd = table["hd95_px"].to_numpy(dtype=float)
    hd = hd[~np.isnan(hd)]
    out["median_hd95_px"] = _num(np.median(hd)) if hd.size else None
    if {"n_scored_slices", "mean_slice_dice"} <= set(table.columns):
        counts = table["n_scored_slices"].to_numpy(dtype=float)
        means = np.nan_to_num(table["mean_slice_dice"].to_numpy(dtype=float))
        total = counts.sum()
        out["mean_slice_dice"] = _num((counts * means).sum() / total) if total else None
    return out
