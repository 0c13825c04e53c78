"""Masked GLCM: hand-computed matrices and features, masking, quantisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.feature import graycomatrix, graycoprops

from gliomics.features import texture as tx

ANGLE0 = {"distances": (1,), "angles": (0.0,)}


def _brute_force_glcm(levels, mask, offsets, n_levels, symmetric=True):
    """Reference: loop over every pixel pair, count only pairs inside the mask."""
    p = np.zeros((n_levels, n_levels, len(offsets)))
    rows, cols = levels.shape
    for k, (dr, dc) in enumerate(offsets):
        for r in range(rows):
            for c in range(cols):
                r2, c2 = r + dr, c + dc
                if 0 <= r2 < rows and 0 <= c2 < cols and mask[r, c] and mask[r2, c2]:
                    p[levels[r, c] - 1, levels[r2, c2] - 1, k] += 1
                    if symmetric:
                        p[levels[r2, c2] - 1, levels[r, c] - 1, k] += 1
    return p


# ------------------------------------------------- hand-computed cases
def test_constant_image():
    img = np.full((10, 12), 7, dtype=np.uint8)
    f = tx.glcm_features(img, np.ones(img.shape, dtype=bool), n_bins=None)
    assert f == {
        "glcm_contrast": 0.0,
        "glcm_correlation": 1.0,  # skimage convention for zero variance
        "glcm_energy": 1.0,
        "glcm_homogeneity": 1.0,
        "glcm_asm": 1.0,
    }
    # with a fixed bin number a uniform ROI lands in one bin too
    assert tx.glcm_features(img, np.ones(img.shape, dtype=bool))["glcm_asm"] == 1.0


def test_checkerboard():
    """0/1 checkerboard: 4-neighbours always differ, diagonal ones never.

    Horizontal and vertical matrices are [[0, .5], [.5, 0]]: contrast 1,
    ASM 0.5, homogeneity 0.5, correlation -1. The diagonal ones are
    [[.5, 0], [0, .5]]: contrast 0, ASM 0.5, homogeneity 1, correlation +1.
    Averaged over the four directions: 0.5, 0.5, 0.75, 0. (9 x 9 so that
    the diagonal pairs split evenly, 32 black and 32 white.)
    """
    img = (np.indices((9, 9)).sum(axis=0) % 2).astype(np.uint8)
    mask = np.ones(img.shape, dtype=bool)
    f = tx.glcm_features(img, mask, n_bins=None)
    assert f["glcm_contrast"] == pytest.approx(0.5)
    assert f["glcm_asm"] == pytest.approx(0.5)
    assert f["glcm_energy"] == pytest.approx(math.sqrt(0.5))
    assert f["glcm_homogeneity"] == pytest.approx(0.75)
    assert f["glcm_correlation"] == pytest.approx(0.0, abs=1e-12)
    horizontal = tx.glcm_features(img, mask, n_bins=None, **ANGLE0)
    assert horizontal["glcm_contrast"] == pytest.approx(1.0)
    assert horizontal["glcm_correlation"] == pytest.approx(-1.0)


HARALICK = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 2, 2, 2], [2, 2, 3, 3]], dtype=np.uint8)


def test_hand_computed_4x4_matrix():
    """The 4x4 example of Haralick et al. (1973), distance 1, angle 0."""
    p = tx.glcm(HARALICK, np.ones((4, 4), dtype=bool), n_bins=None, symmetric=False, **ANGLE0)
    expected = [[2, 2, 1, 0], [0, 2, 0, 0], [0, 0, 3, 1], [0, 0, 0, 1]]
    assert p[:, :, 0, 0] == pytest.approx(np.array(expected, dtype=float))


def test_hand_computed_4x4_features():
    """Features of the matrix above, worked out by hand (12 pairs).

    contrast    = (2*1 + 1*4 + 1*1) / 12                       = 7/12
    ASM         = (4 + 4 + 1 + 4 + 9 + 1 + 1) / 144            = 1/6
    homogeneity = (2 + 2/2 + 1/5 + 2 + 3 + 1/2 + 1) / 12       = 9.7/12
    marginals   p_i = (5, 2, 4, 1)/12, p_j = (2, 4, 4, 2)/12
    mu_i = 13/12, mu_j = 3/2, E[ij] = 29/12
    var_i = 27/12 - (13/12)^2 = 155/144, var_j = 38/12 - 9/4 = 11/12
    correlation = (29/12 - 13/12 * 3/2) / sqrt(155/144 * 11/12)
    """
    f = tx.glcm_features(HARALICK, np.ones((4, 4), dtype=bool), n_bins=None, symmetric=False, **ANGLE0)
    assert f["glcm_contrast"] == pytest.approx(7 / 12)
    assert f["glcm_asm"] == pytest.approx(1 / 6)
    assert f["glcm_energy"] == pytest.approx(math.sqrt(1 / 6))
    assert f["glcm_homogeneity"] == pytest.approx(9.7 / 12)
    corr = (29 / 12 - 13 / 12 * 1.5) / math.sqrt(155 / 144 * 11 / 12)
    assert f["glcm_correlation"] == pytest.approx(corr)


def test_hand_computed_masked_pairs():
    """Only pairs with both pixels in the mask count.

    image  1 2 3     mask  1 1 0
           4 5 6           1 1 1
    Horizontal pairs inside: (1,2), (4,5), (5,6) -> symmetric counts 6.
    """
    img = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    mask = np.array([[1, 1, 0], [1, 1, 1]], dtype=bool)
    p = tx.glcm(img, mask, n_bins=None, **ANGLE0)[:, :, 0, 0]
    expected = np.zeros((6, 6))
    for a, b in [(1, 2), (4, 5), (5, 6)]:
        expected[a - 1, b - 1] += 1
        expected[b - 1, a - 1] += 1
    assert p == pytest.approx(expected)
    # contrast: every pair differs by 1
    assert tx.glcm_contrast(img, mask, n_bins=None, **ANGLE0) == pytest.approx(1.0)


# ------------------------------------------------------------- masking
@pytest.mark.parametrize("seed", range(4))
def test_masked_glcm_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(13, 17)).astype(np.uint8)
    mask = rng.random(img.shape) < 0.6
    levels, n = tx.quantise(img, mask, n_bins=8)
    offsets = [(0, 1), (1, 1), (1, 0), (1, -1)]  # 0, 45, 90, 135 degrees
    got = tx.glcm(img, mask, n_bins=8)[:, :, 0, :]
    assert got == pytest.approx(_brute_force_glcm(levels, mask, offsets, n))


def test_pixels_outside_the_mask_do_not_matter():
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, size=(40, 40)).astype(np.uint8)
    mask = np.zeros(img.shape, dtype=bool)
    mask[8:30, 5:33] = rng.random((22, 28)) < 0.9
    ref = tx.glcm_features(img, mask)
    other = img.copy()
    other[~mask] = rng.integers(0, 256, size=int((~mask).sum()))
    assert tx.glcm_features(other, mask) == ref
    other[~mask] = 255  # also outside the quantisation range of the ROI
    assert tx.glcm_features(other, mask) == ref
    changed = img.copy()
    changed[mask] = 255 - changed[mask]  # inverting the ROI changes nothing
    assert tx.glcm_features(changed, mask)["glcm_contrast"] == pytest.approx(ref["glcm_contrast"])
    changed[mask] = rng.integers(0, 256, size=int(mask.sum()))
    assert tx.glcm_features(changed, mask) != ref


def test_unmasked_roi_matches_skimage_graycoprops():
    rng = np.random.default_rng(6)
    img = rng.integers(0, 16, size=(30, 30)).astype(np.uint8)
    img[:, 15:] //= 3  # some structure
    f = tx.glcm_features(img, np.ones(img.shape, dtype=bool), n_bins=None, distances=(1, 2))
    p = graycomatrix(img, [1, 2], list(tx.DEFAULT_ANGLES), levels=16, symmetric=True, normed=True)
    for ours, theirs in [
        ("glcm_contrast", "contrast"),
        ("glcm_correlation", "correlation"),
        ("glcm_energy", "energy"),
        ("glcm_asm", "ASM"),
        ("glcm_homogeneity", "homogeneity"),
    ]:
        assert f[ours] == pytest.approx(graycoprops(p, theirs).mean()), ours


def test_energy_is_the_square_root_of_asm():
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, size=(25, 25)).astype(np.uint8)
    mask = rng.random(img.shape) < 0.8
    f = tx.glcm_features(img, mask, angles=(0.0,))
    assert f["glcm_energy"] == pytest.approx(math.sqrt(f["glcm_asm"]))
    assert tx.glcm_energy(img, mask, angles=(0.0,)) == f["glcm_energy"]
    assert tx.glcm_asm(img, mask, angles=(0.0,)) == f["glcm_asm"]


def test_merge_aggregation_sums_the_matrices():
    img = (np.indices((9, 9)).sum(axis=0) % 2).astype(np.uint8)
    f = tx.glcm_features(img, np.ones(img.shape, dtype=bool), n_bins=None, aggregate="merge")
    # merged matrix: 2 horizontal/vertical matrices (all pairs off-diagonal,
    # 9*8 pairs counted twice) and 2 diagonal ones (8*8 pairs, twice)
    off, diag = 2 * 9 * 8 * 2, 2 * 8 * 8 * 2
    assert f["glcm_contrast"] == pytest.approx(off / (off + diag))


# --------------------------------------------------------- quantisation
def test_fixed_bin_number():
    img = np.array([[0, 10, 20], [30, 40, 50]], dtype=np.uint8)
    levels, n = tx.quantise(img, np.ones(img.shape, dtype=bool), n_bins=5)
    assert n == 5
    assert levels.tolist() == [[1, 2, 3], [4, 5, 5]]  # the maximum goes to the top bin


def test_fixed_bin_width_and_outside_zero():
    img = np.array([[5, 7, 9], [11, 13, 200]], dtype=np.uint8)
    mask = np.array([[1, 1, 1], [1, 1, 0]], dtype=bool)
    levels, n = tx.quantise(img, mask, bin_width=4)
    assert levels.tolist() == [[1, 1, 2], [2, 3, 0]]
    assert n == 3


def test_no_discretisation_needs_integers():
    with pytest.raises(ValueError):
        tx.quantise(np.array([[0.5, 1.0]]), np.ones((1, 2), dtype=bool), n_bins=None)


def test_empty_mask_and_no_pairs():
    img = np.arange(16, dtype=np.uint8).reshape(4, 4)
    f = tx.glcm_features(img, np.zeros((4, 4), dtype=bool))
    assert all(math.isnan(v) for v in f.values())
    single = np.zeros((4, 4), dtype=bool)
    single[1, 1] = True
    assert all(math.isnan(v) for v in tx.glcm_features(img, single).values())
