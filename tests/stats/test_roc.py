"""One-vs-rest ROC AUC with stratified bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from gliomics.stats import auc_bootstrap, roc_auc_table, simulate_cohort, top_auc
from gliomics.stats.roc import ROC_COLUMNS, _auc_with_bootstrap


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort(110, 13, seed=1)


@pytest.fixture(scope="module")
def roc(cohort):
    return roc_auc_table(*cohort, n_boot=400, seed=3)


def test_auc_matches_sklearn_with_ties_and_direction():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(8, 60))
        x = np.round(rng.normal(size=n), 1)
        y = rng.random(n) < 0.4
        if y.all() or not y.any():
            continue
        ref = roc_auc_score(y, x)
        r = auc_bootstrap(x, y, n_boot=0)
        assert r["auc_raw"] == pytest.approx(ref, abs=1e-12)
        assert r["auc"] == pytest.approx(max(ref, 1 - ref), abs=1e-12)
        assert r["direction"] == ("lower" if ref < 0.5 else "higher")


def test_vectorised_bootstrap_equals_explicit_resampling():
    """Replicate b from the multiplicity matrix == sklearn on the resample."""
    rng = np.random.default_rng(1)
    x = np.round(rng.normal(size=45), 1)
    y = np.arange(45) < 17
    pos, neg = x[y], x[~y]
    B = 25
    ip = rng.integers(0, pos.size, size=(B, pos.size))
    ineg = rng.integers(0, neg.size, size=(B, neg.size))
    wp = np.stack([np.bincount(r, minlength=pos.size) for r in ip]).astype(float)
    wn = np.stack([np.bincount(r, minlength=neg.size) for r in ineg]).astype(float)
    _, boot, _ = _auc_with_bootstrap(pos[None], neg[None], wp, wn)
    for b in range(B):
        xs = np.concatenate([pos[ip[b]], neg[ineg[b]]])
        ys = np.r_[np.ones(pos.size), np.zeros(neg.size)]
        assert boot[0, b] == pytest.approx(roc_auc_score(ys, xs), abs=1e-12)


@pytest.mark.parametrize("ci_method, low, high", [("bca", 0.90, 0.99), ("percentile", 0.87, 0.98)])
def test_bootstrap_ci_covers_known_auc(ci_method, low, high):
    """Binormal scores with known AUC = Phi(delta / sqrt(2)) = 0.75;
    the 95% interval should cover it in about 95% of 300 samples (the
    percentile interval is known to undercover a little at this size)."""
    true_auc = 0.75
    delta = np.sqrt(2) * norm.ppf(true_auc)
    rng = np.random.default_rng(2024)
    hits = 0
    reps = 300
    for _ in range(reps):
        x = np.r_[rng.normal(delta, 1, 40), rng.normal(0, 1, 60)]
        y = np.r_[np.ones(40, bool), np.zeros(60, bool)]
        r = auc_bootstrap(x, y, n_boot=500, seed=rng, ci_method=ci_method)
        hits += r["ci_low"] <= true_auc <= r["ci_high"]
    coverage = hits / reps
    assert low <= coverage <= high, coverage


def test_jackknife_values_are_leave_one_out_aucs():
    rng = np.random.default_rng(4)
    x = np.round(rng.normal(size=20), 1)
    y = np.arange(20) < 8
    _, _, jack = _auc_with_bootstrap(x[y][None], x[~y][None], None, None)
    order = np.r_[np.flatnonzero(y), np.flatnonzero(~y)]
    for k, i in enumerate(order):
        keep = np.arange(20) != i
        assert jack[0, k] == pytest.approx(roc_auc_score(y[keep], x[keep]), abs=1e-12)


@pytest.mark.parametrize("ci_method", ["bca", "percentile"])
def test_direction_flip_is_symmetric(ci_method):
    rng = np.random.default_rng(5)
    x = np.r_[rng.normal(0.8, 1, 25), rng.normal(0, 1, 35)]
    y = np.r_[np.ones(25, bool), np.zeros(35, bool)]
    up = auc_bootstrap(x, y, n_boot=300, seed=9, ci_method=ci_method)
    down = auc_bootstrap(-x, y, n_boot=300, seed=9, ci_method=ci_method)
    assert (up["direction"], down["direction"]) == ("higher", "lower")
    for key in ("auc", "ci_low", "ci_high", "boot_se"):
        assert up[key] == pytest.approx(down[key], abs=1e-12)
    assert down["auc_raw"] == pytest.approx(1 - up["auc_raw"], abs=1e-12)


def test_table_shape_and_invariants(roc, cohort):
    features, _ = cohort
    assert list(roc.columns) == list(ROC_COLUMNS)
    done = roc.reason.isna()
    d = roc[done]
    for col in ("auc", "ci_low", "ci_high", "auc_raw"):
        assert ((d[col] >= 0) & (d[col] <= 1)).all()
    assert (d.auc >= 0.5).all()
    assert ((d.ci_low <= d.auc) & (d.auc <= d.ci_high)).all()
    assert (d.n_pos + d.n_neg == d.n).all()
    assert roc.loc[~done, ["auc", "ci_low", "ci_high"]].isna().all().all()
    assert not roc.duplicated(["group", "family", "level", "feature"]).any()
    # every feature for every (group, family, level)
    per = roc.groupby(["group", "family", "level"], dropna=False).feature.nunique()
    assert (per == features.shape[1] - 2).all()


def test_signal_pair_found_with_tight_interval(roc):
    r = roc.query(
        "group == 'all' and family == 'RNASeqCluster' and level == 2 and feature == 'signal'"
    ).iloc[0]
    assert r.auc > 0.9 and r.ci_low > 0.8 and r.direction == "higher"
    top = top_auc(roc, 0.7)
    assert ((top.group == "all") & (top.feature == "signal") & (top.level == 2)).any()
    assert (top.auc > 0.7).all()
    strict = top_auc(roc, 0.7, min_ci_low=0.5)
    assert (strict.ci_low > 0.5).all() and len(strict) <= len(top)


def test_noise_aucs_stay_moderate(roc):
    d = roc[roc.reason.isna() & roc.feature.str.startswith("noise") & (roc.group == "all")]
    # with n = 110 noise rarely exceeds 0.7; the median sits near 0.5
    assert d.auc.median() < 0.6
    assert (d.auc > 0.8).sum() == 0


def test_reproducible_and_seed_dependent(cohort):
    features, clinical = cohort
    kw = dict(families=["CNCluster"], groups={"all": None}, n_boot=200)
    a = roc_auc_table(features, clinical, seed=5, **kw)
    b = roc_auc_table(features, clinical, seed=5, **kw)
    c = roc_auc_table(features, clinical, seed=6, **kw)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.ci_low, c.ci_low)
    np.testing.assert_allclose(a.auc, c.auc)
    # adding a feature leaves the other features' intervals unchanged
    d = roc_auc_table(features.drop(columns=["noise_05"]), clinical, seed=5, **kw)
    m = a.merge(d, on=["group", "family", "level", "feature"], suffixes=("", "_d"))
    np.testing.assert_allclose(m.ci_low, m.ci_low_d)


def test_small_classes_get_reason():
    n = 30
    pats = [f"P{i}" for i in range(n)]
    f = pd.DataFrame({"patient": pats, "x": np.arange(n, dtype=float)})
    lab = np.array([1] * 27 + [2] * 3, dtype=float)
    c = pd.DataFrame({"Patient": pats, "Fam": lab, "histological_type": 1})
    t = roc_auc_table(f, c, families=["Fam"], groups={"all": None}, n_boot=50, min_class_size=5)
    assert t.reason.notna().all() and t.auc.isna().all()
    assert set(t.n_pos) == {27, 3}
    t = roc_auc_table(f, c, families=["Fam"], groups={"all": None}, n_boot=50, min_class_size=3)
    assert t.reason.isna().all()
    lvl2 = t[t.level == 2].iloc[0]
    assert lvl2.auc == 1.0 and lvl2.ci_low == 1.0  # the top 3 values are the positives


def test_no_labelled_patients_in_group():
    pats = ["A", "B", "C", "D"]
    f = pd.DataFrame({"patient": pats, "x": [1.0, 2, 3, 4], "histological_type": [1, 1, 2, 2]})
    c = pd.DataFrame({"Patient": pats, "Fam": [1, 2, np.nan, np.nan]})
    t = roc_auc_table(f, c, families=["Fam"], groups={"g2": 2}, n_boot=10)
    assert len(t) == 1 and "no labelled" in t.reason.iloc[0]


def test_auc_bootstrap_validates_input():
    with pytest.raises(ValueError):
        auc_bootstrap([1.0, 2.0], [True, True])
    with pytest.raises(ValueError):
        auc_bootstrap([1.0, np.nan], [True, False])
