"""The split/store checks shared by `gliomics train`, `train-classifier` and the tuning tasks."""

from types import SimpleNamespace

import pytest

from gliomics.errors import GliomicsError
from gliomics.training.store import check_store_patients, store_prefilter


def test_patients_missing_from_the_store_are_named_with_the_split_file():
    store = SimpleNamespace(patients=["TCGA_A", "TCGA_B"])
    check_store_patients(store, ["TCGA_A", "TCGA_B"], "splits.csv")  # all present: no error
    with pytest.raises(GliomicsError, match=r"^splits.csv: patients not in the cohort/manifest: TCGA_C, TCGA_D$"):
        check_store_patients(store, ["TCGA_D", "TCGA_A", "TCGA_C"], "splits.csv")


@pytest.mark.parametrize(("setting", "expected"), [(None, None), ("none", None), ("median", "median")])
def test_prefilter_none_spellings(setting, expected):
    assert store_prefilter(SimpleNamespace(prefilter=setting)) == expected
