"""Radiomic features of tumour masks: pure functions, no I/O.

- :mod:`~gliomics.features.shape2d`: 2D shape of one slice (angular standard
  deviation, eccentricity, margin fluctuation, solidity, extent, equivalent
  diameter, perimeter, convexity defects, aspect ratio).
- :mod:`~gliomics.features.shape3d`: 3D shape (bounding ellipsoid volume
  ratio, mesh volume, surface area, sphericity, maximum diameter, 3D
  solidity) with a ``spacing=(dz, dy, dx)`` argument.
- :mod:`~gliomics.features.texture`: masked GLCM texture (contrast,
  correlation, energy = sqrt(ASM), ASM, homogeneity).
- :mod:`~gliomics.features.patient`: :func:`patient_features`, one row per
  patient, and the column constants.

Each feature function documents its formula and source. Importing this
package imports NumPy, SciPy, scikit-image and OpenCV (not TensorFlow).
"""

from .patient import (
    ALL_COLUMNS,
    EXTRA_COLUMNS,
    FEATURE_COLUMNS,
    FLAIR_CHANNEL,
    MIN_TUMOUR_VOXELS,
    SLICE_MEAN_COLUMNS,
    patient_features,
)
from .shape2d import (
    SHAPE2D_COLUMNS,
    angular_standard_deviation,
    aspect_ratio,
    convexity_defects,
    eccentricity,
    equivalent_diameter,
    extent,
    margin_fluctuation,
    perimeter,
    shape2d_features,
    solidity,
)
from .shape3d import (
    DEFAULT_SPACING,
    SHAPE3D_COLUMNS,
    SLICE_SPACING_RATIO,
    bounding_ellipsoid_volume_ratio,
    maximum_3d_diameter,
    minimum_volume_enclosing_ellipsoid,
    shape3d_features,
    solidity_3d,
    sphericity,
    surface_area,
    volume,
)
from .texture import (
    GLCM_COLUMNS,
    glcm,
    glcm_asm,
    glcm_contrast,
    glcm_correlation,
    glcm_energy,
    glcm_features,
    glcm_homogeneity,
    quantise,
)

__all__ = [
    "ALL_COLUMNS",
    "DEFAULT_SPACING",
    "EXTRA_COLUMNS",
    "FEATURE_COLUMNS",
    "FLAIR_CHANNEL",
    "GLCM_COLUMNS",
    "MIN_TUMOUR_VOXELS",
    "SHAPE2D_COLUMNS",
    "SHAPE3D_COLUMNS",
    "SLICE_MEAN_COLUMNS",
    "SLICE_SPACING_RATIO",
    "angular_standard_deviation",
    "aspect_ratio",
    "bounding_ellipsoid_volume_ratio",
    "convexity_defects",
    "eccentricity",
    "equivalent_diameter",
    "extent",
    "glcm",
    "glcm_asm",
    "glcm_contrast",
    "glcm_correlation",
    "glcm_energy",
    "glcm_features",
    "glcm_homogeneity",
    "margin_fluctuation",
    "maximum_3d_diameter",
    "minimum_volume_enclosing_ellipsoid",
    "patient_features",
    "perimeter",
    "quantise",
    "shape2d_features",
    "shape3d_features",
    "solidity",
    "solidity_3d",
    "sphericity",
    "surface_area",
    "volume",
]
