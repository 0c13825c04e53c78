"""Scale-out on PostgreSQL: worker processes share an Optuna study and an MLflow tracking server.

A throwaway PostgreSQL cluster (the Debian ``postgresql`` package, run as the
``postgres`` OS user when the tests run as root) is initialised in a temp
folder and started on a free 127.0.0.1 port; ``mlflow server`` runs on it
with artifacts served from a temp folder. Then

- two plain processes share one Optuna study and log one nested MLflow run
  per trial (the plumbing, with no TensorFlow), and
- ``gliomics tune --storage postgresql://… --workers 2`` runs a tiny study,

and every trial must appear exactly once in Optuna and once in MLflow.
Skipped, saying why, when the PostgreSQL server binaries or psycopg are
missing (``scripts/install-test-system-deps.sh`` installs PostgreSQL).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from tests.helpers import TINY_TRAIN, TINY_TUNE, free_port, wait_for_health

pytestmark = pytest.mark.slow

#: Generous: on a 2-core machine shared with other work, servers start in minutes.
START_TIMEOUT_S = 600


def postgres_bin_dir() -> Path | None:
    """Folder with initdb/pg_ctl: $GLIOMICS_PG_BIN, the one on PATH, or Debian's newest /usr/lib/postgresql/N/bin."""
    candidates = [os.environ.get("GLIOMICS_PG_BIN")]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if
                    p.parent.name.isdigit() else 0)
    candidates += [str(p) for p in reversed(debian)]
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


def _as_cluster_owner(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run ``command`` as the ``postgres`` OS user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM a process group started with start_new_session, then SIGKILL what is left."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL cluster on 127.0.0.1 with databases ``optuna`` and ``mlflow``; yields the base URL."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian: apt-get install postgresql; or "
                    "scripts/install-test-system-deps.sh)")
    psycopg = pytest.importorskip("psycopg", reason="psycopg (PostgreSQL driver) not installed; see requirements.lock")
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' OS user to run the server as")
    base = Path(tempfile.mkdtemp(prefix="gliomics-pg-"))  # pytest's tmp dirs are private to root
    data = base / "data"
    if os.geteuid() == 0:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    port = free_port()
    subprocess.run(_as_cluster_owner([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                      "-E", "UTF8", "--no-sync"]), check=True, capture_output=True)
    options = (f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
               "-c full_page_writes=off")
    subprocess.run(_as_cluster_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                                      str(base / "server.log"), "-w", "-t", str(START_TIMEOUT_S), "start"]),
                   check=True, capture_output=True)
    try:
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                             autocommit=True) as connection:
            for name in ("optuna", "mlflow"):
                connection.execute(f"CREATE DATABASE {name}")
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_cluster_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(postgres, tmp_path_factory):
    """``mlflow server`` backed by the PostgreSQL database ``mlflow``, serving artifacts; yields its URL."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    log = root / "server.log"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")  # no GenAI job workers: a dozen fewer processes
    env.pop("MLFLOW_TRACKING_URI", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"{postgres}/mlflow",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],  # one process: uvicorn kills slow-starting extra workers on a busy machine
        cwd=root, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, server, log, "mlflow server", START_TIMEOUT_S)
        yield url
    finally:
        _stop_group(server)


def _nested_runs(tracking_url: str, experiment: str, parent_run_id: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_url)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r} on {tracking_url}"
    runs = client.search_runs([found.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'",
                              max_results=1000)
    return list(runs)


# A worker process: joins the study, logs one nested MLflow run per trial it runs.
WORKER = textwrap.dedent("""
    import sys, mlflow, optuna
    storage, study_name, parent, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=storage)

    def objective(trial):
        x = trial.suggest_float("x", -3, 3)
        with mlflow.start_run(run_name=f"trial {trial.number}", nested=True,
                              parent_run_id=parent, experiment_id=sys.argv[5]) as run:
            mlflow.set_tag("trial_number", str(trial.number))
            mlflow.log_metric("value", -x * x)
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
        return -x * x

    study.optimize(objective, n_trials=n)
