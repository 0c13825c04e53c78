"""What differs between training a segmenter and a slice classifier.

:func:`gliomics.training.fit.fit_model` is one loop (seeded batches,
checkpoints and exact resume, early stopping, best-epoch restore); a task
object supplies the parts that depend on what is learned:

- ``targets(x, masks)``: the training target of a batch of the shared
  pipeline (:func:`gliomics.data.pipeline.train_dataset`, balanced by
  ``tumour_fraction``, augmented with albumentations), a TensorFlow function;
- ``loss(params)`` and ``metrics()`` for ``model.compile``, and
  ``metric_columns``: Keras log name -> history column;
- ``validate(model, store, patients, batch_size)``: the end-of-epoch
  validation numbers (a dict of history columns);
- ``monitor``: the validation column that selects the best epoch and drives
  early stopping (higher is better).

:data:`SEGMENTATION` validates with the per-patient 3D Dice
(``val_dice_3d``). :class:`ClassificationTask` labels each slice from its
(augmented) mask, ``tumour pixels >= min_area_px``
(:mod:`gliomics.training.classification`), and selects on the validation
ROC AUC (``val_roc_auc``): threshold-free, and not inflated by the majority
class the way accuracy is (most slices have no tumour). A perfect AUC that
no later epoch beats stops training after ``early_stopping_patience``
epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from gliomics.data.pipeline import eval_dataset, eval_index
from gliomics.errors import GliomicsError
from gliomics.training.classification import nan_if_none, slice_labels, slice_scores
from gliomics.training.losses import get_loss
from gliomics.training.metrics import keras_metrics
from gliomics.training.validation import validate_patients

#: Keras metric name -> history column, segmentation.
SEGMENTATION_COLUMNS = {
    "loss": "loss",
    "dice_coefficient": "slice_dice",
    "iou_score": "slice_iou",
    "soft_dice_coefficient": "soft_slice_dice",
    "soft_iou_score": "soft_slice_iou",
}
#: Keras metric name -> history column, classification.
CLASSIFICATION_COLUMNS = {"loss": "loss", "accuracy": "accuracy", "auc": "roc_auc"}
#: Classification losses (``ClassifierParams.loss``).
CLASSIFICATION_LOSSES = ("bce",)


@dataclass(frozen=True)
class SegmentationTask:
    """Per-pixel masks; validation: mean per-patient 3D Dice after post-processing."""

    name: str = "segmenter"
    monitor: str = "val_dice_3d"
    metric_columns = SEGMENTATION_COLUMNS

    def targets(self, x, masks):
        return x, masks

    def loss(self, params):
        return get_loss(params.loss)

    def metrics(self) -> list:
        return keras_metrics()

    def validate(self, model, store, patients, batch_size: int) -> dict:
        return validate_patients(model, store, patients, batch_size)


@dataclass(frozen=True)
class ClassificationTask:
    """One tumour probability per slice; validation: ROC AUC, accuracy, F1 over the slices."""

    min_area_px: int = 1
    name: str = "classifier"
    monitor: str = "val_roc_auc"
    metric_columns = CLASSIFICATION_COLUMNS

    def targets(self, x, masks):
        area = tf.reduce_sum(masks, axis=[1, 2, 3])
        return x, tf.cast(area >= float(self.min_area_px), tf.float32)[:, None]

    def loss(self, params):
        if params.loss not in CLASSIFICATION_LOSSES:
            raise GliomicsError(f"classifier.loss must be one of {', '.join(CLASSIFICATION_LOSSES)}, "
                                f"got {params.loss!r}")
        return tf.keras.losses.BinaryCrossentropy()

    def metrics(self) -> list:
        return [tf.keras.metrics.BinaryAccuracy(name="accuracy"), tf.keras.metrics.AUC(name="auc")]

    def predict(self, model, store, patients, batch_size: int):
        """``(labels, probabilities, eval_index frame)`` for every slice of ``patients``."""
        index = eval_index(store, patients)
        data = eval_dataset(store, patients, batch_size=batch_size).map(lambda x, y: x)
        probs = np.asarray(model.predict(data, verbose=0), dtype=np.float64).reshape(-1)
        return slice_labels(index["tumour_pixels"], self.min_area_px), probs, index

    def validate(self, model, store, patients, batch_size: int) -> dict:
        labels, probs, _ = self.predict(model, store, patients, batch_size)
        scores = slice_scores(labels, probs)
        eps = 1e-7
        clipped = np.clip(probs, eps, 1 - eps)
        val_loss = float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)))
        return {
            "val_roc_auc": nan_if_none(scores["roc_auc"]),
            "val_accuracy": nan_if_none(scores["accuracy"]),
            "val_f1": nan_if_none(scores["f1"]),
            "val_loss": val_loss if math.isfinite(val_loss) else math.nan,
        }


SEGMENTATION = SegmentationTask()
