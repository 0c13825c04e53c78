"""``gliomics evaluate`` / ``gliomics segment`` and the inference helpers.

The model used throughout is a stub: a 1x1 convolution that outputs
``sigmoid(4 * (FLAIR z-score - 2.25))``. The synthetic tumours are bright in
FLAIR, so its masks overlap the truth well (3D Dice about 0.9) -- a real
signal for the plumbing to carry, with no training.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gliomics.errors import GliomicsError
from gliomics.models.preprocessing import Preprocessing
from tests.helpers import STUB_SIZE as SIZE
from tests.helpers import flair_stub

COLUMNS = ["patient", "n_slices", "true_voxels", "pred_voxels", "dice_3d", "iou_3d", "hd95_px"]
SUMMARY_KEYS = {"n_patients", "mean_dice_3d", "median_dice_3d", "mean_slice_dice", "seconds", "model_uri",
                "worst_patients"}


def _strip_masks(root: Path) -> None:
    for mask in root.glob("TCGA_*/*_mask.tif"):
        mask.unlink()


def _runs(experiment: str):
    import mlflow

    from gliomics import tracking

    tracking.configure()
    return mlflow.search_runs(experiment_names=[experiment])


# --------------------------------------------------------------------------
# inference helpers
# --------------------------------------------------------------------------

def test_predict_patient_shapes_and_postprocessing(small_cohort):
    from gliomics.models import inference
    from gliomics.data.cohort_io import cohort_patients, read_images

    root, by_folder = cohort_patients(small_cohort, need_masks=True)
    images = read_images(next(iter(by_folder.values())), root)
    preprocessing = Preprocessing(image_size=SIZE)
    prob = inference.predict_patient(flair_stub(), preprocessing, images, batch_size=5)
    assert prob.shape == images.shape[:3] and prob.dtype == np.float32
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    mask = inference.segment_volume(prob, preprocessing, {})
    assert mask.dtype == bool and mask.shape == prob.shape and mask.any()
    raw = inference.segment_volume(prob, preprocessing, {"largest_component": False, "fill_holes": False})
    np.testing.assert_array_equal(raw, prob > 0.5)
    assert not inference.segment_volume(prob, preprocessing, {"threshold": 0.999999}).sum() > raw.sum()
    with pytest.raises(GliomicsError, match="unknown post-processing"):
        inference.segment_volume(prob, preprocessing, {"treshold": 0.4})
    with pytest.raises(GliomicsError, match="does not match"):
        inference.check_model_size(flair_stub(32), preprocessing)


# --------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------

def test_evaluate_writes_scores_and_logs(small_cohort, stub_segmenter, tmp_path):
    from gliomics.stages.evaluate import run_evaluate

    out = tmp_path / "eval"
    summary = run_evaluate(small_cohort, stub_segmenter, out, profile="demo")

    table = pd.read_csv(out / "per_patient.csv")
    assert list(table.columns[: len(COLUMNS)]) == COLUMNS
    assert len(table) == 4 and table["patient"].str.match(r"^TCGA_[A-Z]{2}_\d{4}$").all()
    written = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(written) and written["n_patients"] == 4
    assert written["mean_dice_3d"] == pytest.approx(table["dice_3d"].mean())
    assert written["mean_dice_3d"] > 0.7  # the stub finds the FLAIR-bright tumours
    assert len(written["worst_patients"]) == 4
    assert summary["mean_dice_3d"] == written["mean_dice_3d"]

    runs = _runs("evaluate")
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["metrics.mean_dice_3d"] == pytest.approx(written["mean_dice_3d"])
    assert run["params.model_uri"] == stub_segmenter and run["tags.profile"] == "demo"
    from mlflow import MlflowClient

    names = {a.path for a in MlflowClient().list_artifacts(run["run_id"])}
    assert {"per_patient.csv", "summary.json"} <= names


def test_truth_as_prediction_scores_one(small_cohort, stub_segmenter, tmp_path, monkeypatch):
    """With the model's prediction replaced by the truth, every score is perfect."""
    from gliomics.data.cohort_io import cohort_patients, read_images, read_masks
    from gliomics.models import gate
    from gliomics.stages.evaluate import run_evaluate

    root, by_folder = cohort_patients(small_cohort, need_masks=True)
    truth = {}
    for folder_slices in by_folder.values():
        images = read_images(folder_slices, root)
        truth[images.tobytes()] = read_masks(folder_slices, images.shape[1:3], root).astype(np.float32)
    monkeypatch.setattr(gate, "predict_patient", lambda model, pre, images, **_: truth[images.tobytes()])

    summary = run_evaluate(small_cohort, stub_segmenter, tmp_path / "eval", log_mlflow=False,
                           post={"largest_component": False})
    table = pd.read_csv(tmp_path / "eval" / "per_patient.csv")
    assert (table["dice_3d"] == 1).all() and (table["iou_3d"] == 1).all() and (table["hd95_px"] == 0).all()
    assert (table["true_voxels"] == table["pred_voxels"]).all()
    assert summary["mean_dice_3d"] == summary["median_dice_3d"] == summary["mean_slice_dice"] == 1.0


