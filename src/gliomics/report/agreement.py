"""Truth- vs predicted-mask features: intraclass correlation and surviving associations.

The association stage writes ``agreement.csv`` (ICC(2,1) per feature) and
``agreement_tests.csv`` only when a predicted-mask features table lies
beside the truth table at the time it runs, so those files may be missing
or older than the predicted table. The report therefore computes the
numbers here from the current features tables and the ``tests.csv`` of
the truth and predicted association runs, with
:func:`gliomics.stats.agreement.feature_agreement` (ICC(2,1) and ICC(3,1),
Shrout & Fleiss 1979, tested against their worked example).

ICC(2,1) -- two-way random, absolute agreement: a systematic offset between
truth and prediction (e.g. predicted tumours always smaller) lowers it.
ICC(3,1) -- two-way mixed, consistency: it ignores such an offset and asks
only whether the patients are *ranked* alike, which is what a median-split
association test depends on. Reporting both tells the reader which of the
two kinds of disagreement there is.
"""

from __future__ import annotations

from gliomics.stats.agreement import feature_agreement

ALPHA = 0.05


def agreement_table(truth, predicted, columns, *, min_pairs: int = 3):
    """Per feature: patients with both values, ICC(2,1) with its 95% CI, ICC(3,1), mean difference (the report's
    columns of :func:`gliomics.stats.agreement.feature_agreement`)."""
    table = feature_agreement(truth, predicted, columns, min_pairs=min_pairs)
    return table[["feature", "n_pairs", "icc", "icc_ci_low", "icc_ci_high", "icc_3_1", "mean_difference", "reason"]]


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
