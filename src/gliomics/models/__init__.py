"""Segmentation models: builders whose activation and pooling really change.

Builders (each returns an uncompiled ``tf.keras.Model``, random
initialisation, output a per-pixel sigmoid of shape ``(H, W, classes)``):

* :func:`build_segmenter` -- ``Unet``/``FPN``/``Linknet`` from
  segmentation-models over a backbone (:data:`BACKBONES`), never downloading
  weights, then cloned with the requested activation and pooling
  (:func:`~gliomics.models.swap.swap_layers`, weights copied over: the swap
  adds or removes none).
* :func:`build_plain_unet` -- a hand-written Buda-style U-Net, built with the
  requested activation and pooling directly.
* :func:`build_from_config` -- ``{"arch": ..., **options}`` -> model, through
  :data:`MODEL_BUILDERS`; unknown names and keys are :class:`ModelConfigError`
  (a ``ValueError``) naming the allowed values.

What ``activation`` changes (every choice is a built-in Keras activation, so
saving and loading need no custom object for it; ``leaky_relu`` is
``tf.nn.leaky_relu``, negative slope 0.2; ``gelu`` is exact, not tanh):

=============  ===========================================  ====================================
family         swapped to ``activation``                     kept
=============  ===========================================  ====================================
resnet,        every ``Activation('relu')`` of the encoder   the output sigmoid
resnext        (stem and blocks) and of the decoder
mobilenetv2    every ``ReLU(max_value=6)`` of the encoder    the output sigmoid
               (so ``relu`` means plain, uncapped ReLU) and
               every decoder ``Activation('relu')``
efficientnet   every encoder ``Activation('swish')``, the    the squeeze-and-excitation gates
               fused ``swish`` of the squeeze-and-           (1x1 conv, ``activation='sigmoid'``,
               excitation reduce convs, every decoder        multiplied onto the features) and
               ``Activation('relu')``                        the output sigmoid
plain_unet     the activation of every conv block            the output sigmoid
=============  ===========================================  ====================================

The default ``relu`` therefore also replaces EfficientNet's native swish and
MobileNetV2's ReLU6 (pass ``activation="swish"`` to keep EfficientNet as
designed): one value means one function in every backbone, so the search
compares like with like.

What ``pooling`` changes (``max`` -> ``MaxPooling2D``, ``avg`` ->
``AveragePooling2D``, same pool size, strides and padding):

* resnet, resnext: the stem's 3x3 stride-2 pooling (after its 1-pixel zero
  padding, which an average pool counts as zeros at the border);
* plain_unet: the 2x2 pooling after each encoder level;
* mobilenetv2, efficientnet: nothing -- they downsample with stride-2
  convolutions and have no pooling layer. ``pooling="avg"`` is an error for
  them and the default ``"max"`` means "unchanged";
  :func:`backbone_has_pooling` tells a search space when to offer it.
  (EfficientNet's global average pools are squeeze-and-excitation channel
  descriptors, not downsampling, and are kept.) No decoder has pooling.

One more change, for ResNeXt only: its grouped convolutions are built from
``Lambda(slice_tensor)`` channel slices, which become
:class:`~gliomics.models.layers.ChannelSlice` layers (same computation, no
weights) so that a saved model loads without ``safe_mode=False``. Any layer the
rules cannot classify (another activation function, a ``Lambda``, ``PReLU``)
makes the builder fail instead of being left in place, and the builder checks
its result: no other hidden activation and no pooling of the other kind.

Layer names are those of segmentation-models (a swapped layer keeps its name,
e.g. ``stage1_unit1_relu1`` may apply gelu). Under a ``mixed_bfloat16`` global
policy set before building, the layers compute in bfloat16 and the output
sigmoid stays float32. Weights come from the Keras initialisers: call
``tf.keras.utils.set_random_seed`` first for a reproducible model.

Saving and loading: pass ``custom_objects=gliomics.models.custom_objects()``
to ``tf.keras.models.load_model`` (EfficientNet's ``FixedDropout``, ResNeXt's
``ChannelSlice``); both are registered with Keras once
``gliomics.models.segmenter`` has been imported (``import gliomics.models``
alone is lazy and does not do it).

Importing this package does not import TensorFlow; the builders do, on first
use.
"""

from __future__ import annotations

import importlib

from .options import (
    ACTIVATIONS,
    ARCHITECTURES,
    BACKBONE_FAMILIES,
    BACKBONES,
    PLAIN_UNET,
    POOLING_FAMILIES,
    POOLINGS,
    SM_ARCHITECTURES,
    ModelConfigError,
    backbone_has_pooling,
)

# Public names that need TensorFlow, and the submodule defining each.
_LAZY = {
    "build_segmenter": "segmenter",
    "custom_objects": "segmenter",
    "build_plain_unet": "plain_unet",
    "build_from_config": "builders",
    "build_under_policy": "builders",
    "config_keys": "builders",
    "MODEL_BUILDERS": "builders",
    "swap_layers": "swap",
    "summarize_layers": "swap",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ACTIVATIONS",
    "ARCHITECTURES",
    "BACKBONES",
    "BACKBONE_FAMILIES",
    "PLAIN_UNET",
    "POOLINGS",
    "POOLING_FAMILIES",
    "SM_ARCHITECTURES",
    "ModelConfigError",
    "backbone_has_pooling",
    *_LAZY,
]
