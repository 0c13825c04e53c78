"""MLflow store configuration: the one place that decides where runs go.

Default store: a SQLite database ``mlruns/mlflow.db`` (the model registry
needs a database backend) with artifacts under ``mlruns/artifacts/``, both in
the project folder and git-ignored. ``MLFLOW_TRACKING_URI`` overrides it (for
example an ``http://`` tracking server shared by several machines).

Every stage logs to an experiment named after the stage, in a run tagged with
the git commit, the DVC data hash and the profile.

The default store is relocatable: the project folder (``mlruns/`` included)
may be moved or copied elsewhere; :func:`configure` notices it and rewrites
the artifact locations that the database records (:func:`relocate`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sqlite3
import subprocess
import urllib.parse
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

import yaml

STORE_DIR = "mlruns"
DB_FILE = "mlflow.db"
ARTIFACT_DIR = "artifacts"

#: A table of gliomics' own in the SQLite store: ``key`` -> ``value``; ``project_root`` is the folder the
#: store's recorded artifact locations point into (the project folder when it was last configured).
STORE_TABLE = "gliomics_store"
ROOT_KEY = "project_root"

#: Where MLflow's SQL store records artifact locations (MLflow 3): ``(table, column, condition)``.
#: Columns or tables missing in an older schema are skipped.
LOCATION_COLUMNS = (
    ("experiments", "artifact_location", ""),
    ("runs", "artifact_uri", ""),
    ("logged_models", "artifact_location", ""),
    ("model_versions", "source", ""),
    ("model_versions", "storage_location", ""),
    ("trace_tags", "value", "key = 'mlflow.artifactLocation'"),
    ("workspaces", "default_artifact_root", ""),
    ("workspaces", "trace_archival_location", ""),
)

log = logging.getLogger(__name__)


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


#: The project store :func:`configure` last chose by default. ``mlflow.set_tracking_uri`` exports
#: ``MLFLOW_TRACKING_URI`` (for subprocesses), so that value in this process is ours, not the user's.
_default_set: str | None = None


def user_tracking_uri() -> str | None:
    """``MLFLOW_TRACKING_URI`` when the user set it (not when MLflow exported the default store), else None."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    return uri if uri and uri != _default_set else None


