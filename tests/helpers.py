"""Helpers shared by several test modules: tiny training settings, stage inputs, servers under test."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gliomics.models.preprocessing import Preprocessing

#: Fast fit settings shared by the segmenter and classifier training tests (add model and steps_per_epoch).
TINY_FIT = dict(image_size=32, batch_size=4, epochs=2, learning_rate=1e-2, schedule="cosine",
                early_stopping_patience=5, precision="fp32", seed=3, augment={"distortion": None})

#: params.yaml sections of a tiny `gliomics tune` study (the segmenter on the 4-patient cohort).
TINY_TRAIN = {"model": {"arch": "plain_unet", "base_filters": 4, "depth": 2}, "image_size": 32, "batch_size": 4,
              "epochs": 2, "steps_per_epoch": 2, "learning_rate": 0.01, "precision": "fp32", "seed": 3,
              "augment": {"distortion": None}, "val_fold": 0}
TINY_TUNE = {"study_name": "t", "n_trials": 3, "sampler_seed": 0, "startup_trials": 3, "promote_top_k": 1,
             "pruner": {"name": "successive_halving", "min_resource": 1, "reduction_factor": 2},
             "space": {"arch": ["plain_unet"], "activation": ["relu", "elu"], "pooling": ["max", "avg"],
                       "learning_rate": [0.001, 0.03], "batch_size": [4], "augment_strength": [0.0, 1.0]},
             "model_options": {"plain_unet": {"base_filters": 4, "depth": 2}},
             "low_fidelity": {"image_size": 32, "train_patient_fraction": 0.67, "epochs": 2, "steps_per_epoch": 2}}

class Killed(Exception):
    """Stands for the training process being killed."""


def kill_after_first_epoch(epoch: int, row: dict) -> None:
    """An ``on_epoch_end`` callback that 'kills' training once epoch 1 is done (and checkpointed)."""
    if epoch == 1:
        raise Killed


#: A test patient that is in splits.csv but not in the cohort: a stage that read the test part would fail.
ABSENT_TEST_PATIENT = {"patient": "TCGA_XX_0000", "part": "test", "fold": -1}


def validate_and_split(cohort: Path, root: Path, parts: list[str], *, absent_test_patient: bool = False):
    """Validate ``cohort`` into ROOT/validate and write ROOT/splits.csv that gives its sorted patients ``parts``
    ("fold<k>" -> fold k, "test" -> fold -1), plus ABSENT_TEST_PATIENT if asked.

    Returns (manifest, splits, patients).
    """
    from gliomics.validation.cohort import validate_cohort

    validate_cohort(cohort, root / "validate", log_mlflow=False)
    manifest = root / "validate" / "manifest.csv"
    patients = sorted(pd.read_csv(manifest)["patient"].astype(str).unique())
    assert len(patients) == len(parts), f"{len(patients)} patients, {len(parts)} parts"
    folds = [-1 if part == "test" else int(part.removeprefix("fold")) for part in parts]
    splits = pd.DataFrame({"patient": patients, "part": parts, "fold": folds})
    if absent_test_patient:
        splits.loc[len(splits)] = ABSENT_TEST_PATIENT
    splits.to_csv(root / "splits.csv", index=False)
    return manifest, root / "splits.csv", patients


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_health(url: str, server: subprocess.Popen, log: Path, name: str, timeout_s: float) -> None:
    """Poll URL/health until it answers; fail the test, with the end of LOG, if ``server`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if server.poll() is not None:
            pytest.fail(f"{name} exited with {server.returncode}: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not answer within {timeout_s} s: {log.read_text()[-2000:]}")
            time.sleep(0.5)


#: Input size of the FLAIR stub segmenter.
STUB_SIZE = 64


def flair_stub(size: int = STUB_SIZE):
    """A segmenter without training: ``sigmoid(4 * FLAIR z-score - 9)`` (bright FLAIR is tumour)."""
    import tensorflow as tf

    inputs = tf.keras.Input((size, size, 3))
    conv = tf.keras.layers.Conv2D(1, 1, activation="sigmoid", name="flair_gate")
    model = tf.keras.Model(inputs, conv(inputs))
    conv.set_weights([np.array([0.0, 4.0, 0.0], np.float32).reshape(1, 1, 3, 1), np.array([-9.0], np.float32)])
    return model


def save_local(model, path: Path, preprocessing: Preprocessing) -> Path:
    """``model`` saved as the project saves segmenters (gliomics.training.export.save_segmenter)."""
    from gliomics.training import export

    return export.save_segmenter(model, preprocessing, {"arch": "flair_stub"}, path)


def tune_paths(tmp_path) -> dict:
    """Where a test study keeps its storage, reports, model, work folders and array stores."""
    return {"storage": f"sqlite:///{tmp_path / 'optuna.db'}", "reports_dir": tmp_path / "reports",
            "model_dir": tmp_path / "tuned", "work_dir": tmp_path / "work", "store_root": tmp_path / "arrays"}
