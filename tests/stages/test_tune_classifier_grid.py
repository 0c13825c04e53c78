"""Grid search (exhaustive, once per point, also across re-runs and after a kill), promote_top_k 0,
and `gliomics tune --task classifier` end to end on the 4-patient synthetic cohort."""

from __future__ import annotations

import json
import os
import socket
from types import SimpleNamespace

import optuna
import pytest
import yaml

from gliomics.config import TuneSpaceParams, params_from_dict
from gliomics.errors import GliomicsError
from gliomics.tuning.space import grid_search_space

from tests.helpers import TINY_TRAIN, TINY_TUNE, tune_paths

GRID_TUNE = {**TINY_TUNE, "sampler": "grid", "n_trials": 10, "promote_top_k": 0, "pruner": {"name": "none"},
             "space": {**TINY_TUNE["space"], "learning_rate": [0.01], "augment_strength": [0.0]},
             "low_fidelity": {**TINY_TUNE["low_fidelity"], "epochs": 1, "steps_per_epoch": 1}}
ALL_POINTS = {("elu", "avg"), ("elu", "max"), ("relu", "avg"), ("relu", "max")}


def _points(study) -> list[tuple]:
    return [(t.params["activation"], t.params["pooling"]) for t in study.trials]


# ------------------------------------------------------------------ unit level


def test_grid_space_is_what_sample_suggests_and_refuses_what_a_grid_cannot_cover():
    space = TuneSpaceParams(arch=["plain_unet", "Unet"], backbone=["resnet18"], activation=["relu", "elu"],
                            pooling=["max", "avg"], learning_rate=[1e-3], batch_size=[4, 8])
    assert grid_search_space(space) == {"activation": ["relu", "elu"], "arch": ["plain_unet", "Unet"],
                                        "batch_size": [4, 8], "pooling": ["max", "avg"]}
    with pytest.raises(GliomicsError, match=r"^tune.demo.sampler: grid needs space.learning_rate fixed"):
        grid_search_space(TuneSpaceParams(learning_rate=[1e-4, 1e-2]), "tune.demo.sampler")
    conditional = TuneSpaceParams(arch=["plain_unet", "Unet"], backbone=["resnet18", "resnet34"],
                                  learning_rate=[1e-3])
    with pytest.raises(GliomicsError, match=r"^tune.cpu.sampler: .*space.backbone is searched for some"):
        grid_search_space(conditional, "tune.cpu.sampler")
    with pytest.raises(GliomicsError, match="space.pooling"):  # mobilenetv2 has no pooling layer to swap
        grid_search_space(TuneSpaceParams(arch=["Unet"], backbone=["resnet18", "mobilenetv2"],
                                          pooling=["max", "avg"], learning_rate=[1e-3]))


def test_tune_params_check_sampler_and_promote_top_k():
    with pytest.raises(GliomicsError, match=r"tune.demo.sampler: expected one of tpe, grid, got 'random'"):
        params_from_dict({"tune": {"demo": {"sampler": "random"}}})
    with pytest.raises(GliomicsError, match=r"tune_classifier.cpu.promote_top_k: must be >= 0"):
        params_from_dict({"tune_classifier": {"cpu": {"promote_top_k": -1}}})
    params = params_from_dict({"tune_classifier": {"demo": {"study_name": "c", "sampler": "grid"}}})
    assert params.tune_settings("classifier").study_name == "c" and params.tune_settings().sampler == "tpe"
    with pytest.raises(GliomicsError, match="tune_classifier.demo.space: unknown key"):
        params_from_dict({"tune_classifier": {"demo": {"space": {"depth": [18]}}}})


class _FakeTask:
    """A TuneTask whose 'training' is instant; elu+avg always fails."""

    name, section, metric, epoch_metrics = "fake", "tune", "m", ("m",)

    def settings(self, values, fidelity):
        return SimpleNamespace(**values, epochs=1)  # what the search reads of a TrainParams

    def train_trial(self, settings, fidelity, on_epoch_end, work_dir):
        from gliomics.tuning.tasks import TrialResult

        if (settings.activation, settings.pooling) == ("elu", "avg"):
            raise RuntimeError("this configuration always fails")
        value = {"relu": 0.5, "elu": 0.4}[settings.activation] + (0.1 if settings.pooling == "max" else 0)
        on_epoch_end(1, {"m": value})
        return TrialResult(value=value, best_epoch=1, epochs_run=1, history=None)


