"""Trained models saved, logged and exported as MLflow models (tensorflow flavour, signature, input example,
metadata with their task and preprocessing): segmenters, slice classifiers (with their chosen threshold), and
the shipped copy of either (:func:`export_model`). Loading lives below, in
:mod:`gliomics.models.packaging`."""

from __future__ import annotations

import dataclasses
import os
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np
from mlflow.models import infer_signature

from gliomics import io
from gliomics.errors import GliomicsError
from gliomics.models import build_under_policy
from gliomics.models.ensemble import member_name
from gliomics.models.inference import load_model, load_segmenters
from gliomics.models.options import ENSEMBLE_ARCH
from gliomics.models.packaging import custom_objects, model_metadata, store_weights_in_16_bits
from gliomics.models.preprocessing import Preprocessing
from gliomics.training.classification import attached_threshold
from gliomics.training.losses import custom_objects as loss_objects

#: ``metadata.gliomics.task`` of a slice classifier.
TASK = "classifier"


def _signature(size: int):
    example = np.zeros((1, size, size, 3), dtype=np.float32)
    return example, infer_signature(example, np.zeros((1, 1), dtype=np.float32))


def classifier_metadata(preprocessing, model_config: dict, min_area_px: int, **extra) -> dict:
    return model_metadata(preprocessing, model_config, task=TASK, min_area_px=int(min_area_px), **extra)


def _with_threshold(model, preprocessing, extra: dict):
    """``(preprocessing, extra)`` with the threshold that training attached to ``model``, if any."""
    choice = attached_threshold(model)
    if choice is None:
        return preprocessing, extra
    return (dataclasses.replace(preprocessing, threshold=choice.threshold),
            {**extra, "threshold_selection": choice.to_dict()})


def save_classifier(model, preprocessing, model_config: dict, path, *, min_area_px: int, **extra) -> Path:
    """Save ``model`` as a local MLflow model folder at ``path`` (atomically).

    A threshold that :func:`gliomics.training.fit.fit_classifier` attached to
    ``model`` replaces ``preprocessing.threshold`` and is recorded as metadata
    ``threshold_selection``.
    """
    preprocessing, extra = _with_threshold(model, preprocessing, extra)
    example, signature = _signature(preprocessing.image_size)
    with io.atomic_path(path) as tmp:
        mlflow.tensorflow.save_model(model, str(tmp), custom_objects=saving_custom_objects(), signature=signature,
                                     input_example=example,
                                     metadata=classifier_metadata(preprocessing, model_config, min_area_px, **extra))
    return Path(path)


def log_classifier(model, preprocessing, model_config: dict, *, min_area_px: int, name: str = "model",
                   registered_model_name: str | None = None, **extra):
    """Log ``model`` to the active MLflow run (tensorflow flavour, signature, input example, metadata).

    The threshold is handled as by :func:`save_classifier`; its numbers
    (``threshold, val_accuracy_at_0.5, val_accuracy_at_threshold``) are
    logged as metrics of the run.
    """
    preprocessing, extra = _with_threshold(model, preprocessing, extra)
    choice = attached_threshold(model)
    if choice is not None:
        mlflow.log_metrics({k: float(v) for k, v in choice.metrics().items() if v is not None})
    example, signature = _signature(preprocessing.image_size)

    with validating_own_pickles():  # as log_segmenter
        return mlflow.tensorflow.log_model(model, name=name, signature=signature, custom_objects=saving_custom_objects(),
                                           input_example=example, registered_model_name=registered_model_name,
                                           metadata=classifier_metadata(preprocessing, model_config, min_area_px,
                                                                        **extra))


@contextmanager
def validating_own_pickles():
    """While MLflow logs a model this process just built: its pickled custom objects may be read back.

    ``log_model`` checks the input example by loading the model through pyfunc, which unpickles the custom
    objects it has just written; gliomics turns pickle deserialisation off in its process (models from elsewhere
    must never run code), so that check would fail with a warning. These pickles are our own, written a moment
    ago by this process, so the check is allowed for the duration of the call.
    """
    previous = os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION")
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", None)
        else:
            os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = previous


def log_segmenter(model, preprocessing: Preprocessing, model_config: dict, *, name: str = "model",
                  registered_model_name: str | None = None, **extra_metadata):
    """Log ``model`` to the active MLflow run with signature, input example and metadata."""
    size = preprocessing.image_size
    example = np.zeros((1, size, size, 3), dtype=np.float32)
    signature = infer_signature(example, np.zeros((1, size, size, 1), dtype=np.float32))
    # custom_objects are pickled for MLflow's pyfunc (opt-in, see load_segmenter); gliomics loads by name.
    with validating_own_pickles():
        return mlflow.tensorflow.log_model(
            model,
            name=name,
            custom_objects=saving_custom_objects(),
            signature=signature,
            input_example=example,
            metadata=model_metadata(preprocessing, model_config, **extra_metadata),
            registered_model_name=registered_model_name,
        )


