import pytest

from gliomics.data.kaggle import institution_of, patient_of, read_clinical, resolve_cohort_dir, scan_cohort
from gliomics.errors import GliomicsError


def test_resolves_the_folder_above_kaggle_3m(small_cohort):
    assert resolve_cohort_dir(small_cohort.parent) == small_cohort
    assert resolve_cohort_dir(small_cohort) == small_cohort


def test_missing_or_foreign_folder_is_a_clear_error(tmp_path):
    with pytest.raises(GliomicsError, match="no such directory"):
        resolve_cohort_dir(tmp_path / "absent")
    with pytest.raises(GliomicsError, match="not a cohort in the Kaggle layout"):
        resolve_cohort_dir(tmp_path)


def test_names():
    assert patient_of("TCGA_CS_4941_19960909") == "TCGA_CS_4941"
    assert institution_of("TCGA_CS_4941") == "CS"


def test_stray_files_are_ignored_with_a_warning(cohort_copy):
    folder = next(p for p in cohort_copy.iterdir() if p.is_dir())
    (folder / "notes.txt").write_text("x")
    slices, warnings, _ = scan_cohort(cohort_copy)
    assert len(warnings) == 1 and "notes.txt" in warnings[0]
    assert all(s.image and s.mask for s in slices)


def test_clinical_codes_are_numeric_with_nan_for_missing(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("Patient,RNASeqCluster,histological_type\nTCGA_CS_0001,,2\nTCGA_CS_0002,3,1\n")
    table = read_clinical(path)
    assert table["RNASeqCluster"].isna().tolist() == [True, False]
    assert table["histological_type"].tolist() == [2, 1]
    assert table["Patient"].tolist() == ["TCGA_CS_0001", "TCGA_CS_0002"]
