"""``gliomics tune``: multi-fidelity Optuna search of the segmenter (or the slice classifier), logged to MLflow.

Tasks (``--task``): ``segmenter`` (settings ``tune.<profile>``, base training
settings ``train.<profile>``, metric ``val_dice_3d``) and ``classifier``
(``tune_classifier.<profile>``, ``classifier.<profile>``, ``val_roc_auc``);
see :mod:`gliomics.tuning.tasks` and :mod:`gliomics.tuning.classifier_task`.

1. Low fidelity: ``n_trials`` trials (seeded TPE over ``space``, pruned on
   the task's per-epoch validation metric; or, with ``sampler: grid``, every
   combination of the categorical choices once, at most ``n_trials`` of
   them) at the ``low_fidelity`` settings, in the study
   ``<study_name>-<key>`` (``key``: a hash of the data, split, manifest,
   search and training settings, so that changing any of them starts a new
   study while a re-run with the same ones continues it; ``--study`` names
   it outright).
2. Full fidelity: the ``promote_top_k`` best distinct configurations
   retrained with the profile's own training settings in the study
   ``<study>-full``; the best one is the tuned model. ``promote_top_k`` 0
   skips this phase: the best low-fidelity COMPLETE trial is reported,
   without a model (``model_uri``/``model_dir`` null).
3. Reports (``reports_dir``): ``trials.csv``, ``importances.csv``,
   ``figures/*.png``, ``best.json`` and ``summary.json`` (plus, for the
   classifier, ``model.json`` in the shape ``gliomics register-classifier``
   reads); the best model as a local MLflow model in ``model_dir``
   (``models/tuned``, ``models/tuned_classifier``).

best.json: ``task``, ``metric``, ``val_value`` and the same number under
the metric's own name (``val_dice_3d`` / ``val_roc_auc``), ``study_name``,
``storage``, ``sampler``, ``trial_number``, ``fidelity``, ``promoted_from``,
``params``, ``train_settings``, ``model_uri``, ``model_dir``,
``parent_run_id``, ``n_trials``, ``n_complete``, ``n_pruned``, ``n_failed``,
``n_full``, ``seconds``. summary.json: the counts, ``metric``,
``best_low_value``, ``best_value``, ``best_low_<metric>``, ``best_<metric>``,
``sampler``, ``grid_size`` (null for tpe), ``seconds``.

Validation patients are fold ``train.val_fold`` of the split; the test part
is never read. Seeds: ``train.seed`` for every trial's training,
``tune.sampler_seed`` for the sampler and the low-fidelity patient subset.

MLflow (experiment ``tune``): a parent run per invocation (tags
``study_name``, ``role=parent``, ``worker``; params of the search; at the
end the best params, the reports and figures as artifacts) and a nested run
per trial (:mod:`gliomics.tuning.trials`).

``workers > 1`` starts that many ``gliomics tune --worker`` processes on
the same storage and parent run; the coordinator (this process) prepares the
data, promotes, and writes the reports. Other machines can join a running
search with ``gliomics tune --worker --storage URL --study NAME``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
from optuna.trial import TrialState

from gliomics import io, layout, tracking
from gliomics.config import Params
from gliomics.errors import GliomicsError
from gliomics.tracking import optional_stage_run
from gliomics.tuning import study as studies
from gliomics.tuning.classifier_task import ClassifierTask
from gliomics.tuning.pruning import make_pruner
from gliomics.tuning.search import MODEL_DIR as TRIAL_MODEL
from gliomics.tuning.search import promote, run_phase, trial_dir
from gliomics.tuning.space import grid_search_space, grid_size, sample
from gliomics.tuning.study import counts, is_sqlite, recover_dead_trials, redact, requeue, worker_id
from gliomics.tuning.tasks import SegmenterTask
from gliomics.tuning.trials import (TrialLogger, close_dead_parents, close_run, param_importances, plot_study,
                                    trial_value, trials_table)

REPORTS_DIR = str(layout.TUNE)
MODEL_DIR = str(layout.TUNED)
#: Defaults per task (``--reports``, ``--out``).
REPORTS_DIRS = {"segmenter": REPORTS_DIR, "classifier": str(layout.CLASSIFIER_TUNE)}
MODEL_DIRS = {"segmenter": MODEL_DIR, "classifier": str(layout.TUNED_CLASSIFIER)}
TASKS = ("segmenter", "classifier")
WORK_DIR = str(layout.TUNE_CHECKPOINTS)
STORE_ROOT = str(layout.ARRAYS_TUNE)
#: Written beside best.json by a classifier search: what `gliomics register-classifier --model-json` reads.
CLASSIFIER_MODEL_JSON = "model.json"


@dataclasses.dataclass
class Search:
    """Everything one process needs to run or report trials of a search."""

    task: object
    storage_url: str
    study_name: str
    low: object
    full: object
    n_trials: int
    timeout: float
    tune: object = None  # the TuneParams of the task and profile
    grid: dict | None = None  # {name: choices} of a grid search, else None
    profile: str = ""

    @property
    def grid_size(self) -> int | None:
        return None if self.grid is None else grid_size(self.grid)


def make_task(params: Params, task: str, data_dir, manifest_csv, splits_csv, store_root=STORE_ROOT):
    """The :class:`~gliomics.tuning.tasks.TuneTask` of ``task`` with the profile's settings."""
    if task not in TASKS:
        raise GliomicsError(f"tune: --task must be one of {', '.join(TASKS)}, got {task!r}")
    tune = params.tune_settings(task)
    if task == "classifier":
        return ClassifierTask(data_dir, manifest_csv, splits_csv, params.classifier_settings(), tune,
                              store_root=store_root)

    return SegmenterTask(data_dir, manifest_csv, splits_csv, params.train_settings(), tune, store_root=store_root)