def test_grid_budget_runs_each_point_once_despite_a_failure_and_a_killed_trial(tmp_path):
    from gliomics.tuning import space as search_space
    from gliomics.tuning.search import run_phase
    from gliomics.tuning.study import make_sampler, recover_dead_trials, requeue
    from gliomics.tuning.trials import TrialLogger

    space = TuneSpaceParams(activation=["relu", "elu"], pooling=["max", "avg"], learning_rate=[1e-3])
    grid = search_space.grid_search_space(space)
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    study = optuna.create_study(storage=storage, study_name="g", direction="maximize",
                                sampler=make_sampler("grid", sampler_seed=0, startup_trials=0, grid=grid))
    # A trial whose worker was killed: RUNNING, its process gone.
    killed = study.ask()
    search_space.sample(killed, space)
    killed.set_user_attr("worker", f"{socket.gethostname()}:{2 ** 22 + 12345}")
    assert not os.path.exists(f"/proc/{2 ** 22 + 12345}")
    assert len(recover_dead_trials(study, requeue)) == 1

    kwargs = dict(logger=TrialLogger(None, "g"), work_dir=tmp_path, study_name="g", timeout=0.0,
                  grid_size=search_space.grid_size(grid), echo=lambda line: None)
    ran = run_phase(_FakeTask(), study, space, "low", n_trials=2, **kwargs)
    ran += run_phase(_FakeTask(), study, space, "low", n_trials=10, **kwargs)  # a re-run with a larger budget
    assert run_phase(_FakeTask(), study, space, "low", n_trials=10, **kwargs) == 0  # nothing left
    states = {}
    for trial in study.trials:
        states.setdefault((trial.params["activation"], trial.params["pooling"]), []).append(trial.state.name)
    assert set(states) == ALL_POINTS and ran == 4
    # The killed point ran once more (re-enqueued); the failing one ran once and was not drawn again.
    killed_point = (killed.params["activation"], killed.params["pooling"])
    assert states.pop(killed_point)[0] == "FAIL"
    assert all(len(s) == 1 for s in states.values())
    assert sum(s.count("FAIL") for s in states.values()) == (0 if killed_point == ("elu", "avg") else 1)


# ------------------------------------------------------------------ end to end