def test_evaluate_patient_subset_and_run_uri(small_cohort, tmp_path):
    """A ``runs:/`` URI from ``log_segmenter``; ``patients`` restricts the cohort."""
    import mlflow

    from gliomics import tracking
    from gliomics.training.export import log_segmenter
    from gliomics.stages.evaluate import run_evaluate

    tracking.ensure_experiment("train")
    with mlflow.start_run() as run:
        log_segmenter(flair_stub(), Preprocessing(image_size=SIZE), {"arch": "flair_stub"})
    uri = f"runs:/{run.info.run_id}/model"
    folders = sorted(p.name for p in small_cohort.glob("TCGA_*"))
    chosen = [folders[0][: -len("_YYYYMMDD")], folders[2]]  # a patient id and a folder name
    summary = run_evaluate(small_cohort, uri, tmp_path / "eval", patients=chosen, log_mlflow=False)
    table = pd.read_csv(tmp_path / "eval" / "per_patient.csv")
    assert summary["n_patients"] == 2 and summary["model_uri"] == uri
    assert list(table["patient"]) == sorted([chosen[0], folders[2][: -len("_YYYYMMDD")]])
    with pytest.raises(GliomicsError, match="TCGA_XX_0000"):
        run_evaluate(small_cohort, uri, tmp_path / "eval2", patients=["TCGA_XX_0000"], log_mlflow=False)


# --------------------------------------------------------------------------
# segment
# --------------------------------------------------------------------------

def test_segment_output_validates_and_feeds_features(small_cohort, stub_segmenter, tmp_path):
    import tifffile

    from gliomics.config import FeaturesParams
    from gliomics.stages.features import run_features
    from gliomics.stages.segment import run_segment
    from gliomics.validation.cohort import validate_cohort

    out = tmp_path / "segmented"
    summary = run_segment(small_cohort, stub_segmenter, out)
    assert summary["n_patients"] == 4 and summary["n_empty_patients"] == 0
    assert (out / "data.csv").read_bytes() == (small_cohort / "data.csv").read_bytes()
    images = sorted(p.relative_to(small_cohort) for p in small_cohort.glob("TCGA_*/*.tif") if "_mask" not in p.name)
    assert sorted(p.relative_to(out) for p in out.glob("TCGA_*/*.tif") if "_mask" not in p.name) == images
    for image in images:
        assert (out / image).read_bytes() == (small_cohort / image).read_bytes()
        mask = tifffile.imread(out / str(image).replace(".tif", "_mask.tif"))
        assert mask.dtype == np.uint8 and mask.shape == (256, 256) and set(np.unique(mask)) <= {0, 255}

    validated = validate_cohort(out, tmp_path / "validate", log_mlflow=False)
    assert validated["success"] and validated["n_patients"] == 4
    features = run_features(out, "predicted", tmp_path / "features_predicted.csv", FeaturesParams(),
                            log_mlflow=False)
    assert features["n_patients"] == 4 and features["n_ok"] == 4
    assert len(_runs("segment")) == 1


def test_segment_maskless_is_fine_evaluate_is_not(cohort_copy, stub_segmenter, tmp_path):
    from gliomics.stages.evaluate import run_evaluate
    from gliomics.stages.segment import run_segment

    _strip_masks(cohort_copy)
    (cohort_copy / "data.csv").unlink()
    summary = run_segment(cohort_copy, stub_segmenter, tmp_path / "seg", log_mlflow=False)
    assert summary["n_patients"] == 4
    assert not (tmp_path / "seg" / "data.csv").exists()
    assert len(list((tmp_path / "seg").glob("TCGA_*/*_mask.tif"))) == summary["n_slices"]

    with pytest.raises(GliomicsError, match=r"TCGA_\w+: no masks at all; evaluate needs the true masks"):
        run_evaluate(cohort_copy, stub_segmenter, tmp_path / "eval", log_mlflow=False)
    assert not (tmp_path / "eval").exists()


def test_evaluate_partly_masked_names_the_folder(cohort_copy, stub_segmenter, tmp_path):
    from gliomics.stages.evaluate import run_evaluate

    folder = sorted(cohort_copy.glob("TCGA_*"))[1]
    next(iter(sorted(folder.glob("*_mask.tif")))).unlink()
    with pytest.raises(GliomicsError, match=f"{folder.name}: 1 slice\\(s\\) without a mask"):
        run_evaluate(cohort_copy, stub_segmenter, tmp_path / "eval", log_mlflow=False)


