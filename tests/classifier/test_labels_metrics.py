"""Labels from masks (minimum area) and the classification metrics, against sklearn on a fixed toy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gliomics.errors import GliomicsError
from gliomics.training.classification import mask_areas, patient_scores, slice_labels, slice_scores


def test_labels_use_the_minimum_area():
    pixels = np.array([0, 1, 2, 5, 100])
    assert slice_labels(pixels).tolist() == [0, 1, 1, 1, 1]
    assert slice_labels(pixels, 3).tolist() == [0, 0, 0, 1, 1]
    with pytest.raises(GliomicsError, match="min_area_px must be >= 1"):
        slice_labels(pixels, 0)


def test_mask_areas_are_counted_at_the_model_size():
    masks = np.zeros((3, 256, 256), np.uint8)
    masks[1, 10:12, 10:12] = 255  # 4 px at 256 -> 0.25 px at 64: vanishes (area average < 0.5)
    masks[2, 100:140, 100:140] = 255  # 40x40 -> 10x10 at 64
    assert mask_areas(masks, 256).tolist() == [0, 4, 1600]
    assert mask_areas(masks, 64).tolist() == [0, 0, 100]


def test_store_labels_follow_min_area(small_cohort, tmp_path):
    """Training/validation labels come from the array store's index, counted on its (resized) masks."""
    from gliomics.data.arrays import build_array_store, open_array_store
    from gliomics.training.tasks import ClassificationTask

    build_array_store(small_cohort, tmp_path / "s", image_size=32)
    store = open_array_store(tmp_path / "s")
    pixels = np.asarray(store.masks).reshape(len(store.index), -1).sum(axis=1)
    np.testing.assert_array_equal(store.index["tumour_pixels"].to_numpy(), pixels)
    small = int(np.median(pixels[pixels > 0]))
    labels = slice_labels(store.index["tumour_pixels"], small)
    assert 0 < labels.sum() < (pixels > 0).sum()
    np.testing.assert_array_equal(labels, (pixels >= small).astype(int))

    # The training targets of a batch: tumour pixels of each (augmented) mask >= min_area_px.
    import tensorflow as tf

    masks = np.zeros((3, 8, 8, 1), np.float32)
    masks[1, 0, :2] = 1
    masks[2, :3, :3] = 1
    _, y = ClassificationTask(min_area_px=3).targets(tf.zeros((3, 8, 8, 3)), tf.constant(masks))
    assert y.numpy().ravel().tolist() == [0.0, 0.0, 1.0] and y.shape == (3, 1)


TOY_LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 0, 1, 0])
TOY_PROBS = np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.9, 0.2, 0.05, 0.6, 0.5])


def test_slice_scores_match_sklearn():
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    scores = slice_scores(TOY_LABELS, TOY_PROBS, threshold=0.5)
    pred = (TOY_PROBS >= 0.5).astype(int)  # 0.5 counts as tumour
    assert pred.tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 1, 1]
    assert scores["confusion_matrix"] == [[4, 2], [1, 3]]
    assert scores["accuracy"] == pytest.approx(accuracy_score(TOY_LABELS, pred)) == pytest.approx(0.7)
    assert scores["sensitivity"] == pytest.approx(recall_score(TOY_LABELS, pred)) == pytest.approx(0.75)
    assert scores["specificity"] == pytest.approx(recall_score(1 - TOY_LABELS, 1 - pred)) == pytest.approx(4 / 6)
    assert scores["precision"] == pytest.approx(precision_score(TOY_LABELS, pred)) == pytest.approx(0.6)
    assert scores["f1"] == pytest.approx(f1_score(TOY_LABELS, pred)) == pytest.approx(2 / 3)
    assert scores["roc_auc"] == pytest.approx(roc_auc_score(TOY_LABELS, TOY_PROBS)) == pytest.approx(18 / 24)
    assert scores["n_slices"] == 10 and scores["n_tumour_slices"] == 4


def test_one_class_has_no_auc():
    scores = slice_scores([0, 0, 0], [0.1, 0.6, 0.2])
    assert scores["roc_auc"] is None and scores["sensitivity"] is None
    assert scores["specificity"] == pytest.approx(2 / 3)


def test_patient_scores():
    frame = pd.DataFrame({"patient": ["A"] * 4 + ["B"] * 3 + ["C"] * 3,
                          "label": TOY_LABELS, "prob": TOY_PROBS})
    table, summary = patient_scores(frame, threshold=0.5)
    # A has no tumour slice (but one false positive), so the patient is a false positive.
    assert table["label"].tolist() == [0, 1, 1] and table["pred"].tolist() == [1, 1, 1]
    assert table["slice_accuracy"].tolist() == pytest.approx([0.75, 2 / 3, 2 / 3])
    assert summary["n_patients"] == 3 and summary["accuracy"] == pytest.approx(2 / 3)
    assert summary["sensitivity"] == 1.0 and summary["specificity"] == 0.0
    assert summary["min_slice_accuracy"] == pytest.approx(2 / 3)