@pytest.mark.slow  # an end-to-end stage run: `make test`, not `make test-fast`
def test_grid_study_without_full_phase(tune_inputs, tmp_path, capsys):
    import mlflow

    from gliomics.cli import main
    from gliomics.config import load_params
    from gliomics.stages.tune import make_task
    from gliomics.tuning.study import study_key

    data, manifest, splits = tune_inputs
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"train": {"demo": TINY_TRAIN}, "tune": {"demo": GRID_TUNE}}))
    paths = tune_paths(tmp_path)
    common = ["--params", str(params_file), "tune", "--data", str(data), "--manifest", str(manifest), "--splits",
              str(splits), "--storage", paths["storage"], "--reports", str(paths["reports_dir"]),
              "--out", str(paths["model_dir"]), "--work-dir", str(paths["work_dir"]),
              "--store-root", str(paths["store_root"])]

    assert main(common + ["--n-trials", "3"]) == 0  # budget below the grid: 3 distinct points
    best = json.loads((paths["reports_dir"] / "best.json").read_text())
    low = optuna.load_study(study_name=best["study_name"], storage=paths["storage"])
    assert len(set(_points(low))) == len(low.trials) == 3
    assert main(common) == 0  # re-run, n_trials 10 > grid: only the 4th point runs (a 3rd run: none, see above)
    err = capsys.readouterr().err
    assert "grid search over 4 configuration(s)" in err
    epochs = GRID_TUNE["low_fidelity"]["epochs"]  # a progress line per trial epoch, for the 4th point only
    assert [line.split()[5] for line in err.splitlines() if line.startswith("tune: [low] trial 3: epoch")] == [
        f"{e}/{epochs}" for e in range(1, epochs + 1)]
    low = optuna.load_study(study_name=best["study_name"], storage=paths["storage"])
    assert sorted(_points(low)) == sorted(ALL_POINTS) and {t.state.name for t in low.trials} == {"COMPLETE"}

    # promote_top_k 0: no full phase; best.json is the best low-fidelity trial, without a model.
    best = json.loads((paths["reports_dir"] / "best.json").read_text())
    summary = json.loads((paths["reports_dir"] / "summary.json").read_text())
    winner = max(low.trials, key=lambda t: (t.value, -t.number))
    assert (best["fidelity"], best["trial_number"], best["val_dice_3d"]) == ("low", winner.number, winner.value)
    assert best["metric"] == "val_dice_3d" and best["val_value"] == winner.value and best["sampler"] == "grid"
    assert best["model_uri"] is None and best["model_dir"] is None and best["n_full"] == 0
    assert best["train_settings"]["image_size"] == GRID_TUNE["low_fidelity"]["image_size"]
    assert not paths["model_dir"].exists()
    assert optuna.load_study(study_name=best["study_name"] + "-full", storage=paths["storage"]).trials == []
    assert summary["grid_size"] == 4 and summary["best_low_value"] == summary["best_low_val_dice_3d"]
    assert summary["best_val_dice_3d"] == winner.value and summary["fidelity"] == "low"
    parent = mlflow.get_run(best["parent_run_id"])
    assert parent.data.params["grid_size"] == "4" and parent.data.params["sampler"] == "grid"
    assert parent.data.metrics["best_val_dice_3d"] == winner.value

    # `register` refuses such a best.json in one line.
    assert main(["--params", str(params_file), "register", "--best", str(paths["reports_dir"] / "best.json"),
                 "--data", str(data), "--splits", str(splits), "--out", str(tmp_path / "register")]) == 2
    err = capsys.readouterr().err.strip()
    assert "promote_top_k >= 1" in err and len(err.splitlines()) == 1

    # The sampler is part of the study key: a TPE study of the same space never mixes with the grid's.
    params = load_params(params_file)
    grid_key = study_key(make_task(params, "segmenter", data, manifest, splits).key_payload())
    tpe = params_from_dict({"train": {"demo": TINY_TRAIN}, "tune": {"demo": {**GRID_TUNE, "sampler": "tpe"}}})
    tpe_key = study_key(make_task(tpe, "segmenter", data, manifest, splits).key_payload())
    assert best["study_name"] == f"t-{grid_key}" and tpe_key != grid_key


CLASSIFIER = {"model": {"arch": "resnet_classifier", "depth": 50, "base_filters": 4, "stage_blocks": [1, 1, 1, 1],
                        "stem_pooling": "avg"},
              "image_size": 32, "batch_size": 4, "epochs": 1, "steps_per_epoch": 2, "precision": "fp32",
              "augment": {"distortion": None}, "val_fold": 0, "seed": 1}
CLASSIFIER_TUNE = {"study_name": "cls", "n_trials": 2, "sampler": "grid", "promote_top_k": 1,
                   "pruner": {"name": "none"},
                   "space": {"arch": ["resnet_classifier"], "activation": ["relu", "elu"], "pooling": ["avg"],
                             "loss": ["bce"], "learning_rate": [0.01], "batch_size": [4]},
                   "low_fidelity": {"image_size": 32, "train_patient_fraction": 0.67, "epochs": 1,
                                    "steps_per_epoch": 2}}


