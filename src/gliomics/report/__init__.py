"""Figures of the reports: pure functions from tables to matplotlib figures.

- :mod:`.features_plots`: figures of the features table.
- :mod:`.association_plots`: the association stage's figures (per-group
  small-multiple histograms of each feature by cluster level, ROC curves of
  the top pairs, heat map of -log10 p) and :func:`~.association_plots.save_figure`
  (atomic PNG writing).

Importing this package imports nothing heavy; import the submodule you need
(``from gliomics.report.association_plots import roc_curves``).
"""
