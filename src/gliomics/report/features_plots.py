"""Figures of the features table."""

from __future__ import annotations

import math

import matplotlib
import matplotlib.pyplot as plt

from gliomics.data.kaggle import HISTOLOGY_NAMES


def feature_histograms(table, columns, *, by: str = "histological_type"):
    """Small multiples: one histogram per feature, stacked by histological type."""
    matplotlib.use("Agg")

    n_cols = 4
    n_rows = math.ceil(len(columns) / n_cols)
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(4 * n_cols, 2.8 * n_rows), squeeze=False)
    groups = table[by].map(HISTOLOGY_NAMES).fillna("NA") if by in table else None
    for ax, column in zip(axes.flat, columns):
        values = table[column]
        if groups is not None:
            labels = sorted(groups.unique())
            data = [values[groups == g].dropna() for g in labels]
            ax.hist(data, bins=12, stacked=True, label=labels)
        else:
            ax.hist(values.dropna(), bins=12)
        ax.set_title(column, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    if groups is not None:
        axes.flat[0].legend(fontsize=7)
    figure.tight_layout()
    return figure
