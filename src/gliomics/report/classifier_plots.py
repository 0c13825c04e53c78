"""A slice classifier's figures: confusion matrix and ROC (sklearn displays)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

from gliomics import io


def _save(fig, path) -> Path:
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


def plot_confusion_matrix(labels, probs, threshold: float, path, title: str = "") -> Path:
    """sklearn's ConfusionMatrixDisplay of ``prob >= threshold`` against ``labels``."""
    matplotlib.use("Agg")

    fig, ax = plt.subplots(figsize=(4.5, 4))
    pred = (np.asarray(probs) >= threshold).astype(int)
    ConfusionMatrixDisplay.from_predictions(np.asarray(labels, dtype=int), pred, labels=[0, 1],
                                            display_labels=["no tumour", "tumour"], ax=ax, colorbar=False)
    ax.set_title(title or f"slices, threshold {threshold:g}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_roc(labels, probs, path, title: str = "") -> Path:
    """sklearn's RocCurveDisplay (a note instead when only one class is present)."""
    matplotlib.use("Agg")

    fig, ax = plt.subplots(figsize=(4.5, 4))
    labels = np.asarray(labels, dtype=int)
    if len(np.unique(labels)) == 2:
        RocCurveDisplay.from_predictions(labels, np.asarray(probs), ax=ax, name="slice classifier")
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    else:
        ax.text(0.5, 0.5, "ROC undefined: only one class present", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title(title or "ROC, per slice", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
