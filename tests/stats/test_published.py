"""The replication table: each published association beside our test of it."""

from __future__ import annotations

import pandas as pd

from gliomics.stats.published import PUBLISHED, replication_table


def _tests(p_for_bevr: float):
    rows = [{"group": "all", "family": "RNASeqCluster", "feature": "bounding_ellipsoid_volume_ratio",
             "test": "freeman_halton", "n": 80, "p": p_for_bevr, "p_bonferroni": min(1.0, p_for_bevr * 126)},
            {"group": "all", "family": "RNASeqCluster", "feature": "bounding_ellipsoid_volume_ratio",
             "test": "kruskal_wallis", "n": 80, "p": 0.5, "p_bonferroni": 1.0}]
    return pd.DataFrame(rows)


def test_each_published_association_gets_our_numbers_or_blanks():
    roc = pd.DataFrame([{"group": "all", "family": "RNASeqCluster", "feature": "bounding_ellipsoid_volume_ratio",
                         "level": lv, "auc": auc, "direction": "higher"} for lv, auc in (("1", 0.61), ("2", 0.74))])
    table = replication_table(_tests(0.0003), roc, _tests(0.00003), None)
    assert len(table) == len(PUBLISHED)
    buda = table[(table["source"] == "Buda 2019") & (table["feature"] == "bounding_ellipsoid_volume_ratio")].iloc[0]
    assert buda["p_truth"] == 0.0003 and buda["p_predicted"] == 0.00003  # the exact test, not Kruskal-Wallis
    assert buda["best_auc_truth"] == 0.74 and buda["auc_level_truth"] == "2" and buda["n_truth"] == 80
    assert pd.isna(buda["best_auc_predicted"])  # no ROC table given for predicted masks
    untested = table[table["feature"] == "margin_fluctuation"].iloc[0]
    assert pd.isna(untested["p_truth"]) and pd.isna(untested["n_truth"])
    assert "p_predicted" not in replication_table(_tests(0.1)).columns  # manual masks only
