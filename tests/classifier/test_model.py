"""The ResNet slice classifier: requested activation and pooling are in the graph, nothing else."""

from __future__ import annotations

import numpy as np
import pytest

import gliomics  # noqa: F401  (first: TF_USE_LEGACY_KERAS)
import tensorflow as tf
from gliomics.errors import GliomicsError
from gliomics.models import build_from_config
from gliomics.models.resnet_classifier import build_slice_classifier

# A narrow 14-layer bottleneck net (ResNet50 blocks, one per stage): quick to build.
SMALL = {"input_shape": (32, 32, 3), "base_filters": 4, "stage_blocks": (1, 1, 1, 1)}
POOL_CLASS = {"max": "MaxPooling2D", "avg": "AveragePooling2D"}
HEAD_CLASS = {"avg": "GlobalAveragePooling2D", "max": "GlobalMaxPooling2D"}
# Every hidden activation of a v1 ResNet: the stem's, then per block one inside (basic) or two
# (bottleneck) plus the one after the residual addition.
HIDDEN_COUNT = {18: 1 + 8 * 2, 34: 1 + 16 * 2, 50: 1 + 16 * 3, "small": 1 + 4 * 3}


def applied(layer) -> str | None:
    """The non-linearity a layer applies, read from its config (independent of the builder's helpers)."""
    config = layer.get_config()
    if type(layer).__name__ in ("ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax"):
        return type(layer).__name__
    name = config.get("activation")
    return None if name in (None, "linear") else name


@pytest.mark.parametrize(("depth", "activation", "stem_pooling", "head_pooling"), [
    (18, "sigmoid", "avg", "max"), ("small", "relu", "max", "avg"), ("small", "sigmoid", "avg", "max"),
    ("small", "elu", "max", "max"), ("small", "leaky_relu", "avg", "avg"), ("small", "swish", "max", "avg"),
    ("small", "gelu", "avg", "max"),
])
def test_requested_activation_and_pooling_are_in_the_graph(depth, activation, stem_pooling, head_pooling):
    size = {"input_shape": (32, 32, 3)} if depth == 18 else SMALL
    model = build_slice_classifier(18 if depth == 18 else 50, activation=activation, stem_pooling=stem_pooling,
                                   head_pooling=head_pooling, **size)
    (output,) = [layer for layer in model.layers if layer.name in model.output_names]
    hidden = {layer.name: applied(layer) for layer in model.layers
              if layer is not output and applied(layer) is not None}
    assert len(hidden) == HIDDEN_COUNT[depth]
    assert set(hidden.values()) == {activation}
    assert all(type(model.get_layer(n)).__name__ == "Activation" for n in hidden)

    pools = [type(layer).__name__ for layer in model.layers if "Pooling" in type(layer).__name__]
    assert sorted(pools) == sorted([POOL_CLASS[stem_pooling], HEAD_CLASS[head_pooling]])

    # One sigmoid probability per slice, in float32.
    assert applied(output) == "sigmoid" and output.dtype == "float32"
    assert model.output_shape == (None, 1)
    prob = model(np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32"), training=False).numpy()
    assert prob.shape == (2, 1) and ((prob > 0) & (prob < 1)).all()
    # The options add or remove no weights.
    reference = build_slice_classifier(18 if depth == 18 else 50, **size)
    assert [w.shape for w in model.weights] == [w.shape for w in reference.weights]


def test_activation_changes_the_function():
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    outputs = {}
    for activation in ("relu", "sigmoid"):
        tf.keras.utils.set_random_seed(0)
        outputs[activation] = build_slice_classifier(50, activation=activation, **SMALL)(x, training=False).numpy()
    assert not np.allclose(outputs["relu"], outputs["sigmoid"])


@pytest.mark.slow
@pytest.mark.parametrize(("depth", "trainable"), [(18, 11_176_512), (34, 21_284_672), (50, 23_508_032)])
def test_depths_are_the_published_resnets(depth, trainable):
    """Trainable weights without the 1-unit head equal torchvision's ResNet18/34/50 without their fc."""
    model = build_slice_classifier(depth, input_shape=(64, 64, 3))
    head = model.get_layer("logit").count_params()
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) - head == trainable
    assert len([l for l in model.layers if type(l).__name__ == "Activation"]) - 1 == HIDDEN_COUNT[depth]
    assert len([l for l in model.layers if type(l).__name__ == "Add"]) == {18: 8, 34: 16, 50: 16}[depth]


