"""2D shape features against analytic shapes and against scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage import measure

from gliomics.features import shape2d as s2
from gliomics.features._utils import largest_component

from .shapes import disk, ellipse, star

R = 30


@pytest.fixture(scope="module")
def disks():
    """A disk centred on a pixel and one centred off the pixel grid."""
    return {"on_grid": disk(R), "off_grid": disk(R, center=(40.3, 40.7), size=90)}


# ---------------------------------------------------------------- the disk
@pytest.mark.parametrize("which", ["on_grid", "off_grid"])
def test_disk(disks, which):
    f = s2.shape2d_features(disks[which])
    assert f["solidity"] == 1.0  # a digitised convex set is digitally convex
    assert f["angular_standard_deviation"] < 0.02
    assert f["margin_fluctuation"] < 0.02
    assert f["perimeter"] == pytest.approx(2 * math.pi * R, rel=0.03)
    assert f["equivalent_diameter"] == pytest.approx(2 * R, rel=0.01)
    assert f["convexity_defects"] == 0
    assert f["aspect_ratio"] == pytest.approx(1.0, abs=0.04)
    assert f["extent"] == pytest.approx(math.pi / 4, rel=0.03)


def test_disk_eccentricity(disks):
    # centred on a pixel the digital disk has the square's symmetry, so its
    # second moments are isotropic: eccentricity exactly 0
    assert s2.eccentricity(disks["on_grid"]) < 1e-6
    # off the grid it is not; e = sqrt(1 - l2/l1) turns a 0.5 % moment
    # anisotropy into ~0.07, hence the loose bound
    assert s2.eccentricity(disks["off_grid"]) < 0.15


def test_perimeter_is_better_than_chain_length(disks):
    """Crofton beats the 4-connected chain length that regionprops reports."""
    m = disks["on_grid"]
    exact = 2 * math.pi * R
    chain = measure.regionprops(m.astype(np.uint8))[0].perimeter
    assert abs(s2.perimeter(m) - exact) < abs(chain - exact)
    assert abs(s2.perimeter(m) / exact - 1) < 0.01


@pytest.mark.parametrize("radius", [8, 20, 45])
def test_scale_invariant_outline_features_stay_small_on_disks(radius):
    f = s2.shape2d_features(disk(radius))
    assert f["angular_standard_deviation"] < 0.03
    assert f["margin_fluctuation"] < 0.03


# ------------------------------------------------------------- ellipses
@pytest.mark.parametrize(
    "a,b,rotation",
    [(60, 30, 0.0), (50, 40, 0.0), (80, 20, 0.0), (60, 30, 0.7), (45, 15, 2.0)],
)
def test_ellipse_eccentricity(a, b, rotation):
    m = ellipse(a, b, rotation)
    expected = math.sqrt(1 - b**2 / a**2)
    assert s2.eccentricity(m) == pytest.approx(expected, rel=0.01)


def test_ellipse_is_smooth_and_convex():
    f = s2.shape2d_features(ellipse(60, 30, 0.4))
    assert f["solidity"] == 1.0
    assert f["margin_fluctuation"] < 0.02
    assert f["convexity_defects"] == 0
    # ASD sees the elongation within its 36-degree sectors, but stays small
    assert 0.0 < f["angular_standard_deviation"] < 0.15


def test_ellipse_aspect_ratio_follows_the_bounding_box():
    m = ellipse(60, 30)  # major axis along the columns
    assert s2.aspect_ratio(m) == pytest.approx(2.0, rel=0.03)
    assert s2.aspect_ratio(m.T) == pytest.approx(0.5, rel=0.03)


# -------------------------------------------------------------- squares
def test_square():
    m = np.zeros((50, 50), dtype=bool)
    m[10:40, 10:40] = True
    f = s2.shape2d_features(m)
    assert f["aspect_ratio"] == 1.0
    assert f["extent"] == 1.0
    assert f["solidity"] == 1.0
    assert f["convexity_defects"] == 0
    assert f["eccentricity"] == pytest.approx(0.0, abs=1e-6)
    assert f["equivalent_diameter"] == pytest.approx(math.sqrt(4 * 900 / math.pi))
    assert f["perimeter"] == pytest.approx(4 * 30, rel=0.12)  # Crofton rounds corners


def test_rectangle():
    m = np.zeros((50, 70), dtype=bool)
    m[10:30, 5:65] = True  # 20 rows x 60 columns
    assert s2.aspect_ratio(m) == 3.0
    assert s2.extent(m) == 1.0
    assert s2.eccentricity(m) == pytest.approx(math.sqrt(1 - (20**2 - 1) / (60**2 - 1)), rel=1e-9)


# ---------------------------------------------------------------- stars
@pytest.mark.parametrize("k", [3, 4, 5, 6, 8])
@pytest.mark.parametrize("phase", [0.0, 0.3])
def test_star_convexity_defects(k, phase):
    assert s2.convexity_defects(star(k, phase=phase)) == k


def test_defect_threshold():
    assert s2.convexity_defects(star(5), min_depth=1e9) == 0
    # the digitisation staircase of a convex disk makes shallow defects that
    # only the default depth threshold keeps out
    for radius in (10.3, 30.6, 60.2):
        m = disk(radius, center=(radius + 5.4, radius + 5.7), size=int(2 * radius + 12))
        assert s2.convexity_defects(m, min_depth=0.0) > 0
        assert s2.convexity_defects(m) == 0


def test_irregular_outline_scores_higher():
    smooth = disk(40)
    rough = star(12, r_in=36, r_out=44, size=100)
    assert s2.angular_standard_deviation(rough) > 3 * s2.angular_standard_deviation(smooth)
    assert s2.margin_fluctuation(rough) > 3 * s2.margin_fluctuation(smooth)
    assert s2.solidity(rough) < 0.97


def test_outline_features_are_scale_invariant():
    m = star(6, r_in=15, r_out=30, size=70)
    big = np.kron(m, np.ones((3, 3), dtype=bool))
    for f in (s2.angular_standard_deviation, s2.margin_fluctuation, s2.eccentricity, s2.solidity):
        assert f(big) == pytest.approx(f(m), rel=0.15), f.__name__


# ------------------------------------------ agreement with scikit-image
def _random_shapes(n=8, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        m = ellipse(rng.uniform(8, 30), rng.uniform(5, 8), rotation=rng.uniform(0, math.pi), size=70)
        m |= np.roll(ellipse(rng.uniform(8, 25), rng.uniform(5, 20), size=70), rng.integers(-15, 15, 2), (0, 1))
        m &= rng.random(m.shape) > 0.03  # holes and ragged edges
        yield m


@pytest.mark.parametrize("m", list(_random_shapes()))
def test_matches_regionprops_of_the_largest_component(m):
    lc = largest_component(m)
    props = measure.regionprops(lc.astype(np.uint8))[0]
    assert s2.eccentricity(m) == pytest.approx(props.eccentricity, abs=1e-9)
    assert s2.extent(m) == pytest.approx(props.extent)
    assert s2.equivalent_diameter(m) == pytest.approx(props.equivalent_diameter_area)
    assert s2.perimeter(m) == pytest.approx(measure.perimeter_crofton(lc, directions=4))
    assert s2.aspect_ratio(m) == pytest.approx(props.image.shape[1] / props.image.shape[0])
    # our hull is that of the pixel centres (skimage adds half-pixel diamonds)
    assert props.solidity <= s2.solidity(m) <= 1.0
    assert s2.solidity(m) == pytest.approx(props.solidity, rel=0.06)


def test_solidity_close_to_skimage_on_large_smooth_shapes():
    m = ellipse(70, 45, 0.3)
    skimage_solidity = measure.regionprops(m.astype(np.uint8))[0].solidity
    assert s2.solidity(m) == pytest.approx(skimage_solidity, abs=0.02)


# ------------------------------------------- conventions and edge cases
def test_largest_component_is_used():
    big = disk(20, size=100, center=(30, 30))
    small = disk(8, size=100, center=(75, 75))
    assert s2.shape2d_features(big | small) == s2.shape2d_features(big)


def test_mask_encodings_agree():
    m = star(5)
    ref = s2.shape2d_features(m)
    assert s2.shape2d_features(m.astype(np.uint8) * 255) == ref
    assert s2.shape2d_features(m.astype(np.float32)) == ref


def test_each_function_matches_the_combined_one():
    m = star(7, phase=0.2)
    combined = s2.shape2d_features(m)
    for name in s2.SHAPE2D_COLUMNS:
        assert getattr(s2, name)(m) == combined[name], name


def test_empty_mask_gives_nan():
    f = s2.shape2d_features(np.zeros((10, 10), dtype=bool))
    assert set(f) == set(s2.SHAPE2D_COLUMNS)
    assert all(math.isnan(v) for v in f.values())


def test_tiny_masks_do_not_crash():
    one = np.zeros((5, 5), dtype=bool)
    one[2, 2] = True
    f = s2.shape2d_features(one)
    assert math.isnan(f["angular_standard_deviation"]) and math.isnan(f["margin_fluctuation"])
    assert f["solidity"] == 1.0 and f["extent"] == 1.0
    line = np.zeros((5, 9), dtype=bool)
    line[2, 1:8] = True
    f = s2.shape2d_features(line)
    assert f["eccentricity"] == 1.0 and f["aspect_ratio"] == 7.0 and f["solidity"] == 1.0


def test_wrong_dimension_raises():
    with pytest.raises(ValueError):
        s2.solidity(np.zeros((3, 3, 3), dtype=bool))
