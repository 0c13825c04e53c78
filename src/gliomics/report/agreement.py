"""Truth- vs predicted-mask features: intraclass correlation and surviving associations.

The association stage writes ``agreement.csv`` (ICC(2,1) per feature) and
``agreement_tests.csv`` only when a predicted-mask features table lies
beside the truth table at the time it runs, so those files may be missing
or older than the predicted table. The report therefore computes the
numbers here from the current features tables and the ``tests.csv`` of
the truth and predicted association runs, reusing
:func:`gliomics.stages.associate.icc_2_1` (Shrout & Fleiss 1979, tested
against their worked example) and adding ICC(3,1).

ICC(2,1) -- two-way random, absolute agreement: a systematic offset between
truth and prediction (e.g. predicted tumours always smaller) lowers it.
ICC(3,1) -- two-way mixed, consistency: it ignores such an offset and asks
only whether the patients are *ranked* alike, which is what a median-split
association test depends on. Reporting both tells the reader which of the
two kinds of disagreement there is.
"""

from __future__ import annotations

import math

import numpy as np

ALPHA = 0.05


def icc_3_1(ratings) -> float:
    """ICC(3,1) of Shrout & Fleiss (1979): two-way mixed, consistency, single measure.

    .. math::  ICC(3,1) = \\frac{BMS - EMS}{BMS + (k-1) EMS}

    with the two-way ANOVA mean squares of :func:`~gliomics.stages.associate.icc_2_1`
    (BMS: between targets, EMS: residual). Shrout & Fleiss' Table 2 data
    give 0.71. NaN when the denominator vanishes (no variance at all).
    """
    from gliomics.stats.agreement import icc_2_1

    res = icc_2_1(ratings)
    k = res["k"]
    denom = res["bms"] + (k - 1) * res["ems"]
    if denom <= 0:
        return math.nan
    return float((res["bms"] - res["ems"]) / denom)


def agreement_table(truth, predicted, columns, *, min_pairs: int = 3):
    """Per feature: patients with both values, ICC(2,1) with its 95% CI, ICC(3,1), mean difference.

    ``truth`` and ``predicted`` are features tables (``patient`` + feature
    columns); patients are matched on ``patient``. A feature with fewer than
    ``min_pairs`` complete pairs, or without variance, gets NaN and a reason.
    """
    import pandas as pd

    from gliomics.stats.agreement import icc_2_1

    both = truth[["patient", *columns]].merge(predicted[["patient", *columns]], on="patient",
                                              suffixes=("_truth", "_predicted"))
    rows = []
    for c in columns:
        a = both[f"{c}_truth"].to_numpy(dtype=float)
        b = both[f"{c}_predicted"].to_numpy(dtype=float)
        ok = np.isfinite(a) & np.isfinite(b)
        row = {"feature": c, "n_pairs": int(ok.sum()), "icc": math.nan, "icc_ci_low": math.nan,
               "icc_ci_high": math.nan, "icc_3_1": math.nan, "mean_difference": math.nan, "reason": None}
        if ok.sum() < min_pairs:
            row["reason"] = f"too few patients with both values (n={int(ok.sum())} < {min_pairs})"
        else:
            pair = np.column_stack([a[ok], b[ok]])
            res = icc_2_1(pair)
            row.update(icc=res["icc"], icc_ci_low=res["ci_low"], icc_ci_high=res["ci_high"],
                       icc_3_1=icc_3_1(pair), mean_difference=float((b[ok] - a[ok]).mean()))
            if not np.isfinite(res["icc"]):
                row["reason"] = "no variance across patients (ICC undefined)"
        rows.append(row)
    return pd.DataFrame.from_records(rows)


def surviving_associations(truth_tests, predicted_tests, *, test: str = "freeman_halton"):
    """The associations significant after Bonferroni on truth masks, and their p on predicted masks.

    Both inputs are ``tests.csv`` tables of ``gliomics associate``. Returns
    ``group, family, feature, p_bonferroni_truth, p_bonferroni_predicted,
    survives`` (significant on predicted masks too).
    """
    keys = ["group", "family", "feature"]
    t = truth_tests[(truth_tests["test"] == test) & (truth_tests["p_bonferroni"] < ALPHA)]
    p = predicted_tests[predicted_tests["test"] == test]
    fate = t[keys + ["p_bonferroni"]].merge(p[keys + ["p_bonferroni"]], on=keys, how="left",
                                            suffixes=("_truth", "_predicted"))
    fate["survives"] = fate["p_bonferroni_predicted"] < ALPHA
    return fate.reset_index(drop=True)
