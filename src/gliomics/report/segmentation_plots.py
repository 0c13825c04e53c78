"""Figures of segmentations: Dice distribution, overlay strips, largest slices, 3D volume.

Pure functions: arrays and tables in, :class:`matplotlib.figure.Figure` out
(object-oriented API, no ``pyplot``), like :mod:`.association_plots`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from skimage.measure import marching_cubes

__all__ = ["OverlayCase", "dice_distribution", "feature_positions", "largest_slices", "overlay_strips",
           "volume_3d"]

TRUTH_COLOUR = "#009E73"
PRED_COLOUR = "#D55E00"


@dataclass(frozen=True)
class OverlayCase:
    """One row of an overlay strip: a slice of one patient with both masks."""

    patient: str
    slice_number: int  # 1-based, the Kaggle slice number
    flair: np.ndarray  # (H, W)
    truth: np.ndarray  # (H, W) bool
    prediction: np.ndarray  # (H, W) bool
    dice_3d: float


def _tint(ax, mask: np.ndarray, colour: str, alpha: float = 0.45) -> None:
    rgba = np.zeros(mask.shape + (4,), dtype=float)
    rgba[mask.astype(bool)] = to_rgba(colour, alpha)
    ax.imshow(rgba, interpolation="nearest")


def _outline(ax, mask: np.ndarray, colour: str) -> None:
    if mask.any() and not mask.all():
        ax.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=1.2)


def dice_distribution(per_patient, *, column: str = "dice_3d", label_worst: int = 5,
                      title: str = "per-patient 3D Dice") -> Figure:
    """Each patient's score as a dot over a box plot; the ``label_worst`` lowest named."""
    values = per_patient[column].to_numpy(dtype=float)
    names = per_patient["patient"].astype(str).to_numpy()
    fig = Figure(figsize=(7.5, 2.6))
    ax = fig.add_subplot()
    ok = np.isfinite(values)
    if ok.any():
        ax.boxplot(values[ok], vert=False, widths=0.5, showfliers=False,
                   medianprops={"color": "0.2"}, boxprops={"color": "0.5"}, whiskerprops={"color": "0.5"})
    jitter = np.random.default_rng(0).uniform(-0.12, 0.12, size=values.size)
    ax.scatter(values[ok], 1 + jitter[ok], s=22, color="#0072B2", zorder=3, alpha=0.8)
    order = np.argsort(np.where(ok, values, np.inf))[: min(label_worst, int(ok.sum()))]
    for rank, i in enumerate(order):
        ax.annotate(names[i], (values[i], 1 + jitter[i]), xytext=(0, 10 + 9 * (rank % 3)),
                    textcoords="offset points", fontsize=7, ha="center", color="0.3")
    ax.set_xlim(0, 1)
    ax.set_yticks([])
    ax.set_xlabel(column.replace("_", " "))
    mean = float(np.nanmean(values)) if ok.any() else float("nan")
    median = float(np.nanmedian(values)) if ok.any() else float("nan")
    ax.set_title(f"{title}: n={int(ok.sum())}, mean {mean:.3f}, median {median:.3f}", fontsize=10)
    fig.tight_layout()
    return fig


def overlay_strips(cases: list[OverlayCase]) -> Figure:
    """Rows of image / truth / prediction (FLAIR with the mask tinted), one row per case."""
    n = max(len(cases), 1)
    fig = Figure(figsize=(8.4, 2.9 * n))
    axes = fig.subplots(n, 3, squeeze=False)
    for row, case in enumerate(cases):
        panels = (("image (FLAIR)", None, None), ("truth", case.truth, TRUTH_COLOUR),
                  ("prediction", case.prediction, PRED_COLOUR))
        for col, (title, mask, colour) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(case.flair, cmap="gray", interpolation="nearest")
            if mask is not None:
                _tint(ax, mask, colour)
                _outline(ax, mask, colour)
            heading = title if col else f"{case.patient}, slice {case.slice_number}\n{title}"
            if col == 2:
                heading = f"3D Dice {case.dice_3d:.2f}\n{title}"
            ax.set_title(heading, fontsize=8)
            ax.axis("off")
    if not cases:
        axes[0, 1].text(0.5, 0.5, "no patients", ha="center", va="center")
        for ax in axes[0]:
            ax.axis("off")
    fig.tight_layout()
    return fig


