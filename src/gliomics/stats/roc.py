"""One-vs-rest ROC AUC of each feature for each cluster level, with
stratified bootstrap confidence intervals (the Kota (2024) thesis' Table 13, with CIs).

For every group, cluster family, level ``L`` of the family and feature, the
patients with label ``L`` are the positives and the other labelled patients
of the group the negatives; the feature value is the score.

AUC
---
.. math::  \\mathrm{AUC} = \\frac{1}{n_+ n_-} \\sum_{i \\in +} \\sum_{j \\in -}
           \\left( [x_i > x_j] + \\tfrac12 [x_i = x_j] \\right)

the Mann-Whitney form, identical to ``sklearn.metrics.roc_auc_score``
(checked in the tests).  A feature may be *lower* in the level than in the
rest: when the AUC is below 0.5 the table reports ``1 - AUC`` with
``direction = 'lower'`` (``'higher'`` otherwise, ties at 0.5 included), and
``auc_raw`` keeps the value before flipping.  Choosing the direction after
seeing the data makes the reported AUC >= 0.5 by construction: an interval
that contains 0.5 means no evidence of discrimination.

Bootstrap
---------
Stratified: each replicate resamples the positives and the negatives
separately, with replacement, keeping ``n_+`` and ``n_-`` fixed.  With the
multiplicities :math:`w^+_b, w^-_b` of replicate :math:`b`,

.. math::  \\mathrm{AUC}_b = \\frac{(w^+_b)^\\top K\\, w^-_b}{n_+ n_-}, \\qquad
           K_{ij} = [x_i > x_j] + \\tfrac12 [x_i = x_j],

so all replicates of all features of one (group, family, level) are a few
batched matrix products.

Interval (``ci_method``): ``'bca'`` (default), the bias-corrected and
accelerated percentile interval (Efron 1987): with
:math:`z_0 = \Phi^{-1}(\#\{\mathrm{AUC}_b < \mathrm{AUC}\}/B)` (ties
counted half) and the acceleration
:math:`a = \sum d_i^3 / (6 (\sum d_i^2)^{3/2})` from the jackknife
(leave-one-patient-out) AUCs, :math:`d_i = \bar\theta_{(\cdot)} -
\theta_{(i)}`, the bounds are the replicate quantiles at
:math:`\Phi(z_0 + (z_0 + z_{\alpha})/(1 - a(z_0 + z_{\alpha})))`.  Or
``'percentile'``: the plain :math:`\alpha/2, 1-\alpha/2` quantiles.  In
simulations (binormal, n+ = 13..40, n- = 19..83, AUC 0.6-0.9) the percentile
interval covered the true AUC in 91-94% of samples, BCa in 95-96%.  Both are
computed on the raw scale and flipped with the direction.  In the rare case
the interval excludes the point estimate it is widened to include it, so
that ``ci_low <= auc <= ci_high`` always holds.  Replicates of one (group,
family, level) are shared by its features (same resampled patients); the
random stream is derived from ``seed`` and the (group, family, level) names,
so adding a feature or a family does not change the other intervals.

References
----------
Hanley, J. A. & McNeil, B. J. (1982). The meaning and use of the area under
a ROC curve. *Radiology* 143, 29-36.

Efron, B. (1987). Better bootstrap confidence intervals. *JASA* 82,
171-185 (BCa).

Efron, B. & Tibshirani, R. (1993). *An Introduction to the Bootstrap*,
ch. 13-14 (percentile and BCa intervals).

Buda, M. et al. (2019), *Comput. Biol. Med.* 109, 218-225 (design).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri
from threadpoolctl import threadpool_limits

from .cohort import (
    DEFAULT_FAMILIES,
    DEFAULT_GROUPS,
    group_mask,
    label_levels,
    level_value,
    merge_cohort,
    stable_seed,
)

__all__ = ["ROC_COLUMNS", "auc_bootstrap", "roc_auc_table", "top_auc"]

ROC_COLUMNS = (
    "group",
    "family",
    "level",
    "feature",
    "n",
    "n_pos",
    "n_neg",
    "auc",
    "auc_raw",
    "direction",
    "ci_low",
    "ci_high",
    "boot_se",
    "n_boot",
    "ci_method",
    "reason",
)


def _bootstrap_weights(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """Multiplicities (n_boot, n) of n draws with replacement from n items."""
    idx = rng.integers(0, n, size=(n_boot, n))
    flat = (idx + (np.arange(n_boot) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(float)


def _kernel(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """K[..., i, j] = [pos_i > neg_j] + 0.5 [pos_i == neg_j]."""
    p = pos[..., :, None]
    q = neg[..., None, :]
    return (p > q) + 0.5 * (p == q)


def _auc_with_bootstrap(pos: np.ndarray, neg: np.ndarray, wp: np.ndarray | None, wn: np.ndarray | None):
    """pos (F, n+), neg (F, n-) -> AUC (F,), replicates (F, B) or None, and
    the jackknife (leave-one-patient-out) AUCs (F, n+ + n-)."""
    k = _kernel(pos, neg)
    npos, nneg = pos.shape[-1], neg.shape[-1]
    total = k.sum(axis=(-2, -1))
    auc = total / (npos * nneg)
    with np.errstate(divide="ignore", invalid="ignore"):
        jack = np.concatenate(
            [(total[:, None] - k.sum(axis=2)) / ((npos - 1) * nneg),
             (total[:, None] - k.sum(axis=1)) / (npos * (nneg - 1))],
            axis=1,
        )
    if wp is None:
        return auc, None, jack
    f = k.shape[0]
    # one GEMM, (B, n+) @ (n+, F * n-), in float32: the operands 2K (0, 1, 2)
    # and the multiplicities are small integers, so every product and partial
    # sum is an integer below 2**24 and the float32 result is exact.
    kk = np.ascontiguousarray(np.transpose(2 * k, (1, 0, 2)), dtype=np.float32)
    m = (wp.astype(np.float32) @ kk.reshape(npos, f * nneg)).reshape(wp.shape[0], f, nneg)
    boot = np.einsum("bfj,bj->fb", m.astype(float), wn) / (2.0 * npos * nneg)
    return auc, boot, jack


def _row_quantiles(sorted_rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-row quantiles (linear interpolation, as numpy's default) of
    row-sorted data (F, B) at per-row probabilities q (F, m)."""
    b = sorted_rows.shape[1]
    h = np.clip(q, 0.0, 1.0) * (b - 1)
    lo = np.floor(h).astype(int)
    hi = np.minimum(lo + 1, b - 1)
    frac = h - lo
    rows = np.arange(sorted_rows.shape[0])[:, None]
    return sorted_rows[rows, lo] * (1 - frac) + sorted_rows[rows, hi] * frac


