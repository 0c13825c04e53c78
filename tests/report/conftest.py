"""Fixtures of the report tests: real stage outputs on the small synthetic cohort, a stub segmenter,
and the files of the stages that the report reads when they exist (tune, register, classifier,
predicted-mask features), written to their contracts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gliomics  # noqa: F401  (sets the Keras environment first)



def _png(path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1.5))
    fig.add_subplot().plot([0, 1], [0, 1])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=40)
    return path


@pytest.fixture(scope="session")
def stage_reports(tmp_path_factory, small_cohort, stub_segmenter) -> Path:
    """reports/ of validate, split, features (truth), associate and evaluate run on the small cohort."""
    from gliomics.config import AssociateParams, FeaturesParams, SplitParams
    from gliomics.stages.associate import run_associate
    from gliomics.stages.evaluate import run_evaluate
    from gliomics.stages.features import run_features
    from gliomics.stages.split import split_cohort
    from gliomics.data.splits import patients_of_part
    from gliomics.validation.cohort import validate_cohort

    reports = tmp_path_factory.mktemp("project") / "reports"
    with pytest.MonkeyPatch.context() as mp:  # session fixtures run before the per-test MLflow isolation
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{reports.parent / 'mlflow.db'}")
        validate_cohort(small_cohort, reports / "validate", log_mlflow=False)
        split_cohort(small_cohort, reports / "validate" / "manifest.csv", SplitParams(n_folds=3, test_fraction=0.25),
                     reports / "split", log_mlflow=False)
        run_features(small_cohort, "truth", reports / "features" / "features_truth.csv", FeaturesParams(),
                     log_mlflow=False)
        run_associate(reports / "features" / "features_truth.csv", small_cohort / "data.csv",
                      reports / "associations" / "truth",
                      AssociateParams(min_patients=3, min_class_size=1, n_boot=20), log_mlflow=False)
        test_patients = patients_of_part(reports / "split" / "splits.csv", "test")
        run_evaluate(small_cohort, stub_segmenter, reports / "evaluate", patients=test_patients, log_mlflow=False)
    return reports


def write_contract_files(reports: Path) -> None:
    """The outputs of tune, register/promote, the classifier and predicted-mask features, per contracts.md."""
    tune = reports / "tune"
    tune.mkdir(parents=True)
    pd.DataFrame({
        "number": [0, 1, 2, 3], "state": ["COMPLETE", "PRUNED", "COMPLETE", "FAIL"],
        "fidelity": ["low", "low", "full", "low"], "value": [0.61, 0.2, 0.74, np.nan],
        "epochs_run": [2, 1, 3, 0], "duration_s": [10.0, 4.0, 30.0, 1.0], "mlflow_run_id": ["a", "b", "c", "d"],
        "param_arch": ["Unet", "FPN", "Unet", "Linknet"], "param_learning_rate": [1e-3, 1e-2, 3e-4, 1e-4],
    }).to_csv(tune / "trials.csv", index=False)
    (tune / "best.json").write_text(json.dumps({
        "study_name": "demo-study", "storage": "sqlite:///optuna.db", "trial_number": 2, "fidelity": "full",
        "val_dice_3d": 0.74, "params": {"arch": "Unet", "learning_rate": 3e-4},
        "train_settings": {"model": {"arch": "Unet", "backbone": "resnet18"}, "image_size": 64, "batch_size": 8,
                           "epochs": 3, "loss": "dice", "learning_rate": 3e-4, "schedule": "cosine",
                           "tumour_fraction": 0.5, "val_fold": 0},
        "model_uri": "runs:/c/model", "model_dir": "models/tuned", "parent_run_id": "p", "n_trials": 4,
        "n_complete": 2, "n_pruned": 1, "n_failed": 1, "seconds": 45.0}))
    pd.DataFrame({"param": ["learning_rate", "arch"], "importance": [0.7, 0.3]}).to_csv(tune / "importances.csv",
                                                                                       index=False)
    _png(tune / "figures" / "optimization_history.png")

    registered = {"name": "gliomics-segmenter", "version": 3, "run_id": "c",
                  "model_uri": "models:/gliomics-segmenter/3", "val_dice_3d": 0.74, "test_mean_dice_3d": 0.71,
                  "data_hash": "abc123.dir", "profile": "demo", "study_name": "demo-study", "trial_number": 2,
                  "promoted": True}
    (reports / "register").mkdir()
    (reports / "register" / "registered.json").write_text(json.dumps(registered))
    (reports / "registry").mkdir()
    (reports / "registry" / "gliomics-segmenter.json").write_text(json.dumps({
        "name": "gliomics-segmenter", "alias": "champion", "version": 3,
        "model_uri": "models:/gliomics-segmenter@champion", "metrics": {"test_mean_dice_3d": 0.71},
        "data_hash": "abc123.dir", "updated_at": "2026-11-25T12:00:00+00:00"}))

    evaluate = reports / "classifier" / "evaluate"
    evaluate.mkdir(parents=True)
    (evaluate / "summary.json").write_text(json.dumps({
        "n_slices": 80, "accuracy": 0.9, "roc_auc": 0.95, "f1": 0.88, "sensitivity": 0.86, "specificity": 0.93,
        "per_patient": {"TCGA_AA_0001": {"accuracy": 0.9}}}))
    _png(evaluate / "confusion_matrix.png")
    _png(evaluate / "roc.png")
    (reports / "classifier" / "train").mkdir()
    (reports / "classifier" / "train" / "metrics.json").write_text(json.dumps({"best_val_roc_auc": 0.93}))
    (reports / "classifier" / "tune").mkdir()
    pd.DataFrame({"number": [0, 1, 2, 3], "state": ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"],
                  "fidelity": ["low", "low", "low", "low"], "value": [0.912, 0.954, 0.871, None],
                  "epochs_run": [6, 6, 6, 1], "param_activation": ["relu", "relu", "gelu", "gelu"],
                  "param_pooling": ["avg", "max", "avg", "max"]}).to_csv(reports / "classifier" / "tune" /
                                                                        "trials.csv", index=False)

    truth = pd.read_csv(reports / "features" / "features_truth.csv")
    predicted = truth.copy()
    rng = np.random.default_rng(0)
    numeric = [c for c in truth.columns if c not in ("patient", "folder", "histological_type", "status",
                                                   "largest_slice", "tumour_voxels")]
    predicted[numeric] = truth[numeric] * (1 + 0.05 * rng.normal(size=(len(truth), len(numeric))))
    predicted.to_csv(reports / "features" / "features_predicted.csv", index=False)
    # Four patients give no significant test; plant one on truth masks that is lost on predicted masks.
    shutil.copytree(reports / "associations" / "truth", reports / "associations" / "predicted")
    for folder, p in (("truth", 0.01), ("predicted", 0.5)):
        tests = pd.read_csv(reports / "associations" / folder / "tests.csv")
        row = tests.index[(tests["test"] == "freeman_halton") & (tests["group"] == "all")][0]
        tests.loc[row, "p_bonferroni"] = p
        tests.to_csv(reports / "associations" / folder / "tests.csv", index=False)


@pytest.fixture(scope="session")
def full_reports(tmp_path_factory, stage_reports) -> Path:
    """A reports/ tree where every stage the report knows has run."""
    reports = tmp_path_factory.mktemp("full") / "reports"
    shutil.copytree(stage_reports, reports)
    write_contract_files(reports)
    return reports
