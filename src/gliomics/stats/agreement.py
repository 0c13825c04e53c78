"""Agreement of a feature measured twice (truth vs predicted masks): intraclass correlation.

:func:`feature_agreement` is the one table of it, used by the association stage (``agreement.csv``) and by
the study report.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import f as f_dist


def icc_2_1(ratings, confidence_level: float = 0.95) -> dict:
    """ICC(2,1) of Shrout & Fleiss (1979): two-way random effects, absolute
    agreement, single measure.

    ``ratings`` is n targets x k judges (here: patients x {truth, predicted}).
    With the two-way ANOVA mean squares BMS (targets), JMS (judges) and EMS
    (residual),

    .. math::  ICC(2,1) = \\frac{BMS - EMS}{BMS + (k-1) EMS + k (JMS - EMS) / n}

    and the confidence interval of Shrout & Fleiss (their eq. for ICC(2,1),
    Satterthwaite degrees of freedom ``v``; = McGraw & Wong 1996, ICC(A,1)).
    ``F = BMS/EMS`` tests ICC = 0 on (n-1, (n-1)(k-1)) df.

    Shrout, P. E. & Fleiss, J. L. (1979). Intraclass correlations: uses in
    assessing rater reliability. *Psychological Bulletin* 86, 420-428.
    """
    y = np.asarray(ratings, dtype=float)
    if y.ndim != 2 or y.shape[0] < 2 or y.shape[1] < 2:
        raise ValueError("ratings must be n >= 2 targets x k >= 2 judges")
    if not np.isfinite(y).all():
        raise ValueError("ratings must be finite")
    n, k = y.shape
    grand = y.mean()
    ss_rows = k * ((y.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((y.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((y - grand) ** 2).sum() - ss_rows - ss_cols
    df_err = (n - 1) * (k - 1)
    bms, jms, ems = ss_rows / (n - 1), ss_cols / (k - 1), max(ss_err, 0.0) / df_err
    wms = (ss_cols + max(ss_err, 0.0)) / (n * (k - 1))
    out = dict(n=n, k=k, bms=bms, jms=jms, ems=ems, wms=wms, icc=math.nan, ci_low=math.nan,
               ci_high=math.nan, F=math.nan, df1=n - 1, df2=df_err, p=math.nan)
    denom = bms + (k - 1) * ems + k * (jms - ems) / n
    if denom <= 0:
        return out
    icc = (bms - ems) / denom
    out["icc"] = icc
    if ems <= 0:
        return out
    fval = bms / ems
    out["F"] = fval
    out["p"] = float(f_dist.sf(fval, n - 1, df_err))
    alpha = 1 - confidence_level
    fj = jms / ems
    a = k * icc * fj + n * (1 + (k - 1) * icc) - k * icc
    v_num = df_err * a**2
    v_den = (n - 1) * k**2 * icc**2 * fj**2 + (n * (1 + (k - 1) * icc) - k * icc) ** 2
    if v_den > 0 and v_num > 0:
        v = v_num / v_den
        f_up = f_dist.ppf(1 - alpha / 2, n - 1, v)
        f_lo = f_dist.ppf(1 - alpha / 2, v, n - 1)
        common = k * jms + (k * n - k - n) * ems
        low = n * (bms - f_up * ems) / (f_up * common + n * bms)
        high = n * (f_lo * bms - ems) / (common + n * f_lo * bms)
        out["ci_low"], out["ci_high"] = float(min(low, icc)), float(max(high, icc))
    return out


def icc_3_1(ratings) -> float:
    """ICC(3,1) of Shrout & Fleiss (1979): two-way mixed, consistency, single measure.

    .. math::  ICC(3,1) = \\frac{BMS - EMS}{BMS + (k-1) EMS}

    with the two-way ANOVA mean squares of :func:`~gliomics.stats.agreement.icc_2_1`
    (BMS: between targets, EMS: residual). Shrout & Fleiss' Table 2 data
    give 0.71. NaN when the denominator vanishes (no variance at all).
    """
    res = icc_2_1(ratings)
    k = res["k"]
    denom = res["bms"] + (k - 1) * res["ems"]
    if denom <= 0:
        return math.nan
    return float((res["bms"] - res["ems"]) / denom)


#: Columns of :func:`feature_agreement`.
AGREEMENT_COLUMNS = ["feature", "n_pairs", "n_truth_only", "n_predicted_only", "icc", "icc_ci_low", "icc_ci_high",
                     "icc_F", "icc_p", "icc_3_1", "mean_truth", "mean_predicted", "mean_difference", "reason"]


def feature_agreement(truth, predicted, columns, *, min_pairs: int = 3):
    """Per feature of two features tables (``patient`` + ``columns``), matched on ``patient``: the patients with
    both values (``n_pairs``) and with one only, ICC(2,1) with its 95% CI, F and p (:func:`icc_2_1`),
    ICC(3,1) (:func:`icc_3_1`), the means and the mean difference (predicted - truth). A feature with fewer than
    ``min_pairs`` complete pairs, or without variance, gets NaN and a ``reason``.
    """
    both = truth[["patient", *columns]].merge(predicted[["patient", *columns]], on="patient", how="outer",
                                              suffixes=("_truth", "_predicted"))
    rows = []
    for column in columns:
        a = both[f"{column}_truth"].to_numpy(dtype=float)
        b = both[f"{column}_predicted"].to_numpy(dtype=float)
        ok = np.isfinite(a) & np.isfinite(b)
        row = {"feature": column, "n_pairs": int(ok.sum()), "n_truth_only": int((np.isfinite(a) & ~np.isfinite(b)).sum()),
               "n_predicted_only": int((~np.isfinite(a) & np.isfinite(b)).sum()), "reason": None}
        if ok.sum() < min_pairs:
            row["reason"] = f"too few patients with both values (n={int(ok.sum())} < {min_pairs})"
        else:
            pair = np.column_stack([a[ok], b[ok]])
            res = icc_2_1(pair)
            row.update(icc=res["icc"], icc_ci_low=res["ci_low"], icc_ci_high=res["ci_high"], icc_F=res["F"],
                       icc_p=res["p"], icc_3_1=icc_3_1(pair), mean_truth=float(a[ok].mean()),
                       mean_predicted=float(b[ok].mean()), mean_difference=float((b[ok] - a[ok]).mean()))
            if not np.isfinite(res["icc"]):
                row["reason"] = "no variance across patients (ICC undefined)"
        rows.append(row)
    return pd.DataFrame.from_records(rows).reindex(columns=AGREEMENT_COLUMNS)