def _interval(auc_raw: np.ndarray, boot: np.ndarray, jack: np.ndarray, confidence_level: float,
              method: str = "bca"):
    """Direction-corrected AUC, interval, bootstrap SE, direction."""
    alpha = 1.0 - confidence_level
    nf, nb = boot.shape
    z = ndtri(np.array([alpha / 2, 1 - alpha / 2]))
    q = np.broadcast_to(np.array([alpha / 2, 1 - alpha / 2]), (nf, 2)).copy()
    if method == "bca":
        below = (boot < auc_raw[:, None]).sum(axis=1) + 0.5 * (boot == auc_raw[:, None]).sum(axis=1)
        z0 = ndtri(np.clip(below / nb, 0.5 / nb, 1 - 0.5 / nb))
        d = jack.mean(axis=1, keepdims=True) - jack
        s2 = (d**2).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            acc = np.where(s2 > 0, (d**3).sum(axis=1) / (6 * s2**1.5), 0.0)
            zz = z0[:, None] + z[None, :]
            den = 1 - acc[:, None] * zz
            qb = ndtr(z0[:, None] + zz / den)
        ok = np.isfinite(qb).all(axis=1) & (den > 0).all(axis=1) & np.isfinite(acc)
        q[ok] = qb[ok]
    elif method != "percentile":
        raise ValueError(f"ci_method must be 'bca' or 'percentile', got {method!r}")
    lo_raw, hi_raw = _row_quantiles(np.sort(boot, axis=1), q).T
    lower = auc_raw < 0.5
    auc = np.where(lower, 1.0 - auc_raw, auc_raw)
    lo = np.where(lower, 1.0 - hi_raw, lo_raw)
    hi = np.where(lower, 1.0 - lo_raw, hi_raw)
    lo = np.minimum(lo, auc)
    hi = np.maximum(hi, auc)
    se = boot.std(axis=1, ddof=1) if nb > 1 else np.full(nf, np.nan)
    return auc, lo, hi, se, np.where(lower, "lower", "higher")


