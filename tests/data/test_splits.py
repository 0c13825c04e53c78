import numpy as np
import pytest

from gliomics.data.splits import TEST, patient_splits, strata


def _cohort(n=60, seed=0):
    rng = np.random.default_rng(seed)
    patients = [f"TCGA_{inst}_{i:04d}" for i, inst in enumerate(rng.choice(["CS", "DU", "FG", "HT"], n))]
    histology = list(rng.choice([1.0, 2.0, 3.0, np.nan], n, p=[0.4, 0.3, 0.28, 0.02]))
    return patients, histology, [p.split("_")[1] for p in patients]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_patient_in_two_parts_and_all_assigned(seed):
    patients, histology, institution = _cohort(seed=seed)
    splits = patient_splits(patients, histology, institution, test_fraction=0.2, n_folds=5, seed=seed)
    assert splits["patient"].is_unique
    assert sorted(splits["patient"]) == sorted(patients)
    assert (splits["part"] == TEST).sum() == 12
    assert set(splits.loc[splits["part"] != TEST, "fold"]) == set(range(5))
    # every patient exactly once: folds and test partition the cohort
    parts = splits.groupby("part")["patient"].apply(set)
    union = set().union(*parts)
    assert sum(len(s) for s in parts) == len(union) == len(patients)


def test_split_is_deterministic_and_order_independent():
    patients, histology, institution = _cohort()
    a = patient_splits(patients, histology, institution, test_fraction=0.2, n_folds=5, seed=3)
    b = patient_splits(patients[::-1], histology[::-1], institution[::-1], test_fraction=0.2, n_folds=5, seed=3)
    assert a.equals(b)
    c = patient_splits(patients, histology, institution, test_fraction=0.2, n_folds=5, seed=4)
    assert not a["part"].equals(c["part"])


def test_histology_is_balanced_across_test_and_folds():
    patients, histology, institution = _cohort(n=110, seed=5)
    splits = patient_splits(patients, histology, institution, test_fraction=0.2, n_folds=5, seed=0)
    lookup = dict(zip(patients, histology))
    for h in (1.0, 2.0, 3.0):
        share_all = np.mean([v == h for v in histology])
        test = splits.loc[splits["part"] == TEST, "patient"]
        share_test = np.mean([lookup[p] == h for p in test])
        assert abs(share_test - share_all) < 0.1


def test_strata_coarsen_until_large_enough():
    labels = strata(["a", "b", "c", "d", "e"], [1, 1, 1, 2, np.nan], ["X", "X", "Y", "Y", "Y"], min_count=2)
    assert labels[:2] == ["1|X", "1|X"]
    assert labels[2:] == ["rare"] * 3


def test_too_few_patients_is_an_error():
    with pytest.raises(ValueError, match="too few"):
        patient_splits(["a", "b", "c"], [1, 1, 1], ["X"] * 3, test_fraction=0.2, n_folds=5, seed=0)
