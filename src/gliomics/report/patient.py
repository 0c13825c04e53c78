"""One new patient against the reference cohort: percentiles and typical cluster levels.

Pure functions used by ``gliomics analyze``:

* :func:`feature_percentiles` -- each feature's value with its percentile in
  the reference cohort's features table (:func:`percentile_of_score`, as
  ``scipy.stats.percentileofscore`` with ``kind="mean"``:
  ties count half, so the cohort's median value sits at the 50th
  percentile).
* :func:`typical_levels` -- for each association that was significant after
  Bonferroni in the cohort analysis, which cluster levels the patient's value
  is typical of: levels whose central 80% of reference patients (10th to
  90th percentile) contain the value, each with the cohort's one-vs-rest ROC
  AUC and its CI. A description of where the value lies in the cohort, not
  a prediction of the patient's subtype.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gliomics.data.kaggle import HISTOLOGY_NAMES

ALPHA = 0.05
#: The central share of a level's reference values that counts as "typical".
TYPICAL_RANGE = (10.0, 90.0)


def feature_percentiles(row: dict, reference, columns) -> "pd.DataFrame":  # noqa: F821
    """``feature, value, percentile, cohort_median, cohort_p10, cohort_p90, n_reference`` per column."""
    rows = []
    for column in columns:
        value = row.get(column)
        value = float(value) if value is not None else math.nan
        ref = reference[column].to_numpy(dtype=float) if column in reference else np.array([])
        ref = ref[np.isfinite(ref)]
        percentile = percentile_of_score(ref, value)
        rows.append({
            "feature": column, "value": value, "percentile": percentile,
            "cohort_median": float(np.median(ref)) if ref.size else math.nan,
            "cohort_p10": float(np.percentile(ref, 10)) if ref.size else math.nan,
            "cohort_p90": float(np.percentile(ref, 90)) if ref.size else math.nan,
            "n_reference": int(ref.size),
        })
    return pd.DataFrame.from_records(rows)


def percentile_of_score(reference: np.ndarray, value: float) -> float:
    """Percentile of ``value`` in ``reference``, ties counting half; NaN for no reference or no value.

    ``50 * (#(ref < value) + #(ref <= value)) / n``, which is
    ``scipy.stats.percentileofscore(ref, value, kind="mean")`` without
    importing ``scipy.stats`` (seconds of a one-patient command).
    """
    reference = np.asarray(reference, dtype=float)
    if reference.size == 0 or not math.isfinite(value):
        return math.nan
    below, at_or_below = np.count_nonzero(reference < value), np.count_nonzero(reference <= value)
    return float(50.0 * (below + at_or_below) / reference.size)


def _level_name(level) -> str:
    value = float(level)
    return str(int(value)) if value.is_integer() else str(level)


def typical_levels(row: dict, reference, clinical, tests, roc=None, *, alpha: float = ALPHA) -> list[dict]:
    """For each significant (Bonferroni) association of the cohort analysis, where the value lies.

    Parameters
    ----------
    row : dict
        The patient's features.
    reference : DataFrame
        The cohort's features table (``patient``, ``histological_type``, features).
    clinical : DataFrame
        The cohort's ``data.csv`` (``Patient`` + cluster columns, numeric).
    tests : DataFrame
        ``tests.csv`` of the association stage (Freeman-Halton rows are used).
    roc : DataFrame, optional
        ``roc_auc.csv`` (AUC and CI per group, family, level, feature).

    Returns
    -------
    list of dict
        One per significant (group, family, feature) where the patient has a
        value: ``group, family, feature, value, p_bonferroni, levels`` (per
        level: ``level, n, low, high, typical, auc, ci_low, ci_high,
        direction``) and ``typical`` (the levels the value is typical of).
    """
    names_to_code = {name: code for code, name in HISTOLOGY_NAMES.items()}
    fh = tests[(tests["test"] == "freeman_halton") & (tests["p_bonferroni"] < alpha)]
    cohort = reference.merge(clinical, left_on="patient", right_on="Patient", how="inner",
                             suffixes=("", "_clinical"))
    statements = []
    for r in fh.sort_values("p_bonferroni").itertuples(index=False):
        value = row.get(r.feature)
        if value is None or not math.isfinite(float(value)) or r.feature not in cohort or r.family not in cohort:
            continue
        value = float(value)
        group = cohort
        if r.group in names_to_code:
            group = cohort[cohort["histological_type"] == names_to_code[r.group]]
        labels = group[r.family]
        levels = []
        for level in sorted(labels.dropna().unique()):
            v = group.loc[labels == level, r.feature].to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            if v.size == 0:
                continue
            low, high = (float(x) for x in np.percentile(v, TYPICAL_RANGE))
            entry = {"level": _level_name(level), "n": int(v.size), "low": low, "high": high,
                     "typical": bool(low <= value <= high), "auc": math.nan, "ci_low": math.nan,
                     "ci_high": math.nan, "direction": None}
            if roc is not None and len(roc):
                hit = roc[(roc["group"] == r.group) & (roc["family"] == r.family) & (roc["feature"] == r.feature)
                          & (roc["level"].astype(float) == float(level))]
                if len(hit):
                    h = hit.iloc[0]
                    entry.update(auc=float(h["auc"]), ci_low=float(h["ci_low"]), ci_high=float(h["ci_high"]),
                                 direction=h.get("direction"))
            levels.append(entry)
        statements.append({"group": r.group, "family": r.family, "feature": r.feature, "value": value,
                           "p_bonferroni": float(r.p_bonferroni), "levels": levels,
                           "typical": [e["level"] for e in levels if e["typical"]]})
    return statements


def statement_text(item: dict) -> str:
    """One plain sentence per association (what :func:`typical_levels` found)."""
    who = "all patients" if item["group"] == "all" else f"the {item['group']} patients"
    parts = []
    for e in item["levels"]:
        auc = (f"; one-vs-rest AUC {e['auc']:.2f} [{e['ci_low']:.2f}, {e['ci_high']:.2f}]"
               if math.isfinite(e["auc"]) else "")
        parts.append(f"level {e['level']}: {e['low']:.3g} to {e['high']:.3g} (n={e['n']}{auc})")
    typical = item["typical"]
    if typical:
        verdict = ("typical of " + item["family"] + " level" + ("s " if len(typical) > 1 else " ")
                   + ", ".join(typical))
    else:
        verdict = f"outside the central 80% of every {item['family']} level"
    return (f"{item['feature']} = {item['value']:.3g}: among {who} of the reference cohort, this value is "
            f"{verdict}. {item['family']} was associated with {item['feature']} in that group (Bonferroni "
            f"p = {item['p_bonferroni']:.2g}). Central 80% per level: " + "; ".join(parts) + ".")