def open_search(params: Params, data_dir, manifest_csv, splits_csv, *, storage=None, study=None,
                n_trials=None, timeout=None, store_root=STORE_ROOT, build=True, task: str = "segmenter") -> Search:
    """Check the settings, prepare the data (array stores) and open both studies."""
    tune = params.tune_settings(task)
    n_trials = tune.n_trials if n_trials is None else int(n_trials)
    timeout = tune.timeout if timeout is None else float(timeout)
    if n_trials < 0 or timeout < 0:
        raise GliomicsError("tune: --n-trials and --timeout must be >= 0")
    for path in (manifest_csv, splits_csv):
        if not Path(path).exists():
            raise GliomicsError(f"{path}: missing; run `gliomics validate` and `gliomics split` first")
    task = make_task(params, task, data_dir, manifest_csv, splits_csv, store_root=store_root)
    task.check()
    grid = (grid_search_space(tune.space, where=f"{task.section}.{params.profile}.sampler")
            if tune.sampler == "grid" else None)
    pruner = make_pruner(tune.pruner, tune.low_fidelity.epochs)
    url = storage or studies.default_storage_url()
    backend = studies.open_storage(url)
    name = study or f"{tune.study_name}-{studies.study_key(task.key_payload())}"
    task.prepare(build=build)
    low = studies.open_study(backend, name, sampler_seed=tune.sampler_seed, startup_trials=tune.startup_trials,
                             pruner=pruner, sampler=tune.sampler, grid=grid)
    # The full study only runs enqueued (promoted) configurations: its sampler never draws.
    full = studies.open_study(backend, name + studies.FULL_SUFFIX, sampler_seed=tune.sampler_seed,
                              startup_trials=tune.startup_trials)
    return Search(task=task, storage_url=url, study_name=name, low=low, full=full, n_trials=n_trials,
                  timeout=timeout, tune=tune, grid=grid, profile=params.profile)


def recover(search: Search, log_mlflow: bool) -> list:
    """Fail (and re-enqueue) trials a killed local process left RUNNING; close their MLflow runs."""
    def on_failed(study, trial):
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id and log_mlflow:
            close_run(run_id, "FAIL", "its worker process died (killed?)")
        requeue(study, trial)

    failed = recover_dead_trials(search.low, on_failed) + recover_dead_trials(search.full, on_failed)
    if log_mlflow:
        close_dead_parents(search.study_name)
    return failed


def _worker_command(args: dict, phase: str, trials: int | None, parent_run_id: str | None) -> list[str]:
    command = [sys.executable, "-m", "gliomics.cli", "tune", "--worker", "--phase", phase]
    for flag, value in args.items():
        if value is not None:
            command += [flag, str(value)]
    if trials is not None:
        command += ["--worker-trials", str(trials)]
    if parent_run_id:
        command += ["--parent-run-id", parent_run_id]
    else:
        command += ["--no-mlflow"]
    return command


