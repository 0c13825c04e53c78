"""patient_features: one row per patient, columns, statuses, aggregation."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from gliomics.features import (
    ALL_COLUMNS,
    FEATURE_COLUMNS,
    SHAPE2D_COLUMNS,
    SLICE_MEAN_COLUMNS,
    bounding_ellipsoid_volume_ratio,
    glcm_features,
    patient_features,
    shape2d_features,
)
from gliomics.features.texture import GLCM_COLUMNS

from .shapes import blob3d

THESIS = (
    "angular_standard_deviation",
    "eccentricity",
    "bounding_ellipsoid_volume_ratio",
    "margin_fluctuation",
    "solidity",
    "extent",
    "equivalent_diameter",
    "perimeter",
    "convexity_defects",
    "aspect_ratio",
    "glcm_contrast",
    "glcm_correlation",
    "glcm_energy",
    "glcm_homogeneity",
)
NUMERIC = [c for c in ALL_COLUMNS if c not in ("largest_slice", "tumour_voxels", "status")]


def _patient(seed=0, n_slices=20, size=96):
    """A synthetic patient: (S, H, W, 3) uint8 slices and a 0/255 mask."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((n_slices, size, size), dtype=bool)
    mask[4:16, 20:60, 25:65] = blob3d(seed, shape=(12, 40, 40))
    image = rng.integers(0, 60, size=(n_slices, size, size, 3)).astype(np.uint8)
    flair = image[..., 1]
    flair[mask] = rng.integers(100, 220, size=int(mask.sum()))
    return image, (mask * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def patient():
    image, mask = _patient()
    return image, mask, patient_features(image, mask)


def test_columns():
    assert FEATURE_COLUMNS == THESIS
    assert ALL_COLUMNS[:14] == THESIS
    assert len(set(ALL_COLUMNS)) == len(ALL_COLUMNS)
    for extra in [
        "glcm_asm",
        "volume_3d",
        "surface_area_3d",
        "sphericity_3d",
        "max_diameter_3d",
        "solidity_3d",
        "largest_slice",
        "tumour_voxels",
        "status",
    ]:
        assert extra in ALL_COLUMNS
    assert "solidity_slices_mean" in SLICE_MEAN_COLUMNS
    assert "glcm_energy_slices_mean" in SLICE_MEAN_COLUMNS
    assert all(re.fullmatch(r"[a-z0-9_]+", c) for c in ALL_COLUMNS)


def test_row(patient):
    image, mask, row = patient
    assert list(row) == list(ALL_COLUMNS)
    assert row["status"] == "ok"
    assert all(math.isfinite(row[c]) for c in NUMERIC)
    assert row["tumour_voxels"] == int((mask > 0).sum())
    areas = (mask > 0).sum(axis=(1, 2))
    assert row["largest_slice"] == int(np.argmax(areas)) + 1


def test_largest_slice_features(patient):
    image, mask, row = patient
    z = row["largest_slice"] - 1
    expected = shape2d_features(mask[z])
    expected.update(glcm_features(image[z, :, :, 1], mask[z]))
    for c in SHAPE2D_COLUMNS + GLCM_COLUMNS:
        assert row[c] == pytest.approx(expected[c], rel=1e-12), c
    assert row["bounding_ellipsoid_volume_ratio"] == pytest.approx(
        bounding_ellipsoid_volume_ratio(mask, (1, 1, 1)), rel=1e-6
    )


def test_slice_means_are_area_weighted(patient):
    image, mask, row = patient
    zs = np.flatnonzero((mask > 0).any(axis=(1, 2)))
    w = np.array([(mask[z] > 0).sum() for z in zs], dtype=float)
    for c in ("solidity", "perimeter", "glcm_contrast"):
        vals = []
        for z in zs:
            f = shape2d_features(mask[z])
            f.update(glcm_features(image[z, :, :, 1], mask[z]))
            vals.append(f[c])
        vals = np.array(vals)
        ok = np.isfinite(vals)
        assert row[f"{c}_slices_mean"] == pytest.approx(np.dot(vals[ok], w[ok]) / w[ok].sum()), c


def test_ranges(patient):
    row = patient[2]
    for c in ("solidity", "extent", "bounding_ellipsoid_volume_ratio", "solidity_3d"):
        assert 0 < row[c] <= 1, c
    assert 0 <= row["eccentricity"] < 1
    for c in ("angular_standard_deviation", "margin_fluctuation", "perimeter", "convexity_defects"):
        assert row[c] >= 0, c
    # averaged over directions: mean of sqrt(ASM_k) <= sqrt(mean ASM_k)
    assert row["glcm_energy"] <= math.sqrt(row["glcm_asm"])
    assert row["glcm_energy"] == pytest.approx(math.sqrt(row["glcm_asm"]), rel=1e-3)


def test_texture_reads_the_flair_channel_only(patient):
    image, mask, row = patient
    other = image.copy()
    other[..., 0] = 0
    other[..., 2] = 255
    assert patient_features(other, mask) == row
    flair_changed = image.copy()
    flair_changed[..., 1][mask > 0] //= 2
    flair_changed[..., 1][mask > 0] *= np.uint8(2)  # drops the lowest bit
    changed = patient_features(flair_changed, mask)
    assert changed["glcm_contrast"] != row["glcm_contrast"]
    assert changed["solidity"] == row["solidity"]


def test_spacing_changes_3d_size_but_not_bevr(patient):
    image, mask, row = patient
    other = patient_features(image, mask, spacing=(3.0, 1.0, 1.0))
    assert other["bounding_ellipsoid_volume_ratio"] == pytest.approx(row["bounding_ellipsoid_volume_ratio"], rel=1e-6)
    assert other["volume_3d"] < row["volume_3d"]
    assert other["angular_standard_deviation"] == row["angular_standard_deviation"]


def test_mask_encodings_and_single_channel(patient):
    image, mask, row = patient
    assert patient_features(image, mask > 0) == row
    assert patient_features(image[..., 1], mask) == row


def test_slice_means_can_be_skipped(patient):
    image, mask, row = patient
    fast = patient_features(image, mask, slice_means=False)
    assert all(math.isnan(fast[c]) for c in SLICE_MEAN_COLUMNS)
    assert all(fast[c] == row[c] for c in FEATURE_COLUMNS)


def _all_nan(row):
    return all(math.isnan(row[c]) for c in NUMERIC)


def test_empty_mask():
    image = np.zeros((5, 32, 32, 3), dtype=np.uint8)
    row = patient_features(image, np.zeros((5, 32, 32), dtype=np.uint8))
    assert row["status"] == "empty mask"
    assert row["tumour_voxels"] == 0 and row["largest_slice"] is None
    assert _all_nan(row)


def test_one_voxel_mask():
    image = np.zeros((5, 32, 32, 3), dtype=np.uint8)
    mask = np.zeros((5, 32, 32), dtype=np.uint8)
    mask[2, 10, 10] = 255
    row = patient_features(image, mask)
    assert row["status"] == "too small (1 voxel)"
    assert row["tumour_voxels"] == 1 and row["largest_slice"] == 3
    assert _all_nan(row)


def test_min_voxels_is_a_parameter():
    image = np.zeros((5, 32, 32, 3), dtype=np.uint8)
    mask = np.zeros((5, 32, 32), dtype=bool)
    mask[2, 10:13, 10:13] = True
    assert patient_features(image, mask, min_voxels=10)["status"] == "too small (9 voxels)"


def test_undefined_features_are_named_in_the_status():
    """Two single voxels on two slices: no pixel pair for the GLCM."""
    image = np.zeros((5, 32, 32, 3), dtype=np.uint8)
    mask = np.zeros((5, 32, 32), dtype=bool)
    mask[1, 5, 5] = mask[3, 20, 20] = True
    row = patient_features(image, mask)
    nan_columns = [c for c in NUMERIC if math.isnan(row[c])]
    assert "glcm_contrast" in nan_columns  # ASD, MF and the GLCM: one pixel
    assert row["status"] == "undefined: " + ", ".join(nan_columns)
    assert math.isfinite(row["bounding_ellipsoid_volume_ratio"])


def test_nan_only_where_status_says_so(patient):
    row = patient[2]
    assert row["status"] == "ok" and not any(math.isnan(row[c]) for c in NUMERIC)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        patient_features(np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 8, 9), np.uint8))


