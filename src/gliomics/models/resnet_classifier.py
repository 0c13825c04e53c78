"""The slice classifier: a ResNet that says "tumour" or "no tumour" for one slice.

:func:`build_slice_classifier` returns an uncompiled ``tf.keras.Model``
``(H, W, 3)`` -> ``(1,)``: the probability that the slice holds tumour (a
float32 sigmoid, also under a ``mixed_bfloat16`` policy).

Why keras-cv's ``ResNetBackbone``: it builds ResNet18/34 (basic blocks) and
ResNet50 (bottleneck blocks) from one implementation, from architecture
arguments only (``stackwise_filters/blocks/strides`` and ``block_type``; no
preset, so nothing is downloaded), and its v1 layout is the paper's and
torchvision's layer for layer (the trainable parameter counts match:
11,176,512 / 21,284,672 / 23,508,032 without the head; a test checks it).
``tf.keras.applications`` has only ResNet50 (and 101/152), so ResNet18/34
would need a second, hand-written code path. keras-cv follows
``TF_USE_LEGACY_KERAS``, so the backbone is a tf-keras 2 model like every
other gliomics model, and after the swap below the saved model contains only
built-in layers: loading it needs neither keras-cv nor custom objects.

The network: the backbone (stem: 7x7/2 convolution with 64 filters, batch
norm, activation, 3x3/2 pooling; then four stages of residual blocks with
``base_filters * (1, 2, 4, 8)`` filters, the first stride 1, the others 2),
a global pooling head, a 1-unit dense layer and the sigmoid. For quick runs
(the demo) ``stage_blocks`` overrides the blocks per stage, e.g. ``(1, 1, 1,
1)`` bottleneck blocks with ``depth=50`` (a 14-layer ResNet50-style net), and
``base_filters`` narrows the stages; keras-cv's stem always has 64 filters,
and its first basic-block stage adds the stem's output unchanged, so
ResNet18/34 need ``base_filters=64`` (bottleneck stages have a projection
shortcut and take any width).

What the options change (the rest of the graph is identical, weights
included in number and shape):

* ``activation`` (:data:`CLASSIFIER_ACTIVATIONS`): every hidden activation:
  the stem's, the one inside each block and the one after each residual
  addition. ``sigmoid`` is allowed here (the Kota (2024) thesis compared it), unlike in
  the segmenter's search space, where a sigmoid marks a gate that
  :mod:`gliomics.models.swap` keeps. The output sigmoid is never changed.
* ``stem_pooling`` (``max``/``avg``): the stem's 3x3 stride-2 pooling,
  the only spatial pooling layer of a ResNet ("same" padding: an average at
  the border averages only the pixels inside the image).
* ``head_pooling`` (``avg``/``max``): ``GlobalAveragePooling2D`` or
  ``GlobalMaxPooling2D`` before the dense layer.
* ``bn_momentum`` (default 0.9): the momentum of every batch normalisation
  of the backbone, in Keras' convention (new = momentum * old + (1 -
  momentum) * batch), i.e. PyTorch's ``momentum=0.1`` of torchvision's
  ResNet. keras-cv leaves Keras' default, 0.99, which averages over ~100
  steps: with 60 steps per epoch the moving statistics lag the weights, and
  the first real-data cpu run's validation accuracy (inference mode) swung
  0.56 -> 0.87 -> 0.80 -> 0.91 over epochs while its ROC AUC rose smoothly
  (the segmenter had the same problem, :mod:`gliomics.models.plain_unet`).

The activation, stem pooling and batch-norm momentum are set by cloning the keras-cv graph with a
clone function (same idea as :func:`gliomics.models.swap.swap_layers`, whose
pooling classes and function naming it reuses; that function cannot be used
as is because it treats a sigmoid as a gate and refuses it as a hidden
activation). The result is checked: no hidden activation of another kind,
no pooling layer of the other kind.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

from ._keras import keras
from .options import ACTIVATIONS, POOLINGS, ModelConfigError, check_choice, check_input_shape
from .swap import POOLING_LAYERS, function_name

#: Hidden activations the classifier accepts: the segmenter's, plus sigmoid (thesis Table).
CLASSIFIER_ACTIVATIONS = ("relu", "sigmoid", "elu", "leaky_relu", "swish", "gelu")
assert set(ACTIVATIONS) <= set(CLASSIFIER_ACTIVATIONS)
#: ``head_pooling`` -> global pooling layer.
HEAD_POOLING_LAYERS = {"avg": keras.layers.GlobalAveragePooling2D, "max": keras.layers.GlobalMaxPooling2D}
#: ResNet depth -> (block type, blocks per stage).
DEPTHS = {18: ("basic_block", (2, 2, 2, 2)), 34: ("basic_block", (3, 4, 6, 3)), 50: ("block", (3, 4, 6, 3))}
#: The name of the output layer (the sigmoid probability).
OUTPUT_NAME = "probability"
#: Input sides must be multiples of this (five stride-2 steps).
SIZE_MULTIPLE = 32


def _resnet_backbone(block_type: str, blocks: tuple, base_filters: int, input_shape: tuple):
    """keras-cv's ResNetBackbone (v1) from its architecture arguments: random weights."""
    with contextlib.redirect_stdout(io.StringIO()):  # keras-cv announces its backend on import
        import keras_cv

    return keras_cv.models.ResNetBackbone(
        stackwise_filters=[base_filters * k for k in (1, 2, 4, 8)],
        stackwise_blocks=list(blocks),
        stackwise_strides=[1, 2, 2, 2],
        block_type=block_type,
        include_rescaling=False,  # inputs are already z-scored per patient
        input_shape=input_shape,
    )


