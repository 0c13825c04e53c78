"""Running trials: the objective, one worker's loop, promotion to full fidelity.

A worker (the ``gliomics tune`` process itself, or each of ``--workers N``
processes) runs :func:`run_phase`: while the budget allows, one
``study.optimize(objective, n_trials=1)`` at a time, so that Optuna's
heartbeat and stale-trial handling wrap every trial and the budget is
re-read from the shared storage between trials. The objective
(:func:`make_objective`) samples a configuration
(:func:`gliomics.tuning.space.sample`), opens the trial's nested MLflow
run, trains it through the task with the pruning hook
(:class:`gliomics.tuning.pruning.EpochReporter`), and records on the trial
the user attrs ``worker``, ``mlflow_run_id``, ``epochs_run``,
``best_value`` (and ``error`` when it failed). A trial that raises fails
(state FAIL) and the worker goes on; :data:`MAX_CONSECUTIVE_FAILURES` in a
row stop it with the last error.

Full fidelity: :func:`promote` enqueues the ``promote_top_k`` best distinct
low-fidelity configurations (COMPLETE first, then PRUNED, by value) in the
``<study>-full`` study, skipping those already there (and re-enqueueing
those whose full trial failed). Workers of the full phase each run a given
number of trials, which together equal the enqueued ones, so nobody draws
a fresh configuration from the sampler. A full-fidelity trial saves its
model (``work_dir/<study>/trial-<n>/model``), logs it to its run at ``model``,
and records the user attrs ``model_config`` and ``best_scores`` (the
history row of its best epoch). ``promote_top_k`` 0 promotes nothing.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import optuna
from optuna.trial import TrialState

from gliomics.errors import GliomicsError
from gliomics.progress import epoch_line
from gliomics.tuning import space as search_space
from gliomics.tuning.pruning import EpochReporter
from gliomics.tuning.study import budget_left, counts, requeue, worker_id
from gliomics.tuning.tasks import FULL, LOW
from gliomics.tuning.trials import TrialLogger, trial_value

MAX_CONSECUTIVE_FAILURES = 3
MODEL_DIR = "model"


def trial_dir(work_dir, study_name: str, number: int) -> Path:
    return Path(work_dir) / study_name / f"trial-{number}"


def make_objective(task, space, fidelity: str, logger: TrialLogger, work_dir, study_name: str):
    """The Optuna objective of one fidelity (returns the trial's best metric)."""

    def objective(trial) -> float:
        started = time.perf_counter()
        values = search_space.sample(trial, space)
        settings = task.settings(values, fidelity)
        trial.set_user_attr("worker", worker_id())
        trial.set_user_attr("fidelity", fidelity)
        extra_tags = {"worker": worker_id()}
        if "promoted_from" in trial.user_attrs:
            extra_tags["promoted_from"] = trial.user_attrs["promoted_from"]
        run_id = logger.start(trial.number, fidelity, values, settings, extra_tags)
        if run_id:
            trial.set_user_attr("mlflow_run_id", run_id)
        folder = trial_dir(work_dir, study_name, trial.number)
        def log_epoch(epoch: int, row: dict) -> None:
            logger.log_epoch(epoch, row, task.epoch_metrics)
            scores = {**reporter.values, epoch: float(row.get(task.metric, math.nan))}
            best = max(((v, e) for e, v in scores.items() if not math.isnan(v)), default=(math.nan, 0))
            _echo(epoch_line(f"tune: [{fidelity}] trial {trial.number}", epoch, settings.epochs, row, task.metric,
                             best))

        reporter = EpochReporter(trial, task.metric, log=log_epoch)

        def finish(state, value, error=None):
            epochs = len(reporter.values)
            trial.set_user_attr("epochs_run", epochs)
            if not math.isnan(value):
                trial.set_user_attr("best_value", float(value))
            if error:
                trial.set_user_attr("error", error[:500])
            logger.finish(state, metric=task.metric, value=value, epochs_run=epochs,
                          duration=time.perf_counter() - started, error=error)

        try:
            result = task.train_trial(settings, fidelity, reporter, folder / "checkpoint")
            if math.isnan(result.value):
                raise GliomicsError(f"{task.metric} is NaN (the model diverged?)")
            if fidelity == FULL:
                metadata = {f"best_{task.metric}": result.value, "best_epoch": result.best_epoch,
                            "study_name": study_name, "trial_number": trial.number}
                task.save_model(result, fidelity, folder / MODEL_DIR, **metadata)
                if logger.enabled:
                    task.log_model(result, fidelity, **metadata)
                trial.set_user_attr("model_config", _jsonable(result.model_config))
                trial.set_user_attr("best_scores", best_row(result.history, result.best_epoch))
        except optuna.TrialPruned:
            finish("PRUNED", reporter.best)
            raise
        except BaseException as exc:  # noqa: BLE001  (recorded, then Optuna marks the trial FAIL)
            finish("FAIL", reporter.best, error=_one_line(exc))
            raise
        finally:
            shutil.rmtree(folder / "checkpoint", ignore_errors=True)
        finish("COMPLETE", result.value)
        return result.value

    return objective


def best_row(history, best_epoch: int) -> dict:
    """The finite numbers of ``history``'s row for ``best_epoch`` (1-based); {} when absent."""
    if history is None or not 1 <= int(best_epoch) <= len(history):
        return {}
    row = history.iloc[int(best_epoch) - 1].to_dict()
    return {str(k): float(v) for k, v in row.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def trial_line(trial, fidelity: str, done: int, total: int, metric: str) -> str:
    """One progress line: ``[low 3/5] trial 2 PRUNED  val_dice_3d 0.412 at epoch 1  (6 s)  arch=…``."""
    value = trial_value(trial)
    duration = ((trial.datetime_complete - trial.datetime_start).total_seconds()
                if trial.datetime_complete and trial.datetime_start else math.nan)
    params = " ".join(f"{k}={_short(v)}" for k, v in sorted(trial.params.items()))
    text = f"tune: [{fidelity} {done}/{total}] trial {trial.number} {trial.state.name:<8} {metric} "
    text += "  nan " if math.isnan(value) else f"{value:.3f}"
    text += f" after {trial.user_attrs.get('epochs_run', '?')} epoch(s) ({duration:.0f} s)  {params}"
    if trial.state.name == "FAIL" and trial.user_attrs.get("error"):
        text += f"\n      error: {trial.user_attrs['error']}"
    return text


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _echo(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_phase(task, study, space, fidelity: str, *, logger: TrialLogger, work_dir, study_name: str,
              n_trials: int | None = None, timeout: float = 0.0, max_trials: int | None = None,
              grid_size: int | None = None, echo: Callable[[str], None] = _echo) -> int:
    """Run trials of ``study`` in this process; return how many it ran.

    Low fidelity: until the study's budget (``n_trials`` finished, ``timeout``;
    for a grid search also ``grid_size``, :func:`~gliomics.tuning.study.budget_left`)
    is used. Full fidelity: exactly ``max_trials`` (the enqueued promotions).
    """
    objective = make_objective(task, space, fidelity, logger, work_dir, study_name)
    ran, failures, last_error = 0, 0, ""
    finished_now: list = []
    while True:
        if fidelity == LOW:
            if budget_left(study, n_trials, timeout, grid_size) is not None:
                break
        elif ran >= (max_trials or 0):
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True,
                           callbacks=[lambda s, t: finished_now.append(t)])
        ran += 1
        trial = finished_now[-1]
        if fidelity == LOW:
            done, total = counts(study).finished, (n_trials if grid_size is None else min(n_trials, grid_size))
        else:
            done, total = ran, max_trials
        echo(trial_line(trial, fidelity, done, total, task.metric))
        if trial.state == TrialState.FAIL:
            failures += 1
            last_error = trial.user_attrs.get("error", "")
            if failures >= MAX_CONSECUTIVE_FAILURES:
                raise GliomicsError(f"{failures} trials in a row failed in study {study.study_name}; "
                                    f"last error: {last_error}")
        else:
            failures = 0
    return ran


def promote(low_study, full_study, k: int) -> list[int]:
    """Enqueue the best ``k`` distinct low-fidelity configurations in ``full_study``; return
    the low trial numbers enqueued now (those already promoted are not repeated)."""
    if k <= 0:
        return []

    def key(params: dict) -> tuple:
        return tuple(sorted((k, repr(v)) for k, v in params.items()))

    ranked = []
    for state in (TrialState.COMPLETE, TrialState.PRUNED):
        trials = [t for t in low_study.get_trials(deepcopy=False, states=(state,)) if not math.isnan(trial_value(t))]
        ranked += sorted(trials, key=lambda t: (-trial_value(t), t.number))
    chosen, seen = [], set()
    for trial in ranked:
        if key(trial.params) not in seen:
            seen.add(key(trial.params))
            chosen.append(trial)
        if len(chosen) >= k:
            break
    existing: dict = {}
    for trial in full_study.get_trials(deepcopy=False):
        existing.setdefault(key(trial.params) if trial.params else key(trial.system_attrs.get("fixed_params", {})),
                            []).append(trial)
    enqueued = []
    for trial in chosen:
        previous = existing.get(key(trial.params), [])
        if any(t.state != TrialState.FAIL for t in previous):
            continue
        if previous:  # every earlier attempt failed: try once more (requeue caps the retries)
            if requeue(full_study, max(previous, key=lambda t: t.number)):
                enqueued.append(trial.number)
            continue
        full_study.enqueue_trial(dict(trial.params), skip_if_exists=False,
                                 user_attrs={"promoted_from": trial.number, "promoted_value": trial_value(trial)})
        enqueued.append(trial.number)
    return enqueued

