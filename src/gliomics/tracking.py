"""MLflow store configuration: the one place that decides where runs go.

Default store: a SQLite database ``mlruns/mlflow.db`` (the model registry
needs a database backend) with artifacts under ``mlruns/artifacts/``, both in
the project folder and git-ignored. ``MLFLOW_TRACKING_URI`` overrides it (for
example an ``http://`` tracking server shared by several machines).

Every stage logs to an experiment named after the stage, in a run tagged with
the git commit, the DVC data hash and the profile.
"""

from __future__ import annotations

import logging
import os
import subprocess
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

STORE_DIR = "mlruns"
DB_FILE = "mlflow.db"
ARTIFACT_DIR = "artifacts"


def project_root() -> Path:
    """The project folder: the nearest parent holding ``dvc.yaml``, else the cwd."""
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "dvc.yaml").exists():
            return folder
    return cwd


def default_tracking_uri(root: Path | None = None) -> str:
    """The project's own store: SQLite under ``mlruns/``."""
    root = root or project_root()
    return f"sqlite:///{root / STORE_DIR / DB_FILE}"


def tracking_uri(root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the project's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(root)


def artifact_root(root: Path | None = None) -> str:
    """Where the default store keeps artifacts (a file URI under ``mlruns/``)."""
    root = root or project_root()
    return (root / STORE_DIR / ARTIFACT_DIR).as_uri()


def configure(root: Path | None = None):
    """Point MLflow at the project's store and return the ``mlflow`` module."""
    # MLflow's alembic migrations log at INFO on a new database; keep output readable.
    for name in ("alembic", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import mlflow

    uri = tracking_uri(root)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    return mlflow


def ensure_experiment(name: str, root: Path | None = None) -> str:
    """Create (once) and select the experiment ``name``; return its id."""
    mlflow = configure(root)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        location = None
        if mlflow.get_tracking_uri() == default_tracking_uri(root):
            # Keep artifacts beside the database; a server store picks its own.
            location = f"{artifact_root(root)}/{name}"
        experiment_id = mlflow.create_experiment(name, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def git_commit(root: Path | None = None) -> str:
    """The current commit (with ``-dirty`` when the tree has changes), or 'unknown'."""
    root = root or project_root()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def dvc_data_hash(data_dir: str | Path, root: Path | None = None) -> str:
    """The md5 that ``data.dvc`` records for ``data_dir``, or why there is none.

    Only data tracked by ``data.dvc`` has a DVC hash; any other folder is
    tagged ``untracked:<path>`` so that runs on it are never mistaken for
    runs on the versioned cohort.
    """
    import yaml

    root = root or project_root()
    dvc_file = root / "data.dvc"
    data_dir = Path(data_dir).resolve()
    if dvc_file.exists():
        try:
            spec = yaml.safe_load(dvc_file.read_text()) or {}
            for out in spec.get("outs", []):
                if (root / out["path"]).resolve() == data_dir:
                    return str(out.get("md5", "unknown"))
        except (yaml.YAMLError, KeyError, TypeError, AttributeError):
            return "unknown"
    return f"untracked:{data_dir}"


@contextmanager
def stage_run(
    stage: str,
    *,
    data_dir: str | Path | None = None,
    params: dict[str, Any] | None = None,
    profile: str | None = None,
    root: Path | None = None,
) -> Iterator[Any]:
    """An MLflow run in the experiment ``stage``, tagged for traceability.

    Tags: ``gliomics.stage``, ``git_commit``, ``dvc_data_hash`` (when a
    ``data_dir`` is given), ``profile``. A run whose block raises ends as
    FAILED, with the error message as a tag.
    """
    mlflow = configure(root)
    ensure_experiment(stage, root)
    tags = {"gliomics.stage": stage, "git_commit": git_commit(root)}
    if data_dir is not None:
        tags["dvc_data_hash"] = dvc_data_hash(data_dir, root)
        tags["data_dir"] = str(data_dir)
    if profile:
        tags["profile"] = profile
    with mlflow.start_run(run_name=stage, tags=tags) as run:
        if params:
            mlflow.log_params(params)
        try:
            yield run
        except BaseException as exc:
            mlflow.set_tag("error", str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__)
            raise


def optional_stage_run(log_mlflow: bool, stage: str, **kwargs):
    """:func:`stage_run` (``stage``, ``**kwargs``) when the stage logs to MLflow, else a context yielding None."""
    return stage_run(stage, **kwargs) if log_mlflow else nullcontext(None)
