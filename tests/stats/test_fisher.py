"""Exact tests: R's documented values, brute force, SciPy on 2 x 2."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import fisher_exact
from scipy.stats.contingency import odds_ratio

from gliomics.stats.fisher import (
    fisher_2x2,
    fisher_2x2_many,
    freeman_halton,
    table_probability,
)


# ---------------------------------------------------------------- brute force
def _tables_with_margins(rows, cols):
    """Every table with the given margins (recursive, tiny tables only)."""
    rows, cols = list(rows), list(cols)
    if len(rows) == 1:
        yield [cols]
        return
    r0 = rows[0]
    for first in itertools.product(*[range(min(c, r0) + 1) for c in cols]):
        if sum(first) != r0:
            continue
        rest = [c - f for c, f in zip(cols, first)]
        for tail in _tables_with_margins(rows[1:], rest):
            yield [list(first), *tail]


def _prob(table):
    t = np.asarray(table)
    n = int(t.sum())
    num = math.prod(math.factorial(int(v)) for v in (*t.sum(1), *t.sum(0)))
    den = math.factorial(n) * math.prod(math.factorial(int(v)) for v in t.ravel())
    return num / den


def brute_force_p(table):
    t = np.asarray(table)
    p_obs = _prob(t)
    probs = [_prob(y) for y in _tables_with_margins(t.sum(1), t.sum(0))]
    assert math.isclose(sum(probs), 1.0, rel_tol=1e-9)
    return sum(p for p in probs if p <= p_obs * (1 + 1e-7))


# ------------------------------------------------------------ R references
JOB = np.array([1, 2, 1, 0, 3, 3, 6, 1, 10, 10, 14, 9, 6, 7, 12, 11]).reshape(4, 4).T  # R fills by column
TEA = np.array([3, 1, 1, 3]).reshape(2, 2).T
CONVICTIONS = np.array([2, 10, 15, 3]).reshape(2, 2).T


def test_r_job_satisfaction_4x4():
    # R: fisher.test(Job)  # 0.7827   (Agresti 2002, p. 57)
    assert freeman_halton(JOB) == pytest.approx(0.7827, abs=5e-5)


def test_r_tea_tasting_greater():
    # R: fisher.test(TeaTasting, alternative = "greater")
    #    p-value = 0.2429; odds ratio 6.408309; 95% CI 0.3135693 Inf
    r = fisher_2x2(TEA, alternative="greater")
    assert r.p_value == pytest.approx(0.2429, abs=5e-5)
    assert r.odds_ratio == pytest.approx(6.408309, rel=1e-4)
    assert r.ci_low == pytest.approx(0.3135693, rel=1e-4)
    assert r.ci_high == np.inf


def test_r_convictions_less():
    # R: fisher.test(Convictions, alternative = "less")
    #    p-value = 0.0004652; odds ratio 0.04693661; 95% CI 0.0000000 0.2849601
    r = fisher_2x2(CONVICTIONS, alternative="less")
    assert r.p_value == pytest.approx(0.0004652, rel=1e-4)
    assert r.odds_ratio == pytest.approx(0.04693661, rel=1e-4)
    assert r.ci_low == 0.0
    assert r.ci_high == pytest.approx(0.2849601, rel=1e-4)


def test_orientation_and_permutation_invariance():
    t = np.array([[3, 1, 4, 2], [2, 5, 1, 1], [4, 1, 2, 5]])
    p = freeman_halton(t)
    assert freeman_halton(t.T) == pytest.approx(p, rel=1e-12)
    assert freeman_halton(t[::-1, [2, 0, 3, 1]]) == pytest.approx(p, rel=1e-12)
    assert freeman_halton(t) == pytest.approx(brute_force_p(t), rel=1e-9)


# ------------------------------------------------------------ brute force
@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_2xk_matches_brute_force(k):
    rng = np.random.default_rng(100 + k)
    for _ in range(15):
        t = rng.integers(0, 7 if k < 5 else 5, size=(2, k))
        if rng.random() < 0.3:  # some strongly associated tables (small p)
            t[0, 0] += 8
            t[1, -1] += 8
        assert freeman_halton(t) == pytest.approx(brute_force_p(t), rel=1e-9, abs=1e-15)


def test_3x3_and_3x4_match_brute_force():
    rng = np.random.default_rng(7)
    for shape in [(3, 3), (3, 4), (4, 3)]:
        for _ in range(4):
            t = rng.integers(0, 4, size=shape)
            assert freeman_halton(t) == pytest.approx(brute_force_p(t), rel=1e-9, abs=1e-15)


def test_tied_probabilities_counted_on_both_sides():
    # symmetric margins: the mirror table has exactly the observed probability
    t = np.array([[5, 1, 3], [1, 5, 3]])
    assert freeman_halton(t) == pytest.approx(brute_force_p(t), rel=1e-12)


def test_tiny_p_value_relative_accuracy_at_n110():
    """n = 110, 5 clusters: numpy brute force over every first row."""
    t = np.array([[19, 14, 10, 3, 9], [2, 8, 12, 18, 15]])
    cols, a = t.sum(0), int(t[0].sum())
    grids = np.meshgrid(*[np.arange(c + 1) for c in cols[:-1]], indexing="ij")
    first = np.stack([g.ravel() for g in grids], axis=1)
    last = a - first.sum(1)
    ok = (last >= 0) & (last <= cols[-1])
    first = np.column_stack([first[ok], last[ok]])
    from scipy.special import gammaln

    lc = gammaln(cols + 1) - gammaln(first + 1) - gammaln(cols - first + 1)
    logw = lc.sum(1)
    lnorm = gammaln(cols.sum() + 1) - gammaln(a + 1) - gammaln(cols.sum() - a + 1)
    w_obs = (gammaln(cols + 1) - gammaln(t[0] + 1) - gammaln(cols - t[0] + 1)).sum()
    p_ref = np.exp(logw[logw <= w_obs + 1e-7] - lnorm).sum()
    assert np.exp(np.logaddexp.reduce(logw - lnorm)) == pytest.approx(1.0, rel=1e-9)
    p = freeman_halton(t)
    assert p < 1e-5
    assert p == pytest.approx(p_ref, rel=1e-9)


# ------------------------------------------------------------ SciPy on 2 x 2
def test_2x2_two_sided_matches_scipy():
    rng = np.random.default_rng(3)
    tabs = rng.integers(0, 30, size=(200, 2, 2))
    many = fisher_2x2_many(tabs)
    for t, p_many in zip(tabs, many.p_value):
        ref = fisher_exact(t).pvalue
        assert freeman_halton(t) == pytest.approx(ref, rel=1e-9, abs=1e-300)
        assert p_many == pytest.approx(ref, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("alternative", ["less", "greater"])
def test_2x2_one_sided_matches_scipy(alternative):
    rng = np.random.default_rng(4)
    tabs = rng.integers(0, 25, size=(100, 2, 2))
    many = fisher_2x2_many(tabs, alternative=alternative)
    for t, p in zip(tabs, many.p_value):
        assert p == pytest.approx(fisher_exact(t, alternative=alternative).pvalue, rel=1e-9)


@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
def test_conditional_odds_ratio_and_ci_match_scipy(alternative):
    rng = np.random.default_rng(5)
    tabs = rng.integers(0, 20, size=(12, 2, 2))
    tabs[0] = [[0, 5], [7, 3]]  # x at the bottom of its support
    tabs[1] = [[6, 0], [2, 9]]  # x at the top
    many = fisher_2x2_many(tabs, alternative=alternative)
    for i, t in enumerate(tabs):
        ref = odds_ratio(t, kind="conditional")
        ci = ref.confidence_interval(0.95, alternative=alternative)
        for got, want in [(many.odds_ratio[i], ref.statistic), (many.ci_low[i], ci.low),
                          (many.ci_high[i], ci.high)]:
            if np.isfinite(want) and want > 0:
                assert got == pytest.approx(want, rel=1e-5)
            elif np.isnan(want):  # SciPy: NaN when a margin is zero
                assert np.isnan(got)
            else:
                assert got == want


def test_ci_brackets_estimate_and_levels_nest():
    rng = np.random.default_rng(6)
    tabs = rng.integers(1, 30, size=(50, 2, 2))
    r95 = fisher_2x2_many(tabs, confidence_level=0.95)
    r99 = fisher_2x2_many(tabs, confidence_level=0.99)
    assert np.all(r95.ci_low <= r95.odds_ratio) and np.all(r95.odds_ratio <= r95.ci_high)
    assert np.all(r99.ci_low <= r95.ci_low) and np.all(r95.ci_high <= r99.ci_high)


# ------------------------------------------------------------ edge cases
def test_degenerate_tables():
    assert freeman_halton([[3, 4, 5]]) == 1.0
    assert freeman_halton([[3, 0], [4, 0]]) == 1.0  # a single non-empty column
    r = fisher_2x2([[0, 0], [3, 4]])
    assert r.p_value == 1.0 and np.isnan(r.odds_ratio)
    assert (r.ci_low, r.ci_high) == (0.0, np.inf)


def test_empty_rows_and_columns_ignored():
    t = np.array([[3, 0, 5, 1], [4, 0, 0, 6]])
    assert freeman_halton(t) == pytest.approx(freeman_halton(t[:, [0, 2, 3]]), rel=1e-12)


@pytest.mark.parametrize("bad", [[[1, -1], [2, 3]], [[1.5, 1], [2, 3]], [1, 2, 3], [[np.nan, 1], [1, 1]]])
def test_invalid_tables_rejected(bad):
    with pytest.raises(ValueError):
        freeman_halton(bad)


def test_too_large_table_raises_clear_error():
    t = np.full((6, 6), 30)
    with pytest.raises(ValueError, match="too large"):
        freeman_halton(t, max_states=10_000)


def test_table_probability_matches_brute_force():
    t = np.array([[3, 1, 4], [1, 5, 2]])
    assert table_probability(t) == pytest.approx(_prob(t), rel=1e-12)


def test_p_values_in_unit_interval():
    rng = np.random.default_rng(8)
    for _ in range(100):
        k = int(rng.integers(2, 6))
        p = freeman_halton(rng.integers(0, 40, size=(2, k)))
        assert 0.0 <= p <= 1.0
