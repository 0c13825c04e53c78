"""``keras``: tf.keras, checked to be tf-keras (Keras 2), as segmentation-models needs."""

import tensorflow as tf

keras = tf.keras
if not keras.layers.Layer.__module__.startswith("tf_keras"):  # pragma: no cover - environment guard
    raise ImportError(
        "gliomics.models needs tf.keras to be tf-keras (Keras 2): import gliomics before "
        "tensorflow, or set TF_USE_LEGACY_KERAS=1 before TensorFlow is first imported"
    )