def test_segment_replaces_output_only_on_success(cohort_copy, stub_segmenter, tmp_path):
    from gliomics.stages.segment import run_segment

    out = tmp_path / "seg"
    out.mkdir()
    (out / "previous.txt").write_text("earlier output")
    last = sorted(cohort_copy.glob("TCGA_*"))[-1]
    sorted(p for p in last.glob("*.tif") if "_mask" not in p.name)[0].write_bytes(b"not a tif")
    with pytest.raises(GliomicsError, match="unreadable tif"):
        run_segment(cohort_copy, stub_segmenter, out, log_mlflow=False)
    assert [p.name for p in out.iterdir()] == ["previous.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".seg")] == []

    with pytest.raises(GliomicsError, match="must not be the input"):
        run_segment(cohort_copy, stub_segmenter, cohort_copy / "out", log_mlflow=False)


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------

def test_unresolvable_model_uri_lists_the_registry(small_cohort, tmp_path):
    import mlflow

    from gliomics import tracking
    from gliomics.training.export import log_segmenter
    from gliomics.stages.evaluate import run_evaluate
    from gliomics.stages.segment import run_segment

    with pytest.raises(GliomicsError, match="no registered models exist yet"):
        run_evaluate(small_cohort, "models:/glioma/1", tmp_path / "eval", log_mlflow=False)
    with pytest.raises(GliomicsError, match="not a model URI"):
        run_segment(small_cohort, str(tmp_path / "nowhere"), tmp_path / "seg", log_mlflow=False)

    tracking.ensure_experiment("train")
    with mlflow.start_run():
        log_segmenter(flair_stub(), Preprocessing(image_size=SIZE), {"arch": "flair_stub"},
                      registered_model_name="glioma")
    mlflow.MlflowClient().set_registered_model_alias("glioma", "champion", "1")
    with pytest.raises(GliomicsError, match=r"registered: glioma \(@champion\)"):
        run_segment(small_cohort, "models:/glioma@best", tmp_path / "seg", log_mlflow=False)
    assert not (tmp_path / "seg").exists() and not (tmp_path / "eval").exists()


def test_directory_without_slices(tmp_path, stub_segmenter):
    from gliomics.stages.evaluate import run_evaluate
    from gliomics.stages.segment import run_segment

    empty = tmp_path / "kaggle_3m"
    (empty / "TCGA_CS_4941_19960909").mkdir(parents=True)
    with pytest.raises(GliomicsError, match="no slices found"):
        run_segment(empty, stub_segmenter, tmp_path / "seg", log_mlflow=False)
    with pytest.raises(GliomicsError, match="no slices found"):
        run_evaluate(empty, stub_segmenter, tmp_path / "eval", log_mlflow=False)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(GliomicsError, match="not a cohort in the Kaggle layout"):
        run_evaluate(tmp_path / "nothing", stub_segmenter, tmp_path / "eval", log_mlflow=False)


def test_other_image_size_is_refused(cohort_copy, stub_segmenter, tmp_path):
    """Slices are read by gliomics.data.slices: a patient whose slices are all 200x180 (consistent, but not the
    Kaggle size validate checks) is refused with one line naming a slice, nothing is written; so is a grey one."""
    import cv2
    import tifffile

    from gliomics.stages.evaluate import run_evaluate
    from gliomics.stages.segment import run_segment

    folder = sorted(cohort_copy.glob("TCGA_*"))[0]
    for path in folder.glob("*.tif"):
        array = tifffile.imread(path)
        interpolation = cv2.INTER_NEAREST if "_mask" in path.name else cv2.INTER_LINEAR
        tifffile.imwrite(path, cv2.resize(array, (180, 200), interpolation=interpolation))
    resized = rf"{folder.name}_\d+\.tif: image is 200x180x3 uint8, expected 256x256x3 uint8 \(the Kaggle slice size\)"
    with pytest.raises(GliomicsError, match=resized):
        run_evaluate(cohort_copy, stub_segmenter, tmp_path / "eval", log_mlflow=False)
    with pytest.raises(GliomicsError, match=resized):
        run_segment(cohort_copy, stub_segmenter, tmp_path / "seg", log_mlflow=False)
    assert not (tmp_path / "eval").exists() and not (tmp_path / "seg").exists()

    shutil.rmtree(folder)
    gray = sorted(cohort_copy.glob("TCGA_*"))[0]
    for path in gray.glob("*.tif"):
        if "_mask" not in path.name:
            tifffile.imwrite(path, tifffile.imread(path)[..., 1])
    with pytest.raises(GliomicsError, match="image is 256x256 uint8, expected 256x256x3 uint8"):
        run_segment(cohort_copy, stub_segmenter, tmp_path / "seg2", log_mlflow=False)
    assert not (tmp_path / "seg2").exists()
