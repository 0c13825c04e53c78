"""The slice classifier as a tuning task (:class:`gliomics.tuning.tasks.TuneTask`).

:class:`ClassifierTask` reuses the segmenter task's data handling (patients
of the split, the seeded low-fidelity patient subset, one array store per
fidelity, the study key) and trains with
:func:`gliomics.training.fit.fit_classifier`, maximising the validation ROC
AUC (``val_roc_auc``, reported every epoch so the pruner can act).

The values that :func:`gliomics.tuning.space.sample` draws map onto the
classifier as follows: ``activation`` -> every hidden activation (sigmoid
allowed here), ``pooling`` -> the global pooling of the head (the Kota (2024) thesis'
"average vs max pooling"; the stem keeps the base model's), ``learning_rate``,
``batch_size`` and ``augment_strength`` as for the segmenter. ``arch`` must
be ``resnet_classifier`` (one choice) and ``backbone``/``loss`` are not
searched (one value each, ignored): the depth, width and stem pooling come
from the base model (``classifier.<profile>.model``) or
``tune_classifier.<profile>.model_options.resnet_classifier``. Settings:
``tune_classifier.<profile>`` (named in the error messages).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gliomics.errors import GliomicsError
from gliomics.models.resnet_classifier import CLASSIFIER_ACTIVATIONS, HEAD_POOLING_LAYERS
from gliomics.models.options import CLASSIFIER_ARCH, backbone_has_pooling, canonical_arch
from gliomics.training.export import log_classifier, save_classifier
from gliomics.training.fit import fit_classifier
from gliomics.tuning import space as search_space
from gliomics.tuning.tasks import LOW, SegmenterTask, TrialResult

#: Space keys that mean something for the classifier.
CLASSIFIER_SPACE_KEYS = ("activation", "pooling", "learning_rate", "batch_size", "augment_strength")


class ClassifierTask(SegmenterTask):
    """Tune :func:`gliomics.training.fit.fit_classifier` on validation ROC AUC.

    ``base`` is the profile's :class:`gliomics.config.ClassifierParams`.
    """

    name = "classifier"
    section = "tune_classifier"
    metric = "val_roc_auc"
    epoch_metrics = ("loss", "accuracy", "val_roc_auc", "val_accuracy", "val_f1", "val_loss", "lr", "seconds",
                     "val_seconds")

    def check(self) -> None:
        space, where = self.tune.space, f"{self.section}.space"
        try:
            archs = [canonical_arch(a) for a in space.arch]
        except GliomicsError:
            archs = None
        if archs != [CLASSIFIER_ARCH]:
            raise GliomicsError(f"{where}.arch: the classifier search needs [{CLASSIFIER_ARCH}], got {space.arch}")
        for key, allowed in (("activation", CLASSIFIER_ACTIVATIONS), ("pooling", tuple(HEAD_POOLING_LAYERS))):
            unknown = [v for v in getattr(space, key) if v not in allowed]
            if unknown:
                raise GliomicsError(f"{where}.{key}: unknown {unknown}; allowed: {', '.join(allowed)}")
            if not getattr(space, key):
                raise GliomicsError(f"{where}.{key}: needs at least one value")
        # sample() would suggest these for a non-plain_unet arch; the classifier has no use for them.
        if len(space.backbone) != 1 or not backbone_has_pooling(space.backbone[0]) or len(space.loss) != 1:
            raise GliomicsError(f"{where}: backbone and loss are not searched for the classifier; leave them out")
        for key in ("learning_rate", "augment_strength", "batch_size"):
            if not getattr(space, key):
                raise GliomicsError(f"{where}.{key}: needs at least one value")
        search_space.check_low_fidelity(self.tune.low_fidelity, f"{self.section}.low_fidelity")
        if self.tune.low_fidelity.image_size % 32 or self.base.image_size % 32:
            raise GliomicsError(f"{self.section}.low_fidelity.image_size and classifier.image_size must be "
                                "multiples of 32")

    def settings(self, values: dict, fidelity: str):
        model = {k: v for k, v in self.base.model.items() if k not in ("activation", "head_pooling", "input_shape")}
        for key, extra in (self.tune.model_options or {}).items():
            if key == model.get("arch"):
                model.update(extra)
        model.update(activation=values["activation"], head_pooling=values["pooling"])
        settings = dataclasses.replace(
            self.base, model=model, learning_rate=float(values["learning_rate"]),
            batch_size=int(values["batch_size"]),
            augment=search_space.scale_augment(self.base.augment, values["augment_strength"]))
        if fidelity == LOW:
            settings = search_space.low_fidelity(settings, self.tune.low_fidelity)
        return settings

    def fit_function(self):
        return fit_classifier

    def save_model(self, result: TrialResult, fidelity: str, path, **metadata) -> Path:
        return save_classifier(result.model, self._preprocessing(fidelity), result.model_config, path,
                               min_area_px=self.base.min_area_px, **metadata)

    def log_model(self, result: TrialResult, fidelity: str, **metadata) -> None:
        log_classifier(result.model, self._preprocessing(fidelity), result.model_config,
                       min_area_px=self.base.min_area_px, **metadata)
