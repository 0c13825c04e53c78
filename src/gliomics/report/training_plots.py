"""Learning-curve figures of a training run (segmenter and slice classifier)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

from gliomics import io

SEGMENTER_LOSSES = (("loss", "training loss"),)


SEGMENTER_SCORES = (("slice_dice", "training slice Dice"), ("val_slice_dice", "validation slice Dice"),
                    ("val_dice_3d", "validation per-patient 3D Dice"))


def plot_learning_curves(history, path, *, losses=SEGMENTER_LOSSES, loss_label: str = "loss",
                         scores=SEGMENTER_SCORES, score_label: str | None = "Dice", score_top: float = 1.0) -> Path:
    """Loss (left) and score (right) columns of ``history`` per epoch; ``(column, legend)`` pairs."""
    matplotlib.use("Agg")

    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = history["epoch"]
    for column, label in losses:
        ax_loss.plot(epochs, history[column], marker="o", label=label)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel(loss_label)
    ax_loss.legend()
    for column, label in scores:
        ax_score.plot(epochs, history[column], marker="o", label=label)
    ax_score.set_xlabel("epoch")
    if score_label:
        ax_score.set_ylabel(score_label)
    ax_score.set_ylim(0, score_top)
    ax_score.legend()
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)
