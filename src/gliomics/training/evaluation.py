"""Per-patient 3D scores of a segmenter on a labelled cohort (the ``evaluate`` and ``register`` stages).

``data_dir`` is any folder in the Kaggle ``kaggle_3m`` layout (the original
download as is, with or without ``data.csv``); every slice needs its mask
(the truth). The model is anything :func:`gliomics.models.packaging.load_segmenter`
resolves (``runs:/…``, ``models:/name/N``, ``models:/name@alias``, a local
folder with an ``MLmodel`` file).

Outputs (each written atomically) under ``out_dir``:

* ``per_patient.csv``: ``patient, n_slices, true_voxels, pred_voxels,
  dice_3d, iou_3d, hd95_px`` then ``n_scored_slices, mean_slice_dice``
  (:func:`gliomics.training.metrics.per_patient_scores`). Dice/IoU of two
  empty volumes is 1; ``hd95_px`` is in pixels (slice step counted as one
  pixel), empty when either mask is empty.
* ``summary.json``: ``n_patients, mean_dice_3d, median_dice_3d,
  mean_slice_dice, seconds`` plus ``mean_iou_3d, median_hd95_px, n_slices,
  model_uri, data_dir, post, worst_patients`` (the five lowest 3D Dice).
  ``mean_slice_dice`` averages only slices with tumour in truth or
  prediction (slices empty in both would each count as a perfect 1).
  ``by_sequences``: the same per MRI sequence group (``sequences`` column of
  ``per_patient.csv``: "all sequences", "no post-contrast", "no pre-contrast",
  "FLAIR only"; a missing sequence is a copy of FLAIR in this dataset).

Predictions are post-processed (threshold, fill holes, largest 3D component;
see :mod:`gliomics.models.inference`) before scoring.

Every image and mask is read through :mod:`gliomics.data.slices` (256x256x3
uint8 images, 256x256 uint8 masks of 0/255, as ``gliomics validate``
expects); any other slice stops the command with one line naming it, before
anything is written.
"""

from __future__ import annotations

import time
from pathlib import Path

import mlflow

from gliomics import io
from gliomics.data.cohort_io import cohort_patients, read_masks
from gliomics.data.manifest import patient_sequence_group
from gliomics.models import inference
from gliomics.models.gate import load_segmentation_models, segment_patients
from gliomics.tracking import stage_run, summary_metrics
from gliomics.training.metrics import per_patient_scores, summarise

PER_PATIENT = "per_patient.csv"
SUMMARY = "summary.json"
N_WORST = 5


def evaluate_segmenter(data_dir: str | Path, model_uri: str, out_dir: str | Path, *, patients=None,
                       post: dict | None = None, log_mlflow: bool = True, profile: str | None = None,
                       batch_size: int = 8, gate: str | None = None, gate_threshold: float | None = None) -> dict:
    """Score ``model_uri`` on the labelled cohort at ``data_dir``; write OUT files; return the summary.

    ``gate``: a slice classifier URI; slices it calls tumour-free are not segmented (empty masks;
    :mod:`gliomics.models.gate`).
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    root, by_folder = cohort_patients(data_dir, need_masks=True, patients=patients)
    models = load_segmentation_models(model_uri, post, gate, gate_threshold)
    settings, slice_gate = models[2:]

    truths, preds, sequences = {}, {}, {}
    for folder, folder_slices, images, masks in segment_patients(root, by_folder, models, batch_size=batch_size,
                                                                 label="evaluating patients"):
        patient = folder_slices[0].patient
        key = patient if patient not in truths else folder
        truths[key] = read_masks(folder_slices, images.shape[1:3], root)
        sequences[key] = patient_sequence_group(images)
        preds[key] = masks

    table = per_patient_scores(truths, preds)
    table["sequences"] = table["patient"].map(sequences)
    summary = summarise(table)
    summary["by_sequences"] = sequence_groups_summary(table)
    worst = table.nsmallest(min(N_WORST, len(table)), "dice_3d")
    summary.update(
        n_slices=int(table["n_slices"].sum()),
        model_uri=inference.describe_models(model_uri),
        data_dir=str(root),
        post=settings,
        **(slice_gate.describe() if slice_gate else {}),
        worst_patients=[{"patient": p, "dice_3d": float(d)}
                        for p, d in worst[["patient", "dice_3d"]].itertuples(index=False)],
        seconds=round(time.perf_counter() - started, 2),
    )
    summary.setdefault("mean_slice_dice", None)
    io.write_csv(out_dir / PER_PATIENT, table)
    io.write_json(out_dir / SUMMARY, summary)
    if log_mlflow:
        _log(root, out_dir, summary, profile)
    return summary


def sequence_groups_summary(table) -> dict:
    """``{group: {n_patients, mean_dice_3d, median_dice_3d}}`` per MRI sequence group of ``table`` (patients
    whose pre- and/or post-contrast channel is a copy of FLAIR form their own groups)."""
    groups = {}
    for group, rows in table.groupby("sequences", sort=False):
        groups[str(group)] = {"n_patients": int(len(rows)), "mean_dice_3d": float(rows["dice_3d"].mean()),
                              "median_dice_3d": float(rows["dice_3d"].median())}
    return groups


def _log(root: Path, out_dir: Path, summary: dict, profile: str | None) -> None:
    params = {"model_uri": summary["model_uri"], **{f"post_{k}": v for k, v in summary["post"].items()}}
    with stage_run("evaluate", data_dir=root, params=params, profile=profile):
        mlflow.log_metrics(summary_metrics(summary))
        mlflow.log_artifact(str(out_dir / PER_PATIENT))
        mlflow.log_artifact(str(out_dir / SUMMARY))