""")


def test_two_processes_share_a_study_and_a_tracking_server(postgres, mlflow_server, tmp_path):
    import mlflow
    import optuna

    storage = f"{postgres}/optuna"
    study = optuna.create_study(study_name="plumbing", storage=storage, direction="maximize")
    mlflow.set_tracking_uri(mlflow_server)
    experiment_id = mlflow.create_experiment("scaleout-plumbing")
    with mlflow.start_run(experiment_id=experiment_id, run_name="study plumbing") as parent:
        pass
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, MLFLOW_TRACKING_URI=mlflow_server)
    workers = [subprocess.Popen([sys.executable, str(script), storage, "plumbing", parent.info.run_id, "5",
                                 experiment_id], env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=START_TIMEOUT_S)
        assert worker.returncode == 0, err[-2000:]

    trials = optuna.load_study(study_name="plumbing", storage=storage).trials
    assert sorted(t.number for t in trials) == list(range(10))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    runs = _nested_runs(mlflow_server, "scaleout-plumbing", parent.info.run_id)
    assert len(runs) == 10
    assert sorted(r.info.run_id for r in runs) == sorted(t.user_attrs["mlflow_run_id"] for t in trials)
    assert sorted(int(r.data.tags["trial_number"]) for r in runs) == list(range(10))
    assert study.study_name == "plumbing"


PG_TUNE = {**TINY_TUNE, "study_name": "pg", "n_trials": 4, "startup_trials": 4, "promote_top_k": 2}


def test_gliomics_tune_two_workers_on_postgresql(postgres, mlflow_server, small_cohort, tmp_path):
    import optuna
    import pandas as pd
    import yaml

    from gliomics.cli import build_parser
    from tests.helpers import validate_and_split

    if "tune" not in build_parser().format_help():
        pytest.skip("`gliomics tune` is not available")
    validate_and_split(small_cohort, tmp_path, ["fold0", "fold1", "fold1", "fold1"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": {"demo": TINY_TRAIN},
                                                          "tune": {"demo": PG_TUNE}}))
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # the project root for relative paths
    storage = f"{postgres}/optuna"
    env = dict(os.environ, MLFLOW_TRACKING_URI=mlflow_server,
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    result = subprocess.run(
        [sys.executable, "-m", "gliomics.cli", "--params", "params.yaml", "tune", "--data", str(small_cohort),
         "--manifest", "validate/manifest.csv", "--splits", "splits.csv", "--storage", storage, "--workers", "2",
         "--reports", "reports/tune", "--out", "models/tuned"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3 * START_TIMEOUT_S)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]

    best = json.loads((tmp_path / "reports" / "tune" / "best.json").read_text())
    assert "postgresql://" in best["storage"]
    trials = []
    for name in (best["study_name"], best["study_name"] + "-full"):
        trials += optuna.load_study(study_name=name, storage=storage).trials
    finished = [t for t in trials if t.state.is_finished()]
    assert len(finished) == len(trials) >= PG_TUNE["n_trials"]  # nothing left RUNNING, none lost
    run_ids = [t.user_attrs.get("mlflow_run_id") for t in trials]
    assert None not in run_ids and len(set(run_ids)) == len(run_ids)

    runs = _nested_runs(mlflow_server, "tune", best["parent_run_id"])
    assert sorted(r.info.run_id for r in runs) == sorted(run_ids), "each trial exactly once in MLflow"
    keys = sorted((r.data.tags["fidelity"], int(r.data.tags["trial_number"])) for r in runs)
    assert len(set(keys)) == len(keys)
    table = pd.read_csv(tmp_path / "reports" / "tune" / "trials.csv")
    assert sorted(table["mlflow_run_id"]) == sorted(run_ids)