def _run_workers(commands: list[list[str]]) -> None:
    """Run worker processes to the end; any failure is a GliomicsError (Ctrl-C stops them all)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    processes = [subprocess.Popen(command, env=env) for command in commands]
    try:
        codes = [process.wait() for process in processes]
    except BaseException:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            process.wait()
        raise
    failed = [code for code in codes if code != 0]
    if failed:
        raise GliomicsError(f"{len(failed)} of {len(codes)} tune worker(s) failed (exit {failed[0]}); "
                            "see their messages above")


def run_tune(params: Params, data_dir, manifest_csv, splits_csv, *, storage=None, study=None, n_trials=None,
             timeout=None, workers: int = 1, log_mlflow: bool = True, reports_dir=None,
             model_dir=None, work_dir=WORK_DIR, store_root=STORE_ROOT, params_file=None,
             task: str = "segmenter") -> dict:
    """Run (or continue) the search of ``task`` and write its reports; return best.json's content.

    ``reports_dir``/``model_dir`` default to :data:`REPORTS_DIRS`/:data:`MODEL_DIRS` of the task.
    """
    started = time.perf_counter()
    _quiet_optuna()
    if workers < 1:
        raise GliomicsError(f"tune: --workers must be >= 1, got {workers}")
    search = open_search(params, data_dir, manifest_csv, splits_csv, storage=storage, study=study,
                         n_trials=n_trials, timeout=timeout, store_root=store_root, task=task)
    reports_dir = REPORTS_DIRS[task] if reports_dir is None else reports_dir
    model_dir = MODEL_DIRS[task] if model_dir is None else model_dir
    if workers > 1 and is_sqlite(search.storage_url):
        print(f"tune: warning: {workers} workers share the SQLite file {redact(search.storage_url)}; fine on one "
              "machine, use PostgreSQL (--storage postgresql://…) for more workers or machines", file=sys.stderr)
    tune = search.tune
    recovered = recover(search, log_mlflow)
    for trial in recovered:
        print(f"tune: trial {trial.number} was left RUNNING by a dead process: marked FAIL, configuration "
              "re-enqueued", file=sys.stderr)

    shown_storage = redact(search.storage_url)
    run_params = {"task": task, "metric": search.task.metric, "study_name": search.study_name,
                  "storage": shown_storage, "n_trials": search.n_trials, "timeout": search.timeout,
                  "sampler": tune.sampler, "grid_size": search.grid_size if search.grid is not None else "",
                  "sampler_seed": tune.sampler_seed, "startup_trials": tune.startup_trials,
                  "pruner": json.dumps(tune.pruner, sort_keys=True), "promote_top_k": tune.promote_top_k,
                  "workers": workers, "train.seed": search.task.base.seed,
                  **{f"space.{k}": json.dumps(v) for k, v in dataclasses.asdict(tune.space).items()},
                  **{f"low_fidelity.{k}": v for k, v in dataclasses.asdict(tune.low_fidelity).items()},
                  "model_options": json.dumps(tune.model_options, sort_keys=True),
                  "n_low_fidelity_patients": len(search.task.low_patients),
                  "n_train_patients": len(search.task.train_patients),
                  "n_val_patients": len(search.task.val_patients)}

    context = optional_stage_run(log_mlflow, "tune", data_dir=data_dir, params=run_params, profile=params.profile)

    worker_args = {"--task": task, "--params": params_file, "--data": data_dir, "--manifest": manifest_csv, "--splits": splits_csv,
                   "--storage": search.storage_url, "--study": search.study_name, "--n-trials": search.n_trials,
                   "--timeout": search.timeout, "--store-root": store_root, "--work-dir": work_dir}
    with context as run:
        parent_run_id = run.info.run_id if run is not None else None
        if run is not None:
            mlflow.set_tags({"study_name": search.study_name, "role": "parent", "worker": worker_id(),
                             "storage": shown_storage, "task": task})
            search.low.set_user_attr("mlflow_parent_run_id", parent_run_id)
        logger = TrialLogger(parent_run_id, search.study_name, tags=_child_tags(run))

        # 1. low fidelity
        if search.grid is not None:
            print(f"tune: grid search over {search.grid_size} configuration(s) "
                  f"({', '.join(f'{k} x{len(v)}' for k, v in search.grid.items()) or 'nothing searched'}); "
                  f"budget {min(search.n_trials, search.grid_size)} trial(s)", file=sys.stderr)
        if workers == 1:
            run_phase(search.task, search.low, tune.space, "low", logger=logger, work_dir=work_dir,
                      study_name=search.study_name, n_trials=search.n_trials, timeout=search.timeout,
                      grid_size=search.grid_size)
        else:
            _run_workers([_worker_command(worker_args, "low", None, parent_run_id) for _ in range(workers)])

        # 2. promotion to full fidelity (none with promote_top_k 0)
        promote(search.low, search.full, tune.promote_top_k)
        pending = _waiting(search.full) if tune.promote_top_k > 0 else 0
        if pending:
            print(f"tune: {pending} configuration(s) promoted to full fidelity", file=sys.stderr)
        n = min(workers, pending)
        if n <= 1 and pending:
            run_phase(search.task, search.full, tune.space, "full", logger=logger, work_dir=work_dir,
                      study_name=search.full.study_name, max_trials=pending)
        elif pending:
            shares = [pending // n + (1 if i < pending % n else 0) for i in range(n)]
            _run_workers([_worker_command(worker_args, "full", share, parent_run_id) for share in shares])

        best = write_reports(search, reports_dir=reports_dir, model_dir=model_dir, work_dir=work_dir,
                             parent_run_id=parent_run_id, seconds=time.perf_counter() - started)
        if run is not None:
            _log_parent(best, reports_dir)
    return best


def run_worker(params: Params, data_dir, manifest_csv, splits_csv, *, storage, study, phase: str,
               n_trials=None, timeout=None, trials=None, parent_run_id=None, log_mlflow: bool = True,
               work_dir=WORK_DIR, store_root=STORE_ROOT, task: str = "segmenter") -> int:
    """One worker process: run trials of ``phase`` of an existing search; return how many."""
    _quiet_optuna()
    if phase not in ("low", "full"):
        raise GliomicsError(f"tune --worker: --phase must be low or full, got {phase!r}")
    search = open_search(params, data_dir, manifest_csv, splits_csv, storage=storage, study=study,
                         n_trials=n_trials, timeout=timeout, store_root=store_root, build=False, task=task)
    if not log_mlflow:
        parent_run_id = None
    elif parent_run_id is None:  # joining from another machine: the coordinator's run
        parent_run_id = search.low.user_attrs.get("mlflow_parent_run_id")
    logger = TrialLogger(parent_run_id, search.study_name, tags=_child_tags_of(parent_run_id))
    tune = search.tune
    if phase == "low":
        return run_phase(search.task, search.low, tune.space, "low", logger=logger, work_dir=work_dir,
                         study_name=search.study_name, n_trials=search.n_trials, timeout=search.timeout,
                         grid_size=search.grid_size)
    return run_phase(search.task, search.full, tune.space, "full", logger=logger, work_dir=work_dir,
                     study_name=search.full.study_name, max_trials=int(trials or 0))


def _quiet_optuna() -> None:
    """Our own trial lines replace Optuna's INFO log."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _waiting(study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


