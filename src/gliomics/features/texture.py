"""Masked grey-level co-occurrence matrix (GLCM) texture features.

Only pixel pairs with **both** pixels inside the tumour mask are counted.
``skimage.feature.graycomatrix`` has no mask argument, so the region of
interest is quantised to grey levels ``1..N``, everything outside is set to
level 0, the matrix is computed with ``N + 1`` levels, and row 0 and column
0 (every pair touching an outside pixel) are dropped before normalising.

Features (per distance/angle matrix, then averaged, see ``aggregate``), with
p(i, j) the normalised matrix (grey levels i, j = 1..N) and mu_i, sigma_i,
mu_j, sigma_j the means and standard deviations of its two marginals:

- ``glcm_contrast`` = sum_ij (i - j)^2 p(i, j); IBSI *contrast* (ACUI),
  PyRadiomics Contrast, skimage ``contrast``.
- ``glcm_correlation`` = sum_ij (i - mu_i)(j - mu_j) p(i, j) / (sigma_i
  sigma_j); IBSI *correlation* (NI2N), skimage ``correlation``.
- ``glcm_asm`` = sum_ij p(i, j)^2; angular second moment = IBSI *energy*
  (8ZQL) = PyRadiomics JointEnergy = skimage ``ASM``.
- ``glcm_energy`` = sqrt(sum_ij p(i, j)^2); skimage ``energy`` (no IBSI
  counterpart). Averaged over directions it is the mean of the square
  roots, so slightly below sqrt(``glcm_asm``) (equal for one direction).
- ``glcm_homogeneity`` = sum_ij p(i, j) / (1 + (i - j)^2); skimage
  ``homogeneity`` = IBSI *inverse difference moment* (WF0Z) = PyRadiomics Idm.

.. warning::
   ``glcm_energy`` is scikit-image's ``energy``, the **square root** of the
   angular second moment. What IBSI calls *energy* and PyRadiomics calls
   *JointEnergy* is the ASM itself, our ``glcm_asm``. The Kota (2024) thesis formula
   ("Energy = sum of squared elements") is the ASM; its table, computed
   with ``graycoprops(..., "energy")``, most likely holds the square root.
   Both columns are written so that nobody has to guess.

Correlation is set to 1 when a marginal has zero variance (a uniform ROI),
scikit-image's convention (IBSI leaves it undefined).

References
----------
.. [Haralick1973] Haralick RM, Shanmugam K, Dinstein I. Textural features for
   image classification. IEEE Trans Syst Man Cybern. 1973;SMC-3(6):610-621.
.. [IBSI] Zwanenburg A, Vallieres M, et al. Radiology. 2020;295(2):328-338;
   reference manual arXiv:1612.07003, sections 2.7 (discretisation) and 3.6
   (grey level co-occurrence based features).
.. [skimage] ``skimage.feature.graycomatrix`` / ``graycoprops``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from skimage.feature import graycomatrix

from ._utils import as_mask, bbox_slices

#: Pixel-pair distances (pixels, Chebyshev: 1 = the 8-neighbourhood).
DEFAULT_DISTANCES = (1,)
#: Angles (radians): 0, 45, 90 and 135 degrees, skimage's convention.
DEFAULT_ANGLES = (0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4)
#: Fixed bin number for grey-level quantisation over the ROI's min..max.
DEFAULT_N_BINS = 32

#: Columns produced by :func:`glcm_features`.
GLCM_COLUMNS = ("glcm_contrast", "glcm_correlation", "glcm_energy", "glcm_homogeneity", "glcm_asm")


def quantise(image, mask, *, n_bins: int | None = DEFAULT_N_BINS, bin_width: float | None = None):
    r"""Quantise the ROI to grey levels ``1..N``; outside the mask is 0.

    Three modes (IBSI 2.7):

    - ``n_bins=N`` (fixed bin number, default 32):
      :math:`\lfloor N (x - x_{\min}) / (x_{\max} - x_{\min}) \rfloor + 1`,
      with :math:`x_{\max}` mapped to N, the min and max taken inside the
      mask; a uniform ROI maps to level 1. Suits MR intensities, which have
      arbitrary units (the LGG slices were rescaled per patient to uint8).
    - ``bin_width=w`` (fixed bin size): :math:`\lfloor (x - x_{\min}) / w
      \rfloor + 1`, N the largest level.
    - ``n_bins=None, bin_width=None``: no discretisation, integer grey levels
      used as they are (shifted so that the ROI minimum is level 1; contrast,
      correlation, energy and homogeneity do not depend on that shift).

    Parameters
    ----------
    image : (M, N) array_like
        Grey levels.
    mask : (M, N) array_like
        Region of interest (non-empty).
    n_bins : int or None, optional
    bin_width : float or None, optional
        Takes precedence over ``n_bins`` when given.

    Returns
    -------
    levels : (M, N) ndarray of uint16
        ``1..N`` inside the mask, 0 outside.
    n_levels : int
        N.
    """
    img = np.asarray(image)
    m = as_mask(mask, img.ndim)
    if img.shape != m.shape:
        raise ValueError(f"image {img.shape} and mask {m.shape} differ in shape")
    vals = img[m].astype(np.float64)
    if vals.size == 0:
        raise ValueError("empty mask")
    lo, hi = float(vals.min()), float(vals.max())
    if bin_width is not None:
        if bin_width <= 0:
            raise ValueError("bin_width must be positive")
        q = np.floor((vals - lo) / bin_width).astype(np.int64) + 1
        n_levels = int(q.max())
    elif n_bins is not None:
        if n_bins < 1:
            raise ValueError("n_bins must be >= 1")
        if hi > lo:
            q = np.floor(n_bins * (vals - lo) / (hi - lo)).astype(np.int64) + 1
            q = np.minimum(q, n_bins)
        else:
            q = np.ones(vals.size, dtype=np.int64)
        n_levels = int(n_bins)
    else:
        if not np.all(vals == np.round(vals)):
            raise ValueError("no discretisation requested but the ROI has non-integer grey levels")
        q = (vals - lo).astype(np.int64) + 1
        n_levels = int(q.max())
    if n_levels > 65534:
        raise ValueError(f"{n_levels} grey levels: too many, quantise with n_bins or bin_width")
    out = np.zeros(img.shape, dtype=np.uint16)
    out[m] = q
    return out, n_levels


def glcm(
    image,
    mask,
    *,
    distances=DEFAULT_DISTANCES,
    angles=DEFAULT_ANGLES,
    symmetric: bool = True,
    normed: bool = False,
    n_bins: int | None = DEFAULT_N_BINS,
    bin_width: float | None = None,
) -> np.ndarray:
    """Masked GLCM: co-occurrences of pixel pairs with both pixels in the mask.

    Parameters
    ----------
    image : (M, N) array_like
        Grey levels (for the LGG data: the FLAIR channel of one slice).
    mask : (M, N) array_like
        Tumour mask of that slice; all components count.
    distances : sequence of int, optional
        Pair distances in pixels (default ``(1,)``).
    angles : sequence of float, optional
        Pair directions in radians (default 0, pi/4, pi/2, 3pi/4); the
        offset is ``(round(sin a * d), round(cos a * d))`` (row, col), as in
        ``skimage.feature.graycomatrix``.
    symmetric : bool, optional
        Count (i, j) and (j, i) for every pair (default True, as IBSI).
    normed : bool, optional
        Divide each (distance, angle) matrix by its sum (empty matrices stay
        0). The features always normalise, so this only affects the returned
        matrix.
    n_bins, bin_width
        Quantisation, see :func:`quantise`.

    Returns
    -------
    P : (N, N, n_distances, n_angles) ndarray
        Counts (float64), or probabilities when ``normed``; N grey levels.
    """
    img = np.asarray(image)
    m = as_mask(mask, 2)
    box = bbox_slices(m)
    if box is None:
        raise ValueError("empty mask")
    levels, n_levels = quantise(img[box], m[box], n_bins=n_bins, bin_width=bin_width)
    p = graycomatrix(
        levels,
        distances=list(distances),
        angles=list(angles),
        levels=n_levels + 1,
        symmetric=symmetric,
        normed=False,
    )
    p = p[1:, 1:].astype(np.float64)  # drop pairs with an outside pixel
    if normed:
        s = p.sum(axis=(0, 1), keepdims=True)
        p = np.divide(p, s, out=np.zeros_like(p), where=s > 0)
    return p


@functools.lru_cache(maxsize=32)
def _weights(n: int):
    """Level values 1..N, (i - j)^2, 1 / (1 + (i - j)^2) and i * j for N levels."""
    lv = np.arange(1, n + 1, dtype=np.float64)
    d2 = (lv[:, None] - lv[None, :]) ** 2
    return lv, d2, 1.0 / (1.0 + d2), np.outer(lv, lv)


def _props(p: np.ndarray, aggregate: str) -> dict:
    """Features of a (N, N, n_d, n_a) count matrix; see the module docstring."""
    n = p.shape[0]
    p = p.reshape(n, n, -1)
    tot = p.sum(axis=(0, 1))
    ok = tot > 0
    if not ok.any():
        return dict.fromkeys(GLCM_COLUMNS, math.nan)
    if aggregate == "merge":  # one matrix summed over distances and angles
        p = p[:, :, ok].sum(axis=2, keepdims=True)
    elif aggregate == "average":
        p = p[:, :, ok]
    else:
        raise ValueError(f"aggregate must be 'average' or 'merge', got {aggregate!r}")
    p = p / p.sum(axis=(0, 1))
    lv, d2, inv1d2, ij = _weights(n)
    pi = p.sum(axis=1)  # marginal of the first index, (N, k)
    pj = p.sum(axis=0)
    mu_i, mu_j = lv @ pi, lv @ pj
    var_i = np.maximum((lv * lv) @ pi - mu_i * mu_i, 0.0)
    var_j = np.maximum((lv * lv) @ pj - mu_j * mu_j, 0.0)
    cov = np.einsum("ij,ijk->k", ij, p) - mu_i * mu_j
    sd = np.sqrt(var_i * var_j)
    flat = sd < 1e-12
    corr = np.where(flat, 1.0, cov / np.where(flat, 1.0, sd))
    asm = np.einsum("ijk,ijk->k", p, p)
    return {
        "glcm_contrast": float(np.einsum("ij,ijk->k", d2, p).mean()),
        "glcm_correlation": float(corr.mean()),
        "glcm_energy": float(np.sqrt(asm).mean()),
        "glcm_homogeneity": float(np.einsum("ij,ijk->k", inv1d2, p).mean()),
        "glcm_asm": float(asm.mean()),
    }


def glcm_features(
    image,
    mask,
    *,
    distances=DEFAULT_DISTANCES,
    angles=DEFAULT_ANGLES,
    symmetric: bool = True,
    n_bins: int | None = DEFAULT_N_BINS,
    bin_width: float | None = None,
    aggregate: str = "average",
) -> dict:
    """Masked GLCM features of one slice.

    Parameters
    ----------
    image, mask, distances, angles, symmetric, n_bins, bin_width
        See :func:`glcm`.
    aggregate : {"average", "merge"}, optional
        ``"average"`` (default): features of each (distance, angle) matrix,
        then their mean (IBSI "2D, averaged", what
        ``graycoprops(...).mean()`` gives); ``"merge"``: features of the
        single matrix summed over directions (IBSI "2D, merged").
        Directions with no pair inside the mask are left out.

    Returns
    -------
    dict
        The names in :data:`GLCM_COLUMNS` -> float; NaN when the mask is
        empty or holds no pixel pair at the given offsets.
    """
    m = as_mask(mask, 2)
    if not m.any():
        return dict.fromkeys(GLCM_COLUMNS, math.nan)
    p = glcm(
        image, m, distances=distances, angles=angles, symmetric=symmetric, n_bins=n_bins, bin_width=bin_width
    )
    return _props(p, aggregate)


def glcm_contrast(image, mask, **kwargs) -> float:
    r"""GLCM contrast :math:`\sum_{ij}(i-j)^2 p(i,j)` (IBSI contrast, ACUI).

    Keyword arguments as :func:`glcm_features`. Returns NaN for an empty
    mask. Reference: Haralick et al. 1973; IBSI 3.6.
    """
    return glcm_features(image, mask, **kwargs)["glcm_contrast"]


def glcm_correlation(image, mask, **kwargs) -> float:
    r"""GLCM correlation :math:`\sum_{ij}(i-\mu_i)(j-\mu_j)p(i,j)/(\sigma_i\sigma_j)`.

    IBSI correlation (NI2N); 1 for a uniform ROI (skimage convention).
    Keyword arguments as :func:`glcm_features`. Reference: Haralick et al.
    1973; IBSI 3.6.
    """
    return glcm_features(image, mask, **kwargs)["glcm_correlation"]


def glcm_energy(image, mask, **kwargs) -> float:
    r"""scikit-image GLCM energy :math:`\sqrt{\sum_{ij} p(i,j)^2}`.

    **The square root of the ASM**; IBSI "energy" / PyRadiomics
    "JointEnergy" is :func:`glcm_asm`. Keyword arguments as
    :func:`glcm_features`. Reference: skimage ``graycoprops``.
    """
    return glcm_features(image, mask, **kwargs)["glcm_energy"]


def glcm_asm(image, mask, **kwargs) -> float:
    r"""Angular second moment :math:`\sum_{ij} p(i,j)^2`.

    = IBSI "energy" (8ZQL) = PyRadiomics "JointEnergy" = skimage "ASM".
    Keyword arguments as :func:`glcm_features`. Reference: Haralick et al.
    1973; IBSI 3.6.
    """
    return glcm_features(image, mask, **kwargs)["glcm_asm"]


def glcm_homogeneity(image, mask, **kwargs) -> float:
    r"""GLCM homogeneity :math:`\sum_{ij} p(i,j)/(1+(i-j)^2)`.

    = skimage "homogeneity" = IBSI "inverse difference moment" (WF0Z) =
    PyRadiomics "Idm". Keyword arguments as :func:`glcm_features`.
    Reference: Haralick et al. 1973; IBSI 3.6.
    """
    return glcm_features(image, mask, **kwargs)["glcm_homogeneity"]
