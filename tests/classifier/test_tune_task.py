"""The classifier plugs into the Optuna search through the tuning task interface (one low + one full trial)."""

from __future__ import annotations

import pytest

import gliomics  # noqa: F401
from gliomics.config import ClassifierParams, LowFidelityParams, TuneParams, TuneSpaceParams
from gliomics.errors import GliomicsError
from tests.helpers import validate_and_split


@pytest.fixture(scope="module")
def inputs(small_cohort, tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    manifest, splits, _ = validate_and_split(small_cohort, root, ["fold0", "fold1", "fold1", "test"])
    return root, manifest, splits


def make_task(small_cohort, inputs, **space):
    from gliomics.tuning.classifier_task import ClassifierTask

    root, manifest, splits = inputs
    base = ClassifierParams(model={"arch": "resnet_classifier", "depth": 50, "base_filters": 4,
                                   "stage_blocks": [1, 1, 1, 1], "stem_pooling": "avg"},
                            image_size=32, batch_size=4, epochs=1, steps_per_epoch=2, precision="fp32",
                            augment={"distortion": None})
    values = {"arch": ["resnet_classifier"], "activation": ["sigmoid", "elu"], "pooling": ["avg", "max"],
              "loss": ["bce"], "learning_rate": [1e-3, 1e-2], "batch_size": [4], **space}
    tune = TuneParams(study_name="cls", n_trials=1, startup_trials=1, pruner={"name": "none"},
                      space=TuneSpaceParams(**values),
                      low_fidelity=LowFidelityParams(image_size=32, epochs=1, steps_per_epoch=2,
                                                     train_patient_fraction=0.5))
    return ClassifierTask(small_cohort, manifest, splits, base, tune, store_root=root / "stores")


@pytest.mark.slow  # an end-to-end stage run: `make test`, not `make test-fast`
def test_one_low_and_one_full_trial_through_the_search(small_cohort, inputs, tmp_path):
    import optuna

    from gliomics.models.gate import load_classifier
    from gliomics.tuning.search import run_phase
    from gliomics.tuning.trials import TrialLogger

    task = make_task(small_cohort, inputs)
    task.prepare()
    assert task.key_payload()["task"] == "classifier"
    settings = task.settings({"activation": "sigmoid", "pooling": "max", "learning_rate": 0.01, "batch_size": 4,
                              "augment_strength": 1.0, "arch": "resnet_classifier", "backbone": "resnet18",
                              "loss": "bce"}, "low")
    assert settings.model["activation"] == "sigmoid" and settings.model["head_pooling"] == "max"
    assert settings.model["stem_pooling"] == "avg" and settings.epochs == 1

    logger = TrialLogger(None, "cls")
    for fidelity in ("low", "full"):
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
        if fidelity == "full":
            study.enqueue_trial(low.best_trial.params)
        ran = run_phase(task, study, task.tune.space, fidelity, logger=logger, work_dir=tmp_path, study_name="cls",
                        n_trials=1, max_trials=1, echo=lambda line: None)
        assert ran == 1 and study.best_trial.state.name == "COMPLETE"
        assert 0.0 <= study.best_value <= 1.0
        low = study
    model_dirs = list(tmp_path.rglob("MLmodel"))
    assert len(model_dirs) == 1  # the full-fidelity trial's model
    model, preprocessing, metadata = load_classifier(str(model_dirs[0].parent))
    assert metadata["task"] == "classifier" and model.output_shape == (None, 1)
    # The full-fidelity model carries the threshold chosen on the validation patients.
    assert metadata["threshold_selection"]["method"] == "validation"
    assert preprocessing.threshold == metadata["threshold_selection"]["threshold"]
    assert metadata["threshold_selection"]["val_patients"] == task.val_patients


def test_space_is_checked_for_the_classifier(small_cohort, inputs):
    with pytest.raises(GliomicsError, match="tune_classifier.space.arch: the classifier search needs"):
        make_task(small_cohort, inputs, arch=["Unet"]).check()
    with pytest.raises(GliomicsError, match="tune_classifier.space.activation: unknown"):
        make_task(small_cohort, inputs, activation=["tanh"]).check()
