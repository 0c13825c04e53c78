"""The model choices, as plain names: importable without TensorFlow.

The search space (Optuna) and the config checks only need these names, so
they live apart from the builders, which import TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gliomics.errors import GliomicsError

#: segmentation-models architectures (decoders over a backbone encoder).
SM_ARCHITECTURES = ("Unet", "FPN", "Linknet")
#: The hand-written Buda-style U-Net (see :mod:`.plain_unet`).
PLAIN_UNET = "plain_unet"
#: Every segmenter ``arch`` that :func:`gliomics.models.build_from_config` accepts.
ARCHITECTURES = SM_ARCHITECTURES + (PLAIN_UNET,)
#: The slice classifier (:mod:`gliomics.models.resnet_classifier`), also built by ``build_from_config``.
CLASSIFIER_ARCH = "resnet_classifier"
#: Several segmenters averaged in one model (:mod:`gliomics.models.ensemble`), also built by ``build_from_config``.
ENSEMBLE_ARCH = "ensemble"

#: Backbone name -> family. The family decides the swap rules (see the
#: package docstring); every family here has been checked layer by layer.
BACKBONE_FAMILIES = {
    **{f"resnet{n}": "resnet" for n in (18, 34, 50, 101, 152)},
    **{f"resnext{n}": "resnext" for n in (50, 101)},
    "mobilenetv2": "mobilenetv2",
    **{f"efficientnetb{n}": "efficientnet" for n in range(8)},
}
BACKBONES = tuple(BACKBONE_FAMILIES)

#: Families whose encoder has a spatial pooling layer (the ResNet stem's
#: 3x3/2 max pool). MobileNetV2 and EfficientNet downsample with stride-2
#: convolutions only, so ``pooling`` has nothing to act on there.
POOLING_FAMILIES = ("resnet", "resnext")

#: Hidden activations one can ask for (all are built-in Keras names, so a
#: saved model needs no custom object for them).
ACTIVATIONS = ("relu", "elu", "leaky_relu", "swish", "gelu")
#: Spatial pooling kinds: ``max`` -> MaxPooling2D, ``avg`` -> AveragePooling2D.
POOLINGS = ("max", "avg")


class ModelConfigError(GliomicsError, ValueError):
    """A model option or config key that is not allowed (names the allowed ones)."""


def check_choice(what: str, value: object, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise a clear error."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ModelConfigError(f"unknown {what} {value!r}; allowed: {', '.join(allowed)}")
    return value  # type: ignore[return-value]


def canonical_arch(name: object) -> str:
    """``"unet"``/``"UNET"`` -> ``"Unet"``: architecture names are case-insensitive."""
    known = ARCHITECTURES + (CLASSIFIER_ARCH, ENSEMBLE_ARCH)
    by_lower = {a.lower(): a for a in known}
    if not isinstance(name, str) or name.lower() not in by_lower:
        raise ModelConfigError(f"unknown arch {name!r}; allowed: {', '.join(known)}")
    return by_lower[name.lower()]


def backbone_has_pooling(backbone: str) -> bool:
    """Whether ``pooling`` changes this backbone (False: it has no pooling layer).

    The search space should make ``pooling`` conditional on this, since
    ``pooling="avg"`` is rejected for backbones without a pooling layer.
    """
    family = BACKBONE_FAMILIES[check_choice("backbone", backbone, BACKBONES)]
    return family in POOLING_FAMILIES


def check_input_shape(input_shape: Sequence, multiple: int) -> tuple:
    """``(H, W, C)`` with H and W None or positive multiples of ``multiple``."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise ModelConfigError(f"input_shape must be (H, W, channels), got {input_shape!r}") from None
    if len(shape) != 3 or not isinstance(shape[2], int) or shape[2] < 1:
        raise ModelConfigError(f"input_shape must be (H, W, channels), got {input_shape!r}")
    for side in shape[:2]:
        if side is not None and (not isinstance(side, int) or side < multiple or side % multiple):
            raise ModelConfigError(
                f"input_shape {input_shape!r}: height and width must be multiples of {multiple} (or None)"
            )
    return shape
