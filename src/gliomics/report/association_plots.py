"""Figures of the association analysis (``gliomics associate``).

Pure functions: tables in, :class:`matplotlib.figure.Figure` out. Figures are
built with the object-oriented API (no ``pyplot``: no GUI backend, no global
state; rendering uses the Agg canvas) and written by :func:`save_figure`.

* :func:`cluster_histograms` -- the Kota (2024) thesis' Figures 31-36 made readable:
  small multiples, one row per cluster family (or extra outcome), one column
  per feature, in each cell one histogram per cluster level (share of the
  level's patients, so that small levels are not drowned by large ones),
  the group median (the split of the Fisher-Freeman-Halton test) as a dashed
  line and the test's Bonferroni p in the corner (red when < 0.05).  Each
  row is drawn in a single Axes (cells side by side), which keeps a 9 x 14
  grid fast to draw.
* :func:`roc_curves` -- one-vs-rest ROC curves of the top (feature, level)
  pairs, with AUC, bootstrap CI and class sizes.
* :func:`pvalue_heatmap` -- -log10 p of the Freeman-Halton tests, features x
  families, one panel per group, with the Bonferroni and FDR significant
  cells marked.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from gliomics.io import atomic_path

__all__ = ["cluster_histograms", "pvalue_heatmap", "roc_curves", "roc_points", "save_figure"]

ALPHA = 0.05
#: Level colours (colour-blind friendly: Okabe & Ito 2008).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
SIGNIFICANT = "#C0392B"


def save_figure(figure: Figure, path: str | Path, *, dpi: int = 100) -> Path:
    """Write ``figure`` as PNG at ``path``, atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)
    return Path(path)


