"""Segmentation training: losses (``gliomics.training.losses``, TensorFlow) and
metrics (``gliomics.training.metrics``: NumPy evaluation metrics plus tf.keras
training metrics that import TensorFlow only when first called).

Importing this package does not import TensorFlow; ``losses`` does, so import
it explicitly (``from gliomics.training import losses``) when you need it.
"""
