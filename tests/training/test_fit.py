"""Segmenter training: resumable bit for bit, seeded, and the train stage end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import gliomics  # noqa: F401  (tf-keras 2)
from gliomics.config import TrainParams
from tests.helpers import TINY_FIT, Killed, kill_after_first_epoch, validate_and_split

TINY = {"arch": "plain_unet", "base_filters": 4, "depth": 2}


def tiny_params(**overrides) -> TrainParams:
    return TrainParams(**{**TINY_FIT, "model": TINY, "steps_per_epoch": 3, **overrides})


@pytest.mark.slow  # an end-to-end stage run: `make test`, not `make test-fast`
def test_killed_and_resumed_run_ends_with_the_same_weights(store32, tmp_path):
    from gliomics.training.fit import fit_segmenter

    store, train, val = store32
    params = tiny_params(epochs=3)
    full = fit_segmenter(store, train, val, params, checkpoint_dir=tmp_path / "a")

    with pytest.raises(Killed):
        fit_segmenter(store, train, val, params, checkpoint_dir=tmp_path / "b", on_epoch_end=kill_after_first_epoch)
    resumed = fit_segmenter(store, train, val, params, checkpoint_dir=tmp_path / "b", resume=True)

    assert resumed.resumed_from == 1
    assert resumed.epochs_run == full.epochs_run == 3
    assert resumed.best_epoch == full.best_epoch
    for a, b in zip(full.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # ...and the last-epoch weights (not only the restored best) agree too.
    from gliomics.training.checkpoint import LAST

    for name in ("weights.npz", "optimizer.npz"):
        with np.load(tmp_path / "a" / LAST / name) as x, np.load(tmp_path / "b" / LAST / name) as y:
            assert x.files == y.files
            for key in x.files:
                np.testing.assert_array_equal(x[key], y[key])
    cols = ["loss", "slice_dice", "val_dice_3d", "lr"]
    pd.testing.assert_frame_equal(full.history[cols], resumed.history[cols])

    # Resuming a finished run trains nothing and returns the same best model.
    again = fit_segmenter(store, train, val, params, checkpoint_dir=tmp_path / "a", resume=True)
    assert again.resumed_from == 3 and again.epochs_run == 3
    for a, b in zip(full.model.get_weights(), again.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_resume_refuses_a_checkpoint_of_other_settings(store32, tmp_path):
    from gliomics.errors import GliomicsError
    from gliomics.training.fit import fit_segmenter

    store, train, val = store32
    fit_segmenter(store, train, val, tiny_params(epochs=1), checkpoint_dir=tmp_path)
    with pytest.raises(GliomicsError, match="other settings"):
        fit_segmenter(store, train, val, tiny_params(epochs=1, seed=4), checkpoint_dir=tmp_path, resume=True)


def test_history_columns_schedule_and_early_stopping(store32, tmp_path):
    from gliomics.training.fit import fit_segmenter

    store, train, val = store32
    # No batch norm: its moving statistics would still move at lr 0.
    result = fit_segmenter(store, train, val, tiny_params(model={**TINY, "batch_norm": False}, epochs=3,
                                                          early_stopping_patience=1, learning_rate=0.0,
                                                          schedule="constant"),
                           checkpoint_dir=tmp_path)
    h = result.history
    assert {"epoch", "loss", "slice_dice", "slice_iou", "val_dice_3d", "val_slice_dice", "lr", "seconds"} <= set(h)
    # lr 0: nothing changes, val_dice_3d never improves strictly, stop after epoch 2.
    assert result.epochs_run == 2 and result.stopped_early and result.best_epoch == 1
    assert 0.0 <= result.best_val_dice_3d <= 1.0


def test_final_fit_keeps_the_last_epoch_and_never_stops_early(store32, tmp_path):
    from gliomics.errors import GliomicsError
    from gliomics.training.checkpoint import LAST
    from gliomics.training.fit import fit_segmenter

    store, train, val = store32
    everyone = sorted(train + val)
    # Patience 1 with lr 0 stops an ordinary fit after epoch 2 (above); a final fit runs all 3 epochs and its
    # model is the last epoch's, whatever the monitored (trained-on) patients score.
    params = tiny_params(epochs=3, early_stopping_patience=1, learning_rate=0.0, schedule="constant",
                         model={**TINY, "batch_norm": False})
    result = fit_segmenter(store, everyone, val, params, checkpoint_dir=tmp_path, final=True)
    assert result.epochs_run == 3 and not result.stopped_early and result.best_epoch == 3
    with np.load(tmp_path / LAST / "weights.npz") as last:
        for key, weights in zip(sorted(last.files), result.model.get_weights(), strict=True):
            np.testing.assert_array_equal(last[key], weights)
    learning = fit_segmenter(store, everyone, val, tiny_params(epochs=2), checkpoint_dir=tmp_path / "b", final=True)
    assert learning.best_epoch == 2 and learning.best_val_dice_3d == learning.history["val_dice_3d"].iloc[-1]

    with pytest.raises(GliomicsError, match="not trained on: " + val[0]):
        fit_segmenter(store, train, val, params, checkpoint_dir=tmp_path / "c", final=True)
    with pytest.raises(GliomicsError, match="both in training and validation"):
        fit_segmenter(store, everyone, val, params, checkpoint_dir=tmp_path / "d")


@pytest.mark.slow  # an end-to-end stage run: `make test`, not `make test-fast`
def test_bf16_and_xla_train(store32, tmp_path):
    import tensorflow as tf

    from gliomics.training.fit import fit_segmenter

    store, train, val = store32
    result = fit_segmenter(store, train, val, tiny_params(epochs=1, steps_per_epoch=1, precision="bf16", xla=True),
                           checkpoint_dir=tmp_path)
    assert result.precision == "bf16"
    assert result.model.layers[1].compute_dtype == "bfloat16"
    assert result.model.output.dtype == tf.float32
    assert all(w.dtype == np.float32 for w in result.model.get_weights())
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # restored
    assert np.isfinite(result.history["loss"]).all()


def test_xla_is_refused_for_segmentation_models_decoders(store32, tmp_path):
    from gliomics.errors import GliomicsError
    from gliomics.training.fit import fit_segmenter, xla_cannot_train

    store, train, val = store32
    unet = {"arch": "unet", "backbone": "resnet18"}
    with pytest.raises(GliomicsError, match=r"train.xla: XLA cannot train unet .*set xla: false"):
        fit_segmenter(store, train, val, tiny_params(model=unet, xla=True), checkpoint_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # refused before any work
    assert xla_cannot_train({"arch": "FPN"}) and not xla_cannot_train(TINY)


def test_search_trials_keep_xla_only_where_it_trains():
    from gliomics.config import TuneParams
    from gliomics.tuning.tasks import SegmenterTask

    task = SegmenterTask("data", "manifest.csv", "splits.csv", tiny_params(xla=True), TuneParams())
    values = {"arch": "Unet", "backbone": "resnet18", "activation": "relu", "pooling": "max", "loss": "bce_dice",
              "learning_rate": 1e-3, "batch_size": 4, "augment_strength": 1.0}
    assert task.settings(values, "low").xla is False
    assert task.settings({**values, "arch": "plain_unet"}, "full").xla is True


def test_cosine_schedule_and_precision(store32):
    from gliomics.training.fit import learning_rate, resolve_precision

    schedule = learning_rate(tiny_params(epochs=2, steps_per_epoch=3, learning_rate=1.0))
    assert float(schedule(0)) == pytest.approx(1.0)
    assert float(schedule(6)) == pytest.approx(0.0, abs=1e-7)
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    assert resolve_precision("auto") in ("fp32", "bf16")


@pytest.fixture(scope="module")
def stage_inputs(small_cohort, tmp_path_factory):
    root = tmp_path_factory.mktemp("stage")
    manifest, splits, patients = validate_and_split(small_cohort, root, ["fold0", "fold1", "fold1", "fold1"],
                                                    absent_test_patient=True)
    assert len(patients) == 4
    return root, manifest, splits, patients


def _run(small_cohort, stage_inputs, out, **kwargs):
    from gliomics.stages.train import run_train

    root, manifest, splits, _ = stage_inputs
    params = tiny_params(epochs=2, steps_per_epoch=2, val_fold=0)
    return run_train(small_cohort, manifest, splits, params, out_dir=out / "model", store_dir=root / "arrays",
                     checkpoint_dir=out / "ckpt", reports_dir=out / "reports", profile="demo", **kwargs)


@pytest.mark.slow  # an end-to-end stage run: `make test`, not `make test-fast`
def test_run_train_end_to_end(small_cohort, stage_inputs, tmp_path, monkeypatch):
    import mlflow

    from gliomics.data.arrays import open_array_store
    from gliomics.data.pipeline import eval_dataset
    from gliomics.models.packaging import load_segmenter

    summary = _run(small_cohort, stage_inputs, tmp_path)
    for key in ("run_id", "model_uri", "best_val_dice_3d", "epochs_run", "seconds"):
        assert key in summary
    assert summary["model_uri"] == f"runs:/{summary['run_id']}/model"
    assert summary["epochs_run"] == 2 and summary["n_train_patients"] == 3 and summary["n_val_patients"] == 1
    reports = tmp_path / "reports"
    for name in ("history.csv", "metrics.json", "learning_curves.png", "overlays.png"):
        assert (reports / name).stat().st_size > 0
    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics["best_val_dice_3d"] == pytest.approx(summary["best_val_dice_3d"])
    assert (tmp_path / "model" / "MLmodel").exists()

    client = mlflow.MlflowClient()
    run = client.get_run(summary["run_id"])
    assert run.data.params["train.model.arch"] == "plain_unet"
    assert run.data.params["n_train_patients"] == "3"
    dice_steps = client.get_metric_history(summary["run_id"], "val_dice_3d")
    assert sorted(m.step for m in dice_steps) == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(summary["run_id"], "reports")}
    assert {"reports/history.csv", "reports/overlays.png", "reports/learning_curves.png"} <= artifacts

    # The logged model, the local model folder and pyfunc all predict the same.
    store = open_array_store(stage_inputs[0] / "arrays")
    x = next(iter(eval_dataset(store, [stage_inputs[3][0]], batch_size=4)))[0].numpy()
    logged, preprocessing, metadata = load_segmenter(summary["model_uri"])
    local, _, _ = load_segmenter(str(tmp_path / "model"))
    assert preprocessing.image_size == 32 and metadata["model_config"]["arch"] == "plain_unet"
    expected = logged.predict(x, verbose=0)
    np.testing.assert_allclose(local.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    # MLflow's pyfunc unpickles the custom objects: gliomics turns that off in its process; a user who trusts
    # the model (e.g. to `mlflow models serve` it) turns it on.
    with pytest.raises(Exception, match="(?i)pickle"):
        mlflow.pyfunc.load_model(summary["model_uri"])
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    pyfunc = mlflow.pyfunc.load_model(summary["model_uri"])
    np.testing.assert_allclose(np.asarray(pyfunc.predict(x)), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # an end-to-end stage run: `make test`, not `make test-fast`
def test_run_train_is_seeded(small_cohort, stage_inputs, tmp_path):
    first = _run(small_cohort, stage_inputs, tmp_path / "one", log_mlflow=False)
    second = _run(small_cohort, stage_inputs, tmp_path / "two", log_mlflow=False)
    assert first["run_id"] is None and first["model_uri"] == str(tmp_path / "one" / "model")
    cols = ["epoch", "loss", "slice_dice", "slice_iou", "val_dice_3d", "val_slice_dice", "lr"]
    a = pd.read_csv(tmp_path / "one" / "reports" / "history.csv")[cols]
    b = pd.read_csv(tmp_path / "two" / "reports" / "history.csv")[cols]
    pd.testing.assert_frame_equal(a, b)