def auc_bootstrap(
    scores,
    positive,
    *,
    n_boot: int = 1000,
    seed: int | np.random.Generator | None = 0,
    confidence_level: float = 0.95,
    ci_method: str = "bca",
) -> dict:
    """ROC AUC of one score with a stratified bootstrap CI.

    Parameters
    ----------
    scores : array_like of float, shape (n,)
    positive : array_like of bool, shape (n,)
        Class membership; needs at least one positive and one negative.
    n_boot : int
        Bootstrap replicates (0: no interval).
    seed : int or Generator
    confidence_level : float
    ci_method : {'bca', 'percentile'}
        Bias-corrected and accelerated (default) or plain percentile
        interval (module docstring).

    Returns
    -------
    dict
        ``auc`` (direction-corrected, >= 0.5), ``auc_raw``, ``direction``,
        ``ci_low``, ``ci_high``, ``boot_se``, ``n_pos``, ``n_neg``.
    """
    x = np.asarray(scores, dtype=float)
    y = np.asarray(positive, dtype=bool)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("scores and positive must be 1-D arrays of the same length")
    if not np.all(np.isfinite(x)):
        raise ValueError("scores must be finite")
    pos, neg = x[y], x[~y]
    if pos.size == 0 or neg.size == 0:
        raise ValueError("need at least one positive and one negative")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if n_boot > 0:
        wp = _bootstrap_weights(rng, pos.size, n_boot)
        wn = _bootstrap_weights(rng, neg.size, n_boot)
        auc_raw, boot, jack = _auc_with_bootstrap(pos[None], neg[None], wp, wn)
        auc, lo, hi, se, direction = _interval(auc_raw, boot, jack, confidence_level, ci_method)
        lo, hi, se = float(lo[0]), float(hi[0]), float(se[0])
    else:
        auc_raw, _, _ = _auc_with_bootstrap(pos[None], neg[None], None, None)
        auc = np.maximum(auc_raw, 1 - auc_raw)
        direction = np.where(auc_raw < 0.5, "lower", "higher")
        lo = hi = se = float("nan")
    return dict(
        auc=float(auc[0]), auc_raw=float(auc_raw[0]), direction=str(direction[0]),
        ci_low=lo, ci_high=hi, boot_se=se, n_pos=int(pos.size), n_neg=int(neg.size),
    )


def roc_auc_table(
    features: pd.DataFrame,
    clinical: pd.DataFrame,
    *,
    feature_columns: Sequence[str] | None = None,
    families: Sequence[str] = DEFAULT_FAMILIES,
    groups: Mapping[str, int | None] = DEFAULT_GROUPS,
    n_boot: int = 1000,
    seed: int = 0,
    confidence_level: float = 0.95,
    min_class_size: int = 5,
    ci_method: str = "bca",
) -> pd.DataFrame:
    """One-vs-rest ROC AUC for every group x family level x feature.

    Parameters
    ----------
    features, clinical, feature_columns, families, groups
        As in :func:`gliomics.stats.association.association_tests`.
    n_boot : int
        Stratified bootstrap replicates per pair (0: no intervals).
    seed : int
        Base seed; results are reproducible for a given seed.
    confidence_level : float
    min_class_size : int
        Pairs with fewer than this many positives or negatives get NaN and a
        ``reason`` (an AUC over 2 patients is an anecdote, and a bootstrap of
        2 points says nothing about its uncertainty).
    ci_method : {'bca', 'percentile'}
        Bootstrap interval (module docstring).

    Returns
    -------
    DataFrame
        Columns :data:`ROC_COLUMNS`; one row per group x family x level x
        feature (levels: those present among the group's labelled patients;
        a family with no labelled patient in the group gives one row with
        ``level`` NaN and a reason).
    """
    if ci_method not in ("bca", "percentile"):
        raise ValueError(f"ci_method must be 'bca' or 'percentile', got {ci_method!r}")
    cohort, feature_columns = merge_cohort(
        features, clinical, families=families, feature_columns=feature_columns
    )
    # the products are small (about 1000 x 30 x 1000): one BLAS thread is
    # several times faster than a pool that has to wake up for each of them
    with threadpool_limits(limits=1, user_api="blas"):
        out = _roc_rows(cohort, feature_columns, families, groups, n_boot, seed,
                        confidence_level, min_class_size, ci_method)
    table = pd.DataFrame.from_records(out)
    for col in ROC_COLUMNS:
        if col not in table.columns:
            table[col] = np.nan
    table["level"] = table["level"].astype(object)
    table["reason"] = table["reason"].astype(object).where(table["reason"].notna(), None)
    return table[list(ROC_COLUMNS)]


