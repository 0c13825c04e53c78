"""Small helpers shared by the feature modules (not public API)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["as_mask", "bbox_slices", "largest_component"]


def as_mask(mask, ndim: int) -> np.ndarray:
    """Return ``mask`` as a C-contiguous boolean array of dimension ``ndim``.

    Booleans are kept; integer masks (0/1 or 0/255) count every non-zero
    value as tumour; floating masks (probabilities) are thresholded at 0.5.
    """
    m = np.asarray(mask)
    if m.ndim != ndim:
        raise ValueError(f"expected a {ndim}D mask, got shape {m.shape}")
    if m.dtype == bool:
        return np.ascontiguousarray(m)
    if np.issubdtype(m.dtype, np.floating):
        return np.ascontiguousarray(m >= 0.5)
    return np.ascontiguousarray(m != 0)


def bbox_slices(mask: np.ndarray, pad: int = 0):
    """Tuple of slices of the bounding box of ``mask`` (None when empty).

    ``pad`` widens the box by that many elements on each side, clipped to
    the array.
    """
    slices = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        if hit.size == 0:
            return None
        lo = max(int(hit[0]) - pad, 0)
        hi = min(int(hit[-1]) + 1 + pad, mask.shape[axis])
        slices.append(slice(lo, hi))
    return tuple(slices)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Largest connected component of a boolean mask (full connectivity).

    Full connectivity means 8-connected in 2D and 26-connected in 3D, the
    convention of ``skimage.measure.label(connectivity=ndim)`` and of
    OpenCV's contour tracing. Ties go to the component met first in raster
    order. An empty mask is returned unchanged.
    """
    structure = np.ones((3,) * mask.ndim, dtype=bool)
    labels, n = ndi.label(mask, structure=structure)
    if n <= 1:
        return mask
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    return labels == int(np.argmax(counts))
