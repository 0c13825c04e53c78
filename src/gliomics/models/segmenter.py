"""U-Net / FPN / Linknet over a segmentation-models backbone, with the
activation and pooling swapped in (rules: :mod:`gliomics.models.swap`)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

from .options import (
    ACTIVATIONS,
    BACKBONE_FAMILIES,
    BACKBONES,
    POOLING_FAMILIES,
    POOLINGS,
    SM_ARCHITECTURES,
    ModelConfigError,
    canonical_arch,
    check_choice,
    check_input_shape,
)
from ._keras import keras
from .layers import ChannelSlice
from .swap import summarize_layers, swap_layers

# segmentation-models prints its framework on import: keep stdout clean for the CLI.
with contextlib.redirect_stdout(io.StringIO()):
    import segmentation_models as sm


def _decoder_kwargs(arch: str, decoder_filters) -> dict:
    """Map the one ``decoder_filters`` option onto each architecture's argument."""
    if decoder_filters is None:
        return {}
    if arch == "FPN":
        # FPN: filters of the pyramid blocks; its segmentation head uses half.
        if not isinstance(decoder_filters, int) or decoder_filters < 2:
            raise ModelConfigError(f"FPN decoder_filters must be an int >= 2, got {decoder_filters!r}")
        return {"pyramid_block_filters": decoder_filters}
    # Unet / Linknet: filters of the 5 decoder stages, deepest first
    # (Linknet also takes None: "as many as the matching encoder stage").
    filters = tuple(decoder_filters) if isinstance(decoder_filters, Sequence) else None
    allow_none = arch == "Linknet"
    if filters is None or len(filters) != 5 or not all(
        (f is None and allow_none) or (isinstance(f, int) and f > 0) for f in filters
    ):
        raise ModelConfigError(
            f"{arch} decoder_filters must be 5 positive ints (deepest stage first), got {decoder_filters!r}"
        )
    return {"decoder_filters": filters}


def build_segmenter(
    arch: str = "Unet",
    backbone: str = "resnet34",
    activation: str = "relu",
    pooling: str = "max",
    input_shape: Sequence = (128, 128, 3),
    *,
    classes: int = 1,
    decoder_filters=None,
    decoder_use_batchnorm: bool = True,
):
    """A segmentation-models ``arch`` over ``backbone``, randomly initialised,
    with every hidden activation set to ``activation`` and the encoder's
    pooling set to ``pooling``; the output is a per-pixel sigmoid of shape
    ``(H, W, classes)``.

    ``decoder_filters``: Unet/Linknet, 5 ints (deepest stage first; defaults
    (256, 128, 64, 32, 16) and (None, None, None, None, 16)); FPN, one int
    (pyramid filters, default 256). ``pooling="avg"`` is an error for
    backbones without a pooling layer (mobilenetv2, efficientnet*), where the
    default ``"max"`` means "unchanged". Encoder weights are never downloaded.
    """
    arch = canonical_arch(arch)
    if arch not in SM_ARCHITECTURES:
        raise ModelConfigError(
            f"arch {arch!r} is not a segmentation-models architecture; allowed: {', '.join(SM_ARCHITECTURES)}"
        )
    family = BACKBONE_FAMILIES[check_choice("backbone", backbone, BACKBONES)]
    check_choice("activation", activation, ACTIVATIONS)
    check_choice("pooling", pooling, POOLINGS)
    if pooling == "avg" and family not in POOLING_FAMILIES:
        raise ModelConfigError(
            f"backbone {backbone!r} has no pooling layer (it downsamples with stride-2 convolutions), "
            f"so pooling='avg' would change nothing; use pooling='max' (unchanged) or a backbone of "
            f"the {'/'.join(POOLING_FAMILIES)} families"
        )
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise ModelConfigError(f"classes must be a positive int, got {classes!r}")
    shape = check_input_shape(input_shape, 32)  # five stride-2 stages

    # FPN names its batch-norm switch differently; the rest is shared.
    batchnorm_key = "pyramid_use_batchnorm" if arch == "FPN" else "decoder_use_batchnorm"
    base = getattr(sm, arch)(
        backbone,
        input_shape=shape,
        classes=classes,
        activation="sigmoid",
        encoder_weights=None,  # never download: random initialisation
        **{batchnorm_key: decoder_use_batchnorm},
        **_decoder_kwargs(arch, decoder_filters),
    )
    model = swap_layers(base, activation, pooling)
    model._name = f"{arch.lower()}_{backbone}_{activation}_{pooling}"

    # Cheap guard that the swap rules covered this backbone completely.
    summary = summarize_layers(model)
    other_pool = "AveragePooling2D" if pooling == "max" else "MaxPooling2D"
    if set(summary["hidden_activations"]) - {activation} or other_pool in summary["pooling"]:
        raise RuntimeError(f"activation/pooling swap incomplete for {model.name}: {summary}")
    return model


def custom_objects() -> dict:
    """Objects a saved model may need when it is loaded.

    ``FixedDropout`` (EfficientNet backbones, from the ``efficientnet``
    package) and :class:`~gliomics.models.layers.ChannelSlice` (ResNeXt
    backbones). Importing this module registers both with Keras, so
    ``tf.keras.models.load_model`` works in any process that has imported
    ``gliomics.models.segmenter``; pass this dict where loading happens
    elsewhere (``mlflow.tensorflow.log_model(..., custom_objects=...)``).
    Every activation the builders use is a built-in Keras name.
    """
    return {
        "FixedDropout": keras.utils.get_custom_objects()["FixedDropout"],
        "ChannelSlice": ChannelSlice,
    }
