"""Training by time budget: epochs from a measured speed, --steps replay, resume without recalibrating."""

from __future__ import annotations

import json

import pytest

import gliomics  # noqa: F401  (tf-keras 2)
from gliomics.config import TrainParams
from gliomics.errors import GliomicsError
from gliomics.training.budget import (BUDGET_FILE, Calibration, epochs_for_budget, epochs_for_steps,
                                      resolve_length)
from tests.helpers import TINY_FIT

TINY = {"arch": "plain_unet", "base_filters": 4, "depth": 2}


def test_epochs_follow_the_measured_speed():
    # 10 min = 600 s; 20 s of calibration; an epoch = 50 steps x 0.5 s + 5 s of validation = 30 s.
    assert epochs_for_budget(10, 50, Calibration(seconds_per_step=0.5, val_seconds=5, seconds=20)) == 19
    # A machine four times faster per step trains more epochs in the same budget.
    assert epochs_for_budget(10, 50, Calibration(seconds_per_step=0.125, val_seconds=5, seconds=20)) == 51  # 580 / 11.25
    # A budget smaller than one epoch still trains one.
    assert epochs_for_budget(0.1, 50, Calibration(seconds_per_step=0.5, val_seconds=5, seconds=20)) == 1


def test_bad_budgets_and_step_counts_are_refused():
    with pytest.raises(GliomicsError, match="budget_minutes must be > 0"):
        epochs_for_budget(0, 10, Calibration(0.1, 1, 1))
    with pytest.raises(GliomicsError, match="measured no time"):
        epochs_for_budget(5, 10, Calibration(0.0, 1, 1))
    with pytest.raises(GliomicsError, match="not a multiple of train.steps_per_epoch"):
        epochs_for_steps(105, 10)
    with pytest.raises(GliomicsError, match="budget_minutes must be >= 0"):
        resolve_length(TrainParams(budget_minutes=-1))


def test_a_budgeted_run_resolves_to_the_settings_its_step_count_replays(tmp_path):
    params = TrainParams(epochs=3, steps_per_epoch=10, batch_size=4, budget_minutes=2.0)
    calls = []

    def measure():
        calls.append(1)
        return Calibration(seconds_per_step=0.2, val_seconds=1.0, seconds=0.0)  # 3 s an epoch: 40 epochs

    budgeted, info = resolve_length(params, checkpoint_dir=tmp_path, calibrate_run=measure)
    assert info["source"] == "budget" and info["epochs"] == 40 and info["total_steps"] == 400
    assert info["images"] == 1600 and info["seconds_per_image"] == pytest.approx(0.05)
    replayed, replay_info = resolve_length(params, steps=info["total_steps"])
    assert replayed == budgeted  # identical settings: the same run, fingerprint and schedule
    assert budgeted.budget_minutes == 0 and budgeted.epochs == 40
    assert replay_info["source"] == "steps" and len(calls) == 1

    # --resume reuses the recorded choice; a fresh run calibrates again.
    assert json.loads((tmp_path / BUDGET_FILE).read_text())["epochs"] == 40
    again, again_info = resolve_length(params, checkpoint_dir=tmp_path, resume=True, calibrate_run=measure)
    assert again == budgeted and again_info.get("reused") and len(calls) == 1
    resolve_length(params, checkpoint_dir=tmp_path, resume=False, calibrate_run=measure)
    assert len(calls) == 2

    # Without a budget, epochs decide.
    plain, plain_info = resolve_length(TrainParams(epochs=3, steps_per_epoch=10))
    assert plain.epochs == 3 and plain_info == {"source": "epochs", "epochs": 3, "total_steps": 30,
                                                 "steps_per_epoch": 10, "images": 240}


def test_calibration_times_the_real_model_and_validation(store32):
    from gliomics.training.budget import calibrate
    from gliomics.training.tasks import SEGMENTATION

    store, train, val = store32
    params = TrainParams(**{**TINY_FIT, "model": TINY, "steps_per_epoch": 3})
    calibration = calibrate(SEGMENTATION, store, train, val, params, warmup=1, timed=2)
    assert calibration.seconds_per_step > 0 and calibration.val_seconds > 0
    assert calibration.seconds >= calibration.seconds_per_step * 2 + calibration.val_seconds


@pytest.mark.slow  # an end-to-end stage run: `make test`, not `make test-fast`
def test_train_stage_logs_the_length_and_replays_with_steps(small_cohort, tmp_path, capsys):
    from gliomics.stages.train import run_train
    from tests.helpers import validate_and_split

    manifest, splits, _ = validate_and_split(small_cohort, tmp_path, ["fold0", "fold1", "fold1", "fold1"])
    params = TrainParams(**{**TINY_FIT, "model": TINY, "steps_per_epoch": 2, "epochs": 5, "image_size": 32})
    common = dict(store_dir=tmp_path / "arrays", log_mlflow=False)
    summary = run_train(small_cohort, manifest, splits, params, out_dir=tmp_path / "m", steps=4,
                        checkpoint_dir=tmp_path / "ck", reports_dir=tmp_path / "r", **common)
    assert summary["epochs_run"] == 2 and summary["total_steps"] == 4 and summary["length_source"] == "steps"
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train: epoch")]
    assert [line.split()[2] for line in lines] == ["1/2", "2/2"]  # one line per validated epoch, not a tty
    assert "val_dice_3d" in lines[0] and "best" in lines[0]
