"""A plain U-Net after Buda et al. (2019), hand-written in tf.keras.

Same layout as their ``brain-segmentation-pytorch`` U-Net: ``depth`` encoder
levels of two (3x3 conv -> batch norm -> activation) blocks, each followed by
a 2x2 pooling; a bottleneck block; ``depth`` decoder levels of a 2x2
stride-2 transposed convolution, concatenation with the encoder level's
output, and two conv blocks; a 1x1 convolution and a sigmoid. Filters double
per level from ``base_filters``: with depth 4 and 32 filters it has 7.76 M
trainable weights on 3 input channels, as theirs does (plus 5,888 batch-norm
moving statistics).

``activation`` is the function of every conv block (the transposed
convolutions have none, as in the original); ``pooling`` is the kind of every
encoder pooling layer. The sigmoid output stays float32 under mixed precision.

``bn_momentum`` defaults to 0.9: PyTorch's ``BatchNorm2d(momentum=0.1)`` of
the reference, in Keras' convention (new = momentum * old + (1 - momentum) *
batch). Keras' own default, 0.99, averages over ~100 steps; with ~50 steps
per epoch at lr 1e-3 the moving statistics then lag the weights so far that
inference-mode Dice stayed near 0 for five epochs of the 2026-11-25 cpu run
(benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from .options import ACTIVATIONS, POOLINGS, ModelConfigError, check_choice, check_input_shape
from ._keras import keras
from .swap import POOLING_LAYERS

layers = keras.layers


def conv_block(x, filters: int, activation: str, batch_norm: bool, name: str, bn_momentum: float = 0.9):
    """Two (3x3 conv -> [batch norm] -> activation) steps."""
    for i in (1, 2):
        # The conv bias is redundant when batch norm follows (it has its own shift).
        x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm, name=f"{name}_conv{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn{i}")(x)
        x = layers.Activation(activation, name=f"{name}_act{i}")(x)
    return x


def build_plain_unet(
    input_shape: Sequence = (128, 128, 3),
    base_filters: int = 32,
    depth: int = 4,
    activation: str = "relu",
    pooling: str = "max",
    batch_norm: bool = True,
    bn_momentum: float = 0.9,
    *,
    classes: int = 1,
):
    """Buda-style U-Net: ``(H, W, C)`` -> per-pixel sigmoid ``(H, W, classes)``.

    H and W must be multiples of ``2 ** depth`` (or None, for any such size).
    """
    check_choice("activation", activation, ACTIVATIONS)
    check_choice("pooling", pooling, POOLINGS)
    for name, value in (("base_filters", base_filters), ("depth", depth), ("classes", classes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ModelConfigError(f"{name} must be a positive int, got {value!r}")
    if isinstance(bn_momentum, bool) or not isinstance(bn_momentum, (int, float)) or not 0 <= bn_momentum < 1:
        raise ModelConfigError(f"bn_momentum must be in [0, 1), got {bn_momentum!r}")
    shape = check_input_shape(input_shape, 2**depth)
    Pool = POOLING_LAYERS[pooling]

    inputs = keras.Input(shape, name="image")
    x = inputs
    skips = []
    for level in range(1, depth + 1):
        x = conv_block(x, base_filters * 2 ** (level - 1), activation, batch_norm, f"enc{level}", bn_momentum)
        skips.append(x)
        x = Pool(pool_size=2, strides=2, name=f"enc{level}_pool")(x)

    x = conv_block(x, base_filters * 2**depth, activation, batch_norm, "bottleneck", bn_momentum)

    for level in range(depth, 0, -1):
        filters = base_filters * 2 ** (level - 1)
        x = layers.Conv2DTranspose(filters, 2, strides=2, name=f"dec{level}_upconv")(x)
        x = layers.Concatenate(name=f"dec{level}_concat")([x, skips[level - 1]])
        x = conv_block(x, filters, activation, batch_norm, f"dec{level}", bn_momentum)

    x = layers.Conv2D(classes, 1, name="logits")(x)
    # float32 output: stable sigmoid and loss under a mixed_bfloat16 policy.
    outputs = layers.Activation("sigmoid", dtype="float32", name="sigmoid")(x)
    return keras.Model(inputs, outputs, name=f"plain_unet_d{depth}_f{base_filters}_{activation}_{pooling}")
