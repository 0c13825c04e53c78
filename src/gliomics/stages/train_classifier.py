"""``gliomics train-classifier``: fit one slice classifier, write its reports and model, log it to MLflow.

Settings: ``classifier.<profile>`` in params.yaml
(:class:`gliomics.config.ClassifierParams`). Patients exactly as for the
segmenter (:func:`gliomics.data.splits.split_patients`): the split's folds
other than ``val_fold`` train, fold ``val_fold`` validates and selects the
best epoch (validation ROC AUC), the ``test`` part is never read. Slices come
from the cached array store (no tif is decoded twice); labels are
``tumour pixels >= min_area_px`` in each (augmented) mask; batches hold
``tumour_fraction`` tumour slices (balanced sampling, so no class weights).
The loop is the segmenter's (:func:`gliomics.training.fit.fit_classifier`):
seeded, checkpointed each epoch, exactly resumable, early stopping.

Outputs:

- ``reports_dir/history.csv``: one row per epoch (``loss, accuracy,
  roc_auc`` on the training batches; ``val_roc_auc, val_accuracy, val_f1,
  val_loss`` on every validation slice; ``lr, seconds, val_seconds``);
- ``reports_dir/metrics.json``: best ``val_roc_auc`` and epoch, the decision
  ``threshold`` (``classifier.threshold``: chosen on the validation slices by
  :func:`gliomics.training.classification.choose_threshold`, or fixed) with
  ``threshold_method``, ``val_accuracy_at_0.5`` and
  ``val_accuracy_at_threshold``, the best model's validation scores at that
  threshold (``val_accuracy, val_f1, val_sensitivity, val_specificity``;
  optimistic, since the threshold was fitted there), epochs run, seconds,
  seconds per training image, patient and slice counts;
- ``reports_dir/{learning_curves, confusion_matrix, roc}.png`` (the last two
  on the validation slices, best model);
- ``out_dir``: the best model as a local MLflow model (tensorflow flavour,
  signature ``(n, S, S, 3) float32 -> (n, 1)``, an input example, and
  ``gliomics`` metadata: preprocessing (its ``threshold`` is the chosen
  one), model config, task ``classifier``, ``min_area_px``,
  ``threshold_selection`` (:class:`~gliomics.training.classification.ThresholdChoice`
  as a dict, with the validation patients); see :mod:`gliomics.models.packaging`);
- ``reports_dir/model.json``: ``run_id, model_uri, model_dir, profile,
  model_config, threshold`` (what ``gliomics register-classifier`` registers);
- MLflow run in experiment ``train_classifier``: flattened params
  (``classifier.*``, e.g. ``classifier.threshold``), per-epoch metrics
  (``step`` = epoch), the metrics ``threshold, val_accuracy_at_0.5,
  val_accuracy_at_threshold``, the reports as artifacts, the model at ``model``.

``gliomics calibrate-classifier`` (:func:`run_calibrate_classifier`) re-chooses
the threshold of an already trained model on the split's validation fold and
writes a copy of its model folder with it. Registering it:
:mod:`gliomics.stages.register_classifier`.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from pathlib import Path

from mlflow.models import Model

from gliomics import io, layout
from gliomics.data.cohort_io import cohort_patients
from gliomics.data.splits import split_patients
from gliomics.errors import GliomicsError
from gliomics.models.gate import load_classifier
from gliomics.models.packaging import METADATA_KEY
from gliomics.progress import epoch_line
from gliomics.report.classifier_plots import plot_confusion_matrix, plot_roc
from gliomics.report.training_plots import plot_learning_curves as plot_curves
from gliomics.tracking import flatten_params, optional_stage_run, summary_metrics
from gliomics.training.budget import training_length
from gliomics.training.classification import (attached_threshold, choose_threshold, classify_slices, slice_scores,
                                              threshold_setting)
from gliomics.training.export import log_classifier, save_classifier
from gliomics.training.fit import fit_classifier
from gliomics.training.store import open_training_store
from gliomics.training.tasks import ClassificationTask

EXPERIMENT = "train_classifier"
MODEL_JSON = "model.json"
EPOCH_METRICS = ("loss", "accuracy", "roc_auc", "val_roc_auc", "val_accuracy", "val_f1", "val_loss", "lr",
                 "seconds", "val_seconds")


def plot_learning_curves(history, path) -> Path:
    """The segmenter's learning-curve figure with the classifier's loss and score columns."""
    return plot_curves(history, path,
                       losses=(("loss", "training loss"), ("val_loss", "validation loss")),
                       loss_label="binary cross-entropy",
                       scores=(("accuracy", "training accuracy"), ("val_accuracy", "validation accuracy"),
                               ("val_roc_auc", "validation ROC AUC")),
                       score_label=None, score_top=1.02)


def run_train_classifier(data_dir, manifest_csv, splits_csv, params, *, out_dir=layout.CLASSIFIER,
                         store_dir=layout.ARRAYS, checkpoint_dir=layout.CLASSIFIER_CHECKPOINTS,
                         reports_dir=layout.CLASSIFIER_TRAIN, resume: bool = False, log_mlflow: bool = True,
                         profile: str | None = None, on_epoch_end=None, run_name: str | None = None,
                         steps: int | None = None, progress_lines: bool = True) -> dict:
    """Train the slice classifier of ``params`` (ClassifierParams); write reports and model; return the summary.

    The run's length as for the segmenter (:func:`gliomics.stages.train.run_train`): ``steps``, else
    ``params.budget_minutes`` (calibrated here), else ``params.epochs``; logged as ``length.*`` params.

    Summary keys: ``run_id`` (None without MLflow), ``model_uri``
    (``runs:/<id>/model``, or ``out_dir`` without MLflow), ``model_dir``, and
    the ``metrics.json`` numbers. ``on_epoch_end(epoch, row)`` is called after
    each epoch (after the MLflow logging), e.g. for a tuning pruner.
    """
    started = time.perf_counter()
    reports_dir, out_dir = Path(reports_dir), Path(out_dir)
    if int(params.min_area_px) < 1:
        raise GliomicsError(f"classifier.min_area_px must be >= 1, got {params.min_area_px}")
    store, train_patients, val_patients, preprocessing = open_training_store(data_dir, manifest_csv, splits_csv,
                                                                             store_dir, params)
    budgeted = params
    task = ClassificationTask(min_area_px=int(params.min_area_px))
    params, length = training_length("train-classifier", task, store, train_patients, val_patients, params,
                                     steps=steps, checkpoint_dir=checkpoint_dir, resume=resume,
                                     announce=progress_lines, section="classifier")

    run_params = {**flatten_params(budgeted, section="classifier"), "profile": profile or "", "seed": params.seed,
                  "n_train_patients": len(train_patients), "n_val_patients": len(val_patients), "resume": resume,
                  **{f"length.{k}": v for k, v in length.items()}}
    with optional_stage_run(log_mlflow, EXPERIMENT, data_dir=data_dir, params=run_params, profile=profile) as run:
        mlflow = None
        if run is not None:
            import mlflow

            if run_name:
                mlflow.set_tag("mlflow.runName", run_name)

        def log_epoch(epoch, row):
            if mlflow is not None:
                mlflow.log_metrics({k: float(row[k]) for k in EPOCH_METRICS
                                    if k in row and not math.isnan(float(row[k]))}, step=epoch)

        best = [-math.inf, 0]

        def epoch_end(epoch, row):
            log_epoch(epoch, row)
            score = float(row.get("val_roc_auc", math.nan))
            if not math.isnan(score) and score > best[0]:
                best[:] = [score, epoch]
            if progress_lines:
                print(epoch_line("train-classifier", epoch, params.epochs, row, "val_roc_auc", tuple(best)),
                      file=sys.stderr, flush=True)
            if on_epoch_end is not None:
                on_epoch_end(epoch, row)

        result = fit_classifier(store, train_patients, val_patients, params, checkpoint_dir=checkpoint_dir,
                                resume=resume, on_epoch_end=epoch_end)
        history = result.history
        if mlflow is not None:  # epochs done before a resume belong in this run too
            for row in history.to_dict("records")[:result.resumed_from]:
                log_epoch(int(row["epoch"]), row)

        task = ClassificationTask(min_area_px=int(params.min_area_px))
        labels, probs, _ = task.predict(result.model, store, val_patients, params.batch_size)
        choice = attached_threshold(result.model)  # chosen by fit_classifier on these same slices
        val = slice_scores(labels, probs, choice.threshold)
        metrics = {
            "best_val_roc_auc": None if math.isnan(result.best_score) else result.best_score,
            "best_epoch": result.best_epoch,
            **choice.metrics(),
            "threshold_method": choice.method,
            "val_accuracy": val["accuracy"],
            "val_roc_auc": val["roc_auc"],
            "val_f1": val["f1"],
            "val_sensitivity": val["sensitivity"],
            "val_specificity": val["specificity"],
            **result.run_metrics(params.steps_per_epoch, params.batch_size),
            "n_train_patients": len(train_patients),
            "n_val_patients": len(val_patients),
            "n_val_slices": int(len(labels)),
            "n_val_tumour_slices": int(labels.sum()),
            "image_size": store.image_size,
            "min_area_px": int(params.min_area_px),
        }

        io.write_csv(reports_dir / "history.csv", history)
        io.write_json(reports_dir / "metrics.json", metrics)
        figures = [
            plot_learning_curves(history, reports_dir / "learning_curves.png"),
            plot_confusion_matrix(labels, probs, choice.threshold, reports_dir / "confusion_matrix.png",
                                  title=f"validation slices (best epoch {result.best_epoch}), "
                                        f"threshold {choice.threshold:.3g}"),
            plot_roc(labels, probs, reports_dir / "roc.png", title="validation ROC, per slice"),
        ]
        extra = {"best_val_roc_auc": result.best_score, "best_epoch": result.best_epoch,
                 "profile": profile or "", "val_fold": params.val_fold}
        save_classifier(result.model, preprocessing, result.model_config, out_dir,
                        min_area_px=params.min_area_px, **extra)

        run_id = model_uri = None
        if mlflow is not None:
            run_id = run.info.run_id
            model_uri = f"runs:/{run_id}/model"
        io.write_json(reports_dir / MODEL_JSON, {"run_id": run_id, "model_uri": model_uri or str(out_dir),
                                                 "model_dir": str(out_dir), "profile": profile or "",
                                                 "model_config": result.model_config,
                                                 "best_val_roc_auc": metrics["best_val_roc_auc"],
                                                 "val_accuracy": metrics["val_accuracy"],
                                                 "threshold": choice.threshold})
        if mlflow is not None:
            # The best model's validation scores as best_val_*: val_* are the per-epoch series.
            mlflow.log_metrics({(k if k.startswith("best_") else k.replace("val_", "best_val_", 1)): v
                                for k, v in summary_metrics(metrics).items()
                                if not math.isnan(v) and k not in ("val_roc_auc", *choice.metrics())})
            # (log_classifier logs the threshold's metrics)
            for artifact in (reports_dir / "history.csv", reports_dir / "metrics.json", *figures):
                mlflow.log_artifact(str(artifact), artifact_path="reports")
            log_classifier(result.model, preprocessing, result.model_config, min_area_px=params.min_area_px,
                           **extra)

    return {
        "run_id": run_id,
        "model_uri": model_uri or str(out_dir),
        "model_dir": str(out_dir),
        **metrics,
        "wall_seconds": time.perf_counter() - started,
    }


# ------------------------------------------------------------------ calibrate


def run_calibrate_classifier(model_dir, splits_csv, data_dir, *, val_fold: int, out_dir=None,
                             setting="validation", batch_size: int = 16) -> dict:
    """Re-choose the decision threshold of the trained classifier at ``model_dir`` (a local MLflow
    model folder) on fold ``val_fold`` of ``splits_csv``, without retraining.

    The validation patients' slices are read from the cohort at ``data_dir``
    and labelled as ``gliomics evaluate --task classifier`` labels them (the
    model's own ``min_area_px``); the test part is never read.
    :func:`gliomics.training.classification.choose_threshold` picks the
    threshold (``setting``: ``validation`` or a number). Writes a copy of the
    folder at ``out_dir`` (default: ``<model_dir>-calibrated``) whose MLmodel
    metadata has the new ``preprocessing.threshold`` and
    ``threshold_selection``; returns the latter plus ``model_dir, out_dir,
    previous_threshold``.

    Refused (:class:`GliomicsError`, naming the file): a folder without an
    MLmodel file, a model validated on another fold (metadata ``val_fold``)
    or on other patients (``threshold_selection.val_patients``) than the
    split's fold.
    """
    model_dir = Path(model_dir)
    out_dir = Path(out_dir) if out_dir else model_dir.with_name(model_dir.name + "-calibrated")
    mlmodel = model_dir / "MLmodel"
    if not mlmodel.is_file():
        raise GliomicsError(f"{model_dir}: not a local MLflow model folder (no MLmodel file)")
    threshold_setting(setting)
    model, preprocessing, metadata = load_classifier(str(model_dir))
    if "preprocessing" not in metadata:
        raise GliomicsError(f"{mlmodel}: no gliomics metadata; use a model from `gliomics train-classifier`")
    _, val_patients = split_patients(splits_csv, int(val_fold))
    trained_fold = metadata.get("val_fold")
    if trained_fold is not None and int(trained_fold) != int(val_fold):
        raise GliomicsError(f"{splits_csv}: the model {mlmodel} was validated on fold {trained_fold}, not "
                            f"classifier.val_fold {val_fold}; calibrate on the model's own validation fold")
    recorded = (metadata.get("threshold_selection") or {}).get("val_patients")
    if recorded and sorted(map(str, recorded)) != val_patients:
        raise GliomicsError(f"{splits_csv}: fold {val_fold} holds other patients than the model {mlmodel} was "
                            "validated on (another split?); use the split the model was trained with")

    root, by_folder = cohort_patients(data_dir, need_masks=True, patients=val_patients)
    per_slice = classify_slices(root, by_folder, model, preprocessing,
                                min_area_px=int(metadata.get("min_area_px", 1)), batch_size=batch_size)
    choice = choose_threshold(per_slice["label"], per_slice["prob"], setting, val_patients)

    with io.atomic_path(out_dir) as tmp:
        shutil.copytree(model_dir, tmp)
        record = Model.load(str(tmp / "MLmodel"))
        gliomics_metadata = record.metadata[METADATA_KEY]
        gliomics_metadata["preprocessing"]["threshold"] = choice.threshold
        gliomics_metadata["threshold_selection"] = choice.to_dict()
        record.save(str(tmp / "MLmodel"))
    return {**choice.to_dict(), "previous_threshold": preprocessing.threshold, "model_dir": str(model_dir),
            "out_dir": str(out_dir)}
