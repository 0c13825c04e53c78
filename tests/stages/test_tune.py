"""`gliomics tune` end to end on the 4-patient synthetic cohort: states, MLflow runs, reports,
kill-and-resume, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from tests.helpers import TINY_TRAIN, TINY_TUNE, tune_paths



def write_params(path, **tune_overrides):
    path.write_text(yaml.safe_dump({"train": {"demo": TINY_TRAIN}, "tune": {"demo": {**TINY_TUNE, **tune_overrides}}}))
    return path


def nested_runs(parent_ids=None):
    import mlflow

    from gliomics import tracking

    tracking.configure()
    runs = mlflow.search_runs(experiment_names=["tune"], output_format="list")
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags
            and (parent_ids is None or r.data.tags["mlflow.parentRunId"] in parent_ids)]


@pytest.mark.slow  # an end-to-end stage run: `make test`, not `make test-fast`
def test_tiny_study_end_to_end(tune_inputs, tmp_path):
    import optuna

    from gliomics.config import load_params
    from gliomics.stages.tune import run_tune

    data, manifest, splits = tune_inputs
    params = load_params(write_params(tmp_path / "params.yaml", promote_top_k=2))
    paths = tune_paths(tmp_path)
    best = run_tune(params, data, manifest, splits, **paths)

    # Optuna: 3 finished low-fidelity trials, 2 promoted ones, all in the RDB storage.
    low = optuna.load_study(study_name=best["study_name"], storage=paths["storage"])
    full = optuna.load_study(study_name=best["study_name"] + "-full", storage=paths["storage"])
    assert best["study_name"].startswith("t-") and len(best["study_name"]) == 10
    states = [t.state.name for t in low.trials]
    assert len(states) == 3 and set(states) <= {"COMPLETE", "PRUNED"} and "COMPLETE" in states
    assert [t.state.name for t in full.trials] == ["COMPLETE", "COMPLETE"]
    assert {t.user_attrs["promoted_from"] for t in full.trials} <= {t.number for t in low.trials}

    # trials.csv: the contract's columns, one row per trial of either fidelity.
    table = pd.read_csv(paths["reports_dir"] / "trials.csv")
    assert list(table.columns[:7]) == ["number", "state", "fidelity", "value", "epochs_run", "duration_s",
                                       "mlflow_run_id"]
    assert {c for c in table.columns if c.startswith("param_")} == {
        "param_activation", "param_pooling", "param_learning_rate", "param_augment_strength"}
    assert list(table["fidelity"]) == ["low"] * 3 + ["full"] * 2
    assert (table.loc[table["state"] == "PRUNED", "epochs_run"] < 2).all()

    # MLflow: a parent run with one nested run per trial, tagged as the contract says.
    runs = nested_runs({best["parent_run_id"]})
    assert len(runs) == 5
    by_id = {r.info.run_id: r for r in runs}
    for row in table.itertuples():
        run = by_id[row.mlflow_run_id]
        assert run.data.tags["state"] == row.state and run.data.tags["fidelity"] == row.fidelity
        assert run.data.tags["trial_number"] == str(row.number) and run.data.tags["study_name"] == best["study_name"]
        assert run.info.status == "FINISHED" and "duration_s" in run.data.tags
        assert len(run.data.metrics) > 0 and run.data.params["train.seed"] == "3"
    import mlflow

    parent = mlflow.get_run(best["parent_run_id"])
    assert parent.data.tags["role"] == "parent" and parent.data.metrics["best_val_dice_3d"] == best["val_dice_3d"]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(best["parent_run_id"])}
    assert {"trials.csv", "best.json", "importances.csv", "figures"} <= artifacts

    # best.json: the contract, pointing at the best full-fidelity trial and its logged model.
    on_disk = json.loads((paths["reports_dir"] / "best.json").read_text())
    assert on_disk == json.loads(json.dumps(best))
    for key in ("study_name", "storage", "trial_number", "fidelity", "val_dice_3d", "params", "train_settings",
                "model_uri", "model_dir", "parent_run_id", "n_trials", "n_complete", "n_pruned", "n_failed",
                "seconds"):
        assert key in best, key
    winner = max(full.trials, key=lambda t: t.value)
    assert best["trial_number"] == winner.number and best["val_dice_3d"] == winner.value
    assert best["model_uri"] == f"runs:/{winner.user_attrs['mlflow_run_id']}/model"
    assert best["train_settings"]["image_size"] == 32 and best["train_settings"]["epochs"] == 2  # full = profile's
    assert best["train_settings"]["model"]["activation"] == best["params"]["activation"]
    assert (best["n_trials"], best["n_complete"] + best["n_pruned"], best["n_failed"]) == (3, 3, 0)
    assert (paths["model_dir"] / "MLmodel").exists()
    from gliomics.models.packaging import load_segmenter

    model, preprocessing, metadata = load_segmenter(best["model_uri"])
    assert preprocessing.image_size == 32 and metadata["trial_number"] == winner.number
    figures = {p.name for p in (paths["reports_dir"] / "figures").glob("*.png")}
    assert {"optimization_history.png", "parallel_coordinate.png"} <= figures
    summary = json.loads((paths["reports_dir"] / "summary.json").read_text())
    assert summary["best_val_dice_3d"] == best["val_dice_3d"]

    # Re-running with the same budget continues the study: nothing new is trained.
    again = run_tune(params, data, manifest, splits, **paths)
    assert again["study_name"] == best["study_name"] and again["trial_number"] == best["trial_number"]
    assert len(optuna.load_study(study_name=best["study_name"], storage=paths["storage"]).trials) == 3
    assert len(nested_runs()) == 5


@pytest.mark.slow
def test_killed_search_resumes_without_losing_or_repeating_trials(tune_inputs, tmp_path):
    """SIGKILL `gliomics tune` once a trial has finished and the next is running, then re-run it."""
    import mlflow
    import optuna
    from optuna.trial import TrialState

    from gliomics.config import load_params
    from gliomics.stages.tune import run_tune

    data, manifest, splits = tune_inputs
    params_file = write_params(tmp_path / "params.yaml", n_trials=3,
                               low_fidelity={**TINY_TUNE["low_fidelity"], "epochs": 4, "steps_per_epoch": 3})
    paths = tune_paths(tmp_path)
    command = [sys.executable, "-m", "gliomics.cli", "--params", str(params_file), "tune", "--data", str(data),
               "--manifest", str(manifest), "--splits", str(splits), "--storage", paths["storage"],
               "--reports", str(paths["reports_dir"]), "--out", str(paths["model_dir"]),
               "--work-dir", str(paths["work_dir"]), "--store-root", str(paths["store_root"])]
    log = tmp_path / "killed_run.log"
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    before, killed, storage = None, None, None
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
            try:  # one connection, opened once the database exists (opening one is slow)
                storage = storage or optuna.storages.RDBStorage(paths["storage"])
                low_names = [s.study_name for s in storage.get_all_studies() if not s.study_name.endswith("-full")]
                if not low_names:
                    continue
                trials = optuna.load_study(study_name=low_names[0], storage=storage).trials
            except Exception:  # the database is still being created
                continue
            finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
            running = [t for t in trials if t.state == TrialState.RUNNING and "mlflow_run_id" in t.user_attrs]
            if finished and running:
                os.kill(process.pid, signal.SIGKILL)
                before = {t.number: (t.state, t.value, t.params) for t in finished}
                killed = running[0].number
                break
    finally:
        if process.poll() is None and killed is None:
            process.kill()
        process.wait()
    assert killed is not None, "the tune process ended before it could be killed mid-trial:\n" + log.read_text()[-3000:]
    study_name = low_names[0]

    best = run_tune(load_params(params_file), data, manifest, splits, **paths)

    low = optuna.load_study(study_name=study_name, storage=paths["storage"])
    trials = {t.number: t for t in low.trials}
    for number, (state, value, params) in before.items():  # no completed trial lost or changed
        assert (trials[number].state, trials[number].value, trials[number].params) == (state, value, params)
    assert trials[killed].state == TrialState.FAIL and "died" in trials[killed].user_attrs["error"]
    retry = [t for t in low.trials if t.user_attrs.get("retry_of") == killed]
    assert len(retry) == 1 and retry[0].params == trials[killed].params  # its configuration re-enqueued, once
    states = [t.state for t in low.trials]
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states) == 3  # the budget, exactly
    assert states.count(TrialState.FAIL) == 1 and len(states) == 4
    assert (best["n_trials"], best["n_failed"]) == (4, 1)

    # MLflow: every trial exactly once; the killed one FAILED with state FAIL; the dead parent closed.
    runs = nested_runs()
    keys = [(r.data.tags["fidelity"], int(r.data.tags["trial_number"])) for r in runs]
    assert len(keys) == len(set(keys)) == len(low.trials) + 1
    killed_run = mlflow.get_run(trials[killed].user_attrs["mlflow_run_id"])
    assert killed_run.info.status == "FAILED" and killed_run.data.tags["state"] == "FAIL"
    parents = [r for r in mlflow.search_runs(experiment_names=["tune"], output_format="list")
               if r.data.tags.get("role") == "parent"]
    assert sorted(r.info.status for r in parents) == ["FAILED", "FINISHED"]
    table = pd.read_csv(paths["reports_dir"] / "trials.csv")
    assert list(table.loc[table["fidelity"] == "low", "state"]).count("FAIL") == 1


def test_cli_bad_input(tune_inputs, tmp_path, capsys):
    from gliomics.cli import main

    data, manifest, splits = tune_inputs
    params_file = write_params(tmp_path / "params.yaml")
    common = ["--params", str(params_file), "tune", "--data", str(data), "--manifest", str(manifest),
              "--splits", str(splits), "--store-root", str(tmp_path / "arrays")]
    assert main(common + ["--storage", "not-a-url"]) == 2
    assert "not-a-url: not a database URL" in capsys.readouterr().err
    assert main(common + ["--storage", "nosuchdb://user:secret@host/db"]) == 2
    err = capsys.readouterr().err
    assert "cannot open the Optuna storage" in err and "secret" not in err and "***" in err
    assert main(common + ["--storage", f"sqlite:///{tmp_path}/missing/optuna.db"]) == 2
    assert "does not exist" in capsys.readouterr().err

    bad_space = tmp_path / "bad.yaml"
    bad_space.write_text(yaml.safe_dump({"tune": {"demo": {"space": {"arch": ["plain_unet"], "dropout": [0.1]}}}}))
    assert main(["--params", str(bad_space), "tune"]) == 2
    assert "tune.demo.space: unknown key(s) dropout" in capsys.readouterr().err

    bad_value = tmp_path / "bad_value.yaml"
    bad_value.write_text(yaml.safe_dump({"train": {"demo": TINY_TRAIN},
                                         "tune": {"demo": {**TINY_TUNE, "space": {"backbone": ["vgg16"]}}}}))
    assert main(["--params", str(bad_value), "tune", "--data", str(data), "--manifest", str(manifest),
                 "--splits", str(splits)]) == 2
    assert "tune.space.backbone: unknown 'vgg16'" in capsys.readouterr().err
    assert main(common + ["--workers", "0"]) == 2
