"""Logging and loading segmenters as MLflow models (tensorflow flavour).

A logged segmenter carries, as MLflow model metadata under ``gliomics``,
its :class:`~gliomics.models.preprocessing.Preprocessing` and the model
config it was built from, so that ``gliomics evaluate``/``segment`` prepare
any cohort exactly as training did. Anything MLflow can resolve is a model
URI: ``runs:/<id>/model``, ``models:/<name>/<version>``,
``models:/<name>@<alias>``, or a local folder holding an ``MLmodel`` file.
"""

from __future__ import annotations

from pathlib import Path

from gliomics import io
from gliomics.errors import GliomicsError
from gliomics.models.preprocessing import Preprocessing

METADATA_KEY = "gliomics"


def custom_objects() -> dict:
    """Every custom layer, loss and metric a saved gliomics model may reference."""
    from gliomics.models import custom_objects as model_objects
    from gliomics.training.losses import custom_objects as loss_objects

    return {**model_objects(), **loss_objects()}


def model_metadata(preprocessing: Preprocessing, model_config: dict, **extra) -> dict:
    return {METADATA_KEY: {"preprocessing": preprocessing.to_dict(), "model_config": dict(model_config), **extra}}


def log_segmenter(model, preprocessing: Preprocessing, model_config: dict, *, name: str = "model",
                  registered_model_name: str | None = None, **extra_metadata):
    """Log ``model`` to the active MLflow run with signature, input example and metadata."""
    import mlflow
    import numpy as np
    from mlflow.models import infer_signature

    size = preprocessing.image_size
    example = np.zeros((1, size, size, 3), dtype=np.float32)
    signature = infer_signature(example, np.zeros((1, size, size, 1), dtype=np.float32))
    return mlflow.tensorflow.log_model(
        model,
        name=name,
        custom_objects=custom_objects(),
        signature=signature,
        input_example=example,
        metadata=model_metadata(preprocessing, model_config, **extra_metadata),
        registered_model_name=registered_model_name,
    )


def load_segmenter(uri: str):
    """Load a segmenter: ``(keras_model, Preprocessing, metadata)``.

    Raises :class:`GliomicsError` naming the URI (and, for registry URIs,
    the registered models and aliases that exist) when it does not resolve.
    """
    import mlflow

    from gliomics import tracking

    tracking.configure()
    if not any(uri.startswith(prefix) for prefix in ("runs:/", "models:/", "file:", "mlflow-artifacts:")):
        path = Path(uri)
        if not (path / "MLmodel").exists():
            raise GliomicsError(f"{uri}: not a model URI (runs:/…, models:/…) nor a folder with an MLmodel file")
        uri = str(path.resolve())
    try:
        info = mlflow.models.get_model_info(uri)
        model = mlflow.tensorflow.load_model(uri, keras_model_kwargs={"compile": False,
                                                                      "custom_objects": custom_objects()})
    except Exception as exc:  # MLflow raises many types for an unresolvable URI
        raise GliomicsError(f"{uri}: cannot load model ({str(exc).splitlines()[0][:200]}){_registry_hint()}"
                            f"{_promote_hint(uri)}") from None
    metadata = (info.metadata or {}).get(METADATA_KEY, {})
    return model, Preprocessing.from_dict(metadata.get("preprocessing", {})), metadata


def _registry_hint() -> str:
    try:
        from mlflow import MlflowClient

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
    try:
        from mlflow import MlflowClient

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
    import shutil
    import tempfile
    import zipfile

    import h5py
    import numpy as np

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
        with h5py.File(tmp / WEIGHTS_MEMBER, "r+") as weights:
            names = []
            weights.visititems(lambda name, obj: names.append(name)
                               if isinstance(obj, h5py.Dataset) and obj.dtype == np.float32 else None)
            for name in names:
                values = weights[name][()]
                largest = max(largest, float(np.abs(values).max(initial=0.0)))
                if largest > np.finfo(np.float16).max:
                    raise GliomicsError(f"{archive}: weight {name} reaches {largest:.3g}, beyond float16's range")
                del weights[name]
                weights.create_dataset(name, data=values.astype(np.float16))
                n_arrays += 1
        rebuilt = tmp / "rebuilt.keras"
        with zipfile.ZipFile(rebuilt, "w", compression=zipfile.ZIP_DEFLATED) as target:
            for member in members:
                target.write(tmp / member, member)
        with io.atomic_path(archive) as out:
            shutil.copyfile(rebuilt, out)
    return {"arrays": n_arrays, "bytes_before": before, "bytes_after": archive.stat().st_size,
            "max_abs_weight": largest}