def _label(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _short(name: str, width: int = 16) -> str:
    """Wrap a snake_case feature name on underscores to lines of about ``width``."""
    words, lines, line = name.replace("glcm_", "GLCM ").split("_"), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "\n".join(lines)


def _p_text(p) -> str:
    if p is None or not np.isfinite(p):
        return "n/a"
    if p < 0.001:
        return f"p={p:.0e}"
    return f"p={p:.3f}" if p < 0.1 else f"p={p:.2f}"


def cluster_histograms(
    cohort: pd.DataFrame,
    features: Sequence[str],
    outcomes: Sequence[str],
    *,
    title: str = "",
    pvalues: pd.DataFrame | None = None,
    bins: int = 10,
    cell_width: float = 1.55,
    row_height: float = 1.15,
) -> Figure:
    """Small multiples: outcomes (rows) x features (columns), histograms by level.

    Parameters
    ----------
    cohort : DataFrame
        One row per patient of the group: the feature columns and the outcome
        (cluster label) columns; missing values allowed.
    features, outcomes : sequences of column names
    title : str
    pvalues : DataFrame, optional
        Features x outcomes (e.g. the Bonferroni matrix of the group); shown
        in each cell, red when below 0.05, ``n/a`` when the test was skipped.
    bins : int
        Bins per feature (shared by the levels and rows of a column).
    """
    features, outcomes = list(features), list(outcomes)
    n_cols, n_rows = max(len(features), 1), max(len(outcomes), 1)
    legend_w, label_w = 1.6, 1.0
    fig = Figure(figsize=(cell_width * n_cols + legend_w + label_w, row_height * n_rows + 1.5))
    top = 1 - 1.05 / fig.get_figheight()
    bottom = 0.45 / fig.get_figheight()
    left = label_w / fig.get_figwidth()
    right = 1 - legend_w / fig.get_figwidth()
    height = (top - bottom) / n_rows
    gap = 0.12  # share of a cell left blank between cells
    x = cohort[features].to_numpy(dtype=float) if features else np.empty((len(cohort), 0))
    edges = []
    for j in range(len(features)):
        v = x[np.isfinite(x[:, j]), j]
        lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges.append(np.linspace(lo, hi, bins + 1))
    medians = [np.nanmedian(x[:, j]) if np.isfinite(x[:, j]).any() else np.nan for j in range(len(features))]

    # Each row is one Axes; its cells are drawn as a few collections (one
    # artist per kind, not one per histogram), which keeps large grids fast.
    for r, outcome in enumerate(outcomes):
        ax = fig.add_axes((left, top - (r + 1) * height + 0.08 * height, right - left, 0.84 * height))
        ax.set_xlim(0, n_cols)
        ax.set_ylim(0, 1.22)
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ("top", "right", "left", "bottom"):
            ax.spines[side].set_visible(False)
        labels = cohort[outcome]
        levels = sorted(pd.unique(labels.dropna()).tolist())
        frames, polys, colours, medians_xy = [], [], [], []
        for j, feat in enumerate(features):
            x0, width = j + gap / 2, 1 - gap
            frames.append([(x0, 0), (x0 + width, 0), (x0 + width, 1.2), (x0, 1.2)])
            e = edges[j]
            xs = x0 + (e - e[0]) * (width / (e[-1] - e[0]))
            shares = []
            for level in levels:
                v = x[(labels == level).to_numpy() & np.isfinite(x[:, j]), j]
                counts = np.histogram(v, bins=e)[0]
                shares.append(counts / v.size if v.size else counts * 0.0)
            peak = max((s_.max() for s_ in shares), default=0) or 1.0
            for li, share in enumerate(shares):
                h = np.repeat(share / peak, 2)
                xx = np.repeat(xs, 2)[1:-1]
                polys.append(np.column_stack([np.r_[xs[0], xx, xs[-1]], np.r_[0.0, h, 0.0]]))
                colours.append(PALETTE[li % len(PALETTE)])
            if np.isfinite(medians[j]):
                xm = x0 + (medians[j] - e[0]) * (width / (e[-1] - e[0]))
                medians_xy.append([(xm, 0), (xm, 1.02)])
            if pvalues is not None and feat in pvalues.index and outcome in pvalues.columns:
                p = pvalues.at[feat, outcome]
                sig = np.isfinite(p) and p < ALPHA
                ax.text(x0 + width - 0.03, 1.18, _p_text(p), ha="right", va="top", fontsize=7,
                        color=SIGNIFICANT if sig else "0.3", fontweight="bold" if sig else "normal")
            if r == 0:
                ax.text(x0 + width / 2, 1.3, _short(feat), ha="center", va="bottom", fontsize=8)
            if r == n_rows - 1:
                ax.text(x0, -0.06, f"{e[0]:.3g}", ha="left", va="top", fontsize=6.5, color="0.3")
                ax.text(x0 + width, -0.06, f"{e[-1]:.3g}", ha="right", va="top", fontsize=6.5, color="0.3")
        ax.add_collection(PolyCollection(frames, facecolors="0.97", edgecolors="0.8", linewidths=0.6, zorder=0),
                          autolim=False)
        if polys:
            ax.add_collection(PolyCollection(polys, facecolors=colours, edgecolors="none", alpha=0.2, zorder=1),
                              autolim=False)
            ax.add_collection(LineCollection(polys, colors=colours, linewidths=1.2, zorder=2), autolim=False)
        if medians_xy:
            ax.add_collection(LineCollection(medians_xy, colors="0.35", linewidths=0.8, linestyles="--",
                                             zorder=3), autolim=False)
        ax.text(-0.06, 0.55, _short(outcome.replace("Cluster", "_Cluster"), 11), ha="right", va="center",
                fontsize=8)
        if levels:
            handles = [Patch(facecolor=PALETTE[li % len(PALETTE)], alpha=0.6) for li in range(len(levels))]
            names = [f"{_label(level)} (n={int((labels == level).sum())})" for level in levels]
            ax.legend(handles, names, loc="center left", bbox_to_anchor=(1.005, 0.5), fontsize=7, frameon=False,
                      title="level", title_fontsize=7)
        else:
            ax.text(n_cols / 2, 0.5, "no labelled patients", ha="center", va="center", color="0.4")
    fig.suptitle(title + "\n" if title else "", fontsize=11, y=1 - 0.12 / fig.get_figheight(), va="top")

    note = ("each histogram: share of the level's patients per bin; dashed: group median (the split of the "
            f"Fisher-Freeman-Halton test); p: Bonferroni-corrected, red < {ALPHA}")
    note = "\n".join(textwrap.wrap(note, int(fig.get_figwidth() * 15)))
    fig.text(0.5, 1 - 0.48 / fig.get_figheight(), note, ha="center", va="top", fontsize=8, color="0.3")
    return fig


def roc_points(scores, positive) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) of the ROC curve of ``scores`` (higher = positive), one point
    per distinct threshold, from (0, 0) to (1, 1); ties move diagonally (their
    area is the 1/2 credit of the Mann-Whitney AUC)."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(positive, dtype=bool)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tp = np.cumsum(y)[last]
    fp = np.cumsum(~y)[last]
    npos, nneg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.r_[0.0, fp / nneg], np.r_[0.0, tp / npos]


