"""The decision threshold: chosen on validation, stored with the model, used by evaluate, recalibrated later."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

import gliomics  # noqa: F401  (tf-keras 2)
from gliomics.errors import GliomicsError
from gliomics.training.classification import (ThresholdChoice, attach_threshold, best_accuracy_threshold,
                                              choose_threshold)

from .conftest import constant_classifier, flair_classifier, save_classifier_stub


def test_best_threshold_on_a_hand_made_set():
    # Perfectly separable between 0.3 and 0.35; at 0.5 two tumour slices are missed (accuracy 6/8).
    labels = [0, 0, 0, 1, 1, 1, 1, 1]
    probs = [0.1, 0.2, 0.3, 0.35, 0.4, 0.7, 0.8, 0.9]
    assert best_accuracy_threshold(labels, probs) == pytest.approx(0.325)
    choice = choose_threshold(labels, probs, "validation", ["p1", "p2"])
    assert choice.threshold == pytest.approx(0.325) and choice.method == "validation"
    assert choice.val_accuracy_at_default == pytest.approx(0.75) and choice.val_accuracy == 1.0
    assert choice.n_val_slices == 8 and choice.val_patients == ("p1", "p2")
    assert choice.metrics() == {"threshold": choice.threshold, "val_accuracy_at_0.5": 0.75,
                                "val_accuracy_at_threshold": 1.0}


def test_ties_go_to_the_threshold_closest_to_one_half():
    # 0.275 and 0.76 both give 3/4 correct (0.5 gives 2/4): 0.275 is closer to 0.5.
    assert best_accuracy_threshold([0, 1, 0, 1], [0.1, 0.45, 0.62, 0.9]) == pytest.approx(0.275)
    # 0.5 is among the best (every cut between 0.3 and 0.7 separates): it is kept.
    assert best_accuracy_threshold([0, 0, 1, 1], [0.1, 0.3, 0.7, 0.9]) == 0.5
    # One class only: nothing to calibrate on.
    assert best_accuracy_threshold([0, 0, 0], [0.2, 0.6, 0.9]) == 0.5


def test_fixed_threshold_and_bad_setting():
    labels, probs = [0, 0, 1, 1], [0.1, 0.45, 0.4, 0.9]
    fixed = choose_threshold(labels, probs, 0.5)
    assert fixed.threshold == 0.5 and fixed.method == "fixed" and fixed.val_accuracy == fixed.val_accuracy_at_default
    assert choose_threshold(labels, probs, 1).threshold == 1.0
    for bad in ("median", 1.5, True, None):
        with pytest.raises(GliomicsError, match="classifier.threshold must be 'validation' or a number in"):
            choose_threshold(labels, probs, bad)


def test_threshold_param_is_typed():
    from gliomics.config import params_from_dict

    def setting(value):
        return params_from_dict({"classifier": {"demo": {"threshold": value}}}).classifier_settings().threshold

    assert params_from_dict({}).classifier_settings().threshold == "validation"
    assert setting(0.5) == 0.5 and setting(1) == 1.0 and isinstance(setting(1), float)
    with pytest.raises(GliomicsError, match=r"classifier.demo.threshold: expected str or float, got \[0.5\]"):
        setting([0.5])
    # A bad string fails before any training (no store needed).
    from gliomics.config import ClassifierParams
    from gliomics.training.fit import fit_classifier

    with pytest.raises(GliomicsError, match="classifier.threshold must be"):
        fit_classifier(None, [], [], ClassifierParams(threshold="best"), checkpoint_dir="unused")


def choice_at(threshold: float) -> ThresholdChoice:
    return ThresholdChoice(threshold=threshold, method="validation", val_accuracy_at_default=0.5, val_accuracy=0.9,
                           n_val_slices=10, val_patients=("TCGA_X",))


@pytest.mark.slow  # 10+ s (a model trained, saved or registered): `make test` only
def test_stored_threshold_round_trips_and_evaluate_uses_it(small_cohort, tmp_path):
    from gliomics.models.gate import load_classifier
    from gliomics.stages.evaluate_classifier import run_evaluate_classifier

    # Every slice gets 0.4: "no tumour" at 0.5, "tumour" at the stored 0.3.
    model = attach_threshold(constant_classifier(0.4), choice_at(0.3))
    path = save_classifier_stub(model, tmp_path / "model")
    _, preprocessing, metadata = load_classifier(path)
    assert preprocessing.threshold == 0.3
    assert metadata["threshold_selection"]["threshold"] == 0.3
    assert metadata["threshold_selection"]["val_patients"] == ["TCGA_X"]

    summary = run_evaluate_classifier(small_cohort, path, tmp_path / "eval", log_mlflow=False)
    (tn, fp), (fn, tp) = summary["confusion_matrix"]
    assert summary["threshold"] == 0.3 and tn == fn == 0 and tp + fp == summary["n_slices"]
    # An explicit threshold still overrides the stored one.
    summary = run_evaluate_classifier(small_cohort, path, tmp_path / "eval05", threshold=0.5, log_mlflow=False)
    assert summary["confusion_matrix"][0][1] == summary["confusion_matrix"][1][1] == 0

    # Without an attached choice the preprocessing's own threshold is kept.
    _, plain, plain_metadata = load_classifier(save_classifier_stub(constant_classifier(0.4), tmp_path / "plain"))
    assert plain.threshold == 0.5 and "threshold_selection" not in plain_metadata


@pytest.fixture
def calibration_inputs(cohort_copy, tmp_path):
    """A flair stub validated on fold 0 (2 patients); the test patient's images are unreadable."""
    from gliomics.models.preprocessing import Preprocessing
    from gliomics.training.export import save_classifier
    from gliomics.data.cohort_io import cohort_patients

    _, by_folder = cohort_patients(cohort_copy, need_masks=True)
    folders = list(by_folder)
    patients = [slices[0].patient for slices in by_folder.values()]
    splits = tmp_path / "splits.csv"
    pd.DataFrame({"patient": patients, "part": ["fold0", "fold0", "fold1", "test"],
                  "fold": [0, 0, 1, -1]}).to_csv(splits, index=False)
    for tif in (cohort_copy / folders[3]).glob("*.tif"):
        tif.write_bytes(b"not a tif")  # reading the test patient would fail
    model_dir = tmp_path / "model"
    save_classifier(flair_classifier(), Preprocessing(image_size=64), {"arch": "stub"}, model_dir, min_area_px=1,
                    val_fold=0)
    return cohort_copy, splits, model_dir, patients


