"""One row of radiomic features per patient.

:func:`patient_features` turns a patient's stacked slices and masks into the
14 thesis features plus the extra columns (see :data:`ALL_COLUMNS`):

- the 2D shape features and the GLCM features on the slice with the largest
  tumour area, as Mazurowski et al. (2017) and Buda et al. (2019) do, and
  BEVR in 3D;
- the same 2D and GLCM features on every tumour slice, aggregated as the
  mean weighted by the slice's tumour area (suffix ``_slices_mean``; slices
  where a feature is undefined, e.g. GLCM of a one-pixel slice, are left
  out of that feature's mean). The GLCM grey levels are quantised per
  slice, over the min..max of that slice's tumour pixels;
- 3D descriptors (mesh volume, mesh surface area, sphericity, maximum 3D
  diameter, 3D solidity), in units of the ``spacing`` (in-plane pixels by
  default);
- ``glcm_asm`` (the IBSI "energy"; ``glcm_energy`` is its square root),
  ``largest_slice`` (1-based position in the stack), ``tumour_voxels`` and
  ``status``.

Empty and too-small masks never raise: every feature is NaN and ``status``
says why ("empty mask", "too small (1 voxel)"). Any other feature that comes
out undefined (e.g. the GLCM of a largest slice without two adjacent tumour
pixels) is named in ``status`` ("undefined: glcm_contrast, ..."), so a NaN
never appears next to status "ok".
"""

from __future__ import annotations

import math

import numpy as np

from gliomics.schema import FEATURE_COLUMNS

from ._utils import as_mask, bbox_slices
from .shape2d import ASD_BINS, CONVEXITY_DEFECT_MIN_DEPTH, MF_WINDOW, SHAPE2D_COLUMNS, shape2d_features
from .shape3d import DEFAULT_SPACING, SHAPE3D_COLUMNS, shape3d_features
from .texture import DEFAULT_ANGLES, DEFAULT_DISTANCES, DEFAULT_N_BINS, GLCM_COLUMNS, glcm_features

__all__ = [
    "ALL_COLUMNS",
    "EXTRA_COLUMNS",
    "FEATURE_COLUMNS",
    "FLAIR_CHANNEL",
    "MIN_TUMOUR_VOXELS",
    "SLICE_MEAN_COLUMNS",
    "patient_features",
]

#: Area-weighted means over all tumour slices of the 2D and GLCM features.
SLICE_MEAN_COLUMNS = tuple(f"{c}_slices_mean" for c in SHAPE2D_COLUMNS + GLCM_COLUMNS)
#: Every column after the 14 thesis features.
EXTRA_COLUMNS = (
    ("glcm_asm",) + SLICE_MEAN_COLUMNS + SHAPE3D_COLUMNS + ("largest_slice", "tumour_voxels", "status")
)
#: All columns of a :func:`patient_features` row, in order.
ALL_COLUMNS = FEATURE_COLUMNS + EXTRA_COLUMNS
#: Channel of the Kaggle LGG slices holding FLAIR (0 pre-contrast, 2 post).
FLAIR_CHANNEL = 1
#: Masks with fewer tumour voxels get NaN features ("too small").
MIN_TUMOUR_VOXELS = 2

_NUMERIC = tuple(c for c in ALL_COLUMNS if c not in ("largest_slice", "tumour_voxels", "status"))


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    ok = np.isfinite(values)
    if not ok.any():
        return math.nan
    return float(np.dot(values[ok], weights[ok]) / weights[ok].sum())


