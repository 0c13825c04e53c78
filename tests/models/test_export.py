"""Shipping a segmenter: float32 compute, weights stored in 16 bits, loadable by both loaders."""

from __future__ import annotations

import zipfile

import h5py
import numpy as np
import pytest

import gliomics  # noqa: F401  (tf-keras 2)
from gliomics.errors import GliomicsError


@pytest.fixture(scope="module")
def bf16_model(tmp_path_factory):
    """A small plain U-Net built under the mixed_bfloat16 policy (as bf16 training builds it), saved locally."""
    import tensorflow as tf

    from gliomics.models import build_under_policy
    from gliomics.training.export import save_segmenter
    from gliomics.models.preprocessing import Preprocessing

    config = {"arch": "plain_unet", "base_filters": 4, "depth": 2, "input_shape": [32, 32, 3]}
    tf.keras.utils.set_random_seed(0)
    model = build_under_policy(config, "mixed_bfloat16")
    folder = tmp_path_factory.mktemp("m") / "trained"
    save_segmenter(model, Preprocessing(image_size=32), config, folder, profile="cpu")
    return folder


def _stored_dtypes(folder):
    with zipfile.ZipFile(folder / "data" / "model.keras") as archive, archive.open("model.weights.h5") as raw:
        with h5py.File(raw, "r") as weights:
            found = set()
            weights.visititems(lambda n, o: found.add(str(o.dtype)) if isinstance(o, h5py.Dataset) else None)
    return found


def test_export_stores_16_bit_weights_and_computes_in_float32(bf16_model, tmp_path):
    from gliomics.models.inference import load_model
    from gliomics.models.packaging import load_segmenter
    from gliomics.training.export import export_model

    storage = export_model(bf16_model, tmp_path / "ship", release="test")
    assert _stored_dtypes(tmp_path / "ship") == {"float16"} and _stored_dtypes(bf16_model) == {"float32"}
    assert storage["bytes_after"] < 0.6 * storage["bytes_before"] and storage["arrays"] > 0
    assert not list((tmp_path / "ship").rglob("*.cloudpickle"))  # no pickle travels with a shipped model

    original, _, _ = load_model(str(bf16_model))
    shipped, preprocessing, metadata = load_model(str(tmp_path / "ship"))
    assert metadata["compute"] == "float32" and metadata["stored_weights"] == "float16"
    assert metadata["profile"] == "cpu" and metadata["release"] == "test" and preprocessing.image_size == 32
    assert all(w.dtype == "float32" for w in shipped.weights)
    assert all(getattr(layer, "compute_dtype", "float32") == "float32" for layer in shipped.layers)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(shipped(x)), np.asarray(original(x)), atol=2e-2)
    # Each weight is the original rounded to float16.
    for a, b in zip(original.get_weights(), shipped.get_weights()):
        np.testing.assert_array_equal(b, a.astype(np.float16).astype(np.float32))
    # MLflow's own loader reads the 16-bit archive too.
    via_mlflow, _, _ = load_segmenter(str(tmp_path / "ship"))
    np.testing.assert_allclose(np.asarray(via_mlflow(x)), np.asarray(shipped(x)), atol=1e-6)


def test_16_bit_storage_refuses_what_is_not_a_model_folder(tmp_path):
    from gliomics.models.packaging import store_weights_in_16_bits

    with pytest.raises(GliomicsError, match="no Keras archive"):
        store_weights_in_16_bits(tmp_path)


@pytest.mark.slow  # 10+ s (a model trained, saved or registered): `make test` only
def test_export_of_a_slice_classifier_keeps_its_task_threshold_and_area(tmp_path):
    from gliomics.models import build_from_config
    from gliomics.models.gate import load_classifier
    from gliomics.models.preprocessing import Preprocessing
    from gliomics.training.export import export_model, save_classifier

    config = {"arch": "resnet_classifier", "depth": 50, "base_filters": 4, "stage_blocks": [1, 1, 1, 1],
              "input_shape": [32, 32, 3]}
    model = build_from_config(config)
    save_classifier(model, Preprocessing(image_size=32, threshold=0.37), config, tmp_path / "trained", min_area_px=5,
                    profile="cpu")
    storage = export_model(tmp_path / "trained", tmp_path / "ship")
    assert storage["arrays"] > 0 and _stored_dtypes(tmp_path / "ship") == {"float16"}

    shipped, preprocessing, metadata = load_classifier(str(tmp_path / "ship"))
    assert metadata["task"] == "classifier" and metadata["min_area_px"] == 5 and metadata["profile"] == "cpu"
    assert preprocessing.threshold == 0.37 and metadata["stored_weights"] == "float16"
    x = np.random.default_rng(1).normal(size=(3, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(shipped(x)), np.asarray(model(x)), atol=2e-2)