def test_calibrate_writes_a_copy_with_the_validation_threshold(calibration_inputs, tmp_path):
    from gliomics.models.gate import load_classifier
    from gliomics.stages.train_classifier import run_calibrate_classifier
    from gliomics.stages.evaluate_classifier import run_evaluate_classifier

    data, splits, model_dir, patients = calibration_inputs
    summary = run_calibrate_classifier(model_dir, splits, data, val_fold=0)
    out = tmp_path / "model-calibrated"
    assert summary["out_dir"] == str(out) and summary["previous_threshold"] == 0.5
    assert summary["val_patients"] == sorted(patients[:2])

    # The threshold is the most accurate one on the validation patients' slices, re-scored independently.
    per_slice = tmp_path / "val"
    run_evaluate_classifier(data, str(model_dir), per_slice, patients=patients[:2], log_mlflow=False)
    frame = pd.read_csv(per_slice / "per_slice.csv")
    expected = best_accuracy_threshold(frame["label"], frame["prob"])
    assert summary["threshold"] == pytest.approx(expected) and summary["n_val_slices"] == len(frame)
    assert summary["val_accuracy"] >= summary["val_accuracy_at_default"]

    calibrated, preprocessing, metadata = load_classifier(str(out))
    original, original_preprocessing, _ = load_classifier(str(model_dir))
    assert preprocessing.threshold == pytest.approx(expected) and original_preprocessing.threshold == 0.5
    assert metadata["threshold_selection"]["method"] == "validation" and metadata["val_fold"] == 0
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_array_equal(calibrated.predict(x, verbose=0), original.predict(x, verbose=0))

    # A fixed setting just records the number; the calibrated copy can itself be recalibrated.
    fixed = run_calibrate_classifier(out, splits, data, val_fold=0, out_dir=tmp_path / "fixed", setting=0.5)
    assert fixed["threshold"] == 0.5 and fixed["previous_threshold"] == pytest.approx(expected)


def test_calibrate_refuses_a_model_splits_mismatch(calibration_inputs, tmp_path, capsys):
    from gliomics.cli import main
    from gliomics.stages.train_classifier import run_calibrate_classifier

    data, splits, model_dir, patients = calibration_inputs
    # The model was validated on fold 0; classifier.val_fold 1 is another fold.
    with pytest.raises(GliomicsError, match=r"splits.csv: the model .*MLmodel was validated on fold 0, not "
                                            r"classifier.val_fold 1"):
        run_calibrate_classifier(model_dir, splits, data, val_fold=1)

    # Through the CLI: one line naming the splits file, exit 2.
    params = tmp_path / "params.yaml"
    params.write_text("profile: demo\nclassifier:\n  demo:\n    val_fold: 1\n")
    code = main(["calibrate-classifier", "--params", str(params), "--model", str(model_dir), "--splits", str(splits),
                 "--data", str(data), "--out", str(tmp_path / "never")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(splits) in err and "Traceback" not in err
    assert not (tmp_path / "never").exists()

    # A model validated on other patients (recorded by training) is refused too.
    from gliomics.models.preprocessing import Preprocessing
    from gliomics.training.export import save_classifier

    other = tmp_path / "other"
    save_classifier(attach_threshold(flair_classifier(), choice_at(0.4)), Preprocessing(image_size=64),
                    {"arch": "stub"}, other, min_area_px=1)
    with pytest.raises(GliomicsError, match="fold 0 holds other patients than the model"):
        run_calibrate_classifier(other, splits, data, val_fold=0)
    with pytest.raises(GliomicsError, match="not a local MLflow model folder"):
        run_calibrate_classifier(tmp_path / "nowhere", splits, data, val_fold=0)
