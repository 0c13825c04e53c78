"""Swap a built model's hidden activations and spatial pooling by cloning it.

:func:`swap_layers` rebuilds a functional model with
``tf.keras.models.clone_model`` and a clone function that replaces layers one
for one (same name, same position in the graph, no weights added or removed)
and then copies the original weights across. The rules, by layer:

* ``Activation`` layers and the fused ``activation=`` of Conv/Dense layers:
  a rectifier-like *hidden* function (:data:`HIDDEN_FUNCTIONS`: relu, relu6,
  elu, selu, swish/silu, gelu, leaky_relu, mish) becomes the requested one;
  a gate or identity (:data:`KEPT_FUNCTIONS`: sigmoid, hard_sigmoid, linear)
  is kept, e.g. EfficientNet's squeeze-and-excitation sigmoid gate, which
  scales channels and would stop being a gate if unbounded.
* ``ReLU`` (including MobileNetV2's ``ReLU(max_value=6)``), ``LeakyReLU`` and
  ``ELU`` layers become ``Activation(requested)``.
* The model's output layer is kept as a sigmoid (rebuilt in float32, so that
  it stays float32 under a ``mixed_bfloat16`` policy).
* ``MaxPooling2D`` and ``AveragePooling2D`` become the requested kind with the
  same pool size, strides and padding. Global pooling layers (squeeze-and-
  excitation channel descriptors, not downsampling) are kept.
* ResNeXt's grouped-convolution channel slices, ``Lambda(slice_tensor)`` in
  classification-models, become :class:`~gliomics.models.layers.ChannelSlice`
  (same computation; a saved model then loads without ``safe_mode=False``).
  Any other ``Lambda`` is refused: it could hide an activation.

Anything else that applies a non-linearity it cannot classify (another
activation function, ``PReLU``, ``Softmax``...) is an error rather than being
silently left in place.
"""

from __future__ import annotations

from collections import Counter

from ._keras import keras
from .layers import ChannelSlice
from .options import ACTIVATIONS, POOLINGS, check_choice

#: Activation functions (by ``__name__``) that count as hidden non-linearities.
HIDDEN_FUNCTIONS = frozenset(
    {"relu", "relu6", "elu", "selu", "swish", "silu", "gelu", "leaky_relu", "mish"}
)
#: Functions that are kept: identity, and sigmoid gates / outputs.
KEPT_FUNCTIONS = frozenset({"linear", "sigmoid", "hard_sigmoid"})

#: The ``pooling`` option -> Keras layer class.
POOLING_LAYERS = {"max": keras.layers.MaxPooling2D, "avg": keras.layers.AveragePooling2D}

# Activation layer classes that carry no weights and become Activation(requested).
_RECTIFIER_LAYERS = (keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU)
# Activation layer classes we refuse to guess about (weights, or not hidden).
_UNSUPPORTED_LAYERS = (keras.layers.PReLU, keras.layers.ThresholdedReLU, keras.layers.Softmax)


def function_name(fn) -> str:
    """The ``__name__`` of an activation function (``"linear"`` for None)."""
    return "linear" if fn is None else getattr(fn, "__name__", repr(fn))


def _is_hidden(fn_name: str, layer) -> bool:
    if fn_name in HIDDEN_FUNCTIONS:
        return True
    if fn_name in KEPT_FUNCTIONS:
        return False
    raise ValueError(
        f"layer {layer.name!r} ({type(layer).__name__}) uses activation {fn_name!r}, "
        "which the swap rules do not know: extend gliomics.models.swap"
    )


def _replace_lambda(layer, config):
    """ResNeXt's channel-slice Lambdas -> :class:`ChannelSlice`; any other
    Lambda is refused, since it could hide an activation."""
    function = layer.function
    if getattr(function, "__name__", "") == "slice_tensor" and "classification_models" in getattr(
        function, "__module__", ""
    ):
        return ChannelSlice(**layer.arguments, name=layer.name, dtype=config.get("dtype"))
    raise ValueError(f"Lambda layer {layer.name!r} ({function!r}) is not supported by the swap rules")


