"""Associations between radiomic features and molecular subtypes.

The design follows Buda et al. (2019) and the Kota (2024) thesis (Tables 10-12), and
adds what those tables lack (effect sizes, the counts, a continuous test,
a false-discovery-rate column and an explicit family of hypotheses).

For every group (each histological type and all patients pooled), every
cluster family (RNASeqCluster, ..., COCCluster and any extra outcome column)
and every feature:

1. **Median split.**  The feature is dichotomised at its median within the
   group (over the group's patients with a non-missing value, before any
   label is looked at, so one split per feature and group serves all
   families): ``high`` is ``value > median``, ``low`` is ``value <= median``.
   Ties at the median therefore go to ``low`` (the convention adopted here
   for Buda et al.'s high/low design; their code was not available to
   check).  With many tied values the two halves can be unequal -- the
   ``counts`` column shows it.
2. **Patients.**  Patients with a missing label for the family or a missing
   feature value are dropped for that test; ``n`` is what remains.
3. **Freeman-Halton exact test** (``test == 'freeman_halton'``) of the
   2 x k table high/low x cluster levels present (k >= 2), with Cramér's V
   as the effect size and the table probability as the statistic.
4. **Kruskal-Wallis** (``'kruskal_wallis'``) on the continuous feature
   across the levels (H, chi-square p, effect size
   :math:`\\varepsilon^2 = H/(n-1)`), so that nothing rests on the median
   split alone.
5. **One cluster vs the rest** (``'fisher_ovr'``, one row per level, Buda et
   al.'s design): 2 x 2 table high/low x (level, rest), two-sided Fisher p,
   conditional-MLE odds ratio of being *high* in the level relative to the
   rest, with its exact 95% CI.  With k = 2 both rows repeat the
   Freeman-Halton test (same p), which Bonferroni then counts twice.
6. **Multiple testing.**  Bonferroni (as in the Kota (2024) thesis) and Benjamini-
   Hochberg FDR side by side, each over the *correction family* chosen with
   ``correction_family`` (see :data:`CORRECTION_FAMILIES`); skipped tests
   are not counted.  ``m_tests`` gives the size of the family.

A test that cannot be run keeps its row with ``p = NaN`` and a ``reason``
(too few patients, a single level, a constant feature, no patient on one
side of the split), so every (group, family, feature, test) is accounted for.

References
----------
Buda, M., Saha, A. & Mazurowski, M. A. (2019). Association of genomic
subtypes of lower-grade gliomas with shape features automatically extracted
by a deep learning algorithm. *Computers in Biology and Medicine* 109,
218-225.

Freeman, G. H. & Halton, J. H. (1951). *Biometrika* 38, 141-149.

Benjamini, Y. & Hochberg, Y. (1995). Controlling the false discovery rate.
*JRSS B* 57, 289-300.

Tomczak, M. & Tomczak, E. (2014). The need to report effect size estimates
revisited. *Trends in Sport Sciences* 21, 19-25 (epsilon-squared for
Kruskal-Wallis).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from . import _fast
from .cohort import (
    DEFAULT_FAMILIES,
    DEFAULT_GROUPS,
    group_mask,
    label_levels,
    level_value,
    merge_cohort,
)
from .fisher import fisher_2x2_many, freeman_halton, table_probability

__all__ = [
    "COLUMNS",
    "CORRECTION_FAMILIES",
    "TESTS",
    "association_tests",
    "correct_pvalues",
    "significance_matrix",
]

#: Test names in the ``test`` column.
TESTS = ("freeman_halton", "kruskal_wallis", "fisher_ovr")

#: ``correction_family`` -> the columns whose combinations form one family
#: of hypotheses for Bonferroni and BH-FDR (always within one kind of test).
#:
#: * ``"group"`` (default, recommended): all tests of one kind within one
#:   group -- every feature x every family (x every level for one-vs-rest).
#:   One thesis table (Tables 10-12) is one such family: a reader scans the
#:   whole features x families table for significant cells, so the error
#:   rate has to be controlled over the whole table.
#: * ``"group_family"``: one group x one cluster family, across the features
#:   (one column of a thesis table); more lenient, it leaves the 7 columns
#:   uncorrected against each other.
#: * ``"all"``: all groups together (strictest; note the pooled group
#:   re-uses the patients of the three histological groups).
CORRECTION_FAMILIES: dict[str, tuple[str, ...]] = {
    "group": ("group", "test"),
    "group_family": ("group", "family", "test"),
    "all": ("test",),
}

#: Column order of the long table.
COLUMNS = (
    "group",
    "family",
    "feature",
    "test",
    "level",
    "n",
    "n_levels",
    "counts",
    "split_median",
    "statistic",
    "statistic_name",
    "p",
    "p_bonferroni",
    "p_fdr",
    "m_tests",
    "correction_family",
    "effect_size",
    "effect_measure",
    "odds_ratio",
    "ci_low",
    "ci_high",
    "reason",
)


def _counts_json(rows: list[str], columns: list, counts: np.ndarray) -> str:
    return json.dumps(
        {
            "rows": rows,
            "columns": [level_value(c) for c in columns],
            "counts": np.asarray(counts, dtype=int).tolist(),
        },
        separators=(",", ":"),
    )


def _split_table(high: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """2 x k table: row 0 = high, row 1 = low."""
    hi = np.bincount(codes[high], minlength=k)
    lo = np.bincount(codes[~high], minlength=k)
    return np.vstack([hi, lo])


def association_tests(
    features: pd.DataFrame,
    clinical: pd.DataFrame,
    *,
    feature_columns: Sequence[str] | None = None,
    families: Sequence[str] = DEFAULT_FAMILIES,
    groups: Mapping[str, int | None] = DEFAULT_GROUPS,
    correction_family: str = "group",
    min_patients: int = 10,
    one_vs_rest: bool = True,
    kruskal: bool = True,
    confidence_level: float = 0.95,
) -> pd.DataFrame:
    """All feature x cluster-family tests, per group, in long form.

    Parameters
    ----------
    features : DataFrame
        ``patient``, optional ``histological_type``, numeric features
        (see :mod:`gliomics.stats.cohort`).
    clinical : DataFrame
        Kaggle ``data.csv`` (``Patient`` and the family columns).
    feature_columns : sequence of str, optional
        Features to test (default: every numeric column of ``features``).
    families : sequence of str
        Label columns of ``clinical`` (default: the seven TCGA cluster
        families; add e.g. ``neoplasm_histologic_grade`` or ``death01``).
    groups : mapping name -> histological code or None
        Default: astrocytoma (1), oligoastrocytoma (2), oligodendroglioma
        (3) and all (None = every patient).
    correction_family : {'group', 'group_family', 'all'}
        Family of hypotheses for Bonferroni/FDR (:data:`CORRECTION_FAMILIES`).
    min_patients : int
        Tests with fewer patients (after dropping missing values) are
        skipped with a reason.
    one_vs_rest, kruskal : bool
        Include the one-vs-rest 2 x 2 tests / the Kruskal-Wallis tests.
    confidence_level : float
        Level of the odds-ratio intervals.

    Returns
    -------
    DataFrame
        Columns :data:`COLUMNS`.  ``counts`` is a JSON object
        ``{"rows": [...], "columns": [levels], "counts": [[...], ...]}``
        whose entries sum to ``n`` (rows ``high``/``low``; for Kruskal-
        Wallis one row ``n`` of patients per level).  ``level`` is set for
        one-vs-rest rows only.  ``split_median`` is the split threshold.
        ``p``/``p_bonferroni``/``p_fdr`` are NaN exactly when ``reason`` is
        set.
    """
    if correction_family not in CORRECTION_FAMILIES:
        raise ValueError(
            f"correction_family must be one of {sorted(CORRECTION_FAMILIES)}, got {correction_family!r}"
        )
    cohort, feature_columns = merge_cohort(
        features, clinical, families=families, feature_columns=feature_columns
    )
    records: list[dict] = []
    ovr_rows: list[int] = []
    ovr_tables: list[np.ndarray] = []

    def add(**kw) -> int:
        records.append(kw)
        return len(records) - 1

    for gname, code in groups.items():
        gname = str(gname)
        sub = cohort.loc[group_mask(cohort, code)]
        x_all = sub[feature_columns].to_numpy(dtype=float)
        finite = np.isfinite(x_all)
        with np.errstate(invalid="ignore"):
            medians = np.array(
                [np.median(x_all[finite[:, j], j]) if finite[:, j].any() else np.nan
                 for j in range(x_all.shape[1])]
            )
            high_all = x_all > medians[None, :]
        for fam in families:
            valid_lab, codes_all, levels_all = label_levels(sub[fam])
            for j, feat in enumerate(feature_columns):
                ok = valid_lab & finite[:, j]
                n = int(ok.sum())
                xv = x_all[ok, j]
                present, c = np.unique(codes_all[ok], return_inverse=True)
                c = c.ravel()
                levels = [levels_all[i] for i in present]
                k = len(levels)
                high = high_all[ok, j]
                split = _split_table(high, c, k) if n else np.zeros((2, 0), int)
                base = dict(group=gname, family=fam, feature=feat, n=n, n_levels=k,
                            split_median=float(medians[j]))
                fh_counts = _counts_json(["high", "low"], levels, split)
                if n < min_patients:
                    reason = f"too few patients (n={n} < min_patients={min_patients})"
                elif k < 2:
                    reason = "single cluster level among the patients"
                else:
                    reason = None
                split_reason = reason
                if reason is None and (high.all() or not high.any()):
                    split_reason = ("no patients on one side of the median split "
                                    "(feature constant or ties)")

                # Freeman-Halton on the 2 x k table
                row = dict(base, test="freeman_halton", counts=fh_counts,
                           statistic_name="table_probability", effect_measure="cramers_v")
                if split_reason is None:
                    row.update(statistic=table_probability(split), p=freeman_halton(split),
                               effect_size=_fast.cramers_v(split))
                else:
                    row["reason"] = split_reason
                add(**row)

                # Kruskal-Wallis on the continuous values
                if kruskal:
                    kw_counts = _counts_json(["n"], levels, np.bincount(c, minlength=k)[None, :])
                    row = dict(base, test="kruskal_wallis", counts=kw_counts,
                               statistic_name="H", effect_measure="epsilon_squared")
                    kw_reason = reason
                    if kw_reason is None and np.ptp(xv) == 0:
                        kw_reason = "feature constant among the patients"
                    if kw_reason is None:
                        h, p = _fast.kruskal_wallis(xv, c, k)
                        row.update(statistic=h, p=p, effect_size=h / (n - 1))
                    else:
                        row["reason"] = kw_reason
                    add(**row)

                # one level vs the rest, 2 x 2
                if one_vs_rest:
                    if split_reason is not None:
                        add(**dict(base, test="fisher_ovr", counts=fh_counts,
                                   statistic_name="odds_ratio_conditional_mle",
                                   effect_measure="cramers_v", reason=split_reason))
                        continue
                    total = split.sum(axis=1)
                    for li, lev in enumerate(levels):
                        t2 = np.array([[split[0, li], total[0] - split[0, li]],
                                       [split[1, li], total[1] - split[1, li]]])
                        i = add(**dict(base, test="fisher_ovr", level=level_value(lev),
                                       counts=_counts_json(["high", "low"], [lev, "rest"], t2),
                                       statistic_name="odds_ratio_conditional_mle",
                                       effect_measure="cramers_v"))
                        ovr_rows.append(i)
                        ovr_tables.append(t2)

    if ovr_tables:
        tabs = np.stack(ovr_tables)
        uniq, inv = np.unique(tabs.reshape(len(tabs), 4), axis=0, return_inverse=True)
        inv = inv.ravel()
        res = fisher_2x2_many(uniq.reshape(-1, 2, 2), "two-sided", confidence_level)
        a, b, c2, d = (uniq[:, i].astype(float) for i in range(4))
        with np.errstate(invalid="ignore", divide="ignore"):
            phi = np.abs(a * d - b * c2) / np.sqrt((a + b) * (c2 + d) * (a + c2) * (b + d))
        for i, u in zip(ovr_rows, inv):
            records[i].update(
                statistic=float(res.odds_ratio[u]), p=float(res.p_value[u]),
                odds_ratio=float(res.odds_ratio[u]), ci_low=float(res.ci_low[u]),
                ci_high=float(res.ci_high[u]), effect_size=float(phi[u]),
            )

    out = pd.DataFrame.from_records(records)
    for col in COLUMNS:
        if col not in out.columns:
            out[col] = np.nan
    out["level"] = out["level"].astype(object)
    out["reason"] = out["reason"].astype(object).where(out["reason"].notna(), None)
    out = correct_pvalues(out, correction_family)
    return out[list(COLUMNS)]


def correct_pvalues(tests: pd.DataFrame, correction_family: str = "group") -> pd.DataFrame:
    """Add ``p_bonferroni``, ``p_fdr``, ``m_tests`` and ``correction_family``.

    Within each family of hypotheses (:data:`CORRECTION_FAMILIES`), over
    the rows with a finite ``p``:

    .. math::  p^{Bonf}_i = \\min(1, m\\,p_i), \\qquad
               p^{BH}_{(i)} = \\min_{j \\ge i} \\min(1, m\\,p_{(j)}/j)

    (``statsmodels.stats.multitest.multipletests`` with ``'bonferroni'``
    and ``'fdr_bh'``).  Both are >= the raw p.  Returns a copy.
    """
    keys = list(CORRECTION_FAMILIES[correction_family])
    out = tests.copy()
    out["p_bonferroni"] = np.nan
    out["p_fdr"] = np.nan
    out["m_tests"] = 0
    out["correction_family"] = correction_family
    p = out["p"].to_numpy(dtype=float)
    for _, idx in out.groupby(keys, sort=False).indices.items():
        idx = idx[np.isfinite(p[idx])]
        if idx.size == 0:
            continue
        pv = p[idx]
        out.iloc[idx, out.columns.get_loc("p_bonferroni")] = multipletests(pv, method="bonferroni")[1]
        out.iloc[idx, out.columns.get_loc("p_fdr")] = multipletests(pv, method="fdr_bh")[1]
        out.iloc[idx, out.columns.get_loc("m_tests")] = idx.size
    return out


def significance_matrix(
    tests: pd.DataFrame,
    group: str,
    *,
    test: str = "freeman_halton",
    value: str = "p_bonferroni",
) -> pd.DataFrame:
    """Features x families matrix of one column of the long table.

    The Kota (2024) thesis' Tables 10-12 shape: one group, Freeman-Halton tests,
    Bonferroni-corrected p.  Rows/columns keep the order of first
    appearance in ``tests``; skipped tests are NaN.  For
    ``test='fisher_ovr'`` the smallest value over the levels is shown.
    """
    sel = tests[(tests["group"] == group) & (tests["test"] == test)]
    if sel.empty:
        raise KeyError(f"no {test!r} rows for group {group!r}")
    feats = list(dict.fromkeys(sel["feature"]))
    fams = list(dict.fromkeys(sel["family"]))
    mat = sel.pivot_table(index="feature", columns="family", values=value, aggfunc="min", dropna=False)
    mat = mat.reindex(index=feats, columns=fams)
    mat.index.name = "feature"
    mat.columns.name = "family"
    return mat
