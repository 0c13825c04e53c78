"""Digital test shapes with known geometry (helpers for the feature tests)."""

from __future__ import annotations

import numpy as np
from skimage import draw


def disk(radius: float, center=None, size: int | None = None) -> np.ndarray:
    """Pixels whose centres lie strictly inside a circle (skimage.draw.disk)."""
    size = size or int(2 * radius + 11)
    center = center if center is not None else (size // 2, size // 2)
    m = np.zeros((size, size), dtype=bool)
    rr, cc = draw.disk(center, radius, shape=m.shape)
    m[rr, cc] = True
    return m


def ellipse(a: float, b: float, rotation: float = 0.0, size: int | None = None) -> np.ndarray:
    """Filled ellipse with semi-axes a (major) and b (minor)."""
    size = size or int(2 * max(a, b) + 11)
    m = np.zeros((size, size), dtype=bool)
    rr, cc = draw.ellipse(size / 2, size / 2, b, a, shape=m.shape, rotation=rotation)
    m[rr, cc] = True
    return m


def star(k: int, r_in: float = 20.0, r_out: float = 60.0, phase: float = 0.0, size: int = 160) -> np.ndarray:
    """A k-armed star: r(theta) = r_in + (r_out - r_in) * cos(k theta / 2)^8."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    theta = np.arctan2(yy, xx) - phase
    return np.hypot(yy, xx) <= r_in + (r_out - r_in) * np.cos(k * theta / 2) ** 8


def ball(radius: float, size: int | None = None) -> np.ndarray:
    """Voxels whose centres lie within a sphere (centred on a voxel)."""
    size = size or int(2 * radius + 5)
    zz, yy, xx = np.mgrid[:size, :size, :size] - size // 2
    return zz**2 + yy**2 + xx**2 <= radius**2


def blob3d(seed: int, shape=(12, 40, 40)) -> np.ndarray:
    """An irregular, tumour-like 3D blob (smoothed random field, thresholded)."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.normal(size=shape), sigma=(1.5, 4, 4))
    zz, yy, xx = np.indices(shape)
    c = [(s - 1) / 2 for s in shape]
    envelope = ((zz - c[0]) / shape[0]) ** 2 + ((yy - c[1]) / shape[1]) ** 2 + ((xx - c[2]) / shape[2]) ** 2
    return (field / field.std() - 8 * envelope) > -0.6
