"""Optuna storage and studies: where trials live, how a search resumes.

Storage: an RDB URL. Default ``sqlite:///<project>/optuna/optuna.db``
(git-ignored, beside ``mlruns/``); ``--storage`` takes any SQLAlchemy URL
Optuna supports (``postgresql://user:pw@host/db`` for several machines).
The storage has heartbeats on (:data:`HEARTBEAT_S`): a trial whose worker
stopped beating for :data:`GRACE_S` is failed by the next worker that
starts a trial (:func:`optuna.storages.fail_stale_trials`).

Studies: ``<name>`` holds the low-fidelity search (seeded TPE, or
Optuna's GridSampler for ``sampler: grid``; the pruner of params,
maximising the task's metric); ``<name>-full`` holds the
promoted configurations retrained at full fidelity (same sampler, no
pruner), one enqueued trial each with user attr ``promoted_from``. Both are
created with ``load_if_exists``: running again continues them.

Resume after a kill: :func:`recover_dead_trials` marks FAIL the RUNNING
trials whose worker process (user attr ``worker`` = ``host:pid``) is on this
host and no longer alive, without waiting for the heartbeat grace period,
and calls back so that their MLflow runs are closed and their configuration
re-enqueued (:func:`requeue`).

Budget (:func:`budget_left`): ``n_trials`` counts finished (COMPLETE +
PRUNED) low-fidelity trials of the study over all runs; a worker starts a
new trial only while finished + running < ``n_trials``. ``timeout`` counts
the seconds of finished trials (start to end), so it also continues
across runs. A grid search (``grid_size`` given) caps ``n_trials`` at the
grid size and also stops once every grid point has been tried (finished,
failed or running, with no re-enqueued trial waiting): each point runs
once, also across re-runs, and a failed point is not drawn again.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

import optuna
from optuna.trial import TrialState

from gliomics.errors import GliomicsError
from gliomics.tracking import project_root

STORE_DIR = "optuna"
DB_FILE = "optuna.db"
FULL_SUFFIX = "-full"
HEARTBEAT_S = 60
GRACE_S = 180
#: A configuration whose trial was killed is re-enqueued at most this many times.
MAX_RETRIES = 2
#: SQLite writers wait this long for a lock (several local workers share one file).
SQLITE_TIMEOUT_S = 60


def default_storage_url(root: Path | None = None) -> str:
    root = root or project_root()
    return f"sqlite:///{root / STORE_DIR / DB_FILE}"


def redact(url: str) -> str:
    """``url`` without its password (for logs, reports and MLflow)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite:")


def open_storage(url: str):
    """An Optuna :class:`~optuna.storages.RDBStorage` on ``url`` with heartbeats.

    A URL that is not a database URL, names an unknown driver, or cannot be
    reached raises :class:`GliomicsError` naming the (redacted) URL.
    """
    shown = redact(url)
    if "://" not in url:
        raise GliomicsError(f"{shown}: not a database URL (e.g. sqlite:///optuna/optuna.db or "
                            "postgresql://user:password@host:5432/optuna)")
    engine_kwargs = {}
    if is_sqlite(url):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            parent = Path(path).parent
            if url == default_storage_url():
                parent.mkdir(parents=True, exist_ok=True)
            elif not parent.is_dir():
                raise GliomicsError(f"{shown}: folder {parent} does not exist")
        engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S,
                                              grace_period=GRACE_S)
        except Exception as exc:  # SQLAlchemy raises many kinds for a bad URL / unreachable server
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise GliomicsError(f"{shown}: cannot open the Optuna storage ({message[:300]})") from None