def _swap_activation_and_stem_pooling(model, activation: str, stem_pooling: str, bn_momentum: float):
    """Clone ``model`` with every hidden ``Activation`` set to ``activation``, every
    2D max/average pooling set to ``stem_pooling`` and every ``BatchNormalization``'s
    momentum set to ``bn_momentum``; weights (moving statistics included) copied."""
    pool_class = POOLING_LAYERS[stem_pooling]
    outputs = set(model.output_names)

    def clone_layer(layer):
        config = layer.get_config()
        if layer.name in outputs:
            return layer.__class__.from_config(config)  # the float32 sigmoid, kept
        if isinstance(layer, keras.layers.Activation):
            return keras.layers.Activation(activation, name=layer.name, dtype=config.get("dtype"))
        if isinstance(layer, keras.layers.BatchNormalization):
            return layer.__class__.from_config({**config, "momentum": float(bn_momentum)})
        if isinstance(layer, tuple(POOLING_LAYERS.values())):
            return pool_class(pool_size=config["pool_size"], strides=config["strides"], padding=config["padding"],
                              name=layer.name, dtype=config.get("dtype"))
        if isinstance(layer, (keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU, keras.layers.PReLU)):
            raise ModelConfigError(f"unexpected activation layer {layer.name!r} in the ResNet backbone")
        if function_name(getattr(layer, "activation", None)) not in ("linear",) and "activation" in config:
            raise ModelConfigError(f"unexpected fused activation in layer {layer.name!r}")
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=clone_layer)
    clone.set_weights(model.get_weights())
    return clone


def hidden_activations(model) -> dict[str, str]:
    """``{layer name: activation}`` for every layer applying a non-linearity, output excluded."""
    outputs = set(model.output_names)
    found = {}
    for layer in model.layers:
        if layer.name in outputs:
            continue
        name = function_name(getattr(layer, "activation", None))
        if name != "linear":
            found[layer.name] = name
        elif isinstance(layer, (keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU, keras.layers.PReLU)):
            found[layer.name] = type(layer).__name__
    return found


def build_slice_classifier(
    depth: int = 50,
    input_shape: Sequence = (256, 256, 3),
    activation: str = "relu",
    stem_pooling: str = "max",
    head_pooling: str = "avg",
    base_filters: int = 64,
    stage_blocks: Sequence[int] | None = None,
    bn_momentum: float = 0.9,
):
    """ResNet-``depth`` (18, 34 or 50) slice classifier ``(H, W, 3)`` -> tumour probability ``(1,)``.

    ``base_filters`` is the width of the first stage (64 in the paper;
    bottleneck nets may be narrower for quick runs; the stem keeps its 64
    filters). ``stage_blocks``: blocks per stage (4 ints) instead of the
    depth's own; ``depth`` still decides the block type. H and W must be
    multiples of 32 (or None). ``bn_momentum``: every batch norm's momentum
    (Keras convention, module docstring). Weights are random (Keras initialisers: call
    ``tf.keras.utils.set_random_seed`` first for a reproducible model).
    """
    if depth not in DEPTHS:
        raise ModelConfigError(f"unknown depth {depth!r}; allowed: {', '.join(map(str, DEPTHS))}")
    block_type, blocks = DEPTHS[depth]
    if stage_blocks is not None:
        blocks = tuple(stage_blocks) if isinstance(stage_blocks, Sequence) else ()
        if len(blocks) != 4 or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in blocks):
            raise ModelConfigError(f"stage_blocks must be 4 positive ints, got {stage_blocks!r}")
    check_choice("activation", activation, CLASSIFIER_ACTIVATIONS)
    check_choice("stem_pooling", stem_pooling, POOLINGS)
    check_choice("head_pooling", head_pooling, tuple(HEAD_POOLING_LAYERS))
    if not isinstance(base_filters, int) or isinstance(base_filters, bool) or base_filters < 1:
        raise ModelConfigError(f"base_filters must be a positive int, got {base_filters!r}")
    if block_type == "basic_block" and base_filters != 64:
        raise ModelConfigError(f"ResNet{depth} needs base_filters=64 (keras-cv's 64-filter stem feeds its first "
                               f"basic-block stage unchanged), got {base_filters}; use depth 50 for narrower nets")
    if isinstance(bn_momentum, bool) or not isinstance(bn_momentum, (int, float)) or not 0 <= bn_momentum < 1:
        raise ModelConfigError(f"bn_momentum must be in [0, 1), got {bn_momentum!r}")
    shape = check_input_shape(input_shape, SIZE_MULTIPLE)

    backbone = _resnet_backbone(block_type, blocks, base_filters, shape)
    x = HEAD_POOLING_LAYERS[head_pooling](name="head_pool")(backbone.output)
    x = keras.layers.Dense(1, name="logit")(x)
    # float32 output: a stable sigmoid and loss under a mixed_bfloat16 policy.
    probability = keras.layers.Activation("sigmoid", dtype="float32", name=OUTPUT_NAME)(x)
    native = keras.Model(backbone.input, probability)

    model = _swap_activation_and_stem_pooling(native, activation, stem_pooling, bn_momentum)
    layers_deep = (2 if block_type == "basic_block" else 3) * sum(blocks) + 2  # convs on the main path + dense
    model._name = f"resnet{layers_deep}_classifier_{activation}_{stem_pooling}_{head_pooling}"

    # Guard: the swap covered the whole graph.
    other_pool = POOLING_LAYERS["avg" if stem_pooling == "max" else "max"]
    if set(hidden_activations(model).values()) != {activation} or any(
            isinstance(layer, other_pool) for layer in model.layers) or any(
            layer.momentum != float(bn_momentum) for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)):
        raise RuntimeError(f"activation/pooling swap incomplete for {model.name}")
    return model