def tracking_uri(root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the project's SQLite store."""
    return user_tracking_uri() or default_tracking_uri(root)


def artifact_root(root: Path | None = None) -> str:
    """Where the default store keeps artifacts (a file URI under ``mlruns/``)."""
    root = root or project_root()
    return (root / STORE_DIR / ARTIFACT_DIR).as_uri()


def configure(root: Path | None = None):
    """Point MLflow at the project's store and return the ``mlflow`` module.

    The project's own store (``MLFLOW_TRACKING_URI`` unset) is first made to point into this folder
    (:func:`relocate`) when the project was moved or copied since it was last used; a store named by
    ``MLFLOW_TRACKING_URI`` (a server, a shared database) is never touched. The value MLflow itself
    exports there for the default store does not count as set (:func:`user_tracking_uri`).
    """
    # MLflow's alembic migrations log at INFO on a new database; keep output readable.
    for name in ("alembic", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import mlflow  # here: importing gliomics.tracking stays cheap (MLflow takes seconds), callers get it back


    global _default_set
    uri = tracking_uri(root)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if user_tracking_uri() is None:
        relocate(root)
        _default_set = uri
    mlflow.set_tracking_uri(uri)
    return mlflow


def relocate(root: Path | None = None) -> list[str]:
    """Make the project's SQLite store point into this project folder; return the old folders it pointed into.

    Why a rewrite: MLflow records absolute artifact locations (each
    experiment's ``artifact_location``, each run's ``artifact_uri``, each
    logged model's ``artifact_location``, each registered version's
    ``source`` and ``storage_location``, through which
    ``models:/<name>@<alias>`` resolves). Relative locations are no way out:
    ``create_experiment`` makes them absolute against the cwd
    (``mlflow.utils.uri.resolve_uri_if_local``), runs, logged models and
    versions inherit the absolute result, and relative paths written into the
    database behind MLflow's back would resolve against whatever folder a
    command runs in (commands may run in a subfolder of the project).
    MLflow's location-free scheme, ``mlflow-artifacts:``, needs a running
    tracking server.

    So the store records the project folder its locations point into (the
    table :data:`STORE_TABLE`); when that is not this folder (the project was
    moved or copied), the locations under the old folder are rewritten to the
    same places under this one, in one transaction with the new record: an
    interrupted rewrite leaves the store as it was, and a second process
    waits for the first and then finds nothing to do. Only the location
    columns (:data:`LOCATION_COLUMNS`) change, and only values under the old
    project folder, which moved with it (``mlruns/artifacts/`` and also
    MLflow's default experiment, ``mlruns/0`` under the folder it was created
    in); tags and parameters keep the history they recorded, and locations
    elsewhere (another disk, a bucket) are left alone.

    A store without the record (made before gliomics kept it) is migrated on
    first use: its old folders are read from the experiments' locations,
    ``<folder>/mlruns/artifacts/<experiment name>`` as :func:`ensure_experiment`
    makes them. When nothing moved, the check is one read of the SQLite file
    (about a millisecond). No store yet, or a database MLflow has not set up:
    nothing is done. A store that cannot be written (read-only) is left as it
    is, with a warning.
    """
    root = (Path(root) if root else project_root()).resolve()
    db = root / STORE_DIR / DB_FILE
    if not db.is_file():
        return []
    try:
        return _relocate(db, str(root))
    except sqlite3.Error as exc:  # e.g. a read-only copy: MLflow may still read what is in place
        log.warning("%s: could not point the store's artifact locations into %s (%s); artifacts may "
                    "resolve to the folder the project was copied from", db, root, exc)
        return []


def _relocate(db: Path, here: str) -> list[str]:
    con = sqlite3.connect(db, timeout=60, isolation_level=None)  # explicit transactions only
    try:
        if _recorded_root(con) == here or not _has_table(con, "experiments"):
            return []
        con.execute("BEGIN IMMEDIATE")  # the write lock; re-read under it (another process may have done it)
        try:
            recorded = _recorded_root(con)
            if recorded == here:
                con.execute("ROLLBACK")
                return []
            old = sorted(({recorded} if recorded else set()) | _folders_of_experiments(con))
            old = [folder for folder in old if folder != here]
            changed = sum(_rewrite(con, folder, here) for folder in old)
            con.execute(f"CREATE TABLE IF NOT EXISTS {STORE_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            con.execute(f"INSERT OR REPLACE INTO {STORE_TABLE} (key, value) VALUES (?, ?)", (ROOT_KEY, here))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()
    if changed:
        log.info("%s: the store moved from %s; %d artifact locations now point into this folder",
                 db, ", ".join(old), changed)
    return old


def _has_table(con: sqlite3.Connection, table: str) -> bool:
    return con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is not None


def _recorded_root(con: sqlite3.Connection) -> str | None:
    try:
        row = con.execute(f"SELECT value FROM {STORE_TABLE} WHERE key = ?", (ROOT_KEY,)).fetchone()
    except sqlite3.OperationalError:  # no such table: a store made before the record, or a new one
        return None
    return row[0] if row else None


def _local_path(location: str) -> str | None:
    """The absolute filesystem path of a local artifact location (``file:`` URI or path), else None."""
    if location.startswith("file:"):
        path = urllib.parse.unquote(urllib.parse.urlsplit(location).path)
    elif location.startswith("/"):
        path = location
    else:
        return None
    return path.rstrip("/") or None


def _folders_of_experiments(con: sqlite3.Connection) -> set[str]:
    """Project folders in experiment locations ``<folder>/mlruns/artifacts/<name>`` (:func:`ensure_experiment`)."""
    folders = set()
    for name, location in con.execute("SELECT name, artifact_location FROM experiments"):
        path = _local_path(location or "")
        suffix = f"/{STORE_DIR}/{ARTIFACT_DIR}/{name}"
        if path and path.endswith(suffix) and len(path) > len(suffix):
            folders.add(path[: -len(suffix)])
    return folders


def _rewrite(con: sqlite3.Connection, old: str, new: str) -> int:
    """Rewrite the locations under the folder ``old`` to the same places under ``new``; return how many changed."""
    forms = {  # as MLflow may have stored them: URI (percent-encoded), unencoded file URI, plain path
        Path(old).as_uri(): Path(new).as_uri(),
        f"file://{old}": f"file://{new}",
        old: new,
    }
    changed = 0
    for table, column, condition in LOCATION_COLUMNS:
        if column not in {row[1] for row in con.execute(f"PRAGMA table_info('{table}')")}:
            continue
        where = f" AND {condition}" if condition else ""
        for before, after in forms.items():
            prefix = before + "/"
            changed += con.execute(
                f'UPDATE "{table}" SET "{column}" = ? || substr("{column}", ?) '
                f'WHERE substr("{column}", 1, ?) = ?{where}',
                (after + "/", len(prefix) + 1, len(prefix), prefix)).rowcount
            changed += con.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE "{column}" = ?{where}',
                                   (after, before)).rowcount
    return changed


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


def summary_metrics(summary: dict, prefix: str = "") -> dict:
    """The numbers of a stage's summary as MLflow metrics ``<prefix><key>`` (flags and text left out)."""
    return {f"{prefix}{key}": float(value) for key, value in summary.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def flatten_params(params, section: str = "train") -> dict:
    """Training settings (TrainParams, ClassifierParams) as flat ``<section>.<key>`` MLflow params (dicts
    become ``train.model.arch`` etc.)."""
    flat = {}

    def put(prefix, value):
        if isinstance(value, dict):
            if not value:
                flat[prefix] = "{}"
            for key, item in value.items():
                put(f"{prefix}.{key}", item)
        else:
            flat[prefix] = value

    for key, value in dataclasses.asdict(params).items():
        put(f"{section}.{key}", value)
    return flat
