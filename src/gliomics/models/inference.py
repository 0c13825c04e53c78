"""Inference with a segmenter: one patient's slices → probabilities → a mask volume.

Used by ``gliomics evaluate`` and ``gliomics segment`` (and usable from a
notebook with a model from :func:`gliomics.models.packaging.load_segmenter`).

* :func:`predict_patient` prepares the slices exactly as training did
  (:meth:`Preprocessing.prepare_patient`: optional pre-filter, resize to the
  model's size, per-patient z-score), runs the model in batches and brings
  the probabilities back to the slices' own size.
* :func:`segment_volume` turns the probability volume into a boolean mask:
  threshold, holes filled per slice, largest 3D connected component
  (:func:`gliomics.training.metrics.postprocess`), each switchable through
  the ``post`` settings (:data:`POST_DEFAULTS`).

Image size: the Kaggle slices are 256x256, but any ``H x W`` is accepted.
Every slice is resized to the model's ``image_size`` anyway, and the
prediction is resized back to ``H x W``, so a mask always matches its image.
A size other than 256x256 is therefore *not* an error; the stages warn once
per patient (:func:`check_image_shapes`), because a model trained at one
field of view may do poorly on another. The slices of one patient must all
share one size and have three channels (pre-contrast, FLAIR,
post-contrast); anything else is a :class:`GliomicsError`.
"""

from __future__ import annotations

import warnings

import numpy as np

from gliomics.errors import GliomicsError

#: The post-processing settings and their defaults; ``threshold=None`` means
#: the threshold stored with the model (``Preprocessing.threshold``).
POST_DEFAULTS = {"threshold": None, "largest_component": True, "fill_holes": True}
#: The slice size of the Kaggle cohort (and of every training set here).
EXPECTED_SIZE = (256, 256)


def post_settings(post: dict | None, preprocessing=None) -> dict:
    """``post`` merged over :data:`POST_DEFAULTS`; unknown keys are an error."""
    post = dict(post or {})
    unknown = sorted(set(post) - set(POST_DEFAULTS))
    if unknown:
        raise GliomicsError(f"unknown post-processing setting(s) {unknown}; allowed: {sorted(POST_DEFAULTS)}")
    settings = {**POST_DEFAULTS, **{k: v for k, v in post.items() if v is not None}}
    if settings["threshold"] is None:
        settings["threshold"] = float(getattr(preprocessing, "threshold", 0.5))
    threshold = float(settings["threshold"])
    if not 0.0 <= threshold < 1.0:
        raise GliomicsError(f"post-processing threshold must be in [0, 1), got {threshold}")
    settings["threshold"] = threshold
    settings["largest_component"] = bool(settings["largest_component"])
    settings["fill_holes"] = bool(settings["fill_holes"])
    return settings


def check_image_shapes(images: np.ndarray, name: str) -> tuple[int, int]:
    """Check one patient's stacked slices; return ``(H, W)``, warning if not 256x256."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise GliomicsError(f"{name}: slices must be H x W x 3 images (pre-contrast, FLAIR, post-contrast), "
                            f"got shape {images.shape[1:]}")
    shape = tuple(int(s) for s in images.shape[1:3])
    if shape != EXPECTED_SIZE:
        warnings.warn(f"{name}: slices are {shape[0]}x{shape[1]}, not {EXPECTED_SIZE[0]}x{EXPECTED_SIZE[1]}; "
                      "they are resized to the model's size and the masks resized back", stacklevel=2)
    return shape


def check_model_size(model, preprocessing) -> None:
    """A model with a fixed input size must match its preprocessing's ``image_size``."""
    try:
        shape = tuple(model.input_shape)
    except (AttributeError, ValueError, TypeError):
        return
    if len(shape) != 4:
        raise GliomicsError(f"model input shape {shape}: expected (batch, height, width, 3)")
    size = preprocessing.image_size
    if any(s is not None and s != size for s in shape[1:3]) or shape[3] not in (None, 3):
        raise GliomicsError(f"model input shape {shape} does not match its preprocessing "
                            f"(image_size {size}, 3 channels)")


def predict_patient(model, preprocessing, images: np.ndarray, *, batch_size: int = 8) -> np.ndarray:
    """Tumour probabilities ``(n, H, W)`` float32 for one patient's slices ``(n, H, W, 3)`` uint8.

    All slices of the patient must be given together: the z-score is over
    the patient's brain pixels, as in training.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise GliomicsError(f"expected slices (n, H, W, 3), got shape {images.shape}")
    if len(images) == 0:
        return np.zeros((0,) + images.shape[1:3], dtype=np.float32)
    if batch_size < 1:
        raise GliomicsError(f"batch_size must be positive, got {batch_size}")
    prepared = preprocessing.prepare_patient(images)
    outputs = []
    for start in range(0, len(prepared), batch_size):
        batch = prepared[start:start + batch_size]
        result = model(batch, training=False)
        outputs.append(np.asarray(result, dtype=np.float32))
    probabilities = np.concatenate(outputs)
    return preprocessing.restore_size(probabilities, images.shape[1:3]).astype(np.float32)


def segment_volume(prob: np.ndarray, preprocessing=None, post: dict | None = None) -> np.ndarray:
    """Boolean mask volume from probabilities ``(n, H, W)`` with the ``post`` settings."""
    from gliomics.training.metrics import postprocess

    settings = post_settings(post, preprocessing)
    return postprocess(prob, threshold=settings["threshold"], largest_component=settings["largest_component"],
                       fill_holes=settings["fill_holes"])
