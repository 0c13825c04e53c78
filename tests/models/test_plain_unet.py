"""The hand-written Buda-style U-Net, the config registry and saving."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import gliomics  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS / SM_FRAMEWORK)
import gliomics.models as gm
import tensorflow as tf
from gliomics.models import ModelConfigError

from .graph import POOL_CLASS, applied_activation, inspect_graph, tiny_batch, weight_shapes

SMALL = {"input_shape": (32, 32, 3), "base_filters": 4, "depth": 2}


@pytest.mark.parametrize(
    ("activation", "pooling"),
    [("relu", "max"), ("elu", "avg"), ("leaky_relu", "max"), ("swish", "avg"), ("gelu", "max")],
)
def test_plain_unet_has_the_requested_activation_and_pooling(activation, pooling):
    model = gm.build_plain_unet(**SMALL, activation=activation, pooling=pooling)
    graph = inspect_graph(model)
    # Two conv blocks per level (encoder, decoder) and in the bottleneck.
    assert list(graph["hidden"].values()) == [activation] * (2 * (2 * 2 + 1))
    assert [type(p).__name__ for p in graph["pools"]] == [POOL_CLASS[pooling]] * 2
    (output,) = graph["outputs"]
    assert applied_activation(output) == "sigmoid" and model.output_shape == (None, 32, 32, 1)
    # The choices add no weights: same as the relu/max network.
    reference = gm.build_plain_unet(**SMALL)
    assert weight_shapes(model) == weight_shapes(reference)
    prediction = model(tiny_batch(size=32), training=False).numpy()
    assert prediction.shape == (2, 32, 32, 1) and ((prediction >= 0) & (prediction <= 1)).all()


def test_plain_unet_default_is_buda_sized():
    model = gm.build_plain_unet()  # 128x128x3, 4 levels, 32 base filters, batch norm
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 7_763_041  # Buda et al.'s U-Net (PyTorch count)
    assert model.output_shape == (None, 128, 128, 1)
    no_bn = gm.build_plain_unet(**SMALL, batch_norm=False, classes=3)
    assert not [l for l in no_bn.layers if "BatchNormalization" in type(l).__name__]
    assert no_bn.output_shape == (None, 32, 32, 3)


def test_batch_norm_momentum_follows_the_pytorch_reference():
    """PyTorch's BatchNorm2d momentum 0.1 is Keras' 0.9: one batch moves the moving mean by 10 %."""
    def bn_layers(model):
        return [l for l in model.layers if isinstance(l, tf.keras.layers.BatchNormalization)]

    default = gm.build_plain_unet(**SMALL)
    assert {l.momentum for l in bn_layers(default)} == {0.9}
    slow = gm.build_plain_unet(**SMALL, bn_momentum=0.99)
    assert {l.momentum for l in bn_layers(slow)} == {0.99}
    # One training-mode step: moving_mean = 0.9 * 0 + 0.1 * batch mean.
    layer = default.get_layer("enc1_bn1")
    assert np.allclose(layer.moving_mean.numpy(), 0)
    batch = tiny_batch(size=32)
    conv_out = tf.keras.Model(default.input, default.get_layer("enc1_conv1").output)(batch).numpy()
    default(batch, training=True)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * conv_out.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
    assert gm.build_from_config({"arch": "plain_unet", **SMALL, "bn_momentum": 0.5}).get_layer("enc1_bn1").momentum == 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_shape": (34, 34, 3)}, "multiples of 4"),
        ({"depth": 0}, "depth must be a positive int"),
        ({"activation": "relu6"}, "unknown activation 'relu6'; allowed:"),
        ({"pooling": "average"}, "unknown pooling 'average'; allowed: max, avg"),
        ({"bn_momentum": 1.0}, r"bn_momentum must be in \[0, 1\)"),
    ],
)
def test_plain_unet_bad_options(kwargs, message):
    with pytest.raises(ModelConfigError, match=message):
        gm.build_plain_unet(**{**SMALL, **kwargs})


def test_build_from_config():
    model = gm.build_from_config(
        {"arch": "Plain_UNet", "input_shape": [32, 32, 3], "base_filters": 4, "depth": 2, "activation": "elu", "pooling": "avg"}
    )
    graph = inspect_graph(model)
    assert set(graph["hidden"].values()) == {"elu"}
    assert {type(p).__name__ for p in graph["pools"]} == {"AveragePooling2D"}
    assert set(gm.MODEL_BUILDERS) == {"Unet", "FPN", "Linknet", "plain_unet", "resnet_classifier", "ensemble"}
    assert gm.config_keys("unet") == (
        "backbone", "activation", "pooling", "input_shape", "classes", "decoder_filters", "decoder_use_batchnorm",
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"backbone": "resnet18"}, "no 'arch'; allowed: Unet, FPN, Linknet, plain_unet"),
        ({"arch": "deeplab"}, "unknown arch 'deeplab'"),
        ({"arch": "plain_unet", "backbone": "resnet18"}, "unknown model config key.*backbone.*allowed: arch, input_shape"),
        ({"arch": "FPN", "filters": 8}, "unknown model config key.*filters.*decoder_filters"),
        ({"arch": "Unet", "backbone": "vgg16"}, "unknown backbone 'vgg16'"),
        (["arch", "Unet"], "must be a mapping"),
    ],
)
def test_build_from_config_errors(config, message):
    with pytest.raises(ValueError, match=message):
        gm.build_from_config(config)


def test_saved_model_loads_back_with_the_same_functions(tmp_path):
    model = gm.build_plain_unet(**SMALL, activation="leaky_relu", pooling="avg")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = tf.keras.models.load_model(path, compile=False, custom_objects=gm.custom_objects())
    assert set(inspect_graph(loaded)["hidden"].values()) == {"leaky_relu"}
    x = tiny_batch(size=32)
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), model(x, training=False).numpy())


def test_output_stays_float32_under_mixed_precision():
    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = gm.build_plain_unet(**SMALL)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("enc1_conv1").compute_dtype == "bfloat16"
    assert model.output.dtype == tf.float32


def test_importing_the_package_does_not_import_tensorflow():
    code = "import sys, gliomics.models as m; m.backbone_has_pooling('resnet18'); print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
