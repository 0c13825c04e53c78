"""The long association table: the built-in signal, null behaviour, invariants."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kruskal
from scipy.stats.contingency import association

from gliomics.stats import (
    CORRECTION_FAMILIES,
    DEFAULT_FAMILIES,
    association_tests,
    freeman_halton,
    merge_cohort,
    significance_matrix,
    simulate_cohort,
)
from gliomics.stats._fast import cramers_v, kruskal_wallis, midranks
from gliomics.stats.association import COLUMNS

GROUPS = ("astrocytoma", "oligoastrocytoma", "oligodendroglioma", "all")


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort(110, 13, seed=1)


@pytest.fixture(scope="module")
def tests_table(cohort):
    features, clinical = cohort
    return association_tests(
        features, clinical, families=[*DEFAULT_FAMILIES, "neoplasm_histologic_grade", "death01"]
    )


# ------------------------------------------------------------ the signal
def test_built_in_signal_is_found(tests_table):
    t = tests_table
    sig = t[(t.feature == "signal") & (t.family == "RNASeqCluster") & (t.group == "all")]
    fh = sig[sig.test == "freeman_halton"].iloc[0]
    assert fh.p_bonferroni < 0.01
    ovr = sig[(sig.test == "fisher_ovr") & (sig.level == 2)].iloc[0]
    assert ovr.p_bonferroni < 0.01 and ovr.odds_ratio > 1 and ovr.ci_low > 1
    assert sig[sig.test == "kruskal_wallis"].iloc[0].p_bonferroni < 0.01
    # strong effect: Cramér's V well above what noise gives
    assert fh.effect_size > 0.4


def test_noise_features_are_not_found(tests_table):
    t = tests_table
    noise = t[t.feature.str.startswith("noise") & (t.test == "freeman_halton")]
    assert len(noise) == 13 * 9 * 4
    assert (noise.p_bonferroni.dropna() >= 0.05).all()
    # the signal is not "found" in families where it was not built
    other = t[(t.feature == "signal") & (t.family == "COCCluster") & (t.test == "freeman_halton")]
    assert (other.p_bonferroni >= 0.05).all()


def test_significance_matrix_has_thesis_shape(tests_table, cohort):
    features, _ = cohort
    m = significance_matrix(tests_table, "all")
    assert list(m.index) == [c for c in features.columns if c not in ("patient", "histological_type")]
    assert list(m.columns)[:7] == list(DEFAULT_FAMILIES)
    assert m.loc["signal", "RNASeqCluster"] < 0.01
    row = tests_table.query(
        "group == 'oligodendroglioma' and test == 'freeman_halton' and feature == 'noise_03' "
        "and family == 'CNCluster'"
    ).iloc[0]
    mat = significance_matrix(tests_table, "oligodendroglioma")
    assert mat.loc["noise_03", "CNCluster"] == row.p_bonferroni
    with pytest.raises(KeyError):
        significance_matrix(tests_table, "no-such-group")


# ------------------------------------------------------------ invariants
def test_columns_and_completeness(tests_table, cohort):
    features, _ = cohort
    t = tests_table
    assert list(t.columns) == list(COLUMNS)
    n_feat = features.shape[1] - 2
    for test in ("freeman_halton", "kruskal_wallis"):
        sub = t[t.test == test]
        assert len(sub) == len(GROUPS) * 9 * n_feat
        assert not sub.duplicated(["group", "family", "feature"]).any()
    # every (group, family, feature) has its one-vs-rest rows
    ovr = t[t.test == "fisher_ovr"].groupby(["group", "family", "feature"]).size()
    assert len(ovr) == len(GROUPS) * 9 * n_feat


def test_p_values_valid_and_corrections_monotone(tests_table):
    t = tests_table
    done = t.reason.isna()
    assert t.loc[done, ["p", "p_bonferroni", "p_fdr"]].notna().all().all()
    assert t.loc[~done, ["p", "p_bonferroni", "p_fdr"]].isna().all().all()
    for col in ("p", "p_bonferroni", "p_fdr"):
        v = t.loc[done, col]
        assert ((v >= 0) & (v <= 1)).all()
    d = t[done]
    assert (d.p_bonferroni >= d.p - 1e-15).all()
    assert (d.p_fdr >= d.p - 1e-15).all()
    assert (d.p_bonferroni >= d.p_fdr - 1e-15).all()
    np.testing.assert_allclose(d.p_bonferroni, np.minimum(1, d.p * d.m_tests), rtol=1e-12)


def test_counts_sum_to_n_and_reproduce_p(tests_table):
    t = tests_table
    for _, row in t.iterrows():
        c = json.loads(row.counts)
        arr = np.asarray(c["counts"], dtype=int)
        assert arr.sum() == row.n
    fh = t[(t.test == "freeman_halton") & t.reason.isna()].sample(30, random_state=0)
    for _, row in fh.iterrows():
        counts = np.asarray(json.loads(row.counts)["counts"])
        assert freeman_halton(counts) == pytest.approx(row.p, rel=1e-12)


def test_effect_sizes_in_range(tests_table):
    t = tests_table[tests_table.reason.isna()]
    for measure in ("cramers_v", "epsilon_squared"):
        v = t.loc[t.effect_measure == measure, "effect_size"]
        assert ((v >= 0) & (v <= 1 + 1e-12)).all()
    ovr = t[t.test == "fisher_ovr"]
    assert ((ovr.ci_low <= ovr.odds_ratio) & (ovr.odds_ratio <= ovr.ci_high)).all()


@pytest.mark.parametrize("family", sorted(CORRECTION_FAMILIES))
def test_correction_family_sizes(cohort, family):
    features, clinical = cohort
    t = association_tests(features, clinical, correction_family=family, one_vs_rest=False)
    fh = t[(t.test == "freeman_halton") & t.reason.isna()]
    keys = list(CORRECTION_FAMILIES[family])
    sizes = fh.groupby([k for k in keys if k != "test"] or (lambda _: 0)).size()
    expected = fh.groupby([k for k in keys if k != "test"] or (lambda _: 0))["m_tests"].first()
    assert (sizes == expected).all()
    if family == "group_family":
        assert (fh.m_tests == 14).all()
    assert (t.correction_family == family).all()


def test_unknown_correction_family_rejected(cohort):
    with pytest.raises(ValueError, match="correction_family"):
        association_tests(*cohort, correction_family="features")


# ------------------------------------------------------------ null behaviour
def test_not_anti_conservative_under_shuffled_labels():
    """400 permutations of the cluster labels against one fixed feature: the
    share of raw p < 0.05 must not exceed 0.05 by more than sampling noise
    (about 2.7 standard errors).  Fisher's test is conservative (discrete),
    so it may sit below 0.05, but it must reject sometimes."""
    features, clinical = simulate_cohort(110, 0, seed=2)
    rng = np.random.default_rng(11)
    labels = clinical["RNASeqCluster"].to_numpy()
    perms = {f"perm_{i:03d}": rng.permutation(labels) for i in range(400)}
    clin = pd.concat([clinical[["Patient"]], pd.DataFrame(perms)], axis=1)
    t = association_tests(features, clin, families=list(perms), groups={"all": None})
    bound = 0.05 + 2.7 * np.sqrt(0.05 * 0.95 / 400)
    for test in ("freeman_halton", "kruskal_wallis", "fisher_ovr"):
        share = (t.loc[t.test == test, "p"] < 0.05).mean()
        assert 0.005 < share <= bound, (test, share)
    # and Bonferroni finds nothing
    assert (t.p_bonferroni >= 0.05).all()


# ------------------------------------------------------------ split & reasons
def _one_feature(values, labels, histology=None):
    n = len(values)
    pats = [f"P{i:03d}" for i in range(n)]
    f = pd.DataFrame({"patient": pats, "x": values,
                      "histological_type": histology if histology is not None else np.ones(n)})
    c = pd.DataFrame({"Patient": pats, "Fam": labels})
    return f, c


def test_median_ties_go_low():
    values = [0.0] * 8 + [1.0] * 4
    labels = [1, 2] * 6
    f, c = _one_feature(values, labels)
    t = association_tests(f, c, families=["Fam"], groups={"all": None})
    fh = t[t.test == "freeman_halton"].iloc[0]
    counts = json.loads(fh.counts)
    assert counts["rows"] == ["high", "low"]
    assert np.asarray(counts["counts"]).sum(axis=1).tolist() == [4, 8]  # value > median is high
    assert fh.split_median == 0.0


def test_missing_labels_and_values_dropped():
    rng = np.random.default_rng(0)
    values = rng.normal(size=30)
    values[:3] = np.nan
    labels = np.tile([1.0, 2.0, 3.0], 10)
    labels[3:7] = np.nan
    f, c = _one_feature(values, labels)
    t = association_tests(f, c, families=["Fam"], groups={"all": None})
    assert (t.n == 23).all()


def test_skip_reasons():
    n = 20
    # constant feature
    f, c = _one_feature(np.ones(n), [1, 2] * 10)
    t = association_tests(f, c, families=["Fam"], groups={"all": None})
    assert t.p.isna().all() and t.reason.notna().all()
    assert set(t.test) == {"freeman_halton", "kruskal_wallis", "fisher_ovr"}
    # a single level
    f, c = _one_feature(np.arange(n, dtype=float), [1] * n)
    t = association_tests(f, c, families=["Fam"], groups={"all": None})
    assert t.reason.str.contains("single").all()
    # too few patients in a group
    hist = np.array([1] * 15 + [2] * 5, dtype=float)
    f, c = _one_feature(np.arange(n, dtype=float), [1, 2] * 10, histology=hist)
    t = association_tests(f, c, families=["Fam"], groups={"a": 1, "b": 2})
    assert t[t.group == "a"].reason.isna().all()
    assert t[t.group == "b"].reason.str.contains("too few").all()
    assert (t[t.group == "b"].n == 5).all()


def test_group_all_includes_missing_histology():
    rng = np.random.default_rng(1)
    hist = np.array([1.0, 2.0, np.nan] * 10)
    f, c = _one_feature(rng.normal(size=30), [1, 2, 3] * 10, histology=hist)
    t = association_tests(f, c, families=["Fam"], groups={"all": None, "astro": 1})
    assert (t[t.group == "all"].n == 30).all()
    assert (t[t.group == "astro"].n == 10).all()


# ------------------------------------------------------------ cohort join
def test_merge_cohort_join_rules():
    f = pd.DataFrame({"patient": ["A", "B", "C"], "x": [1.0, 2.0, 3.0]})
    c = pd.DataFrame({"Patient": ["A", "B", "D"], "Fam": [1, 2, 1], "histological_type": [1, 3, 2]})
    cohort, cols = merge_cohort(f, c, families=["Fam"])
    assert cols == ["x"]
    assert cohort.patient.tolist() == ["A", "B", "C"]  # left join on features
    assert cohort.histological_type.tolist()[:2] == [1, 3]  # taken from clinical
    assert np.isnan(cohort.Fam.iloc[2])
    with pytest.raises(ValueError, match="duplicate"):
        merge_cohort(pd.concat([f, f.iloc[:1]]), c, families=["Fam"])
    with pytest.raises(KeyError):
        merge_cohort(f, c, families=["Missing"])


# ------------------------------------------------------------ fast helpers
def test_fast_helpers_match_scipy():
    rng = np.random.default_rng(9)
    for _ in range(20):
        k = int(rng.integers(2, 6))
        x = np.round(rng.normal(size=40), 1)  # ties
        codes = np.concatenate([np.arange(k), rng.integers(0, k, size=40 - k)])
        h, p = kruskal_wallis(x, codes, k)
        ref = kruskal(*[x[codes == j] for j in range(k)])
        assert h == pytest.approx(ref.statistic, rel=1e-10)
        assert p == pytest.approx(ref.pvalue, rel=1e-8)
        table = rng.integers(1, 15, size=(2, k))
        assert cramers_v(table) == pytest.approx(association(table, method="cramer"), rel=1e-10)
    from scipy.stats import rankdata

    x = np.round(rng.normal(size=50), 1)
    np.testing.assert_allclose(midranks(x)[0], rankdata(x))
