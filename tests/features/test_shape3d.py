"""3D shape features: BEVR, the MVEE solver, mesh volume/area, diameter."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial import ConvexHull
from scipy.spatial.distance import pdist
from skimage.measure import marching_cubes

from gliomics.features import shape3d as s3

from .shapes import ball, blob3d

CUBE_BEVR = 2 / (math.pi * math.sqrt(3))  # 0.3676


# ------------------------------------------------------------------ BEVR
def test_cube_bevr_is_the_circumscribed_sphere_ratio():
    cube = np.zeros((24, 24, 24), dtype=bool)
    cube[2:22, 2:22, 2:22] = True
    # voxel corners: the MVEE of a cube is its circumscribed sphere, exactly
    assert s3.bounding_ellipsoid_volume_ratio(cube, (1, 1, 1)) == pytest.approx(CUBE_BEVR, rel=1e-6)


@pytest.mark.parametrize("shape", [(3, 5, 7), (10, 4, 25), (1, 1, 1), (1, 6, 6)])
@pytest.mark.parametrize("spacing", [(1, 1, 1), (6, 1, 1), (0.3, 2.0, 0.7)])
def test_any_box_has_the_cube_ratio(shape, spacing):
    """A box is an affine image of a cube: same BEVR, whatever the spacing."""
    box = np.ones(shape, dtype=bool)
    assert s3.bounding_ellipsoid_volume_ratio(np.pad(box, 2), spacing) == pytest.approx(CUBE_BEVR, rel=1e-6)


@pytest.mark.parametrize("radius,low", [(10, 0.75), (20, 0.86), (30, 0.90)])
def test_ball_bevr_tends_to_one(radius, low):
    # the voxel-corner hull sticks out ~half a voxel beyond the ball, so the
    # digital ratio is ~1 - 2.4/R: 0.79, 0.89, 0.92 for R = 10, 20, 30
    bevr = s3.bounding_ellipsoid_volume_ratio(ball(radius), (1, 1, 1))
    assert low < bevr <= 1.0


def test_ball_bevr_increases_with_resolution():
    values = [s3.bounding_ellipsoid_volume_ratio(ball(r), (1, 1, 1)) for r in (8, 16, 32)]
    assert values[0] < values[1] < values[2] < 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bevr_is_invariant_to_the_slice_spacing(seed):
    """The MVEE is affine-equivariant, so scaling z (or any axis) leaves BEVR."""
    m = blob3d(seed)
    ref = s3.bounding_ellipsoid_volume_ratio(m, (1, 1, 1))
    assert 0.1 < ref < 1.0
    for spacing in [(6, 1, 1), (2.5, 1, 1), (0.2, 1, 1), (5, 0.9, 1.3)]:
        assert s3.bounding_ellipsoid_volume_ratio(m, spacing) == pytest.approx(ref, rel=1e-6)


def test_bevr_is_at_most_one_and_whole_mask_counts():
    m = blob3d(3)
    two = np.zeros((m.shape[0], m.shape[1], 2 * m.shape[2] + 5), dtype=bool)
    two[:, :, : m.shape[2]] = m
    two[:, :, -m.shape[2] :] = m
    b1 = s3.bounding_ellipsoid_volume_ratio(m)
    b2 = s3.bounding_ellipsoid_volume_ratio(two)
    assert 0 < b2 < b1 <= 1  # the gap between the two copies is empty space


def test_single_voxel_and_single_slice():
    one = np.zeros((3, 3, 3), dtype=bool)
    one[1, 1, 1] = True
    assert s3.bounding_ellipsoid_volume_ratio(one) == pytest.approx(CUBE_BEVR, rel=1e-6)
    flat = np.zeros((1, 40, 40), dtype=bool)
    flat[0, 10:30, 5:35] = True
    assert 0 < s3.bounding_ellipsoid_volume_ratio(flat) <= 1


# ---------------------------------------------------------------- MVEE
def test_mvee_recovers_a_known_ellipsoid():
    rng = np.random.default_rng(0)
    axes = np.array([5.0, 2.0, 1.0])
    rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    v = rng.normal(size=(400, 3))
    pts = (v / np.linalg.norm(v, axis=1, keepdims=True) * axes) @ rot.T + [1.0, -2.0, 3.0]
    c, a, vol = s3.minimum_volume_enclosing_ellipsoid(pts)
    assert c == pytest.approx([1.0, -2.0, 3.0], abs=1e-4)
    assert np.sort(1 / np.sqrt(np.linalg.eigvalsh(a))) == pytest.approx(np.sort(axes), rel=1e-4)
    assert vol == pytest.approx(4 / 3 * math.pi * axes.prod(), rel=1e-5)


def _khachiyan_reference(p, tol=1e-3):
    """Plain Khachiyan (1996), no away steps, no Newton: slow but simple."""
    n, d = p.shape
    q = np.vstack([p.T, np.ones(n)])
    u = np.full(n, 1 / n)
    while True:
        m = np.einsum("ij,ji->i", q.T, np.linalg.solve(q @ (u[:, None] * q.T), q))
        j = int(np.argmax(m))
        if m[j] <= (1 + tol) * (d + 1):
            break
        step = (m[j] - d - 1) / ((d + 1) * (m[j] - 1))
        u *= 1 - step
        u[j] += step
    c = p.T @ u
    a = np.linalg.inv(p.T @ (u[:, None] * p) - np.outer(c, c)) / d
    r = p - c
    a /= max(1.0, np.einsum("ij,jk,ik->i", r, a, r).max())
    return math.pi ** (d / 2) / math.gamma(d / 2 + 1) / math.sqrt(np.linalg.det(a))


@pytest.mark.parametrize("seed", range(6))
def test_mvee_matches_plain_khachiyan_and_encloses_all(seed):
    rng = np.random.default_rng(seed)
    d = 3 if seed < 4 else 2
    pts = rng.normal(size=(int(rng.integers(8, 60)), d)) * rng.uniform(0.2, 3, size=d)
    c, a, vol = s3.minimum_volume_enclosing_ellipsoid(pts)
    r = pts - c
    assert np.einsum("ij,jk,ik->i", r, a, r).max() <= 1 + 1e-9
    # the plain algorithm is slow, so it stops at tol = 1e-3: its (enclosing)
    # ellipsoid is at most (1 + 1e-3)^2 larger than the optimum, ours 1e-7
    ref = _khachiyan_reference(pts)
    assert ref / (1 + 1e-3) ** 2 <= vol <= ref * (1 + 1e-9)


def test_mvee_rejects_flat_point_sets():
    pts = np.c_[np.random.default_rng(0).normal(size=(20, 2)), np.zeros(20)]
    with pytest.raises(ValueError):
        s3.minimum_volume_enclosing_ellipsoid(pts)


# ------------------------------------------------- mesh-based features
@pytest.mark.parametrize("spacing", [(1, 1, 1), (6, 1, 1), (2.5, 0.7, 1.3)])
def test_mesh_tables_equal_a_full_marching_cubes(spacing):
    rng = np.random.default_rng(1)
    for m in [rng.random((7, 9, 8)) < 0.5, blob3d(4), ball(6)]:
        fast = s3._mc_volume_area(m, np.asarray(spacing, dtype=float))
        full = s3._mc_volume_area_full(m, spacing)
        assert fast == pytest.approx(full, rel=1e-12)


def test_mesh_hull_candidates_give_the_full_mesh_hull():
    m = blob3d(5)
    sp = np.array([6.0, 1.0, 1.0])
    verts = marching_cubes(np.pad(m, 1).astype(np.float32), 0.5, spacing=tuple(sp))[0]
    full = ConvexHull(verts)
    assert s3.solidity_3d(m, sp) == pytest.approx(s3.volume(m, sp) / full.volume, rel=1e-9)
    assert s3.maximum_3d_diameter(m, sp) == pytest.approx(pdist(verts[full.vertices]).max(), rel=1e-9)


def test_ball_volume_area_diameter_sphericity():
    r = 20
    m = ball(r)
    assert s3.volume(m, (1, 1, 1)) == pytest.approx(4 / 3 * math.pi * r**3, rel=0.01)
    assert s3.volume(m, (1, 1, 1), method="voxels") == m.sum()
    # marching cubes on a digital ball overestimates the area (~8 %)
    assert s3.surface_area(m, (1, 1, 1)) == pytest.approx(4 * math.pi * r**2, rel=0.12)
    assert s3.maximum_3d_diameter(m, (1, 1, 1)) == pytest.approx(2 * r + 1, abs=0.5)
    assert 0.85 < s3.sphericity(m, (1, 1, 1)) <= 1.0
    assert 0.95 < s3.solidity_3d(m, (1, 1, 1)) <= 1.0


def test_spacing_scales_volume_and_area():
    m = blob3d(6)
    v1 = s3.volume(m, (1, 1, 1), method="voxels")
    assert s3.volume(m, (6, 1, 1), method="voxels") == pytest.approx(6 * v1)
    cube = np.pad(np.ones((4, 4, 4), dtype=bool), 1)
    # isotropic scaling: volume x s^3, area x s^2, diameter x s
    for f, power in [(s3.volume, 3), (s3.surface_area, 2), (s3.maximum_3d_diameter, 1)]:
        assert f(cube, (2, 2, 2)) == pytest.approx(f(cube, (1, 1, 1)) * 2**power)


def test_shape3d_features_match_the_single_functions():
    m = blob3d(7)
    sp = (6.0, 1.0, 1.0)
    f = s3.shape3d_features(m, sp)
    assert f["bounding_ellipsoid_volume_ratio"] == s3.bounding_ellipsoid_volume_ratio(m, sp)
    assert f["volume_3d"] == s3.volume(m, sp)
    assert f["surface_area_3d"] == s3.surface_area(m, sp)
    assert f["sphericity_3d"] == s3.sphericity(m, sp)
    assert f["max_diameter_3d"] == s3.maximum_3d_diameter(m, sp)
    assert f["solidity_3d"] == s3.solidity_3d(m, sp)


def test_empty_and_bad_input():
    empty = np.zeros((3, 4, 5), dtype=bool)
    f = s3.shape3d_features(empty)
    assert all(math.isnan(v) for v in f.values())
    assert math.isnan(s3.bounding_ellipsoid_volume_ratio(empty))
    with pytest.raises(ValueError):
        s3.volume(np.ones((3, 3), dtype=bool))
    with pytest.raises(ValueError):
        s3.volume(np.ones((3, 3, 3), dtype=bool), spacing=(1, 0, 1))
    with pytest.raises(ValueError):
        s3.volume(np.ones((3, 3, 3), dtype=bool), method="bogus")


def test_flat_tumour_does_not_crash():
    flat = np.zeros((1, 20, 20), dtype=bool)
    flat[0, 5:15, 5:15] = True
    f = s3.shape3d_features(flat, (6, 1, 1))
    assert all(np.isfinite(v) for v in f.values())
    assert f["volume_3d"] > 0 and 0 < f["solidity_3d"] <= 1
