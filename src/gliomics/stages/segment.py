"""``gliomics segment``: predicted masks for a cohort, in a copy of its layout.

``input_dir`` is any folder in the Kaggle ``kaggle_3m`` layout; masks are not
needed (and, if present, are not copied: the output's masks are the
predictions). ``out_dir`` becomes the cohort root of the copy::

    OUT/
      data.csv                         copied when the input has one
      TCGA_CS_4941_19960909/
        TCGA_CS_4941_19960909_1.tif        the input image, copied byte for byte
        TCGA_CS_4941_19960909_1_mask.tif   predicted mask, uint8 0/255, image's H x W

so that ``gliomics features --data OUT --masks predicted`` (and
``gliomics validate``) run on it. Files outside the layout are not copied.
The folder is written beside ``out_dir`` and replaces it whole only when
every patient succeeded. Post-processing as in :mod:`gliomics.models.inference`.
The summary (patients, slices, predicted tumour voxels per folder, empty
predictions) is returned and logged to MLflow (experiment ``segment``); the
copy itself holds only the layout, so it stays a valid cohort.

The model defaults to :data:`DEFAULT_MODEL`, the registered segmenter with
alias ``champion`` (``gliomics promote`` sets it); when no version holds the
alias, the error says how to promote one.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import mlflow

from gliomics import io, layout
from gliomics.data.cohort_io import cohort_patients
from gliomics.data.kaggle import CLINICAL_FILE
from gliomics.data.slices import write_mask
from gliomics.errors import GliomicsError
from gliomics.models.gate import load_segmentation_models, segment_patients
from gliomics.models.inference import describe_models
from gliomics.tracking import stage_run

#: What ``gliomics segment`` (and its DVC stage) loads by default: the registry's champion
#: (mirrored in reports/registry/gliomics-segmenter.json, the stage's dependency).
DEFAULT_MODEL = "models:/gliomics-segmenter@champion"


def run_segment(input_dir: str | Path, model_uri: str = DEFAULT_MODEL, out_dir: str | Path = layout.PREDICTED, *,
                post: dict | None = None, log_mlflow: bool = True, profile: str | None = None,
                batch_size: int = 8, gate: str | None = None, gate_threshold: float | None = None) -> dict:
    """Predict a mask for every slice under ``input_dir``; write the copy at ``out_dir``; return a summary.

    The model, post-processing and optional slice gate (whose tumour-free slices get empty masks) are those
    of :func:`gliomics.training.evaluation.evaluate_segmenter`, which scores the same masks against the truth.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    root, by_folder = cohort_patients(input_dir, need_masks=False)
    if out_dir.resolve() == root.resolve() or root.resolve() in out_dir.resolve().parents:
        raise GliomicsError(f"{out_dir}: the output must not be the input cohort or inside it")
    models = load_segmentation_models(model_uri, post, gate, gate_threshold)
    settings, slice_gate = models[2:]

    tumour_voxels: dict[str, int] = {}
    n_slices = 0
    with io.atomic_path(out_dir) as tmp:
        tmp.mkdir()
        if (root / CLINICAL_FILE).exists():
            shutil.copy2(root / CLINICAL_FILE, tmp / CLINICAL_FILE)
        for folder, folder_slices, _, masks in segment_patients(root, by_folder, models, batch_size=batch_size,
                                                                label="segmenting patients"):
            target = tmp / folder
            target.mkdir()
            for s, mask in zip(folder_slices, masks):
                shutil.copy2(s.image, target / s.image.name)
                write_mask(target / f"{folder}_{s.slice}_mask.tif", mask)
            tumour_voxels[folder] = int(masks.sum())
            n_slices += len(folder_slices)

    summary = {
        "n_patients": len(by_folder),
        "n_slices": n_slices,
        "n_empty_patients": sum(1 for v in tumour_voxels.values() if v == 0),
        "tumour_voxels": tumour_voxels,
        "model_uri": describe_models(model_uri),
        "data_dir": str(root),
        "out_dir": str(out_dir),
        "post": settings,
        **(slice_gate.describe() if slice_gate else {}),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if log_mlflow:
        _log(root, summary, profile)
    return summary


def _log(root: Path, summary: dict, profile: str | None) -> None:
    params = {"model_uri": summary["model_uri"], "out_dir": summary["out_dir"],
              **{f"post_{k}": v for k, v in summary["post"].items()}}
    with stage_run("segment", data_dir=root, params=params, profile=profile):
        mlflow.log_metrics({k: float(summary[k]) for k in ("n_patients", "n_slices", "n_empty_patients", "seconds")})
        mlflow.log_dict(summary, "segment_summary.json")
