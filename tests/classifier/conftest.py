"""Fixtures of the classifier tests: stub classifiers saved as local MLflow models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gliomics  # noqa: F401  (sets the Keras environment first)
from gliomics.models.preprocessing import Preprocessing

SIZE = 64


def flair_classifier(size: int = SIZE, bias: float = -9.0, weight: float = 4.0):
    """prob = sigmoid(weight * max over pixels of the FLAIR z-score + bias): bright FLAIR -> tumour."""
    import tensorflow as tf

    inputs = tf.keras.Input((size, size, 3))
    flair = tf.keras.layers.Conv2D(1, 1, name="flair", use_bias=False)(inputs)
    pooled = tf.keras.layers.GlobalMaxPooling2D(name="pool")(flair)
    logit = tf.keras.layers.Dense(1, name="logit")(pooled)
    model = tf.keras.Model(inputs, tf.keras.layers.Activation("sigmoid", name="probability")(logit))
    model.get_layer("flair").set_weights([np.array([0.0, 1.0, 0.0], np.float32).reshape(1, 1, 3, 1)])
    model.get_layer("logit").set_weights([np.array([[weight]], np.float32), np.array([bias], np.float32)])
    return model


def constant_classifier(prob: float, size: int = SIZE):
    """Every slice gets probability ``prob``."""
    import tensorflow as tf

    inputs = tf.keras.Input((size, size, 3))
    pooled = tf.keras.layers.GlobalAveragePooling2D()(inputs)
    dense = tf.keras.layers.Dense(1, name="logit")
    logit = dense(pooled)
    model = tf.keras.Model(inputs, tf.keras.layers.Activation("sigmoid", name="probability")(logit))
    z = float(np.log(prob / (1 - prob))) if 0 < prob < 1 else (30.0 if prob >= 1 else -30.0)
    dense.set_weights([np.zeros((3, 1), np.float32), np.array([z], np.float32)])
    return model


def save_classifier_stub(model, path: Path, size: int = SIZE) -> str:
    from gliomics.training.export import save_classifier

    save_classifier(model, Preprocessing(image_size=size), {"arch": "stub"}, path, min_area_px=1)
    return str(path)


@pytest.fixture(scope="session")
def stub_classifier(tmp_path_factory) -> str:
    return save_classifier_stub(flair_classifier(), tmp_path_factory.mktemp("cls") / "flair")
