"""Segmentation losses: values, gradients, mixed precision and serialisation."""

from __future__ import annotations

import numpy as np
import pytest

import gliomics  # noqa: F401

tf = pytest.importorskip("tensorflow")
from gliomics.training import losses as L  # noqa: E402
from gliomics.training import metrics as M  # noqa: E402


def _masks(seed=0, shape=(4, 8, 8, 1)):
    rng = np.random.default_rng(seed)
    y_true = (rng.random(shape) < 0.3).astype(np.float32)
    y_pred = np.clip(rng.random(shape), 0.01, 0.99).astype(np.float32)
    return tf.constant(y_true), tf.constant(y_pred)


def test_dice_loss_hand_computed_and_perfect():
    y_true = tf.constant([[[1.0], [1.0], [0.0], [0.0]]])
    y_pred = tf.constant([[[1.0], [0.5], [0.5], [0.0]]])
    # Σpg = 1.5, Σp + Σg = 2 + 2 -> D = (3 + 1) / (4 + 1)
    assert float(L.dice_loss(y_true, y_pred)) == pytest.approx(1 - 4 / 5, abs=1e-6)
    y, _ = _masks()
    assert float(L.dice_loss(y, y)) == pytest.approx(0.0, abs=1e-6)
    assert float(L.get_loss("dice")(y, y)) == pytest.approx(0.0, abs=1e-6)
    assert float(L.get_loss("dice", per_image=True)(y, y)) == pytest.approx(0.0, abs=1e-6)
    assert float(L.get_loss("focal_tversky")(y, y)) < 1e-4
    wrong = 1.0 - y
    assert float(L.dice_loss(y, wrong)) > 0.9


def test_per_image_reduction():
    y_true = tf.constant(np.stack([np.ones((2, 2, 1)), np.zeros((2, 2, 1))]).astype(np.float32))
    y_pred = tf.constant(np.stack([np.ones((2, 2, 1)), np.ones((2, 2, 1))]).astype(np.float32))
    # per image: D1 = (8+1)/(8+1) = 1, D2 = 1/(4+1) -> loss 1 - (1 + 0.2)/2
    assert float(L.DiceLoss(per_image=True)(y_true, y_pred)) == pytest.approx(0.4, abs=1e-6)
    # batch-global: Σpg=4, Σp+Σg=12 -> 1 - 9/13
    assert float(L.DiceLoss()(y_true, y_pred)) == pytest.approx(1 - 9 / 13, abs=1e-6)


def test_bce_part_matches_keras():
    y_true, y_pred = _masks(1)
    bce = tf.keras.losses.BinaryCrossentropy()(y_true, y_pred)
    combined = L.bce_dice_loss(y_true, y_pred)
    assert float(combined - L.dice_loss(y_true, y_pred)) == pytest.approx(float(bce), rel=1e-5)
    assert float(L.binary_crossentropy(y_true, y_pred)) == pytest.approx(float(bce), rel=1e-5)
    by_name = L.get_loss("bce_dice")(y_true, y_pred)
    assert float(by_name) == pytest.approx(float(combined), rel=1e-6)
    weighted = L.get_loss("bce+dice", bce_weight=0.0, dice_weight=2.0)(y_true, y_pred)
    assert float(weighted) == pytest.approx(2 * float(L.dice_loss(y_true, y_pred)), rel=1e-6)


@pytest.mark.parametrize("per_image", [False, True])
def test_focal_tversky_reduces_to_dice(per_image):
    y_true, y_pred = _masks(2)
    ftl = L.focal_tversky_loss(alpha=0.5, beta=0.5, gamma=1.0, smooth=0.5, per_image=per_image)
    dice = L.DiceLoss(smooth=1.0, per_image=per_image)
    assert float(ftl(y_true, y_pred)) == pytest.approx(float(dice(y_true, y_pred)), rel=1e-5)