# ---------------------------------------------------------------- real data
@pytest.mark.real_data
def test_real_patients(real_cohort):
    """Real ROIs: every row ok and inside the ranges the validation suite sets."""
    import tifffile
    from skimage.measure import regionprops

    from gliomics.features._utils import largest_component

    folders = sorted(p for p in real_cohort.iterdir() if p.is_dir())
    assert folders
    for folder in folders:
        n = len(list(folder.glob("*_mask.tif")))
        image = np.stack([tifffile.imread(folder / f"{folder.name}_{i}.tif") for i in range(1, n + 1)])
        mask = np.stack([tifffile.imread(folder / f"{folder.name}_{i}_mask.tif") for i in range(1, n + 1)])
        row = patient_features(image, mask)
        assert row["status"] == "ok", folder.name
        for c in ("solidity", "extent", "bounding_ellipsoid_volume_ratio"):
            assert 0 < row[c] <= 1
        assert 0 <= row["eccentricity"] < 1
        # our solidity (pixel-centre hull) vs scikit-image's (diamond hull)
        lc = largest_component(mask[row["largest_slice"] - 1] > 0)
        skimage_solidity = regionprops(lc.astype(np.uint8))[0].solidity
        assert skimage_solidity <= row["solidity"] <= skimage_solidity * 1.05
