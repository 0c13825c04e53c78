"""The segmentation-models builder: the requested activation and pooling are
really in the graph, nothing else changed, and bad names fail clearly.

The graph inspection here is written independently of
``gliomics.models.swap`` so that a wrong swap rule cannot hide itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import gliomics  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS / SM_FRAMEWORK)
import gliomics.models as gm
from gliomics.models import ModelConfigError
from gliomics.models.segmenter import sm

from .graph import POOL_CLASS, SIZE, applied_activation, inspect_graph, tiny_batch, weight_shapes

keras = tf.keras

TINY_DECODERS = {"Unet": (16, 8, 8, 4, 4), "Linknet": (None, None, None, None, 4), "FPN": 16}


@pytest.fixture
def spy_sm(monkeypatch):
    """Record the unswapped model segmentation-models built inside the builder."""
    built = []
    for arch in ("Unet", "FPN", "Linknet"):
        original = getattr(sm, arch)

        def spy(*args, _original=original, **kwargs):
            model = _original(*args, **kwargs)
            built.append(model)
            return model

        monkeypatch.setattr(sm, arch, spy)
    return built


# -- the swap, per backbone family ---------------------------------------------------

CASES = [
    # arch, backbone, activation, pooling, classes
    ("Unet", "resnet18", "gelu", "avg", 1),
    ("FPN", "mobilenetv2", "relu", "max", 2),  # ReLU6 must become plain relu
    ("Linknet", "efficientnetb0", "leaky_relu", "max", 1),  # swish goes, SE gates stay
    pytest.param("Unet", "resnext50", "swish", "avg", 1, marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("arch", "backbone", "activation", "pooling", "classes"), CASES)
def test_requested_activation_and_pooling_are_in_the_graph(spy_sm, arch, backbone, activation, pooling, classes):
    model = gm.build_segmenter(
        arch, backbone, activation, pooling, (SIZE, SIZE, 3), classes=classes, decoder_filters=TINY_DECODERS[arch]
    )
    (base,) = spy_sm
    got, native = inspect_graph(model), inspect_graph(base)

    # Every hidden activation, encoder and decoder, is now the requested one,
    # replaced one for one, as an Activation layer.
    assert set(got["hidden"].values()) == {activation}
    assert got["hidden"].keys() == native["hidden"].keys()
    for name in got["hidden"]:
        layer = model.get_layer(name)
        if type(base.get_layer(name)).__name__ not in ("Conv2D", "DepthwiseConv2D", "Dense"):
            assert type(layer).__name__ == "Activation"
    assert not [l.name for l in model.layers if type(l).__name__ in ("ReLU", "LeakyReLU", "ELU", "PReLU")]
    # ... and the swap did change something the backbone had natively.
    assert set(native["hidden"].values()) - {activation}

    # Sigmoid gates (EfficientNet squeeze-and-excitation) are kept as they were.
    assert [g.name for g in got["gates"]] == [g.name for g in native["gates"]]
    assert all(applied_activation(g) == "sigmoid" for g in got["gates"])
    if backbone.startswith("efficientnet"):
        assert got["gates"] and "swish" in set(native["hidden"].values())

    # The output is still a sigmoid over (H, W, classes).
    (output,) = got["outputs"]
    assert type(output).__name__ == "Activation" and applied_activation(output) == "sigmoid"
    assert model.output_shape == (None, SIZE, SIZE, classes)

    # Every spatial pooling layer is of the requested kind, with the same window.
    assert len(got["pools"]) == len(native["pools"])
    assert all(type(p).__name__ == POOL_CLASS[pooling] for p in got["pools"])
    for new, old in zip(got["pools"], native["pools"]):
        for key in ("pool_size", "strides", "padding"):
            assert new.get_config()[key] == old.get_config()[key]
    if backbone.startswith("res"):
        assert len(got["pools"]) == 1  # the ResNet stem

    # ResNeXt's grouped-conv slices: Lambda(slice_tensor) -> ChannelSlice, one for one.
    assert not [l for l in model.layers if type(l).__name__ == "Lambda"]
    n_slices = sum(type(l).__name__ == "ChannelSlice" for l in model.layers)
    assert n_slices == sum(type(l).__name__ == "Lambda" for l in base.layers)
    assert (n_slices > 0) == (backbone == "resnext50")

    # Swapping adds and removes no weights.
    assert model.count_params() == base.count_params()
    assert weight_shapes(model) == weight_shapes(base)

    prediction = model(tiny_batch(), training=False).numpy()
    assert prediction.shape == (2, SIZE, SIZE, classes)
    assert np.isfinite(prediction).all() and (prediction >= 0).all() and (prediction <= 1).all()


def test_unchanged_choices_reproduce_the_backbone_exactly():
    """With the backbone's own choices the clone computes what segmentation-models
    built, bit for bit: weights are copied and nothing else moves."""
    base = sm.Unet(
        "resnet18", input_shape=(SIZE, SIZE, 3), classes=1, activation="sigmoid",
        encoder_weights=None, decoder_filters=TINY_DECODERS["Unet"],
    )
    x = tiny_batch()
    unchanged = gm.swap_layers(base, "relu", "max")
    np.testing.assert_array_equal(unchanged(x, training=False).numpy(), base(x, training=False).numpy())


def tiny_functional(middle):
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = middle(x)
    return keras.Model(inputs, keras.layers.Activation("sigmoid")(x))


@pytest.mark.parametrize(
    ("middle", "message"),
    [
        (lambda: keras.layers.Lambda(lambda t: 2 * t), "Lambda layer"),
        (lambda: keras.layers.PReLU(), "PReLU"),
        (lambda: keras.layers.Activation("tanh"), "activation 'tanh'"),
        (lambda: keras.layers.Conv2D(4, 1, activation="softplus"), "activation 'softplus'"),
    ],
)
def test_swap_refuses_what_it_cannot_classify(middle, message):
    with pytest.raises(ValueError, match=message):
        gm.swap_layers(tiny_functional(middle()), "relu", "max")


def test_swap_rules_on_a_tiny_graph():
    tf.keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.ReLU(max_value=6.0)(x)
    x = keras.layers.LeakyReLU()(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    gate = keras.layers.Conv2D(4, 1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D(keepdims=True)(x))
    x = keras.layers.Multiply()([x, gate])
    x = keras.layers.Conv2D(1, 1)(x)
    model = keras.Model(inputs, keras.layers.Activation("sigmoid")(x))
    swapped = gm.swap_layers(model, "gelu", "avg")
    graph = inspect_graph(swapped)
    assert list(graph["hidden"].values()) == ["gelu"] * 3
    assert [applied_activation(g) for g in graph["gates"]] == ["sigmoid"]
    (pool,) = graph["pools"]
    assert type(pool).__name__ == "AveragePooling2D" and pool.get_config()["padding"] == "same"
    assert pool.get_config()["pool_size"] == (3, 3) and pool.get_config()["strides"] == (2, 2)
    assert swapped.count_params() == model.count_params()

    # Same weights, so a difference in output comes from the one changed choice.
    x = tiny_batch(2, 8, 4)
    pairs = [
        (("relu", "max"), ("gelu", "max")),
        (("relu", "avg"), ("leaky_relu", "avg")),  # avg pooling keeps the negative part
        (("relu", "max"), ("relu", "avg")),
    ]
    for one, other in pairs:
        difference = gm.swap_layers(model, *one)(x).numpy() - gm.swap_layers(model, *other)(x).numpy()
        assert np.abs(difference).max() > 1e-6, (one, other)  # identical functions give exactly 0


def test_channel_slice_round_trips(tmp_path):
    from gliomics.models.layers import ChannelSlice

    inputs = keras.Input((8, 8, 6))
    model = keras.Model(inputs, ChannelSlice(2, 5)(inputs))
    model.save(tmp_path / "slice.keras")
    loaded = keras.models.load_model(tmp_path / "slice.keras", custom_objects=gm.custom_objects())
    x = tiny_batch(1, 8, 6)
    np.testing.assert_array_equal(loaded(x).numpy(), x[..., 2:5])


def test_pooling_avg_is_rejected_where_there_is_no_pooling_layer():
    assert gm.backbone_has_pooling("resnext50") and not gm.backbone_has_pooling("mobilenetv2")
    for backbone in ("mobilenetv2", "efficientnetb0"):
        with pytest.raises(ModelConfigError, match="no pooling layer"):
            gm.build_segmenter("Unet", backbone, "relu", "avg", (SIZE, SIZE, 3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arch": "PSPNet"}, "allowed: Unet, FPN, Linknet"),
        ({"backbone": "resnet19"}, "unknown backbone 'resnet19'; allowed: resnet18, resnet34"),
        ({"activation": "tanh"}, "allowed: relu, elu, leaky_relu, swish, gelu"),
        ({"pooling": "min"}, "unknown pooling 'min'; allowed: max, avg"),
        ({"input_shape": (100, 100, 3)}, "multiples of 32"),
        ({"input_shape": (64, 64)}, r"\(H, W, channels\)"),
        ({"classes": 0}, "classes must be a positive int"),
        ({"arch": "Unet", "decoder_filters": (16, 8)}, "5 positive ints"),
        ({"arch": "FPN", "decoder_filters": (16, 8)}, "FPN decoder_filters must be an int"),
    ],
)
def test_bad_options_are_clear_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gm.build_segmenter(**{"input_shape": (SIZE, SIZE, 3), **kwargs})