def _roc_rows(cohort, feature_columns, families, groups, n_boot, seed, confidence_level,
              min_class_size, ci_method) -> list[dict]:
    out: list[dict] = []
    for gname, code in groups.items():
        gname = str(gname)
        sub = cohort.loc[group_mask(cohort, code)]
        x_all = sub[feature_columns].to_numpy(dtype=float)
        finite = np.isfinite(x_all)
        for fam in families:
            valid_lab, codes, levels = label_levels(sub[fam])
            if not levels:
                for feat in feature_columns:
                    out.append(dict(group=gname, family=fam, level=None, feature=feat, n=0,
                                    n_pos=0, n_neg=0, n_boot=n_boot, ci_method=ci_method,
                                    reason="no labelled patients in the group"))
                continue
            for li, lev in enumerate(levels):
                entropy = stable_seed(seed, gname, fam, level_value(lev))
                rng = np.random.default_rng(np.random.SeedSequence(entropy))
                # features sharing the same set of usable patients are batched
                patterns: dict[bytes, list[int]] = {}
                for j in range(len(feature_columns)):
                    ok = valid_lab & finite[:, j]
                    patterns.setdefault(ok.tobytes(), []).append(j)
                rows: dict[int, dict] = {}
                for key, cols in patterns.items():
                    ok = np.frombuffer(key, dtype=bool)
                    is_pos = codes[ok] == li
                    npos, nneg = int(is_pos.sum()), int((~is_pos).sum())
                    base = dict(group=gname, family=fam, level=level_value(lev), n=npos + nneg,
                                n_pos=npos, n_neg=nneg, n_boot=n_boot, ci_method=ci_method)
                    if min(npos, nneg) < max(min_class_size, 1):
                        why = (f"too few positives or negatives (n_pos={npos}, n_neg={nneg} "
                               f"< min_class_size={min_class_size})")
                        for j in cols:
                            rows[j] = dict(base, feature=feature_columns[j], reason=why)
                        continue
                    xs = x_all[ok][:, cols].T  # (F, n)
                    pos, neg = xs[:, is_pos], xs[:, ~is_pos]
                    if n_boot > 0:
                        wp = _bootstrap_weights(rng, npos, n_boot)
                        wn = _bootstrap_weights(rng, nneg, n_boot)
                        auc_raw, boot, jack = _auc_with_bootstrap(pos, neg, wp, wn)
                        auc, lo, hi, se, direction = _interval(auc_raw, boot, jack,
                                                               confidence_level, ci_method)
                    else:
                        auc_raw, _, _ = _auc_with_bootstrap(pos, neg, None, None)
                        auc = np.maximum(auc_raw, 1 - auc_raw)
                        direction = np.where(auc_raw < 0.5, "lower", "higher")
                        lo = hi = se = np.full(len(cols), np.nan)
                    for t, j in enumerate(cols):
                        rows[j] = dict(base, feature=feature_columns[j], auc=float(auc[t]),
                                       auc_raw=float(auc_raw[t]), direction=str(direction[t]),
                                       ci_low=float(lo[t]), ci_high=float(hi[t]),
                                       boot_se=float(se[t]), reason=None)
                out.extend(rows[j] for j in range(len(feature_columns)))
    return out


def top_auc(
    table: pd.DataFrame, threshold: float = 0.7, *, min_ci_low: float | None = None
) -> pd.DataFrame:
    """Pairs with ``auc > threshold`` (the Kota (2024) thesis' Table 13), with their CIs.

    Parameters
    ----------
    table : DataFrame from :func:`roc_auc_table`
    threshold : float
        Strict lower bound on the (direction-corrected) AUC.
    min_ci_low : float, optional
        Also require ``ci_low > min_ci_low`` (e.g. 0.5: the interval
        excludes chance).

    Returns
    -------
    DataFrame
        Groups and families in their order in ``table``, then level and
        decreasing AUC.
    """
    sel = table[table["auc"].notna() & (table["auc"] > threshold)]
    if min_ci_low is not None:
        sel = sel[sel["ci_low"] > min_ci_low]
    cols = ["group", "family", "level", "feature", "auc", "ci_low", "ci_high", "direction",
            "n_pos", "n_neg"]
    order = {c: {v: i for i, v in enumerate(dict.fromkeys(table[c]))} for c in ("group", "family")}
    sel = sel.assign(_g=sel["group"].map(order["group"]), _f=sel["family"].map(order["family"]))
    sel = sel.sort_values(["_g", "_f", "level", "auc"], ascending=[True, True, True, False],
                          kind="stable")
    return sel[cols].reset_index(drop=True)
