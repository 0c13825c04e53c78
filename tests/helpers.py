"""Helpers shared by several test modules: tiny training settings, stage inputs, servers under test."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

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
