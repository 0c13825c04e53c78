"""What the search tunes: a small interface, and the segmenter behind it.

The search (:mod:`gliomics.tuning.search`) only needs a :class:`TuneTask`:
its ``metric`` (maximised; reported each epoch, so the pruner can act),
``settings(values, fidelity)`` (the training settings of one sampled
configuration), ``train_trial(settings, fidelity, on_epoch_end, work_dir)``
and model saving/logging. :class:`SegmenterTask` is the first one; a slice
classifier task plugs in the same way (``gliomics tune --task classifier``).

Fidelities: ``low`` trains on a seeded subset of the training patients
(``train_patient_fraction``, drawn with ``sampler_seed``) at the
low-fidelity image size, epochs and steps; ``full`` uses the profile's own
training settings and every training patient. Both validate on every
patient of fold ``train.val_fold`` of the split (never the test part).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import tensorflow as tf

from gliomics import layout
from gliomics.config import TrainParams, TuneParams
from gliomics.data.arrays import build_array_store, open_array_store
from gliomics.data.splits import split_patients
from gliomics.errors import GliomicsError
from gliomics.models.options import PLAIN_UNET, canonical_arch
from gliomics.models.preprocessing import Preprocessing
from gliomics.tracking import dvc_data_hash
from gliomics.training.export import log_segmenter, save_segmenter
from gliomics.training.fit import fit_segmenter, xla_cannot_train
from gliomics.training.store import check_store_patients, store_prefilter
from gliomics.tuning import space as search_space
from gliomics.tuning.study import file_digest

LOW, FULL = "low", "full"
FIDELITIES = (LOW, FULL)


@dataclass
class TrialResult:
    """One trained configuration."""

    value: float  # best value of the task's metric over the epochs
    best_epoch: int
    epochs_run: int
    history: object  # pandas DataFrame, one row per epoch
    model: object = None
    model_config: dict = field(default_factory=dict)


class TuneTask(Protocol):
    name: str  # e.g. "segmenter"
    section: str  # its params section, e.g. "tune" (named in error messages)
    metric: str  # validation history column to maximise, e.g. "val_dice_3d"
    epoch_metrics: tuple  # history columns logged per epoch

    def key_payload(self) -> dict: ...  # what the trial results depend on (names the study)
    def prepare(self) -> None: ...  # build data caches once, before any trial
    def settings(self, values: dict, fidelity: str) -> TrainParams: ...
    def train_trial(self, settings, fidelity: str, on_epoch_end: Callable[[int, dict], None],
                    work_dir: Path) -> TrialResult: ...
    def save_model(self, result: TrialResult, fidelity: str, path, **metadata) -> Path: ...
    def log_model(self, result: TrialResult, fidelity: str, **metadata) -> None: ...


def patient_subset(patients: list[str], fraction: float, seed: int) -> list[str]:
    """A seeded subset of ``round(fraction * n)`` patients (at least 1), sorted."""
    patients = sorted(patients)
    n = max(1, int(round(fraction * len(patients))))
    if n >= len(patients):
        return patients
    chosen = np.random.default_rng(int(seed)).choice(len(patients), size=n, replace=False)
    return sorted(patients[i] for i in chosen)


class SegmenterTask:
    """Tune :func:`gliomics.training.fit.fit_segmenter` on validation per-patient 3D Dice."""

    name = "segmenter"
    section = "tune"
    metric = "val_dice_3d"
    epoch_metrics = ("loss", "slice_dice", "val_dice_3d", "val_slice_dice", "lr", "seconds", "val_seconds")

    def __init__(self, data_dir, manifest_csv, splits_csv, base: TrainParams, tune: TuneParams,
                 store_root=layout.ARRAYS_TUNE):
        self.data_dir, self.manifest_csv, self.splits_csv = data_dir, manifest_csv, splits_csv
        self.base, self.tune = base, tune
        self.store_root = Path(store_root)
        self._stores: dict = {}
        self.train_patients: list[str] = []
        self.val_patients: list[str] = []
        self.low_patients: list[str] = []

    # ------------------------------------------------------------- set-up

    def check(self) -> None:
        """Refuse settings the trials could not run with, before any work."""
        search_space.check_space(self.tune.space, self.tune.model_options)
        search_space.check_low_fidelity(self.tune.low_fidelity)

        if any(canonical_arch(a) != PLAIN_UNET for a in self.tune.space.arch):
            for where, size in (("tune.low_fidelity.image_size", self.tune.low_fidelity.image_size),
                                ("train.image_size", self.base.image_size)):
                if size % 32:
                    raise GliomicsError(f"{where}: {size} is not a multiple of 32, which the "
                                        "segmentation-models archs in tune.space.arch need")

    def store_dir(self, fidelity: str) -> Path:
        size = self.tune.low_fidelity.image_size if fidelity == LOW else self.base.image_size
        prefilter = store_prefilter(self.base)
        return self.store_root / (f"{size}px" + (f"-{prefilter}" if prefilter else ""))

    def key_payload(self) -> dict:
        tune = dataclasses.asdict(self.tune)
        for budget_only in ("study_name", "n_trials", "timeout", "promote_top_k"):
            tune.pop(budget_only)
        if tune["sampler"] == "tpe":  # the default: keeps the keys of studies made before `sampler` existed
            tune.pop("sampler")
        return {"task": self.name, "tune": tune, "train": dataclasses.asdict(self.base),
                "splits": file_digest(self.splits_csv), "manifest": file_digest(self.manifest_csv),
                "data": dvc_data_hash(self.data_dir)}

    def prepare(self, build: bool = True) -> None:
        """Patients of the split, the low-fidelity subset, and one array store per fidelity."""
        self.check()
        self.train_patients, self.val_patients = split_patients(self.splits_csv, self.base.val_fold)
        self.low_patients = patient_subset(self.train_patients, self.tune.low_fidelity.train_patient_fraction,
                                           self.tune.sampler_seed)
        prefilter = store_prefilter(self.base)
        for fidelity in FIDELITIES:
            path = self.store_dir(fidelity)
            if build or not (path / "store.json").exists():
                size = self.tune.low_fidelity.image_size if fidelity == LOW else self.base.image_size
                build_array_store(self.data_dir, path, image_size=size, prefilter=prefilter,
                                  manifest=self.manifest_csv)
            self._stores[fidelity] = store = open_array_store(path)
            check_store_patients(store, self.train_patients + self.val_patients, self.splits_csv)

    # ------------------------------------------------------------- trials

    def settings(self, values: dict, fidelity: str) -> TrainParams:
        settings = search_space.apply_values(self.base, values, self.tune.model_options)
        if settings.xla and xla_cannot_train(settings.model):
            # The profile's xla: true is meant for the plain U-Net; XLA cannot train these decoders.
            settings = dataclasses.replace(settings, xla=False)
        if fidelity == LOW:
            settings = search_space.low_fidelity(settings, self.tune.low_fidelity)
        return settings

    def fit_function(self):
        """The training loop of this task's model (:mod:`gliomics.training.fit`; imported late: TensorFlow)."""
        return fit_segmenter

    def train_trial(self, settings: TrainParams, fidelity: str, on_epoch_end, work_dir) -> TrialResult:
        tf.keras.backend.clear_session()  # free the previous trial's graph
        tf.keras.utils.disable_interactive_logging()  # no Keras progress bars between the trial lines
        patients = self.low_patients if fidelity == LOW else self.train_patients
        result = self.fit_function()(self._stores[fidelity], patients, self.val_patients, settings,
                                     checkpoint_dir=Path(work_dir), on_epoch_end=on_epoch_end)
        value = result.best_score  # the best epoch's monitored validation score (val_dice_3d, val_roc_auc)
        return TrialResult(value=float(value) if value is not None else math.nan, best_epoch=result.best_epoch,
                           epochs_run=result.epochs_run, history=result.history, model=result.model,
                           model_config=result.model_config)

    def _preprocessing(self, fidelity: str):
        return Preprocessing.from_store_settings(self._stores[fidelity].settings)

    def save_model(self, result: TrialResult, fidelity: str, path, **metadata) -> Path:
        return save_segmenter(result.model, self._preprocessing(fidelity), result.model_config, path, **metadata)

    def log_model(self, result: TrialResult, fidelity: str, **metadata) -> None:
        log_segmenter(result.model, self._preprocessing(fidelity), result.model_config, name="model", **metadata)