def patient_features(
    image_volume,
    mask_volume,
    *,
    spacing=DEFAULT_SPACING,
    channel: int = FLAIR_CHANNEL,
    distances=DEFAULT_DISTANCES,
    angles=DEFAULT_ANGLES,
    symmetric: bool = True,
    n_bins: int | None = DEFAULT_N_BINS,
    bin_width: float | None = None,
    asd_bins: int = ASD_BINS,
    mf_window: float = MF_WINDOW,
    defect_min_depth: float = CONVEXITY_DEFECT_MIN_DEPTH,
    min_voxels: int = MIN_TUMOUR_VOXELS,
    slice_means: bool = True,
) -> dict:
    """Radiomic features of one patient (one row of the features table).

    Parameters
    ----------
    image_volume : (S, H, W, C) or (S, H, W) array_like
        The patient's slices stacked in slice-number order (Kaggle LGG:
        uint8, C = 3 channels pre-contrast, FLAIR, post-contrast).
    mask_volume : (S, H, W) array_like
        Tumour masks (bool, 0/1 or 0/255; floats are thresholded at 0.5).
    spacing : sequence of 3 floats, optional
        Voxel spacing ``(dz, dy, dx)`` for the 3D features; default
        :data:`gliomics.features.shape3d.DEFAULT_SPACING` = (6, 1, 1), i.e.
        in-plane pixel units with slices 6 pixels apart (argued in
        :mod:`gliomics.features.shape3d`). BEVR does not depend on it.
    channel : int, optional
        Channel of a 4D ``image_volume`` used for texture (default 1, FLAIR).
    distances, angles, symmetric, n_bins, bin_width
        GLCM settings, see :func:`gliomics.features.texture.glcm`.
    asd_bins, mf_window, defect_min_depth
        See :func:`~gliomics.features.shape2d.angular_standard_deviation`,
        :func:`~gliomics.features.shape2d.margin_fluctuation`,
        :func:`~gliomics.features.shape2d.convexity_defects`.
    min_voxels : int, optional
        Masks with fewer tumour voxels give NaN features with status
        "too small (n voxels)" (default 2: a one-voxel mask is too small).
    slice_means : bool, optional
        Compute the ``*_slices_mean`` columns (default True); when False
        they are NaN and only the largest slice is analysed (faster).

    Returns
    -------
    dict
        Keys :data:`ALL_COLUMNS`: the features (float, NaN when undefined),
        ``largest_slice`` (int, 1-based position in the stack, i.e. the
        Kaggle slice number; None when the mask is empty),
        ``tumour_voxels`` (int) and ``status`` ("ok" or the reason for
        NaNs).
    """
    mask = as_mask(mask_volume, 3)
    image = np.asarray(image_volume)
    if image.ndim == 4:
        image = image[..., channel]
    if image.shape != mask.shape:
        raise ValueError(f"image {image.shape} and mask {mask.shape} shapes differ")

    row = dict.fromkeys(_NUMERIC, math.nan)
    areas = np.count_nonzero(mask, axis=(1, 2))
    n_vox = int(areas.sum())
    row["tumour_voxels"] = n_vox
    row["largest_slice"] = int(np.argmax(areas)) + 1 if n_vox else None
    if n_vox == 0:
        row["status"] = "empty mask"
        return {c: row[c] for c in ALL_COLUMNS}
    if n_vox < min_voxels:
        row["status"] = f"too small ({n_vox} voxel{'s' if n_vox != 1 else ''})"
        return {c: row[c] for c in ALL_COLUMNS}

    box = bbox_slices(mask)
    mask, image = mask[box], image[box]
    areas = areas[box[0]]
    largest = int(np.argmax(areas))
    glcm_kw = dict(distances=distances, angles=angles, symmetric=symmetric, n_bins=n_bins, bin_width=bin_width)
    shape_kw = dict(n_bins=asd_bins, window=mf_window, min_depth=defect_min_depth)

    slices = np.flatnonzero(areas) if slice_means else np.array([largest])
    per_slice = []
    for z in slices:
        f = shape2d_features(mask[z], **shape_kw)
        f.update(glcm_features(image[z], mask[z], **glcm_kw))
        per_slice.append(f)
        if z == largest:
            row.update(f)
    if slice_means:
        w = areas[slices].astype(np.float64)
        for c in SHAPE2D_COLUMNS + GLCM_COLUMNS:
            row[f"{c}_slices_mean"] = _weighted_mean(np.array([f[c] for f in per_slice]), w)

    row.update(shape3d_features(mask, spacing))

    bad = [c for c in _NUMERIC if not math.isfinite(row[c])]
    row["status"] = "ok" if not bad else "undefined: " + ", ".join(bad)
    return {c: row[c] for c in ALL_COLUMNS}


def feature_settings(params) -> dict:
    """``params.yaml``'s ``features`` (a :class:`gliomics.config.FeaturesParams`) → keyword arguments of
    :func:`patient_features`."""
    return {
        "spacing": (params.slice_spacing_ratio, 1.0, 1.0),
        "channel": params.channel,
        "distances": tuple(params.glcm_distances),
        "angles": tuple(math.radians(a) for a in params.glcm_angles_deg),
        "symmetric": params.glcm_symmetric,
        "n_bins": None if params.glcm_bin_width > 0 else params.glcm_n_bins,
        "bin_width": params.glcm_bin_width if params.glcm_bin_width > 0 else None,
    }
