"""Small serialisable layers used by the builders."""

from __future__ import annotations

from ._keras import keras


@keras.saving.register_keras_serializable(package="gliomics")
class ChannelSlice(keras.layers.Layer):
    """``x[..., start:stop]`` along ``axis`` (3: channels last, 1: channels first).

    Stands in for the ``Lambda(slice_tensor)`` layers that classification-models
    uses to build ResNeXt's grouped convolutions: same computation, no weights,
    but a saved model loads without ``safe_mode=False`` (Keras refuses to
    deserialise Python functions inside ``Lambda`` layers by default).
    """

    def __init__(self, start: int, stop: int, axis: int = 3, **kwargs):
        super().__init__(**kwargs)
        if axis not in (1, 3):
            raise ValueError(f"ChannelSlice axis must be 1 or 3, got {axis}")
        self.start, self.stop, self.axis = int(start), int(stop), int(axis)

    def call(self, inputs):
        if self.axis == 3:
            return inputs[:, :, :, self.start : self.stop]
        return inputs[:, self.start : self.stop, :, :]

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        shape[self.axis] = self.stop - self.start
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop, "axis": self.axis}
