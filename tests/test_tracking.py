from pathlib import Path

from gliomics import tracking


def test_default_store_is_sqlite_under_mlruns(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlruns' / 'mlflow.db'}"
    assert tracking.artifact_root().endswith("/mlruns/artifacts")


def test_environment_overrides_the_store(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert tracking.tracking_uri() == "http://tracking.example:5000"


def test_stage_run_uses_the_stage_experiment_and_artifacts_beside_the_db(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    with tracking.stage_run("demo-stage", params={"a": 1}, profile="demo") as run:
        mlflow.log_metric("m", 2.0)
    experiment = mlflow.get_experiment_by_name("demo-stage")
    assert experiment.artifact_location == (tmp_path / "mlruns" / "artifacts" / "demo-stage").resolve().as_uri()
    finished = mlflow.get_run(run.info.run_id)
    assert finished.data.params == {"a": "1"} and finished.data.tags["profile"] == "demo"
    assert (tmp_path / "mlruns" / "mlflow.db").exists()


def test_dvc_data_hash_reads_data_dvc(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data.dvc").write_text("outs:\n- md5: abc123.dir\n  path: data/raw\n")
    assert tracking.dvc_data_hash(tmp_path / "data" / "raw", root=tmp_path) == "abc123.dir"
    assert tracking.dvc_data_hash(tmp_path / "other", root=tmp_path).startswith("untracked:")


def test_git_commit_outside_a_repository(tmp_path):
    assert tracking.git_commit(Path(tmp_path)) == "unknown"
