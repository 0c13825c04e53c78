"""Graph inspection for the model tests, written independently of ``gliomics.models.swap`` so that a
wrong swap rule cannot hide itself."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import gliomics  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS)

keras = tf.keras

SIZE = 64
SPATIAL_POOLS = ("MaxPooling2D", "AveragePooling2D")
POOL_CLASS = {"max": "MaxPooling2D", "avg": "AveragePooling2D"}


# -- independent graph inspection ------------------------------------------------


def applied_activation(layer) -> str | None:
    """The non-linearity a layer applies (None for none), read from its class,
    its config and its function, which must agree."""
    cls = type(layer).__name__
    config = layer.get_config()
    if cls == "ReLU":
        if config["max_value"] is not None:
            return f"relu{float(config['max_value']):g}"
        return "leaky_relu" if float(config["negative_slope"]) else "relu"
    if cls in ("LeakyReLU", "ELU", "PReLU", "ThresholdedReLU", "Softmax"):
        return {"LeakyReLU": "leaky_relu", "ELU": "elu"}.get(cls, cls)
    if "activation" not in config:
        return None
    name = layer.activation.__name__
    assert config["activation"] == name, f"{layer.name}: config {config['activation']!r} vs function {name!r}"
    return None if name == "linear" else name


def consumers(layer) -> list:
    return [node.outbound_layer for node in layer._outbound_nodes]


def inspect_graph(model) -> dict:
    """Hidden activations (layer -> name), sigmoid gates, the output layer, pools."""
    output_names = set(model.output_names)
    hidden, gates, outputs, pools = {}, [], [], []
    for layer in model.layers:
        name = applied_activation(layer)
        if layer.name in output_names:
            outputs.append(layer)
        elif name == "sigmoid" and consumers(layer) and all(
            type(c).__name__ == "Multiply" for c in consumers(layer)
        ):
            gates.append(layer)  # squeeze-and-excitation gate: scales channels
        elif name is not None:
            hidden[layer.name] = name
        if type(layer).__name__ in SPATIAL_POOLS:
            pools.append(layer)
    return {"hidden": hidden, "gates": gates, "outputs": outputs, "pools": pools}


def weight_shapes(model) -> list[tuple]:
    return [tuple(w.shape) for w in model.weights]


def tiny_batch(n=2, size=SIZE, channels=3):
    return np.random.default_rng(0).normal(size=(n, size, size, channels)).astype("float32")