_INHERITED_TAGS = ("gliomics.stage", "git_commit", "dvc_data_hash", "data_dir", "profile")


def _child_tags(run) -> dict:
    if run is None:
        return {}

    tags = mlflow.get_run(run.info.run_id).data.tags
    return {k: tags[k] for k in _INHERITED_TAGS if k in tags}


def _child_tags_of(run_id) -> dict:
    if not run_id:
        return {}

    mlflow = tracking.configure()
    tags = mlflow.get_run(run_id).data.tags
    return {k: tags[k] for k in _INHERITED_TAGS if k in tags}


# ------------------------------------------------------------------ reports


def write_reports(search: Search, *, reports_dir, model_dir, work_dir, parent_run_id, seconds: float) -> dict:
    """trials.csv, importances.csv, figures/, best.json, summary.json; the best model to ``model_dir``.

    With ``promote_top_k`` 0 the best low-fidelity COMPLETE trial is reported and no model is copied.
    """
    task, tune = search.task, search.tune
    metric = task.metric
    reports_dir = Path(reports_dir)
    table = trials_table(search.low, search.full)
    io.write_csv(reports_dir / "trials.csv", table)
    io.write_csv(reports_dir / "importances.csv", param_importances(search.low))
    figures = reports_dir / "figures"
    with io.atomic_path(figures) as tmp:
        tmp.mkdir()
        plot_study(search.low, tmp)

    low = counts(search.low)
    if tune.promote_top_k > 0:
        fidelity, study = "full", search.full
        complete = search.full.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            raise GliomicsError(f"study {search.full.study_name}: no full-fidelity trial completed "
                                "(see trials.csv and the errors above)")
        best = max(complete, key=lambda t: (t.value, -t.number))
        value = float(best.value)
    else:
        fidelity, study = "low", search.low
        complete = search.low.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            raise GliomicsError(f"study {search.study_name}: no low-fidelity trial completed "
                                "(see trials.csv and the errors above)")
        best = max(complete, key=lambda t: (trial_value(t), -t.number))
        value = trial_value(best)
    run_id = best.user_attrs.get("mlflow_run_id")
    if fidelity == "full":
        _copy_model(trial_dir(work_dir, study.study_name, best.number) / TRIAL_MODEL, run_id, model_dir)
        model_uri = f"runs:/{run_id}/model" if run_id else str(model_dir)
        model_dir = str(model_dir)
    else:
        model_uri = model_dir = None
    settings = task.settings(_values_of(search, best), fidelity)
    n_full = len(search.full.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) if fidelity == "full" else 0
    result = {
        "task": task.name,
        "metric": metric,
        "study_name": search.study_name,
        "storage": redact(search.storage_url),
        "sampler": tune.sampler,
        "trial_number": best.number,
        "fidelity": fidelity,
        "promoted_from": best.user_attrs.get("promoted_from"),
        "val_value": value,
        metric: value,
        "params": dict(best.params),
        "train_settings": dataclasses.asdict(settings),
        "model_uri": model_uri,
        "model_dir": model_dir,
        "parent_run_id": parent_run_id,
        "n_trials": low.complete + low.pruned + low.failed,
        "n_complete": low.complete,
        "n_pruned": low.pruned,
        "n_failed": low.failed,
        "n_full": n_full,
        "seconds": round(seconds, 1),
    }
    io.write_json(reports_dir / "best.json", result)
    low_values = table.loc[(table["fidelity"] == "low") & table["state"].isin(["COMPLETE", "PRUNED"]), "value"]
    best_low = float(low_values.max()) if len(low_values) else None
    io.write_json(reports_dir / "summary.json", {
        "task": task.name, "metric": metric, "n_trials": result["n_trials"], "n_complete": low.complete,
        "n_pruned": low.pruned, "n_failed": low.failed, "n_full": n_full, "best_low_value": best_low,
        "best_value": value, f"best_low_{metric}": best_low, f"best_{metric}": value, "fidelity": fidelity,
        "sampler": tune.sampler, "grid_size": search.grid_size, "seconds": result["seconds"]})
    if task.name == "classifier" and model_dir is not None:
        scores = best.user_attrs.get("best_scores") or {}
        io.write_json(reports_dir / CLASSIFIER_MODEL_JSON, {
            "run_id": run_id, "model_uri": model_uri, "model_dir": model_dir, "profile": search.profile,
            "model_config": best.user_attrs.get("model_config") or settings.model,
            "best_val_roc_auc": value, "val_accuracy": scores.get("val_accuracy"),
            "source": "gliomics tune --task classifier", "study_name": search.study_name,
            "trial_number": best.number})
    elif (reports_dir / CLASSIFIER_MODEL_JSON).exists():  # an earlier search's: it no longer describes best.json
        (reports_dir / CLASSIFIER_MODEL_JSON).unlink()
    return result


