"""``gliomics train``: fit one segmenter, write its reports and model, log it all to MLflow.

Patients: the split's cross-validation folds other than ``val_fold`` train,
fold ``val_fold`` validates (and selects the best epoch); the ``test`` part
is never read. A final fit (``final=True``, ``gliomics train --final``), once
the recipe is chosen on validation, trains on every cross-validation fold:
fold ``val_fold`` is then scored each epoch only to show progress (those
patients are trained on) and the last epoch's weights are the model. Slices come from the cached array store
(:mod:`gliomics.data.arrays`, built or reused at ``store_dir`` with the
profile's ``image_size`` and ``prefilter``).

Outputs:

- ``reports_dir/history.csv``: one row per epoch (:mod:`gliomics.training.fit`);
- ``reports_dir/metrics.json``: best ``val_dice_3d`` and epoch, epochs run,
  seconds, seconds per training image (training time over the images seen),
  seconds per validation image, precision, patient counts;
- ``reports_dir/learning_curves.png`` and ``reports_dir/overlays.png``
  (for up to 4 validation patients, the slice with the largest true tumour:
  FLAIR, truth, post-processed prediction of the best model);
- ``out_dir``: the best model as a local MLflow model (tensorflow flavour,
  same signature, input example and ``gliomics`` metadata as
  :func:`gliomics.training.export.log_segmenter`);
- MLflow run in experiment ``train``: flattened params, per-epoch metrics
  (``step`` = epoch), the reports as artifacts, the model at ``model``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from gliomics import io, layout
from gliomics.config import TrainParams
from gliomics.progress import epoch_line
from gliomics.report.training_plots import plot_learning_curves
from gliomics.tracking import flatten_params, optional_stage_run
from gliomics.training.budget import training_length
from gliomics.training.export import log_segmenter, save_segmenter
from gliomics.training.fit import check_settings, fit_segmenter
from gliomics.training.store import open_training_store
from gliomics.training.tasks import SEGMENTATION
from gliomics.training.validation import predict_patients, score_patients

OVERLAY_PATIENTS = 4
EPOCH_METRICS = ("loss", "slice_dice", "slice_iou", "soft_slice_dice", "soft_slice_iou", "val_dice_3d",
                 "val_slice_dice", "lr", "seconds", "val_seconds")


# ------------------------------------------------------------------- figures


def plot_overlays(store, scores: dict, path, n_patients: int = OVERLAY_PATIENTS) -> Path:
    """Image / truth / prediction on each patient's largest true-tumour slice."""
    matplotlib.use("Agg")

    patients = list(scores)[:n_patients]
    fig, axes = plt.subplots(len(patients), 3, figsize=(9, 3 * len(patients)), squeeze=False)
    for row, patient in enumerate(patients):
        dice, _slice_dice, pred = scores[patient]
        rows = store.rows([patient])
        truth = np.asarray(store.masks[rows]) > 0
        z = int(np.argmax(truth.reshape(len(rows), -1).sum(axis=1)))
        flair = np.asarray(store.images[rows[z]])[..., 1]
        panels = (("FLAIR", None), ("truth", truth[z]), (f"prediction (3D Dice {dice:.2f})", pred[z]))
        for col, (title, mask) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(flair, cmap="gray")
            if mask is not None:
                ax.imshow(np.ma.masked_where(~mask, mask), cmap="autumn", alpha=0.5, vmin=0, vmax=1)
            ax.set_title(f"{patient} slice {z + 1}: {title}" if col == 0 else title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


# --------------------------------------------------------------------- stage


def run_train(data_dir, manifest_csv, splits_csv, params: TrainParams, *, out_dir=layout.SEGMENTER,
              store_dir=layout.ARRAYS, checkpoint_dir=layout.TRAIN_CHECKPOINTS, reports_dir=layout.TRAIN_REPORTS,
              resume: bool = False, log_mlflow: bool = True, profile: str | None = None,
              steps: int | None = None, progress_lines: bool = True, final: bool = False) -> dict:
    """Train the segmenter of ``params``; write reports and model; return the summary.

    The run's length: ``steps`` training steps when given (``--steps``, e.g. to replay a budgeted run),
    else ``params.budget_minutes`` of this machine's time (calibrated first,
    :mod:`gliomics.training.budget`), else ``params.epochs``. The chosen length is logged
    (``length.*`` params: source, epochs, total_steps, and the calibration's seconds per step).

    Summary keys: ``run_id`` (None without MLflow), ``model_uri``
    (``runs:/<id>/model``, or the local ``out_dir`` without MLflow),
    ``model_dir``, ``best_val_dice_3d``, ``best_epoch``, ``epochs_run``,
    ``stopped_early``, ``resumed_from``, ``seconds``, ``seconds_per_image``,
    ``val_seconds_per_image``, ``precision``, ``n_train_patients``,
    ``n_val_patients``, ``image_size``, ``final_fit``.
    """
    started = time.perf_counter()
    reports_dir, out_dir = Path(reports_dir), Path(out_dir)
    check_settings(params, f"train.{profile}" if profile else "train")
    store, train_patients, val_patients, preprocessing = open_training_store(data_dir, manifest_csv, splits_csv,
                                                                             store_dir, params)
    if final:
        train_patients = sorted(train_patients + val_patients)
        if progress_lines:
            print(f"train: final fit on {len(train_patients)} patients (every cross-validation fold); fold "
                  f"{params.val_fold}'s Dice below is on patients seen in training; the last epoch is kept",
                  file=sys.stderr, flush=True)
    budgeted = params
    params, length = training_length("train", SEGMENTATION, store, train_patients, val_patients, params, steps=steps,
                                     checkpoint_dir=checkpoint_dir, resume=resume, announce=progress_lines)

    run_params = {**flatten_params(budgeted), "profile": profile or "", "seed": params.seed,
                  "n_train_patients": len(train_patients), "n_val_patients": len(val_patients),
                  "resume": resume, "final_fit": final, **{f"length.{k}": v for k, v in length.items()}}
    with optional_stage_run(log_mlflow, "train", data_dir=data_dir, params=run_params, profile=profile) as run:
        mlflow = None
        if run is not None:
            import mlflow

        best = [-math.inf, 0]

        def log_epoch(epoch, row, announce: bool = True):
            if mlflow is not None:
                mlflow.log_metrics({k: float(row[k]) for k in EPOCH_METRICS
                                    if k in row and not math.isnan(float(row[k]))}, step=epoch)
            score = float(row.get("val_dice_3d", math.nan))
            if not math.isnan(score) and score > best[0]:
                best[:] = [score, epoch]
            if announce and progress_lines:
                print(epoch_line("train", epoch, params.epochs, row, "val_dice_3d", None if final else tuple(best)),
                      file=sys.stderr, flush=True)

        result = fit_segmenter(store, train_patients, val_patients, params, checkpoint_dir=checkpoint_dir,
                               resume=resume, on_epoch_end=log_epoch, final=final)
        history = result.history
        if mlflow is not None:  # epochs done before a resume belong in this run too
            for row in history.to_dict("records")[:result.resumed_from]:
                log_epoch(int(row["epoch"]), row, announce=False)

        val_slices = max(1, len(store.rows(val_patients)))
        val_seconds = float(history["val_seconds"].sum()) if len(history) else 0.0
        metrics = {
            "best_val_dice_3d": result.best_val_dice_3d,
            "best_epoch": result.best_epoch,
            **result.run_metrics(params.steps_per_epoch, params.batch_size),
            "val_seconds_per_image": val_seconds / (max(1, len(history)) * val_slices),
            "xla": bool(params.xla),
            "n_train_patients": len(train_patients),
            "n_val_patients": len(val_patients),
            "image_size": store.image_size,
            "total_steps": length["total_steps"],
            "length_source": length["source"],
            "final_fit": final,  # then best_val_dice_3d is the last epoch's, on patients trained on
        }

        scores = score_patients(store, predict_patients(result.model, store, val_patients, params.batch_size))
        io.write_csv(reports_dir / "history.csv", history)
        io.write_json(reports_dir / "metrics.json", metrics)
        curves = plot_learning_curves(history, reports_dir / "learning_curves.png")
        overlays = plot_overlays(store, scores, reports_dir / "overlays.png")
        extra = {"best_val_dice_3d": result.best_val_dice_3d, "best_epoch": result.best_epoch,
                 "profile": profile or "", "val_fold": params.val_fold, "final_fit": final, "seed": params.seed}
        save_segmenter(result.model, preprocessing, result.model_config, out_dir, **extra)

        run_id = model_uri = None
        if mlflow is not None:
            mlflow.log_metrics({"best_val_dice_3d": result.best_val_dice_3d, "best_epoch": result.best_epoch,
                                "epochs_run": result.epochs_run, "seconds_per_image": metrics["seconds_per_image"]})
            for artifact in (reports_dir / "history.csv", reports_dir / "metrics.json", curves, overlays):
                mlflow.log_artifact(str(artifact), artifact_path="reports")
            log_segmenter(result.model, preprocessing, result.model_config, name="model", **extra)
            run_id = run.info.run_id
            model_uri = f"runs:/{run_id}/model"

    return {
        "run_id": run_id,
        "model_uri": model_uri or str(out_dir),
        "model_dir": str(out_dir),
        **metrics,
        "seconds": result.seconds,
        "wall_seconds": time.perf_counter() - started,
    }
