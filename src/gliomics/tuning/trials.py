"""MLflow logging of a search, and its tables and figures.

One parent run per ``gliomics tune`` invocation (experiment ``tune``,
opened by the stage with :func:`gliomics.tracking.stage_run`); one nested
run per trial (:class:`TrialLogger`), tagged ``mlflow.parentRunId`` with the
parent's id, also from worker processes and other machines. A trial's run
holds:

- params: the sampled values (``arch``, ``learning_rate``, …) and the full
  training settings (``train.*``);
- metrics: the task's epoch metrics with ``step`` = epoch, then
  ``best_<metric>``, ``epochs_run``, ``duration_s``;
- tags: ``state`` (COMPLETE / PRUNED / FAIL), ``fidelity`` (low / full),
  ``trial_number``, ``study_name``, ``duration_s``, ``worker`` and, for
  full-fidelity trials, ``promoted_from``; a failed trial's ``error``.
  PRUNED runs end FINISHED (stopping them was the plan), FAIL runs FAILED.

:func:`trials_table`, :func:`param_importances` and :func:`plot_study`
build ``trials.csv``, ``importances.csv`` and the Optuna figures
(:mod:`optuna.visualization.matplotlib`).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import optuna
import optuna.visualization.matplotlib as ovm
import pandas as pd
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from gliomics import io, tracking
from gliomics.tracking import flatten_params
from gliomics.tuning.study import worker_dead

EXPERIMENT = "tune"
STATES = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}
#: trials.csv columns before the ``param_<name>`` ones.
TRIAL_COLUMNS = ("number", "state", "fidelity", "value", "epochs_run", "duration_s", "mlflow_run_id",
                 "promoted_from")


class TrialLogger:
    """The nested MLflow run of each trial; does nothing when ``parent_run_id`` is None."""

    def __init__(self, parent_run_id: str | None, study_name: str, tags: dict | None = None):
        self.parent_run_id = parent_run_id
        self.study_name = study_name
        self.tags = dict(tags or {})
        self.run = None
        self._mlflow = None
        if parent_run_id is not None:
            self._mlflow = tracking.configure()
            self.experiment_id = tracking.ensure_experiment(EXPERIMENT)

    @property
    def enabled(self) -> bool:
        return self._mlflow is not None

    def start(self, number: int, fidelity: str, values: dict, settings, extra_tags: dict | None = None) -> str | None:
        if not self.enabled:
            return None

        mlflow = self._mlflow
        tags = {**self.tags, "state": "RUNNING", "fidelity": fidelity, "trial_number": str(number),
                "study_name": self.study_name, **{k: str(v) for k, v in (extra_tags or {}).items()}}
        active = mlflow.active_run()
        nested_ok = active is None or active.info.run_id == self.parent_run_id
        self.run = mlflow.start_run(experiment_id=self.experiment_id, run_name=f"{fidelity}-{number}",
                                    parent_run_id=self.parent_run_id if nested_ok else None, nested=True, tags=tags)
        if not nested_ok:  # unreachable in practice; keep the link explicit anyway
            mlflow.set_tag("mlflow.parentRunId", self.parent_run_id)
        mlflow.log_params({**{k: v for k, v in values.items()}, **flatten_params(settings)})
        return self.run.info.run_id

    def log_epoch(self, epoch: int, row: dict, metrics) -> None:
        if self.run is None:
            return
        values = {k: float(row[k]) for k in metrics if k in row and not math.isnan(float(row[k]))}
        self._mlflow.log_metrics(values, step=int(epoch))

    def finish(self, state: str, *, metric: str, value: float, epochs_run: int, duration: float,
               error: str | None = None) -> None:
        if self.run is None:
            return
        mlflow = self._mlflow
        metrics = {"epochs_run": float(epochs_run), "duration_s": float(duration)}
        if value is not None and not math.isnan(value):
            metrics[f"best_{metric}"] = float(value)
        mlflow.log_metrics(metrics)
        tags = {"state": state, "duration_s": f"{duration:.1f}"}
        if error:
            tags["error"] = error[:500]
        mlflow.set_tags(tags)
        mlflow.end_run(status=STATES[state])
        self.run = None


def close_run(run_id: str, state: str = "FAIL", error: str | None = None) -> None:
    """End a run another (dead) process left RUNNING, as ``state``."""
    tracking.configure()
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except Exception:  # a run of another store (or deleted): nothing to close
        return
    client.set_tag(run_id, "state", state)
    if error:
        client.set_tag(run_id, "error", error[:500])
    if run.info.status == "RUNNING":
        client.set_terminated(run_id, STATES.get(state, "FAILED"))


def close_dead_parents(study_name: str) -> list[str]:
    """Fail the parent runs of ``study_name`` whose ``gliomics tune`` process on this host died."""
    tracking.configure()
    client = MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id],
                              filter_string=f"tags.study_name = '{study_name}' and attributes.status = 'RUNNING' "
                                            "and tags.role = 'parent'")
    closed = []
    for run in runs:
        if worker_dead(run.data.tags.get("worker")):
            client.set_tag(run.info.run_id, "error", "the tune process died (killed?)")
            client.set_terminated(run.info.run_id, "FAILED")
            closed.append(run.info.run_id)
    return closed


# ------------------------------------------------------------------ tables


def trial_value(trial) -> float:
    """The trial's best reported metric (a pruned trial's value is only its last)."""
    if "best_value" in trial.user_attrs:
        return float(trial.user_attrs["best_value"])
    reported = [v for v in trial.intermediate_values.values() if not math.isnan(v)]
    if reported:
        return max(reported)
    return float(trial.value) if trial.value is not None else math.nan


def trial_row(trial, fidelity: str) -> dict:
    duration = ((trial.datetime_complete - trial.datetime_start).total_seconds()
                if trial.datetime_complete and trial.datetime_start else math.nan)
    row = {
        "number": trial.number,
        "state": trial.state.name,
        "fidelity": fidelity,
        "value": trial_value(trial),
        "epochs_run": int(trial.user_attrs.get("epochs_run", len(trial.intermediate_values))),
        "duration_s": round(duration, 2),
        "mlflow_run_id": trial.user_attrs.get("mlflow_run_id", ""),
        "promoted_from": trial.user_attrs.get("promoted_from", ""),
    }
    row.update({f"param_{k}": v for k, v in sorted(trial.params.items())})
    return row


def trials_table(low_study, full_study):
    """Every started trial of both studies (WAITING ones have not run), low fidelity first."""
    rows = []
    for study, fidelity in ((low_study, "low"), (full_study, "full")):
        if study is None:
            continue
        for trial in study.get_trials(deepcopy=False):
            if trial.state != TrialState.WAITING:
                rows.append(trial_row(trial, fidelity))
    frame = pd.DataFrame(rows)
    params = sorted(c for c in frame.columns if c.startswith("param_"))
    return frame.reindex(columns=list(TRIAL_COLUMNS) + params)


def param_importances(study):
    """``(param, importance)`` of the study's COMPLETE trials (Optuna's default PED-ANOVA
    evaluator), empty when there are too few trials or searched params."""
    frame = pd.DataFrame(columns=["param", "importance"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return frame
    if not importances:
        return frame
    return pd.DataFrame({"param": list(importances), "importance": [float(v) for v in importances.values()]})


def plot_study(study, out_dir) -> list[Path]:
    """Optimisation history, parameter importances, parallel coordinates and intermediate
    values of ``study`` as PNGs in ``out_dir``; a plot Optuna cannot draw (too few trials)
    is skipped."""
    matplotlib.use("Agg")

    out_dir = Path(out_dir)
    plots = {
        "optimization_history": ovm.plot_optimization_history,
        "param_importances": ovm.plot_param_importances,
        "parallel_coordinate": ovm.plot_parallel_coordinate,
        "intermediate_values": ovm.plot_intermediate_values,
    }
    written = []
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = plot(study)
        except (RuntimeError, ValueError, ZeroDivisionError, IndexError):
            plt.close("all")
            continue
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(8, 5)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        with io.atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=90)
        plt.close("all")
        written.append(path)
    return written

