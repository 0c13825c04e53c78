"""Small, fast versions of SciPy statistics used inside the analysis loops.

SciPy's ``kruskal`` and ``contingency.association`` carry about a
millisecond of argument handling per call; the association stage calls them
hundreds of times.  These implement the same formulas (checked against SciPy
in ``tests/stats``).
"""

from __future__ import annotations

import numpy as np
from scipy.special import chdtrc


def cramers_v(table: np.ndarray) -> float:
    """Cramér's V without continuity correction.

    .. math::  V = \\sqrt{\\frac{\\chi^2}{n\\,(\\min(r, c) - 1)}}, \\quad
               \\chi^2 = \\sum_{ij} \\frac{(o_{ij} - e_{ij})^2}{e_{ij}}

    Same as ``scipy.stats.contingency.association(table, method='cramer')``.
    Rows/columns must be non-empty.
    """
    t = np.asarray(table, dtype=float)
    n = t.sum()
    e = np.outer(t.sum(axis=1), t.sum(axis=0)) / n
    chi2 = ((t - e) ** 2 / e).sum()
    k = min(t.shape) - 1
    return float(np.sqrt(chi2 / (n * k))) if k > 0 else float("nan")


def kruskal_wallis(values: np.ndarray, codes: np.ndarray, k: int) -> tuple[float, float]:
    """Kruskal-Wallis H (tie-corrected) and its chi-square p (df = k - 1).

    .. math::  H = \\frac{\\frac{12}{n(n+1)} \\sum_j R_j^2 / n_j - 3(n+1)}
                        {1 - \\sum_t (t^3 - t) / (n^3 - n)}

    with :math:`R_j` the rank sum of level :math:`j` (mid-ranks for ties)
    and :math:`t` the sizes of the tie groups -- as ``scipy.stats.kruskal``.
    ``codes`` are 0..k-1, every level non-empty.  Returns (nan, nan) when all
    values are equal.
    """
    n = values.size
    ranks, ties = midranks(values)
    nj = np.bincount(codes, minlength=k).astype(float)
    rj = np.bincount(codes, weights=ranks, minlength=k)
    tie = 1.0 - (ties**3 - ties).sum() / (n**3 - n)
    if tie <= 0:
        return float("nan"), float("nan")
    h = (12.0 / (n * (n + 1)) * (rj**2 / nj).sum() - 3 * (n + 1)) / tie
    return float(h), float(chdtrc(k - 1, h))


def midranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks 1..n with ties given their mean rank (``rankdata`` 'average'),
    and the sizes of the tie groups."""
    order = np.argsort(values, kind="mergesort")
    xs = values[order]
    new = np.empty(xs.size, dtype=bool)
    new[:1] = True
    np.not_equal(xs[1:], xs[:-1], out=new[1:])
    grp = np.cumsum(new) - 1
    counts = np.bincount(grp).astype(float)
    start = np.flatnonzero(new)
    ranks = np.empty(xs.size)
    ranks[order] = (start + (counts + 1) / 2)[grp]
    return ranks, counts
