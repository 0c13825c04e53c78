"""The project's MLflow store keeps working when the project folder is copied or moved (tracking.relocate)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from gliomics import tracking

NAME = "gliomics-segmenter"
ALIAS = "champion"
NOTE = "note.txt"


def new_project(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "dvc.yaml").write_text("stages: {}\n")
    return folder


def mentions(db: Path, text: str) -> list[tuple[str, str, str]]:
    """``(table, column, value)`` for every text value in the SQLite file ``db`` that contains ``text``."""
    found = []
    con = sqlite3.connect(db)
    try:
        tables = [row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for column in [row[1] for row in con.execute(f"PRAGMA table_info('{table}')")]:
                rows = con.execute(f'SELECT CAST("{column}" AS TEXT) FROM "{table}" '
                                   f'WHERE instr(CAST("{column}" AS TEXT), ?) > 0', (text,))
                found += [(table, column, value) for (value,) in rows]
    finally:
        con.close()
    return found


def move(old: Path, new: Path, monkeypatch) -> None:
    """Copy the whole project folder ``old`` to ``new``, delete ``old``, work in ``new``."""
    shutil.copytree(old, new)
    monkeypatch.chdir(new)
    shutil.rmtree(old)


def log_note_run(project: Path) -> str:
    """A ``train`` run in the project's store with the artifact ``note.txt``; its run id."""
    import mlflow

    (project / NOTE).write_text("hello from the old folder\n")
    with tracking.stage_run("train") as run:
        mlflow.log_artifact(str(project / NOTE))
    return run.info.run_id


@pytest.mark.parametrize("legacy", [False, True], ids=["recorded", "store-made-before-the-record"])
def test_a_copied_project_loads_its_runs_and_registered_models(tmp_path, monkeypatch, stub_segmenter, legacy):
    import mlflow

    from gliomics.models import packaging
    from gliomics.training import export
    from gliomics.registry.listing import client
    from gliomics.registry.register import register_version

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    old = new_project(tmp_path / "first" / "project").resolve()
    monkeypatch.chdir(old)
    model, preprocessing, _ = packaging.load_segmenter(stub_segmenter)
    run_id = log_note_run(old)
    with mlflow.start_run(run_id=run_id):
        export.log_segmenter(model, preprocessing, {"arch": "flair_stub"})
    version = register_version(NAME, f"runs:/{run_id}/model", tags={"test_mean_dice_3d": 0.5})
    client().set_registered_model_alias(NAME, ALIAS, str(version["version"]))
    db = old / tracking.STORE_DIR / tracking.DB_FILE
    tracking.configure()  # what any later command does: the store records its folder
    assert mentions(db, str(old)), "the store should record absolute locations under the project folder"
    if legacy:  # a store made before gliomics recorded its folder
        with sqlite3.connect(db) as con:
            con.execute(f"DROP TABLE {tracking.STORE_TABLE}")

    new = (tmp_path / "second" / "project").resolve()
    move(old, new, monkeypatch)

    folder = packaging.resolve_model_folder(f"models:/{NAME}@{ALIAS}")  # configures: relocates the store
    assert not folder.is_relative_to(old)
    loaded, loaded_preprocessing, metadata = packaging.load_segmenter(f"models:/{NAME}@{ALIAS}")
    assert loaded.count_params() == model.count_params() and loaded_preprocessing == preprocessing
    assert metadata["model_config"] == {"arch": "flair_stub"}
    assert packaging.load_segmenter(f"runs:/{run_id}/model")[0].count_params() == model.count_params()
    note = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=NOTE, dst_path=str(tmp_path / "dl"))
    assert Path(note).read_text() == "hello from the old folder\n"
    assert mlflow.get_run(run_id).info.artifact_uri.startswith(new.as_uri() + "/mlruns/artifacts/train/")

    new_db = new / tracking.STORE_DIR / tracking.DB_FILE
    assert mentions(new_db, str(old)) == [] and mentions(new_db, old.as_uri()) == []
    assert tracking.relocate() == []  # recorded: nothing more to do

    # The store keeps working in its new place: a new run lands beside the others.
    run2 = log_note_run(new)
    assert mlflow.get_run(run2).info.artifact_uri.startswith(new.as_uri() + "/")
    assert not old.exists()


def test_nothing_to_do_when_the_project_did_not_move(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    project = new_project(tmp_path / "project").resolve()
    monkeypatch.chdir(project)
    assert tracking.relocate() == []  # no store yet: nothing created
    assert not (project / tracking.STORE_DIR / tracking.DB_FILE).exists()
    log_note_run(project)
    tracking.configure()
    db = project / tracking.STORE_DIR / tracking.DB_FILE
    before = (db.stat().st_mtime_ns, db.read_bytes())
    for _ in range(20):
        tracking.configure()
        assert tracking.relocate() == []
    assert (db.stat().st_mtime_ns, db.read_bytes()) == before  # the check only reads


def test_moving_back_and_forth_and_locations_elsewhere(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = new_project(tmp_path / "a" / "my project").resolve()  # a space: percent-encoded in file URIs
    monkeypatch.chdir(first)
    run_id = log_note_run(first)
    elsewhere = (tmp_path / "elsewhere").resolve().as_uri()
    outside = mlflow.create_experiment("outside", artifact_location=elsewhere)
    tracking.configure()

    second = (tmp_path / "b" / "my project").resolve()
    move(first, second, monkeypatch)
    assert tracking.relocate() == [str(first)]
    move(second, first, monkeypatch)
    tracking.configure()
    assert Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=NOTE,
                                                    dst_path=str(tmp_path / "dl"))).is_file()
    assert mentions(first / "mlruns" / "mlflow.db", str(second)) == []
    assert mlflow.get_experiment(outside).artifact_location == elsewhere  # not under the project: left alone


def test_a_store_named_by_mlflow_tracking_uri_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    old = new_project(tmp_path / "first" / "project").resolve()
    monkeypatch.chdir(old)
    log_note_run(old)
    tracking.configure()
    new = (tmp_path / "second" / "project").resolve()
    move(old, new, monkeypatch)
    db = new / tracking.STORE_DIR / tracking.DB_FILE
    before = db.read_bytes()

    # A server, or even the very same file named explicitly: configure never rewrites it.
    for uri in ("http://tracking.example:5000", f"sqlite:///{db}"):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow = tracking.configure()
        assert mlflow.get_tracking_uri() == uri
    assert db.read_bytes() == before
    assert mentions(db, str(old))


def test_the_uri_mlflow_exports_for_the_default_store_is_not_an_override(tmp_path, monkeypatch):
    import os

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = new_project(tmp_path / "one").resolve()
    second = new_project(tmp_path / "two").resolve()
    monkeypatch.chdir(first)
    tracking.configure()
    assert os.environ["MLFLOW_TRACKING_URI"] == tracking.default_tracking_uri(first)  # mlflow.set_tracking_uri
    assert tracking.user_tracking_uri() is None
    monkeypatch.chdir(second)
    assert tracking.configure().get_tracking_uri() == tracking.default_tracking_uri(second)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert tracking.user_tracking_uri() == tracking.tracking_uri() == "http://tracking.example:5000"
