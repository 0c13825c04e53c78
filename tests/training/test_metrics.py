"""NumPy evaluation metrics and the Keras training metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gliomics  # noqa: F401
from gliomics.models.postprocess import postprocess
from gliomics.training import metrics as M


def test_dice_iou_hand_computed():
    t = np.zeros((2, 3, 3), bool)
    p = np.zeros((2, 3, 3), bool)
    t[0, 0, :3] = True          # 3 voxels
    p[0, 0, 1:3] = True         # 2 voxels, both inside
    p[1, 2, 2] = True           # 1 false positive
    # |T|=3 |P|=3 |T∩P|=2 |T∪P|=4
    assert M.dice_3d(t, p) == pytest.approx(4 / 6)
    assert M.iou_3d(t, p) == pytest.approx(2 / 4)
    # slice 0: 2*2/(3+2)=0.8; slice 1: 0 (pred only) -> mean 0.4
    assert M.per_slice_dice(t, p) == pytest.approx(0.4)


def test_empty_conventions():
    empty = np.zeros((3, 4, 4), bool)
    full = empty.copy()
    full[1, 1, 1] = True
    assert M.dice_3d(empty, empty) == 1.0
    assert M.iou_3d(empty, empty) == 1.0
    assert M.dice_3d(empty, full) == 0.0
    assert M.dice_3d(full, empty) == 0.0
    assert M.iou_3d(full, empty) == 0.0
    assert math.isnan(M.per_slice_dice(empty, empty))
    assert math.isnan(M.hausdorff_95(empty, full))
    assert math.isnan(M.hausdorff_95(full, empty))
    # empty-in-both slices are not counted
    assert M.per_slice_dice(full, full) == 1.0
    assert M.slice_dice_scores(full, full).size == 1


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        M.dice_3d(np.zeros((2, 2)), np.zeros((2, 3)))


def _brute_distances(a, b, spacing):
    """Independent: surface by explicit face-neighbour check, all-pairs distances."""
    def surface_points(m):
        pts = []
        for idx in zip(*np.nonzero(m)):
            on_surface = False
            for ax in range(m.ndim):
                for step in (-1, 1):
                    n = list(idx)
                    n[ax] += step
                    if n[ax] < 0 or n[ax] >= m.shape[ax] or not m[tuple(n)]:
                        on_surface = True
            if on_surface:
                pts.append(idx)
        return np.array(pts, float) * np.asarray(spacing, float)

    sa, sb = surface_points(a), surface_points(b)
    d = np.sqrt(((sa[:, None, :] - sb[None, :, :]) ** 2).sum(-1))
    return np.concatenate([d.min(1), d.min(0)])


@pytest.mark.parametrize("seed", range(8))
def test_hd95_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(3, 8, size=3))
    density = 0.3 if seed < 4 else 0.8   # dense masks have interiors and concave edges
    a = rng.random(shape) < density
    b = rng.random(shape) < density
    a[0, 0, 0] = b[-1, -1, -1] = True
    spacing = (1, 1, 1) if seed % 2 == 0 else (2.0, 1.0, 0.5)
    brute = _brute_distances(a, b, spacing)
    assert M.hausdorff_95(a, b, spacing) == pytest.approx(float(np.percentile(brute, 95)))
    np.testing.assert_allclose(np.sort(M.surface_distances(a, b, spacing)), np.sort(brute))


def test_hd95_known_value_and_identity():
    a = np.zeros((1, 1, 20), bool)
    b = np.zeros((1, 1, 20), bool)
    a[0, 0, 2] = True
    b[0, 0, 7] = True
    assert M.hausdorff_95(a, b) == pytest.approx(5.0)
    assert M.hausdorff_95(a, b, spacing=(1, 1, 0.5)) == pytest.approx(2.5)
    rng = np.random.default_rng(0)
    m = rng.random((4, 6, 6)) < 0.4
    assert M.hausdorff_95(m, m) == 0.0


def test_postprocess_largest_component_and_holes():
    prob = np.zeros((4, 10, 10))
    prob[1:3, 1:6, 1:6] = 0.9        # big ring-shaped blob (2 slices of 5x5)
    prob[1:3, 3, 3] = 0.1            # a hole in each slice
    prob[0, 8, 8] = 0.95             # isolated small component
    prob[3, 8:10, 0:2] = 0.7         # another small one
    prob[2, 7, 7] = 0.5              # exactly the threshold: off
    out = postprocess(prob)
    expected = np.zeros_like(out)
    expected[1:3, 1:6, 1:6] = True
    assert out.dtype == bool
    np.testing.assert_array_equal(out, expected)
    kept_hole = postprocess(prob, fill_holes=False)
    assert not kept_hole[1, 3, 3] and kept_hole.sum() == 48
    all_parts = postprocess(prob, largest_component=False)
    assert all_parts.sum() == 50 + 1 + 4
    lower = postprocess(prob, threshold=0.05, largest_component=False, fill_holes=False)
    assert lower.sum() == 50 + 1 + 4 + 1    # the 0.5 voxel now counts
    assert not postprocess(np.zeros((2, 3, 3))).any()


def test_postprocess_diagonal_counts_as_connected():
    prob = np.zeros((3, 5, 5))
    prob[0, 0, 0] = prob[1, 1, 1] = prob[2, 2, 2] = 1.0   # 26-connected chain of 3
    prob[0, 4, 4] = prob[0, 4, 3] = 1.0                    # 2 voxels
    out = postprocess(prob)
    assert out.sum() == 3 and out[1, 1, 1]


def test_per_patient_scores_and_summary():
    t_a = np.zeros((3, 4, 4), bool)
    t_a[1, :2, :2] = True                       # 4 voxels
    p_a = t_a.copy()                            # perfect
    t_b = np.zeros((2, 4, 4), bool)
    t_b[0, 0, :4] = True                        # 4 voxels
    p_b = np.zeros_like(t_b)
    p_b[0, 0, :2] = True                        # 2 inside
    p_b[1, 3, 3] = True                         # 1 outside, other slice
    t_c = np.zeros((2, 4, 4), bool)             # no tumour, none predicted
    table = M.per_patient_scores({"B": t_b, "A": t_a, "C": t_c},
                                 {"A": p_a, "B": p_b.astype(np.uint8), "C": t_c})
    assert list(table.columns[:7]) == M.PER_PATIENT_COLUMNS
    assert list(table["patient"]) == ["A", "B", "C"]
    assert list(table["n_slices"]) == [3, 2, 2]
    assert list(table["true_voxels"]) == [4, 4, 0]
    assert list(table["pred_voxels"]) == [4, 3, 0]
    np.testing.assert_allclose(table["dice_3d"], [1.0, 4 / 7, 1.0])
    np.testing.assert_allclose(table["iou_3d"], [1.0, 2 / 5, 1.0])
    assert table["hd95_px"][0] == 0.0
    assert table["hd95_px"][1] == pytest.approx(M.hausdorff_95(t_b, p_b))
    assert math.isnan(table["hd95_px"][2])
    assert list(table["n_scored_slices"]) == [1, 2, 0]
    # B: slice 0 Dice 2*2/6, slice 1 Dice 0
    np.testing.assert_allclose(table["mean_slice_dice"][:2], [1.0, (4 / 6) / 2])

    s = M.summarise(table)
    assert s["n_patients"] == 3
    assert s["mean_dice_3d"] == pytest.approx((2 + 4 / 7) / 3)
    assert s["median_dice_3d"] == 1.0
    # pooled over the 3 scored slices: (1 + 4/6 + 0) / 3
    assert s["mean_slice_dice"] == pytest.approx((1 + 4 / 6) / 3)
    import json
    json.dumps(s, allow_nan=False)


def test_per_patient_scores_mismatched_patients():
    with pytest.raises(ValueError, match="not in both"):
        M.per_patient_scores({"A": np.zeros((1, 2, 2))}, {"B": np.zeros((1, 2, 2))})


def test_keras_metrics_agree_with_numpy():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(3)
    y_true = (rng.random((6, 8, 8, 1)) < 0.3).astype(np.float32)
    y_prob = rng.random((6, 8, 8, 1)).astype(np.float32)
    y_true[0] = 0.0
    y_prob[0] = 0.1                          # empty and predicted empty -> 1
    y_prob[1] = 0.1                          # predicted empty, truth not -> 0
    hard = y_prob > 0.5
    dice = M.dice_coefficient(tf.constant(y_true), tf.constant(y_prob)).numpy()
    iou = M.iou_score(tf.constant(y_true), tf.constant(y_prob)).numpy()
    assert dice.shape == (6,)
    for i in range(6):
        assert dice[i] == pytest.approx(M.dice_3d(y_true[i], hard[i]), abs=1e-5)
        assert iou[i] == pytest.approx(M.iou_3d(y_true[i], hard[i]), abs=1e-5)
    assert dice[0] == pytest.approx(1.0) and dice[1] == pytest.approx(0.0, abs=1e-6)
    # soft versions on binary predictions equal the hard ones; bfloat16 input is fine
    soft = M.soft_dice_coefficient(tf.constant(y_true), tf.cast(hard, tf.bfloat16)).numpy()
    np.testing.assert_allclose(soft, dice, atol=1e-5)
    soft_iou = M.soft_iou_score(tf.constant(y_true), tf.constant(y_prob)).numpy()
    inter = (y_true * y_prob).sum(axis=(1, 2, 3))
    union = (y_true + y_prob).sum(axis=(1, 2, 3)) - inter
    np.testing.assert_allclose(soft_iou, (inter + 1e-6) / (union + 1e-6), rtol=1e-5)


def test_import_is_tensorflow_free():
    import subprocess
    import sys

    code = ("import sys, gliomics.training, gliomics.training.metrics as m; "
            "m.dice_3d([[1]], [[1]]); print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
