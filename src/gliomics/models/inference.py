"""Inference with a segmenter: one patient's slices → probabilities → a mask volume.

Used by ``gliomics evaluate``, ``gliomics segment`` and ``gliomics analyze``
(and usable from a notebook with a model from :func:`load_model` or
:func:`gliomics.models.packaging.load_segmenter`).

* :func:`load_model` loads a logged segmenter like
  :func:`~gliomics.models.packaging.load_segmenter`, but reads a ``.keras``
  file on this machine directly: tf-keras' own loader reads the weights
  through ``zipfile``, whose backward seeks re-read the archive member from
  its start (Python 3.11), hundreds of times for a U-Net -- tens of seconds
  and gigabytes of reads for a 90 MB model. Here the weights are copied out
  of the archive once and read as a plain ``.weights.h5`` file; a local
  model folder does not import MLflow at all. Anything else (remote stores,
  other formats, models with assets or shared objects) goes through
  ``load_segmenter``, which never unpickles anything either.

* :func:`predict_patient` prepares the slices exactly as training did
  (:meth:`Preprocessing.prepare_patient`: optional pre-filter, resize to the
  model's size, per-patient z-score), runs the model in batches and brings
  the probabilities back to the slices' own size.
* :func:`segment_volume` turns the probability volume into a boolean mask:
  threshold, holes filled per slice, largest 3D connected component
  (:func:`gliomics.models.postprocess.postprocess`), each switchable through
  the ``post`` settings (:data:`POST_DEFAULTS`).

Image size: the commands (``evaluate``, ``segment``, ``analyze``) read their
slices through :mod:`gliomics.data.slices`, which accepts only the Kaggle
256x256x3 uint8 slices (what ``gliomics validate`` checks and the models'
input contract records) and refuses anything else with one line naming the
file. The functions here work on any ``H x W`` (every slice is resized to the
model's ``image_size`` and the prediction back to ``H x W``, so a mask always
matches its image), for use from a notebook; :func:`check_image_shapes`
warns when the slices are not 256x256, because a model trained at one field
of view may do poorly on another. The slices of one patient must all share
one size and have three channels (pre-contrast, FLAIR, post-contrast);
anything else is a :class:`GliomicsError`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import yaml

from gliomics import tracking
from gliomics.errors import GliomicsError
from gliomics.models._keras import keras
from gliomics.models.packaging import METADATA_KEY, SEGMENTER_TASK, check_task, custom_objects, load_segmenter
from gliomics.models.postprocess import postprocess
from gliomics.models.preprocessing import Preprocessing

#: The post-processing settings and their defaults; ``threshold=None`` means
#: the threshold stored with the model (``Preprocessing.threshold``); ``tta``:
#: left-right flip test-time augmentation (:class:`AveragedSegmenter`).
POST_DEFAULTS = {"threshold": None, "largest_component": True, "fill_holes": True, "tta": False}
#: The slice size of the Kaggle cohort (and of every training set here).
EXPECTED_SIZE = (256, 256)


#: The members of a ``.keras`` archive that :func:`read_keras_file` reads itself (no assets).
KERAS_MEMBERS = {"metadata.json", "config.json", "model.weights.h5"}
#: URIs that MLflow resolves (anything else is a local model folder).
URI_SCHEMES = ("runs:/", "models:/", "file:", "mlflow-artifacts:")


def load_model(uri: str):
    """``(keras_model, Preprocessing, metadata)`` of a logged segmenter, as fast as the URI allows.

    A local model folder, or a ``models:/`` / ``runs:/`` URI whose artifacts
    MLflow finds on this machine, is read with :func:`read_keras_file`;
    everything else, and every failure (with its one-line error), goes
    through :func:`gliomics.models.packaging.load_segmenter`.
    """
    folder = _local_model_folder(str(uri))
    loaded = _load_local_keras(folder) if folder is not None else None
    return loaded if loaded is not None else load_segmenter(str(uri))


def _local_model_folder(uri: str) -> Path | None:
    if not uri.startswith(URI_SCHEMES):
        path = Path(uri)
        return path if (path / "MLmodel").is_file() else None
    if not uri.startswith(("models:/", "runs:/")):
        return None
    import mlflow  # here, not at the top: a local model folder loads without MLflow's seconds of import

    try:
        tracking.configure()
        # A local store answers with the artifacts' own folder (no copy).
        path = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except Exception:  # noqa: BLE001 - load_segmenter reports the problem with its hints
        return None
    return path if (path / "MLmodel").is_file() else None


def _load_local_keras(folder: Path):
    """The model in an MLflow ``tensorflow``-flavour folder holding ``data/model.keras``; None otherwise."""
    try:
        mlmodel = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    flavor = (mlmodel.get("flavors") or {}).get("tensorflow") or {}
    data = folder / str(flavor.get("data") or "data")
    keras_module = data / "keras_module.txt"
    if (flavor.get("model_type") != "keras" or flavor.get("code")
            or (keras_module.is_file() and keras_module.read_text().strip() not in ("tensorflow.keras", "tf_keras"))):
        return None
    model = read_keras_file(data / "model.keras")
    if model is None:
        return None
    metadata = (mlmodel.get("metadata") or {}).get(METADATA_KEY, {})
    return model, Preprocessing.from_dict(metadata.get("preprocessing", {})), metadata


def read_keras_file(path: str | Path):
    """A tf-keras model from a ``.keras`` archive, uncompiled; None when it needs tf-keras' own loader.

    Same steps as ``tf_keras.models.load_model(path, compile=False)``
    (``deserialize_keras_object`` of ``config.json``, then the weights), but
    the weights file is copied out of the archive once instead of being read
    through ``zipfile``'s slow seeks. Archives with assets or shared objects
    return None (the library's loader handles them).
    """
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return None

    with zipfile.ZipFile(path) as archive:
        if set(archive.namelist()) != KERAS_MEMBERS:
            return None
        config_text = archive.read("config.json").decode("utf-8")
        if "shared_object_id" in config_text:
            return None
        config = json.loads(config_text)
        config["compile_config"] = None  # compile=False: inference needs no optimizer or loss
        model = keras.saving.deserialize_keras_object(config, custom_objects=custom_objects())
        with tempfile.TemporaryDirectory(prefix="gliomics-weights-") as tmp:
            weights = Path(tmp) / "model.weights.h5"
            with archive.open("model.weights.h5") as source, open(weights, "wb") as target:
                shutil.copyfileobj(source, target, 16 << 20)
            model.load_weights(weights)
    return model


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
    settings["tta"] = bool(settings["tta"])
    return settings


class AveragedSegmenter:
    r"""The mean probability of several segmenters (an ensemble, e.g. the cross-validation fold models), each
    also applied to the left-right mirrored slices when ``tta`` (flip test-time augmentation).

    .. math:: p(x) = \frac{1}{|M| |T|} \sum_{m \in M} \sum_{t \in T} t^{-1}(m(t(x)))

    with :math:`T = \{\mathrm{id}\}`, or :math:`\{\mathrm{id}, \mathrm{flip}\}` with ``tta``
    (the flip is its own inverse). With ``tta`` the result is mirror-equivariant,
    :math:`p(\mathrm{flip}\,x) = \mathrm{flip}\,p(x)` (exactly for one model; up to rounding for several).
    The left-right mirror is the flip the segmenters are trained with (``augment.hflip``); nnU-Net
    (Isensee et al., Nat. Methods 18, 2021) mirrors along every axis it augmented and averages its five fold
    models the same way.

    Called like a Keras model (``segmenter(batch, training=False)``, batch ``(B, S, S, 3)``, result
    ``(B, S, S, 1)`` float32), so :func:`predict_patient` and the slice gate take it as they take one model.
    """

    def __init__(self, models, *, tta: bool = False):
        self.models = list(models)
        if not self.models:
            raise GliomicsError("an ensemble needs at least one segmenter")
        self.tta = bool(tta)

    @property
    def input_shape(self):
        return self.models[0].input_shape

    def __call__(self, batch, training: bool = False) -> np.ndarray:
        batch = np.asarray(batch, dtype=np.float32)
        total = None
        for model in self.models:
            views = [np.asarray(model(batch, training=False), dtype=np.float32)]
            if self.tta:  # axis 2 is the image's width: a left-right mirror
                mirrored = np.ascontiguousarray(batch[:, :, ::-1])
                views.append(np.asarray(model(mirrored, training=False), dtype=np.float32)[:, :, ::-1])
            for view in views:
                total = view.copy() if total is None else total + view
        return total / (len(self.models) * (2 if self.tta else 1))


def describe_models(uris) -> str:
    """One model URI, or several joined by `` + `` (an ensemble), as the reports name them."""
    return str(uris) if isinstance(uris, (str, Path)) else " + ".join(str(u) for u in uris)


def load_segmenters(uris, *, tta: bool = False):
    """``(segmenter, Preprocessing, [metadata, ...])`` for one model URI or several (an ensemble).

    One URI without ``tta`` gives the Keras model itself; otherwise an :class:`AveragedSegmenter`.
    The members of an ensemble must prepare their input identically (same ``Preprocessing`` apart
    from the decision threshold, whose first member's value is used); each is checked against its
    preprocessing's image size.
    """
    uris = [uris] if isinstance(uris, (str, Path)) else list(uris)
    if not uris:
        raise GliomicsError("no segmenter given")
    models, metadata, first = [], [], None
    for uri in uris:
        model, preprocessing, meta = load_model(str(uri))
        check_task(meta, SEGMENTER_TASK, str(uri))
        check_segmenter(model, str(uri))
        check_model_size(model, preprocessing)
        if first is None:
            first = preprocessing
        else:
            mine = {k: v for k, v in preprocessing.to_dict().items() if k != "threshold"}
            theirs = {k: v for k, v in first.to_dict().items() if k != "threshold"}
            if mine != theirs:
                changed = sorted(k for k in mine if mine[k] != theirs.get(k))
                raise GliomicsError(f"{uri}: prepares its input differently from {uris[0]} ({', '.join(changed)}); "
                                    "an ensemble needs models trained on the same preprocessing")
        models.append(model)
        metadata.append(meta)
    if len(models) == 1 and not tta:
        return models[0], first, metadata
    return AveragedSegmenter(models, tta=tta), first, metadata


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


def check_segmenter(model, name: str) -> None:
    """A segmenter maps (batch, S, S, 3) slices to (batch, S, S, 1) probabilities; anything else (a slice
    classifier's (batch, 1), say) is refused with one line."""
    try:
        shape = tuple(model.output_shape)
    except (AttributeError, ValueError, TypeError):
        return
    if len(shape) != 4 or shape[-1] != 1:
        hint = " (a slice classifier? pass it with --gate)" if len(shape) == 2 else ""
        raise GliomicsError(f"{name}: not a segmenter: output shape {shape}, expected (batch, height, width, 1)"
                            f"{hint}")


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
    settings = post_settings(post, preprocessing)
    return postprocess(prob, threshold=settings["threshold"], largest_component=settings["largest_component"],
                       fill_holes=settings["fill_holes"])


