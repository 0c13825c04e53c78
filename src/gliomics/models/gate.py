"""Slice classifier inference, and its use as a gate before segmentation.

* :func:`load_classifier`: a logged slice classifier (any URI that
  :func:`gliomics.models.packaging.load_segmenter` resolves), checked to be
  one: output ``(batch, 1)``. Its threshold is ``Preprocessing.threshold``
  (0.5 unless trained otherwise).
* :func:`predict_slices`: one tumour probability per slice of a patient,
  prepared exactly as in training (pre-filter, resize, per-patient z-score).
* :class:`SliceGate`: ``gliomics segment --gate URI`` (and ``evaluate``)
  run the segmenter only on the slices the classifier calls tumour
  (``prob >= threshold``; ``segment.gate_threshold``, 0 = the classifier's own); the other slices get
  an empty mask and cost no segmenter time. The segmenter's per-patient
  z-score is still computed over *all* the patient's slices, as in training,
  so a kept slice gets the same probabilities with or without the gate.
  Post-processing (largest 3D component, filled holes) then runs on the gated
  probability volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gliomics.data.cohort_io import read_images
from gliomics.errors import GliomicsError
from gliomics.models import inference
from gliomics.models.inference import load_model, load_segmenters, predict_patient
from gliomics.models.packaging import check_task
from gliomics.progress import progress


class SegmenterSliceScore:
    """A segmenter used as a slice classifier: a slice's score is the segmenter's largest tumour probability on
    it, :math:`s = \\max_{i,j} p_{ij}` (before post-processing). With threshold 0.5 a slice is "tumour" exactly
    when the segmenter predicts at least one tumour pixel on it; a threshold can also be chosen on validation
    patients like the ResNet classifier's. Called like a Keras classifier: batch ``(B, S, S, 3)`` -> ``(B, 1)``.
    """

    output_shape = (None, 1)

    def __init__(self, segmenter):
        self.segmenter = segmenter

    def __call__(self, batch, training: bool = False) -> np.ndarray:
        prob = np.asarray(self.segmenter(batch, training=False), dtype=np.float32)
        return prob.reshape(len(prob), -1).max(axis=1, keepdims=True)


def load_classifier(uri, from_segmenter: bool = False):
    """``(keras_model, Preprocessing, metadata)`` of a slice classifier; a clear error otherwise.

    ``from_segmenter``: ``uri`` (one or several, an ensemble) is a segmenter, scored per slice by
    :class:`SegmenterSliceScore`.
    """
    if from_segmenter:
        segmenter, preprocessing, metadata = load_segmenters(uri)
        return SegmenterSliceScore(segmenter), preprocessing, metadata[0]
    model, preprocessing, metadata = load_model(uri)
    check_task(metadata, "classifier", str(uri))
    shape = tuple(getattr(model, "output_shape", ()) or ())
    if len(shape) != 2 or shape[-1] != 1:
        raise GliomicsError(f"{uri}: not a slice classifier (output shape {shape}, expected (batch, 1)); "
                            "use a model from `gliomics train-classifier`")
    return model, preprocessing, metadata


def predict_slices(model, preprocessing, images: np.ndarray, *, batch_size: int = 16) -> np.ndarray:
    """Tumour probability ``(n,)`` float64 for one patient's slices ``(n, H, W, 3)`` (all of them together)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise GliomicsError(f"expected slices (n, H, W, 3), got shape {images.shape}")
    if len(images) == 0:
        return np.zeros(0, dtype=np.float64)
    prepared = preprocessing.prepare_patient(images)
    outputs = [np.asarray(model(prepared[i:i + batch_size], training=False), dtype=np.float64).reshape(-1)
               for i in range(0, len(prepared), batch_size)]
    return np.concatenate(outputs)


def predict_patient_subset(model, preprocessing, images: np.ndarray, keep: np.ndarray, *,
                           batch_size: int = 8) -> np.ndarray:
    """Segmenter probabilities ``(n, H, W)``: the model runs on ``images[keep]`` only, the rest are 0.

    Same preparation as :func:`gliomics.models.inference.predict_patient`
    (z-score over all slices), so kept slices get identical probabilities.
    """
    keep = np.asarray(keep, dtype=bool)
    n, height, width = images.shape[:3]
    prob = np.zeros((n, height, width), dtype=np.float32)
    rows = np.flatnonzero(keep)
    if len(rows) == 0:
        return prob
    prepared = preprocessing.prepare_patient(images)[rows]
    outputs = [np.asarray(model(prepared[i:i + batch_size], training=False), dtype=np.float32)
               for i in range(0, len(prepared), batch_size)]
    prob[rows] = preprocessing.restore_size(np.concatenate(outputs), (height, width))
    return prob


