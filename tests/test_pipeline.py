"""The DVC pipeline end to end, in a scratch copy of the project."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT

pytestmark = pytest.mark.slow


def _run(args, cwd, env):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A git + DVC project with the real dvc.yaml/params.yaml and a 5-patient cohort."""
    root = tmp_path_factory.mktemp("project")
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(PROJECT / name, root / name)
    shutil.copytree(PROJECT / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["synth"]["n_patients"] = 5
    params["split"].update(n_folds=2, test_fraction=0.2)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    env.pop("MLFLOW_TRACKING_URI", None)  # the project's own store under mlruns/
    _run(["git", "init", "-q"], root, env)
    _run(["git", "config", "user.email", "t@example.org"], root, env)
    _run(["git", "config", "user.name", "t"], root, env)
    _run(["dvc", "init", "-q"], root, env)
    _run(["dvc", "config", "core.analytics", "false"], root, env)
    _run(["gliomics", "synth", "--out", "data/raw"], root, env)
    _run(["dvc", "add", "-q", "data/raw"], root, env)
    (root / ".gitignore").write_text("/mlruns/\n/reports/\n")
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "init"], root, env)
    return root, env


def test_repro_runs_every_stage_then_is_a_no_op(project):
    root, env = project
    first = _run(["dvc", "repro"], root, env)
    for stage in ("validate", "split", "features_truth", "associate_truth", "train", "evaluate"):
        assert f"Running stage '{stage}'" in first
    summary = json.loads((root / "reports" / "validate" / "summary.json").read_text())
    assert summary["success"] and summary["n_patients"] == 5
    evaluation = json.loads((root / "reports" / "evaluate" / "summary.json").read_text())
    assert evaluation["n_patients"] == 1  # the internal test patient only
    assert (root / "models" / "segmenter" / "MLmodel").exists()
    second = _run(["dvc", "repro"], root, env)
    assert "Running stage" not in second
    assert "Data and pipelines are up to date" in second
    assert (root / "mlruns" / "mlflow.db").exists()


def test_changing_a_split_param_reruns_only_split(project):
    root, env = project
    _run(["dvc", "repro"], root, env)
    out = _run(["dvc", "exp", "run", "-S", "split.seed=7"], root, env)
    assert "Running stage 'split'" in out
    assert "Running stage 'validate'" not in out


def test_another_profiles_settings_rerun_nothing(project):
    # Stages list only their own profile's block (train.${profile}, ...), as DVC's get-started example asks.
    root, env = project
    _run(["dvc", "repro"], root, env)
    out = _run(["dvc", "exp", "run", "-S", "train.full.epochs=7", "-S", "tune.cpu.n_trials=3",
                "-S", "classifier.full.epochs=7"], root, env)
    assert "Running stage" not in out


def test_dag_shows_the_flow(project):
    root, env = project
    dag = _run(["dvc", "dag", "--md"], root, env)
    assert "validate" in dag and "split" in dag and "-->" in dag


def test_plots_show_draws_every_declared_plot_from_real_columns(project):
    # Every plot in dvc.yaml renders from the files the stages write: data rows present, and the
    # columns it names exist (a renamed column would otherwise give an empty plot, silently).
    root, env = project
    _run(["dvc", "repro"], root, env)
    printed = _run(["dvc", "plots", "show", "--json"], root, env)
    shown = json.JSONDecoder().raw_decode(printed[printed.index("{"):])[0]["data"]
    declared = yaml.safe_load((root / "dvc.yaml").read_text())["plots"]
    for entry in declared:
        if isinstance(entry, str):  # an image
            assert shown[entry][0]["type"] == "image" and (root / entry).stat().st_size > 0
            continue
        (plot_id, spec), = entry.items()
        rows = shown[plot_id][0]["content"]["data"]["values"]
        assert rows, plot_id
        (fields,) = spec["y"].values()
        for field in [spec["x"], *fields]:
            assert field in rows[0], (plot_id, field)


def test_artifacts_name_existing_models(project):
    # DVC's Repo is read in a child process: in-process it reconfigures logging and the streams pytest captures.
    root, env = project
    _run(["dvc", "repro"], root, env)
    code = ("import json; from dvc.repo import Repo; "
            "print(json.dumps({k: v.path for k, v in Repo('.').artifacts.read()['dvc.yaml'].items()}))")
    printed = _run([sys.executable, "-c", code], PROJECT, env)
    artifacts = json.JSONDecoder().raw_decode(printed[printed.index("{"):])[0]
    assert {"lgg-segmenter", "segmenter", "tuned-segmenter", "slice-classifier"} <= set(artifacts)
    assert (PROJECT / artifacts["lgg-segmenter"] / "MLmodel").exists()  # shipped with the project
    for name in ("segmenter", "tuned-segmenter", "slice-classifier"):  # stage outputs
        assert (root / artifacts[name] / "MLmodel").exists(), name
