"""A segmenter's validation on whole patients: probability volumes, post-processing, per-patient 3D Dice.

What :class:`gliomics.training.tasks.SegmentationTask` reports after every epoch (``val_dice_3d``, the number
to compare with Buda et al.'s per-patient Dice) and what ``gliomics train`` scores its best model with.
"""

from __future__ import annotations

import math

import numpy as np

from gliomics.data.pipeline import eval_dataset, eval_index
from gliomics.models.postprocess import postprocess
from gliomics.training.metrics import dice_3d, per_slice_dice

#: Probability above which a pixel is tumour, during validation.
THRESHOLD = 0.5


def predict_patients(model, store, patients, batch_size: int = 8) -> dict:
    """Probability volumes ``{patient: (n_slices, S, S) float32}`` for every slice of ``patients``."""
    index = eval_index(store, patients)
    prob = model.predict(eval_dataset(store, patients, batch_size=batch_size).map(lambda x, y: x), verbose=0)
    prob = np.asarray(prob, dtype=np.float32)[..., 0]
    volumes = {}
    for patient, rows in index.groupby("patient", sort=False).indices.items():
        volumes[patient] = prob[np.sort(rows)]
    return volumes


def score_patients(store, prob_by_patient: dict, threshold: float = THRESHOLD) -> dict:
    """``{patient: (dice_3d, per_slice_dice, predicted mask)}`` after post-processing."""
    scores = {}
    for patient, prob in prob_by_patient.items():
        truth = np.asarray(store.masks[store.rows([patient])]) > 0
        pred = postprocess(prob, threshold=threshold, largest_component=True, fill_holes=True)
        scores[patient] = (dice_3d(truth, pred), per_slice_dice(truth, pred), pred)
    return scores


def validate_patients(model, store, patients, batch_size: int = 8) -> dict:
    """``val_dice_3d`` (mean per-patient 3D Dice) and ``val_slice_dice`` on ``patients``."""
    scores = score_patients(store, predict_patients(model, store, patients, batch_size))
    dice = [s[0] for s in scores.values()]
    slice_dice = [s[1] for s in scores.values() if not math.isnan(s[1])]
    return {
        "val_dice_3d": float(np.mean(dice)),
        "val_slice_dice": float(np.mean(slice_dice)) if slice_dice else math.nan,
    }
