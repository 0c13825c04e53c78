"""Logging and loading segmenters as MLflow models (tensorflow flavour).

A logged segmenter carries, as MLflow model metadata under ``gliomics``,
its :class:`~gliomics.models.preprocessing.Preprocessing` and the model
config it was built from, so that ``gliomics evaluate``/``segment`` prepare
any cohort exactly as training did. Anything MLflow can resolve is a model
URI: ``runs:/<id>/model``, ``models:/<name>/<version>``,
``models:/<name>@<alias>``, or a local folder holding an ``MLmodel`` file.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import yaml

from gliomics import io, tracking
from gliomics.errors import GliomicsError
from gliomics.models import custom_objects as model_objects
from gliomics.models._keras import keras
from gliomics.models.preprocessing import Preprocessing

METADATA_KEY = "gliomics"
#: ``metadata.gliomics.task`` of a segmenter; slice classifiers record ``"classifier"``.
SEGMENTER_TASK = "segmenter"
#: What every gliomics model takes: Kaggle slices, channels in this order, resized to ``image_size`` and
#: z-scored per patient by :class:`~gliomics.models.preprocessing.Preprocessing`.
INPUT_CONTRACT = {"slice": "256x256x3 uint8", "channels": ["pre-contrast", "FLAIR", "post-contrast"]}


def custom_objects() -> dict:
    """Every custom layer a saved gliomics model may reference, by name (loading is uncompiled: no losses or
    metrics are needed)."""
    return model_objects()


def model_metadata(preprocessing: Preprocessing, model_config: dict, *, task: str = SEGMENTER_TASK, **extra) -> dict:
    """The MLflow metadata of a gliomics model: its task, input contract, preprocessing and build config."""
    return {METADATA_KEY: {"task": task, "input": {**INPUT_CONTRACT, "image_size": preprocessing.image_size},
                           "preprocessing": preprocessing.to_dict(), "model_config": dict(model_config), **extra}}


def check_task(metadata: dict, expected: str, name: str) -> None:
    """A one-line error when the model's recorded task is not ``expected`` (models saved before tasks were
    recorded have none; their output shape is checked instead)."""
    task = (metadata or {}).get("task")
    if task and task != expected:
        label = {"classifier": "slice classifier", SEGMENTER_TASK: "segmenter"}
        hint = {"classifier": "; pass it with --gate, or to evaluate --task classifier",
                SEGMENTER_TASK: "; score its slices with evaluate --task classifier --from-segmenter"}
        raise GliomicsError(f"{name}: not a {label.get(expected, expected)}: its metadata says "
                            f"{label.get(task, task)}{hint.get(task, '')}")


def load_segmenter(uri: str):
    """Load a segmenter (or slice classifier): ``(keras_model, Preprocessing, metadata)``, never running code
    from the model.

    MLflow only resolves the URI to a local folder (``download_artifacts`` copies remote artifacts, it loads
    nothing); the model is then read with tf-keras' own loader in safe mode from ``data/model.keras`` (a JSON
    config and HDF5 weights), with the custom layers, losses and metrics registered by name in gliomics
    (:func:`custom_objects`). MLflow's ``load_model`` is never called: it would unpickle
    ``custom_objects.cloudpickle``, so a crafted model folder could run code. A folder that cannot be loaded
    that way (another flavour, a ``code`` folder, no ``model.keras``) is refused with one line.

    Raises :class:`GliomicsError` naming the URI (and, for registry URIs, the registered models and aliases
    that exist) when it does not resolve.
    """
    folder = resolve_model_folder(uri)
    return load_keras_folder(folder, name=uri)


def resolve_model_folder(uri: str) -> Path:
    """The local folder of a model URI or folder (MLflow downloads remote artifacts; nothing is loaded)."""
    if not any(uri.startswith(prefix) for prefix in ("runs:/", "models:/", "file:", "mlflow-artifacts:")):
        path = Path(uri)
        if not (path / "MLmodel").exists():
            raise GliomicsError(f"{uri}: not a model URI (runs:/…, models:/…) nor a folder with an MLmodel file")
        return path.resolve()
    import mlflow  # only for a model URI: a local folder loads without MLflow's seconds of import

    tracking.configure()
    try:
        path = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except Exception as exc:  # MLflow raises many types for an unresolvable URI
        raise GliomicsError(f"{uri}: cannot load model ({str(exc).splitlines()[0][:200]}){_registry_hint()}"
                            f"{_promote_hint(uri)}") from None
    if not (path / "MLmodel").is_file():
        raise GliomicsError(f"{uri}: resolves to {path}, which has no MLmodel file")
    return path


def load_keras_folder(folder: Path, name: str | None = None):
    """``(model, Preprocessing, metadata)`` of an MLflow tensorflow-flavour folder, by tf-keras' safe loader."""
    name = name or str(folder)
    try:
        mlmodel = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise GliomicsError(f"{name}: unreadable MLmodel file ({str(exc).splitlines()[0][:200]})") from None
    flavor = (mlmodel.get("flavors") or {}).get("tensorflow") or {}
    archive = folder / str(flavor.get("data") or "data") / "model.keras"
    if flavor.get("model_type") != "keras" or flavor.get("code") or not archive.is_file():
        why = ("it has a code folder" if flavor.get("code") else
               "not a tf-keras model in data/model.keras" if flavor else "no tensorflow flavour")
        raise GliomicsError(f"{name}: refused: gliomics loads only tf-keras models saved as data/model.keras, "
                            f"never code or pickled objects from a model folder ({why})")

    try:
        model = keras.models.load_model(archive, custom_objects=custom_objects(), compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - tf-keras raises many types for a damaged or foreign archive
        raise GliomicsError(f"{name}: cannot load {archive.name} ({str(exc).splitlines()[0][:200]})") from None
    metadata = (mlmodel.get("metadata") or {}).get(METADATA_KEY, {})
    return model, Preprocessing.from_dict(metadata.get("preprocessing", {})), metadata


def _registry_hint() -> str:
    from mlflow import MlflowClient

    try:
        models = MlflowClient().search_registered_models()
    except Exception:
        return ""
    if not models:
        return "; no registered models exist yet"
    described = []
    for model in models[:10]:
        aliases = ", ".join(f"@{a}" for a in (model.aliases or {})) or "no aliases"
        described.append(f"{model.name} ({aliases})")
    return "; registered: " + "; ".join(described)


def _promote_hint(uri: str) -> str:
    """For ``models:/<name>@<alias>`` that no version holds: how to give the alias to a version."""
    if not uri.startswith("models:/") or "@" not in uri:
        return ""
    name, alias = uri.removeprefix("models:/").split("@", 1)
    from mlflow import MlflowClient

    try:
        client = MlflowClient()
        numbers = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
        if numbers and alias in (client.get_registered_model(name).aliases or {}):
            return ""  # the alias exists: the failure was something else
    except Exception:
        return ""
    option = "" if alias == "champion" else f" --alias {alias}"
    if numbers:
        return (f"; no version of {name} has alias @{alias}: promote one with `gliomics promote --version N"
                f"{option}` (versions: {', '.join(map(str, numbers))}; `gliomics models` lists them)")
    return (f"; {name} has no versions yet: run `gliomics tune` then `gliomics register` (`dvc repro register` "
            f"does both), or `gliomics promote --version N{option}` once a version exists")


#: The Keras archive inside an MLflow tensorflow-flavour model folder, and its weights member.
KERAS_ARCHIVE = Path("data") / "model.keras"
WEIGHTS_MEMBER = "model.weights.h5"


def store_weights_in_16_bits(model_dir) -> dict:
    """Rewrite the float32 weights of the MLflow model folder ``model_dir`` as float16, in place (atomically).

    The archive keeps its format: tf-keras' loader (and :func:`gliomics.models.inference.read_keras_file`)
    casts each stored array to its variable's float32 on loading, so the model computes in float32 as before
    with weights rounded to float16 (11 significant bits: relative error <= 2**-11). Returns
    ``{"arrays", "bytes_before", "bytes_after", "max_abs_weight"}``. A weight beyond float16's range
    (65504) is refused, since it would become infinite.
    """
    archive = Path(model_dir) / KERAS_ARCHIVE
    if not archive.is_file() or not zipfile.is_zipfile(archive):
        raise GliomicsError(f"{model_dir}: no Keras archive at {KERAS_ARCHIVE} (not a gliomics model folder)")
    before = archive.stat().st_size
    largest = 0.0
    n_arrays = 0
    with tempfile.TemporaryDirectory(prefix="gliomics-half-") as tmp:
        tmp = Path(tmp)
        with zipfile.ZipFile(archive) as source:
            members = source.namelist()
            if WEIGHTS_MEMBER not in members:
                raise GliomicsError(f"{archive}: no {WEIGHTS_MEMBER} inside")
            source.extractall(tmp)
        # A new file, not datasets replaced in place: HDF5 does not give back the space of deleted datasets.
        with h5py.File(tmp / WEIGHTS_MEMBER, "r") as source, h5py.File(tmp / "half.h5", "w") as half:
            half.attrs.update(source.attrs)

            def copy(name, obj):
                nonlocal largest, n_arrays
                if isinstance(obj, h5py.Group):
                    half.require_group(name).attrs.update(obj.attrs)
                    return
                values = obj[()]
                if obj.dtype == np.float32:
                    largest = max(largest, float(np.abs(values).max(initial=0.0)))
                    if largest > np.finfo(np.float16).max:
                        raise GliomicsError(f"{archive}: weight {name} reaches {largest:.3g}, beyond float16's range")
                    values = values.astype(np.float16)
                    n_arrays += 1
                half.create_dataset(name, data=values).attrs.update(obj.attrs)

            source.visititems(copy)
        (tmp / "half.h5").replace(tmp / WEIGHTS_MEMBER)
        rebuilt = tmp / "rebuilt.keras"
        with zipfile.ZipFile(rebuilt, "w", compression=zipfile.ZIP_DEFLATED) as target:
            for member in members:
                target.write(tmp / member, member)
        with io.atomic_path(archive) as out:
            shutil.copyfile(rebuilt, out)
    return {"arrays": n_arrays, "bytes_before": before, "bytes_after": archive.stat().st_size,
            "max_abs_weight": largest}
