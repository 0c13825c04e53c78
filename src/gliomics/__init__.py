"""gliomics: lower-grade glioma radiogenomics, MLOps-tracked.

Importing this package is cheap: it never imports TensorFlow. It does fix,
in this one place, the environment that TensorFlow-based modules need
before TensorFlow is first imported:

- ``TF_USE_LEGACY_KERAS=1``: ``import tensorflow.keras`` resolves to tf-keras
  (Keras 2), which segmentation-models needs; keras-cv detects Keras 2 in this
  mode and its layers run on it.
- ``SM_FRAMEWORK=tf.keras``: segmentation-models builds on tf.keras rather
  than standalone Keras.
- ``TF_CPP_MIN_LOG_LEVEL=2``: hide TensorFlow's C++ info banners (CUDA probes
  on CPU machines) so that user-facing output stays readable.
- ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``: MLflow refuses to unpickle
  model files in this process (gliomics loads models itself, without pickle:
  :func:`gliomics.models.packaging.load_segmenter`); a second line of defence.
"""

import os as _os

_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
_os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"

__version__ = "0.1.0"