@pytest.mark.slow  # an end-to-end stage run: `make test`, not `make test-fast`
def test_classifier_search_end_to_end_and_registrable(tune_inputs, tmp_path, capsys):
    from gliomics.cli import main
    from gliomics.models.gate import load_classifier

    data, manifest, splits = tune_inputs
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"classifier": {"demo": CLASSIFIER},
                                           "tune_classifier": {"demo": CLASSIFIER_TUNE}}))
    paths = tune_paths(tmp_path)
    assert main(["--params", str(params_file), "tune", "--task", "classifier", "--data", str(data),
                 "--manifest", str(manifest), "--splits", str(splits), "--storage", paths["storage"],
                 "--reports", str(paths["reports_dir"]), "--out", str(paths["model_dir"]),
                 "--work-dir", str(paths["work_dir"]), "--store-root", str(paths["store_root"]),
                 "--no-mlflow"]) == 0  # (the MLflow side is the segmenter's test: one model save less here)
    out = capsys.readouterr().out
    assert "best validation val_roc_auc" in out and "full-fidelity trial" in out

    best = json.loads((paths["reports_dir"] / "best.json").read_text())
    assert (best["task"], best["metric"], best["fidelity"]) == ("classifier", "val_roc_auc", "full")
    assert best["val_roc_auc"] == best["val_value"] and 0.0 <= best["val_value"] <= 1.0
    assert "val_dice_3d" not in best and best["study_name"].startswith("cls-")
    assert set(best["params"]) == {"activation"} and best["train_settings"]["model"]["head_pooling"] == "avg"
    summary = json.loads((paths["reports_dir"] / "summary.json").read_text())
    assert summary["best_val_roc_auc"] == best["val_value"] and summary["grid_size"] == 2
    low = optuna.load_study(study_name=best["study_name"], storage=paths["storage"])
    assert sorted(t.params["activation"] for t in low.trials) == ["elu", "relu"]

    model, preprocessing, metadata = load_classifier(str(paths["model_dir"]))
    assert metadata["task"] == "classifier" and model.output_shape == (None, 1) and preprocessing.image_size == 32
    assert metadata["trial_number"] == best["trial_number"]
    model_json = json.loads((paths["reports_dir"] / "model.json").read_text())
    assert model_json["model_uri"] == best["model_uri"] == str(paths["model_dir"])
    assert model_json["model_dir"] == str(paths["model_dir"])
    assert model_json["best_val_roc_auc"] == best["val_value"]
    assert model_json["model_config"]["activation"] == best["params"]["activation"]

    # The documented path: evaluate the tuned model, then register-classifier reads model.json.
    evaluation = tmp_path / "evaluate"
    assert main(["--params", str(params_file), "evaluate", "--task", "classifier", "--model",
                 str(paths["model_dir"]), "--data", str(data), "--out", str(evaluation), "--no-mlflow"]) == 0
    assert main(["--params", str(params_file), "register-classifier", "--model-json",
                 str(paths["reports_dir"] / "model.json"), "--evaluation", str(evaluation / "summary.json"),
                 "--data", str(data), "--out", str(tmp_path / "register"), "--promote", "never",
                 "--registry-dir", str(tmp_path / "registry")]) == 0
    registered = json.loads((tmp_path / "register" / "registered.json").read_text())
    assert registered["version"] == 1 and registered["val_roc_auc"] == best["val_value"]

    # `register` (the segmenter's) points at register-classifier instead.
    assert main(["--params", str(params_file), "register", "--best", str(paths["reports_dir"] / "best.json"),
                 "--data", str(data)]) == 2
    assert "register-classifier" in capsys.readouterr().err


def test_classifier_search_bad_arch_is_one_line(tune_inputs, tmp_path, capsys):
    from gliomics.cli import main

    data, manifest, splits = tune_inputs
    params_file = tmp_path / "params.yaml"
    bad = {**CLASSIFIER_TUNE, "space": {**CLASSIFIER_TUNE["space"], "arch": ["Unet"]}}
    params_file.write_text(yaml.safe_dump({"classifier": {"demo": CLASSIFIER}, "tune_classifier": {"demo": bad}}))
    command = ["--params", str(params_file), "tune", "--task", "classifier", "--data", str(data), "--manifest",
               str(manifest), "--splits", str(splits), "--storage", f"sqlite:///{tmp_path / 'o.db'}"]
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert "tune_classifier.space.arch: the classifier search needs [resnet_classifier]" in err
    assert len(err.splitlines()) == 1
    params_file.write_text(yaml.safe_dump({"classifier": {"demo": CLASSIFIER}, "tune_classifier": {
        "demo": {**CLASSIFIER_TUNE, "space": {**CLASSIFIER_TUNE["space"], "learning_rate": [0.001, 0.01]}}}}))
    assert main(command) == 2
    assert "tune_classifier.demo.sampler: grid needs space.learning_rate fixed" in capsys.readouterr().err


def test_worker_processes_get_the_task():
    from gliomics.cli import build_parser
    from gliomics.stages.tune import _worker_command

    command = _worker_command({"--task": "classifier", "--study": "cls-1", "--params": None}, "full", 2, None)
    args = build_parser().parse_args(command[command.index("tune"):])
    assert (args.task, args.worker, args.phase, args.worker_trials, args.study) == ("classifier", True, "full", 2,
                                                                                   "cls-1")
    assert args.no_mlflow
