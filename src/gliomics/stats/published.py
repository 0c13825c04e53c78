"""Published feature-cluster associations of the TCGA-LGG radiogenomics literature, and ours beside them.

:data:`PUBLISHED` lists the associations reported by Mazurowski et al., J Neurooncol 133 (2017) 27-35 and
Buda et al., Comput Biol Med 109 (2019) 218-225 (both over all histologies), and by Kota (2024), the thesis
this project reproduces (per histological type, its chapter 5). :func:`replication_table` puts our exact
test (Freeman-Halton on the median-split feature) and best one-vs-rest AUC for each of them, on manual and,
when given, on predicted masks, in one table.
"""

from __future__ import annotations

import pandas as pd

#: (source, histological group, cluster family, feature, reported p) of each published association.
PUBLISHED = (
    ("Mazurowski 2017", "all", "RNASeqCluster", "angular_standard_deviation", "< 0.0002"),
    ("Mazurowski 2017", "all", "COCCluster", "angular_standard_deviation", "< 0.0002"),
    ("Mazurowski 2017", "all", "CNCluster", "angular_standard_deviation", "< 0.001"),
    ("Buda 2019", "all", "RNASeqCluster", "bounding_ellipsoid_volume_ratio", "< 0.0002"),
    ("Buda 2019", "all", "RNASeqCluster", "margin_fluctuation", "< 0.005"),
    ("Kota 2024", "astrocytoma", "RPPACluster", "bounding_ellipsoid_volume_ratio", "0.037"),
    ("Kota 2024", "astrocytoma", "COCCluster", "convexity_defects", "0.035"),
    ("Kota 2024", "oligoastrocytoma", "RNASeqCluster", "bounding_ellipsoid_volume_ratio", "0.001"),
    ("Kota 2024", "oligoastrocytoma", "RNASeqCluster", "equivalent_diameter", "0.001"),
    ("Kota 2024", "oligoastrocytoma", "CNCluster", "convexity_defects", "0.016"),
    ("Kota 2024", "oligoastrocytoma", "RNASeqCluster", "glcm_homogeneity", "0.001"),
    ("Kota 2024", "oligodendroglioma", "RNASeqCluster", "eccentricity", "0.0006"),
    ("Kota 2024", "oligodendroglioma", "RNASeqCluster", "angular_standard_deviation", "0.002"),
    ("Kota 2024", "oligodendroglioma", "CNCluster", "bounding_ellipsoid_volume_ratio", "0.002"),
    ("Kota 2024", "oligodendroglioma", "MethylationCluster", "glcm_energy", "0.001"),
    ("Kota 2024", "oligodendroglioma", "MethylationCluster", "glcm_homogeneity", "0.0003"),
    ("Kota 2024", "oligodendroglioma", "OncosignCluster", "glcm_homogeneity", "0.002"),
)
#: The test whose p is compared (the exact Fisher-Freeman-Halton test of gliomics.stats.association).
TEST = "freeman_halton"


def our_result(tests, roc, group: str, family: str, feature: str) -> dict:
    """Our exact test (``n``, ``p``, ``p_bonferroni``) and best one-vs-rest AUC (``best_auc``, ``auc_level``,
    ``direction``) for one association; None where we did not test it (e.g. too few patients)."""
    row = tests[(tests["test"] == TEST) & (tests["group"] == group) & (tests["family"] == family)
                & (tests["feature"] == feature)]
    aucs = roc[(roc["group"] == group) & (roc["family"] == family) & (roc["feature"] == feature)] \
        if roc is not None else roc
    best = aucs.loc[aucs["auc"].idxmax()] if aucs is not None and aucs["auc"].notna().any() else None

    def number(column):
        value = row[column].iloc[0] if len(row) else None
        return None if value is None or value != value else float(value)  # NaN: not tested

    return {
        "n": int(row["n"].iloc[0]) if len(row) and row["n"].iloc[0] == row["n"].iloc[0] else None,
        "p": number("p"),
        "p_bonferroni": number("p_bonferroni"),
        "best_auc": float(best["auc"]) if best is not None else None,
        "auc_level": str(best["level"]) if best is not None else None,
        "direction": str(best.get("direction")) if best is not None else None,
    }


def replication_table(truth_tests, truth_roc=None, predicted_tests=None, predicted_roc=None):
    """One row per :data:`PUBLISHED` association: ``source, group, family, feature, reported_p`` and our
    :func:`our_result` columns suffixed ``_truth`` (and ``_predicted`` when predicted-mask tables are given)."""
    kinds = [("truth", truth_tests, truth_roc)]
    if predicted_tests is not None:
        kinds.append(("predicted", predicted_tests, predicted_roc))
    rows = []
    for source, group, family, feature, reported in PUBLISHED:
        row = {"source": source, "group": group, "family": family, "feature": feature, "reported_p": reported}
        for name, tests, roc in kinds:
            row.update({f"{k}_{name}": v for k, v in our_result(tests, roc, group, family, feature).items()})
        rows.append(row)
    return pd.DataFrame(rows)
