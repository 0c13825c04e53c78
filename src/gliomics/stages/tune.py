"""``gliomics tune``: multi-fidelity Optuna search of the segmenter, logged to MLflow.

1. Low fidelity: ``tune.n_trials`` trials (seeded TPE over ``tune.space``,
   pruned on the per-epoch validation per-patient 3D Dice) at the
   ``tune.low_fidelity`` settings, in the study ``<study_name>-<key>``
   (``key``: a hash of the data, split, manifest, search and training
   settings, so that changing any of them starts a new study while a
   re-run with the same ones continues it; ``--study`` names it outright).
2. Full fidelity: the ``promote_top_k`` best distinct configurations
   retrained with the profile's own training settings in the study
   ``<study>-full``; the best one is the tuned model.
3. Reports (``reports_dir``): ``trials.csv``, ``importances.csv``,
   ``figures/*.png``, ``best.json`` and ``summary.json``; the best model as a
   local MLflow model in ``model_dir`` (``models/tuned``).

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
from contextlib import nullcontext
from pathlib import Path

from gliomics import io
from gliomics.config import Params
from gliomics.errors import GliomicsError

REPORTS_DIR = "reports/tune"
MODEL_DIR = "models/tuned"
WORK_DIR = "checkpoints/tune"
STORE_ROOT = "data/arrays_tune"


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


def open_search(params: Params, data_dir, manifest_csv, splits_csv, *, storage=None, study=None,
                n_trials=None, timeout=None, store_root=STORE_ROOT, build=True) -> Search:
    """Check the settings, prepare the data (array stores) and open both studies."""
    from gliomics.tuning import study as studies
    from gliomics.tuning.pruning import make_pruner
    from gliomics.tuning.tasks import SegmenterTask

    tune = params.tune_settings()
    n_trials = tune.n_trials if n_trials is None else int(n_trials)
    timeout = tune.timeout if timeout is None else float(timeout)
    if n_trials < 0 or timeout < 0:
        raise GliomicsError("tune: --n-trials and --timeout must be >= 0")
    for path in (manifest_csv, splits_csv):
        if not Path(path).exists():
            raise GliomicsError(f"{path}: missing; run `gliomics validate` and `gliomics split` first")
    task = SegmenterTask(data_dir, manifest_csv, splits_csv, params.train_settings(), tune, store_root=store_root)
    task.check()
    pruner = make_pruner(tune.pruner, tune.low_fidelity.epochs)
    url = storage or studies.default_storage_url()
    backend = studies.open_storage(url)
    name = study or f"{tune.study_name}-{studies.study_key(task.key_payload())}"
    task.prepare(build=build)
    low = studies.open_study(backend, name, sampler_seed=tune.sampler_seed, startup_trials=tune.startup_trials,
                             pruner=pruner)
    full = studies.open_study(backend, name + studies.FULL_SUFFIX, sampler_seed=tune.sampler_seed,
                              startup_trials=tune.startup_trials)
    return Search(task=task, storage_url=url, study_name=name, low=low, full=full, n_trials=n_trials,
                  timeout=timeout)


def recover(search: Search, log_mlflow: bool) -> list:
    """Fail (and re-enqueue) trials a killed local process left RUNNING; close their MLflow runs."""
    from gliomics.tuning.study import recover_dead_trials, requeue
    from gliomics.tuning.trials import close_dead_parents, close_run

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
             timeout=None, workers: int = 1, log_mlflow: bool = True, reports_dir=REPORTS_DIR,
             model_dir=MODEL_DIR, work_dir=WORK_DIR, store_root=STORE_ROOT, params_file=None) -> dict:
    """Run (or continue) the search and write its reports; return best.json's content."""
    from gliomics.tuning.search import promote, run_phase
    from gliomics.tuning.study import is_sqlite, redact, worker_id
    from gliomics.tuning.trials import TrialLogger

    started = time.perf_counter()
    _quiet_optuna()
    if workers < 1:
        raise GliomicsError(f"tune: --workers must be >= 1, got {workers}")
    search = open_search(params, data_dir, manifest_csv, splits_csv, storage=storage, study=study,
                         n_trials=n_trials, timeout=timeout, store_root=store_root)
    if workers > 1 and is_sqlite(search.storage_url):
        print(f"tune: warning: {workers} workers share the SQLite file {redact(search.storage_url)}; fine on one "
              "machine, use PostgreSQL (--storage postgresql://…) for more workers or machines", file=sys.stderr)
    tune = params.tune_settings()
    recovered = recover(search, log_mlflow)
    for trial in recovered:
        print(f"tune: trial {trial.number} was left RUNNING by a dead process: marked FAIL, configuration "
              "re-enqueued", file=sys.stderr)

    shown_storage = redact(search.storage_url)
    run_params = {"study_name": search.study_name, "storage": shown_storage, "n_trials": search.n_trials,
                  "timeout": search.timeout, "sampler_seed": tune.sampler_seed, "startup_trials": tune.startup_trials,
                  "pruner": json.dumps(tune.pruner, sort_keys=True), "promote_top_k": tune.promote_top_k,
                  "workers": workers, "train.seed": search.task.base.seed,
                  **{f"space.{k}": json.dumps(v) for k, v in dataclasses.asdict(tune.space).items()},
                  **{f"low_fidelity.{k}": v for k, v in dataclasses.asdict(tune.low_fidelity).items()},
                  "model_options": json.dumps(tune.model_options, sort_keys=True),
                  "n_low_fidelity_patients": len(search.task.low_patients),
                  "n_train_patients": len(search.task.train_patients),
                  "n_val_patients": len(search.task.val_patients)}
    if log_mlflow:
        from gliomics import tracking

        context = tracking.stage_run("tune", data_dir=data_dir, params=run_params, profile=params.profile)
    else:
        context = nullcontext(None)

    worker_args = {"--params": params_file, "--data": data_dir, "--manifest": manifest_csv, "--splits": splits_csv,
                   "--storage": search.storage_url, "--study": search.study_name, "--n-trials": search.n_trials,
                   "--timeout": search.timeout, "--store-root": store_root, "--work-dir": work_dir}
    with context as run:
        parent_run_id = run.info.run_id if run is not None else None
        if run is not None:
            import mlflow

            mlflow.set_tags({"study_name": search.study_name, "role": "parent", "worker": worker_id(),
                             "storage": shown_storage})
            search.low.set_user_attr("mlflow_parent_run_id", parent_run_id)
        logger = TrialLogger(parent_run_id, search.study_name, tags=_child_tags(run))

        # 1. low fidelity
        if workers == 1:
            run_phase(search.task, search.low, tune.space, "low", logger=logger, work_dir=work_dir,
                      study_name=search.study_name, n_trials=search.n_trials, timeout=search.timeout)
        else:
            _run_workers([_worker_command(worker_args, "low", None, parent_run_id) for _ in range(workers)])

        # 2. promotion to full fidelity
        promote(search.low, search.full, tune.promote_top_k)
        pending = _waiting(search.full)
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
               work_dir=WORK_DIR, store_root=STORE_ROOT) -> int:
    """One worker process: run trials of ``phase`` of an existing search; return how many."""
    from gliomics.tuning.search import run_phase
    from gliomics.tuning.trials import TrialLogger

    _quiet_optuna()
    if phase not in ("low", "full"):
        raise GliomicsError(f"tune --worker: --phase must be low or full, got {phase!r}")
    search = open_search(params, data_dir, manifest_csv, splits_csv, storage=storage, study=study,
                         n_trials=n_trials, timeout=timeout, store_root=store_root, build=False)
    if not log_mlflow:
        parent_run_id = None
    elif parent_run_id is None:  # joining from another machine: the coordinator's run
        parent_run_id = search.low.user_attrs.get("mlflow_parent_run_id")
    logger = TrialLogger(parent_run_id, search.study_name, tags=_child_tags_of(parent_run_id))
    tune = params.tune_settings()
    if phase == "low":
        return run_phase(search.task, search.low, tune.space, "low", logger=logger, work_dir=work_dir,
                         study_name=search.study_name, n_trials=search.n_trials, timeout=search.timeout)
    return run_phase(search.task, search.full, tune.space, "full", logger=logger, work_dir=work_dir,
                     study_name=search.full.study_name, max_trials=int(trials or 0))