def save_segmenter(model, preprocessing, model_config: dict, path, **extra_metadata) -> Path:
    """Save ``model`` as a local MLflow model folder at ``path`` (atomically), as log_segmenter logs it."""
    size = preprocessing.image_size
    example = np.zeros((1, size, size, 3), dtype=np.float32)
    signature = infer_signature(example, np.zeros((1, size, size, 1), dtype=np.float32))
    with io.atomic_path(path) as tmp:
        mlflow.tensorflow.save_model(model, str(tmp), custom_objects=saving_custom_objects(), signature=signature,
                                     input_example=example,
                                     metadata=model_metadata(preprocessing, model_config, **extra_metadata))
    return Path(path)


def export_model(source, target, *, half: bool = True, **extra_metadata) -> dict:
    """Copy the segmenter or slice classifier at ``source`` (a model URI or folder) to the local folder
    ``target`` for shipping: rebuilt with float32 compute (a model trained under the ``mixed_bfloat16`` policy
    would otherwise compute in bfloat16, which CPUs without avx512_bf16/AMX only emulate, several times
    slower), its metadata (task, preprocessing with a classifier's threshold, ...) kept plus
    ``extra_metadata``, and with ``half`` its weights stored in 16 bits (:func:`store_weights_in_16_bits`).
    The pickled custom objects MLflow writes beside the model (``data/*.cloudpickle``) are left out: gliomics
    registers them by name when loading (:func:`load_segmenter`), and a shipped model carries no pickle.
    Returns the storage numbers (``{}`` without ``half``) and the folder's size in ``folder_bytes``.
    """
    model, preprocessing, metadata = load_model(str(source))
    config = dict(metadata.get("model_config") or {})
    if not config:
        raise GliomicsError(f"{source}: no model_config in its metadata; cannot rebuild it for export")
    rebuilt = build_under_policy(config, "float32")
    rebuilt.set_weights(model.get_weights())
    kept = {k: v for k, v in metadata.items() if k not in ("preprocessing", "model_config", "task", "min_area_px")}
    extra = {**kept, **extra_metadata, "compute": "float32", "stored_weights": "float16" if half else "float32"}
    if metadata.get("task") == TASK:
        save_classifier(rebuilt, preprocessing, config, target, min_area_px=int(metadata.get("min_area_px", 1)),
                        **extra)
    else:
        save_segmenter(rebuilt, preprocessing, config, target, **extra)
    return _finish_shipping(target, half)


def pack_ensemble(sources, target, *, half: bool = True, **extra_metadata) -> dict:
    r"""Pack the segmenters at ``sources`` (model URIs or folders) into one model folder ``target`` whose model
    outputs their mean probability (:func:`gliomics.models.ensemble.build_ensemble`): one folder to ship and
    load instead of several to pass with ``--model A B ...``.

    The members must be segmenters prepared identically (same :class:`Preprocessing` apart from the threshold;
    the first member's threshold is kept). The result computes in float32, with ``half`` stores its weights in
    16 bits, and records in its metadata ``members``: each member's source and the metadata that describes its
    training (profile, seed, best epoch, ...). Returns the storage numbers as :func:`export_model` does.
    """
    sources = [str(source) for source in sources]
    if len(sources) < 2:
        raise GliomicsError("an ensemble needs at least two segmenters")
    # The commands' own loading of an ensemble: tasks, output and input shapes, shared preprocessing checked.
    averaged, first, metadatas = load_segmenters(sources)
    for source, metadata in zip(sources, metadatas):
        if not metadata.get("model_config"):
            raise GliomicsError(f"{source}: no model_config in its metadata; cannot rebuild it in an ensemble")
        if metadata["model_config"].get("arch") == ENSEMBLE_ARCH:
            raise GliomicsError(f"{source}: already an ensemble; pack its members and the new model together")
    loaded = list(zip(averaged.models, metadatas))
    config = {"arch": ENSEMBLE_ARCH, "members": [dict(metadata["model_config"]) for _, metadata in loaded]}
    ensemble = build_under_policy(config, "float32")
    for index, (model, _) in enumerate(loaded):
        ensemble.get_layer(member_name(index)).set_weights(model.get_weights())
    members = [{"source": source, **{k: v for k, v in metadata.items() if k not in ("preprocessing", "input", "task")}}
               for source, (_, metadata) in zip(sources, loaded)]
    extra = {**extra_metadata, "members": members, "compute": "float32",
             "stored_weights": "float16" if half else "float32"}
    save_segmenter(ensemble, first, config, target, **extra)
    return _finish_shipping(target, half)


def _finish_shipping(target, half: bool) -> dict:
    """No pickle travels with a shipped model; weights in 16 bits with ``half``; the storage numbers."""
    for pickled in (Path(target) / "data").glob("*.cloudpickle"):
        pickled.unlink()
    storage = store_weights_in_16_bits(target) if half else {}
    storage["folder_bytes"] = sum(p.stat().st_size for p in Path(target).rglob("*") if p.is_file())
    return storage


def saving_custom_objects() -> dict:
    """The custom layers, losses and metrics a saved model may reference, pickled by MLflow for its pyfunc
    (gliomics itself loads by name: :func:`gliomics.models.packaging.custom_objects`)."""
    return {**custom_objects(), **loss_objects()}