def study_key(payload: dict) -> str:
    """8 hex digits of a stable hash of what the trials' results depend on."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def file_digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def make_sampler(name: str, *, sampler_seed: int, startup_trials: int, grid: dict | None = None):
    """``tpe``: seeded TPE (``constant_liar`` keeps parallel workers from proposing the same
    configuration while their trials run); ``grid``: :class:`optuna.samplers.GridSampler` over
    ``grid`` (``{name: choices}``), its order shuffled with ``sampler_seed``."""
    if name == "grid":
        return optuna.samplers.GridSampler(dict(grid or {}), seed=int(sampler_seed))
    if name != "tpe":
        raise GliomicsError(f"tune.sampler: expected tpe or grid, got {name!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=int(sampler_seed), n_startup_trials=int(startup_trials),
                                          constant_liar=True)


def open_study(storage, name: str, *, sampler_seed: int, startup_trials: int, pruner=None, sampler: str = "tpe",
               grid: dict | None = None):
    """Create or load (``load_if_exists``) a maximising study with the sampler :func:`make_sampler` makes."""
    sampler = make_sampler(sampler, sampler_seed=sampler_seed, startup_trials=startup_trials, grid=grid)
    try:
        return optuna.create_study(storage=storage, study_name=name, direction="maximize", sampler=sampler,
                                   pruner=pruner or optuna.pruners.NopPruner(), load_if_exists=True)
    except ValueError as exc:  # e.g. an existing study of the same name that minimises
        raise GliomicsError(f"study {name!r}: {exc}") from None


# ----------------------------------------------------------------- workers


def worker_id() -> str:
    """``host:pid`` of this process (stored with each trial it runs)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_dead(worker: str | None) -> bool:
    """Whether ``worker`` (``host:pid``) is a process of this host that no longer runs."""
    if not worker or ":" not in worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's worker: its heartbeat decides
    return int(pid) != os.getpid() and not process_alive(int(pid))


def recover_dead_trials(study, on_failed: Callable | None = None) -> list:
    """Fail the RUNNING trials of ``study`` whose local worker process is gone; return them.

    ``on_failed(study, frozen_trial)`` runs for each (close its MLflow run,
    re-enqueue it). Trials failed meanwhile by another process are skipped.
    """
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not worker_dead(trial.user_attrs.get("worker")):
            continue
        try:
            study._storage.set_trial_user_attr(trial._trial_id, "error", "its worker process died (killed?)")
            if study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                failed.append(study._storage.get_trial(trial._trial_id))
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    for trial in failed:
        if on_failed is not None:
            on_failed(study, trial)
    return failed


def requeue(study, trial) -> bool:
    """Enqueue ``trial``'s configuration again (at most :data:`MAX_RETRIES` times per configuration)."""
    retries = int(trial.user_attrs.get("retries", 0))
    if retries >= MAX_RETRIES:
        return False
    attrs = {"retry_of": trial.number, "retries": retries + 1}
    for key in ("promoted_from", "promoted_value"):
        if key in trial.user_attrs:
            attrs[key] = trial.user_attrs[key]
    study.enqueue_trial(dict(trial.params), user_attrs=attrs, skip_if_exists=False)
    return True


# ------------------------------------------------------------------ budget


@dataclass(frozen=True)
class Counts:
    complete: int
    pruned: int
    failed: int
    running: int
    waiting: int
    seconds: float  # summed start-to-end seconds of finished trials

    @property
    def finished(self) -> int:
        return self.complete + self.pruned


def counts(study) -> Counts:
    by_state = {state: 0 for state in TrialState}
    seconds = 0.0
    for trial in study.get_trials(deepcopy=False):
        by_state[trial.state] += 1
        if trial.state.is_finished() and trial.datetime_start and trial.datetime_complete:
            seconds += (trial.datetime_complete - trial.datetime_start).total_seconds()
    return Counts(complete=by_state[TrialState.COMPLETE], pruned=by_state[TrialState.PRUNED],
                  failed=by_state[TrialState.FAIL], running=by_state[TrialState.RUNNING],
                  waiting=by_state[TrialState.WAITING], seconds=seconds)


def budget_left(study, n_trials: int, timeout: float, grid_size: int | None = None) -> str | None:
    """None while another trial may start; else why not (for the progress line).

    ``grid_size`` (a grid search): at most that many trials, and none once
    every grid point has been tried (:func:`grid_points_tried`).
    """
    now = counts(study)
    if grid_size is not None:
        n_trials = min(n_trials, grid_size)
    if now.finished + now.running >= n_trials:
        return f"{now.finished} of {n_trials} trials finished"
    if timeout and now.seconds >= timeout:
        return f"timeout: {now.seconds:.0f} s of trials >= {timeout:.0f} s"
    if grid_size is not None and now.waiting == 0 and grid_points_tried(study) >= grid_size:
        return f"all {grid_size} grid points tried"
    return None


def grid_points_tried(study) -> int:
    """Distinct configurations (params) of the study's finished (incl. FAIL) and running trials."""
    tried = {tuple(sorted((k, repr(v)) for k, v in t.params.items()))
             for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING}
    return len(tried)
