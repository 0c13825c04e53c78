"""`gliomics features`: the features table of a cohort, validated and logged."""

import numpy as np
import pandas as pd
import pytest
import tifffile

from gliomics.config import FeaturesParams
from gliomics.errors import GliomicsError
from gliomics.features import FEATURE_COLUMNS
from gliomics.stages.features import run_features
from gliomics.features.patient import feature_settings


@pytest.fixture(scope="module")
def table(small_cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("features") / "features_truth.csv"
    summary = run_features(small_cohort, "truth", out, FeaturesParams(), log_mlflow=False)
    return summary, pd.read_csv(out)


def test_one_validated_row_per_patient(table, small_cohort):
    summary, frame = table
    clinical = pd.read_csv(small_cohort / "data.csv")
    assert sorted(frame["patient"]) == sorted(clinical["Patient"])
    assert summary["n_ok"] == len(frame) == 4
    assert frame[list(FEATURE_COLUMNS)].notna().all().all()
    assert (frame["status"] == "ok").all()
    expected = clinical.set_index("Patient").loc[frame["patient"], "histological_type"].to_numpy()
    assert (frame["histological_type"].to_numpy() == expected).all()
    for column in ("volume_3d", "solidity_slices_mean", "largest_slice", "tumour_voxels", "glcm_asm"):
        assert column in frame


def test_largest_slice_is_the_one_with_most_tumour(table, small_cohort):
    _, frame = table
    row = frame.iloc[0]
    folder = small_cohort / row["folder"]
    areas = {int(p.stem.split("_")[-2]): np.count_nonzero(tifffile.imread(p)) for p in folder.glob("*_mask.tif")}
    assert row["largest_slice"] == max(areas, key=areas.get)
    assert row["tumour_voxels"] == sum(areas.values())


def test_empty_mask_patient_gets_nan_and_a_status_with_a_warning(cohort_copy, tmp_path):
    folder = sorted(p for p in cohort_copy.iterdir() if p.is_dir())[0]
    for mask in folder.glob("*_mask.tif"):
        tifffile.imwrite(mask, np.zeros((256, 256), np.uint8))
    out = tmp_path / "f.csv"
    with pytest.warns(UserWarning, match="no or partial features for TCGA_"):
        summary = run_features(cohort_copy, "truth", out, FeaturesParams(), log_mlflow=False)
    frame = pd.read_csv(out).set_index("folder")
    assert frame.loc[folder.name, "status"] == "empty mask"
    assert frame.loc[folder.name, list(FEATURE_COLUMNS)].isna().all()
    assert summary["n_ok"] == 3


def test_slice_spacing_changes_3d_volume_but_not_bevr(small_cohort, tmp_path):
    a = run_features(small_cohort, "truth", tmp_path / "a.csv", FeaturesParams(slice_spacing_ratio=6.0),
                     log_mlflow=False)
    b = run_features(small_cohort, "truth", tmp_path / "b.csv", FeaturesParams(slice_spacing_ratio=3.0),
                     log_mlflow=False)
    assert a["n_ok"] == b["n_ok"]
    fa, fb = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    np.testing.assert_allclose(fa["bounding_ellipsoid_volume_ratio"], fb["bounding_ellipsoid_volume_ratio"],
                               rtol=1e-3)
    assert (fa["volume_3d"] > fb["volume_3d"] * 1.5).all()


def test_glcm_settings_reach_the_features(small_cohort, tmp_path):
    settings = feature_settings(FeaturesParams(glcm_angles_deg=[0, 90], glcm_bin_width=8.0))
    assert settings["angles"] == pytest.approx((0.0, np.pi / 2))
    assert settings["bin_width"] == 8.0 and settings["n_bins"] is None
    run_features(small_cohort, "truth", tmp_path / "a.csv", FeaturesParams(glcm_n_bins=8), log_mlflow=False)
    run_features(small_cohort, "truth", tmp_path / "b.csv", FeaturesParams(glcm_n_bins=64), log_mlflow=False)
    fa, fb = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert not np.allclose(fa["glcm_contrast"], fb["glcm_contrast"])
    np.testing.assert_allclose(fa["solidity"], fb["solidity"])


def test_features_table_suite_rejects_out_of_range_values(table, tmp_path):
    from gliomics.validation.features import features_suite
    from gliomics.validation.gx import run_checks

    _, frame = table
    broken = frame.copy()
    broken.loc[0, "solidity"] = 1.5
    broken.loc[1, "eccentricity"] = np.nan  # NaN while status says ok
    (outcome,) = run_checks([features_suite(broken, FEATURE_COLUMNS, "f.csv", set(frame["patient"]))])
    assert not outcome.success
    assert any(f"patient {frame.loc[0, 'patient']}: solidity=1.5 outside (0, 1]" in p for p in outcome.problems)
    assert any(f"patient {frame.loc[1, 'patient']}: NaN feature with status 'ok'" in p for p in outcome.problems)


def test_missing_mask_is_a_clear_error(cohort_copy, tmp_path):
    folder = sorted(p for p in cohort_copy.iterdir() if p.is_dir())[0]
    (folder / f"{folder.name}_2_mask.tif").unlink()
    with pytest.raises(GliomicsError, match=rf"{folder.name}_2\.tif: slice 2 of {folder.name} has no mask"):
        run_features(cohort_copy, "truth", tmp_path / "f.csv", FeaturesParams(), log_mlflow=False)
    assert not (tmp_path / "f.csv").exists()


def test_features_stage_logs_table_and_histograms(small_cohort, tmp_path):
    import mlflow

    run_features(small_cohort, "truth", tmp_path / "f.csv", FeaturesParams())
    runs = mlflow.search_runs(experiment_names=["features"])
    assert len(runs) == 1 and runs.loc[0, "params.masks"] == "truth"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(runs.loc[0, "run_id"], "figures")}
    assert "figures/features_truth_histograms.png" in artifacts


@pytest.mark.real_data
def test_real_patients_have_features(real_cohort, tmp_path):
    summary = run_features(real_cohort, "truth", tmp_path / "f.csv", FeaturesParams(), log_mlflow=False)
    assert summary["n_patients"] == 3