def _values_of(search: Search, trial) -> dict:
    """The full sampled values of a finished trial (its params plus the fixed space values)."""
    fixed = optuna.trial.FixedTrial(dict(trial.params))

    return sample(fixed, search.task.tune.space)


def _copy_model(source: Path, run_id: str | None, model_dir) -> None:
    """The best trial's MLflow model folder to ``model_dir`` (downloaded when not on this machine)."""
    with io.atomic_path(model_dir) as tmp:
        if (source / "MLmodel").exists():
            shutil.copytree(source, tmp)
        elif run_id:
            tracking.configure()
            mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=str(tmp.parent / "download"))
            shutil.move(str(tmp.parent / "download" / "model"), tmp)
        else:
            raise GliomicsError(f"{source}: the best trial's model is not on this machine and it has no MLflow run")


def _log_parent(best: dict, reports_dir) -> None:
    reports_dir = Path(reports_dir)
    mlflow.log_params({f"best.{k}": v for k, v in best["params"].items()})
    mlflow.log_metrics({f"best_{best['metric']}": best["val_value"], "n_complete": best["n_complete"],
                        "n_pruned": best["n_pruned"], "n_failed": best["n_failed"], "seconds": best["seconds"]})
    mlflow.set_tags({"best_trial_number": str(best["trial_number"]), "best_fidelity": best["fidelity"],
                     **({"best_model_uri": best["model_uri"]} if best["model_uri"] else {})})
    names = ["trials.csv", "importances.csv", "best.json", "summary.json", CLASSIFIER_MODEL_JSON]
    for name in names:
        if (reports_dir / name).exists() and (name != CLASSIFIER_MODEL_JSON or best["task"] == "classifier"):
            mlflow.log_artifact(str(reports_dir / name))
    for figure in sorted((reports_dir / "figures").glob("*.png")):
        mlflow.log_artifact(str(figure), artifact_path="figures")
