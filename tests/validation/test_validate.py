"""`gliomics validate`: a good cohort passes; each bad input fails with a named file or row."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from gliomics.errors import GliomicsError, ValidationFailed
from gliomics.validation.cohort import validate_cohort


def _first_folder(root):
    return sorted(p for p in root.iterdir() if p.is_dir())[0]


def _slice(root, n, mask=False):
    folder = _first_folder(root)
    return folder / f"{folder.name}_{n}{'_mask' if mask else ''}.tif"


def _fails(root, out):
    with pytest.raises(ValidationFailed) as info:
        validate_cohort(root, out, log_mlflow=False)
    return info.value.problems


@pytest.fixture(scope="module")
def validated(small_cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("validate")
    summary = validate_cohort(small_cohort, out, log_mlflow=False)
    return summary, out


def test_good_cohort_passes_and_writes_every_output(validated, small_cohort):
    summary, out = validated
    assert summary["success"] and summary["n_problems"] == 0
    assert summary["n_patients"] == 4
    manifest = pd.read_csv(out / "manifest.csv")
    assert len(manifest) == summary["n_slices"]
    assert manifest["mask_binary"].all() and manifest["read_error"].isna().all()
    assert (manifest["image_shape"] == "256x256x3").all()
    assert summary["n_tumour_slices"] == int((manifest["tumour_pixels"] > 0).sum()) > 0
    results = json.loads((out / "gx_results.json").read_text())
    assert set(results) == {"clinical", "folders", "slices"}
    assert all(r["success"] for r in results.values())
    assert (out / "data_docs" / "index.html").exists()
    assert json.loads((out / "summary.json").read_text())["success"] is True


BAD_INPUTS = {
    "truncated tif": (
        lambda root: _slice(root, 2).write_bytes(_slice(root, 2).read_bytes()[:500]),
        r"_2\.tif: unreadable tif",
    ),
    "corrupt tif": (lambda root: _slice(root, 3).write_bytes(b"not a tif at all" * 10), r"_3\.tif: unreadable tif"),
    "image/mask shape mismatch": (
        lambda root: tifffile.imwrite(_slice(root, 1, mask=True), np.zeros((128, 128), np.uint8)),
        r"_1_mask\.tif: mask is 128x128, expected 256x256",
    ),
    "wrong image size": (
        lambda root: tifffile.imwrite(_slice(root, 1), np.zeros((240, 240, 3), np.uint8)),
        r"_1\.tif: image is 240x240x3, expected 256x256x3",
    ),
    "mask values not 0/255": (
        lambda root: tifffile.imwrite(_slice(root, 2, mask=True), np.full((256, 256), 1, np.uint8)),
        r"_2_mask\.tif: mask has values other than 0/255 \(found 1\)",
    ),
    "image without mask": (lambda root: _slice(root, 4, mask=True).unlink(), r"_4\.tif: image without mask"),
    "mask without image": (lambda root: _slice(root, 4).unlink(), r"_4_mask\.tif: mask without image"),
    "gap in slice numbers": (
        lambda root: (_slice(root, 5).unlink(), _slice(root, 5, mask=True).unlink()),
        r"slice numbers are not 1\.\.\d+ without gaps \(missing: 5\)",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_slice_is_named(case, cohort_copy, tmp_path):
    damage, pattern = BAD_INPUTS[case]
    damage(cohort_copy)
    problems = _fails(cohort_copy, tmp_path / "out")
    assert any(pytest.importorskip("re").search(pattern, p) for p in problems), problems
    assert all(str(cohort_copy) in p for p in problems), "every problem names its file"


def _edit_csv(root, edit):
    path = root / "data.csv"
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table = edit(table)
    table.to_csv(path, index=False)


CSV_CASES = {
    "missing column": (lambda t: t.drop(columns=["CNCluster"]), r"data\.csv: missing column\(s\) CNCluster"),
    "renamed column": (
        lambda t: t.rename(columns={"death01": "death"}),
        r"data\.csv: missing column\(s\) death01; unexpected column\(s\) death",
    ),
    "cluster code out of range": (
        lambda t: t.assign(RNASeqCluster=["7"] + list(t["RNASeqCluster"][1:])),
        r"data\.csv line 2 \(Patient TCGA_\w+\): RNASeqCluster='7' out of range",
    ),
    "non-numeric code": (
        lambda t: t.assign(COCCluster=["two"] + list(t["COCCluster"][1:])),
        r"data\.csv line 2 \(Patient TCGA_\w+\): COCCluster='two' not a number",
    ),
    "histology out of range": (
        lambda t: t.assign(histological_type=list(t["histological_type"][:-1]) + ["4"]),
        r"data\.csv line 5 \(Patient TCGA_\w+\): histological_type='4' out of range",
    ),
    "duplicate patient": (
        lambda t: pd.concat([t, t.iloc[[0]]]),
        r"data\.csv line \d \(Patient TCGA_\w+\): Patient TCGA_\w+ appears more than once",
    ),
    "patient without folder": (
        lambda t: pd.concat([t, t.iloc[[0]].assign(Patient="TCGA_ZZ_0001")]),
        r"data\.csv line 6 \(Patient TCGA_ZZ_0001\): Patient TCGA_ZZ_0001 has no slice folder",
    ),
    "folder without row": (
        lambda t: t.iloc[1:],
        r"TCGA_\w+_\d{8}: patient TCGA_\w+ has no row in data\.csv",
    ),
}


@pytest.mark.parametrize("case", CSV_CASES, ids=list(CSV_CASES))
def test_bad_clinical_table_is_named(case, cohort_copy, tmp_path):
    import re

    edit, pattern = CSV_CASES[case]
    _edit_csv(cohort_copy, edit)
    problems = _fails(cohort_copy, tmp_path / "out")
    assert any(re.search(pattern, p) for p in problems), problems


def test_float_written_codes_are_accepted(cohort_copy, tmp_path):
    _edit_csv(cohort_copy, lambda t: t.assign(gender=[f"{v}.0" if v else v for v in t["gender"]]))
    assert validate_cohort(cohort_copy, tmp_path / "out", log_mlflow=False)["success"]


def test_missing_data_csv(cohort_copy, tmp_path):
    (cohort_copy / "data.csv").unlink()
    problems = _fails(cohort_copy, tmp_path / "out")
    assert any("data.csv: missing" in p for p in problems)


def test_failure_leaves_no_valid_looking_manifest_and_keeps_the_inputs(cohort_copy, tmp_path):
    out = tmp_path / "out"
    validate_cohort(cohort_copy, out, log_mlflow=False)
    assert (out / "manifest.csv").exists()
    before = {p: p.read_bytes() for p in cohort_copy.rglob("*") if p.is_file()}
    tifffile.imwrite(_slice(cohort_copy, 1, mask=True), np.full((256, 256), 3, np.uint8))
    before[_slice(cohort_copy, 1, mask=True)] = _slice(cohort_copy, 1, mask=True).read_bytes()
    _fails(cohort_copy, out)
    assert not (out / "manifest.csv").exists(), "a stale manifest would look valid"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["success"] is False and summary["n_problems"] == 1
    assert json.loads((out / "gx_results.json").read_text())["slices"]["success"] is False
    assert {p: p.read_bytes() for p in cohort_copy.rglob("*") if p.is_file()} == before, "inputs untouched"
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary files left"


def test_not_a_cohort(tmp_path):
    with pytest.raises(GliomicsError, match="not a cohort in the Kaggle layout"):
        validate_cohort(tmp_path, tmp_path / "out", log_mlflow=False)


@pytest.mark.real_data
def test_real_patients_validate(real_cohort, tmp_path):
    summary = validate_cohort(real_cohort, tmp_path / "out", log_mlflow=False)
    assert summary["success"] and summary["n_patients"] == 3
    assert summary["n_tumour_slices"] > 0