def _pick_pairs(top: pd.DataFrame, n: int, per_family: int = 3) -> pd.DataFrame:
    """Up to ``n`` rows of the top listing for the figure.

    Mirror images are dropped (with two levels, "level A vs rest" and "level B
    vs rest" are the same split: same feature, AUC and class sizes swapped).
    Then the most robust first (highest lower CI bound, then AUC: a small
    group's 0.9 with a CI down to 0.5 tells less than 0.85 [0.78, 0.91] over
    110 patients); at most ``per_family`` pairs of one (group, family) come
    before the others, so that one strong family does not fill every panel.
    """
    if top.empty:
        return top
    key = pd.DataFrame({
        "group": top["group"], "family": top["family"], "feature": top["feature"],
        "auc": top["auc"].round(12),
        "small": np.minimum(top["n_pos"], top["n_neg"]), "large": np.maximum(top["n_pos"], top["n_neg"]),
    })
    rows = top[~key.duplicated()].sort_values(["ci_low", "auc"], ascending=False, kind="stable")
    rank = rows.groupby(["group", "family"], sort=False).cumcount()
    return pd.concat([rows[rank < per_family], rows[rank >= per_family]]).head(n)


def roc_curves(
    cohorts: Mapping[str, pd.DataFrame],
    top: pd.DataFrame,
    *,
    max_panels: int = 12,
    threshold: float | None = None,
) -> Figure:
    """ROC curves of the top pairs (rows of ``roc_auc_top.csv``), best AUC first.

    Parameters
    ----------
    cohorts : mapping group -> DataFrame
        The patients of each group with the feature and outcome columns.
    top : DataFrame
        ``group, family, level, feature, auc, ci_low, ci_high, direction,
        n_pos, n_neg``.
    max_panels : int
        At most this many pairs (:func:`_pick_pairs`); a footnote says how
        many were left out.
    """
    rows = _pick_pairs(top, max_panels)
    n = len(rows)
    if n == 0:
        fig = Figure(figsize=(6, 3))
        fig.text(0.5, 0.5, "no (feature, cluster level) pair with AUC above "
                 f"{threshold if threshold is not None else 'the threshold'}",
                 ha="center", va="center", fontsize=10)
        return fig
    n_cols = min(4, n)
    n_rows = math.ceil(n / n_cols)
    fig = Figure(figsize=(3.2 * n_cols, 3.6 * n_rows + 0.6))
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False).ravel())
    for ax, (_, r) in zip(axes, rows.iterrows()):
        data = cohorts[r["group"]]
        labels = pd.to_numeric(data[r["family"]], errors="coerce")
        ok = labels.notna() & np.isfinite(data[r["feature"]].astype(float))
        score = data.loc[ok, r["feature"]].to_numpy(dtype=float)
        if r["direction"] == "lower":
            score = -score
        positive = (labels[ok] == float(r["level"])).to_numpy()
        fpr, tpr = roc_points(score, positive)
        ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=0.8)
        ax.plot(fpr, tpr, color=PALETTE[0], linewidth=1.6)
        ax.fill_between(fpr, tpr, alpha=0.08, color=PALETTE[0])
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_aspect("equal")
        arrow = "lower" if r["direction"] == "lower" else "higher"
        ax.set_title(f"{r['family']} = {_label(r['level'])} vs rest\n{r['feature']} ({arrow}), {r['group']}",
                     fontsize=8)
        degenerate = r["ci_low"] == r["ci_high"] == 1.0
        ax.text(0.97, 0.04, f"AUC {r['auc']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
                + (" (perfect separation:\nthe bootstrap CI is degenerate)" if degenerate else "")
                + f"\nn+={int(r['n_pos'])}, n-={int(r['n_neg'])}",
                ha="right", va="bottom", fontsize=8, transform=ax.transAxes)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("1 - specificity", fontsize=7)
        ax.set_ylabel("sensitivity", fontsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    more = len(top) - n
    fig.suptitle(f"ROC curves, one cluster level vs the rest, AUC > {threshold}" if threshold is not None
                 else "ROC curves of the top pairs", fontsize=10)
    if more > 0:
        fig.text(0.5, 0.005, f"{more} more pair(s) in roc_auc_top.csv", ha="center", va="bottom", fontsize=8)
    fig.tight_layout(rect=(0, 0.02, 1, 0.97), h_pad=1.5)
    return fig


def pvalue_heatmap(
    tests: pd.DataFrame,
    groups: Sequence[str],
    *,
    test: str = "freeman_halton",
    features: Sequence[str] | None = None,
    families: Sequence[str] | None = None,
) -> Figure:
    """-log10 raw p (colour), features x families, one panel per group.

    ``**``: Bonferroni-corrected p < 0.05, ``*``: FDR (BH) < 0.05 only;
    hatched grey: test skipped (the reason is in ``tests.csv``).
    """
    sel = tests[tests["test"] == test]
    features = list(features) if features is not None else list(dict.fromkeys(sel["feature"]))
    families = list(families) if families is not None else list(dict.fromkeys(sel["family"]))
    groups = list(groups)
    mats = {}
    for g in groups:
        sg = sel[sel["group"] == g]
        piv = {v: sg.pivot_table(index="feature", columns="family", values=v, aggfunc="min", dropna=False)
               .reindex(index=features, columns=families) for v in ("p", "p_bonferroni", "p_fdr")}
        mats[g] = piv
    with np.errstate(divide="ignore"):
        finite = [-np.log10(m["p"].to_numpy(dtype=float)) for m in mats.values()]
    vmax = max([3.0] + [float(np.nanmax(f)) for f in finite if np.isfinite(f).any()])
    norm = Normalize(0, vmax)
    n = len(groups)
    n_cols = min(n, 4)
    n_rows = math.ceil(n / n_cols) if n else 1
    cell = 0.42
    fig = Figure(figsize=(n_cols * (cell * len(families) + 2.4) + 0.8,
                          n_rows * (cell * len(features) + 1.6) + 0.6))
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    image = None
    for i, (ax, g) in enumerate(zip(axes, groups)):
        m = mats[g]
        with np.errstate(divide="ignore"):
            val = -np.log10(m["p"].to_numpy(dtype=float))
        ax.set_facecolor("0.88")
        image = ax.imshow(np.ma.masked_invalid(val), cmap="viridis", norm=norm, aspect="auto",
                          interpolation="nearest")
        bonf = m["p_bonferroni"].to_numpy(dtype=float)
        fdr = m["p_fdr"].to_numpy(dtype=float)
        for (yi, xi), v in np.ndenumerate(val):
            if not np.isfinite(v):
                ax.text(xi, yi, "n/a", ha="center", va="center", fontsize=6, color="0.45")
            elif bonf[yi, xi] < ALPHA or fdr[yi, xi] < ALPHA:
                mark = "**" if bonf[yi, xi] < ALPHA else "*"
                ax.text(xi, yi, mark, ha="center", va="center", fontsize=9, fontweight="bold",
                        color="white" if norm(v) < 0.6 else "black")
        ax.set_xticks(range(len(families)))
        ax.set_xticklabels([f.replace("Cluster", "") for f in families], rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(features)))
        ax.set_yticklabels(features if i % n_cols == 0 else [], fontsize=7)
        n_run = int(sel[(sel["group"] == g)]["p"].notna().sum())
        ax.set_title(f"{g} ({n_run} tests run)", fontsize=9)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(f"{test.replace('_', '-')} tests: -log10 p (raw);  ** Bonferroni p < {ALPHA},  "
                 f"* FDR < {ALPHA};  n/a: not tested (reason in tests.csv)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.93, 0.96))
    if image is not None:
        cax = fig.add_axes((0.945, 0.25, 0.012, 0.5))
        bar = fig.colorbar(image, cax=cax)
        bar.set_label("-log10 p", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    return fig
