"""``arch`` name -> builder, and building a model from a ``params.yaml``-style dict."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping

import tensorflow as tf

from .ensemble import build_ensemble
from .options import CLASSIFIER_ARCH, ENSEMBLE_ARCH, PLAIN_UNET, SM_ARCHITECTURES, ModelConfigError, canonical_arch
from .resnet_classifier import build_slice_classifier
from .plain_unet import build_plain_unet
from .segmenter import build_segmenter

#: ``arch`` -> a builder taking the rest of the config as keyword arguments.
MODEL_BUILDERS: dict[str, Callable] = {
    **{arch: functools.partial(build_segmenter, arch) for arch in SM_ARCHITECTURES},
    PLAIN_UNET: build_plain_unet,
    CLASSIFIER_ARCH: build_slice_classifier,
}


def config_keys(arch: str) -> tuple[str, ...]:
    """The keys a config for ``arch`` may have besides ``arch`` itself."""
    builder = MODEL_BUILDERS[canonical_arch(arch)]
    return tuple(name for name in inspect.signature(builder).parameters if name != "arch")


def build_under_policy(config: Mapping, policy: str):
    """:func:`build_from_config` under the Keras mixed-precision ``policy`` (``"float32"``,
    ``"mixed_bfloat16"``); the global policy is restored after, whatever happens."""
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(policy)
    try:
        return build_from_config(config)
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def build_from_config(config: Mapping):
    """Build the model a config describes, e.g.
    ``{"arch": "Unet", "backbone": "resnet18", "activation": "gelu"}`` or
    ``{"arch": "plain_unet", "base_filters": 32, "depth": 4}``.

    ``arch`` is required (case-insensitive); the other keys are the builder's
    keyword arguments (:func:`config_keys`), and an unknown key is an error
    naming the allowed ones. Lists (from YAML) are accepted for tuples.
    """
    if not isinstance(config, Mapping):
        raise ModelConfigError(f"model config must be a mapping, got {type(config).__name__}")
    options = dict(config)
    if "arch" not in options:
        raise ModelConfigError("model config has no 'arch'; allowed: " + ", ".join(MODEL_BUILDERS))
    arch = canonical_arch(options.pop("arch"))
    allowed = config_keys(arch)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ModelConfigError(
            f"unknown model config key(s) for arch {arch!r}: {', '.join(unknown)}; allowed: arch, {', '.join(allowed)}"
        )
    return MODEL_BUILDERS[arch](**options)


def _build_ensemble(members):
    return build_ensemble(members, build_from_config)


MODEL_BUILDERS[ENSEMBLE_ARCH] = _build_ensemble
