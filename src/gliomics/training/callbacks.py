"""The Keras callback that runs the end-of-epoch work of :func:`gliomics.training.fit.fit_model`.

At the end of every epoch, in this order: the task's validation (per-patient
3D Dice for a segmenter, :func:`gliomics.training.validation.validate_patients`; ROC
AUC and accuracy for a classifier; :mod:`gliomics.training.tasks`), the
history row, best weights (kept when the task's ``monitor`` column, e.g.
``val_dice_3d``, strictly improves; every epoch's when the loop keeps the last
epoch, a final fit whose monitored patients are trained on), the checkpoint
(:mod:`gliomics.training.checkpoint`), early stopping, then the user's
``on_epoch_end(epoch, row)``. The user hook therefore runs after the epoch is
safely on disk: an exception there (a simulated kill) loses nothing.

Importing this module imports TensorFlow (through ``gliomics`` first, so
that tf.keras is tf-keras 2).
"""

from __future__ import annotations

import math
import time

import tensorflow as tf

from gliomics.training.checkpoint import save_checkpoint
from gliomics.training.tasks import SEGMENTATION_COLUMNS

#: Keras metric name -> history column (segmentation; each task has its own ``metric_columns``).
METRIC_COLUMNS = SEGMENTATION_COLUMNS


def current_learning_rate(optimizer) -> float:
    lr = optimizer.learning_rate
    if isinstance(lr, tf.keras.optimizers.schedules.LearningRateSchedule):
        # The rate used by the last step of the epoch.
        return float(lr(tf.maximum(optimizer.iterations - 1, 0)))
    return float(tf.keras.backend.get_value(lr))


class EpochEnd(tf.keras.callbacks.Callback):
    """Validation, history, best weights, checkpoint and early stopping, once per epoch.

    ``loop`` holds the run's mutable state (a :class:`gliomics.training.fit._Loop`).
    """

    def __init__(self, loop):
        super().__init__()
        self.loop = loop
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        loop = self.loop
        number = epoch + 1  # completed epochs, 1-based
        train_seconds = time.perf_counter() - self._started
        started = time.perf_counter()
        val = loop.validate(self.model)
        val_seconds = time.perf_counter() - started
        row = {"epoch": number}
        for key, column in loop.task.metric_columns.items():
            row[column] = float((logs or {}).get(key, math.nan))
        row.update(val)
        row.update({
            "lr": current_learning_rate(self.model.optimizer),
            "seconds": train_seconds,
            "val_seconds": val_seconds,
        })
        loop.history.append(row)
        score = row[loop.monitor]
        improved = not math.isnan(score) and (math.isnan(loop.best_score) or score > loop.best_score)
        if loop.keep_last or loop.best_epoch == 0 or improved:
            loop.best_score, loop.best_epoch = score, number
            loop.best_weights = self.model.get_weights()
        stop = number - loop.best_epoch >= loop.patience
        loop.stopped_early = bool(stop and number < loop.epochs)
        save_checkpoint(loop.checkpoint_dir, self.model, self.model.optimizer, loop.best_weights, loop.state(number))
        if loop.stopped_early:
            self.model.stop_training = True
        if loop.on_epoch_end is not None:
            loop.on_epoch_end(number, dict(row))
