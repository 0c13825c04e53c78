r"""Several segmenters packed into one Keras model that outputs their mean probability.

.. math:: p(x) = \frac{1}{|M|} \sum_{m \in M} m(x)

the same average as :class:`gliomics.models.inference.AveragedSegmenter` (without flip TTA), but as one
model: it saves as one MLflow model folder, and every command takes it like a single segmenter. nnU-Net
(Isensee et al., Nat. Methods 18, 2021) averages its five cross-validation fold models this way.

Config: ``{"arch": "ensemble", "members": [config, config, ...]}``, each member a config that
:func:`gliomics.models.build_from_config` builds (no nested ensembles). Member ``i`` is the sub-model
``member_<i>``: copy trained weights into it with ``model.get_layer(member_name(i)).set_weights(...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ._keras import keras
from .options import ENSEMBLE_ARCH, ModelConfigError, canonical_arch


def member_name(index: int) -> str:
    """The sub-model name of member ``index`` inside an ensemble."""
    return f"member_{index}"


def build_ensemble(members: Sequence[Mapping], build_member: Callable):
    """The mean of the segmenters that ``members`` (model configs) describe, as one uncompiled Keras model;
    ``build_member(config)`` builds each (:func:`gliomics.models.build_from_config`, which passes itself).

    Every member must take the same input shape and give a ``(H, W, 1)`` probability map; the mean is computed
    in float32 whatever the global mixed-precision policy.
    """
    if isinstance(members, (str, Mapping)) or len(members) < 2:
        raise ModelConfigError("an ensemble needs a list of at least two member model configs")
    built = []
    for index, config in enumerate(members):
        if not isinstance(config, Mapping) or canonical_arch(config.get("arch")) == ENSEMBLE_ARCH:
            raise ModelConfigError(f"ensemble member {index}: must be a single model's config (no nested ensembles)")
        model = build_member(config)
        # A functional view of the member under its own name, so the two members' layers never clash.
        built.append(keras.Model(model.inputs, model.outputs, name=member_name(index)))
    shapes = {tuple(model.input_shape[1:]) for model in built}
    if len(shapes) > 1:
        raise ModelConfigError(f"ensemble members take different input shapes: {sorted(map(str, shapes))}")
    for index, model in enumerate(built):
        if tuple(model.output_shape[3:]) != (1,):
            raise ModelConfigError(f"ensemble member {index}: output {model.output_shape}, not a segmenter's "
                                   "(batch, height, width, 1)")
    inputs = keras.Input(shape=built[0].input_shape[1:], name="slices")
    mean = keras.layers.Average(dtype="float32", name="mean_probability")([model(inputs) for model in built])
    return keras.Model(inputs, mean, name="ensemble")
