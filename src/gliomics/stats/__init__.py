"""Pure statistics of the association analysis (no files, no MLflow, no plots).

* :mod:`.fisher` -- exact Freeman-Halton test of r x c tables, Fisher's 2 x 2
  test with alternatives, conditional-MLE odds ratio and exact CI.
* :mod:`.association` -- the long table of tests per histological group x
  cluster family x feature (median split + Freeman-Halton, Kruskal-Wallis,
  one-vs-rest 2 x 2), Bonferroni and BH-FDR, the Kota (2024) thesis-shaped
  significance matrix.
* :mod:`.roc` -- one-vs-rest ROC AUC with stratified bootstrap CIs and the
  ``AUC > 0.7`` listing.
* :mod:`.cohort` -- the join of features to ``data.csv`` and the groups.
* :mod:`.synthetic` -- a simulated cohort with one built-in association.
"""

from .association import (
    CORRECTION_FAMILIES,
    association_tests,
    correct_pvalues,
    significance_matrix,
)
from .cohort import DEFAULT_FAMILIES, DEFAULT_GROUPS, HISTOLOGY_NAMES, merge_cohort
from .fisher import Fisher2x2Result, fisher_2x2, fisher_2x2_many, freeman_halton, table_probability
from .roc import auc_bootstrap, roc_auc_table, top_auc
from .synthetic import simulate_cohort

__all__ = [
    "CORRECTION_FAMILIES",
    "DEFAULT_FAMILIES",
    "DEFAULT_GROUPS",
    "HISTOLOGY_NAMES",
    "Fisher2x2Result",
    "association_tests",
    "auc_bootstrap",
    "correct_pvalues",
    "fisher_2x2",
    "fisher_2x2_many",
    "freeman_halton",
    "merge_cohort",
    "roc_auc_table",
    "significance_matrix",
    "simulate_cohort",
    "table_probability",
    "top_auc",
]
