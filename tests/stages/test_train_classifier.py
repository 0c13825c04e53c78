"""Classifier training on the shared loop: smoke, resume, and the train-classifier stage end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

import gliomics  # noqa: F401  (tf-keras 2)
from gliomics.config import ClassifierParams
from tests.helpers import TINY_FIT, Killed, kill_after_first_epoch, validate_and_split

TINY = {"arch": "resnet_classifier", "depth": 50, "base_filters": 4, "stage_blocks": [1, 1, 1, 1]}


def tiny_params(**overrides) -> ClassifierParams:
    return ClassifierParams(**{**TINY_FIT, "model": TINY, "steps_per_epoch": 2, **overrides})


@pytest.mark.slow  # an end-to-end stage run: `make test`, not `make test-fast`
def test_fit_classifier_history_and_exact_resume(store32, tmp_path):
    from gliomics.training.fit import fit_classifier

    store, train, val = store32
    params = tiny_params()
    full = fit_classifier(store, train, val, params, checkpoint_dir=tmp_path / "a")
    h = full.history
    assert {"epoch", "loss", "accuracy", "roc_auc", "val_roc_auc", "val_accuracy", "val_f1", "val_loss", "lr",
            "seconds", "val_seconds"} <= set(h)
    assert full.monitor == "val_roc_auc" and full.epochs_run == 2
    assert full.best_score == pytest.approx(h["val_roc_auc"].max())
    assert np.isnan(full.best_val_dice_3d)
    assert full.model.output_shape == (None, 1) and full.model_config["input_shape"] == [32, 32, 3]

    with pytest.raises(Killed):
        fit_classifier(store, train, val, params, checkpoint_dir=tmp_path / "b", on_epoch_end=kill_after_first_epoch)
    resumed = fit_classifier(store, train, val, params, checkpoint_dir=tmp_path / "b", resume=True)
    assert resumed.resumed_from == 1 and resumed.best_epoch == full.best_epoch
    for a, b in zip(full.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_array_equal(a, b)

    # The threshold is the most accurate one on the validation slices of the best model.
    from gliomics.training.classification import attached_threshold, best_accuracy_threshold
    from gliomics.training.tasks import ClassificationTask

    labels, probs, _ = ClassificationTask().predict(full.model, store, val, 4)
    choice = attached_threshold(full.model)
    assert choice.method == "validation" and choice.val_patients == tuple(val)
    assert choice.threshold == best_accuracy_threshold(labels, probs) == attached_threshold(resumed.model).threshold
    assert choice.val_accuracy == pytest.approx(np.mean((probs >= choice.threshold) == labels))
    assert choice.val_accuracy >= choice.val_accuracy_at_default
    # threshold: 0.5 fixes it; the setting is not part of the checkpoint's fingerprint (no retraining).
    fixed = fit_classifier(store, train, val, tiny_params(threshold=0.5), checkpoint_dir=tmp_path / "a",
                           resume=True)
    assert fixed.resumed_from == 2 and attached_threshold(fixed.model).threshold == 0.5
    assert attached_threshold(fixed.model).method == "fixed"

    # A checkpoint of other settings (here the label definition) is refused.
    from gliomics.errors import GliomicsError

    with pytest.raises(GliomicsError, match="other settings"):
        fit_classifier(store, train, val, tiny_params(min_area_px=5), checkpoint_dir=tmp_path / "a", resume=True)


def test_bad_loss_is_clear(store32, tmp_path):
    from gliomics.errors import GliomicsError
    from gliomics.training.fit import fit_classifier

    store, train, val = store32
    with pytest.raises(GliomicsError, match="classifier.loss must be one of bce"):
        fit_classifier(store, train, val, tiny_params(loss="dice"), checkpoint_dir=tmp_path)
    with pytest.raises(GliomicsError, match="classifier.epochs must be >= 1"):
        fit_classifier(store, train, val, tiny_params(epochs=0), checkpoint_dir=tmp_path)


@pytest.fixture(scope="module")
def stage_inputs(small_cohort, tmp_path_factory):
    root = tmp_path_factory.mktemp("stage")
    manifest, splits, patients = validate_and_split(small_cohort, root, ["fold0", "fold1", "fold1", "test"])
    return root, manifest, splits, patients


@pytest.mark.slow  # an end-to-end stage run: `make test`, not `make test-fast`
def test_train_classifier_stage_end_to_end(small_cohort, stage_inputs, tmp_path):
    import mlflow

    from gliomics.models.gate import load_classifier
    from gliomics.stages.train_classifier import run_train_classifier

    root, manifest, splits, patients = stage_inputs
    summary = run_train_classifier(small_cohort, manifest, splits, tiny_params(), out_dir=tmp_path / "model",
                                   store_dir=root / "arrays", checkpoint_dir=tmp_path / "ckpt",
                                   reports_dir=tmp_path / "reports", profile="demo")
    assert summary["model_uri"] == f"runs:/{summary['run_id']}/model"
    # The test patient is never read: 2 training, 1 validation patient.
    assert summary["n_train_patients"] == 2 and summary["n_val_patients"] == 1
    reports = tmp_path / "reports"
    for name in ("history.csv", "metrics.json", "learning_curves.png", "confusion_matrix.png", "roc.png"):
        assert (reports / name).stat().st_size > 0
    metrics = json.loads((reports / "metrics.json").read_text())
    assert {"best_val_roc_auc", "val_accuracy", "val_f1", "val_sensitivity", "val_specificity",
            "seconds_per_image", "threshold", "val_accuracy_at_0.5", "val_accuracy_at_threshold"} <= set(metrics)
    assert metrics["threshold_method"] == "validation"
    assert metrics["val_accuracy"] == metrics["val_accuracy_at_threshold"] >= metrics["val_accuracy_at_0.5"]
    assert json.loads((reports / "model.json").read_text())["threshold"] == metrics["threshold"]

    client = mlflow.MlflowClient()
    run = client.get_run(summary["run_id"])
    assert client.get_experiment(run.info.experiment_id).name == "train_classifier"
    assert run.data.params["classifier.model.arch"] == "resnet_classifier"
    assert run.data.params["classifier.min_area_px"] == "1"
    assert run.data.params["classifier.threshold"] == "validation"
    assert run.data.metrics["threshold"] == pytest.approx(metrics["threshold"])
    assert run.data.metrics["val_accuracy_at_0.5"] == pytest.approx(metrics["val_accuracy_at_0.5"])
    assert sorted(m.step for m in client.get_metric_history(summary["run_id"], "val_accuracy")) == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(summary["run_id"], "reports")}
    assert {"reports/confusion_matrix.png", "reports/roc.png", "reports/history.csv"} <= artifacts

    logged, preprocessing, metadata = load_classifier(summary["model_uri"])
    local, _, _ = load_classifier(str(tmp_path / "model"))
    assert metadata["task"] == "classifier" and metadata["min_area_px"] == 1 and preprocessing.image_size == 32
    assert preprocessing.threshold == pytest.approx(metrics["threshold"])
    assert load_classifier(str(tmp_path / "model"))[1].threshold == pytest.approx(metrics["threshold"])
    assert metadata["threshold_selection"]["val_patients"] == [patients[0]]
    info = mlflow.models.get_model_info(summary["model_uri"])
    assert list(info.signature.outputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 1]
    x = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(local.predict(x, verbose=0), logged.predict(x, verbose=0), rtol=1e-5, atol=1e-6)

    # evaluate on the test patient, then register through gliomics.registry and become @champion.
    from gliomics.registry import CLASSIFIER
    from gliomics.registry.listing import get_alias
    from gliomics.stages.register_classifier import run_register_classifier
    from gliomics.stages.evaluate_classifier import run_evaluate_classifier

    test_patient = [patients[3]]
    run_evaluate_classifier(small_cohort, str(tmp_path / "model"), tmp_path / "eval", patients=test_patient,
                            log_mlflow=False)
    registered = run_register_classifier(reports / "model.json", tmp_path / "eval" / "summary.json",
                                         tmp_path / "register", data_dir=small_cohort, profile="demo",
                                         mirror_dir=tmp_path / "registry")
    assert registered["name"] == CLASSIFIER == "gliomics-slice-classifier" and registered["version"] == 1
    assert registered["promoted"] and registered["run_id"] == summary["run_id"]
    champion = get_alias(CLASSIFIER, "champion")
    assert champion["version"] == 1 and "test_accuracy" in champion["metrics"]
    assert (tmp_path / "registry" / f"{CLASSIFIER}.json").exists()
    assert "Model card: gliomics-slice-classifier version 1" in (tmp_path / "register" / "model_card.md").read_text()
    loaded, _, _ = load_classifier(f"models:/{CLASSIFIER}@champion")
    assert loaded.output_shape == (None, 1)

    # An evaluation of some other model is refused.
    other = json.loads((tmp_path / "eval" / "summary.json").read_text())
    other["model_uri"] = "models/elsewhere"
    (tmp_path / "other.json").write_text(json.dumps(other))
    from gliomics.errors import GliomicsError

    with pytest.raises(GliomicsError, match="not the trained model"):
        run_register_classifier(reports / "model.json", tmp_path / "other.json", tmp_path / "r2",
                                data_dir=small_cohort)