def test_focal_tversky_hand_computed():
    y_true = tf.constant([[[1.0], [1.0], [0.0], [0.0]]])
    y_pred = tf.constant([[[1.0], [0.5], [0.5], [0.0]]])
    tp, fn, fp = 1.5, 0.5, 0.5
    ti = (tp + 1) / (tp + 0.7 * fn + 0.3 * fp + 1)
    value = float(L.focal_tversky_loss()(y_true, y_pred))
    assert value == pytest.approx((1 - ti) ** 0.75, rel=1e-5)
    # alpha > beta: a false negative costs more than a false positive
    miss = tf.constant([[[1.0], [0.0], [0.0], [0.0]]])
    extra = tf.constant([[[1.0], [1.0], [1.0], [0.0]]])
    ftl = L.focal_tversky_loss()
    assert float(ftl(y_true, miss)) > float(ftl(y_true, extra))


@pytest.mark.parametrize("name", ["dice", "bce_dice", "focal_tversky"])
def test_gradients_finite_including_perfect_and_bfloat16(name):
    loss = L.get_loss(name)
    y_true, y_pred = _masks(3)
    for pred in (y_pred, y_true, tf.zeros_like(y_true)):
        logits = tf.Variable(tf.math.log(tf.clip_by_value(pred, 1e-3, 1 - 1e-3)
                                         / (1 - tf.clip_by_value(pred, 1e-3, 1 - 1e-3))))
        with tf.GradientTape() as tape:
            probs = tf.cast(tf.sigmoid(logits), tf.bfloat16)
            value = loss(y_true, probs)
        assert value.dtype == tf.float32
        grad = tape.gradient(value, logits)
        assert np.isfinite(float(value))
        assert grad is not None and np.all(np.isfinite(grad.numpy()))
    # the gradient points the right way: one descent step lowers the loss
    logits = tf.Variable(tf.zeros_like(y_true))
    with tf.GradientTape() as tape:
        before = loss(y_true, tf.sigmoid(logits))
    logits.assign_sub(5.0 * tape.gradient(before, logits))
    assert float(loss(y_true, tf.sigmoid(logits))) < float(before)


@pytest.mark.parametrize("name", ["dice", "bce_dice", "focal_tversky"])
def test_gradient_finite_at_exact_perfect_prediction(name):
    y_true, _ = _masks(5)
    probs = tf.Variable(y_true)
    with tf.GradientTape() as tape:
        value = L.get_loss(name, gamma=0.75)(y_true, probs) if name == "focal_tversky" \
            else L.get_loss(name)(y_true, probs)
    grad = tape.gradient(value, probs)
    assert float(value) < 1e-3
    assert np.all(np.isfinite(grad.numpy()))


def test_get_loss_errors():
    with pytest.raises(ValueError, match="unknown loss 'hinge'.*bce_dice"):
        L.get_loss("hinge")
    with pytest.raises(ValueError, match="bad parameters"):
        L.get_loss("dice", alpha=0.3)
    assert isinstance(L.get_loss("Focal-Tversky", gamma=1.0), L.FocalTverskyLoss)
    assert L.loss_names() == ["bce_dice", "dice", "focal_tversky"]


def test_config_round_trip():
    ftl = L.focal_tversky_loss(alpha=0.6, beta=0.4, gamma=1.2, per_image=True)
    ser = tf.keras.losses.serialize(ftl)
    back = tf.keras.losses.deserialize(ser)
    assert isinstance(back, L.FocalTverskyLoss)
    assert (back.alpha, back.beta, back.gamma, back.per_image) == (0.6, 0.4, 1.2, True)
    assert tf.keras.losses.get("gliomics>bce_dice_loss") is L.bce_dice_loss


@pytest.mark.parametrize("loss_name", ["bce_dice_fn", "focal_tversky"])
def test_model_save_and_load(tmp_path, loss_name):
    loss = L.bce_dice_loss if loss_name == "bce_dice_fn" else L.focal_tversky_loss(gamma=1.5)
    inputs = tf.keras.Input((8, 8, 1))
    outputs = tf.keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs)
    model = tf.keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss=loss, metrics=M.keras_metrics())
    x, y = _masks(4)
    model.fit(x, y, epochs=1, batch_size=2, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = tf.keras.models.load_model(path, custom_objects=L.custom_objects())
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    a = model.evaluate(x, y, verbose=0, return_dict=True)
    b = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert set(a) == {"loss", "dice_coefficient", "iou_score",
                      "soft_dice_coefficient", "soft_iou_score"}
    for key in a:
        assert b[key] == pytest.approx(a[key], rel=1e-5)
