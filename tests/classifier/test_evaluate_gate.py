"""``gliomics evaluate --task classifier`` files and numbers; the segmentation gate; bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import gliomics  # noqa: F401
from gliomics.errors import GliomicsError

from .conftest import constant_classifier, save_classifier_stub

SUMMARY_KEYS = {"n_slices", "accuracy", "roc_auc", "f1", "sensitivity", "specificity", "precision",
                "confusion_matrix", "classification_report", "patient", "n_patients", "min_area_px", "model_uri"}


def test_evaluate_classifier_writes_files_and_sklearn_numbers(small_cohort, stub_classifier, tmp_path):
    import mlflow
    from sklearn.metrics import auc, f1_score, roc_auc_score

    from gliomics import tracking
    from gliomics.data.kaggle import read_tif
    from gliomics.stages.evaluate_classifier import run_evaluate_classifier

    out = tmp_path / "eval"
    summary = run_evaluate_classifier(small_cohort, stub_classifier, out, profile="demo")
    per_slice = pd.read_csv(out / "per_slice.csv")
    assert list(per_slice.columns) == ["patient", "slice", "label", "prob"]
    assert len(per_slice) == summary["n_slices"] == len(list(small_cohort.glob("TCGA_*/*_mask.tif")))
    for name in ("per_patient.csv", "confusion_matrix.png", "roc.png"):
        assert (out / name).stat().st_size > 0
    assert SUMMARY_KEYS <= set(json.loads((out / "summary.json").read_text()))

    # Labels are the masks (any tumour pixel at the model's 64 px), independently re-read here.
    from gliomics.data.arrays import resize_mask

    for row in per_slice.itertuples():
        folder = next(small_cohort.glob(f"{row.patient}_*"))
        mask = read_tif(folder / f"{folder.name}_{row.slice}_mask.tif")
        assert row.label == int(resize_mask(mask, 64).sum() >= 1)
    labels, probs = per_slice["label"].to_numpy(), per_slice["prob"].to_numpy()
    assert 0 < labels.sum() < len(labels)
    assert summary["roc_auc"] == pytest.approx(roc_auc_score(labels, probs))
    assert summary["f1"] == pytest.approx(f1_score(labels, probs >= 0.5))
    assert summary["accuracy"] == pytest.approx(np.mean((probs >= 0.5) == labels))
    assert summary["roc_auc"] > 0.8  # the FLAIR stub separates tumour slices well
    roc = pd.read_csv(out / "roc.csv")  # the DVC plot's data: the same curve, so the same area
    assert list(roc.columns) == ["fpr", "tpr", "threshold"]
    assert auc(roc["fpr"], roc["tpr"]) == pytest.approx(summary["roc_auc"])
    assert roc["fpr"].is_monotonic_increasing and roc["threshold"].max() <= 1.0

    tracking.configure()
    runs = mlflow.search_runs(experiment_names=["evaluate_classifier"])
    assert len(runs) == 1 and runs["metrics.roc_auc"].iloc[0] == pytest.approx(summary["roc_auc"])


def test_min_area_and_patient_subset(small_cohort, stub_classifier, tmp_path):
    from gliomics.stages.evaluate_classifier import run_evaluate_classifier

    one = run_evaluate_classifier(small_cohort, stub_classifier, tmp_path / "a", log_mlflow=False)
    big = run_evaluate_classifier(small_cohort, stub_classifier, tmp_path / "b", min_area_px=50, log_mlflow=False)
    assert big["n_tumour_slices"] < one["n_tumour_slices"]
    patient = pd.read_csv(tmp_path / "a" / "per_slice.csv")["patient"].iloc[0]
    sub = run_evaluate_classifier(small_cohort, stub_classifier, tmp_path / "c", patients=[patient],
                                  log_mlflow=False)
    assert sub["n_patients"] == 1


def test_bad_inputs_are_clear(cohort_copy, stub_classifier, stub_segmenter, tmp_path):
    from gliomics.stages.evaluate_classifier import run_evaluate_classifier

    with pytest.raises(GliomicsError, match="no registered models exist yet"):
        run_evaluate_classifier(cohort_copy, "models:/gliomics-slice-classifier@champion", tmp_path / "e",
                                log_mlflow=False)
    with pytest.raises(GliomicsError, match="not a slice classifier"):
        run_evaluate_classifier(cohort_copy, stub_segmenter, tmp_path / "e", log_mlflow=False)
    with pytest.raises(GliomicsError, match="min_area_px must be >= 1"):
        run_evaluate_classifier(cohort_copy, stub_classifier, tmp_path / "e", min_area_px=0, log_mlflow=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GliomicsError):
        run_evaluate_classifier(empty, stub_classifier, tmp_path / "e", log_mlflow=False)
    for mask in cohort_copy.glob("TCGA_*/*_mask.tif"):
        mask.unlink()
    with pytest.raises(GliomicsError, match="no masks at all; evaluate needs the true masks"):
        run_evaluate_classifier(cohort_copy, stub_classifier, tmp_path / "e", log_mlflow=False)
    assert not (tmp_path / "e").exists()


def test_gated_probabilities_match_ungated_on_kept_slices(small_cohort, stub_segmenter):
    from gliomics.models import inference
    from gliomics.models.gate import predict_patient_subset
    from gliomics.models.packaging import load_segmenter
    from gliomics.data.cohort_io import cohort_patients, read_images

    model, preprocessing, _ = load_segmenter(stub_segmenter)
    root, by_folder = cohort_patients(small_cohort, need_masks=False)
    images = read_images(next(iter(by_folder.values())), root)
    keep = np.arange(len(images)) % 3 == 0
    full = inference.predict_patient(model, preprocessing, images)
    gated = predict_patient_subset(model, preprocessing, images, keep)
    np.testing.assert_allclose(gated[keep], full[keep], rtol=1e-5, atol=1e-6)
    assert not gated[~keep].any() and full[~keep].any()


@pytest.mark.slow  # an end-to-end stage run: `make test`, not `make test-fast`
def test_segment_gate_skips_negative_slices(small_cohort, stub_segmenter, stub_classifier, tmp_path):
    import tifffile

    from gliomics.stages.segment import run_segment

    never = save_classifier_stub(constant_classifier(0.01), tmp_path / "never")
    always = save_classifier_stub(constant_classifier(0.99), tmp_path / "always")
    plain = run_segment(small_cohort, stub_segmenter, tmp_path / "plain", log_mlflow=False)
    kept = run_segment(small_cohort, stub_segmenter, tmp_path / "kept", log_mlflow=False, gate=always)
    skipped = run_segment(small_cohort, stub_segmenter, tmp_path / "none", log_mlflow=False, gate=never,
                          gate_threshold=0.5)
    assert "gate_uri" not in plain
    assert kept["tumour_voxels"] == plain["tumour_voxels"] and kept["gate_skipped_slices"] == 0
    assert skipped["gate_skipped_slices"] == skipped["gate_slices"] == plain["n_slices"]
    assert sum(plain["tumour_voxels"].values()) > 0 and sum(skipped["tumour_voxels"].values()) == 0
    masks = list((tmp_path / "none").glob("TCGA_*/*_mask.tif"))
    assert len(masks) == plain["n_slices"] and all(tifffile.imread(m).max() == 0 for m in masks)

    # The FLAIR classifier: only slices it calls negative get emptied.
    gated = run_segment(small_cohort, stub_segmenter, tmp_path / "flair", log_mlflow=False, gate=stub_classifier)
    assert 0 < gated["gate_skipped_slices"] < gated["gate_slices"]
    assert sum(gated["tumour_voxels"].values()) <= sum(plain["tumour_voxels"].values())

    # evaluate takes the same gate (to measure what it does to 3D Dice).
    from gliomics.stages.evaluate import run_evaluate

    s = run_evaluate(small_cohort, stub_segmenter, tmp_path / "ev", log_mlflow=False, gate=never)
    assert s["gate_skipped_slices"] == plain["n_slices"]
    with pytest.raises(GliomicsError, match="not a slice classifier"):
        run_segment(small_cohort, stub_segmenter, tmp_path / "x", log_mlflow=False, gate=stub_segmenter)


def test_gate_threshold_zero_means_the_classifiers_own(tmp_path):
    """segment.gate_threshold 0 (the default) uses the threshold stored with the classifier."""
    import gliomics.models.gate as gate_module
    from gliomics.models.preprocessing import Preprocessing
    from gliomics.training.export import save_classifier

    from .conftest import SIZE, constant_classifier

    path = tmp_path / "calibrated"
    save_classifier(constant_classifier(0.3), Preprocessing(image_size=SIZE, threshold=0.25), {"arch": "stub"}, path,
                    min_area_px=1)
    assert gate_module.load_gate(str(path), 0).threshold == 0.25
    assert gate_module.load_gate(str(path), None).threshold == 0.25
    assert gate_module.load_gate(str(path), 0.5).threshold == 0.5
