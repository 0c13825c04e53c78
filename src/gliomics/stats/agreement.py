"""Agreement of a feature measured twice (truth vs predicted masks): intraclass correlation."""

from __future__ import annotations

import math


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
    import numpy as np
    from scipy.stats import f as f_dist

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