def test_build_from_config_and_bad_options():
    model = build_from_config({"arch": "resnet_classifier", "depth": 50, "base_filters": 4,
                               "stage_blocks": [1, 1, 1, 1], "input_shape": [32, 32, 3], "activation": "elu"})
    assert model.name == "resnet14_classifier_elu_max_avg"
    for config, message in [
        ({"depth": 101}, "unknown depth 101; allowed: 18, 34, 50"),
        ({"activation": "tanh"}, "allowed: relu, sigmoid, elu, leaky_relu, swish, gelu"),
        ({"stem_pooling": "min"}, "unknown stem_pooling 'min'"),
        ({"head_pooling": "flatten"}, "unknown head_pooling 'flatten'"),
        ({"input_shape": (30, 30, 3)}, "multiples of 32"),
        ({"base_filters": 0}, "base_filters must be a positive int"),
        ({"depth": 18, "stage_blocks": None}, "ResNet18 needs base_filters=64"),
        ({"stage_blocks": [1, 1, 1]}, "stage_blocks must be 4 positive ints"),
        ({"backbone": "resnet18"}, "unknown model config key"),
    ]:
        with pytest.raises(GliomicsError, match=message):
            build_from_config({"arch": "resnet_classifier", **SMALL, **config})


def test_saved_model_needs_no_keras_cv(tmp_path):
    """The swapped graph holds only built-in layers: it reloads in plain tf.keras."""
    model = build_slice_classifier(50, activation="leaky_relu", stem_pooling="avg", **SMALL)
    model.save(tmp_path / "m.keras")
    loaded = tf.keras.models.load_model(tmp_path / "m.keras", compile=False)
    assert {type(l).__module__.split(".")[0] for l in loaded.layers} == {"tf_keras"}
    x = np.ones((1, 32, 32, 3), np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-6)


@pytest.mark.parametrize("momentum", [0.9, 0.99])
def test_bn_momentum_is_in_the_graph_and_used(momentum):
    """Every batch norm has the momentum; one training-mode call moves the moving mean by
    (1 - momentum) of the batch mean (Keras: new = momentum * old + (1 - momentum) * batch)."""
    model = build_slice_classifier(50, bn_momentum=momentum, **SMALL)
    norms = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    assert len(norms) == 1 + 4 * 4  # the stem's, then per bottleneck block 3 + the projection shortcut's
    assert {layer.get_config()["momentum"] for layer in norms} == {momentum}

    bn = norms[0]
    np.testing.assert_array_equal(bn.moving_mean.numpy(), 0.0)
    x = np.random.default_rng(0).normal(loc=np.arange(bn.input_shape[-1]), size=(4, *bn.input_shape[1:]))
    bn(x.astype("float32"), training=True)
    np.testing.assert_allclose(bn.moving_mean.numpy(), (1 - momentum) * x.mean(axis=(0, 1, 2)), rtol=1e-4,
                               atol=1e-6)


def test_bn_momentum_default_and_bad_values():
    model = build_from_config({"arch": "resnet_classifier", "depth": 50, **SMALL})
    assert {l.momentum for l in model.layers if type(l).__name__ == "BatchNormalization"} == {0.9}
    for bad in (1.0, -0.1, "0.9", True):
        with pytest.raises(GliomicsError, match="bn_momentum must be in"):
            build_slice_classifier(50, bn_momentum=bad, **SMALL)