def _quiet_optuna() -> None:
    """Our own trial lines replace Optuna's INFO log."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _waiting(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


_INHERITED_TAGS = ("gliomics.stage", "git_commit", "dvc_data_hash", "data_dir", "profile")


def _child_tags(run) -> dict:
    if run is None:
        return {}
    import mlflow

    tags = mlflow.get_run(run.info.run_id).data.tags
    return {k: tags[k] for k in _INHERITED_TAGS if k in tags}


def _child_tags_of(run_id) -> dict:
    if not run_id:
        return {}
    from gliomics import tracking

    mlflow = tracking.configure()
    tags = mlflow.get_run(run_id).data.tags
    return {k: tags[k] for k in _INHERITED_TAGS if k in tags}


# ------------------------------------------------------------------ reports


def write_reports(search: Search, *, reports_dir, model_dir, work_dir, parent_run_id, seconds: float) -> dict:
    """trials.csv, importances.csv, figures/, best.json, summary.json; the best model to ``model_dir``."""
    from optuna.trial import TrialState

    from gliomics.tuning.search import MODEL_DIR as TRIAL_MODEL, trial_dir
    from gliomics.tuning.study import counts, redact
    from gliomics.tuning.trials import param_importances, plot_study, trials_table

    reports_dir = Path(reports_dir)
    table = trials_table(search.low, search.full)
    io.write_csv(reports_dir / "trials.csv", table)
    io.write_csv(reports_dir / "importances.csv", param_importances(search.low))
    figures = reports_dir / "figures"
    with io.atomic_path(figures) as tmp:
        tmp.mkdir()
        plot_study(search.low, tmp)

    complete = search.full.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise GliomicsError(f"study {search.full.study_name}: no full-fidelity trial completed "
                            "(see trials.csv and the errors above)")
    best = max(complete, key=lambda t: (t.value, -t.number))
    source = trial_dir(work_dir, search.full.study_name, best.number) / TRIAL_MODEL
    run_id = best.user_attrs.get("mlflow_run_id")
    _copy_model(source, run_id, model_dir)
    low = counts(search.low)
    settings = search.task.settings(_values_of(search, best), "full")
    result = {
        "study_name": search.study_name,
        "storage": redact(search.storage_url),
        "trial_number": best.number,
        "fidelity": "full",
        "promoted_from": best.user_attrs.get("promoted_from"),
        "val_dice_3d": float(best.value),
        "params": dict(best.params),
        "train_settings": dataclasses.asdict(settings),
        "model_uri": f"runs:/{run_id}/model" if run_id else str(model_dir),
        "model_dir": str(model_dir),
        "parent_run_id": parent_run_id,
        "n_trials": low.complete + low.pruned + low.failed,
        "n_complete": low.complete,
        "n_pruned": low.pruned,
        "n_failed": low.failed,
        "n_full": len(complete),
        "seconds": round(seconds, 1),
    }
    io.write_json(reports_dir / "best.json", result)
    low_values = table.loc[(table["fidelity"] == "low") & table["state"].isin(["COMPLETE", "PRUNED"]), "value"]
    io.write_json(reports_dir / "summary.json", {
        "n_trials": result["n_trials"], "n_complete": low.complete, "n_pruned": low.pruned, "n_failed": low.failed,
        "n_full": len(complete), "best_low_val_dice_3d": float(low_values.max()) if len(low_values) else None,
        "best_val_dice_3d": result["val_dice_3d"], "seconds": result["seconds"]})
    return result


def _values_of(search: Search, trial) -> dict:
    """The full sampled values of a finished trial (its params plus the fixed space values)."""
    import optuna

    fixed = optuna.trial.FixedTrial(dict(trial.params))
    from gliomics.tuning.space import sample

    return sample(fixed, search.task.tune.space)


def _copy_model(source: Path, run_id: str | None, model_dir) -> None:
    """The best trial's MLflow model folder to ``model_dir`` (downloaded when not on this machine)."""
    with io.atomic_path(model_dir) as tmp:
        if (source / "MLmodel").exists():
            shutil.copytree(source, tmp)
        elif run_id:
            import mlflow

            from gliomics import tracking

            tracking.configure()
            mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=str(tmp.parent / "download"))
            shutil.move(str(tmp.parent / "download" / "model"), tmp)
        else:
            raise GliomicsError(f"{source}: the best trial's model is not on this machine and it has no MLflow run")


def _log_parent(best: dict, reports_dir) -> None:
    import mlflow

    reports_dir = Path(reports_dir)
    mlflow.log_params({f"best.{k}": v for k, v in best["params"].items()})
    mlflow.log_metrics({"best_val_dice_3d": best["val_dice_3d"], "n_complete": best["n_complete"],
                        "n_pruned": best["n_pruned"], "n_failed": best["n_failed"], "seconds": best["seconds"]})
    mlflow.set_tags({"best_trial_number": str(best["trial_number"]), "best_model_uri": best["model_uri"]})
    for name in ("trials.csv", "importances.csv", "best.json", "summary.json"):
        mlflow.log_artifact(str(reports_dir / name))
    for figure in sorted((reports_dir / "figures").glob("*.png")):
        mlflow.log_artifact(str(figure), artifact_path="figures")
