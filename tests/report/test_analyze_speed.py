"""What keeps `gliomics analyze` fast: the direct .keras loader, no scipy.stats, a cheap figure.

The loader must give the very model tf-keras' own loader gives (same
predictions, same preprocessing and metadata), for a local folder and for a
registry URI, and hand everything it does not read itself to
``packaging.load_segmenter``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gliomics.errors import GliomicsError
from gliomics.models import inference
from gliomics.models.preprocessing import Preprocessing
from tests.helpers import STUB_SIZE as SIZE, flair_stub


def _no_fallback(uri):
    raise AssertionError(f"load_segmenter was called for {uri}: the direct loader was not used")


def _inputs() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(3, SIZE, SIZE, 3)).astype(np.float32)


def test_local_folder_loads_directly_and_matches_the_library_loader(stub_segmenter, monkeypatch):
    from gliomics.models import packaging

    expected_model, expected_prep, expected_meta = packaging.load_segmenter(stub_segmenter)
    monkeypatch.setattr(inference, "load_segmenter", _no_fallback)
    model, prep, meta = inference.load_model(stub_segmenter)
    assert prep == expected_prep and meta == expected_meta and meta["model_config"]["arch"] == "flair_stub"
    x = _inputs()
    np.testing.assert_array_equal(np.asarray(model(x, training=False)), np.asarray(expected_model(x, training=False)))
    assert not list(Path(stub_segmenter).rglob("*.weights.h5"))  # the copied weights are not left behind


def test_registry_alias_loads_directly(monkeypatch):
    import mlflow

    from gliomics import tracking
    from gliomics.models import packaging
    from gliomics.training import export

    tracking.ensure_experiment("train")
    with mlflow.start_run():
        export.log_segmenter(flair_stub(), Preprocessing(image_size=SIZE, threshold=0.4), {"arch": "flair_stub"},
                                registered_model_name="glioma")
    mlflow.MlflowClient().set_registered_model_alias("glioma", "champion", "1")
    expected = np.asarray(flair_stub()(_inputs(), training=False))
    monkeypatch.setattr(inference, "load_segmenter", _no_fallback)
    model, prep, meta = inference.load_model("models:/glioma@champion")
    assert prep.threshold == 0.4 and meta["model_config"] == {"arch": "flair_stub"}
    np.testing.assert_allclose(np.asarray(model(_inputs(), training=False)), expected, rtol=0, atol=1e-6)


def test_other_layouts_and_bad_uris_go_through_the_library_loader(stub_segmenter, tmp_path, monkeypatch):
    from gliomics.models import packaging

    with_assets = tmp_path / "with_assets"
    shutil.copytree(stub_segmenter, with_assets)
    with zipfile.ZipFile(with_assets / "data" / "model.keras", "a") as archive:
        archive.writestr("assets/vocabulary.txt", "a\nb\n")  # assets: tf-keras' own loader restores them
    assert inference.read_keras_file(with_assets / "data" / "model.keras") is None
    calls = []
    real = packaging.load_segmenter
    monkeypatch.setattr(inference, "load_segmenter", lambda uri: calls.append(uri) or real(uri))
    model, prep, _ = inference.load_model(str(with_assets))
    assert calls == [str(with_assets)] and prep.image_size == SIZE and model.output_shape[-1] == 1

    with pytest.raises(GliomicsError, match="not a model URI"):
        inference.load_model(str(tmp_path / "nowhere"))
    with pytest.raises(GliomicsError, match="no registered models exist yet"):
        inference.load_model("models:/glioma@champion")


def test_a_local_model_folder_does_not_import_mlflow(stub_segmenter):
    """MLflow's import costs seconds of the one-patient command; a local folder does not need it."""
    code = ("import sys; from gliomics.models.inference import load_model; "
            f"model, prep, meta = load_model({stub_segmenter!r}); "
            "print(sorted(m for m in ('mlflow', 'scipy.stats') if m in sys.modules), prep.image_size)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == f"[] {SIZE}"


def test_percentile_of_score_is_scipys_mean_kind():
    from scipy.stats import percentileofscore

    from gliomics.report.patient import percentile_of_score

    rng = np.random.default_rng(3)
    reference = rng.integers(0, 6, size=40).astype(float)  # many ties
    for value in (-1.0, 0.0, 2.0, 2.5, 5.0, 9.0):
        assert percentile_of_score(reference, value) == pytest.approx(percentileofscore(reference, value, "mean"))
    assert np.isnan(percentile_of_score(np.array([]), 1.0)) and np.isnan(percentile_of_score(reference, np.nan))


def test_feature_positions_draws_one_panel_per_feature():
    from gliomics.report import html as h
    from gliomics.report.segmentation_plots import feature_positions

    rng = np.random.default_rng(4)
    reference = pd.DataFrame({"a": rng.normal(size=30), "b": rng.normal(size=30), "c": [np.nan] * 30})
    fig = feature_positions(reference, {"a": 0.5, "b": np.nan, "c": 1.0}, ["a", "b", "c", "not_in_reference"])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]
    assert len(fig.axes[0].lines) == 1 and not fig.axes[1].lines  # the patient's value: a red line where known
    assert h.figure_png(fig).startswith(b"\x89PNG")
