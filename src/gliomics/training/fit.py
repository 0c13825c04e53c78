"""Train one segmenter (or slice classifier): seeded, checkpointed every epoch, resumable bit for bit.

:func:`fit_model` is the loop; what depends on the task (targets, loss,
metrics, end-of-epoch validation and the score that selects the best epoch)
comes from a task object (:mod:`gliomics.training.tasks`).
:func:`fit_segmenter` trains a segmenter (described below);
:func:`fit_classifier` a slice classifier (targets: tumour / no tumour from
each batch's masks; validation ROC AUC ``val_roc_auc`` selects), with the same
batches, checkpoints, resume and early stopping.

:func:`fit_segmenter` builds the model of ``params.model`` (input size from the
array store), compiles it with Adam (constant rate, or cosine decay to 0 over
``epochs * steps_per_epoch`` steps), the loss ``params.loss`` and the per-slice
metrics, and trains on :func:`gliomics.data.pipeline.train_dataset` batches.

Every epoch ends with (:mod:`gliomics.training.callbacks`):

- ``val_dice_3d``: the mean per-patient 3D Dice on the validation patients
  (every slice predicted, probabilities post-processed with threshold 0.5,
  holes filled, largest 3D component kept, then
  :func:`gliomics.training.metrics.dice_3d` against the stored mask), and
  ``val_slice_dice``: the mean over patients of
  :func:`~gliomics.training.metrics.per_slice_dice` (NaN patients skipped);
- a checkpoint (:mod:`gliomics.training.checkpoint`);
- early stopping: training stops once ``early_stopping_patience`` epochs have
  passed without a strictly better ``val_dice_3d``. The best epoch's weights
  are restored at the end.

Reproducibility: ``tf.keras.utils.set_random_seed(seed)`` before the model is
built and ``tf.config.experimental.enable_op_determinism()`` (not with
``xla``: XLA has no deterministic max-pooling gradient, so XLA runs are
seeded but not guaranteed bit-identical, and their resume is not exact);
training batch
``b`` depends only on ``(seed, b)``. Resuming (``resume=True``) rebuilds the
model, loads weights, optimizer state (Adam moments, step counter, hence the
schedule position) and history from the last checkpoint, and continues the
data stream at batch ``epoch * steps_per_epoch``. For models without
stochastic layers (plain_unet, and the Unet/FPN/Linknet backbones other than
EfficientNet, which has dropout) the resumed run ends with exactly the
weights of an uninterrupted one; a dropout layer's random stream is not part
of the checkpoint. A checkpoint made with different settings, patients or
store is refused (its ``fingerprint`` differs).

Precision: ``fp32``; ``bf16`` (the ``mixed_bfloat16`` Keras policy while the
model is built: bfloat16 compute, float32 weights and output); ``auto`` is
bf16 when the CPU reports ``avx512_bf16`` or ``amx_bf16`` (``/proc/cpuinfo``
flags), else fp32. ``xla`` compiles the train and predict steps with
``jit_compile``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from gliomics.config import TrainParams
from gliomics.data.arrays import ArrayStore, open_array_store
from gliomics.data.pipeline import Augment, train_dataset
from gliomics.errors import GliomicsError
from gliomics.models import build_under_policy
from gliomics.models.options import SM_ARCHITECTURES, canonical_arch
from gliomics.models.builders import config_keys
from gliomics.training.callbacks import EpochEnd
from gliomics.training.checkpoint import LAST, read_state, restore_checkpoint
from gliomics.training.classification import attach_threshold, choose_threshold, threshold_setting
from gliomics.training.losses import get_loss
from gliomics.training.tasks import SEGMENTATION, ClassificationTask

SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "bf16", "fp32")


@dataclass
class FitResult:
    """What :func:`fit_segmenter` returns."""

    model: object  # tf.keras.Model with the best epoch's weights
    history: object  # pandas DataFrame, one row per completed epoch (all of them, across resumes)
    best_epoch: int  # 1-based
    best_val_dice_3d: float
    epochs_run: int  # completed epochs, including those before a resume
    stopped_early: bool
    seconds: float  # training + validation seconds over all epochs (across resumes)
    precision: str  # "bf16" or "fp32", as resolved
    resumed_from: int  # completed epochs found in the checkpoint (0: a fresh run)
    model_config: dict = field(default_factory=dict)  # what build_from_config got
    monitor: str = "val_dice_3d"  # the validation column that selected best_epoch
    best_score: float = math.nan  # its best value (= best_val_dice_3d for a segmenter)

    def run_metrics(self, steps_per_epoch: int, batch_size: int) -> dict:
        """The run's length and speed as both training stages report them: epochs run, early stop, epochs
        resumed from, seconds (all; training only; training per image) and the precision."""
        images_seen = max(1, self.epochs_run * steps_per_epoch * batch_size)
        train_seconds = float(self.history["seconds"].sum()) if len(self.history) else 0.0
        return {"epochs_run": self.epochs_run, "stopped_early": self.stopped_early, "resumed_from": self.resumed_from,
                "seconds": self.seconds, "train_seconds": train_seconds,
                "seconds_per_image": train_seconds / images_seen, "precision": self.precision}


# ------------------------------------------------------------------ settings


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """CPU feature flags from /proc/cpuinfo (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_supports_bf16() -> bool:
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def resolve_precision(precision: str) -> str:
    """``auto``/``bf16``/``fp32`` -> ``bf16`` or ``fp32``."""
    if precision not in PRECISIONS:
        raise GliomicsError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if cpu_supports_bf16() else "fp32"
    return precision


def model_config(params: TrainParams, image_size: int) -> dict:
    """``params.model`` with the input shape of the store's slices added."""
    config = dict(params.model)
    if "arch" not in config:
        raise GliomicsError("train.model has no 'arch'")
    if "input_shape" in config_keys(config["arch"]) and "input_shape" not in config:
        config["input_shape"] = [int(image_size), int(image_size), 3]
    return config


def learning_rate(params: TrainParams):
    if params.schedule not in SCHEDULES:
        raise GliomicsError(f"train.schedule must be one of {', '.join(SCHEDULES)}, got {params.schedule!r}")
    if params.schedule == "cosine":
        return tf.keras.optimizers.schedules.CosineDecay(
            float(params.learning_rate), decay_steps=max(1, params.epochs * params.steps_per_epoch), alpha=0.0)
    return float(params.learning_rate)


def run_fingerprint(store, train_patients, val_patients, params: TrainParams, task=None) -> str:
    """Hash of everything a resumed run must share with the checkpoint."""
    settings = dataclasses.asdict(params)
    settings.pop("threshold", None)  # the classifier's decision threshold is chosen after training
    settings.pop("budget_minutes", None)  # resolved into epochs before training (gliomics.training.budget)
    payload = {
        "params": settings,
        "train": list(train_patients),
        "val": list(val_patients),
        "store": store.fingerprint,
    }
    if task is not None and task.name != "segmenter":  # segmenter checkpoints keep their fingerprint
        payload["task"] = task.name
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_settings(params: TrainParams, section: str = "train") -> None:
    """The settings that would otherwise fail only deep into a run (the loss name, the augmentation keys), checked
    before any data is read: one :class:`GliomicsError` line naming the key."""
    try:
        get_loss(params.loss)
    except ValueError as error:
        raise GliomicsError(f"{section}.loss: {error}") from None
    Augment.from_params(params.augment)


def _check(params: TrainParams, train_patients, val_patients, section: str = "train", final: bool = False) -> None:
    for name in ("batch_size", "epochs", "steps_per_epoch", "early_stopping_patience"):
        value = getattr(params, name)
        if value < 1:
            raise GliomicsError(f"{section}.{name} must be >= 1, got {value}")
    if not train_patients:
        raise GliomicsError("no training patients")
    if not val_patients:
        raise GliomicsError("no validation patients")
    overlap = sorted(set(train_patients) & set(val_patients))
    if final and set(val_patients) - set(train_patients):
        raise GliomicsError("a final fit monitors patients it trains on; these are not trained on: "
                            + ", ".join(sorted(set(val_patients) - set(train_patients))))
    if overlap and not final:
        raise GliomicsError(f"patients both in training and validation: {', '.join(overlap)}")
    if params.xla and xla_cannot_train(params.model):
        raise GliomicsError(f"{section}.xla: XLA cannot train {params.model.get('arch')} on this CPU (TensorFlow has "
                            "no XLA kernel for the decoder's ResizeNearestNeighborGrad); set xla: false")


def xla_cannot_train(model: dict) -> bool:
    """Whether ``model`` (a builder config) has the segmentation-models decoders that XLA fails to
    train (measured 2026-11-26 for Unet/FPN/Linknet: no ResizeNearestNeighborGrad XLA kernel)."""
    try:
        return canonical_arch(model.get("arch")) in SM_ARCHITECTURES
    except GliomicsError:
        return False  # an unknown arch is reported by the model builder


# ------------------------------------------------------------------ training


@dataclass
class _Loop:
    """Mutable state of one fit, shared with the epoch-end callback."""

    store: object
    val_patients: list
    batch_size: int
    epochs: int
    patience: int
    checkpoint_dir: Path
    fingerprint: str
    on_epoch_end: Callable | None
    task: object = None  # a gliomics.training.tasks task; None: segmentation
    keep_last: bool = False  # a final fit: the last epoch is the model (no epoch selection, no early stop)
    history: list = field(default_factory=list)
    best_score: float = math.nan
    best_epoch: int = 0
    best_weights: list | None = None
    stopped_early: bool = False

    def __post_init__(self):
        if self.task is None:
            self.task = SEGMENTATION

    @property
    def monitor(self) -> str:
        return self.task.monitor

    def validate(self, model) -> dict:
        return self.task.validate(model, self.store, self.val_patients, self.batch_size)

    def state(self, epoch: int) -> dict:
        state = {
            "epoch": epoch,
            "best_epoch": self.best_epoch,
            "monitor": self.monitor,
            "best_score": self.best_score,
            "stopped_early": self.stopped_early,
            "history": self.history,
            "fingerprint": self.fingerprint,
        }
        if self.monitor == "val_dice_3d":  # the key segmenter checkpoints have always had
            state["best_val_dice_3d"] = self.best_score
        return state


def set_op_determinism(enabled: bool) -> None:
    """Turn TensorFlow's (process-wide) op determinism on or off.

    XLA has no deterministic max-pooling gradient, so ``xla=True`` runs
    without op determinism (seeded, but not guaranteed bit-reproducible).
    """
    if enabled:
        tf.config.experimental.enable_op_determinism()
    elif tf_config.is_op_determinism_enabled():
        tf_config.disable_op_determinism()


def build_model(params: TrainParams, image_size: int, precision: str):
    """Build ``params.model`` under the precision's Keras policy (the global policy is restored after)."""
    config = model_config(params, image_size)
    return build_under_policy(config, "mixed_bfloat16" if precision == "bf16" else "float32"), config


def fit_segmenter(store, train_patients, val_patients, params: TrainParams, *, checkpoint_dir,
                  resume: bool = False, on_epoch_end: Callable[[int, dict], None] | None = None,
                  verbose: int = 0, final: bool = False) -> FitResult:
    """Train a segmenter on ``train_patients`` of ``store`` (an ArrayStore or its folder).

    ``checkpoint_dir`` receives a checkpoint after every epoch. With
    ``resume=True`` training continues from it (a fresh start when there is
    none); without, any checkpoint there is discarded first.
    ``on_epoch_end(epoch, row)`` is called after each epoch's checkpoint
    (``epoch`` 1-based, ``row`` the history row); an exception it raises
    stops training and propagates (the checkpoint is already written).

    ``final=True`` is the fit after the recipe is chosen: ``val_patients`` are
    among ``train_patients`` (scored each epoch only to show progress), the
    last epoch's weights are the model, and nothing stops early.
    """
    return fit_model(SEGMENTATION, store, train_patients, val_patients, params, checkpoint_dir=checkpoint_dir,
                     resume=resume, on_epoch_end=on_epoch_end, verbose=verbose, final=final)


def fit_classifier(store, train_patients, val_patients, params, *, checkpoint_dir, resume: bool = False,
                   on_epoch_end: Callable[[int, dict], None] | None = None, verbose: int = 0) -> FitResult:
    """Train a slice classifier (``params``: a :class:`gliomics.config.ClassifierParams`) as
    :func:`fit_segmenter` trains a segmenter; the best epoch is the best ``val_roc_auc``.

    Then the decision threshold (``params.threshold``): the best model
    predicts the validation slices and
    :func:`gliomics.training.classification.choose_threshold` picks it; the
    :class:`~gliomics.training.classification.ThresholdChoice` is attached to
    ``result.model`` (``attached_threshold``), and
    :func:`gliomics.training.export.save_classifier`/``log_classifier``
    store it as the model's ``Preprocessing.threshold``.
    """
    threshold_setting(params.threshold)  # a bad setting fails before training, not after
    task = ClassificationTask(min_area_px=int(params.min_area_px))
    result = fit_model(task, store, train_patients, val_patients, params, checkpoint_dir=checkpoint_dir,
                       resume=resume, on_epoch_end=on_epoch_end, verbose=verbose)
    labels, probs, _ = task.predict(result.model, _open_store(store), list(val_patients), params.batch_size)
    attach_threshold(result.model, choose_threshold(labels, probs, params.threshold, val_patients))
    return result


def _open_store(store):
    return store if isinstance(store, ArrayStore) else open_array_store(store)


def fit_model(task, store, train_patients, val_patients, params: TrainParams, *, checkpoint_dir,
              resume: bool = False, on_epoch_end: Callable[[int, dict], None] | None = None,
              verbose: int = 0, final: bool = False) -> FitResult:
    """The training loop for ``task`` (:mod:`gliomics.training.tasks`); see :func:`fit_segmenter`."""
    store = store if isinstance(store, ArrayStore) else open_array_store(store)
    train_patients, val_patients = list(train_patients), list(val_patients)
    _check(params, train_patients, val_patients, "train" if task.name == "segmenter" else task.name, final)
    augment = Augment.from_params(params.augment)  # checks the keys before any work
    precision = resolve_precision(params.precision)
    checkpoint_dir = Path(checkpoint_dir)
    fingerprint = run_fingerprint(store, train_patients, val_patients, params, task)

    state = read_state(checkpoint_dir) if resume else None
    if state is not None and state.get("fingerprint") != fingerprint:
        raise GliomicsError(
            f"{checkpoint_dir}: the checkpoint is of a run with other settings, patients or data; "
            "resume with the same ones, or train without --resume to start over")
    if not resume and (checkpoint_dir / LAST).exists():
        shutil.rmtree(checkpoint_dir / LAST)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)

    tf.keras.utils.set_random_seed(int(params.seed))
    set_op_determinism(not params.xla)
    model, config = build_model(params, store.image_size, precision)
    optimizer = tf.keras.optimizers.Adam(learning_rate=learning_rate(params))
    model.compile(optimizer=optimizer, loss=task.loss(params), metrics=task.metrics(),
                  jit_compile=bool(params.xla))

    loop = _Loop(store=store, val_patients=val_patients, batch_size=params.batch_size, epochs=params.epochs,
                 patience=params.early_stopping_patience, checkpoint_dir=checkpoint_dir, fingerprint=fingerprint,
                 on_epoch_end=on_epoch_end, task=task, keep_last=final)
    start_epoch = 0
    if state is not None:
        optimizer.build(model.trainable_variables)
        state, best_weights = restore_checkpoint(checkpoint_dir, model, optimizer)
        start_epoch = int(state["epoch"])
        loop.history = list(state["history"])
        loop.best_epoch = int(state["best_epoch"])
        best = state.get("best_score", state.get("best_val_dice_3d"))
        loop.best_score = float(best) if best is not None else math.nan
        loop.best_weights = best_weights
        loop.stopped_early = bool(state["stopped_early"])
    resumed_from = start_epoch

    if start_epoch < params.epochs and not loop.stopped_early:
        steps = params.steps_per_epoch
        data = train_dataset(store, train_patients, batch_size=params.batch_size,
                             tumour_fraction=params.tumour_fraction, augment=augment, seed=params.seed,
                             n_batches=(params.epochs - start_epoch) * steps, start_batch=start_epoch * steps)
        data = data.map(task.targets)
        model.fit(data, epochs=params.epochs, initial_epoch=start_epoch, steps_per_epoch=steps,
                  callbacks=[EpochEnd(loop)], verbose=verbose)

    if loop.best_weights is not None:
        model.set_weights(loop.best_weights)
    history = pd.DataFrame(loop.history)
    seconds = float(history[["seconds", "val_seconds"]].to_numpy().sum()) if len(history) else 0.0
    return FitResult(
        model=model,
        history=history,
        best_epoch=loop.best_epoch,
        best_val_dice_3d=loop.best_score if loop.monitor == "val_dice_3d" else math.nan,
        epochs_run=len(loop.history),
        stopped_early=loop.stopped_early,
        seconds=seconds,
        precision=precision,
        resumed_from=resumed_from,
        model_config=config,
        monitor=loop.monitor,
        best_score=loop.best_score,
    )