def swap_layers(model, activation: str, pooling: str, *, keep_weights: bool = True):
    """A clone of ``model`` with every hidden activation set to ``activation``
    and every 2D max/average pooling layer set to ``pooling`` (see the module
    docstring for the exact rules). Weights are copied when ``keep_weights``."""
    check_choice("activation", activation, ACTIVATIONS)
    pool_class = POOLING_LAYERS[check_choice("pooling", pooling, POOLINGS)]
    outputs = set(model.output_names)

    def clone_layer(layer):
        config = layer.get_config()
        if layer.name in outputs:
            # The output: a sigmoid, in float32 even under a mixed-precision policy.
            if not isinstance(layer, keras.layers.Activation) or function_name(layer.activation) != "sigmoid":
                raise ValueError(f"expected a sigmoid Activation as output, got {layer.name!r}")
            return keras.layers.Activation("sigmoid", dtype="float32", name=layer.name)
        if isinstance(layer, _UNSUPPORTED_LAYERS):
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) is not supported by the swap rules")
        if isinstance(layer, _RECTIFIER_LAYERS):
            return keras.layers.Activation(activation, name=layer.name, dtype=config.get("dtype"))
        if isinstance(layer, keras.layers.Activation):
            if _is_hidden(function_name(layer.activation), layer):
                return keras.layers.Activation(activation, name=layer.name, dtype=config.get("dtype"))
            return layer.__class__.from_config(config)
        if isinstance(layer, tuple(POOLING_LAYERS.values())):
            # Same window, strides and padding; only the reduction changes.
            return pool_class(
                pool_size=config["pool_size"],
                strides=config["strides"],
                padding=config["padding"],
                data_format=config.get("data_format"),
                name=layer.name,
                dtype=config.get("dtype"),
            )
        if isinstance(layer, keras.layers.Lambda):
            return _replace_lambda(layer, config)
        if "activation" in config and _is_hidden(function_name(getattr(layer, "activation", None)), layer):
            # Fused activation of a Conv/Dense layer (EfficientNet's SE reduce conv).
            config["activation"] = activation
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=clone_layer)
    if keep_weights:
        clone.set_weights(model.get_weights())
    return clone


def activation_of(layer) -> str | None:
    """The activation a layer applies, as a name, or None if it applies none.

    ``ReLU`` layers read as ``relu``, ``relu6`` (``max_value=6``) or
    ``leaky_relu`` (a negative slope); fused Conv/Dense activations count.
    """
    if isinstance(layer, keras.layers.ReLU):
        if layer.max_value is not None:
            return f"relu{float(layer.max_value):g}"
        return "leaky_relu" if float(layer.negative_slope) else "relu"
    if isinstance(layer, keras.layers.LeakyReLU):
        return "leaky_relu"
    if isinstance(layer, keras.layers.ELU):
        return "elu"
    if isinstance(layer, _UNSUPPORTED_LAYERS):
        return type(layer).__name__
    fn = getattr(layer, "activation", None)
    if fn is None:
        return None
    name = function_name(fn)
    return None if name == "linear" else name


def summarize_layers(model) -> dict[str, dict[str, int]]:
    """Counts of what a model applies, for logging and checks.

    ``{"hidden_activations": {...}, "kept_activations": {...}, "pooling": {...}}``:
    hidden activations by name, kept ones (sigmoid gates and the output) by
    name, and pooling layers by class name (global pools included).
    """
    hidden: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    pools: Counter[str] = Counter()
    outputs = set(model.output_names)
    for layer in model.layers:
        name = activation_of(layer)
        if name is not None:
            is_kept = layer.name in outputs or name in KEPT_FUNCTIONS
            (kept if is_kept else hidden)[name] += 1
        if "Pooling" in type(layer).__name__:
            pools[type(layer).__name__] += 1
    return {"hidden_activations": dict(hidden), "kept_activations": dict(kept), "pooling": dict(pools)}
