"""Predicted probabilities to a mask: threshold, holes filled per slice, the largest 3D component."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Probability above which a pixel is tumour.
THRESHOLD = 0.5


def postprocess(prob_volume, threshold: float = THRESHOLD, largest_component: bool = True,
                fill_holes: bool = True) -> np.ndarray:
    """Binary mask from probabilities: ``> threshold``, holes filled per slice, largest 3D component.

    Holes are filled in each slice (axis 0) in 2D, since a hole in a slice is
    rarely closed in 3D. The largest connected component uses full
    connectivity (26 neighbours in 3D); ties keep the lowest label.
    """
    mask = np.asarray(prob_volume) > threshold
    if fill_holes and mask.any():
        if mask.ndim >= 3:
            mask = np.stack([ndimage.binary_fill_holes(s) for s in mask])
        else:
            mask = ndimage.binary_fill_holes(mask)
    if largest_component and mask.any():
        structure = np.ones((3,) * mask.ndim, dtype=bool)
        labels, n = ndimage.label(mask, structure=structure)
        if n > 1:
            sizes = np.bincount(labels.ravel())
            sizes[0] = 0
            mask = labels == int(np.argmax(sizes))
    return mask.astype(bool)