@dataclass
class SliceGate:
    """A loaded slice classifier and the probability below which a slice is skipped."""

    uri: str
    model: object
    preprocessing: object
    threshold: float
    n_slices: int = 0
    n_skipped: int = 0

    def keep(self, images: np.ndarray) -> np.ndarray:
        """Boolean ``(n,)``: the slices to segment."""
        keep = predict_slices(self.model, self.preprocessing, images) >= self.threshold
        self.n_slices += len(keep)
        self.n_skipped += int((~keep).sum())
        return keep

    def segment_probabilities(self, model, preprocessing, images: np.ndarray, *, batch_size: int = 8) -> np.ndarray:
        """The segmenter's probabilities with the skipped slices at 0."""
        return predict_patient_subset(model, preprocessing, images, self.keep(images), batch_size=batch_size)

    def describe(self) -> dict:
        return {"gate_uri": self.uri, "gate_threshold": self.threshold, "gate_slices": self.n_slices,
                "gate_skipped_slices": self.n_skipped}


def load_gate(uri: str, threshold: float | None = None) -> SliceGate:
    """A :class:`SliceGate` for the classifier at ``uri``; ``threshold`` None or 0: the model's own
    (``Preprocessing.threshold``, chosen on the validation patients when it was trained)."""
    model, preprocessing, _ = load_classifier(uri)
    threshold = float(preprocessing.threshold if threshold in (None, 0) else threshold)
    if not 0.0 <= threshold <= 1.0:
        raise GliomicsError(f"segment.gate_threshold must be in [0, 1], got {threshold}")
    return SliceGate(uri=str(uri), model=model, preprocessing=preprocessing, threshold=threshold)


def patient_probabilities(model, preprocessing, images: np.ndarray, gate: SliceGate | None = None, *,
                          batch_size: int = 8) -> np.ndarray:
    """The segmenter's probabilities for one patient, through ``gate`` when one is given (the stages' hook)."""
    if gate is None:
        return predict_patient(model, preprocessing, images, batch_size=batch_size)
    return gate.segment_probabilities(model, preprocessing, images, batch_size=batch_size)


def load_segmentation_models(model_uri, post: dict | None, gate: str | None, gate_threshold: float | None):
    """The segmenter at ``model_uri`` (one URI, or several: their ensemble), its post-processing settings
    (``tta`` wraps it in flip test-time augmentation) and the optional slice gate:
    (segmenter, preprocessing, settings, slice_gate or None)."""
    tta = bool(inference.post_settings(post).get("tta"))
    model, preprocessing, _ = inference.load_segmenters(model_uri, tta=tta)
    settings = inference.post_settings(post, preprocessing)
    slice_gate = load_gate(gate, gate_threshold) if gate else None
    return model, preprocessing, settings, slice_gate


def segment_patients(root, by_folder: dict, models: tuple, *, batch_size: int, label: str):
    """Segment each patient folder of a cohort, with a progress bar: yields ``(folder, slices, images, masks)``.

    ``root, by_folder`` as :func:`gliomics.data.cohort_io.cohort_patients` returns them; ``models`` as
    :func:`load_segmentation_models` returns them. Images are checked (:func:`inference.check_image_shapes`),
    segmented slice-gated and post-processed (:func:`inference.segment_volume`): the loop of ``segment``
    and ``evaluate``."""
    model, preprocessing, settings, slice_gate = models
    with progress(label, len(by_folder)) as update:
        for i, (folder, folder_slices) in enumerate(by_folder.items(), 1):
            images = read_images(folder_slices, root)
            inference.check_image_shapes(images, str(root / folder))
            prob = patient_probabilities(model, preprocessing, images, slice_gate, batch_size=batch_size)
            yield folder, folder_slices, images, inference.segment_volume(prob, preprocessing, settings)
            update(i, len(by_folder))