def largest_slices(images: np.ndarray, mask: np.ndarray, *, n: int = 3, channel: int = 1,
                   slice_numbers=None) -> Figure:
    """The ``n`` slices with the largest tumour area: image above, image with the mask below."""
    mask = np.asarray(mask, dtype=bool)
    areas = mask.reshape(len(mask), -1).sum(axis=1)
    order = [int(z) for z in np.argsort(-areas, kind="stable")[:n] if areas[z] > 0]
    if not order:  # no tumour found: show the middle slice
        order = [len(mask) // 2]
    numbers = list(slice_numbers) if slice_numbers is not None else list(range(1, len(mask) + 1))
    fig = Figure(figsize=(3.0 * len(order), 6.1))
    axes = fig.subplots(2, len(order), squeeze=False)
    for col, z in enumerate(sorted(order)):
        flair = images[z][..., channel] if images.ndim == 4 else images[z]
        for row in range(2):
            ax = axes[row, col]
            ax.imshow(flair, cmap="gray", interpolation="nearest")
            if row == 1:
                _tint(ax, mask[z], PRED_COLOUR, 0.35)
                _outline(ax, mask[z], PRED_COLOUR)
            ax.axis("off")
        axes[0, col].set_title(f"slice {numbers[z]}: {int(areas[z])} tumour pixels", fontsize=9)
    fig.tight_layout()
    return fig


def volume_3d(mask: np.ndarray, spacing=(6.0, 1.0, 1.0), *, title: str = "") -> Figure:
    """The tumour surface (marching cubes) in 3D, axes in in-plane pixel units."""
    mask = np.asarray(mask, dtype=bool)
    fig = Figure(figsize=(5.5, 5.0))
    ax = fig.add_subplot(projection="3d")
    if mask.sum() < 2:
        ax.text2D(0.5, 0.5, "no tumour segmented", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    zs, ys, xs = np.nonzero(mask)
    box = (slice(zs.min(), zs.max() + 1), slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    padded = np.pad(mask[box], 1).astype(np.float32)
    verts, faces, _normals, _values = marching_cubes(padded, level=0.5, spacing=tuple(float(s) for s in spacing))
    # (z, y, x) -> plot x, y horizontally and slices upwards.
    verts = verts[:, [2, 1, 0]]
    mesh = Poly3DCollection(verts[faces], alpha=0.6, facecolors="#E69F00", shade=True)
    ax.add_collection3d(mesh)
    lo, hi = verts.min(axis=0), verts.max(axis=0)
    centre, half = (lo + hi) / 2, float((hi - lo).max()) / 2 or 1.0
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_zlim(centre[2] - half, centre[2] + half)
    ax.set_xlabel("x (px)", fontsize=8)
    ax.set_ylabel("y (px)", fontsize=8)
    ax.set_zlabel("through-plane (px)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.view_init(elev=20, azim=-60)
    ax.set_title(title or f"tumour surface, {int(mask.sum())} voxels", fontsize=10)
    return fig


def feature_positions(reference, values: dict, features, *, n_cols: int = 4) -> Figure:
    """One small histogram per feature of the reference cohort, the patient's value as a red line."""
    # Drawn for one patient on every `gliomics analyze`, so kept cheap: one filled step artist per
    # histogram (not 15 bar patches), axes only where there is a feature, and fixed margins for
    # the fixed grid and font sizes instead of tight_layout's extra draw of the whole figure.
    features = [f for f in features if f in reference.columns]
    n_rows = max(math.ceil(len(features) / n_cols), 1)
    fig = Figure(figsize=(3.2 * n_cols, 2.1 * n_rows))
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.25 / n_rows, top=1 - 0.4 / n_rows, wspace=0.1,
                        hspace=0.6)
    for i, feature in enumerate(features):
        ax = fig.add_subplot(n_rows, n_cols, i + 1)
        cohort = reference[feature].to_numpy(dtype=float)
        cohort = cohort[np.isfinite(cohort)]
        if cohort.size:
            counts, edges = np.histogram(cohort, bins=15)
            ax.stairs(counts, edges, fill=True, color="0.75")
            ax.vlines(edges[1:-1], 0, np.maximum(counts[:-1], counts[1:]), colors="white", linewidth=1)
        value = values.get(feature)
        if value is not None and np.isfinite(value):
            ax.axvline(value, color="#C0392B", linewidth=2)
        ax.set_title(feature, fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_yticks([])
    fig.suptitle("the patient's value (red) in the reference cohort's distribution (grey)", fontsize=9)
    return fig
