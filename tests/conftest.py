"""Shared fixtures: a small synthetic cohort, writable copies of it, real data."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import gliomics  # noqa: F401  (sets TF_USE_LEGACY_KERAS before any test module imports TensorFlow)

PROJECT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT.parent / "shared" / "data"
SMALL_SEED = 7
SMALL_PATIENTS = 4


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory) -> Path:
    """A 4-patient synthetic cohort (read-only by convention: copy before changing)."""
    from gliomics.data.synthetic import write_cohort

    root = tmp_path_factory.mktemp("cohort") / "kaggle_3m"
    write_cohort(root, seed=SMALL_SEED, n_patients=SMALL_PATIENTS)
    return root


@pytest.fixture
def cohort_copy(small_cohort, tmp_path) -> Path:
    """A private, writable copy of the small cohort."""
    target = tmp_path / "kaggle_3m"
    shutil.copytree(small_cohort, target)
    return target


@pytest.fixture(scope="module")
def store32(small_cohort, tmp_path_factory):
    """The small cohort's 32 px array store, its first 3 patients (training) and the rest (validation)."""
    from gliomics.data.arrays import build_array_store, open_array_store

    out = tmp_path_factory.mktemp("store") / "arrays"
    build_array_store(small_cohort, out, image_size=32)
    store = open_array_store(out)
    return store, store.patients[:3], store.patients[3:]


@pytest.fixture(autouse=True)
def isolated_mlflow(tmp_path, monkeypatch):
    """Every test logs to its own throwaway MLflow store, never the project's."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def real_cohort(tmp_path_factory) -> Path:
    """Three real patients restored from ../shared (skipped when it is absent)."""
    script = SHARED_DATA / "restore_lgg.py"
    if not script.exists():
        pytest.skip("real data not available (../shared/data absent)")
    dest = tmp_path_factory.mktemp("real")
    subprocess.run([sys.executable, str(script), str(dest), "--patients", "3"], check=True, capture_output=True)
    return dest / "kaggle_3m"


@pytest.fixture(scope="session")
def stub_segmenter(tmp_path_factory) -> str:
    """A local MLflow model folder: the FLAIR stub of :func:`tests.helpers.flair_stub` (no training)."""
    from gliomics.models.preprocessing import Preprocessing
    from tests.helpers import STUB_SIZE, flair_stub, save_local

    return str(save_local(flair_stub(), tmp_path_factory.mktemp("models") / "stub",
                          Preprocessing(image_size=STUB_SIZE)))
